/***
 * l_runtime.c -- seeds, generators, threads, devices and the memory report.
 *
 * @module acq.core.runtime
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acqL.h"

static uint64_t checkseed(lua_State *L, int idx) {
  int isint;
  lua_Integer s = lua_tointegerx(L, idx, &isint);
  if (!isint) luaL_error(L, "a seed must be an integer, got %s", luaL_typename(L, idx));
  return (uint64_t)s;
}

/***
 * acq.manual_seed(n) -> seeds the default generator (as torch.manual_seed).
 * @function manual_seed
 */
static int l_manual_seed(lua_State *L) {
  atc_status st;
  if (atc_manual_seed(&st, checkseed(L, 1))) return acqL_fail(L, "manual_seed", &st);
  return 0;
}

/***
 * g:free() -> releases generator g at once (also its __gc and __close).
 * @function free
 */
static int l_generator_free(lua_State *L) {
  atc_generator **p = (atc_generator **)luaL_checkudata(L, 1, ACQ_GENERATOR_MT);
  atc_generator *g = *p;
  *p = NULL;
  atc_generator_free(g);
  return 0;
}

/***
 * acq.generator(seed [, device = "cpu"]): pass as opts.generator to randn,
 * rand and randint.
 * @function generator
 */
static int l_generator(lua_State *L) {
  uint64_t seed = checkseed(L, 1);
  atc_device dev = {ATC_CPU, -1};
  atc_status st;
  if (!lua_isnoneornil(L, 2) &&
      atc_device_parse(&st, luaL_checkstring(L, 2), &dev))
    return acqL_fail(L, "generator", &st);
  atc_generator **p = (atc_generator **)lua_newuserdatauv(L, sizeof *p, 0);
  *p = NULL;
  luaL_setmetatable(L, ACQ_GENERATOR_MT);
  if (atc_generator_new(&st, seed, dev, p)) return acqL_fail(L, "generator", &st);
  return 1;
}

static atc_generator *checkgen(lua_State *L, int idx) {
  atc_generator **p = (atc_generator **)luaL_checkudata(L, idx, ACQ_GENERATOR_MT);
  if (!*p) luaL_error(L, "attempt to use a freed generator");
  return *p;
}

/***
 * g:seed(n) -> re-seeds generator g.
 * @function seed
 */
static int l_generator_seed(lua_State *L) {
  atc_generator *g = checkgen(L, 1);
  atc_status st;
  if (atc_generator_seed(&st, g, checkseed(L, 2))) return acqL_fail(L, "seed", &st);
  return 0;
}

/* The whole state of g (NULL: the default CPU generator) as a uint8
 * tensor, for checkpoints; set_state restores it exactly. */
static int get_state(lua_State *L, atc_generator *g, const char *op) {
  acqL_Tensor *b = acqL_newtensor(L);
  atc_status st;
  if (atc_generator_get_state(&st, g, &b->h)) return acqL_fail(L, op, &st);
  return acqL_done(L, b);
}

static int set_state(lua_State *L, atc_generator *g, int idx, const char *op) {
  atc_status st;
  if (atc_generator_set_state(&st, g, acqL_checktensor(L, idx))) return acqL_fail(L, op, &st);
  return 0;
}

/***
 * g:state() / g:set_state(t) and acq.rng_state() / acq.set_rng_state(t)
 * @function state
 */
static int l_state(lua_State *L) { return get_state(L, checkgen(L, 1), "state"); }
/***
 * g:set_state(t) -> restores generator g from a state g:state() returned.
 * @function set_state
 */
static int l_set_state(lua_State *L) { return set_state(L, checkgen(L, 1), 2, "set_state"); }
/***
 * acq.rng_state() -> the default generator's whole state as a u8 tensor (for checkpoints).
 * @function rng_state
 */
static int l_rng_state(lua_State *L) { return get_state(L, NULL, "rng_state"); }
/***
 * acq.set_rng_state(t) -> restores the default generator from a state acq.rng_state() returned.
 * @function set_rng_state
 */
static int l_set_rng_state(lua_State *L) { return set_state(L, NULL, 1, "set_rng_state"); }

