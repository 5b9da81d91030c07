/* N-API surface of the engine, called only from src/engine/ (TypeScript):
 *   open(options) -> handle         setPeer(handle, network, prefix, publicIp, mac?)
 *   removePeer(handle, network, prefix) -> boolean
 *   counters(handle) -> Float64Array (order: counterNames())       counterNames() -> string[]
 *   maxQueues() -> WEFT_MAX_QUEUES
 *   info(handle) -> { tunName, queues, sharedThread, vnetHeader, tunUdpOffload, udpGso, udpGro, reuseportFlow }
 *   close(handle)
 *   notify(socketPath, state)   sd_notify: one datagram to $NOTIFY_SOCKET (notify.c); throws on failure
 * Addresses cross as host-order uint32 numbers. No packet ever crosses this boundary. */
#include <arpa/inet.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "notify.h"

struct handle {
  struct engine *e; /* NULL once closed */
};

#define CALL(env, expr)                                            \
  do {                                                             \
    if ((expr) != napi_ok) {                                       \
      const napi_extended_error_info *info_;                       \
      napi_get_last_error_info((env), &info_);                     \
      napi_throw_error((env), NULL, info_ && info_->error_message ? info_->error_message : #expr); \
      return NULL;                                                 \
    }                                                              \
  } while (0)

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct handle *h = data;
  /* An engine dropped without close(): stop its threads rather than leak them. */
  if (h->e) engine_close(h->e);
  free(h);
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
  else {
    napi_throw_range_error(env, NULL, "engine option mode must be \"udp\" or \"vxlan\"");
    return NULL;
  }
  if (opt.mode == WEFT_MODE_VXLAN) port = 8472;
  snprintf(opt.tun_name, sizeof opt.tun_name, "%s", "flannel%d");
  if (get_string(env, o, "tunName", opt.tun_name, sizeof opt.tun_name) < 0) return NULL;
  if (get_string(env, o, "netnsPath", opt.netns_path, sizeof opt.netns_path) < 0) return NULL;
  if (get_address(env, o, "bindAddress", &opt.bind_address) < 0) return NULL;
  if (get_address(env, o, "icmpSource", &opt.icmp_source) < 0) return NULL;
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
  int rc;
  rc = get_prop(env, o, "vtepMac", napi_object, &v);
  if (rc < 0 || (rc > 0 && get_mac(env, v, opt.vtep_mac) < 0)) return NULL;
  if (opt.mode == WEFT_MODE_VXLAN && rc == 0) {
    napi_throw_type_error(env, NULL, "engine option vtepMac is required in vxlan mode");
    return NULL;
  }
  opt.port = (uint16_t)port;
  opt.vni = vni;
  opt.mtu = (int)mtu;
  opt.socket_buffer = (int)buffer;
  opt.queues = (int)queues;

  char err[512] = "";
  struct engine *e = engine_open(&opt, err, sizeof err);
  if (!e) {
    napi_throw_error(env, NULL, err);
    return NULL;
  }
  struct handle *h = calloc(1, sizeof *h);
  if (!h) {
    engine_close(e);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  h->e = e;
  napi_value result;
  if (napi_create_external(env, h, finalize, NULL, &result) != napi_ok) {
    engine_close(e);
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
  size_t argc = 5;
  napi_value argv[5];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t v[3];
  struct handle *h = get_peer_args(env, argc, argv, 4, "setPeer(handle, network, prefix, publicIp, mac?)", v);
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

static napi_value js_counters(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct handle *h = argc ? get_handle(env, argv[0]) : NULL;
  if (!h) return NULL;
  void *data;
  napi_value buffer, array;
  CALL(env, napi_create_arraybuffer(env, C_COUNT * sizeof(double), &data, &buffer));
  double *values = data;
  for (int i = 0; i < C_COUNT; i++) values[i] = (double)engine_counter(h->e, (enum weft_counter)i);
  CALL(env, napi_create_typedarray(env, napi_float64_array, C_COUNT, buffer, 0, &array));
  return array;
}

static napi_value js_counter_names(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value array;
  CALL(env, napi_create_array_with_length(env, C_COUNT, &array));
  for (uint32_t i = 0; i < C_COUNT; i++) {
    napi_value name;
    CALL(env, napi_create_string_utf8(env, weft_counter_names[i], NAPI_AUTO_LENGTH, &name));
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
  /* udpGso: still on for every socket (a kernel EIO switches one off for good). */
  int gso = 1;
  for (int i = 0; i < h->e->queue_count; i++) gso &= __atomic_load_n(&h->e->queues[i].udp_gso, __ATOMIC_RELAXED);
  const struct { const char *name; int value; } flags[] = {
      {"sharedThread", h->e->opt.shared_thread}, {"vnetHeader", h->e->vnet_hdr},
      {"tunUdpOffload", h->e->tun_uso},          {"udpGso", h->e->udp_gso && gso},
      {"udpGro", h->e->udp_gro},                 {"reuseportFlow", h->e->reuseport_flow}};
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
  return NULL;
}

static napi_value js_notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
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
  char err[256] = "";
  if (notify_send(path, state, state_len, err, sizeof err) < 0) {
    napi_throw_error(env, NULL, err);
    return NULL;
  }
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"setPeer", NULL, js_set_peer, NULL, NULL, NULL, napi_default, NULL},
      {"removePeer", NULL, js_remove_peer, NULL, NULL, NULL, napi_default, NULL},
      {"counters", NULL, js_counters, NULL, NULL, NULL, napi_default, NULL},
      {"counterNames", NULL, js_counter_names, NULL, NULL, NULL, napi_default, NULL},
      {"maxQueues", NULL, js_max_queues, NULL, NULL, NULL, napi_default, NULL},
      {"info", NULL, js_info, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"notify", NULL, js_notify, NULL, NULL, NULL, napi_default, NULL},
  };
  CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
