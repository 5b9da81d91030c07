/* The inside device: a TUN opened with IFF_NO_PI and, when offloads are on, IFF_VNET_HDR
 * plus TUNSETOFFLOAD so one read() can return a 64 KB TCP (or UDP) super-packet; or the fds of
 * one handed over by the previous engine (opt.adopt), checked to be that device. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "datapath.h"
#include "devices.h"

/* Debian 12's headers predate USO; values from linux/if_tun.h (6.2+). */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

/* MTU and IFF_UP through a throwaway socket of the calling thread's namespace. */
static int link_configure(const char *name, int mtu, char *err, size_t err_len) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    snprintf(err, err_len, "cannot create a socket to configure %s: %s", name, strerror(errno));
    return -1;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  if (mtu > 0) {
    ifr.ifr_mtu = mtu;
    if (ioctl(s, SIOCSIFMTU, &ifr) < 0) {
      snprintf(err, err_len, "cannot set MTU %d on %s: %s (MTU must be 68..65535)", mtu, name, strerror(errno));
      close(s);
      return -1;
    }
  }
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0 || (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr) < 0)) {
    snprintf(err, err_len, "cannot set %s up: %s", name, strerror(errno));
    close(s);
    return -1;
  }
  close(s);
  return 0;
}

/* The header size and offloads belong to the device, but are set through every fd so each
 * queue is known to carry exactly what the first does (also on an adopted fd: a previous
 * engine of another build may have set less). */
static int tun_queue_configure(struct engine *e, int index, int fd, char *err, size_t err_len) {
  if (!e->opt.offloads) return 0;
  int hdr_len = VNET_HDR_LEN;
  if (ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0) {
    snprintf(err, err_len, "cannot set the virtio header size on %s: %s", e->tun_name, strerror(errno));
    return -1;
  }
  unsigned tcp = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
  /* USO4 and USO6 are only accepted together (EINVAL for either alone); without them, TCP only. */
  if ((index == 0 || e->tun_uso) && ioctl(fd, TUNSETOFFLOAD, tcp | TUN_F_USO4 | TUN_F_USO6) == 0) {
    e->tun_uso = 1;
  } else if (ioctl(fd, TUNSETOFFLOAD, tcp) < 0) {
    snprintf(err, err_len, "cannot enable checksum/TSO offload on %s: %s (kernel too old? set offloads: false)",
             e->tun_name, strerror(errno));
    return -1;
  } else {
    e->tun_uso = 0;
  }
  e->vnet_hdr = 1;
  return 0;
}

static short tun_flags(const struct engine *e) {
  return (short)(IFF_TUN | IFF_NO_PI | (e->opt.offloads ? IFF_VNET_HDR : 0) | (e->opt.queues > 1 ? IFF_MULTI_QUEUE : 0));
}

/* One fd of the device: the first creates it (resolving a "%d" template) or, when it persists
 * from an earlier engine, attaches to it; the others attach to it by the resolved name. With
 * more than one queue every fd is opened IFF_MULTI_QUEUE and the kernel spreads the packets it
 * hands us over the queues by flow hash. */
static int tun_queue_open(struct engine *e, int index, char *err, size_t err_len) {
  const char *name = index == 0 ? e->opt.tun_name : e->tun_name;
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    snprintf(err, err_len, "cannot open /dev/net/tun: %s (need CAP_NET_ADMIN and the tun module)", strerror(errno));
    return -1;
  }
  e->queues[index].tun_fd = fd;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = tun_flags(e);
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    if (index == 0) {
      snprintf(err, err_len, "cannot create TUN device %s: %s%s", name, strerror(errno),
               errno == EBUSY    ? " (a device of that name exists and is in use; pick another name or delete it)"
               : errno == EINVAL ? " (a device of that name exists with other queues or type; delete it)"
                                 : "");
    } else {
      snprintf(err, err_len, "cannot attach queue %d of %d to TUN device %s: %s (fewer queues?)", index + 1,
               e->opt.queues, name, strerror(errno));
    }
    return -1;
  }
  if (index == 0) snprintf(e->tun_name, sizeof e->tun_name, "%s", ifr.ifr_name);
  if (index == 0 && e->opt.persist && ioctl(fd, TUNSETPERSIST, 1) < 0) {
    snprintf(err, err_len, "cannot make TUN device %s persistent: %s", e->tun_name, strerror(errno));
    return -1;
  }
  return tun_queue_configure(e, index, fd, err, err_len);
}

/* One handed-over fd: it must be a queue of a TUN device of the configured name (template:
 * any) and kind, or the engine would forward through something it did not ask for. */
static int tun_queue_adopt(struct engine *e, int index, char *err, size_t err_len) {
  int fd = e->queues[index].tun_fd;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
    snprintf(err, err_len, "handed-over fd %d (queue %d) is not a TUN device: %s", fd, index + 1, strerror(errno));
    return -1;
  }
  const short wanted = tun_flags(e);
  const short kind = IFF_TUN | IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
  if ((ifr.ifr_flags & kind) != wanted) {
    snprintf(err, err_len, "handed-over TUN %s (queue %d) has flags 0x%x, this engine needs 0x%x (offloads or queues changed)",
             ifr.ifr_name, index + 1, (unsigned)(ifr.ifr_flags & kind), (unsigned)wanted);
    return -1;
  }
  const char *expected = index == 0 ? e->opt.tun_name : e->tun_name;
  if (!strchr(expected, '%') && strcmp(expected, ifr.ifr_name) != 0) {
    snprintf(err, err_len, "handed-over TUN device is %s (queue %d), expected %s", ifr.ifr_name, index + 1, expected);
    return -1;
  }
  if (index == 0) snprintf(e->tun_name, sizeof e->tun_name, "%s", ifr.ifr_name);
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
    snprintf(err, err_len, "cannot make the handed-over fd of %s non-blocking: %s", e->tun_name, strerror(errno));
    return -1;
  }
  if (index == 0 && e->opt.persist && ioctl(fd, TUNSETPERSIST, 1) < 0) {
    snprintf(err, err_len, "cannot make TUN device %s persistent: %s", e->tun_name, strerror(errno));
    return -1;
  }
  return tun_queue_configure(e, index, fd, err, err_len);
}

/* On failure the fds opened (or adopted) so far stay in e->queues[] for engine.c to close.
 * With opt.adopt but no TUN fds (only sockets handed over: the device was deleted under the
 * previous engine), the TUN is opened afresh. */
int tun_open(struct engine *e, char *err, size_t err_len) {
  for (int i = 0; i < e->opt.queues; i++)
    if ((e->opt.adopt && e->queues[i].tun_fd >= 0 ? tun_queue_adopt(e, i, err, err_len) : tun_queue_open(e, i, err, err_len)) < 0)
      return -1;
  return link_configure(e->tun_name, e->opt.mtu, err, err_len);
}
