/* Reading a fuzz input front to back; past its end every read yields zeros, so any byte
 * string is a valid input. */
#ifndef WEFT_FUZZ_INPUT_H
#define WEFT_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

struct fz_input {
  const uint8_t *p;
  size_t left;
};

static inline uint8_t fz_u8(struct fz_input *in) {
  if (!in->left) return 0;
  in->left--;
  return *in->p++;
}

static inline uint16_t fz_u16(struct fz_input *in) {
  uint16_t hi = fz_u8(in);
  return (uint16_t)((hi << 8) | fz_u8(in));
}

/* Up to `want` bytes (fewer at the end of the input); returns how many. */
static inline size_t fz_bytes(struct fz_input *in, size_t want, const uint8_t **out) {
  size_t n = want < in->left ? want : in->left;
  *out = in->p;
  in->p += n;
  in->left -= n;
  return n;
}

#endif
