/***
 * l_create.c -- making tensors: acq.zeros, ones, empty, full, arange, randn,
 * rand, randint, randperm (with an optional generator), and acq.tensor from
 * Lua tables, numbers, booleans or another tensor.
 *
 * @module acq.core.create
 */
#include "acqL.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The options table after the sizes of a creation call: a table or nothing. */
static int opts_at(lua_State *L, int idx) {
  if (!lua_isnoneornil(L, idx)) luaL_checktype(L, idx, LUA_TTABLE);
  lua_settop(L, idx); /* the options stay at idx; results go above */
  return idx;
}

/* ---- creation ----------------------------------------------------------- */

static atc_generator *optgenerator(lua_State *L, int opts) {
  atc_generator *g = NULL;
  if (lua_isnoneornil(L, opts)) return NULL;
  if (lua_getfield(L, opts, "generator") != LUA_TNIL) {
    atc_generator **p = (atc_generator **)luaL_checkudata(L, -1, ACQ_GENERATOR_MT);
    if (!*p) luaL_error(L, "attempt to use a freed generator");
    g = *p;
  }
  lua_pop(L, 1);
  return g;
}

/* After creation: requires_grad = true in the options. */
static int finish_created(lua_State *L, acqL_Tensor *b, int opts, const char *op) {
  atc_status st;
  acqL_done(L, b);
  if (acqL_optbool(L, opts, "requires_grad", 0) &&
      atc_requires_grad_(&st, b->h, 1))
    return acqL_fail(L, op, &st);
  return 1;
}

static int fill_like(lua_State *L, atc_scalar v, int has_value, const char *op) {
  int64_t sizes[ATC_MAX_DIMS];
  int nd;
  int opts = opts_at(L, acqL_checksizes(L, 1, sizes, &nd));
  atc_dtype dt = acqL_optdtype(L, opts, ATC_F32);
  atc_device dev = acqL_optdevice(L, opts);
  acqL_Tensor *b = acqL_newtensor(L);
  atc_status st;
  int rc = has_value ? atc_full(&st, sizes, nd, v, dt, dev, &b->h)
                     : atc_empty(&st, sizes, nd, dt, dev, &b->h);
  if (rc) return acqL_fail(L, op, &st);
  return finish_created(L, b, opts, op);
}

/***
 * acq.zeros(sizes... or {sizes} [, {dtype = "f32", device = "cpu", requires_grad = false}]) -> a tensor of zeros. Example: acq.zeros(2, 3, {dtype = "f64"}).
 * @function zeros
 */
static int l_zeros(lua_State *L) {
  atc_scalar z = {1, 0, 0.0};
  return fill_like(L, z, 1, "zeros");
}
/***
 * acq.ones(sizes... [, opts]) -> a tensor of ones (opts as acq.zeros).
 * @function ones
 */
static int l_ones(lua_State *L) {
  atc_scalar o = {1, 1, 1.0};
  return fill_like(L, o, 1, "ones");
}
/***
 * acq.empty(sizes... [, opts]) -> an uninitialised tensor (opts as acq.zeros).
 * @function empty
 */
static int l_empty(lua_State *L) {
  atc_scalar z = {1, 0, 0.0};
  return fill_like(L, z, 0, "empty");
}

/***
 * acq.full(sizes, value, opts)
 * @function full
 */
static int l_full(lua_State *L) {
  int64_t sizes[ATC_MAX_DIMS];
  int nd;
  int vi = acqL_checksizes(L, 1, sizes, &nd);
  atc_scalar v = acqL_checkscalar(L, vi);
  int opts = opts_at(L, vi + 1);
  atc_dtype dt = acqL_optdtype(L, opts, v.is_int && lua_type(L, vi) != LUA_TBOOLEAN
                                            ? ATC_I64
                                            : (lua_type(L, vi) == LUA_TBOOLEAN ? ATC_BOOL : ATC_F32));
  atc_device dev = acqL_optdevice(L, opts);
  acqL_Tensor *b = acqL_newtensor(L);
  atc_status st;
  if (atc_full(&st, sizes, nd, v, dt, dev, &b->h)) return acqL_fail(L, "full", &st);
  return finish_created(L, b, opts, "full");
}

