/***
 * l_math.c -- elementwise math, comparisons, arithmetic metamethods,
 * reductions and matmul for acq.Tensor.
 *
 * @module acq.core.math
 */
#include "acqL.h"

#include <string.h>

/***
 * Elementwise functions of one tensor, each as a method, a module function
 * and (where marked *) an in-place method with a trailing underscore:
 * t:neg()*, abs*, exp*, log*, sqrt*, rsqrt*, sin*, cos*, tanh*, sigmoid*,
 * relu*, sign*, floor*, ceil*, round* (half to even), trunc*, square*,
 * reciprocal*, log1p*, expm1*, erf*, log2*, logical_not, isnan, isinf,
 * isfinite. Example: t:exp(), acq.exp(t), t:relu_().
 * One C function serves them all (the op code is upvalue 1, its name 2).
 * @function unary
 */
static int l_unary(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  atc_unary_op op = (atc_unary_op)lua_tointeger(L, lua_upvalueindex(1));
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_unary(&st, op, t, &b->h)) return acqL_fail(L, lua_tostring(L, lua_upvalueindex(2)), &st);
  return acqL_done(L, b);
}

static int l_unary_(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  atc_unary_op op = (atc_unary_op)lua_tointeger(L, lua_upvalueindex(1));
  atc_status st;
  if (atc_unary_(&st, op, t)) return acqL_fail(L, lua_tostring(L, lua_upvalueindex(2)), &st);
  lua_settop(L, 1);
  return 1;
}

/* a op b where either side may be a number (but not both). */
static int binary(lua_State *L, atc_binary_op op, const char *name) {
  atc_status st;
  int rc;
  if (acqL_isscalar(L, 1)) {
    atc_scalar s = acqL_checkscalar(L, 1);
    atc_tensor *b = acqL_checktensor(L, 2);
    acqL_Tensor *r = acqL_newtensor(L);
    rc = atc_binary_scalar(&st, op, b, s, 1, &r->h);
    if (rc) return acqL_fail(L, name, &st);
    return acqL_done(L, r);
  }
  atc_tensor *a = acqL_checktensor(L, 1);
  if (acqL_isscalar(L, 2)) {
    atc_scalar s = acqL_checkscalar(L, 2);
    acqL_Tensor *r = acqL_newtensor(L);
    rc = atc_binary_scalar(&st, op, a, s, 0, &r->h);
    if (rc) return acqL_fail(L, name, &st);
    return acqL_done(L, r);
  }
  atc_tensor *b = acqL_checktensor(L, 2);
  acqL_Tensor *r = acqL_newtensor(L);
  if (atc_binary(&st, op, a, b, &r->h)) return acqL_fail(L, name, &st);
  return acqL_done(L, r);
}

/***
 * Elementwise functions of two tensors (or a tensor and a number),
 * broadcasting, as methods, module functions and (*) in-place methods:
 * t:add(u)*, sub*, mul*, div*, pow*, remainder*, floor_divide, maximum*,
 * minimum*, atan2, the comparisons eq, ne, lt, le, gt, ge (bool results),
 * logical_and, logical_or. The arithmetic metamethods + - * / ^ % // and
 * unary minus call the same kernels.
 * @function binary
 */
static int l_binary(lua_State *L) {
  return binary(L, (atc_binary_op)lua_tointeger(L, lua_upvalueindex(1)),
                lua_tostring(L, lua_upvalueindex(2)));
}

static int l_binary_(lua_State *L) {
  atc_tensor *a = acqL_checktensor(L, 1);
  atc_binary_op op = (atc_binary_op)lua_tointeger(L, lua_upvalueindex(1));
  atc_status st;
  int rc = acqL_isscalar(L, 2) ? atc_binary_scalar_(&st, op, a, acqL_checkscalar(L, 2))
                               : atc_binary_(&st, op, a, acqL_checktensor(L, 2));
  if (rc) return acqL_fail(L, lua_tostring(L, lua_upvalueindex(2)), &st);
  lua_settop(L, 1);
  return 1;
}

