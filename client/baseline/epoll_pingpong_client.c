/* The least a ping-pong load generator can cost: single-threaded, level-triggered epoll, each
 * connection sends SIZE bytes, waits until SIZE bytes came back, sends again. It verifies
 * nothing, keeps no histogram and takes one timestamp per second -- the floor echo-bench's
 * client CPU per message is compared against (scripts/client_cost.sh).
 *
 *   epoll-pingpong-client PORT CONNECTIONS SECONDS [SIZE [ADDRESS]]
 *
 * Prints "messages N seconds S cpu_user U cpu_system Y cpu_per_message_us C" on stdout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kMaxEvents = 512, kMaxSize = 65536 };

static double now_s(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s PORT CONNECTIONS SECONDS [SIZE [ADDRESS]]\n", argv[0]);
    return 2;
  }
  const int connections = atoi(argv[2]);
  const double seconds = atof(argv[3]);
  const size_t size = argc > 4 ? (size_t)atol(argv[4]) : 64;
  if (connections < 1 || seconds <= 0 || size < 1 || size > kMaxSize) {
    fprintf(stderr, "bad CONNECTIONS, SECONDS or SIZE\n");
    return 2;
  }
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
  inet_pton(AF_INET, argc > 5 ? argv[5] : "127.0.0.1", &addr.sin_addr);
  static char message[kMaxSize], scratch[kMaxSize];
  size_t* pending = calloc((size_t)connections, sizeof *pending); /* bytes still to come back */
  int* fds = calloc((size_t)connections, sizeof *fds);
  const int epfd = epoll_create1(EPOLL_CLOEXEC);
  const int one = 1;
  for (int i = 0; i < connections; ++i) { /* blocking connects, then nonblocking I/O */
    fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fds[i], (struct sockaddr*)&addr, sizeof addr) != 0) {
      perror("connect");
      return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fds[i], &ev);
  }
  const double wall_start = now_s(CLOCK_MONOTONIC);
  const double cpu_start = now_s(CLOCK_PROCESS_CPUTIME_ID);
  struct rusage usage_start;
  getrusage(RUSAGE_SELF, &usage_start);
  for (int i = 0; i < connections; ++i) {
    if (send(fds[i], message, size, MSG_NOSIGNAL) != (ssize_t)size) return 1;
    pending[i] = size;
  }
  unsigned long long messages = 0;
  struct epoll_event events[kMaxEvents];
  double wall_end = wall_start;
  unsigned loops = 0;
  for (;;) {
    const int ready = epoll_wait(epfd, events, kMaxEvents, 100);
    for (int e = 0; e < ready; ++e) {
      const uint32_t i = events[e].data.u32;
      const ssize_t got = recv(fds[i], scratch, sizeof scratch, 0);
      if (got <= 0) {
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        fprintf(stderr, "connection %u closed\n", i);
        return 1;
      }
      pending[i] -= (size_t)got < pending[i] ? (size_t)got : pending[i];
      if (pending[i] == 0) {
        ++messages;
        if (send(fds[i], message, size, MSG_NOSIGNAL) != (ssize_t)size) return 1;
        pending[i] = size;
      }
    }
    if (++loops % 16 == 0 || ready <= 0) { /* the clock, rarely */
      wall_end = now_s(CLOCK_MONOTONIC);
      if (wall_end - wall_start >= seconds) break;
    }
  }
  const double cpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - cpu_start;
  struct rusage usage_end;
  getrusage(RUSAGE_SELF, &usage_end);
  const double user = (double)(usage_end.ru_utime.tv_sec - usage_start.ru_utime.tv_sec) +
                      (double)(usage_end.ru_utime.tv_usec - usage_start.ru_utime.tv_usec) / 1e6;
  const double system = (double)(usage_end.ru_stime.tv_sec - usage_start.ru_stime.tv_sec) +
                        (double)(usage_end.ru_stime.tv_usec - usage_start.ru_stime.tv_usec) / 1e6;
  printf("messages %llu seconds %.3f cpu_user %.3f cpu_system %.3f cpu_per_message_us %.3f\n",
         messages, wall_end - wall_start, user, system,
         messages ? cpu / (double)messages * 1e6 : 0);
  return 0;
}
