/* ICMP errors written back into the TUN, as flannel's proxy does for a destination no
 * lease covers (type 3 code 0) and, unlike flannel, for an expiring TTL (type 11 code 0).
 * Source: the TUN's own address (opt.icmp_source); TTL 8 like flannel; payload: the
 * offending IP header plus the first 8 bytes after it (RFC 792). */
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
