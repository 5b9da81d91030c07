/* The data path's shared header: buffer geometry, counters, the engine state the packet code
 * and the devices read (struct engine, struct queue), the packet syscalls (io_*) and count().
 * Included by every file below engine.c (inside.c, outside.c, icmp.c, io.c, tun.c, underlay.c)
 * and by the lifecycle header engine.h; it includes only routes.h and wireguard.h, never a header above it.
 * See ../README.md for the threads, buffers and flow. */
#ifndef WEFT_DATAPATH_H
#define WEFT_DATAPATH_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/types.h>

#include "routes.h"
#include "wireguard.h"

enum weft_mode { WEFT_MODE_UDP = 0, WEFT_MODE_VXLAN = 1, WEFT_MODE_WIREGUARD = 2 };

/* Bytes of the virtio_net_hdr that precedes every packet on a IFF_VNET_HDR TUN. */
#define VNET_HDR_LEN 10
#define VXLAN_HDR_LEN 8
#define ETH_HDR_LEN 14
/* The biggest header weft writes in front of an inner packet (vxlan: VXLAN + inner Ethernet).
 * Outer IPv4 + UDP are added by the kernel. */
#define ENCAP_MAX (VXLAN_HDR_LEN + ETH_HDR_LEN)
/* Headroom in front of every packet buffer: room for ENCAP_MAX (egress) or the virtio
 * header (ingress), rounded up so the inner IP header stays 4-byte aligned in both modes. */
#define HEADROOM 32
/* Largest IPv4 packet, largest UDP datagram we may receive (GRO super-datagrams included). */
#define MAX_IP_PACKET 65535
#define IP6_HDR_LEN 40
/* The largest ICMPv6 error: it must fit the IPv6 minimum MTU (RFC 4443 2.4(c)). */
#define IP6_MIN_MTU 1280
#define BUF_SIZE (HEADROOM + 65536 + 64)
/* Keep each UDP GSO message under the 65507-byte UDP payload limit and the kernel's
 * UDP_MAX_SEGMENTS (64 on older kernels). */
#define GSO_MAX_PAYLOAD 65000
#define GSO_MAX_SEGMENTS 64
/* More queues than cores only add context switches; 8 leaves room for bigger hosts. */
#define WEFT_MAX_QUEUES 8

/* Every counter, in the order the addon exports them (counterNames()). Every queue has its
 * own set, written only by that queue's threads (inside.* by its inside thread, outside.* by
 * its outside one, or both by its one shared thread); counters() sums the queues. */