/***
 * acq.set_num_threads(n) -> ATen's intra-op thread count (the recipes' --threads).
 * @function set_num_threads
 */
static int l_set_num_threads(lua_State *L) {
  atc_status st;
  if (atc_set_num_threads(&st, (int)luaL_checkinteger(L, 1))) return acqL_fail(L, "set_num_threads", &st);
  return 0;
}

/***
 * acq.set_channels_last(on) -> previous setting (see atc_set_channels_last)
 * @function set_channels_last
 */
static int l_set_channels_last(lua_State *L) {
  luaL_checkany(L, 1);
  lua_pushboolean(L, atc_set_channels_last(lua_toboolean(L, 1)));
  return 1;
}

/***
 * acq.set_blas_threads([n]) -> OpenBLAS's previous thread count, or nil when
 * the BLAS is not OpenBLAS; without n it only reads it
 * @function set_blas_threads
 */
static int l_set_blas_threads(lua_State *L) {
  int n = (int)luaL_optinteger(L, 1, 0);
  if (lua_gettop(L) >= 1 && n < 1) return luaL_error(L, "set_blas_threads: need at least 1 thread, got %d", n);
  int prev = atc_set_blas_threads(n);
  if (prev < 0) lua_pushnil(L);
  else lua_pushinteger(L, prev);
  return 1;
}

/***
 * acq.num_threads() -> ATen's intra-op thread count.
 * @function num_threads
 */
static int l_num_threads(lua_State *L) {
  lua_pushinteger(L, atc_num_threads());
  return 1;
}

/***
 * acq.cuda_device_count() -> the number of CUDA devices (0 on a CPU build).
 * @function cuda_device_count
 */
static int l_cuda_device_count(lua_State *L) {
  lua_pushinteger(L, atc_cuda_device_count());
  return 1;
}

/***
 * acq.cuda_is_available() -> true when a CUDA device can be used.
 * @function cuda_is_available
 */
static int l_cuda_is_available(lua_State *L) {
  lua_pushboolean(L, atc_cuda_device_count() > 0);
  return 1;
}

/***
 * acq.memory() -> {tensors, bytes, peak_bytes, collections}: the tensors
 * held by Lua in this state (bytes = numel * itemsize of each).
 * @function memory
 */
static int l_memory(lua_State *L) {
  acqL_Memory *m = acqL_memory(L);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)m->live);
  lua_setfield(L, -2, "tensors");
  lua_pushinteger(L, (lua_Integer)m->bytes);
  lua_setfield(L, -2, "bytes");
  lua_pushinteger(L, (lua_Integer)m->peak);
  lua_setfield(L, -2, "peak_bytes");
  lua_pushinteger(L, (lua_Integer)m->collections);
  lua_setfield(L, -2, "collections");
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  /* the process's malloc heap: bytes in use (allocated blocks, mmapped ones
   * included) and bytes freed but kept (so a flat heap_used tells a growing
   * resident size from fragmentation or kept free memory, not a leak) */
  struct mallinfo2 mi = mallinfo2();
  lua_pushinteger(L, (lua_Integer)(mi.uordblks + mi.hblkhd));
  lua_setfield(L, -2, "heap_used");
  lua_pushinteger(L, (lua_Integer)mi.fordblks);
  lua_setfield(L, -2, "heap_free");
#endif
  return 1;
}

/***
 * acq.trim_memory() -> true when memory went back to the system. Hands the
 * malloc heap's free pages back (malloc_trim: the top of the heap and the
 * free pages inside it, in every arena). acqlua keeps freed heap between
 * iterations (see runtime/acqlua.c), which saves page faults but lets
 * fragmentation raise the resident size step by step over a long run;
 * the runner calls this every 100 iterations. A no-op without glibc.
 * @function trim_memory
 */
static int l_trim_memory(lua_State *L) {
#ifdef __GLIBC__
  lua_pushboolean(L, malloc_trim(0));
#else
  lua_pushboolean(L, 0);
#endif
  return 1;
}

/***
 * acq.torch_version() -> the version of the libtorch acq was built against, e.g. "1.13.1".
 * @function torch_version
 */
static int l_torch_version(lua_State *L) {
  lua_pushstring(L, atc_version());
  return 1;
}

