/* WireGuard transport data (message type 4) for the forwarding threads: the session table,
 * sealing and opening with OpenSSL's ChaCha20-Poly1305, the replay window, the per-packet
 * timer checks (reject after time/messages, "rekey wanted" notices) and endpoint roaming.
 * See wireguard.h for the contract and ../README.md "WireGuard" for the split with TypeScript.
 *
 * Sessions are found by our receiver index with a scan of peers x 3 slots: clusters have tens of
 * peers, not thousands, and the scan runs under a lock held for nothing else.
 *
 * Handshake messages (types 1-3) are only admitted here, on the outside thread, before the
 * emitter's queue: mac1 (one keyed BLAKE2s, OpenSSL's BLAKE2SMAC) and the source's token bucket
 * (wireguard.h, struct wg_admission); the handshake itself is TypeScript's. */
#include "wireguard.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct wg_crypto {
  EVP_CIPHER *cipher;
  EVP_CIPHER_CTX *seal, *open;
  /* mac1 checks (wg_handshake_message), fetched at the first one: most contexts never check one. */
  EVP_MAC *blake2s;
  EVP_MAC_CTX *mac1;
  int no_blake2s;                 /* the fetch failed: OpenSSL has no BLAKE2SMAC */
};

#define WG_ADMISSION_NAME(id, name) name,
const char *const wg_admission_counter_names[WG_ADMIT_COUNT] = {WG_ADMISSION_COUNTERS(WG_ADMISSION_NAME)};
#undef WG_ADMISSION_NAME

uint64_t wg_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void wg_timers_default(struct wg_timers *t) {
  t->rekey_after_ns = 120ull * 1000000000u;
  t->reject_after_ns = 180ull * 1000000000u;
  t->rekey_after_messages = 1ull << 60;
  t->reject_after_messages = UINT64_MAX - (1ull << 13);
  t->keepalive_ns = 10ull * 1000000000u;
  t->rekey_timeout_ns = 5ull * 1000000000u;
}

struct wg_crypto *wg_crypto_new(void) {
  struct wg_crypto *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  /* Fetched once: an EVP_*Init with a cipher argument would look the implementation up again
   * for every packet. */
  c->cipher = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
  c->seal = EVP_CIPHER_CTX_new();
  c->open = EVP_CIPHER_CTX_new();
  if (!c->cipher || !c->seal || !c->open || EVP_EncryptInit_ex(c->seal, c->cipher, NULL, NULL, NULL) != 1 ||
      EVP_DecryptInit_ex(c->open, c->cipher, NULL, NULL, NULL) != 1) {
    wg_crypto_free(c);
    return NULL;
  }
  return c;
}

void wg_crypto_free(struct wg_crypto *c) {
  if (!c) return;
  EVP_CIPHER_CTX_free(c->seal);
  EVP_CIPHER_CTX_free(c->open);
  EVP_CIPHER_free(c->cipher);
  EVP_MAC_CTX_free(c->mac1);
  EVP_MAC_free(c->blake2s);
  free(c);
}

/* The AEAD nonce: 32 zero bits, then the counter little-endian. */
static void make_nonce(uint8_t nonce[12], uint64_t counter) {
  memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++) nonce[4 + i] = (uint8_t)(counter >> (8 * i));
}

static int aead_seal(struct wg_crypto *c, const uint8_t key[32], uint64_t counter, uint8_t *data, size_t len,
                     uint8_t *tag) {
  uint8_t nonce[12];
  make_nonce(nonce, counter);
  int outl = 0, fl = 0;
  if (EVP_EncryptInit_ex(c->seal, NULL, NULL, key, nonce) != 1) return -1;
  if (len > 0 && EVP_EncryptUpdate(c->seal, data, &outl, data, (int)len) != 1) return -1;
  if (EVP_EncryptFinal_ex(c->seal, data + outl, &fl) != 1) return -1;
  /* The tag through a parameter array rather than EVP_CIPHER_CTX_ctrl(), which builds one per call. */
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, WG_TAG_LEN), OSSL_PARAM_construct_end()};
  return EVP_CIPHER_CTX_get_params(c->seal, params) == 1 ? 0 : -1;
}

