/* outside: datagrams from the underlay in to the TUN device (the containers' side).
 *
 *  1. Once the forwarding loop (engine.c) sees a socket readable: recvmmsg() until EAGAIN
 *     (or the budget), the IPv4 socket's then (vxlan with IPv6 peers) the IPv6 socket's. With UDP_GRO one message is a super-datagram of equal-sized datagrams
 *     (size in a cmsg). Each lands HEADROOM bytes into its buffer, leaving room for the
 *     virtio_net_hdr.
 *  2. In one routes_read() (the route table held still: one lock per batch), for every
 *     datagram: the sender must be the PublicIP of a current peer; vxlan mode checks flags,
 *     VNI, inner destination MAC and ethertype and strips the 22 header bytes; the inner
 *     IPv4 header must be sane and its source must lie in that peer's subnet; udp mode
 *     decrements TTL. vxlan over the IPv6 socket: the sender must be a peer's PublicIPv6, the
 *     inner frame IPv6 (ethertype 0x86dd) and its source in that peer's IPv6 subnet; an inner
 *     family that does not match the socket's is no peer's (flannel-v6.<VNI> carries IPv6 only,
 *     flannel.<VNI> IPv4 only). Anything else is dropped and counted by reason. Accepted packets are
 *     listed, not moved.
 *  3. Without the lock: consecutive TCP segments of one flow are merged (GRO) into one
 *     super-packet written with a GSO_TCPV4 (GSO_TCPV6) virtio_net_hdr and a partial checksum; other
 *     packets are written one by one. Every write is a writev() of a virtio header (and, for
 *     a merged flow, its first segment's IP and TCP headers) kept aside and the payloads where
 *     they were received: no payload byte is copied in userspace (issue 10: the flow-buffer
 *     memcpy was ~4 % of all cycles of a stream).
 *
 * wireguard mode replaces step 2 (the sender's address proves nothing: peers roam): every
 * datagram is a WireGuard message. Handshake messages (types 1-3, exact sizes) are handed to
 * TypeScript if admission lets them (wireguard.c: mac1, and the source's token bucket while the
 * queue to TypeScript is loaded); a type-4 message is opened in place without any lock held but
 * the session table's short ones (wireguard.c: session by receiver index, decrypt, replay window, roaming);
 * then, in one routes_read(), the inner source must lie in a subnet routed to that same peer
 * (WireGuard's cryptokey routing: AllowedIPs). Keepalives (empty payloads) are counted. With the
 * IPv6 interface (opt.has_v6), what arrives on the IPv6 socket is that interface's: its
 * handshakes go to its peers, its sessions open it, and its inner packets must be IPv6 from an
 * IPv6 subnet routed to the opening peer (wg_source_allowed).
 *
 * Buffers: receive buffers and flow headers belong to this queue's outside state. A flow holds
 * its headers and pointers into the receive buffers, which therefore stay untouched (nothing is
 * written before or into another datagram) until step 3 ends with every flow flushed. */
#include <errno.h>
#include <linux/virtio_net.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "checksum.h"
#include "datapath.h"
#include "outside.h"
#include "packet.h"

#ifndef SOL_UDP
#define SOL_UDP 17
#endif

#define RX_MSGS 16
#define MAX_ACCEPTED (RX_MSGS * GSO_MAX_SEGMENTS * 2)
#define FLOWS 8

struct accepted {
  uint8_t *ip;
  uint16_t len;
};

/* A flow's first iovec is its header buffer; each merged segment adds one for its payload. */
#define FLOW_IOVS (GSO_MAX_SEGMENTS + 1)
#define FLOW_HDR_SIZE (VNET_HDR_LEN + 60 + 60) /* virtio header, IP header (IPv6: 40), TCP with options */

struct flow {
  int active, closed, v6;
  uint8_t hdr[FLOW_HDR_SIZE]; /* virtio header, then the first segment's IP and TCP headers */
  struct iovec iov[FLOW_IOVS];
  int iovs;
  unsigned len, ihl, thl, mss, segs; /* len: the merged packet's, headers included */
  uint32_t next_seq;
};

struct opened {
  uint8_t *ip;
  uint16_t len;
  uint8_t table;  /* the index of the table that opened it (its peer ids are its own) */
  uint32_t peer;
};

