/* N-API surface of the engine, called only from src/engine/ (TypeScript):
 *   open(options) -> handle         setPeer(handle, network, prefix, publicIp, mac?)
 *   removePeer(handle, network, prefix) -> boolean
 *   setPeer6(handle, network, prefix, publicIp6, mac)   removePeer6(handle, network, prefix) -> boolean
 *                                   (vxlan mode with bindAddressV6; IPv6 addresses as 16-byte Buffers)
 *   counters(handle) -> Float64Array (order: counterNames())       counterNames() -> string[]
 *   maxQueues() -> WEFT_MAX_QUEUES
 *   info(handle) -> { tunName, queues, spinMicroseconds, sharedThread, vnetHeader, tunUdpOffload, udpGso, udpGro, reuseportFlow,
 *                     ipv6Underlay, udpGsoV6 }
 *   close(handle)
 *   detach(handle) -> {tun, udp, udp6}   stops the threads, keeps the fds open for the next engine
 *                                   (open's options adopt: {tun, udp, udp6}, persist and paused: boolean)
 *   start(handle)                   starts the threads of an engine opened paused
 *   fds(handle) -> {tun, udp, udp6}  the running engine's fds (it keeps them)
 *   notify(socketPath, state, fds?)  sd_notify: one datagram to $NOTIFY_SOCKET (notify.c), fds as
 *                                   SCM_RIGHTS (FDSTORE=1); throws on failure
 *   fdListen, fdServe, fdReceive, closeFd   the hand-over between processes (addon_fdpass.c)
 * wireguard mode (open({mode: "wireguard", onEvent, ...})): setPeer's 6th argument is the peer id
 * its subnet routes to, and
 *   wgSetPeer(handle, id, endpointIp, port, iface?)   wgRemovePeer(handle, id, iface?) -> boolean
 *   wgSetKeypair(handle, id, localIndex, remoteIndex, sendKey, recvKey, initiator, iface?)
 *   wgClearKeypairs(handle, id, iface?)          wgPeerStats(handle, id, iface?) -> object | null
 *   wgSend(handle, ip, port, buffer)             (a handshake message, from queue 0's socket of ip's family)
 *   wgSendKeepalive(handle, id, iface?) -> boolean
 *   wgSetMac1Key(handle, key | null, iface?)    the key handshake admission checks mac1 with
 *                                   (HASH("mac1----" || our public key); null: no check)
 *   wgRateLimitTrace(steps) -> {allowed, tracked, evictions}   for tests: a fresh admission limiter
 *                                   run over [source, atMs] steps (no handle)
 *   onEvent({kind: "message", iface, address, port, data}) / onEvent({kind: "want", iface, peer}) on the JS thread
 *   iface: 0 (default) the IPv4 interface, 1 the IPv6 one (bindAddressV6: flanneld's flannel-wg-v6,
 *   its own peer ids); its endpoints and addresses are IPv6 (16-byte Buffers), and setPeer6's
 *   6th argument is the IPv6 interface's peer id an IPv6 subnet routes to. With ipv6Interface
 *   "shared" there is one interface (0) for both sockets: its endpoints of either family, both
 *   subnets of a peer routed to its one id
 *   blake2sMac(key, data, outLen) -> Buffer     keyed BLAKE2s (OpenSSL BLAKE2SMAC), no handle
 * IPv4 addresses cross as host-order uint32 numbers, IPv6 ones as 16-byte Buffers in network
 * order (open's options take text). No packet ever crosses this boundary. */
#include <arpa/inet.h>
#include <errno.h>
#include <node_api.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addon_fdpass.h"
#include "engine.h"
#include "notify.h"

struct handle {
  struct engine *e; /* NULL once closed */
  napi_threadsafe_function events; /* wireguard mode: to onEvent; NULL otherwise */
  unsigned waiting; /* events queued and not yet delivered (atomic): the admission's load measure */
};

static void OPENSSL_cleanse_keypair(struct wg_keypair *kp) { OPENSSL_cleanse(kp, sizeof *kp); }

/* Handshake messages and notices wait for the JS thread in a queue of WG_EVENT_QUEUE (wireguard.h,
 * whose admission reads its depth from emit_event); more are dropped and counted. */

