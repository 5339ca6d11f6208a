rockspec_format = "3.0"
package = "acq"
version = "0.1.0-1"
source = {
  url = "git+file:///dev/null", -- `luarocks make` builds the checkout it is run in
}
description = {
  summary = "ACQ generative data-free quantization on libtorch, as a Lua 5.4 runtime",
  detailed = [[
acq exposes tensors (CPU and CUDA), autograd, optimizers, models,
fake-quantizers and the losses of ACQ to Lua 5.4 through a C core over
libtorch. Installs the Lua module `acq` (with its C part `acq.core`) and the
`acqlua` interpreter.]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
  "lpeg", -- acq.quant's bit-width spec grammar
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    ACQ_LUADIR = "$(LUADIR)",
    ACQ_LIBDIR = "$(LIBDIR)",
    ACQ_BINDIR = "$(BINDIR)",
    ACQ_BUILD_TESTS = "OFF",
    ACQ_INSTALL_DEV = "OFF",
  },
}
