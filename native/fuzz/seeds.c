/* Writes the seed corpora for fuzz_outside, fuzz_inside and fuzz_wireguard in their input formats (see the
 * comment at the top of each harness): valid flannel udp datagrams and vxlan frames, TCP
 * flows to coalesce, GRO super-datagrams, TSO/USO super-packets, and the usual drop cases;
 * for vxlan the same over IPv6 (inner IPv6, the IPv6 socket, ICMPv6 errors, packet too big).
 * Usage: seeds <outside-dir> <inside-dir> <wireguard-dir> */
#include <linux/virtio_net.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/checksum.h"
#include "../src/datapath.h"
#include "../src/packet.h"

#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5
#endif

#define IP(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d))

static uint8_t seed[1 << 18];
static size_t seed_len;

static void put8(uint8_t v) { seed[seed_len++] = v; }
static void put16(uint16_t v) {
  put8((uint8_t)(v >> 8));
  put8((uint8_t)v);
}
static void put(const uint8_t *p, size_t n) {
  memcpy(seed + seed_len, p, n);
  seed_len += n;
}

static void save(const char *dir, const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(seed, 1, seed_len, f) != seed_len || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
  seed_len = 0;
}

/* An IPv4 packet with `l4_len` bytes after the header; returns its length. */
static size_t ipv4(uint8_t *ip, uint32_t src, uint32_t dst, uint8_t proto, uint8_t ttl, size_t l4_len, uint16_t id) {
  memset(ip, 0, 20);
  ip[0] = 0x45;
  wr16(ip + 2, (uint16_t)(20 + l4_len));
  wr16(ip + 4, id);
  ip[6] = 0x40; /* DF */
  ip[8] = ttl;
  ip[9] = proto;
  wr32(ip + 12, src);
  wr32(ip + 16, dst);
  ip4_set_checksum(ip, 20);
  return 20 + l4_len;
}

/* An IPv6 packet (no extension headers) with `l4_len` bytes after the header; returns its length. */
static size_t ipv6(uint8_t *ip, const uint8_t src[16], const uint8_t dst[16], uint8_t next, uint8_t hop_limit, size_t l4_len) {
  memset(ip, 0, 40);
  ip[0] = 0x60;
  ip[2] = 0x12, ip[3] = 0x34; /* a flow label */
  wr16(ip + 4, (uint16_t)l4_len);
  ip[6] = next;
  ip[7] = hop_limit;
  memcpy(ip + 8, src, 16);
  memcpy(ip + 24, dst, 16);
  return 40 + l4_len;
}

static unsigned l3_len(const uint8_t *ip) { return (ip[0] >> 4) == 6 ? 40 : 20; }

/* The pseudo-header sum of the packet's family. */
static uint64_t pseudo(const uint8_t *ip, size_t len) {
  unsigned hl = l3_len(ip);
  return hl == 40 ? csum_pseudo6(ip, ip[6], (uint32_t)(len - hl)) : csum_pseudo4(ip, ip[9], (uint16_t)(len - hl));
}

static void l4_checksum(uint8_t *ip, size_t len, unsigned offset) {
  unsigned hl = l3_len(ip);
  uint8_t *l4 = ip + hl;
  size_t l4_len = len - hl;
  l4[offset] = l4[offset + 1] = 0;
  uint16_t c = (uint16_t)~csum_fold(csum_add(pseudo(ip, len), l4, l4_len));
  memcpy(l4 + offset, &c, 2);
}

/* An echo request (ICMP type 8, ICMPv6 type 128) after the IP header already written. */
static size_t echo_fill(uint8_t *ip, size_t len, size_t payload) {
  int v6 = l3_len(ip) == 40;
  uint8_t *icmp = ip + l3_len(ip);
  memset(icmp, 0, 8);
  icmp[0] = v6 ? 128 : 8;
  wr16(icmp + 4, 0x1234);
  for (size_t i = 0; i < payload; i++) icmp[8 + i] = (uint8_t)i;
  if (v6) l4_checksum(ip, len, 2);
  else {
    uint16_t c = (uint16_t)~csum_fold(csum_add(0, icmp, 8 + payload));
    memcpy(icmp + 2, &c, 2);
  }
  return len;
}

static size_t icmp_echo(uint8_t *ip, uint32_t src, uint32_t dst, uint8_t ttl, size_t payload) {
  return echo_fill(ip, ipv4(ip, src, dst, IPPROTO_ICMP_, ttl, 8 + payload, 7), payload);
}

static size_t icmp6_echo(uint8_t *ip, const uint8_t *src, const uint8_t *dst, uint8_t hop_limit, size_t payload) {
  return echo_fill(ip, ipv6(ip, src, dst, IPPROTO_ICMPV6_, hop_limit, 8 + payload), payload);
}

/* The TCP segment after the IP header already written: 20-byte header + 12 bytes of
 * timestamp option, `len - header - 32` bytes of payload. */
