/***
 * l_data.c -- file formats from Lua: safetensors (src/data/safetensors.c).
 *
 *   acq.safetensors.load(path [, {prefix = "fp.", strip = true}])
 *       -> tensors (name -> Tensor), metadata (key -> string), names (list,
 *          file order)
 *   acq.safetensors.header(path) -> entries ({name, dtype, shape} list), metadata
 *   acq.safetensors.save(path, tensors [, metadata])   (atomic)
 *       tensors: name -> Tensor (written in sorted name order) or a list of
 *       {name, Tensor} pairs (written in list order).
 *   acq.read_file(path) -> the file's bytes as a string; gzip files are
 *       decompressed (zlib reads plain files unchanged)
 *   acq.decode_image(path) -> u8 tensor [H, W, 3]: a JPEG or PNG file as
 *       PIL's Image.open(path).convert("RGB") sees it (src/data/imgdec.c)
 *   acq.resize_image(img, h, w) -> u8 [h, w, C]: PIL's bilinear resize,
 *       bit for bit (torchvision's Resize on PIL images)
 *   acq.listdir(path) -> sorted names in the folder
 *   acq.frombytes(s, dtype, shape [, offset]) -> a new CPU tensor holding
 *       the bytes of s from offset (0-based) on, little-endian
 *
 * The mapped file lives in a userdata closed by __gc, so an error halfway
 * through a load leaks nothing and returns nothing half-loaded.
 *
 * @module acq.core.data
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "acqL.h"
#include "atomic.h"
#include "imgdec.h"
#include "png_write.h"
#include "safetensors.h"

#define ACQ_STFILE_MT "acq.SafetensorsFile"

static int stfile_gc(lua_State *L) {
  acq_st_file *f = luaL_checkudata(L, 1, ACQ_STFILE_MT);
  acq_st_close(f);
  return 0;
}

/* Opens path into a closable userdata left on the stack. */
#define ACQ_ST_CRC_KEY "crc32"
#define ACQ_ST_CRC_META_KEY "crc32_meta"

/* CRC-32 (zlib's) c continued over n more bytes, in pieces zlib's uInt can
 * take; start with crc32(0L, Z_NULL, 0). */
static unsigned long crc_update(unsigned long c, const unsigned char *p, uint64_t n) {
  while (n > 0) {
    uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
    c = crc32(c, p, k);
    p += k;
    n -= k;
  }
  return c;
}

/* The first element of a float buffer that is NaN or Inf, or -1. The
 * buffer may be unaligned (a tensor inside a file's data section). */
static int64_t first_nonfinite(const void *buf, int dtype, int64_t numel) {
  const unsigned char *p = buf;
  if (dtype == ATC_F32) {
    for (int64_t i = 0; i < numel; i++) {
      float x;
      memcpy(&x, p + 4 * i, 4);
      if (!isfinite(x)) return i;
    }
  } else if (dtype == ATC_F64) {
    for (int64_t i = 0; i < numel; i++) {
      double x;
      memcpy(&x, p + 8 * i, 8);
      if (!isfinite(x)) return i;
    }
  }
  return -1;
}

/* The CRC-32 of metadata entries (key NUL value NUL, in key order), the two
 * checksum keys left out: what "crc32_meta" holds, so the metadata are as
 * trusted as the tensors. */
typedef struct MetaEntry {
  const char *k, *v;
} MetaEntry;

static int cmp_meta(const void *a, const void *b) {
  return strcmp(((const MetaEntry *)a)->k, ((const MetaEntry *)b)->k);
}

static unsigned long meta_crc(const char *const *keys, const char *const *vals, int n) {
  MetaEntry stack[64], *e = n <= 64 ? stack : malloc(sizeof *e * (size_t)n);
  unsigned long c = crc32(0L, Z_NULL, 0);
  if (!e) return c ^ 0xffffffffUL; /* never matches a stored value by chance */
  int m = 0;
  for (int i = 0; i < n; i++)
    if (strcmp(keys[i], ACQ_ST_CRC_KEY) != 0 && strcmp(keys[i], ACQ_ST_CRC_META_KEY) != 0)
      e[m].k = keys[i], e[m].v = vals[i], m++;
  qsort(e, (size_t)m, sizeof *e, cmp_meta);
  for (int i = 0; i < m; i++) {
    c = crc_update(c, (const unsigned char *)e[i].k, strlen(e[i].k) + 1);
    c = crc_update(c, (const unsigned char *)e[i].v, strlen(e[i].v) + 1);
  }
  if (e != stack) free(e);
  return c;
}

