/* ICMP errors written back into the TUN, as flannel's proxy does for a destination no
 * lease covers (type 3 code 0) and, unlike flannel, for an expiring TTL (type 11 code 0).
 * Source: the TUN's own address (opt.icmp_source); TTL 8 like flannel; payload: the
 * offending IP header plus the first 8 bytes after it (RFC 792).
 * ICMPv6 (RFC 4443) likewise for IPv6 packets: destination unreachable, packet too big (with
 * the IPv6 path MTU), time exceeded; source: the TUN's own IPv6 address (opt.icmp6_source);
 * payload: as much of the offending packet as keeps the error within 1280 bytes. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "checksum.h"
#include "datapath.h"
#include "icmp.h"
#include "packet.h"

int icmp_send_error(struct queue *q, const uint8_t *packet, size_t len, uint8_t type, uint8_t code) {
  const struct engine *e = q->e;
  if (e->opt.icmp_source.s_addr == 0) return 0;
  unsigned ihl = ip4_header_len(packet);
  size_t quoted = ihl + 8 < len ? ihl + 8 : len;
  uint8_t frame[VNET_HDR_LEN + 20 + 8 + 60 + 8];
  size_t hdr = e->vnet_hdr ? VNET_HDR_LEN : 0;
  memset(frame, 0, sizeof frame); /* an all-zero virtio header: no offload */
  uint8_t *ip = frame + hdr;
  uint16_t total = (uint16_t)(20 + 8 + quoted);
  ip[0] = 0x45;
  wr16(ip + 2, total);
  ip[8] = 8;
  ip[9] = IPPROTO_ICMP_;
  memcpy(ip + 12, &e->opt.icmp_source.s_addr, 4);
  memcpy(ip + 16, packet + 12, 4); /* back to the sender */
  ip4_set_checksum(ip, 20);
  uint8_t *icmp = ip + 20;
  icmp[0] = type;
  icmp[1] = code;
  memcpy(icmp + 8, packet, quoted);
  uint16_t c = (uint16_t)~csum_fold(csum_add(0, icmp, 8 + quoted));
  memcpy(icmp + 2, &c, 2);
  for (;;) {
    if (io_tun_write(q, frame, hdr + total) >= 0) return 1;
    if (errno != EINTR) return 0;
  }
}

int icmp6_may_answer(const uint8_t *packet, size_t len) {
  const uint8_t *src = ip6_src(packet), *dst = ip6_dst(packet);
  static const uint8_t unspecified[16];
  /* RFC 4443 2.4(e): none to an unspecified or multicast source, none about a multicast
   * destination (packet too big excepted, which weft never needs for multicast). */
  if (memcmp(src, unspecified, 16) == 0 || src[0] == 0xff || dst[0] == 0xff) return 0;
  uint8_t next = ip6_next_header(packet);
  if (next == IPPROTO_TCP_ || next == IPPROTO_UDP_) return 1;
  /* Never an error about an error (2.4(e)): only informational messages (type >= 128), and
   * only when the type byte is there. Behind an extension header weft cannot tell: none. */
  return next == IPPROTO_ICMPV6_ && len > IP6_HDR_LEN && packet[IP6_HDR_LEN] >= 128;
}

int icmp6_send_error(struct queue *q, const uint8_t *packet, size_t len, uint8_t type, uint8_t code, uint32_t param) {
  const struct engine *e = q->e;
  if (!e->opt.has_icmp6_source) return 0;
  size_t room = IP6_MIN_MTU - IP6_HDR_LEN - 8;
  size_t quoted = len < room ? len : room;
  uint8_t frame[VNET_HDR_LEN + IP6_MIN_MTU];
  size_t hdr = e->vnet_hdr ? VNET_HDR_LEN : 0;
  memset(frame, 0, hdr + IP6_HDR_LEN + 8); /* an all-zero virtio header: no offload */
  uint8_t *ip = frame + hdr;
  uint16_t payload = (uint16_t)(8 + quoted);
  ip[0] = 0x60;
  wr16(ip + 4, payload);
  ip[6] = IPPROTO_ICMPV6_;
  ip[7] = 64;
  memcpy(ip + 8, &e->opt.icmp6_source, 16);
  memcpy(ip + 24, ip6_src(packet), 16); /* back to the sender */
  uint8_t *icmp = ip + IP6_HDR_LEN;
  icmp[0] = type;
  icmp[1] = code;
  wr32(icmp + 4, param); /* packet too big: the MTU; otherwise unused (zero) */
  memcpy(icmp + 8, packet, quoted);
  uint16_t c = (uint16_t)~csum_fold(csum_add(csum_pseudo6(ip, IPPROTO_ICMPV6_, payload), icmp, payload));
  memcpy(icmp + 2, &c, 2);
  for (;;) {
    if (io_tun_write(q, frame, hdr + IP6_HDR_LEN + payload) >= 0) return 1;
    if (errno != EINTR) return 0;
  }
}
