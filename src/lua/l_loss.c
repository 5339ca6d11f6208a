/***
 * l_loss.c -- acq.core.loss: the attention map (eq. (3)) and every loss of the
 * paper (src/loss/loss.c), one Lua call each. lua/acq/loss.lua builds the
 * objectives (eqs. (15), (16)) and the coefficient presets on top.
 *
 * @module acq.core.loss
 */
#include <string.h>

#include "acqL.h"
#include "loss.h"

/* The shim's message already names the loss. */
static int lfail(lua_State *L, const atc_status *st) {
  return luaL_error(L, "%s", st->msg);
}

static const char *optstring(lua_State *L, int opts, const char *key, const char *def) {
  if (lua_type(L, opts) != LUA_TTABLE) return def;
  lua_getfield(L, opts, key);
  const char *s = lua_isnil(L, -1) ? def : lua_tostring(L, -1);
  if (!s) luaL_error(L, "option '%s' must be a string", key);
  lua_pop(L, 1); /* the string stays alive in the options table */
  return s;
}

static int optchoice(lua_State *L, int opts, const char *key, const char *def,
                     const char *const *names) {
  const char *s = optstring(L, opts, key, def);
  for (int i = 0; names[i]; i++)
    if (strcmp(s, names[i]) == 0) return i;
  return luaL_error(L, "option %s = '%s': expected '%s' or '%s'", key, s, names[0], names[1]);
}

static void checkopts(lua_State *L, int idx) {
  if (!lua_isnoneornil(L, idx)) luaL_checktype(L, idx, LUA_TTABLE);
}

/***
 * acq.attention(A [N,C,h,w], {size = {H, W}}) -> M [N,h,w] (or [N,H,W])
 * @function attention
 */
static int l_attention(lua_State *L) {
  atc_tensor *A = acqL_checktensor(L, 1);
  checkopts(L, 2);
  int64_t size[2] = {0, 0};
  acqL_optpair(L, 2, "size", 0, size);
  acqL_Tensor *r = acqL_newtensor(L);
  atc_status st;
  if (acq_attention(&st, A, size[0] ? size : NULL, &r->h)) return lfail(L, &st);
  return acqL_done(L, r);
}

static atc_tensor *field_tensor(lua_State *L, int t, int i, const char *key) {
  lua_getfield(L, t, key); /* kept on the stack until the call returns */
  acqL_Tensor *b = acqL_testbox(L, -1);
  if (!b || !b->h) luaL_error(L, "stats[%d].%s must be a tensor", i, key);
  return b->h;
}

/***
 * acq.loss.bns(stats, {form = "var"|"std", reduction = "sum"|"mean",
 * what = "L_BNS", margin = 0, weights = W [N,n]}) -> loss, layers [n]
 * stats: the list a forward with {stats = true} (or "sample") returns (name,
 * mean, var, running_mean, running_var, eps). margin > 0: DSG's slack form;
 * weights: per sample and layer (per-sample statistics only).
 * @function bns
 */
static int l_bns(lua_State *L) {
  static const char *const forms[] = {"var", "std", NULL};
  static const char *const reds[] = {"sum", "mean", NULL};
  luaL_checktype(L, 1, LUA_TTABLE);
  checkopts(L, 2);
  int form = optchoice(L, 2, "form", "var", forms);
  int red = optchoice(L, 2, "reduction", "sum", reds);
  const char *what = optstring(L, 2, "what", "L_BNS");
  double margin = acqL_optnumfield(L, 2, "margin", 0.0);
  atc_tensor *weights = NULL;
  if (lua_type(L, 2) == LUA_TTABLE) {
    if (lua_getfield(L, 2, "weights") != LUA_TNIL) weights = acqL_checktensor(L, -1);
    lua_pop(L, 1); /* still referenced by the options table */
  }
  int n = (int)luaL_len(L, 1);
  if (n <= 0) return luaL_error(L, "%s: no BN statistics (run the forward with {stats = true})", what);
  luaL_checkstack(L, 6 * n + 8, "too many BN layers");
  acq_bns_layer *l = lua_newuserdatauv(L, sizeof *l * (size_t)n, 0);
  for (int i = 0; i < n; i++) {
    lua_geti(L, 1, i + 1);
    int t = lua_gettop(L);
    if (!lua_istable(L, t)) return luaL_error(L, "%s: stats[%d] must be a table", what, i + 1);
    lua_getfield(L, t, "name");
    l[i].name = lua_tostring(L, -1); /* anchored on the stack */
    l[i].mean = field_tensor(L, t, i + 1, "mean");
    l[i].var = field_tensor(L, t, i + 1, "var");
    l[i].rmean = field_tensor(L, t, i + 1, "running_mean");
    l[i].rvar = field_tensor(L, t, i + 1, "running_var");
    lua_getfield(L, t, "eps");
    l[i].eps = lua_isnil(L, -1) ? 1e-5 : luaL_checknumber(L, -1);
    lua_pop(L, 1);
  }
  acqL_Tensor *loss = acqL_newtensor(L), *layers = acqL_newtensor(L);
  atc_status st;
  if (acq_loss_bns(&st, what, l, n, (acq_bns_form)form, (acq_reduction)red, margin, weights, &loss->h,
                   &layers->h))
    return lfail(L, &st);
  acqL_done(L, loss);
  acqL_done(L, layers);
  return 2;
}

