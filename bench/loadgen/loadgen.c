/*
 * MQTT 3.1.1 (and 5.0, --level 5) load generator for bench/compare.ts: one thread, raw non-blocking sockets, epoll,
 * packets encoded by hand (mqtt.h). Prints one JSON object on stdout. Loopback only.
 *
 *   loadgen pubsub  --port P [--pubs 8 --subs 1 --qos 0 --size 64]
 *                   [--level 4]     MQTT protocol level of every connection: 4 (3.1.1) or 5 (5.0)
 *                   [--sub-level L] the subscribers' level when it differs from --level (mixed
 *                                   levels: 5.0 publishers to 3.1.1 subscribers, or the reverse)
 *                   [--rate R]      messages/s per publisher, open loop, sent at scheduled times;
 *                                   latency is measured from the scheduled time (no coordinated
 *                                   omission). 0 (default): closed loop, as fast as the broker goes
 *                   [--window 1000] closed loop: a publisher is at most this many messages ahead of
 *                                   what its subscribers have received
 *                   [--inflight 20] closed loop, QoS 1/2: unacknowledged messages per publisher
 *                   [--bp-cap B]    open loop: bytes a publisher may hold unsent in user space
 *                                   (and its kernel send buffer's size); messages due beyond that
 *                                   are counted as refused, not sent
 *                   [--messages N]  per publisher, then stop (no time window; for smoke tests)
 *                   [--dump FILE]   writes every latency sample of the measured phase to FILE, one
 *                                   line each: scheduled (or send) time in CLOCK_MONOTONIC ns, the
 *                                   latency in ns, and (open loop) how late the first publisher's
 *                                   message was sent, in ns (to lay slow messages beside a trace)
 *   loadgen connect --port P [--burst 1000]  bursts of concurrent CONNECT→CONNACK handshakes
 *   loadgen idle    --port P --pid PID [--n1 2000 --n2 8000 --settle 2]  RSS slope per connection
 *                   [--linger S]    RSS read again S seconds after all closed (rssLingerKiB): V8
 *                                   gives memory back only once its memory reducer has run
 *
 * Common: [--warmup S] [--seconds S] [--pid BROKER_PID] (broker CPU and RSS from /proc).
 * pubsub: [--also-pid PID] (repeatable, up to 16): more processes of the broker (cluster nodes)
 * whose CPU counts as the broker's; [--sub-port P]: subscribers connect to this port (another
 * node of a cluster) and publishers to --port, so that every message crosses between nodes.
 * The payload carries the send (or scheduled) time from CLOCK_MONOTONIC, the publisher's index and
 * a sequence number; subscribers count distinct messages and duplicates from them.
 */
#include "mqtt.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <arpa/inet.h>


#define MAX_PUBS 256
#define MIN_PAYLOAD 20

typedef struct {
  int port, pid, pubs, subs, qos, size, window, inflight, burst, n1, n2, level, sub_level;
  double warmup, seconds, rate, settle, linger;
  long bp_cap, messages;
} opts_t;

static opts_t o = {
  .pubs = 8, .subs = 1, .qos = 0, .size = 64, .window = 1000, .inflight = 20, .burst = 1000,
  .n1 = 2000, .n2 = 8000, .warmup = 2, .seconds = 5, .settle = 2, .level = 4,
};

/* More processes of the broker (--also-pid): a cluster's nodes. */
static int also_pids[16];
static int n_also_pids = 0;

/* CPU seconds of the broker: --pid and every --also-pid. */
static double broker_cpu_seconds(void) {
  double total = proc_cpu_seconds(o.pid);
  for (int i = 0; i < n_also_pids; i++) {
    double c = proc_cpu_seconds(also_pids[i]);
    if (c > 0) total += c;
  }
  return total;
}

enum { ROLE_PUB = 1, ROLE_SUB = 2, ROLE_TIMER = 3 };

typedef struct conn {
  int fd, role, idx, want_out;
  buf_t in, out;
  /* publisher */
  uint64_t next_seq, sent, completed, refused, max_delay, delay_samples;
  int inflight;
  uint16_t next_pid;
  /* subscriber: next expected sequence number per publisher */
  uint64_t *expect;
} conn_t;

/* ---- samples (latency, ns) ---------------------------------------------------------------- */

typedef struct {
  uint64_t *v;
  size_t n, cap;
} samples_t;

static void sample_add(samples_t *s, uint64_t x) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 65536;
    s->v = realloc(s->v, s->cap * sizeof *s->v);
    if (!s->v) die("realloc");
  }
  s->v[s->n++] = x;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Percentile q of the sorted samples, in microseconds (-1 when there are none). */
