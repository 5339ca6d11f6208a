/***
 * l_layers.c -- the layers and containers of acq.nn (src/nn/module.c):
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
 * and what a layer is: m:kind(), m:name(), m:children(), m:config().
 *
 * @module acq.core.layers
 */
#include <stdlib.h>
#include <string.h>

#include "acqL.h"
#include "module.h"

/* ---- constructors ----------------------------------------------------------- */

/* rc is the constructor's status; *m is read only after it returned. */
static int finish_new(lua_State *L, atc_status *st, int rc, acq_module **m, const char *op) {
  if (rc) return acqL_fail(L, op, st);
  acqL_pushmodule(L, *m);
  return 1;
}

/***
 * acq.nn.conv2d(in, out, k [, {stride = 1, padding = 0, dilation = 1, groups = 1, bias = true}]) -> a 2-D convolution layer; k, stride, padding and dilation are n or {h, w}. Weights are initialised as PyTorch does.
 * @function conv2d
 */
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

/***
 * acq.nn.batchnorm2d(c [, {eps = 1e-5, momentum = 0.1, affine = true}]) -> a batch-norm layer over c channels, with the three modes of the paper (eval, batch = F^train, train).
 * @function batchnorm2d
 */
static int l_batchnorm2d(lua_State *L) {
  int64_t c = luaL_checkinteger(L, 1);
  double eps = acqL_optnumfield(L, 2, "eps", 1e-5), mom = acqL_optnumfield(L, 2, "momentum", 0.1);
  int affine = acqL_optbool(L, 2, "affine", 1);
  atc_status st;
  acq_module *m = NULL;
  return finish_new(L, &st, acq_batchnorm2d_new(&st, c, eps, mom, affine, &m), &m, "nn.batchnorm2d");
}

/***
 * acq.nn.linear(in, out [, {bias = true}]) -> a fully connected layer.
 * @function linear
 */
static int l_linear(lua_State *L) {
  int64_t in = luaL_checkinteger(L, 1), out = luaL_checkinteger(L, 2);
  int bias = acqL_optbool(L, 3, "bias", 1);
  atc_status st;
  acq_module *m = NULL;
  return finish_new(L, &st, acq_linear_new(&st, in, out, bias, &m), &m, "nn.linear");
}

/***
 * acq.nn.maxpool2d(k [, {stride = k, padding = 0}]) -> a max-pooling layer.
 * @function maxpool2d
 */
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

/***
 * acq.nn.embedding(num, dim) -> a lookup table: int64 indices [N] -> [N, dim].
 * @function embedding
 */
static int l_embedding(lua_State *L) {
  int64_t num = luaL_checkinteger(L, 1), dim = luaL_checkinteger(L, 2);
  atc_status st;
  acq_module *m = NULL;
  return finish_new(L, &st, acq_embedding_new(&st, num, dim, &m), &m, "nn.embedding");
}

/***
 * acq.nn.leaky_relu(slope) -> a leaky ReLU layer.
 * @function leaky_relu
 */
static int l_leaky_relu(lua_State *L) {
  double slope = luaL_optnumber(L, 1, 0.01);
  atc_status st;
  acq_module *m = NULL;
  return finish_new(L, &st, acq_leaky_relu_new(&st, slope, &m), &m, "nn.leaky_relu");
}

/***
 * acq.nn.upsample(scale) -> nearest-neighbour upsampling by scale (n or {h, w}); followed by a 3x3 convolution it runs as one fused 2x2 phase convolution.
 * @function upsample
 */
static int l_upsample(lua_State *L) {
  int64_t scale[2];
  acqL_checkpair(L, 1, "scale factor", 2, scale);
  atc_status st;
  acq_module *m = NULL;
  return finish_new(L, &st, acq_upsample_new(&st, scale, &m), &m, "nn.upsample");
}

/***
 * acq.nn.unflatten{c, h, w} -> reshapes [N, c*h*w] to [N, c, h, w].
 * @function unflatten
 */
static int l_unflatten(lua_State *L) {
  int64_t shape[ATC_MAX_DIMS];
  int n;
  acqL_checksizes(L, 1, shape, &n);
  atc_status st;
  acq_module *m = NULL;
  return finish_new(L, &st, acq_unflatten_new(&st, shape, n, &m), &m, "nn.unflatten");
}

