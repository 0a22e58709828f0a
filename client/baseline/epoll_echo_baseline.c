/* The baseline echod is measured against: a plain, single-threaded C epoll echo server with no
 * plugin seam, no logging and no options beyond the port. Level-triggered, nonblocking, one read
 * per wakeup, unsent bytes queued per connection, reading paused above a high-water mark -- the
 * same echo semantics echod's models keep, written the shortest honest way.
 *
 *   epoll-echo-baseline PORT [BIND_ADDRESS]   (prints "listening on ADDR:PORT" to stderr;
 *                                              PORT 0 picks a free port; SIGINT/SIGTERM stop)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

enum { kMaxEvents = 256, kChunk = 64 * 1024, kHighWater = 1024 * 1024 };

struct conn {
  char* queue; /* unsent bytes [sent, len) */
  size_t len, sent, cap;
  int eof;
  unsigned interest;
};

static struct conn** conns;
static size_t nconns;
static int epfd;

static void set_interest(int fd, struct conn* c) {
  unsigned want =
      (!c->eof && c->len - c->sent < kHighWater ? EPOLLIN : 0) | (c->len > c->sent ? EPOLLOUT : 0);
  if (want != c->interest) {
    struct epoll_event ev = {.events = want, .data.fd = fd};
    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
    c->interest = want;
  }
}

static void close_conn(int fd) {
  free(conns[fd]->queue);
  free(conns[fd]);
  conns[fd] = NULL;
  close(fd);
}

/* Sends queued bytes; returns -1 if the peer is gone. */
static int flush_queue(int fd, struct conn* c) {
  while (c->sent < c->len) {
    ssize_t n = send(fd, c->queue + c->sent, c->len - c->sent, MSG_NOSIGNAL);
    if (n < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    c->sent += (size_t)n;
  }
  c->len = c->sent = 0;
  return 0;
}

static int enqueue(struct conn* c, const char* data, size_t size) {
  if (c->len + size > c->cap) {
    if (c->sent > 0) { /* compact first */
      memmove(c->queue, c->queue + c->sent, c->len - c->sent);
      c->len -= c->sent;
      c->sent = 0;
    }
    if (c->len + size > c->cap) {
      size_t cap = (c->len + size) * 2;
      char* grown = realloc(c->queue, cap);
      if (grown == NULL) return -1;
      c->queue = grown;
      c->cap = cap;
    }
  }
  memcpy(c->queue + c->len, data, size);
  c->len += size;
  return 0;
}

static void on_ready(int fd, unsigned events) {
  static char chunk[kChunk];
  struct conn* c = conns[fd];
  if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && flush_queue(fd, c) < 0) {
    close_conn(fd);
    return;
  }
  if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !c->eof && c->len - c->sent < kHighWater) {
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n == 0) {
      c->eof = 1;
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      close_conn(fd);
      return;
    } else if (n > 0) {
      ssize_t sent = 0;
      if (c->len == c->sent) { /* nothing queued: send directly */
        sent = send(fd, chunk, (size_t)n, MSG_NOSIGNAL);
        if (sent < 0 && errno != EAGAIN && errno != EINTR) {
          close_conn(fd);
          return;
        }
        if (sent < 0) sent = 0;
      }
      if (sent < n && enqueue(c, chunk + sent, (size_t)(n - sent)) < 0) {
        close_conn(fd);
        return;
      }
    }
  }
  if (c->eof && c->len == c->sent) {
    close_conn(fd);
    return;
  }
  set_interest(fd, c);
}

static void accept_all(int listener) {
  for (;;) {
    int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return; /* EAGAIN, or EMFILE: the baseline has no shedding policy */
    if ((size_t)fd >= nconns) {
      size_t n = (size_t)fd * 2 + 1;
      conns = realloc(conns, n * sizeof *conns);
      memset(conns + nconns, 0, (n - nconns) * sizeof *conns);
      nconns = n;
    }
    conns[fd] = calloc(1, sizeof **conns);
    conns[fd]->interest = EPOLLIN;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
  }
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PORT [BIND_ADDRESS]\n", argv[0]);
    return 2;
  }
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
  inet_pton(AF_INET, argc > 2 ? argv[2] : "127.0.0.1", &addr.sin_addr);
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int on = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (bind(listener, (struct sockaddr*)&addr, sizeof addr) < 0 || listen(listener, SOMAXCONN) < 0) {
    perror("bind/listen");
    return 1;
  }
  socklen_t len = sizeof addr;
  getsockname(listener, (struct sockaddr*)&addr, &len);
  char host[INET_ADDRSTRLEN];
  fprintf(stderr, "listening on %s:%d\n", inet_ntop(AF_INET, &addr.sin_addr, host, sizeof host),
          ntohs(addr.sin_port));

  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop, NULL);
  signal(SIGPIPE, SIG_IGN);
  int sigfd = signalfd(-1, &stop, SFD_CLOEXEC);

  epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
  epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev);
  ev.data.fd = sigfd;
  epoll_ctl(epfd, EPOLL_CTL_ADD, sigfd, &ev);

  struct epoll_event events[kMaxEvents];
  for (;;) {
    int n = epoll_wait(epfd, events, kMaxEvents, -1);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == sigfd) {
        for (size_t c = 0; c < nconns; ++c)
          if (conns[c]) close_conn((int)c);
        return 0;
      }
      if (fd == listener)
        accept_all(listener);
      else if (conns[fd])
        on_ready(fd, events[i].events);
    }
  }
}
