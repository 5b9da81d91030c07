/* libFuzzer harness for the inside path (TUN -> UDP): inside_drain() of ../src/inside.c,
 * fed by a fake TUN read() and sending through a fake sendmmsg() (the io_* functions of
 * datapath.h). Covers the virtio_net_hdr, the IPv4 checks, route lookup, ICMP errors
 * (../src/icmp.c), TTL, partial checksums, TSO/USO splitting, vxlan encapsulation, slot and
 * GSO message building and the sendmmsg() error paths (EIO fallback, partial sends, errors);
 * in vxlan mode also IPv6: the IPv6 peer table, hop limit, packet too big at the IPv6 path
 * MTU, ICMPv6 errors, TCPv6/UDPv6 splitting and the IPv6 socket's messages.
 *
 * Input: one config byte, then TUN reads until the input ends:
 *   config  bit 0: vxlan (else udp); bit 1: no virtio header (offloads off);
 *           bit 2: UDP GSO off; bit 3: wireguard (overrides bit 0; peers A and B have a
 *           session, D has none, so its packets are staged); bits 4-5: drain budget 0 / 1 / 4 / 16
 *   read    flags byte: bit 0 the TUN is drained after this read (EAGAIN);
 *           bits 1-3 how the next sendmmsg() answers: 0-3 all sent, 4 half, 5 EIO,
 *           6 EMSGSIZE, 7 EINTR; bit 4 adds 65536 to the length (a read longer than any
 *           IPv4 packet fits the buffer); 2 bytes length (big-endian, cut to what is left
 *           and to the buffer);
 *           the bytes read (virtio_net_hdr first, unless bit 1 of config).
 * Besides ASan/UBSan, the oracles: every datagram sent is a consistent packet behind a
 * correct encapsulation header, sent to the peer its destination routes to; split segments
 * carry valid IPv4 and TCP/UDP checksums; GSO messages respect the segment limits; ICMP
 * errors are valid; and the counters add up with what the fake kernel accepted. IPv6: every
 * datagram goes out on the IPv6 socket to the PublicIPv6 its destination routes to, with
 * ethertype 0x86dd, a payload length that matches, a non-zero hop limit and at most the path
 * MTU; ICMPv6 errors carry a valid checksum (pseudo-header), fit 1280 bytes and go back to the
 * quoted packet's source; packet too big names the path MTU. In wireguard
 * mode every datagram is first decrypted with the peer's session key (OpenSSL, independently
 * of wireguard.c): header, receiver index, strictly increasing counters, zero padding to 16
 * (not past the MTU), then the same checks on the inner packet. */
#include <errno.h>
#include <linux/virtio_net.h>
#include <netinet/udp.h>
#include <sanitizer/asan_interface.h>

#include <openssl/evp.h>

#include "../src/inside.h"
#include "fake_engine.h"
#include "fuzz_input.h"

/* wireguard mode: the sessions of peers A (id 2) and B (id 3); D (id 4) has none.
 * next_counter: after every datagram the fake kernel accepted; pending: within the messages of
 * the sendmmsg() being checked (a retried message is offered again with the same counters). */
static uint64_t next_counter[8], pending[8];
static struct { uint32_t id; uint64_t next; } offered[1 << 16];

static void wg_key(uint32_t id, uint8_t key[32]) {
  for (int i = 0; i < 32; i++) key[i] = (uint8_t)(id * 31 + i);
}

