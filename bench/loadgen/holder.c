/*
 * Holds idle MQTT 3.1.1 connections for bench/idle_scale.ts: one process of several, each under
 * the open-file limit, each from its own source address (127.0.0.x) so that no one address runs
 * out of local ports. Commands on stdin, one per line, each answered by one line on stdout:
 *
 *   open N [S] opens connections (bursts of 250 concurrent handshakes: non-blocking connect,
 *            CONNECT with keepalive --keepalive, wait for CONNACK 0) until N are held, or S
 *            seconds have passed; answers "held H failed F (why)"
 *   check    counts the held connections the broker has closed or reset (readable or hung up: an
 *            idle broker sends nothing); answers "alive A closed C"
 *   send B   each held connection sends one QoS 0 PUBLISH of B payload bytes (to "burst", which
 *            nobody need subscribe to), written whole before the next connection's; answers
 *            "sent N" (a burst that grows the broker's reads of every connection)
 *   close    closes every connection (RST, no TIME_WAIT); answers "closed"
 *
 * End of stdin closes everything and exits.
 *
 * Usage: holder --port P [--host 127.0.0.1] [--source 127.0.0.2] [--id name] [--keepalive 600]
 */
#include "mqtt.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static int port;
static const char *host = "127.0.0.1", *source = NULL, *name = "h";
static int keepalive = 600;

static int *fds;
static int held, cap;
/* Why handshakes failed: connect error, closed before CONNACK, CONNACK refused, no answer in 30 s. */
static long f_connect, f_closed, f_refused, f_timeout;

static void close_hard(int fd) {
  struct linger l = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

typedef struct {
  int fd, state; /* 0 connecting, 1 CONNECT sent, 2 done, 3 failed */
  uint8_t got[4];
  int ngot;
} hs_t;

/* One burst of `count` concurrent handshakes; the fds that completed are appended to fds[]. */
static int burst(int count, int serial) {
  hs_t *hs = calloc((size_t)count, sizeof *hs);
  int ep = epoll_create1(0), pending = 0, done = 0;
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, host, &to.sin_addr);
  for (int i = 0; i < count; i++) {
    hs_t *h = &hs[i];
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (h->fd < 0) {
      h->state = 3;
      f_connect++;
      continue;
    }
    int one = 1;
    setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (source) {
      /* The local port is chosen at connect() for the whole 4-tuple, not at bind(). */
      setsockopt(h->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      struct sockaddr_in from = {.sin_family = AF_INET};
      inet_pton(AF_INET, source, &from.sin_addr);
      if (bind(h->fd, (struct sockaddr *)&from, sizeof from) != 0) {
        close(h->fd);
        h->fd = -1;
        h->state = 3;
        f_connect++;
        continue;
      }
    }
    if (connect(h->fd, (struct sockaddr *)&to, sizeof to) != 0 && errno != EINPROGRESS) {
      close(h->fd);
      h->fd = -1;
      h->state = 3;
      f_connect++;
      continue;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, h->fd, &ev);
    pending++;
  }
  uint64_t deadline = now_ns() + 30000000000ull;
  struct epoll_event evs[256];
  char id[96];
  uint8_t p[160];
  while (pending > 0 && now_ns() < deadline) {
    int n = epoll_wait(ep, evs, 256, 100);
    for (int k = 0; k < n; k++) {
      hs_t *h = &hs[evs[k].data.u32];
      if (h->state == 0) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        snprintf(id, sizeof id, "%s-%d-%u", name, serial, evs[k].data.u32);
        size_t m = enc_connect(p, id, (uint16_t)keepalive, 4);
        if (err != 0 || write(h->fd, p, m) != (ssize_t)m) {
          h->state = 3;
          f_connect++;
        } else {
          h->state = 1;
          struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[k].data.u32};
          epoll_ctl(ep, EPOLL_CTL_MOD, h->fd, &ev);
          continue;
        }
      } else if (h->state == 1) {
        ssize_t r = read(h->fd, h->got + h->ngot, (size_t)(4 - h->ngot));
        if (r < 0 && errno == EAGAIN) continue;
        if (r <= 0) {
          h->state = 3;
          f_closed++;
        } else if ((h->ngot += (int)r) == 4) {
          h->state = h->got[0] == (T_CONNACK << 4) && h->got[3] == 0 ? 2 : 3;
          if (h->state == 3) {
            f_refused++;
            fprintf(stderr, "holder: CONNACK %02x %02x %02x %02x\n", h->got[0], h->got[1],
                    h->got[2], h->got[3]);
          }
        } else {
          continue;
        }
      }
      pending--;
      epoll_ctl(ep, EPOLL_CTL_DEL, h->fd, NULL);
    }
  }
  close(ep);
  for (int i = 0; i < count; i++) {
    if (hs[i].state == 2) {
      fds[held++] = hs[i].fd;
      done++;
    } else {
      if (hs[i].state < 2) f_timeout++;
      if (hs[i].fd >= 0) close_hard(hs[i].fd);
    }
  }
  free(hs);
  return done;
}

