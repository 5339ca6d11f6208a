/*
 * embed_host.c -- an example C program that embeds acq, both ways:
 *   1. the opaque acq_runtime: run a file and a chunk, register a C function,
 *      read the last error;
 *   2. a lua_State of the host's own, with acq_openlibs.
 * Run by the tests: `embed_host examples/embed_script.lua`.
 */
#include <lauxlib.h>
#include <lualib.h>

#include <stdio.h>
#include <string.h>

#include "acq/acq.h"

static int failures = 0;

#define EXPECT(cond, what)                           \
  do {                                               \
    if (!(cond)) {                                   \
      failures++;                                    \
      fprintf(stderr, "embed_host: FAIL %s\n", what); \
    }                                                \
  } while (0)

/* host_scale(x, k) -> x * k: a host function that Lua can call. */
static int host_scale(lua_State *L) {
  lua_pushnumber(L, luaL_checknumber(L, 1) * luaL_checknumber(L, 2));
  return 1;
}

static void with_runtime(const char *script) {
  acq_runtime *rt = acq_runtime_new();
  EXPECT(rt != NULL, "acq_runtime_new");
  if (!rt) return;
  EXPECT(acq_runtime_register(rt, "host_scale", host_scale) == ACQ_OK, "register");

  const char *args[] = {"7"};
  int rc = acq_runtime_dofile(rt, script, 1, args);
  if (rc != ACQ_OK) fprintf(stderr, "%s\n", acq_runtime_error(rt));
  EXPECT(rc == ACQ_OK, "dofile of the example script");

  /* the script left `result` = sum of a tensor computed with host_scale */
  lua_State *L = acq_runtime_state(rt);
  lua_getglobal(L, "result");
  EXPECT(lua_tonumber(L, -1) == 42.0, "script result is 42");
  printf("script result: %g\n", lua_tonumber(L, -1));
  lua_pop(L, 1);

  /* a libtorch error is a Lua error with a message, the runtime survives */
  rc = acq_runtime_dostring(rt,
      "local acq = require 'acq'\n"
      "acq.zeros(2, 3):matmul(acq.zeros(2, 3))", "=shape_error");
  EXPECT(rc == ACQ_ERR_RUN, "matmul shape error is ACQ_ERR_RUN");
  EXPECT(strstr(acq_runtime_error(rt), "matmul") != NULL, "message names matmul");
  EXPECT(strstr(acq_runtime_error(rt), "stack traceback") != NULL, "message has a traceback");
  printf("caught: %.80s...\n", acq_runtime_error(rt));

  rc = acq_runtime_dostring(rt, "x = = 1", "=syntax");
  EXPECT(rc == ACQ_ERR_SYNTAX, "syntax error is ACQ_ERR_SYNTAX");
  rc = acq_runtime_dofile(rt, "/nonexistent/script.lua", 0, NULL);
  EXPECT(rc == ACQ_ERR_FILE, "missing file is ACQ_ERR_FILE");
  EXPECT(strstr(acq_runtime_error(rt), "/nonexistent/script.lua") != NULL, "message names the file");
  rc = acq_runtime_dostring(rt, "assert(require('acq').tensor{{1,2},{3,4}}:sum():item() == 10)", NULL);
  EXPECT(rc == ACQ_OK && acq_runtime_error(rt)[0] == '\0', "runtime works after errors");
  EXPECT(acq_runtime_dostring(rt, NULL, NULL) == ACQ_ERR_ARG, "NULL chunk");
  acq_runtime_free(rt);
}

/* host_fail(): a host function that raises a Lua error. */
static int host_fail(lua_State *L) { return luaL_error(L, "host_fail: the host says no"); }

/* Misuse of the API and recovery: NULL arguments, errors raised by a host
 * function and by acq's own checks, a fresh runtime after closing one. None
 * of it may abort the process. */
