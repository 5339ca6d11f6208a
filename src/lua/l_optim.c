/***
 * l_optim.c -- acq.Optimizer userdata: Adam and SGD over a list of tensors.
 *
 * @module acq.core.optim
 */
#include <stdlib.h>
#include <string.h>

#include "acqL.h"

typedef struct Optim {
  atc_optim *o;
} Optim;

static atc_optim *checkoptim(lua_State *L, int idx) {
  Optim *b = (Optim *)luaL_checkudata(L, idx, ACQ_OPTIM_MT);
  if (!b->o) luaL_error(L, "attempt to use a freed optimizer");
  return b->o;
}

/***
 * opt:free() -> releases the optimizer and its state at once (also its __gc and __close); using it afterwards is an error.
 * @function free
 */
static int l_optim_free(lua_State *L) {
  Optim *b = (Optim *)luaL_checkudata(L, 1, ACQ_OPTIM_MT);
  atc_optim *o = b->o;
  b->o = NULL;
  atc_optim_free(o);
  return 0;
}

static Optim *newbox(lua_State *L) {
  Optim *b = (Optim *)lua_newuserdatauv(L, sizeof *b, 0);
  b->o = NULL;
  luaL_setmetatable(L, ACQ_OPTIM_MT);
  return b;
}

/***
 * acq.adam(params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8,
 * weight_decay = 0})
 * @function adam
 */
static int l_adam(lua_State *L) {
  int n;
  lua_settop(L, 2); /* options at 2 (maybe nil); the parameter array above */
  atc_tensor **ps = acqL_checktensorlist(L, 1, &n, "adam");
  double lr = acqL_optnumfield(L, 2, "lr", 1e-3);
  double b1 = 0.9, b2 = 0.999;
  if (!lua_isnoneornil(L, 2) && lua_getfield(L, 2, "betas") != LUA_TNIL) {
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    if (!lua_isnumber(L, -2) || !lua_isnumber(L, -1))
      luaL_error(L, "adam: betas must be a pair of numbers {beta1, beta2}");
    b1 = lua_tonumber(L, -2);
    b2 = lua_tonumber(L, -1);
    lua_pop(L, 3);
  } else if (!lua_isnoneornil(L, 2)) {
    lua_pop(L, 1);
  }
  double eps = acqL_optnumfield(L, 2, "eps", 1e-8);
  double wd = acqL_optnumfield(L, 2, "weight_decay", 0);
  atc_status st;
  Optim *b = newbox(L);
  if (atc_optim_adam_new(&st, ps, n, lr, b1, b2, eps, wd, &b->o)) return acqL_fail(L, "adam", &st);
  return 1;
}

/***
 * acq.sgd(params, {lr, momentum = 0, dampening = 0, weight_decay = 0,
 * nesterov = false})
 * @function sgd
 */
static int l_sgd(lua_State *L) {
  int n;
  lua_settop(L, 2);
  atc_tensor **ps = acqL_checktensorlist(L, 1, &n, "sgd");
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_getfield(L, 2, "lr");
  if (!lua_isnumber(L, -1)) luaL_error(L, "sgd: the options need a learning rate (lr = ...)");
  double lr = lua_tonumber(L, -1);
  lua_pop(L, 1);
  double mom = acqL_optnumfield(L, 2, "momentum", 0);
  double damp = acqL_optnumfield(L, 2, "dampening", 0);
  double wd = acqL_optnumfield(L, 2, "weight_decay", 0);
  int nesterov = acqL_optbool(L, 2, "nesterov", 0);
  atc_status st;
  Optim *b = newbox(L);
  if (atc_optim_sgd_new(&st, ps, n, lr, mom, damp, wd, nesterov, &b->o)) return acqL_fail(L, "sgd", &st);
  return 1;
}

/***
 * opt:step() -> one update of every parameter from its gradient (PyTorch's rule for Adam or SGD); parameters without a gradient are skipped.
 * @function step
 */
static int l_step(lua_State *L) {
  atc_status st;
  if (atc_optim_step(&st, checkoptim(L, 1))) return acqL_fail(L, "step", &st);
  return 0;
}

/***
 * opt:zero_grad([set_to_none = false])
 * @function zero_grad
 */
static int l_zero_grad(lua_State *L) {
  atc_status st;
  if (atc_optim_zero_grad(&st, checkoptim(L, 1), lua_toboolean(L, 2)))
    return acqL_fail(L, "zero_grad", &st);
  return 0;
}

/***
 * opt:lr() -> current; opt:lr(v) sets it
 * @function lr
 */
static int l_lr(lua_State *L) {
  atc_optim *o = checkoptim(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    lua_Number v = luaL_checknumber(L, 2);
    if (!(v >= 0)) luaL_error(L, "lr: the learning rate must be >= 0");
    atc_optim_set_lr(o, v);
  }
  lua_pushnumber(L, atc_optim_lr(o));
  return 1;
}

/***
 * opt:nparams() -> the number of parameter tensors the optimizer updates.
 * @function nparams
 */
static int l_nparams(lua_State *L) {
  lua_pushinteger(L, atc_optim_nparams(checkoptim(L, 1)));
  return 1;
}

static const char *slot_name(atc_optim *o, int k) {
  if (atc_optim_nslots(o) == 2) return k == 0 ? "exp_avg" : "exp_avg_sq";
  return "momentum_buffer";
}

/***
 * opt:state_dict() -> name -> tensor: "<slot>.<i>" (i counts parameters
 * from 0; absent before the first step), "step" [n] int64, "lr" f64 []
 * @function state_dict
 */
