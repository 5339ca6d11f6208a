/*
 * imgdec.c -- JPEG (libjpeg-turbo) and PNG (libpng) decoding to 8-bit RGB,
 * the way PIL's Image.open(...).convert("RGB") sees them: grey is repeated
 * over three channels, alpha is dropped, palettes are expanded, CMYK JPEGs
 * are converted as PIL does, a truncated JPEG is an error, 16-bit grayscale
 * PNG samples clip at 255 (PIL's mode "I") and other 16-bit PNG samples keep
 * their high byte.
 */
#include "imgdec.h"

#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

/* ---- JPEG ---------------------------------------------------------------- */

struct jerr {
  struct jpeg_error_mgr pub;
  jmp_buf jb;
  char msg[JMSG_LENGTH_MAX];
};

static void jerr_exit(j_common_ptr c) {
  struct jerr *e = (struct jerr *)c->err;
  (*c->err->format_message)(c, e->msg);
  longjmp(e->jb, 1);
}

static void jerr_silent(j_common_ptr c, int level) {
  /* warnings (corrupt but decodable data) are not errors, as in PIL; data
   * that ends early is (PIL: "image file is truncated"), where libjpeg would
   * fill the rest of the image with grey */
  /* only while rows are missing: a file that lacks just its end marker
   * after the last row decodes, as PIL decodes it */
  if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF && c->is_decompressor &&
      ((j_decompress_ptr)c)->output_scanline < ((j_decompress_ptr)c)->output_height) {
    struct jerr *e = (struct jerr *)c->err;
    snprintf(e->msg, sizeof e->msg, "the file is truncated (its data end before the image does)");
    longjmp(e->jb, 1);
  }
}

static int decode_jpeg(const uint8_t *data, size_t n, uint64_t max_pixels, acq_image *img, char *err,
                       size_t errn) {
  struct jpeg_decompress_struct d;
  struct jerr e;
  uint8_t *volatile pix = NULL;
  uint8_t *volatile row = NULL;
  d.err = jpeg_std_error(&e.pub);
  e.pub.error_exit = jerr_exit;
  e.pub.emit_message = jerr_silent;
  if (setjmp(e.jb)) {
    snprintf(err, errn, "JPEG: %s", e.msg);
    jpeg_destroy_decompress(&d);
    free(pix);
    free(row);
    return -1;
  }
  jpeg_create_decompress(&d);
  jpeg_mem_src(&d, data, (unsigned long)n);
  jpeg_read_header(&d, TRUE);
  if ((uint64_t)d.image_width * d.image_height > max_pixels) {
    snprintf(err, errn, "%ux%u pixels is above the limit of %llu (a decompression bomb?)", d.image_width,
             d.image_height, (unsigned long long)max_pixels);
    jpeg_destroy_decompress(&d);
    return -1;
  }
  int cmyk = d.jpeg_color_space == JCS_CMYK || d.jpeg_color_space == JCS_YCCK;
  d.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  jpeg_start_decompress(&d);
  int w = (int)d.output_width, h = (int)d.output_height, c = d.output_components;
  if (w <= 0 || h <= 0 || (size_t)w * (size_t)h > ((size_t)1 << 30)) {
    snprintf(err, errn, "JPEG: unsupported size %dx%d", w, h);
    jpeg_destroy_decompress(&d);
    return -1;
  }
  pix = malloc((size_t)w * h * 3);
  row = malloc((size_t)w * c);
  if (!pix || !row) {
    snprintf(err, errn, "out of memory for a %dx%d image", w, h);
    jpeg_destroy_decompress(&d);
    free(pix);
    free(row);
    return -1;
  }
  /* PIL assumes Adobe's convention, inverted CMYK, for every CMYK JPEG */
  int inverted = cmyk;
  while (d.output_scanline < d.output_height) {
    JSAMPROW r = row;
    int y = (int)d.output_scanline;
    jpeg_read_scanlines(&d, &r, 1);
    uint8_t *o = pix + (size_t)y * w * 3;
    if (!cmyk) {
      memcpy(o, row, (size_t)w * 3);
      continue;
    }
    for (int x = 0; x < w; x++) {
      int v[4];
      for (int k = 0; k < 4; k++) v[k] = inverted ? 255 - row[4 * x + k] : row[4 * x + k];
      /* PIL's cmyk2rgb: nk = 255 - k; channel = nk - c * nk / 255 (rounded) */
      int nk = 255 - v[3];
      for (int k = 0; k < 3; k++) {
        int t = v[k] * nk + 128;
        int ch = nk - ((t + (t >> 8)) >> 8);
        o[3 * x + k] = (uint8_t)(ch < 0 ? 0 : ch);
      }
    }
  }
  jpeg_finish_decompress(&d);
  jpeg_destroy_decompress(&d);
  free(row);
  img->pixels = pix;
  img->width = w;
  img->height = h;
  return 0;
}

