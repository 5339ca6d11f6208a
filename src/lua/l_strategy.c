/***
 * l_strategy.c -- the C pieces of the training strategies and variants:
 * AIT's inundation factor search (acq.core.quant.inundation_factor,
 * level_change_share) and the fixed 2-D sinusoidal position encoding
 * (acq.core.sincos2d). Registered after l_module.c made acq.core.quant.
 *
 * @module acq.core.strategy
 */
#include "acqL.h"
#include "inundation.h"
#include "posenc.h"

/* The per_channel option at opts (default true: weights are quantized per
 * output channel). */
static int per_channel(lua_State *L, int opts) {
  int pc = 1;
  if (lua_type(L, opts) == LUA_TTABLE) {
    lua_getfield(L, opts, "per_channel");
    if (!lua_isnil(L, -1)) pc = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  return pc;
}

/***
 * acq.quant.level_change_share(w, d, bits, {per_channel = true, alpha = 1})
 * -> the share of w's weight-quantizer levels that change when w moves by
 * alpha * d
 * @function level_change_share
 */
static int l_level_change_share(lua_State *L) {
  atc_tensor *w = acqL_checktensor(L, 1), *d = acqL_checktensor(L, 2);
  int bits = (int)luaL_checkinteger(L, 3);
  int pc = per_channel(L, 4);
  double alpha = acqL_optnumfield(L, 4, "alpha", 1.0), share = 0;
  atc_status st;
  if (acq_level_change_share(&st, w, d, bits, pc, alpha, &share)) return acqL_fail(L, "level_change_share", &st);
  lua_pushnumber(L, share);
  return 1;
}

/***
 * acq.quant.inundation_factor(w, d, bits, {threshold = 1e-3, per_channel = true,
 * bisections = 5, max_doublings = 30}) -> alpha, share
 * AIT's search: alpha doubled from 1 until the share of changed levels
 * reaches threshold, then `bisections` bisection steps (inundation.h).
 * @function inundation_factor
 */
static int l_inundation_factor(lua_State *L) {
  atc_tensor *w = acqL_checktensor(L, 1), *d = acqL_checktensor(L, 2);
  int bits = (int)luaL_checkinteger(L, 3);
  if (!lua_isnoneornil(L, 4)) luaL_checktype(L, 4, LUA_TTABLE);
  int pc = per_channel(L, 4);
  double thr = acqL_optnumfield(L, 4, "threshold", 1e-3);
  int bis = (int)acqL_optnumfield(L, 4, "bisections", 5);
  int dbl = (int)acqL_optnumfield(L, 4, "max_doublings", 30);
  double alpha = 1, share = 0;
  atc_status st;
  if (acq_inundation_factor(&st, w, d, bits, pc, thr, bis, dbl, &alpha, &share))
    return acqL_fail(L, "inundation_factor", &st);
  lua_pushnumber(L, alpha);
  lua_pushnumber(L, share);
  return 2;
}

/***
 * acq.sincos2d(p [N] int64, h, w, dim, {dtype = "f32"}) -> [N, dim]: the 2-D
 * sinusoidal encoding of cell p of an h x w grid (posenc.h)
 * @function sincos2d
 */
static int l_sincos2d(lua_State *L) {
  atc_tensor *p = acqL_checktensor(L, 1);
  int64_t h = luaL_checkinteger(L, 2), w = luaL_checkinteger(L, 3), dim = luaL_checkinteger(L, 4);
  atc_dtype dt = ATC_F32;
  if (lua_type(L, 5) == LUA_TTABLE) {
    lua_getfield(L, 5, "dtype");
    if (!lua_isnil(L, -1)) dt = acqL_checkdtype(L, -1);
    lua_pop(L, 1);
  }
  acqL_Tensor *r = acqL_newtensor(L);
  atc_status st;
  if (acq_pos_sincos2d(&st, p, h, w, dim, dt, &r->h)) return acqL_fail(L, "sincos2d", &st);
  return acqL_done(L, r);
}

void acqL_open_strategy(lua_State *L, int module) {
  lua_getfield(L, module, "quant");
  lua_pushcfunction(L, l_level_change_share);
  lua_setfield(L, -2, "level_change_share");
  lua_pushcfunction(L, l_inundation_factor);
  lua_setfield(L, -2, "inundation_factor");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_sincos2d);
  lua_setfield(L, module, "sincos2d");
}
