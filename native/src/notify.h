/* sd_notify(3) without libsystemd: one datagram to the service manager's notification socket.
 * Has nothing to do with the data path; it lives in this addon because Node cannot send on a
 * unix datagram socket. */
#ifndef WEFT_NOTIFY_H
#define WEFT_NOTIFY_H

#include <stddef.h>

/* Sends `state` (e.g. "READY=1\nSTATUS=...") to `socket_path`: an absolute path, or "@name" for
 * an abstract socket (as $NOTIFY_SOCKET gives it). Returns 0, or -1 with a message naming the
 * socket and the failed call written into err. Never raises SIGPIPE; the socket is closed again. */
int notify_send(const char *socket_path, const char *state, size_t state_len, char *err, size_t err_len);
/* The same with fds attached (SCM_RIGHTS): "FDSTORE=1\nFDNAME=..." puts them in the unit's fd
 * store, which systemd keeps across a restart and hands back as LISTEN_FDS. fd_count 0: as notify_send. */
int notify_send_fds(const char *socket_path, const char *state, size_t state_len, const int *fds, int fd_count,
                    char *err, size_t err_len);

#endif
