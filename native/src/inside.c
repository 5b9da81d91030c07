/* inside: packets from the TUN device (the containers' side) out to the underlay.
 *
 *  1. Once the forwarding loop (engine.c) sees the TUN readable: read() until EAGAIN (or the
 *     budget). Each read lands in a message slot's buffer so that the inner IPv4 header
 *     starts HEADROOM bytes in; with offloads the virtio_net_hdr sits just before it.
 *  2. Check the IPv4 header; look up the destination (longest prefix) and copy the next hop
 *     out (routes_next_hop: one lock per read). No route: ICMP net-unreachable back into the
 *     TUN, drop. vxlan mode also forwards IPv6 (handle6): the IPv6 peer table gives the peer's
 *     PublicIPv6 and v6 VtepMAC; no route: ICMPv6 destination unreachable; hop limit - 1 (1:
 *     ICMPv6 time exceeded); a packet (or a super-packet's segment) longer than the IPv6 path
 *     MTU (opt.mtu6): ICMPv6 packet too big; sent on the queue's IPv6 socket.
 *  3. udp mode: TTL - 1 with an incremental checksum patch, as flannel does; a TTL that
 *     would reach 0 is dropped (ICMP time-exceeded back into the TUN).
 *  4. A plain packet: complete a partial checksum if the kernel left one, then write the
 *     encapsulation header (vxlan: VXLAN + inner Ethernet) into the headroom, in place.
 *     A super-packet (TSO/USO): split into MSS-sized packets, each copied behind its own
 *     encapsulation header into message buffers, one UDP GSO message per <= 64 segments.
 *  5. When the TUN is drained or the slots run low: one sendmmsg() for all messages, each
 *     with UDP_SEGMENT when it holds more than one datagram.
 *  wireguard mode replaces 3-4: the packet is sealed in place into a type-4 message for the
 *     route's peer (wireguard.c: header in the headroom, padding and tag behind it) and sent to
 *     that peer's current endpoint; an IPv6 packet (with the IPv6 interface, opt.has_v6) goes
 *     by the IPv6 peer table to a peer of the IPv6 interface (e->wg6), out of the IPv6 socket; a super-packet's segments are each sealed where split()
 *     writes them (equal padded sizes, so one UDP GSO message still carries them).
 *
 * Buffers: slot buffers belong to this queue's inside state and are reused after every
 * sendmmsg(). */
#include <errno.h>
#include <linux/virtio_net.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checksum.h"
#include "datapath.h"
#include "icmp.h"
#include "inside.h"
#include "packet.h"

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5
#endif

#define SLOTS 24
/* A split super-packet needs at most two messages; read only with this many slots free. */
#define SLOTS_PER_READ 3
#define MAX_MSGS (SLOTS * GSO_MAX_SEGMENTS)

struct slot {
  uint8_t *buf;
  uint8_t *data;    /* first byte of the first datagram */
  size_t len;       /* all datagrams, back to back */
  uint16_t seg_size;/* every datagram but the last has this size */
  uint16_t segs;
  uint8_t v6;       /* goes out on the IPv6 socket, to dst.v6 */
  union underlay_addr dst;
};

/* Where a packet goes, from either family's peer table: the underlay address, the socket
 * family, the inner destination MAC (vxlan) and the wireguard peer. */
struct egress {
  union underlay_addr dst;
  uint8_t v6;
  uint8_t mac[6];
  uint32_t wg_peer;
};

struct inside {
  struct engine *e;
  struct queue *q;
  size_t encap_len;
  struct slot slots[SLOTS];
  int used;
  uint8_t *spare; /* receives a super-packet while its segments go into the slots */
  struct wg_crypto *wg; /* wireguard mode: this thread's cipher context */
  struct mmsghdr msgs[MAX_MSGS];
  struct iovec iov[MAX_MSGS];
  char ctl[SLOTS][CMSG_SPACE(sizeof(uint16_t))];
};

