/* sd_notify(3), the protocol only: systemd reads one AF_UNIX SOCK_DGRAM datagram per message
 * and takes the sender's PID from the kernel's SCM_CREDENTIALS (NotifyAccess=main compares it
 * with the main PID, so this must run in the daemon's own process, which it does). */
#include "notify.h"

#define NOTIFY_MAX_FDS 32

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int notify_send(const char *socket_path, const char *state, size_t state_len, char *err, size_t err_len) {
  return notify_send_fds(socket_path, state, state_len, NULL, 0, err, err_len);
}

int notify_send_fds(const char *socket_path, const char *state, size_t state_len, const int *fds, int fd_count,
                    char *err, size_t err_len) {
  if (fd_count < 0 || fd_count > NOTIFY_MAX_FDS) {
    snprintf(err, err_len, "can pass 0..%d fds to NOTIFY_SOCKET, not %d", NOTIFY_MAX_FDS, fd_count);
    return -1;
  }
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  size_t path_len = strlen(socket_path);
  /* An abstract name may use every byte of sun_path after the leading NUL; a path needs its NUL. */
  if ((socket_path[0] != '/' && socket_path[0] != '@') || path_len < 2 ||
      path_len > sizeof addr.sun_path - (socket_path[0] == '/' ? 1 : 0)) {
    snprintf(err, err_len, "NOTIFY_SOCKET \"%s\" is neither an absolute path nor an @abstract name of at most %zu bytes",
             socket_path, sizeof addr.sun_path - 1);
    return -1;
  }
  memcpy(addr.sun_path, socket_path, path_len);
  if (socket_path[0] == '@') addr.sun_path[0] = '\0';
  /* Abstract names are not NUL-terminated: the address length says where they end. */
  socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len + (socket_path[0] == '/' ? 1 : 0));

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, err_len, "socket(AF_UNIX, SOCK_DGRAM) for NOTIFY_SOCKET %s: %s", socket_path, strerror(errno));
    return -1;
  }
  struct iovec iov = {.iov_base = (void *)state, .iov_len = state_len};
  union {
    char buf[CMSG_SPACE(sizeof(int) * NOTIFY_MAX_FDS)];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof control);
  struct msghdr msg = {.msg_name = &addr, .msg_namelen = addr_len, .msg_iov = &iov, .msg_iovlen = 1};
  if (fd_count > 0) {
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)fd_count);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)fd_count);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)fd_count);
  }
  ssize_t sent;
  do sent = sendmsg(fd, &msg, MSG_NOSIGNAL);
  while (sent < 0 && errno == EINTR);
  int saved = errno;
  close(fd);
  if (sent < 0) {
    snprintf(err, err_len, "sendto NOTIFY_SOCKET %s: %s", socket_path, strerror(saved));
    return -1;
  }
  if ((size_t)sent != state_len) {
    snprintf(err, err_len, "sendto NOTIFY_SOCKET %s: sent %zd of %zu bytes", socket_path, sent, state_len);
    return -1;
  }
  return 0;
}
