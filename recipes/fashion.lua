--- recipes/fashion.lua -- the demo: ACQ data-free quantization of a
-- ResNet-20 on Fashion-MNIST (28x28 grey images, a 7x7 attention grid).
--
-- Without --weights it first trains the FP model on the Fashion-MNIST
-- training set (cached under --fp-cache); that is the only time training
-- data is read. Algorithm 1 then sees F and nothing else; the test set is
-- read for evaluation only.
--
--   acqlua recipes/fashion.lua                 # FP training (once), ACQ w4a4
--   acqlua recipes/fashion.lua --bits w5a5 --no-cacm --iters 2000 --strategy ait
local acq = require "acq"
local recipe = require "acq.recipe"

local spec = recipe.cli("recipes/fashion.lua",
  "The Fashion-MNIST demo: train (or load) an FP ResNet-20, quantize it data-free with ACQ, report FP32 and\n"
  .. "quantized test accuracy.", recipe.fashion_options, true,
  { iters = 600, warmup = 100, eval_every = 200 })

recipe.main(function()
  local run = recipe.start("fashion", spec, arg)
  local o = run.opts
  local F, evaluate, fp_seconds = recipe.fashion(o)
  local fp_top1 = evaluate(F)
  print(("FP32 test accuracy %.2f%%"):format(fp_top1))

  -- the pieces: eq. (11)'s generator at 28x28x1 (the 7x7 grid of F's last
  -- block gives 49 positions), eq. (15) over F, Q's strategy from --strategy
  local G = acq.gen.acq { classes = 10, size = 28, channels = 1 }
  local LG = acq.objective.acq_g(recipe.coefficients(o, "cifar10"))
  local norm = acq.data.FASHION_NORM
  local alg = recipe.algorithm(run, { F = F, G = G, g_objective = LG, target = "o_eval",
    input_range = recipe.input_range(norm.mean, norm.std) })

  -- Algorithm 1
  local res = run:loop(alg, function(it)
    local b = alg:sample(it)          -- z1, z2 ~ N(0, I), y ~ U(C), p ~ U(hw): two groups sharing y, p
    local c = alg:g_step(b)           -- G on eq. (15)
    if alg:calibrating(it) then alg:calibrate(c)   -- warm-up: Q's activation bounds
    else alg:q_step(c) end            -- Q on its strategy's objective (eq. (16))
  end, { evaluate = evaluate, model = { name = "resnet20", classes = 10, in_channels = 1 } })
  if res.interrupted then return "interrupted" end
  run:finish { fp_top1 = fp_top1, q_top1 = res.q_top1, q_top5 = res.q_top5, bits = o.bits, strategy = o.strategy,
    iters = res.iter, seconds = res.elapsed, fp_seconds = fp_seconds, export = res.export }
  print(("FP32 %.2f%%   %s %s   (%s, %d iterations, %s; run folder %s)"):format(fp_top1, o.bits,
    res.q_top1 and ("%.2f%%"):format(res.q_top1) or "- (evaluated by rank 0)", o.strategy, res.iter,
    acq.progress.hms(res.elapsed), run.dir))
end)