static double pct_us(const samples_t *s, double q) {
  if (s->n == 0) return -1;
  size_t i = (size_t)(q * (double)(s->n - 1) + 0.5);
  return (double)s->v[i] / 1000.0;
}

/* ---- sockets ------------------------------------------------------------------------------ */

/* Subscribers connect to --sub-port when given (a cluster's other node), else to --port. */
static int sub_port = 0;

static struct sockaddr_in target_port(int port) {
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static struct sockaddr_in target(void) { return target_port(o.port); }

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/*
 * Acknowledges received data at once instead of after the delayed-ACK timer. Linux clears the flag
 * again by itself, so it is set after every read. Without it a broker that leaves Nagle's algorithm
 * on (Mosquitto's default) waits for the generator's delayed ACK before sending its next segment;
 * on loopback, whose MSS is 64 KB, that is up to 40 ms per segment: an artefact of the receiver,
 * not a cost of the broker.
 */
static void quick_ack(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

/* Closes without TIME_WAIT (RST), so connection bursts do not run out of local ports. */
static void close_hard(int fd) {
  struct linger l = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

static void read_exact(int fd, uint8_t *p, size_t n, const char *what) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, p + got, n - got);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      fprintf(stderr, "loadgen: connection closed while waiting for %s\n", what);
      exit(2);
    }
    got += (size_t)r;
  }
}

static void write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) die("write");
    p += w;
    n -= (size_t)w;
  }
}

/* Blocking CONNECT (and SUBSCRIBE when filter is set), then switched to non-blocking. */
static int open_client(const char *client_id, const char *filter, int qos) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  struct sockaddr_in a = target_port(filter && sub_port > 0 ? sub_port : o.port);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) die("connect");
  set_nodelay(fd);
  uint8_t p[512];
  write_all(fd, p, enc_connect(p, client_id, 300, filter ? o.sub_level : o.level));
  /* A level-5 CONNACK and SUBACK carry properties: read the whole packet (under 128 bytes). */
  read_exact(fd, p, 2, "CONNACK");
  if (p[0] != (T_CONNACK << 4) || p[1] < 2 || p[1] > 127) {
    fprintf(stderr, "loadgen: not a CONNACK\n");
    exit(2);
  }
  read_exact(fd, p + 2, p[1], "CONNACK");
  if (p[3] != 0) {
    fprintf(stderr, "loadgen: CONNECT refused (return code %d)\n", p[3]);
    exit(2);
  }
  if (filter) {
    write_all(fd, p, enc_subscribe(p, 1, filter, qos, o.sub_level));
    read_exact(fd, p, 2, "SUBACK");
    if ((p[0] >> 4) != T_SUBACK || p[1] < 3 || p[1] > 127) {
      fprintf(stderr, "loadgen: not a SUBACK\n");
      exit(2);
    }
    read_exact(fd, p + 2, p[1], "SUBACK");
    if (p[1 + p[1]] != qos) {
      fprintf(stderr, "loadgen: SUBSCRIBE granted 0x%02x, wanted QoS %d\n", p[1 + p[1]], qos);
      exit(2);
    }
  }
  set_nonblock(fd);
  return fd;
}

/* ---- pubsub ------------------------------------------------------------------------------- */

static conn_t *pubs_c, *subs_c;
static uint64_t *recv_from; /* messages received from each publisher, all subscribers together */
static uint64_t received, duplicates, corrupt, win_received, win_start, win_end, gen_start;
static samples_t lat, lateness;
/* --dump: the stamp of each latency sample, in the order of lat's samples (before sorting). */
static const char *dump_path;
static samples_t lat_stamps, lat_late;
/* --dump, open loop: the send lateness of publisher 0's messages, by sequence number. */
static samples_t late_by_seq;
static int ep;