static void wg_setup(struct engine *e) {
  static int ready;
  if (!ready) {
    wg_init(&e->wg);
    /* The same table, every entry now naming its wireguard peer (ignored by udp and vxlan). */
    for (size_t i = 0; i < e->routes.count; i++) {
      struct peer p = e->routes.peers[i];
      p.wg_peer = p.public_ip & 0xff;
      if (routes_set(&e->routes, &p) < 0) fz_fail("routes_set");
    }
    ready = 1;
  }
  const uint32_t ips[3] = {FZ_SENDER_A, FZ_SENDER_B, FZ_SENDER_D};
  for (int i = 0; i < 3; i++) {
    uint32_t id = ips[i] & 0xff;
    union underlay_addr a;
    memset(&a, 0, sizeof a);
    a.v4.sin_family = AF_INET;
    a.v4.sin_addr.s_addr = htonl(ips[i]);
    a.v4.sin_port = htons(FZ_PORT);
    wg_remove_peer(&e->wg, id);
    wg_set_peer(&e->wg, id, &a);
    next_counter[id] = pending[id] = 0;
    if (ips[i] == FZ_SENDER_D) continue;
    struct wg_keypair kp;
    memset(&kp, 0, sizeof kp);
    kp.initiator = 1;
    kp.local_index = 0x100 + id;
    kp.remote_index = 0x200 + id;
    wg_key(id, kp.send_key);
    wg_set_keypair(&e->wg, id, &kp);
  }
}

/* Decrypts a wireguard datagram into `out`; returns the inner packet's length (its IPv4 total
 * length, the padding checked and dropped). */
static size_t wg_decrypt(const uint8_t *d, size_t len, uint32_t peer_ip, uint8_t *out) {
  static EVP_CIPHER_CTX *ctx;
  if (!ctx) ctx = EVP_CIPHER_CTX_new();
  uint32_t id = peer_ip & 0xff;
  if (len < 32 || d[0] != 4 || d[1] || d[2] || d[3]) fz_fail("wireguard datagram without a transport header");
  uint32_t index = (uint32_t)d[4] | ((uint32_t)d[5] << 8) | ((uint32_t)d[6] << 16) | ((uint32_t)d[7] << 24);
  if (index != 0x200 + id) fz_fail("transport message with another peer's receiver index");
  uint64_t counter = 0;
  for (int i = 7; i >= 0; i--) counter = (counter << 8) | d[8 + i];
  if (counter < pending[id]) fz_fail("a counter was used twice or went backwards");
  pending[id] = counter + 1;
  uint8_t key[32], nonce[12] = {0};
  wg_key(id, key);
  memcpy(nonce + 4, d + 8, 8);
  size_t clen = len - 32;
  int outl = 0, fl = 0;
  if (EVP_DecryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, nonce) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, (void *)(d + len - 16)) != 1 ||
      EVP_DecryptUpdate(ctx, out, &outl, d + 16, (int)clen) != 1 || EVP_DecryptFinal_ex(ctx, out + outl, &fl) != 1)
    fz_fail("a sent transport message does not authenticate");
  if (clen < 20) fz_fail("sealed packet shorter than an IPv4 header");
  size_t total = rd16(out + 2);
  if (total > clen) fz_fail("IPv4 total length beyond the sealed plaintext");
  if (clen != wg_padded_len(total, 1500)) fz_fail("padding is not to 16 bytes (capped at the MTU)");
  for (size_t i = total; i < clen; i++)
    if (out[i]) fz_fail("non-zero padding");
  return total;
}

#ifndef SOL_UDP
#define SOL_UDP 17
#endif

static struct fz_input cursor;
static int drained;          /* the next read answers EAGAIN */
static int send_answer;      /* how the next sendmmsg() answers (flags bits 1-3) */
static uint64_t sent_datagrams, icmp_frames;
static uint8_t *poisoned_at;
static size_t poisoned_len;

static void unpoison(void) {
  if (poisoned_at) ASAN_UNPOISON_MEMORY_REGION(poisoned_at, poisoned_len);
  poisoned_at = NULL;
}