/***
 * acq.loss.ce(logits [N,K], target [N], {what = "L_CE"}) -> loss
 * @function ce
 */
static int l_ce(lua_State *L) {
  atc_tensor *x = acqL_checktensor(L, 1), *y = acqL_checktensor(L, 2);
  checkopts(L, 3);
  const char *what = optstring(L, 3, "what", "L_CE");
  acqL_Tensor *r = acqL_newtensor(L);
  atc_status st;
  if (acq_loss_ce(&st, what, x, y, &r->h)) return lfail(L, &st);
  return acqL_done(L, r);
}

/***
 * acq.loss.soft_ce(logits [N,K], probs [N,K], {what = "L_CE"}) -> loss:
 * -mean_i sum_k probs[i,k] log softmax(logits)[i,k] (probs detached)
 * @function soft_ce
 */
static int l_soft_ce(lua_State *L) {
  atc_tensor *x = acqL_checktensor(L, 1), *p = acqL_checktensor(L, 2);
  checkopts(L, 3);
  const char *what = optstring(L, 3, "what", "L_CE");
  acqL_Tensor *r = acqL_newtensor(L);
  atc_status st;
  if (acq_loss_soft_ce(&st, what, x, p, &r->h)) return lfail(L, &st);
  return acqL_done(L, r);
}

/***
 * acq.loss.kd(q [N,K], f [N,K], {T = 1}) -> loss (f is detached)
 * @function kd
 */
static int l_kd(lua_State *L) {
  atc_tensor *q = acqL_checktensor(L, 1), *f = acqL_checktensor(L, 2);
  checkopts(L, 3);
  double T = acqL_optnumfield(L, 3, "T", 1.0);
  acqL_Tensor *r = acqL_newtensor(L);
  atc_status st;
  if (acq_loss_kd(&st, q, f, T, &r->h)) return lfail(L, &st);
  return acqL_done(L, r);
}

/***
 * acq.loss.dkd(q [N,K], f [N,K], target [N], {alpha = 1, beta = 8, T = 4})
 * -> loss, TCKD, NCKD: decoupled knowledge distillation (Zhao et al., CVPR 2022),
 * alpha TCKD + beta NCKD, each a KL divergence x T^2 averaged over samples;
 * f is detached, TCKD and NCKD are detached copies of the two parts
 * @function dkd
 */
static int l_dkd(lua_State *L) {
  atc_tensor *q = acqL_checktensor(L, 1), *f = acqL_checktensor(L, 2), *y = acqL_checktensor(L, 3);
  checkopts(L, 4);
  double alpha = acqL_optnumfield(L, 4, "alpha", 1.0), beta = acqL_optnumfield(L, 4, "beta", 8.0);
  double T = acqL_optnumfield(L, 4, "T", 4.0);
  acqL_Tensor *r = acqL_newtensor(L), *a = acqL_newtensor(L), *b = acqL_newtensor(L);
  atc_status st;
  if (acq_loss_dkd(&st, q, f, y, alpha, beta, T, &r->h, &a->h, &b->h)) return lfail(L, &st);
  acqL_done(L, r);
  acqL_done(L, a);
  acqL_done(L, b);
  return 3;
}

/***
 * acq.loss.angular_margin(x [N,D], centres [K,D], target [N], {scale = 16, margin = 0.3})
 * -> logits [N,K], cos_target [N]: ArcFace's additive angular margin,
 * scale * cos(angle between x and each centre), the target's angle
 * enlarged by margin (centres detached; cos_target detached)
 * @function angular_margin
 */
static int l_angular_margin(lua_State *L) {
  atc_tensor *x = acqL_checktensor(L, 1), *c = acqL_checktensor(L, 2), *y = acqL_checktensor(L, 3);
  checkopts(L, 4);
  double sc = acqL_optnumfield(L, 4, "scale", 16.0), m = acqL_optnumfield(L, 4, "margin", 0.3);
  acqL_Tensor *r = acqL_newtensor(L), *ct = acqL_newtensor(L);
  atc_status st;
  if (acq_angular_margin(&st, x, c, y, sc, m, &r->h, &ct->h)) return lfail(L, &st);
  acqL_done(L, r);
  acqL_done(L, ct);
  return 2;
}

/***
 * acq.loss.cacm(M [N,h,w], p [N], {eps = 0.2}) -> loss, M(p) [N]
 * @function cacm
 */
static int l_cacm(lua_State *L) {
  atc_tensor *M = acqL_checktensor(L, 1), *p = acqL_checktensor(L, 2);
  checkopts(L, 3);
  double eps = acqL_optnumfield(L, 3, "eps", 0.2);
  acqL_Tensor *r = acqL_newtensor(L), *m = acqL_newtensor(L);
  atc_status st;
  if (acq_loss_cacm(&st, M, p, eps, &r->h, &m->h)) return lfail(L, &st);
  acqL_done(L, r);
  acqL_done(L, m);
  return 2;
}