struct outside {
  struct engine *e;
  struct queue *q;
  uint8_t *bufs[RX_MSGS];
  struct mmsghdr msgs[RX_MSGS];
  struct iovec iov[RX_MSGS];
  union underlay_addr from[RX_MSGS];
  char ctl[RX_MSGS][64];
  struct accepted acc[MAX_ACCEPTED];
  int acc_count;
  struct flow flows[FLOWS];
  int next_evict;
  struct wg_crypto *wg;           /* wireguard mode: this thread's cipher context */
  struct opened opened[MAX_ACCEPTED];
  int opened_count;
  uint32_t confirmed[RX_MSGS * GSO_MAX_SEGMENTS]; /* peers whose staged packets may go now */
  int confirmed_count;
};

/* wg_flush_staged's sender: one datagram from this queue's socket of the endpoint's family. */
static void send_staged(void *ctx, const uint8_t *msg, size_t len, const union underlay_addr *dst) {
  struct outside *out = ctx;
  struct iovec iov = {(void *)msg, len};
  struct mmsghdr m;
  memset(&m, 0, sizeof m);
  m.msg_hdr.msg_iov = &iov;
  m.msg_hdr.msg_iovlen = 1;
  int v6 = dst->sa.sa_family == AF_INET6;
  m.msg_hdr.msg_name = (void *)dst;
  m.msg_hdr.msg_namelen = v6 ? sizeof dst->v6 : sizeof dst->v4;
  if (io_send(out->q, v6, &m, 1) == 1) count(out->q, C_OUTSIDE_STAGED_SENT, 1);
}

static void tun_writev(struct outside *out, const struct iovec *iov, int n) {
  for (;;) {
    ssize_t r = io_tun_writev(out->q, iov, n);
    if (r >= 0) {
      count(out->q, C_OUTSIDE_TUN_WRITES, 1);
      return;
    }
    if (errno == EINTR) continue;
    count(out->q, C_OUTSIDE_DROP_TUN_WRITE_ERROR, 1);
    return;
  }
}

/* The inner TCP/UDP checksum of a datagram may never have been completed: a kernel vxlan
 * peer hands CHECKSUM_PARTIAL skbs to a veth (or any device with checksum offload) as they
 * are, so the field holds only the pseudo-header sum. The outer UDP checksum, which the kernel
 * verified, covers the whole inner packet; so hand the inner one to the kernel as partial
 * too (pseudo-header sum + NEEDS_CSUM), as the kernel's own vxlan receive path does.
 * Fragments keep their checksum untouched (it covers the reassembled datagram). */
static void mark_partial(uint8_t *ip, unsigned len, struct virtio_net_hdr *h) {
  int v6 = (ip[0] >> 4) == 6;
  unsigned ihl = v6 ? IP6_HDR_LEN : ip4_header_len(ip);
  uint8_t proto = v6 ? ip6_next_header(ip) : ip[9];
  if (!v6 && (rd16(ip + 6) & 0x3fff) != 0) return;
  unsigned offset;
  if (proto == IPPROTO_TCP_ && len >= ihl + 20) offset = 16;
  else if (proto == IPPROTO_UDP_ && len >= ihl + 8 && rd16(ip + ihl + 6) != 0) offset = 6;
  else return;
  uint16_t c = csum_fold(v6 ? csum_pseudo6(ip, proto, len - ihl) : csum_pseudo4(ip, proto, (uint16_t)(len - ihl)));
  memcpy(ip + ihl + offset, &c, 2);
  h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h->csum_start = (uint16_t)ihl;
  h->csum_offset = (uint16_t)offset;
}

/* A kernel sender on a GSO-capable path (veth, or a vxlan device over one) may deliver a
 * whole TCP super-packet as one datagram. Written as it is, it would be a packet bigger
 * than the TUN MTU that the host can only forward by fragmenting (or not at all, with DF).
 * Describe it as GSO_TCPV4 with segments that fit the MTU, so the kernel splits it only
 * where it has to. */
static void mark_oversized(const struct engine *e, const uint8_t *ip, unsigned len, struct virtio_net_hdr *h) {
  unsigned mtu = e->opt.mtu > 0 ? (unsigned)e->opt.mtu : 1500;
  int v6 = (ip[0] >> 4) == 6;
  if (len <= mtu || h->csum_offset != 16 || (v6 ? ip6_next_header(ip) : ip[9]) != IPPROTO_TCP_) return;
  unsigned ihl = v6 ? IP6_HDR_LEN : ip4_header_len(ip), thl = (ip[ihl + 12] >> 4) * 4u;
  if (thl < 20 || ihl + thl >= len || ihl + thl + 8 > mtu) return;
  h->gso_type = v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
  h->gso_size = (uint16_t)(mtu - ihl - thl);
  h->hdr_len = (uint16_t)(ihl + thl);
}