static int l_state_dict(lua_State *L) {
  atc_optim *o = checkoptim(L, 1);
  int n = atc_optim_nparams(o), ns = atc_optim_nslots(o);
  lua_settop(L, 1);
  lua_newtable(L); /* 2 */
  int64_t *steps = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)n, 0); /* 3 */
  atc_status st;
  for (int i = 0; i < n; i++) {
    for (int k = 0; k < ns; k++) {
      acqL_Tensor *b = acqL_newtensor(L);
      if (atc_optim_state_get(&st, o, i, k, &steps[i], &b->h)) return acqL_fail(L, "state_dict", &st);
      if (!b->h) {
        lua_pop(L, 1);
        continue;
      }
      acqL_done(L, b);
      lua_pushfstring(L, "%s.%d", slot_name(o, k), i);
      lua_insert(L, -2);
      lua_settable(L, 2);
    }
  }
  int64_t sz[1] = {n};
  acqL_Tensor *b = acqL_newtensor(L);
  if (atc_from_buffer(&st, steps, sz, 1, ATC_I64, &b->h)) return acqL_fail(L, "state_dict", &st);
  acqL_done(L, b);
  lua_setfield(L, 2, "step");
  double lr = atc_optim_lr(o);
  b = acqL_newtensor(L);
  if (atc_from_buffer(&st, &lr, NULL, 0, ATC_F64, &b->h)) return acqL_fail(L, "state_dict", &st);
  acqL_done(L, b);
  lua_setfield(L, 2, "lr");
  lua_settop(L, 2);
  return 1;
}

/***
 * opt:load_state_dict(t): the inverse; checks every entry before setting any.
 * @function load_state_dict
 */
static int l_load_state_dict(lua_State *L) {
  atc_optim *o = checkoptim(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int n = atc_optim_nparams(o), ns = atc_optim_nslots(o);
  lua_settop(L, 2);
  lua_getfield(L, 2, "step"); /* 3 */
  acqL_Tensor *sb = acqL_testbox(L, 3);
  if (!sb || !sb->h) return luaL_error(L, "load_state_dict: no 'step' tensor (not an optimizer state)");
  atc_meta m;
  atc_status st;
  if (atc_tensor_meta(&st, sb->h, &m)) return acqL_fail(L, "load_state_dict", &st);
  if (m.dtype != ATC_I64 || m.ndim != 1 || m.sizes[0] != n)
    return luaL_error(L, "load_state_dict: 'step' must be int64 [%d] (one per parameter)", n);
  int64_t *steps = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)(n ? n : 1), 0); /* 4 */
  if (atc_tensor_read(&st, sb->h, ATC_I64, steps, n))
    return acqL_fail(L, "load_state_dict", &st);
  /* every key must be known */
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    lua_pop(L, 1);
    const char *key = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
    int ok = strcmp(key, "step") == 0 || strcmp(key, "lr") == 0;
    for (int k = 0; k < ns && !ok; k++) {
      size_t len = strlen(slot_name(o, k));
      char *end;
      long i;
      if (strncmp(key, slot_name(o, k), len) == 0 && key[len] == '.') {
        i = strtol(key + len + 1, &end, 10);
        ok = *end == '\0' && i >= 0 && i < n;
      }
    }
    if (!ok)
      return luaL_error(L, "load_state_dict: unexpected entry '%s' (this is %s optimizer over %d tensors)", key,
                        ns == 2 ? "an Adam" : "an SGD", n);
  }
  const atc_tensor **bufs = lua_newuserdatauv(L, sizeof *bufs * (size_t)(n * ns + 1), 0); /* 5 */
  for (int i = 0; i < n; i++) {
    for (int k = 0; k < ns; k++) {
      lua_pushfstring(L, "%s.%d", slot_name(o, k), i);
      lua_gettable(L, 2); /* the value stays referenced by the table */
      acqL_Tensor *b = acqL_testbox(L, -1);
      if (!lua_isnil(L, -1) && (!b || !b->h))
        return luaL_error(L, "load_state_dict: entry %s.%d is not a tensor", slot_name(o, k), i);
      bufs[i * ns + k] = b ? b->h : NULL;
      lua_pop(L, 1);
    }
  }
  if (atc_optim_load_state(&st, o, steps, bufs)) return acqL_fail(L, "load_state_dict", &st);
  lua_getfield(L, 2, "lr");
  acqL_Tensor *lb = acqL_testbox(L, -1);
  if (lb && lb->h) {
    atc_scalar v;
    if (atc_item(&st, lb->h, &v)) return acqL_fail(L, "load_state_dict", &st);
    atc_optim_set_lr(o, v.is_int ? (double)v.i : v.d);
  }
  return 0;
}

static int l_tostring(lua_State *L) {
  Optim *b = (Optim *)luaL_checkudata(L, 1, ACQ_OPTIM_MT);
  if (!b->o) lua_pushliteral(L, "acq.Optimizer (freed)");
  else lua_pushfstring(L, "acq.Optimizer (%d tensors, lr %f)", atc_optim_nparams(b->o), atc_optim_lr(b->o));
  return 1;
}

static const luaL_Reg meta[] = {{"__gc", l_optim_free}, {"__close", l_optim_free},
                                {"__tostring", l_tostring}, {NULL, NULL}};
static const luaL_Reg methods[] = {{"step", l_step},       {"zero_grad", l_zero_grad},
                                   {"lr", l_lr},           {"nparams", l_nparams},
                                   {"state_dict", l_state_dict},
                                   {"load_state_dict", l_load_state_dict},
                                   {"free", l_optim_free}, {NULL, NULL}};
static const luaL_Reg functions[] = {{"adam", l_adam}, {"sgd", l_sgd}, {NULL, NULL}};

void acqL_open_optim(lua_State *L, int module) {
  if (luaL_newmetatable(L, ACQ_OPTIM_MT)) {
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  acqL_setfuncs(L, module, functions);
}
