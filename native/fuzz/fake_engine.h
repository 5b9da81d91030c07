/* The engine the fuzz harnesses drive: real options, one queue and a fixed peer table, but no
 * devices. The harnesses link their own io_* functions (datapath.h), so nothing reaches a
 * kernel. Included by exactly one harness per binary. */
#ifndef WEFT_FUZZ_FAKE_ENGINE_H
#define WEFT_FUZZ_FAKE_ENGINE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/checksum.h"
#include "../src/datapath.h"
#include "../src/packet.h"

/* The peer table (host byte order). A and its two subnets, B, and D whose /16 covers the
 * others, so a source lookup can land on the wrong peer; 192.168.0.9 is no peer at all. */
#define FZ_SENDER_A 0xc0a80002u /* 192.168.0.2: 10.244.1.0/24 and 10.244.5.0/24 */
#define FZ_SENDER_B 0xc0a80003u /* 192.168.0.3: 10.244.2.0/24 */
#define FZ_SENDER_D 0xc0a80004u /* 192.168.0.4: 10.244.0.0/16 */
#define FZ_STRANGER 0xc0a80009u
#define FZ_PORT 8472
#define FZ_VNI 1u
static const uint8_t fz_our_mac[6] = {0x02, 0, 0, 0, 0, 0x01};
/* A peer's VtepMAC: 02:00:00:00:00:<last byte of its PublicIP>. */

/* IPv6 (vxlan mode): the same peers by PublicIPv6 fd00::2/3/4 (fd00::9 is no peer), with
 * fd00:244:1::/64 and fd00:244:5::/64 (A), fd00:244:2::/64 (B), fd00:244::/48 (D); the same
 * VtepMACs. The IPv6 path MTU is 1430. */
#define FZ_MTU6 1430
static inline void fz_v6(uint8_t out[16], uint16_t w0, uint16_t w1, uint16_t w2, uint16_t last) {
  memset(out, 0, 16);
  out[0] = (uint8_t)(w0 >> 8), out[1] = (uint8_t)w0;
  out[2] = (uint8_t)(w1 >> 8), out[3] = (uint8_t)w1;
  out[4] = (uint8_t)(w2 >> 8), out[5] = (uint8_t)w2;
  out[14] = (uint8_t)(last >> 8), out[15] = (uint8_t)last;
}
/* The PublicIPv6 of a peer whose PublicIP ends in `id` (fd00::<id>). */
static inline void fz_public6(uint8_t out[16], uint8_t id) { fz_v6(out, 0xfd00, 0, 0, id); }

static struct engine fz_engine;

static void fz_fail(const char *what) {
  fprintf(stderr, "fuzz oracle: %s\n", what);
  abort();
}

static void fz_add_peer(uint32_t network, uint8_t prefix, uint32_t public_ip) {
  struct peer p;
  memset(&p, 0, sizeof p);
  p.network = network;
  p.prefix = prefix;
  p.public_ip = public_ip;
  p.has_mac = 1;
  p.mac[0] = 0x02;
  p.mac[5] = (uint8_t)public_ip;
  p.addr.sin_family = AF_INET;
  p.addr.sin_addr.s_addr = htonl(public_ip);
  p.addr.sin_port = htons(FZ_PORT);
  if (routes_set(&fz_engine.routes, &p) < 0) fz_fail("routes_set out of memory");
}

static void fz_add_peer6(uint16_t net, uint8_t prefix, uint32_t public_ip) {
  struct peer6 p;
  memset(&p, 0, sizeof p);
  fz_v6(p.network, 0xfd00, 0x244, net, 0);
  p.prefix = prefix;
  fz_public6(p.public_ip, (uint8_t)public_ip);
  p.mac[0] = 0x02;
  p.mac[5] = (uint8_t)public_ip;
  p.addr.sin6_family = AF_INET6;
  memcpy(p.addr.sin6_addr.s6_addr, p.public_ip, 16);
  p.addr.sin6_port = htons(FZ_PORT);
  if (routes_set6(&fz_engine.routes, &p) < 0) fz_fail("routes_set6 out of memory");
}

/* Sets the engine up for one input; the peer table is built once. */
static struct queue *fz_engine_reset(enum weft_mode mode, int vnet_hdr, int mtu, int udp_gso) {
  static int ready;
  struct engine *e = &fz_engine;
  if (!ready) {
    routes_init(&e->routes);
    fz_add_peer(0x0af40100u, 24, FZ_SENDER_A);
    fz_add_peer(0x0af40500u, 24, FZ_SENDER_A);
    fz_add_peer(0x0af40200u, 24, FZ_SENDER_B);
    fz_add_peer(0x0af40000u, 16, FZ_SENDER_D);
    fz_add_peer6(1, 64, FZ_SENDER_A);
    fz_add_peer6(5, 64, FZ_SENDER_A);
    fz_add_peer6(2, 64, FZ_SENDER_B);
    fz_add_peer6(0, 48, FZ_SENDER_D);
    e->queue_count = 1;
    e->wake_fd = -1;
    ready = 1;
  }
  e->opt.mode = mode;
  e->opt.port = FZ_PORT;
  e->opt.vni = FZ_VNI;
  memcpy(e->opt.vtep_mac, fz_our_mac, 6);
  e->opt.mtu = mtu;
  e->opt.icmp_source.s_addr = htonl(0x0af40001u); /* 10.244.0.1 */
  e->opt.has_v6 = mode == WEFT_MODE_VXLAN;
  e->opt.has_icmp6_source = 1;
  fz_v6(e->opt.icmp6_source.s6_addr, 0xfd00, 0x244, 0, 1); /* fd00:244::1 */
  e->opt.mtu6 = FZ_MTU6;
  e->opt.offloads = vnet_hdr;
  e->vnet_hdr = vnet_hdr;
  e->tun_uso = vnet_hdr;
  e->udp_gso = udp_gso;
  e->udp_gro = 1;
  struct queue *q = &e->queues[0];
  memset(q->counters, 0, sizeof q->counters);
  q->e = e;
  q->index = 0;
  q->tun_fd = q->udp_fd = q->udp6_fd = -1;
  q->udp_gso = q->udp6_gso = udp_gso;
  return q;
}

/* A valid IPv4 header checksum. */
static inline int fz_ip_checksum_ok(const uint8_t *ip) {
  return csum_fold(csum_add(0, ip, ip4_header_len(ip))) == 0xffff;
}

/* The harnesses check whole frames: a gathered write is put together and handed to their
 * io_tun_write, which judges it as it judges a plain write (errors and EINTR included). */
ssize_t io_tun_writev(struct queue *q, const struct iovec *iov, int n) {
  static uint8_t frame[VNET_HDR_LEN + 65536 + 64];
  size_t len = 0;
  for (int i = 0; i < n; i++) {
    if (len + iov[i].iov_len > sizeof frame) {
      fz_fail("a gathered TUN frame longer than any TUN write");
    }
    memcpy(frame + len, iov[i].iov_base, iov[i].iov_len);
    len += iov[i].iov_len;
  }
  return io_tun_write(q, frame, len);
}

#endif
