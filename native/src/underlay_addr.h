/* An underlay address of either family, ready for sendmmsg: shared by the route table
 * (routes.h) and WireGuard's session table (wireguard.h), which both hand one to a send. */
#ifndef WEFT_UNDERLAY_ADDR_H
#define WEFT_UNDERLAY_ADDR_H

#include <netinet/in.h>
#include <sys/socket.h>

union underlay_addr {
  struct sockaddr sa;
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
};

#endif