static size_t tcp_fill(uint8_t *ip, size_t len, uint16_t sport, uint16_t dport, uint32_t seq, uint8_t flags) {
  uint8_t *t = ip + l3_len(ip);
  size_t payload = len - l3_len(ip) - 32;
  memset(t, 0, 32);
  wr16(t, sport);
  wr16(t + 2, dport);
  wr32(t + 4, seq);
  wr32(t + 8, 0x01020304);
  t[12] = 8 << 4;
  t[13] = flags;
  wr16(t + 14, 502);
  t[20] = 1, t[21] = 1, t[22] = 8, t[23] = 10; /* NOP NOP TS */
  wr32(t + 24, 1000), wr32(t + 28, 2000);
  for (size_t i = 0; i < payload; i++) t[32 + i] = (uint8_t)(seq + i);
  l4_checksum(ip, len, 16);
  return len;
}

/* A TCP segment (20-byte header + 12 bytes of timestamp option) with `payload` bytes. */
static size_t tcp(uint8_t *ip, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq, uint8_t flags,
                  size_t payload, uint16_t id) {
  return tcp_fill(ip, ipv4(ip, src, dst, IPPROTO_TCP_, 64, 32 + payload, id), sport, dport, seq, flags);
}

static size_t tcp6(uint8_t *ip, const uint8_t *src, const uint8_t *dst, uint16_t sport, uint16_t dport, uint32_t seq,
                   uint8_t flags, size_t payload) {
  return tcp_fill(ip, ipv6(ip, src, dst, IPPROTO_TCP_, 64, 32 + payload), sport, dport, seq, flags);
}

static size_t udp_fill(uint8_t *ip, size_t len) {
  uint8_t *u = ip + l3_len(ip);
  size_t payload = len - l3_len(ip) - 8;
  wr16(u, 5000), wr16(u + 2, 53), wr16(u + 4, (uint16_t)(8 + payload)), wr16(u + 6, 0);
  for (size_t i = 0; i < payload; i++) u[8 + i] = (uint8_t)(i * 7);
  l4_checksum(ip, len, 6);
  return len;
}

static size_t udp(uint8_t *ip, uint32_t src, uint32_t dst, size_t payload) {
  return udp_fill(ip, ipv4(ip, src, dst, IPPROTO_UDP_, 64, 8 + payload, 9));
}

static size_t udp6(uint8_t *ip, const uint8_t *src, const uint8_t *dst, size_t payload) {
  return udp_fill(ip, ipv6(ip, src, dst, IPPROTO_UDP_, 64, 8 + payload));
}

/* fd00:244:<net>::<host>, the fuzz harnesses' IPv6 overlay (fake_engine.h). */
static const uint8_t *overlay6(uint8_t out[16], uint16_t net, uint16_t host) {
  memset(out, 0, 16);
  out[0] = 0xfd, out[2] = 0x02, out[3] = 0x44;
  wr16(out + 4, net);
  wr16(out + 14, host);
  return out;
}

/* vxlan: the 22 bytes weft puts in front, to us (VNI 1, our VtepMAC) from `from_last` */
static size_t vxlan_wrap(uint8_t *frame, const uint8_t *ip, size_t len) {
  static const uint8_t head[22] = {0x08, 0, 0, 0, 0, 0, 1, 0, 0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00};
  memcpy(frame, head, 22);
  memmove(frame + 22, ip, len);
  /* The ethertype follows the packet's family (an IPv6 packet in an IPv4 frame is a seed of its own). */
  if (len && (ip[0] >> 4) == 6) wr16(frame + 20, 0x86dd);
  return 22 + len;
}

enum { SENDER_A = 0, SENDER_B = 1, SENDER_D = 2, STRANGER = 4 };
#define F_GRO 0x08
#define F_LAST 0x20
#define F_V6 0x80

static void message(uint8_t flags, const uint8_t *d, size_t len, uint16_t gro) {
  put8(flags);
  put16((uint16_t)len);
  if (flags & F_GRO) put16(gro);
  put(d, len);
}

static uint8_t pkt[70000], frame[70000];

