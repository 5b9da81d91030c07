/* ICMP errors written back into the TUN (icmp.c), used by inside.c. */
#ifndef WEFT_ICMP_H
#define WEFT_ICMP_H

#include <stddef.h>
#include <stdint.h>

#include "datapath.h"

/* type/code per RFC 792. Returns 1 if sent. */
int icmp_send_error(struct queue *q, const uint8_t *packet, size_t len, uint8_t type, uint8_t code);

/* ICMPv6 types (RFC 4443) weft sends. */
#define ICMP6_DEST_UNREACHABLE 1
#define ICMP6_PACKET_TOO_BIG 2
#define ICMP6_TIME_EXCEEDED 3
/* Whether an ICMPv6 error may be sent about this IPv6 packet (RFC 4443 2.4(e)). */
int icmp6_may_answer(const uint8_t *packet, size_t len);
/* An ICMPv6 error about `packet` (an IPv6 packet of `len` bytes) into the TUN; `param` is the
 * 32-bit field after the checksum (the MTU for packet too big). Returns 1 if sent. */
int icmp6_send_error(struct queue *q, const uint8_t *packet, size_t len, uint8_t type, uint8_t code, uint32_t param);

#endif
