/* libFuzzer harness for the wireguard outside path (UDP -> TUN): outside_drain() of
 * ../src/outside.c in wireguard mode, with the session table of ../src/wireguard.c, fed by a fake
 * recvmmsg() and writing into a fake TUN. Covers the message type/size dispatch, handshake
 * hand-off, transport header parsing, session lookup, decryption (OpenSSL), the replay window,
 * roaming, the inner IPv4 and IPv6 checks and the AllowedIPs check, on both interfaces: the IPv4
 * one (its socket, e->wg, IPv4 routes) and the IPv6 one (Mode "separate": its own socket, e->wg6
 * with its own peer ids, IPv6 routes), whose peer ids deliberately equal the IPv4 one's.
 *
 * To get past authentication the harness can seal a message itself with a session's key (a
 * second session table holding the mirror keys), so the fuzzer controls the plaintext and the
 * counter of authentic messages too.
 *
 * Handshake admission (mac1, the per-source token buckets, the queue's load) runs on a fake
 * queue and clock the input drives: emit answers with the depth the input set (or drops:
 * "full"), the admission's clock moves only when the input says, and a raw datagram may come
 * from one of 15 strangers (IPv6: four /64s among them) and carry a valid mac1 the harness writes.
 *
 * Input: messages until the input ends:
 *   flags    bits 0-1: 0 raw datagram, 1-3 sealed for session 1-3 (1: peer 1 current,
 *            2: peer 1 next, 3: peer 2 current; with bit 7: 1 IPv6 peer 1 current, 2 IPv6
 *            peer 2 current, 3 IPv4 peer 1's current session sent to the IPv6 socket);
 *            bit 2: then flip one ciphertext byte;
 *            bit 3: counter += 2^16 * next byte; bit 5: last message of its batch;
 *            bit 6: from another source port (roaming); bit 7: on the IPv6 socket (from
 *            fd00::2), else the IPv4 one (192.168.0.2); raw datagrams only: bit 2: an
 *            admission byte follows, bit 3: write a valid mac1 (the 16 bytes 32 from the end)
 *   [counter-high 1 byte if bit 3, sealed]
 *   [admission 1 byte if bit 2, raw: bits 0-3 the source (0 as above, n: stranger n,
 *            198.18.0.n or fd99:0:0:(n & 3)::n, port 40000 + n); bits 4-5 the queue from now
 *            on (0 as it was, 1 drained, 2 loaded, 3 full); bits 6-7 the clock moves on
 *            (0, 10 ms, 100 ms, 1.5 s). A queue or clock change starts a new batch.]
 *   counter  2 bytes (sealed only)
 *   length   2 bytes (big-endian, cut to what is left)
 *   bytes    the datagram (raw) or the plaintext (sealed)
 * Oracles besides ASan/UBSan: every TUN frame is a sane IPv4 packet (IPv6 for what came on the
 * IPv6 socket) from a subnet routed to a peer; a session never opens a message on the other
 * interface's socket; handshake messages are handed up naming the socket's interface; no more packets reach the TUN than authentic messages the reference replay model
 * (a plain set of seen counters and the window bound) calls fresh; every replay and forgery is
 * counted as such; every handshake message meets the fate a reference admission (its own mac1
 * computation, a bucket per source, the load and its hold) predicts: bad mac1, rate limited,
 * queue full or handed up, those in order; the counters add up. */
#include <errno.h>
#include <openssl/evp.h>

#include "../src/outside.h"
#include "../src/wireguard.h"
#include "fake_engine.h"
#include "fuzz_input.h"

/* Sessions 0-2 are the IPv4 interface's, 3-4 the IPv6 interface's (peer ids 1 and 2 there too). */
#define SESSIONS 5
static const uint32_t session_index[SESSIONS] = {0x11, 0x12, 0x21, 0x31, 0x41};
static const uint32_t session_peer[SESSIONS] = {1, 1, 2, 1, 2};
static const int session_v6[SESSIONS] = {0, 0, 0, 1, 1};
static int batch_v6; /* the socket the batch being handled came from */
static struct fz_input cursor;
static struct wg_table mirror; /* sends with the receiver's keys: what the real peers would hold */
static struct wg_crypto *sealer;
static uint64_t frames, authentic, handshakes;
/* Reference replay model per session: the highest counter + 1 and a plain set of seen ones in
 * the window, kept as a sorted small array (inputs are short). */
