/***
 * l_module.c -- acq.Module: a model (src/nn/module.c) from Lua, and its
 * parameters: forward, traversal, state dicts, gradients, devices,
 * printing. The layer constructors (acq.nn.*) are l_layers.c; the quantizer
 * methods and acq.quant are l_quant.c.
 *
 * A module userdata holds one reference to its C module; children are held
 * by reference in C, so a model stays whole whatever Lua drops. m.name
 * finds a child by name (m.layer1[0] is m.layer1["0"]).
 *
 * @module acq.core.module
 */
#include <stdlib.h>
#include <string.h>

#include "acqL.h"
#include "module.h"

typedef struct ModBox {
  acq_module *m;
} ModBox;

static acq_module *checkmod(lua_State *L, int idx) {
  ModBox *b = luaL_checkudata(L, idx, ACQ_MODULE_MT);
  if (!b->m) luaL_error(L, "attempt to use a freed module");
  return b->m;
}

static acq_module *testmod(lua_State *L, int idx) {
  ModBox *b = luaL_testudata(L, idx, ACQ_MODULE_MT);
  return b ? b->m : NULL;
}

/* Pushes a new box taking over one reference to m. */
static void pushmod(lua_State *L, acq_module *m) {
  ModBox *b = lua_newuserdatauv(L, sizeof *b, 1);
  b->m = NULL;
  luaL_setmetatable(L, ACQ_MODULE_MT);
  b->m = m;
}

/* Pushes an alias of t (a new Lua tensor sharing storage and autograd
 * identity with the module's tensor). */
static void pushalias(lua_State *L, atc_tensor *t) {
  acqL_Tensor *b = acqL_newtensor(L);
  atc_status st;
  if (atc_tensor_alias(&st, t, &b->h)) acqL_fail(L, "alias", &st);
  acqL_done(L, b);
}

static int mod_gc(lua_State *L) {
  ModBox *b = luaL_checkudata(L, 1, ACQ_MODULE_MT);
  acq_module *m = b->m;
  b->m = NULL;
  acq_module_free(m);
  return 0;
}

/* ---- forward ------------------------------------------------------------------ */

static const char *const BN_MODE_NAMES[] = {"eval", "batch", "train"}; /* acq_bn_mode order */

static int parse_bn_mode(lua_State *L, const char *s) {
  for (int i = 0; i < 3; i++)
    if (strcmp(s, BN_MODE_NAMES[i]) == 0) return i;
  return luaL_error(L, "bn mode must be \"eval\", \"batch\" or \"train\", got \"%s\"", s);
}

#define ACQ_FWD_MT "acq.ForwardContext"

static int fwd_gc(lua_State *L) {
  acq_fwd_clear(lua_touserdata(L, 1));
  return 0;
}

/* Pushes a new tensor box that takes over *h (set to NULL). */
static void adopt(lua_State *L, atc_tensor **h) {
  acqL_Tensor *b = acqL_newtensor(L);
  b->h = *h;
  *h = NULL;
  acqL_done(L, b);
}

/* Option `key` of a forward: a child's name (or 0-based index) -> index. */
static int opt_child(lua_State *L, acq_module *m, const char *key, int def) {
  int t = lua_getfield(L, 3, key), i = def;
  if (t == LUA_TNUMBER) {
    i = (int)luaL_checkinteger(L, -1);
    if (i < 0 || i >= m->nchild) luaL_error(L, "forward: %s = %d is not a child index (0..%d)", key, i, m->nchild - 1);
  } else if (t == LUA_TSTRING) {
    i = acq_module_child_index(m, lua_tostring(L, -1));
    if (i < 0) luaL_error(L, "forward: %s = '%s' is not a child of this module", key, lua_tostring(L, -1));
  } else if (t != LUA_TNIL) {
    luaL_error(L, "forward: %s must be a child's name or index", key);
  }
  lua_pop(L, 1);
  return i;
}

/***
 * m:forward(x [, {bn = "eval", stats = false|true|"sample", features = false,
 * labels = y, from = child, to = child}])
 * -> y [, aux]  where aux = {features = T, stats = {{name, mean, var,
 * running_mean, running_var, eps}, ...}} when either was asked for.
 * stats = "sample": each BN input's mean and variance per sample ([N,C],
 * over H,W) instead of over the batch ([C]).
 * labels: the classes of class-conditional BN layers. from/to (names or
 * 0-based indices, both inclusive): run only those children of a sequential.
 * @function forward
 */
