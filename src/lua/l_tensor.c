/***
 * l_tensor.c -- the acq.Tensor userdata: lifecycle (the liolib file-handle
 * model), metadata, reading values back, printing, dtype/device and shape
 * operations. Creation (acq.zeros, acq.tensor, ...) is l_create.c; the
 * helpers every binding file shares (boxing, memory accounting, argument
 * checks) are acqL_aux.c.
 *
 * @module acq.core.tensor
 */
#include "acqL.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/***
 * __gc == __close == :free(). Idempotent: clears the handle first.
 * @function free
 */
static int l_tensor_free(lua_State *L) {
  acqL_Tensor *b = (acqL_Tensor *)luaL_checkudata(L, 1, ACQ_TENSOR_MT);
  atc_tensor *h = b->h;
  if (h) {
    acqL_Memory *m = acqL_memory(L);
    b->h = NULL;
    m->live--;
    m->bytes -= b->nbytes;
    b->nbytes = 0;
    atc_tensor_free(h);
  }
  return 0;
}

/* ---- metadata ----------------------------------------------------------- */

static void meta(lua_State *L, int idx, atc_meta *m) {
  atc_status st;
  if (atc_tensor_meta(&st, acqL_checktensor(L, idx), m)) acqL_fail(L, "tensor", &st);
}

/***
 * t:shape() -> the sizes as a Lua list, e.g. {2, 3}.
 * @function shape
 */
