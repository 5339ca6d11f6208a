/*
 * safetensors.c -- the safetensors reader and writer (see safetensors.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "safetensors.h"

#include "atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct { const char *name; int dtype; } DTYPES[] = {
  {"F32", ATC_F32}, {"F64", ATC_F64}, {"I64", ATC_I64}, {"I32", ATC_I32},
  {"U8", ATC_U8},   {"BOOL", ATC_BOOL}, {"F16", ATC_F16}, {"BF16", ATC_BF16},
};
static const int DTYPE_BYTES[ATC_DTYPE_COUNT] = {4, 8, 8, 4, 1, 1, 2, 2};

const char *acq_st_dtype_name(int dtype) {
  for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
    if (DTYPES[i].dtype == dtype) return DTYPES[i].name;
  return "?";
}

int acq_st_dtype_parse(const char *s) {
  for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
    if (strcmp(DTYPES[i].name, s) == 0) return DTYPES[i].dtype;
  return -1;
}

static int fail(char *err, size_t errn, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errn, fmt, ap);
  va_end(ap);
  return -1;
}

static char *dupstr(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static void free_parsed(acq_st_file *f) {
  for (int i = 0; i < f->n; i++) free(f->e[i].name);
  free(f->e);
  for (int i = 0; i < f->nmeta; i++) {
    free(f->meta_key[i]);
    free(f->meta_val[i]);
  }
  free(f->meta_key);
  free(f->meta_val);
  f->e = NULL;
  f->meta_key = f->meta_val = NULL;
  f->n = f->nmeta = 0;
}

/* Reads one tensor entry; returns 0 or fails with a message naming it. */
static int parse_entry(const char *name, json_t *v, uint64_t data_size,
                       acq_st_entry *e, char *err, size_t errn) {
  if (!json_is_object(v))
    return fail(err, errn, "tensor '%s': entry is not a JSON object", name);
  json_t *jd = json_object_get(v, "dtype");
  json_t *js = json_object_get(v, "shape");
  json_t *jo = json_object_get(v, "data_offsets");
  if (!json_is_string(jd))
    return fail(err, errn, "tensor '%s': missing or non-string \"dtype\"", name);
  e->dtype = acq_st_dtype_parse(json_string_value(jd));
  if (e->dtype < 0)
    return fail(err, errn, "tensor '%s': unknown dtype \"%.32s\" (known: F32 F64 F16 BF16 I64 I32 U8 BOOL)",
                name, json_string_value(jd));
  if (!json_is_array(js))
    return fail(err, errn, "tensor '%s': missing or non-array \"shape\"", name);
  size_t nd = json_array_size(js);
  if (nd > ATC_MAX_DIMS)
    return fail(err, errn, "tensor '%s': %zu dimensions (at most %d)", name, nd, ATC_MAX_DIMS);
  e->ndim = (int)nd;
  uint64_t numel = 1;
  int overflow = 0;
  for (size_t d = 0; d < nd; d++) {
    json_t *s = json_array_get(js, d);
    if (!json_is_integer(s) || json_integer_value(s) < 0)
      return fail(err, errn, "tensor '%s': shape entry %zu is not a non-negative integer", name, d);
    uint64_t sz = (uint64_t)json_integer_value(s);
    e->shape[d] = (int64_t)sz;
    if (sz != 0 && numel > UINT64_MAX / sz) overflow = 1;
    else numel *= sz;
  }
  if (!json_is_array(jo) || json_array_size(jo) != 2 ||
      !json_is_integer(json_array_get(jo, 0)) || !json_is_integer(json_array_get(jo, 1)))
    return fail(err, errn, "tensor '%s': \"data_offsets\" is not a pair of integers", name);
  json_int_t b = json_integer_value(json_array_get(jo, 0));
  json_int_t en = json_integer_value(json_array_get(jo, 1));
  if (b < 0 || en < b)
    return fail(err, errn, "tensor '%s': bad data_offsets [%lld, %lld]", name, (long long)b, (long long)en);
  e->begin = (uint64_t)b;
  e->end = (uint64_t)en;
  if (e->end > data_size)
    return fail(err, errn, "tensor '%s': data_offsets [%llu, %llu] overrun the data section (%llu bytes; file truncated?)",
                name, (unsigned long long)e->begin, (unsigned long long)e->end,
                (unsigned long long)data_size);
  uint64_t isz = (uint64_t)DTYPE_BYTES[e->dtype];
  if (overflow || numel > UINT64_MAX / isz || numel * isz != e->end - e->begin)
    return fail(err, errn, "tensor '%s': %llu bytes at data_offsets, but a %s tensor of this shape needs %llu",
                name, (unsigned long long)(e->end - e->begin), acq_st_dtype_name(e->dtype),
                overflow ? 0ull : (unsigned long long)(numel * isz));
  return 0;
}

