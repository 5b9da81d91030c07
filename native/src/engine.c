/* Engine lifecycle: create the devices (inside the requested network namespace), start each
 * queue's thread(s), and tear everything down again without leaking fds or threads. */
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define WEFT_COUNTER_NAME(id, name) name,
const char *const weft_counter_names[C_COUNT] = {WEFT_COUNTERS(WEFT_COUNTER_NAME)};
#undef WEFT_COUNTER_NAME

struct setup {
  struct engine *e;
  char *err;
  size_t err_len;
  int result;
};

/* Runs on a short-lived thread: setns() changes only the calling thread's namespace, so the
 * TUN and the socket are created in the target namespace while Node's threads stay put.
 * The fds keep their namespace after the thread exits. */
static void *setup_devices(void *arg) {
  struct setup *s = arg;
  s->result = -1;
  if (s->e->opt.netns_path[0]) {
    int ns = open(s->e->opt.netns_path, O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
      snprintf(s->err, s->err_len, "cannot open network namespace %s: %s (does it exist? ip netns list)",
               s->e->opt.netns_path, strerror(errno));
      return NULL;
    }
    int rc = setns(ns, CLONE_NEWNET);
    int saved = errno;
    close(ns);
    if (rc < 0) {
      snprintf(s->err, s->err_len, "cannot enter network namespace %s: %s (need CAP_SYS_ADMIN)",
               s->e->opt.netns_path, strerror(saved));
      return NULL;
    }
  }
  if (tun_open(s->e, s->err, s->err_len) < 0) return NULL;
  if (underlay_open(s->e, s->err, s->err_len) < 0) return NULL;
  s->result = 0;
  return NULL;
}

static void close_fds(struct engine *e) {
  for (int i = 0; i < WEFT_MAX_QUEUES; i++) {
    struct queue *q = &e->queues[i];
    if (q->tun_fd >= 0) close(q->tun_fd);
    if (q->udp_fd >= 0) close(q->udp_fd);
    q->tun_fd = q->udp_fd = -1;
  }
  if (e->wake_fd >= 0) close(e->wake_fd);
  e->wake_fd = -1;
}

/* Reads per turn of a shared thread before it looks at the other direction: a busy TUN must
 * not starve the socket (a TCP stream's ACKs travel the other way). */
#define SHARED_BUDGET 16

/* One thread serving both directions of a queue (shared_thread). */
static void *queue_run(void *arg) {
  struct queue *q = arg;
  struct engine *e = q->e;
  struct inside *in = inside_new(q);
  struct outside *out = outside_new(q);
  struct pollfd fds[3] = {{.fd = q->tun_fd, .events = POLLIN},
                          {.fd = q->udp_fd, .events = POLLIN},
                          {.fd = e->wake_fd, .events = POLLIN}};
  int more_in = 0, more_out = 0;
  while (in && out && !engine_stopping(e)) {
    /* Work left over from a budget-limited turn: look without sleeping. */
    if (poll(fds, 3, more_in || more_out ? 0 : -1) < 0 && errno != EINTR) break;
    if (fds[2].revents) break;
    more_in = (fds[0].revents || more_in) ? inside_drain(in, SHARED_BUDGET) : 0;
    more_out = (fds[1].revents || more_out) ? outside_drain(out, SHARED_BUDGET) : 0;
  }
  inside_free(in);
  outside_free(out);
  return NULL;
}

/* Stops and joins every thread started so far. */
static void stop_threads(struct engine *e) {
  uint64_t one = 1;
  __atomic_store_n(&e->stopping, 1, __ATOMIC_RELEASE);
  /* An eventfd write only fails if the counter would overflow, which one write cannot do. */
  if (write(e->wake_fd, &one, sizeof one) < 0) perror("weft engine: eventfd write");
  for (int i = 0; i < e->queue_count; i++) {
    struct queue *q = &e->queues[i];
    for (int t = 0; t < q->thread_count; t++) pthread_join(q->threads[t], NULL);
    q->thread_count = 0;
  }
}

static int start_queue(struct queue *q, char *err, size_t err_len) {
  static const char *const what[] = {"inside", "outside"};
  void *(*const split_fns[2])(void *) = {inside_run, outside_run};
  int wanted = q->e->opt.shared_thread ? 1 : 2;
  for (int t = 0; t < wanted; t++) {
    int rc = pthread_create(&q->threads[t], NULL, wanted == 1 ? queue_run : split_fns[t], q);
    if (rc != 0) {
      snprintf(err, err_len, "cannot start the %s thread of queue %d: %s", wanted == 1 ? "forwarding" : what[t],
               q->index + 1, strerror(rc));
      return -1;
    }
    q->thread_count++;
  }
  return 0;
}

struct engine *engine_open(const struct engine_options *opt, char *err, size_t err_len) {
  struct engine *e = calloc(1, sizeof *e);
  if (!e) {
    snprintf(err, err_len, "out of memory opening the engine");
    return NULL;
  }
  e->opt = *opt;
  if (e->opt.queues < 1) e->opt.queues = 1;
  if (e->opt.queues > WEFT_MAX_QUEUES) e->opt.queues = WEFT_MAX_QUEUES;
  e->wake_fd = -1;
  for (int i = 0; i < WEFT_MAX_QUEUES; i++) {
    e->queues[i].e = e;
    e->queues[i].index = i;
    e->queues[i].tun_fd = e->queues[i].udp_fd = -1;
  }
  routes_init(&e->routes);
  pthread_mutex_init(&e->routes_lock, NULL);

  e->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (e->wake_fd < 0) {
    snprintf(err, err_len, "cannot create eventfd: %s", strerror(errno));
    goto fail;
  }

  struct setup s = {.e = e, .err = err, .err_len = err_len, .result = -1};
  pthread_t setup_thread;
  int rc = pthread_create(&setup_thread, NULL, setup_devices, &s);
  if (rc != 0) {
    snprintf(err, err_len, "cannot start the setup thread: %s", strerror(rc));
    goto fail;
  }
  pthread_join(setup_thread, NULL);
  if (s.result < 0) goto fail;

  e->queue_count = e->opt.queues;
  for (int i = 0; i < e->queue_count; i++) {
    if (start_queue(&e->queues[i], err, err_len) < 0) {
      stop_threads(e);
      goto fail;
    }
  }
  return e;

fail:
  close_fds(e);
  pthread_mutex_destroy(&e->routes_lock);
  routes_free(&e->routes);
  free(e);
  return NULL;
}

void engine_close(struct engine *e) {
  stop_threads(e);
  close_fds(e);
  pthread_mutex_destroy(&e->routes_lock);
  routes_free(&e->routes);
  free(e);
}

uint64_t engine_counter(struct engine *e, enum weft_counter id) {
  uint64_t sum = 0;
  for (int i = 0; i < e->queue_count; i++) sum += __atomic_load_n(&e->queues[i].counters[id], __ATOMIC_RELAXED);
  return sum;
}
