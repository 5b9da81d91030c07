/* wakeup.c GAP_US [CPU_A CPU_B]: what one idle echo pays per hop of the userspace path. A thread
 * blocked in poll() on an eventfd is kicked by another and kicks back, with GAP_US of idleness
 * between rounds (5000: the bench's idle ping); prints the round trip (two wake-ups).
 * Build: cc -O2 -pthread -o /tmp/wakeup test/perf/wakeup.c */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static int to_echo, to_main;

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void wait_and_take(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  uint64_t v;
  poll(&p, 1, -1);
  if (read(fd, &v, sizeof v) != sizeof v) exit(1);
}

static void kick(int fd) {
  uint64_t v = 1;
  if (write(fd, &v, sizeof v) != sizeof v) exit(1);
}

static void *echo(void *unused) {
  (void)unused;
  for (;;) {
    wait_and_take(to_echo);
    kick(to_main);
  }
  return NULL;
}

static void pin(pthread_t thread, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(thread, sizeof set, &set);
}

static int by_value(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int gap_us = argc > 1 ? atoi(argv[1]) : 5000;
  to_echo = eventfd(0, 0);
  to_main = eventfd(0, 0);
  pthread_t thread;
  pthread_create(&thread, NULL, echo, NULL);
  if (argc > 3) {
    pin(thread, atoi(argv[2]));
    pin(pthread_self(), atoi(argv[3]));
  }
  enum { ROUNDS = 400 };
  static uint64_t rtt[ROUNDS];
  for (int i = 0; i < ROUNDS; i++) {
    usleep((useconds_t)gap_us);
    uint64_t start = now_ns();
    kick(to_echo);
    wait_and_take(to_main);
    rtt[i] = now_ns() - start;
  }
  qsort(rtt, ROUNDS, sizeof rtt[0], by_value);
  printf("gap %d us%s: round trip (2 wake-ups) median %.1f us [p10 %.1f, p90 %.1f]\n", gap_us,
         argc > 3 ? (atoi(argv[2]) == atoi(argv[3]) ? ", same CPU" : ", two CPUs") : "", rtt[ROUNDS / 2] / 1e3,
         rtt[ROUNDS / 10] / 1e3, rtt[ROUNDS * 9 / 10] / 1e3);
  return 0;
}