/***
 * acq.arange(end) | acq.arange(start, end [, step]) [, opts]
 * @function arange
 */
static int l_arange(lua_State *L) {
  atc_scalar start = {1, 0, 0.0}, end, step = {1, 1, 1.0};
  int n = 0, allint = 1, opts;
  while (n < 3 && lua_type(L, n + 1) == LUA_TNUMBER) n++;
  if (n == 0) luaL_error(L, "arange: expected (end), (start, end) or (start, end, step)");
  if (n == 1) {
    end = acqL_checkscalar(L, 1);
  } else {
    start = acqL_checkscalar(L, 1);
    end = acqL_checkscalar(L, 2);
    if (n == 3) step = acqL_checkscalar(L, 3);
  }
  allint = start.is_int && end.is_int && step.is_int;
  opts = opts_at(L, n + 1);
  atc_dtype dt = acqL_optdtype(L, opts, allint ? ATC_I64 : ATC_F32);
  atc_device dev = acqL_optdevice(L, opts);
  acqL_Tensor *b = acqL_newtensor(L);
  atc_status st;
  if (atc_arange(&st, start, end, step, dt, dev, &b->h)) return acqL_fail(L, "arange", &st);
  return finish_created(L, b, opts, "arange");
}

static int random_like(lua_State *L, int normal) {
  int64_t sizes[ATC_MAX_DIMS];
  int nd;
  int opts = opts_at(L, acqL_checksizes(L, 1, sizes, &nd));
  atc_dtype dt = acqL_optdtype(L, opts, ATC_F32);
  atc_device dev = acqL_optdevice(L, opts);
  atc_generator *g = optgenerator(L, opts);
  acqL_Tensor *b = acqL_newtensor(L);
  atc_status st;
  int rc = normal ? atc_randn(&st, sizes, nd, dt, dev, g, &b->h)
                  : atc_rand(&st, sizes, nd, dt, dev, g, &b->h);
  if (rc) return acqL_fail(L, normal ? "randn" : "rand", &st);
  return finish_created(L, b, opts, normal ? "randn" : "rand");
}
/***
 * acq.randn(sizes... [, {dtype, device, requires_grad, generator}]) -> samples of N(0, 1), from generator (an acq.generator) or the default one (acq.manual_seed).
 * @function randn
 */
static int l_randn(lua_State *L) { return random_like(L, 1); }
/***
 * acq.rand(sizes... [, opts]) -> samples of U[0, 1) (opts as acq.randn).
 * @function rand
 */
static int l_rand(lua_State *L) { return random_like(L, 0); }

/***
 * acq.randint(low, high, sizes, opts): integers in [low, high).
 * @function randint
 */
static int l_randint(lua_State *L) {
  int64_t low = acqL_checkint(L, 1, "randint low");
  int64_t high = acqL_checkint(L, 2, "randint high");
  int64_t sizes[ATC_MAX_DIMS];
  int nd;
  int opts = opts_at(L, acqL_checksizes(L, 3, sizes, &nd));
  atc_dtype dt = acqL_optdtype(L, opts, ATC_I64);
  atc_device dev = acqL_optdevice(L, opts);
  atc_generator *g = optgenerator(L, opts);
  acqL_Tensor *b = acqL_newtensor(L);
  atc_status st;
  if (atc_randint(&st, low, high, sizes, nd, dt, dev, g, &b->h))
    return acqL_fail(L, "randint", &st);
  return finish_created(L, b, opts, "randint");
}

/***
 * acq.randperm(n, {generator, device}): a random permutation of 0..n-1.
 * @function randperm
 */
static int l_randperm(lua_State *L) {
  int64_t n = acqL_checkint(L, 1, "randperm n");
  int opts = opts_at(L, 2);
  atc_device dev = acqL_optdevice(L, opts);
  atc_generator *g = optgenerator(L, opts);
  acqL_Tensor *b = acqL_newtensor(L);
  atc_status st;
  if (atc_randperm(&st, n, dev, g, &b->h)) return acqL_fail(L, "randperm", &st);
  return acqL_done(L, b);
}