static int l_shape(lua_State *L) {
  atc_meta m;
  meta(L, 1, &m);
  lua_createtable(L, m.ndim, 0);
  for (int i = 0; i < m.ndim; i++) {
    lua_pushinteger(L, (lua_Integer)m.sizes[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/***
 * t:size() -> the shape table; t:size(d) -> the size of dimension d.
 * @function size
 */
static int l_size(lua_State *L) {
  atc_meta m;
  if (lua_isnoneornil(L, 2)) return l_shape(L);
  meta(L, 1, &m);
  lua_Integer d = luaL_checkinteger(L, 2);
  if (d < 0) d += m.ndim;
  if (d < 0 || d >= m.ndim)
    luaL_error(L, "size: dimension %d out of range for a %d-d tensor", (int)luaL_checkinteger(L, 2), m.ndim);
  lua_pushinteger(L, (lua_Integer)m.sizes[d]);
  return 1;
}

/***
 * t:dim() -> the number of dimensions.
 * @function dim
 */
static int l_dim(lua_State *L) {
  atc_meta m;
  meta(L, 1, &m);
  lua_pushinteger(L, m.ndim);
  return 1;
}

/***
 * t:numel() -> the number of elements.
 * @function numel
 */
static int l_numel(lua_State *L) {
  atc_meta m;
  meta(L, 1, &m);
  lua_pushinteger(L, (lua_Integer)m.numel);
  return 1;
}

/***
 * t:dtype() -> "f32", "f64", "i64", "i32", "u8", "bool", "f16" or "bf16".
 * @function dtype
 */
static int l_dtype(lua_State *L) {
  atc_meta m;
  meta(L, 1, &m);
  lua_pushstring(L, m.dtype >= 0 ? atc_dtype_name((atc_dtype)m.dtype) : "other");
  return 1;
}

/***
 * t:device() -> "cpu" or "cuda:N".
 * @function device
 */
static int l_device(lua_State *L) {
  atc_meta m;
  char buf[32];
  meta(L, 1, &m);
  atc_device_name(&m.device, buf, sizeof buf);
  lua_pushstring(L, buf);
  return 1;
}

/***
 * t:nbytes() -> numel times the element size (what the collector's accounting counts).
 * @function nbytes
 */
static int l_nbytes(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)atc_tensor_nbytes(acqL_checktensor(L, 1)));
  return 1;
}

static void push_scalar(lua_State *L, atc_scalar s, int is_bool) {
  if (is_bool) lua_pushboolean(L, (int)s.i);
  else if (s.is_int) lua_pushinteger(L, (lua_Integer)s.i);
  else lua_pushnumber(L, (lua_Number)s.d);
}

/***
 * t:item() -> the value of a one-element tensor as a Lua number (integer for integer dtypes) or boolean.
 * @function item
 */
static int l_item(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  atc_status st;
  atc_scalar s;
  atc_meta m;
  if (atc_item(&st, t, &s)) return acqL_fail(L, "item", &st);
  meta(L, 1, &m);
  push_scalar(L, s, m.dtype == ATC_BOOL);
  return 1;
}

static int is_floating(int dt) {
  return dt == ATC_F32 || dt == ATC_F64 || dt == ATC_F16 || dt == ATC_BF16;
}

/* Reads t into a GC-managed buffer (pushed) as f64 or i64. */
static void *read_all(lua_State *L, atc_tensor *t, const atc_meta *m, int *isfloat) {
  atc_status st;
  *isfloat = is_floating(m->dtype) || m->dtype < 0;
  size_t n = (size_t)(m->numel > 0 ? m->numel : 1);
  void *buf = lua_newuserdatauv(L, n * 8, 0);
  if (atc_tensor_read(&st, t, *isfloat ? ATC_F64 : ATC_I64, buf, m->numel))
    acqL_fail(L, "read", &st);
  return buf;
}

static void push_elem(lua_State *L, const void *buf, int64_t k, int isfloat, int isbool) {
  if (isfloat) lua_pushnumber(L, ((const double *)buf)[k]);
  else if (isbool) lua_pushboolean(L, ((const int64_t *)buf)[k] != 0);
  else lua_pushinteger(L, (lua_Integer)((const int64_t *)buf)[k]);
}

static int64_t build_table(lua_State *L, const atc_meta *m, int depth, const void *buf,
                           int64_t k, int isfloat, int isbool) {
  int64_t n = m->sizes[depth];
  luaL_checkstack(L, 3, "totable: too deep");
  lua_createtable(L, (int)n, 0);
  for (int64_t j = 0; j < n; j++) {
    if (depth + 1 == m->ndim) push_elem(L, buf, k++, isfloat, isbool);
    else k = build_table(L, m, depth + 1, buf, k, isfloat, isbool);
    lua_rawseti(L, -2, (lua_Integer)(j + 1));
  }
  return k;
}

/***
 * t:totable(): nested Lua tables (1-based, as Lua tables are); a 0-d tensor
 * gives its value.
 * @function totable
 */
static int l_totable(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  atc_meta m;
  int isfloat;
  meta(L, 1, &m);
  void *buf = read_all(L, t, &m, &isfloat);
  if (m.ndim == 0) {
    push_elem(L, buf, 0, isfloat, m.dtype == ATC_BOOL);
    return 1;
  }
  build_table(L, &m, 0, buf, 0, isfloat, m.dtype == ATC_BOOL);
  return 1;
}

/* ---- printing ----------------------------------------------------------- */

#define EDGE 3        /* elements shown at each end of a summarised dimension */
#define SUMMARY 1000  /* tensors with more elements than this are summarised  */

static void fmt_elem(luaL_Buffer *B, const void *buf, int64_t k, int isfloat, int isbool) {
  char s[64];
  if (isbool) snprintf(s, sizeof s, "%s", ((const int64_t *)buf)[k] ? "true" : "false");
  else if (isfloat) {
    double v = ((const double *)buf)[k];
    if (isnan(v)) snprintf(s, sizeof s, "nan");
    else if (isinf(v)) snprintf(s, sizeof s, v > 0 ? "inf" : "-inf");
    else snprintf(s, sizeof s, "%.6g", v);
  } else snprintf(s, sizeof s, "%lld", (long long)((const int64_t *)buf)[k]);
  luaL_addstring(B, s);
}

static void fmt_level(luaL_Buffer *B, const atc_meta *m, int depth, const void *buf,
                      int64_t offset, const int64_t *strides, int isfloat, int isbool,
                      int summarise) {
  int64_t n = m->sizes[depth];
  luaL_addchar(B, '[');
  for (int64_t j = 0; j < n; j++) {
    if (summarise && n > 2 * EDGE && j == EDGE) {
      luaL_addstring(B, "...");
      j = n - EDGE;
      luaL_addstring(B, depth + 1 == m->ndim ? ", " : ",\n");
      if (depth + 1 < m->ndim)
        for (int s = 0; s <= depth; s++) luaL_addchar(B, ' ');
    }
    if (depth + 1 == m->ndim) fmt_elem(B, buf, offset + j, isfloat, isbool);
    else fmt_level(B, m, depth + 1, buf, offset + j * strides[depth], strides, isfloat, isbool, summarise);
    if (j + 1 < n) {
      luaL_addchar(B, ',');
      if (depth + 1 == m->ndim) luaL_addchar(B, ' ');
      else {
        luaL_addchar(B, '\n');
        for (int s = 0; s <= depth; s++) luaL_addchar(B, ' ');
      }
    }
  }
  luaL_addchar(B, ']');
}

static int l_tostring(lua_State *L) {
  acqL_Tensor *b = (acqL_Tensor *)luaL_checkudata(L, 1, ACQ_TENSOR_MT);
  atc_meta m;
  atc_status st;
  luaL_Buffer B;
  char head[128], dev[32];
  int isfloat;
  if (!b->h) {
    lua_pushliteral(L, "acq.Tensor (freed)");
    return 1;
  }
  if (atc_tensor_meta(&st, b->h, &m)) return acqL_fail(L, "tostring", &st);
  void *buf = read_all(L, b->h, &m, &isfloat);
  int isbool = m.dtype == ATC_BOOL;
  luaL_buffinit(L, &B);
  atc_device_name(&m.device, dev, sizeof dev);
  luaL_addstring(&B, "acq.Tensor [");
  for (int i = 0; i < m.ndim; i++) {
    snprintf(head, sizeof head, i ? ",%lld" : "%lld", (long long)m.sizes[i]);
    luaL_addstring(&B, head);
  }
  snprintf(head, sizeof head, "] %s %s%s\n",
           m.dtype >= 0 ? atc_dtype_name((atc_dtype)m.dtype) : "other", dev,
           m.requires_grad ? " requires_grad" : "");
  luaL_addstring(&B, head);
  if (m.ndim == 0) {
    fmt_elem(&B, buf, 0, isfloat, isbool);
  } else {
    int64_t strides[ATC_MAX_DIMS];
    strides[m.ndim - 1] = 1;
    for (int i = m.ndim - 2; i >= 0; i--) strides[i] = strides[i + 1] * m.sizes[i + 1];
    fmt_level(&B, &m, 0, buf, 0, strides, isfloat, isbool, m.numel > SUMMARY);
  }
  luaL_pushresult(&B);
  return 1;
}

/* ---- dtype and device --------------------------------------------------- */

/***
 * t:to(dtype) | t:to(device) | t:to{dtype=, device=}
 * @function to
 */
static int l_to(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  atc_meta m;
  atc_status st;
  meta(L, 1, &m);
  atc_dtype dt = m.dtype >= 0 ? (atc_dtype)m.dtype : ATC_F32;
  atc_device dev = m.device;
  if (lua_type(L, 2) == LUA_TTABLE) {
    dt = acqL_optdtype(L, 2, dt);
    lua_getfield(L, 2, "device");
    if (!lua_isnil(L, -1)) dev = acqL_checkdevice(L, -1);
    lua_pop(L, 1);
  } else {
    const char *s = luaL_checkstring(L, 2);
    if (!acqL_dtype_of(s, &dt)) dev = acqL_checkdevice(L, 2);
  }
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_to(&st, t, dt, dev, &b->h)) return acqL_fail(L, "to", &st);
  return acqL_done(L, b);
}

static int to_dtype(lua_State *L, atc_dtype dt) {
  atc_tensor *t = acqL_checktensor(L, 1);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_to_dtype(&st, t, dt, &b->h)) return acqL_fail(L, "to", &st);
  return acqL_done(L, b);
}
/***
 * t:float() -> t as f32 (t itself when it already is).
 * @function float
 */
