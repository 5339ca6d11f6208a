/*
 * zipcheck.c -- see zipcheck.h. PKWARE's APPNOTE: end of central directory
 * (EOCD, 0x06054b50), zip64 EOCD locator (0x07064b50) and record
 * (0x06064b50), central directory headers (0x02014b50) with their zip64
 * extra field (0x0001), local file headers (0x04034b50).
 */
#include "zipcheck.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static int fail(char *err, size_t errn, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errn, fmt, ap);
  va_end(ap);
  return -1;
}

static uint64_t le(const uint8_t *p, int k) {
  uint64_t v = 0;
  for (int i = k - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

typedef struct Name {
  const uint8_t *s;
  size_t n;
} Name;

static int cmp_name(const void *a, const void *b) {
  const Name *x = a, *y = b;
  size_t m = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, m);
  return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* The CRC-32 of a deflated member, inflating at most `cap` bytes. */
static int inflated_crc(const uint8_t *src, uint64_t len, uint64_t cap, unsigned long *crc, uint64_t *out) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) return -1;
  unsigned char buf[65536];
  *crc = crc32(0L, Z_NULL, 0);
  *out = 0;
  z.next_in = (Bytef *)src;
  uint64_t left = len;
  int rc;
  do {
    if (z.avail_in == 0 && left > 0) { /* fed in pieces zlib's uInt can take */
      z.avail_in = left > (1u << 30) ? (1u << 30) : (uInt)left;
      left -= z.avail_in;
    }
    z.next_out = buf;
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) break;
    size_t got = sizeof buf - z.avail_out;
    *out += got;
    if (*out > cap) break;
    *crc = crc32(*crc, buf, (uInt)got);
  } while (rc != Z_STREAM_END);
  inflateEnd(&z);
  return rc == Z_STREAM_END && *out <= cap ? 0 : -1;
}