#define CALL(env, expr)                                            \
  do {                                                             \
    if ((expr) != napi_ok) {                                       \
      const napi_extended_error_info *info_;                       \
      napi_get_last_error_info((env), &info_);                     \
      napi_throw_error((env), NULL, info_ && info_->error_message ? info_->error_message : #expr); \
      return NULL;                                                 \
    }                                                              \
  } while (0)

static void release_events(struct handle *h) {
  if (h->events) napi_release_threadsafe_function(h->events, napi_tsfn_abort);
  h->events = NULL;
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct handle *h = data;
  /* An engine dropped without close(): stop its threads rather than leak them. */
  if (h->e) engine_close(h->e);
  release_events(h);
  free(h);
}

/* The data path's emitter (wireguard.h), on a forwarding thread: never blocks. Returns how many
 * events wait (this one included), or -1. */
static int emit_event(void *ctx, const struct wg_event *event) {
  struct handle *h = ctx;
  struct wg_event *copy = malloc(sizeof *copy);
  if (!copy) return -1;
  memcpy(copy, event, sizeof *copy);
  /* Counted before it is queued: the JS thread may deliver it (and count it off) at once. */
  unsigned waiting = __atomic_add_fetch(&h->waiting, 1, __ATOMIC_RELAXED);
  if (!h->events || napi_call_threadsafe_function(h->events, copy, napi_tsfn_nonblocking) != napi_ok) {
    __atomic_sub_fetch(&h->waiting, 1, __ATOMIC_RELAXED);
    free(copy);
    return -1;
  }
  return (int)waiting;
}

/* On the JS thread: one event to onEvent. env NULL: the engine is closing, just free it (and
 * leave the handle alone: it may be freed already; with env set it never is, as the queue is
 * released, aborting further deliveries, before the handle is freed). */
static void deliver_event(napi_env env, napi_value callback, void *context, void *data) {
  struct wg_event *ev = data;
  if (env) __atomic_sub_fetch(&((struct handle *)context)->waiting, 1, __ATOMIC_RELAXED);
  if (env && callback) {
    napi_value obj, v, argv[1];
    if (napi_create_object(env, &obj) == napi_ok) {
      if (ev->kind == WG_EVENT_HANDSHAKE_MESSAGE) {
        void *bytes;
        napi_create_string_utf8(env, "message", NAPI_AUTO_LENGTH, &v);
        napi_set_named_property(env, obj, "kind", v);
        if (ev->from.sa.sa_family == AF_INET6) {
          napi_create_buffer_copy(env, 16, ev->from.v6.sin6_addr.s6_addr, &bytes, &v);
          napi_set_named_property(env, obj, "address", v);
          napi_create_uint32(env, ntohs(ev->from.v6.sin6_port), &v);
        } else {
          napi_create_uint32(env, ntohl(ev->from.v4.sin_addr.s_addr), &v);
          napi_set_named_property(env, obj, "address", v);
          napi_create_uint32(env, ntohs(ev->from.v4.sin_port), &v);
        }
        napi_set_named_property(env, obj, "port", v);
        if (napi_create_buffer_copy(env, ev->len, ev->data, &bytes, &v) == napi_ok) napi_set_named_property(env, obj, "data", v);
      } else {
        napi_create_string_utf8(env, "want", NAPI_AUTO_LENGTH, &v);
        napi_set_named_property(env, obj, "kind", v);
        napi_create_uint32(env, ev->peer_id, &v);
        napi_set_named_property(env, obj, "peer", v);
      }
      napi_create_uint32(env, (uint32_t)ev->table, &v);
      napi_set_named_property(env, obj, "iface", v);
      argv[0] = obj;
      napi_value undefined;
      napi_get_undefined(env, &undefined);
      napi_call_function(env, undefined, callback, 1, argv, NULL);
    }
  }
  free(ev);
}

static struct handle *get_handle(napi_env env, napi_value value) {
  struct handle *h = NULL;
  if (napi_get_value_external(env, value, (void **)&h) != napi_ok || !h) {
    napi_throw_type_error(env, NULL, "engine handle expected");
    return NULL;
  }
  if (!h->e) {
    napi_throw_error(env, NULL, "the engine is closed");
    return NULL;
  }
  return h;
}

/* Reads options.<name>; returns 0 if absent, 1 if present, -1 after throwing. */
static int get_prop(napi_env env, napi_value obj, const char *name, napi_valuetype want, napi_value *out) {
  bool has = false;
  if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has) return 0;
  if (napi_get_named_property(env, obj, name, out) != napi_ok) return -1;
  napi_valuetype type;
  napi_typeof(env, *out, &type);
  if (type == napi_undefined || type == napi_null) return 0;
  if (type != want) {
    char msg[128];
    snprintf(msg, sizeof msg, "engine option %s has the wrong type", name);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  return 1;
}

static int get_string(napi_env env, napi_value obj, const char *name, char *buf, size_t len) {
  napi_value v;
  int rc = get_prop(env, obj, name, napi_string, &v);
  if (rc <= 0) return rc;
  size_t copied;
  napi_get_value_string_utf8(env, v, buf, len, &copied);
  if (copied >= len - 1) {
    char msg[128];
    snprintf(msg, sizeof msg, "engine option %s is too long (max %zu bytes)", name, len - 2);
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  return 1;
}

static int get_uint(napi_env env, napi_value obj, const char *name, uint32_t max, uint32_t *out) {
  napi_value v;
  int rc = get_prop(env, obj, name, napi_number, &v);
  if (rc <= 0) return rc;
  double d;
  napi_get_value_double(env, v, &d);
  if (d < 0 || d > max || d != (double)(uint32_t)d) {
    char msg[128];
    snprintf(msg, sizeof msg, "engine option %s must be an integer in 0..%u", name, max);
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  *out = (uint32_t)d;
  return 1;
}

static int get_bool(napi_env env, napi_value obj, const char *name, int *out) {
  napi_value v;
  int rc = get_prop(env, obj, name, napi_boolean, &v);
  if (rc <= 0) return rc;
  bool b;
  napi_get_value_bool(env, v, &b);
  *out = b;
  return 1;
}

static int get_address(napi_env env, napi_value obj, const char *name, struct in_addr *out) {
  char text[64];
  int rc = get_string(env, obj, name, text, sizeof text);
  if (rc <= 0) return rc;
  if (inet_pton(AF_INET, text, out) != 1) {
    char msg[160];
    snprintf(msg, sizeof msg, "engine option %s: \"%s\" is not an IPv4 address", name, text);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  return 1;
}

static int get_address6(napi_env env, napi_value obj, const char *name, struct in6_addr *out) {
  char text[64];
  int rc = get_string(env, obj, name, text, sizeof text);
  if (rc <= 0) return rc;
  if (inet_pton(AF_INET6, text, out) != 1) {
    char msg[160];
    snprintf(msg, sizeof msg, "engine option %s: \"%s\" is not an IPv6 address", name, text);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  return 1;
}

static int get_mac(napi_env env, napi_value v, uint8_t mac[6]) {
  bool is_buffer = false;
  napi_is_buffer(env, v, &is_buffer);
  void *data;
  size_t len = 0;
  if (!is_buffer || napi_get_buffer_info(env, v, &data, &len) != napi_ok || len != 6) {
    napi_throw_type_error(env, NULL, "a MAC address must be a 6-byte Buffer");
    return -1;
  }
  memcpy(mac, data, 6);
  return 1;
}

/* A non-negative integer option as uint64 (doubles: exact up to 2^53; larger values round,
 * which only the 2^60-message defaults need, and those are not passed in). */
static int get_u64(napi_env env, napi_value obj, const char *name, uint64_t scale, uint64_t *out) {
  napi_value v;
  int rc = get_prop(env, obj, name, napi_number, &v);
  if (rc <= 0) return rc;
  double d;
  napi_get_value_double(env, v, &d);
  if (!(d >= 1) || d > 1.8e19 / (double)scale || d != (double)(uint64_t)d) {
    char msg[128];
    snprintf(msg, sizeof msg, "engine option %s must be a positive integer", name);
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  *out = (uint64_t)d * scale;
  return 1;
}

/* wireguard mode's timers, in milliseconds (for tests that must rekey in seconds). */
static int get_timers(napi_env env, napi_value o, struct wg_timers *t) {
  if (get_u64(env, o, "rekeyAfterMs", 1000000, &t->rekey_after_ns) < 0) return -1;
  if (get_u64(env, o, "rejectAfterMs", 1000000, &t->reject_after_ns) < 0) return -1;
  if (get_u64(env, o, "keepaliveMs", 1000000, &t->keepalive_ns) < 0) return -1;
  if (get_u64(env, o, "rekeyTimeoutMs", 1000000, &t->rekey_timeout_ns) < 0) return -1;
  if (get_u64(env, o, "rekeyAfterMessages", 1, &t->rekey_after_messages) < 0) return -1;
  if (get_u64(env, o, "rejectAfterMessages", 1, &t->reject_after_messages) < 0) return -1;
  if (t->reject_after_ns <= t->keepalive_ns + t->rekey_timeout_ns) {
    napi_throw_range_error(env, NULL, "engine option rejectAfterMs must exceed keepaliveMs + rekeyTimeoutMs");
    return -1;
  }
  return 0;
}

/* options.adopt = {tun: fds, udp: fds, udp6?: fds}, one per queue (engine_detach's output): 0 if
 * absent, 1 if read into opt, -1 after throwing. The counts must match `queues`: a hand-over
 * from an engine with other queues is the caller's to refuse, not something to guess at. */
static int get_adopted(napi_env env, napi_value o, int queues, struct engine_options *opt) {
  napi_value adopt, v;
  int rc = get_prop(env, o, "adopt", napi_object, &adopt);
  if (rc <= 0) return rc;
  for (int i = 0; i < WEFT_MAX_QUEUES; i++) opt->adopt_tun[i] = opt->adopt_udp[i] = opt->adopt_udp6[i] = -1;
  static const char *const names[] = {"adopt.tun", "adopt.udp", "adopt.udp6"};
  int *const arrays[] = {opt->adopt_tun, opt->adopt_udp, opt->adopt_udp6};
  for (int k = 0; k < 3; k++) {
    rc = get_prop(env, adopt, names[k] + 6, napi_object, &v);
    if (rc < 0) return -1;
    int n = rc == 0 ? 0 : addon_get_fd_array(env, v, names[k], arrays[k], WEFT_MAX_QUEUES);
    if (n < 0) return -1;
    /* adopt.udp is required; adopt.tun may be empty (a new TUN on the old sockets), adopt.udp6 too. */
    if ((k == 1 || n > 0) && n != queues) {
      char msg[128];
      snprintf(msg, sizeof msg, "engine option %s has %d fds for %d queues", names[k], n, queues);
      napi_throw_range_error(env, NULL, msg);
      return -1;
    }
  }
  opt->adopt = 1;
  return 1;
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype type = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &type);
  if (type != napi_object) {
    napi_throw_type_error(env, NULL, "open(options) expects an options object");
    return NULL;
  }
  napi_value o = argv[0];
  struct engine_options opt;
  memset(&opt, 0, sizeof opt);
  opt.offloads = 1;
  char mode[16] = "udp";
  uint32_t port = 8285, vni = 1, mtu = 0, buffer = 0, queues = 1;
  if (get_string(env, o, "mode", mode, sizeof mode) < 0) return NULL;
  if (strcmp(mode, "udp") == 0) opt.mode = WEFT_MODE_UDP;
  else if (strcmp(mode, "vxlan") == 0) opt.mode = WEFT_MODE_VXLAN;
  else if (strcmp(mode, "wireguard") == 0) opt.mode = WEFT_MODE_WIREGUARD;
  else {
    napi_throw_range_error(env, NULL, "engine option mode must be \"udp\", \"vxlan\" or \"wireguard\"");
    return NULL;
  }
  if (opt.mode == WEFT_MODE_VXLAN) port = 8472;
  if (opt.mode == WEFT_MODE_WIREGUARD) port = 51820;
  wg_timers_default(&opt.wg_timers);
  if (get_timers(env, o, &opt.wg_timers) < 0) return NULL;
  napi_value on_event = NULL;
  if (opt.mode == WEFT_MODE_WIREGUARD) {
    if (get_prop(env, o, "onEvent", napi_function, &on_event) <= 0) {
      if (!on_event) napi_throw_type_error(env, NULL, "engine option onEvent (a function) is required in wireguard mode");
      return NULL;
    }
  }
  snprintf(opt.tun_name, sizeof opt.tun_name, "%s", "flannel%d");
  if (get_string(env, o, "tunName", opt.tun_name, sizeof opt.tun_name) < 0) return NULL;
  if (get_string(env, o, "netnsPath", opt.netns_path, sizeof opt.netns_path) < 0) return NULL;
  if (get_address(env, o, "bindAddress", &opt.bind_address) < 0) return NULL;
  if (get_address(env, o, "icmpSource", &opt.icmp_source) < 0) return NULL;
  int rc6 = get_address6(env, o, "bindAddressV6", &opt.bind_address6);
  if (rc6 < 0) return NULL;
  opt.has_v6 = rc6 > 0;
  rc6 = get_address6(env, o, "icmpSourceV6", &opt.icmp6_source);
  if (rc6 < 0) return NULL;
  opt.has_icmp6_source = rc6 > 0;
  uint32_t mtu6 = 0;
  if (get_uint(env, o, "mtuV6", 65535, &mtu6) < 0) return NULL;
  opt.mtu6 = (int)mtu6;
  if (opt.has_v6 && opt.mode == WEFT_MODE_UDP) {
    napi_throw_range_error(env, NULL, "engine option bindAddressV6: IPv6 is forwarded in vxlan and wireguard mode only");
    return NULL;
  }
  uint32_t port6 = 0;
  if (get_uint(env, o, "portV6", 65535, &port6) < 0) return NULL;
  opt.port6 = (uint16_t)port6;
  char ipv6_interface[16] = "separate";
  if (get_string(env, o, "ipv6Interface", ipv6_interface, sizeof ipv6_interface) < 0) return NULL;
  if (strcmp(ipv6_interface, "separate") != 0 && strcmp(ipv6_interface, "shared") != 0) {
    napi_throw_range_error(env, NULL, "engine option ipv6Interface must be \"separate\" or \"shared\"");
    return NULL;
  }
  opt.wg_shared = strcmp(ipv6_interface, "shared") == 0;
  if (get_uint(env, o, "port", 65535, &port) < 0) return NULL;
  if (get_uint(env, o, "vni", 0xffffff, &vni) < 0) return NULL;
  if (get_uint(env, o, "mtu", 65535, &mtu) < 0) return NULL;
  if (get_uint(env, o, "socketBuffer", 1u << 30, &buffer) < 0) return NULL;
  if (get_uint(env, o, "queues", WEFT_MAX_QUEUES, &queues) < 0) return NULL;
  if (queues < 1) {
    napi_throw_range_error(env, NULL, "engine option queues must be at least 1");
    return NULL;
  }
  napi_value v;
  if (get_bool(env, o, "offloads", &opt.offloads) < 0) return NULL;
  if (get_bool(env, o, "sharedThread", &opt.shared_thread) < 0) return NULL;
  uint32_t spin_us = 0;
  if (get_uint(env, o, "spinMicroseconds", 100000, &spin_us) < 0) return NULL;
  opt.spin_us = (int)spin_us;
  int rc;
  rc = get_prop(env, o, "vtepMac", napi_object, &v);
  if (rc < 0 || (rc > 0 && get_mac(env, v, opt.vtep_mac) < 0)) return NULL;
  if (opt.mode == WEFT_MODE_VXLAN && rc == 0) {
    napi_throw_type_error(env, NULL, "engine option vtepMac is required in vxlan mode");
    return NULL;
  }
  if (get_bool(env, o, "persist", &opt.persist) < 0) return NULL;
  if (get_bool(env, o, "paused", &opt.paused) < 0) return NULL;
  if (get_adopted(env, o, (int)queues, &opt) < 0) return NULL;
  opt.port = (uint16_t)port;
  opt.vni = vni;
  opt.mtu = (int)mtu;
  opt.socket_buffer = (int)buffer;
  opt.queues = (int)queues;

  struct handle *h = calloc(1, sizeof *h);
  if (!h) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  if (on_event) {
    napi_value name;
    napi_create_string_utf8(env, "weft wireguard events", NAPI_AUTO_LENGTH, &name);
    if (napi_create_threadsafe_function(env, on_event, NULL, name, WG_EVENT_QUEUE, 1, NULL, NULL, h, deliver_event,
                                        &h->events) != napi_ok) {
      free(h);
      napi_throw_error(env, NULL, "cannot create the wireguard event queue");
      return NULL;
    }
    /* The engine's events must not keep the process alive on their own. */
    napi_unref_threadsafe_function(env, h->events);
    opt.wg_emit = emit_event;
    opt.wg_emit_ctx = h;
  }
  char err[512] = "";
  struct engine *e = engine_open(&opt, err, sizeof err);
  if (!e) {
    release_events(h);
    free(h);
    napi_throw_error(env, NULL, err);
    return NULL;
  }
  h->e = e;
  napi_value result;
  if (napi_create_external(env, h, finalize, NULL, &result) != napi_ok) {
    engine_close(e);
    release_events(h);
    free(h);
    napi_throw_error(env, NULL, "cannot create the engine handle");
    return NULL;
  }
  return result;
}

static int get_u32_arg(napi_env env, napi_value v, const char *what, uint32_t *out) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a number", what);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  return 0;
}

/* The numeric arguments of setPeer and removePeer after the handle, in this order. */
enum { ARG_NETWORK, ARG_PREFIX, ARG_PUBLIC_IP };

/* setPeer/removePeer(handle, network, prefix[, publicIp]): at least `want` arguments (else a
 * TypeError with `usage`), a live handle, want - 1 numbers into values[] and a prefix of
 * 0..32, checked in that order. NULL after throwing. */
static struct handle *get_peer_args(napi_env env, size_t argc, napi_value *argv, size_t want, const char *usage,
                                    uint32_t *values) {
  static const char *const names[] = {"network", "prefix", "publicIp"};
  if (argc < want) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  struct handle *h = get_handle(env, argv[0]);
  if (!h) return NULL;
  for (size_t i = 0; i + 1 < want; i++)
    if (get_u32_arg(env, argv[i + 1], names[i], &values[i]) < 0) return NULL;
  if (values[ARG_PREFIX] > 32) {
    napi_throw_range_error(env, NULL, "prefix must be 0..32");
    return NULL;
  }
  return h;
}

static napi_value js_set_peer(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t v[3];
  struct handle *h = get_peer_args(env, argc, argv, 4, "setPeer(handle, network, prefix, publicIp, mac?, wgPeer?)", v);
  if (!h) return NULL;
  struct peer p;
  memset(&p, 0, sizeof p);
  p.network = v[ARG_NETWORK];
  p.prefix = (uint8_t)v[ARG_PREFIX];
  p.public_ip = v[ARG_PUBLIC_IP];
  p.addr.sin_family = AF_INET;
  p.addr.sin_port = htons(h->e->opt.port);
  p.addr.sin_addr.s_addr = htonl(p.public_ip);
  if (argc >= 5) {
    napi_valuetype type;
    napi_typeof(env, argv[4], &type);
    if (type != napi_undefined && type != napi_null) {
      if (get_mac(env, argv[4], p.mac) < 0) return NULL;
      p.has_mac = 1;
    }
  }
  if (argc >= 6) {
    napi_valuetype type;
    napi_typeof(env, argv[5], &type);
    if (type != napi_undefined && type != napi_null && get_u32_arg(env, argv[5], "wgPeer", &p.wg_peer) < 0) return NULL;
  }
  if (h->e->opt.mode == WEFT_MODE_WIREGUARD && p.wg_peer == 0) {
    napi_throw_type_error(env, NULL, "setPeer: a wireguard peer id is required in wireguard mode");
    return NULL;
  }
  if (h->e->opt.mode == WEFT_MODE_VXLAN && !p.has_mac) {
    napi_throw_type_error(env, NULL, "setPeer: a VtepMAC is required in vxlan mode");
    return NULL;
  }
  if (routes_set(&h->e->routes, &p) < 0) {
    napi_throw_error(env, NULL, "setPeer: out of memory");
    return NULL;
  }
  return NULL;
}

static napi_value js_remove_peer(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t v[2];
  struct handle *h = get_peer_args(env, argc, argv, 3, "removePeer(handle, network, prefix)", v);
  if (!h) return NULL;
  int removed = routes_remove(&h->e->routes, v[ARG_NETWORK], (uint8_t)v[ARG_PREFIX]);
  napi_value result;
  CALL(env, napi_get_boolean(env, removed, &result));
  return result;
}

/* A `len`-byte Buffer argument; -1 after throwing a TypeError naming `what`. */
static int get_bytes_arg(napi_env env, napi_value v, const char *what, size_t len, uint8_t *out) {
  bool is_buffer = false;
  void *data;
  size_t got = 0;
  napi_is_buffer(env, v, &is_buffer);
  if (!is_buffer || napi_get_buffer_info(env, v, &data, &got) != napi_ok || got != len) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a %zu-byte Buffer", what, len);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  memcpy(out, data, len);
  return 0;
}

/* setPeer6/removePeer6(handle, network, prefix, ...): a live vxlan handle with IPv6, the network
 * (16 bytes) and a prefix of 0..128. NULL after throwing. */
static struct handle *get_peer6_args(napi_env env, size_t argc, napi_value *argv, size_t want, const char *usage,
                                     uint8_t network[16], uint32_t *prefix) {
  if (argc < want) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  struct handle *h = get_handle(env, argv[0]);
  if (!h) return NULL;
  if (!h->e->opt.has_v6) {
    napi_throw_error(env, NULL, "IPv6 peers need an engine opened with bindAddressV6 (vxlan or wireguard mode)");
    return NULL;
  }
  if (get_bytes_arg(env, argv[1], "network", 16, network) < 0 || get_u32_arg(env, argv[2], "prefix", prefix) < 0) return NULL;
  if (*prefix > 128) {
    napi_throw_range_error(env, NULL, "prefix must be 0..128");
    return NULL;
  }
  return h;
}

static napi_value js_set_peer6(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct peer6 p;
  memset(&p, 0, sizeof p);
  uint32_t prefix = 0;
  struct handle *h = get_peer6_args(env, argc, argv, 4, "setPeer6(handle, network, prefix, publicIp6, mac?, wgPeer?)", p.network, &prefix);
  if (!h) return NULL;
  if (get_bytes_arg(env, argv[3], "publicIp6", 16, p.public_ip) < 0) return NULL;
  int wg = h->e->opt.mode == WEFT_MODE_WIREGUARD;
  if (!wg && (argc < 5 || get_mac(env, argv[4], p.mac) < 0)) {
    if (argc < 5) napi_throw_type_error(env, NULL, "setPeer6: a VtepMAC is required in vxlan mode");
    return NULL;
  }
  if (wg && (argc < 6 || get_u32_arg(env, argv[5], "wgPeer", &p.wg_peer) < 0 || p.wg_peer == 0)) {
    if (argc < 6 || p.wg_peer == 0) napi_throw_type_error(env, NULL, "setPeer6: an IPv6 interface peer id is required in wireguard mode");
    return NULL;
  }
  p.prefix = (uint8_t)prefix;
  p.addr.sin6_family = AF_INET6;
  p.addr.sin6_port = htons(h->e->opt.port6 ? h->e->opt.port6 : h->e->opt.port);
  memcpy(p.addr.sin6_addr.s6_addr, p.public_ip, 16);
  if (routes_set6(&h->e->routes, &p) < 0) {
    napi_throw_error(env, NULL, "setPeer6: out of memory");
    return NULL;
  }
  return NULL;
}

static napi_value js_remove_peer6(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t network[16];
  uint32_t prefix = 0;
  struct handle *h = get_peer6_args(env, argc, argv, 3, "removePeer6(handle, network, prefix)", network, &prefix);
  if (!h) return NULL;
  napi_value result;
  CALL(env, napi_get_boolean(env, routes_remove6(&h->e->routes, network, (uint8_t)prefix), &result));
  return result;
}

/* counters(): the engine's (per queue, summed), then the handshake admission's (per interface, summed). */
#define COUNTERS (C_COUNT + WG_ADMIT_COUNT)

static napi_value js_counters(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct handle *h = argc ? get_handle(env, argv[0]) : NULL;
  if (!h) return NULL;
  void *data;
  napi_value buffer, array;
  CALL(env, napi_create_arraybuffer(env, COUNTERS * sizeof(double), &data, &buffer));
  double *values = data;
  for (int i = 0; i < C_COUNT; i++) values[i] = (double)engine_counter(h->e, (enum weft_counter)i);
  for (int i = 0; i < WG_ADMIT_COUNT; i++)
    values[C_COUNT + i] = (double)(wg_admission_counter(&h->e->wg, (enum wg_admission_counter)i) +
                                   wg_admission_counter(&h->e->wg6, (enum wg_admission_counter)i));
  CALL(env, napi_create_typedarray(env, napi_float64_array, COUNTERS, buffer, 0, &array));
  return array;
}

static napi_value js_counter_names(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value array;
  CALL(env, napi_create_array_with_length(env, COUNTERS, &array));
  for (uint32_t i = 0; i < COUNTERS; i++) {
    napi_value name;
    const char *text = i < C_COUNT ? weft_counter_names[i] : wg_admission_counter_names[i - C_COUNT];
    CALL(env, napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &name));
    CALL(env, napi_set_element(env, array, i, name));
  }
  return array;
}

static napi_value js_max_queues(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value n;
  CALL(env, napi_create_uint32(env, WEFT_MAX_QUEUES, &n));
  return n;
}

static napi_value js_info(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct handle *h = argc ? get_handle(env, argv[0]) : NULL;
  if (!h) return NULL;
  napi_value obj, v;
  CALL(env, napi_create_object(env, &obj));
  CALL(env, napi_create_string_utf8(env, h->e->tun_name, NAPI_AUTO_LENGTH, &v));
  CALL(env, napi_set_named_property(env, obj, "tunName", v));
  CALL(env, napi_create_uint32(env, (uint32_t)h->e->queue_count, &v));
  CALL(env, napi_set_named_property(env, obj, "queues", v));
  CALL(env, napi_create_uint32(env, (uint32_t)h->e->opt.spin_us, &v));
  CALL(env, napi_set_named_property(env, obj, "spinMicroseconds", v));
  /* udpGso: still on for every socket (a kernel EIO switches one off for good). */
  int gso = 1, gso6 = h->e->opt.has_v6;
  for (int i = 0; i < h->e->queue_count; i++) {
    gso &= __atomic_load_n(&h->e->queues[i].udp_gso, __ATOMIC_RELAXED);
    gso6 &= __atomic_load_n(&h->e->queues[i].udp6_gso, __ATOMIC_RELAXED);
  }
  const struct { const char *name; int value; } flags[] = {
      {"sharedThread", h->e->opt.shared_thread}, {"vnetHeader", h->e->vnet_hdr},
      {"tunUdpOffload", h->e->tun_uso},          {"udpGso", h->e->udp_gso && gso},
      {"udpGro", h->e->udp_gro},                 {"reuseportFlow", h->e->reuseport_flow},
      {"ipv6Underlay", h->e->opt.has_v6},        {"udpGsoV6", gso6}};
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
    CALL(env, napi_get_boolean(env, flags[i].value, &v));
    CALL(env, napi_set_named_property(env, obj, flags[i].name, v));
  }
  return obj;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct handle *h = argc ? get_handle(env, argv[0]) : NULL;
  if (!h) return NULL;
  engine_close(h->e);
  h->e = NULL;
  release_events(h);
  return NULL;
}

/* {tun, udp, udp6} as JS arrays (udp6 empty without an IPv6 underlay). */
static napi_value fds_object(napi_env env, const struct engine_fds *fds) {
  napi_value result;
  int v6 = fds->queues > 0 && fds->udp6[0] >= 0 ? fds->queues : 0;
  CALL(env, napi_create_object(env, &result));
  CALL(env, napi_set_named_property(env, result, "tun", addon_fd_array(env, fds->tun, fds->queues)));
  CALL(env, napi_set_named_property(env, result, "udp", addon_fd_array(env, fds->udp, fds->queues)));
  CALL(env, napi_set_named_property(env, result, "udp6", addon_fd_array(env, fds->udp6, v6)));
  return result;
}

/* The running engine's fds, still its own (for systemd's fd store, which keeps copies). */
static napi_value js_fds(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct handle *h = argc ? get_handle(env, argv[0]) : NULL;
  if (!h) return NULL;
  struct engine_fds fds = {.queues = h->e->queue_count};
  for (int i = 0; i < fds.queues; i++) {
    fds.tun[i] = h->e->queues[i].tun_fd;
    fds.udp[i] = h->e->queues[i].udp_fd;
    fds.udp6[i] = h->e->queues[i].udp6_fd;
  }
  return fds_object(env, &fds);
}

/* Starts the threads of an engine opened with paused: true. */
static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct handle *h = argc ? get_handle(env, argv[0]) : NULL;
  if (!h) return NULL;
  char err[256] = "";
  if (engine_start(h->e, err, sizeof err) < 0) {
    napi_throw_error(env, NULL, err);
    return NULL;
  }
  return NULL;
}

/* Stops the engine and returns {tun, udp, udp6} fds (engine_detach); the handle is closed after. */
static napi_value js_detach(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct handle *h = argc ? get_handle(env, argv[0]) : NULL;
  if (!h) return NULL;
  struct engine_fds fds;
  engine_detach(h->e, &fds);
  h->e = NULL;
  release_events(h);
  return fds_object(env, &fds);
}

static napi_value js_notify(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype types[2] = {napi_undefined, napi_undefined};
  for (size_t i = 0; i < argc && i < 2; i++) napi_typeof(env, argv[i], &types[i]);
  if (argc < 2 || types[0] != napi_string || types[1] != napi_string) {
    napi_throw_type_error(env, NULL, "notify(socketPath, state) expects two strings");
    return NULL;
  }
  char path[128];
  size_t path_len;
  CALL(env, napi_get_value_string_utf8(env, argv[0], path, sizeof path, &path_len));
  if (path_len >= sizeof path - 1) {
    napi_throw_range_error(env, NULL, "notify: the socket path is too long for a unix socket address");
    return NULL;
  }
  /* Notification messages are a few short lines (systemd accepts up to its pipe buffer). */
  char state[4096];
  size_t state_len;
  CALL(env, napi_get_value_string_utf8(env, argv[1], state, sizeof state, &state_len));
  if (state_len >= sizeof state - 1) {
    napi_throw_range_error(env, NULL, "notify: the state is longer than 4094 bytes");
    return NULL;
  }
  int fds[32];
  int fd_count = 0;
  napi_valuetype fds_type = napi_undefined;
  if (argc >= 3) napi_typeof(env, argv[2], &fds_type);
  if (fds_type != napi_undefined && (fd_count = addon_get_fd_array(env, argv[2], "notify: fds", fds, 32)) < 0) return NULL;
  char err[256] = "";
  if (notify_send_fds(path, state, state_len, fds, fd_count, err, sizeof err) < 0) {
    napi_throw_error(env, NULL, err);
    return NULL;
  }
  return NULL;
}

/* A live wireguard-mode handle and `want` uint32 arguments after it; NULL after throwing. */
static struct handle *get_wg_args(napi_env env, napi_callback_info info, size_t want, const char *usage,
                                  napi_value *argv, uint32_t *values, size_t numbers) {
  size_t argc = 8;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < want) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  struct handle *h = get_handle(env, argv[0]);
  if (!h) return NULL;
  if (h->e->opt.mode != WEFT_MODE_WIREGUARD) {
    napi_throw_error(env, NULL, "this engine is not in wireguard mode");
    return NULL;
  }
  static const char *const names[] = {"argument 2", "argument 3", "argument 4", "argument 5"};
  for (size_t i = 0; i < numbers; i++)
    if (get_u32_arg(env, argv[i + 1], names[i], &values[i]) < 0) return NULL;
  return h;
}