/* header_only: the tensor data are not read, so only the metadata's own
 * checksum can be checked (the data's is, by every load). */
static acq_st_file *open_file(lua_State *L, const char *path, int header_only) {
  acq_st_file *f = lua_newuserdatauv(L, sizeof *f, 0);
  memset(f, 0, sizeof *f);
  if (luaL_newmetatable(L, ACQ_STFILE_MT)) {
    lua_pushcfunction(L, stfile_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, stfile_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_setmetatable(L, -2);
  char err[ACQ_ST_ERR];
  if ((header_only ? acq_st_open_header : acq_st_open)(path, f, err, sizeof err)) luaL_error(L, "%s", err);
  /* a file written with {checksum = true} carries the CRC-32 of its data
   * section; a mismatch means the bytes changed after writing */
  for (int i = 0; i < f->nmeta && !header_only; i++) {
    if (strcmp(f->meta_key[i], ACQ_ST_CRC_KEY) != 0) continue;
    char got[16];
    snprintf(got, sizeof got, "%08lx", crc_update(crc32(0L, Z_NULL, 0), f->data, f->data_size));
    if (strcmp(got, f->meta_val[i]) != 0)
      luaL_error(L, "%s: checksum mismatch (stored crc32 %s, computed %s): the file is corrupted", path,
                 f->meta_val[i], got);
  }
  for (int i = 0; i < f->nmeta; i++) {
    if (strcmp(f->meta_key[i], ACQ_ST_CRC_META_KEY) != 0) continue;
    char got[16];
    snprintf(got, sizeof got, "%08lx",
             meta_crc((const char *const *)f->meta_key, (const char *const *)f->meta_val, f->nmeta));
    if (strcmp(got, f->meta_val[i]) != 0)
      luaL_error(L, "%s: metadata checksum mismatch (stored crc32_meta %s, computed %s): its metadata were "
                 "changed after writing", path, f->meta_val[i], got);
  }
  return f;
}

static void push_meta(lua_State *L, const acq_st_file *f) {
  lua_createtable(L, 0, f->nmeta);
  for (int i = 0; i < f->nmeta; i++) {
    lua_pushstring(L, f->meta_val[i]);
    lua_setfield(L, -2, f->meta_key[i]);
  }
}

static void push_shape(lua_State *L, const acq_st_entry *e) {
  lua_createtable(L, e->ndim, 0);
  for (int d = 0; d < e->ndim; d++) {
    lua_pushinteger(L, e->shape[d]);
    lua_rawseti(L, -2, d + 1);
  }
}

/***
 * acq.safetensors.load(path [, {prefix = "fp.", strip = true, finite = false}]) -> tensors (name -> Tensor), metadata (key -> string), names (file order). A file written with a checksum is checked: a mismatch is an error naming the file. finite: a float tensor holding NaN or Inf is an error naming it (as save's finite).
 * @function load
 */
static int l_st_load(lua_State *L) {
  const char *path = acqL_checkpath(L, 1);
  const char *prefix = NULL;
  int strip = 1, finite = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "prefix");
    prefix = lua_tostring(L, -1); /* anchored in the options table */
    lua_pop(L, 1);
    strip = acqL_optbool(L, 2, "strip", 1);
    finite = acqL_optbool(L, 2, "finite", 0);
  }
  lua_settop(L, 2);
  acq_st_file *f = open_file(L, path, 0); /* 3 */
  size_t plen = prefix ? strlen(prefix) : 0;
  lua_newtable(L); /* 4: tensors */
  lua_newtable(L); /* 5: names   */
  int k = 0;
  for (int i = 0; i < f->n; i++) {
    const acq_st_entry *e = &f->e[i];
    if (prefix && strncmp(e->name, prefix, plen) != 0) continue;
    const char *key = strip ? e->name + plen : e->name;
    if (finite) {
      int64_t numel = 1;
      for (int d = 0; d < e->ndim; d++) numel *= e->shape[d];
      int64_t bad = first_nonfinite(f->data + e->begin, e->dtype, numel);
      if (bad >= 0)
        return luaL_error(L, "%s: tensor '%s' holds NaN or Inf (element %d)", path, e->name, (int)bad);
    }
    acqL_Tensor *b = acqL_newtensor(L);
    atc_status st;
    if (atc_from_buffer(&st, f->data + e->begin, e->shape, e->ndim, (atc_dtype)e->dtype, &b->h))
      return luaL_error(L, "%s: tensor '%s': %s", path, e->name, st.msg);
    acqL_done(L, b);
    lua_setfield(L, 4, key);
    lua_pushstring(L, key);
    lua_rawseti(L, 5, ++k);
  }
  push_meta(L, f); /* 6 */
  acq_st_close(f);
  lua_pushvalue(L, 4);
  lua_pushvalue(L, 6);
  lua_pushvalue(L, 5);
  return 3;
}

