/* aead-bench.c: what one WireGuard transport message's ChaCha20-Poly1305 costs through each way of
 * calling OpenSSL 3, per message of LEN bytes, on one thread (no I/O, no load but the machine's).
 * Build: cc -O2 -o /tmp/aead-bench test/perf/aead-bench.c -lcrypto
 * Run:   /tmp/aead-bench [LEN [MESSAGES]]       (default 1424 bytes, 400000 messages)
 *
 *   evp-key+iv   EVP_EncryptInit_ex(key, nonce) + Update + Final + tag param (what wireguard.c did)
 *   evp-iv       the same with the key set once per context, only the nonce per message
 *   provider-iv  the provider's own functions (OSSL_PROVIDER_query_operation), nonce per message
 *   provider-key+iv  the same, key and nonce per message
 *   chacha-only  EVP "ChaCha20" over LEN bytes, nonce per message: no Poly1305 at all (a floor)
 * The variants take turns in rounds of 10 000 messages (30 rounds); each line gives the thread CPU
 * time per message (preemption by other load excluded), min and median of its rounds. */
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void nonce(unsigned char n[12], unsigned long long c) {
  memset(n, 0, 4);
  memcpy(n + 4, &c, 8);
}

static unsigned char key[32] = {1, 2, 3};

struct prov {
  void *ctx;
  OSSL_FUNC_cipher_encrypt_init_fn *einit;
  OSSL_FUNC_cipher_update_fn *update;
  OSSL_FUNC_cipher_final_fn *final;
  OSSL_FUNC_cipher_get_ctx_params_fn *get;
};

static int prov_open(struct prov *p) {
  OSSL_PROVIDER *dflt = OSSL_PROVIDER_load(NULL, "default");
  int no_cache = 0;
  const OSSL_ALGORITHM *alg = OSSL_PROVIDER_query_operation(dflt, OSSL_OP_CIPHER, &no_cache);
  for (; alg && alg->algorithm_names; alg++) {
    if (!strstr(alg->algorithm_names, "ChaCha20-Poly1305")) continue;
    OSSL_FUNC_cipher_newctx_fn *newctx = NULL;
    for (const OSSL_DISPATCH *d = alg->implementation; d->function_id; d++) {
      switch (d->function_id) {
      case OSSL_FUNC_CIPHER_NEWCTX: newctx = OSSL_FUNC_cipher_newctx(d); break;
      case OSSL_FUNC_CIPHER_ENCRYPT_INIT: p->einit = OSSL_FUNC_cipher_encrypt_init(d); break;
      case OSSL_FUNC_CIPHER_UPDATE: p->update = OSSL_FUNC_cipher_update(d); break;
      case OSSL_FUNC_CIPHER_FINAL: p->final = OSSL_FUNC_cipher_final(d); break;
      case OSSL_FUNC_CIPHER_GET_CTX_PARAMS: p->get = OSSL_FUNC_cipher_get_ctx_params(d); break;
      }
    }
    p->ctx = newctx(OSSL_PROVIDER_get0_provider_ctx(dflt));
    return p->ctx && p->einit(p->ctx, key, 32, NULL, 0, NULL) ? 0 : -1;
  }
  return -1;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

#define VARIANTS 5
#define ROUNDS 30

int main(int argc, char **argv) {
  size_t len = argc > 1 ? (size_t)atoi(argv[1]) : 1424;
  long n = argc > 2 ? atol(argv[2]) : 10000;
  unsigned char *buf = calloc(1, len + 64), tag[16], iv[12];
  EVP_CIPHER *aead = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
  EVP_CIPHER *chacha = EVP_CIPHER_fetch(NULL, "ChaCha20", NULL);
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int outl;
  const char *names[VARIANTS] = {"evp-key+iv", "evp-iv", "provider-iv", "chacha-only", "provider-key+iv"};
  double took[VARIANTS][ROUNDS];
  struct prov p = {0};
  if (prov_open(&p) < 0) {
    printf("no provider dispatch\n");
    return 1;
  }
  for (int round = 0; round < ROUNDS; round++)
  for (int variant = 0; variant < VARIANTS; variant++) {
    if (variant <= 1) EVP_EncryptInit_ex(c, aead, NULL, key, NULL);
    if (variant == 3) EVP_EncryptInit_ex(c, chacha, NULL, key, NULL);
    double t0 = now();
    for (long i = 0; i < n; i++) {
      nonce(iv, (unsigned long long)i);
      if (variant == 3) {
        unsigned char civ[16] = {0};
        memcpy(civ + 4, iv, 12);
        EVP_EncryptInit_ex(c, NULL, NULL, NULL, civ);
        EVP_EncryptUpdate(c, buf, &outl, buf, (int)len);
        continue;
      }
      OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, 16), OSSL_PARAM_construct_end()};
      if (variant == 2 || variant == 4) {
        size_t o;
        p.einit(p.ctx, variant == 4 ? key : NULL, variant == 4 ? 32 : 0, iv, 12, NULL);
        p.update(p.ctx, buf, &o, len, buf, len);
        p.final(p.ctx, buf + len, &o, 0);
        p.get(p.ctx, params);
        continue;
      }
      EVP_EncryptInit_ex(c, NULL, NULL, variant == 0 ? key : NULL, iv);
      EVP_EncryptUpdate(c, buf, &outl, buf, (int)len);
      EVP_EncryptFinal_ex(c, buf + outl, &outl);
      EVP_CIPHER_CTX_get_params(c, params);
    }
    took[variant][round] = (now() - t0) / (double)n;
  }
  for (int v = 0; v < VARIANTS; v++) {
    qsort(took[v], ROUNDS, sizeof took[v][0], cmp);
    printf("%-12s %5zu B  min %7.1f  median %7.1f ns/message  (%5.3f ns/B)\n", names[v], len, took[v][0], took[v][ROUNDS / 2],
           took[v][0] / (double)len);
  }
  return 0;
}