static void watch(conn_t *c) {
  int want = buf_pending(&c->out) > 0;
  if (want == c->want_out) return;
  c->want_out = want;
  struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void on_publish(conn_t *s, const uint8_t *p, size_t hdr, size_t len, uint64_t now) {
  int qos = (p[0] >> 1) & 3;
  size_t at = hdr;
  uint16_t tlen = get_u16(p + at);
  at += 2 + tlen;
  uint16_t pid = 0;
  if (qos > 0) {
    pid = get_u16(p + at);
    at += 2;
  }
  if (o.sub_level == 5 && at < len) {
    uint32_t plen = 0;
    size_t vlen = get_varint(p + at, len - at, &plen);
    at += vlen == 0 ? len : vlen + plen; /* a bad length counts as corrupt below */
  }
  if (qos == 1 || qos == 2) {
    uint8_t a[4];
    buf_put(&s->out, a, enc_ack(a, qos == 1 ? T_PUBACK : T_PUBREC, pid));
  }
  received++;
  if (at > len || len - at != (size_t)o.size || tlen < 4 || memcmp(p + hdr + 2, "lg/", 3) != 0) {
    corrupt++; /* not the topic or the payload size that was sent */
    return;
  }
  uint64_t stamp = get_u64(p + at);
  uint32_t idx;
  memcpy(&idx, p + at + 8, 4);
  uint64_t seq = get_u64(p + at + 12);
  if (idx >= (uint32_t)o.pubs) {
    corrupt++;
    return;
  }
  if (seq < s->expect[idx]) {
    duplicates++;
    return;
  }
  s->expect[idx] = seq + 1;
  recv_from[idx]++;
  if (now >= win_start && now < win_end) win_received++;
  if (stamp >= win_start && stamp < win_end) {
    uint64_t d = now > stamp ? now - stamp : 0;
    sample_add(&lat, d);
    if (dump_path) {
      sample_add(&lat_stamps, stamp);
      sample_add(&lat_late, idx == 0 && seq < late_by_seq.n ? late_by_seq.v[seq] : 0);
    }
    conn_t *pub = &pubs_c[idx];
    if (d > pub->max_delay) pub->max_delay = d;
    pub->delay_samples++;
  }
}

static void on_packet(conn_t *c, const uint8_t *p, size_t hdr, size_t len, uint64_t now) {
  int type = p[0] >> 4;
  uint8_t a[4];
  if (type == T_PUBLISH) {
    on_publish(c, p, hdr, len, now);
  } else if (type == T_PUBREL) {
    buf_put(&c->out, a, enc_ack(a, T_PUBCOMP, get_u16(p + hdr)));
  } else if (type == T_PUBREC && c->role == ROLE_PUB) {
    buf_put(&c->out, a, enc_ack(a, T_PUBREL, get_u16(p + hdr)));
  } else if ((type == T_PUBACK || type == T_PUBCOMP) && c->role == ROLE_PUB) {
    c->inflight--;
    c->completed++;
  }
}

/* Reads what is there and handles every complete packet; -1 when the connection closed. */
static int on_readable(conn_t *c) {
  for (int rounds = 0; rounds < 8; rounds++) {
    buf_reserve(&c->in, 65536);
    ssize_t n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
    if (n == 0) return -1;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return -1;
    }
    c->in.len += (size_t)n;
    quick_ack(c->fd);
    uint64_t now = now_ns();
    for (;;) {
      size_t hdr;
      long len = packet_len(c->in.data + c->in.off, c->in.len - c->in.off, &hdr);
      if (len < 0) return -1;
      if (len == 0 || (size_t)len > c->in.len - c->in.off) break;
      on_packet(c, c->in.data + c->in.off, hdr, (size_t)len, now);
      c->in.off += (size_t)len;
    }
    if ((size_t)n < 65536) break;
  }
  return 0;
}

static uint8_t *payload;
static char topics[MAX_PUBS][32];

static void publish_one(conn_t *c, uint64_t stamp) {
  uint8_t pkt[1024];
  put_u64(payload, stamp);
  uint32_t idx = (uint32_t)c->idx;
  memcpy(payload + 8, &idx, 4);
  put_u64(payload + 12, c->next_seq);
  uint16_t pid = 0;
  if (o.qos > 0) {
    if (++c->next_pid == 0) c->next_pid = 1;
    pid = c->next_pid;
    c->inflight++;
  }
  size_t n = enc_publish(pkt, topics[c->idx], strlen(topics[c->idx]), o.qos, pid, payload,
                         (size_t)o.size, o.level);
  buf_put(&c->out, pkt, n);
  c->next_seq++;
  c->sent++;
}

/* Closed loop: as many as the window and the in-flight limit allow. */
static void pump_closed(conn_t *c, uint64_t now) {
  while (buf_pending(&c->out) < 65536) {
    if (o.messages > 0 && c->sent >= (uint64_t)o.messages) break;
    if (c->sent - recv_from[c->idx] / (uint64_t)o.subs >= (uint64_t)o.window) break;
    if (o.qos > 0 && c->inflight >= o.inflight) break;
    publish_one(c, now);
  }
}