/* ---- PNG ----------------------------------------------------------------- */

struct pread {
  const uint8_t *p;
  size_t n, at;
};

static void png_read_mem(png_structp png, png_bytep out, png_size_t len) {
  struct pread *r = png_get_io_ptr(png);
  if (len > r->n - r->at) png_error(png, "truncated file");
  memcpy(out, r->p + r->at, len);
  r->at += len;
}

static char png_msg[256]; /* written just before the longjmp, read right after */

static void png_err(png_structp png, png_const_charp m) {
  snprintf(png_msg, sizeof png_msg, "%s", m);
  png_longjmp(png, 1);
}

static void png_warn(png_structp png, png_const_charp m) {
  (void)png;
  (void)m;
}

static int decode_png(const uint8_t *data, size_t n, uint64_t max_pixels, acq_image *img, char *err,
                      size_t errn) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, png_err, png_warn);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  uint8_t *volatile pix = NULL;
  uint8_t *volatile raw = NULL; /* pix, or the 16-bit grey samples */
  png_bytep *volatile rows = NULL;
  if (!png || !info) {
    snprintf(err, errn, "out of memory");
    png_destroy_read_struct(&png, &info, NULL);
    return -1;
  }
  struct pread r = {data, n, 0};
  if (setjmp(png_jmpbuf(png))) {
    snprintf(err, errn, "PNG: %s", png_msg);
    png_destroy_read_struct(&png, &info, NULL);
    if (raw != pix) free(raw);
    free(pix);
    free(rows);
    return -1;
  }
  png_set_read_fn(png, &r, png_read_mem);
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  if ((uint64_t)w * h > max_pixels) {
    snprintf(err, errn, "%lux%lu pixels is above the limit of %llu (a decompression bomb?)", (unsigned long)w,
             (unsigned long)h, (unsigned long long)max_pixels);
    png_destroy_read_struct(&png, &info, NULL);
    return -1;
  }
  int ct = png_get_color_type(png, info);
  /* 16-bit grayscale is PIL's mode "I": converted to RGB it clips at 255
   * (40000 -> 255, 200 -> 200); other 16-bit images keep the high byte
   * (PIL's "RGB;16B", "LA;16B") */
  int gray16 = ct == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) == 16;
  if (png_get_bit_depth(png, info) == 16 && !gray16) png_set_strip_16(png);
  if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (ct == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (!gray16 && (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA)) png_set_gray_to_rgb(png);
  png_set_strip_alpha(png);
  if (!gray16 && png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png), png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  int want = gray16 ? 1 : 3; /* channels after the transforms above */
  if (w == 0 || h == 0 || (size_t)w * h > ((size_t)1 << 30) || png_get_channels(png, info) != want) {
    snprintf(err, errn, "PNG: unsupported %ux%u image with %d channels", (unsigned)w, (unsigned)h,
             (int)png_get_channels(png, info));
    png_destroy_read_struct(&png, &info, NULL);
    return -1;
  }
  size_t row_bytes = (size_t)w * (gray16 ? 2 : 3);
  pix = malloc((size_t)w * h * 3);
  raw = gray16 ? malloc(row_bytes * h) : pix; /* 16-bit samples, big-endian as PNG stores them */
  rows = malloc(sizeof(png_bytep) * h);
  if (!pix || !raw || !rows) png_error(png, "out of memory");
  for (png_uint_32 y = 0; y < h; y++) rows[y] = raw + (size_t)y * row_bytes;
  png_read_image(png, rows);
  png_read_end(png, NULL);
  if (gray16) {
    for (size_t i = 0; i < (size_t)w * h; i++) {
      unsigned v = ((unsigned)raw[2 * i] << 8) | raw[2 * i + 1];
      pix[3 * i] = pix[3 * i + 1] = pix[3 * i + 2] = (uint8_t)(v > 255 ? 255 : v);
    }
    free(raw);
  }
  png_destroy_read_struct(&png, &info, NULL);
  free(rows);
  img->pixels = pix;
  img->width = (int)w;
  img->height = (int)h;
  return 0;
}