ssize_t io_tun_read(struct queue *q, void *buf, size_t len) {
  (void)q;
  unpoison();
  if (drained || !cursor.left) {
    drained = 0;
    errno = EAGAIN;
    return -1;
  }
  uint8_t flags = fz_u8(&cursor);
  size_t want = fz_u16(&cursor) + (flags & 0x10 ? 65536u : 0);
  const uint8_t *data;
  size_t n = fz_bytes(&cursor, want, &data);
  if (n > len) n = len;
  memcpy(buf, data, n);
  /* Bytes past what was read are poisoned until the next read: the 64 KB buffer would
   * otherwise hide a read beyond the packet. */
  /* wireguard mode seals in place: up to 15 bytes of padding and the 16-byte tag are written
   * (never read before being written) right behind the packet, so that room stays open. */
  size_t tail = fz_engine.opt.mode == WEFT_MODE_WIREGUARD ? 15 + WG_TAG_LEN : 0;
  if (tail > len - n) tail = len - n;
  poisoned_at = (uint8_t *)buf + n + tail;
  poisoned_len = len - n - tail;
  ASAN_POISON_MEMORY_REGION(poisoned_at, poisoned_len);
  drained = flags & 1;
  send_answer = (flags >> 1) & 7;
  return (ssize_t)n;
}

/* One UDP datagram as the kernel would send it. `split` = it came out of a super-packet, so
 * the engine wrote every checksum itself. */
/* An IPv6 datagram (vxlan mode, to->v6). */
static void check_datagram6(const uint8_t *d, size_t len, const struct sockaddr_in6 *to, int split) {
  if (fz_engine.opt.mode != WEFT_MODE_VXLAN) fz_fail("IPv6 datagram outside vxlan mode");
  if (len < ENCAP_MAX + IP6_HDR_LEN) fz_fail("datagram shorter than encapsulation + IPv6 header");
  uint8_t id = to->sin6_addr.s6_addr[15];
  static const uint8_t vx[4] = {0x08, 0, 0, 0};
  if (memcmp(d, vx, 4) != 0 || d[7] != 0 || (((uint32_t)d[4] << 16) | ((uint32_t)d[5] << 8) | d[6]) != FZ_VNI)
    fz_fail("VXLAN header wrong (IPv6)");
  const uint8_t peer_mac[6] = {0x02, 0, 0, 0, 0, id};
  if (memcmp(d + 8, peer_mac, 6) != 0 || memcmp(d + 14, fz_our_mac, 6) != 0) fz_fail("inner MACs wrong (IPv6)");
  if (rd16(d + 20) != ETHERTYPE_IPV6_) fz_fail("inner ethertype of an IPv6 datagram is not IPv6");
  const uint8_t *ip = d + ENCAP_MAX;
  size_t plen = len - ENCAP_MAX;
  if ((ip[0] >> 4) != 6 || IP6_HDR_LEN + rd16(ip + 4) != plen) fz_fail("IPv6 payload length differs from the datagram");
  if (ip[7] == 0) fz_fail("hop limit 0 sent");
  if (plen > FZ_MTU6) fz_fail("IPv6 packet bigger than the IPv6 path MTU sent");
  struct next_hop6 hop;
  if (!routes_next_hop6(&fz_engine.routes, ip6_dst(ip), &hop) || memcmp(&hop.addr.sin6_addr, &to->sin6_addr, 16) != 0)
    fz_fail("IPv6 datagram sent to a peer its destination does not route to");
  if (!split) return;
  uint8_t proto = ip6_next_header(ip);
  uint32_t l4_len = (uint32_t)(plen - IP6_HDR_LEN);
  if (proto != IPPROTO_TCP_ && proto != IPPROTO_UDP_) fz_fail("split IPv6 segment is neither TCP nor UDP");
  if (csum_fold(csum_add(csum_pseudo6(ip, proto, l4_len), ip + IP6_HDR_LEN, l4_len)) != 0xffff)
    fz_fail("split IPv6 segment with a bad TCP/UDP checksum");
  if (proto == IPPROTO_UDP_ && rd16(ip + IP6_HDR_LEN + 4) != l4_len) fz_fail("split UDPv6 segment with a wrong UDP length");
}