/* Metamethods: direct functions, no upvalue lookup on the hot path. */
static int mm_add(lua_State *L) { return binary(L, ATC_ADD, "add"); }
static int mm_sub(lua_State *L) { return binary(L, ATC_SUB, "sub"); }
static int mm_mul(lua_State *L) { return binary(L, ATC_MUL, "mul"); }
static int mm_div(lua_State *L) { return binary(L, ATC_DIV, "div"); }
static int mm_pow(lua_State *L) { return binary(L, ATC_POW, "pow"); }
static int mm_mod(lua_State *L) { return binary(L, ATC_REMAINDER, "remainder"); }
static int mm_idiv(lua_State *L) { return binary(L, ATC_FLOOR_DIVIDE, "floor_divide"); }
static int mm_unm(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_unary(&st, ATC_NEG, t, &b->h)) return acqL_fail(L, "neg", &st);
  return acqL_done(L, b);
}

/* a < b and a <= b compare one-element tensors (or a tensor and a number)
 * and give a boolean; elementwise comparison is t:lt(u), t:le(u). */
static int compare(lua_State *L, atc_binary_op op, const char *name) {
  atc_status st;
  atc_scalar s;
  binary(L, op, name);
  if (atc_item(&st, acqL_checktensor(L, -1), &s))
    return luaL_error(L, "%s: '%s' compares one-element tensors; use t:%s(u) for "
                      "elementwise comparison (%s)", name, op == ATC_LT ? "<" : "<=",
                      name, st.msg);
  lua_pushboolean(L, s.i != 0);
  return 1;
}
static int mm_lt(lua_State *L) { return compare(L, ATC_LT, "lt"); }
static int mm_le(lua_State *L) { return compare(L, ATC_LE, "le"); }

/* ---- clamp, leaky_relu -------------------------------------------------- */

/***
 * t:clamp(min, max): either may be nil.
 * @function clamp
 */
static int l_clamp(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  atc_scalar lo = {0, 0, 0}, hi = {0, 0, 0};
  int has_lo = !lua_isnoneornil(L, 2), has_hi = !lua_isnoneornil(L, 3);
  atc_status st;
  if (has_lo) lo = acqL_checkscalar(L, 2);
  if (has_hi) hi = acqL_checkscalar(L, 3);
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_clamp(&st, t, has_lo, lo, has_hi, hi, &b->h)) return acqL_fail(L, "clamp", &st);
  return acqL_done(L, b);
}

/***
 * acq.leaky_relu(x, slope) -> max(x, 0) + slope * min(x, 0).
 * @function leaky_relu
 */
static int l_leaky_relu(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  double slope = luaL_optnumber(L, 2, 0.01);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_leaky_relu(&st, t, slope, &b->h)) return acqL_fail(L, "leaky_relu", &st);
  return acqL_done(L, b);
}

/***
 * relu6 = clamp(x, 0, 6)
 * @function relu6
 */
static int l_relu6(lua_State *L) {
  lua_settop(L, 1);
  lua_pushinteger(L, 0);
  lua_pushinteger(L, 6);
  return l_clamp(L);
}

/* ---- reductions --------------------------------------------------------- */

/***
 * Reductions: t:sum([dims [, keepdim = false]]), mean, amin, amax,
 * logsumexp, any, all; dims is a dimension or a list of them (0-based),
 * none for the whole tensor (a 0-d result). One C function serves them all
 * (upvalue 1 = op, 2 = name).
 * @function reduce
 */
static int l_reduce(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  atc_reduce_op op = (atc_reduce_op)lua_tointeger(L, lua_upvalueindex(1));
  int64_t dims[ATC_MAX_DIMS];
  int nd = acqL_optdims(L, 2, dims);
  int keep = lua_toboolean(L, 3);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_reduce(&st, op, t, dims, nd, keep, &b->h))
    return acqL_fail(L, lua_tostring(L, lua_upvalueindex(2)), &st);
  return acqL_done(L, b);
}

/***
 * t:var([dims [, unbiased=true [, keepdim=false]]]); upvalue 1: std?
 * Registered as t:var (also t:std).
 * @function var
 */
static int l_var(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  int sd = lua_toboolean(L, lua_upvalueindex(1));
  int64_t dims[ATC_MAX_DIMS];
  int nd = acqL_optdims(L, 2, dims);
  int unbiased = lua_isnoneornil(L, 3) ? 1 : lua_toboolean(L, 3);
  int keep = lua_toboolean(L, 4);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_var(&st, t, dims, nd, unbiased, keep, sd, &b->h)) return acqL_fail(L, sd ? "std" : "var", &st);
  return acqL_done(L, b);
}