static void outside_seeds(const char *dir) {
  const uint32_t a1 = IP(10, 244, 1, 5), a5 = IP(10, 244, 5, 9), b = IP(10, 244, 2, 5), us = IP(10, 244, 0, 7);
  for (int vx = 0; vx <= 1; vx++) {
    char name[64];
    size_t n;
#define WRAP(len) (vx ? vxlan_wrap(frame, pkt, (len)) : (memcpy(frame, pkt, (len)), (len)))
    /* One ICMP echo. */
    put8((uint8_t)vx);
    n = icmp_echo(pkt, a1, us, 64, 56);
    message(SENDER_A | F_LAST, frame, WRAP(n), 0);
    snprintf(name, sizeof name, "%s-icmp", vx ? "vxlan" : "udp");
    save(dir, name);

    /* A TCP flow in four segments (last with PSH), another flow in between, a UDP packet. */
    put8((uint8_t)vx);
    for (int i = 0; i < 4; i++) {
      n = tcp(pkt, a1, us, 40000, 5201, 1000 + (uint32_t)i * 1000, i == 3 ? 0x18 : 0x10, 1000, (uint16_t)(100 + i));
      message(SENDER_A, frame, WRAP(n), 0);
      if (i == 1) {
        n = tcp(pkt, b, us, 40001, 5201, 77, 0x10, 500, 1);
        message(SENDER_B, frame, WRAP(n), 0);
      }
    }
    n = udp(pkt, a5, us, 300);
    message(SENDER_A | F_LAST, frame, WRAP(n), 0);
    snprintf(name, sizeof name, "%s-tcp-flows", vx ? "vxlan" : "udp");
    save(dir, name);

    /* A GRO super-datagram: three full segments and a short one, back to back. */
    put8((uint8_t)vx);
    size_t at = 0, seg = 0;
    static uint8_t gro[70000];
    for (int i = 0; i < 4; i++) {
      n = tcp(pkt, a1, us, 40000, 5201, 5000 + (uint32_t)i * 1000, 0x10, i == 3 ? 400 : 1000, (uint16_t)i);
      size_t l = WRAP(n);
      if (i == 0) seg = l;
      memcpy(gro + at, frame, l);
      at += l;
    }
    message(SENDER_A | F_GRO | F_LAST, gro, at, (uint16_t)seg);
    snprintf(name, sizeof name, "%s-gro", vx ? "vxlan" : "udp");
    save(dir, name);

    /* Drops: stranger, source outside the sender's subnets, TTL 1, a later fragment. */
    put8((uint8_t)vx);
    n = icmp_echo(pkt, a1, us, 64, 8);
    message(STRANGER, frame, WRAP(n), 0);
    n = icmp_echo(pkt, b, us, 64, 8);
    message(SENDER_A, frame, WRAP(n), 0);
    n = icmp_echo(pkt, IP(10, 244, 9, 9), us, 64, 8);
    message(SENDER_D, frame, WRAP(n), 0);
    n = icmp_echo(pkt, a1, us, 1, 8);
    message(SENDER_A, frame, WRAP(n), 0);
    n = udp(pkt, a1, us, 100);
    wr16(pkt + 6, 0x2000 | 64); /* MF, offset 512 */
    ip4_set_checksum(pkt, 20);
    message(SENDER_A | F_LAST, frame, WRAP(n), 0);
    snprintf(name, sizeof name, "%s-drops", vx ? "vxlan" : "udp");
    save(dir, name);

    /* Nine TCP connections in one batch, two segments each where there is room: more
     * connections than flow slots (8), so one is evicted. */
    put8((uint8_t)vx);
    for (int i = 0; i < 16; i++) {
      int conn = i % 9, second = i >= 9;
      n = tcp(pkt, a1, us, (uint16_t)(41000 + conn), 5201, 100 + (second ? 600u : 0u), 0x10, 600, (uint16_t)i);
      message(SENDER_A | (i == 15 ? F_LAST : 0), frame, WRAP(n), 0);
    }
    snprintf(name, sizeof name, "%s-nine-flows", vx ? "vxlan" : "udp");
    save(dir, name);

    /* One TCP connection and an ICMP echo with every 3rd TUN write failing. */
    put8((uint8_t)(vx | 2));
    for (int i = 0; i < 6; i++) {
      n = i % 2 ? icmp_echo(pkt, a1, us, 64, 20) : tcp(pkt, a1, us, 40000, 5201, 1 + (uint32_t)i * 500, 0x18, 500, (uint16_t)i);
      message(SENDER_A | (i == 5 ? F_LAST : 0), frame, WRAP(n), 0);
    }
    snprintf(name, sizeof name, "%s-tun-write-errors", vx ? "vxlan" : "udp");
    save(dir, name);

    /* A whole TCP super-packet in one datagram, MTU 1450: written as GSO_TCPV4. */
    put8((uint8_t)(vx | (1 << 2)));
    n = tcp(pkt, a1, us, 40000, 5201, 9, 0x10, 30000, 3);
    message(SENDER_A | F_LAST, frame, WRAP(n), 0);
    snprintf(name, sizeof name, "%s-oversized", vx ? "vxlan" : "udp");
    save(dir, name);
#undef WRAP
  }
}

