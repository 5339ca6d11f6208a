/***
 * l_autograd.c -- requires_grad, backward, grad, detach and grad mode.
 *
 * @module acq.core.autograd
 */
#include "acqL.h"

/***
 * t:requires_grad_([on = true]) -> t
 * @function requires_grad_
 */
static int l_requires_grad_(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  int on = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
  atc_status st;
  if (atc_requires_grad_(&st, t, on)) return acqL_fail(L, "requires_grad_", &st);
  lua_settop(L, 1);
  return 1;
}

/***
 * t:requires_grad() -> whether autograd records operations on t.
 * @function requires_grad
 */
static int l_requires_grad(lua_State *L) {
  atc_meta m;
  atc_status st;
  if (atc_tensor_meta(&st, acqL_checktensor(L, 1), &m)) return acqL_fail(L, "requires_grad", &st);
  lua_pushboolean(L, m.requires_grad);
  return 1;
}

/***
 * t:is_leaf() -> true for a tensor made by the user (not the result of a recorded operation); only leaves keep t:grad().
 * @function is_leaf
 */
static int l_is_leaf(lua_State *L) {
  atc_meta m;
  atc_status st;
  if (atc_tensor_meta(&st, acqL_checktensor(L, 1), &m)) return acqL_fail(L, "is_leaf", &st);
  lua_pushboolean(L, m.is_leaf);
  return 1;
}

/***
 * t:backward([grad] [, {retain_graph = false}])
 * @function backward
 */
static int l_backward(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  atc_tensor *g = NULL;
  int opts = 2;
  atc_status st;
  if (acqL_testbox(L, 2)) {
    g = acqL_checktensor(L, 2);
    opts = 3;
  } else if (!lua_isnoneornil(L, 2) && lua_type(L, 2) != LUA_TTABLE) {
    return luaL_typeerror(L, 2, "tensor or options table");
  }
  int retain = acqL_optbool(L, opts, "retain_graph", 0);
  if (atc_backward(&st, t, g, retain)) return acqL_fail(L, "backward", &st);
  return 0;
}

/***
 * t:grad() -> the gradient tensor, or nil
 * @function grad
 */
static int l_grad(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_grad(&st, t, &b->h)) return acqL_fail(L, "grad", &st);
  if (!b->h) {
    lua_pushnil(L);
    return 1;
  }
  return acqL_done(L, b);
}

/***
 * t:zero_grad([set_to_none = false])
 * @function zero_grad
 */
static int l_zero_grad(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  atc_status st;
  if (atc_zero_grad(&st, t, lua_toboolean(L, 2))) return acqL_fail(L, "zero_grad", &st);
  return 0;
}

/***
 * t:detach() -> a tensor sharing t's storage, outside the autograd graph.
 * @function detach
 */
static int l_detach(lua_State *L) {
  atc_tensor *t = acqL_checktensor(L, 1);
  atc_status st;
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_detach(&st, t, &b->h)) return acqL_fail(L, "detach", &st);
  return acqL_done(L, b);
}

/***
 * acq.no_grad(fn, ...) -> fn(...) with gradient recording off; the previous
 * mode is restored whether fn returns or raises.
 * @function no_grad
 */
static int l_no_grad(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int prev = atc_grad_enabled();
  int nargs = lua_gettop(L) - 1;
  atc_set_grad_enabled(0);
  int rc = lua_pcall(L, nargs, LUA_MULTRET, 0);
  atc_set_grad_enabled(prev);
  if (rc != LUA_OK) return lua_error(L);
  return lua_gettop(L);
}

/***
 * acq.set_grad_enabled(on) -> previous
 * @function set_grad_enabled
 */
static int l_set_grad_enabled(lua_State *L) {
  int prev = atc_grad_enabled();
  luaL_checkany(L, 1);
  atc_set_grad_enabled(lua_toboolean(L, 1));
  lua_pushboolean(L, prev);
  return 1;
}

/***
 * acq.is_grad_enabled() -> false inside acq.no_grad(fn), true otherwise.
 * @function is_grad_enabled
 */
static int l_is_grad_enabled(lua_State *L) {
  lua_pushboolean(L, atc_grad_enabled());
  return 1;
}

static const luaL_Reg methods[] = {
    {"requires_grad_", l_requires_grad_}, {"requires_grad", l_requires_grad},
    {"is_leaf", l_is_leaf},               {"backward", l_backward},
    {"grad", l_grad},                     {"zero_grad", l_zero_grad},
    {"detach", l_detach},                 {NULL, NULL}};

static const luaL_Reg functions[] = {
    {"no_grad", l_no_grad},
    {"set_grad_enabled", l_set_grad_enabled},
    {"is_grad_enabled", l_is_grad_enabled},
    {NULL, NULL}};

void acqL_open_autograd(lua_State *L, int methods_idx, int module_idx) {
  acqL_setfuncs(L, methods_idx, methods);
  acqL_setfuncs(L, module_idx, functions);
}
