/*
 * fuzz_util.h -- what the fuzz tests share: a seedable xorshift generator
 * and reading a whole file.
 */
#ifndef ACQ_FUZZ_UTIL_H
#define ACQ_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* The file's bytes in a malloc'd buffer with `spare` bytes more room; NULL
 * when it cannot be read. */
static unsigned char *slurp(const char *path, size_t *n, size_t spare) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = len < 0 ? NULL : malloc((size_t)len + spare + 1);
  if (!b || fread(b, 1, (size_t)len, f) != (size_t)len) {
    fclose(f);
    free(b);
    return NULL;
  }
  fclose(f);
  *n = (size_t)len;
  return b;
}

#endif /* ACQ_FUZZ_UTIL_H */
