--- examples/variants/dsg_bns.lua -- ACQ with DSG's slack distribution
-- alignment and layerwise sample enhancement in place of L_BNS: each
-- sample's own BN statistics (one batched forward, stats = "sample") are
-- matched with a hinge max(|d| - margin, 0)^2, and sample i weighs layer
-- i mod L twice.
--
--   acqlua examples/variants/dsg_bns.lua --margin 0.1
local acq = require "acq"
local recipe = require "acq.recipe"

local own = { { "margin", 0.1, "slack of the BN-statistics hinge (one margin for every layer)" } }
for _, x in ipairs(recipe.fashion_options) do own[#own + 1] = x end
local spec = recipe.cli("examples/variants/dsg_bns.lua",
  "ACQ with DSG's slack, per-sample BN-statistics loss (Fashion-MNIST).", own, true,
  { iters = 600, warmup = 100, eval_every = 200 })

-- DSG's enhancement weights: [n, L], 2 at (i, i mod L), 1 elsewhere
local function enhancement(n, L)
  local w = {}
  for i = 1, n do
    w[i] = {}
    for l = 1, L do w[i][l] = (i - 1) % L == l - 1 and 2 or 1 end
  end
  return acq.tensor(w, { dtype = "f32" })
end

recipe.main(function()
  local run = recipe.start("dsg_bns", spec, arg)
  local o = run.opts
  local F, evaluate = recipe.fashion(o)
  local G = acq.gen.acq { classes = 10, size = 28, channels = 1 }

  -- the variant: the L_BNS term of eq. (15), replaced by name
  local LG = acq.objective.acq_g(recipe.coefficients(o, "cifar10"))
  LG:replace("L_BNS", { needs = { "eval.sample_stats" }, fn = function(c)
    local stats = c:stats "eval" -- per sample: mean, var [n, C] for each BN layer
    return (acq.loss.bns(stats, { margin = o.margin, weights = enhancement(c.x:size(0), #stats) }))
  end })
  local norm = acq.data.FASHION_NORM
  local alg = recipe.algorithm(run, { F = F, G = G, g_objective = LG,
    input_range = recipe.input_range(norm.mean, norm.std) })

  local res = run:loop(alg, function(it)
    local b = alg:sample(it)
    local c = alg:g_step(b)
    if alg:calibrating(it) then alg:calibrate(c) else alg:q_step(c) end
  end, { evaluate = evaluate })
  if res.interrupted then return "interrupted" end
  run:finish { q_top1 = res.q_top1, iters = res.iter, variant = "dsg_bns" }
  print(("DSG's slack BNS (margin %g), %s: Q top-1 %.2f%%"):format(o.margin, o.bits, res.q_top1))
end)
