/* WireGuard's transport data path (wireguard.c): the per-peer session table the forwarding
 * threads seal and open type-4 messages with, its replay windows and the protocol's
 * per-packet timer checks. The handshake (Noise_IKpsk2, types 1-3) is TypeScript's
 * (src/engine/wireguard/): it hands finished session keys in with wg_set_keypair() and gets
 * handshake messages and "a handshake is wanted" notices out through the emitter.
 *
 * Crypto is OpenSSL's libcrypto (EVP_chacha20_poly1305, EVP_MAC BLAKE2SMAC), the copy the Node
 * process carries: the addon is built against Node's bundled OpenSSL headers and links no
 * libcrypto of its own (see ../README.md "WireGuard").
 *
 * Locking: the table owns one mutex, held only to copy a key out or update counters and the
 * replay window, never across encryption, I/O or the emitter. Handshake admission (below) has a
 * lock of its own, so a handshake flood never contends with the data path's. */
#ifndef WEFT_WIREGUARD_H
#define WEFT_WIREGUARD_H

#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "underlay_addr.h"

#define WG_MSG_INITIATION 1
#define WG_MSG_RESPONSE 2
#define WG_MSG_COOKIE_REPLY 3
#define WG_MSG_TRANSPORT 4
#define WG_INITIATION_LEN 148
#define WG_RESPONSE_LEN 92
#define WG_COOKIE_REPLY_LEN 64
/* type (1) + reserved (3) + receiver index (4) + counter (8) */
#define WG_HEADER_LEN 16
#define WG_TAG_LEN 16
#define WG_MIN_TRANSPORT_LEN (WG_HEADER_LEN + WG_TAG_LEN)
#define WG_KEY_LEN 32
/* The sliding replay window, as the whitepaper's and the kernel's: 2048 bits in 64-bit words,
 * of which all but the word being rotated in (2048 - 64) are always usable. */
#define WG_REPLAY_BITS 2048
#define WG_REPLAY_WORDS (WG_REPLAY_BITS / 64)

/* The protocol's timers (whitepaper 6.1), in nanoseconds / messages; configurable so tests can
 * rekey in seconds. */
struct wg_timers {
  uint64_t rekey_after_ns;        /* REKEY_AFTER_TIME 120 s: the initiator starts a new handshake when sending */
  uint64_t reject_after_ns;       /* REJECT_AFTER_TIME 180 s: a session is neither used nor accepted after this */
  uint64_t rekey_after_messages;  /* REKEY_AFTER_MESSAGES 2^60 */
  uint64_t reject_after_messages; /* REJECT_AFTER_MESSAGES 2^64 - 2^13 - 1 */
  uint64_t keepalive_ns;          /* KEEPALIVE_TIMEOUT 10 s (receive-side rekey: reject - keepalive - rekey_timeout) */
  uint64_t rekey_timeout_ns;      /* REKEY_TIMEOUT 5 s; also the spacing of "handshake wanted" notices */
};

void wg_timers_default(struct wg_timers *t);

struct wg_keypair {
  int valid;
  int initiator;                  /* we sent the initiation: only then does age trigger a rekey */
  uint32_t local_index;           /* what the peer puts in its transport headers to us */
  uint32_t remote_index;          /* what we put in ours */
  uint8_t send_key[WG_KEY_LEN];
  uint8_t recv_key[WG_KEY_LEN];
  uint64_t send_counter;          /* next nonce to use */
  uint64_t created_ns;
  uint64_t replay_top;            /* highest counter accepted + 1 (0: none yet) */
  uint64_t replay[WG_REPLAY_WORDS];
};

/* Packets for a peer without a usable session wait here (copies) until a handshake completes,
 * as wireguard-go's staged queue: the first packets of a flow are not lost to the handshake. */
#define WG_STAGED_MAX 64
struct wg_staged {
  uint8_t *data;
  size_t len;
};

