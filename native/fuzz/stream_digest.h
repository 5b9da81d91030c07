/* What a run wrote to the TUN, reduced to what must not depend on offloads: per TCP
 * connection the payload bytes in order, and every other packet in order (checksum fields
 * left out, since the engine may hand those to the kernel as partial). Two runs of one input,
 * with and without virtio headers (GRO coalescing on and off), must give equal digests. */
#ifndef WEFT_FUZZ_STREAM_DIGEST_H
#define WEFT_FUZZ_STREAM_DIGEST_H

#include <stdint.h>
#include <string.h>

#include "../src/packet.h"

#define DIGEST_STREAMS 64

struct stream {
  int used;
  uint8_t key[37]; /* TCP: addresses, ports, then 4 (IPv4) or 6 (IPv6); all zero: every other packet */
  uint64_t hash;   /* FNV-1a over the bytes, in order */
  uint64_t bytes;
};

struct digest {
  struct stream s[DIGEST_STREAMS];
  int overflow; /* more connections than slots: those share the last one */
};

static void digest_add(struct stream *st, const uint8_t *p, size_t n, size_t skip_from, size_t skip_to) {
  if (!st->used) st->hash = 0xcbf29ce484222325ull;
  st->used = 1;
  for (size_t i = 0; i < n; i++) {
    uint8_t b = i >= skip_from && i < skip_to ? 0 : p[i];
    st->hash = (st->hash ^ b) * 0x100000001b3ull;
  }
  st->bytes += n;
}

static struct stream *digest_stream(struct digest *d, const uint8_t key[37]) {
  for (int i = 0; i < DIGEST_STREAMS; i++) {
    struct stream *st = &d->s[i];
    if (!st->used) {
      memcpy(st->key, key, 37);
      return st;
    }
    if (memcmp(st->key, key, 37) == 0) return st;
  }
  d->overflow = 1;
  return &d->s[DIGEST_STREAMS - 1];
}

/* One IPv4 or IPv6 packet as written to the TUN (`len` = its total length). The IPv6 payload
 * length of a coalesced packet differs from its segments': IPv6 packets other than TCP are
 * digested whole, TCP ones by payload like IPv4. */
static void digest_packet(struct digest *d, const uint8_t *ip, size_t len) {
  int v6 = (ip[0] >> 4) == 6;
  unsigned ihl = v6 ? IP6_HDR_LEN : ip4_header_len(ip);
  uint8_t proto = v6 ? ip6_next_header(ip) : ip[9];
  uint8_t key[37] = {0};
  if (proto == IPPROTO_TCP_ && (v6 || !ip4_later_fragment(ip)) && len >= ihl + 20) {
    size_t addresses = v6 ? 32 : 8;
    memcpy(key, ip + (v6 ? 8 : 12), addresses);
    memcpy(key + addresses, ip + ihl, 4);
    unsigned thl = (ip[ihl + 12] >> 4) * 4u;
    size_t start = ihl + thl <= len && thl >= 20 ? ihl + thl : len;
    key[36] = v6 ? 6 : 4;
    digest_add(digest_stream(d, key), ip + start, len - start, 0, 0);
    return;
  }
  size_t from = 0, to = 0;
  if (proto == IPPROTO_UDP_ && len >= ihl + 8) from = ihl + 6, to = ihl + 8;
  if (proto == IPPROTO_TCP_ && len >= ihl + 18) from = ihl + 16, to = ihl + 18;
  digest_add(digest_stream(d, key), ip, len, from, to);
}

static int digest_covers(const struct digest *a, const struct digest *b) {
  if (a->overflow || b->overflow) return 1; /* not comparable */
  for (int i = 0; i < DIGEST_STREAMS; i++) {
    const struct stream *x = &a->s[i];
    if (!x->used) continue;
    int found = 0;
    for (int j = 0; j < DIGEST_STREAMS && !found; j++) {
      const struct stream *y = &b->s[j];
      if (y->used && memcmp(x->key, y->key, 37) == 0) {
        if (x->hash != y->hash || x->bytes != y->bytes) return 0;
        found = 1;
      }
    }
    if (!found && x->bytes) return 0;
  }
  return 1;
}

static int digest_equal(const struct digest *a, const struct digest *b) {
  return digest_covers(a, b) && digest_covers(b, a);
}

#endif