#define SEEN_MAX 4096
static uint64_t seen[SESSIONS][SEEN_MAX];
static int seen_count[SESSIONS];
static uint64_t top[SESSIONS];
static uint64_t min_replays, min_bad_macs, min_unknown_sessions;

/* Admission: the fake queue (what emit answers: -1 full, else the depth), the clock, the key. */
static int fake_depth;
static uint64_t fake_now;
static uint64_t fake_clock(void) { return fake_now; }
static const uint8_t mac1_key[WG_KEY_LEN] = {0x6d, 0x61, 0x63, 0x31, 0x2d, 0x2d, 0x2d, 0x2d, 1, 2, 3, 4, 5, 6, 7, 8,
                                             9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24};

/* The reference admission, per interface: a bucket per source (the harness's few sources never
 * share a set of the engine's table, checked once, so nothing is evicted), the load's end. */
#define REF_SOURCES 32
struct ref_source {
  int used;
  uint64_t key, seen, credit;
};
static struct ref_admission {
  uint64_t loaded_until;
  struct ref_source sources[REF_SOURCES];
} ref[2];
static uint64_t want_bad_mac1, want_rate_limited, want_queue_full;
/* Handed-up messages predicted, in order: interface, type, source key. */
#define EXPECTED_MAX 8192
static struct expected {
  int v6;
  uint8_t type;
  uint64_t key;
} expected[EXPECTED_MAX];
static size_t expected_count, expected_next;

static uint64_t source_key(const union underlay_addr *a) {
  if (a->sa.sa_family != AF_INET6) return ntohl(a->v4.sin_addr.s_addr);
  uint64_t key = 0;
  for (int i = 0; i < 8; i++) key = (key << 8) | a->v6.sin6_addr.s6_addr[i];
  return key;
}

static int ref_mac1_valid(const uint8_t *msg, size_t len) {
  uint8_t mac[16];
  if (wg_blake2s_mac(mac1_key, sizeof mac1_key, msg, len - 32, mac, sizeof mac) < 0) fz_fail("no BLAKE2SMAC");
  return memcmp(mac, msg + len - 32, sizeof mac) == 0;
}

/* What admission must do with a datagram on interface `v6` from `from` (in processing order). */
static void predict(int v6, const uint8_t *msg, size_t len, const union underlay_addr *from) {
  if (len < 4 || msg[1] || msg[2] || msg[3] || msg[0] < WG_MSG_INITIATION || msg[0] > WG_MSG_COOKIE_REPLY) return;
  size_t want = msg[0] == WG_MSG_INITIATION ? WG_INITIATION_LEN : msg[0] == WG_MSG_RESPONSE ? WG_RESPONSE_LEN : WG_COOKIE_REPLY_LEN;
  if (len != want) return;
  if (msg[0] != WG_MSG_COOKIE_REPLY && !ref_mac1_valid(msg, len)) {
    want_bad_mac1++;
    return;
  }
  struct ref_admission *r = &ref[v6];
  uint64_t key = source_key(from), now = fake_now;
  struct ref_source *src = NULL;
  for (int i = 0; i < REF_SOURCES && !src; i++)
    if (r->sources[i].used && r->sources[i].key == key) src = &r->sources[i];
  if (src) {
    uint64_t credit = src->credit + (now - src->seen);
    src->credit = credit > WG_LIMIT_FULL_NS ? WG_LIMIT_FULL_NS : credit;
    src->seen = now;
  } else {
    for (int i = 0; i < REF_SOURCES && !src; i++)
      if (!r->sources[i].used) src = &r->sources[i];
    if (!src) fz_fail("more sources than the reference admission holds");
    *src = (struct ref_source){1, key, now, WG_LIMIT_FULL_NS};
  }
  int credit = src->credit >= WG_LIMIT_COST_NS;
  if (credit) src->credit -= WG_LIMIT_COST_NS;
  if (!credit && now < r->loaded_until) {
    r->loaded_until = now + WG_LOAD_HOLD_NS;
    want_rate_limited++;
    return;
  }
  if (fake_depth < 0 || fake_depth >= WG_LOAD_DEPTH) r->loaded_until = now + WG_LOAD_HOLD_NS;
  if (fake_depth < 0) {
    want_queue_full++;
    return;
  }
  if (expected_count == EXPECTED_MAX) fz_fail("input too long for the reference admission");
  expected[expected_count++] = (struct expected){v6, msg[0], key};
}