/***
 * acq.clock() -> seconds of a monotonic wall clock (for timings and ETAs;
 * os.clock is CPU time, summed over threads).
 * @function clock
 */
static int l_clock(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + 1e-9 * (lua_Number)ts.tv_nsec);
  return 1;
}

/***
 * acq.isatty(fd = 1) -> true when the descriptor is a terminal (progress
 * bars redraw in place there and print plain lines otherwise).
 * @function isatty
 */
static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_optinteger(L, 1, 1)));
  return 1;
}

/* ---- interrupts as a flag ------------------------------------------------
 * A training loop cannot stop at an arbitrary Lua instruction without
 * leaving half-updated state, so acq.catch_interrupts() swaps the SIGINT /
 * SIGTERM handlers for one that only records the signal; the loop polls
 * acq.interrupted() between iterations, saves and returns. A second signal
 * while one is pending gets the default action (Ctrl-C twice kills).
 * acq.release_interrupts() restores the previous handlers (acqlua's
 * "interrupted!" error, or whatever the embedding program installed). */
static volatile sig_atomic_t pending = 0;
static struct sigaction saved[2];
static int catching = 0;
static const int SIGNALS[2] = {SIGINT, SIGTERM};

static void on_signal(int sig) {
  if (pending) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  pending = sig;
}

/***
 * acq.catch_interrupts()
 * @function catch_interrupts
 */
static int l_catch_interrupts(lua_State *L) {
  (void)L;
  if (catching) return 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  pending = 0;
  for (int i = 0; i < 2; i++) sigaction(SIGNALS[i], &sa, &saved[i]);
  catching = 1;
  return 0;
}

/***
 * acq.release_interrupts()
 * @function release_interrupts
 */
static int l_release_interrupts(lua_State *L) {
  (void)L;
  if (!catching) return 0;
  for (int i = 0; i < 2; i++) sigaction(SIGNALS[i], &saved[i], NULL);
  catching = 0;
  pending = 0;
  return 0;
}

/***
 * acq.interrupted() -> false, or the signal's name ("SIGINT", "SIGTERM")
 * when one arrived since catch_interrupts.
 * @function interrupted
 */
static int l_interrupted(lua_State *L) {
  int sig = pending;
  if (!sig) lua_pushboolean(L, 0);
  else lua_pushstring(L, sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "signal");
  return 1;
}

/***
 * acq.cpu_count() -> the number of online processors.
 * @function cpu_count
 */
static int l_cpu_count(lua_State *L) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  lua_pushinteger(L, n > 0 ? n : 1);
  return 1;
}

/* ---- run-folder locks -------------------------------------------------------- */

#define ACQ_LOCK_MT "acq.Lock"

typedef struct Lock {
  int fd; /* -1 once released */
} Lock;

static int lock_release(lua_State *L) {
  Lock *k = luaL_checkudata(L, 1, ACQ_LOCK_MT);
  if (k->fd >= 0) {
    close(k->fd); /* releases the flock */
    k->fd = -1;
  }
  return 0;
}

/***
 * acq.lock(path) -> lock | nil, holder
 * Takes an exclusive flock on path (created if needed; a symbolic link, a
 * hard link or anything but a regular file is refused) without waiting and
 * writes this process's pid into it. When another process holds it: nil and
 * the holder's pid as written in the file. The lock lasts until lock:release(),
 * its collection or the process's end (the kernel releases it even after
 * kill -9).
 * @function lock
 */
