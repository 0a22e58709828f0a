// go-echo-peer: a goroutine-per-connection TCP echo server, the Go counterpart the seed
// article compared its Python servers with ("goroutine" in its tables). Standard library only.
//
// Usage: go-echo-peer HOST PORT (port 0 = any). It prints "listening on HOST:PORT
// model=go-goroutine" on stderr once it accepts, and on SIGTERM or SIGINT closes the listener
// and every open connection, waits for their goroutines and exits 0.
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// connections tracks the open connections so a stop can close them; guarded by its mutex,
// shared by the accept loop, every connection goroutine and the stop path.
type connections struct {
	mu    sync.Mutex
	open  map[net.Conn]struct{}
	group sync.WaitGroup
}

func (c *connections) add(conn net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open[conn] = struct{}{}
	c.group.Add(1)
}

func (c *connections) remove(conn net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.open, conn)
	c.group.Done()
}

func (c *connections) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for conn := range c.open {
		conn.Close()
	}
}

// echo copies every byte back until the client closes; Write returns only when the whole
// slice is written (or the connection failed), so partial writes are finished.
func echo(conn net.Conn, tracked *connections) {
	defer tracked.remove(conn)
	defer conn.Close()
	buffer := make([]byte, 16384)
	for {
		n, err := conn.Read(buffer)
		if n > 0 {
			if _, werr := conn.Write(buffer[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: go-echo-peer HOST PORT")
		os.Exit(2)
	}
	port, err := strconv.Atoi(os.Args[2])
	if err != nil || port < 0 || port > 65535 {
		fmt.Fprintf(os.Stderr, "go-echo-peer: PORT: %q is not a port (0 to 65535)\n", os.Args[2])
		os.Exit(2)
	}
	listener, err := net.Listen("tcp", net.JoinHostPort(os.Args[1], strconv.Itoa(port)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-echo-peer: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "listening on %s model=go-goroutine\n", listener.Addr())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	stopping := make(chan struct{})
	go func() {
		<-stop
		close(stopping)
		listener.Close()
	}()

	tracked := &connections{open: make(map[net.Conn]struct{})}
	for {
		conn, err := listener.Accept()
		if err != nil {
			select {
			case <-stopping:
				tracked.closeAll()
				tracked.group.Wait()
				os.Exit(0)
			default:
			}
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() {
				continue
			}
			// EMFILE and similar: keep serving the connections already open, and retry
			// accepting after a pause instead of spinning.
			fmt.Fprintf(os.Stderr, "go-echo-peer: accept: %v\n", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		tracked.add(conn)
		go echo(conn, tracked)
	}
}
