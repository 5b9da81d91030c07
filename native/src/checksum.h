/* Internet checksum (RFC 1071) arithmetic shared by both directions. Sums are kept in
 * native byte order over 16-bit words; folding and the final complement give the value
 * to store. Incremental updates follow RFC 1624. */
#ifndef WEFT_CHECKSUM_H
#define WEFT_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t len) {
  while (len >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    sum += (v & 0xffffffffu) + (v >> 32);
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    uint32_t v;
    memcpy(&v, p, 4);
    sum += v;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t v;
    memcpy(&v, p, 2);
    sum += v;
    p += 2;
    len -= 2;
  }
  /* On a little-endian host the odd trailing byte is the low byte of a native word. */
  if (len) sum += *p;
  return sum;
}

static inline uint16_t csum_fold(uint64_t sum) {
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

/* A 64-bit partial sum folded to 33 bits: the same checksum, room to add more. */
static inline uint64_t csum_fold64(uint64_t sum) { return (sum & 0xffffffffu) + (sum >> 32); }

/* csum_add() for payloads (hundreds of bytes and more): vectorised where the CPU can
 * (checksum.c). Same result as csum_add() after folding. */
uint64_t csum_add_payload(uint64_t sum, const uint8_t *p, size_t len);

/* Pseudo-header sum for TCP/UDP over IPv4 (addresses taken from the IP header). */
static inline uint64_t csum_pseudo4(const uint8_t *ip, uint8_t proto, uint16_t l4_len) {
  const uint8_t rest[4] = {0, proto, (uint8_t)(l4_len >> 8), (uint8_t)l4_len};
  return csum_add(csum_add(0, ip + 12, 8), rest, 4);
}

/* Pseudo-header sum for TCP/UDP/ICMPv6 over IPv6 (RFC 8200 8.1): both addresses, the
 * upper-layer length as 32 bits, three zero bytes and the next header. */
static inline uint64_t csum_pseudo6(const uint8_t *ip, uint8_t proto, uint32_t l4_len) {
  const uint8_t rest[8] = {(uint8_t)(l4_len >> 24), (uint8_t)(l4_len >> 16), (uint8_t)(l4_len >> 8), (uint8_t)l4_len,
                           0, 0, 0, proto};
  return csum_add(csum_add(0, ip + 8, 32), rest, 8);
}

static inline void ip4_set_checksum(uint8_t *ip, unsigned ihl) {
  ip[10] = ip[11] = 0;
  uint16_t c = (uint16_t)~csum_fold(csum_add(0, ip, ihl));
  memcpy(ip + 10, &c, 2);
}

/* Decrements the IPv4 TTL and patches the header checksum incrementally (RFC 1624, eqn 3).
 * The caller has checked ttl > 1. */
static inline void ip4_decrement_ttl(uint8_t *ip) {
  uint16_t old_word = (uint16_t)((ip[8] << 8) | ip[9]);
  ip[8]--;
  uint16_t new_word = (uint16_t)((ip[8] << 8) | ip[9]);
  uint16_t check = (uint16_t)((ip[10] << 8) | ip[11]);
  uint32_t sum = (uint16_t)~check + (uint32_t)(uint16_t)~old_word + new_word;
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  check = (uint16_t)~sum;
  ip[10] = (uint8_t)(check >> 8);
  ip[11] = (uint8_t)check;
}

#endif
