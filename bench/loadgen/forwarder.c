/*
 * The baseline for bench/compare.ts: the least work an MQTT 3.1.1 "broker" can do, so that what
 * the load generator measures against it is the generator's own (and the loopback's) overhead.
 * One thread, epoll. CONNECT → CONNACK; SUBSCRIBE → SUBACK granting what was asked; a PUBLISH is
 * acknowledged as its QoS asks (PUBACK, or PUBREC then PUBCOMP on PUBREL) and its bytes are copied
 * unchanged to every subscribed connection (no topic matching, no sessions, no retries). A
 * subscriber's PUBREC gets a PUBREL; its PUBACK and PUBCOMP are read and dropped.
 *
 *   forwarder   prints "port N" on stdout once it listens on 127.0.0.1 (port 0: any free port)
 */
#include "mqtt.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <arpa/inet.h>


typedef struct client {
  int fd, subscribed, want_out;
  buf_t in, out;
  struct client *next_sub, *prev_sub;
} client_t;

static client_t *subs; /* doubly linked list of subscribed clients */
static int ep;

static void watch(client_t *c) {
  int want = buf_pending(&c->out) > 0;
  if (want == c->want_out) return;
  c->want_out = want;
  struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void drop(client_t *c) {
  if (c->subscribed) {
    if (c->prev_sub) c->prev_sub->next_sub = c->next_sub;
    else subs = c->next_sub;
    if (c->next_sub) c->next_sub->prev_sub = c->prev_sub;
  }
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  buf_free(&c->in);
  buf_free(&c->out);
  free(c);
}

/* Returns -1 when the client must be dropped. */
static int on_packet(client_t *c, const uint8_t *p, size_t hdr, size_t len) {
  int type = p[0] >> 4;
  uint8_t a[8];
  switch (type) {
  case T_CONNECT:
    a[0] = T_CONNACK << 4;
    a[1] = 2;
    a[2] = 0;
    a[3] = 0;
    buf_put(&c->out, a, 4);
    return 0;
  case T_SUBSCRIBE: {
    if (len < hdr + 5) return -1;
    a[0] = T_SUBACK << 4;
    a[1] = 3;
    a[2] = p[hdr];
    a[3] = p[hdr + 1];
    a[4] = p[len - 1] & 3; /* the last (or only) filter's requested QoS */
    buf_put(&c->out, a, 5);
    if (!c->subscribed) {
      c->subscribed = 1;
      c->next_sub = subs;
      if (subs) subs->prev_sub = c;
      subs = c;
    }
    return 0;
  }
  case T_PUBLISH: {
    int qos = (p[0] >> 1) & 3;
    if (qos > 0) {
      size_t at = hdr + 2 + get_u16(p + hdr);
      if (at + 2 > len) return -1;
      buf_put(&c->out, a, enc_ack(a, qos == 1 ? T_PUBACK : T_PUBREC, get_u16(p + at)));
    }
    for (client_t *s = subs; s; s = s->next_sub) {
      buf_put(&s->out, p, len);
      if (s != c) watch(s);
    }
    return 0;
  }
  case T_PUBREC:
    buf_put(&c->out, a, enc_ack(a, T_PUBREL, get_u16(p + hdr)));
    return 0;
  case T_PUBREL:
    buf_put(&c->out, a, enc_ack(a, T_PUBCOMP, get_u16(p + hdr)));
    return 0;
  case T_PINGREQ:
    a[0] = T_PINGRESP << 4;
    a[1] = 0;
    buf_put(&c->out, a, 2);
    return 0;
  case T_DISCONNECT:
    return -1;
  default: /* PUBACK, PUBCOMP, UNSUBSCRIBE and the rest: nothing to do */
    return 0;
  }
}

/* Handles every complete packet in p[0..n); returns the bytes used, or -1 to drop the client. */
static long handle(client_t *c, const uint8_t *p, size_t n) {
  size_t at = 0;
  for (;;) {
    size_t hdr;
    long len = packet_len(p + at, n - at, &hdr);
    if (len < 0) return -1;
    if (len == 0 || (size_t)len > n - at) return (long)at;
    if (on_packet(c, p + at, hdr, (size_t)len) < 0) return -1;
    at += (size_t)len;
  }
}

/*
 * Reads into one shared buffer and handles packets from there; only a partial packet is kept per
 * client, and freed once complete, so an idle client holds no buffer at all.
 */
static int on_readable(client_t *c) {
  static uint8_t scratch[65536];
  ssize_t n = read(c->fd, scratch, sizeof scratch);
  if (n == 0) return -1;
  if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
  if (buf_pending(&c->in) == 0) {
    long used = handle(c, scratch, (size_t)n);
    if (used < 0) return -1;
    if (used < n) buf_put(&c->in, scratch + used, (size_t)(n - used));
    return 0;
  }
  buf_put(&c->in, scratch, (size_t)n);
  long used = handle(c, c->in.data + c->in.off, buf_pending(&c->in));
  if (used < 0) return -1;
  c->in.off += (size_t)used;
  if (buf_pending(&c->in) == 0) buf_free(&c->in);
  return 0;
}

/* Writes what it can; a small output buffer that is empty again is freed (idle clients hold none). */
static int flush_out(client_t *c) {
  if (buf_pending(&c->out) == 0) return 0;
  int r = buf_flush(&c->out, c->fd);
  if (r == 0 && c->out.cap <= 16384) buf_free(&c->out);
  return r;
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 0;
  signal(SIGPIPE, SIG_IGN);
  raise_nofile();
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0) die("bind");
  if (listen(lfd, 4096) != 0) die("listen");
  socklen_t alen = sizeof a;
  getsockname(lfd, (struct sockaddr *)&a, &alen);
  printf("port %d\n", ntohs(a.sin_port));
  fflush(stdout);
  ep = epoll_create1(0);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      client_t *c = evs[i].data.ptr;
      if (c == NULL) {
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          client_t *nc = calloc(1, sizeof *nc);
          nc->fd = fd;
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && on_readable(c) < 0) {
        drop(c);
        continue;
      }
      if (flush_out(c) < 0) {
        drop(c);
        continue;
      }
      watch(c);
    }
    /* Subscribers filled by this round's publishes flush now, not one epoll round later. */
    for (client_t *s = subs; s; s = s->next_sub) {
      if (flush_out(s) >= 0) watch(s);
    }
  }
}
