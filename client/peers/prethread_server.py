"""The seed article's prethread server (Pythonでネットワークプログラミング, 2016), ported to Python 3.

Changes from the article, and only these: address and port come from the command line
(`prethread_server.py HOST PORT`, port 0 = any); the listening line goes to stderr once all 40
threads run, so a sweep can find the port (and never stops it half-started); log() (a no-op)
replaces the per-event print() calls ("logging off"); the threads are daemon threads and SIGTERM
raises KeyboardInterrupt in the main thread's join, so the process can stop: it closes the
listening socket and exits 0 (the article's never stopped).
"""
import signal
import sys
import time
import threading
import socket

"""
シングルプロセス・マルチスレッド・マルチクライアント
"""


LOCK = threading.Lock()


def log(*args):
    pass


def announce(sock):
    """The line a sweep waits for, printed once serving starts (inside the stop handler's try)."""
    print('listening on {}:{} model=py-prethread'.format(*sock.getsockname()), file=sys.stderr,
          flush=True)


def create_server_socket(host, port):
    server_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server_sock.bind((host, port))
    server_sock.listen(256)
    log('Server Run Port:{}'.format(port))
    return server_sock


def accept_thread(server_sock):
    ident = threading.current_thread().ident
    while True:
        log('<{}>Start'.format(ident))
        LOCK.acquire()
        log('<{}>Get Lock'.format(ident))
        new_sock, (remote_host, remote_remport) = server_sock.accept()
        log('<{}>Accept:{}:{}'.format(ident, remote_host, remote_remport))
        LOCK.release()
        log('<{}>Release Lock'.format(ident))
        send_recv_loop(ident, new_sock)
        new_sock.close()


def send_recv_loop(ident, sock):
    while True:
        data = sock.recv(512)
        remote_host, remote_remport = sock.getpeername()
        log('<{}>Client:{}:{}'.format(ident, remote_host, remote_remport))

        if data == b'':
            log('<{}>Recv:EOF'.format(ident))
            break

        log('<{}>Recv:{}'.format(ident, data))
        sock.send(data)
    sock.close()


if __name__ == '__main__':
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    server_sock = create_server_socket(sys.argv[1], int(sys.argv[2]))

    log('Ready For Accept')

    thread_list = []
    for _ in range(40):
        thread = threading.Thread(target=accept_thread, args=(server_sock,), daemon=True)
        thread.start()
        thread_list.append(thread)

    try:
        announce(server_sock)
        for thread in thread_list:
            thread.join()
    except KeyboardInterrupt:
        pass

    server_sock.close()
