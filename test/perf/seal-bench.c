/* seal-bench.c: wg_seal and wg_open of native/src/wireguard.c, whole (session table, lock, clock,
 * cipher), per message of LEN bytes, on one thread. Build it from any version of wireguard.c to
 * compare two (run them in turns; the machine is shared):
 *   cc -O2 -D_GNU_SOURCE -I/usr/include/node -Inative/src -DWG_SOURCE='"wireguard.c"' \
 *      -o /tmp/seal-bench test/perf/seal-bench.c -lcrypto -lpthread
 *   git show main:native/src/wireguard.c >/tmp/wg-main.c
 *   cc ... -DWG_SOURCE='"/tmp/wg-main.c"' -o /tmp/seal-bench-main ...
 * Run: /tmp/seal-bench [LEN [BATCH]]: rounds of BATCH (default 64, a GSO message's worth) seals,
 * then as many opens; 40 rounds x 16 batches; thread CPU time per message, min and median of
 * the rounds. */
#include WG_SOURCE

#include <stdio.h>

static double cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

#define ROUNDS 40
#define BATCHES 16
#define MAX_BATCH 256

int main(int argc, char **argv) {
  size_t len = argc > 1 ? (size_t)atoi(argv[1]) : 1420;
  int batch = argc > 2 ? atoi(argv[2]) : 64;
  if (batch < 1 || batch > MAX_BATCH || len > 65000) return 2;
  struct wg_table tx, rx;
  wg_init(&tx);
  wg_init(&rx);
  union underlay_addr ep;
  memset(&ep, 0, sizeof ep);
  ep.v4.sin_family = AF_INET;
  ep.v4.sin_port = htons(51820);
  ep.v4.sin_addr.s_addr = htonl(0xc0a80002);
  wg_set_peer(&tx, 1, &ep);
  wg_set_peer(&rx, 1, &ep);
  struct wg_keypair a, b;
  memset(&a, 0, sizeof a);
  for (int i = 0; i < WG_KEY_LEN; i++) a.send_key[i] = (uint8_t)i, a.recv_key[i] = (uint8_t)(i * 7);
  a.initiator = 1;
  a.local_index = 0x11;
  a.remote_index = 0x22;
  b = a;
  memcpy(b.send_key, a.recv_key, WG_KEY_LEN);
  memcpy(b.recv_key, a.send_key, WG_KEY_LEN);
  b.local_index = 0x22;
  b.remote_index = 0x11;
  wg_set_keypair(&tx, 1, &a);
  wg_set_keypair(&rx, 1, &b);
  struct wg_crypto *c = wg_crypto_new();
  if (!c) return 1;
  size_t slot = WG_HEADER_LEN + len + 16 + WG_TAG_LEN;
  uint8_t *bufs = calloc(MAX_BATCH, slot);
  size_t sizes[MAX_BATCH];
  double seal[ROUNDS], open[ROUNDS];
  uint64_t bad = 0;
  for (int r = 0; r < ROUNDS; r++) {
    double ts = 0, to = 0;
    for (int k = 0; k < BATCHES; k++) {
      double t0 = cpu_ns();
      for (int i = 0; i < batch; i++) {
        union underlay_addr dst;
        if (wg_seal(&tx, c, 1, bufs + (size_t)i * slot + WG_HEADER_LEN, len, 0, &sizes[i], &dst) != WG_OK) bad++;
      }
      double t1 = cpu_ns();
      for (int i = 0; i < batch; i++) {
        uint32_t peer;
        size_t plain;
        int confirmed;
        if (wg_open(&rx, c, bufs + (size_t)i * slot, sizes[i], &ep, &peer, &plain, &confirmed) != WG_OK) bad++;
      }
      double t2 = cpu_ns();
      ts += t1 - t0;
      to += t2 - t1;
    }
    seal[r] = ts / (BATCHES * batch);
    open[r] = to / (BATCHES * batch);
  }
  qsort(seal, ROUNDS, sizeof seal[0], cmp);
  qsort(open, ROUNDS, sizeof open[0], cmp);
  printf("%-24s %5zu B x%-3d seal min %6.1f med %6.1f  open min %6.1f med %6.1f ns/message%s\n", WG_SOURCE, len, batch,
         seal[0], seal[ROUNDS / 2], open[0], open[ROUNDS / 2], bad ? "  FAILURES" : "");
  wg_crypto_free(c);
  wg_free(&tx);
  wg_free(&rx);
  free(bufs);
  return bad != 0;
}