static void write_encap(const struct inside *in, const struct egress *eg, uint8_t *at) {
  /* wireguard mode: the header room is wg_seal's to fill. */
  if (in->encap_len == 0 || in->e->opt.mode == WEFT_MODE_WIREGUARD) return;
  const struct engine *e = in->e;
  /* RFC 7348: flags (I bit), 24 reserved bits, 24-bit VNI, 8 reserved bits. */
  memset(at, 0, VXLAN_HDR_LEN);
  at[0] = 0x08;
  at[4] = (uint8_t)(e->opt.vni >> 16);
  at[5] = (uint8_t)(e->opt.vni >> 8);
  at[6] = (uint8_t)e->opt.vni;
  uint8_t *eth = at + VXLAN_HDR_LEN;
  memcpy(eth, eg->mac, 6);
  memcpy(eth + 6, e->opt.vtep_mac, 6);
  wr16(eth + 12, eg->v6 ? ETHERTYPE_IPV6_ : ETHERTYPE_IPV4_);
}

/* Sends the queued messages of one socket family: one sendmmsg() per up to 1024 messages.
 * Without UDP GSO, each datagram of a slot becomes its own message (same buffer, no copy). */
static void flush_family(struct inside *in, int v6) {
  int *gso_flag = v6 ? &in->q->udp6_gso : &in->q->udp_gso;
retry:;
  int gso = *gso_flag;
  int n = 0;
  uint64_t datagrams = 0;
  for (int s = 0; s < in->used; s++) {
    struct slot *sl = &in->slots[s];
    if (sl->v6 != v6) continue;
    datagrams += sl->segs;
    socklen_t namelen = v6 ? sizeof sl->dst.v6 : sizeof sl->dst.v4;
    if (sl->segs <= 1 || gso) {
      struct msghdr *h = &in->msgs[n].msg_hdr;
      memset(h, 0, sizeof *h);
      in->iov[n].iov_base = sl->data;
      in->iov[n].iov_len = sl->len;
      h->msg_iov = &in->iov[n];
      h->msg_iovlen = 1;
      h->msg_name = &sl->dst;
      h->msg_namelen = namelen;
      if (sl->segs > 1) {
        h->msg_control = in->ctl[s];
        h->msg_controllen = sizeof in->ctl[s];
        struct cmsghdr *c = CMSG_FIRSTHDR(h);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        memcpy(CMSG_DATA(c), &sl->seg_size, sizeof(uint16_t));
      }
      n++;
      continue;
    }
    for (size_t off = 0; off < sl->len; off += sl->seg_size) {
      struct msghdr *h = &in->msgs[n].msg_hdr;
      memset(h, 0, sizeof *h);
      in->iov[n].iov_base = sl->data + off;
      in->iov[n].iov_len = sl->len - off < sl->seg_size ? sl->len - off : sl->seg_size;
      h->msg_iov = &in->iov[n];
      h->msg_iovlen = 1;
      h->msg_name = &sl->dst;
      h->msg_namelen = namelen;
      n++;
    }
  }
  int sent = 0;
  while (sent < n) {
    int r = io_send(in->q, v6, in->msgs + sent, (unsigned)(n - sent));
    if (r > 0) {
      count(in->q, C_INSIDE_SEND_CALLS, 1);
      sent += r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    /* EIO: the egress device cannot checksum GSO datagrams. Fall back to one datagram per
     * message for good (wireguard-go does the same), and resend what is left. */
    if (r < 0 && errno == EIO && gso && sent == 0) {
      __atomic_store_n(gso_flag, 0, __ATOMIC_RELAXED); /* info() reads it */
      goto retry;
    }
    /* Skip the message that failed (unreachable, EMSGSIZE, ...) and carry on. */
    struct msghdr *h = &in->msgs[sent].msg_hdr;
    uint64_t lost = 1;
    if (h->msg_controllen) {
      uint16_t seg;
      memcpy(&seg, CMSG_DATA(CMSG_FIRSTHDR(h)), sizeof seg);
      lost = (in->iov[sent].iov_len + seg - 1) / seg;
    }
    count(in->q, C_INSIDE_DROP_SEND_ERROR, lost);
    datagrams -= lost;
    sent++;
  }
  count(in->q, C_INSIDE_DATAGRAMS, datagrams);
}

/* Sends every queued message: the IPv4 socket's, then the IPv6 socket's. */
static void flush(struct inside *in) {
  if (in->used == 0) return;
  flush_family(in, 0);
  if (in->e->opt.has_v6) flush_family(in, 1);
  in->used = 0;
}

/* Starts a new output slot for a split super-packet. */
static struct slot *open_slot(struct inside *in, const struct egress *eg, uint16_t seg_size) {
  struct slot *sl = &in->slots[in->used++];
  sl->data = sl->buf;
  sl->len = 0;
  sl->segs = 0;
  sl->seg_size = seg_size;
  sl->dst = eg->dst;
  sl->v6 = eg->v6;
  return sl;
}

/* The transport header length of a TCP (proto 6) or UDP (17) packet whose IP header is `l3`
 * bytes long; 0 if it has none weft can split or checksum. */
static unsigned l4_header_len(const uint8_t *ip, unsigned len, unsigned l3, uint8_t proto) {
  if (proto == IPPROTO_TCP_) return len >= l3 + 20 ? tcp_header_len(ip + l3) : 0;
  return proto == IPPROTO_UDP_ ? 8 : 0;
}

/* wireguard mode: the interface whose peer the route named (the IPv6 peer table routes to the
 * IPv6 interface's peers, the IPv4 one to the IPv4 interface's; with one shared interface both
 * to its peers). */
static struct wg_table *wg_table_of(struct engine *e, const struct egress *eg) {
  return eg->v6 && !e->opt.wg_shared ? &e->wg6 : &e->wg;
}

/* A sealed message leaves by the socket of its endpoint's family: with one shared interface an
 * IPv4 packet may go to a peer reached over IPv6, and the reverse. */
static void follow_endpoint_family(struct slot *sl) { sl->v6 = sl->dst.sa.sa_family == AF_INET6; }

/* Splits a TCP (proto 6) or UDP (proto 17) super-packet, over IPv4 or IPv6, into packets of
 * at most `mss` payload bytes behind their encapsulation headers. IPv4: id, length and header
 * checksum are rewritten per packet; IPv6: the payload length; TCP sequence numbers and flags
 * (CWR first only, FIN/PSH last only) or UDP lengths; the L4 checksum is computed in full
 * (with the pseudo-header of the packet's family). Returns 0, or -1 if it cannot be. */
static int split(struct inside *in, const struct egress *eg, const uint8_t *ip, unsigned len, unsigned mss) {
  int v6 = (ip[0] >> 4) == 6;
  unsigned ihl = v6 ? IP6_HDR_LEN : ip4_header_len(ip);
  uint8_t proto = v6 ? ip6_next_header(ip) : ip[9];
  unsigned l4h = l4_header_len(ip, len, ihl, proto);
  if (l4h == 0) return -1;
  unsigned hl = ihl + l4h;
  if (len <= hl || mss == 0 || (!v6 && ip4_later_fragment(ip))) return -1;
  unsigned payload = len - hl;
  /* Every segment's IPv4 total length (IPv6: payload length) has 16 bits: a read longer than
   * 64 KB (BIG TCP on the TUN) split into segments that big would carry a wrapped length. */
  if ((v6 ? l4h : hl) + (mss < payload ? mss : payload) > MAX_IP_PACKET) return -1;
  unsigned nseg = (payload + mss - 1) / mss;
  uint16_t seg_size = (uint16_t)(in->encap_len + hl + mss);
  int wg = in->e->opt.mode == WEFT_MODE_WIREGUARD;
  unsigned mtu = in->e->opt.mtu > 0 ? (unsigned)in->e->opt.mtu : 0;
  /* Sealed, every full segment grows by the same padding and tag: UDP GSO still sees equal sizes. */
  if (wg) seg_size = (uint16_t)(WG_HEADER_LEN + wg_padded_len(hl + mss, mtu) + WG_TAG_LEN);
  uint16_t id0 = rd16(ip + 4);
  uint32_t seq0 = proto == IPPROTO_TCP_ ? rd32(ip + ihl + 4) : 0;
  uint8_t flags = proto == IPPROTO_TCP_ ? ip[ihl + 13] : 0;

  struct slot *sl = NULL;
  unsigned queued = 0; /* wireguard mode: segments staged for a handshake are not queued */
  for (unsigned i = 0; i < nseg; i++) {
    unsigned chunk = payload - i * mss < mss ? payload - i * mss : mss;
    unsigned out_len = (unsigned)in->encap_len + hl + chunk;
    if (wg) out_len = WG_HEADER_LEN + wg_padded_len(hl + chunk, mtu) + WG_TAG_LEN;
    if (!sl || sl->len + out_len > GSO_MAX_PAYLOAD || sl->segs >= GSO_MAX_SEGMENTS) {
      if (in->used >= SLOTS) return -1;
      sl = open_slot(in, eg, seg_size);
    }
    uint8_t *o = sl->data + sl->len;
    write_encap(in, eg, o);
    uint8_t *oip = o + in->encap_len;
    memcpy(oip, ip, hl);
    memcpy(oip + hl, ip + hl + i * mss, chunk);
    uint8_t *l4 = oip + ihl;
    uint16_t l4_len = (uint16_t)(l4h + chunk);
    if (v6) {
      wr16(oip + 4, l4_len);
    } else {
      wr16(oip + 2, (uint16_t)(hl + chunk));
      wr16(oip + 4, (uint16_t)(id0 + i));
      ip4_set_checksum(oip, ihl);
    }
    uint64_t pseudo = v6 ? csum_pseudo6(oip, proto, l4_len) : csum_pseudo4(oip, proto, l4_len);
    if (proto == IPPROTO_TCP_) {
      wr32(l4 + 4, seq0 + i * mss);
      uint8_t f = flags;
      if (i != nseg - 1) f &= (uint8_t)~0x09; /* FIN, PSH */
      if (i != 0) f &= (uint8_t)~0x80;        /* CWR */
      l4[13] = f;
      l4[16] = l4[17] = 0;
      uint16_t c = (uint16_t)~csum_fold(csum_add_payload(pseudo, l4, l4_len));
      memcpy(l4 + 16, &c, 2);
    } else {
      wr16(l4 + 4, l4_len);
      l4[6] = l4[7] = 0;
      uint16_t c = (uint16_t)~csum_fold(csum_add_payload(pseudo, l4, l4_len));
      if (c == 0) c = 0xffff; /* 0 means "no checksum" in UDP */
      memcpy(l4 + 6, &c, 2);
    }
    if (wg) {
      size_t sealed = 0;
      enum wg_result r = wg_seal(wg_table_of(in->e, eg), in->wg, eg->wg_peer, oip, hl + chunk, mtu, &sealed, &sl->dst);
      if (r == WG_STAGED || r == WG_STAGED_OVERFLOW) count(in->q, C_INSIDE_STAGED, 1);
      if (r != WG_OK) {
        if (r != WG_STAGED) count(in->q, r == WG_CRYPTO_ERROR ? C_INSIDE_DROP_ENCRYPT_ERROR : C_INSIDE_DROP_NO_SESSION, 1);
        continue; /* not in the message: the next segment goes where this one was */
      }
      follow_endpoint_family(sl);
    }
    sl->len += out_len;
    sl->segs++;
    queued++;
  }
  /* Only the last slot can be empty (its segments were all staged): give it back. */
  if (sl && sl->segs == 0) in->used--;
  count(in->q, C_INSIDE_PACKETS, queued);
  if (v6) count(in->q, C_INSIDE_IPV6_PACKETS, queued);
  return 0;
}

/* Completes a checksum the kernel left partial (CHECKSUM_PARTIAL: the field holds the
 * pseudo-header sum). Returns -1 if the offsets point outside the packet's transport part
 * (a start inside the IP header would overwrite it, and the peer would get no IP packet). */
static int finish_checksum(uint8_t *ip, unsigned len, const struct virtio_net_hdr *h) {
  int v6 = (ip[0] >> 4) == 6;
  unsigned start = h->csum_start, off = h->csum_offset;
  if (start < (v6 ? IP6_HDR_LEN : ip4_header_len(ip)) || start + off + 2 > len) return -1;
  uint16_t c = (uint16_t)~csum_fold(csum_add_payload(0, ip + start, len - start));
  /* A UDP checksum of 0 must go out as 0xffff; TCP has no such rule but 0xffff is equal. */
  if (c == 0 && (v6 ? ip6_next_header(ip) : ip[9]) == IPPROTO_UDP_) c = 0xffff;
  memcpy(ip + start + off, &c, 2);
  return 0;
}

static int may_send_icmp_about(const uint8_t *ip, unsigned len) {
  if (ip4_later_fragment(ip)) return 0;
  if (ip[9] != IPPROTO_ICMP_) return 1;
  unsigned ihl = ip4_header_len(ip);
  /* Never an error about an error (RFC 1122 3.2.2): only echo/timestamp/info queries. An ICMP
   * packet that ends before its type byte gets none either (the byte there is a stale one). */
  if (len <= ihl) return 0;
  uint8_t type = ip[ihl];
  return type == 0 || type == 8 || type == 13 || type == 14;
}

/* wireguard mode: seals the packet in place for the route's peer and queues it in its slot. */
static void seal(struct inside *in, struct slot *sl, uint8_t *ip, unsigned len, const struct egress *eg) {
  size_t out_len = 0;
  unsigned mtu = in->e->opt.mtu > 0 ? (unsigned)in->e->opt.mtu : 0;
  sl->v6 = eg->v6;
  enum wg_result r = wg_seal(wg_table_of(in->e, eg), in->wg, eg->wg_peer, ip, len, mtu, &out_len, &sl->dst);
  if (r == WG_STAGED || r == WG_STAGED_OVERFLOW) count(in->q, C_INSIDE_STAGED, 1);
  if (r == WG_STAGED) return;
  if (r != WG_OK) {
    count(in->q, r == WG_CRYPTO_ERROR ? C_INSIDE_DROP_ENCRYPT_ERROR : C_INSIDE_DROP_NO_SESSION, 1);
    return;
  }
  follow_endpoint_family(sl);
  sl->data = ip - WG_HEADER_LEN;
  sl->len = out_len;
  sl->segs = 1;
  sl->seg_size = (uint16_t)out_len;
  in->used++;
  count(in->q, C_INSIDE_PACKETS, 1);
  if (eg->v6) count(in->q, C_INSIDE_IPV6_PACKETS, 1);
}

/* Step 4 for a packet of either family that passed its checks: a super-packet is split into
 * this and the next slot(s), a plain one gets its partial checksum completed and its encap
 * header written in place. `gso_ok`: the super-packet's GSO type matches its protocol. */
static void queue_packet(struct inside *in, struct slot *sl, uint8_t *ip, unsigned len, const struct virtio_net_hdr *vh,
                         int super, int gso_ok, const struct egress *eg) {
  if (super) {
    if (!gso_ok || vh->gso_size == 0) {
      count(in->q, C_INSIDE_DROP_UNSUPPORTED_OFFLOAD, 1);
      return;
    }
    count(in->q, C_INSIDE_SUPER_PACKETS, 1);
    /* The segments go into this and the next slot(s): read them from the spare buffer. */
    uint8_t *source = sl->buf;
    sl->buf = in->spare;
    in->spare = source;
    int before = in->used;
    if (split(in, eg, source + HEADROOM, len, vh->gso_size) < 0) {
      in->used = before;
      count(in->q, C_INSIDE_DROP_MALFORMED, 1);
    }
    return;
  }
  if ((vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && finish_checksum(ip, len, vh) < 0) {
    count(in->q, C_INSIDE_DROP_MALFORMED, 1);
    return;
  }
  write_encap(in, eg, ip - in->encap_len);
  sl->data = ip - in->encap_len;
  sl->len = in->encap_len + len;
  sl->segs = 1;
  sl->seg_size = (uint16_t)sl->len;
  sl->dst = eg->dst;
  sl->v6 = eg->v6;
  in->used++;
  count(in->q, C_INSIDE_PACKETS, 1);
  if (eg->v6) count(in->q, C_INSIDE_IPV6_PACKETS, 1);
}

/* The IPv6 path MTU: the largest inner IPv6 packet the IPv6 underlay carries whole; 0: none. */
static unsigned path_mtu6(const struct engine *e) {
  return e->opt.mtu6 > 0 ? (unsigned)e->opt.mtu6 : e->opt.mtu > 0 ? (unsigned)e->opt.mtu : 0;
}

/* An IPv6 packet (step 2-4), vxlan mode or wireguard mode with the IPv6 interface: route, hop
 * limit (vxlan), path MTU, then queue_packet, or (wireguard) seal for the IPv6 interface's peer. */
static void handle6(struct inside *in, struct slot *sl, uint8_t *ip, unsigned n, const struct virtio_net_hdr *vh, uint8_t gso_type) {
  struct engine *e = in->e;
  int super = gso_type != VIRTIO_NET_HDR_GSO_NONE;
  unsigned len = ip6_valid_len(ip, n, super);
  if (len == 0) {
    count(in->q, C_INSIDE_DROP_MALFORMED, 1);
    return;
  }
  struct next_hop6 hop;
  if (!e->opt.has_v6 || !routes_next_hop6(&e->routes, ip6_dst(ip), &hop)) {
    count(in->q, C_INSIDE_DROP_NO_ROUTE, 1);
    /* Code 0: no route to destination. */
    if (icmp6_may_answer(ip, len) && icmp6_send_error(in->q, ip, len, ICMP6_DEST_UNREACHABLE, 0, 0))
      count(in->q, C_INSIDE_ICMP_SENT, 1);
    return;
  }
  int wg = e->opt.mode == WEFT_MODE_WIREGUARD;
  /* The engine is a router hop between the TUN and the peer: hop limit - 1 (RFC 8200 3). Not in
   * wireguard mode, which is the device itself, as the IPv4 side leaves the TTL to the kernel. */
  if (!wg && ip[7] <= 1) {
    count(in->q, C_INSIDE_DROP_TTL_EXCEEDED, 1);
    if (icmp6_may_answer(ip, len) && icmp6_send_error(in->q, ip, len, ICMP6_TIME_EXCEEDED, 0, 0))
      count(in->q, C_INSIDE_ICMP_SENT, 1);
    return;
  }
  uint8_t proto = ip6_next_header(ip);
  unsigned l4h = super ? l4_header_len(ip, len, IP6_HDR_LEN, proto) : 0;
  if (super && l4h == 0) {
    count(in->q, C_INSIDE_DROP_MALFORMED, 1);
    return;
  }
  /* IPv6 routers never fragment (RFC 8200 5): what the underlay cannot carry whole is answered
   * with packet too big, so the sender's PMTU (and its TCP MSS) shrinks to what fits. */
  unsigned mtu = path_mtu6(e);
  unsigned wire = super ? IP6_HDR_LEN + l4h + vh->gso_size : len;
  if (mtu && wire > mtu) {
    count(in->q, C_INSIDE_DROP_TOO_BIG, 1);
    if (icmp6_may_answer(ip, len) && icmp6_send_error(in->q, ip, len, ICMP6_PACKET_TOO_BIG, 0, mtu))
      count(in->q, C_INSIDE_ICMP_SENT, 1);
    return;
  }
  if (!wg) ip[7]--;
  struct egress eg = {.v6 = 1, .wg_peer = hop.wg_peer};
  eg.dst.v6 = hop.addr;
  memcpy(eg.mac, hop.mac, 6);
  if (wg && !super) {
    if ((vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && finish_checksum(ip, len, vh) < 0) {
      count(in->q, C_INSIDE_DROP_MALFORMED, 1);
      return;
    }
    seal(in, sl, ip, len, &eg);
    return;
  }
  int gso_ok = (gso_type == VIRTIO_NET_HDR_GSO_TCPV6 && proto == IPPROTO_TCP_) ||
               (gso_type == VIRTIO_NET_HDR_GSO_UDP_L4 && proto == IPPROTO_UDP_);
  queue_packet(in, sl, ip, len, vh, super, gso_ok, &eg);
}

/* Handles the packet just read into slot `in->used` (not yet counted as used). */
static void handle(struct inside *in, unsigned n) {
  struct engine *e = in->e;
  struct slot *sl = &in->slots[in->used];
  uint8_t *ip = sl->buf + HEADROOM;
  struct virtio_net_hdr vh;
  memset(&vh, 0, sizeof vh);
  if (e->vnet_hdr) {
    if (n < VNET_HDR_LEN) {
      count(in->q, C_INSIDE_DROP_MALFORMED, 1);
      return;
    }
    memcpy(&vh, ip - VNET_HDR_LEN, VNET_HDR_LEN);
    n -= VNET_HDR_LEN;
  }
  uint8_t gso_type = vh.gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
  int super = gso_type != VIRTIO_NET_HDR_GSO_NONE;
  count(in->q, C_INSIDE_BYTES, n);
  if (n >= 1 && (ip[0] >> 4) == 6 && (e->opt.mode == WEFT_MODE_VXLAN || (e->opt.mode == WEFT_MODE_WIREGUARD && e->opt.has_v6))) {
    handle6(in, sl, ip, n, &vh, gso_type);
    return;
  }
  if (n < 1 || (ip[0] >> 4) != 4) {
    count(in->q, C_INSIDE_DROP_NOT_IPV4, 1);
    return;
  }
  unsigned len = ip4_valid_len(ip, n, super);
  if (len == 0 || (e->opt.mode == WEFT_MODE_UDP && ip[8] == 0)) {
    count(in->q, C_INSIDE_DROP_MALFORMED, 1);
    return;
  }

  struct next_hop hop;
  if (!routes_next_hop(&e->routes, ip4_dst(ip), &hop)) {
    count(in->q, C_INSIDE_DROP_NO_ROUTE, 1);
    if (may_send_icmp_about(ip, len) && icmp_send_error(in->q, ip, len, 3, 0)) count(in->q, C_INSIDE_ICMP_SENT, 1);
    return;
  }
  struct egress eg = {.v6 = 0, .wg_peer = hop.wg_peer};
  eg.dst.v4 = hop.addr;
  memcpy(eg.mac, hop.mac, 6);

  if (e->opt.mode == WEFT_MODE_WIREGUARD && !super) {
    if ((vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && finish_checksum(ip, len, &vh) < 0) {
      count(in->q, C_INSIDE_DROP_MALFORMED, 1);
      return;
    }
    seal(in, sl, ip, len, &eg);
    return;
  }

  if (e->opt.mode == WEFT_MODE_UDP) {
    if (ip[8] <= 1) {
      count(in->q, C_INSIDE_DROP_TTL_EXCEEDED, 1);
      if (may_send_icmp_about(ip, len) && icmp_send_error(in->q, ip, len, 11, 0)) count(in->q, C_INSIDE_ICMP_SENT, 1);
      return;
    }
    ip4_decrement_ttl(ip);
  }
  int gso_ok = gso_type == VIRTIO_NET_HDR_GSO_TCPV4 || gso_type == VIRTIO_NET_HDR_GSO_UDP_L4;
  queue_packet(in, sl, ip, len, &vh, super, gso_ok, &eg);
}

struct inside *inside_new(struct queue *q) {
  struct inside *in = calloc(1, sizeof *in);
  if (!in) return NULL;
  in->e = q->e;
  in->q = q;
  in->encap_len = q->e->opt.mode == WEFT_MODE_VXLAN ? ENCAP_MAX : q->e->opt.mode == WEFT_MODE_WIREGUARD ? WG_HEADER_LEN : 0;
  int ok = (in->spare = malloc(BUF_SIZE)) != NULL;
  if (ok && q->e->opt.mode == WEFT_MODE_WIREGUARD) ok = (in->wg = wg_crypto_new()) != NULL;
  for (int i = 0; i < SLOTS && ok; i++) ok = (in->slots[i].buf = malloc(BUF_SIZE)) != NULL;
  if (!ok) {
    inside_free(in);
    return NULL;
  }
  return in;
}

void inside_free(struct inside *in) {
  if (!in) return;
  for (int i = 0; i < SLOTS; i++) free(in->slots[i].buf);
  free(in->spare);
  wg_crypto_free(in->wg);
  free(in);
}

int inside_drain(struct inside *in, int budget) {
  struct engine *e = in->e;
  size_t read_offset = HEADROOM - (e->vnet_hdr ? VNET_HDR_LEN : 0);
  int reads = 0, more = 0;
  for (;;) {
    if (in->used > SLOTS - SLOTS_PER_READ) flush(in);
    if (engine_stopping(e)) break;
    if (budget > 0 && reads >= budget) {
      more = 1;
      break;
    }
    struct slot *sl = &in->slots[in->used];
    ssize_t n = io_tun_read(in->q, sl->buf + read_offset, BUF_SIZE - read_offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      /* EAGAIN: drained. Anything else (device going away): don't spin on poll(). */
      if (errno != EAGAIN) usleep(10000);
      break;
    }
    reads++;
    count(in->q, C_INSIDE_TUN_READS, 1);
    handle(in, (unsigned)n);
  }
  flush(in);
  return more;
}
