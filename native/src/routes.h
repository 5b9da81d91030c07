/* The peer table: subnet -> (PublicIP, VtepMAC), longest-prefix match.
 * Entries are kept sorted by prefix length (longest first), then network, with one index
 * entry per distinct prefix length, so a lookup is a binary search per prefix length in use
 * (usually one: every lease has the same SubnetLen). Not thread-safe by itself: the engine
 * holds routes_lock around every call. */
#ifndef WEFT_ROUTES_H
#define WEFT_ROUTES_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

struct peer {
  uint32_t network;   /* host byte order, host bits zero */
  uint8_t prefix;
  uint8_t has_mac;
  uint8_t mac[6];     /* the peer's VtepMAC (vxlan mode) */
  uint32_t public_ip; /* host byte order */
  struct sockaddr_in addr; /* public_ip:port, ready for sendmmsg */
};

struct prefix_group {
  uint8_t prefix;
  uint32_t mask;
  size_t start, count;
};

struct route_table {
  struct peer *peers;
  size_t count, capacity;
  struct prefix_group groups[33];
  size_t group_count;
};

void routes_init(struct route_table *t);
void routes_free(struct route_table *t);
/* Adds or replaces the entry for (network, prefix). Returns 0, or -1 when out of memory. */
int routes_set(struct route_table *t, const struct peer *p);
/* Returns 1 if an entry was removed, 0 if there was none. */
int routes_remove(struct route_table *t, uint32_t network, uint8_t prefix);
/* Longest-prefix match of a host-order address; NULL if no entry covers it. */
const struct peer *routes_lookup(const struct route_table *t, uint32_t address);
/* Whether any entry has this PublicIP (only used to name a drop reason). */
int routes_has_public_ip(const struct route_table *t, uint32_t public_ip);

#endif
