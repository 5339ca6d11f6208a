/*
 * acq_core.c -- luaopen_acq_core: builds the acq.core module table, the
 * acq.Tensor metatable and its method table, and lets each area register.
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
  acqL_open_tensor(L, methods, module);
  acqL_open_create(L, module);
  acqL_open_math(L, methods, module);
  acqL_open_nn(L, methods, module);
  acqL_open_autograd(L, methods, module);
  acqL_open_optim(L, module);
  acqL_open_runtime(L, module);
  acqL_open_data(L, module);
  acqL_open_pth(L, module);
  acqL_open_json(L, module);
  acqL_open_module(L, module);
  acqL_open_loss(L, module);
  acqL_open_strategy(L, module);
  /* acq.Tensor: the method table, so Lua code can add methods to tensors */
  lua_setfield(L, module, "Tensor");
  lua_pushliteral(L, ACQ_VERSION);
  lua_setfield(L, module, "version");
  return 1;
}
