/* Read-only accessors for the IPv4/TCP/UDP header fields both directions look at.
 * All take a pointer to the first byte of the IPv4 header; values are host byte order. */
#ifndef WEFT_PACKET_H
#define WEFT_PACKET_H

#include <stdint.h>

#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ICMPV6_ 58
#define ETHERTYPE_IPV4_ 0x0800
#define ETHERTYPE_IPV6_ 0x86dd

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t rd32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void wr16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static inline unsigned ip4_header_len(const uint8_t *ip) { return (ip[0] & 0x0fu) * 4u; }
static inline uint32_t ip4_src(const uint8_t *ip) { return rd32(ip + 12); }
static inline uint32_t ip4_dst(const uint8_t *ip) { return rd32(ip + 16); }
/* Fragment offset non-zero: not the first fragment (no transport header inside). */
static inline int ip4_later_fragment(const uint8_t *ip) { return (rd16(ip + 6) & 0x1fff) != 0; }

/* A sane IPv4 header for a buffer of `len` bytes: version 4, IHL >= 5, header and total
 * length within the buffer. Returns the total length to use (the IP length; trailing
 * padding is ignored), or 0 if it is not one. `super` accepts a total length that does
 * not match (TSO super-packets may carry the length of the first segment or 0). */
static inline unsigned ip4_valid_len(const uint8_t *ip, unsigned len, int super) {
  if (len < 20 || (ip[0] >> 4) != 4) return 0;
  unsigned ihl = ip4_header_len(ip);
  if (ihl < 20 || ihl > len) return 0;
  if (super) return len;
  unsigned total = rd16(ip + 2);
  if (total < ihl || total > len) return 0;
  return total;
}

/* IPv6 (RFC 8200): a fixed 40-byte header; weft reads no extension headers (a packet whose next
 * header is not TCP/UDP is forwarded as it is, never split, merged or checksummed). */
static inline const uint8_t *ip6_src(const uint8_t *ip) { return ip + 8; }
static inline const uint8_t *ip6_dst(const uint8_t *ip) { return ip + 24; }
static inline uint8_t ip6_next_header(const uint8_t *ip) { return ip[6]; }

/* A sane IPv6 header for a buffer of `len` bytes: version 6, the payload length within the
 * buffer. Returns the packet length to use (40 + payload length; trailing padding is ignored),
 * or 0. `super` accepts any payload length (TSO super-packets may carry that of one segment
 * or 0). */
static inline unsigned ip6_valid_len(const uint8_t *ip, unsigned len, int super) {
  if (len < 40 || (ip[0] >> 4) != 6) return 0;
  if (super) return len;
  unsigned total = 40u + rd16(ip + 4);
  return total <= len ? total : 0;
}

/* The transport header length of a TCP segment at `l4` (its data offset); 0 if below 20. */
static inline unsigned tcp_header_len(const uint8_t *l4) {
  unsigned thl = (l4[12] >> 4) * 4u;
  return thl < 20 ? 0 : thl;
}

#endif
