/* The outside sockets: UDP bound to the underlay interface address and the configured port,
 * with UDP_GRO (receive super-datagrams) and UDP_SEGMENT (send super-datagrams) when the
 * kernel has them. One socket per queue: with several they form one SO_REUSEPORT group.
 * With an IPv6 underlay address (opt.has_v6) every queue has a second socket, IPv6-only, bound
 * to that address and the same port (wireguard mode: port6, ListenPortV6 of flannel-wg-v6): the IPv4 socket stays exactly as it was
 * (bound to the interface's IPv4 address as flanneld binds, plain sockaddr_in everywhere), and
 * a kernel flannel-v6.<VNI> peer's datagrams come from and go to its PublicIPv6. A single
 * dual-stack socket would have to bind the wildcard [::] to receive both families, taking the
 * port on every address of the namespace. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "datapath.h"
#include "devices.h"

#ifndef SOL_UDP
#define SOL_UDP 17
#endif

static void bind_error(const union underlay_addr *a, int saved, char *err, size_t err_len) {
  char address[INET6_ADDRSTRLEN];
  int v6 = a->sa.sa_family == AF_INET6;
  if (v6) inet_ntop(AF_INET6, &a->v6.sin6_addr, address, sizeof address);
  else inet_ntop(AF_INET, &a->v4.sin_addr, address, sizeof address);
  snprintf(err, err_len, "cannot bind UDP %s%s%s:%u: %s%s", v6 ? "[" : "", address, v6 ? "]" : "",
           ntohs(v6 ? a->v6.sin6_port : a->v4.sin_port), strerror(saved),
           saved == EADDRINUSE     ? " (another weft/flanneld or a kernel vxlan device uses this port?)"
           : saved == EADDRNOTAVAIL ? " (the address is not on any interface of this namespace)"
                                   : "");
}

static socklen_t addr_len(const union underlay_addr *a) {
  return a->sa.sa_family == AF_INET6 ? sizeof a->v6 : sizeof a->v4;
}

/* Buffers, GRO and the GSO probe: for a new socket before bind, and again for an adopted one
 * (setting them on a bound socket is just as valid). *gso: UDP_SEGMENT accepted (probed per
 * socket family). */
