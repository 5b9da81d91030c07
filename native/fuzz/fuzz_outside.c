/* libFuzzer harness for the outside path (UDP -> TUN): outside_drain() of ../src/outside.c,
 * fed by a fake recvmmsg() and writing into a fake TUN (the io_* functions of datapath.h).
 * Covers the per-message cmsg (UDP_GRO) parsing, sender and peer checks, vxlan checks and
 * decapsulation, the inner IPv4 checks, TTL, and GRO coalescing with its virtio headers; in
 * vxlan mode also the IPv6 socket: IPv6 senders, inner IPv6 checks, the source against the
 * sender's IPv6 subnets, and TCPv6 coalescing (GSO_TCPV6).
 *
 * Input: one config byte, then messages until the input ends:
 *   config   bit 0: vxlan (else udp); bit 1: every 3rd TUN write fails (EINTR, then EIO);
 *            bits 2-3: MTU 0 (1500) / 1450 / 9000 / 65535
 *   message  flags byte: bits 0-2 sender (A, B, D, A, stranger, ...), bit 3 UDP_GRO cmsg,
 *            bit 4 MSG_TRUNC, bit 5 last message of its recvmmsg() batch, bit 6 adds
 *            65536 to the length, bit 7 (vxlan mode) it arrives on the IPv6 socket, from the
 *            sender's PublicIPv6 (a batch holds one socket's messages: the other socket's next
 *            message ends it); 2 bytes length (big-endian, cut to what is left and to
 *            the buffer); [2 bytes GRO size if bit 3];
 *            the datagram (UDP payload).
 * Each input runs twice, with virtio headers (GRO) and without; besides ASan/UBSan, the
 * oracles are: every TUN frame is a consistent IPv4 or IPv6 packet with a virtio header the kernel
 * accepts, the counters add up, and both runs deliver the same bytes per TCP connection
 * and the same other packets in the same order (stream_digest.h). */
#include <errno.h>
#include <linux/virtio_net.h>
#include <netinet/udp.h>
#include <sanitizer/asan_interface.h>

#include "../src/outside.h"
#include "fake_engine.h"
#include "fuzz_input.h"
#include "stream_digest.h"

#ifndef SOL_UDP
#define SOL_UDP 17
#endif

static struct fz_input cursor;
static struct digest *written;
static uint64_t frames, attempts;
static int failing_writes; /* config bit 1 */

/* Bytes past each received datagram are poisoned until the next receive: a read beyond the
 * datagram (which the 64 KB buffer would hide) is reported. */
static struct {
  uint8_t *at;
  size_t len;
} poisoned[32];
static int poisoned_count;

static void unpoison_all(void) {
  for (int i = 0; i < poisoned_count; i++) ASAN_UNPOISON_MEMORY_REGION(poisoned[i].at, poisoned[i].len);
  poisoned_count = 0;
}

static const uint32_t senders[8] = {FZ_SENDER_A, FZ_SENDER_B, FZ_SENDER_D, FZ_SENDER_A,
                                    FZ_STRANGER, FZ_SENDER_B, FZ_SENDER_A, FZ_SENDER_D};

/* Whether the next message arrives on the IPv6 socket (flags bit 7; vxlan mode only). */
static int next_is_v6(const struct queue *q) {
  return q->e->opt.has_v6 && cursor.left && (cursor.p[0] & 0x80);
}