static int l_float(lua_State *L) { return to_dtype(L, ATC_F32); }
/***
 * t:double() -> t as f64.
 * @function double
 */
static int l_double(lua_State *L) { return to_dtype(L, ATC_F64); }
/***
 * t:long() -> t as i64.
 * @function long
 */
static int l_long(lua_State *L) { return to_dtype(L, ATC_I64); }
/***
 * t:bool() -> t as bool.
 * @function bool
 */
static int l_bool(lua_State *L) { return to_dtype(L, ATC_BOOL); }

static int to_device(lua_State *L, atc_device dev) {
  atc_tensor *t = acqL_checktensor(L, 1);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_to_device(&st, t, dev, &b->h)) return acqL_fail(L, "to", &st);
  return acqL_done(L, b);
}
/***
 * t:cpu() -> t on the CPU.
 * @function cpu
 */
static int l_cpu(lua_State *L) {
  atc_device d = {ATC_CPU, -1};
  return to_device(L, d);
}
/***
 * t:cuda([n = 0]) -> t on CUDA device n; an error on a build or machine without CUDA.
 * @function cuda
 */
static int l_cuda(lua_State *L) {
  atc_device d = {ATC_CUDA, (int32_t)luaL_optinteger(L, 2, -1)};
  return to_device(L, d);
}

