/* ICMP errors written back into the TUN (icmp.c), used by inside.c. */
#ifndef WEFT_ICMP_H
#define WEFT_ICMP_H

#include <stddef.h>
#include <stdint.h>

#include "datapath.h"

/* type/code per RFC 792. Returns 1 if sent. */
int icmp_send_error(struct queue *q, const uint8_t *packet, size_t len, uint8_t type, uint8_t code);

#endif
