/* outside: datagrams from the underlay in to the TUN device (the containers' side).
 *
 *  1. Once the forwarding loop (engine.c) sees the socket readable: recvmmsg() until EAGAIN
 *     (or the budget). With UDP_GRO one message is a super-datagram of equal-sized datagrams
 *     (size in a cmsg). Each lands HEADROOM bytes into its buffer, leaving room for the
 *     virtio_net_hdr.
 *  2. In one routes_read() (the route table held still: one lock per batch), for every
 *     datagram: the sender must be the PublicIP of a current peer; vxlan mode checks flags,
 *     VNI, inner destination MAC and ethertype and strips the 22 header bytes; the inner
 *     IPv4 header must be sane and its source must lie in that peer's subnet; udp mode
 *     decrements TTL. Anything else is dropped and counted by reason. Accepted packets are
 *     listed, not moved.
 *  3. Without the lock: consecutive TCP segments of one flow are merged (GRO) into one
 *     super-packet written with a GSO_TCPV4 virtio_net_hdr and a partial checksum; other
 *     packets are written one by one, their virtio header placed in the bytes just before
 *     the packet (headroom, stripped encapsulation or the previous, consumed datagram).
 *
 * wireguard mode replaces step 2 (the sender's address proves nothing: peers roam): every
 * datagram is a WireGuard message. Handshake messages (types 1-3, exact sizes) are handed to
 * TypeScript; a type-4 message is opened in place without any lock held but the session
 * table's short ones (wireguard.c: session by receiver index, decrypt, replay window, roaming);
 * then, in one routes_read(), the inner source must lie in a subnet routed to that same peer
 * (WireGuard's cryptokey routing: AllowedIPs). Keepalives (empty payloads) are counted.
 *
 * Buffers: receive buffers and flow buffers belong to this queue's outside state; a flow buffer holds a
 * copy, so receive buffers are free again once step 3 is done. */
#include <errno.h>
#include <linux/virtio_net.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

struct flow {
  int active, closed;
  uint8_t *buf; /* virtio header, then the merged packet */
  unsigned len, ihl, thl, mss, segs;
  uint32_t next_seq;
};

struct opened {
  uint8_t *ip;
  uint16_t len;
  uint32_t peer;
};

