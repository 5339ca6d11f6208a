/*
 * l_dist.c -- acq.core.dist: the process group of this process (c10d with
 * Gloo, through the shim) and its collectives, for lua/acq/dist.lua.
 */
/***
 * Processes: one c10d process group per process, and its collectives.
 * @module acq.core.dist
 */
#include "acqL.h"
#include "fakequant.h"
#include "module.h"

#include <string.h>

#define MAX_TENSORS 4096

static int dist_fail(lua_State *L, const atc_status *st) {
  return luaL_error(L, "%s", st->msg);
}

/* The list of tensors at index i (a table) into ts; returns the count. */
static int tensor_list(lua_State *L, int i, atc_tensor **ts, const char *what) {
  luaL_checktype(L, i, LUA_TTABLE);
  int n = (int)luaL_len(L, i);
  if (n > MAX_TENSORS) return luaL_error(L, "%s: at most %d tensors, got %d", what, MAX_TENSORS, n);
  for (int k = 0; k < n; k++) {
    lua_geti(L, i, k + 1);
    ts[k] = acqL_checktensor(L, -1);
    lua_pop(L, 1); /* still referenced by the list */
  }
  return n;
}

/***
 * dist.init(rank, world, addr, port [, timeout_s = 300 [, serve_store = true]]): joins the process group (rank 0 serves the TCP store at addr:port unless serve_store is false)
 * @function init
 */
static int l_init(lua_State *L) {
  int rank = (int)luaL_checkinteger(L, 1), world = (int)luaL_checkinteger(L, 2);
  const char *addr = luaL_checkstring(L, 3);
  int port = (int)luaL_checkinteger(L, 4);
  double timeout = luaL_optnumber(L, 5, 300.0);
  int serve = lua_isnoneornil(L, 6) ? 1 : lua_toboolean(L, 6);
  atc_status st;
  if (atc_dist_init(&st, rank, world, addr, port, timeout, serve)) return dist_fail(L, &st);
  return 0;
}

/***
 * dist.all_reduce({t1, t2, ...} [, op = "sum"|"min"|"max"|"avg"]): in place, over every rank (one flat buffer)
 * @function all_reduce
 */
static int l_all_reduce(lua_State *L) {
  static const char *const ops[] = {"sum", "min", "max", "avg", NULL};
  atc_tensor *ts[MAX_TENSORS];
  int n = tensor_list(L, 1, ts, "dist.all_reduce");
  int op = luaL_checkoption(L, 2, "sum", ops);
  atc_status st;
  if (atc_dist_allreduce(&st, ts, n, op)) return dist_fail(L, &st);
  return 0;
}

/***
 * dist.broadcast({t1, ...} [, root = 0]): every rank's tensors become root's, in place
 * @function broadcast
 */
static int l_broadcast(lua_State *L) {
  atc_tensor *ts[MAX_TENSORS];
  int n = tensor_list(L, 1, ts, "dist.broadcast");
  int root = (int)luaL_optinteger(L, 2, 0);
  atc_status st;
  if (atc_dist_broadcast(&st, ts, n, root)) return dist_fail(L, &st);
  return 0;
}

/***
 * dist.barrier(): waits for every rank (at most the group's timeout)
 * @function barrier
 */
static int l_barrier(lua_State *L) {
  atc_status st;
  if (atc_dist_barrier(&st)) return dist_fail(L, &st);
  return 0;
}

/***
 * dist.rank() -> this process's rank (0 without a group)
 * @function rank
 */
static int l_rank(lua_State *L) {
  lua_pushinteger(L, atc_dist_rank());
  return 1;
}

/***
 * dist.world() -> the number of processes (1 without a group)
 * @function world
 */
static int l_world(lua_State *L) {
  lua_pushinteger(L, atc_dist_world());
  return 1;
}

/***
 * dist.active() -> true inside a process group
 * @function active
 */
static int l_active(lua_State *L) {
  lua_pushboolean(L, atc_dist_active());
  return 1;
}

/***
 * dist.destroy(): leaves the process group
 * @function destroy
 */
static int l_destroy(lua_State *L) {
  (void)L;
  atc_dist_destroy();
  return 0;
}

/* the batch bounds of every calibrating quantizer, min / max over the ranks */
static int reduce_bounds(atc_status *st, atc_tensor *lo, atc_tensor *hi) {
  atc_tensor *l[1] = {lo}, *h[1] = {hi};
  if (atc_dist_allreduce(st, l, 1, ATC_DIST_MIN)) return st->code;
  return atc_dist_allreduce(st, h, 1, ATC_DIST_MAX);
}

/***
 * dist.reduce_calibration(on): while on, every calibrating activation quantizer takes the min / max of its batch bounds over the ranks before it updates (each layer calibrated on the union of the ranks' batches, as one process would)
 * @function reduce_calibration
 */
static int l_reduce_calibration(lua_State *L) {
  acq_fq_set_reduce(lua_toboolean(L, 1) ? reduce_bounds : NULL);
  return 0;
}

/* mean, var of this rank's batch -> those of the union of the ranks'
 * batches (equal sizes): the ranks' mean of [mean, var + mean^2], one
 * differentiable collective, then var = E[x^2] - mean^2 */
static int sync_stats(atc_status *st, atc_tensor **mean, atc_tensor **var) {
  atc_tensor *m2 = NULL, *ex2 = NULL, *stk = NULL, *g = NULL, *gm = NULL, *ge = NULL, *gm2 = NULL, *gv = NULL;
  const atc_tensor *pair[2];
  int rc = atc_unary(st, ATC_SQUARE, *mean, &m2) || atc_binary(st, ATC_ADD, *var, m2, &ex2);
  if (!rc) {
    pair[0] = *mean;
    pair[1] = ex2;
    rc = atc_stack(st, pair, 2, 0, &stk) || atc_dist_mean(st, stk, &g) || atc_select(st, g, 0, 0, &gm) ||
         atc_select(st, g, 0, 1, &ge) || atc_unary(st, ATC_SQUARE, gm, &gm2) ||
         atc_binary(st, ATC_SUB, ge, gm2, &gv);
  }
  atc_tensor_free(m2), atc_tensor_free(ex2), atc_tensor_free(stk), atc_tensor_free(g), atc_tensor_free(gm2);
  atc_tensor_free(ge);
  if (rc) {
    atc_tensor_free(gm), atc_tensor_free(gv);
    return st->code;
  }
  atc_tensor_free(*mean);
  atc_tensor_free(*var);
  *mean = gm;
  *var = gv;
  return ATC_OK;
}

/***
 * dist.sync_stats(on): while on, BN batch statistics are those of the union of the ranks' batches: the statistics recorded for L_BNS (stats = true) and the normalisation of F^train (bn = "batch"), as SyncBatchNorm; differentiable
 * @function sync_stats
 */
static int l_sync_stats(lua_State *L) {
  acq_set_stats_sync(lua_toboolean(L, 1) ? sync_stats : NULL);
  return 0;
}

void acqL_open_dist(lua_State *L, int module) {
  static const luaL_Reg fns[] = {{"init", l_init},       {"all_reduce", l_all_reduce}, {"broadcast", l_broadcast},
                                 {"barrier", l_barrier}, {"rank", l_rank},             {"world", l_world},
                                 {"active", l_active},   {"destroy", l_destroy},       {"reduce_calibration", l_reduce_calibration},
                                 {"sync_stats", l_sync_stats},
                                 {NULL, NULL}};
  lua_newtable(L);
  acqL_setfuncs(L, lua_gettop(L), fns);
  lua_setfield(L, module, "dist");
}