/* Writes one packet as it is (its own checksum field may be rewritten, nothing around it). */
static void write_single(struct outside *out, uint8_t *ip, unsigned len) {
  if (out->e->vnet_hdr) {
    struct virtio_net_hdr h;
    memset(&h, 0, sizeof h);
    mark_partial(ip, len, &h);
    mark_oversized(out->e, ip, len, &h);
    struct iovec iov[2] = {{&h, VNET_HDR_LEN}, {ip, len}};
    tun_writev(out, iov, 2);
  } else {
    struct iovec iov = {ip, len};
    tun_writev(out, &iov, 1);
  }
  count(out->q, C_OUTSIDE_PACKETS, 1);
  count(out->q, C_OUTSIDE_BYTES, len);
}

static void flow_flush(struct outside *out, struct flow *f) {
  if (!f->active) return;
  struct virtio_net_hdr h;
  memset(&h, 0, sizeof h);
  uint8_t *ip = f->hdr + VNET_HDR_LEN;
  if (f->segs > 1) {
    uint16_t l4_len = (uint16_t)(f->len - f->ihl);
    if (f->v6) {
      wr16(ip + 4, l4_len);
    } else {
      wr16(ip + 2, (uint16_t)f->len);
      ip4_set_checksum(ip, f->ihl);
    }
    /* CHECKSUM_PARTIAL: the field holds the pseudo-header sum, the kernel finishes it. */
    uint16_t c = csum_fold(f->v6 ? csum_pseudo6(ip, IPPROTO_TCP_, l4_len) : csum_pseudo4(ip, IPPROTO_TCP_, l4_len));
    memcpy(ip + f->ihl + 16, &c, 2);
    h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h.gso_type = f->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
    h.gso_size = (uint16_t)f->mss;
    h.hdr_len = (uint16_t)(f->ihl + f->thl);
    h.csum_start = (uint16_t)f->ihl;
    h.csum_offset = 16;
    count(out->q, C_OUTSIDE_COALESCED, f->segs);
  } else {
    mark_partial(ip, f->len, &h);
    mark_oversized(out->e, ip, f->len, &h);
  }
  memcpy(f->hdr, &h, VNET_HDR_LEN);
  tun_writev(out, f->iov, f->iovs);
  count(out->q, C_OUTSIDE_PACKETS, f->segs);
  count(out->q, C_OUTSIDE_BYTES, f->len + (f->segs - 1) * (f->ihl + f->thl));
  f->active = 0;
}

static void flows_flush(struct outside *out) {
  for (int i = 0; i < FLOWS; i++) flow_flush(out, &out->flows[i]);
}

/* Same addresses and ports (the 4-tuple), whatever else differs. `flow_ip` has no IP options
 * (mergeable() admits none); `ip` may have some, and must hold its ports. Both are of the
 * family `v6` says. */
static int same_connection(const uint8_t *flow_ip, const uint8_t *ip, int v6) {
  if (v6) return memcmp(flow_ip + 8, ip + 8, 32) == 0 && memcmp(flow_ip + IP6_HDR_LEN, ip + IP6_HDR_LEN, 4) == 0;
  return memcmp(flow_ip + 12, ip + 12, 8) == 0 && memcmp(flow_ip + 20, ip + ip4_header_len(ip), 4) == 0;
}

/* A TCP data segment that may be merged: IPv4 without options and not a fragment, or IPv6
 * with TCP as its next header (no extension headers); ACK or ACK+PSH only (SYN/FIN/RST/URG/
 * ECE/CWR segments go through as they are), some payload. `l3` is then its IP header length. */
static int mergeable(const uint8_t *ip, unsigned len, unsigned max_len, unsigned *l3, unsigned *thl) {
  if (len > max_len) return 0;
  if ((ip[0] >> 4) == 6) {
    if (ip6_next_header(ip) != IPPROTO_TCP_) return 0;
    *l3 = IP6_HDR_LEN;
  } else {
    if (ip[9] != IPPROTO_TCP_ || ip4_header_len(ip) != 20 || (rd16(ip + 6) & 0x3fff) != 0) return 0;
    *l3 = 20;
  }
  if (len < *l3 + 20) return 0;
  const uint8_t *tcp = ip + *l3;
  *thl = (tcp[12] >> 4) * 4u;
  if (*thl < 20 || len <= *l3 + *thl) return 0;
  return (tcp[13] & (uint8_t)~0x08) == 0x10;
}