/***
 * acq.safetensors.header(path) -> entries ({name, dtype, shape, nbytes} in file order), metadata, without reading the tensor data.
 * @function header
 */
static int l_st_header(lua_State *L) {
  const char *path = acqL_checkpath(L, 1);
  lua_settop(L, 1);
  acq_st_file *f = open_file(L, path, 1);
  lua_createtable(L, f->n, 0);
  for (int i = 0; i < f->n; i++) {
    const acq_st_entry *e = &f->e[i];
    lua_createtable(L, 0, 4);
    lua_pushstring(L, e->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, acq_st_dtype_name(e->dtype));
    lua_setfield(L, -2, "dtype");
    push_shape(L, e);
    lua_setfield(L, -2, "shape");
    lua_pushinteger(L, (lua_Integer)(e->end - e->begin));
    lua_setfield(L, -2, "nbytes");
    lua_rawseti(L, -2, i + 1);
  }
  push_meta(L, f);
  acq_st_close(f);
  return 2;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **acqL_sorted_names(lua_State *L, int idx, int *n, const char *path) {
  *n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "%s: tensor table keys must be strings", path);
    size_t kl;
    const char *key = lua_tolstring(L, -2, &kl);
    if (!acqL_utf8_ok(key, kl))
      luaL_error(L, "%s: not written: tensor name %d is not valid UTF-8 text (or holds a NUL byte)", path, *n + 1);
    lua_pop(L, 1);
    (*n)++;
  }
  const char **names = lua_newuserdatauv(L, sizeof(char *) * (*n ? *n : 1), 0);
  int k = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    names[k++] = lua_tostring(L, -1); /* anchored as keys of the table */
  }
  qsort(names, *n, sizeof *names, cmp_names);
  return names;
}

/***
 * acq.safetensors.save(path, tensors [, metadata [, {checksum = false,
 * finite = false}]])
 * checksum: store the CRC-32 of the data section ("crc32") and of the
 * metadata ("crc32_meta", its entries in key order) in the metadata, which
 * every load then checks; finite: refuse (write nothing) when a
 * float tensor holds NaN or Inf, naming it.
 * @function save
 */