static int emit(void *ctx, const struct wg_event *ev) {
  (void)ctx;
  if (ev->kind == WG_EVENT_HANDSHAKE_MESSAGE) {
    size_t want = ev->data[0] == 1 ? WG_INITIATION_LEN : ev->data[0] == 2 ? WG_RESPONSE_LEN : WG_COOKIE_REPLY_LEN;
    if (ev->len != want) fz_fail("handshake message of the wrong size handed up");
    if (ev->table != batch_v6 || (ev->from.sa.sa_family == AF_INET6) != batch_v6) fz_fail("handshake message handed up for the other interface");
    if (ev->data[0] != WG_MSG_COOKIE_REPLY && !ref_mac1_valid(ev->data, ev->len)) fz_fail("a handshake message with a bad mac1 handed up");
    if (fake_depth >= 0) {
      if (expected_next == expected_count) fz_fail("a handshake message handed up that admission should have dropped");
      const struct expected *x = &expected[expected_next++];
      if (x->v6 != ev->table || x->type != ev->data[0] || x->key != source_key(&ev->from))
        fz_fail("handshake messages handed up out of order, or another than admission should have let through");
      handshakes++;
    }
  }
  return fake_depth < 0 ? -1 : fake_depth;
}

/* Per input: an empty limiter, no load, the counters at zero, the harness's clock and key. */
static void reset_admission(struct wg_table *t) {
  memset(&t->admission.limiter, 0, sizeof t->admission.limiter);
  memset(t->admission.counters, 0, sizeof t->admission.counters);
  t->admission.loaded_until_ns = 0;
  t->admission.clock = fake_clock;
  wg_set_mac1_key(t, mac1_key);
}

/* Stranger n's address (n 1..15) on the socket of family v6, and its port. */
static void stranger(union underlay_addr *a, int v6, unsigned n) {
  memset(a, 0, sizeof *a);
  if (v6) {
    a->v6.sin6_family = AF_INET6;
    fz_v6(a->v6.sin6_addr.s6_addr, 0xfd99, 0, (uint16_t)(n & 3), (uint16_t)n);
    a->v6.sin6_port = htons((uint16_t)(40000 + n));
  } else {
    a->v4.sin_family = AF_INET;
    a->v4.sin_addr.s_addr = htonl(0xc6120000u | n);
    a->v4.sin_port = htons((uint16_t)(40000 + n));
  }
}

/* The harness's sources never meet in a set of the engine's table (else the reference would
 * have to model evictions). */
static void check_sources_apart(void) {
  static struct wg_limiter l;
  union underlay_addr a;
  for (int v6 = 0; v6 <= 1; v6++) {
    memset(&l, 0, sizeof l);
    for (unsigned n = 1; n <= 15; n++) {
      stranger(&a, v6, n);
      wg_limiter_take(&l, &a, 1);
    }
    memset(&a, 0, sizeof a);
    a.sa.sa_family = v6 ? AF_INET6 : AF_INET;
    if (v6) fz_public6(a.v6.sin6_addr.s6_addr, (uint8_t)FZ_SENDER_A);
    else a.v4.sin_addr.s_addr = htonl(FZ_SENDER_A);
    wg_limiter_take(&l, &a, 1);
    if (l.evictions) fz_fail("the harness's sources share a set of the limiter: pick others");
  }
}

