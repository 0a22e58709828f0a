// core's ConnectionBuffer, compiled unchanged with its two socket calls redirected to the
// scripted fake (::recv becomes ::fake_socket::recv). Nothing else in the file is touched.
#include "fake_socket.hpp"

#define recv fake_socket::recv
#define send fake_socket::send
#include "../../core/src/sdk/connection_buffer.cpp"