#define WEFT_COUNTERS(X)                                                   \
  X(INSIDE_PACKETS, "inside.packets")                                      \
  X(INSIDE_BYTES, "inside.bytes")                                          \
  X(INSIDE_TUN_READS, "inside.tun_reads")                                  \
  X(INSIDE_SUPER_PACKETS, "inside.super_packets")                          \
  X(INSIDE_SEND_CALLS, "inside.send_calls")                                \
  X(INSIDE_DATAGRAMS, "inside.datagrams")                                  \
  X(INSIDE_ICMP_SENT, "inside.icmp_sent")                                  \
  X(INSIDE_DROP_NO_ROUTE, "inside.drop.no_route")                          \
  X(INSIDE_DROP_TTL_EXCEEDED, "inside.drop.ttl_exceeded")                  \
  X(INSIDE_DROP_NOT_IPV4, "inside.drop.not_ipv4")                          \
  X(INSIDE_DROP_MALFORMED, "inside.drop.malformed")                        \
  X(INSIDE_DROP_UNSUPPORTED_OFFLOAD, "inside.drop.unsupported_offload")    \
  X(INSIDE_DROP_SEND_ERROR, "inside.drop.send_error")                      \
  X(OUTSIDE_PACKETS, "outside.packets")                                    \
  X(OUTSIDE_BYTES, "outside.bytes")                                        \
  X(OUTSIDE_RECV_CALLS, "outside.recv_calls")                              \
  X(OUTSIDE_DATAGRAMS, "outside.datagrams")                                \
  X(OUTSIDE_TUN_WRITES, "outside.tun_writes")                              \
  X(OUTSIDE_COALESCED, "outside.coalesced_packets")                        \
  X(OUTSIDE_DROP_UNKNOWN_SENDER, "outside.drop.unknown_sender")            \
  X(OUTSIDE_DROP_SOURCE_NOT_IN_SUBNET, "outside.drop.source_not_in_subnet") \
  X(OUTSIDE_DROP_TRUNCATED, "outside.drop.truncated")                      \
  X(OUTSIDE_DROP_OVERSIZED, "outside.drop.oversized")                      \
  X(OUTSIDE_DROP_BAD_VXLAN_FLAGS, "outside.drop.bad_vxlan_flags")          \
  X(OUTSIDE_DROP_WRONG_VNI, "outside.drop.wrong_vni")                      \
  X(OUTSIDE_DROP_WRONG_DST_MAC, "outside.drop.wrong_dst_mac")              \
  X(OUTSIDE_DROP_NOT_IPV4, "outside.drop.not_ipv4")                        \
  X(OUTSIDE_DROP_MALFORMED, "outside.drop.malformed")                      \
  X(OUTSIDE_DROP_TTL_EXCEEDED, "outside.drop.ttl_exceeded")                \
  X(OUTSIDE_DROP_TUN_WRITE_ERROR, "outside.drop.tun_write_error")           \
  X(INSIDE_DROP_NO_SESSION, "inside.drop.no_session")                      \
  X(INSIDE_STAGED, "inside.staged")                                        \
  X(OUTSIDE_STAGED_SENT, "outside.staged_sent")                            \
  X(INSIDE_DROP_ENCRYPT_ERROR, "inside.drop.encrypt_error")                \
  X(OUTSIDE_HANDSHAKE_MESSAGES, "outside.handshake_messages")              \
  X(OUTSIDE_KEEPALIVES, "outside.keepalives")                              \
  X(OUTSIDE_DROP_UNKNOWN_TYPE, "outside.drop.unknown_type")                \
  X(OUTSIDE_DROP_UNKNOWN_SESSION, "outside.drop.unknown_session")          \
  X(OUTSIDE_DROP_EXPIRED_SESSION, "outside.drop.expired_session")          \
  X(OUTSIDE_DROP_BAD_MAC, "outside.drop.bad_mac")                          \
  X(OUTSIDE_DROP_REPLAY, "outside.drop.replay")                            \
  X(OUTSIDE_DROP_HANDSHAKE_QUEUE_FULL, "outside.drop.handshake_queue_full") \
  X(INSIDE_IPV6_PACKETS, "inside.ipv6_packets")                            \
  X(INSIDE_DROP_TOO_BIG, "inside.drop.too_big")                            \
  X(OUTSIDE_IPV6_PACKETS, "outside.ipv6_packets")

#define WEFT_COUNTER_ENUM(id, name) C_##id,
enum weft_counter { WEFT_COUNTERS(WEFT_COUNTER_ENUM) C_COUNT };
#undef WEFT_COUNTER_ENUM

/* What engine_open (engine.h) is given; the engine keeps a copy that the devices and the packet
 * code read (here, not in engine.h, so they need nothing from the lifecycle's header). */
struct engine_options {
  enum weft_mode mode;
  char tun_name[16];       /* may hold a kernel template such as "flannel%d" */
  char netns_path[256];    /* empty: the caller's namespace */
  struct in_addr bind_address;
  uint16_t port;           /* bound locally and sent to on every peer */
  uint32_t vni;
  uint8_t vtep_mac[6];
  int mtu;                 /* 0: leave the kernel default */
  struct in_addr icmp_source; /* source of ICMP errors written into the TUN; 0: don't send */
  /* IPv6 (vxlan and wireguard mode): the underlay address the IPv6 socket binds to (has_v6: one
   * is open per queue and IPv6 peers may be set), on port6 (wireguard: ListenPortV6, the second
   * interface's; 0: port), the source of ICMPv6 errors written into the TUN (the
   * TUN's own IPv6 address; has_icmp6_source 0: none), and the largest inner IPv6 packet the
   * IPv6 underlay carries unfragmented (bigger ones get ICMPv6 packet-too-big; 0: mtu). */
  int has_v6;
  struct in6_addr bind_address6;
  uint16_t port6;
  /* wireguard mode with has_v6: the IPv6 sockets serve the one interface e->wg (flanneld's Modes
   * "auto"/"ipv4"/"ipv6": one device, both subnets per peer, port6 = port) instead of the second
   * interface e->wg6 (Mode "separate"); the IPv6 routes then name e->wg's peers. */
  int wg_shared;
  int has_icmp6_source;
  struct in6_addr icmp6_source;
  int mtu6;
  int offloads;            /* 1: IFF_VNET_HDR + TSO/USO + UDP GSO/GRO (default); 0: one packet per syscall */
  int socket_buffer;       /* SO_RCVBUF/SO_SNDBUF bytes; 0: kernel default */
  int queues;              /* 1..WEFT_MAX_QUEUES; >1: IFF_MULTI_QUEUE TUN + SO_REUSEPORT sockets */
  int shared_thread;       /* 1: one thread per queue serves both directions; 0: one per direction */
  /* After a queue moved packets, its threads poll without sleeping for this long before they
   * block (0: block at once). An idle host's wake-ups cost tens of µs each in a VM; a reply
   * that comes within the window is picked up without one. An idle queue never spins. */
  int spin_us;
  /* Restarts that drop nothing (docs/dataplane.md "Restarts"): persist sets TUNSETPERSIST, so
   * the device, its addresses and routes outlive this process (a killed daemon's successor
   * re-attaches by name); adopt takes the fds a previous engine detached (engine_detach) instead
   * of opening new ones: the packets queued on them meanwhile are forwarded, not lost, once
   * paused (set with adopt) lets the caller set the peers before the first of them is read. */
  int persist;
  int paused;              /* 1: no thread starts until engine_start (routes can be set first) */
  int adopt;
  int adopt_tun[WEFT_MAX_QUEUES];
  int adopt_udp[WEFT_MAX_QUEUES];
  int adopt_udp6[WEFT_MAX_QUEUES]; /* -1 without an IPv6 underlay */
  struct wg_timers wg_timers; /* wireguard mode: the protocol's timers */
  wg_emit_fn wg_emit;      /* wireguard mode: where handshake messages and notices go (addon.c) */
  void *wg_emit_ctx;
};