static int cmp_begin(const void *a, const void *b) {
  const acq_st_entry *x = *(acq_st_entry *const *)a, *y = *(acq_st_entry *const *)b;
  return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

static int parse_meta(json_t *m, acq_st_file *f, char *err, size_t errn) {
  if (!json_is_object(m)) return fail(err, errn, "\"__metadata__\" is not a JSON object");
  size_t n = json_object_size(m);
  f->meta_key = calloc(n ? n : 1, sizeof(char *));
  f->meta_val = calloc(n ? n : 1, sizeof(char *));
  if (!f->meta_key || !f->meta_val) return fail(err, errn, "out of memory");
  const char *k;
  json_t *v;
  json_object_foreach(m, k, v) {
    if (!json_is_string(v))
      return fail(err, errn, "__metadata__ '%s' is not a string", k);
    f->meta_key[f->nmeta] = dupstr(k);
    f->meta_val[f->nmeta] = dupstr(json_string_value(v));
    f->nmeta++;
    if (!f->meta_key[f->nmeta - 1] || !f->meta_val[f->nmeta - 1])
      return fail(err, errn, "out of memory");
  }
  return 0;
}

int acq_st_parse_header(const char *js, size_t len, uint64_t data_size,
                        acq_st_file *f, char *err, size_t errn) {
  memset(f, 0, sizeof *f);
  json_error_t je;
  json_t *root = json_loadb(js, len, JSON_REJECT_DUPLICATES, &je);
  if (!root)
    return fail(err, errn, "header is not valid JSON (line %d, column %d: %s)",
                je.line, je.column, je.text);
  int rc = -1;
  acq_st_entry **order = NULL;
  if (!json_is_object(root)) {
    fail(err, errn, "header is not a JSON object");
    goto done;
  }
  size_t n = json_object_size(root);
  f->e = calloc(n ? n : 1, sizeof *f->e);
  if (!f->e) { fail(err, errn, "out of memory"); goto done; }
  const char *k;
  json_t *v;
  json_object_foreach(root, k, v) {
    if (strcmp(k, "__metadata__") == 0) {
      if (parse_meta(v, f, err, errn)) goto done;
      continue;
    }
    acq_st_entry *e = &f->e[f->n];
    if (parse_entry(k, v, data_size, e, err, errn)) goto done;
    e->name = dupstr(k);
    if (!e->name) { fail(err, errn, "out of memory"); goto done; }
    f->n++;
  }
  /* no two tensors may share bytes */
  order = malloc((f->n ? f->n : 1) * sizeof *order);
  if (!order) { fail(err, errn, "out of memory"); goto done; }
  for (int i = 0; i < f->n; i++) order[i] = &f->e[i];
  qsort(order, f->n, sizeof *order, cmp_begin);
  acq_st_entry *reach = NULL; /* the entry reaching furthest so far */
  for (int i = 0; i < f->n; i++) {
    acq_st_entry *e = order[i];
    if (reach && e->end > e->begin && e->begin < reach->end) {
      fail(err, errn, "tensors '%s' and '%s' overlap (data_offsets [%llu, %llu] and [%llu, %llu])",
           reach->name, e->name,
           (unsigned long long)reach->begin, (unsigned long long)reach->end,
           (unsigned long long)e->begin, (unsigned long long)e->end);
      goto done;
    }
    if (!reach || e->end > reach->end) reach = e;
  }
  rc = 0;
done:
  free(order);
  json_decref(root);
  if (rc) free_parsed(f);
  return rc;
}

/* n bytes at offset off of fd into buf; a file that ends early (another
 * process truncated it) is an error. */
static int read_at(int fd, unsigned char *buf, size_t n, size_t off, const char *path, char *err, size_t errn) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, buf + got, n - got, (off_t)(off + got));
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r < 0) return fail(err, errn, "%s: %s", path, strerror(errno));
    if (r == 0)
      return fail(err, errn, "%s: the file shrank to %zu bytes while it was read", path, off + got);
    got += (size_t)r;
  }
  return 0;
}

/* Reads, not maps: a file that another process truncates under a mapping
 * kills the reader with SIGBUS; a short read is an error instead. With
 * header_only, only the 8-byte length and the header are read. */