static uint64_t interval_ns;

/* Open loop: every message whose scheduled time has come, stamped with that time. */
static void pump_open(conn_t *c, uint64_t now) {
  while (gen_start + c->next_seq * interval_ns <= now) {
    uint64_t sched = gen_start + c->next_seq * interval_ns;
    if (o.messages > 0 && c->sent + c->refused >= (uint64_t)o.messages) break;
    if ((o.bp_cap > 0 && buf_pending(&c->out) >= (size_t)o.bp_cap) ||
        (o.qos > 0 && c->inflight >= 60000)) {
      c->refused++;
      c->next_seq++;
      continue;
    }
    if (sched >= win_start && sched < win_end) sample_add(&lateness, now - sched);
    if (dump_path && c->idx == 0) {
      while (late_by_seq.n < c->next_seq) sample_add(&late_by_seq, 0);
      sample_add(&late_by_seq, now - sched);
    }
    publish_one(c, sched);
  }
}

static void flush_conn(conn_t *c) {
  if (buf_pending(&c->out) > 0 && buf_flush(&c->out, c->fd) < 0) {
    fprintf(stderr, "loadgen: the broker closed a connection (write failed)\n");
    exit(3);
  }
  watch(c);
}

static int run_pubsub(void) {
  if (o.pubs < 1 || o.pubs > MAX_PUBS || o.subs < 1 || o.size < MIN_PAYLOAD || o.size > 900) {
    fprintf(stderr, "loadgen: need 1..%d publishers, 1+ subscribers, payload %d..900 bytes\n",
            MAX_PUBS, MIN_PAYLOAD);
    return 2;
  }
  ep = epoll_create1(0);
  payload = calloc(1, (size_t)o.size);
  memset(payload, 'x', (size_t)o.size);
  pubs_c = calloc((size_t)o.pubs, sizeof *pubs_c);
  subs_c = calloc((size_t)o.subs, sizeof *subs_c);
  recv_from = calloc((size_t)o.pubs, sizeof *recv_from);
  char id[64];
  long tag = (long)getpid();
  for (int i = 0; i < o.subs; i++) {
    snprintf(id, sizeof id, "lg-%ld-s%d", tag, i);
    conn_t *c = &subs_c[i];
    c->fd = open_client(id, "lg/#", o.qos);
    c->role = ROLE_SUB;
    c->idx = i;
    c->expect = calloc((size_t)o.pubs, sizeof *c->expect);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  }
  for (int i = 0; i < o.pubs; i++) {
    snprintf(id, sizeof id, "lg-%ld-p%d", tag, i);
    snprintf(topics[i], sizeof topics[i], "lg/%d", i);
    conn_t *c = &pubs_c[i];
    c->fd = open_client(id, NULL, 0);
    if (o.bp_cap > 0) {
      /* The kernel's send queue is bounded too, so what waits is waiting in the broker. */
      int size = (int)o.bp_cap;
      setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    }
    c->role = ROLE_PUB;
    c->idx = i;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  }
  int open_loop = o.rate > 0;
  int tfd = -1;
  conn_t timer = {.role = ROLE_TIMER};
  if (open_loop) {
    prctl(PR_SET_TIMERSLACK, 1UL);
    interval_ns = (uint64_t)(1e9 / o.rate);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    timer.fd = tfd;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &timer};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
  }
  /* Let the subscriptions settle before the first message. */
  usleep(100000);
  gen_start = now_ns();
  int fixed = o.messages > 0;
  win_start = fixed ? gen_start : gen_start + (uint64_t)(o.warmup * 1e9);
  win_end = fixed ? UINT64_MAX : win_start + (uint64_t)(o.seconds * 1e9);
  uint64_t stop_at = win_end, stopped_at = 0, win_t0 = 0, win_t1 = 0, last_progress = gen_start, seen = 0;
  double gcpu0 = 0, gcpu1 = 0, bcpu0 = 0, bcpu1 = 0, mcpu0 = 0, mcpu1 = 0;
  long rss_peak = 0, rss_at_stop = -1;
  uint64_t next_rss = gen_start;
  int in_window = 0, stopped = 0;
  struct epoll_event evs[256];
  for (;;) {
    uint64_t now = now_ns();
    if (!in_window && now >= win_start) {
      in_window = 1;
      win_t0 = now;
      if (!fixed) win_start = now; /* counts and CPU readings cover exactly the same span */
      gcpu0 = proc_cpu_seconds(0);
      bcpu0 = o.pid > 0 ? broker_cpu_seconds() : 0;
      mcpu0 = machine_busy_seconds();
    }
    if (o.pid > 0 && now >= next_rss) {
      long r = proc_rss_kib(o.pid);
      if (r > rss_peak) rss_peak = r;
      next_rss = now + 100000000ull;
    }
    if (!stopped) {
      int all_done = fixed;
      for (int i = 0; i < o.pubs; i++) {
        conn_t *c = &pubs_c[i];
        if (fixed && c->sent + c->refused < (uint64_t)o.messages) all_done = 0;
      }
      if (now >= stop_at || all_done) {
        stopped = 1;
        win_t1 = fixed ? 0 : now;
        if (!fixed) win_end = now;
        gcpu1 = proc_cpu_seconds(0);
        bcpu1 = o.pid > 0 ? broker_cpu_seconds() : 0;
        mcpu1 = machine_busy_seconds();
        if (o.pid > 0) rss_at_stop = proc_rss_kib(o.pid);
        last_progress = stopped_at = now;
      }
    }
    if (!stopped) {
      for (int i = 0; i < o.pubs; i++) {
        if (open_loop) pump_open(&pubs_c[i], now);
        else pump_closed(&pubs_c[i], now);
      }
    }
    uint64_t expected = 0, completed = 0, sent = 0;
    for (int i = 0; i < o.pubs; i++) {
      flush_conn(&pubs_c[i]);
      sent += pubs_c[i].sent;
      completed += pubs_c[i].completed;
    }
    for (int i = 0; i < o.subs; i++) flush_conn(&subs_c[i]);
    expected = sent * (uint64_t)o.subs;
    if (stopped) {
      uint64_t progress = received + completed;
      if (progress != seen) {
        seen = progress;
        last_progress = now;
      }
      int qos_done = o.qos == 0 || completed == sent;
      if ((received - duplicates - corrupt >= expected && qos_done) || now - last_progress > 2000000000ull ||
          now - stopped_at > 120000000000ull) {
        if (fixed) win_t1 = now;
        break;
      }
    }
    int timeout = 10;
    if (open_loop && !stopped) {
      uint64_t next = UINT64_MAX;
      for (int i = 0; i < o.pubs; i++) {
        uint64_t t = gen_start + pubs_c[i].next_seq * interval_ns;
        if (t < next) next = t;
      }
      struct itimerspec its = {0};
      its.it_value.tv_sec = (time_t)(next / 1000000000ull);
      its.it_value.tv_nsec = (long)(next % 1000000000ull);
      timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
    } else if (!open_loop && !stopped) {
      timeout = 1;
    }
    int n = epoll_wait(ep, evs, 256, timeout);
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (c->role == ROLE_TIMER) {
        uint64_t x;
        if (read(tfd, &x, sizeof x) < 0) { /* nothing due */ }
        continue;
      }
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (on_readable(c) < 0) {
          fprintf(stderr, "loadgen: the broker closed a connection\n");
          return 3;
        }
      }
      if (evs[i].events & EPOLLOUT) flush_conn(c);
    }
  }
  if (fixed) {
    gcpu1 = proc_cpu_seconds(0);
    bcpu1 = o.pid > 0 ? broker_cpu_seconds() : 0;
    mcpu1 = machine_busy_seconds();
  }
  double secs = (double)(win_t1 - win_t0) / 1e9;
  uint64_t sent = 0, refused = 0, worst = 0, best = UINT64_MAX, most_refused = 0;
  for (int i = 0; i < o.pubs; i++) {
    conn_t *c = &pubs_c[i];
    sent += c->sent;
    refused += c->refused;
    if (c->max_delay > worst) worst = c->max_delay;
    if (c->max_delay < best) best = c->max_delay;
    if (c->refused > most_refused) most_refused = c->refused;
  }
  if (dump_path) {
    FILE *f = fopen(dump_path, "w");
    if (!f) die("fopen --dump");
    for (size_t i = 0; i < lat.n; i++)
      fprintf(f, "%llu %llu %llu\n", (unsigned long long)lat_stamps.v[i],
              (unsigned long long)lat.v[i], (unsigned long long)lat_late.v[i]);
    fclose(f);
  }
  qsort(lat.v, lat.n, sizeof *lat.v, cmp_u64);
  qsort(lateness.v, lateness.n, sizeof *lateness.v, cmp_u64);
  uint64_t distinct = received - duplicates - corrupt;
  uint64_t expected = sent * (uint64_t)o.subs;
  if (fixed) win_received = distinct;
  printf("{\"mode\":\"pubsub\",\"pubs\":%d,\"subs\":%d,\"qos\":%d,\"size\":%d,\"rate\":%.0f,"
         "\"seconds\":%.3f,\"sent\":%llu,\"received\":%llu,\"distinct\":%llu,"
         "\"duplicates\":%llu,\"corrupt\":%llu,\"lost\":%llu,\"refused\":%llu,"
         "\"mostRefusedPerConnection\":%llu,"
         "\"windowReceived\":%llu,\"msgPerSecond\":%.1f,\"brokerCpu\":%.3f,\"genCpu\":%.3f,"
         "\"machineCpu\":%.3f,"
         "\"p50us\":%.1f,\"p99us\":%.1f,\"p999us\":%.1f,\"maxus\":%.1f,\"samples\":%zu,"
         "\"latenessP50us\":%.1f,\"latenessP99us\":%.1f,"
         "\"worstConnectionMaxDelayUs\":%.1f,\"bestConnectionMaxDelayUs\":%.1f,"
         "\"brokerRssPeakKiB\":%ld,\"brokerRssAtStopKiB\":%ld}\n",
         o.pubs, o.subs, o.qos, o.size, o.rate, secs, (unsigned long long)sent,
         (unsigned long long)received, (unsigned long long)distinct,
         (unsigned long long)duplicates, (unsigned long long)corrupt,
         (unsigned long long)(expected > distinct ? expected - distinct : 0),
         (unsigned long long)refused, (unsigned long long)most_refused,
         (unsigned long long)win_received, secs > 0 ? (double)win_received / secs : 0.0,
         o.pid > 0 ? bcpu1 - bcpu0 : -1.0, gcpu1 - gcpu0, mcpu1 - mcpu0, pct_us(&lat, 0.5),
         pct_us(&lat, 0.99),
         pct_us(&lat, 0.999), pct_us(&lat, 1.0), lat.n, pct_us(&lateness, 0.5),
         pct_us(&lateness, 0.99), (double)worst / 1000.0,
         best == UINT64_MAX ? -1.0 : (double)best / 1000.0, rss_peak, rss_at_stop);
  return 0;
}