/* The IP fields a merged segment must share with its flow's first: IPv4 TOS, TTL and DF;
 * IPv6 the first word (traffic class and flow label) and the hop limit. */
static int same_ip_fields(const uint8_t *ip, const uint8_t *q, int v6) {
  if (v6) return memcmp(ip, q, 4) == 0 && ip[7] == q[7];
  return ip[1] == q[1] && ip[8] == q[8] && (ip[6] & 0x40) == (q[6] & 0x40);
}

static void deliver(struct outside *out, uint8_t *ip, unsigned len) {
  if (!out->e->vnet_hdr) {
    write_single(out, ip, len);
    return;
  }
  int v6 = (ip[0] >> 4) == 6;
  unsigned l3 = 0, thl = 0;
  int tcp = v6 ? ip6_next_header(ip) == IPPROTO_TCP_ && len >= IP6_HDR_LEN + 4
               : ip[9] == IPPROTO_TCP_ && !ip4_later_fragment(ip) && len >= ip4_header_len(ip) + 4;
  struct flow *match = NULL;
  /* Also for a segment with IP options: it is never merged, but what its connection has
   * buffered must go out before it. */
  if (tcp) {
    for (int i = 0; i < FLOWS; i++)
      if (out->flows[i].active && out->flows[i].v6 == v6 && same_connection(out->flows[i].hdr + VNET_HDR_LEN, ip, v6))
        match = &out->flows[i];
  }
  unsigned max_len = out->e->opt.mtu > 0 ? (unsigned)out->e->opt.mtu : 1500;
  if (!mergeable(ip, len, max_len, &l3, &thl)) {
    /* Keep per-connection order: what was merged so far goes first. */
    if (match) flow_flush(out, match);
    write_single(out, ip, len);
    return;
  }
  const uint8_t *tcph = ip + l3;
  unsigned payload = len - l3 - thl;
  uint32_t seq = rd32(tcph + 4);
  if (match && !match->closed) {
    const uint8_t *q = match->hdr + VNET_HDR_LEN;
    const uint8_t *qt = q + l3;
    if (thl == match->thl && payload <= match->mss && match->len + payload <= MAX_IP_PACKET &&
        seq == match->next_seq && same_ip_fields(ip, q, v6) &&
        memcmp(tcph + 8, qt + 8, 4) == 0 &&          /* ack */
        memcmp(tcph + 14, qt + 14, 2) == 0 &&        /* window */
        memcmp(tcph + 20, qt + 20, thl - 20) == 0) { /* options */
      match->iov[match->iovs++] = (struct iovec){(void *)(tcph + thl), payload};
      match->len += payload;
      match->segs++;
      match->next_seq += payload;
      if (tcph[13] & 0x08) {
        match->hdr[VNET_HDR_LEN + l3 + 13] |= 0x08;
        match->closed = 1;
      }
      if (payload < match->mss || match->iovs == FLOW_IOVS) match->closed = 1;
      return;
    }
  }
  struct flow *f = match;
  if (f) {
    flow_flush(out, f);
  } else {
    for (int i = 0; i < FLOWS && !f; i++)
      if (!out->flows[i].active) f = &out->flows[i];
    if (!f) {
      f = &out->flows[out->next_evict];
      out->next_evict = (out->next_evict + 1) % FLOWS;
      flow_flush(out, f);
    }
  }
  /* mergeable() admitted no IPv4 options and thl <= 60: the headers fit f->hdr. */
  memcpy(f->hdr + VNET_HDR_LEN, ip, l3 + thl);
  f->iov[0] = (struct iovec){f->hdr, VNET_HDR_LEN + l3 + thl};
  f->iov[1] = (struct iovec){ip + l3 + thl, payload};
  f->iovs = 2;
  f->active = 1;
  f->v6 = v6;
  f->len = len;
  f->ihl = l3;
  f->thl = thl;
  f->mss = payload;
  f->segs = 1;
  f->next_seq = seq + payload;
  f->closed = (tcph[13] & 0x08) != 0;
}

/* Who sent a received message: its address (of the socket's family) and the first peer entry
 * of that address, looked up once per message. */
