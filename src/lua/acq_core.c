/*
 * acq_core.c -- luaopen_acq_core: builds the acq.core module table (one
 * sub-table per concept: tensor, math, functional, autograd, optim,
 * runtime, io, nn, quant, loss), the acq.Tensor metatable and its method
 * table, and lets each area register.
 */
#include "acqL.h"

#include "acq/acq.h"

int luaopen_acq_core(lua_State *L) {
  acqL_memory(L); /* create the accounting block before any tensor exists */
  luaL_newmetatable(L, ACQ_TENSOR_MT);
  lua_pop(L, 1);
  lua_newtable(L); /* module  */
  int module = lua_gettop(L);
  lua_newtable(L); /* methods */
  int methods = lua_gettop(L);
  /* one sub-table per concept; acq (lua/acq/init.lua) flattens them into
   * its PyTorch-like names (acq.zeros, acq.conv2d, ...) */
  static const char *const groups[] = {"tensor", "math", "functional", "autograd", "optim", "runtime", "io"};
  int g[7];
  for (int i = 0; i < 7; i++) {
    lua_newtable(L);
    g[i] = lua_gettop(L);
  }
  acqL_open_tensor(L, methods, g[0]);
  acqL_open_create(L, g[0]);
  acqL_open_math(L, methods, g[1]);
  acqL_open_nn(L, methods, g[2]);
  acqL_open_autograd(L, methods, g[3]);
  acqL_open_optim(L, g[4]);
  acqL_open_runtime(L, g[5]);
  acqL_open_data(L, g[6]);
  acqL_open_pth(L, g[6]);
  acqL_open_json(L, g[6]);
  acqL_open_module(L, module); /* acq.core.nn (layers) and acq.core.quant */
  acqL_open_loss(L, module);   /* acq.core.loss (and attention) */
  acqL_open_strategy(L, module);
  acqL_open_dist(L, module);    /* acq.core.dist */
  /* the map and encoding functions belong with the functional ones */
  static const char *const moved[] = {"attention", "sincos2d"};
  for (int i = 0; i < 2; i++) {
    lua_getfield(L, module, moved[i]);
    lua_setfield(L, g[2], moved[i]);
    lua_pushnil(L);
    lua_setfield(L, module, moved[i]);
  }
  for (int i = 6; i >= 0; i--) {
    lua_pushvalue(L, g[i]);
    lua_setfield(L, module, groups[i]);
  }
  lua_settop(L, methods);
  /* acq.Tensor: the method table, so Lua code can add methods to tensors */
  lua_setfield(L, module, "Tensor");
  lua_pushliteral(L, ACQ_VERSION);
  lua_setfield(L, module, "version");
  return 1;
}
