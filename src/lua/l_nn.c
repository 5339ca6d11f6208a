/***
 * l_nn.c -- neural-network functions: acq.conv2d, acq.batch_norm, ...
 * Optional arguments come in an options table named like PyTorch's keywords.
 *
 * @module acq.core.functional
 */
#include "acqL.h"

/***
 * acq.conv2d(x, w [, b [, {stride, padding, dilation, groups}]])
 * @function conv2d
 */
static int l_conv2d(lua_State *L) {
  atc_tensor *x = acqL_checktensor(L, 1), *w = acqL_checktensor(L, 2), *b = acqL_opttensor(L, 3);
  int64_t stride[2], pad[2], dil[2];
  acqL_optpair(L, 4, "stride", 1, stride);
  acqL_optpair(L, 4, "padding", 0, pad);
  acqL_optpair(L, 4, "dilation", 1, dil);
  int64_t groups = acqL_optint(L, 4, "groups", 1);
  atc_status st;
  acqL_Tensor *r = acqL_newtensor(L);
  if (atc_conv2d(&st, x, w, b, stride, pad, dil, groups, &r->h)) return acqL_fail(L, "conv2d", &st);
  return acqL_done(L, r);
}

/***
 * acq.upsample2x_conv3x3(x, w [, b]) = conv2d(upsample_nearest2d(x, 2x), w, b,
 * {padding = 1}) for w [O,C,3,3], without the upsampled tensor (what a
 * sequential runs for an upsample(2) followed by such a conv).
 * @function upsample2x_conv3x3
 */
static int l_upsample2x_conv3x3(lua_State *L) {
  atc_tensor *x = acqL_checktensor(L, 1), *w = acqL_checktensor(L, 2), *b = acqL_opttensor(L, 3);
  atc_status st;
  acqL_Tensor *r = acqL_newtensor(L);
  if (atc_upsample2x_conv3x3(&st, x, w, b, &r->h)) return acqL_fail(L, "upsample2x_conv3x3", &st);
  return acqL_done(L, r);
}

/***
 * acq.conv_transpose2d(x, w [, b [, {stride, padding, output_padding,
 * dilation, groups}]])
 * @function conv_transpose2d
 */
static int l_conv_transpose2d(lua_State *L) {
  atc_tensor *x = acqL_checktensor(L, 1), *w = acqL_checktensor(L, 2), *b = acqL_opttensor(L, 3);
  int64_t stride[2], pad[2], opad[2], dil[2];
  acqL_optpair(L, 4, "stride", 1, stride);
  acqL_optpair(L, 4, "padding", 0, pad);
  acqL_optpair(L, 4, "output_padding", 0, opad);
  acqL_optpair(L, 4, "dilation", 1, dil);
  int64_t groups = acqL_optint(L, 4, "groups", 1);
  atc_status st;
  acqL_Tensor *r = acqL_newtensor(L);
  if (atc_conv_transpose2d(&st, x, w, b, stride, pad, opad, dil, groups, &r->h))
    return acqL_fail(L, "conv_transpose2d", &st);
  return acqL_done(L, r);
}

/***
 * acq.batch_norm(x, weight, bias, running_mean, running_var,
 * {training = false, momentum = 0.1, eps = 1e-5})
 * training = false: stored statistics (running_* required);
 * training = true with running_*: batch statistics, running stats updated;
 * training = true, running_* nil: batch statistics, nothing updated.
 * @function batch_norm
 */
static int l_batch_norm(lua_State *L) {
  atc_tensor *x = acqL_checktensor(L, 1);
  atc_tensor *w = acqL_opttensor(L, 2), *b = acqL_opttensor(L, 3);
  atc_tensor *rm = acqL_opttensor(L, 4), *rv = acqL_opttensor(L, 5);
  int training = acqL_optbool(L, 6, "training", 0);
  double momentum = acqL_optnumfield(L, 6, "momentum", 0.1);
  double eps = acqL_optnumfield(L, 6, "eps", 1e-5);
  atc_status st;
  acqL_Tensor *r = acqL_newtensor(L);
  if (atc_batch_norm(&st, x, w, b, rm, rv, training, momentum, eps, &r->h))
    return acqL_fail(L, "batch_norm", &st);
  return acqL_done(L, r);
}