/* ---- connection bursts -------------------------------------------------------------------- */

typedef struct {
  int fd, state; /* 0 connecting, 1 CONNECT sent, 2 done, 3 failed */
  uint64_t t0;
  uint8_t got[4];
  int ngot;
} hs_t;

/*
 * Opens `count` connections at once (non-blocking connect, CONNECT on connect completion) and
 * waits for every CONNACK. Handshake times (connect() to CONNACK) go to `times` when not NULL.
 * The fds stay open in hs[]; returns how many completed.
 */
static long retransmitted; /* measured handshakes that needed a TCP retransmission */

/* Whether the kernel had to retransmit on fd (a SYN, or data the listener's full queue dropped). */
static int had_retransmit(int fd) {
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return 0;
  return ti.tcpi_total_retrans > 0;
}

static int burst(hs_t *hs, int count, int round, samples_t *times) {
  int bep = epoll_create1(0);
  int pending = 0;
  for (int i = 0; i < count; i++) {
    hs_t *h = &hs[i];
    memset(h, 0, sizeof *h);
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (h->fd < 0) {
      h->state = 3;
      continue;
    }
    set_nodelay(h->fd);
    struct sockaddr_in a = target();
    h->t0 = now_ns();
    if (connect(h->fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
      close(h->fd);
      h->fd = -1;
      h->state = 3;
      continue;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
    epoll_ctl(bep, EPOLL_CTL_ADD, h->fd, &ev);
    pending++;
  }
  int done = 0;
  uint64_t deadline = now_ns() + 30000000000ull;
  struct epoll_event evs[512];
  char id[64];
  uint8_t p[128];
  while (pending > 0 && now_ns() < deadline) {
    int n = epoll_wait(bep, evs, 512, 100);
    uint64_t now = now_ns();
    for (int k = 0; k < n; k++) {
      hs_t *h = &hs[evs[k].data.u32];
      if (h->state == 0) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        snprintf(id, sizeof id, "lg-%d-r%d-%u", (int)getpid(), round, evs[k].data.u32);
        size_t m = enc_connect(p, id, 60, 4);
        if (err != 0 || write(h->fd, p, m) != (ssize_t)m) {
          h->state = 3;
          pending--;
          epoll_ctl(bep, EPOLL_CTL_DEL, h->fd, NULL);
          continue;
        }
        h->state = 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[k].data.u32};
        epoll_ctl(bep, EPOLL_CTL_MOD, h->fd, &ev);
      } else if (h->state == 1) {
        ssize_t r = read(h->fd, h->got + h->ngot, (size_t)(4 - h->ngot));
        if (r <= 0) {
          if (r < 0 && errno == EAGAIN) continue;
          h->state = 3;
        } else if ((h->ngot += (int)r) == 4) {
          h->state = h->got[0] == (T_CONNACK << 4) && h->got[3] == 0 ? 2 : 3;
          if (h->state == 2) {
            done++;
            if (times) {
              sample_add(times, now - h->t0);
              retransmitted += had_retransmit(h->fd);
            }
          }
        } else {
          continue;
        }
        pending--;
        epoll_ctl(bep, EPOLL_CTL_DEL, h->fd, NULL);
      }
    }
  }
  close(bep);
  return done;
}

