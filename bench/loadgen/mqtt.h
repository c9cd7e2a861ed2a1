/*
 * Shared by the load generator (loadgen.c) and the baseline forwarder (forwarder.c): MQTT 3.1.1
 * (and, for the generator, 5.0) packets encoded by hand, a growable byte buffer with non-blocking flush, the monotonic clock,
 * and /proc readings (CPU time and RSS of a process).
 */
#ifndef AMQTT_LOADGEN_MQTT_H
#define AMQTT_LOADGEN_MQTT_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Packet types (high nibble of the first byte), MQTT 3.1.1 section 2.2.1. */
enum {
  T_CONNECT = 1, T_CONNACK, T_PUBLISH, T_PUBACK, T_PUBREC, T_PUBREL, T_PUBCOMP,
  T_SUBSCRIBE, T_SUBACK, T_UNSUBSCRIBE, T_UNSUBACK, T_PINGREQ, T_PINGRESP, T_DISCONNECT
};

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void die(const char *what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
  exit(2);
}

/* ---- growable buffer ---------------------------------------------------------------------- */

typedef struct {
  uint8_t *data;
  size_t len, off, cap;
} buf_t;

static inline void buf_reserve(buf_t *b, size_t extra) {
  if (b->off > 0 && b->off == b->len) b->off = b->len = 0;
  if (b->len + extra <= b->cap) return;
  if (b->off > 0) {
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
    if (b->len + extra <= b->cap) return;
  }
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + extra) cap *= 2;
  b->data = realloc(b->data, cap);
  if (!b->data) die("realloc");
  b->cap = cap;
}

static inline size_t buf_pending(const buf_t *b) { return b->len - b->off; }

