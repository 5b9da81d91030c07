/* The packet syscalls of the data path, kept apart from the code that decides and rewrites
 * packets (inside.c, outside.c, icmp.c) so that code can be fuzzed without devices: the
 * harnesses in ../fuzz link their own io functions instead of this file. */
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "datapath.h"

ssize_t io_tun_read(struct queue *q, void *buf, size_t len) { return read(q->tun_fd, buf, len); }

ssize_t io_tun_write(struct queue *q, const void *frame, size_t len) { return write(q->tun_fd, frame, len); }

ssize_t io_tun_writev(struct queue *q, const struct iovec *iov, int n) { return writev(q->tun_fd, iov, n); }

int io_recv(struct queue *q, int v6, struct mmsghdr *msgs, unsigned n) {
  return recvmmsg(v6 ? q->udp6_fd : q->udp_fd, msgs, n, MSG_DONTWAIT, NULL);
}

int io_send(struct queue *q, int v6, struct mmsghdr *msgs, unsigned n) {
  return sendmmsg(v6 ? q->udp6_fd : q->udp_fd, msgs, n, 0);
}