static void socket_configure(struct engine *e, int s, int family, int *gso) {
  if (e->opt.socket_buffer > 0) {
    int size = e->opt.socket_buffer;
    /* FORCE needs CAP_NET_ADMIN, which we have; fall back to the capped variant otherwise. */
    if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
      setsockopt(s, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    if (setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
      setsockopt(s, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  }
  if (e->opt.offloads) {
    int one = 1;
    int gro = setsockopt(s, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
    if (family == AF_INET) e->udp_gro = gro;
    int zero = 0;
    /* Probing with size 0 leaves per-message segmentation to the cmsg. */
    *gso = setsockopt(s, SOL_UDP, UDP_SEGMENT, &zero, sizeof zero) == 0;
  }
}

static int socket_open(struct engine *e, const union underlay_addr *a, int *gso, char *err, size_t err_len) {
  /* Blocking for sends (natural back-pressure when the socket buffer is full);
   * receives use MSG_DONTWAIT after poll(). */
  int s = socket(a->sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    snprintf(err, err_len, "cannot create a UDP%s socket: %s", a->sa.sa_family == AF_INET6 ? "/IPv6" : "", strerror(errno));
    return -1;
  }
  int yes = 1;
  if (a->sa.sa_family == AF_INET6 && setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &yes, sizeof yes) < 0) {
    snprintf(err, err_len, "cannot make the UDP/IPv6 socket IPv6-only: %s", strerror(errno));
    close(s);
    return -1;
  }
  socket_configure(e, s, a->sa.sa_family, gso);
  int one = 1;
  if (e->opt.queues > 1 && setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    snprintf(err, err_len, "cannot set SO_REUSEPORT for %d queues: %s (use 1 queue)", e->opt.queues, strerror(errno));
    close(s);
    return -1;
  }
  if (bind(s, &a->sa, addr_len(a)) < 0) {
    bind_error(a, errno, err, err_len);
    close(s);
    return -1;
  }
  return s;
}

/* A handed-over socket must be a UDP socket bound to exactly the address and port this engine
 * would bind (the external interface or the port may have changed since). */
static int socket_adopt(struct engine *e, int s, const union underlay_addr *a, int *gso, char *err, size_t err_len) {
  union underlay_addr bound;
  socklen_t len = sizeof bound;
  int type = 0;
  socklen_t type_len = sizeof type;
  memset(&bound, 0, sizeof bound);
  if (getsockname(s, &bound.sa, &len) < 0 || getsockopt(s, SOL_SOCKET, SO_TYPE, &type, &type_len) < 0 ||
      type != SOCK_DGRAM) {
    snprintf(err, err_len, "handed-over fd %d is not a UDP socket", s);
    return -1;
  }
  int v6 = a->sa.sa_family == AF_INET6;
  int same = bound.sa.sa_family == a->sa.sa_family &&
             (v6 ? bound.v6.sin6_port == a->v6.sin6_port && memcmp(&bound.v6.sin6_addr, &a->v6.sin6_addr, 16) == 0
                 : bound.v4.sin_port == a->v4.sin_port && bound.v4.sin_addr.s_addr == a->v4.sin_addr.s_addr);
  if (!same) {
    char want[INET6_ADDRSTRLEN] = "", got[INET6_ADDRSTRLEN] = "";
    inet_ntop(a->sa.sa_family, v6 ? (const void *)&a->v6.sin6_addr : (const void *)&a->v4.sin_addr, want, sizeof want);
    if (bound.sa.sa_family == AF_INET6) inet_ntop(AF_INET6, &bound.v6.sin6_addr, got, sizeof got);
    else if (bound.sa.sa_family == AF_INET) inet_ntop(AF_INET, &bound.v4.sin_addr, got, sizeof got);
    snprintf(err, err_len, "handed-over socket is bound to %s:%u, this engine binds %s:%u", got,
             ntohs(bound.sa.sa_family == AF_INET6 ? bound.v6.sin6_port : bound.v4.sin_port), want,
             ntohs(v6 ? a->v6.sin6_port : a->v4.sin_port));
    return -1;
  }
  if (fcntl(s, F_SETFD, FD_CLOEXEC) < 0) {
    snprintf(err, err_len, "cannot set FD_CLOEXEC on the handed-over socket: %s", strerror(errno));
    return -1;
  }
  socket_configure(e, s, a->sa.sa_family, gso);
  return 0;
}

/* A SO_REUSEPORT group admits any later socket of the same user that also sets SO_REUSEPORT
 * (a second weft on the same port would silently take a share of our datagrams). Binding once
 * without it first fails exactly as a single-queue engine would when the port is taken; every
 * weft engine does this, so none can join another's group. */
static int port_free(const union underlay_addr *a, char *err, size_t err_len) {
  int s = socket(a->sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    snprintf(err, err_len, "cannot create a UDP socket: %s", strerror(errno));
    return -1;
  }
  int yes = 1;
  if (a->sa.sa_family == AF_INET6) setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &yes, sizeof yes);
  int rc = bind(s, &a->sa, addr_len(a));
  if (rc < 0) bind_error(a, errno, err, err_len);
  close(s);
  return rc;
}

/* The outer 4-tuple between two hosts never changes (same port on both ends), so the group's
 * default hash would send every datagram to one socket. Steer by the INNER flow instead: the
 * program sees the UDP payload (the kernel pulls the UDP header first), finds the inner IPv4
 * header (after VXLAN + Ethernet in vxlan mode) and returns, with v = src ^ dst ^ (sport << 16 | dport),
 *   (((v ^ v >> 16) & 0xffff) * 0x9e3779b1 >> 16) % queues.
 * The low half of v ^ v >> 16 is the same for both directions of a connection; the multiply
 * matters because ephemeral ports step by 2 and a plain fold would put every stream of one
 * client on one socket. So each inner TCP/UDP flow always lands on the same socket and thread and is written to the
 * TUN in order (steering by receiving CPU would reorder a flow whenever the sending thread
 * migrates). Sockets join the group in bind order, so index i is queue i. A load past the end
 * of a short datagram ends the program with 0 (socket 0); without the filter the kernel hash
 * is the fallback. For a UDP_GRO super-datagram the lookup runs once, on its first segment. */
#define STEER_MAX 64

/* The end every steering program shares: A holds v; A = (((v ^ v >> 16) & 0xffff) *
 * 0x9e3779b1 >> 16) % queues, returned. */
static unsigned steer_tail(struct sock_filter *code, unsigned n, uint32_t queues) {
  const struct sock_filter tail[] = {
      {BPF_ST, 0, 0, 0},                                  /* A ^= A >> 16: the low half is now */
      {BPF_ALU | BPF_RSH | BPF_K, 0, 0, 16},             /* the same for both directions */
      {BPF_LDX | BPF_W | BPF_MEM, 0, 0, 0},
      {BPF_ALU | BPF_XOR | BPF_X, 0, 0, 0},
      {BPF_ALU | BPF_AND | BPF_K, 0, 0, 0xffff},
      {BPF_ALU | BPF_MUL | BPF_K, 0, 0, 0x9e3779b1u},    /* multiplicative hash: the top bits */
      {BPF_ALU | BPF_RSH | BPF_K, 0, 0, 16},             /* depend on every input bit */
      {BPF_ALU | BPF_MOD | BPF_K, 0, 0, queues},
      {BPF_RET | BPF_A, 0, 0, 0},
  };
  memcpy(code + n, tail, sizeof tail);
  return n + (unsigned)(sizeof tail / sizeof tail[0]);
}

/* A ^= the word at absolute offset `at` (M[0] is scratch). */
static unsigned steer_xor_word(struct sock_filter *code, unsigned n, uint32_t at) {
  code[n++] = (struct sock_filter){BPF_ST, 0, 0, 0};
  code[n++] = (struct sock_filter){BPF_LD | BPF_W | BPF_ABS, 0, 0, at};
  code[n++] = (struct sock_filter){BPF_LDX | BPF_W | BPF_MEM, 0, 0, 0};
  code[n++] = (struct sock_filter){BPF_ALU | BPF_XOR | BPF_X, 0, 0, 0};
  return n;
}

/* 1 if the group now steers by the program. */
static int steer_attach(int fd, struct sock_filter *code, unsigned n) {
  struct sock_fprog prog = {.len = (unsigned short)n, .filter = code};
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) == 0;
}

static void steer_by_flow(struct engine *e, int fd) {
  uint32_t base = e->opt.mode == WEFT_MODE_VXLAN ? ENCAP_MAX : 0;
  struct sock_filter code[STEER_MAX] = {
      {BPF_LD | BPF_W | BPF_ABS, 0, 0, base + 12},       /* A = inner source address */
      {BPF_ST, 0, 0, 0},                                  /* M[0] = A */
      {BPF_LD | BPF_W | BPF_ABS, 0, 0, base + 16},       /* A = inner destination address */
      {BPF_LDX | BPF_W | BPF_MEM, 0, 0, 0},              /* X = M[0] */
      {BPF_ALU | BPF_XOR | BPF_X, 0, 0, 0},              /* A ^= X */
      {BPF_ST, 0, 0, 0},                                  /* M[0] = A */
      {BPF_LDX | BPF_B | BPF_MSH, 0, 0, base},           /* X = inner IHL * 4 */
      {BPF_LD | BPF_W | BPF_IND, 0, 0, base},            /* A = both ports (first L4 word) */
      {BPF_LDX | BPF_W | BPF_MEM, 0, 0, 0},              /* X = M[0] */
      {BPF_ALU | BPF_XOR | BPF_X, 0, 0, 0},              /* A ^= X */
  };
  e->reuseport_flow = steer_attach(fd, code, steer_tail(code, 10, (uint32_t)e->opt.queues));
}

/* The IPv6 socket's group: the same hash over the inner IPv6 flow, v = the XOR of the eight
 * address words (source and destination, so symmetric) and the ports word right after the
 * fixed header (extension headers are not walked: such packets still hash the same way every
 * time, so they stay in order). */
static void steer_by_flow6(struct engine *e, int fd) {
  uint32_t base = ENCAP_MAX;
  struct sock_filter code[STEER_MAX];
  unsigned n = 0;
  code[n++] = (struct sock_filter){BPF_LD | BPF_W | BPF_ABS, 0, 0, base + 8};
  for (uint32_t at = base + 12; at <= base + IP6_HDR_LEN; at += 4) n = steer_xor_word(code, n, at);
  e->reuseport_flow &= steer_attach(fd, code, steer_tail(code, n, (uint32_t)e->opt.queues));
}

/* Opens (or, with opt.adopt, takes over) one socket of `a`'s family per queue (a SO_REUSEPORT
 * group with several). */
static int open_group(struct engine *e, const union underlay_addr *a, char *err, size_t err_len) {
  int v6 = a->sa.sa_family == AF_INET6;
  if (!e->opt.adopt && e->opt.queues > 1 && port_free(a, err, err_len) < 0) return -1;
  int gso = 0;
  for (int i = 0; i < e->opt.queues; i++) {
    int s;
    if (e->opt.adopt) {
      s = v6 ? e->queues[i].udp6_fd : e->queues[i].udp_fd;
      if (s < 0) {
        snprintf(err, err_len, "no handed-over %s socket for queue %d", v6 ? "IPv6" : "IPv4", i + 1);
        return -1;
      }
      if (socket_adopt(e, s, a, &gso, err, err_len) < 0) return -1;
    } else if ((s = socket_open(e, a, &gso, err, err_len)) < 0) {
      return -1;
    }
    if (v6) {
      e->queues[i].udp6_fd = s;
      e->queues[i].udp6_gso = gso;
    } else {
      e->queues[i].udp_fd = s;
      e->queues[i].udp_gso = gso;
      e->udp_gso = gso;
    }
  }
  if (e->opt.queues > 1) {
    if (v6) steer_by_flow6(e, e->queues[0].udp6_fd);
    else steer_by_flow(e, e->queues[0].udp_fd);
  }
  return 0;
}

/* On failure the sockets opened so far stay in e->queues[] for engine.c to close. */
int underlay_open(struct engine *e, char *err, size_t err_len) {
  union underlay_addr a;
  memset(&a, 0, sizeof a);
  a.v4.sin_family = AF_INET;
  a.v4.sin_port = htons(e->opt.port);
  a.v4.sin_addr = e->opt.bind_address;
  if (open_group(e, &a, err, err_len) < 0) return -1;
  if (!e->opt.has_v6) return 0;
  memset(&a, 0, sizeof a);
  a.v6.sin6_family = AF_INET6;
  a.v6.sin6_port = htons(e->opt.port6 ? e->opt.port6 : e->opt.port);
  a.v6.sin6_addr = e->opt.bind_address6;
  return open_group(e, &a, err, err_len);
}