static int l_st_save(lua_State *L) {
  const char *path = acqL_checkpath(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  int want_crc = 0, want_finite = 0;
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    want_crc = acqL_optbool(L, 4, "checksum", 0);
    want_finite = acqL_optbool(L, 4, "finite", 0);
  }
  lua_settop(L, 3);
  /* 4: list of {name, tensor} in write order */
  lua_newtable(L);
  int n = 0;
  if (lua_rawlen(L, 2) > 0) {
    n = (int)lua_rawlen(L, 2);
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, 2, i);
      if (!lua_istable(L, -1)) return luaL_error(L, "%s: entry %d is not a {name, tensor} pair", path, i);
      lua_rawseti(L, 4, i);
    }
  } else {
    const char **names = acqL_sorted_names(L, 2, &n, path); /* 5 */
    for (int i = 0; i < n; i++) {
      lua_createtable(L, 2, 0);
      lua_pushstring(L, names[i]);
      lua_rawseti(L, -2, 1);
      lua_getfield(L, 2, names[i]);
      lua_rawseti(L, -2, 2);
      lua_rawseti(L, 4, i + 1);
    }
    lua_settop(L, 4);
  }
  acq_st_out *out = lua_newuserdatauv(L, sizeof *out * (n ? n : 1), 0); /* 5 */
  int64_t *shapes = lua_newuserdatauv(L, sizeof(int64_t) * ATC_MAX_DIMS * (n ? n : 1), 0); /* 6 */
  lua_createtable(L, n, 0); /* 7: byte buffers, anchored */
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 4, i + 1);
    int pair = lua_gettop(L);
    lua_rawgeti(L, pair, 1);
    size_t namelen = 0;
    const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &namelen) : NULL;
    if (!name) return luaL_error(L, "%s: entry %d has no string name", path, i + 1);
    if (!acqL_utf8_ok(name, namelen))
      return luaL_error(L, "%s: not written: tensor name %d is not valid UTF-8 text (or holds a NUL byte)", path, i + 1);
    lua_rawseti(L, 7, 2 * n + i + 1); /* anchor the name string */
    lua_rawgeti(L, pair, 2);
    acqL_Tensor *b = acqL_testbox(L, -1);
    if (!b || !b->h) return luaL_error(L, "%s: '%s' is not a live tensor", path, name);
    atc_meta m;
    atc_status st;
    if (atc_tensor_meta(&st, b->h, &m)) return luaL_error(L, "%s: '%s': %s", path, name, st.msg);
    if (m.dtype < 0) return luaL_error(L, "%s: '%s' has a dtype safetensors cannot store", path, name);
    size_t nbytes = (size_t)m.numel * atc_dtype_size((atc_dtype)m.dtype);
    void *buf = lua_newuserdatauv(L, nbytes ? nbytes : 1, 0);
    lua_rawseti(L, 7, i + 1);
    if (atc_tensor_read(&st, b->h, (atc_dtype)m.dtype, buf, m.numel))
      return luaL_error(L, "%s: '%s': %s", path, name, st.msg);
    if (want_finite) {
      int64_t bad = first_nonfinite(buf, m.dtype, m.numel);
      if (bad >= 0)
        return luaL_error(L, "%s: not written: tensor '%s' holds NaN or Inf (element %d)", path, name, (int)bad);
    }
    memcpy(shapes + i * ATC_MAX_DIMS, m.sizes, sizeof(int64_t) * m.ndim);
    out[i].name = name;
    out[i].dtype = m.dtype;
    out[i].ndim = m.ndim;
    out[i].shape = shapes + i * ATC_MAX_DIMS;
    out[i].data = buf;
    out[i].nbytes = nbytes;
    lua_settop(L, 7);
  }
  /* metadata */
  int nm = 0;
  const char **mk = NULL, **mv = NULL;
  if (!lua_isnil(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      lua_pop(L, 1);
      nm++;
    }
  }
  mk = lua_newuserdatauv(L, sizeof(char *) * (size_t)(nm + 2), 0); /* 8 */
  mv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(nm + 2), 0); /* 9 */
  lua_newtable(L);                                                 /* 10: anchors */
  int k = 0;
  if (!lua_isnil(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      if (lua_type(L, -2) != LUA_TSTRING)
        return luaL_error(L, "%s: metadata keys must be strings", path);
      size_t vlen, klen;
      const char *v = luaL_tolstring(L, -1, &vlen); /* numbers are written as strings */
      lua_rawseti(L, 10, k + 1);
      lua_pop(L, 1);
      mk[k] = lua_tolstring(L, -1, &klen); /* a key of the metadata table */
      if (!acqL_utf8_ok(mk[k], klen) || !acqL_utf8_ok(v, vlen))
        return luaL_error(L, "%s: not written: a metadata %s is not valid UTF-8 text (or holds a NUL byte)", path,
                          acqL_utf8_ok(mk[k], klen) ? "value" : "key");
      mv[k] = v;                   /* anchored in table 10 */
      if (want_crc && (strcmp(mk[k], ACQ_ST_CRC_KEY) == 0 || strcmp(mk[k], ACQ_ST_CRC_META_KEY) == 0))
        continue; /* replaced below */
      k++;
    }
  }
  char crc[16], mcrc[16];
  if (want_crc) {
    unsigned long c = crc32(0L, Z_NULL, 0);
    for (int i = 0; i < n; i++) c = crc_update(c, out[i].data, out[i].nbytes);
    snprintf(crc, sizeof crc, "%08lx", c);
    snprintf(mcrc, sizeof mcrc, "%08lx", meta_crc(mk, mv, k));
    mk[k] = ACQ_ST_CRC_KEY;
    mv[k] = crc;
    k++;
    mk[k] = ACQ_ST_CRC_META_KEY;
    mv[k] = mcrc;
    k++;
  }
  nm = k;
  char err[ACQ_ST_ERR];
  if (acq_st_write(path, out, n, mk, mv, nm, err, sizeof err)) return luaL_error(L, "%s", err);
  return 0;
}

