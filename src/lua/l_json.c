/***
 * l_json.c -- JSON for run files (options, metrics lines), over jansson.
 *
 *   acq.json.encode(v [, {indent = n}]) -> string
 *       v: nil (null), boolean, number, string, or a table: an array when its
 *       keys are exactly 1..n (an empty table is an empty object), otherwise
 *       an object with string keys, written in sorted key order, compact
 *       unless indent is given; numbers round-trip (17 digits). NaN and
 *       infinities are written as null (JSON has no spelling for them).
 *   acq.json.decode(s) -> value
 *       objects and arrays become tables, null becomes acq.json.null,
 *       integers stay integers. Errors name the line and column.
 *
 * @module acq.core.json
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "acqL.h"

#define MAX_DEPTH 64
#define MAX_DEPTH_S "64"

/* encode builds the whole tree before anything can raise: on a value it
 * cannot write it frees what it built, leaves a message in err and returns
 * NULL, and l_encode raises only then, so a failed encode leaks nothing. */
typedef struct {
  char msg[128];
} enc_err;

static json_t *encode(lua_State *L, int idx, int depth, enc_err *err);

static json_t *fail(enc_err *err, json_t *partial, const char *msg, const char *arg) {
  snprintf(err->msg, sizeof err->msg, msg, arg);
  json_decref(partial);
  return NULL;
}

/* 1..n keys only -> n, else -1; an empty table -> 0. */
static lua_Integer array_length(lua_State *L, int idx) {
  lua_Integer n = 0, max = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
      lua_pop(L, 1);
      return -1;
    }
    lua_Integer k = lua_tointeger(L, -1);
    if (k > max) max = k;
    n++;
  }
  return n == max ? n : -1;
}

static json_t *encode_table(lua_State *L, int idx, int depth, enc_err *err) {
  if (depth > MAX_DEPTH) return fail(err, NULL, "nesting deeper than %s (a cycle?)", MAX_DEPTH_S);
  if (!lua_checkstack(L, 4)) return fail(err, NULL, "%s", "no Lua stack left");
  lua_Integer n = array_length(L, idx);
  if (n > 0) {
    json_t *a = json_array();
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, idx, i);
      json_t *v = encode(L, lua_gettop(L), depth + 1, err);
      lua_pop(L, 1);
      if (!v) {
        json_decref(a); /* err holds the child's message */
        return NULL;
      }
      json_array_append_new(a, v);
    }
    return a;
  }
  json_t *o = json_object();
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      const char *type = luaL_typename(L, -2);
      lua_pop(L, 2);
      return fail(err, o, "object keys must be strings, got a %s key", type);
    }
    json_t *v = encode(L, lua_gettop(L), depth + 1, err);
    if (!v) {
      lua_pop(L, 2);
      json_decref(o);
      return NULL;
    }
    size_t klen;
    const char *key = lua_tolstring(L, -2, &klen);
    if (json_object_setn_new(o, key, klen, v) != 0) { /* keys with NUL bytes kept whole */
      lua_pop(L, 2);
      return fail(err, o, "%s", "an object key is not valid UTF-8");
    }
    lua_pop(L, 1);
  }
  return o;
}

static json_t *encode(lua_State *L, int idx, int depth, enc_err *err) {
  switch (lua_type(L, idx)) {
  case LUA_TNIL: return json_null();
  case LUA_TBOOLEAN: return json_boolean(lua_toboolean(L, idx));
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) return json_integer((json_int_t)lua_tointeger(L, idx));
    else {
      double d = lua_tonumber(L, idx);
      return isfinite(d) ? json_real(d) : json_null();
    }
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    json_t *j = json_stringn(s, len);
    return j ? j : fail(err, NULL, "%s", "a string is not valid UTF-8");
  }
  case LUA_TTABLE: return encode_table(L, idx, depth, err);
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL) return json_null(); /* acq.json.null */
    /* fall through */
  default: return fail(err, NULL, "cannot encode a %s", luaL_typename(L, idx));
  }
}

/***
 * acq.json.encode(value [, {indent = n}]) -> JSON text: tables with keys 1..n are arrays, others objects (sorted keys); numbers round-trip (17 digits); acq.json.null is null. A value JSON cannot hold (a function, NaN, a cycle) is an error.
 * @function encode
 */
static int l_encode(lua_State *L) {
  lua_settop(L, 2);
  size_t flags = JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17);
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "indent");
    if (!lua_isnil(L, -1)) flags |= JSON_INDENT((int)luaL_checkinteger(L, -1) & 0x1F);
    else flags |= JSON_COMPACT;
    lua_pop(L, 1);
  } else {
    flags |= JSON_COMPACT;
  }
  enc_err err = {{0}};
  json_t *j = encode(L, 1, 0, &err);
  if (!j) return luaL_error(L, "json.encode: %s", err.msg);
  char *s = json_dumps(j, flags);
  json_decref(j);
  if (!s) return luaL_error(L, "json.encode: out of memory");
  lua_pushstring(L, s);
  free(s);
  return 1;
}

/* A json_t owned by a Lua userdata, so an error while decoding frees it. */
static int holder_gc(lua_State *L) {
  json_t **p = lua_touserdata(L, 1);
  if (*p) json_decref(*p);
  *p = NULL;
  return 0;
}

static void push(lua_State *L, json_t *j, int depth) {
  luaL_checkstack(L, 4, "json.decode: too deep");
  if (depth > MAX_DEPTH) luaL_error(L, "json.decode: nesting deeper than %d", MAX_DEPTH);
  switch (json_typeof(j)) {
  case JSON_OBJECT: {
    lua_createtable(L, 0, (int)json_object_size(j));
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
      push(L, v, depth + 1);
      lua_setfield(L, -2, k);
    }
    break;
  }
  case JSON_ARRAY: {
    size_t n = json_array_size(j);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
      push(L, json_array_get(j, i), depth + 1);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
  }
  case JSON_STRING: lua_pushlstring(L, json_string_value(j), json_string_length(j)); break;
  case JSON_INTEGER: lua_pushinteger(L, (lua_Integer)json_integer_value(j)); break;
  case JSON_REAL: lua_pushnumber(L, json_real_value(j)); break;
  case JSON_TRUE: lua_pushboolean(L, 1); break;
  case JSON_FALSE: lua_pushboolean(L, 0); break;
  default: lua_pushlightuserdata(L, NULL); break;
  }
}

/***
 * acq.json.decode(text) -> the Lua value: objects and arrays as tables, null as acq.json.null; malformed text is an error with the line and column.
 * @function decode
 */
static int l_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  json_error_t err;
  json_t *j = json_loadb(s, len, JSON_DECODE_ANY, &err);
  if (!j) return luaL_error(L, "json.decode: %s at line %d, column %d", err.text, err.line, err.column);
  json_t **p = lua_newuserdatauv(L, sizeof *p, 0);
  *p = j;
  lua_newtable(L);
  lua_pushcfunction(L, holder_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  push(L, j, 0);
  json_decref(j);
  *p = NULL;
  return 1;
}

void acqL_open_json(lua_State *L, int module) {
  static const luaL_Reg fns[] = {{"encode", l_encode}, {"decode", l_decode}, {NULL, NULL}};
  lua_newtable(L);
  acqL_setfuncs(L, lua_gettop(L), fns);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_setfield(L, module, "json");
}
