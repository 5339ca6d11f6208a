/*
 * png_write.c -- PNG pictures written with libpng (the library acq already
 * links to read PNG files), into memory, then to disk atomically.
 * Scanlines are written unfiltered: pictures are small and filtering buys
 * little for them.
 */
#include "png_write.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic.h"

typedef struct membuf {
  uint8_t *p;
  size_t n, cap;
  int oom;
} membuf;

static void mem_write(png_structp png, png_bytep data, png_size_t len) {
  membuf *b = png_get_io_ptr(png);
  if (b->oom) return;
  if (b->n + len > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + len) cap *= 2;
    uint8_t *q = realloc(b->p, cap);
    if (!q) {
      b->oom = 1;
      png_error(png, "out of memory");
    }
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->n, data, len);
  b->n += len;
}

static void mem_flush(png_structp png) { (void)png; }

typedef struct errbuf {
  char msg[200];
} errbuf;

static void on_error(png_structp png, png_const_charp msg) {
  errbuf *e = png_get_error_ptr(png);
  snprintf(e->msg, sizeof e->msg, "%s", msg);
  png_longjmp(png, 1);
}
static void on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

int acq_png_encode(const uint8_t *pixels, int width, int height, int channels, uint8_t **out,
                   size_t *outlen, char *err, size_t errn) {
  static const int color_type[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                    PNG_COLOR_TYPE_RGB_ALPHA};
  *out = NULL;
  *outlen = 0;
  if (width <= 0 || height <= 0 || channels < 1 || channels > 4 || width > (1 << 24) / channels ||
      height > (1 << 24)) {
    snprintf(err, errn, "a %dx%d picture with %d channels cannot be written as PNG", width, height,
             channels);
    return -1;
  }
  errbuf e = {""};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &e, on_error, on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  membuf b = {0};
  png_bytep *volatile rows = NULL;
  if (!png || !info) {
    png_destroy_write_struct(&png, &info);
    snprintf(err, errn, "out of memory encoding a %dx%d PNG", width, height);
    return -1;
  }
  if (setjmp(png_jmpbuf(png))) {
    snprintf(err, errn, "libpng: %s", e.msg);
    png_destroy_write_struct(&png, &info);
    free(b.p);
    free(rows);
    return -1;
  }
  png_set_write_fn(png, &b, mem_write, mem_flush);
  png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, color_type[channels],
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_NONE);
  png_set_compression_level(png, 6);
  rows = malloc(sizeof(png_bytep) * (size_t)height);
  if (!rows) png_error(png, "out of memory");
  size_t stride = (size_t)width * (size_t)channels;
  for (int y = 0; y < height; y++) rows[y] = (png_bytep)(pixels + (size_t)y * stride);
  png_set_rows(png, info, rows);
  png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
  png_destroy_write_struct(&png, &info);
  free(rows);
  *out = b.p;
  *outlen = b.n;
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
