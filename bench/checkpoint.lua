-- bench/checkpoint.lua: what checking a checkpoint costs. Writes the
-- checkpoint of an ACQ state (ResNet-20 28x28x1 Q, eq. (11)'s G, both
-- optimizers) N times plain and N times with the CRC-32 and the finite
-- check, interleaved, and reads it back N times; prints the medians.
--   acqlua bench/checkpoint.lua [N=20] [DIR=/tmp]
local acq = require "acq"
local A = require "acq.algorithm"
local n, dir = tonumber(arg[1] or 20), arg[2] or "/tmp"
acq.set_num_threads(1)
local F = acq.models.resnet20 { classes = 10, in_channels = 1 }
local G = acq.gen.acq { classes = 10, size = 28, channels = 1 }
local alg = A.new { F = F, G = G, bits = "w4a4", batch = 8, warmup = 1, iters = 3,
  g_objective = acq.objective.acq_g(acq.loss.coefficients("cifar10")) }
local body = A.body(alg)
for it = 1, 3 do alg:iteration(it, body) end -- optimizer state exists
local t, meta = alg:state()
local path = dir .. "/acq_bench_checkpoint.safetensors"
local plain, checked, load = {}, {}, {}
for _ = 1, n do
  local t0 = acq.clock()
  acq.safetensors.save(path, t, meta)
  plain[#plain + 1] = acq.clock() - t0
  t0 = acq.clock()
  acq.safetensors.save(path, t, meta, { checksum = true, finite = true })
  checked[#checked + 1] = acq.clock() - t0
  t0 = acq.clock()
  acq.safetensors.load(path)
  load[#load + 1] = acq.clock() - t0
end
local function med(v) table.sort(v); return 1e3 * v[(#v + 1) // 2] end
local bytes = 0
for _, x in pairs(t) do bytes = bytes + x:numel() * 4 end
print(acq.json.encode { tensors = #(function() local k = {} for name in pairs(t) do k[#k + 1] = name end return k end)(),
  mb = bytes / 2 ^ 20, save_ms = med(plain), save_checked_ms = med(checked), load_checked_ms = med(load) })
os.remove(path)