static void check_datagram(const uint8_t *d, size_t len, const union underlay_addr *dst, int split) {
  const struct engine *e = &fz_engine;
  static uint8_t plain[70000];
  if (dst->sa.sa_family == AF_INET6) {
    check_datagram6(d, len, &dst->v6, split);
    return;
  }
  const struct sockaddr_in *to = &dst->v4;
  if (e->opt.mode == WEFT_MODE_WIREGUARD) {
    if (ntohl(to->sin_addr.s_addr) == FZ_SENDER_D) fz_fail("sent to a peer without a session");
    len = wg_decrypt(d, len, ntohl(to->sin_addr.s_addr), plain);
    d = plain;
  }
  size_t encap = e->opt.mode == WEFT_MODE_VXLAN ? ENCAP_MAX : 0;
  if (len < encap + 20) fz_fail("datagram shorter than encapsulation + IPv4 header");
  uint32_t peer_ip = ntohl(to->sin_addr.s_addr);
  if (encap) {
    static const uint8_t vx[4] = {0x08, 0, 0, 0};
    if (memcmp(d, vx, 4) != 0 || d[7] != 0) fz_fail("VXLAN flags or reserved bits wrong");
    if ((((uint32_t)d[4] << 16) | ((uint32_t)d[5] << 8) | d[6]) != FZ_VNI) fz_fail("VXLAN VNI wrong");
    const uint8_t peer_mac[6] = {0x02, 0, 0, 0, 0, (uint8_t)peer_ip};
    if (memcmp(d + 8, peer_mac, 6) != 0) fz_fail("inner destination MAC is not the peer's VtepMAC");
    if (memcmp(d + 14, fz_our_mac, 6) != 0) fz_fail("inner source MAC is not our VtepMAC");
    if (d[20] != 0x08 || d[21] != 0x00) fz_fail("inner ethertype is not IPv4");
  }
  const uint8_t *ip = d + encap;
  size_t plen = len - encap;
  unsigned ihl = ip4_header_len(ip);
  if ((ip[0] >> 4) != 4 || ihl < 20 || ihl > plen) fz_fail("sent packet is no sane IPv4 packet");
  if (rd16(ip + 2) != plen) fz_fail("IPv4 total length differs from the datagram");
  if (e->opt.mode == WEFT_MODE_UDP && ip[8] == 0) fz_fail("TTL 0 sent");
  struct next_hop hop;
  if (!routes_next_hop(&fz_engine.routes, ip4_dst(ip), &hop) || ntohl(hop.addr.sin_addr.s_addr) != peer_ip) fz_fail("datagram sent to a peer its destination does not route to");
  if (!split) return;
  if (!fz_ip_checksum_ok(ip)) fz_fail("split segment with a bad IPv4 header checksum");
  uint16_t l4_len = (uint16_t)(plen - ihl);
  if (ip[9] != IPPROTO_TCP_ && ip[9] != IPPROTO_UDP_) fz_fail("split segment is neither TCP nor UDP");
  if (csum_fold(csum_add(csum_pseudo4(ip, ip[9], l4_len), ip + ihl, l4_len)) != 0xffff)
    fz_fail("split segment with a bad TCP/UDP checksum");
  if (ip[9] == IPPROTO_UDP_ && rd16(ip + ihl + 4) != l4_len) fz_fail("split UDP segment with a wrong UDP length");
}