static int l_forward(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  atc_tensor *x = acqL_checktensor(L, 2);
  int mode = ACQ_BN_EVAL, stats = 0, feats = 0, from = -1, to = -1;
  atc_tensor *labels = NULL;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    if (lua_getfield(L, 3, "bn") != LUA_TNIL) mode = parse_bn_mode(L, luaL_checkstring(L, -1));
    lua_pop(L, 1);
    if (lua_getfield(L, 3, "stats") == LUA_TSTRING) {
      if (strcmp(lua_tostring(L, -1), "sample") != 0)
        return luaL_error(L, "forward: stats must be true, false or \"sample\", got \"%s\"", lua_tostring(L, -1));
      stats = ACQ_RECORD_SAMPLE;
    } else {
      stats = lua_toboolean(L, -1) ? ACQ_RECORD_BATCH : ACQ_RECORD_NONE;
    }
    lua_pop(L, 1);
    feats = acqL_optbool(L, 3, "features", 0);
    if (lua_getfield(L, 3, "labels") != LUA_TNIL) labels = acqL_checktensor(L, -1);
    lua_pop(L, 1); /* still referenced by the options table */
    from = opt_child(L, m, "from", -1);
    to = opt_child(L, m, "to", -1);
  }
  lua_settop(L, 3);
  /* the context lives in a userdata so an error below frees it */
  acq_fwd *c = lua_newuserdatauv(L, sizeof *c, 0); /* 4 */
  acq_fwd_init(c, mode, stats);
  c->labels = labels;
  luaL_setmetatable(L, ACQ_FWD_MT);
  acqL_Tensor *y = acqL_newtensor(L); /* 5 */
  atc_status st;
  int rc = from < 0 && to < 0
               ? acq_module_forward(&st, c, m, x, &y->h)
               : acq_module_forward_range(&st, c, m, from < 0 ? 0 : from, to < 0 ? m->nchild : to + 1, x, &y->h);
  if (rc) return acqL_fail(L, "forward", &st);
  acqL_done(L, y);
  if (!stats && !feats) {
    acq_fwd_clear(c);
    return 1;
  }
  lua_createtable(L, 0, 2); /* 6: aux */
  if (feats) {
    if (!c->features) return luaL_error(L, "forward: features requested but no module of this model is tapped (m:set_tap())");
    adopt(L, &c->features);
    lua_setfield(L, 6, "features");
  }
  if (stats) {
    lua_createtable(L, c->nstats, 0);
    for (int i = 0; i < c->nstats; i++) {
      acq_bnstat *s = &c->stats[i];
      lua_createtable(L, 0, 6);
      lua_pushstring(L, s->path);
      lua_setfield(L, -2, "name");
      adopt(L, &s->mean);
      lua_setfield(L, -2, "mean");
      adopt(L, &s->var);
      lua_setfield(L, -2, "var");
      pushalias(L, s->bn->params[2].t);
      lua_setfield(L, -2, "running_mean");
      pushalias(L, s->bn->params[3].t);
      lua_setfield(L, -2, "running_var");
      lua_pushnumber(L, s->bn->eps);
      lua_setfield(L, -2, "eps");
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, 6, "stats");
  }
  acq_fwd_clear(c);
  lua_pushvalue(L, 5);
  lua_pushvalue(L, 6);
  return 2;
}

/* ---- traversal-based methods ---------------------------------------------- */

typedef struct Collect {
  lua_State *L;
  int table, n;
  int trainable_only, with_names; /* with_names: 0 list, 1 {name, t} pairs, 2 map */
} Collect;

static void join(char *buf, size_t n, const char *path, const char *name) {
  snprintf(buf, n, path[0] ? "%s.%s" : "%s%s", path, name);
}