/***
 * t:max() -> 0-d max; t:max(dim [, keepdim]) -> values, indices;
 * t:max(u) -> elementwise maximum. Same for min. upvalue 1: is_max.
 * Registered as t:max (also t:min, as upvalue).
 * @function max
 */
static int l_minmax(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  int is_max = lua_toboolean(L, lua_upvalueindex(1));
  const char *name = is_max ? "max" : "min";
  atc_status st;
  if (lua_isnoneornil(L, 2)) {
    acqL_Tensor *b = acqL_newtensor(L);
    if (atc_reduce(&st, is_max ? ATC_AMAX : ATC_AMIN, t, NULL, 0, 0, &b->h))
      return acqL_fail(L, name, &st);
    return acqL_done(L, b);
  }
  if (acqL_testbox(L, 2)) {
    lua_settop(L, 2);
    return binary(L, is_max ? ATC_MAXIMUM : ATC_MINIMUM, is_max ? "maximum" : "minimum");
  }
  int64_t dim = luaL_checkinteger(L, 2);
  int keep = lua_toboolean(L, 3);
  acqL_Tensor *v = acqL_newtensor(L);
  acqL_Tensor *i = acqL_newtensor(L);
  if (atc_minmax_dim(&st, is_max, t, dim, keep, &v->h, &i->h)) return acqL_fail(L, name, &st);
  acqL_done(L, v);
  acqL_done(L, i);
  return 2;
}

/***
 * t:argmax([dim [, keepdim]])
 * Registered as t:argmax (also t:argmin).
 * @function argmax
 */
static int l_argminmax(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  int is_max = lua_toboolean(L, lua_upvalueindex(1));
  int has_dim = !lua_isnoneornil(L, 2);
  int64_t dim = has_dim ? luaL_checkinteger(L, 2) : 0;
  int keep = lua_toboolean(L, 3);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_argminmax(&st, is_max, t, has_dim, dim, keep, &b->h))
    return acqL_fail(L, is_max ? "argmax" : "argmin", &st);
  return acqL_done(L, b);
}

/***
 * t:matmul(u) / acq.matmul(t, u) -> the matrix product (batched as torch.matmul); mismatched shapes are an error naming them.
 * @function matmul
 */
static int l_matmul(lua_State *L) {
  atc_tensor *a = acqL_checktensor(L, 1), *b = acqL_checktensor(L, 2);
  atc_status st;
  acqL_Tensor *r = acqL_newtensor(L);
  if (atc_matmul(&st, a, b, &r->h)) return acqL_fail(L, "matmul", &st);
  return acqL_done(L, r);
}

/* ---- registration ------------------------------------------------------- */

static const struct {
  const char *name;
  int op;
  int inplace;
} UNARY[] = {
    {"neg", ATC_NEG, 1},         {"abs", ATC_ABS, 1},       {"exp", ATC_EXP, 1},
    {"log", ATC_LOG, 1},         {"sqrt", ATC_SQRT, 1},     {"rsqrt", ATC_RSQRT, 1},
    {"sin", ATC_SIN, 1},         {"cos", ATC_COS, 1},       {"tanh", ATC_TANH, 1},
    {"sigmoid", ATC_SIGMOID, 1}, {"relu", ATC_RELU, 1},     {"sign", ATC_SIGN, 1},
    {"floor", ATC_FLOOR, 1},     {"ceil", ATC_CEIL, 1},     {"round", ATC_ROUND, 1},
    {"trunc", ATC_TRUNC, 1},     {"square", ATC_SQUARE, 1}, {"reciprocal", ATC_RECIPROCAL, 1},
    {"log1p", ATC_LOG1P, 1},     {"expm1", ATC_EXPM1, 1},   {"erf", ATC_ERF, 1},
    {"log2", ATC_LOG2, 1},       {"logical_not", ATC_LOGICAL_NOT, 0},
    {"isnan", ATC_ISNAN, 0},     {"isinf", ATC_ISINF, 0},   {"isfinite", ATC_ISFINITE, 0},
    {NULL, 0, 0}};