int io_recv(struct queue *q, int v6, struct mmsghdr *msgs, unsigned n) {
  unpoison_all();
  if (!cursor.left || next_is_v6(q) != v6) {
    errno = EAGAIN;
    return -1;
  }
  unsigned got = 0;
  while (got < n && cursor.left && next_is_v6(q) == v6) {
    struct msghdr *h = &msgs[got].msg_hdr;
    uint8_t flags = fz_u8(&cursor);
    size_t want = fz_u16(&cursor) + (flags & 0x40 ? 65536u : 0);
    uint16_t gro = flags & 0x08 ? fz_u16(&cursor) : 0;
    const uint8_t *data;
    size_t len = fz_bytes(&cursor, want, &data);
    if (len > h->msg_iov[0].iov_len) len = h->msg_iov[0].iov_len;
    uint8_t *buf = h->msg_iov[0].iov_base;
    memcpy(buf, data, len);
    poisoned[poisoned_count].at = buf + len;
    poisoned[poisoned_count].len = h->msg_iov[0].iov_len - len;
    ASAN_POISON_MEMORY_REGION(buf + len, h->msg_iov[0].iov_len - len);
    poisoned_count++;
    msgs[got].msg_len = (unsigned)len;
    union underlay_addr *from = h->msg_name;
    memset(from, 0, sizeof *from);
    if (v6) {
      from->v6.sin6_family = AF_INET6;
      fz_public6(from->v6.sin6_addr.s6_addr, (uint8_t)senders[flags & 7]);
      from->v6.sin6_port = htons(FZ_PORT);
      h->msg_namelen = sizeof from->v6;
    } else {
      from->v4.sin_family = AF_INET;
      from->v4.sin_addr.s_addr = htonl(senders[flags & 7]);
      from->v4.sin_port = htons(FZ_PORT);
      h->msg_namelen = sizeof from->v4;
    }
    h->msg_flags = flags & 0x10 ? MSG_TRUNC : 0;
    if (flags & 0x08) {
      struct cmsghdr *c = CMSG_FIRSTHDR(h);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_GRO;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      int size = gro;
      memcpy(CMSG_DATA(c), &size, sizeof size);
      h->msg_controllen = CMSG_SPACE(sizeof(int));
    } else {
      h->msg_controllen = 0;
    }
    got++;
    if (flags & 0x20) break;
  }
  return (int)got;
}

ssize_t io_tun_write(struct queue *q, const void *frame, size_t len) {
  const uint8_t *f = frame;
  static int interrupted;
  if (failing_writes && ++attempts % 3 == 0) {
    /* The same frame comes again after EINTR; EIO loses it. */
    interrupted = !interrupted;
    attempts -= interrupted;
    errno = interrupted ? EINTR : EIO;
    return -1;
  }
  size_t hdr = q->e->vnet_hdr ? VNET_HDR_LEN : 0;
  if (len < hdr + 20) fz_fail("TUN frame shorter than an IPv4 header");
  const uint8_t *ip = f + hdr;
  size_t plen = len - hdr;
  int v6 = (ip[0] >> 4) == 6;
  unsigned ihl = v6 ? IP6_HDR_LEN : ip4_header_len(ip);
  uint8_t proto = v6 ? ip6_next_header(ip) : ip[9];
  if (v6) {
    if (q->e->opt.mode != WEFT_MODE_VXLAN) fz_fail("IPv6 written outside vxlan mode");
    if (plen < IP6_HDR_LEN || IP6_HDR_LEN + rd16(ip + 4) != plen) fz_fail("IPv6 payload length differs from the frame length");
  } else {
    if ((ip[0] >> 4) != 4 || ihl < 20 || ihl > plen) fz_fail("TUN frame is no sane IPv4 packet");
    if (rd16(ip + 2) != plen) fz_fail("IPv4 total length differs from the frame length");
    if (q->e->opt.mode == WEFT_MODE_UDP && ip[8] == 0) fz_fail("TTL 0 forwarded");
  }
  if (hdr) {
    struct virtio_net_hdr h;
    memcpy(&h, f, sizeof h < VNET_HDR_LEN ? sizeof h : VNET_HDR_LEN);
    if (h.flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM) fz_fail("unknown virtio flags");
    if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
        (h.csum_start < ihl || (size_t)h.csum_start + h.csum_offset + 2 > plen))
      fz_fail("partial checksum offsets outside the packet");
    if (h.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
      if (h.gso_type != (v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4) || proto != IPPROTO_TCP_)
        fz_fail("GSO type is not TCPV4/TCPV6 of a TCP packet of that family");
      if (!(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || h.csum_offset != 16) fz_fail("GSO frame without partial TCP checksum");
      unsigned thl = (ip[ihl + 12] >> 4) * 4u;
      if (h.hdr_len != ihl + thl || h.hdr_len >= plen || h.gso_size == 0) fz_fail("GSO header length or size wrong");
      if (!v6 && ((ip[6] & 0x20) || (rd16(ip + 6) & 0x1fff))) fz_fail("GSO frame is a fragment");
    } else if (h.gso_size || h.hdr_len) {
      fz_fail("GSO fields set without a GSO type");
    }
  }
  frames++;
  digest_packet(written, ip, plen);
  return (ssize_t)len;
}