struct wg_peer {
  uint32_t id;                    /* JS's handle for the peer, never 0 */
  union underlay_addr endpoint;   /* where to send (the table's family); follows the peer on authenticated receive (roaming) */
  struct wg_keypair current, previous, next; /* next: a responder's session, unconfirmed until data arrives on it */
  uint64_t last_tx_ns, last_rx_ns, last_data_tx_ns, last_data_rx_ns, last_handshake_ns;
  uint64_t last_want_ns;          /* last "handshake wanted" notice */
  uint64_t tx_bytes, rx_bytes;
  struct wg_staged staged[WG_STAGED_MAX]; /* a ring: staged_head is the oldest */
  int staged_head, staged_count;
};

/* What the data path tells TypeScript, through the emitter addon.c installs. */
enum wg_event_kind { WG_EVENT_HANDSHAKE_MESSAGE = 1, WG_EVENT_WANT_HANDSHAKE = 2 };
struct wg_event {
  enum wg_event_kind kind;
  int table;                      /* which interface's table: its wg_table.index */
  uint32_t peer_id;               /* WANT_HANDSHAKE */
  union underlay_addr from;       /* HANDSHAKE_MESSAGE */
  size_t len;
  uint8_t data[WG_INITIATION_LEN];
};
/* Must not block; returns -1 if the event was dropped (queue full), else how many events wait
 * for TypeScript now, this one included (0: the emitter cannot tell). */
typedef int (*wg_emit_fn)(void *ctx, const struct wg_event *event);

/* The emitter's queue (addon.c: a napi threadsafe function of this size). It is loaded (the
 * kernel's measure, whitepaper 5.3) while 1/8 of it waits, and for WG_LOAD_HOLD_NS after. */
#define WG_EVENT_QUEUE 256
#define WG_LOAD_DEPTH (WG_EVENT_QUEUE / 8)
#define WG_LOAD_HOLD_NS 1000000000ull

/* Per-source token buckets for handshake messages: a source is an IPv4 address or the /64 of an
 * IPv6 one (as wireguard-go's and the kernel's limiters key them), WG_LIMIT_PER_SECOND with a
 * burst of WG_LIMIT_BURST (theirs too). The kernel's arithmetic: a bucket holds nanoseconds of
 * credit, a message costs 1 s / WG_LIMIT_PER_SECOND. A fixed table of WG_LIMIT_SETS sets of
 * WG_LIMIT_WAYS entries, nothing allocated per message: a source takes an entry of its set whose
 * bucket has refilled (it is as good as absent), else the least recently seen one, whose source
 * then starts again with a full bucket (an eviction). So a table full of strangers can only make
 * the limit looser, never take a bucket from anyone. */
#define WG_LIMIT_PER_SECOND 20
#define WG_LIMIT_BURST 5
#define WG_LIMIT_SETS 256
#define WG_LIMIT_WAYS 4
#define WG_LIMIT_COST_NS (1000000000ull / WG_LIMIT_PER_SECOND)
#define WG_LIMIT_FULL_NS (WG_LIMIT_COST_NS * WG_LIMIT_BURST)

struct wg_source {
  uint64_t key;         /* IPv4 address (host order), or an IPv6 source's first 64 bits */
  uint64_t seen_ns;     /* its last message */
  uint64_t credit_ns;   /* at seen_ns, at most WG_LIMIT_FULL_NS */
  uint8_t used, v6;
};

struct wg_limiter {
  struct wg_source sources[WG_LIMIT_SETS * WG_LIMIT_WAYS];
  uint64_t evictions;   /* sources forgotten before their bucket refilled */
};

/* Takes one message's credit from the source of `from`: 1 if it had it, 0 if its bucket is empty
 * (the caller decides what that means). Not locked: the caller's lock. */
int wg_limiter_take(struct wg_limiter *l, const union underlay_addr *from, uint64_t now_ns);
/* Entries whose bucket has not refilled yet at now_ns (the sources the table must remember). */
size_t wg_limiter_tracked(const struct wg_limiter *l, uint64_t now_ns);

/* Why the outside thread dropped a handshake message before the queue: counted per table, summed
 * by the addon after the engine's counters (counterNames()). */
#define WG_ADMISSION_COUNTERS(X)                                        \
  X(BAD_MAC1, "outside.drop.handshake_bad_mac1")                        \
  X(RATE_LIMITED, "outside.drop.handshake_rate_limited")