const char *acqL_read_file(lua_State *L, const char *path, size_t *len) {
  /* only regular files: a FIFO would block, a device never end */
  struct stat sb;
  if (stat(path, &sb) != 0) luaL_error(L, "%s: %s", path, strerror(errno));
  if (!S_ISREG(sb.st_mode))
    luaL_error(L, "%s: not a regular file (%s)", path, S_ISDIR(sb.st_mode) ? "a directory" : S_ISFIFO(sb.st_mode) ? "a FIFO" : "a device or socket");
  gzFile f = gzopen(path, "rb");
  if (!f) luaL_error(L, "%s: %s", path, errno ? strerror(errno) : "cannot open");
  luaL_Buffer B;
  luaL_buffinit(L, &B);
  for (;;) {
    char *p = luaL_prepbuffsize(&B, 1 << 16);
    int n = gzread(f, p, 1 << 16);
    if (n < 0) {
      int code;
      const char *m = gzerror(f, &code);
      lua_pushfstring(L, "%s: %s", path, code == Z_ERRNO ? strerror(errno) : m);
      gzclose(f);
      lua_error(L);
    }
    if (n == 0) break;
    luaL_addsize(&B, (size_t)n);
  }
  int zrc = gzclose(f);
  if (zrc != Z_OK)
    luaL_error(L, "%s: %s", path, zrc == Z_BUF_ERROR ? "truncated gzip stream" : "read error");
  luaL_pushresult(&B);
  return lua_tolstring(L, -1, len);
}

/***
 * acq.read_file(path) -> the bytes of a regular file as a string (gzip files decompressed); a FIFO, folder or device is an error, without blocking.
 * @function read_file
 */
static int l_read_file(lua_State *L) {
  acqL_read_file(L, acqL_checkpath(L, 1), NULL);
  return 1;
}

/***
 * acq.decode_image(path [, {max_pixels = 178956970}]) -> u8 tensor [H, W, 3]
 * (RGB; JPEG or PNG). An image of more than max_pixels pixels (PIL's limit
 * by default) is refused from its header, before decoding.
 * @function decode_image
 */
static int l_decode_image(lua_State *L) {
  const char *path = acqL_checkpath(L, 1);
  lua_Number maxpx = acqL_optnumfield(L, 2, "max_pixels", 0);
  if (maxpx < 0) return luaL_error(L, "decode_image: max_pixels must be positive");
  lua_settop(L, 1);
  size_t n;
  const uint8_t *bytes = (const uint8_t *)acqL_read_file(L, path, &n);
  acqL_Tensor *b = acqL_newtensor(L);
  acq_image img;
  char err[256];
  if (acq_image_decode(bytes, n, (uint64_t)maxpx, &img, err, sizeof err)) return luaL_error(L, "%s: %s", path, err);
  int64_t shape[3] = {img.height, img.width, 3};
  atc_status st;
  int rc = atc_from_buffer(&st, img.pixels, shape, 3, ATC_U8, &b->h);
  free(img.pixels);
  if (rc) return luaL_error(L, "%s: %s", path, st.msg);
  return acqL_done(L, b);
}

