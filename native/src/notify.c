/* sd_notify(3), the protocol only: systemd reads one AF_UNIX SOCK_DGRAM datagram per message
 * and takes the sender's PID from the kernel's SCM_CREDENTIALS (NotifyAccess=main compares it
 * with the main PID, so this must run in the daemon's own process, which it does). */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int notify_send(const char *socket_path, const char *state, size_t state_len, char *err, size_t err_len) {
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
  ssize_t sent;
  do sent = sendto(fd, state, state_len, MSG_NOSIGNAL, (struct sockaddr *)&addr, addr_len);
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
