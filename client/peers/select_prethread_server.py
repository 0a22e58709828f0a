"""The seed article's select + prethread server (Pythonでネットワークプログラミング, 2016), in Python 3.

Changes from the article, and only these: `from queue import Queue` (Python 3's name); address
and port come from the command line (`select_prethread_server.py HOST PORT`, port 0 = any); the
listening line goes to stderr once all 40 sender threads run, so a sweep can find the port (and
never stops it half-started); log() (a no-op) replaces the per-event print() calls ("logging
off"); SIGTERM raises KeyboardInterrupt, which the article's own handler turns into a clean stop
(exit 0). The article left `max_descriptor = 20` active here (it closes the listening socket
once 20 clients are connected, so the next accept() fails); it is commented out, as it is in the
article's select and epoll servers.

As in the article, a message longer than one recv(512) is handed to the sender threads in
pieces, which two threads may send in either order: bytes can come back reordered.
"""
import signal
import socket
import sys
import threading

from queue import Queue
import select

"""
シングルプロセス・マルチスレッド・マルチクライアント(select)
"""


def log(*args):
    pass


class SendQueue(Queue):
    SENTINEL = object()

    def __iter__(self):
        while True:
            item = self.get()
            try:
                if item is self.SENTINEL:
                    yield None, None
                yield item
            finally:
                self.task_done()

    def close(self):
        self.put(self.SENTINEL)


send_queue = SendQueue()


def announce(sock):
    """The line a sweep waits for, printed once serving starts (inside the stop handler's try)."""
    print('listening on {}:{} model=py-select-prethread'.format(*sock.getsockname()), file=sys.stderr,
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
                new_socket, (remote_host, remote_remport) = sock.accept()
                log('[FD:{}]Accept:{}:{}'.format(new_socket.fileno(), remote_host, remote_remport))
                descriptors.append(new_socket)
            else:
                remote_host, remote_remport = sock.getpeername()
                log('[FD:{}]Client:{}:{}'.format(sock.fileno(), remote_host, remote_remport))
                data = sock.recv(512)
                if data == b'':
                    log('[FD:{}]Recv:EOF'.format(sock.fileno()))
                    sock.close()
                    descriptors.remove(sock)
                else:
                    send_queue.put((sock, data))


def send_thread():
    current_thread = threading.current_thread()
    for sock, data in send_queue:
        if not sock:
            break
        log('[FD:{}]<{}>Recv:{}'.format(sock.fileno(), current_thread.ident, data))
        sock.send(data)


if __name__ == '__main__':
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    server_sock = create_server_socket(sys.argv[1], int(sys.argv[2]))

    thread_count = 40
    thread_list = []
    for _ in range(thread_count):
        thread = threading.Thread(target=send_thread)
        thread.start()
        thread_list.append(thread)

    try:
        announce(server_sock)
        accept_loop(server_sock)
    except KeyboardInterrupt:
        for _ in range(thread_count):
            send_queue.close()
        for thread in thread_list:
            thread.join()

        send_queue.join()
        server_sock.close()