struct origin {
  int v6;
  uint32_t ip;             /* IPv4, host order */
  const uint8_t *ip6;      /* IPv6 */
  const struct peer *known;
  const struct peer6 *known6;
};

/* An inner IPv4 packet's source must lie in a subnet of the sending peer. */
static int ipv4_source_ok(const struct route_table *routes, const uint8_t *ip, const struct origin *s) {
  if (s->v6) return 0;
  const struct peer *p = s->known;
  uint32_t src = ip4_src(ip);
  if (p && (src & (p->prefix ? 0xffffffffu << (32 - p->prefix) : 0)) == p->network) return 1;
  /* The sender may own several subnets (one peer entry each): look the source up. */
  p = routes_lookup(routes, src);
  return p && p->public_ip == s->ip;
}

/* An inner IPv6 packet's source must lie in an IPv6 subnet of the sending peer (PublicIPv6). */
static int ipv6_source_ok(const struct route_table *routes, const uint8_t *ip, const struct origin *s) {
  if (!s->v6) return 0;
  const struct peer6 *p = s->known6;
  if (p && ip6_in_subnet(ip6_src(ip), p->network, p->prefix)) return 1;
  p = routes_lookup6(routes, ip6_src(ip));
  return p && memcmp(p->public_ip, s->ip6, 16) == 0;
}

static void accept_packet(struct outside *out, uint8_t *ip, unsigned len) {
  if (out->acc_count < MAX_ACCEPTED) {
    out->acc[out->acc_count].ip = ip;
    out->acc[out->acc_count].len = (uint16_t)len;
    out->acc_count++;
  }
}

/* The inner IPv6 packet of a vxlan frame (step 2). */
static void check6(struct outside *out, const struct route_table *routes, uint8_t *ip, unsigned ipl, const struct origin *s) {
  if (ipl < IP6_HDR_LEN) {
    count(out->q, C_OUTSIDE_DROP_TRUNCATED, 1);
    return;
  }
  if ((ip[0] >> 4) != 6) {
    count(out->q, C_OUTSIDE_DROP_MALFORMED, 1);
    return;
  }
  unsigned len = ip6_valid_len(ip, ipl, 0);
  if (len == 0) {
    count(out->q, C_OUTSIDE_DROP_TRUNCATED, 1);
    return;
  }
  if (!ipv6_source_ok(routes, ip, s)) {
    count(out->q, C_OUTSIDE_DROP_SOURCE_NOT_IN_SUBNET, 1);
    return;
  }
  count(out->q, C_OUTSIDE_IPV6_PACKETS, 1);
  accept_packet(out, ip, len);
}

/* Step 2 for one datagram (one GRO segment), within routes_read(). */
static void check(struct outside *out, const struct route_table *routes, uint8_t *seg, unsigned l, const struct origin *s) {
  struct engine *e = out->e;
  uint8_t *ip = seg;
  unsigned ipl = l;
  if (e->opt.mode == WEFT_MODE_VXLAN) {
    if (l < ENCAP_MAX + 20) {
      count(out->q, C_OUTSIDE_DROP_TRUNCATED, 1);
      return;
    }
    /* Only the I flag may be set and the reserved fields must be zero (RFC 7348 5). */
    if (seg[0] != 0x08 || seg[1] || seg[2] || seg[3] || seg[7]) {
      count(out->q, C_OUTSIDE_DROP_BAD_VXLAN_FLAGS, 1);
      return;
    }
    uint32_t vni = ((uint32_t)seg[4] << 16) | ((uint32_t)seg[5] << 8) | seg[6];
    if (vni != e->opt.vni) {
      count(out->q, C_OUTSIDE_DROP_WRONG_VNI, 1);
      return;
    }
    const uint8_t *eth = seg + VXLAN_HDR_LEN;
    if (memcmp(eth, e->opt.vtep_mac, 6) != 0) {
      count(out->q, C_OUTSIDE_DROP_WRONG_DST_MAC, 1);
      return;
    }
    uint16_t ethertype = rd16(eth + 12);
    if (ethertype == ETHERTYPE_IPV6_) {
      check6(out, routes, seg + ENCAP_MAX, l - ENCAP_MAX, s);
      return;
    }
    if (ethertype != ETHERTYPE_IPV4_) {
      count(out->q, C_OUTSIDE_DROP_NOT_IPV4, 1);
      return;
    }
    ip = seg + ENCAP_MAX;
    ipl = l - ENCAP_MAX;
  }
  if (ipl < 20) {
    count(out->q, C_OUTSIDE_DROP_TRUNCATED, 1);
    return;
  }
  if ((ip[0] >> 4) != 4) {
    count(out->q, C_OUTSIDE_DROP_NOT_IPV4, 1);
    return;
  }
  unsigned len = ip4_valid_len(ip, ipl, 0);
  if (len == 0) {
    unsigned ihl = ip4_header_len(ip);
    count(out->q, ihl >= 20 && rd16(ip + 2) > ipl ? C_OUTSIDE_DROP_TRUNCATED : C_OUTSIDE_DROP_MALFORMED, 1);
    return;
  }
  if (!ipv4_source_ok(routes, ip, s)) {
    count(out->q, C_OUTSIDE_DROP_SOURCE_NOT_IN_SUBNET, 1);
    return;
  }
  if (e->opt.mode == WEFT_MODE_UDP) {
    if (ip[8] <= 1) {
      count(out->q, C_OUTSIDE_DROP_TTL_EXCEEDED, 1);
      return;
    }
    ip4_decrement_ttl(ip);
  }
  accept_packet(out, ip, len);
}

