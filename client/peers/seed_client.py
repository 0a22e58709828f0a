"""The seed article's benchmark client (Pythonでネットワークプログラミング, 2016), in Python 3.

WORKER_COUNT threads each do ACTION_COUNT times: connect, SEND_RECV_COUNT exchanges, close; the
result is the mean connect time and the mean exchange time per action (the exchange time runs
from after connect() to after close()), averaged over the workers, and their sum.

--loop as-written keeps the article's `range(SEND_RECV_COUNT, 1)`, which is empty for any
SEND_RECV_COUNT >= 1: its "exchange" time measured only close(). --loop fixed runs
`range(SEND_RECV_COUNT)` (each message sent and read back, compared).

Changes from the article beyond the loop choice, and only these: the counts, host and port come
from the command line; the message is built with str.format().encode() (bytes have no format()
in Python 3); a failed connect or exchange is counted (and the action's time still added, as the
article's threads would have died on it instead) rather than printing "error" or a traceback;
the per-worker progress print is gone; the result can also be written as JSON (--json), with
the client's own CPU time (all its threads share one interpreter lock).
"""
import argparse
import json
import resource
import socket
import sys
import threading
import time

WORKER_COUNT = 150
ACTION_COUNT = 100
SEND_RECV_COUNT = 50
HOST = ''
PORT = 7777
LOOP_AS_WRITTEN = True


class WorkerInfo(object):

    def __init__(self):
        self.thread_name = ''
        self.is_active = True
        self.connect_speed = 0.0
        self.send_recv_speed = 0.0
        self.action_count = 0
        self.errors = 0
        self.exchanges = 0

    def create_send_msg(self, send_recv_count):
        return '{}:{}:{}'.format(self.thread_name, self.action_count, send_recv_count).encode()

worker_info_list = []


def create_client_socket(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect((HOST, port))
    return sock


def send_recv_counts():
    return range(SEND_RECV_COUNT, 1) if LOOP_AS_WRITTEN else range(SEND_RECV_COUNT)


def worker_send_recv(worker_info):
    # connect
    connect_start_time = time.time()
    try:
        sock = create_client_socket(PORT)
    except OSError:
        worker_info.errors += 1
        worker_info.connect_speed += time.time() - connect_start_time
        return
    worker_info.connect_speed += time.time() - connect_start_time

    # send and recv
    send_recv_start_time = time.time()
    try:
        for cnt in send_recv_counts():
            send_msg = worker_info.create_send_msg(cnt)
            sock.send(send_msg)
            recv_msg = sock.recv(512)
            worker_info.exchanges += 1
            if recv_msg != send_msg:
                worker_info.errors += 1
    except OSError:
        worker_info.errors += 1
    sock.close()
    worker_info.send_recv_speed += time.time() - send_recv_start_time


def worker(worker_idx):
    worker_info = worker_info_list[worker_idx]
    worker_info.thread_name = threading.current_thread().name

    for cnt in range(ACTION_COUNT):
        worker_info.action_count = cnt
        worker_send_recv(worker_info)

    # Average calculation
    worker_info.is_active = False
    worker_info.connect_speed /= ACTION_COUNT
    worker_info.send_recv_speed /= ACTION_COUNT


def command_line():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=PORT)
    p.add_argument('--workers', type=int, default=WORKER_COUNT, help='WORKER_COUNT')
    p.add_argument('--actions', type=int, default=ACTION_COUNT, help='ACTION_COUNT')
    p.add_argument('--exchanges', type=int, default=SEND_RECV_COUNT, help='SEND_RECV_COUNT')
    p.add_argument('--loop', choices=['as-written', 'fixed'], default='as-written')
    p.add_argument('--json', help='also write the result as JSON to this file')
    args = p.parse_args()
    for key in ('workers', 'actions', 'exchanges'):
        if getattr(args, key) < (0 if key == 'exchanges' else 1):
            p.error('--{}: {} is out of range'.format(key, getattr(args, key)))
    return args


if __name__ == '__main__':
    args = command_line()
    WORKER_COUNT, ACTION_COUNT, SEND_RECV_COUNT = args.workers, args.actions, args.exchanges
    HOST, PORT, LOOP_AS_WRITTEN = args.host, args.port, args.loop == 'as-written'

    # Test Start
    wall_start = time.time()
    thread_list = []
    for idx in range(WORKER_COUNT):
        worker_info_list.append(WorkerInfo())
        thread = threading.Thread(target=worker, name='thread:{}'.format(idx), args=(idx,))
        thread.start()
        thread_list.append(thread)

    for thread in thread_list:
        thread.join()
    wall_seconds = time.time() - wall_start

    # All Thread Average calculation
    connect_speed = 0
    send_recv_speed = 0
    for idx in range(WORKER_COUNT):
        _worker_info = worker_info_list[idx]
        connect_speed += _worker_info.connect_speed
        send_recv_speed += _worker_info.send_recv_speed

    raw_connect_s, raw_exchange_s = connect_speed / WORKER_COUNT, send_recv_speed / WORKER_COUNT

    # Result
    connect_speed = round((connect_speed / WORKER_COUNT), 5)
    send_recv_speed = round((send_recv_speed / WORKER_COUNT), 5)
    total_speed = connect_speed + send_recv_speed
    print('connect_speed: {}'.format(connect_speed))
    print('send_recv_speed: {}'.format(send_recv_speed))
    print('total_speed: {}'.format(total_speed))

    client_cpu = resource.getrusage(resource.RUSAGE_SELF)
    errors = sum(w.errors for w in worker_info_list)
    exchanges = sum(w.exchanges for w in worker_info_list)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({
                'tool': 'seed-client', 'loop': args.loop, 'status': 'ok' if errors == 0 else 'errors',
                'parameters': {'host': HOST, 'port': PORT, 'workers': WORKER_COUNT,
                               'actions': ACTION_COUNT, 'exchanges': SEND_RECV_COUNT},
                'connect_s': connect_speed, 'exchange_s': send_recv_speed,
                'total_s': round(total_speed, 5), 'connect_mean_s': raw_connect_s,
                'exchange_mean_s': raw_exchange_s, 'exchanges_done': exchanges, 'errors': errors,
                'actions_done': WORKER_COUNT * ACTION_COUNT, 'wall_seconds': wall_seconds,
                'client_cpu_s': client_cpu.ru_utime + client_cpu.ru_stime,
            }, f, indent=1)
            f.write('\n')
    sys.exit(0 if errors == 0 else 1)