static int get_key(napi_env env, napi_value v, const char *what, uint8_t key[WG_KEY_LEN]) {
  bool is_buffer = false;
  void *data;
  size_t len = 0;
  napi_is_buffer(env, v, &is_buffer);
  if (!is_buffer || napi_get_buffer_info(env, v, &data, &len) != napi_ok || len != WG_KEY_LEN) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a 32-byte Buffer", what);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  memcpy(key, data, WG_KEY_LEN);
  return 0;
}

/* An address from JS, port 0: a host-order IPv4 number or a 16-byte IPv6 Buffer. -1 after throwing. */
static int get_address_arg(napi_env env, napi_value ip, union underlay_addr *out) {
  memset(out, 0, sizeof *out);
  napi_valuetype type;
  napi_typeof(env, ip, &type);
  if (type == napi_number) {
    uint32_t v4 = 0;
    if (get_u32_arg(env, ip, "ip", &v4) < 0) return -1;
    out->v4.sin_family = AF_INET;
    out->v4.sin_addr.s_addr = htonl(v4);
    return 0;
  }
  if (get_bytes_arg(env, ip, "ip (an IPv6 address)", 16, out->v6.sin6_addr.s6_addr) < 0) return -1;
  out->v6.sin6_family = AF_INET6;
  return 0;
}

