/*
 * acqL_aux.c -- the helper library every binding file uses, as Lua's lauxlib
 * stands apart from liolib: boxing tensor handles (and the memory
 * accounting that drives the collector), checking arguments, options,
 * shapes, dtypes and devices, and raising the shim's errors as Lua errors.
 * The acq.Tensor type itself is l_tensor.c.
 */
#include "acqL.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- memory accounting -------------------------------------------------- */

static const char MEMORY_KEY = 'm';

/* Forced collections start after this many new tensor bytes, or after as many
 * new bytes as are live, whichever is larger: amortised cost stays linear. */
#define ACQ_GC_MIN_BYTES ((int64_t)64 << 20)

acqL_Memory *acqL_memory(lua_State *L) {
  acqL_Memory *m;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &MEMORY_KEY) == LUA_TUSERDATA) {
    m = (acqL_Memory *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return m;
  }
  lua_pop(L, 1);
  m = (acqL_Memory *)lua_newuserdatauv(L, sizeof *m, 0);
  memset(m, 0, sizeof *m);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &MEMORY_KEY);
  return m;
}


acqL_Tensor *acqL_newtensor(lua_State *L) {
  acqL_Tensor *b = (acqL_Tensor *)lua_newuserdatauv(L, sizeof *b, 0);
  b->h = NULL;
  b->nbytes = 0;
  luaL_setmetatable(L, ACQ_TENSOR_MT);
  return b;
}

int acqL_done(lua_State *L, acqL_Tensor *b) {
  acqL_Memory *m = acqL_memory(L);
  b->nbytes = atc_tensor_nbytes(b->h);
  m->live++;
  m->bytes += b->nbytes;
  m->since_gc += b->nbytes;
  if (m->bytes > m->peak) m->peak = m->bytes;
  if (m->since_gc > ACQ_GC_MIN_BYTES && m->since_gc > m->bytes / 2) {
    m->since_gc = 0;
    m->collections++;
    lua_gc(L, LUA_GCCOLLECT, 0);
  }
  return 1;
}

acqL_Tensor *acqL_testbox(lua_State *L, int idx) {
  return (acqL_Tensor *)luaL_testudata(L, idx, ACQ_TENSOR_MT);
}

atc_tensor *acqL_checktensor(lua_State *L, int idx) {
  acqL_Tensor *b = (acqL_Tensor *)luaL_checkudata(L, idx, ACQ_TENSOR_MT);
  if (b->h == NULL) luaL_error(L, "attempt to use a freed tensor");
  return b->h;
}

atc_tensor *acqL_opttensor(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return NULL;
  return acqL_checktensor(L, idx);
}

int acqL_fail(lua_State *L, const char *op, const atc_status *st) {
  return luaL_error(L, "%s: %s", op, st->msg);
}

/* ---- argument helpers --------------------------------------------------- */

int acqL_isscalar(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  return t == LUA_TNUMBER || t == LUA_TBOOLEAN;
}

atc_scalar acqL_checkscalar(lua_State *L, int idx) {
  atc_scalar s;
  if (lua_type(L, idx) == LUA_TBOOLEAN) {
    s.is_int = 1;
    s.i = lua_toboolean(L, idx);
    s.d = (double)s.i;
  } else if (lua_isinteger(L, idx)) {
    s.is_int = 1;
    s.i = (int64_t)lua_tointeger(L, idx);
    s.d = (double)s.i;
  } else {
    s.is_int = 0;
    s.d = (double)luaL_checknumber(L, idx);
    s.i = 0;
  }
  return s;
}

static const struct {
  const char *name;
  atc_dtype dt;
} DTYPES[] = {
    {"f32", ATC_F32},   {"float32", ATC_F32}, {"float", ATC_F32},
    {"f64", ATC_F64},   {"float64", ATC_F64}, {"double", ATC_F64},
    {"i64", ATC_I64},   {"int64", ATC_I64},   {"long", ATC_I64},
    {"i32", ATC_I32},   {"int32", ATC_I32},   {"int", ATC_I32},
    {"u8", ATC_U8},     {"uint8", ATC_U8},    {"byte", ATC_U8},
    {"bool", ATC_BOOL}, {"f16", ATC_F16},     {"float16", ATC_F16},
    {"half", ATC_F16},  {"bf16", ATC_BF16},   {"bfloat16", ATC_BF16},
    {NULL, ATC_F32}};

const char *acqL_dtypename(atc_dtype d) { return atc_dtype_name(d); }

int acqL_dtype_of(const char *s, atc_dtype *dt) {
  for (int i = 0; DTYPES[i].name; i++)
    if (strcmp(DTYPES[i].name, s) == 0) {
      *dt = DTYPES[i].dt;
      return 1;
    }
  return 0;
}

atc_dtype acqL_checkdtype(lua_State *L, int idx) {
  const char *s = luaL_checkstring(L, idx);
  for (int i = 0; DTYPES[i].name; i++)
    if (strcmp(DTYPES[i].name, s) == 0) return DTYPES[i].dt;
  luaL_error(L, "unknown dtype '%s' (expected f32, f64, i64, i32, u8, bool, "
                "f16 or bf16)", s);
  return ATC_F32;
}

static int optfield(lua_State *L, int opts, const char *key) {
  if (lua_isnoneornil(L, opts)) return LUA_TNIL;
  luaL_checktype(L, opts, LUA_TTABLE);
  return lua_getfield(L, opts, key); /* pushes */
}