static int aead_open(struct wg_crypto *c, const uint8_t key[32], uint64_t counter, uint8_t *data, size_t len,
                     uint8_t *tag) {
  uint8_t nonce[12];
  make_nonce(nonce, counter);
  int outl = 0, fl = 0;
  if (EVP_DecryptInit_ex(c->open, NULL, NULL, key, nonce) != 1) return -1;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, WG_TAG_LEN), OSSL_PARAM_construct_end()};
  if (EVP_CIPHER_CTX_set_params(c->open, params) != 1) return -1;
  if (len > 0 && EVP_DecryptUpdate(c->open, data, &outl, data, (int)len) != 1) return -1;
  return EVP_DecryptFinal_ex(c->open, data + outl, &fl) == 1 ? 0 : -1;
}

int wg_blake2s_mac(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len, uint8_t *out, size_t out_len) {
  if (key_len < 1 || key_len > 32 || out_len < 1 || out_len > 32) return -1;
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "BLAKE2SMAC", NULL);
  if (!mac) return -1;
  EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
  int rc = -1;
  size_t size = out_len, written = 0;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size), OSSL_PARAM_construct_end()};
  if (ctx && EVP_MAC_init(ctx, key, key_len, params) == 1 && EVP_MAC_update(ctx, data, len) == 1 &&
      EVP_MAC_final(ctx, out, &written, out_len) == 1 && written == out_len)
    rc = 0;
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  return rc;
}

static void keypair_clear(struct wg_keypair *kp) { OPENSSL_cleanse(kp, sizeof *kp); }

static void staged_free(struct wg_peer *p) {
  for (int i = 0; i < p->staged_count; i++) {
    struct wg_staged *st = &p->staged[(p->staged_head + i) % WG_STAGED_MAX];
    OPENSSL_cleanse(st->data, st->len);
    free(st->data);
  }
  p->staged_head = p->staged_count = 0;
}

/* Under the lock. Returns WG_STAGED, WG_STAGED_OVERFLOW or WG_NO_SESSION (out of memory). */
static enum wg_result stage(struct wg_peer *p, const uint8_t *plain, size_t len) {
  uint8_t *copy = len > 0 ? malloc(len) : NULL;
  if (!copy) return WG_NO_SESSION;
  memcpy(copy, plain, len);
  enum wg_result r = WG_STAGED;
  if (p->staged_count == WG_STAGED_MAX) {
    struct wg_staged *oldest = &p->staged[p->staged_head];
    free(oldest->data);
    p->staged_head = (p->staged_head + 1) % WG_STAGED_MAX;
    p->staged_count--;
    r = WG_STAGED_OVERFLOW;
  }
  p->staged[(p->staged_head + p->staged_count) % WG_STAGED_MAX] = (struct wg_staged){copy, len};
  p->staged_count++;
  return r;
}

void wg_init(struct wg_table *t) {
  memset(t, 0, sizeof *t);
  pthread_mutex_init(&t->lock, NULL);
  pthread_mutex_init(&t->admission.lock, NULL);
  t->admission.clock = wg_now_ns;
  wg_timers_default(&t->timers);
}

void wg_free(struct wg_table *t) {
  for (size_t i = 0; i < t->count; i++) staged_free(&t->peers[i]);
  if (t->peers) OPENSSL_cleanse(t->peers, t->capacity * sizeof *t->peers);
  free(t->peers);
  t->peers = NULL;
  t->count = t->capacity = 0;
  pthread_mutex_destroy(&t->lock);
  pthread_mutex_destroy(&t->admission.lock);
}

/* Address and port of the same family (a table's peers are all of its family; roaming never
 * changes it, as each table receives on its own socket). */