/* An endpoint from JS: an address (get_address_arg) and a port 1..65535. -1 after throwing. */
static int get_endpoint(napi_env env, napi_value ip, napi_value port, const char *what, union underlay_addr *out) {
  uint32_t p = 0;
  if (get_u32_arg(env, port, "port", &p) < 0) return -1;
  if (p == 0 || p > 65535) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s: port must be 1..65535", what);
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  if (get_address_arg(env, ip, out) < 0) return -1;
  if (out->sa.sa_family == AF_INET6) out->v6.sin6_port = htons((uint16_t)p);
  else out->v4.sin_port = htons((uint16_t)p);
  return 0;
}

/* The interface a wg* call names in its optional argument `v` (undefined or 0: the IPv4 one, 1:
 * the IPv6 one, which needs bindAddressV6). NULL after throwing. */
static struct wg_table *wg_table_arg(napi_env env, struct handle *h, napi_value v) {
  napi_valuetype type = napi_undefined;
  if (v) napi_typeof(env, v, &type);
  uint32_t iface = 0;
  if (type != napi_undefined && get_u32_arg(env, v, "iface", &iface) < 0) return NULL;
  if (iface > 1 || (iface == 1 && (!h->e->opt.has_v6 || h->e->opt.wg_shared))) {
    napi_throw_range_error(env, NULL, "iface must be 0 (the IPv4 or shared interface) or 1 (the IPv6 one: bindAddressV6, ipv6Interface \"separate\")");
    return NULL;
  }
  return iface == 1 ? &h->e->wg6 : &h->e->wg;
}