/* Not on this path: the outside thread never reads the TUN or sends. */
ssize_t io_tun_read(struct queue *q, void *buf, size_t len) {
  (void)q, (void)buf, (void)len;
  fz_fail("outside path read the TUN");
  return -1;
}
int io_send(struct queue *q, int v6, struct mmsghdr *msgs, unsigned n) {
  (void)q, (void)v6, (void)msgs, (void)n;
  fz_fail("outside path sent a datagram");
  return -1;
}

static const uint64_t outside_drops[] = {
    C_OUTSIDE_DROP_UNKNOWN_SENDER, C_OUTSIDE_DROP_SOURCE_NOT_IN_SUBNET, C_OUTSIDE_DROP_TRUNCATED,
    C_OUTSIDE_DROP_OVERSIZED,      C_OUTSIDE_DROP_BAD_VXLAN_FLAGS,      C_OUTSIDE_DROP_WRONG_VNI,
    C_OUTSIDE_DROP_WRONG_DST_MAC,  C_OUTSIDE_DROP_NOT_IPV4,             C_OUTSIDE_DROP_MALFORMED,
    C_OUTSIDE_DROP_TTL_EXCEEDED};

static void run(const uint8_t *data, size_t size, int vnet_hdr, struct digest *d, uint64_t counters[C_COUNT]) {
  static const int mtus[4] = {0, 1450, 9000, 65535};
  cursor.p = data;
  cursor.left = size;
  uint8_t config = fz_u8(&cursor);
  struct queue *q = fz_engine_reset(config & 1 ? WEFT_MODE_VXLAN : WEFT_MODE_UDP, vnet_hdr, mtus[(config >> 2) & 3], 1);
  struct outside *out = outside_new(q);
  if (!out) fz_fail("outside_new out of memory");
  written = d;
  frames = attempts = 0;
  failing_writes = (config >> 1) & 1;
  /* Each call drains the IPv4 socket, then the IPv6 one, until the next message is the other's. */
  do outside_drain(out, 0);
  while (cursor.left);
  unpoison_all();
  outside_free(out);

  uint64_t dropped = 0;
  for (size_t i = 0; i < sizeof outside_drops / sizeof outside_drops[0]; i++) dropped += q->counters[outside_drops[i]];
  if (q->counters[C_OUTSIDE_DATAGRAMS] != q->counters[C_OUTSIDE_PACKETS] + dropped)
    fz_fail("outside.datagrams != outside.packets + drops");
  if (q->counters[C_OUTSIDE_TUN_WRITES] != frames) fz_fail("outside.tun_writes != frames written");
  if (failing_writes && frames + q->counters[C_OUTSIDE_DROP_TUN_WRITE_ERROR] != attempts)
    fz_fail("a failed TUN write was not counted once");
  memcpy(counters, q->counters, sizeof q->counters);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct digest with_gro, without_gro;
  static uint64_t c_gro[C_COUNT], c_plain[C_COUNT];
  memset(&with_gro, 0, sizeof with_gro);
  memset(&without_gro, 0, sizeof without_gro);
  run(data, size, 1, &with_gro, c_gro);
  run(data, size, 0, &without_gro, c_plain);
  if (c_gro[C_OUTSIDE_PACKETS] != c_plain[C_OUTSIDE_PACKETS]) fz_fail("GRO changed how many packets were delivered");
  for (size_t i = 0; i < sizeof outside_drops / sizeof outside_drops[0]; i++)
    if (c_gro[outside_drops[i]] != c_plain[outside_drops[i]]) fz_fail("GRO changed a drop counter");
  /* With failing writes the two runs lose different packets: nothing to compare. */
  if (!failing_writes && !digest_equal(&with_gro, &without_gro)) fz_fail("GRO changed the bytes delivered (per TCP connection or otherwise)");
  return 0;
}
