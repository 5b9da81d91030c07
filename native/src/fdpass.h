/* fd hand-over between a daemon, the holder it leaves behind and the next daemon (fdpass.c). */
#ifndef WEFT_FDPASS_H
#define WEFT_FDPASS_H

#include <stddef.h>

/* The most fds one hand-over carries: every queue's TUN fd and two sockets. */
#define FDPASS_MAX 32

/* A listening AF_UNIX stream socket at path (a stale one is replaced), mode 0600; -1 and err on failure. */
int fdpass_listen(const char *path, char *err, size_t err_len);
/* Waits up to timeout_ms for a process of our user to connect and sends it the fds. 1: handed
 * over, 0: nobody came in time, -1: error. */
int fdpass_serve(int listen_fd, const int *fds, int count, int timeout_ms, char *err, size_t err_len);
/* Connects to a holder at path and takes its fds (FD_CLOEXEC). Their count; 0 when nobody
 * listens there; -1 and err when a holder answered wrongly or not in timeout_ms. */
int fdpass_receive(const char *path, int *fds, int max, int timeout_ms, char *err, size_t err_len);

#endif