/* vxlan over the IPv6 socket (fuzz_outside flags bit 7). */
static void outside_seeds6(const char *dir) {
  uint8_t a1[16], a5[16], b[16], us[16], d9[16];
  overlay6(a1, 1, 5), overlay6(a5, 5, 9), overlay6(b, 2, 5), overlay6(us, 0, 7), overlay6(d9, 9, 9);
  size_t n;
  put8(1);
  n = icmp6_echo(pkt, a1, us, 64, 56);
  message(SENDER_A | F_V6 | F_LAST, frame, vxlan_wrap(frame, pkt, n), 0);
  save(dir, "vxlan6-icmp");

  /* A TCPv6 flow in four segments, another flow in between, a UDPv6 packet, an IPv4 packet on the
   * IPv4 socket between them. */
  put8(1);
  for (int i = 0; i < 4; i++) {
    n = tcp6(pkt, a1, us, 40000, 5201, 1000 + (uint32_t)i * 1000, i == 3 ? 0x18 : 0x10, 1000);
    message(SENDER_A | F_V6, frame, vxlan_wrap(frame, pkt, n), 0);
    if (i == 1) {
      n = tcp6(pkt, b, us, 40001, 5201, 77, 0x10, 500);
      message(SENDER_B | F_V6, frame, vxlan_wrap(frame, pkt, n), 0);
    }
    if (i == 2) {
      n = icmp_echo(pkt, IP(10, 244, 1, 5), IP(10, 244, 0, 7), 64, 8);
      message(SENDER_A | F_LAST, frame, vxlan_wrap(frame, pkt, n), 0);
    }
  }
  n = udp6(pkt, a5, us, 300);
  message(SENDER_A | F_V6 | F_LAST, frame, vxlan_wrap(frame, pkt, n), 0);
  save(dir, "vxlan6-tcp-flows");

  /* A GRO super-datagram of four TCPv6 segments. */
  put8(1);
  size_t at = 0, seg = 0;
  static uint8_t gro[70000];
  for (int i = 0; i < 4; i++) {
    n = tcp6(pkt, a1, us, 40000, 5201, 5000 + (uint32_t)i * 1000, 0x10, i == 3 ? 400 : 1000);
    size_t l = vxlan_wrap(frame, pkt, n);
    if (i == 0) seg = l;
    memcpy(gro + at, frame, l);
    at += l;
  }
  message(SENDER_A | F_V6 | F_GRO | F_LAST, gro, at, (uint16_t)seg);
  save(dir, "vxlan6-gro");

  /* Drops: a stranger, a source in another peer's subnet, an IPv4 frame on the IPv6 socket, an
   * IPv6 frame on the IPv4 socket, a truncated payload length. */
  put8(1);
  n = icmp6_echo(pkt, a1, us, 64, 8);
  message(STRANGER | F_V6, frame, vxlan_wrap(frame, pkt, n), 0);
  n = icmp6_echo(pkt, b, us, 64, 8);
  message(SENDER_A | F_V6, frame, vxlan_wrap(frame, pkt, n), 0);
  n = icmp6_echo(pkt, d9, us, 64, 8);
  message(SENDER_B | F_V6, frame, vxlan_wrap(frame, pkt, n), 0);
  n = icmp_echo(pkt, IP(10, 244, 1, 5), IP(10, 244, 0, 7), 64, 8);
  message(SENDER_A | F_V6, frame, vxlan_wrap(frame, pkt, n), 0);
  n = icmp6_echo(pkt, a1, us, 64, 8);
  wr16(pkt + 4, 200);
  message(SENDER_A | F_V6 | F_LAST, frame, vxlan_wrap(frame, pkt, n), 0);
  n = icmp6_echo(pkt, a1, us, 64, 8);
  message(SENDER_A | F_LAST, frame, vxlan_wrap(frame, pkt, n), 0);
  save(dir, "vxlan6-drops");

  /* A whole TCPv6 super-packet in one datagram, MTU 1450: written as GSO_TCPV6. */
  put8((uint8_t)(1 | (1 << 2)));
  n = tcp6(pkt, a1, us, 40000, 5201, 9, 0x10, 30000);
  message(SENDER_A | F_V6 | F_LAST, frame, vxlan_wrap(frame, pkt, n), 0);
  save(dir, "vxlan6-oversized");
}

/* A TUN read: virtio header (if `vnet`) and packet. */
static void tun_read(uint8_t flags, int vnet, const struct virtio_net_hdr *h, const uint8_t *ip, size_t len) {
  put8(flags);
  put16((uint16_t)(len + (vnet ? VNET_HDR_LEN : 0)));
  if (vnet) put((const uint8_t *)h, VNET_HDR_LEN);
  put(ip, len);
}

/* The kernel's TSO/partial-checksum form: the L4 checksum field holds the pseudo-header sum. */
static void partial(uint8_t *ip, size_t len, unsigned offset, struct virtio_net_hdr *h) {
  unsigned hl = l3_len(ip);
  uint16_t c = csum_fold(pseudo(ip, len));
  memcpy(ip + hl + offset, &c, 2);
  h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h->csum_start = (uint16_t)hl;
  h->csum_offset = (uint16_t)offset;
}

