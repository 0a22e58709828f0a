"""The seed article's prefork server (Pythonでネットワークプログラミング, 2016), ported to Python 3.

Changes from the article, and only these: address and port come from the command line
(`prefork_server.py HOST PORT`, port 0 = any); the listening line goes to stderr once the 10
children are forked, so a sweep can find the port (and never stops it half-started); log() (a
no-op) replaces the per-event print() calls ("logging off"); SIGTERM raises KeyboardInterrupt in
the parent, whose handler now also ends and reaps the children it forked (the article's left
them running, holding the port), then exits 0. Children take SIGTERM's default action. The lock
file is created in the current directory, as in the article.
"""
import fcntl
import os
import signal
import sys
import socket

"""
マルチプロセス・シングルスレッド・マルチクライアント
"""


global_lock_fd = None


def log(*args):
    pass


def announce(sock):
    """The line a sweep waits for, printed once serving starts (inside the stop handler's try)."""
    print('listening on {}:{} model=py-prefork'.format(*sock.getsockname()), file=sys.stderr,
          flush=True)


def create_server_socket(host, port):
    server_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server_sock.bind((host, port))
    server_sock.listen(256)
    log('Server Run Port:{}'.format(port))
    return server_sock


def accept_loop(server_sock):
    pid = os.getpid()
    while True:
        log('[PID:{}]Get Start'.format(pid))
        fcntl.lockf(global_lock_fd.fileno(), fcntl.LOCK_EX)
        log('[PID:{}]Get Lock'.format(pid))
        new_sock, (remote_host, remote_remport) = server_sock.accept()
        log('[PID:{}]Accept:{}:{}'.format(pid, remote_host, remote_remport))
        fcntl.lockf(global_lock_fd.fileno(), fcntl.LOCK_UN)
        log('[PID:{}]Unlock'.format(pid))
        send_recv_loop(new_sock)
        new_sock.close()


def send_recv_loop(sock):
    while True:
        pid = os.getpid()
        data = sock.recv(512)
        remote_host, remote_remport = sock.getpeername()
        log('[PID:{}]Client:{}:{}'.format(pid, remote_host, remote_remport))

        if data == b'':
            log('[PID:{}]Recv:EOF'.format(pid))
            break

        log('[PID:{}]Recv:{}'.format(pid, data))
        sock.send(data)


if __name__ == '__main__':
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    server_sock = create_server_socket(sys.argv[1], int(sys.argv[2]))
    global_lock_fd = open('./mprocess.lock', 'w')
    os.unlink('./mprocess.lock')

    log('Ready For Accept')
    children = []
    for i in range(10):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            accept_loop(server_sock)
            sys.exit()
        children.append(pid)

    try:
        announce(server_sock)
        os.wait()
    except KeyboardInterrupt:
        server_sock.close()
        global_lock_fd.close()
        for pid in children:
            os.kill(pid, signal.SIGTERM)
        for pid in children:
            os.waitpid(pid, 0)