/* Queue 0's socket of the destination's family, for messages sent from the JS thread. */
static ssize_t send_on_queue0(struct engine *e, const void *msg, size_t len, const union underlay_addr *dst) {
  int v6 = dst->sa.sa_family == AF_INET6;
  int fd = v6 ? e->queues[0].udp6_fd : e->queues[0].udp_fd;
  if (fd < 0) {
    errno = EAFNOSUPPORT;
    return -1;
  }
  return sendto(fd, msg, len, MSG_DONTWAIT, &dst->sa, v6 ? sizeof dst->v6 : sizeof dst->v4);
}

static napi_value js_wg_set_peer(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  uint32_t v[3];
  struct handle *h = get_wg_args(env, info, 4, "wgSetPeer(handle, id, endpointIp, port, iface?)", argv, v, 1);
  if (!h) return NULL;
  struct wg_table *t = wg_table_arg(env, h, argv[4]);
  if (!t) return NULL;
  union underlay_addr a;
  if (get_endpoint(env, argv[2], argv[3], "wgSetPeer", &a) < 0) return NULL;
  int v6 = a.sa.sa_family == AF_INET6;
  /* The IPv6 interface reaches its peers over IPv6 only; the IPv4 one over IPv4, unless it is shared. */
  if (v[0] == 0 || (t == &h->e->wg6 ? !v6 : v6 && !(h->e->opt.has_v6 && h->e->opt.wg_shared))) {
    napi_throw_range_error(env, NULL, "wgSetPeer: id must be non-zero and the endpoint of a family the interface has a socket for");
    return NULL;
  }
  if (wg_set_peer(t, v[0], &a) < 0) {
    napi_throw_error(env, NULL, "wgSetPeer: out of memory");
    return NULL;
  }
  return NULL;
}

