/* Handing a data path's fds from one process to the next (docs/dataplane.md "Restarts"): a
 * holder process listens on an AF_UNIX stream socket in the state directory and gives the fds
 * (SCM_RIGHTS) to the first connecting process of its own user; the new daemon connects and
 * takes them. While the fds are held nobody reads them, and the kernel keeps what arrives
 * queued on the TUN and the sockets instead of dropping it. */
#include "fdpass.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int unix_address(const char *path, struct sockaddr_un *addr, char *err, size_t err_len) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (path[0] != '/' || strlen(path) >= sizeof addr->sun_path) {
    snprintf(err, err_len, "hand-over socket path \"%s\" must be absolute and shorter than %zu bytes", path,
             sizeof addr->sun_path);
    return -1;
  }
  memcpy(addr->sun_path, path, strlen(path) + 1);
  return 0;
}

/* The other end runs as our user (root for the daemon): anyone else gets nothing. */
static int same_user(int fd) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == geteuid();
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fdpass_listen(const char *path, char *err, size_t err_len) {
  struct sockaddr_un addr;
  if (unix_address(path, &addr, err, err_len) < 0) return -1;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, err_len, "cannot create the hand-over socket: %s", strerror(errno));
    return -1;
  }
  unlink(path); /* a stale socket of a holder that died */
  /* Owner-only from the first moment: bind under a umask that leaves no group/other bits. */
  mode_t old = umask(0077);
  int rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
  int saved = errno;
  umask(old);
  if (rc < 0 || listen(fd, 4) < 0) {
    if (rc == 0) saved = errno;
    snprintf(err, err_len, "cannot listen on the hand-over socket %s: %s", path, strerror(saved));
    close(fd);
    return -1;
  }
  return fd;
}

int fdpass_serve(int listen_fd, const int *fds, int count, int timeout_ms, char *err, size_t err_len) {
  if (count < 1 || count > FDPASS_MAX) {
    snprintf(err, err_len, "can hand over 1..%d fds, not %d", FDPASS_MAX, count);
    return -1;
  }
  int64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left <= 0) return 0;
    struct pollfd p = {.fd = listen_fd, .events = POLLIN};
    int ready = poll(&p, 1, (int)left);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) {
      snprintf(err, err_len, "poll on the hand-over socket: %s", strerror(errno));
      return -1;
    }
    if (ready == 0) return 0;
    int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) continue;
    if (!same_user(conn)) {
      close(conn);
      continue;
    }
    uint32_t n = (uint32_t)count;
    struct iovec iov = {.iov_base = &n, .iov_len = sizeof n};
    union {
      char buf[CMSG_SPACE(sizeof(int) * FDPASS_MAX)];
      struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)count)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)count);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)count);
    ssize_t sent;
    do sent = sendmsg(conn, &msg, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    close(conn);
    if (sent == (ssize_t)sizeof n) return 1;
    /* That one went away before it got them: keep holding for the next. */
  }
}

int fdpass_receive(const char *path, int *fds, int max, int timeout_ms, char *err, size_t err_len) {
  struct sockaddr_un addr;
  if (unix_address(path, &addr, err, err_len) < 0) return -1;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, err_len, "cannot create a socket to take the hand-over: %s", strerror(errno));
    return -1;
  }
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    int saved = errno;
    close(fd);
    if (saved == ENOENT || saved == ECONNREFUSED) return 0; /* nobody holds anything */
    snprintf(err, err_len, "cannot connect to the hand-over socket %s: %s", path, strerror(saved));
    return -1;
  }
  if (!same_user(fd)) {
    close(fd);
    snprintf(err, err_len, "the hand-over socket %s belongs to another user: ignored", path);
    return -1;
  }
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int ready;
  do ready = poll(&p, 1, timeout_ms);
  while (ready < 0 && errno == EINTR);
  if (ready <= 0) {
    close(fd);
    snprintf(err, err_len, "the holder at %s did not hand over within %d ms", path, timeout_ms);
    return -1;
  }
  uint32_t n = 0;
  struct iovec iov = {.iov_base = &n, .iov_len = sizeof n};
  union {
    char buf[CMSG_SPACE(sizeof(int) * FDPASS_MAX)];
    struct cmsghdr align;
  } control;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  ssize_t got;
  do got = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  while (got < 0 && errno == EINTR);
  int saved = errno;
  close(fd);
  int received = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); got > 0 && c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    const int *in = (const int *)CMSG_DATA(c);
    for (int i = 0; i < k; i++) {
      if (received < max) fds[received++] = in[i];
      else close(in[i]);
    }
  }
  if (got != (ssize_t)sizeof n || (msg.msg_flags & MSG_CTRUNC) || received != (int)n) {
    for (int i = 0; i < received; i++) close(fds[i]);
    snprintf(err, err_len, "the hand-over from %s was incomplete (%s)", path, got < 0 ? strerror(saved) : "fds missing");
    return -1;
  }
  return received;
}