struct outside {
  struct engine *e;
  struct queue *q;
  uint8_t *bufs[RX_MSGS];
  struct mmsghdr msgs[RX_MSGS];
  struct iovec iov[RX_MSGS];
  struct sockaddr_in from[RX_MSGS];
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

/* wg_flush_staged's sender: one datagram from this queue's socket. */
static void send_staged(void *ctx, const uint8_t *msg, size_t len, const struct sockaddr_in *dst) {
  struct outside *out = ctx;
  struct iovec iov = {(void *)msg, len};
  struct mmsghdr m;
  memset(&m, 0, sizeof m);
  m.msg_hdr.msg_iov = &iov;
  m.msg_hdr.msg_iovlen = 1;
  m.msg_hdr.msg_name = (void *)dst;
  m.msg_hdr.msg_namelen = sizeof *dst;
  if (io_send(out->q, &m, 1) == 1) count(out->q, C_OUTSIDE_STAGED_SENT, 1);
}

static void tun_write(struct outside *out, uint8_t *frame, size_t len) {
  for (;;) {
    ssize_t r = io_tun_write(out->q, frame, len);
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
  unsigned ihl = ip4_header_len(ip);
  if ((rd16(ip + 6) & 0x3fff) != 0) return;
  unsigned offset;
  if (ip[9] == IPPROTO_TCP_ && len >= ihl + 20) offset = 16;
  else if (ip[9] == IPPROTO_UDP_ && len >= ihl + 8 && rd16(ip + ihl + 6) != 0) offset = 6;
  else return;
  uint16_t c = csum_fold(csum_pseudo4(ip, ip[9], (uint16_t)(len - ihl)));
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
  if (len <= mtu || h->csum_offset != 16 || ip[9] != IPPROTO_TCP_) return;
  unsigned ihl = ip4_header_len(ip), thl = (ip[ihl + 12] >> 4) * 4u;
  if (thl < 20 || ihl + thl >= len || ihl + thl + 8 > mtu) return;
  h->gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  h->gso_size = (uint16_t)(mtu - ihl - thl);
  h->hdr_len = (uint16_t)(ihl + thl);
}

/* Writes one packet as it is; the VNET_HDR_LEN bytes before `ip` are ours to overwrite. */
static void write_single(struct outside *out, uint8_t *ip, unsigned len) {
  if (out->e->vnet_hdr) {
    struct virtio_net_hdr h;
    memset(&h, 0, sizeof h);
    mark_partial(ip, len, &h);
    mark_oversized(out->e, ip, len, &h);
    memcpy(ip - VNET_HDR_LEN, &h, VNET_HDR_LEN);
    tun_write(out, ip - VNET_HDR_LEN, VNET_HDR_LEN + len);
  } else {
    tun_write(out, ip, len);
  }
  count(out->q, C_OUTSIDE_PACKETS, 1);
  count(out->q, C_OUTSIDE_BYTES, len);
}

static void flow_flush(struct outside *out, struct flow *f) {
  if (!f->active) return;
  struct virtio_net_hdr h;
  memset(&h, 0, sizeof h);
  uint8_t *ip = f->buf + VNET_HDR_LEN;
  if (f->segs > 1) {
    wr16(ip + 2, (uint16_t)f->len);
    ip4_set_checksum(ip, f->ihl);
    /* CHECKSUM_PARTIAL: the field holds the pseudo-header sum, the kernel finishes it. */
    uint16_t c = csum_fold(csum_pseudo4(ip, IPPROTO_TCP_, (uint16_t)(f->len - f->ihl)));
    memcpy(ip + f->ihl + 16, &c, 2);
    h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
    h.gso_size = (uint16_t)f->mss;
    h.hdr_len = (uint16_t)(f->ihl + f->thl);
    h.csum_start = (uint16_t)f->ihl;
    h.csum_offset = 16;
    count(out->q, C_OUTSIDE_COALESCED, f->segs);
  } else {
    mark_partial(ip, f->len, &h);
    mark_oversized(out->e, ip, f->len, &h);
  }
  memcpy(f->buf, &h, VNET_HDR_LEN);
  tun_write(out, f->buf, VNET_HDR_LEN + f->len);
  count(out->q, C_OUTSIDE_PACKETS, f->segs);
  count(out->q, C_OUTSIDE_BYTES, f->len + (f->segs - 1) * (f->ihl + f->thl));
  f->active = 0;
}

static void flows_flush(struct outside *out) {
  for (int i = 0; i < FLOWS; i++) flow_flush(out, &out->flows[i]);
}

/* Same addresses and ports (the 4-tuple), whatever else differs. `flow_ip` has no IP options
 * (mergeable() admits none); `ip` may have some, and must hold its ports. */
static int same_connection(const uint8_t *flow_ip, const uint8_t *ip) {
  return memcmp(flow_ip + 12, ip + 12, 8) == 0 && memcmp(flow_ip + 20, ip + ip4_header_len(ip), 4) == 0;
}

/* A TCP data segment that may be merged: no IP options, not a fragment, ACK or ACK+PSH
 * only (SYN/FIN/RST/URG/ECE/CWR segments go through as they are), some payload. */
static int mergeable(const uint8_t *ip, unsigned len, unsigned max_len, unsigned *thl) {
  if (len > max_len || ip[9] != IPPROTO_TCP_ || ip4_header_len(ip) != 20 || (rd16(ip + 6) & 0x3fff) != 0) return 0;
  if (len < 40) return 0;
  *thl = (ip[32] >> 4) * 4u;
  if (*thl < 20 || len <= 20 + *thl) return 0;
  return (ip[33] & (uint8_t)~0x08) == 0x10;
}

static void deliver(struct outside *out, uint8_t *ip, unsigned len) {
  if (!out->e->vnet_hdr) {
    write_single(out, ip, len);
    return;
  }
  unsigned thl = 0;
  int tcp = ip[9] == IPPROTO_TCP_ && !ip4_later_fragment(ip) && len >= ip4_header_len(ip) + 4;
  struct flow *match = NULL;
  /* Also for a segment with IP options: it is never merged, but what its connection has
   * buffered must go out before it. */
  if (tcp) {
    for (int i = 0; i < FLOWS; i++)
      if (out->flows[i].active && same_connection(out->flows[i].buf + VNET_HDR_LEN, ip)) match = &out->flows[i];
  }
  unsigned max_len = out->e->opt.mtu > 0 ? (unsigned)out->e->opt.mtu : 1500;
  if (!mergeable(ip, len, max_len, &thl)) {
    /* Keep per-connection order: what was merged so far goes first. */
    if (match) flow_flush(out, match);
    write_single(out, ip, len);
    return;
  }
  unsigned payload = len - 20 - thl;
  uint32_t seq = rd32(ip + 24);
  if (match && !match->closed) {
    const uint8_t *q = match->buf + VNET_HDR_LEN;
    if (thl == match->thl && payload <= match->mss && match->len + payload <= MAX_IP_PACKET &&
        seq == match->next_seq && ip[1] == q[1] && ip[8] == q[8] && (ip[6] & 0x40) == (q[6] & 0x40) &&
        memcmp(ip + 28, q + 28, 4) == 0 &&          /* ack */
        memcmp(ip + 34, q + 34, 2) == 0 &&          /* window */
        memcmp(ip + 40, q + 40, thl - 20) == 0) {   /* options */
      memcpy(match->buf + VNET_HDR_LEN + match->len, ip + 20 + thl, payload);
      match->len += payload;
      match->segs++;
      match->next_seq += payload;
      if (ip[33] & 0x08) {
        match->buf[VNET_HDR_LEN + 33] |= 0x08;
        match->closed = 1;
      }
      if (payload < match->mss) match->closed = 1;
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
  memcpy(f->buf + VNET_HDR_LEN, ip, len);
  f->active = 1;
  f->len = len;
  f->ihl = 20;
  f->thl = thl;
  f->mss = payload;
  f->segs = 1;
  f->next_seq = seq + payload;
  f->closed = (ip[33] & 0x08) != 0;
}

/* Step 2 for one datagram (one GRO segment), within routes_read(). */
static void check(struct outside *out, const struct route_table *routes, uint8_t *seg, unsigned l, uint32_t sender,
                  const struct peer *known) {
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
    if (eth[12] != 0x08 || eth[13] != 0x00) {
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
  const struct peer *p = known;
  uint32_t src = ip4_src(ip);
  if (!p || (src & (p->prefix ? 0xffffffffu << (32 - p->prefix) : 0)) != p->network) {
    /* The sender may own several subnets (one peer entry each): look the source up. */
    p = routes_lookup(routes, src);
    if (!p || p->public_ip != sender) {
      count(out->q, C_OUTSIDE_DROP_SOURCE_NOT_IN_SUBNET, 1);
      return;
    }
  }
  if (e->opt.mode == WEFT_MODE_UDP) {
    if (ip[8] <= 1) {
      count(out->q, C_OUTSIDE_DROP_TTL_EXCEEDED, 1);
      return;
    }
    ip4_decrement_ttl(ip);
  }
  if (out->acc_count < MAX_ACCEPTED) {
    out->acc[out->acc_count].ip = ip;
    out->acc[out->acc_count].len = (uint16_t)len;
    out->acc_count++;
  }
}

struct batch {
  struct outside *out;
  int n;
};

/* Step 2 for the whole batch, run by routes_read() with the table held still. */
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
    uint32_t sender = ntohl(out->from[i].sin_addr.s_addr);
    const struct peer *known = routes_sender_peer(routes, sender);
    if (!known) {
      count(out->q, C_OUTSIDE_DROP_UNKNOWN_SENDER, segs);
      continue;
    }
    uint8_t *base = out->bufs[i] + HEADROOM;
    for (unsigned off = 0; off < len; off += gso) {
      unsigned l = len - off < gso ? len - off : gso;
      check(out, routes, base + off, l, sender, known);
    }
    if (len == 0) count(out->q, C_OUTSIDE_DROP_TRUNCATED, 1);
  }
}

/* wireguard mode, one datagram (one GRO segment): hand a handshake message to TypeScript, or open
 * a transport message and list its inner packet for the AllowedIPs check. */
static void wg_receive(struct outside *out, uint8_t *msg, unsigned len, const struct sockaddr_in *from) {
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
    int r = wg_handshake_message(&out->e->wg, msg, len, from);
    count(q, r == 0 ? C_OUTSIDE_HANDSHAKE_MESSAGES : r == WG_TRUNCATED ? C_OUTSIDE_DROP_TRUNCATED
                                                                       : C_OUTSIDE_DROP_HANDSHAKE_QUEUE_FULL, 1);
    return;
  }
  uint32_t peer = 0;
  size_t plain = 0;
  int confirmed = 0;
  enum wg_result r = wg_open(&out->e->wg, out->wg, msg, len, from, &peer, &plain, &confirmed);
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
  if ((ip[0] >> 4) != 4) {
    count(q, C_OUTSIDE_DROP_NOT_IPV4, 1);
    return;
  }
  /* The IPv4 total length drops the padding. */
  unsigned ipl = ip4_valid_len(ip, (unsigned)plain, 0);
  if (ipl == 0) {
    count(q, C_OUTSIDE_DROP_MALFORMED, 1);
    return;
  }
  if (out->opened_count < MAX_ACCEPTED) out->opened[out->opened_count++] = (struct opened){ip, (uint16_t)ipl, peer};
}

/* wireguard mode, within routes_read(): the inner source must be routed to the peer whose
 * session opened the packet. */
static void wg_check_sources(const struct route_table *routes, void *arg) {
  struct outside *out = arg;
  for (int i = 0; i < out->opened_count; i++) {
    const struct opened *o = &out->opened[i];
    const struct peer *p = routes_lookup(routes, ip4_src(o->ip));
    if (!p || p->wg_peer != o->peer) {
      count(out->q, C_OUTSIDE_DROP_SOURCE_NOT_IN_SUBNET, 1);
      continue;
    }
    if (out->acc_count < MAX_ACCEPTED) out->acc[out->acc_count++] = (struct accepted){o->ip, o->len};
  }
}

static void wg_receive_batch(struct outside *out, int n) {
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
    for (unsigned off = 0; off < len; off += gso) wg_receive(out, base + off, len - off < gso ? len - off : gso, &out->from[i]);
  }
  if (out->opened_count > 0) routes_read(&out->e->routes, wg_check_sources, out);
  for (int i = 0; i < out->acc_count; i++) deliver(out, out->acc[i].ip, out->acc[i].len);
  flows_flush(out);
  unsigned mtu = out->e->opt.mtu > 0 ? (unsigned)out->e->opt.mtu : 0;
  for (int i = 0; i < out->confirmed_count; i++) wg_flush_staged(&out->e->wg, out->wg, out->confirmed[i], mtu, send_staged, out);
}

static void receive_batch(struct outside *out, int n) {
  if (out->e->opt.mode == WEFT_MODE_WIREGUARD) {
    wg_receive_batch(out, n);
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
  for (int i = 0; i < FLOWS && ok; i++) ok = (out->flows[i].buf = malloc(BUF_SIZE)) != NULL;
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
  for (int i = 0; i < FLOWS; i++) free(out->flows[i].buf);
  wg_crypto_free(out->wg);
  free(out);
}

int outside_drain(struct outside *out, int budget) {
  int batches = 0;
  while (!engine_stopping(out->e)) {
    if (budget > 0 && batches >= budget) return 1;
    rearm(out);
    int n = io_recv(out->q, out->msgs, RX_MSGS);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      break; /* EAGAIN: drained */
    }
    batches++;
    count(out->q, C_OUTSIDE_RECV_CALLS, 1);
    receive_batch(out, n);
  }
  return 0;
}