static napi_value js_wg_remove_peer(napi_env env, napi_callback_info info) {
  napi_value argv[8], result;
  uint32_t v[1];
  struct handle *h = get_wg_args(env, info, 2, "wgRemovePeer(handle, id, iface?)", argv, v, 1);
  if (!h) return NULL;
  struct wg_table *t = wg_table_arg(env, h, argv[2]);
  if (!t) return NULL;
  CALL(env, napi_get_boolean(env, wg_remove_peer(t, v[0]), &result));
  return result;
}

static void send_from_queue0(void *ctx, const uint8_t *msg, size_t len, const union underlay_addr *dst) {
  if (send_on_queue0(ctx, msg, len, dst) < 0) return;
}

static napi_value js_wg_set_keypair(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  uint32_t v[3];
  struct handle *h = get_wg_args(env, info, 7, "wgSetKeypair(handle, id, localIndex, remoteIndex, sendKey, recvKey, initiator, iface?)",
                                 argv, v, 3);
  if (!h) return NULL;
  struct wg_table *t = wg_table_arg(env, h, argv[7]);
  if (!t) return NULL;
  struct wg_keypair kp;
  memset(&kp, 0, sizeof kp);
  kp.local_index = v[1];
  kp.remote_index = v[2];
  bool initiator = false;
  if (get_key(env, argv[4], "sendKey", kp.send_key) < 0 || get_key(env, argv[5], "recvKey", kp.recv_key) < 0 ||
      napi_get_value_bool(env, argv[6], &initiator) != napi_ok) {
    OPENSSL_cleanse_keypair(&kp);
    if (!initiator) napi_throw_type_error(env, NULL, "wgSetKeypair: initiator must be a boolean");
    return NULL;
  }
  kp.initiator = initiator;
  int rc = wg_set_keypair(t, v[0], &kp);
  OPENSSL_cleanse_keypair(&kp);
  if (rc < 0) {
    napi_throw_error(env, NULL, "wgSetKeypair: no such peer (wgSetPeer first)");
    return NULL;
  }
  /* An initiator's session is usable at once: what waited for it goes now. (A responder's
   * waits for the initiator's first message; the outside thread flushes then.) */
  if (initiator) {
    struct wg_crypto *c = wg_crypto_new();
    unsigned mtu = h->e->opt.mtu > 0 ? (unsigned)h->e->opt.mtu : 0;
    if (c) wg_flush_staged(t, c, v[0], mtu, send_from_queue0, h->e);
    wg_crypto_free(c);
  }
  return NULL;
}