/* vxlan mode, IPv6 from the TUN. */
static void inside_seeds6(const char *dir) {
  uint8_t us[16], a1[16], b[16], nowhere[16], multicast[16];
  overlay6(us, 0, 7), overlay6(a1, 1, 5), overlay6(b, 2, 5);
  memset(nowhere, 0, 16), nowhere[0] = 0xfd, nowhere[1] = 0x99, nowhere[15] = 1;
  memset(multicast, 0, 16), multicast[0] = 0xff, multicast[1] = 0x02, multicast[15] = 1;
  struct virtio_net_hdr h;
  size_t n;
  /* Plain: an echo, TCPv6 with a partial checksum, UDPv6; an IPv4 packet between them. */
  put8(1);
  memset(&h, 0, sizeof h);
  n = icmp6_echo(pkt, us, a1, 64, 56);
  tun_read(0, 1, &h, pkt, n);
  n = tcp6(pkt, us, b, 5201, 40000, 1, 0x18, 200);
  partial(pkt, n, 16, &h);
  tun_read(0, 1, &h, pkt, n);
  memset(&h, 0, sizeof h);
  n = icmp_echo(pkt, IP(10, 244, 0, 7), IP(10, 244, 1, 5), 64, 8);
  tun_read(0, 1, &h, pkt, n);
  n = udp6(pkt, us, a1, 100);
  tun_read(1, 1, &h, pkt, n);
  save(dir, "vxlan6-plain");

  /* TSO over IPv6: 20000 bytes in segments that fit the path MTU (1430 - 40 - 32); then one
   * whose segments would not (packet too big); then 64 KB in two GSO messages. */
  put8(1);
  memset(&h, 0, sizeof h);
  n = tcp6(pkt, us, a1, 5201, 40000, 100, 0x18, 20000);
  partial(pkt, n, 16, &h);
  h.gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
  h.gso_size = 1430 - 72;
  h.hdr_len = 72;
  tun_read(0, 1, &h, pkt, n);
  h.gso_size = 1450 - 72;
  tun_read(0, 1, &h, pkt, n);
  n = tcp6(pkt, us, b, 5201, 40001, 7, 0x10, 65000);
  partial(pkt, n, 16, &h);
  h.gso_size = 1000;
  tun_read(1, 1, &h, pkt, n);
  save(dir, "vxlan6-tso");

  /* USO over IPv6, and a TCPv6 super-packet announced as TCPV4 (unsupported). */
  put8(1);
  memset(&h, 0, sizeof h);
  n = udp6(pkt, us, a1, 10000);
  partial(pkt, n, 6, &h);
  h.gso_type = VIRTIO_NET_HDR_GSO_UDP_L4;
  h.gso_size = 1380;
  h.hdr_len = 48;
  tun_read(0, 1, &h, pkt, n);
  n = tcp6(pkt, us, a1, 5201, 40000, 100, 0x10, 5000);
  partial(pkt, n, 16, &h);
  h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  h.gso_size = 1000;
  tun_read(1, 1, &h, pkt, n);
  save(dir, "vxlan6-uso");

  /* ICMPv6 errors: no route, hop limit 1, too big; none about an error or a multicast packet. */
  put8(1);
  memset(&h, 0, sizeof h);
  n = icmp6_echo(pkt, us, nowhere, 64, 16);
  tun_read(0, 1, &h, pkt, n);
  n = udp6(pkt, us, nowhere, 16);
  tun_read(0, 1, &h, pkt, n);
  n = icmp6_echo(pkt, us, a1, 1, 16);
  tun_read(0, 1, &h, pkt, n);
  n = icmp6_echo(pkt, us, a1, 64, 1431 - 48);
  tun_read(0, 1, &h, pkt, n);
  n = icmp6_echo(pkt, us, nowhere, 64, 16);
  pkt[40] = 1; /* destination unreachable itself */
  tun_read(0, 1, &h, pkt, n);
  n = udp6(pkt, us, multicast, 16);
  tun_read(1, 1, &h, pkt, n);
  save(dir, "vxlan6-icmp-errors");

  /* sendmmsg() on the IPv6 socket answering EIO, then EMSGSIZE; offloads off. */
  put8(1);
  memset(&h, 0, sizeof h);
  n = tcp6(pkt, us, a1, 5201, 40000, 100, 0x10, 8000);
  partial(pkt, n, 16, &h);
  h.gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
  h.gso_size = 1000;
  h.hdr_len = 72;
  tun_read(1 | (5 << 1), 1, &h, pkt, n);
  tun_read(1 | (6 << 1), 1, &h, pkt, n);
  save(dir, "vxlan6-send-errors");
  put8(1 | 2);
  n = icmp6_echo(pkt, us, a1, 64, 56);
  tun_read(0, 0, NULL, pkt, n);
  n = icmp6_echo(pkt, us, nowhere, 64, 8);
  tun_read(1, 0, NULL, pkt, n);
  save(dir, "vxlan6-no-vnet");
}

