// atc_runtime.cpp -- process-wide settings: seeds, generators, threads,
// CUDA availability, version.
#include "atc_generator.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/core/Generator.h>
#include <torch/csrc/api/include/torch/version.h>

#include <dlfcn.h>

using namespace atc;

extern "C" {

int atc_manual_seed(atc_status *st, uint64_t seed) {
  ATC_TRY
  at::manual_seed(seed);  // CPU, and every CUDA device when present
  ATC_END(st)
}

int atc_generator_new(atc_status *st, uint64_t seed, atc_device dev,
                      atc_generator **out) {
  ATC_TRY
  if (!out) arg_error("NULL output pointer");
  c10::Device d = device(dev);
  at::Generator g;
  if (d.is_cpu()) {
    g = at::detail::createCPUGenerator(seed);
  } else {
    if (at::globalContext().hasCUDA() == false)
      arg_error("generator: this build of libtorch has no CUDA support");
    // A CUDA generator seeded from a clone of the device default.
    const at::Generator &def =
        at::globalContext().defaultGenerator(d);
    g = def.clone();
    g.set_current_seed(seed);
  }
  *out = new atc_generator{std::move(g)};
  ATC_END(st)
}

int atc_generator_seed(atc_status *st, atc_generator *g, uint64_t seed) {
  ATC_TRY
  if (!g) arg_error("NULL generator");
  std::lock_guard<std::mutex> lock(g->g.mutex());
  g->g.set_current_seed(seed);
  ATC_END(st)
}

namespace {
at::Generator the_gen(atc_generator *g) {
  return g ? g->g : at::detail::getDefaultCPUGenerator();
}
}  // namespace

int atc_generator_get_state(atc_status *st, atc_generator *g, atc_tensor **out) {
  ATC_TRY
  at::Generator gen = the_gen(g);
  std::lock_guard<std::mutex> lock(gen.mutex());
  put(out, gen.get_state());
  ATC_END(st)
}

int atc_generator_set_state(atc_status *st, atc_generator *g, const atc_tensor *state) {
  ATC_TRY
  at::Generator gen = the_gen(g);
  const at::Tensor &s = T(state);
  if (s.scalar_type() != at::kByte) arg_error("a generator state is a uint8 tensor");
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(s);
  ATC_END(st)
}

void atc_generator_free(atc_generator *g) { delete g; }

int atc_set_num_threads(atc_status *st, int n) {
  ATC_TRY
  if (n < 1) arg_error("set_num_threads: need at least 1 thread, got " +
                       std::to_string(n));
  at::set_num_threads(n);
  ATC_END(st)
}

int atc_num_threads(void) {
  try {
    return at::get_num_threads();
  } catch (...) {
    return 1;
  }
}

// OpenBLAS (Debian's libblas.so.3 when libopenblas0-pthread is installed)
// keeps a pool of its own threads beside ATen's OpenMP pool, and its idle
// workers spin on sched_yield: with ATen at 2 threads on 2 cores, one
// Algorithm 1 iteration took ~30 % longer than with OpenBLAS on the calling
// thread (bench/README.md). Found in whichever library the process loaded.
namespace {
typedef void (*blas_set_fn)(int);
typedef int (*blas_get_fn)(void);
void *openblas_symbol(const char *name) {
  if (void *f = dlsym(RTLD_DEFAULT, name)) return f;
  for (const char *lib : {"libopenblas.so.0", "libblas.so.3"}) {
    void *h = dlopen(lib, RTLD_LAZY | RTLD_NOLOAD);
    if (!h) continue;
    void *f = dlsym(h, name);
    dlclose(h);  // RTLD_NOLOAD took a reference to a library that stays loaded
    if (f) return f;
  }
  return nullptr;
}
}  // namespace

int atc_set_blas_threads(int n) {
  auto get = reinterpret_cast<blas_get_fn>(openblas_symbol("openblas_get_num_threads"));
  auto set = reinterpret_cast<blas_set_fn>(openblas_symbol("openblas_set_num_threads"));
  if (!get || !set) return -1;
  int prev = get();
  if (n >= 1) set(n);
  return prev;
}

int atc_cuda_device_count(void) {
  try {
    if (!at::globalContext().hasCUDA()) return 0;
    return static_cast<int>(at::getNumGPUs());
  } catch (...) {
    return 0;
  }
}

const char *atc_version(void) { return TORCH_VERSION; }

}  // extern "C"