/***
 * acq.linear(x [..., in], w [out, in] [, b [out]]) -> x w^T + b.
 * @function linear
 */
static int l_linear(lua_State *L) {
  atc_tensor *x = acqL_checktensor(L, 1), *w = acqL_checktensor(L, 2), *b = acqL_opttensor(L, 3);
  atc_status st;
  acqL_Tensor *r = acqL_newtensor(L);
  if (atc_linear(&st, x, w, b, &r->h)) return acqL_fail(L, "linear", &st);
  return acqL_done(L, r);
}

/***
 * acq.max_pool2d(x, kernel [, {stride = kernel, padding, dilation, ceil_mode}])
 * @function max_pool2d
 */
static int l_max_pool2d(lua_State *L) {
  atc_tensor *x = acqL_checktensor(L, 1);
  int64_t k[2], stride[2], pad[2], dil[2];
  acqL_checkpair(L, 2, "kernel", 0, k);
  acqL_optpair(L, 3, "stride", -1, stride);
  if (stride[0] < 0) stride[0] = k[0], stride[1] = k[1];
  acqL_optpair(L, 3, "padding", 0, pad);
  acqL_optpair(L, 3, "dilation", 1, dil);
  int ceil_mode = acqL_optbool(L, 3, "ceil_mode", 0);
  atc_status st;
  acqL_Tensor *r = acqL_newtensor(L);
  if (atc_max_pool2d(&st, x, k, stride, pad, dil, ceil_mode, &r->h))
    return acqL_fail(L, "max_pool2d", &st);
  return acqL_done(L, r);
}

/***
 * acq.avg_pool2d(x, kernel [, {stride = kernel, padding, ceil_mode,
 * count_include_pad = true}])
 * @function avg_pool2d
 */
static int l_avg_pool2d(lua_State *L) {
  atc_tensor *x = acqL_checktensor(L, 1);
  int64_t k[2], stride[2], pad[2];
  acqL_checkpair(L, 2, "kernel", 0, k);
  acqL_optpair(L, 3, "stride", -1, stride);
  if (stride[0] < 0) stride[0] = k[0], stride[1] = k[1];
  acqL_optpair(L, 3, "padding", 0, pad);
  int ceil_mode = acqL_optbool(L, 3, "ceil_mode", 0);
  int cip = acqL_optbool(L, 3, "count_include_pad", 1);
  atc_status st;
  acqL_Tensor *r = acqL_newtensor(L);
  if (atc_avg_pool2d(&st, x, k, stride, pad, ceil_mode, cip, &r->h))
    return acqL_fail(L, "avg_pool2d", &st);
  return acqL_done(L, r);
}

static int adaptive(lua_State *L, int is_max) {
  atc_tensor *x = acqL_checktensor(L, 1);
  int64_t size[2];
  acqL_checkpair(L, 2, "output size", 1, size);
  atc_status st;
  acqL_Tensor *r = acqL_newtensor(L);
  if (atc_adaptive_pool2d(&st, is_max, x, size, &r->h))
    return acqL_fail(L, is_max ? "adaptive_max_pool2d" : "adaptive_avg_pool2d", &st);
  return acqL_done(L, r);
}
/***
 * acq.adaptive_avg_pool2d(x [N, C, H, W], size) -> [N, C, h, w] averages (size n or {h, w}).
 * @function adaptive_avg_pool2d
 */
static int l_adaptive_avg_pool2d(lua_State *L) { return adaptive(L, 0); }
/***
 * acq.adaptive_max_pool2d(x [N, C, H, W], size) -> [N, C, h, w] maxima (size n or {h, w}).
 * @function adaptive_max_pool2d
 */
static int l_adaptive_max_pool2d(lua_State *L) { return adaptive(L, 1); }

/* acq.upsample_nearest2d(x, size) and acq.upsample_bilinear2d(x, size)
 * with size = n or {h, w} */