static napi_value js_wg_clear_keypairs(napi_env env, napi_callback_info info) {
  napi_value argv[8], result;
  uint32_t v[1];
  struct handle *h = get_wg_args(env, info, 2, "wgClearKeypairs(handle, id, iface?)", argv, v, 1);
  if (!h) return NULL;
  struct wg_table *t = wg_table_arg(env, h, argv[2]);
  if (!t) return NULL;
  CALL(env, napi_get_boolean(env, wg_clear_keypairs(t, v[0]), &result));
  return result;
}

static napi_value ms_or_null(napi_env env, uint64_t ns) {
  napi_value v;
  if (ns == UINT64_MAX) napi_get_null(env, &v);
  else napi_create_double(env, (double)ns / 1e6, &v);
  return v;
}

static napi_value js_wg_peer_stats(napi_env env, napi_callback_info info) {
  napi_value argv[8], obj, v;
  uint32_t id[1];
  struct handle *h = get_wg_args(env, info, 2, "wgPeerStats(handle, id, iface?)", argv, id, 1);
  if (!h) return NULL;
  struct wg_table *t = wg_table_arg(env, h, argv[2]);
  if (!t) return NULL;
  struct wg_peer_stats st;
  wg_peer_stats(t, id[0], &st);
  if (!st.found) {
    CALL(env, napi_get_null(env, &v));
    return v;
  }
  CALL(env, napi_create_object(env, &obj));
  napi_get_boolean(env, st.has_current, &v);
  napi_set_named_property(env, obj, "hasCurrent", v);
  napi_get_boolean(env, st.has_next, &v);
  napi_set_named_property(env, obj, "hasNext", v);
  napi_get_boolean(env, st.current_initiator, &v);
  napi_set_named_property(env, obj, "currentInitiator", v);
  napi_set_named_property(env, obj, "currentAgeMs", ms_or_null(env, st.has_current ? st.current_age_ns : UINT64_MAX));
  napi_create_double(env, (double)st.current_send_counter, &v);
  napi_set_named_property(env, obj, "currentSendCounter", v);
  napi_set_named_property(env, obj, "sinceTxMs", ms_or_null(env, st.since_tx_ns));
  napi_set_named_property(env, obj, "sinceRxMs", ms_or_null(env, st.since_rx_ns));
  napi_set_named_property(env, obj, "sinceDataTxMs", ms_or_null(env, st.since_data_tx_ns));
  napi_set_named_property(env, obj, "sinceDataRxMs", ms_or_null(env, st.since_data_rx_ns));
  napi_create_double(env, (double)st.tx_bytes, &v);
  napi_set_named_property(env, obj, "txBytes", v);
  napi_create_double(env, (double)st.rx_bytes, &v);
  napi_set_named_property(env, obj, "rxBytes", v);
  /* An IPv6 interface's endpoint: endpointIp is its 16-byte address. */
  void *bytes;
  int v6 = st.endpoint.sa.sa_family == AF_INET6;
  if (v6) napi_create_buffer_copy(env, 16, st.endpoint.v6.sin6_addr.s6_addr, &bytes, &v);
  else napi_create_uint32(env, ntohl(st.endpoint.v4.sin_addr.s_addr), &v);
  napi_set_named_property(env, obj, "endpointIp", v);
  napi_create_uint32(env, ntohs(v6 ? st.endpoint.v6.sin6_port : st.endpoint.v4.sin_port), &v);
  napi_set_named_property(env, obj, "endpointPort", v);
  return obj;
}

static napi_value js_wg_send(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  struct handle *h = get_wg_args(env, info, 4, "wgSend(handle, ip, port, buffer)", argv, NULL, 0);
  if (!h) return NULL;
  union underlay_addr a;
  if (get_endpoint(env, argv[1], argv[2], "wgSend", &a) < 0) return NULL;
  bool is_buffer = false;
  void *data;
  size_t len = 0;
  napi_is_buffer(env, argv[3], &is_buffer);
  if (!is_buffer || napi_get_buffer_info(env, argv[3], &data, &len) != napi_ok || len == 0 || len > 1500) {
    napi_throw_type_error(env, NULL, "wgSend: a message of 1..1500 bytes in a Buffer expected");
    return NULL;
  }
  if (send_on_queue0(h->e, data, len, &a) < 0) {
    int saved = errno;
    char msg[200], address[INET6_ADDRSTRLEN] = "";
    int v6 = a.sa.sa_family == AF_INET6;
    inet_ntop(a.sa.sa_family, v6 ? (const void *)&a.v6.sin6_addr : (const void *)&a.v4.sin_addr, address, sizeof address);
    snprintf(msg, sizeof msg, "wgSend to %s%s%s:%u: %s", v6 ? "[" : "", address, v6 ? "]" : "",
             ntohs(v6 ? a.v6.sin6_port : a.v4.sin_port), strerror(saved));
    napi_throw_error(env, NULL, msg);
    return NULL;
  }
  return NULL;
}