struct batch {
  struct outside *out;
  int n;
};

/* The size of the datagrams the kernel coalesced into this one (UDP_GRO's segment size; a
 * datagram without that control message is one segment of its own length). */
static unsigned gro_segment_size(struct msghdr *h, unsigned len) {
  unsigned gso = len;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c))
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      int size;
      memcpy(&size, CMSG_DATA(c), sizeof size);
      if (size > 0) gso = (unsigned)size;
    }
  return gso;
}

/* Step 2 for the whole batch, run by routes_read() with the table held still. */
static void check_batch(const struct route_table *routes, void *arg) {
  const struct batch *b = arg;
  struct outside *out = b->out;
  for (int i = 0; i < b->n; i++) {
    struct msghdr *h = &out->msgs[i].msg_hdr;
    unsigned len = out->msgs[i].msg_len;
    unsigned gso = gro_segment_size(h, len);
    unsigned segs = len == 0 ? 1 : (len + gso - 1) / gso;
    count(out->q, C_OUTSIDE_DATAGRAMS, segs);
    if (h->msg_flags & MSG_TRUNC) {
      count(out->q, C_OUTSIDE_DROP_OVERSIZED, segs);
      continue;
    }
    struct origin s = {.v6 = out->from[i].sa.sa_family == AF_INET6};
    if (s.v6) {
      s.ip6 = out->from[i].v6.sin6_addr.s6_addr;
      s.known6 = routes_sender_peer6(routes, s.ip6);
    } else {
      s.ip = ntohl(out->from[i].v4.sin_addr.s_addr);
      s.known = routes_sender_peer(routes, s.ip);
    }
    if (!s.known && !s.known6) {
      count(out->q, C_OUTSIDE_DROP_UNKNOWN_SENDER, segs);
      continue;
    }
    uint8_t *base = out->bufs[i] + HEADROOM;
    for (unsigned off = 0; off < len; off += gso) {
      unsigned l = len - off < gso ? len - off : gso;
      check(out, routes, base + off, l, &s);
    }
    if (len == 0) count(out->q, C_OUTSIDE_DROP_TRUNCATED, 1);
  }
}

/* wireguard mode, one datagram (one GRO segment) on the socket of interface `wg`: hand a
 * handshake message to TypeScript (for that interface's peers), or open a transport message with
 * that interface's sessions and list its inner packet for the AllowedIPs check. */