static int collect_params(acq_module *m, const char *path, void *ud) {
  Collect *c = ud;
  for (int i = 0; i < m->nparams; i++) {
    acq_param *p = &m->params[i];
    if (!p->t || (c->trainable_only && p->buffer)) continue;
    if (c->with_names) {
      char key[ACQ_PATH_MAX + 32];
      join(key, sizeof key, path, p->name);
      lua_pushstring(c->L, key);
      pushalias(c->L, p->t);
      if (c->with_names == 2) { /* name -> tensor, plus the ordered names */
        lua_pushvalue(c->L, -2);
        lua_rawseti(c->L, c->table + 1, ++c->n);
        lua_settable(c->L, c->table);
      } else { /* list of {name, tensor} */
        lua_createtable(c->L, 2, 0);
        lua_insert(c->L, -3);
        lua_rawseti(c->L, -3, 2);
        lua_rawseti(c->L, -2, 1);
        lua_rawseti(c->L, c->table, ++c->n);
      }
    } else {
      pushalias(c->L, p->t);
      lua_rawseti(c->L, c->table, ++c->n);
    }
  }
  return 0;
}

/***
 * m:parameters() -> list of the trainable tensors (aliases);
 * m:named_parameters() -> list of {name, tensor}. upvalue 1: with names.
 * @function named_parameters
 */
static int l_parameters(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  lua_settop(L, 1);
  lua_newtable(L);
  Collect c = {L, 2, 0, 1, lua_toboolean(L, lua_upvalueindex(1))};
  acq_module_walk(m, collect_params, &c);
  return 1;
}

/***
 * m:state_dict() -> name -> tensor (aliases of parameters and buffers),
 * names in module order
 * @function state_dict
 */
static int l_state_dict(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  lua_settop(L, 1);
  lua_newtable(L); /* 2 */
  lua_newtable(L); /* 3 */
  Collect c = {L, 2, 0, 0, 2};
  acq_module_walk(m, collect_params, &c);
  return 2;
}

typedef struct Modules {
  lua_State *L;
  int table, n;
  int only_kind; /* -1: every module */
} Modules;

static int collect_modules(acq_module *m, const char *path, void *ud) {
  Modules *c = ud;
  if (c->only_kind >= 0 && (int)m->kind != c->only_kind &&
      !(c->only_kind == ACQ_M_CONV2D && m->kind == ACQ_M_LINEAR))
    return 0;
  lua_createtable(c->L, 2, 0);
  lua_pushstring(c->L, path);
  lua_rawseti(c->L, -2, 1);
  pushmod(c->L, acq_module_retain(m));
  lua_rawseti(c->L, -2, 2);
  lua_rawseti(c->L, c->table, ++c->n);
  return 0;
}

/***
 * m:named_modules([kind]) -> list of {path, module} in module order;
 * kind "conv2d" gives conv2d and linear layers (the quantizable ones).
 * @function named_modules
 */
static int l_named_modules(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  int kind = -1;
  if (!lua_isnoneornil(L, 2)) {
    const char *k = luaL_checkstring(L, 2);
    for (int i = 0; i < ACQ_M_KIND_COUNT; i++)
      if (strcmp(k, acq_mkind_name((acq_mkind)i)) == 0) kind = i;
    if (kind < 0) return luaL_error(L, "named_modules: unknown module kind '%s'", k);
  }
  lua_settop(L, 2);
  lua_newtable(L);
  Modules c = {L, 3, 0, kind};
  acq_module_walk(m, collect_modules, &c);
  return 1;
}

/* ---- load_state_dict ----------------------------------------------------------- */

typedef struct Loader {
  lua_State *L;
  int src, missing, mismatch, seen;  /* stack indices of tables */
  int nmissing, nmismatch;
  int checking;                      /* 1: validate only; 0: copy */
  atc_status st;
  int failed;
} Loader;

static void shape_str(const atc_meta *m, char *buf, size_t n) {
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int d = 0; d < m->ndim && k < n; d++)
    k += (size_t)snprintf(buf + k, n - k, d ? ",%lld" : "%lld", (long long)m->sizes[d]);
  if (k < n) snprintf(buf + k, n - k, "]");
}

