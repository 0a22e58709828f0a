"""The seed article's select server (Pythonでネットワークプログラミング, 2016), ported to Python 3.

Changes from the article, and only these: address and port come from the command line
(`select_server.py HOST PORT`, port 0 = any) and the listening line goes to stderr so a sweep can
find the port; log() (a no-op) replaces the per-event print() calls ("logging off"); SIGTERM
raises KeyboardInterrupt, which the article's own handler already turns into a clean exit 0.
"""
import signal
import socket
import select
import sys

"""
シングルプロセス・シングルスレッド・マルチクライアント(select)
"""


def log(*args):
    pass


def announce(sock):
    """The line a sweep waits for, printed once serving starts (inside the stop handler's try)."""
    print('listening on {}:{} model=py-select'.format(*sock.getsockname()), file=sys.stderr,
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
    # max_descriptor = 20
    descriptors = [server_sock]

    while True:
        log('Descriptor Count:{}'.format(len(descriptors) - 1))
        r, _, _ = select.select(descriptors, [], [])
        for sock in r:
            if sock == server_sock:
                # if len(descriptors) > max_descriptor:
                #     sock.close()
                new_sock, (remote_host, remote_remport) = sock.accept()
                log('[FD:{}]Accept:{}:{}'.format(new_sock.fileno(), remote_host, remote_remport))
                descriptors.append(new_sock)
            else:
                data = send_recv(sock)
                if not data:
                    sock.close()
                    descriptors.remove(sock)


def send_recv(sock):
    remote_host, remote_remport = sock.getpeername()
    log('[FD:{}]Client:{}:{}'.format(sock.fileno(), remote_host, remote_remport))

    data = sock.recv(512)
    if data == '':
        log('[FD:{}]Recv:EOF'.format(sock.fileno()))
        return None

    log('[FD:{}]Recv:{}'.format(sock.fileno(), data))
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
