module echod/peers/goecho

go 1.19
