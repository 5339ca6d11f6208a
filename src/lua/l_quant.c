/***
 * l_quant.c -- the fake quantizers from Lua: the quantizer methods of a
 * layer (m:set_quant, quant_state, act_bounds, set_act_bounds,
 * weight_codes; the rules live in src/quant/qmodule.c) and acq.core.quant
 * (fake_quantize, codes, bounds, check_bits).
 *
 * @module acq.core.quant
 */
#include "acqL.h"
#include "qmodule.h"

static acq_module *checkaffine(lua_State *L, int idx, const char *op) {
  acq_module *m = acqL_checkmodule(L, idx);
  if (!acq_module_is_affine(m))
    luaL_error(L, "%s: a %s layer has no quantizers (conv2d and linear do)", op, acq_mkind_name(m->kind));
  return m;
}

/* The bit width argument at idx, checked where every width is (fakequant.c). */
static int checkbits(lua_State *L, int idx, const char *op) {
  int bits = (int)luaL_checkinteger(L, idx);
  atc_status st;
  if (acq_fq_check_bits(&st, bits)) acqL_fail(L, op, &st);
  return bits;
}

/***
 * m:set_quant({weight_bits = 4, act_bits = 4, ema = 0}) on a conv2d or
 * linear layer; a width of nil or 32 removes that quantizer.
 * @function set_quant
 */
static int l_set_quant(lua_State *L) {
  acq_module *m = checkaffine(L, 1, "set_quant");
  luaL_checktype(L, 2, LUA_TTABLE);
  int wb = (int)acqL_optint(L, 2, "weight_bits", 32), ab = (int)acqL_optint(L, 2, "act_bits", 32);
  double ema = acqL_optnumfield(L, 2, "ema", 0.0);
  atc_status st;
  if (acq_module_set_quant(&st, m, wb, ab, ema)) return acqL_fail(L, "set_quant", &st);
  lua_settop(L, 1);
  return 1;
}

/***
 * m:quant_state("calibrate" | "frozen" | "off"): every quantizer below m.
 * calibrate: activation bounds follow the running min/max (or EMA) of
 * the inputs, which are quantized with the updated bounds; frozen: bounds
 * fixed; off: full precision. Weight bounds are always those of the
 * current weight.
 * @function quant_state
 */
static int l_quant_state(lua_State *L) {
  acq_module *m = acqL_checkmodule(L, 1);
  static const char *const names[] = {"calibrate", "frozen", "off", NULL};
  int state = luaL_checkoption(L, 2, NULL, names);
  acq_module_quant_state(m, (acq_fq_state)state); /* names in acq_fq_state order */
  lua_settop(L, 1);
  return 1;
}

typedef struct Bounds {
  lua_State *L;
  int table, n;
} Bounds;

static int bounds_visit(acq_module *m, const char *path, void *ud) {
  Bounds *b = ud;
  if (!m->aq) return 0;
  lua_State *L = b->L;
  lua_createtable(L, 0, 5);
  lua_pushstring(L, path);
  lua_setfield(L, -2, "name");
  lua_pushinteger(L, m->aq->bits);
  lua_setfield(L, -2, "bits");
  lua_pushinteger(L, m->aq->batches);
  lua_setfield(L, -2, "batches");
  if (m->aq->lo) {
    acqL_pushalias(L, m->aq->lo);
    lua_setfield(L, -2, "lo");
    acqL_pushalias(L, m->aq->hi);
    lua_setfield(L, -2, "hi");
  }
  lua_rawseti(L, b->table, ++b->n);
  return 0;
}

/***
 * m:act_bounds() -> list of {name, bits, batches, lo, hi} for every
 * activation quantizer below m, in module order (lo, hi: 0-d tensors, nil
 * before calibration).
 * @function act_bounds
 */
static int l_act_bounds(lua_State *L) {
  acq_module *m = acqL_checkmodule(L, 1);
  lua_settop(L, 1);
  lua_newtable(L);
  Bounds b = {L, 2, 0};
  acq_module_walk(m, bounds_visit, &b);
  return 1;
}

/***
 * m:set_act_bounds(lo, hi): freezes this layer's input bounds (numbers or
 * 0-d tensors), as when reading an exported model back.
 * @function set_act_bounds
 */
