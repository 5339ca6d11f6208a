/*
 * png_write.c -- a minimal PNG encoder: signature, IHDR, one IDAT (zlib stream of
 * the scanlines, each with filter byte 0), IEND; CRCs from zlib.
 */
#include "png_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "atomic.h"

static void be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* Appends a chunk (length, type, data, CRC of type + data) at *pos. */
static void chunk(uint8_t *buf, size_t *pos, const char *type, const uint8_t *data, uint32_t len) {
  uint8_t *p = buf + *pos;
  be32(p, len);
  memcpy(p + 4, type, 4);
  if (len) memcpy(p + 8, data, len);
  uLong crc = crc32(0L, p + 4, (uInt)len + 4);
  be32(p + 8 + len, (uint32_t)crc);
  *pos += 12 + (size_t)len;
}

int acq_png_encode(const uint8_t *pixels, int width, int height, int channels, uint8_t **out,
                   size_t *outlen, char *err, size_t errn) {
  static const uint8_t color_type[5] = {0, 0, 4, 2, 6}; /* grey, grey+a, RGB, RGBA */
  if (width <= 0 || height <= 0 || channels < 1 || channels > 4 || width > (1 << 24) / channels ||
      height > (1 << 24)) {
    snprintf(err, errn, "a %dx%d picture with %d channels cannot be written as PNG", width, height,
             channels);
    return -1;
  }
  size_t row = (size_t)width * (size_t)channels;
  size_t raw_len = (row + 1) * (size_t)height;
  uint8_t *raw = malloc(raw_len);
  uLongf zlen = compressBound((uLong)raw_len);
  uint8_t *z = malloc(zlen);
  uint8_t *png = malloc(8 + 25 + 12 + zlen + 12);
  if (!raw || !z || !png) {
    free(raw), free(z), free(png);
    snprintf(err, errn, "out of memory encoding a %dx%d PNG", width, height);
    return -1;
  }
  for (int y = 0; y < height; y++) {
    raw[(size_t)y * (row + 1)] = 0; /* filter: none */
    memcpy(raw + (size_t)y * (row + 1) + 1, pixels + (size_t)y * row, row);
  }
  int zrc = compress2(z, &zlen, raw, (uLong)raw_len, 6);
  free(raw);
  if (zrc != Z_OK) {
    free(z), free(png);
    snprintf(err, errn, "zlib failed (%d) encoding a PNG", zrc);
    return -1;
  }
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  size_t pos = 8;
  memcpy(png, sig, 8);
  uint8_t ihdr[13];
  be32(ihdr, (uint32_t)width);
  be32(ihdr + 4, (uint32_t)height);
  ihdr[8] = 8; /* bit depth */
  ihdr[9] = color_type[channels];
  ihdr[10] = ihdr[11] = ihdr[12] = 0; /* deflate, adaptive filtering, no interlace */
  chunk(png, &pos, "IHDR", ihdr, 13);
  chunk(png, &pos, "IDAT", z, (uint32_t)zlen);
  chunk(png, &pos, "IEND", NULL, 0);
  free(z);
  *out = png;
  *outlen = pos;
  return 0;
}

int acq_png_write(const char *path, const uint8_t *pixels, int width, int height, int channels,
                  char *err, size_t errn) {
  uint8_t *png = NULL;
  size_t len = 0;
  char msg[256];
  if (acq_png_encode(pixels, width, height, channels, &png, &len, msg, sizeof msg)) {
    snprintf(err, errn, "%s: %s", path, msg);
    return -1;
  }
  acq_part part = {png, len};
  int rc = acq_atomic_write(path, &part, 1, err, errn);
  free(png);
  return rc;
}
