/*
 * l_module.c -- acq.Module: layers and models (src/nn/module.c) from Lua.
 *
 *   acq.nn.conv2d(in, out, k, {stride, padding, dilation, groups, bias = true})
 *   acq.nn.batchnorm2d(c, {eps = 1e-5, momentum = 0.1, affine = true})
 *   acq.nn.linear(in, out, {bias = true})
 *   acq.nn.maxpool2d(k, {stride = k, padding = 0})
 *   acq.nn.relu() relu6() global_avgpool() flatten() identity() dropout() tanh()
 *   acq.nn.embedding(num, dim)  leaky_relu(slope)  upsample(scale)
 *   acq.nn.unflatten{c, h, w}   condbn(classes, c, {eps, momentum})
 *   acq.nn.sequential{m1, {"name", m2}, ...}
 *   acq.nn.residual(main, shortcut, {relu = true})   (lists as in sequential;
 *       shortcut nil or {} = identity)
 *
 * A module userdata holds one reference to its C module; children are held
 * by reference in C, so a model stays whole whatever Lua drops. m.name
 * finds a child by name (m.layer1[0] is m.layer1["0"]).
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

/* ---- constructors ----------------------------------------------------------- */

/* rc is the constructor's status; *m is read only after it returned. */
static int finish_new(lua_State *L, atc_status *st, int rc, acq_module **m, const char *op) {
  if (rc) return acqL_fail(L, op, st);
  pushmod(L, *m);
  return 1;
}

static int l_conv2d(lua_State *L) {
  int64_t in = luaL_checkinteger(L, 1), out = luaL_checkinteger(L, 2), k[2], s[2], p[2], d[2];
  acqL_checkpair(L, 3, "kernel size", 1, k);
  acqL_optpair(L, 4, "stride", 1, s);
  acqL_optpair(L, 4, "padding", 0, p);
  acqL_optpair(L, 4, "dilation", 1, d);
  int64_t groups = acqL_optint(L, 4, "groups", 1);
  int bias = acqL_optbool(L, 4, "bias", 1);
  atc_status st;
  acq_module *m = NULL;
  return finish_new(L, &st, acq_conv2d_new(&st, in, out, k, s, p, d, groups, bias, &m), &m, "nn.conv2d");
}

static int l_batchnorm2d(lua_State *L) {
  int64_t c = luaL_checkinteger(L, 1);
  double eps = acqL_optnumfield(L, 2, "eps", 1e-5), mom = acqL_optnumfield(L, 2, "momentum", 0.1);
  int affine = acqL_optbool(L, 2, "affine", 1);
  atc_status st;
  acq_module *m = NULL;
  return finish_new(L, &st, acq_batchnorm2d_new(&st, c, eps, mom, affine, &m), &m, "nn.batchnorm2d");
}

static int l_linear(lua_State *L) {
  int64_t in = luaL_checkinteger(L, 1), out = luaL_checkinteger(L, 2);
  int bias = acqL_optbool(L, 3, "bias", 1);
  atc_status st;
  acq_module *m = NULL;
  return finish_new(L, &st, acq_linear_new(&st, in, out, bias, &m), &m, "nn.linear");
}

static int l_maxpool2d(lua_State *L) {
  int64_t k[2], s[2], p[2];
  acqL_checkpair(L, 1, "kernel size", 1, k);
  acqL_optpair(L, 2, "stride", -1, s);
  if (s[0] < 0) s[0] = k[0], s[1] = k[1];
  acqL_optpair(L, 2, "padding", 0, p);
  atc_status st;
  acq_module *m = NULL;
  return finish_new(L, &st, acq_maxpool2d_new(&st, k, s, p, &m), &m, "nn.maxpool2d");
}

static int l_simple(lua_State *L) {
  acq_mkind kind = (acq_mkind)lua_tointeger(L, lua_upvalueindex(1));
  atc_status st;
  acq_module *m = NULL;
  return finish_new(L, &st, acq_simple_new(&st, kind, &m), &m, acq_mkind_name(kind));
}

static int l_embedding(lua_State *L) {
  int64_t num = luaL_checkinteger(L, 1), dim = luaL_checkinteger(L, 2);
  atc_status st;
  acq_module *m = NULL;
  return finish_new(L, &st, acq_embedding_new(&st, num, dim, &m), &m, "nn.embedding");
}

static int l_leaky_relu(lua_State *L) {
  double slope = luaL_optnumber(L, 1, 0.01);
  atc_status st;
  acq_module *m = NULL;
  return finish_new(L, &st, acq_leaky_relu_new(&st, slope, &m), &m, "nn.leaky_relu");
}