/* The reference model: would the window accept `counter` (and, with `record`, note it)? */
static int reference_accepts(int s, uint64_t counter, int record) {
  uint64_t theirs = counter + 1;
  if (theirs <= top[s] && top[s] - theirs >= WG_REPLAY_BITS - 64) return 0;
  for (int i = 0; i < seen_count[s]; i++)
    if (seen[s][i] == counter) return 0;
  if (!record) return 1;
  if (seen_count[s] < SEEN_MAX) seen[s][seen_count[s]++] = counter;
  else fz_fail("input too long for the reference model");
  if (theirs > top[s]) top[s] = theirs;
  return 1;
}

static void key_for(int s, int dir, uint8_t key[32]) {
  for (int i = 0; i < 32; i++) key[i] = (uint8_t)(s * 64 + dir * 32 + i);
}

static void setup_sessions(struct engine *e) {
  static int ready;
  if (!ready) {
    wg_init(&e->wg);
    wg_init(&mirror);
    e->wg.emit = emit;
    struct peer p;
    memset(&p, 0, sizeof p);
    p.network = 0x0af40100u; /* 10.244.1.0/24 and 10.244.5.0/24 -> peer 1, 10.244.2.0/24 -> peer 2 */
    p.prefix = 24;
    p.wg_peer = 1;
    if (routes_set(&e->routes, &p) < 0) fz_fail("routes_set");
    p.network = 0x0af40500u;
    if (routes_set(&e->routes, &p) < 0) fz_fail("routes_set");
    p.network = 0x0af40200u;
    p.wg_peer = 2;
    if (routes_set(&e->routes, &p) < 0) fz_fail("routes_set");
    /* The IPv6 routes (fake_engine.h) to the IPv6 interface's peers: A's /64s to 1, B's to 2, D none. */
    for (size_t i = 0; i < e->routes.count6; i++) {
      struct peer6 p6 = e->routes.peers6[i];
      p6.wg_peer = p6.prefix == 64 ? (p6.network[5] == 2 ? 2 : 1) : 0;
      if (routes_set6(&e->routes, &p6) < 0) fz_fail("routes_set6");
    }
    wg_init(&e->wg6);
    e->wg6.index = 1;
    e->wg6.emit = emit;
    sealer = wg_crypto_new();
    if (!sealer) fz_fail("wg_crypto_new");
    check_sources_apart();
    ready = 1;
  }
  reset_admission(&e->wg);
  reset_admission(&e->wg6);
  memset(ref, 0, sizeof ref);
  fake_depth = 1;
  fake_now = 1000000000000ull;
  want_bad_mac1 = want_rate_limited = want_queue_full = 0;
  expected_count = expected_next = 0;
  union underlay_addr a, a6;
  memset(&a, 0, sizeof a);
  a.v4.sin_family = AF_INET;
  a.v4.sin_port = htons(51820);
  memset(&a6, 0, sizeof a6);
  a6.v6.sin6_family = AF_INET6;
  a6.v6.sin6_port = htons(51821);
  for (uint32_t id = 1; id <= 2; id++) {
    a.v4.sin_addr.s_addr = htonl(FZ_SENDER_A + id);
    fz_public6(a6.v6.sin6_addr.s6_addr, (uint8_t)(FZ_SENDER_A + id));
    wg_remove_peer(&e->wg, id);
    wg_remove_peer(&e->wg6, id);
    wg_remove_peer(&mirror, id);
    wg_set_peer(&e->wg, id, &a);
    wg_set_peer(&e->wg6, id, &a6);
    wg_set_peer(&mirror, id + 10, &a);
  }
  for (int s = 0; s < SESSIONS; s++) {
    struct wg_keypair kp;
    memset(&kp, 0, sizeof kp);
    kp.local_index = session_index[s];
    kp.remote_index = 0x99;
    key_for(s, 0, kp.recv_key);
    key_for(s, 1, kp.send_key);
    /* Session 2 (index 0x12) is a responder's, waiting in next until used; 1 and 3 are current. */
    kp.initiator = s != 1;
    wg_set_keypair(session_v6[s] ? &e->wg6 : &e->wg, session_peer[s], &kp);
    seen_count[s] = 0;
    top[s] = 0;
  }
}