/* ---- from a Lua table --------------------------------------------------- */

enum { K_NONE, K_BOOL, K_INT, K_FLOAT };

typedef struct Walk {
  int64_t sizes[ATC_MAX_DIMS];
  int ndim;
  int kind;
  int64_t count, numel;
  double *d;
  int64_t *i;
} Walk;

/* Pass 1 (fill == 0): shape from the first element of each level, and the
 * element kind. Pass 2: check every level's length and store the values. */
static void walk(lua_State *L, int idx, int depth, Walk *w, int fill) {
  int t = lua_type(L, idx);
  if (t == LUA_TTABLE) {
    lua_Integer n = luaL_len(L, idx);
    if (!fill) {
      if (depth >= ATC_MAX_DIMS) luaL_error(L, "tensor: table nested deeper than %d", ATC_MAX_DIMS);
      w->sizes[depth] = n;
      w->ndim = depth + 1;
    } else if (depth >= w->ndim || w->sizes[depth] != n) {
      luaL_error(L, "tensor: ragged table (a row at depth %d has %d elements, expected %d)",
                 depth + 1, (int)n, depth < w->ndim ? (int)w->sizes[depth] : 0);
    }
    luaL_checkstack(L, 2, "tensor: table too deep");
    for (lua_Integer k = 1; k <= n; k++) {
      lua_rawgeti(L, idx, k);
      walk(L, lua_gettop(L), depth + 1, w, fill);
      lua_pop(L, 1);
    }
    return;
  }
  if (fill && depth != w->ndim)
    luaL_error(L, "tensor: ragged table (a number at depth %d, expected depth %d)", depth, w->ndim);
  if (t == LUA_TBOOLEAN) {
    if (!fill) {
      if (w->kind != K_NONE && w->kind != K_BOOL)
        luaL_error(L, "tensor: table mixes booleans and numbers");
      w->kind = K_BOOL;
      return;
    }
    w->i[w->count++] = lua_toboolean(L, idx);
  } else if (t == LUA_TNUMBER) {
    if (!fill) {
      int k = lua_isinteger(L, idx) ? K_INT : K_FLOAT;
      if (w->kind == K_BOOL) luaL_error(L, "tensor: table mixes booleans and numbers");
      if (k > w->kind) w->kind = k;
      return;
    }
    if (w->count >= w->numel) luaL_error(L, "tensor: ragged table");
    if (w->kind == K_FLOAT) w->d[w->count++] = (double)lua_tonumber(L, idx);
    else w->i[w->count++] = (int64_t)lua_tointeger(L, idx);
  } else {
    luaL_error(L, "tensor: expected numbers or booleans in the table, found a %s",
               luaL_typename(L, idx));
  }
}

static int from_table(lua_State *L, int idx, int opts) {
  Walk w;
  atc_status st;
  memset(&w, 0, sizeof w);
  walk(L, idx, 0, &w, 0);
  /* a nested empty table {{}} has ndim 2 with a 0; a shape like {{1},{}} is
   * caught by pass 2 */
  w.numel = 1;
  for (int k = 0; k < w.ndim; k++) w.numel *= w.sizes[k];
  if (w.kind == K_NONE) w.kind = K_FLOAT;
  size_t esz = w.kind == K_FLOAT ? sizeof(double) : sizeof(int64_t);
  void *buf = lua_newuserdatauv(L, (size_t)(w.numel > 0 ? w.numel : 1) * esz, 0);
  w.d = (double *)buf;
  w.i = (int64_t *)buf;
  walk(L, idx, 0, &w, 1);
  if (w.count != w.numel) luaL_error(L, "tensor: ragged table");
  atc_dtype natural = w.kind == K_FLOAT ? ATC_F32 : (w.kind == K_BOOL ? ATC_BOOL : ATC_I64);
  atc_dtype dt = acqL_optdtype(L, opts, natural);
  atc_device dev = acqL_optdevice(L, opts);
  atc_dtype bufdt = w.kind == K_FLOAT ? ATC_F64 : ATC_I64;
  /* raw buffer -> CPU tensor of the buffer's dtype -> requested dtype/device */
  acqL_Tensor *raw = acqL_newtensor(L);
  if (atc_from_buffer(&st, buf, w.sizes, w.ndim, bufdt, &raw->h)) return acqL_fail(L, "tensor", &st);
  acqL_done(L, raw);
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_to(&st, raw->h, dt, dev, &b->h)) return acqL_fail(L, "tensor", &st);
  return finish_created(L, b, opts, "tensor");
}