static int l_lock(lua_State *L) {
  const char *path = acqL_checkpath(L, 1);
  Lock *k = lua_newuserdatauv(L, sizeof *k, 0);
  k->fd = -1;
  if (luaL_newmetatable(L, ACQ_LOCK_MT)) {
    lua_pushcfunction(L, lock_release);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, lock_release);
    lua_setfield(L, -2, "__close");
    lua_newtable(L);
    lua_pushcfunction(L, lock_release);
    lua_setfield(L, -2, "release");
    lua_setfield(L, -2, "__index");
  }
  lua_setmetatable(L, -2);
  /* never through a symbolic link (its target would be overwritten with the
   * pid), never blocking on a FIFO, never a file with other names */
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
  if (fd < 0 && errno == ELOOP)
    return luaL_error(L, "%s: is a symbolic link; refused (a lock is a file of its own)", path);
  if (fd < 0) return luaL_error(L, "%s: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    return luaL_error(L, "%s: not a regular file; refused", path);
  }
  if (sb.st_nlink != 1) {
    close(fd);
    return luaL_error(L, "%s: has %d names (a hard link); refused (a lock is a file of its own)", path,
                      (int)sb.st_nlink);
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    char buf[64] = {0};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    if (e != EWOULDBLOCK) return luaL_error(L, "%s: %s", path, strerror(e));
    lua_pushnil(L);
    if (n > 0) {
      buf[n] = 0;
      buf[strcspn(buf, "\r\n")] = 0;
      lua_pushstring(L, buf);
    } else {
      lua_pushliteral(L, "unknown");
    }
    return 2;
  }
  char pid[32];
  int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
    int e = errno;
    close(fd);
    return luaL_error(L, "%s: %s", path, strerror(e));
  }
  k->fd = fd;
  return 1;
}

/***
 * acq.is_regular_file(path) -> true | false, what it is ("a directory",
 * "a FIFO", "a device", ... or the error) without opening it.
 * @function is_regular_file
 */
static int l_is_regular_file(lua_State *L) {
  const char *path = acqL_checkpath(L, 1);
  struct stat sb;
  if (stat(path, &sb) != 0) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, strerror(errno));
    return 2;
  }
  if (S_ISREG(sb.st_mode)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_pushstring(L, S_ISDIR(sb.st_mode) ? "a directory" : S_ISFIFO(sb.st_mode) ? "a FIFO"
                    : S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode) ? "a device"
                    : S_ISSOCK(sb.st_mode) ? "a socket" : "not a regular file");
  return 2;
}

/***
 * acq.exists(path) -> whether path names anything (a file, a folder, a FIFO,
 * ...), found by stat alone: never opened, so a FIFO cannot block.
 * @function exists
 */
static int l_exists(lua_State *L) {
  struct stat sb;
  lua_pushboolean(L, stat(acqL_checkpath(L, 1), &sb) == 0);
  return 1;
}

static const luaL_Reg functions[] = {
    {"cpu_count", l_cpu_count},
    {"exists", l_exists},
    {"lock", l_lock},
    {"is_regular_file", l_is_regular_file},
    {"catch_interrupts", l_catch_interrupts},
    {"release_interrupts", l_release_interrupts},
    {"interrupted", l_interrupted},
    {"clock", l_clock},
    {"isatty", l_isatty},
    {"rng_state", l_rng_state},
    {"set_rng_state", l_set_rng_state},
    {"manual_seed", l_manual_seed},
    {"generator", l_generator},
    {"set_num_threads", l_set_num_threads},
    {"set_channels_last", l_set_channels_last},
    {"num_threads", l_num_threads},
    {"set_blas_threads", l_set_blas_threads},
    {"cuda_device_count", l_cuda_device_count},
    {"cuda_is_available", l_cuda_is_available},
    {"memory", l_memory},
    {"trim_memory", l_trim_memory},
    {"torch_version", l_torch_version},
    {NULL, NULL}};

void acqL_open_runtime(lua_State *L, int module) {
  /* OpenBLAS on the calling thread unless the user chose its thread count */
  if (!getenv("OPENBLAS_NUM_THREADS")) atc_set_blas_threads(1);
  if (luaL_newmetatable(L, ACQ_GENERATOR_MT)) {
    lua_pushcfunction(L, l_generator_free);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_generator_free);
    lua_setfield(L, -2, "__close");
    lua_createtable(L, 0, 4);
    lua_pushcfunction(L, l_generator_seed);
    lua_setfield(L, -2, "seed");
    lua_pushcfunction(L, l_generator_free);
    lua_setfield(L, -2, "free");
    lua_pushcfunction(L, l_state);
    lua_setfield(L, -2, "state");
    lua_pushcfunction(L, l_set_state);
    lua_setfield(L, -2, "set_state");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  acqL_setfuncs(L, module, functions);
}
