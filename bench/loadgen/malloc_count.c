/*
 * Counts a process's calls of glibc's malloc, calloc and realloc (every thread), and those of
 * 1,008 bytes or more: a request that large makes glibc merge every freed small chunk first
 * (malloc_consolidate), the main-thread stalls of bench/RESULTS.md's "latency tail". Preloaded
 * by bench/latency_work.ts --mallocs (LD_PRELOAD); on SIGUSR2 it appends "calls large\n" to the
 * file named by AMQTT_MALLOC_FILE. Built as a shared object: cc -O2 -shared -fPIC ... -ldl.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static atomic_long calls, large;

/* dlsym itself may allocate before the real functions are known: served from here, never freed. */
static char boot[65536];
static size_t boot_used;
static int booting;

static void *boot_alloc(size_t n) {
  void *p = boot + boot_used;
  boot_used += (n + 15) & ~(size_t)15;
  return p;
}

static void init(void) {
  if (real_malloc != NULL) return;
  booting = 1;
  real_malloc = dlsym(RTLD_NEXT, "malloc");
  real_calloc = dlsym(RTLD_NEXT, "calloc");
  real_realloc = dlsym(RTLD_NEXT, "realloc");
  real_free = dlsym(RTLD_NEXT, "free");
  booting = 0;
}

static void count(size_t n) {
  atomic_fetch_add(&calls, 1);
  if (n >= 1008) atomic_fetch_add(&large, 1);
}

void *malloc(size_t n) {
  if (real_malloc == NULL) {
    if (booting) return boot_alloc(n);
    init();
  }
  count(n);
  return real_malloc(n);
}

void *calloc(size_t a, size_t b) {
  if (real_calloc == NULL) {
    if (booting) return memset(boot_alloc(a * b), 0, a * b);
    init();
  }
  count(a * b);
  return real_calloc(a, b);
}

void *realloc(void *p, size_t n) {
  init();
  count(n);
  return real_realloc(p, n);
}

void free(void *p) {
  if ((char *)p >= boot && (char *)p < boot + sizeof boot) return;
  init();
  real_free(p);
}

static void dump(int sig) {
  (void)sig;
  const char *path = getenv("AMQTT_MALLOC_FILE");
  if (path == NULL) return;
  FILE *out = fopen(path, "a");
  if (out == NULL) return;
  fprintf(out, "%ld %ld\n", (long)atomic_load(&calls), (long)atomic_load(&large));
  fclose(out);
}

__attribute__((constructor)) static void setup(void) {
  init();
  signal(SIGUSR2, dump);
}