int acq_zip_check(const uint8_t *p, size_t n, uint64_t max_inflated, char *err, size_t errn) {
  if (n < 22) return fail(err, errn, "zip: %zu bytes, too short for an archive", n);
  size_t eocd = (size_t)-1;
  size_t lo = n > 22 + 65535 ? n - 22 - 65535 : 0;
  for (size_t i = n - 22 + 1; i-- > lo;)
    if (le(p + i, 4) == 0x06054b50) {
      eocd = i;
      break;
    }
  if (eocd == (size_t)-1) return fail(err, errn, "zip: no end of central directory (truncated?)");
  uint64_t count = le(p + eocd + 10, 2), cd_size = le(p + eocd + 12, 4), cd_off = le(p + eocd + 16, 4);
  if (count == 0xffff || cd_size == 0xffffffff || cd_off == 0xffffffff) { /* zip64 */
    if (eocd < 20 || le(p + eocd - 20, 4) != 0x07064b50) return fail(err, errn, "zip: zip64 locator missing");
    uint64_t rec = le(p + eocd - 20 + 8, 8);
    if (eocd < 20 + 56 || rec > eocd - 20 - 56 || le(p + rec, 4) != 0x06064b50)
      return fail(err, errn, "zip: zip64 record outside the file");
    count = le(p + rec + 32, 8), cd_size = le(p + rec + 40, 8), cd_off = le(p + rec + 48, 8);
  }
  if (cd_off > n || cd_size > n - cd_off) return fail(err, errn, "zip: central directory outside the file");
  if (count > cd_size / 46) return fail(err, errn, "zip: %llu members cannot fit in the central directory",
                                        (unsigned long long)count);
  Name *names = calloc(count ? count : 1, sizeof *names);
  if (!names) return fail(err, errn, "zip: out of memory");
  const uint8_t *q = p + cd_off, *end = p + cd_off + cd_size;
  int rc = -1;
  for (uint64_t i = 0; i < count; i++) {
    if (end - q < 46 || le(q, 4) != 0x02014b50) {
      fail(err, errn, "zip: central directory entry %llu is damaged", (unsigned long long)i);
      goto done;
    }
    unsigned method = (unsigned)le(q + 10, 2);
    unsigned long crc = (unsigned long)le(q + 16, 4);
    uint64_t csize = le(q + 20, 4), usize = le(q + 24, 4), off = le(q + 42, 4);
    size_t nl = (size_t)le(q + 28, 2), xl = (size_t)le(q + 30, 2), cl = (size_t)le(q + 32, 2);
    if ((size_t)(end - q) < 46 + nl + xl + cl) {
      fail(err, errn, "zip: central directory entry %llu runs past its end", (unsigned long long)i);
      goto done;
    }
    const uint8_t *name = q + 46;
    for (const uint8_t *x = name + nl; x + 4 <= name + nl + xl;) { /* zip64 sizes and offset */
      unsigned id = (unsigned)le(x, 2), len = (unsigned)le(x + 2, 2);
      const uint8_t *v = x + 4, *ve = v + len;
      if (ve > name + nl + xl) break;
      if (id == 1) {
        if (usize == 0xffffffff && v + 8 <= ve) usize = le(v, 8), v += 8;
        if (csize == 0xffffffff && v + 8 <= ve) csize = le(v, 8), v += 8;
        if (off == 0xffffffff && v + 8 <= ve) off = le(v, 8);
      }
      x = ve;
    }
    names[i].s = name, names[i].n = nl;
    if (method != 0 && method != 8) {
      fail(err, errn, "zip: member '%.*s' uses compression method %u (only stored and deflated are read)",
           (int)nl, name, method);
      goto done;
    }
    int bomb = method == 8 && usize > (1u << 20) && (usize - (1u << 20)) / 4 > csize; /* > 4x + 1 MiB */
    if (usize > max_inflated || bomb || (method == 0 && usize != csize)) {
      fail(err, errn, "zip: member '%.*s' would inflate to %llu bytes from %llu (a zip bomb?); refused",
           (int)nl, name, (unsigned long long)usize, (unsigned long long)csize);
      goto done;
    }
    if (off > n - 30 || le(p + off, 4) != 0x04034b50) {
      fail(err, errn, "zip: member '%.*s' has no local header inside the file", (int)nl, name);
      goto done;
    }
    uint64_t data = off + 30 + le(p + off + 26, 2) + le(p + off + 28, 2);
    if (data > n || csize > n - data) {
      fail(err, errn, "zip: member '%.*s' runs past the end of the file (truncated?)", (int)nl, name);
      goto done;
    }
    unsigned long got;
    if (method == 0) {
      got = crc32(0L, Z_NULL, 0);
      for (uint64_t k = 0; k < csize;) {
        uInt step = csize - k > (1u << 30) ? (1u << 30) : (uInt)(csize - k);
        got = crc32(got, p + data + k, step);
        k += step;
      }
    } else {
      uint64_t out = 0;
      if (inflated_crc(p + data, csize, usize, &got, &out) || out != usize) {
        fail(err, errn, "zip: member '%.*s' does not inflate to its %llu bytes (corrupted or a zip bomb)", (int)nl,
             name, (unsigned long long)usize);
        goto done;
      }
    }
    /* a stored CRC of 0 with data: written without CRCs (torch's
     * serialization config can turn them off), nothing to check against */
    if (got != crc && !(crc == 0 && csize > 0)) {
      fail(err, errn, "zip: member '%.*s' is corrupted (CRC-32 %08lx, the archive says %08lx)", (int)nl, name, got,
           crc);
      goto done;
    }
    q += 46 + nl + xl + cl;
  }
  qsort(names, count, sizeof *names, cmp_name);
  for (uint64_t i = 1; i < count; i++)
    if (cmp_name(&names[i - 1], &names[i]) == 0) {
      fail(err, errn, "zip: member '%.*s' appears twice", (int)names[i].n, names[i].s);
      goto done;
    }
  rc = 0;
done:
  free(names);
  return rc;
}