struct engine;

/* One queue: its own TUN queue fd and socket, its counters. Cache-line aligned so the
 * counters of different queues never share a line. Its thread(s) are engine.c's business. */
struct queue {
  struct engine *e;
  int index;
  int tun_fd;
  int udp_fd;
  int udp_gso;             /* UDP_SEGMENT usable on this socket; cleared if the kernel rejects it */
  int udp6_fd;             /* the IPv6 underlay socket (opt.has_v6), else -1 */
  int udp6_gso;            /* as udp_gso, for udp6_fd */
  uint64_t last_active_ns; /* CLOCK_MONOTONIC when a thread of this queue last moved packets (atomic) */
  uint64_t counters[C_COUNT];
} __attribute__((aligned(64)));

/* Set up by engine_open (the device fields by tun.c and underlay.c); only the route table,
 * the per-queue udp_gso and counters, and `stopping` change while the threads run. */
struct engine {
  struct engine_options opt;
  char tun_name[16];       /* the name the kernel gave the device */
  int wake_fd;             /* eventfd: written once by engine_close to stop every thread */
  int vnet_hdr;            /* TUN carries a virtio_net_hdr (offloads on) */
  int tun_uso;             /* TUN may hand us UDP super-packets (USO4|USO6 accepted) */
  int udp_gso;             /* UDP_SEGMENT accepted by the sockets when they were opened */
  int udp_gro;             /* UDP_GRO enabled on the sockets */
  int reuseport_flow;      /* queues > 1: datagrams go to the socket of their inner flow (CBPF) */

  struct route_table routes; /* owns its lock: use only its operations (routes.h) */
  struct wg_table wg;        /* wireguard mode: sessions; owns its lock (wireguard.h) */
  /* wireguard mode with has_v6: the IPv6 interface (flanneld's flannel-wg-v6 in Mode "separate"):
   * its own peers and sessions, served on the IPv6 sockets, routed to by the IPv6 peer table. */
  struct wg_table wg6;

  int stopping;            /* set (atomically) before wake_fd is written; busy loops check it */

  int queue_count;
  struct queue queues[WEFT_MAX_QUEUES];
};

/* The data path's packet syscalls (io.c): inside.c, outside.c and icmp.c make no others, so the
 * fuzz harnesses (../fuzz) link their own versions and drive the real packet code without a TUN
 * or a socket. Each returns what its syscall returns, errno set. */
ssize_t io_tun_read(struct queue *q, void *buf, size_t len);
ssize_t io_tun_write(struct queue *q, const void *frame, size_t len);
/* One frame gathered from `n` pieces (outside.c: a virtio header and payloads left in place). */
ssize_t io_tun_writev(struct queue *q, const struct iovec *iov, int n);
/* v6: the queue's IPv6 socket (udp6_fd) instead of its IPv4 one. */
int io_recv(struct queue *q, int v6, struct mmsghdr *msgs, unsigned n);
int io_send(struct queue *q, int v6, struct mmsghdr *msgs, unsigned n);

static inline int engine_stopping(struct engine *e) { return __atomic_load_n(&e->stopping, __ATOMIC_ACQUIRE); }

/* Single writer per counter: a relaxed load+store, no locked instruction on the hot path. */
static inline void count(struct queue *q, enum weft_counter id, uint64_t n) {
  __atomic_store_n(&q->counters[id], q->counters[id] + n, __ATOMIC_RELAXED);
}

#endif
