/*
 * Measures what one system call costs on this machine: a brokers' per-message cost is mostly
 * system calls, and their price differs by an order of magnitude between bare metal and some
 * virtual machines. Prints one JSON line: {"null_ns":N,"pipe_ns":N}
 *   null_ns: one getppid() (the cheapest system call)
 *   pipe_ns: one 64-byte write() plus the read() that takes it, over a Unix socket pair
 * Each is the fastest of 5 rounds of 200,000, so other work on the machine inflates it less.
 */
#include <stdio.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 5
#define CALLS 200000

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(void) {
  int sv[2];
  char buf[64] = {0};
  double best_null = 1e18, best_pipe = 1e18;
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
    perror("socketpair");
    return 1;
  }
  for (int r = 0; r < ROUNDS; r++) {
    double t0 = now_ns();
    for (int i = 0; i < CALLS; i++) syscall(SYS_getppid);
    double t1 = now_ns();
    for (int i = 0; i < CALLS; i++) {
      if (write(sv[0], buf, sizeof buf) != sizeof buf) return 1;
      if (read(sv[1], buf, sizeof buf) != sizeof buf) return 1;
    }
    double t2 = now_ns();
    if ((t1 - t0) / CALLS < best_null) best_null = (t1 - t0) / CALLS;
    if ((t2 - t1) / CALLS < best_pipe) best_pipe = (t2 - t1) / CALLS;
  }
  printf("{\"null_ns\":%.0f,\"pipe_ns\":%.0f}\n", best_null, best_pipe);
  return 0;
}