#define WG_ADMISSION_ENUM(id, name) WG_ADMIT_##id,
enum wg_admission_counter { WG_ADMISSION_COUNTERS(WG_ADMISSION_ENUM) WG_ADMIT_COUNT };
#undef WG_ADMISSION_ENUM
extern const char *const wg_admission_counter_names[WG_ADMIT_COUNT];

/* What a handshake message passes on the outside thread before it is queued: mac1 (types 1 and 2,
 * once TypeScript handed in the key), then, for types 1-3, its source's bucket, which only drops
 * while the queue is loaded (a source over its rate keeps it so: the hold is renewed by every
 * message the bucket drops, so a flood the limiter holds off stays held off to its end). */
struct wg_admission {
  pthread_mutex_t lock;       /* the key and the limiter; several outside threads share a table */
  int has_mac1_key;
  uint8_t mac1_key[WG_KEY_LEN]; /* HASH("mac1----" || our public key): not secret */
  uint64_t loaded_until_ns;   /* atomic */
  uint64_t counters[WG_ADMIT_COUNT]; /* atomic */
  uint64_t (*clock)(void);    /* wg_now_ns (the fuzz harness sets its own) */
  struct wg_limiter limiter;
};

/* One logical WireGuard interface: flanneld's flannel-wg (index 0, the IPv4 socket) or, on a
 * dual-stack network in Mode "separate", flannel-wg-v6 (index 1, the IPv6 socket). Two tables
 * are two independent sets of peers and sessions, as two devices are, even for one public key. */
struct wg_table {
  pthread_mutex_t lock;
  int index;                      /* 0: the IPv4 interface, 1: the IPv6 one (events name it) */
  struct wg_peer *peers;
  size_t count, capacity;
  struct wg_timers timers;
  wg_emit_fn emit;
  void *emit_ctx;
  struct wg_admission admission;
};

/* A thread's cipher context (EVP_CIPHER_CTX), reused for every packet it seals or opens. */
struct wg_crypto;
struct wg_crypto *wg_crypto_new(void);
void wg_crypto_free(struct wg_crypto *c);

void wg_init(struct wg_table *t);
/* Zeroes every key before freeing. */
void wg_free(struct wg_table *t);
/* Adds the peer or changes its endpoint (a changed endpoint keeps the sessions). 0, or -1: out of memory. */
int wg_set_peer(struct wg_table *t, uint32_t id, const union underlay_addr *endpoint);
/* Zeroes and forgets the peer's sessions; returns 1 if it existed. */
int wg_remove_peer(struct wg_table *t, uint32_t id);
/* Installs a finished handshake's session: an initiator's becomes current at once (the old one
 * stays as previous), a responder's waits in next until the initiator's first message on it.
 * Returns 0, or -1 if the peer is unknown. */
int wg_set_keypair(struct wg_table *t, uint32_t id, const struct wg_keypair *kp);
/* Zeroes every session of the peer (key rotation, handshake failure). */
int wg_clear_keypairs(struct wg_table *t, uint32_t id);

struct wg_peer_stats {
  int found, has_current, has_next, current_initiator;
  uint64_t current_age_ns, current_send_counter;
  uint64_t since_tx_ns, since_rx_ns, since_data_tx_ns, since_data_rx_ns; /* UINT64_MAX: never */
  uint64_t tx_bytes, rx_bytes;
  union underlay_addr endpoint;
};
void wg_peer_stats(struct wg_table *t, uint32_t id, struct wg_peer_stats *out);