int acq_image_decode(const uint8_t *data, size_t n, uint64_t max_pixels, acq_image *img, char *err,
                     size_t errn) {
  img->pixels = NULL;
  img->width = img->height = 0;
  if (max_pixels == 0) max_pixels = ACQ_IMAGE_MAX_PIXELS;
  if (n >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
    return decode_jpeg(data, n, max_pixels, img, err, errn);
  if (n >= 8 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0) return decode_png(data, n, max_pixels, img, err, errn);
  snprintf(err, errn, "neither a JPEG nor a PNG file");
  return -1;
}

/* ---- resizing as PIL's Image.resize(size, BILINEAR) ---------------------- */
/* The same algorithm as Pillow's Resample.c: a triangle filter widened by the
 * downscale factor (antialiasing), weights normalised per output pixel and
 * rounded to 22-bit fixed point, a horizontal pass over the rows the vertical
 * pass needs, rounded to 8 bits, then the vertical pass. Bit-exact with PIL
 * is the point: it is what torchvision's ImageNet evaluation sees. */

#define PIL_PRECISION_BITS (32 - 8 - 2)

static double triangle(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

/* bounds[2*o] = first input index, bounds[2*o+1] = count; k[o*ksize + j]
 * fixed-point weights. Returns ksize, or 0 when out of memory. */
static int pil_coeffs(int in_size, int out_size, int **boundsp, int32_t **kp) {
  double scale = (double)(float)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
  double support = 1.0 * filterscale;
  int ksize = (int)ceil(support) * 2 + 1;
  double *kk = malloc(sizeof(double) * (size_t)out_size * ksize);
  int32_t *k = malloc(sizeof(int32_t) * (size_t)out_size * ksize);
  int *bounds = malloc(sizeof(int) * 2 * (size_t)out_size);
  if (!kk || !k || !bounds) {
    free(kk), free(k), free(bounds);
    return 0;
  }
  for (int xx = 0; xx < out_size; xx++) {
    double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
    int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
    if (xmin < 0) xmin = 0;
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double *w = kk + (size_t)xx * ksize;
    int x = 0;
    for (; x < xmax; x++) {
      w[x] = triangle((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (x = 0; x < xmax; x++)
      if (ww != 0.0) w[x] /= ww;
    for (; x < ksize; x++) w[x] = 0;
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
  for (size_t i = 0; i < (size_t)out_size * ksize; i++)
    k[i] = (int32_t)(kk[i] < 0 ? -0.5 + kk[i] * (1 << PIL_PRECISION_BITS) : 0.5 + kk[i] * (1 << PIL_PRECISION_BITS));
  free(kk);
  *boundsp = bounds;
  *kp = k;
  return ksize;
}

static uint8_t clip8(int64_t v) {
  if (v >= ((int64_t)1 << PIL_PRECISION_BITS << 8)) return 255;
  if (v <= 0) return 0;
  return (uint8_t)(v >> PIL_PRECISION_BITS);
}

int acq_resize_pil(const uint8_t *in, int w, int h, int c, uint8_t *out, int ow, int oh) {
  int *bh = NULL, *bv = NULL;
  int32_t *kh = NULL, *kv = NULL;
  int ksh = pil_coeffs(w, ow, &bh, &kh), ksv = ksh ? pil_coeffs(h, oh, &bv, &kv) : 0;
  if (!ksh || !ksv) {
    free(bh), free(kh);
    return -1;
  }
  int need_h = ow != w, need_v = oh != h;
  const uint8_t *src = in;
  int rows = h, first = 0;
  uint8_t *tmp = NULL;
  if (need_h) {
    first = bv[0];
    int last = bv[2 * oh - 2] + bv[2 * oh - 1];
    rows = last - first;
    tmp = malloc((size_t)rows * ow * c);
    if (!tmp) {
      free(bh), free(kh), free(bv), free(kv);
      return -1;
    }
    for (int y = 0; y < rows; y++) {
      const uint8_t *row = in + (size_t)(y + first) * w * c;
      for (int xx = 0; xx < ow; xx++) {
        int xmin = bh[2 * xx], n = bh[2 * xx + 1];
        const int32_t *k = kh + (size_t)xx * ksh;
        for (int ch = 0; ch < c; ch++) {
          int64_t ss = 1 << (PIL_PRECISION_BITS - 1);
          for (int x = 0; x < n; x++) ss += (int64_t)row[(size_t)(x + xmin) * c + ch] * k[x];
          tmp[((size_t)y * ow + xx) * c + ch] = clip8(ss);
        }
      }
    }
    src = tmp;
  }
  if (need_v) {
    for (int yy = 0; yy < oh; yy++) {
      int ymin = bv[2 * yy] - (need_h ? first : 0), n = bv[2 * yy + 1];
      const int32_t *k = kv + (size_t)yy * ksv;
      for (int xx = 0; xx < ow; xx++)
        for (int ch = 0; ch < c; ch++) {
          int64_t ss = 1 << (PIL_PRECISION_BITS - 1);
          for (int y = 0; y < n; y++) ss += (int64_t)src[((size_t)(y + ymin) * ow + xx) * c + ch] * k[y];
          out[((size_t)yy * ow + xx) * c + ch] = clip8(ss);
        }
    }
  } else {
    memcpy(out, src, (size_t)oh * ow * c);
  }
  free(tmp), free(bh), free(kh), free(bv), free(kv);
  return 0;
}
