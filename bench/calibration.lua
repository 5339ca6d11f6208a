-- bench/calibration.lua: Q's accuracy right after calibration (the warm-up
-- of Algorithm 1, G training and Q only observing), for several seeds and
-- both --calibration modes, on the Fashion-MNIST demo's FP model.
--
--   acqlua bench/calibration.lua [SEEDS=5] [WARMUP=100] [BITS=w4a4] [FP=runs/fp/resnet20_fashion_e2_s0.safetensors]
--
-- range:   the first layer's input bounds are the normalised image's range
--          (pixel 0 and 1), fixed before calibration (the default);
-- observe: min/max of G's warm-up batches (acq before this change).
-- Prints one JSON line per run and a table; writes bench/calibration.jsonl.
local acq = require "acq"
local A = require "acq.algorithm"
local recipe = require "acq.recipe"

local seeds, warmup = tonumber(arg[1] or 5), tonumber(arg[2] or 100)
local bits, fp = arg[3] or "w4a4", arg[4] or "runs/fp/resnet20_fashion_e2_s0.safetensors"
local test = acq.data.fashion_mnist { root = "/usr/share/datasets/fashion-mnist", split = "test" }
local evaluate = acq.eval.evaluator(test)
local norm = acq.data.FASHION_NORM
local out = assert(io.open("bench/calibration.jsonl", "w"))
local res = {}
for _, mode in ipairs { "observe", "range" } do
  res[mode] = {}
  for seed = 0, seeds - 1 do
    acq.manual_seed(seed)
    local F = acq.models.resnet20 { classes = 10, in_channels = 1 }
    acq.models.load_weights(F, fp)
    local G = acq.gen.acq { classes = 10, size = 28, channels = 1 }
    local alg = A.new { F = F, G = G, bits = bits, batch = 32, warmup = warmup, seed = seed, iters = warmup,
      g_objective = acq.objective.acq_g(acq.loss.coefficients("cifar10")),
      input_range = mode == "range" and recipe.input_range(norm.mean, norm.std) or nil }
    local body = A.body(alg)
    for it = 1, warmup do alg:iteration(it, body) end
    local top1 = evaluate(alg.Q)
    local lo = alg.Q:act_bounds()[1]
    local row = { mode = mode, seed = seed, warmup = warmup, bits = bits, q_top1 = top1,
      first_lo = lo.lo:item(), first_hi = lo.hi:item() }
    print(acq.json.encode(row))
    out:write(acq.json.encode(row), "\n")
    out:flush()
    res[mode][#res[mode] + 1] = top1
  end
end
out:close()
print(("\n| calibration | %s | mean |"):format(table.concat((function()
  local t = {}
  for s = 0, seeds - 1 do t[#t + 1] = "seed " .. s end
  return t
end)(), " | ")))
for _, mode in ipairs { "observe", "range" } do
  local s = 0
  local cells = {}
  for _, v in ipairs(res[mode]) do s = s + v; cells[#cells + 1] = ("%.2f"):format(v) end
  print(("| %s | %s | %.2f |"):format(mode, table.concat(cells, " | "), s / #res[mode]))
end
