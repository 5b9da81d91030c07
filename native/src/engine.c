/* Engine lifecycle: create the devices (inside the requested network namespace), start each
 * queue's forwarding thread(s), and tear everything down again without leaking fds or threads.
 * The one forwarding loop (forward()) lives here too: it polls a queue's fds and calls the
 * drain steps of inside.c and/or outside.c, which know nothing of threads. */
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "devices.h"
#include "inside.h"
#include "outside.h"

#define WEFT_COUNTER_NAME(id, name) name,
const char *const weft_counter_names[C_COUNT] = {WEFT_COUNTERS(WEFT_COUNTER_NAME)};
#undef WEFT_COUNTER_NAME

/* A forwarding thread: one queue, one direction or both. With one thread per direction and
 * spinning on, each has a kick eventfd its partner writes when it starts moving packets while
 * this one sleeps: woken then, it is spinning by the time the answer comes its way (the wake-up
 * overlaps the round trip instead of following it). */
struct worker {
  pthread_t thread;
  struct queue *q;
  int inside, outside;
  int kick_fd;             /* -1: none (one thread per queue, or no spinning) */
  int sleeping;            /* in a blocking poll (atomic) */
  struct worker *partner;  /* the queue's other thread, or NULL */
};

/* What engine_open allocates: the engine (first, so engine_close finds the rest) and its
 * threads, which the data path never sees. */
struct running_engine {
  struct engine e;
  struct worker workers[WEFT_MAX_QUEUES * 2];
  int worker_count;
};

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
    if (q->udp6_fd >= 0) close(q->udp6_fd);
    q->tun_fd = q->udp_fd = q->udp6_fd = -1;
  }
  if (e->wake_fd >= 0) close(e->wake_fd);
  e->wake_fd = -1;
}

/* Reads per turn of a thread serving both directions before it looks at the other one: a
 * busy TUN must not starve the socket (a TCP stream's ACKs travel the other way). */
#define SHARED_BUDGET 16

static uint64_t monotonic_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Reads by this queue so far, in both directions: a change means packets moved. */
static uint64_t queue_reads(const struct queue *q) {
  return __atomic_load_n(&q->counters[C_INSIDE_TUN_READS], __ATOMIC_RELAXED) +
         __atomic_load_n(&q->counters[C_OUTSIDE_RECV_CALLS], __ATOMIC_RELAXED);
}

/* poll()'s timeout: 0 while work is left over or while the queue moved packets less than
 * spin_ns ago (the answer to what we just forwarded is likely on its way), else block. */
static int poll_timeout(const struct queue *q, int more, uint64_t spin_ns) {
  if (more) return 0;
  if (!spin_ns) return -1;
  return monotonic_ns() - __atomic_load_n(&q->last_active_ns, __ATOMIC_RELAXED) < spin_ns ? 0 : -1;
}

/* The forwarding loop of every thread: poll the queue's TUN fd and/or socket and the wake
 * eventfd, drain what is ready. One direction drains until EAGAIN; both directions take turns
 * of at most SHARED_BUDGET reads each, and after a turn cut short by the budget look again
 * without sleeping; after moving packets, keep looking without sleeping for spin_us. */
