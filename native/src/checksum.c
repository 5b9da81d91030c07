/* The Internet checksum of packet payloads, vectorised where the CPU allows it. The send path
 * sums every segment it cuts from a TCP/UDP super-packet (inside.c split()) and every packet
 * the kernel left with a partial checksum: at 1448 bytes the scalar loop of checksum.h took
 * ~3x as long as copying the segment (profiled in issue 10: ~7 % of all cycles of a weft udp
 * stream). The AVX2 loop below sums 32 bytes per step; the result is the same 64-bit partial
 * sum csum_add() would give (both add little-endian 32-bit words), so callers fold it as
 * before. Headers and short packets keep using csum_add(). */
#include "checksum.h"

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2"))) static uint64_t csum_add_avx2(uint64_t sum, const uint8_t *p, size_t len) {
  __m256i low = _mm256_setzero_si256(), high = _mm256_setzero_si256();
  /* Each 64-bit lane gains less than 2^32 per step: no lane can overflow within 2^32 steps. */
  while (len >= 32) {
    __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);
    low = _mm256_add_epi64(low, _mm256_cvtepu32_epi64(_mm256_castsi256_si128(v)));
    high = _mm256_add_epi64(high, _mm256_cvtepu32_epi64(_mm256_extracti128_si256(v, 1)));
    p += 32;
    len -= 32;
  }
  uint64_t lanes[4];
  _mm256_storeu_si256((__m256i *)(void *)lanes, _mm256_add_epi64(low, high));
  uint64_t vector_sum = 0;
  for (int i = 0; i < 4; i++) vector_sum += (lanes[i] & 0xffffffffu) + (lanes[i] >> 32);
  /* Folded once more so that adding `sum` cannot wrap 64 bits either. */
  vector_sum = (vector_sum & 0xffffffffu) + (vector_sum >> 32);
  return csum_add(csum_fold64(sum) + vector_sum, p, len);
}

/* -1 until the first call asks the CPU; a race only repeats the same answer. */
static int has_avx2 = -1;

uint64_t csum_add_payload(uint64_t sum, const uint8_t *p, size_t len) {
  int avx2 = __atomic_load_n(&has_avx2, __ATOMIC_RELAXED);
  if (avx2 < 0) {
    __builtin_cpu_init();
    avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
    __atomic_store_n(&has_avx2, avx2, __ATOMIC_RELAXED);
  }
  return avx2 && len >= 64 ? csum_add_avx2(sum, p, len) : csum_add(sum, p, len);
}
#else
uint64_t csum_add_payload(uint64_t sum, const uint8_t *p, size_t len) { return csum_add(sum, p, len); }
#endif
