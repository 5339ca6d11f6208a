/***
 * l_pth.c -- PyTorch's torch.save files from Lua (src/torch/atc_pickle.cpp).
 *
 *   acq.pth.load(path) -> tensors (name -> Tensor), names (list, file order),
 *                         info {skipped = non-tensor leaves such as "epoch"}
 *       A state_dict, or any nesting of dicts, lists and tuples of tensors
 *       ({"state_dict": ..., "epoch": 90}): names join the path with dots.
 *   acq.pth.save(path, tensors)      (atomic; torch.load returns a dict)
 *
 * The file's bytes are a Lua string (acq.read_file's reader) and the shim's
 * list lives in a userdata closed by __gc, so a failure at any point leaks
 * nothing and returns nothing half-loaded.
 *
 * @module acq.core.pth
 */
#include <stdlib.h>
#include <string.h>

#include "acqL.h"
#include "zipcheck.h"
#include "atomic.h"

#define ACQ_NAMED_MT "acq.NamedList"

static int named_gc(lua_State *L) {
  atc_named_list_free(luaL_checkudata(L, 1, ACQ_NAMED_MT));
  return 0;
}

/***
 * acq.pth.load(path) -> tensors (name -> Tensor), metadata: a torch.save file (zip or legacy) read without executing any pickle code; only tensors, containers and the globals a state dict uses are accepted, nesting deeper than 1,000 levels is refused.
 * @function load
 */
static int l_pth_load(lua_State *L) {
  const char *path = acqL_checkpath(L, 1);
  lua_settop(L, 1);
  size_t n;
  const char *bytes = acqL_read_file(L, path, &n); /* 2 */
  atc_named_list *l = lua_newuserdatauv(L, sizeof *l, 0); /* 3 */
  memset(l, 0, sizeof *l);
  luaL_setmetatable(L, ACQ_NAMED_MT);
  atc_status st;
  if (n >= 4 && memcmp(bytes, "PK\3\4", 4) == 0) { /* sizes and CRCs before anything inflates */
    char zerr[512];
    if (acq_zip_check((const uint8_t *)bytes, n, (uint64_t)1 << 40, zerr, sizeof zerr))
      return luaL_error(L, "%s: %s", path, zerr);
  }
  if (atc_pth_load(&st, bytes, n, l)) return luaL_error(L, "%s: %s", path, st.msg);
  lua_createtable(L, 0, (int)l->n); /* 4: tensors */
  lua_createtable(L, (int)l->n, 0); /* 5: names   */
  for (int64_t i = 0; i < l->n; i++) {
    acqL_Tensor *b = acqL_newtensor(L);
    b->h = l->tensors[i];
    l->tensors[i] = NULL; /* the box owns it now */
    acqL_done(L, b);
    lua_setfield(L, 4, l->names[i]);
    lua_pushstring(L, l->names[i]);
    lua_rawseti(L, 5, (lua_Integer)i + 1);
  }
  lua_createtable(L, 0, 1); /* 6 */
  lua_pushinteger(L, l->skipped);
  lua_setfield(L, 6, "skipped");
  atc_named_list_free(l);
  return 3;
}

/***
 * acq.pth.save(path, tensors) -> writes name -> Tensor as a torch.save state dict that PyTorch's torch.load reads.
 * @function save
 */
static int l_pth_save(lua_State *L) {
  const char *path = acqL_checkpath(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  int n;
  const char **names = acqL_sorted_names(L, 2, &n, path); /* 3 */
  atc_tensor **ts = lua_newuserdatauv(L, sizeof(atc_tensor *) * (n ? n : 1), 0); /* 4 */
  for (int i = 0; i < n; i++) {
    lua_getfield(L, 2, names[i]);
    if (!acqL_testbox(L, -1)) return luaL_error(L, "%s: '%s' is not a tensor", path, names[i]);
    ts[i] = acqL_checktensor(L, -1); /* anchored in the table */
    lua_pop(L, 1);
  }
  void *data;
  size_t size;
  atc_status st;
  if (atc_pth_save(&st, names, (const atc_tensor *const *)ts, n, &data, &size))
    return luaL_error(L, "%s: %s", path, st.msg);
  acq_part part = {data, size};
  char err[512];
  int rc = acq_atomic_write(path, &part, 1, err, sizeof err);
  free(data);
  if (rc) return luaL_error(L, "%s", err);
  return 0;
}

void acqL_open_pth(lua_State *L, int module) {
  luaL_newmetatable(L, ACQ_NAMED_MT);
  lua_pushcfunction(L, named_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"load", l_pth_load}, {"save", l_pth_save}, {NULL, NULL}};
  lua_newtable(L);
  acqL_setfuncs(L, lua_gettop(L), fns);
  lua_setfield(L, module, "pth");
}
