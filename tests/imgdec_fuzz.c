/*
 * imgdec_fuzz.c -- the JPEG/PNG decoder and the PIL resize
 * (src/data/imgdec.c) under AddressSanitizer and UBSan: mutated copies of
 * the fixture images are decoded, and what decodes is resized to random
 * sizes. Any out-of-bounds access or leak fails the run; a decode must
 * either give a picture or fail with a message.
 *
 *   imgdec_fuzz <iterations> <seed> <image>...
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "imgdec.h"

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: imgdec_fuzz <iterations> <seed> <image>...\n");
    return 2;
  }
  int iters = atoi(argv[1]);
  rng = strtoull(argv[2], NULL, 10) | 1;
  int decoded = 0, failed = 0;
  for (int f = 3; f < argc; f++) {
    size_t n;
    unsigned char *orig = slurp(argv[f], &n, 64);
    if (!orig) {
      fprintf(stderr, "imgdec_fuzz: cannot read %s\n", argv[f]);
      return 2;
    }
    unsigned char *b = malloc(n + 64);
    for (int i = 0; i < iters; i++) {
      memcpy(b, orig, n);
      size_t m = n;
      int k = 1 + (int)(next() % 4);
      for (int j = 0; j < k; j++) {
        size_t at = (size_t)(next() % m);
        switch (next() % 3) {
          case 0: b[at] ^= (unsigned char)(1u << (next() % 8)); break;
          case 1: b[at] = (unsigned char)next(); break;
          case 2: m = at + 1; break; /* truncate */
        }
      }
      acq_image img;
      char err[256] = "";
      if (acq_image_decode(b, m, 0, &img, err, sizeof err)) {
        if (!err[0]) {
          fprintf(stderr, "imgdec_fuzz: a failure without a message\n");
          return 1;
        }
        failed++;
        continue;
      }
      decoded++;
      int ow = 1 + (int)(next() % 40), oh = 1 + (int)(next() % 40);
      unsigned char *out = malloc((size_t)ow * oh * 3);
      if (acq_resize_pil(img.pixels, img.width, img.height, 3, out, ow, oh)) return 1;
      free(out);
      free(img.pixels);
    }
    free(b);
    free(orig);
  }
  printf("imgdec_fuzz: %d decoded, %d rejected with a message\n", decoded, failed);
  return 0;
}