static int l_set_act_bounds(lua_State *L) {
  acq_module *m = checkaffine(L, 1, "set_act_bounds");
  atc_status st;
  atc_tensor *v[2] = {NULL, NULL};
  atc_device cpu = {ATC_CPU, -1};
  for (int i = 0; i < 2; i++) {
    acqL_Tensor *b = acqL_testbox(L, 2 + i);
    if (b && b->h) {
      if (atc_tensor_alias(&st, b->h, &v[i])) break;
    } else {
      atc_scalar s = {0, 0, luaL_checknumber(L, 2 + i)};
      if (atc_full(&st, NULL, 0, s, ATC_F32, cpu, &v[i])) break;
    }
  }
  int rc = (!v[0] || !v[1]) ? st.code : acq_module_set_act_bounds(&st, m, v[0], v[1]);
  atc_tensor_free(v[0]);
  atc_tensor_free(v[1]);
  if (rc) return acqL_fail(L, "set_act_bounds", &st);
  lua_settop(L, 1);
  return 1;
}

/***
 * m:weight_codes() -> codes (int64), scale, offset of this layer's weight,
 * eq. (1): weight ~= (codes + offset) * scale.
 * @function weight_codes
 */
static int l_weight_codes(lua_State *L) {
  acq_module *m = checkaffine(L, 1, "weight_codes");
  if (!m->wq) return luaL_error(L, "weight_codes: this layer's weight is not quantized");
  acqL_Tensor *c = acqL_newtensor(L), *s = acqL_newtensor(L), *o = acqL_newtensor(L);
  atc_status st;
  if (acq_fq_codes(&st, m->wq, m->params[0].t, &c->h, &s->h, &o->h))
    return acqL_fail(L, "weight_codes", &st);
  acqL_done(L, c);
  acqL_done(L, s);
  acqL_done(L, o);
  return 3;
}

/***
 * acq.quant.fake_quantize(x, lo, hi, bits) -- eqs. (1)-(2), straight-through
 * @function fake_quantize
 */
static int l_fake_quantize(lua_State *L) {
  atc_tensor *x = acqL_checktensor(L, 1), *lo = acqL_checktensor(L, 2), *hi = acqL_checktensor(L, 3);
  int bits = checkbits(L, 4, "fake_quantize");
  acqL_Tensor *r = acqL_newtensor(L);
  atc_status st;
  if (atc_fake_quantize(&st, x, lo, hi, bits, &r->h)) return acqL_fail(L, "fake_quantize", &st);
  return acqL_done(L, r);
}

/***
 * acq.quant.codes(x, lo, hi, bits) -> codes, scale, offset
 * @function codes
 */
static int l_codes(lua_State *L) {
  atc_tensor *x = acqL_checktensor(L, 1), *lo = acqL_checktensor(L, 2), *hi = acqL_checktensor(L, 3);
  int bits = checkbits(L, 4, "codes");
  acqL_Tensor *c = acqL_newtensor(L), *s = acqL_newtensor(L), *o = acqL_newtensor(L);
  atc_status st;
  if (atc_quantize_codes(&st, x, lo, hi, bits, &c->h, &s->h, &o->h)) return acqL_fail(L, "codes", &st);
  acqL_done(L, c);
  acqL_done(L, s);
  acqL_done(L, o);
  return 3;
}

/***
 * acq.quant.bounds(x, per_channel) -> lo, hi (per output channel [C,1,..],
 * or 0-d for the whole tensor)
 * @function bounds
 */
static int l_bounds(lua_State *L) {
  atc_tensor *x = acqL_checktensor(L, 1);
  int pc = lua_toboolean(L, 2);
  acqL_Tensor *lo = acqL_newtensor(L), *hi = acqL_newtensor(L);
  atc_status st;
  if (atc_minmax_bounds(&st, x, pc, &lo->h, &hi->h)) return acqL_fail(L, "bounds", &st);
  acqL_done(L, lo);
  acqL_done(L, hi);
  return 2;
}

/***
 * acq.quant.check_bits(n) -> n, or the error every width check gives
 * @function check_bits
 */
static int l_check_bits(lua_State *L) {
  lua_pushinteger(L, checkbits(L, 1, "check_bits"));
  return 1;
}

void acqL_open_quant(lua_State *L, int module, int methods) {
  static const luaL_Reg mfns[] = {
    {"set_quant", l_set_quant},           {"quant_state", l_quant_state},
    {"act_bounds", l_act_bounds},         {"set_act_bounds", l_set_act_bounds},
    {"weight_codes", l_weight_codes},     {NULL, NULL}};
  acqL_setfuncs(L, methods, mfns);
  static const luaL_Reg quant[] = {
    {"fake_quantize", l_fake_quantize}, {"codes", l_codes}, {"bounds", l_bounds},
    {"check_bits", l_check_bits},       {NULL, NULL}};
  lua_newtable(L);
  acqL_setfuncs(L, lua_gettop(L), quant);
  lua_setfield(L, module, "quant");
}