/***
 * acq.loss.ad(l1 [B,K], l2 [B,K], z1 [B,D], z2 [B,D], {form = "batch"|"sample"})
 * -> loss, {js = [B], mae = [B], o1 = [B], o2 = [B]}
 * @function ad
 */
static int l_ad(lua_State *L) {
  static const char *const forms[] = {"batch", "sample", NULL};
  atc_tensor *l1 = acqL_checktensor(L, 1), *l2 = acqL_checktensor(L, 2);
  atc_tensor *z1 = acqL_checktensor(L, 3), *z2 = acqL_checktensor(L, 4);
  checkopts(L, 5);
  int form = optchoice(L, 5, "form", "batch", forms);
  lua_settop(L, 5);
  acqL_Tensor *r = acqL_newtensor(L);                                        /* 6 */
  acqL_Tensor *js = acqL_newtensor(L), *mae = acqL_newtensor(L);             /* 7, 8 */
  acqL_Tensor *o1 = acqL_newtensor(L), *o2 = acqL_newtensor(L);              /* 9, 10 */
  atc_status st;
  if (acq_loss_ad(&st, l1, l2, z1, z2, (acq_ad_form)form, &r->h, &js->h, &mae->h, &o1->h, &o2->h))
    return lfail(L, &st);
  acqL_done(L, r);
  acqL_done(L, js);
  acqL_done(L, mae);
  acqL_done(L, o1);
  acqL_done(L, o2);
  lua_createtable(L, 0, 4);
  static const char *const keys[] = {"js", "mae", "o1", "o2"};
  for (int i = 0; i < 4; i++) {
    lua_pushvalue(L, 7 + i);
    lua_setfield(L, -2, keys[i]);
  }
  lua_pushvalue(L, 6);
  lua_insert(L, -2);
  return 2;
}

/***
 * acq.loss.penalty_cacm(M_train, M_eval, {eps = 0.1}) -> loss, mae
 * @function penalty_cacm
 */
static int l_penalty_cacm(lua_State *L) {
  atc_tensor *a = acqL_checktensor(L, 1), *b = acqL_checktensor(L, 2);
  checkopts(L, 3);
  double eps = acqL_optnumfield(L, 3, "eps", 0.1);
  acqL_Tensor *r = acqL_newtensor(L), *m = acqL_newtensor(L);
  atc_status st;
  if (acq_penalty_cacm(&st, a, b, eps, &r->h, &m->h)) return lfail(L, &st);
  acqL_done(L, r);
  acqL_done(L, m);
  return 2;
}

/***
 * acq.loss.weighted_sum({{name, tensor, weight}, ...}, what) -> sum of
 * weight * tensor over the entries whose tensor is not nil.
 * @function weighted_sum
 */
static int l_weighted_sum(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *what = luaL_optstring(L, 2, "objective");
  int n = (int)luaL_len(L, 1);
  luaL_checkstack(L, 2 * n + 8, "too many terms");
  const atc_tensor **t = lua_newuserdatauv(L, (sizeof *t + sizeof(char *) + sizeof(double)) * (size_t)(n + 1), 0);
  const char **names = (const char **)(t + n + 1);
  double *w = (double *)(names + n + 1);
  for (int i = 0; i < n; i++) {
    lua_geti(L, 1, i + 1);
    int e = lua_gettop(L);
    if (!lua_istable(L, e)) return luaL_error(L, "%s: term %d must be {name, tensor, weight}", what, i + 1);
    lua_geti(L, e, 1);
    names[i] = lua_tostring(L, -1);
    if (!names[i]) return luaL_error(L, "%s: term %d has no name", what, i + 1);
    lua_geti(L, e, 2);
    if (lua_isnil(L, -1)) {
      t[i] = NULL;
    } else {
      acqL_Tensor *b = acqL_testbox(L, -1);
      if (!b || !b->h) return luaL_error(L, "%s: term %s must be a tensor or nil", what, names[i]);
      t[i] = b->h;
    }
    lua_geti(L, e, 3);
    if (!lua_isnumber(L, -1)) return luaL_error(L, "%s: term %s has no numeric weight", what, names[i]);
    w[i] = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  acqL_Tensor *r = acqL_newtensor(L);
  atc_status st;
  if (acq_weighted_sum(&st, what, (const atc_tensor *const *)t, names, w, n, &r->h))
    return lfail(L, &st);
  return acqL_done(L, r);
}

void acqL_open_loss(lua_State *L, int module) {
  static const luaL_Reg fns[] = {
    {"bns", l_bns},   {"ce", l_ce}, {"soft_ce", l_soft_ce}, {"kd", l_kd}, {"dkd", l_dkd},
    {"angular_margin", l_angular_margin}, {"cacm", l_cacm}, {"ad", l_ad},
    {"penalty_cacm", l_penalty_cacm}, {"weighted_sum", l_weighted_sum}, {NULL, NULL}};
  lua_pushcfunction(L, l_attention);
  lua_setfield(L, module, "attention");
  lua_newtable(L);
  acqL_setfuncs(L, lua_gettop(L), fns);
  lua_setfield(L, module, "loss");
}
