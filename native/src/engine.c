/* Engine lifecycle: create the devices (inside the requested network namespace), start the
 * inside and outside threads, and tear everything down again without leaking fds or threads. */
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
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
  if (e->tun_fd >= 0) close(e->tun_fd);
  if (e->udp_fd >= 0) close(e->udp_fd);
  if (e->wake_fd >= 0) close(e->wake_fd);
  e->tun_fd = e->udp_fd = e->wake_fd = -1;
}

struct engine *engine_open(const struct engine_options *opt, char *err, size_t err_len) {
  struct engine *e = calloc(1, sizeof *e);
  if (!e) {
    snprintf(err, err_len, "out of memory opening the engine");
    return NULL;
  }
  e->opt = *opt;
  e->tun_fd = e->udp_fd = e->wake_fd = -1;
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

  rc = pthread_create(&e->inside_thread, NULL, inside_run, e);
  if (rc != 0) {
    snprintf(err, err_len, "cannot start the inside thread: %s", strerror(rc));
    goto fail;
  }
  rc = pthread_create(&e->outside_thread, NULL, outside_run, e);
  if (rc != 0) {
    snprintf(err, err_len, "cannot start the outside thread: %s", strerror(rc));
    uint64_t one = 1;
    __atomic_store_n(&e->stopping, 1, __ATOMIC_RELEASE);
    if (write(e->wake_fd, &one, sizeof one) < 0) perror("weft engine: eventfd write");
    pthread_join(e->inside_thread, NULL);
    goto fail;
  }
  e->threads_started = 1;
  return e;

fail:
  close_fds(e);
  pthread_mutex_destroy(&e->routes_lock);
  routes_free(&e->routes);
  free(e);
  return NULL;
}

void engine_close(struct engine *e) {
  if (e->threads_started) {
    uint64_t one = 1;
    __atomic_store_n(&e->stopping, 1, __ATOMIC_RELEASE);
    /* An eventfd write only fails if the counter would overflow, which one write cannot do. */
    if (write(e->wake_fd, &one, sizeof one) < 0) perror("weft engine: eventfd write");
    pthread_join(e->inside_thread, NULL);
    pthread_join(e->outside_thread, NULL);
    e->threads_started = 0;
  }
  close_fds(e);
  pthread_mutex_destroy(&e->routes_lock);
  routes_free(&e->routes);
  free(e);
}
