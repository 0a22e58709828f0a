"""The seed article's epoll server (Pythonでネットワークプログラミング, 2016), ported to Python 3.

Changes from the article, and only these: address and port come from the command line
(`epoll_server.py HOST PORT`, port 0 = any) and the listening line goes to stderr so a sweep can
find the port; log() (a no-op) replaces the per-event print() calls ("logging off"); SIGTERM
raises KeyboardInterrupt, which the article's own handler already turns into a clean exit 0.
"""
import signal
import socket
import select
import sys

"""
シングルプロセス・シングルスレッド・マルチクライアント(epoll)
"""


def log(*args):
    pass


def announce(sock):
    """The line a sweep waits for, printed once serving starts (inside the stop handler's try)."""
    print('listening on {}:{} model=py-epoll'.format(*sock.getsockname()), file=sys.stderr,
          flush=True)


def create_server_socket(host, port):
    server_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server_sock.bind((host, port))
    server_sock.listen(256)
    log('Server Run Port:{}'.format(port))
    return server_sock


def accept_loop(server_sock):
    log('Ready For Accept')

    epoll = select.epoll()
    epoll.register(server_sock.fileno(), select.EPOLLIN)

    # max_discriptor = 20
    discriptors = {}
    while True:
        events = epoll.poll()
        log('Discriptor Count: {}'.format(len(discriptors)))
        for fileno, event in events:
            if fileno == server_sock.fileno():
                new_sock, (remote_host, remote_remport) = server_sock.accept()
                # if len(discriptors) > max_discriptor:
                #     new_sock.close()
                epoll.register(new_sock.fileno(), select.EPOLLIN)
                discriptors[new_sock.fileno()] = new_sock
                log('[FD:{}]Accept: {}:{}'.format(new_sock.fileno(), remote_host, remote_remport))
            else:
                sock = discriptors[fileno]
                data = send_recv(sock)
                if not data:
                    sock.close()
                    del discriptors[fileno]


def send_recv(sock):
    remote_host, remote_remport = sock.getpeername()
    log('[FD:{}]Client:{}:{}'.format(sock.fileno(), remote_host, remote_remport))

    data = sock.recv(512)
    if data == b'':
        log('[FD:{}]Recv:EOF'.format(sock.fileno()))
        return None

    sock.send(data)
    return data


if __name__ == '__main__':
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    server_sock = create_server_socket(sys.argv[1], int(sys.argv[2]))
    try:
        announce(server_sock)
        accept_loop(server_sock)
    except KeyboardInterrupt:
        server_sock.close()
