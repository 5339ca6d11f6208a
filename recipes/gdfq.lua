--- recipes/gdfq.lua -- the GDFQ baseline (Xu et al., 2020) in the same
-- runner: GDFQ's generator (eq. (5): Emb_class(y) * z), its objective
-- L_CE + 0.1 L_BNS (mean over layers, as in its code), one group per
-- iteration, and Q trained towards the labels y with KD. Everything else
-- (optimizers, warm-up, quantizer, budget) is shared with the ACQ recipes,
-- so the two compare like for like.
--
--   acqlua recipes/gdfq.lua                          # Fashion-MNIST demo model
--   acqlua recipes/gdfq.lua --dataset cifar10 --weights W --val DIR
--   acqlua recipes/gdfq.lua --dataset imagenet --model resnet18 --weights W --val DIR
local acq = require "acq"
local recipe = require "acq.recipe"

local spec = recipe.cli("recipes/gdfq.lua",
  "GDFQ, the generative data-free baseline: L_CE + 0.1 L_BNS, labels as Q's target.", recipe.dataset_options, true,
  { iters = 800, warmup = 100, eval_every = 200, batch = 64 })

recipe.main(function()
  local run = recipe.start("gdfq", spec, arg, recipe.check_dataset)
  local o = run.opts
  -- the FP model; evaluation is the only place real data is read
  local d = recipe.dataset(o)
  local F, evaluate, fp_top1 = d.F, d.evaluate, d.fp_top1

  -- GDFQ's pieces: its generator (eq. (5)), L_CE + 0.1 L_BNS, one group, labels as Q's target
  local G = acq.gen.gdfq { classes = d.classes, size = d.size, channels = d.channels }
  local LG = acq.objective.acq_g(recipe.coefficients(o, "gdfq"))
  local alg = recipe.algorithm(run, { F = F, G = G, g_objective = LG, groups = 1, target = "labels",
    input_range = recipe.input_range(d.norm.mean, d.norm.std) })

  local res = run:loop(alg, function(it)
    local b = alg:sample(it)          -- z ~ N(0, I), y ~ U(C)
    local c = alg:g_step(b)           -- G on L_CE + 0.1 L_BNS
    if alg:calibrating(it) then alg:calibrate(c)   -- warm-up: Q's activation bounds
    else alg:q_step(c) end            -- Q on its strategy's objective, towards y
  end, { evaluate = evaluate, model = d.model })
  if res.interrupted then return "interrupted" end
  run:finish { fp_top1 = fp_top1, q_top1 = res.q_top1, q_top5 = res.q_top5, bits = o.bits, strategy = o.strategy,
    iters = res.iter, seconds = res.elapsed, export = res.export }
  print(("GDFQ %s: %s%s (%d iterations, %s)"):format(o.bits, res.q_top1 and ("%.2f%%"):format(res.q_top1) or "-",
    fp_top1 and (" (FP32 %.2f%%)"):format(fp_top1) or "", res.iter, acq.progress.hms(res.elapsed)))
end)