static int load_visit(acq_module *m, const char *path, void *ud) {
  Loader *ld = ud;
  lua_State *L = ld->L;
  for (int i = 0; i < m->nparams; i++) {
    acq_param *p = &m->params[i];
    if (!p->t) continue;
    char key[ACQ_PATH_MAX + 32];
    join(key, sizeof key, path, p->name);
    lua_getfield(L, ld->src, key);
    acqL_Tensor *b = acqL_testbox(L, -1);
    if (ld->checking) {
      lua_pushboolean(L, 1);
      lua_setfield(L, ld->seen, key);
      if (lua_isnil(L, -1)) {
        lua_pushstring(L, key);
        lua_rawseti(L, ld->missing, ++ld->nmissing);
      } else {
        atc_meta want, got;
        atc_tensor_meta(&ld->st, p->t, &want);
        int bad = !b || !b->h;
        if (!bad) {
          atc_tensor_meta(&ld->st, b->h, &got);
          bad = want.ndim != got.ndim || memcmp(want.sizes, got.sizes, sizeof(int64_t) * want.ndim);
        }
        if (bad) {
          char ws[128] = "", gs[128] = "a non-tensor";
          shape_str(&want, ws, sizeof ws);
          if (b && b->h) {
            gs[0] = 0;
            char tmp[120];
            shape_str(&got, tmp, sizeof tmp);
            snprintf(gs, sizeof gs, "shape %s", tmp);
          }
          lua_pushfstring(L, "'%s' has %s, model expects %s", key, gs, ws);
          lua_rawseti(L, ld->mismatch, ++ld->nmismatch);
        }
      }
    } else if (b && b->h) {
      if (atc_copy_(&ld->st, p->t, b->h)) {
        lua_pop(L, 1);
        ld->failed = 1;
        return 1;
      }
    }
    lua_pop(L, 1);
  }
  return 0;
}

/***
 * m:load_state_dict(tensors [, {strict = true, source = "name"}])
 * -> missing keys, unexpected keys (lists). Everything is checked before
 * anything is copied: on error the model is unchanged.
 * @function load_state_dict
 */
static int l_load_state_dict(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int strict = acqL_optbool(L, 3, "strict", 1);
  const char *source = "load_state_dict";
  if (lua_istable(L, 3)) {
    lua_getfield(L, 3, "source");
    if (lua_isstring(L, -1)) source = lua_tostring(L, -1); /* anchored in the options */
    lua_pop(L, 1);
  }
  lua_settop(L, 3);
  lua_newtable(L); /* 4 missing  */
  lua_newtable(L); /* 5 mismatch */
  lua_newtable(L); /* 6 seen     */
  lua_newtable(L); /* 7 unexpected */
  Loader ld = {L, 2, 4, 5, 6, 0, 0, 1, {0, ""}, 0};
  acq_module_walk(m, load_visit, &ld);
  int nunexp = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    if (lua_gettable(L, 6) == LUA_TNIL) {
      lua_pushvalue(L, -2);
      lua_rawseti(L, 7, ++nunexp);
    }
    lua_pop(L, 1);
  }
  if (ld.nmismatch || (strict && (ld.nmissing || nunexp))) {
    /* the message is assembled by a small Lua chunk */
    lua_settop(L, 7);
    if (luaL_loadstring(L,
      "local src, mism, miss, unexp, strict = ...\n"
      "table.sort(unexp)\n"
      "local out = {src .. ': the weights do not fit the model:'}\n"
      "local function list(t, one, many)\n"
      "  if #t == 0 then return end\n"
      "  out[#out + 1] = ('  %d %s: %s'):format(#t, #t == 1 and one or many, table.concat(t, ', '))\n"
      "end\n"
      "for _, m in ipairs(mism) do out[#out + 1] = '  shape mismatch: ' .. m end\n"
      "if strict then list(miss, 'missing key', 'missing keys'); list(unexp, 'unexpected key', 'unexpected keys') end\n"
      "return table.concat(out, '\\n')") != LUA_OK)
      return lua_error(L);
    lua_pushstring(L, source);
    lua_pushvalue(L, 5);
    lua_pushvalue(L, 4);
    lua_pushvalue(L, 7);
    lua_pushboolean(L, strict);
    lua_call(L, 5, 1);
    return lua_error(L);
  }
  /* every check passed: copy */
  int grad = atc_grad_enabled();
  atc_set_grad_enabled(0);
  ld.checking = 0;
  acq_module_walk(m, load_visit, &ld);
  atc_set_grad_enabled(grad);
  if (ld.failed) return luaL_error(L, "%s: %s", source, ld.st.msg);
  lua_pushvalue(L, 4);
  lua_pushvalue(L, 7);
  return 2;
}

/* ---- configuration ------------------------------------------------------------ */

/***
 * m:fix_bn(mode|nil): every BN below m runs in mode whatever the forward
 * asks (Q: "eval"); nil follows the forward's mode again.
 * @function fix_bn
 */