/* ---- views and shape ---------------------------------------------------- */

typedef int (*sizes_fn)(atc_status *, const atc_tensor *, const int64_t *, int, atc_tensor **);

static int with_sizes(lua_State *L, sizes_fn fn, const char *op) {
  atc_tensor *t = acqL_checktensor(L, 1);
  int64_t sizes[ATC_MAX_DIMS];
  int nd;
  atc_status st;
  acqL_checksizes(L, 2, sizes, &nd);
  acqL_Tensor *b = acqL_newtensor(L);
  if (fn(&st, t, sizes, nd, &b->h)) return acqL_fail(L, op, &st);
  return acqL_done(L, b);
}
/***
 * t:view(sizes... or {sizes}) -> a view of t with other sizes (one may be -1); t must be contiguous enough, as torch.view.
 * @function view
 */
static int l_view(lua_State *L) { return with_sizes(L, atc_view, "view"); }
/***
 * t:reshape(sizes...) -> t with other sizes, a view when possible, a copy otherwise.
 * @function reshape
 */
static int l_reshape(lua_State *L) { return with_sizes(L, atc_reshape, "reshape"); }
/***
 * t:permute(dims...) -> a view with the dimensions reordered (0-based).
 * @function permute
 */
static int l_permute(lua_State *L) { return with_sizes(L, atc_permute, "permute"); }
/***
 * t:expand(sizes...) -> a broadcast view (size -1 keeps a dimension).
 * @function expand
 */
static int l_expand(lua_State *L) { return with_sizes(L, atc_expand, "expand"); }
/***
 * t:repeat_(times...) -> t tiled times[i] along each dimension (torch.repeat).
 * @function repeat_
 */
static int l_repeat(lua_State *L) { return with_sizes(L, atc_repeat, "repeat"); }
/***
 * t:flip(dims...) -> a copy reversed along the given dimensions.
 * @function flip
 */
static int l_flip(lua_State *L) { return with_sizes(L, atc_flip, "flip"); }

/***
 * t:transpose(d0, d1) -> a view with dimensions d0 and d1 swapped.
 * @function transpose
 */
static int l_transpose(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  int64_t d0 = luaL_optinteger(L, 2, 0), d1 = luaL_optinteger(L, 3, 1);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_transpose(&st, t, d0, d1, &b->h)) return acqL_fail(L, "transpose", &st);
  return acqL_done(L, b);
}

/***
 * t:squeeze([dim]) -> t without its size-1 dimensions (or only dim).
 * @function squeeze
 */
static int l_squeeze(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  int all = lua_isnoneornil(L, 2);
  int64_t d = all ? 0 : luaL_checkinteger(L, 2);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_squeeze(&st, t, all, d, &b->h)) return acqL_fail(L, "squeeze", &st);
  return acqL_done(L, b);
}

