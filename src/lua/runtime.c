/*
 * runtime.c -- the embedding API of include/acq/acq.h: acq_openlibs (the
 * preload table) and the opaque acq_runtime. Every call into Lua from here
 * runs under lua_pcall, so the panic function is never reached.
 */
#include <lauxlib.h>
#include <lualib.h>

#include <stdlib.h>
#include <string.h>

#include "acq/acq.h"
#include "embedded.h"

/* ---- preload ------------------------------------------------------------ */

/* package.preload loader of an embedded module; upvalue 1: its index. */
static int load_embedded(lua_State *L) {
  const acq_embedded_module *m = &acq_embedded_modules[lua_tointeger(L, lua_upvalueindex(1))];
  if (luaL_loadbuffer(L, m->source, m->size, m->chunkname) != LUA_OK) return lua_error(L);
  lua_pushstring(L, m->name);
  lua_call(L, 1, 1);
  return 1;
}

void acq_openlibs(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_acq_core);
  lua_setfield(L, -2, "acq.core");
  for (int i = 0; acq_embedded_modules[i].name; i++) {
    lua_pushinteger(L, i);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, acq_embedded_modules[i].name);
  }
  lua_pop(L, 1);
}

/* ---- the runtime -------------------------------------------------------- */

struct acq_runtime {
  lua_State *L;
  char *err; /* malloc'd copy of the last message, or NULL */
};

static void set_error(acq_runtime *rt, const char *msg) {
  free(rt->err);
  rt->err = NULL;
  if (msg) {
    size_t n = strlen(msg);
    rt->err = (char *)malloc(n + 1);
    if (rt->err) memcpy(rt->err, msg, n + 1);
  }
}

/* As lua.c's msghandler: a message with a traceback. */
static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static int p_init(lua_State *L) {
  luaL_openlibs(L);
  acq_openlibs(L);
  return 0;
}

acq_runtime *acq_runtime_new(void) {
  acq_runtime *rt = (acq_runtime *)calloc(1, sizeof *rt);
  if (!rt) return NULL;
  rt->L = luaL_newstate();
  if (!rt->L) {
    free(rt);
    return NULL;
  }
  lua_pushcfunction(rt->L, p_init); /* cannot fail: light C function */
  if (lua_pcall(rt->L, 0, 0, 0) != LUA_OK) {
    lua_close(rt->L);
    free(rt);
    return NULL;
  }
  return rt;
}

void acq_runtime_free(acq_runtime *rt) {
  if (!rt) return;
  if (rt->L) lua_close(rt->L);
  free(rt->err);
  free(rt);
}

lua_State *acq_runtime_state(acq_runtime *rt) { return rt ? rt->L : NULL; }

const char *acq_runtime_error(const acq_runtime *rt) {
  return rt && rt->err ? rt->err : "";
}

typedef struct Job {
  const char *path;  /* a file, or NULL for a chunk */
  const char *chunk;
  const char *name;
  int argc;
  const char *const *argv;
  int load_status;
} Job;

/* Runs under pcall: load, then call. A load failure is returned as a value
 * (no traceback for a syntax error); a run-time error propagates. */
static int p_job(lua_State *L) {
  Job *j = (Job *)lua_touserdata(L, 1);
  if (j->path) {
    lua_createtable(L, j->argc, 1); /* arg: arg[0] = script, arg[1..] */
    lua_pushstring(L, j->path);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < j->argc; i++) {
      lua_pushstring(L, j->argv[i]);
      lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");
    j->load_status = luaL_loadfile(L, j->path);
  } else {
    j->load_status = luaL_loadbuffer(L, j->chunk, strlen(j->chunk), j->name);
  }
  if (j->load_status != LUA_OK) return 1; /* the message */
  int n = 0;
  if (j->path) {
    luaL_checkstack(L, j->argc, "too many script arguments");
    for (; n < j->argc; n++) lua_pushstring(L, j->argv[n]);
  }
  lua_call(L, n, 0);
  return 0;
}

static int run(acq_runtime *rt, Job *j) {
  lua_State *L = rt->L;
  int base = lua_gettop(L);
  int rc;
  lua_pushcfunction(L, msghandler);
  lua_pushcfunction(L, p_job);
  lua_pushlightuserdata(L, j);
  j->load_status = LUA_OK;
  int st = lua_pcall(L, 1, 1, base + 1);
  if (st == LUA_OK && j->load_status == LUA_OK) {
    set_error(rt, NULL);
    rc = ACQ_OK;
  } else {
    int code = st != LUA_OK ? st : j->load_status;
    set_error(rt, lua_isstring(L, -1) ? lua_tostring(L, -1) : "(error object is not a string)");
    rc = code == LUA_ERRSYNTAX ? ACQ_ERR_SYNTAX
         : code == LUA_ERRMEM  ? ACQ_ERR_MEM
         : code == LUA_ERRFILE ? ACQ_ERR_FILE
                               : ACQ_ERR_RUN;
  }
  lua_settop(L, base);
  return rc;
}

int acq_runtime_dofile(acq_runtime *rt, const char *path, int argc, const char *const *argv) {
  Job j = {0};
  if (!rt || !path || argc < 0 || (argc > 0 && !argv)) {
    if (rt) set_error(rt, "acq_runtime_dofile: invalid argument");
    return ACQ_ERR_ARG;
  }
  j.path = path;
  j.argc = argc;
  j.argv = argv;
  return run(rt, &j);
}

int acq_runtime_dostring(acq_runtime *rt, const char *chunk, const char *name) {
  Job j = {0};
  if (!rt || !chunk) {
    if (rt) set_error(rt, "acq_runtime_dostring: invalid argument");
    return ACQ_ERR_ARG;
  }
  j.chunk = chunk;
  j.name = name ? name : "=(string)";
  return run(rt, &j);
}

typedef struct Reg {
  const char *name;
  lua_CFunction fn;
} Reg;

static int p_register(lua_State *L) {
  Reg *r = (Reg *)lua_touserdata(L, 1);
  lua_pushcfunction(L, r->fn);
  lua_setglobal(L, r->name);
  return 0;
}

int acq_runtime_register(acq_runtime *rt, const char *name, lua_CFunction fn) {
  Reg r;
  if (!rt || !name || !fn) {
    if (rt) set_error(rt, "acq_runtime_register: invalid argument");
    return ACQ_ERR_ARG;
  }
  r.name = name;
  r.fn = fn;
  lua_pushcfunction(rt->L, p_register);
  lua_pushlightuserdata(rt->L, &r);
  if (lua_pcall(rt->L, 1, 0, 0) != LUA_OK) {
    set_error(rt, lua_tostring(rt->L, -1));
    lua_pop(rt->L, 1);
    return ACQ_ERR_MEM;
  }
  set_error(rt, NULL);
  return ACQ_OK;
}
