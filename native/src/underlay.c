/* The outside socket: UDP bound to the underlay interface address and the configured port,
 * with UDP_GRO (receive super-datagrams) and UDP_SEGMENT (send super-datagrams) when the
 * kernel has them. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"

#ifndef SOL_UDP
#define SOL_UDP 17
#endif

int underlay_open(struct engine *e, char *err, size_t err_len) {
  char address[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &e->opt.bind_address, address, sizeof address);
  /* Blocking for sends (natural back-pressure when the socket buffer is full);
   * receives use MSG_DONTWAIT after poll(). */
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    snprintf(err, err_len, "cannot create a UDP socket: %s", strerror(errno));
    return -1;
  }
  if (e->opt.socket_buffer > 0) {
    int size = e->opt.socket_buffer;
    /* FORCE needs CAP_NET_ADMIN, which we have; fall back to the capped variant otherwise. */
    if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
      setsockopt(s, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    if (setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
      setsockopt(s, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  }
  if (e->opt.offloads) {
    int one = 1;
    e->udp_gro = setsockopt(s, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
    int zero = 0;
    /* Probing with size 0 leaves per-message segmentation to the cmsg. */
    e->udp_gso = setsockopt(s, SOL_UDP, UDP_SEGMENT, &zero, sizeof zero) == 0;
  }
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(e->opt.port);
  a.sin_addr = e->opt.bind_address;
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) {
    int saved = errno;
    snprintf(err, err_len, "cannot bind UDP %s:%u: %s%s", address, e->opt.port, strerror(saved),
             saved == EADDRINUSE     ? " (another weft/flanneld or a kernel vxlan device uses this port?)"
             : saved == EADDRNOTAVAIL ? " (the address is not on any interface of this namespace)"
                                     : "");
    close(s);
    return -1;
  }
  e->udp_fd = s;
  return 0;
}