/***
 * t:unsqueeze(dim) -> a view with a size-1 dimension inserted at dim.
 * @function unsqueeze
 */
static int l_unsqueeze(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  int64_t d = luaL_checkinteger(L, 2);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_unsqueeze(&st, t, d, &b->h)) return acqL_fail(L, "unsqueeze", &st);
  return acqL_done(L, b);
}

/***
 * t:flatten([start = 0 [, end = -1]]) -> the dimensions start..end merged into one.
 * @function flatten
 */
static int l_flatten(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  int64_t s = luaL_optinteger(L, 2, 0), e = luaL_optinteger(L, 3, -1);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_flatten(&st, t, s, e, &b->h)) return acqL_fail(L, "flatten", &st);
  return acqL_done(L, b);
}

typedef int (*unary_fn)(atc_status *, const atc_tensor *, atc_tensor **);
static int with_tensor(lua_State *L, unary_fn fn, const char *op) {
  atc_tensor *t = acqL_checktensor(L, 1);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (fn(&st, t, &b->h)) return acqL_fail(L, op, &st);
  return acqL_done(L, b);
}
/***
 * t:contiguous() -> t in row-major memory order (t itself when it already is).
 * @function contiguous
 */
static int l_contiguous(lua_State *L) { return with_tensor(L, atc_contiguous, "contiguous"); }
/***
 * t:clone() -> a copy of t with storage of its own (on the autograd graph).
 * @function clone
 */
static int l_clone(lua_State *L) { return with_tensor(L, atc_clone, "clone"); }

atc_tensor **acqL_checktensorlist(lua_State *L, int idx, int *n, const char *what) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_Integer len = luaL_len(L, idx);
  if (len < 1 || len > 1 << 24) luaL_error(L, "%s: expected a non-empty list of tensors", what);
  atc_tensor **v = (atc_tensor **)lua_newuserdatauv(L, sizeof(*v) * (size_t)len, 0);
  for (lua_Integer i = 1; i <= len; i++) {
    lua_rawgeti(L, idx, i);
    if (!acqL_testbox(L, -1))
      luaL_error(L, "%s: element %d of the list is a %s, not a tensor", what, (int)i,
                 luaL_typename(L, -1));
    v[i - 1] = acqL_checktensor(L, -1);
    lua_pop(L, 1);
  }
  *n = (int)len;
  return v;
}

void acqL_setfuncs(lua_State *L, int idx, const luaL_Reg *fns) {
  lua_pushvalue(L, idx);
  luaL_setfuncs(L, fns, 0);
  lua_pop(L, 1);
}

typedef int (*list_fn)(atc_status *, const atc_tensor *const *, int, int64_t, atc_tensor **);
static int with_list(lua_State *L, list_fn fn, const char *op) {
  int n;
  int64_t dim = luaL_optinteger(L, 2, 0);
  atc_tensor *const *v = acqL_checktensorlist(L, 1, &n, op);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (fn(&st, (const atc_tensor *const *)v, n, dim, &b->h)) return acqL_fail(L, op, &st);
  return acqL_done(L, b);
}
/***
 * acq.cat({t1, t2, ...}, dim) -> the tensors joined along dim (0-based); their other sizes must match.
 * @function cat
 */
static int l_cat(lua_State *L) { return with_list(L, atc_cat, "cat"); }
/***
 * acq.stack({t1, t2, ...}, dim) -> the tensors stacked along a new dimension dim.
 * @function stack
 */
static int l_stack(lua_State *L) { return with_list(L, atc_stack, "stack"); }

/***
 * t:narrow(dim, start, length) -> a view of length elements of dim from start (0-based).
 * @function narrow
 */
static int l_narrow(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  int64_t dim = luaL_checkinteger(L, 2), start = luaL_checkinteger(L, 3),
          len = luaL_checkinteger(L, 4);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_narrow(&st, t, dim, start, len, &b->h)) return acqL_fail(L, "narrow", &st);
  return acqL_done(L, b);
}