static const struct {
  const char *name;
  int op;
  int inplace;
} BINARY[] = {
    {"add", ATC_ADD, 1},          {"sub", ATC_SUB, 1},
    {"mul", ATC_MUL, 1},          {"div", ATC_DIV, 1},
    {"pow", ATC_POW, 1},          {"remainder", ATC_REMAINDER, 1},
    {"floor_divide", ATC_FLOOR_DIVIDE, 0},
    {"maximum", ATC_MAXIMUM, 1},  {"minimum", ATC_MINIMUM, 1},
    {"atan2", ATC_ATAN2, 0},      {"eq", ATC_EQ, 0},
    {"ne", ATC_NE, 0},            {"lt", ATC_LT, 0},
    {"le", ATC_LE, 0},            {"gt", ATC_GT, 0},
    {"ge", ATC_GE, 0},            {"logical_and", ATC_LOGICAL_AND, 0},
    {"logical_or", ATC_LOGICAL_OR, 0},
    {NULL, 0, 0}};

static const struct {
  const char *name;
  int op;
} REDUCE[] = {{"sum", ATC_SUM},   {"mean", ATC_MEAN},           {"amin", ATC_AMIN},
              {"amax", ATC_AMAX}, {"logsumexp", ATC_LOGSUMEXP}, {"any", ATC_ANY},
              {"all", ATC_ALL},   {NULL, 0}};

/* Sets t[name] (t at index `into`) to a closure over (op, name). */
static void setclosure(lua_State *L, int into, lua_CFunction f, int op, const char *name,
                       const char *suffix) {
  lua_pushinteger(L, op);
  lua_pushstring(L, name);
  lua_pushcclosure(L, f, 2);
  lua_pushfstring(L, "%s%s", name, suffix);
  lua_insert(L, -2);
  lua_settable(L, into);
}

static void setbool(lua_State *L, int into, lua_CFunction f, int flag, const char *name) {
  lua_pushboolean(L, flag);
  lua_pushcclosure(L, f, 1);
  lua_setfield(L, into, name);
}

void acqL_open_math(lua_State *L, int methods, int module) {
  for (int i = 0; UNARY[i].name; i++) {
    setclosure(L, methods, l_unary, UNARY[i].op, UNARY[i].name, "");
    setclosure(L, module, l_unary, UNARY[i].op, UNARY[i].name, "");
    if (UNARY[i].inplace) setclosure(L, methods, l_unary_, UNARY[i].op, UNARY[i].name, "_");
  }
  for (int i = 0; BINARY[i].name; i++) {
    setclosure(L, methods, l_binary, BINARY[i].op, BINARY[i].name, "");
    setclosure(L, module, l_binary, BINARY[i].op, BINARY[i].name, "");
    if (BINARY[i].inplace) setclosure(L, methods, l_binary_, BINARY[i].op, BINARY[i].name, "_");
  }
  for (int i = 0; REDUCE[i].name; i++) {
    setclosure(L, methods, l_reduce, REDUCE[i].op, REDUCE[i].name, "");
    setclosure(L, module, l_reduce, REDUCE[i].op, REDUCE[i].name, "");
  }
  setbool(L, methods, l_var, 0, "var");
  setbool(L, methods, l_var, 1, "std");
  setbool(L, methods, l_minmax, 1, "max");
  setbool(L, methods, l_minmax, 0, "min");
  setbool(L, methods, l_argminmax, 1, "argmax");
  setbool(L, methods, l_argminmax, 0, "argmin");
  static const luaL_Reg plain[] = {{"matmul", l_matmul}, {"clamp", l_clamp},
                                   {"leaky_relu", l_leaky_relu}, {"relu6", l_relu6},
                                   {NULL, NULL}};
  acqL_setfuncs(L, methods, plain);
  acqL_setfuncs(L, module, plain);

  static const luaL_Reg meta[] = {{"__add", mm_add}, {"__sub", mm_sub}, {"__mul", mm_mul},
                                  {"__div", mm_div}, {"__pow", mm_pow}, {"__mod", mm_mod},
                                  {"__idiv", mm_idiv}, {"__unm", mm_unm}, {"__lt", mm_lt},
                                  {"__le", mm_le},   {NULL, NULL}};
  luaL_getmetatable(L, ACQ_TENSOR_MT);
  luaL_setfuncs(L, meta, 0);
  lua_pop(L, 1);
}