/***
 * acq.tensor(data [, opts]): data is a (nested) table of numbers or booleans,
 * a number, a boolean, or a tensor (copied). opts: dtype, device,
 * requires_grad, shape (reshape the data).
 * @function tensor
 */
static int l_tensor(lua_State *L) {
  int opts = 2;
  atc_status st;
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  if (acqL_isscalar(L, 1)) {
    atc_scalar v = acqL_checkscalar(L, 1);
    atc_dtype natural = lua_type(L, 1) == LUA_TBOOLEAN ? ATC_BOOL : (v.is_int ? ATC_I64 : ATC_F32);
    atc_dtype dt = acqL_optdtype(L, opts, natural);
    atc_device dev = acqL_optdevice(L, opts);
    acqL_Tensor *b = acqL_newtensor(L);
    if (atc_full(&st, NULL, 0, v, dt, dev, &b->h)) return acqL_fail(L, "tensor", &st);
    finish_created(L, b, opts, "tensor");
  } else if (acqL_testbox(L, 1)) {
    atc_tensor *src = acqL_checktensor(L, 1);
    atc_meta m;
    if (atc_tensor_meta(&st, src, &m)) return acqL_fail(L, "tensor", &st);
    atc_dtype dt = acqL_optdtype(L, opts, m.dtype >= 0 ? (atc_dtype)m.dtype : ATC_F32);
    atc_device dev = m.device;
    if (!lua_isnil(L, opts)) {
      lua_getfield(L, opts, "device");
      if (!lua_isnil(L, -1)) dev = acqL_checkdevice(L, -1);
      lua_pop(L, 1);
    }
    acqL_Tensor *tmp = acqL_newtensor(L);
    if (atc_detach(&st, src, &tmp->h)) return acqL_fail(L, "tensor", &st);
    acqL_done(L, tmp);
    acqL_Tensor *b = acqL_newtensor(L);
    if (atc_to(&st, tmp->h, dt, dev, &b->h)) return acqL_fail(L, "tensor", &st);
    acqL_done(L, b);
    acqL_Tensor *c = acqL_newtensor(L);
    if (atc_clone(&st, b->h, &c->h)) return acqL_fail(L, "tensor", &st);
    finish_created(L, c, opts, "tensor");
  } else if (lua_type(L, 1) == LUA_TTABLE) {
    from_table(L, 1, opts);
  } else {
    return luaL_typeerror(L, 1, "table, number, boolean or tensor");
  }
  if (!lua_isnil(L, opts)) {
    int64_t sizes[ATC_MAX_DIMS];
    int nd;
    if (lua_getfield(L, opts, "shape") != LUA_TNIL) {
      int top = lua_gettop(L);
      acqL_checksizes(L, top, sizes, &nd);
      acqL_Tensor *r = acqL_newtensor(L);
      if (atc_reshape(&st, acqL_checktensor(L, top - 1), sizes, nd, &r->h))
        return acqL_fail(L, "tensor", &st);
      return acqL_done(L, r);
    }
    lua_pop(L, 1);
  }
  return 1;
}

void acqL_open_create(lua_State *L, int module_idx) {
  static const luaL_Reg functions[] = {
      {"tensor", l_tensor}, {"zeros", l_zeros}, {"ones", l_ones},       {"empty", l_empty},
      {"full", l_full},     {"arange", l_arange}, {"randn", l_randn},   {"rand", l_rand},
      {"randint", l_randint}, {"randperm", l_randperm}, {NULL, NULL}};
  acqL_setfuncs(L, module_idx, functions);
}