/***
 * t:slice(dim, start, end [, step]): end exclusive, as Python's slices.
 * @function slice
 */
static int l_slice(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  int64_t dim = luaL_checkinteger(L, 2), s = luaL_optinteger(L, 3, 0),
          e = luaL_optinteger(L, 4, INT64_MAX), step = luaL_optinteger(L, 5, 1);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_slice(&st, t, dim, s, e, step, &b->h)) return acqL_fail(L, "slice", &st);
  return acqL_done(L, b);
}

/***
 * t:select(dim, i) -> the view of index i (0-based) along dim, that dimension removed; t[i] is t:select(0, i).
 * @function select
 */
static int l_select(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  int64_t dim = luaL_checkinteger(L, 2), i = luaL_checkinteger(L, 3);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_select(&st, t, dim, i, &b->h)) return acqL_fail(L, "select", &st);
  return acqL_done(L, b);
}

typedef int (*index_fn)(atc_status *, const atc_tensor *, int64_t, const atc_tensor *, atc_tensor **);
static int with_index(lua_State *L, index_fn fn, const char *op) {
  atc_tensor *t = acqL_checktensor(L, 1);
  int64_t dim = luaL_checkinteger(L, 2);
  atc_tensor *idx = acqL_checktensor(L, 3);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (fn(&st, t, dim, idx, &b->h)) return acqL_fail(L, op, &st);
  return acqL_done(L, b);
}
/***
 * t:index_select(dim, idx) -> the entries of the int64 indices idx along dim (a copy).
 * @function index_select
 */
static int l_index_select(lua_State *L) { return with_index(L, atc_index_select, "index_select"); }
/***
 * t:gather(dim, idx) -> torch.gather: out[i][j] = t[i][idx[i][j]] for dim 1.
 * @function gather
 */
static int l_gather(lua_State *L) { return with_index(L, atc_gather, "gather"); }

/***
 * t:scatter(dim, index, src_tensor_or_number)
 * @function scatter
 */
static int l_scatter(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  int64_t dim = luaL_checkinteger(L, 2);
  atc_tensor *idx = acqL_checktensor(L, 3);
  atc_status st;
  int rc;
  if (acqL_isscalar(L, 4)) {
    atc_scalar v = acqL_checkscalar(L, 4);
    acqL_Tensor *b = acqL_newtensor(L);
    rc = atc_scatter_value(&st, t, dim, idx, v, &b->h);
    if (rc) return acqL_fail(L, "scatter", &st);
    return acqL_done(L, b);
  }
  atc_tensor *src = acqL_checktensor(L, 4);
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_scatter(&st, t, dim, idx, src, &b->h)) return acqL_fail(L, "scatter", &st);
  return acqL_done(L, b);
}

/***
 * t:masked_fill(mask, v) -> a copy of t with v where the bool tensor mask is true.
 * @function masked_fill
 */
static int l_masked_fill(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  atc_tensor *mask = acqL_checktensor(L, 2);
  atc_scalar v = acqL_checkscalar(L, 3);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_masked_fill(&st, t, mask, v, &b->h)) return acqL_fail(L, "masked_fill", &st);
  return acqL_done(L, b);
}

/***
 * acq.where(cond, a, b)
 * @function where
 */
static int l_where(lua_State *L) {
  atc_tensor *c = acqL_checktensor(L, 1), *a = acqL_checktensor(L, 2), *x = acqL_checktensor(L, 3);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_where(&st, c, a, x, &b->h)) return acqL_fail(L, "where", &st);
  return acqL_done(L, b);
}

/* ---- in place ----------------------------------------------------------- */

/***
 * t:copy_(src) -> t, with src's values copied in (broadcast, converted to t's dtype and device).
 * @function copy_
 */
static int l_copy_(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1), *src = acqL_checktensor(L, 2);
  atc_status st;
  if (atc_copy_(&st, t, src)) return acqL_fail(L, "copy_", &st);
  lua_settop(L, 1);
  return 1;
}