static void inside_seeds(const char *dir) {
  const uint32_t us = IP(10, 244, 0, 7), a1 = IP(10, 244, 1, 5), b = IP(10, 244, 2, 5);
  /* vx: 0 udp, 1 vxlan, 8 wireguard (fuzz_inside's config bits). */
  for (int vx = 0; vx <= 8; vx = vx == 0 ? 1 : vx + 7) {
    char name[64];
    size_t n;
    struct virtio_net_hdr h;
    /* Plain packets: ICMP echo, TCP with a partial checksum, UDP. */
    put8((uint8_t)vx);
    memset(&h, 0, sizeof h);
    n = icmp_echo(pkt, us, a1, 64, 56);
    tun_read(0, 1, &h, pkt, n);
    n = tcp(pkt, us, b, 5201, 40000, 1, 0x18, 200, 1);
    partial(pkt, n, 16, &h);
    tun_read(0, 1, &h, pkt, n);
    memset(&h, 0, sizeof h);
    n = udp(pkt, us, a1, 100);
    tun_read(1, 1, &h, pkt, n);
    snprintf(name, sizeof name, "%s-plain", vx == 8 ? "wireguard" : vx ? "vxlan" : "udp");
    save(dir, name);

    /* TSO: 20000 bytes at MSS 1448; then a 64 KB one that needs two GSO messages. */
    put8((uint8_t)vx);
    memset(&h, 0, sizeof h);
    n = tcp(pkt, us, a1, 5201, 40000, 100, 0x18, 20000, 50);
    partial(pkt, n, 16, &h);
    h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
    h.gso_size = 1448 - 12;
    h.hdr_len = 52;
    tun_read(0, 1, &h, pkt, n);
    n = tcp(pkt, us, b, 5201, 40001, 7, 0x10, 65000, 90);
    partial(pkt, n, 16, &h);
    h.gso_size = 1398 - 12;
    tun_read(1, 1, &h, pkt, n);
    snprintf(name, sizeof name, "%s-tso", vx == 8 ? "wireguard" : vx ? "vxlan" : "udp");
    save(dir, name);

    /* USO: 10000 bytes at 1400. */
    put8((uint8_t)vx);
    memset(&h, 0, sizeof h);
    n = udp(pkt, us, a1, 10000);
    partial(pkt, n, 6, &h);
    h.gso_type = VIRTIO_NET_HDR_GSO_UDP_L4;
    h.gso_size = 1400;
    h.hdr_len = 28;
    tun_read(1, 1, &h, pkt, n);
    snprintf(name, sizeof name, "%s-uso", vx == 8 ? "wireguard" : vx ? "vxlan" : "udp");
    save(dir, name);

    /* ICMP errors: no route, TTL 1. */
    put8((uint8_t)vx);
    memset(&h, 0, sizeof h);
    n = icmp_echo(pkt, us, IP(10, 99, 0, 1), 64, 16);
    tun_read(0, 1, &h, pkt, n);
    n = udp(pkt, us, IP(10, 99, 0, 1), 16);
    tun_read(0, 1, &h, pkt, n);
    n = icmp_echo(pkt, us, a1, 1, 16);
    tun_read(1, 1, &h, pkt, n);
    snprintf(name, sizeof name, "%s-icmp-errors", vx == 8 ? "wireguard" : vx ? "vxlan" : "udp");
    save(dir, name);

    /* sendmmsg() answering EIO (GSO off for good), then half, then EMSGSIZE. */
    put8((uint8_t)vx);
    memset(&h, 0, sizeof h);
    n = tcp(pkt, us, a1, 5201, 40000, 100, 0x10, 8000, 50);
    partial(pkt, n, 16, &h);
    h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
    h.gso_size = 1000;
    h.hdr_len = 52;
    tun_read(1 | (5 << 1), 1, &h, pkt, n);
    tun_read(0, 1, &h, pkt, n);
    memset(&h, 0, sizeof h);
    n = icmp_echo(pkt, us, b, 64, 16);
    tun_read(1 | (4 << 1), 1, &h, pkt, n);
    tun_read(0, 1, &h, pkt, n);
    tun_read(1 | (6 << 1), 1, &h, pkt, n);
    snprintf(name, sizeof name, "%s-send-errors", vx == 8 ? "wireguard" : vx ? "vxlan" : "udp");
    save(dir, name);

    /* Offloads off: no virtio header. */
    put8((uint8_t)(vx | 2));
    n = icmp_echo(pkt, us, a1, 64, 56);
    tun_read(0, 0, NULL, pkt, n);
    n = icmp_echo(pkt, us, IP(10, 99, 0, 1), 64, 8);
    tun_read(1, 0, NULL, pkt, n);
    snprintf(name, sizeof name, "%s-no-vnet", vx == 8 ? "wireguard" : vx ? "vxlan" : "udp");
    save(dir, name);
  }
}

/* fuzz_wireguard: a message sealed by the harness for session `session` (1-3) with `counter`. */
static void wg_sealed(uint8_t flags, uint16_t counter, const uint8_t *plain, size_t len) {
  put8(flags);
  put16(counter);
  put16((uint16_t)len);
  put(plain, len);
}

static void wg_raw(uint8_t flags, const uint8_t *d, size_t len) {
  put8(flags & (uint8_t)~3);
  put16((uint16_t)len);
  put(d, len);
}