static int l_fix_bn(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  int mode = lua_isnoneornil(L, 2) ? -1 : parse_bn_mode(L, luaL_checkstring(L, 2));
  acq_module_fix_bn(m, mode);
  lua_settop(L, 1);
  return 1;
}

/***
 * m:set_tap([on = true]) -> m; a tapped module's output is returned as aux.features by a forward with {features = true} (the backbone output of eq. (3)).
 * @function set_tap
 */
static int l_set_tap(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  acq_module_set_tap(m, lua_isnone(L, 2) ? 1 : lua_toboolean(L, 2));
  lua_settop(L, 1);
  return 1;
}

typedef struct GradSwitch {
  int on, failed;
  atc_status st;
} GradSwitch;

static int grad_visit(acq_module *m, const char *path, void *ud) {
  (void)path;
  GradSwitch *g = ud;
  for (int i = 0; i < m->nparams; i++)
    if (m->params[i].t && !m->params[i].buffer && atc_requires_grad_(&g->st, m->params[i].t, g->on)) {
      g->failed = 1;
      return 1;
    }
  return 0;
}

/***
 * m:requires_grad_(on): switches the gradient of every trainable tensor.
 * @function requires_grad_
 */
static int l_requires_grad(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  GradSwitch g = {lua_isnone(L, 2) ? 1 : lua_toboolean(L, 2), 0, {0, ""}};
  acq_module_walk(m, grad_visit, &g);
  if (g.failed) return acqL_fail(L, "requires_grad_", &g.st);
  lua_settop(L, 1);
  return 1;
}

/***
 * m:to{dtype = "f64", device = "cuda"} -> m (converted in place)
 * @function to
 */
static int l_to(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int dtype = -1;
  atc_device dev;
  int has_dev = lua_getfield(L, 2, "device") != LUA_TNIL;
  lua_pop(L, 1);
  if (has_dev) dev = acqL_optdevice(L, 2);
  if (lua_getfield(L, 2, "dtype") != LUA_TNIL) dtype = (int)acqL_checkdtype(L, -1);
  lua_pop(L, 1);
  atc_status st;
  if (acq_module_to(&st, m, dtype, has_dev ? &dev : NULL)) return acqL_fail(L, "to", &st);
  lua_settop(L, 1);
  return 1;
}

/***
 * m:clone() -> a deep copy of m (parameters, buffers, quantizers and their bounds); the copy shares nothing with m.
 * @function clone
 */
static int l_clone(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  atc_status st;
  acq_module *c = NULL;
  if (acq_module_clone(&st, m, &c)) return acqL_fail(L, "clone", &st);
  pushmod(L, c);
  return 1;
}

/* m.name: methods first, then children by name (cached in the user value so
 * the same child box comes back each time). */
static int mod_index(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  const char *key = NULL;
  char num[32];
  if (lua_type(L, 2) == LUA_TNUMBER && lua_isinteger(L, 2)) {
    snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, 2));
    key = num;
  } else if (lua_type(L, 2) == LUA_TSTRING) {
    key = lua_tostring(L, 2);
  }
  if (!key) return 0;
  if (lua_getiuservalue(L, 1, 1) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 1);
  }
  if (lua_getfield(L, -1, key) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  for (int i = 0; i < m->nchild; i++) {
    if (strcmp(m->child[i]->name, key) == 0) {
      pushmod(L, acq_module_retain(m->child[i]));
      lua_pushvalue(L, -1);
      lua_setfield(L, -3, key);
      return 1;
    }
  }
  return 0;
}