static void *forward(void *arg) {
  struct worker *w = arg;
  struct queue *q = w->q;
  struct engine *e = q->e;
  struct inside *in = w->inside ? inside_new(q) : NULL;
  struct outside *out = w->outside ? outside_new(q) : NULL;
  int budget = w->inside && w->outside ? SHARED_BUDGET : 0;
  struct pollfd fds[4];
  nfds_t nfds = 0;
  nfds_t tun = nfds, udp = nfds, udp6 = nfds;
  if (w->inside) fds[tun = nfds++] = (struct pollfd){.fd = q->tun_fd, .events = POLLIN};
  if (w->outside) fds[udp = nfds++] = (struct pollfd){.fd = q->udp_fd, .events = POLLIN};
  /* The IPv6 socket is drained with the IPv4 one (outside_drain serves both). */
  int v6 = w->outside && q->udp6_fd >= 0;
  if (v6) fds[udp6 = nfds++] = (struct pollfd){.fd = q->udp6_fd, .events = POLLIN};
  nfds_t wake = nfds++;
  fds[wake] = (struct pollfd){.fd = e->wake_fd, .events = POLLIN};
  nfds_t kick = nfds;
  if (w->kick_fd >= 0) fds[nfds++] = (struct pollfd){.fd = w->kick_fd, .events = POLLIN};
  int ready = (in || !w->inside) && (out || !w->outside); /* else out of memory: give up */
  int more_in = 0, more_out = 0;
  uint64_t spin_ns = (uint64_t)e->opt.spin_us * 1000u;
  while (ready && !engine_stopping(e)) {
    int timeout = poll_timeout(q, more_in || more_out, spin_ns);
    if (timeout < 0) __atomic_store_n(&w->sleeping, 1, __ATOMIC_SEQ_CST);
    int n = poll(fds, nfds, timeout);
    if (timeout < 0) __atomic_store_n(&w->sleeping, 0, __ATOMIC_RELAXED);
    if (n < 0 && errno != EINTR) break;
    if (fds[wake].revents) break;
    if (kick < nfds && fds[kick].revents) {
      uint64_t kicks;
      if (read(w->kick_fd, &kicks, sizeof kicks) < 0) { /* EAGAIN: another read took it */ }
      n--;
    }
    if (n <= 0 && !more_in && !more_out) {
      /* Spinning and nothing yet: let whatever else is runnable on this core go first (the
       * process we forward for, the other lab host's thread); spin on idle time only. */
      if (timeout == 0) sched_yield();
      continue;
    }
    uint64_t reads = spin_ns ? queue_reads(q) : 0;
    if (in) more_in = (fds[tun].revents || more_in) ? inside_drain(in, budget) : 0;
    if (out) more_out = (fds[udp].revents || (v6 && fds[udp6].revents) || more_out) ? outside_drain(out, budget) : 0;
    if (spin_ns && queue_reads(q) != reads) {
      __atomic_store_n(&q->last_active_ns, monotonic_ns(), __ATOMIC_SEQ_CST);
      struct worker *p = w->partner;
      uint64_t one = 1;
      if (p && __atomic_load_n(&p->sleeping, __ATOMIC_SEQ_CST) && write(p->kick_fd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is full of kicks already */
      }
    }
  }
  inside_free(in);
  outside_free(out);
  return NULL;
}

/* Stops and joins every thread started so far. */
static void stop_threads(struct running_engine *r) {
  struct engine *e = &r->e;
  uint64_t one = 1;
  __atomic_store_n(&e->stopping, 1, __ATOMIC_RELEASE);
  /* An eventfd write only fails if the counter would overflow, which one write cannot do. */
  if (write(e->wake_fd, &one, sizeof one) < 0) perror("weft engine: eventfd write");
  for (int i = 0; i < r->worker_count; i++) pthread_join(r->workers[i].thread, NULL);
  r->worker_count = 0;
  /* Every slot's, also of a queue whose second thread failed to start: no thread is left to
   * write to them. */
  for (size_t i = 0; i < sizeof r->workers / sizeof r->workers[0]; i++) {
    if (r->workers[i].kick_fd >= 0) close(r->workers[i].kick_fd);
    r->workers[i].kick_fd = -1;
  }
}

/* One thread for both directions (shared_thread), or one per direction. */
static int start_queue(struct running_engine *r, struct queue *q, char *err, size_t err_len) {
  static const char *const what[] = {"inside", "outside"};
  int wanted = r->e.opt.shared_thread ? 1 : 2;
  struct worker *first = &r->workers[r->worker_count];
  /* Both threads' kick fds and partners exist before either thread runs. */
  for (int t = 0; t < wanted; t++) {
    struct worker *w = first + t;
    *w = (struct worker){.q = q, .inside = wanted == 1 || t == 0, .outside = wanted == 1 || t == 1, .kick_fd = -1};
    if (wanted == 2 && r->e.opt.spin_us > 0) {
      w->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (w->kick_fd < 0) {
        snprintf(err, err_len, "cannot create an eventfd for queue %d: %s", q->index + 1, strerror(errno));
        return -1; /* stop_threads closes the kick fds made so far */
      }
      w->partner = first + (1 - t);
    }
  }
  for (int t = 0; t < wanted; t++) {
    struct worker *w = first + t;
    int rc = pthread_create(&w->thread, NULL, forward, w);
    if (rc != 0) {
      snprintf(err, err_len, "cannot start the %s thread of queue %d: %s", wanted == 1 ? "forwarding" : what[t],
               q->index + 1, strerror(rc));
      return -1;
    }
    /* Named so `top -H`, perf and the tests tell the engine's threads from Node's own pool. */
    char name[16];
    snprintf(name, sizeof name, "weft-q%d-%s", q->index, wanted == 1 ? "both" : t == 0 ? "in" : "out");
    pthread_setname_np(w->thread, name);
    r->worker_count++;
  }
  return 0;
}

struct engine *engine_open(const struct engine_options *opt, char *err, size_t err_len) {
  struct running_engine *r = calloc(1, sizeof *r);
  if (!r) {
    snprintf(err, err_len, "out of memory opening the engine");
    return NULL;
  }
  struct engine *e = &r->e;
  e->opt = *opt;
  if (e->opt.queues < 1) e->opt.queues = 1;
  if (e->opt.queues > WEFT_MAX_QUEUES) e->opt.queues = WEFT_MAX_QUEUES;
  e->wake_fd = -1;
  for (size_t i = 0; i < sizeof r->workers / sizeof r->workers[0]; i++) r->workers[i].kick_fd = -1;
  for (int i = 0; i < WEFT_MAX_QUEUES; i++) {
    e->queues[i].e = e;
    e->queues[i].index = i;
    e->queues[i].tun_fd = e->queues[i].udp_fd = e->queues[i].udp6_fd = -1;
  }
  if (e->opt.adopt) {
    /* Owned from here on, whatever happens: a failed open closes them with the rest. An IPv6
     * socket this engine does not use (the IPv6 underlay went away) is closed now. */
    for (int i = 0; i < e->opt.queues; i++) {
      e->queues[i].tun_fd = e->opt.adopt_tun[i];
      e->queues[i].udp_fd = e->opt.adopt_udp[i];
      if (e->opt.has_v6) e->queues[i].udp6_fd = e->opt.adopt_udp6[i];
      else if (e->opt.adopt_udp6[i] >= 0) close(e->opt.adopt_udp6[i]);
    }
  }
  routes_init(&e->routes);
  wg_init(&e->wg);
  wg_init(&e->wg6);
  e->wg6.index = 1;
  if (e->opt.mode == WEFT_MODE_WIREGUARD) {
    struct wg_table *tables[2] = {&e->wg, &e->wg6};
    for (int i = 0; i < 2; i++) {
      tables[i]->timers = e->opt.wg_timers;
      tables[i]->emit = e->opt.wg_emit;
      tables[i]->emit_ctx = e->opt.wg_emit_ctx;
    }
  }

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
  if (!e->opt.paused && engine_start(e, err, err_len) < 0) goto fail;
  return e;

fail:
  close_fds(e);
  routes_free(&e->routes);
  wg_free(&e->wg);
  wg_free(&e->wg6);
  free(r);
  return NULL;
}

int engine_start(struct engine *e, char *err, size_t err_len) {
  struct running_engine *r = (struct running_engine *)e;
  if (r->worker_count > 0) return 0;
  for (int i = 0; i < e->queue_count; i++) {
    if (start_queue(r, &e->queues[i], err, err_len) < 0) {
      stop_threads(r); /* the engine is stopping for good: close it */
      return -1;
    }
  }
  return 0;
}

void engine_detach(struct engine *e, struct engine_fds *out) {
  struct running_engine *r = (struct running_engine *)e;
  stop_threads(r);
  out->queues = e->queue_count;
  for (int i = 0; i < WEFT_MAX_QUEUES; i++) {
    struct queue *q = &e->queues[i];
    out->tun[i] = q->tun_fd;
    out->udp[i] = q->udp_fd;
    out->udp6[i] = q->udp6_fd;
    q->tun_fd = q->udp_fd = q->udp6_fd = -1;
  }
  close_fds(e);
  routes_free(&e->routes);
  wg_free(&e->wg);
  wg_free(&e->wg6);
  free(r);
}

void engine_close(struct engine *e) {
  struct running_engine *r = (struct running_engine *)e; /* e is its first member */
  stop_threads(r);
  close_fds(e);
  routes_free(&e->routes);
  wg_free(&e->wg);
  wg_free(&e->wg6);
  free(r);
}

uint64_t engine_counter(struct engine *e, enum weft_counter id) {
  uint64_t sum = 0;
  for (int i = 0; i < e->queue_count; i++) sum += __atomic_load_n(&e->queues[i].counters[id], __ATOMIC_RELAXED);
  return sum;
}