int io_send(struct queue *q, int v6, struct mmsghdr *msgs, unsigned n) {
  (void)q;
  if (n == 0) fz_fail("sendmmsg of nothing");
  memcpy(pending, next_counter, sizeof pending);
  for (unsigned i = 0; i < n; i++) {
    const struct msghdr *h = &msgs[i].msg_hdr;
    const union underlay_addr *to = h->msg_name;
    if (v6 && (h->msg_iovlen != 1 || h->msg_namelen != sizeof to->v6 || to->v6.sin6_family != AF_INET6 ||
               ntohs(to->v6.sin6_port) != FZ_PORT))
      fz_fail("message on the IPv6 socket without one iovec and an IPv6 peer address");
    if (!v6 && (h->msg_iovlen != 1 || h->msg_namelen != sizeof to->v4 || to->v4.sin_family != AF_INET ||
                ntohs(to->v4.sin_port) != FZ_PORT))
      fz_fail("message without one iovec and an IPv4 peer address");
    const uint8_t *d = h->msg_iov[0].iov_base;
    size_t len = h->msg_iov[0].iov_len, seg = len;
    if (h->msg_controllen) {
      const struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)h);
      if (!c || c->cmsg_level != SOL_UDP || c->cmsg_type != UDP_SEGMENT) fz_fail("control message is not UDP_SEGMENT");
      uint16_t size;
      memcpy(&size, CMSG_DATA(c), sizeof size);
      seg = size;
      if (seg == 0 || (len + seg - 1) / seg > GSO_MAX_SEGMENTS || len > GSO_MAX_PAYLOAD)
        fz_fail("GSO message breaks the segment size/count/payload limits");
      if (!(v6 ? fz_engine.queues[0].udp6_gso : fz_engine.queues[0].udp_gso)) fz_fail("UDP_SEGMENT used after GSO was switched off");
    }
    for (size_t off = 0; off < len; off += seg)
      check_datagram(d + off, len - off < seg ? len - off : seg, to, h->msg_controllen != 0);
    if (len == 0) fz_fail("empty datagram");
    uint32_t id = v6 ? to->v6.sin6_addr.s6_addr[15] : ntohl(to->v4.sin_addr.s_addr) & 0xff;
    if (i < sizeof offered / sizeof offered[0]) {
      offered[i].id = id;
      offered[i].next = pending[id & 7];
    }
  }
  int answer = send_answer;
  send_answer = 0;
  int r = (int)n;
  switch (answer) {
    case 4: r = n > 1 ? (int)n / 2 : 1; break;
    case 5: errno = EIO; return -1;
    case 6: errno = EMSGSIZE; return -1;
    case 7: errno = EINTR; return -1;
    default: break;
  }
  for (int i = 0; i < r; i++) {
    const struct msghdr *h = &msgs[i].msg_hdr;
    if (fz_engine.opt.mode == WEFT_MODE_WIREGUARD && (size_t)i < sizeof offered / sizeof offered[0])
      next_counter[offered[i].id & 7] = offered[i].next;
    size_t len = h->msg_iov[0].iov_len, seg = len;
    if (h->msg_controllen) {
      uint16_t size;
      memcpy(&size, CMSG_DATA(CMSG_FIRSTHDR((struct msghdr *)h)), sizeof size);
      seg = size;
    }
    sent_datagrams += (len + seg - 1) / seg;
  }
  return r;
}

/* An ICMPv6 error written back into the TUN. */
static void check_icmp6(const uint8_t *ip, size_t plen) {
  if (plen < IP6_HDR_LEN + 8 + IP6_HDR_LEN) fz_fail("ICMPv6 error too short to quote an IPv6 header");
  if (plen > IP6_MIN_MTU) fz_fail("ICMPv6 error longer than 1280 bytes");
  if (ip[0] != 0x60 || IP6_HDR_LEN + rd16(ip + 4) != plen || ip[6] != IPPROTO_ICMPV6_ || ip[7] == 0)
    fz_fail("ICMPv6 error with a bad IPv6 header");
  uint32_t l4_len = (uint32_t)(plen - IP6_HDR_LEN);
  if (csum_fold(csum_add(csum_pseudo6(ip, IPPROTO_ICMPV6_, l4_len), ip + IP6_HDR_LEN, l4_len)) != 0xffff)
    fz_fail("ICMPv6 error with a bad checksum");
  const uint8_t *icmp = ip + IP6_HDR_LEN, *quoted = icmp + 8;
  if (icmp[0] < 1 || icmp[0] > 3) fz_fail("ICMPv6 error of an unexpected type");
  if (icmp[0] == 2 && rd32(icmp + 4) != FZ_MTU6) fz_fail("packet too big without the IPv6 path MTU");
  if (memcmp(ip + 24, quoted + 8, 16) != 0) fz_fail("ICMPv6 error not addressed to the quoted sender");
  if ((quoted[0] >> 4) != 6) fz_fail("ICMPv6 error quoting no IPv6 packet");
  if (quoted[6] == IPPROTO_ICMPV6_ && (plen <= 2 * IP6_HDR_LEN + 8 || quoted[IP6_HDR_LEN] < 128))
    fz_fail("ICMPv6 error about an ICMPv6 error (or one without its type)");
  if (quoted[8 + 0] == 0xff || quoted[24] == 0xff) fz_fail("ICMPv6 error about a multicast packet");
}

