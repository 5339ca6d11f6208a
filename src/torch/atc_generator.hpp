// atc_generator.hpp -- the generator handle, shared by creation and runtime.
#pragma once

#include "atc_internal.hpp"

#include <ATen/core/Generator.h>

struct atc_generator {
  at::Generator g;
};

namespace atc {
// NULL means libtorch's default generator of the tensor's device.
inline c10::optional<at::Generator> gen(atc_generator *g) {
  if (!g) return c10::nullopt;
  return g->g;
}
}  // namespace atc
