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
  with_own_state();
  printf("embed_host: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