static int same_endpoint(const union underlay_addr *a, const union underlay_addr *b) {
  if (a->sa.sa_family != b->sa.sa_family) return 0;
  if (a->sa.sa_family == AF_INET6)
    return a->v6.sin6_port == b->v6.sin6_port && memcmp(&a->v6.sin6_addr, &b->v6.sin6_addr, 16) == 0;
  return a->v4.sin_port == b->v4.sin_port && a->v4.sin_addr.s_addr == b->v4.sin_addr.s_addr;
}

/* Only the family's own fields: a v4 source never carries stale v6 bytes along. */
static void endpoint_copy(union underlay_addr *to, const union underlay_addr *from) {
  memset(to, 0, sizeof *to);
  if (from->sa.sa_family == AF_INET6) {
    to->v6.sin6_family = AF_INET6;
    to->v6.sin6_port = from->v6.sin6_port;
    to->v6.sin6_addr = from->v6.sin6_addr;
  } else {
    to->v4.sin_family = AF_INET;
    to->v4.sin_port = from->v4.sin_port;
    to->v4.sin_addr = from->v4.sin_addr;
  }
}

static struct wg_peer *find_peer(struct wg_table *t, uint32_t id) {
  for (size_t i = 0; i < t->count; i++)
    if (t->peers[i].id == id) return &t->peers[i];
  return NULL;
}

int wg_set_peer(struct wg_table *t, uint32_t id, const union underlay_addr *endpoint) {
  pthread_mutex_lock(&t->lock);
  struct wg_peer *p = find_peer(t, id);
  if (!p) {
    if (t->count == t->capacity) {
      size_t cap = t->capacity ? t->capacity * 2 : 8;
      /* Not realloc: the old array holds keys, which must be zeroed, not left in freed memory. */
      struct wg_peer *grown = calloc(cap, sizeof *grown);
      if (!grown) {
        pthread_mutex_unlock(&t->lock);
        return -1;
      }
      if (t->peers) {
        memcpy(grown, t->peers, t->count * sizeof *grown);
        OPENSSL_cleanse(t->peers, t->capacity * sizeof *t->peers);
        free(t->peers);
      }
      t->peers = grown;
      t->capacity = cap;
    }
    p = &t->peers[t->count++];
    memset(p, 0, sizeof *p);
    p->id = id;
  }
  endpoint_copy(&p->endpoint, endpoint);
  pthread_mutex_unlock(&t->lock);
  return 0;
}

int wg_remove_peer(struct wg_table *t, uint32_t id) {
  pthread_mutex_lock(&t->lock);
  struct wg_peer *p = find_peer(t, id);
  int found = p != NULL;
  if (p) {
    staged_free(p);
    struct wg_peer *last = &t->peers[t->count - 1];
    if (p != last) *p = *last;
    OPENSSL_cleanse(last, sizeof *last);
    t->count--;
  }
  pthread_mutex_unlock(&t->lock);
  return found;
}

int wg_set_keypair(struct wg_table *t, uint32_t id, const struct wg_keypair *kp) {
  pthread_mutex_lock(&t->lock);
  struct wg_peer *p = find_peer(t, id);
  if (p) {
    struct wg_keypair fresh = *kp;
    fresh.valid = 1;
    fresh.send_counter = 0;
    fresh.replay_top = 0;
    memset(fresh.replay, 0, sizeof fresh.replay);
    fresh.created_ns = wg_now_ns();
    p->last_handshake_ns = fresh.created_ns;
    if (fresh.initiator) {
      /* The responder already holds this session: use it now. The old current stays as
       * previous so packets still in flight on it are accepted. */
      keypair_clear(&p->previous);
      if (p->next.valid) {
        /* Both sides initiated at once: the session we answered stays receivable as previous
         * (the peer may already send on it), as wireguard-go keeps it. */
        p->previous = p->next;
        keypair_clear(&p->next);
        keypair_clear(&p->current);
      } else {
        p->previous = p->current;
      }
      p->current = fresh;
    } else {
      /* Not confirmed until the initiator sends on it (it may never have received our response). */
      keypair_clear(&p->next);
      p->next = fresh;
    }
    OPENSSL_cleanse(&fresh, sizeof fresh);
  }
  pthread_mutex_unlock(&t->lock);
  return p ? 0 : -1;
}