/* Result of sealing or opening: 0 ok, else a drop reason. */
enum wg_result {
  WG_OK = 0,
  WG_KEEPALIVE,        /* opened, no payload */
  WG_NO_SESSION,       /* seal: no usable session (a handshake is requested), and nothing staged */
  WG_STAGED,           /* seal: no usable session yet; the packet waits for the handshake */
  WG_STAGED_OVERFLOW,  /* seal: staged, but the oldest staged packet was dropped for it */
  WG_UNKNOWN_PEER,     /* seal: no such peer */
  WG_CRYPTO_ERROR,     /* OpenSSL refused (never on valid input) */
  WG_TRUNCATED,
  WG_UNKNOWN_INDEX,    /* open: no session with that receiver index */
  WG_EXPIRED,          /* open: session older than REJECT_AFTER_TIME or counter past REJECT_AFTER_MESSAGES */
  WG_BAD_MAC,          /* open: authentication failed */
  WG_REPLAY,           /* open: counter seen already or older than the window */
  WG_BAD_MAC1,         /* handshake: mac1 is not ours (garbage, or for another key) */
  WG_RATE_LIMITED,     /* handshake: the queue is loaded and the source's bucket empty */
  WG_QUEUE_FULL,       /* handshake: the emitter dropped it */
};

/* The plaintext length after padding: a multiple of 16, but never past the MTU (whitepaper 5.4.6). */
static inline size_t wg_padded_len(size_t len, unsigned mtu) {
  size_t padded = (len + 15) & ~(size_t)15;
  if (mtu > 0 && len <= mtu && padded > mtu) padded = mtu;
  return padded < len ? len : padded;
}

/* Seals `len` plaintext bytes at `plain` for peer `id`, in place: the 16-byte header goes in the
 * WG_HEADER_LEN bytes before `plain`, zero padding to a multiple of 16 (not past `mtu`) and the
 * tag after, so `plain` needs len + 15 + WG_TAG_LEN bytes of room. On WG_OK *out_len is the
 * message length (from plain - WG_HEADER_LEN) and *dst the peer's endpoint. len 0 is a keepalive. */
enum wg_result wg_seal(struct wg_table *t, struct wg_crypto *c, uint32_t id, uint8_t *plain, size_t len,
                       unsigned mtu, size_t *out_len, union underlay_addr *dst);

/* Sends one sealed message (the caller's socket). */
typedef void (*wg_send_fn)(void *ctx, const uint8_t *msg, size_t len, const union underlay_addr *dst);
/* Seals and sends what is staged for peer `id` (after a session became usable). Returns how many. */
size_t wg_flush_staged(struct wg_table *t, struct wg_crypto *c, uint32_t id, unsigned mtu, wg_send_fn send, void *ctx);

/* Opens a type-4 message of `len` bytes at `msg` received from `from`, in place. On WG_OK the
 * plaintext (padding included) is at msg + WG_HEADER_LEN, *plain_len bytes, and *peer_id is its
 * peer; the endpoint, timestamps and replay window are updated only then. *confirmed is set
 * when this message confirmed a responder's session (staged packets may go now). */
enum wg_result wg_open(struct wg_table *t, struct wg_crypto *c, uint8_t *msg, size_t len,
                       const union underlay_addr *from, uint32_t *peer_id, size_t *plain_len, int *confirmed);

/* A handshake message (types 1-3) for TypeScript, from the outside thread whose crypto is `c`:
 * its size, then admission (struct wg_admission). Returns WG_OK (queued), WG_TRUNCATED (wrong
 * size), WG_BAD_MAC1 or WG_RATE_LIMITED (counted in the table's admission counters) or
 * WG_QUEUE_FULL. */
enum wg_result wg_handshake_message(struct wg_table *t, struct wg_crypto *c, const uint8_t *msg, size_t len,
                                    const union underlay_addr *from);
/* The mac1 key (32 bytes) handshake messages are checked against from now on; NULL: none (no check). */
void wg_set_mac1_key(struct wg_table *t, const uint8_t *key);
uint64_t wg_admission_counter(struct wg_table *t, enum wg_admission_counter id);

/* The replay window on its own (for tests and the fuzzer): 1 if `counter` is new (and records
 * it), 0 if it is a replay or too old. */
int wg_replay_check(struct wg_keypair *kp, uint64_t counter);

/* Keyed BLAKE2s (WireGuard's MAC, mac1/mac2/cookies) through OpenSSL's BLAKE2SMAC.
 * key_len 1..32, out_len 1..32. Returns 0, or -1 if OpenSSL has no BLAKE2SMAC. */
int wg_blake2s_mac(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len, uint8_t *out, size_t out_len);

uint64_t wg_now_ns(void);

#endif