static void close_all(hs_t *hs, int count) {
  uint8_t d[2] = {T_DISCONNECT << 4, 0};
  for (int i = 0; i < count; i++) {
    if (hs[i].fd < 0) continue;
    if (hs[i].state == 2 && write(hs[i].fd, d, 2) < 0) { /* closing anyway */ }
    close_hard(hs[i].fd);
    hs[i].fd = -1;
  }
}

static int run_connect(void) {
  hs_t *hs = calloc((size_t)o.burst, sizeof *hs);
  samples_t times = {0};
  uint64_t start = now_ns();
  uint64_t ws = start + (uint64_t)(o.warmup * 1e9), we = ws + (uint64_t)(o.seconds * 1e9);
  uint64_t t0 = 0, t1 = 0;
  long ok = 0, failed = 0, rounds = 0;
  double g0 = 0, b0 = 0, m0 = 0;
  for (int round = 0;; round++) {
    uint64_t now = now_ns();
    int measured = now >= ws;
    if (measured && t0 == 0) {
      t0 = now;
      g0 = proc_cpu_seconds(0);
      b0 = o.pid > 0 ? proc_cpu_seconds(o.pid) : 0;
      m0 = machine_busy_seconds();
    }
    int d = burst(hs, o.burst, round, measured ? &times : NULL);
    close_all(hs, o.burst);
    if (measured) {
      ok += d;
      failed += o.burst - d;
      rounds++;
    }
    if (now_ns() >= we && rounds > 0) break;
  }
  t1 = now_ns();
  double g1 = proc_cpu_seconds(0), b1 = o.pid > 0 ? proc_cpu_seconds(o.pid) : 0;
  double m1 = machine_busy_seconds();
  double secs = (double)(t1 - t0) / 1e9;
  qsort(times.v, times.n, sizeof *times.v, cmp_u64);
  printf("{\"mode\":\"connect\",\"burst\":%d,\"rounds\":%ld,\"seconds\":%.3f,\"connections\":%ld,"
         "\"failed\":%ld,\"connPerSecond\":%.1f,\"brokerCpu\":%.3f,\"genCpu\":%.3f,"
         "\"machineCpu\":%.3f,"
         "\"retransmitted\":%ld,\"p50us\":%.1f,\"p99us\":%.1f,\"maxus\":%.1f}\n",
         o.burst, rounds, secs, ok, failed, secs > 0 ? (double)ok / secs : 0.0,
         o.pid > 0 ? b1 - b0 : -1.0, g1 - g0, m1 - m0, retransmitted, pct_us(&times, 0.5),
         pct_us(&times, 0.99), pct_us(&times, 1.0));
  return 0;
}