/***
 * acq.resize_image(img u8 [H,W,C], h, w) -> u8 [h,w,C], as PIL's
 * Image.resize((w, h), BILINEAR)
 * @function resize_image
 */
static int l_resize_image(lua_State *L) {
  atc_tensor *img = acqL_checktensor(L, 1);
  lua_Integer oh = luaL_checkinteger(L, 2), ow = luaL_checkinteger(L, 3);
  atc_meta m;
  atc_status st;
  if (atc_tensor_meta(&st, img, &m)) return acqL_fail(L, "resize_image", &st);
  if (m.ndim != 3 || m.dtype != ATC_U8 || m.sizes[2] < 1 || m.sizes[2] > 4)
    return luaL_error(L, "resize_image: needs a u8 image [H, W, C] with C in 1..4");
  if (oh < 1 || ow < 1 || oh > 65536 || ow > 65536)
    return luaL_error(L, "resize_image: output size %dx%d out of range", (int)oh, (int)ow);
  int h = (int)m.sizes[0], w = (int)m.sizes[1], c = (int)m.sizes[2];
  uint8_t *in = lua_newuserdatauv(L, (size_t)h * w * c + 1, 0);
  uint8_t *out = lua_newuserdatauv(L, (size_t)oh * ow * c + 1, 0);
  if (atc_tensor_read(&st, img, ATC_U8, in, m.numel)) return acqL_fail(L, "resize_image", &st);
  if (acq_resize_pil(in, w, h, c, out, (int)ow, (int)oh)) return luaL_error(L, "resize_image: out of memory");
  int64_t shape[3] = {oh, ow, c};
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_from_buffer(&st, out, shape, 3, ATC_U8, &b->h)) return acqL_fail(L, "resize_image", &st);
  return acqL_done(L, b);
}

/***
 * acq.frombytes(s, dtype, shape [, offset = 0]) -> a new CPU tensor of dtype and shape holding the little-endian bytes of string s from offset on; an error when s is too short.
 * @function frombytes
 */
static int l_frombytes(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  atc_dtype dt = acqL_checkdtype(L, 2);
  int64_t sizes[ATC_MAX_DIMS];
  int nd;
  acqL_checksizes(L, 3, sizes, &nd);
  lua_Integer off = luaL_optinteger(L, 4, 0);
  int64_t numel = 1;
  for (int i = 0; i < nd; i++) numel *= sizes[i];
  size_t need = (size_t)numel * atc_dtype_size(dt);
  if (off < 0 || (size_t)off > len || len - (size_t)off < need)
    return luaL_error(L, "frombytes: %d bytes from offset %d needed, the string has %d",
                      (int)need, (int)off, (int)len);
  acqL_Tensor *b = acqL_newtensor(L);
  atc_status st;
  if (atc_from_buffer(&st, s + off, sizes, nd, dt, &b->h)) return acqL_fail(L, "frombytes", &st);
  return acqL_done(L, b);
}

/***
 * acq.write_png(path, t): t is uint8 [H,W] (grey) or [H,W,C], C = 1..4
 * (grey, grey+alpha, RGB, RGBA); written atomically.
 * @function write_png
 */