/* Seals `plain` as the real peer of session s would, counter chosen by the input. */
static size_t seal_for(int s, uint64_t counter, uint8_t *buf, const uint8_t *plain, size_t len) {
  struct wg_keypair m;
  memset(&m, 0, sizeof m);
  m.initiator = 1;
  m.remote_index = session_index[s];
  key_for(s, 0, m.send_key);
  uint32_t id = (uint32_t)s + 100;
  union underlay_addr a;
  memset(&a, 0, sizeof a);
  a.v4.sin_family = AF_INET;
  wg_set_peer(&mirror, id, &a);
  wg_set_keypair(&mirror, id, &m);
  mirror.peers[mirror.count - 1].current.send_counter = counter; /* the harness owns this table */
  memcpy(buf + WG_HEADER_LEN, plain, len);
  size_t out = 0;
  union underlay_addr dst;
  if (wg_seal(&mirror, sealer, id, buf + WG_HEADER_LEN, len, 0, &out, &dst) != WG_OK) fz_fail("mirror seal failed");
  wg_remove_peer(&mirror, id);
  return out;
}

/* The next message is for the socket `v6` (its flags' bit 7). */
static int next_on(int v6) { return cursor.left && ((cursor.p[0] & 0x80) != 0) == v6; }

/* The next message is raw with an admission byte that changes the queue or the clock: it must be
 * the first of its batch, as the engine reads both once per message but the harness sets them
 * when it hands the batch over. */
static int next_changes_state(void) {
  return cursor.left >= 2 && (cursor.p[0] & 3) == 0 && (cursor.p[0] & 0x04) && (cursor.p[1] & 0xf0);
}

/* A raw datagram's admission byte: its source (into `from`), the queue and the clock. */
static void admission_byte(uint8_t a, int v6, union underlay_addr *from) {
  static const int depths[4] = {0, 1, 2 * WG_LOAD_DEPTH, -1};
  static const uint64_t steps[4] = {0, 10000000ull, 100000000ull, 1500000000ull};
  if (a & 0x0f) stranger(from, v6, a & 0x0f);
  if (a & 0x30) fake_depth = depths[(a >> 4) & 3];
  fake_now += steps[a >> 6];
}