static void wg_receive(struct outside *out, struct wg_table *wg, uint8_t *msg, unsigned len, const union underlay_addr *from) {
  struct queue *q = out->q;
  if (len < 4) {
    count(q, C_OUTSIDE_DROP_TRUNCATED, 1);
    return;
  }
  /* The type is a little-endian 32-bit word: the three reserved bytes must be zero. */
  if (msg[1] || msg[2] || msg[3] || msg[0] < WG_MSG_INITIATION || msg[0] > WG_MSG_TRANSPORT) {
    count(q, C_OUTSIDE_DROP_UNKNOWN_TYPE, 1);
    return;
  }
  if (msg[0] != WG_MSG_TRANSPORT) {
    switch (wg_handshake_message(wg, out->wg, msg, len, from)) {
    case WG_OK: count(q, C_OUTSIDE_HANDSHAKE_MESSAGES, 1); return;
    case WG_TRUNCATED: count(q, C_OUTSIDE_DROP_TRUNCATED, 1); return;
    case WG_QUEUE_FULL: count(q, C_OUTSIDE_DROP_HANDSHAKE_QUEUE_FULL, 1); return;
    default: return; /* refused by admission (bad mac1, rate limited): the table counted it */
    }
  }
  uint32_t peer = 0;
  size_t plain = 0;
  int confirmed = 0;
  enum wg_result r = wg_open(wg, out->wg, msg, len, from, &peer, &plain, &confirmed);
  if (confirmed && out->confirmed_count < RX_MSGS * GSO_MAX_SEGMENTS) out->confirmed[out->confirmed_count++] = peer;
  switch (r) {
  case WG_OK: break;
  case WG_KEEPALIVE: count(q, C_OUTSIDE_KEEPALIVES, 1); return;
  case WG_TRUNCATED: count(q, C_OUTSIDE_DROP_TRUNCATED, 1); return;
  case WG_UNKNOWN_INDEX: count(q, C_OUTSIDE_DROP_UNKNOWN_SESSION, 1); return;
  case WG_EXPIRED: count(q, C_OUTSIDE_DROP_EXPIRED_SESSION, 1); return;
  case WG_REPLAY: count(q, C_OUTSIDE_DROP_REPLAY, 1); return;
  default: count(q, C_OUTSIDE_DROP_BAD_MAC, 1); return;
  }
  uint8_t *ip = msg + WG_HEADER_LEN;
  if (plain < 20) {
    count(q, C_OUTSIDE_DROP_TRUNCATED, 1);
    return;
  }
  /* With the IPv6 interface an inner IPv6 packet is parsed too (on either socket: which
   * interface's AllowedIPs it must match is wg_check_sources' question). */
  int inner6 = (ip[0] >> 4) == 6 && out->e->opt.has_v6;
  if ((ip[0] >> 4) != 4 && !inner6) {
    count(q, C_OUTSIDE_DROP_NOT_IPV4, 1);
    return;
  }
  /* The IPv4 total length (IPv6: payload length) drops the padding. */
  unsigned ipl = inner6 ? (plain >= IP6_HDR_LEN ? ip6_valid_len(ip, (unsigned)plain, 0) : 0) : ip4_valid_len(ip, (unsigned)plain, 0);
  if (ipl == 0) {
    count(q, C_OUTSIDE_DROP_MALFORMED, 1);
    return;
  }
  if (out->opened_count < MAX_ACCEPTED)
    out->opened[out->opened_count++] = (struct opened){ip, (uint16_t)ipl, (uint8_t)wg->index, peer};
}

/* wireguard mode, within routes_read(): the inner source must be routed to the peer whose
 * session opened the packet, on that peer's interface: IPv4 sources by the IPv4 table to the
 * IPv4 interface's peers, IPv6 sources by the IPv6 table to the IPv6 interface's (Mode
 * "separate": each interface's AllowedIPs are of its own family, as flannel-wg and
 * flannel-wg-v6 have them) or, with one shared interface, to its peers (both subnets in their
 * AllowedIPs). Anything else is a source outside the peer's AllowedIPs. */
static int wg_source_allowed(const struct engine *e, const struct route_table *routes, const struct opened *o) {
  if ((o->ip[0] >> 4) == 6) {
    int table6 = e->opt.wg_shared ? 0 : 1; /* whose peers the IPv6 routes name */
    const struct peer6 *p6 = o->table == table6 ? routes_lookup6(routes, ip6_src(o->ip)) : NULL;
    return p6 && p6->wg_peer == o->peer;
  }
  const struct peer *p = o->table == 0 ? routes_lookup(routes, ip4_src(o->ip)) : NULL;
  return p && p->wg_peer == o->peer;
}

static void wg_check_sources(const struct route_table *routes, void *arg) {
  struct outside *out = arg;
  for (int i = 0; i < out->opened_count; i++) {
    const struct opened *o = &out->opened[i];
    if (!wg_source_allowed(out->e, routes, o)) {
      count(out->q, C_OUTSIDE_DROP_SOURCE_NOT_IN_SUBNET, 1);
      continue;
    }
    if ((o->ip[0] >> 4) == 6) count(out->q, C_OUTSIDE_IPV6_PACKETS, 1);
    if (out->acc_count < MAX_ACCEPTED) out->acc[out->acc_count++] = (struct accepted){o->ip, o->len};
  }
}