static void describe(luaL_Buffer *B, lua_State *L, acq_module *m, int depth) {
  for (int i = 0; i < depth; i++) luaL_addstring(B, "  ");
  if (m->name[0] && depth) {
    luaL_addstring(B, m->name);
    luaL_addstring(B, ": ");
  }
  luaL_addstring(B, acq_mkind_name(m->kind));
  if (m->kind == ACQ_M_CONV2D || m->kind == ACQ_M_LINEAR) {
    atc_meta w;
    atc_status st;
    if (!atc_tensor_meta(&st, m->params[0].t, &w)) {
      if (m->kind == ACQ_M_CONV2D)
        lua_pushfstring(L, "(%d, %d, k=%dx%d, stride=%d, pad=%d%s)", (int)(w.sizes[1] * m->groups),
                        (int)w.sizes[0], (int)m->kernel[0], (int)m->kernel[1], (int)m->stride[0],
                        (int)m->padding[0], m->groups > 1 ? ", grouped" : "");
      else
        lua_pushfstring(L, "(%d, %d)", (int)w.sizes[1], (int)w.sizes[0]);
      luaL_addvalue(B);
    }
    if (m->wq || m->aq) {
      char q[48];
      snprintf(q, sizeof q, " [w%d a%d]", m->wq ? m->wq->bits : 32, m->aq ? m->aq->bits : 32);
      luaL_addstring(B, q);
    }
  } else if (m->kind == ACQ_M_BATCHNORM2D || m->kind == ACQ_M_CONDBN) {
    atc_meta w;
    atc_status st;
    if (!atc_tensor_meta(&st, m->params[2].t, &w)) {
      lua_pushfstring(L, "(%d, eps=%f)", (int)w.sizes[0], m->eps);
      luaL_addvalue(B);
    }
  }
  if (m->tap) luaL_addstring(B, "  <- features");
  luaL_addstring(B, "\n");
  for (int i = 0; i < m->nchild; i++) {
    if (m->kind == ACQ_M_RESIDUAL && i == m->nmain) {
      for (int d = 0; d <= depth; d++) luaL_addstring(B, "  ");
      luaL_addstring(B, "+ shortcut:\n");
    }
    describe(B, L, m->child[i], depth + 1);
  }
}

static int mod_tostring(lua_State *L) {
  ModBox *b = luaL_checkudata(L, 1, ACQ_MODULE_MT);
  if (!b->m) {
    lua_pushliteral(L, "acq.Module (freed)");
    return 1;
  }
  luaL_Buffer B;
  luaL_buffinit(L, &B);
  describe(&B, L, b->m, 0);
  luaL_pushresult(&B);
  return 1;
}

acq_module *acqL_checkmodule(lua_State *L, int idx) { return checkmod(L, idx); }
acq_module *acqL_testmodule(lua_State *L, int idx) { return testmod(L, idx); }
void acqL_pushmodule(lua_State *L, acq_module *m) { pushmod(L, m); }
void acqL_pushalias(lua_State *L, atc_tensor *t) { pushalias(L, t); }

void acqL_open_module(lua_State *L, int module) {
  static const luaL_Reg methods[] = {
    {"forward", l_forward},
    {"state_dict", l_state_dict},
    {"load_state_dict", l_load_state_dict},
    {"named_modules", l_named_modules},
    {"fix_bn", l_fix_bn},
    {"set_tap", l_set_tap},
    {"requires_grad_", l_requires_grad},
    {"clone", l_clone},
    {"to", l_to},
    {"free", mod_gc},
    {NULL, NULL}};
  luaL_newmetatable(L, ACQ_FWD_MT);
  lua_pushcfunction(L, fwd_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, ACQ_MODULE_MT);
  int mt = lua_gettop(L);
  lua_newtable(L); /* methods */
  int mtab = lua_gettop(L);
  acqL_setfuncs(L, mtab, methods);
  for (int named = 0; named < 2; named++) {
    lua_pushboolean(L, named);
    lua_pushcclosure(L, l_parameters, 1);
    lua_setfield(L, mtab, named ? "named_parameters" : "parameters");
  }
  lua_pushvalue(L, mtab);
  lua_setfield(L, mt, "methods");
  lua_pushvalue(L, mtab);
  lua_pushcclosure(L, mod_index, 1);
  lua_setfield(L, mt, "__index");
  lua_pushcfunction(L, mod_gc);
  lua_setfield(L, mt, "__gc");
  lua_pushcfunction(L, mod_gc);
  lua_setfield(L, mt, "__close");
  lua_pushcfunction(L, mod_tostring);
  lua_setfield(L, mt, "__tostring");
  lua_pushcfunction(L, l_forward);
  lua_setfield(L, mt, "__call");
  lua_pushliteral(L, ACQ_MODULE_MT);
  lua_setfield(L, mt, "__name");

  lua_newtable(L); /* acq.nn: the layers (l_layers.c) */
  int nn = lua_gettop(L);
  acqL_open_layers(L, nn, mtab);
  acqL_open_quant(L, module, mtab); /* the quantizer methods and acq.quant */
  lua_pushvalue(L, mtab);
  lua_setfield(L, nn, "Module"); /* the method table, to extend from Lua */
  lua_setfield(L, module, "nn");
  lua_pop(L, 2);
}