static int upsample(lua_State *L, int bilinear) {
  atc_tensor *x = acqL_checktensor(L, 1);
  int64_t size[2];
  acqL_checkpair(L, 2, "output size", 0, size);
  atc_status st;
  acqL_Tensor *r = acqL_newtensor(L);
  int rc = bilinear ? atc_upsample_bilinear2d(&st, x, size, &r->h)
                    : atc_upsample_nearest2d(&st, x, size, &r->h);
  if (rc) return acqL_fail(L, bilinear ? "upsample_bilinear2d" : "upsample_nearest2d", &st);
  return acqL_done(L, r);
}
/***
 * acq.upsample_nearest2d(x [N, C, H, W], size) -> nearest-neighbour resize to size (n or {h, w}).
 * @function upsample_nearest2d
 */
static int l_upsample_nearest2d(lua_State *L) { return upsample(L, 0); }
/***
 * acq.upsample_bilinear2d(x [N, C, H, W], size) -> bilinear resize to size (n or {h, w}, corners not aligned).
 * @function upsample_bilinear2d
 */
static int l_upsample_bilinear2d(lua_State *L) { return upsample(L, 1); }

static int softmax(lua_State *L, int log) {
  atc_tensor *x = acqL_checktensor(L, 1);
  int64_t dim = luaL_checkinteger(L, 2);
  atc_status st;
  acqL_Tensor *r = acqL_newtensor(L);
  if (atc_softmax(&st, x, dim, log, &r->h)) return acqL_fail(L, log ? "log_softmax" : "softmax", &st);
  return acqL_done(L, r);
}
/***
 * t:softmax(dim) / acq.softmax(t, dim) -> softmax along dim (0-based).
 * @function softmax
 */
static int l_softmax(lua_State *L) { return softmax(L, 0); }
/***
 * t:log_softmax(dim) / acq.log_softmax(t, dim) -> log-softmax along dim, computed stably.
 * @function log_softmax
 */
static int l_log_softmax(lua_State *L) { return softmax(L, 1); }

/***
 * acq.embedding(weight [V,D], indices)
 * @function embedding
 */
static int l_embedding(lua_State *L) {
  atc_tensor *w = acqL_checktensor(L, 1), *i = acqL_checktensor(L, 2);
  atc_status st;
  acqL_Tensor *r = acqL_newtensor(L);
  if (atc_embedding(&st, w, i, &r->h)) return acqL_fail(L, "embedding", &st);
  return acqL_done(L, r);
}

/***
 * t:one_hot([n]) / acq.one_hot(t, n) -> int64 one-hot vectors of the int64 indices t (n classes; default max + 1).
 * @function one_hot
 */
static int l_one_hot(lua_State *L) {
  atc_tensor *i = acqL_checktensor(L, 1);
  int64_t n = luaL_optinteger(L, 2, -1);
  atc_status st;
  acqL_Tensor *r = acqL_newtensor(L);
  if (atc_one_hot(&st, i, n, &r->h)) return acqL_fail(L, "one_hot", &st);
  return acqL_done(L, r);
}

static const luaL_Reg functions[] = {
    {"conv2d", l_conv2d},
    {"conv_transpose2d", l_conv_transpose2d},
    {"batch_norm", l_batch_norm},
    {"linear", l_linear},
    {"max_pool2d", l_max_pool2d},
    {"avg_pool2d", l_avg_pool2d},
    {"adaptive_avg_pool2d", l_adaptive_avg_pool2d},
    {"adaptive_max_pool2d", l_adaptive_max_pool2d},
    {"upsample_nearest2d", l_upsample_nearest2d},
    {"upsample2x_conv3x3", l_upsample2x_conv3x3},
    {"upsample_bilinear2d", l_upsample_bilinear2d},
    {"softmax", l_softmax},
    {"log_softmax", l_log_softmax},
    {"embedding", l_embedding},
    {"one_hot", l_one_hot},
    {NULL, NULL}};

/* The ones that read naturally as methods: x:softmax(1), x:one_hot(10). */
static const luaL_Reg methods[] = {
    {"softmax", l_softmax},       {"log_softmax", l_log_softmax},
    {"one_hot", l_one_hot},       {"max_pool2d", l_max_pool2d},
    {"avg_pool2d", l_avg_pool2d}, {"adaptive_avg_pool2d", l_adaptive_avg_pool2d},
    {NULL, NULL}};

void acqL_open_nn(lua_State *L, int methods_idx, int module_idx) {
  acqL_setfuncs(L, module_idx, functions);
  acqL_setfuncs(L, methods_idx, methods);
}
