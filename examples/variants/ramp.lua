--- examples/variants/ramp.lua -- ACQ with a ramp on one coefficient: L_AD's
-- gamma rises linearly from 0 to its preset value over the warm-up, instead
-- of applying in full from the first iteration. The value in force is
-- logged by a hook and drawn in losses.png as a series of its own.
local acq = require "acq"
local recipe = require "acq.recipe"

local spec = recipe.cli("examples/variants/ramp.lua",
  "ACQ with L_AD's coefficient ramped over the warm-up (Fashion-MNIST).", recipe.fashion_options, true,
  { iters = 600, warmup = 100, eval_every = 200 })

recipe.main(function()
  local run = recipe.start("ramp", spec, arg)
  local o = run.opts
  local F, evaluate = recipe.fashion(o)
  local G = acq.gen.acq { classes = 10, size = 28, channels = 1 }

  -- the variant: a coefficient that is a function of the iteration
  local coef = recipe.coefficients(o, "cifar10")
  local gamma = acq.schedule.linear(0, coef.gamma, 1, o.warmup)
  local LG = acq.objective.acq_g(coef):weight("L_AD", gamma)
  local log_gamma = { name = "gamma", after = function(_, it, row) row.gamma = gamma(it) end }
  local norm = acq.data.FASHION_NORM
  local alg = recipe.algorithm(run, { F = F, G = G, g_objective = LG, hooks = { log_gamma },
    series = { { "gamma", "gamma of L_AD (ramp)" } }, input_range = recipe.input_range(norm.mean, norm.std) })

  local res = run:loop(alg, function(it)
    local b = alg:sample(it)
    local c = alg:g_step(b)
    if alg:calibrating(it) then alg:calibrate(c) else alg:q_step(c) end
  end, { evaluate = evaluate })
  if res.interrupted then return "interrupted" end
  run:finish { q_top1 = res.q_top1, iters = res.iter, variant = "ramp" }
  print(("gamma ramped over %d iterations, %s: Q top-1 %.2f%%"):format(o.warmup, o.bits, res.q_top1))
end)