atc_dtype acqL_optdtype(lua_State *L, int opts, atc_dtype def) {
  opts = lua_absindex(L, opts);
  if (lua_isnoneornil(L, opts)) return def;
  if (optfield(L, opts, "dtype") != LUA_TNIL) def = acqL_checkdtype(L, -1);
  lua_pop(L, 1);
  return def;
}

atc_device acqL_checkdevice(lua_State *L, int idx) {
  atc_device d = {ATC_CPU, -1};
  const char *s = luaL_checkstring(L, idx);
  atc_status st;
  if (strcmp(s, "cpu") == 0) return d;
  if (atc_device_parse(&st, s, &d)) luaL_error(L, "bad device '%s': %s", s, st.msg);
  return d;
}

atc_device acqL_optdevice(lua_State *L, int opts) {
  atc_device d = {ATC_CPU, -1};
  opts = lua_absindex(L, opts);
  if (lua_isnoneornil(L, opts)) return d;
  if (optfield(L, opts, "device") != LUA_TNIL) d = acqL_checkdevice(L, -1);
  lua_pop(L, 1);
  return d;
}

int acqL_optbool(lua_State *L, int opts, const char *key, int def) {
  opts = lua_absindex(L, opts);
  if (lua_isnoneornil(L, opts)) return def;
  if (optfield(L, opts, key) != LUA_TNIL) def = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return def;
}

lua_Number acqL_optnumfield(lua_State *L, int opts, const char *key, lua_Number def) {
  opts = lua_absindex(L, opts);
  if (lua_isnoneornil(L, opts)) return def;
  if (optfield(L, opts, key) != LUA_TNIL) {
    if (!lua_isnumber(L, -1)) luaL_error(L, "option '%s' must be a number", key);
    def = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return def;
}

int64_t acqL_checkint(lua_State *L, int idx, const char *what) {
  int isint;
  lua_Integer v = lua_tointegerx(L, idx, &isint);
  if (!isint) luaL_error(L, "%s must be an integer, got %s", what, luaL_typename(L, idx));
  return (int64_t)v;
}

int acqL_checksizes(lua_State *L, int idx, int64_t *sizes, int *ndim) {
  int n = 0;
  if (lua_type(L, idx) == LUA_TTABLE) {
    lua_Integer len = luaL_len(L, idx);
    if (len > ATC_MAX_DIMS) luaL_error(L, "too many dimensions (%d, at most %d)", (int)len, ATC_MAX_DIMS);
    for (lua_Integer i = 1; i <= len; i++) {
      lua_rawgeti(L, idx, i);
      sizes[n++] = acqL_checkint(L, -1, "a size");
      lua_pop(L, 1);
    }
    *ndim = n;
    return idx + 1;
  }
  while (lua_type(L, idx + n) == LUA_TNUMBER) {
    if (n >= ATC_MAX_DIMS) luaL_error(L, "too many dimensions (at most %d)", ATC_MAX_DIMS);
    sizes[n] = acqL_checkint(L, idx + n, "a size");
    n++;
  }
  *ndim = n;
  return idx + n;
}

void acqL_checkpair(lua_State *L, int idx, const char *what, int64_t def,
                    int64_t out[2]) {
  if (lua_isnoneornil(L, idx)) {
    out[0] = out[1] = def;
  } else if (lua_type(L, idx) == LUA_TNUMBER) {
    out[0] = out[1] = acqL_checkint(L, idx, what);
  } else {
    luaL_checktype(L, idx, LUA_TTABLE);
    if (luaL_len(L, idx) != 2) luaL_error(L, "%s must be a number or a pair {a, b}", what);
    for (int i = 0; i < 2; i++) {
      lua_rawgeti(L, idx, i + 1);
      out[i] = acqL_checkint(L, -1, what);
      lua_pop(L, 1);
    }
  }
}

void acqL_optpair(lua_State *L, int opts, const char *key, int64_t def, int64_t out[2]) {
  if (lua_isnoneornil(L, opts)) {
    out[0] = out[1] = def;
    return;
  }
  luaL_checktype(L, opts, LUA_TTABLE);
  lua_getfield(L, opts, key);
  acqL_checkpair(L, lua_gettop(L), key, def, out);
  lua_pop(L, 1);
}

int64_t acqL_optint(lua_State *L, int opts, const char *key, int64_t def) {
  return (int64_t)acqL_optnumfield(L, opts, key, (lua_Number)def);
}

int acqL_optdims(lua_State *L, int idx, int64_t *dims) {
  int n;
  if (lua_isnoneornil(L, idx)) return 0;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    dims[0] = acqL_checkint(L, idx, "a dimension");
    return 1;
  }
  acqL_checksizes(L, idx, dims, &n);
  return n;
}


const char *acqL_checkpath(lua_State *L, int idx) {
  size_t len;
  const char *s = luaL_checklstring(L, idx, &len);
  if (strlen(s) != len) luaL_argerror(L, idx, "a path with a NUL byte");
  return s;
}

int acqL_utf8_ok(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s, *e = p + len;
  while (p < e) {
    unsigned c = *p++;
    if (c == 0) return 0;
    if (c < 0x80) continue;
    int n = c >= 0xf0 && c <= 0xf4 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 && c < 0xe0 ? 1 : -1;
    if (n < 0 || c > 0xf4 || e - p < n) return 0;
    unsigned cp = c & (0x3f >> n);
    for (int i = 0; i < n; i++) {
      if ((p[i] & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    p += n;
  }
  return 1;
}
