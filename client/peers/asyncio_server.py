"""The seed article's asyncio server (Pythonでネットワークプログラミング, 2016), ported to Python 3.11.

Changes from the article, and only these: address and port come from the command line
(`asyncio_server.py HOST PORT`, port 0 = any) and the listening line goes to stderr so a sweep
can find the port; log() (a no-op) replaces the per-event print() calls ("logging off"); SIGTERM
raises KeyboardInterrupt, which the article's own handler already turns into a clean exit 0.
"""
import asyncio
import signal
import socket
import sys

"""
シングルプロセス・シングルスレッド・マルチクライアント(asyncio)
"""


def log(*args):
    pass


def announce(sock):
    """The line a sweep waits for, printed once serving starts (inside the stop handler's try)."""
    print('listening on {}:{} model=py-asyncio'.format(*sock.getsockname()), file=sys.stderr,
          flush=True)


def create_server_socket(host, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setblocking(False)
    sock.bind((host, port))
    sock.listen(256)
    log('Server Run Port:{}'.format(port))
    return sock


async def accept(loop, sock):
    log('Ready For Accept')

    while True:
        new_socket, (remote_host, remote_remport) = await loop.sock_accept(sock)
        new_socket.setblocking(False)
        log('[FD:{}]Accept:{}:{}'.format(new_socket.fileno(), remote_host, remote_remport))
        asyncio.ensure_future(recv_send(loop, new_socket))


async def recv_send(loop, sock):
    remote_host, remote_remport = sock.getpeername()
    log('[FD:{}]Client:{}:{}'.format(sock.fileno(), remote_host, remote_remport))

    while True:
        data = await loop.sock_recv(sock, 512)
        if data == b'':
            log('[FD:{}]Recv:EOF'.format(sock.fileno()))
            sock.close()
            break

        log('[FD:{}]Recv:{}'.format(sock.fileno(), data))
        await loop.sock_sendall(sock, data)


if __name__ == '__main__':
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    event_loop = asyncio.SelectorEventLoop()
    asyncio.set_event_loop(event_loop)
    server_sock = create_server_socket(sys.argv[1], int(sys.argv[2]))

    try:
        announce(server_sock)
        event_loop.run_until_complete(accept(event_loop, server_sock))
    except KeyboardInterrupt:
        event_loop.close()
        server_sock.close()
