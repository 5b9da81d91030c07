/* The peer table: subnet -> (PublicIP, VtepMAC), longest-prefix match, and PublicIP -> peer.
 * Entries are kept sorted by prefix length (longest first), then network, with one index
 * entry per distinct prefix length, so a lookup is a binary search per prefix length in use
 * (usually one: every lease has the same SubnetLen); a second index sorted by PublicIP finds a
 * sender's peer by binary search once there are more entries than a scan handles faster.
 *
 * The table owns its lock (a plain mutex: set/remove memmove and realloc the arrays under the
 * readers) and offers whole operations; callers never take it. Each operation holds it once:
 * routes_next_hop per TUN read, routes_read per recvmmsg() batch, set/remove per JS call. */
#ifndef WEFT_ROUTES_H
#define WEFT_ROUTES_H

#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "underlay_addr.h"


struct peer {
  uint32_t network;   /* host byte order, host bits zero */
  uint8_t prefix;
  uint8_t has_mac;
  uint8_t mac[6];     /* the peer's VtepMAC (vxlan mode) */
  uint32_t public_ip; /* host byte order */
  struct sockaddr_in addr; /* public_ip:port, ready for sendmmsg */
  uint32_t wg_peer;   /* wireguard mode: the session table's peer (AllowedIPs -> peer); 0: none */
};

/* An IPv6 subnet of a peer: userspace vxlan over an IPv6 underlay (as flannel-v6.<VNI>): its
 * PublicIPv6 and the VtepMAC of its BackendV6Data; wireguard mode: the peer of the IPv6
 * interface's session table it is an AllowedIP of (as flannel-wg-v6). */
struct peer6 {
  uint8_t network[16]; /* network byte order, host bits zero */
  uint8_t prefix;      /* 0..128 */
  uint8_t mac[6];
  uint8_t public_ip[16];
  struct sockaddr_in6 addr; /* public_ip:port */
  uint32_t wg_peer;    /* wireguard mode: the peer id in the IPv6 interface's table (wg6); 0: none */
};

/* What a packet needs from its peer, copied out so the lock is not held across I/O. */
struct next_hop {
  struct sockaddr_in addr;
  uint8_t mac[6];
  uint32_t wg_peer;
};

struct next_hop6 {
  struct sockaddr_in6 addr;
  uint8_t mac[6];
  uint32_t wg_peer;
};

struct prefix_group {
  uint8_t prefix;
  uint32_t mask;
  size_t start, count;
};

/* PublicIP -> index of its first entry in peers[] (sort order), one per distinct PublicIP. */
struct sender {
  uint32_t public_ip;
  uint32_t index;
};

struct route_table {
  pthread_mutex_t lock; /* routes.c's own: held only inside the operations below, never across I/O */
  struct peer *peers;
  struct sender *senders; /* sorted by public_ip; same capacity as peers */
  size_t count, capacity, sender_count;
  struct prefix_group groups[33];
  size_t group_count;
  /* IPv6 peers, longest prefix first, then network: a lookup is a scan to the first entry that
   * covers the address. Clusters have tens to hundreds of leases, and a scan of a few hundred
   * 16-byte compares per TUN read (a whole super-packet) or per received message is cheap next
   * to the syscalls; the IPv4 side's per-prefix binary search can be added if that changes. */
  struct peer6 *peers6;
  size_t count6, capacity6;
};

void routes_init(struct route_table *t);
void routes_free(struct route_table *t);
/* Adds or replaces the entry for (network, prefix). Returns 0, or -1 when out of memory. */
int routes_set(struct route_table *t, const struct peer *p);
/* Returns 1 if an entry was removed, 0 if there was none. */
int routes_remove(struct route_table *t, uint32_t network, uint8_t prefix);
/* Longest-prefix match of a host-order address, copied into *hop. Returns 1, or 0 if no entry
 * covers it. */
int routes_next_hop(struct route_table *t, uint32_t address, struct next_hop *hop);

/* IPv6: the same operations. routes_set6 returns 0, or -1 when out of memory. */
int routes_set6(struct route_table *t, const struct peer6 *p);
int routes_remove6(struct route_table *t, const uint8_t network[16], uint8_t prefix);
int routes_next_hop6(struct route_table *t, const uint8_t address[16], struct next_hop6 *hop);

/* Runs fn(t, ctx) with the table held still (under its lock), so a whole batch of checks costs
 * one lock. fn may call only the two lookups below, must not block, and must not keep the
 * pointers they return after it returns. */
void routes_read(struct route_table *t, void (*fn)(const struct route_table *t, void *ctx), void *ctx);
/* Longest-prefix match of a host-order address; NULL if no entry covers it. Only within routes_read. */
const struct peer *routes_lookup(const struct route_table *t, uint32_t address);
/* Longest-prefix match of an IPv6 address; NULL if no entry covers it. Only within routes_read. */
const struct peer6 *routes_lookup6(const struct route_table *t, const uint8_t address[16]);
/* The first entry whose PublicIPv6 is `public_ip`; NULL: not a peer. Only within routes_read. */
const struct peer6 *routes_sender_peer6(const struct route_table *t, const uint8_t public_ip[16]);
/* Whether `address` lies in the IPv6 subnet network/prefix. */
int ip6_in_subnet(const uint8_t address[16], const uint8_t network[16], uint8_t prefix);

/* Binary search of the PublicIP index; use routes_sender_peer. */
const struct peer *routes_sender_search(const struct route_table *t, uint32_t public_ip);
/* Up to this many entries a scan of peers[] beats the index (measured; it is inlined). */
#define ROUTES_SCAN_MAX 16
/* The first entry (in table order) whose PublicIP is `public_ip`; NULL: not a peer. Only within
 * routes_read. Once per received message: a few entries are scanned as they lie, more are
 * found in the PublicIP index. */
static inline const struct peer *routes_sender_peer(const struct route_table *t, uint32_t public_ip) {
  if (t->count > ROUTES_SCAN_MAX) return routes_sender_search(t, public_ip);
  for (size_t i = 0; i < t->count; i++)
    if (t->peers[i].public_ip == public_ip) return &t->peers[i];
  return NULL;
}

#endif
