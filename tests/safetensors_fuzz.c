/*
 * safetensors_fuzz.c -- feeds mutated safetensors files to the reader
 * (src/data/safetensors.c). Built with AddressSanitizer and UBSan by
 * tests/CMakeLists.txt; any out-of-bounds access or leak fails the run.
 *
 *   safetensors_fuzz <seed file> [iterations] [seed]
 *
 * Each iteration takes the seed file's header and applies 1-4 mutations
 * (byte flips, digits replaced, bytes deleted or inserted, truncation,
 * a corrupted length field), then parses it both as a header and as a whole
 * file through acq_st_open. A parse must either succeed with every tensor
 * inside the data section or fail with a message.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "safetensors.h"

static size_t mutate(unsigned char *b, size_t n, size_t cap) {
  static const char tokens[] = "0123456789[]{},:\"-eE.FIUB ";
  int k = 1 + (int)(next() % 4);
  for (int i = 0; i < k && n > 0; i++) {
    size_t at = (size_t)(next() % n);
    switch (next() % 6) {
      case 0: b[at] ^= (unsigned char)(1u << (next() % 8)); break;
      case 1: b[at] = (unsigned char)tokens[next() % (sizeof tokens - 1)]; break;
      case 2: memmove(b + at, b + at + 1, n - at - 1); n--; break;
      case 3:
        if (n < cap) {
          memmove(b + at + 1, b + at, n - at);
          b[at] = (unsigned char)tokens[next() % (sizeof tokens - 1)];
          n++;
        }
        break;
      case 4: n = at; break;
      default: /* a digit run grows: offsets and shapes go out of range */
        if (b[at] >= '0' && b[at] <= '9' && n + 8 < cap) {
          memmove(b + at + 8, b + at, n - at);
          memset(b + at, '9', 8);
          n += 8;
        }
    }
  }
  return n;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s <file.safetensors> [iterations] [seed]\n", argv[0]);
    return 2;
  }
  int iters = argc > 2 ? atoi(argv[2]) : 1000;
  if (argc > 3) rng = strtoull(argv[3], NULL, 10) | 1;
  size_t n;
  unsigned char *file = slurp(argv[1], &n, 0);
  if (!file || n < 8) {
    fprintf(stderr, "cannot read %s\n", argv[1]);
    return 2;
  }
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | file[i];
  if (hlen > n - 8) return 2;
  uint64_t data_size = n - 8 - hlen;
  size_t cap = (size_t)hlen + 4096;
  unsigned char *buf = malloc(cap);
  char err[ACQ_ST_ERR], path[64];
  snprintf(path, sizeof path, "/tmp/acq_fuzz_%ld.safetensors", (long)getpid());
  int accepted = 0, rejected = 0;
  for (int it = 0; it < iters; it++) {
    memcpy(buf, file + 8, (size_t)hlen);
    size_t len = mutate(buf, (size_t)hlen, cap);
    /* the header alone, in an exactly sized heap block (ASan sees overreads) */
    char *exact = malloc(len ? len : 1);
    memcpy(exact, buf, len);
    acq_st_file f;
    uint64_t dsz = next() % 4 == 0 ? next() % (data_size + 1) : data_size; /* cut data */
    if (acq_st_parse_header(exact, len, dsz, &f, err, sizeof err) == 0) {
      for (int i = 0; i < f.n; i++)
        if (f.e[i].end > dsz || f.e[i].begin > f.e[i].end) {
          fprintf(stderr, "iteration %d: accepted an entry outside the data\n", it);
          return 1;
        }
      acq_st_close(&f);
      accepted++;
    } else {
      if (!err[0]) {
        fprintf(stderr, "iteration %d: rejected without a message\n", it);
        return 1;
      }
      rejected++;
    }
    free(exact);
    /* the whole file, sometimes with a corrupted length field or cut data */
    FILE *o = fopen(path, "wb");
    uint64_t hl = len;
    if (next() % 8 == 0) hl = next() % (2 * (uint64_t)n);
    unsigned char l8[8];
    for (int i = 0; i < 8; i++) l8[i] = (unsigned char)(hl >> (8 * i));
    size_t dlen = (size_t)data_size;
    if (next() % 4 == 0) dlen = (size_t)(next() % (data_size + 1));
    fwrite(l8, 1, 8, o);
    fwrite(buf, 1, len, o);
    fwrite(file + 8 + hlen, 1, dlen, o);
    fclose(o);
    if (acq_st_open(path, &f, err, sizeof err) == 0) {
      for (int i = 0; i < f.n; i++) {
        if (f.e[i].end > f.data_size || 8 + hl + f.data_size != f.map_size) {
          fprintf(stderr, "iteration %d: file accepted with a tensor outside its data\n", it);
          return 1;
        }
        /* touch the first and last byte of every tensor */
        volatile unsigned char c = 0;
        if (f.e[i].end > f.e[i].begin) c = f.data[f.e[i].begin] ^ f.data[f.e[i].end - 1];
        (void)c;
      }
      acq_st_close(&f);
    }
  }
  unlink(path);
  printf("%d mutated headers: %d accepted, %d rejected with a message, no crash\n", iters, accepted,
         rejected);
  free(buf);
  free(file);
  return 0;
}