int wg_clear_keypairs(struct wg_table *t, uint32_t id) {
  pthread_mutex_lock(&t->lock);
  struct wg_peer *p = find_peer(t, id);
  if (p) {
    keypair_clear(&p->current);
    keypair_clear(&p->previous);
    keypair_clear(&p->next);
  }
  pthread_mutex_unlock(&t->lock);
  return p != NULL;
}

static uint64_t since(uint64_t now, uint64_t then) { return then == 0 ? UINT64_MAX : now - then; }

void wg_peer_stats(struct wg_table *t, uint32_t id, struct wg_peer_stats *out) {
  memset(out, 0, sizeof *out);
  uint64_t now = wg_now_ns();
  pthread_mutex_lock(&t->lock);
  struct wg_peer *p = find_peer(t, id);
  if (p) {
    out->found = 1;
    out->has_current = p->current.valid;
    out->has_next = p->next.valid;
    out->current_initiator = p->current.initiator;
    out->current_age_ns = p->current.valid ? now - p->current.created_ns : 0;
    out->current_send_counter = p->current.send_counter;
    out->since_tx_ns = since(now, p->last_tx_ns);
    out->since_rx_ns = since(now, p->last_rx_ns);
    out->since_data_tx_ns = since(now, p->last_data_tx_ns);
    out->since_data_rx_ns = since(now, p->last_data_rx_ns);
    out->tx_bytes = p->tx_bytes;
    out->rx_bytes = p->rx_bytes;
    out->endpoint = p->endpoint;
  }
  pthread_mutex_unlock(&t->lock);
}

/* Under the lock: a "handshake wanted" notice at most once per REKEY_TIMEOUT (TypeScript
 * decides whether one is already under way). Returns 1 if one is due. */
static int want_due(struct wg_table *t, struct wg_peer *p, uint64_t now) {
  uint64_t spacing = t->timers.rekey_timeout_ns / 5; /* a few notices per retry interval at most */
  if (p->last_want_ns != 0 && now - p->last_want_ns < spacing) return 0;
  p->last_want_ns = now;
  return 1;
}

static void emit_want(struct wg_table *t, uint32_t id) {
  if (!t->emit) return;
  struct wg_event ev;
  memset(&ev, 0, offsetof(struct wg_event, data));
  ev.kind = WG_EVENT_WANT_HANDSHAKE;
  ev.table = t->index;
  ev.peer_id = id;
  t->emit(t->emit_ctx, &ev);
}