static int l_upsample(lua_State *L) {
  int64_t scale[2];
  acqL_checkpair(L, 1, "scale factor", 2, scale);
  atc_status st;
  acq_module *m = NULL;
  return finish_new(L, &st, acq_upsample_new(&st, scale, &m), &m, "nn.upsample");
}

static int l_unflatten(lua_State *L) {
  int64_t shape[ATC_MAX_DIMS];
  int n;
  acqL_checksizes(L, 1, shape, &n);
  atc_status st;
  acq_module *m = NULL;
  return finish_new(L, &st, acq_unflatten_new(&st, shape, n, &m), &m, "nn.unflatten");
}

static int l_condbn(lua_State *L) {
  int64_t k = luaL_checkinteger(L, 1), c = luaL_checkinteger(L, 2);
  double eps = acqL_optnumfield(L, 3, "eps", 1e-5), mom = acqL_optnumfield(L, 3, "momentum", 0.1);
  atc_status st;
  acq_module *m = NULL;
  return finish_new(L, &st, acq_condbn_new(&st, k, c, eps, mom, &m), &m, "nn.condbn");
}

/* Reads a list of modules or {name, module} pairs at idx into arrays. */
static int readlist(lua_State *L, int idx, acq_module **mods, const char **names, int cap,
                    const char *what) {
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  int n = (int)luaL_len(L, idx);
  if (n > cap) luaL_error(L, "%s: at most %d children", what, cap);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, idx, i + 1);
    acq_module *m = testmod(L, -1);
    if (m) {
      names[i] = NULL;
    } else if (lua_istable(L, -1)) {
      lua_rawgeti(L, -1, 1);
      lua_rawgeti(L, -2, 2);
      m = testmod(L, -1);
      names[i] = lua_tostring(L, -2);
      if (!names[i] || !m) luaL_error(L, "%s: entry %d is not a module or a {name, module} pair", what, i + 1);
      lua_pop(L, 2);
    } else {
      luaL_error(L, "%s: entry %d is not a module or a {name, module} pair", what, i + 1);
    }
    mods[i] = m;
    lua_pop(L, 1); /* the names stay anchored in the list */
  }
  return n;
}

#define MAX_CHILDREN 256

static int l_sequential(lua_State *L) {
  acq_module *mods[MAX_CHILDREN];
  const char *names[MAX_CHILDREN];
  int n = readlist(L, 1, mods, names, MAX_CHILDREN, "nn.sequential");
  atc_status st;
  acq_module *m = NULL;
  int rc = acq_container_new(&st, ACQ_M_SEQUENTIAL, mods, names, n, n, 0, &m);
  return finish_new(L, &st, rc, &m, "nn.sequential");
}

