/* Peer table with longest-prefix match and its own lock; see routes.h. */
#include "routes.h"

#include <stdlib.h>
#include <string.h>

static uint32_t mask_of(uint8_t prefix) { return prefix == 0 ? 0 : 0xffffffffu << (32 - prefix); }

void routes_init(struct route_table *t) {
  memset(t, 0, sizeof *t);
  pthread_mutex_init(&t->lock, NULL);
}

void routes_free(struct route_table *t) {
  pthread_mutex_destroy(&t->lock);
  free(t->peers);
  free(t->senders);
  free(t->peers6);
  memset(t, 0, sizeof *t);
}

/* Sort order: longer prefixes first, then ascending network. */
static int before(uint8_t prefix_a, uint32_t net_a, uint8_t prefix_b, uint32_t net_b) {
  if (prefix_a != prefix_b) return prefix_a > prefix_b;
  return net_a < net_b;
}

static int sender_order(const void *a, const void *b) {
  const struct sender *x = a, *y = b;
  if (x->public_ip != y->public_ip) return x->public_ip < y->public_ip ? -1 : 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

/* Rebuilds both indexes after peers[] changed; needs no memory (senders has peers' capacity). */
static void rebuild_indexes(struct route_table *t) {
  t->group_count = 0;
  for (size_t i = 0; i < t->count; i++) {
    struct prefix_group *g = t->group_count ? &t->groups[t->group_count - 1] : NULL;
    if (!g || g->prefix != t->peers[i].prefix) {
      g = &t->groups[t->group_count++];
      g->prefix = t->peers[i].prefix;
      g->mask = mask_of(g->prefix);
      g->start = i;
      g->count = 0;
    }
    g->count++;
  }
  for (size_t i = 0; i < t->count; i++) t->senders[i] = (struct sender){t->peers[i].public_ip, (uint32_t)i};
  if (t->count) qsort(t->senders, t->count, sizeof *t->senders, sender_order);
  /* Keep each PublicIP's first entry in table order (the smallest index, sorted first). */
  size_t n = 0;
  for (size_t i = 0; i < t->count; i++)
    if (n == 0 || t->senders[n - 1].public_ip != t->senders[i].public_ip) t->senders[n++] = t->senders[i];
  t->sender_count = n;
}

/* Index of the first entry not before (prefix, network). */
static size_t position(const struct route_table *t, uint8_t prefix, uint32_t network) {
  size_t lo = 0, hi = t->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (before(t->peers[mid].prefix, t->peers[mid].network, prefix, network)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/* Room for one more entry in both arrays. Returns 0, or -1 when out of memory (table unchanged). */
static int reserve(struct route_table *t) {
  if (t->count < t->capacity) return 0;
  size_t capacity = t->capacity ? t->capacity * 2 : 16;
  struct peer *peers = realloc(t->peers, capacity * sizeof *peers);
  if (!peers) return -1;
  t->peers = peers;
  struct sender *senders = realloc(t->senders, capacity * sizeof *senders);
  if (!senders) return -1; /* peers[] is merely bigger than needed */
  t->senders = senders;
  t->capacity = capacity;
  return 0;
}

static int set_locked(struct route_table *t, const struct peer *p) {
  struct peer entry = *p;
  entry.network &= mask_of(entry.prefix);
  size_t i = position(t, entry.prefix, entry.network);
  if (i < t->count && t->peers[i].prefix == entry.prefix && t->peers[i].network == entry.network) {
    t->peers[i] = entry;
  } else {
    if (reserve(t) < 0) return -1;
    memmove(&t->peers[i + 1], &t->peers[i], (t->count - i) * sizeof *t->peers);
    t->peers[i] = entry;
    t->count++;
  }
  rebuild_indexes(t);
  return 0;
}

int routes_set(struct route_table *t, const struct peer *p) {
  pthread_mutex_lock(&t->lock);
  int rc = set_locked(t, p);
  pthread_mutex_unlock(&t->lock);
  return rc;
}

static int remove_locked(struct route_table *t, uint32_t network, uint8_t prefix) {
  network &= mask_of(prefix);
  size_t i = position(t, prefix, network);
  if (i >= t->count || t->peers[i].prefix != prefix || t->peers[i].network != network) return 0;
  memmove(&t->peers[i], &t->peers[i + 1], (t->count - i - 1) * sizeof *t->peers);
  t->count--;
  rebuild_indexes(t);
  return 1;
}

int routes_remove(struct route_table *t, uint32_t network, uint8_t prefix) {
  pthread_mutex_lock(&t->lock);
  int removed = remove_locked(t, network, prefix);
  pthread_mutex_unlock(&t->lock);
  return removed;
}

const struct peer *routes_lookup(const struct route_table *t, uint32_t address) {
  for (size_t g = 0; g < t->group_count; g++) {
    const struct prefix_group *group = &t->groups[g];
    uint32_t key = address & group->mask;
    size_t lo = group->start, hi = group->start + group->count;
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      uint32_t net = t->peers[mid].network;
      if (net == key) return &t->peers[mid];
      if (net < key) lo = mid + 1;
      else hi = mid;
    }
  }
  return NULL;
}

const struct peer *routes_sender_search(const struct route_table *t, uint32_t public_ip) {
  const struct sender *s = t->senders;
  size_t n = t->sender_count;
  if (n == 0) return NULL;
  /* The last entry <= public_ip, halving without branches. */
  while (n > 1) {
    size_t half = n / 2;
    s = s[half].public_ip <= public_ip ? s + half : s;
    n -= half;
  }
  return s->public_ip == public_ip ? &t->peers[s->index] : NULL;
}

int routes_next_hop(struct route_table *t, uint32_t address, struct next_hop *hop) {
  pthread_mutex_lock(&t->lock);
  const struct peer *p = routes_lookup(t, address);
  if (p) {
    hop->addr = p->addr;
    memcpy(hop->mac, p->mac, 6);
    hop->wg_peer = p->wg_peer;
  }
  pthread_mutex_unlock(&t->lock);
  return p != NULL;
}

void routes_read(struct route_table *t, void (*fn)(const struct route_table *t, void *ctx), void *ctx) {
  pthread_mutex_lock(&t->lock);
  fn(t, ctx);
  pthread_mutex_unlock(&t->lock);
}

/* IPv6 ------------------------------------------------------------------------------------- */

static void mask6(uint8_t out[16], const uint8_t in[16], uint8_t prefix) {
  for (unsigned i = 0; i < 16; i++) {
    unsigned bits = prefix >= (i + 1) * 8 ? 8 : prefix > i * 8 ? prefix - i * 8 : 0;
    out[i] = (uint8_t)(in[i] & (uint8_t)(0xff00u >> bits));
  }
}

int ip6_in_subnet(const uint8_t address[16], const uint8_t network[16], uint8_t prefix) {
  unsigned whole = prefix / 8u, rest = prefix % 8u;
  if (memcmp(address, network, whole) != 0) return 0;
  if (rest == 0) return 1;
  uint8_t m = (uint8_t)(0xff00u >> rest);
  return (address[whole] & m) == network[whole];
}

/* Sort order: longer prefixes first (so the first match of a scan is the longest), then network. */
static int before6(const struct peer6 *a, uint8_t prefix, const uint8_t network[16]) {
  if (a->prefix != prefix) return a->prefix > prefix;
  return memcmp(a->network, network, 16) < 0;
}

static size_t position6(const struct route_table *t, uint8_t prefix, const uint8_t network[16]) {
  size_t lo = 0, hi = t->count6;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (before6(&t->peers6[mid], prefix, network)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static int same6(const struct peer6 *p, uint8_t prefix, const uint8_t network[16]) {
  return p->prefix == prefix && memcmp(p->network, network, 16) == 0;
}

static int set6_locked(struct route_table *t, const struct peer6 *p) {
  struct peer6 entry = *p;
  mask6(entry.network, p->network, entry.prefix);
  size_t i = position6(t, entry.prefix, entry.network);
  if (i < t->count6 && same6(&t->peers6[i], entry.prefix, entry.network)) {
    t->peers6[i] = entry;
    return 0;
  }
  if (t->count6 == t->capacity6) {
    size_t capacity = t->capacity6 ? t->capacity6 * 2 : 16;
    struct peer6 *peers = realloc(t->peers6, capacity * sizeof *peers);
    if (!peers) return -1;
    t->peers6 = peers;
    t->capacity6 = capacity;
  }
  memmove(&t->peers6[i + 1], &t->peers6[i], (t->count6 - i) * sizeof *t->peers6);
  t->peers6[i] = entry;
  t->count6++;
  return 0;
}

int routes_set6(struct route_table *t, const struct peer6 *p) {
  if (p->prefix > 128) return -1;
  pthread_mutex_lock(&t->lock);
  int rc = set6_locked(t, p);
  pthread_mutex_unlock(&t->lock);
  return rc;
}

int routes_remove6(struct route_table *t, const uint8_t network[16], uint8_t prefix) {
  if (prefix > 128) return 0;
  uint8_t key[16];
  mask6(key, network, prefix);
  pthread_mutex_lock(&t->lock);
  size_t i = position6(t, prefix, key);
  int found = i < t->count6 && same6(&t->peers6[i], prefix, key);
  if (found) {
    memmove(&t->peers6[i], &t->peers6[i + 1], (t->count6 - i - 1) * sizeof *t->peers6);
    t->count6--;
  }
  pthread_mutex_unlock(&t->lock);
  return found;
}

const struct peer6 *routes_lookup6(const struct route_table *t, const uint8_t address[16]) {
  for (size_t i = 0; i < t->count6; i++)
    if (ip6_in_subnet(address, t->peers6[i].network, t->peers6[i].prefix)) return &t->peers6[i];
  return NULL;
}

const struct peer6 *routes_sender_peer6(const struct route_table *t, const uint8_t public_ip[16]) {
  for (size_t i = 0; i < t->count6; i++)
    if (memcmp(t->peers6[i].public_ip, public_ip, 16) == 0) return &t->peers6[i];
  return NULL;
}

int routes_next_hop6(struct route_table *t, const uint8_t address[16], struct next_hop6 *hop) {
  pthread_mutex_lock(&t->lock);
  const struct peer6 *p = routes_lookup6(t, address);
  if (p) {
    hop->addr = p->addr;
    memcpy(hop->mac, p->mac, 6);
    hop->wg_peer = p->wg_peer;
  }
  pthread_mutex_unlock(&t->lock);
  return p != NULL;
}