int io_recv(struct queue *q, int v6, struct mmsghdr *msgs, unsigned n) {
  (void)q;
  if (!next_on(v6)) {
    errno = EAGAIN;
    return -1;
  }
  batch_v6 = v6;
  unsigned got = 0;
  while (got < n && next_on(v6)) {
    if (got > 0 && next_changes_state()) break;
    struct msghdr *h = &msgs[got].msg_hdr;
    uint8_t flags = fz_u8(&cursor);
    int pick = flags & 3;
    int admission = pick == 0 && (flags & 0x04);
    uint8_t admission_flags = admission ? fz_u8(&cursor) : 0;
    /* On the IPv6 socket: its own two sessions, or (3) an IPv4 session's message, which no
     * session of the IPv6 interface may open. */
    int cross = v6 && pick == 3;
    int s = pick == 0 ? -1 : !v6 ? pick - 1 : cross ? 0 : 2 + pick;
    uint64_t counter = 0;
    if (s >= 0) {
      counter = fz_u16(&cursor);
      if (flags & 0x08) counter += (uint64_t)fz_u8(&cursor) << 16;
    }
    size_t want = fz_u16(&cursor);
    const uint8_t *data;
    size_t len = fz_bytes(&cursor, want, &data);
    uint8_t *buf = h->msg_iov[0].iov_base;
    size_t cap = h->msg_iov[0].iov_len;
    if (s >= 0) {
      if (len > 1500) len = 1500;
      len = seal_for(s, counter, buf, data, len);
      if (cross) {
        min_unknown_sessions++;
        if (flags & 0x04) buf[WG_HEADER_LEN + (len - WG_HEADER_LEN) / 2] ^= 0x01;
      } else if (flags & 0x04) {
        /* Forged: a replayed counter is refused before decryption, anything else fails it. */
        buf[WG_HEADER_LEN + (len - WG_HEADER_LEN) / 2] ^= 0x01;
        if (reference_accepts(s, counter, 0)) min_bad_macs++;
        else min_replays++;
      } else if (reference_accepts(s, counter, 1)) {
        authentic++;
      } else {
        min_replays++;
      }
    } else {
      if (len > cap) len = cap;
      memcpy(buf, data, len);
      if ((flags & 0x08) && len >= 32 &&
          wg_blake2s_mac(mac1_key, sizeof mac1_key, buf, len - 32, buf + len - 32, 16) < 0)
        fz_fail("no BLAKE2SMAC");
    }
    msgs[got].msg_len = (unsigned)len;
    union underlay_addr *from = h->msg_name;
    memset(from, 0, sizeof *from);
    if (v6) {
      from->v6.sin6_family = AF_INET6;
      fz_public6(from->v6.sin6_addr.s6_addr, (uint8_t)FZ_SENDER_A);
      from->v6.sin6_port = htons(flags & 0x40 ? 40000 : 51821);
      h->msg_namelen = sizeof from->v6;
    } else {
      from->v4.sin_family = AF_INET;
      from->v4.sin_addr.s_addr = htonl(FZ_SENDER_A);
      from->v4.sin_port = htons(flags & 0x40 ? 40000 : 51820);
      h->msg_namelen = sizeof from->v4;
    }
    if (admission) admission_byte(admission_flags, v6, from);
    if (s < 0) predict(v6, buf, len, from);
    h->msg_flags = 0;
    h->msg_controllen = 0;
    got++;
    if (flags & 0x20) break;
  }
  return (int)got;
}

ssize_t io_tun_write(struct queue *q, const void *frame, size_t len) {
  (void)q;
  const uint8_t *ip = frame;
  if (batch_v6) {
    if (len < IP6_HDR_LEN || (ip[0] >> 4) != 6 || IP6_HDR_LEN + rd16(ip + 4) != len) fz_fail("TUN frame from the IPv6 socket is no sane IPv6 packet");
    const uint8_t *src = ip6_src(ip);
    uint8_t a1[16], a5[16], b[16];
    fz_v6(a1, 0xfd00, 0x244, 1, 0), fz_v6(a5, 0xfd00, 0x244, 5, 0), fz_v6(b, 0xfd00, 0x244, 2, 0);
    if (!ip6_in_subnet(src, a1, 64) && !ip6_in_subnet(src, a5, 64) && !ip6_in_subnet(src, b, 64))
      fz_fail("an IPv6 packet from outside every IPv6 AllowedIPs reached the TUN");
    frames++;
    return (ssize_t)len;
  }
  if (len < 20 || (ip[0] >> 4) != 4 || ip4_header_len(ip) < 20 || ip4_header_len(ip) > len) fz_fail("TUN frame is no sane IPv4 packet");
  if (rd16(ip + 2) != len) fz_fail("IPv4 total length differs from the frame length");
  uint32_t src = ip4_src(ip);
  uint32_t peer = (src & 0xffffff00u) == 0x0af40200u ? 2 : ((src & 0xffffff00u) == 0x0af40100u || (src & 0xffffff00u) == 0x0af40500u) ? 1 : 0;
  if (peer == 0) fz_fail("a packet from outside every AllowedIPs reached the TUN");
  frames++;
  return (ssize_t)len;
}