static void wireguard_seeds(const char *dir) {
  uint32_t us = IP(10, 244, 0, 1), a1 = IP(10, 244, 1, 5), a5 = IP(10, 244, 5, 9), b = IP(10, 244, 2, 7);
  size_t n;
  /* Pings from both peers, a TCP run, a keepalive, through the next session too. */
  n = icmp_echo(pkt, a1, us, 64, 56);
  wg_sealed(1, 0, pkt, n);
  n = tcp(pkt, a5, us, 1000, 80, 1, 0x10, 1000, 3);
  wg_sealed(1, 1, pkt, n);
  wg_sealed(1, 2, pkt, n);
  n = udp(pkt, b, us, 30);
  wg_sealed(3, 0, pkt, n);
  wg_sealed(3 | F_LAST, 1, pkt, 0); /* keepalive */
  n = icmp_echo(pkt, a1, us, 64, 8);
  wg_sealed(2 | 0x40, 5, pkt, n); /* the responder session, from a new port */
  wg_sealed(1, 0, pkt, n);         /* current is now the next one: counter 0 is fresh there */
  save(dir, "wireguard-traffic");

  /* Replays, stale counters, forgeries, wrong peers' sources. */
  n = icmp_echo(pkt, a1, us, 64, 16);
  wg_sealed(1, 3000, pkt, n);
  wg_sealed(1, 3000, pkt, n);
  wg_sealed(1, 100, pkt, n);   /* older than the window */
  wg_sealed(1, 2999, pkt, n);
  wg_sealed(1 | 0x04, 3001, pkt, n);
  wg_sealed(1 | 0x08, 1, pkt, n); put8(2); /* counter jumps by 2^17 */
  n = icmp_echo(pkt, b, us, 64, 16);
  wg_sealed(1 | F_LAST, 3002, pkt, n); /* peer 2's source through peer 1's session */
  save(dir, "wireguard-drops");

  /* Handshake messages of every type at and off their sizes, unknown types, truncations. */
  static const size_t sizes[] = {148, 92, 64, 147, 93, 0, 3, 31};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    memset(frame, 0, sizes[i] + 4);
    frame[0] = (uint8_t)(1 + i % 3);
    wg_raw(0, frame, sizes[i]);
  }
  memset(frame, 0, 64);
  frame[0] = 4, frame[4] = 0x11;
  wg_raw(0, frame, 32);
  frame[0] = 5;
  wg_raw(0, frame, 40);
  frame[0] = 4, frame[1] = 1;
  wg_raw(F_LAST, frame, 40);
  save(dir, "wireguard-handshake-and-junk");
}

/* fuzz_wireguard's IPv6 interface (flags bit 7: the IPv6 socket): pings and TCP from both IPv6
 * peers, a spoofed IPv6 source, an IPv4 packet on an IPv6 session, an IPv4 session's message on
 * the IPv6 socket, a replay, a handshake message. */
#define WG_V6 0x80
static void wireguard_seeds6(const char *dir) {
  uint8_t a1[16], a5[16], b[16], us[16], d9[16];
  overlay6(a1, 1, 5), overlay6(a5, 5, 9), overlay6(b, 2, 5), overlay6(us, 0, 7), overlay6(d9, 9, 9);
  size_t n;
  n = icmp6_echo(pkt, a1, us, 64, 56);
  wg_sealed(WG_V6 | 1, 0, pkt, n);
  n = tcp6(pkt, a5, us, 40000, 5201, 1000, 0x10, 1000);
  wg_sealed(WG_V6 | 1, 1, pkt, n);
  n = udp6(pkt, b, us, 30);
  wg_sealed(WG_V6 | 2, 0, pkt, n);
  wg_sealed(WG_V6 | 2, 1, pkt, 0); /* keepalive */
  n = icmp_echo(pkt, IP(10, 244, 1, 5), IP(10, 244, 0, 1), 64, 8);
  wg_sealed(1, 0, pkt, n);          /* the IPv4 interface between them */
  n = icmp6_echo(pkt, a1, us, 64, 8);
  wg_sealed(WG_V6 | 1 | 0x40, 2, pkt, n); /* roaming to another port */
  save(dir, "wireguard6-traffic");

  n = icmp6_echo(pkt, b, us, 64, 16);
  wg_sealed(WG_V6 | 1, 0, pkt, n);  /* peer 2's IPv6 source through peer 1's session */
  n = icmp6_echo(pkt, d9, us, 64, 16);
  wg_sealed(WG_V6 | 2, 0, pkt, n);  /* a source no IPv6 interface peer has */
  n = icmp_echo(pkt, IP(10, 244, 2, 7), IP(10, 244, 0, 1), 64, 16);
  wg_sealed(WG_V6 | 2, 1, pkt, n);  /* IPv4 inside the IPv6 interface's session */
  n = icmp6_echo(pkt, a1, us, 64, 16);
  wg_sealed(WG_V6 | 3, 0, pkt, n);  /* the IPv4 interface's session, on the IPv6 socket */
  wg_sealed(1, 3, pkt, n);          /* IPv6 inside the IPv4 interface's session */
  wg_sealed(WG_V6 | 1, 5, pkt, n);
  wg_sealed(WG_V6 | 1, 5, pkt, n);  /* replayed */
  wg_sealed(WG_V6 | 1 | 0x04, 6, pkt, n);
  memset(frame, 0, 148);
  frame[0] = 1;
  wg_raw(WG_V6 | F_LAST, frame, 148);
  save(dir, "wireguard6-drops");
}