static int open_file(const char *path, acq_st_file *f, int header_only, char *err, size_t errn) {
  memset(f, 0, sizeof *f);
  /* O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below) */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return fail(err, errn, "%s: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    return fail(err, errn, "%s: not a regular file", path);
  }
  size_t size = (size_t)sb.st_size;
  unsigned char len8[8];
  if (size < 8 || read_at(fd, len8, 8, 0, path, err, errn)) {
    close(fd);
    return size < 8 ? fail(err, errn, "%s: %zu bytes, too short for a safetensors file (truncated?)", path, size)
                    : -1;
  }
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | len8[i];
  if (hlen > ACQ_ST_MAX_HEADER || hlen > size - 8) {
    close(fd);
    return fail(err, errn, "%s: header length %llu does not fit in the file (%zu bytes; truncated, or not safetensors)",
                path, (unsigned long long)hlen, size);
  }
  size_t keep = header_only ? 8 + (size_t)hlen : size;
  unsigned char *map = malloc(keep);
  if (!map) {
    close(fd);
    return fail(err, errn, "%s: %zu bytes: out of memory", path, keep);
  }
  memcpy(map, len8, 8);
  int rc = read_at(fd, map + 8, keep - 8, 8, path, err, errn);
  close(fd);
  char msg[ACQ_ST_ERR];
  if (!rc && acq_st_parse_header((const char *)map + 8, (size_t)hlen, size - 8 - hlen, f, msg, sizeof msg))
    rc = fail(err, errn, "%s: %s", path, msg);
  if (rc) {
    free(map);
    return rc;
  }
  f->map = map;
  f->map_size = keep;
  f->data = header_only ? NULL : map + 8 + hlen;
  f->data_size = size - 8 - hlen;
  return 0;
}

int acq_st_open(const char *path, acq_st_file *f, char *err, size_t errn) {
  return open_file(path, f, 0, err, errn);
}

int acq_st_open_header(const char *path, acq_st_file *f, char *err, size_t errn) {
  return open_file(path, f, 1, err, errn);
}

void acq_st_close(acq_st_file *f) {
  if (!f) return;
  free_parsed(f);
  free((void *)f->map);
  f->map = NULL;
  f->data = NULL;
}

int acq_st_find(const acq_st_file *f, const char *name) {
  for (int i = 0; i < f->n; i++)
    if (strcmp(f->e[i].name, name) == 0) return i;
  return -1;
}

/* ---- writing ------------------------------------------------------------ */

int acq_st_write(const char *path, const acq_st_out *t, int n,
                 const char *const *mk, const char *const *mv, int nmeta,
                 char *err, size_t errn) {
  json_t *root = json_object();
  if (!root) return fail(err, errn, "%s: out of memory", path);
  int rc = -1;
  char *hdr = NULL;
  acq_part *parts = NULL;
  if (nmeta > 0) {
    json_t *m = json_object();
    json_object_set_new(root, "__metadata__", m);
    for (int i = 0; i < nmeta; i++) json_object_set_new(m, mk[i], json_string(mv[i]));
  }
  uint64_t off = 0;
  for (int i = 0; i < n; i++) {
    if (t[i].dtype < 0 || t[i].dtype >= ATC_DTYPE_COUNT) {
      fail(err, errn, "%s: tensor '%s' has a dtype safetensors cannot store", path, t[i].name);
      goto done;
    }
    if (strcmp(t[i].name, "__metadata__") == 0 || json_object_get(root, t[i].name)) {
      fail(err, errn, "%s: tensor name '%s' is reserved or repeated", path, t[i].name);
      goto done;
    }
    json_t *e = json_object(), *shape = json_array();
    for (int d = 0; d < t[i].ndim; d++) json_array_append_new(shape, json_integer(t[i].shape[d]));
    json_object_set_new(e, "dtype", json_string(acq_st_dtype_name(t[i].dtype)));
    json_object_set_new(e, "shape", shape);
    json_t *o = json_array();
    json_array_append_new(o, json_integer((json_int_t)off));
    json_array_append_new(o, json_integer((json_int_t)(off + t[i].nbytes)));
    json_object_set_new(e, "data_offsets", o);
    json_object_set_new(root, t[i].name, e);
    off += t[i].nbytes;
  }
  hdr = json_dumps(root, JSON_COMPACT);
  if (!hdr) { fail(err, errn, "%s: cannot encode the header", path); goto done; }
  size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;
  {
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";
    parts = malloc(sizeof *parts * (size_t)(n + 3));
    if (!parts) { fail(err, errn, "%s: out of memory", path); goto done; }
    parts[0] = (acq_part){len8, 8};
    parts[1] = (acq_part){hdr, hl};
    parts[2] = (acq_part){spaces, padded - hl};
    for (int i = 0; i < n; i++) parts[3 + i] = (acq_part){t[i].data, (size_t)t[i].nbytes};
    rc = acq_atomic_write(path, parts, n + 3, err, errn) ? -1 : 0;
  }
done:
  free(parts);
  free(hdr);
  json_decref(root);
  return rc;
}