/* Not on this path. */
ssize_t io_tun_read(struct queue *q, void *buf, size_t len) {
  (void)q, (void)buf, (void)len;
  errno = EAGAIN;
  return -1;
}
/* Staged packets flushed after a confirmation: to the endpoint of the socket's family. */
int io_send(struct queue *q, int v6, struct mmsghdr *msgs, unsigned n) {
  (void)q;
  for (unsigned i = 0; i < n; i++) {
    const union underlay_addr *to = msgs[i].msg_hdr.msg_name;
    if ((to->sa.sa_family == AF_INET6) != v6) fz_fail("a message for one family sent on the other family's socket");
  }
  return (int)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct queue *q = fz_engine_reset(WEFT_MODE_WIREGUARD, 0, 1500, 0);
  q->e->opt.has_v6 = 1; /* the IPv6 interface */
  setup_sessions(q->e);
  frames = authentic = handshakes = min_replays = min_bad_macs = min_unknown_sessions = 0;
  cursor = (struct fz_input){data, size};
  struct outside *out = outside_new(q);
  if (!out) fz_fail("outside_new");
  /* Each pass drains the IPv4 socket, then the IPv6 one, each until the next message is the other's. */
  while (cursor.left) outside_drain(out, 0);
  outside_free(out);
  /* Every frame came from an authentic fresh message; a fresh one is lost only to the inner checks. */
  if (frames > authentic) fz_fail("more packets reached the TUN than authentic fresh messages were sent");
  uint64_t *c = q->counters;
  struct engine *e = q->e;
  uint64_t bad_mac1 = wg_admission_counter(&e->wg, WG_ADMIT_BAD_MAC1) + wg_admission_counter(&e->wg6, WG_ADMIT_BAD_MAC1);
  uint64_t rate_limited = wg_admission_counter(&e->wg, WG_ADMIT_RATE_LIMITED) + wg_admission_counter(&e->wg6, WG_ADMIT_RATE_LIMITED);
  uint64_t dropped = c[C_OUTSIDE_DROP_TRUNCATED] + c[C_OUTSIDE_DROP_UNKNOWN_TYPE] + c[C_OUTSIDE_DROP_UNKNOWN_SESSION] +
                     c[C_OUTSIDE_DROP_EXPIRED_SESSION] + c[C_OUTSIDE_DROP_BAD_MAC] + c[C_OUTSIDE_DROP_REPLAY] +
                     c[C_OUTSIDE_DROP_NOT_IPV4] + c[C_OUTSIDE_DROP_MALFORMED] + c[C_OUTSIDE_DROP_SOURCE_NOT_IN_SUBNET] +
                     c[C_OUTSIDE_DROP_HANDSHAKE_QUEUE_FULL] + bad_mac1 + rate_limited;
  uint64_t handled = dropped + c[C_OUTSIDE_KEEPALIVES] + c[C_OUTSIDE_HANDSHAKE_MESSAGES] + c[C_OUTSIDE_PACKETS];
  if (handled != c[C_OUTSIDE_DATAGRAMS]) fz_fail("datagrams != drops + keepalives + handshake messages + packets");
  /* Raw datagrams may add replays and bad MACs (a guessed index and a seen counter), never hide them. */
  if (c[C_OUTSIDE_DROP_REPLAY] < min_replays) fz_fail("a replayed message was not counted as a replay");
  if (c[C_OUTSIDE_DROP_BAD_MAC] < min_bad_macs) fz_fail("a forged message was not counted as a bad MAC");
  if (c[C_OUTSIDE_HANDSHAKE_MESSAGES] != handshakes) fz_fail("handshake counter differs from messages handed up");
  if (c[C_OUTSIDE_DROP_UNKNOWN_SESSION] < min_unknown_sessions) fz_fail("a session opened a message on the other interface's socket");
  if (bad_mac1 != want_bad_mac1) fz_fail("bad mac1 counted differently from the reference's own mac1 check");
  if (rate_limited != want_rate_limited) fz_fail("rate limited differently from the reference buckets and load");
  if (c[C_OUTSIDE_DROP_HANDSHAKE_QUEUE_FULL] != want_queue_full) fz_fail("queue-full drops differ from the reference admission");
  if (expected_next != expected_count) fz_fail("admission dropped a handshake message the reference lets through");
  return 0;
}
