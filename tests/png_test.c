/*
 * png_test.c -- the PNG encoder (src/data/png_write.c, over libpng) checked
 * independently with zlib: chunk layout and CRCs, IHDR fields, and the
 * inflated scanlines (IDAT chunks joined) equal to the pixels given; read
 * back with the project's decoder (imgdec.c) as well; plus an atomic write
 * into a missing directory failing with a message. Exit status 0 on success.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "imgdec.h"
#include "png_write.h"

static int fails = 0;
#define CHECK(c, ...)                     \
  do {                                    \
    if (!(c)) {                           \
      fprintf(stderr, "FAIL: " __VA_ARGS__); \
      fprintf(stderr, "\n");              \
      fails++;                            \
    }                                     \
  } while (0)

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void check_one(int w, int h, int c) {
  uint8_t *px = malloc((size_t)w * h * c);
  for (int i = 0; i < w * h * c; i++) px[i] = (uint8_t)(i * 37 + i / 7);
  uint8_t *png;
  size_t len;
  char err[256];
  CHECK(acq_png_encode(px, w, h, c, &png, &len, err, sizeof err) == 0, "encode: %s", err);
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  CHECK(memcmp(png, sig, 8) == 0, "signature");
  size_t pos = 8;
  uint8_t *idat = NULL;
  size_t idat_len = 0;
  int seen_end = 0;
  while (pos + 12 <= len) {
    uint32_t n = rd32(png + pos);
    const uint8_t *type = png + pos + 4, *data = png + pos + 8;
    uint32_t crc = (uint32_t)crc32(0L, type, n + 4);
    CHECK(crc == rd32(data + n), "CRC of chunk %.4s", (const char *)type);
    if (memcmp(type, "IHDR", 4) == 0) {
      static const uint8_t ct[5] = {0, 0, 4, 2, 6};
      CHECK(n == 13 && rd32(data) == (uint32_t)w && rd32(data + 4) == (uint32_t)h, "IHDR size");
      CHECK(data[8] == 8 && data[9] == ct[c], "IHDR depth %d / colour type %d", data[8], data[9]);
    } else if (memcmp(type, "IDAT", 4) == 0) { /* libpng may split the stream */
      idat = realloc(idat, idat_len + n);
      memcpy(idat + idat_len, data, n);
      idat_len += n;
    } else if (memcmp(type, "IEND", 4) == 0) {
      seen_end = 1;
    }
    pos += 12 + n;
  }
  CHECK(seen_end && pos == len, "IEND last");
  uLongf rawlen = (uLongf)(w * c + 1) * h;
  uint8_t *raw = malloc(rawlen);
  CHECK(idat && uncompress(raw, &rawlen, idat, idat_len) == Z_OK, "inflate");
  CHECK(rawlen == (uLongf)(w * c + 1) * h, "inflated length");
  for (int y = 0; y < h; y++) {
    CHECK(raw[y * (w * c + 1)] == 0, "filter byte of row %d", y);
    CHECK(memcmp(raw + y * (w * c + 1) + 1, px + y * w * c, (size_t)w * c) == 0, "row %d", y);
  }
  free(raw);
  free(idat);
  /* read back by the decoder the evaluation uses (RGB out) */
  acq_image img;
  CHECK(acq_image_decode(png, len, 0, &img, err, sizeof err) == 0, "decode: %s", err);
  if (img.pixels) {
    CHECK(img.width == w && img.height == h, "decoded size");
    int same = 1;
    for (int i = 0; i < w * h; i++) {
      const uint8_t *s = px + (size_t)i * c, *d = img.pixels + (size_t)i * 3;
      uint8_t r = s[0], g = c >= 3 ? s[1] : s[0], bl = c >= 3 ? s[2] : s[0];
      same &= d[0] == r && d[1] == g && d[2] == bl;
    }
    CHECK(same, "decoded pixels of %dx%dx%d", w, h, c);
    free(img.pixels);
  }
  free(png);
  free(px);
}

int main(void) {
  check_one(1, 1, 1);
  check_one(7, 5, 2);
  check_one(33, 17, 3);
  check_one(64, 64, 4);
  check_one(300, 200, 3); /* large enough for several IDAT chunks */
  uint8_t px[3] = {1, 2, 3};
  char err[256] = "";
  CHECK(acq_png_write("/nonexistent-dir/x.png", px, 1, 1, 3, err, sizeof err) != 0, "write must fail");
  CHECK(strstr(err, "/nonexistent-dir/x.png") != NULL, "message names the file: %s", err);
  uint8_t *out = NULL;
  size_t outlen = 0;
  CHECK(acq_png_encode(px, 0, 1, 3, &out, &outlen, err, sizeof err) != 0 && !out, "empty picture rejected");
  if (fails) return 1;
  printf("png: 5 pictures encoded, inflated with zlib and decoded with libpng, CRCs and IHDR checked\n");
  return 0;
}