static void wg_receive_batch(struct outside *out, int n, int v6) {
  struct wg_table *wg = v6 && !out->e->opt.wg_shared ? &out->e->wg6 : &out->e->wg;
  out->acc_count = 0;
  out->opened_count = 0;
  out->confirmed_count = 0;
  for (int i = 0; i < n; i++) {
    struct msghdr *h = &out->msgs[i].msg_hdr;
    unsigned len = out->msgs[i].msg_len;
    unsigned gso = gro_segment_size(h, len);
    unsigned segs = len == 0 ? 1 : (len + gso - 1) / gso;
    count(out->q, C_OUTSIDE_DATAGRAMS, segs);
    if (h->msg_flags & MSG_TRUNC) {
      count(out->q, C_OUTSIDE_DROP_OVERSIZED, segs);
      continue;
    }
    if (len == 0) count(out->q, C_OUTSIDE_DROP_TRUNCATED, 1);
    uint8_t *base = out->bufs[i] + HEADROOM;
    for (unsigned off = 0; off < len; off += gso) wg_receive(out, wg, base + off, len - off < gso ? len - off : gso, &out->from[i]);
  }
  if (out->opened_count > 0) routes_read(&out->e->routes, wg_check_sources, out);
  for (int i = 0; i < out->acc_count; i++) deliver(out, out->acc[i].ip, out->acc[i].len);
  flows_flush(out);
  unsigned mtu = out->e->opt.mtu > 0 ? (unsigned)out->e->opt.mtu : 0;
  for (int i = 0; i < out->confirmed_count; i++) wg_flush_staged(wg, out->wg, out->confirmed[i], mtu, send_staged, out);
}

static void receive_batch(struct outside *out, int n, int v6) {
  if (out->e->opt.mode == WEFT_MODE_WIREGUARD) {
    wg_receive_batch(out, n, v6);
    return;
  }
  out->acc_count = 0;
  struct batch b = {out, n};
  routes_read(&out->e->routes, check_batch, &b);

  for (int i = 0; i < out->acc_count; i++) deliver(out, out->acc[i].ip, out->acc[i].len);
  flows_flush(out);
}

static void rearm(struct outside *out) {
  for (int i = 0; i < RX_MSGS; i++) {
    struct msghdr *h = &out->msgs[i].msg_hdr;
    memset(h, 0, sizeof *h);
    out->iov[i].iov_base = out->bufs[i] + HEADROOM;
    out->iov[i].iov_len = BUF_SIZE - HEADROOM;
    h->msg_iov = &out->iov[i];
    h->msg_iovlen = 1;
    h->msg_name = &out->from[i];
    h->msg_namelen = sizeof out->from[i];
    h->msg_control = out->ctl[i];
    h->msg_controllen = sizeof out->ctl[i];
  }
}

struct outside *outside_new(struct queue *q) {
  struct outside *out = calloc(1, sizeof *out);
  if (!out) return NULL;
  out->e = q->e;
  out->q = q;
  int ok = 1;
  for (int i = 0; i < RX_MSGS && ok; i++) ok = (out->bufs[i] = malloc(BUF_SIZE)) != NULL;
  if (ok && q->e->opt.mode == WEFT_MODE_WIREGUARD) ok = (out->wg = wg_crypto_new()) != NULL;
  if (!ok) {
    outside_free(out);
    return NULL;
  }
  return out;
}

void outside_free(struct outside *out) {
  if (!out) return;
  for (int i = 0; i < RX_MSGS; i++) free(out->bufs[i]);
  wg_crypto_free(out->wg);
  free(out);
}

/* One socket (v6: the IPv6 one) until EAGAIN or `budget` batches; 1 if the budget ended it. */
static int drain_socket(struct outside *out, int v6, int budget) {
  int batches = 0;
  while (!engine_stopping(out->e)) {
    if (budget > 0 && batches >= budget) return 1;
    rearm(out);
    int n = io_recv(out->q, v6, out->msgs, RX_MSGS);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      break; /* EAGAIN: drained */
    }
    batches++;
    count(out->q, C_OUTSIDE_RECV_CALLS, 1);
    receive_batch(out, n, v6);
  }
  return 0;
}

int outside_drain(struct outside *out, int budget) {
  int more = drain_socket(out, 0, budget);
  if (out->e->opt.has_v6) more |= drain_socket(out, 1, budget);
  return more;
}
