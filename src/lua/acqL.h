/*
 * acqL.h -- private header of the Lua binding (module acq.core).
 *
 * The binding is the only layer that calls both Lua and the shim. Every
 * function follows one order: check arguments (may raise), create the result
 * box already empty (may raise; an error then leaves a harmless object), call
 * the shim (never raises), and only after all handles are owned by boxes
 * raise the shim's message with acqL_fail.
 */
#ifndef ACQL_H
#define ACQL_H

#include <lua.h>
#include <lauxlib.h>

#include "atc.h"

#define ACQ_TENSOR_MT    "acq.Tensor"
#define ACQ_OPTIM_MT     "acq.Optimizer"
#define ACQ_GENERATOR_MT "acq.Generator"
#define ACQ_MODULE_MT    "acq.Module"

typedef struct acqL_Tensor {
  atc_tensor *h;   /* NULL once freed (or before the shim filled it) */
  int64_t nbytes;  /* bytes counted in the state's live total        */
} acqL_Tensor;

/* ---- tensor boxes (l_tensor.c) ------------------------------------------ */
acqL_Tensor *acqL_newtensor(lua_State *L);         /* [-0,+1,m] empty box    */
int          acqL_done(lua_State *L, acqL_Tensor *b); /* count bytes, ret 1  */
atc_tensor  *acqL_checktensor(lua_State *L, int idx);   /* raises if freed  */
atc_tensor  *acqL_opttensor(lua_State *L, int idx);     /* nil -> NULL       */
acqL_Tensor *acqL_testbox(lua_State *L, int idx);       /* NULL if no tensor */
/* The tensors of the Lua list at idx, in a userdata array (pushed). */
atc_tensor **acqL_checktensorlist(lua_State *L, int idx, int *n, const char *what);
/* luaL_setfuncs into the table at idx (no upvalues). */
void acqL_setfuncs(lua_State *L, int idx, const luaL_Reg *fns);
/* Raises "<op>: <message>"; never returns. */
int acqL_fail(lua_State *L, const char *op, const atc_status *st);

/* ---- argument helpers (l_tensor.c) -------------------------------------- */
atc_scalar acqL_checkscalar(lua_State *L, int idx);
int        acqL_isscalar(lua_State *L, int idx);
atc_dtype  acqL_checkdtype(lua_State *L, int idx);
int        acqL_dtype_of(const char *name, atc_dtype *dt); /* 1 if name is a dtype */
/* Field `key` of the options table at idx (may be none/nil). */
atc_dtype  acqL_optdtype(lua_State *L, int opts, atc_dtype def);
atc_device acqL_optdevice(lua_State *L, int opts);
atc_device acqL_checkdevice(lua_State *L, int idx); /* "cpu", "cuda", "cuda:1" */
int64_t    acqL_checkint(lua_State *L, int idx, const char *what);
int        acqL_optbool(lua_State *L, int opts, const char *key, int def);
/* [-0, +0, v] a path argument: a string without NUL bytes (the system would
 * see it cut at the first), else an argument error */
const char *acqL_checkpath(lua_State *L, int idx);
/* 1 when s[0..len) is valid UTF-8 without NUL bytes */
int        acqL_utf8_ok(const char *s, size_t len);
lua_Number acqL_optnumfield(lua_State *L, int opts, const char *key, lua_Number def);
/* Sizes from a table at idx, or from the integers starting at idx. Returns
 * the index of the first argument after them. */
int acqL_checksizes(lua_State *L, int idx, int64_t *sizes, int *ndim);
/* Exactly two integers: a number n means {n, n}. */
void acqL_checkpair(lua_State *L, int idx, const char *what, int64_t def,
                    int64_t out[2]);
/* Field `key` of the options table at opts as a pair (2 or {2, 1}). */
void acqL_optpair(lua_State *L, int opts, const char *key, int64_t def, int64_t out[2]);
int64_t acqL_optint(lua_State *L, int opts, const char *key, int64_t def);
/* A list of dimensions: an integer, a table of integers, or nil (none). */
int acqL_optdims(lua_State *L, int idx, int64_t *dims);
const char *acqL_dtypename(atc_dtype d);

/* ---- memory accounting (l_tensor.c) ------------------------------------- */
typedef struct acqL_Memory {
  int64_t live;       /* tensor boxes alive in this state */
  int64_t bytes;      /* their bytes                      */
  int64_t since_gc;   /* bytes created since the last forced collection */
  int64_t peak;       /* highest `bytes` seen             */
  int64_t collections;
} acqL_Memory;
acqL_Memory *acqL_memory(lua_State *L);

/* ---- areas: each adds its functions to the method table (at index
 *      `methods`) and the module table (at index `module`). ---------------- */
void acqL_open_tensor(lua_State *L, int methods, int module);
void acqL_open_math(lua_State *L, int methods, int module);
void acqL_open_nn(lua_State *L, int methods, int module);
void acqL_open_autograd(lua_State *L, int methods, int module);
void acqL_open_optim(lua_State *L, int module);
void acqL_open_runtime(lua_State *L, int module);
void acqL_open_data(lua_State *L, int module);
void acqL_open_dist(lua_State *L, int module);
void acqL_open_pth(lua_State *L, int module);
/* The bytes of the file at path as a string (pushed), gzip decompressed as
 * acq.read_file does; its length in *len (may be NULL). Raises
 * "<path>: <reason>" when it cannot be read. (l_data.c) */
const char *acqL_read_file(lua_State *L, const char *path, size_t *len);
/* The string keys of the table at idx, sorted bytewise, in a userdata array
 * (pushed); raises "<path>: ..." for a key that is not a string. (l_data.c) */
const char **acqL_sorted_names(lua_State *L, int idx, int *n, const char *path);
void acqL_open_json(lua_State *L, int module);
void acqL_open_module(lua_State *L, int module);
void acqL_open_loss(lua_State *L, int module);
void acqL_open_strategy(lua_State *L, int module);
void acqL_open_create(lua_State *L, int module);
void acqL_open_layers(lua_State *L, int nn, int methods);

/* Module boxes (l_module.c), for the files that bind layers and quantizers. */
struct acq_module;
struct acq_module *acqL_checkmodule(lua_State *L, int idx); /* raises unless a live module */
struct acq_module *acqL_testmodule(lua_State *L, int idx);  /* NULL unless a module */
void acqL_pushmodule(lua_State *L, struct acq_module *m);   /* takes one reference */
void acqL_pushalias(lua_State *L, atc_tensor *t);           /* a Lua tensor sharing t */
void acqL_open_quant(lua_State *L, int module, int methods);

#endif /* ACQL_H */