static void wr64le(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t rd64le(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
static void wr32le(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t rd32le(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

enum wg_result wg_seal(struct wg_table *t, struct wg_crypto *c, uint32_t id, uint8_t *plain, size_t len,
                       unsigned mtu, size_t *out_len, union underlay_addr *dst) {
  uint8_t key[WG_KEY_LEN];
  uint32_t remote_index = 0;
  uint64_t counter = 0;
  int want = 0;
  enum wg_result result = WG_OK;
  uint64_t now = wg_now_ns();

  pthread_mutex_lock(&t->lock);
  struct wg_peer *p = find_peer(t, id);
  if (!p) {
    result = WG_UNKNOWN_PEER;
  } else {
    struct wg_keypair *kp = &p->current;
    if (!kp->valid || now - kp->created_ns >= t->timers.reject_after_ns ||
        kp->send_counter >= t->timers.reject_after_messages) {
      result = len > 0 ? stage(p, plain, len) : WG_NO_SESSION;
      want = want_due(t, p, now);
    } else {
      memcpy(key, kp->send_key, sizeof key);
      remote_index = kp->remote_index;
      counter = kp->send_counter++;
      *dst = p->endpoint;
      p->last_tx_ns = now;
      if (len > 0) p->last_data_tx_ns = now;
      p->tx_bytes += len;
      /* Whitepaper 6.2: the initiator rekeys when sending on an old or heavily used session. */
      if ((kp->initiator && now - kp->created_ns >= t->timers.rekey_after_ns) ||
          counter >= t->timers.rekey_after_messages)
        want = want_due(t, p, now);
    }
  }
  pthread_mutex_unlock(&t->lock);
  if (want) emit_want(t, id);
  if (result != WG_OK) return result;

  size_t padded = wg_padded_len(len, mtu);
  memset(plain + len, 0, padded - len);
  uint8_t *hdr = plain - WG_HEADER_LEN;
  hdr[0] = WG_MSG_TRANSPORT;
  hdr[1] = hdr[2] = hdr[3] = 0;
  wr32le(hdr + 4, remote_index);
  wr64le(hdr + 8, counter);
  int rc = aead_seal(c, key, counter, plain, padded, plain + padded);
  OPENSSL_cleanse(key, sizeof key);
  if (rc < 0) return WG_CRYPTO_ERROR;
  *out_len = WG_HEADER_LEN + padded + WG_TAG_LEN;
  return WG_OK;
}

/* The replay window test without recording anything (before the message is authenticated). */
static int replay_fresh(const struct wg_keypair *kp, uint64_t counter) {
  uint64_t theirs = counter + 1;
  if (theirs > kp->replay_top) return 1;
  if (kp->replay_top - theirs >= WG_REPLAY_BITS - 64) return 0;
  return !(kp->replay[(theirs >> 6) & (WG_REPLAY_WORDS - 1)] & (1ull << (theirs & 63)));
}

int wg_replay_check(struct wg_keypair *kp, uint64_t counter) {
  /* As the kernel's counter_validate(): counters are kept +1 so 0 means "none seen". */
  uint64_t theirs = counter + 1;
  if (theirs == 0) return 0;
  if (theirs > kp->replay_top) {
    uint64_t index = theirs >> 6, current = kp->replay_top >> 6;
    uint64_t top = index - current < WG_REPLAY_WORDS ? index - current : WG_REPLAY_WORDS;
    for (uint64_t i = 1; i <= top; i++) kp->replay[(current + i) & (WG_REPLAY_WORDS - 1)] = 0;
    kp->replay_top = theirs;
  } else if (kp->replay_top - theirs >= WG_REPLAY_BITS - 64) {
    return 0;
  }
  uint64_t *word = &kp->replay[(theirs >> 6) & (WG_REPLAY_WORDS - 1)];
  uint64_t bit = 1ull << (theirs & 63);
  if (*word & bit) return 0;
  *word |= bit;
  return 1;
}

/* The slot holding our receiver index, or NULL. */
static struct wg_keypair *find_session(struct wg_table *t, uint32_t index, struct wg_peer **peer) {
  for (size_t i = 0; i < t->count; i++) {
    struct wg_peer *p = &t->peers[i];
    struct wg_keypair *slots[3] = {&p->current, &p->next, &p->previous};
    for (int s = 0; s < 3; s++)
      if (slots[s]->valid && slots[s]->local_index == index) {
        *peer = p;
        return slots[s];
      }
  }
  return NULL;
}

size_t wg_flush_staged(struct wg_table *t, struct wg_crypto *c, uint32_t id, unsigned mtu, wg_send_fn send, void *ctx) {
  struct wg_staged taken[WG_STAGED_MAX];
  int n = 0;
  pthread_mutex_lock(&t->lock);
  struct wg_peer *p = find_peer(t, id);
  if (p) {
    for (; n < p->staged_count; n++) taken[n] = p->staged[(p->staged_head + n) % WG_STAGED_MAX];
    p->staged_head = p->staged_count = 0;
  }
  pthread_mutex_unlock(&t->lock);
  size_t sent = 0;
  for (int i = 0; i < n; i++) {
    uint8_t *buf = malloc(WG_HEADER_LEN + taken[i].len + 16 + WG_TAG_LEN);
    if (buf) {
      memcpy(buf + WG_HEADER_LEN, taken[i].data, taken[i].len);
      size_t out = 0;
      union underlay_addr dst;
      /* Should the session be gone again, the packet is simply staged once more. */
      if (wg_seal(t, c, id, buf + WG_HEADER_LEN, taken[i].len, mtu, &out, &dst) == WG_OK) {
        send(ctx, buf, out, &dst);
        sent++;
      }
      free(buf);
    }
    OPENSSL_cleanse(taken[i].data, taken[i].len);
    free(taken[i].data);
  }
  return sent;
}

enum wg_result wg_open(struct wg_table *t, struct wg_crypto *c, uint8_t *msg, size_t len,
                       const union underlay_addr *from, uint32_t *peer_id, size_t *plain_len, int *confirmed) {
  *confirmed = 0;
  if (len < WG_MIN_TRANSPORT_LEN) return WG_TRUNCATED;
  uint32_t index = rd32le(msg + 4);
  uint64_t counter = rd64le(msg + 8);
  uint8_t key[WG_KEY_LEN];
  uint64_t now = wg_now_ns();
  enum wg_result result = WG_OK;

  pthread_mutex_lock(&t->lock);
  struct wg_peer *p = NULL;
  struct wg_keypair *kp = find_session(t, index, &p);
  if (!kp) result = WG_UNKNOWN_INDEX;
  else if (now - kp->created_ns >= t->timers.reject_after_ns || counter >= t->timers.reject_after_messages)
    result = WG_EXPIRED;
  else if (!replay_fresh(kp, counter))
    result = WG_REPLAY;
  else
    memcpy(key, kp->recv_key, sizeof key);
  pthread_mutex_unlock(&t->lock);
  if (result != WG_OK) return result;

  size_t clen = len - WG_HEADER_LEN - WG_TAG_LEN;
  uint8_t *data = msg + WG_HEADER_LEN;
  int rc = aead_open(c, key, counter, data, clen, data + clen);
  OPENSSL_cleanse(key, sizeof key);
  if (rc < 0) return WG_BAD_MAC;

  int want = 0;
  uint32_t id = 0;
  pthread_mutex_lock(&t->lock);
  /* The table may have changed while we decrypted: find the session again. */
  kp = find_session(t, index, &p);
  if (!kp) {
    result = WG_UNKNOWN_INDEX;
  } else if (!wg_replay_check(kp, counter)) {
    result = WG_REPLAY;
  } else {
    id = p->id;
    if (kp == &p->next) {
      /* The initiator used the session we answered: it is confirmed, make it current. */
      keypair_clear(&p->previous);
      p->previous = p->current;
      p->current = p->next;
      keypair_clear(&p->next);
      kp = &p->current;
      *confirmed = p->staged_count > 0;
    }
    /* Roaming (whitepaper 2.1): the latest authenticated source is where the peer is. */
    if (from && !same_endpoint(&p->endpoint, from)) endpoint_copy(&p->endpoint, from);
    p->last_rx_ns = now;
    if (clen > 0) p->last_data_rx_ns = now;
    p->rx_bytes += clen;
    /* Whitepaper 6.2: an initiator receiving on a session close to rejection rekeys. */
    if (kp->initiator && kp == &p->current &&
        now - kp->created_ns >= t->timers.reject_after_ns - t->timers.keepalive_ns - t->timers.rekey_timeout_ns)
      want = want_due(t, p, now);
  }
  pthread_mutex_unlock(&t->lock);
  if (want) emit_want(t, id);
  if (result != WG_OK) return result;
  *peer_id = id;
  *plain_len = clen;
  return clen == 0 ? WG_KEEPALIVE : WG_OK;
}

static uint64_t elapsed_ns(uint64_t now, uint64_t then) { return now > then ? now - then : 0; }

/* The source a limiter keys: an IPv4 address, or the first 64 bits of an IPv6 one. */
static uint64_t source_key(const union underlay_addr *from, uint8_t *v6) {
  *v6 = from->sa.sa_family == AF_INET6;
  if (!*v6) return ntohl(from->v4.sin_addr.s_addr);
  uint64_t key = 0;
  for (int i = 0; i < 8; i++) key = (key << 8) | from->v6.sin6_addr.s6_addr[i];
  return key;
}

/* Its set: splitmix64's finalizer (a table index, not a MAC: colliding sources only evict one
 * another, which gives them full buckets, never someone else's). */
static size_t source_set(uint64_t key, uint8_t v6) {
  uint64_t x = key + (v6 ? 0x9e3779b97f4a7c15ull : 0);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return (size_t)((x ^ (x >> 31)) % WG_LIMIT_SETS);
}

/* The entry's credit at `now`, refilled and capped. */
static uint64_t credit_at(const struct wg_source *s, uint64_t now) {
  uint64_t gained = elapsed_ns(now, s->seen_ns);
  return gained >= WG_LIMIT_FULL_NS - s->credit_ns ? WG_LIMIT_FULL_NS : s->credit_ns + gained;
}

int wg_limiter_take(struct wg_limiter *l, const union underlay_addr *from, uint64_t now_ns) {
  uint8_t v6;
  uint64_t key = source_key(from, &v6);
  struct wg_source *set = &l->sources[source_set(key, v6) * WG_LIMIT_WAYS];
  struct wg_source *s = NULL, *victim = NULL;
  int victim_full = 0;
  for (int i = 0; i < WG_LIMIT_WAYS; i++) {
    struct wg_source *e = &set[i];
    if (e->used && e->key == key && e->v6 == v6) {
      s = e;
      break;
    }
    /* A free entry or one whose bucket refilled is as good as absent; else the least recently seen. */
    int full = !e->used || credit_at(e, now_ns) == WG_LIMIT_FULL_NS;
    if (!victim || (full && !victim_full) || (full == victim_full && e->seen_ns < victim->seen_ns)) {
      victim = e;
      victim_full = full;
    }
  }
  if (s) {
    s->credit_ns = credit_at(s, now_ns);
    if (now_ns > s->seen_ns) s->seen_ns = now_ns;
  } else {
    if (!victim_full) l->evictions++;
    s = victim;
    *s = (struct wg_source){.key = key, .seen_ns = now_ns, .credit_ns = WG_LIMIT_FULL_NS, .used = 1, .v6 = v6};
  }
  if (s->credit_ns < WG_LIMIT_COST_NS) return 0;
  s->credit_ns -= WG_LIMIT_COST_NS;
  return 1;
}

size_t wg_limiter_tracked(const struct wg_limiter *l, uint64_t now_ns) {
  size_t n = 0;
  for (size_t i = 0; i < WG_LIMIT_SETS * WG_LIMIT_WAYS; i++)
    if (l->sources[i].used && credit_at(&l->sources[i], now_ns) < WG_LIMIT_FULL_NS) n++;
  return n;
}

void wg_set_mac1_key(struct wg_table *t, const uint8_t *key) {
  struct wg_admission *a = &t->admission;
  pthread_mutex_lock(&a->lock);
  a->has_mac1_key = key != NULL;
  if (key) memcpy(a->mac1_key, key, WG_KEY_LEN);
  pthread_mutex_unlock(&a->lock);
}

uint64_t wg_admission_counter(struct wg_table *t, enum wg_admission_counter id) {
  return __atomic_load_n(&t->admission.counters[id], __ATOMIC_RELAXED);
}

static void admission_count(struct wg_admission *a, enum wg_admission_counter id) {
  __atomic_fetch_add(&a->counters[id], 1, __ATOMIC_RELAXED);
}

/* mac1 of an initiation or response: the 16 bytes 32 from its end, the keyed BLAKE2s of all
 * before them. 1 valid, 0 not, -1 cannot tell (no BLAKE2SMAC: TypeScript checks it anyway). */
static int mac1_valid(struct wg_crypto *c, const uint8_t key[WG_KEY_LEN], const uint8_t *msg, size_t len) {
  if (!c->mac1 && !c->no_blake2s) {
    c->blake2s = EVP_MAC_fetch(NULL, "BLAKE2SMAC", NULL);
    c->mac1 = c->blake2s ? EVP_MAC_CTX_new(c->blake2s) : NULL;
    c->no_blake2s = c->mac1 == NULL;
  }
  if (!c->mac1) return -1;
  size_t at = len - 32, size = 16, written = 0;
  uint8_t mac[16];
  OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size), OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(c->mac1, key, WG_KEY_LEN, params) != 1 || EVP_MAC_update(c->mac1, msg, at) != 1 ||
      EVP_MAC_final(c->mac1, mac, &written, sizeof mac) != 1 || written != sizeof mac)
    return -1;
  return CRYPTO_memcmp(mac, msg + at, sizeof mac) == 0;
}

enum wg_result wg_handshake_message(struct wg_table *t, struct wg_crypto *c, const uint8_t *msg, size_t len,
                                    const union underlay_addr *from) {
  size_t want = msg[0] == WG_MSG_INITIATION ? WG_INITIATION_LEN
                : msg[0] == WG_MSG_RESPONSE ? WG_RESPONSE_LEN
                                             : WG_COOKIE_REPLY_LEN;
  if (len != want) return WG_TRUNCATED;
  struct wg_admission *a = &t->admission;
  /* A cookie reply has no mac1 (its AEAD is TypeScript's to open): only its source's bucket. */
  if (msg[0] != WG_MSG_COOKIE_REPLY) {
    uint8_t key[WG_KEY_LEN];
    pthread_mutex_lock(&a->lock);
    int has_key = a->has_mac1_key;
    if (has_key) memcpy(key, a->mac1_key, sizeof key);
    pthread_mutex_unlock(&a->lock);
    if (has_key && mac1_valid(c, key, msg, len) == 0) {
      admission_count(a, WG_ADMIT_BAD_MAC1);
      return WG_BAD_MAC1;
    }
  }
  /* Every admitted message takes credit, loaded or not: a flooding source is out of credit the
   * moment the queue becomes loaded. */
  uint64_t now = a->clock();
  pthread_mutex_lock(&a->lock);
  int credit = wg_limiter_take(&a->limiter, from, now);
  pthread_mutex_unlock(&a->lock);
  if (!credit && now < __atomic_load_n(&a->loaded_until_ns, __ATOMIC_RELAXED)) {
    __atomic_store_n(&a->loaded_until_ns, now + WG_LOAD_HOLD_NS, __ATOMIC_RELAXED);
    admission_count(a, WG_ADMIT_RATE_LIMITED);
    return WG_RATE_LIMITED;
  }
  if (!t->emit) return WG_QUEUE_FULL;
  struct wg_event ev;
  memset(&ev, 0, sizeof ev);
  ev.kind = WG_EVENT_HANDSHAKE_MESSAGE;
  ev.table = t->index;
  endpoint_copy(&ev.from, from);
  ev.len = len;
  memcpy(ev.data, msg, len);
  int waiting = t->emit(t->emit_ctx, &ev);
  if (waiting < 0 || waiting >= WG_LOAD_DEPTH) __atomic_store_n(&a->loaded_until_ns, now + WG_LOAD_HOLD_NS, __ATOMIC_RELAXED);
  return waiting < 0 ? WG_QUEUE_FULL : WG_OK;
}