/* fuzz_wireguard's handshake admission: raw datagrams with an admission byte (flags bit 2: source,
 * queue, clock) and a mac1 the harness writes (bit 3). */
#define WG_ADMIT 0x04
#define WG_MAC1 0x08
#define Q_DRAINED 0x10
#define Q_LOADED 0x20
#define Q_FULL 0x30
#define T_10MS 0x40
#define T_100MS 0x80
#define T_1500MS 0xc0
static void wg_admitted(uint8_t flags, uint8_t admission, const uint8_t *d, size_t len) {
  put8((uint8_t)((flags & ~3) | WG_ADMIT));
  put8(admission);
  put16((uint16_t)len);
  put(d, len);
}

static void wireguard_admission_seeds(const char *dir) {
  uint8_t init[148], resp[92], cookie[64];
  for (size_t i = 0; i < sizeof init; i++) init[i] = (uint8_t)(i * 7 + 3);
  memcpy(resp, init, sizeof resp);
  memcpy(cookie, init, sizeof cookie);
  init[0] = 1, resp[0] = 2, cookie[0] = 3;
  init[1] = init[2] = init[3] = resp[1] = resp[2] = resp[3] = cookie[1] = cookie[2] = cookie[3] = 0;

  /* A stranger floods a loaded queue: its burst passes, the rest is rate limited (its cookie
   * replies too); the peer still gets through; garbage fails mac1; credit comes back with time;
   * the load ends a hold after the flood. */
  wg_admitted(WG_MAC1, Q_LOADED | 1, init, sizeof init);
  for (int i = 0; i < 11; i++) wg_admitted(WG_MAC1, 1, init, sizeof init);
  wg_admitted(0, 1, cookie, sizeof cookie);
  wg_admitted(WG_MAC1, 0, init, sizeof init);                  /* the peer */
  wg_admitted(WG_MAC1, 0, resp, sizeof resp);
  wg_admitted(0, 2, init, sizeof init);                        /* no valid mac1 */
  wg_admitted(WG_MAC1, T_100MS | 1, init, sizeof init);
  for (int i = 0; i < 3; i++) wg_admitted(WG_MAC1, 1, init, sizeof init);
  /* The queue drains, the flood goes on past the hold: its own drops keep the limiter on. */
  for (int step = 0; step < 14; step++) {
    wg_admitted(WG_MAC1, (uint8_t)((step == 0 ? Q_DRAINED : 0) | T_100MS | 1), init, sizeof init);
    for (int i = 0; i < 4; i++) wg_admitted(WG_MAC1, 1, init, sizeof init);
  }
  wg_admitted(WG_MAC1, Q_DRAINED | T_1500MS | 1, init, sizeof init);
  for (int i = 0; i < 8; i++) wg_admitted(WG_MAC1, 1, init, sizeof init);
  wg_admitted(WG_MAC1 | F_LAST, T_10MS | 3, resp, sizeof resp);
  save(dir, "wireguard-admission-flood");

  /* A full queue: dropped there, and it loads the limiter for what follows. */
  wg_admitted(WG_MAC1, Q_FULL, init, sizeof init);
  wg_admitted(WG_MAC1, Q_DRAINED | 4, resp, sizeof resp);
  for (int i = 0; i < 7; i++) wg_admitted(WG_MAC1, 4, resp, sizeof resp);
  wg_admitted(F_LAST, 4, cookie, sizeof cookie);
  save(dir, "wireguard-admission-full");

  /* IPv6: strangers 1, 5, 9 and 13 share fd99:0:0:1::/64, and so its bucket; 2 has its own. */
  wg_admitted(WG_V6 | WG_MAC1, Q_LOADED | 1, init, sizeof init);
  for (unsigned n = 5; n <= 13; n += 4)
    for (int i = 0; i < 3; i++) wg_admitted(WG_V6 | WG_MAC1, (uint8_t)n, init, sizeof init);
  wg_admitted(WG_V6 | WG_MAC1, 2, init, sizeof init);
  wg_admitted(WG_V6, 0, cookie, sizeof cookie);
  wg_admitted(WG_V6 | WG_MAC1 | F_LAST, T_1500MS | 5, init, sizeof init);
  save(dir, "wireguard6-admission");
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s <outside-dir> <inside-dir> <wireguard-dir>\n", argv[0]);
    return 2;
  }
  outside_seeds(argv[1]);
  outside_seeds6(argv[1]);
  inside_seeds(argv[2]);
  inside_seeds6(argv[2]);
  wireguard_seeds(argv[3]);
  wireguard_seeds6(argv[3]);
  wireguard_admission_seeds(argv[3]);
  return 0;
}