/* ICMP errors written back into the TUN (icmp.c). */
ssize_t io_tun_write(struct queue *q, const void *frame, size_t len) {
  size_t hdr = q->e->vnet_hdr ? VNET_HDR_LEN : 0;
  const uint8_t *f = frame;
  for (size_t i = 0; i < hdr; i++)
    if (f[i]) fz_fail("ICMP error with a non-zero virtio header");
  if (len > hdr && (f[hdr] >> 4) == 6) {
    check_icmp6(f + hdr, len - hdr);
    icmp_frames++;
    return (ssize_t)len;
  }
  if (len < hdr + 28) fz_fail("ICMP error too short");
  const uint8_t *ip = f + hdr;
  size_t plen = len - hdr;
  if (ip[0] != 0x45 || rd16(ip + 2) != plen || ip[9] != IPPROTO_ICMP_ || !fz_ip_checksum_ok(ip))
    fz_fail("ICMP error with a bad IPv4 header");
  if (csum_fold(csum_add(0, ip + 20, plen - 20)) != 0xffff) fz_fail("ICMP error with a bad checksum");
  if (ip[20] != 3 && ip[20] != 11) fz_fail("ICMP error of an unexpected type");
  if (plen < 28 + 20 || memcmp(ip + 16, ip + 28 + 12, 4) != 0) fz_fail("ICMP error not addressed to the quoted sender");
  icmp_frames++;
  return (ssize_t)len;
}

int io_recv(struct queue *q, int v6, struct mmsghdr *msgs, unsigned n) {
  (void)q, (void)v6, (void)msgs, (void)n;
  fz_fail("inside path received from the socket");
  return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const int budgets[4] = {0, 1, 4, 16};
  cursor.p = data;
  cursor.left = size;
  drained = 0;
  send_answer = 0;
  sent_datagrams = icmp_frames = 0;
  uint8_t config = fz_u8(&cursor);
  enum weft_mode mode = config & 8 ? WEFT_MODE_WIREGUARD : config & 1 ? WEFT_MODE_VXLAN : WEFT_MODE_UDP;
  struct queue *q = fz_engine_reset(mode, !(config & 2), 1500, !(config & 4));
  if (mode == WEFT_MODE_WIREGUARD) wg_setup(q->e);
  struct inside *in = inside_new(q);
  if (!in) fz_fail("inside_new out of memory");
  int budget = budgets[(config >> 4) & 3];
  int more;
  do more = inside_drain(in, budget);
  while (more || cursor.left);
  unpoison();
  inside_free(in);

  const uint64_t *c = q->counters;
  if (c[C_INSIDE_DATAGRAMS] != sent_datagrams) fz_fail("inside.datagrams != datagrams the kernel accepted");
  if (c[C_INSIDE_PACKETS] != c[C_INSIDE_DATAGRAMS] + c[C_INSIDE_DROP_SEND_ERROR])
    fz_fail("inside.packets != inside.datagrams + inside.drop.send_error");
  if (c[C_INSIDE_ICMP_SENT] != icmp_frames) fz_fail("inside.icmp_sent != ICMP errors written");
  if (mode == WEFT_MODE_WIREGUARD && c[C_INSIDE_DROP_ENCRYPT_ERROR]) fz_fail("OpenSSL refused to seal");
  return 0;
}