static int l_write_png(lua_State *L) {
  const char *path = acqL_checkpath(L, 1);
  atc_tensor *t = acqL_checktensor(L, 2);
  atc_meta m;
  atc_status st;
  if (atc_tensor_meta(&st, t, &m)) return acqL_fail(L, "write_png", &st);
  if (m.dtype != ATC_U8) return luaL_error(L, "write_png: %s: expected a uint8 tensor, got %s", path, atc_dtype_name((atc_dtype)m.dtype));
  if (m.ndim != 2 && m.ndim != 3) return luaL_error(L, "write_png: %s: expected [H,W] or [H,W,C], got %d dimensions", path, m.ndim);
  int c = m.ndim == 3 ? (int)m.sizes[2] : 1;
  if (m.numel == 0) return luaL_error(L, "write_png: %s: empty picture", path);
  uint8_t *px = lua_newuserdatauv(L, (size_t)m.numel, 0);
  if (atc_tensor_read(&st, t, ATC_U8, px, m.numel)) return acqL_fail(L, "write_png", &st);
  char err[ACQ_ST_ERR];
  if (acq_png_write(path, px, (int)m.sizes[1], (int)m.sizes[0], c, err, sizeof err))
    return luaL_error(L, "write_png: %s", err);
  return 0;
}

/***
 * acq.write_file(path, s): atomically (temporary file, fsync, rename).
 * @function write_file
 */
static int l_write_file(lua_State *L) {
  const char *path = acqL_checkpath(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  acq_part part = {s, len};
  char err[ACQ_ST_ERR];
  if (acq_atomic_write(path, &part, 1, err, sizeof err)) return luaL_error(L, "%s", err);
  return 0;
}

/***
 * acq.mkdir(path): creates the folder and its missing parents (mkdir -p);
 * an existing folder is fine.
 * @function mkdir
 */
static int l_mkdir(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  if (len == 0) return luaL_error(L, "mkdir: empty path");
  if (strlen(path) != len) return luaL_argerror(L, 1, "a path with a NUL byte");
  char *buf = lua_newuserdatauv(L, len + 1, 0);
  memcpy(buf, path, len + 1);
  for (size_t i = 1; i <= len; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char c = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
      return luaL_error(L, "mkdir: %s: %s", buf, strerror(errno));
    buf[i] = c;
  }
  struct stat sb;
  if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return luaL_error(L, "mkdir: %s: exists and is not a folder", path);
  return 0;
}

/***
 * acq.listdir(path) -> the names in the folder, sorted bytewise (as Python's
 * sorted(os.listdir)), without "." and ".."
 * @function listdir
 */
static int l_listdir(lua_State *L) {
  const char *path = acqL_checkpath(L, 1);
  DIR *d = opendir(path);
  if (!d) return luaL_error(L, "%s: %s", path, strerror(errno));
  lua_newtable(L);
  int n = 0;
  struct dirent *e;
  for (;;) {
    errno = 0;
    if (!(e = readdir(d))) break;
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    lua_pushstring(L, e->d_name); /* may raise on OOM: d leaks then, as a handle only */
    lua_rawseti(L, -2, ++n);
  }
  int bad = errno;
  closedir(d);
  if (bad) return luaL_error(L, "%s: %s", path, strerror(bad));
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "sort");
  lua_pushvalue(L, -3);
  lua_call(L, 1, 0);
  lua_pop(L, 1);
  return 1;
}

/***
 * acq.isdir(path) -> true when path is an existing folder.
 * @function isdir
 */
static int l_isdir(lua_State *L) {
  struct stat sb;
  lua_pushboolean(L, stat(acqL_checkpath(L, 1), &sb) == 0 && S_ISDIR(sb.st_mode));
  return 1;
}

void acqL_open_data(lua_State *L, int module) {
  static const luaL_Reg top[] = {
    {"write_png", l_write_png}, {"write_file", l_write_file}, {"read_file", l_read_file},
    {"frombytes", l_frombytes}, {"decode_image", l_decode_image}, {"resize_image", l_resize_image}, {"listdir", l_listdir}, {"mkdir", l_mkdir}, {"isdir", l_isdir}, {NULL, NULL}};
  acqL_setfuncs(L, module, top);
  static const luaL_Reg fns[] = {
    {"load", l_st_load}, {"header", l_st_header}, {"save", l_st_save}, {NULL, NULL}};
  lua_newtable(L);
  acqL_setfuncs(L, lua_gettop(L), fns);
  lua_setfield(L, module, "safetensors");
}