/***
 * t:fill_(v) -> t, every element set to v.
 * @function fill_
 */
static int l_fill_(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  atc_scalar v = acqL_checkscalar(L, 2);
  atc_status st;
  if (atc_fill_(&st, t, v)) return acqL_fail(L, "fill_", &st);
  lua_settop(L, 1);
  return 1;
}

/***
 * t:zero_() -> t, every element set to 0.
 * @function zero_
 */
static int l_zero_(lua_State *L) {
  lua_settop(L, 1);
  lua_pushinteger(L, 0);
  return l_fill_(L);
}

/* ---- indexing: t[i] is t:select(0, i); t[i] = v fills or copies --------- */

static int l_index(lua_State *L) {
  if (lua_type(L, 2) == LUA_TNUMBER) {
    atc_tensor *t = acqL_checktensor(L, 1);
    int isint;
    int64_t i = (int64_t)lua_tointegerx(L, 2, &isint);
    atc_status st;
    if (!isint) luaL_error(L, "tensor index must be an integer");
    acqL_Tensor *b = acqL_newtensor(L);
    if (atc_select(&st, t, 0, i, &b->h)) return acqL_fail(L, "index", &st);
    return acqL_done(L, b);
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1)); /* the method table */
  return 1;
}

static int l_newindex(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  int isint;
  int64_t i = (int64_t)lua_tointegerx(L, 2, &isint);
  atc_status st;
  if (!isint) luaL_error(L, "tensors take integer indices only (fields cannot be set)");
  acqL_Tensor *row = acqL_newtensor(L); /* index 4 */
  if (atc_select(&st, t, 0, i, &row->h)) return acqL_fail(L, "index", &st);
  acqL_done(L, row);
  int rc = acqL_isscalar(L, 3) ? atc_fill_(&st, row->h, acqL_checkscalar(L, 3))
                               : atc_copy_(&st, row->h, acqL_checktensor(L, 3));
  if (rc) return acqL_fail(L, "index assignment", &st);
  return 0;
}

/* ---- registration ------------------------------------------------------- */

static const luaL_Reg methods[] = {
    {"free", l_tensor_free},   {"shape", l_shape},
    {"size", l_size},          {"dim", l_dim},
    {"numel", l_numel},        {"dtype", l_dtype},
    {"device", l_device},      {"nbytes", l_nbytes},
    {"item", l_item},          {"totable", l_totable},
    {"to", l_to},              {"float", l_float},
    {"double", l_double},      {"long", l_long},
    {"bool", l_bool},          {"cpu", l_cpu},
    {"cuda", l_cuda},          {"view", l_view},
    {"reshape", l_reshape},    {"permute", l_permute},    {"flip", l_flip},
    {"expand", l_expand},      {"repeat_", l_repeat},
    {"transpose", l_transpose}, {"squeeze", l_squeeze},
    {"unsqueeze", l_unsqueeze}, {"flatten", l_flatten},
    {"contiguous", l_contiguous}, {"clone", l_clone},
    {"narrow", l_narrow},      {"slice", l_slice},
    {"select", l_select},      {"index_select", l_index_select},
    {"gather", l_gather},      {"scatter", l_scatter},
    {"masked_fill", l_masked_fill}, {"copy_", l_copy_},
    {"fill_", l_fill_},        {"zero_", l_zero_},
    {NULL, NULL}};

static const luaL_Reg functions[] = {
    {"cat", l_cat},       {"stack", l_stack},     {"where", l_where},
    {NULL, NULL}};

void acqL_open_tensor(lua_State *L, int methods_idx, int module_idx) {
  /* metatable: lifecycle and indexing; arithmetic is added by l_math.c */
  luaL_getmetatable(L, ACQ_TENSOR_MT);
  lua_pushcfunction(L, l_tensor_free);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, l_tensor_free);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, l_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushvalue(L, methods_idx);
  lua_pushcclosure(L, l_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushliteral(L, ACQ_TENSOR_MT);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  acqL_setfuncs(L, methods_idx, methods);
  acqL_setfuncs(L, module_idx, functions);
}