static void misuse(void) {
  EXPECT(acq_runtime_dofile(NULL, "x.lua", 0, NULL) == ACQ_ERR_ARG, "dofile on a NULL runtime");
  EXPECT(acq_runtime_dostring(NULL, "return 1", NULL) == ACQ_ERR_ARG, "dostring on a NULL runtime");
  EXPECT(acq_runtime_register(NULL, "f", host_fail) == ACQ_ERR_ARG, "register on a NULL runtime");
  EXPECT(acq_runtime_error(NULL)[0] == '\0', "error of a NULL runtime is empty");
  EXPECT(acq_runtime_state(NULL) == NULL, "state of a NULL runtime");
  acq_runtime_free(NULL);

  acq_runtime *rt = acq_runtime_new();
  EXPECT(rt != NULL, "acq_runtime_new (first)");
  if (!rt) return;
  EXPECT(acq_runtime_register(rt, NULL, host_fail) == ACQ_ERR_ARG, "register without a name");
  EXPECT(acq_runtime_register(rt, "f", NULL) == ACQ_ERR_ARG, "register without a function");
  const char *args[] = {"a"};
  EXPECT(acq_runtime_dofile(rt, "x.lua", 1, NULL) == ACQ_ERR_ARG, "argc without argv");
  EXPECT(acq_runtime_dofile(rt, "x.lua", -1, args) == ACQ_ERR_ARG, "negative argc");
  EXPECT(acq_runtime_register(rt, "host_fail", host_fail) == ACQ_OK, "register host_fail");
  int rc = acq_runtime_dostring(rt, "host_fail()", "=host");
  EXPECT(rc == ACQ_ERR_RUN && strstr(acq_runtime_error(rt), "the host says no"), "a host function's error");
  /* acq's own argument checks and a failing checkpoint load */
  rc = acq_runtime_dostring(rt, "require('acq').tensor('not data')", "=bad_tensor");
  EXPECT(rc == ACQ_ERR_RUN && acq_runtime_error(rt)[0] != '\0', "a bad tensor argument");
  rc = acq_runtime_dostring(rt, "require('acq').safetensors.load('/nonexistent.safetensors')", "=missing");
  EXPECT(rc == ACQ_ERR_RUN && strstr(acq_runtime_error(rt), "/nonexistent.safetensors"), "a missing file");
  rc = acq_runtime_dostring(rt, "require('acq').quant.inundation_factor(require('acq').zeros(2), "
                                "require('acq').zeros(3), 4)", "=shapes");
  EXPECT(rc == ACQ_ERR_RUN && strstr(acq_runtime_error(rt), "differ in shape"), "a shape mismatch");
  rc = acq_runtime_dostring(rt, "error(setmetatable({}, {__tostring = function() return 'a table error' end}))",
                            "=table_error");
  EXPECT(rc == ACQ_ERR_RUN, "a non-string error object");
  rc = acq_runtime_dostring(rt, "return require('acq').arange(4):sum():item() == 6 or error('wrong')", NULL);
  EXPECT(rc == ACQ_OK, "the runtime still works after every error");
  acq_runtime_free(rt);

  /* a fresh runtime after closing one: nothing of the first survives */
  rt = acq_runtime_new();
  EXPECT(rt != NULL, "acq_runtime_new (second)");
  if (!rt) return;
  rc = acq_runtime_dostring(rt, "assert(host_fail == nil); local acq = require 'acq'\n"
                                "assert(acq.tensor{{1.0, 2}, {3, 4}}:matmul(acq.ones(2, 2)):sum():item() == 20)", "=fresh");
  if (rc != ACQ_OK) fprintf(stderr, "%s\n", acq_runtime_error(rt));
  EXPECT(rc == ACQ_OK, "a second runtime after closing the first");
  acq_runtime_free(rt);
}

static int p_own_state(lua_State *L) {
  luaL_openlibs(L);
  acq_openlibs(L);
  luaL_dostring(L, "local acq = require 'acq'; return acq.arange(5):sum():item()");
  return 1;
}

static void with_own_state(void) {
  lua_State *L = luaL_newstate();
  lua_pushcfunction(L, p_own_state);
  int rc = lua_pcall(L, 0, 1, 0);
  EXPECT(rc == LUA_OK && lua_tointeger(L, -1) == 10, "host state: arange(5):sum() == 10");
  lua_close(L);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: embed_host script.lua\n");
    return 2;
  }
  with_runtime(argv[1]);
  misuse();
  with_own_state();
  printf("embed_host: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