static int l_residual(lua_State *L) {
  acq_module *mods[2 * MAX_CHILDREN];
  const char *names[2 * MAX_CHILDREN];
  int nmain = readlist(L, 1, mods, names, MAX_CHILDREN, "nn.residual");
  int nshort = readlist(L, 2, mods + nmain, names + nmain, MAX_CHILDREN, "nn.residual");
  int relu = acqL_optbool(L, 3, "relu", 1);
  atc_status st;
  acq_module *m = NULL;
  int rc = acq_container_new(&st, ACQ_M_RESIDUAL, mods, names, nmain + nshort, nmain, relu, &m);
  return finish_new(L, &st, rc, &m, "nn.residual");
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

/* m:forward(x [, {bn = "eval", stats = false|true|"sample", features = false,
 *                 labels = y, from = child, to = child}])
 *   -> y [, aux]  where aux = {features = T, stats = {{name, mean, var,
 *      running_mean, running_var, eps}, ...}} when either was asked for.
 * stats = "sample": each BN input's mean and variance per sample ([N,C],
 * over H,W) instead of over the batch ([C]).
 * labels: the classes of class-conditional BN layers. from/to (names or
 * 0-based indices, both inclusive): run only those children of a sequential. */
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

/* m:parameters() -> list of the trainable tensors (aliases);
 * m:named_parameters() -> list of {name, tensor}. upvalue 1: with names. */
static int l_parameters(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  lua_settop(L, 1);
  lua_newtable(L);
  Collect c = {L, 2, 0, 1, lua_toboolean(L, lua_upvalueindex(1))};
  acq_module_walk(m, collect_params, &c);
  return 1;
}

/* m:state_dict() -> name -> tensor (aliases of parameters and buffers),
 * names in module order */
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

/* m:named_modules([kind]) -> list of {path, module} in module order;
 * kind "conv2d" gives conv2d and linear layers (the quantizable ones). */
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

/* m:load_state_dict(tensors [, {strict = true, source = "name"}])
 *   -> missing keys, unexpected keys (lists). Everything is checked before
 *   anything is copied: on error the model is unchanged. */
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

static int set_bn_visit(acq_module *m, const char *path, void *ud) {
  (void)path;
  if (m->kind == ACQ_M_BATCHNORM2D || m->kind == ACQ_M_CONDBN) m->bn_fixed = *(int *)ud;
  return 0;
}

/* m:fix_bn(mode|nil): every BN below m runs in mode whatever the forward
 * asks (Q: "eval"); nil follows the forward's mode again. */
static int l_fix_bn(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  int mode = lua_isnoneornil(L, 2) ? -1 : parse_bn_mode(L, luaL_checkstring(L, 2));
  acq_module_walk(m, set_bn_visit, &mode);
  lua_settop(L, 1);
  return 1;
}

static int l_set_tap(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  m->tap = lua_isnone(L, 2) ? 1 : lua_toboolean(L, 2);
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

/* m:requires_grad_(on): switches the gradient of every trainable tensor. */
static int l_requires_grad(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  GradSwitch g = {lua_isnone(L, 2) ? 1 : lua_toboolean(L, 2), 0, {0, ""}};
  acq_module_walk(m, grad_visit, &g);
  if (g.failed) return acqL_fail(L, "requires_grad_", &g.st);
  lua_settop(L, 1);
  return 1;
}

/* m:to{dtype = "f64", device = "cuda"} -> m (converted in place) */
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

static int l_clone(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  atc_status st;
  acq_module *c = NULL;
  return finish_new(L, &st, acq_module_clone(&st, m, &c), &c, "clone");
}

static int l_kind(lua_State *L) {
  lua_pushstring(L, acq_mkind_name(checkmod(L, 1)->kind));
  return 1;
}

static int l_name(lua_State *L) {
  lua_pushstring(L, checkmod(L, 1)->name);
  return 1;
}

static int l_children(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  lua_createtable(L, m->nchild, 0);
  for (int i = 0; i < m->nchild; i++) {
    pushmod(L, acq_module_retain(m->child[i]));
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* m:config() -> a table of the module's settings */
static int l_config(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  lua_newtable(L);
  lua_pushstring(L, acq_mkind_name(m->kind));
  lua_setfield(L, -2, "kind");
  if (m->kind == ACQ_M_CONV2D || m->kind == ACQ_M_MAXPOOL2D) {
    const char *keys[] = {"kernel", "stride", "padding"};
    const int64_t *vals[] = {m->kernel, m->stride, m->padding};
    for (int k = 0; k < 3; k++) {
      lua_createtable(L, 2, 0);
      for (int i = 0; i < 2; i++) {
        lua_pushinteger(L, vals[k][i]);
        lua_rawseti(L, -2, i + 1);
      }
      lua_setfield(L, -2, keys[k]);
    }
    lua_pushinteger(L, m->groups);
    lua_setfield(L, -2, "groups");
  }
  if (m->kind == ACQ_M_LEAKY_RELU) {
    lua_pushnumber(L, m->slope);
    lua_setfield(L, -2, "slope");
  }
  if (m->kind == ACQ_M_UPSAMPLE || m->kind == ACQ_M_UNFLATTEN) {
    int n = m->kind == ACQ_M_UPSAMPLE ? 2 : m->nshape;
    const int64_t *v = m->kind == ACQ_M_UPSAMPLE ? m->kernel : m->shape;
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
      lua_pushinteger(L, v[i]);
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, m->kind == ACQ_M_UPSAMPLE ? "scale" : "shape");
  }
  if (m->kind == ACQ_M_BATCHNORM2D || m->kind == ACQ_M_CONDBN) {
    lua_pushnumber(L, m->eps);
    lua_setfield(L, -2, "eps");
    lua_pushnumber(L, m->momentum);
    lua_setfield(L, -2, "momentum");
    if (m->bn_fixed >= 0) {
      lua_pushstring(L, BN_MODE_NAMES[m->bn_fixed]);
      lua_setfield(L, -2, "fixed_mode");
    }
  }
  if (m->kind == ACQ_M_RESIDUAL) {
    lua_pushboolean(L, m->post_relu);
    lua_setfield(L, -2, "relu");
    lua_pushinteger(L, m->nmain);
    lua_setfield(L, -2, "nmain");
  }
  if (m->wq) {
    lua_pushinteger(L, m->wq->bits);
    lua_setfield(L, -2, "weight_bits");
  }
  if (m->aq) {
    lua_pushinteger(L, m->aq->bits);
    lua_setfield(L, -2, "act_bits");
  }
  return 1;
}

/* ---- quantizers (src/quant/fakequant.c) ------------------------------------- */

static acq_module *checkaffine(lua_State *L, int idx, const char *op) {
  acq_module *m = checkmod(L, idx);
  if (m->kind != ACQ_M_CONV2D && m->kind != ACQ_M_LINEAR)
    luaL_error(L, "%s: a %s layer has no quantizers (conv2d and linear do)", op, acq_mkind_name(m->kind));
  return m;
}

/* m:set_quant({weight_bits = 4, act_bits = 4, ema = 0}) on a conv2d or
 * linear layer; a width of nil or 32 removes that quantizer. */
static int l_set_quant(lua_State *L) {
  acq_module *m = checkaffine(L, 1, "set_quant");
  luaL_checktype(L, 2, LUA_TTABLE);
  int wb = (int)acqL_optint(L, 2, "weight_bits", 32), ab = (int)acqL_optint(L, 2, "act_bits", 32);
  double ema = acqL_optnumfield(L, 2, "ema", 0.0);
  if (ema < 0 || ema >= 1) return luaL_error(L, "set_quant: ema must be in [0, 1), got %f", ema);
  atc_status st;
  acq_fq *wq = NULL, *aq = NULL;
  if (wb != 32 && acq_fq_new(&st, wb, 1, &wq)) return acqL_fail(L, "set_quant", &st);
  if (ab != 32 && acq_fq_new(&st, ab, 0, &aq)) {
    acq_fq_free(wq);
    return acqL_fail(L, "set_quant", &st);
  }
  if (aq) aq->ema = ema;
  acq_fq_free(m->wq);
  acq_fq_free(m->aq);
  m->wq = wq;
  m->aq = aq;
  lua_settop(L, 1);
  return 1;
}

static int state_visit(acq_module *m, const char *path, void *ud) {
  (void)path;
  if (m->aq) m->aq->state = *(int *)ud;
  if (m->wq) m->wq->state = *(int *)ud == ACQ_FQ_OFF ? ACQ_FQ_OFF : ACQ_FQ_FROZEN;
  return 0;
}

/* m:quant_state("calibrate" | "frozen" | "off"): every quantizer below m.
 * calibrate: activation bounds follow the running min/max (or EMA) of
 * the inputs, which are quantized with the updated bounds; frozen: bounds
 * fixed; off: full precision. Weight bounds are always those of the
 * current weight. */
static int l_quant_state(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  static const char *const names[] = {"calibrate", "frozen", "off", NULL};
  int state = luaL_checkoption(L, 2, NULL, names);
  acq_module_walk(m, state_visit, &state);
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
    pushalias(L, m->aq->lo);
    lua_setfield(L, -2, "lo");
    pushalias(L, m->aq->hi);
    lua_setfield(L, -2, "hi");
  }
  lua_rawseti(L, b->table, ++b->n);
  return 0;
}

/* m:act_bounds() -> list of {name, bits, batches, lo, hi} for every
 * activation quantizer below m, in module order (lo, hi: 0-d tensors, nil
 * before calibration). */
static int l_act_bounds(lua_State *L) {
  acq_module *m = checkmod(L, 1);
  lua_settop(L, 1);
  lua_newtable(L);
  Bounds b = {L, 2, 0};
  acq_module_walk(m, bounds_visit, &b);
  return 1;
}

/* m:set_act_bounds(lo, hi): freezes this layer's input bounds (numbers or
 * 0-d tensors), as when reading an exported model back. */
static int l_set_act_bounds(lua_State *L) {
  acq_module *m = checkaffine(L, 1, "set_act_bounds");
  if (!m->aq) return luaL_error(L, "set_act_bounds: this layer has no activation quantizer");
  atc_status st;
  atc_tensor *v[2] = {NULL, NULL};
  atc_device cpu = {ATC_CPU, -1};
  for (int i = 0; i < 2; i++) {
    atc_tensor *t = acqL_testbox(L, 2 + i) ? acqL_checktensor(L, 2 + i) : NULL;
    int rc;
    if (t) {
      atc_tensor *d = NULL;
      rc = atc_detach(&st, t, &d) || atc_to_dtype(&st, d, ATC_F32, &v[i]);
      atc_tensor_free(d);
    } else {
      atc_scalar s = {0, 0, luaL_checknumber(L, 2 + i)};
      rc = atc_full(&st, NULL, 0, s, ATC_F32, cpu, &v[i]);
    }
    if (rc) {
      atc_tensor_free(v[0]);
      return acqL_fail(L, "set_act_bounds", &st);
    }
  }
  atc_tensor_free(m->aq->lo);
  atc_tensor_free(m->aq->hi);
  m->aq->lo = v[0];
  m->aq->hi = v[1];
  m->aq->state = ACQ_FQ_FROZEN;
  lua_settop(L, 1);
  return 1;
}

/* m:weight_codes() -> codes (int64), scale, offset of this layer's weight,
 * eq. (1): weight ~= (codes + offset) * scale. */
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

/* acq.quant.fake_quantize(x, lo, hi, bits) -- eqs. (1)-(2), straight-through */
static int l_fake_quantize(lua_State *L) {
  atc_tensor *x = acqL_checktensor(L, 1), *lo = acqL_checktensor(L, 2), *hi = acqL_checktensor(L, 3);
  int bits = (int)luaL_checkinteger(L, 4);
  acqL_Tensor *r = acqL_newtensor(L);
  atc_status st;
  if (atc_fake_quantize(&st, x, lo, hi, bits, &r->h)) return acqL_fail(L, "fake_quantize", &st);
  return acqL_done(L, r);
}

/* acq.quant.codes(x, lo, hi, bits) -> codes, scale, offset */
static int l_codes(lua_State *L) {
  atc_tensor *x = acqL_checktensor(L, 1), *lo = acqL_checktensor(L, 2), *hi = acqL_checktensor(L, 3);
  int bits = (int)luaL_checkinteger(L, 4);
  acqL_Tensor *c = acqL_newtensor(L), *s = acqL_newtensor(L), *o = acqL_newtensor(L);
  atc_status st;
  if (atc_quantize_codes(&st, x, lo, hi, bits, &c->h, &s->h, &o->h)) return acqL_fail(L, "codes", &st);
  acqL_done(L, c);
  acqL_done(L, s);
  acqL_done(L, o);
  return 3;
}

/* acq.quant.bounds(x, per_channel) -> lo, hi (per output channel [C,1,..],
 * or 0-d for the whole tensor) */
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
void acqL_pushmodule(lua_State *L, acq_module *m) { pushmod(L, m); }

void acqL_open_module(lua_State *L, int module) {
  static const luaL_Reg methods[] = {
    {"forward", l_forward},
    {"state_dict", l_state_dict},
    {"load_state_dict", l_load_state_dict},
    {"named_modules", l_named_modules},
    {"children", l_children},
    {"fix_bn", l_fix_bn},
    {"set_tap", l_set_tap},
    {"requires_grad_", l_requires_grad},
    {"clone", l_clone},
    {"to", l_to},
    {"kind", l_kind},
    {"name", l_name},
    {"config", l_config},
    {"set_quant", l_set_quant},
    {"quant_state", l_quant_state},
    {"act_bounds", l_act_bounds},
    {"set_act_bounds", l_set_act_bounds},
    {"weight_codes", l_weight_codes},
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

  static const luaL_Reg ctors[] = {
    {"conv2d", l_conv2d}, {"batchnorm2d", l_batchnorm2d}, {"linear", l_linear},
    {"maxpool2d", l_maxpool2d}, {"sequential", l_sequential}, {"residual", l_residual},
    {"embedding", l_embedding}, {"leaky_relu", l_leaky_relu}, {"upsample", l_upsample},
    {"unflatten", l_unflatten}, {"condbn", l_condbn}, {NULL, NULL}};
  lua_newtable(L); /* acq.nn */
  int nn = lua_gettop(L);
  acqL_setfuncs(L, nn, ctors);
  static const struct { const char *name; acq_mkind kind; } simple[] = {
    {"relu", ACQ_M_RELU}, {"relu6", ACQ_M_RELU6}, {"global_avgpool", ACQ_M_GLOBAL_AVGPOOL},
    {"flatten", ACQ_M_FLATTEN}, {"identity", ACQ_M_IDENTITY}, {"dropout", ACQ_M_IDENTITY},
    {"tanh", ACQ_M_TANH}};
  for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++) {
    lua_pushinteger(L, simple[i].kind);
    lua_pushcclosure(L, l_simple, 1);
    lua_setfield(L, nn, simple[i].name);
  }
  lua_pushvalue(L, mtab);
  lua_setfield(L, nn, "Module"); /* the method table, to extend from Lua */
  lua_setfield(L, module, "nn");
  static const luaL_Reg quant[] = {
    {"fake_quantize", l_fake_quantize}, {"codes", l_codes}, {"bounds", l_bounds}, {NULL, NULL}};
  lua_newtable(L);
  acqL_setfuncs(L, lua_gettop(L), quant);
  lua_setfield(L, module, "quant");
  lua_pop(L, 2);
}