/* Writes all of p[0..n) to the non-blocking fd; returns 0, or -1 once the connection failed. */
static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EAGAIN) {
      struct pollfd pf = {.fd = fd, .events = POLLOUT};
      poll(&pf, 1, 1000);
      continue;
    }
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The "send" command: one PUBLISH of `bytes` payload bytes from every held connection. */
static int send_all(size_t bytes) {
  uint8_t *payload = calloc(bytes ? bytes : 1, 1);
  uint8_t *p = malloc(bytes + 32);
  size_t m = enc_publish(p, "burst", 5, 0, 0, payload, bytes, 4);
  int sent = 0;
  for (int i = 0; i < held; i++) sent += write_all(fds[i], p, m) == 0;
  free(p);
  free(payload);
  return sent;
}

static void close_all(void) {
  for (int i = 0; i < held; i++) close_hard(fds[i]);
  held = 0;
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--host")) host = argv[i + 1];
    else if (!strcmp(argv[i], "--source")) source = argv[i + 1];
    else if (!strcmp(argv[i], "--id")) name = argv[i + 1];
    else if (!strcmp(argv[i], "--keepalive")) keepalive = atoi(argv[i + 1]);
  }
  if (port <= 0) {
    fprintf(stderr, "usage: holder --port P [--source 127.0.0.x] [--id NAME] [--keepalive S]\n");
    return 2;
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  cap = (int)rl.rlim_cur;
  fds = calloc((size_t)cap, sizeof *fds);
  setvbuf(stdout, NULL, _IOLBF, 0);
  char line[128];
  int serial = 0;
  while (fgets(line, sizeof line, stdin)) {
    int n, secs = 0;
    if (sscanf(line, "open %d %d", &n, &secs) >= 1) {
      uint64_t stop = secs > 0 ? now_ns() + (uint64_t)secs * 1000000000ull : UINT64_MAX;
      if (n > cap - 64) n = cap - 64; /* room for stdio and the epoll fds */
      int failed = 0;
      while (held < n && now_ns() < stop) {
        int k = n - held < 250 ? n - held : 250;
        int ok = burst(k, serial++);
        failed += k - ok;
        if (ok == 0) break; /* nothing gets through: report rather than spin */
      }
      printf("held %d failed %d (connect %ld, closed %ld, refused %ld, timeout %ld)\n", held, failed,
             f_connect, f_closed, f_refused, f_timeout);
    } else if (!strncmp(line, "check", 5)) {
      int closed = 0;
      struct pollfd *pf = calloc((size_t)(held ? held : 1), sizeof *pf);
      for (int i = 0; i < held; i++) pf[i] = (struct pollfd){.fd = fds[i], .events = POLLIN | POLLRDHUP};
      poll(pf, (nfds_t)held, 0);
      for (int i = 0; i < held; i++) closed += pf[i].revents != 0;
      free(pf);
      printf("alive %d closed %d\n", held - closed, closed);
    } else if (sscanf(line, "send %d", &n) == 1) {
      printf("sent %d\n", send_all((size_t)n));
    } else if (!strncmp(line, "close", 5)) {
      close_all();
      printf("closed\n");
    }
  }
  close_all();
  return 0;
}