static napi_value js_wg_send_keepalive(napi_env env, napi_callback_info info) {
  napi_value argv[8], result;
  uint32_t v[1];
  struct handle *h = get_wg_args(env, info, 2, "wgSendKeepalive(handle, id, iface?)", argv, v, 1);
  if (!h) return NULL;
  struct wg_table *t = wg_table_arg(env, h, argv[2]);
  if (!t) return NULL;
  uint8_t msg[WG_HEADER_LEN + WG_TAG_LEN];
  size_t len = 0;
  union underlay_addr dst;
  struct wg_crypto *c = wg_crypto_new();
  int sent = 0;
  if (c && wg_seal(t, c, v[0], msg + WG_HEADER_LEN, 0, 0, &len, &dst) == WG_OK) sent = send_on_queue0(h->e, msg, len, &dst) >= 0;
  wg_crypto_free(c);
  CALL(env, napi_get_boolean(env, sent, &result));
  return result;
}

static napi_value js_wg_set_mac1_key(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  struct handle *h = get_wg_args(env, info, 2, "wgSetMac1Key(handle, key | null, iface?)", argv, NULL, 0);
  if (!h) return NULL;
  struct wg_table *t = wg_table_arg(env, h, argv[2]);
  if (!t) return NULL;
  napi_valuetype type;
  napi_typeof(env, argv[1], &type);
  if (type == napi_null) {
    wg_set_mac1_key(t, NULL);
    return NULL;
  }
  uint8_t key[WG_KEY_LEN];
  if (get_key(env, argv[1], "wgSetMac1Key: key", key) < 0) return NULL;
  wg_set_mac1_key(t, key);
  return NULL;
}

/* For tests: a fresh limiter, the one each interface's admission holds, run over `steps`
 * ([source, atMs]: a host-order IPv4 number or a 16-byte IPv6 Buffer, a time in ms). */
static napi_value js_wg_rate_limit_trace(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], allowed, result, v;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  const char *usage = "wgRateLimitTrace(steps: [source: number | Buffer, atMs: number][])";
  bool is_array = false;
  if (argc >= 1) napi_is_array(env, argv[0], &is_array);
  uint32_t n = 0;
  if (!is_array || napi_get_array_length(env, argv[0], &n) != napi_ok) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  CALL(env, napi_create_array_with_length(env, n, &allowed));
  struct wg_limiter *l = calloc(1, sizeof *l);
  if (!l) {
    napi_throw_error(env, NULL, "wgRateLimitTrace: out of memory");
    return NULL;
  }
  uint64_t now = 0;
  for (uint32_t i = 0; i < n; i++) {
    napi_value step, source, at;
    union underlay_addr from;
    double ms = -1;
    bool step_array = false;
    if (napi_get_element(env, argv[0], i, &step) != napi_ok || napi_is_array(env, step, &step_array) != napi_ok || !step_array ||
        napi_get_element(env, step, 0, &source) != napi_ok || napi_get_element(env, step, 1, &at) != napi_ok ||
        napi_get_value_double(env, at, &ms) != napi_ok || !(ms >= 0 && ms < 1e12)) {
      free(l);
      napi_throw_type_error(env, NULL, usage);
      return NULL;
    }
    if (get_address_arg(env, source, &from) < 0) {
      free(l);
      return NULL;
    }
    now = (uint64_t)(ms * 1e6);
    napi_get_boolean(env, wg_limiter_take(l, &from, now), &v);
    napi_set_element(env, allowed, i, v);
  }
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "allowed", allowed);
  napi_create_double(env, (double)wg_limiter_tracked(l, now), &v);
  napi_set_named_property(env, result, "tracked", v);
  napi_create_double(env, (double)l->evictions, &v);
  napi_set_named_property(env, result, "evictions", v);
  free(l);
  return result;
}

static napi_value js_blake2s_mac(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result;
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *key = NULL, *data = NULL, *out = NULL;
  size_t key_len = 0, len = 0;
  uint32_t out_len = 0;
  bool kb = false, db = false;
  if (argc >= 3) {
    napi_is_buffer(env, argv[0], &kb);
    napi_is_buffer(env, argv[1], &db);
  }
  if (!kb || !db || napi_get_buffer_info(env, argv[0], &key, &key_len) != napi_ok ||
      napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok || napi_get_value_uint32(env, argv[2], &out_len) != napi_ok ||
      key_len < 1 || key_len > 32 || out_len < 1 || out_len > 32) {
    napi_throw_type_error(env, NULL, "blake2sMac(key: Buffer of 1..32 bytes, data: Buffer, outLen: 1..32)");
    return NULL;
  }
  CALL(env, napi_create_buffer(env, out_len, &out, &result));
  if (wg_blake2s_mac(key, key_len, data, len, out, out_len) < 0) {
    napi_throw_error(env, NULL, "blake2sMac: OpenSSL has no BLAKE2SMAC");
    return NULL;
  }
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"setPeer", NULL, js_set_peer, NULL, NULL, NULL, napi_default, NULL},
      {"removePeer", NULL, js_remove_peer, NULL, NULL, NULL, napi_default, NULL},
      {"setPeer6", NULL, js_set_peer6, NULL, NULL, NULL, napi_default, NULL},
      {"removePeer6", NULL, js_remove_peer6, NULL, NULL, NULL, napi_default, NULL},
      {"counters", NULL, js_counters, NULL, NULL, NULL, napi_default, NULL},
      {"counterNames", NULL, js_counter_names, NULL, NULL, NULL, napi_default, NULL},
      {"maxQueues", NULL, js_max_queues, NULL, NULL, NULL, napi_default, NULL},
      {"info", NULL, js_info, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"detach", NULL, js_detach, NULL, NULL, NULL, napi_default, NULL},
      {"start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
      {"fds", NULL, js_fds, NULL, NULL, NULL, napi_default, NULL},
      {"notify", NULL, js_notify, NULL, NULL, NULL, napi_default, NULL},
      {"wgSetPeer", NULL, js_wg_set_peer, NULL, NULL, NULL, napi_default, NULL},
      {"wgRemovePeer", NULL, js_wg_remove_peer, NULL, NULL, NULL, napi_default, NULL},
      {"wgSetKeypair", NULL, js_wg_set_keypair, NULL, NULL, NULL, napi_default, NULL},
      {"wgClearKeypairs", NULL, js_wg_clear_keypairs, NULL, NULL, NULL, napi_default, NULL},
      {"wgPeerStats", NULL, js_wg_peer_stats, NULL, NULL, NULL, napi_default, NULL},
      {"wgSend", NULL, js_wg_send, NULL, NULL, NULL, napi_default, NULL},
      {"wgSendKeepalive", NULL, js_wg_send_keepalive, NULL, NULL, NULL, napi_default, NULL},
      {"wgSetMac1Key", NULL, js_wg_set_mac1_key, NULL, NULL, NULL, napi_default, NULL},
      {"wgRateLimitTrace", NULL, js_wg_rate_limit_trace, NULL, NULL, NULL, napi_default, NULL},
      {"blake2sMac", NULL, js_blake2s_mac, NULL, NULL, NULL, napi_default, NULL},
  };
  CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  CALL(env, addon_fdpass_register(env, exports));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