/* ---- idle connections: RSS slope ---------------------------------------------------------- */

static void settle(void) { usleep((useconds_t)(o.settle * 1e6)); }

static int run_idle(void) {
  if (o.pid <= 0 || o.n1 < 1 || o.n2 <= o.n1) {
    fprintf(stderr, "loadgen idle: needs --pid and 0 < --n1 < --n2\n");
    return 2;
  }
  hs_t *hs = calloc((size_t)o.n2, sizeof *hs);
  const int step = 250;
  double g0 = proc_cpu_seconds(0), b0 = proc_cpu_seconds(o.pid), m0 = machine_busy_seconds();
  uint64_t t_all = now_ns();
  settle();
  long rss0 = proc_rss_kib(o.pid), rss1 = 0, ok = 0;
  int opened = 0, round = 0;
  for (int target_n = o.n1;; target_n = o.n2) {
    while (opened < target_n) {
      int k = target_n - opened < step ? target_n - opened : step;
      ok += burst(hs + opened, k, round++, NULL);
      opened += k;
    }
    settle();
    if (target_n == o.n2) break;
    rss1 = proc_rss_kib(o.pid);
  }
  long rss2 = proc_rss_kib(o.pid);
  close_all(hs, o.n2);
  settle();
  settle();
  long rss3 = proc_rss_kib(o.pid), rss4 = -1;
  if (o.linger > 0) {
    usleep((useconds_t)(o.linger * 1e6));
    rss4 = proc_rss_kib(o.pid);
  }
  double g1 = proc_cpu_seconds(0), b1 = proc_cpu_seconds(o.pid), m1 = machine_busy_seconds();
  double all = (double)(now_ns() - t_all) / 1e9;
  printf("{\"mode\":\"idle\",\"n1\":%d,\"n2\":%d,\"connections\":%ld,\"failed\":%ld,"
         "\"rssBaseKiB\":%ld,\"rssN1KiB\":%ld,\"rssN2KiB\":%ld,\"rssAfterCloseKiB\":%ld,"
         "\"rssLingerKiB\":%ld,"
         "\"bytesPerConnection\":%.1f,\"seconds\":%.3f,\"brokerCpu\":%.3f,\"genCpu\":%.3f,"
         "\"machineCpu\":%.3f}\n",
         o.n1, o.n2, ok, (long)o.n2 - ok, rss0, rss1, rss2, rss3, rss4,
         (double)(rss2 - rss1) * 1024.0 / (double)(o.n2 - o.n1), all, b1 - b0, g1 - g0, m1 - m0);
  return 0;
}