/***
 * acq.nn.condbn(classes, c [, {eps, momentum}]) -> class-conditional batch norm (GDFQ's CCBN): BN without affine, then a per-class scale and shift; forward needs {labels = y}.
 * @function condbn
 */
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
    acq_module *m = acqL_testmodule(L, -1);
    if (m) {
      names[i] = NULL;
    } else if (lua_istable(L, -1)) {
      lua_rawgeti(L, -1, 1);
      lua_rawgeti(L, -2, 2);
      m = acqL_testmodule(L, -1);
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

/* A container of kind over the list at index 1 (sequential, gate). */
static int chain_new(lua_State *L, acq_mkind kind, const char *what) {
  acq_module *mods[MAX_CHILDREN];
  const char *names[MAX_CHILDREN];
  int n = readlist(L, 1, mods, names, MAX_CHILDREN, what);
  atc_status st;
  acq_module *m = NULL;
  int rc = acq_container_new(&st, kind, mods, names, n, n, 0, &m);
  return finish_new(L, &st, rc, &m, what);
}

/***
 * acq.nn.sequential{m1, {"name", m2}, ...} -> a container running its children in order; unnamed children are named "0", "1", ...
 * @function sequential
 */
static int l_sequential(lua_State *L) { return chain_new(L, ACQ_M_SEQUENTIAL, "nn.sequential"); }

/***
 * acq.nn.residual(main, shortcut [, {relu = true}]) -> out = relu(main(x) + shortcut(x)); both are lists as in sequential, shortcut nil or {} for the identity.
 * @function residual
 */
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

/***
 * acq.nn.gate{m1, {"name", m2}, ...} -> out = x * chain(x): the children, in order, compute a multiplicative attention map of the input (same shape as x, or broadcastable to it).
 * @function gate
 */
static int l_gate(lua_State *L) { return chain_new(L, ACQ_M_GATE, "nn.gate"); }

/***
 * acq.nn.lka(channels [, {kernel = 21, dilation = 3}]) -> large-kernel attention (VAN): a gate whose map is conv1(conv_spatial(conv0(x))), a depthwise (2d-1)^2 convolution, a depthwise ceil(k/d)^2 convolution with dilation d and a 1x1 convolution, together a k x k receptive field.
 * @function lka
 */
static int l_lka(lua_State *L) {
  int64_t c = luaL_checkinteger(L, 1);
  int64_t k = acqL_optint(L, 2, "kernel", 21), d = acqL_optint(L, 2, "dilation", 3);
  atc_status st;
  acq_module *m = NULL;
  return finish_new(L, &st, acq_lka_new(&st, c, k, d, &m), &m, "nn.lka");
}

/* ---- what a layer is --------------------------------------------------------- */

/***
 * m:kind() -> the layer kind: "conv2d", "batchnorm2d", "linear", "sequential", "residual", ...
 * @function kind
 */
static int l_kind(lua_State *L) {
  lua_pushstring(L, acq_mkind_name(acqL_checkmodule(L, 1)->kind));
  return 1;
}

/***
 * m:name() -> the name m has in its parent ("" for a root).
 * @function name
 */
static int l_name(lua_State *L) {
  lua_pushstring(L, acqL_checkmodule(L, 1)->name);
  return 1;
}

/***
 * m:children() -> the list of {name, Module} of m's direct children (empty for a leaf layer).
 * @function children
 */
static int l_children(lua_State *L) {
  acq_module *m = acqL_checkmodule(L, 1);
  lua_createtable(L, m->nchild, 0);
  for (int i = 0; i < m->nchild; i++) {
    acqL_pushmodule(L, acq_module_retain(m->child[i]));
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/***
 * m:config() -> a table of the module's settings
 * @function config
 */
static int l_config(lua_State *L) {
  acq_module *m = acqL_checkmodule(L, 1);
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
    lua_createtable(L, 2, 0);
    for (int i = 0; i < 2; i++) {
      lua_pushinteger(L, m->dilation[i]);
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "dilation");
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
      lua_pushstring(L, acq_bn_mode_name(m->bn_fixed));
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


void acqL_open_layers(lua_State *L, int nn, int methods) {
  static const luaL_Reg mfns[] = {
    {"children", l_children}, {"kind", l_kind}, {"name", l_name}, {"config", l_config}, {NULL, NULL}};
  acqL_setfuncs(L, methods, mfns);
  static const luaL_Reg ctors[] = {
    {"conv2d", l_conv2d}, {"batchnorm2d", l_batchnorm2d}, {"linear", l_linear},
    {"maxpool2d", l_maxpool2d}, {"sequential", l_sequential}, {"residual", l_residual},
    {"gate", l_gate}, {"lka", l_lka},
    {"embedding", l_embedding}, {"leaky_relu", l_leaky_relu}, {"upsample", l_upsample},
    {"unflatten", l_unflatten}, {"condbn", l_condbn}, {NULL, NULL}};
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
}
