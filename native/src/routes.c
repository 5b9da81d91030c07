/* Peer table with longest-prefix match; see routes.h. */
#include "routes.h"

#include <stdlib.h>
#include <string.h>

static uint32_t mask_of(uint8_t prefix) { return prefix == 0 ? 0 : 0xffffffffu << (32 - prefix); }

void routes_init(struct route_table *t) { memset(t, 0, sizeof *t); }

void routes_free(struct route_table *t) {
  free(t->peers);
  memset(t, 0, sizeof *t);
}

/* Sort order: longer prefixes first, then ascending network. */
static int before(uint8_t prefix_a, uint32_t net_a, uint8_t prefix_b, uint32_t net_b) {
  if (prefix_a != prefix_b) return prefix_a > prefix_b;
  return net_a < net_b;
}

static void rebuild_groups(struct route_table *t) {
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

int routes_set(struct route_table *t, const struct peer *p) {
  struct peer entry = *p;
  entry.network &= mask_of(entry.prefix);
  size_t i = position(t, entry.prefix, entry.network);
  if (i < t->count && t->peers[i].prefix == entry.prefix && t->peers[i].network == entry.network) {
    t->peers[i] = entry;
    return 0;
  }
  if (t->count == t->capacity) {
    size_t capacity = t->capacity ? t->capacity * 2 : 16;
    struct peer *grown = realloc(t->peers, capacity * sizeof *grown);
    if (!grown) return -1;
    t->peers = grown;
    t->capacity = capacity;
  }
  memmove(&t->peers[i + 1], &t->peers[i], (t->count - i) * sizeof *t->peers);
  t->peers[i] = entry;
  t->count++;
  rebuild_groups(t);
  return 0;
}

int routes_remove(struct route_table *t, uint32_t network, uint8_t prefix) {
  network &= mask_of(prefix);
  size_t i = position(t, prefix, network);
  if (i >= t->count || t->peers[i].prefix != prefix || t->peers[i].network != network) return 0;
  memmove(&t->peers[i], &t->peers[i + 1], (t->count - i - 1) * sizeof *t->peers);
  t->count--;
  rebuild_groups(t);
  return 1;
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

int routes_has_public_ip(const struct route_table *t, uint32_t public_ip) {
  for (size_t i = 0; i < t->count; i++)
    if (t->peers[i].public_ip == public_ip) return 1;
  return 0;
}