/* ---- main --------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: loadgen pubsub|connect|idle --port P [options] (see loadgen.c)\n");
    return 2;
  }
  const char *mode = argv[1];
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 >= argc) {
      fprintf(stderr, "loadgen: %s needs a value\n", a);
      return 2;
    }
    const char *v = argv[++i];
    if (!strcmp(a, "--port")) o.port = atoi(v);
    else if (!strcmp(a, "--sub-port")) sub_port = atoi(v);
    else if (!strcmp(a, "--pid")) o.pid = atoi(v);
    else if (!strcmp(a, "--also-pid") && n_also_pids < 16) also_pids[n_also_pids++] = atoi(v);
    else if (!strcmp(a, "--pubs")) o.pubs = atoi(v);
    else if (!strcmp(a, "--subs")) o.subs = atoi(v);
    else if (!strcmp(a, "--qos")) o.qos = atoi(v);
    else if (!strcmp(a, "--level")) o.level = atoi(v);
    else if (!strcmp(a, "--sub-level")) o.sub_level = atoi(v);
    else if (!strcmp(a, "--size")) o.size = atoi(v);
    else if (!strcmp(a, "--rate")) o.rate = atof(v);
    else if (!strcmp(a, "--window")) o.window = atoi(v);
    else if (!strcmp(a, "--inflight")) o.inflight = atoi(v);
    else if (!strcmp(a, "--bp-cap")) o.bp_cap = atol(v);
    else if (!strcmp(a, "--messages")) o.messages = atol(v);
    else if (!strcmp(a, "--dump")) dump_path = v;
    else if (!strcmp(a, "--burst")) o.burst = atoi(v);
    else if (!strcmp(a, "--n1")) o.n1 = atoi(v);
    else if (!strcmp(a, "--n2")) o.n2 = atoi(v);
    else if (!strcmp(a, "--warmup")) o.warmup = atof(v);
    else if (!strcmp(a, "--seconds")) o.seconds = atof(v);
    else if (!strcmp(a, "--settle")) o.settle = atof(v);
    else if (!strcmp(a, "--linger")) o.linger = atof(v);
    else {
      fprintf(stderr, "loadgen: unknown option %s\n", a);
      return 2;
    }
  }
  if (o.sub_level == 0) o.sub_level = o.level;
  if (o.port <= 0 || o.qos < 0 || o.qos > 2 || (o.level != 4 && o.level != 5) ||
      (o.sub_level != 4 && o.sub_level != 5)) {
    fprintf(stderr, "loadgen: needs --port, --qos 0..2 and --level (and --sub-level) 4 or 5\n");
    return 2;
  }
  raise_nofile();
  if (!strcmp(mode, "pubsub")) return run_pubsub();
  if (!strcmp(mode, "connect")) return run_connect();
  if (!strcmp(mode, "idle")) return run_idle();
  fprintf(stderr, "loadgen: unknown mode %s\n", mode);
  return 2;
}
