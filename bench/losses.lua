-- bench/losses.lua --prepare FILE [B]   writes random ResNet-20 weights
--                                       (32x32x3, 10 classes) and one batch
--                                       of B samples per group (default 32)
-- bench/losses.lua FILE ITERS WARMUP THREADS
--   times the whole ACQ generator objective, eq. (15): F^eval and F^train
--   forwards of the 2B samples with statistics and features, every loss, and
--   the backward pass to the generator output. Prints one line:
--   "acq <L> <median ms per iteration> <sum |dL/dx1|>".
local acq = require "acq"

if arg[1] == "--prepare" then
  local B = tonumber(arg[3]) or 32
  acq.manual_seed(20261125)
  local F = acq.models.resnet20 { classes = 10, in_channels = 3 }
  -- running statistics of N(0,1) images, so L_BNS is not trivial
  for _ = 1, 5 do F:forward(acq.randn(64, 3, 32, 32), { bn = "train" }) end
  local t = {}
  for k, v in pairs(F:state_dict()) do t["fp." .. k] = v end
  t["in.x1"], t["in.x2"] = acq.randn(B, 3, 32, 32), acq.randn(B, 3, 32, 32)
  t["in.y"], t["in.p"] = acq.randint(0, 10, { B }), acq.randint(0, 64, { B })
  t["in.z1"], t["in.z2"] = acq.randn(B, 100), acq.randn(B, 100)
  acq.safetensors.save(arg[2], t)
  return
end

local path, iters, warmup, threads = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])
acq.set_num_threads(threads)
local t = acq.safetensors.load(path)
local F = acq.models.resnet20 { classes = 10, in_channels = 3 }
F:load_state_dict(acq.safetensors.load(path, { prefix = "fp." }))
F:requires_grad_(false)
local x1, x2 = t["in.x1"]:requires_grad_(true), t["in.x2"]:requires_grad_(true)
local batch = { x1 = x1, x2 = x2, y = t["in.y"], p = t["in.p"], z1 = t["in.z1"], z2 = t["in.z2"] }
local coef = acq.loss.coefficients("cifar10")
local times, L = {}, nil
local clock = acq.clock
for i = 1, warmup + iters do
  x1:zero_grad(true)
  x2:zero_grad(true)
  local t0 = clock()
  L = acq.loss.g_objective(F, batch, coef)
  L:backward()
  local dt = clock() - t0
  if i > warmup then times[#times + 1] = dt end
  collectgarbage("step", 0)
end
table.sort(times)
print(("acq %.9g %.3f %.6g"):format(L:item(), 1e3 * times[(#times + 1) // 2], x1:grad():abs():sum():item()))
