/*
 * acq/acq.h -- the public C API for programs that embed acq.
 *
 * Two ways in:
 *   1. A host with its own lua_State: call acq_openlibs(L) (inside a
 *      protected call) and `require "acq"` from Lua; or open just the C
 *      module with luaL_requiref(L, "acq.core", luaopen_acq_core, 0).
 *   2. A host without Lua of its own: an opaque acq_runtime that owns a
 *      lua_State. Every entry point runs inside lua_pcall; failures return
 *      a non-zero status and leave a message in acq_runtime_error(). Nothing
 *      relies on the Lua panic function, and nothing aborts.
 *
 * Tensor dimensions and indices count from 0, as in PyTorch.
 */
#ifndef ACQ_ACQ_H
#define ACQ_ACQ_H

#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define ACQ_API __declspec(dllexport)
#else
#define ACQ_API __attribute__((visibility("default")))
#endif

#define ACQ_VERSION "0.1.0"

typedef enum acq_status {
  ACQ_OK = 0,
  ACQ_ERR_RUN = 1,    /* a Lua error (also every libtorch error)      */
  ACQ_ERR_SYNTAX = 2, /* the chunk did not compile                    */
  ACQ_ERR_MEM = 3,    /* out of memory                                */
  ACQ_ERR_FILE = 4,   /* a script file could not be opened or read    */
  ACQ_ERR_ARG = 5     /* a NULL or invalid argument to this API       */
} acq_status;

typedef struct acq_runtime acq_runtime;

/* ---- for hosts with their own lua_State -------------------------------- */
/* The C module: tensors, autograd, optimizers ([-0, +1, m]). */
ACQ_API int luaopen_acq_core(lua_State *L);
/* Registers acq.core and acq's Lua modules in package.preload, so that
 * `require "acq"` works without any file on disk ([-0, +0, m]). */
ACQ_API void acq_openlibs(lua_State *L);

/* ---- the opaque runtime ------------------------------------------------ */
/* A new runtime with the Lua standard libraries and acq preloaded; NULL only
 * when memory runs out. */
ACQ_API acq_runtime *acq_runtime_new(void);
ACQ_API void         acq_runtime_free(acq_runtime *rt);            /* NULL ok */
/* Runs a script; argv (argc entries, may be 0) become its `arg` table and
 * its `...`, as with acqlua. */
ACQ_API int acq_runtime_dofile(acq_runtime *rt, const char *path, int argc,
                               const char *const *argv);
/* Runs a chunk of Lua source; name appears in messages (NULL: "=(string)"). */
ACQ_API int acq_runtime_dostring(acq_runtime *rt, const char *chunk,
                                 const char *name);
/* The message of the last failure (with a traceback for run-time errors), or
 * "" after a success. Valid until the next call on rt. */
ACQ_API const char *acq_runtime_error(const acq_runtime *rt);
/* Makes a C function callable from Lua as the global `name`. */
ACQ_API int acq_runtime_register(acq_runtime *rt, const char *name,
                                 lua_CFunction fn);
/* The underlying state, for hosts that need the full Lua API. */
ACQ_API lua_State *acq_runtime_state(acq_runtime *rt);

#ifdef __cplusplus
}
#endif
#endif /* ACQ_ACQ_H */