static inline void buf_put(buf_t *b, const void *p, size_t n) {
  buf_reserve(b, n);
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

/* Writes what it can without blocking: 0 when all written, 1 when some is left, -1 on error. */
static inline int buf_flush(buf_t *b, int fd) {
  while (b->off < b->len) {
    ssize_t n = write(fd, b->data + b->off, b->len - b->off);
    if (n > 0) {
      b->off += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return 1;
    } else {
      return -1;
    }
  }
  b->off = b->len = 0;
  return 0;
}

static inline void buf_free(buf_t *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

/* ---- encoding ----------------------------------------------------------------------------- */

static inline size_t put_varint(uint8_t *p, uint32_t v) {
  size_t n = 0;
  do {
    uint8_t byte = v % 128;
    v /= 128;
    if (v > 0) byte |= 0x80;
    p[n++] = byte;
  } while (v > 0);
  return n;
}

static inline size_t put_str(uint8_t *p, const char *s, size_t len) {
  p[0] = (uint8_t)(len >> 8);
  p[1] = (uint8_t)len;
  memcpy(p + 2, s, len);
  return len + 2;
}

/*
 * Protocol level 4 (MQTT 3.1.1) or 5 (MQTT 5.0). At level 5 the packets below carry an empty
 * property list (one byte 0) after their variable header: nothing else differs for what the
 * generator sends, and its acks (a packet id, no reason code) mean success at both levels.
 */

/* CONNECT, clean session (clean start), no will, no credentials, no properties. */
static inline size_t enc_connect(uint8_t *p, const char *client_id, uint16_t keep_alive,
                                 int level) {
  size_t id_len = strlen(client_id);
  uint32_t rem = 10 + (level == 5) + 2 + (uint32_t)id_len;
  size_t n = 0;
  p[n++] = T_CONNECT << 4;
  n += put_varint(p + n, rem);
  n += put_str(p + n, "MQTT", 4);
  p[n++] = (uint8_t)level; /* protocol level */
  p[n++] = 0x02;           /* clean session */
  p[n++] = (uint8_t)(keep_alive >> 8);
  p[n++] = (uint8_t)keep_alive;
  if (level == 5) p[n++] = 0; /* no properties */
  n += put_str(p + n, client_id, id_len);
  return n;
}

static inline size_t enc_subscribe(uint8_t *p, uint16_t pid, const char *filter, int qos,
                                   int level) {
  size_t flen = strlen(filter);
  size_t n = 0;
  p[n++] = (T_SUBSCRIBE << 4) | 0x02;
  n += put_varint(p + n, (uint32_t)(2 + (level == 5) + 2 + flen + 1));
  p[n++] = (uint8_t)(pid >> 8);
  p[n++] = (uint8_t)pid;
  if (level == 5) p[n++] = 0; /* no properties */
  n += put_str(p + n, filter, flen);
  p[n++] = (uint8_t)qos; /* at level 5 the subscription options: QoS, nothing else set */
  return n;
}

static inline size_t enc_publish(uint8_t *p, const char *topic, size_t tlen, int qos, uint16_t pid,
                                 const uint8_t *payload, size_t plen, int level) {
  size_t n = 0;
  p[n++] = (uint8_t)((T_PUBLISH << 4) | (qos << 1));
  n += put_varint(p + n, (uint32_t)(2 + tlen + (qos > 0 ? 2 : 0) + (level == 5) + plen));
  n += put_str(p + n, topic, tlen);
  if (qos > 0) {
    p[n++] = (uint8_t)(pid >> 8);
    p[n++] = (uint8_t)pid;
  }
  if (level == 5) p[n++] = 0; /* no properties */
  memcpy(p + n, payload, plen);
  return n + plen;
}

/* Reads a variable byte integer at p (at most avail bytes) into *v; returns its length, 0 if bad. */
static inline size_t get_varint(const uint8_t *p, size_t avail, uint32_t *v) {
  uint32_t x = 0, mul = 1;
  for (size_t i = 0; i < 4 && i < avail; i++) {
    x += (uint32_t)(p[i] & 0x7f) * mul;
    mul *= 128;
    if (!(p[i] & 0x80)) {
      *v = x;
      return i + 1;
    }
  }
  return 0;
}

/* PUBACK, PUBREC, PUBREL (flags 0b0010) and PUBCOMP: a packet id and nothing else. */
static inline size_t enc_ack(uint8_t *p, int type, uint16_t pid) {
  p[0] = (uint8_t)((type << 4) | (type == T_PUBREL ? 0x02 : 0));
  p[1] = 2;
  p[2] = (uint8_t)(pid >> 8);
  p[3] = (uint8_t)pid;
  return 4;
}

/*
 * Reads one fixed header at p (avail bytes): returns the whole packet's length and sets *hdr to
 * the header's length, or returns 0 when more bytes are needed, -1 when the length is malformed.
 */
static inline long packet_len(const uint8_t *p, size_t avail, size_t *hdr) {
  uint32_t rem = 0, mul = 1;
  for (size_t i = 1; i < 5; i++) {
    if (i >= avail) return 0;
    rem += (p[i] & 0x7f) * mul;
    mul *= 128;
    if (!(p[i] & 0x80)) {
      *hdr = i + 1;
      return (long)(i + 1 + rem);
    }
  }
  return -1;
}

static inline uint16_t get_u16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }

static inline void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint64_t get_u64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* ---- /proc ---------------------------------------------------------------------------------- */

/* utime + stime of pid (0: this process) in seconds, from /proc/PID/stat; -1 when unreadable. */
static inline double proc_cpu_seconds(int pid) {
  char path[64], text[1024];
  if (pid > 0) snprintf(path, sizeof path, "/proc/%d/stat", pid);
  else snprintf(path, sizeof path, "/proc/self/stat");
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = 0;
  char *s = strrchr(text, ')');
  if (!s) return -1;
  unsigned long utime = 0, stime = 0;
  /* Fields after the command: state(3) ... utime(14) stime(15). */
  if (sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2) {
    return -1;
  }
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/*
 * CPU time the whole machine spent busy (user, nice, system, irq, softirq, steal over all cores)
 * in seconds, from the first line of /proc/stat; -1 when unreadable. Minus the broker's and the
 * generator's own CPU over the same phase, it tells how much other work shared the machine.
 */
static inline double machine_busy_seconds(void) {
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return -1;
  unsigned long long user, nice, system, idle, iowait, irq, softirq, steal;
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system, &idle,
                 &iowait, &irq, &softirq, &steal);
  fclose(f);
  if (n != 8) return -1;
  return (double)(user + nice + system + irq + softirq + steal) / (double)sysconf(_SC_CLK_TCK);
}

/* VmRSS of pid in KiB, from /proc/PID/status; -1 when unreadable. */
static inline long proc_rss_kib(int pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kib = -1;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmRSS:", 6) == 0) {
      kib = strtol(line + 6, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kib;
}

/* Raises the soft open-file limit to the hard one; returns the soft limit now in force. */
static inline long raise_nofile(void) {
  struct rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return -1;
  r.rlim_cur = r.rlim_max;
  setrlimit(RLIMIT_NOFILE, &r);
  getrlimit(RLIMIT_NOFILE, &r);
  return (long)r.rlim_cur;
}

#endif
