--- recipes/dsg.lua -- DSG (Zhang et al., CVPR 2021, "Diversifying Sample
-- Generation"), its QAT variant on GDFQ's generator, in Algorithm 1's runner:
--   slack distribution alignment  L_BNS with a hinge on each statistic,
--         max(|mu - mu_run| - m_l, 0)^2 and the same for the variance, from
--         each sample's own statistics (one batched forward, stats = "sample");
--   layerwise sample enhancement  sample i weighs the term of BN layer
--         i mod L by --enhance (2, as its code), every other layer by 1;
--   L_G   L_CE + 0.1 L_BNS (GDFQ's coefficients: channel and layer means);
--   Q     as GDFQ trains it (--strategy gdfq), towards the labels.
-- DSG's per-layer margins are not public (its code loads them from files it
-- does not ship; they come from real data). acq's rule, --margin-rule:
--   relative (default)  m_l = --margin x the mean over channels of the
--                       layer's running standard deviation (a slack in units
--                       of the layer's own spread, the same for mean and var)
--   absolute            m_l = --margin for every layer
--
--   acqlua recipes/dsg.lua                           # Fashion-MNIST demo model
--   acqlua recipes/dsg.lua --dataset cifar10 --weights W --val DIR --margin-rule absolute --margin 0.05
local acq = require "acq"
local recipe = require "acq.recipe"

local own = {
  { "margin", 0.1, "slack of the BN-statistics hinge (see --margin-rule)" },
  { "margin_rule", "relative", "relative (margin x the layer's mean running std) or absolute (margin itself)" },
  { "enhance", 2.0, "layerwise sample enhancement: the weight of layer i mod L for sample i (1: off)" },
}
for _, x in ipairs(recipe.dataset_options) do own[#own + 1] = x end
local spec = recipe.cli("recipes/dsg.lua",
  "DSG: slack distribution alignment and layerwise sample enhancement on GDFQ's generator.", own, true,
  { iters = 800, warmup = 100, eval_every = 200, batch = 64 })

-- DSG's enhancement weights: [n, L], `e` at (i, i mod L), 1 elsewhere
local function enhancement(n, L, e)
  local w = {}
  for i = 1, n do
    w[i] = {}
    for l = 1, L do w[i][l] = (i - 1) % L == l - 1 and e or 1 end
  end
  return acq.tensor(w, { dtype = "f32" })
end

recipe.main(function()
  local run = recipe.start("dsg", spec, arg, function(o)
    recipe.check_dataset(o)
    if o.margin_rule ~= "relative" and o.margin_rule ~= "absolute" then
      recipe.die("--margin-rule must be relative or absolute, got '%s'", o.margin_rule)
    end
    if not (o.margin >= 0) then recipe.die("--margin must be >= 0, got %g", o.margin) end
    if not (o.enhance > 0) then recipe.die("--enhance must be positive, got %g", o.enhance) end
  end)
  local o = run.opts
  local d = recipe.dataset(o) -- F, and the only read of real data: evaluation
  local G = acq.gen.gdfq { classes = d.classes, size = d.size, channels = d.channels }

  -- each layer's margin, from F's running statistics (fixed: F is frozen)
  local margins
  local function margin_of(stats)
    if not margins then
      margins = {}
      for l, s in ipairs(stats) do
        margins[l] = o.margin_rule == "absolute" and o.margin
          or o.margin * acq.no_grad(function() return s.running_var:sqrt():mean():item() end)
      end
    end
    return margins
  end

  -- L_G: GDFQ's, its L_BNS replaced by the slack, enhanced form
  local coef = recipe.coefficients(o, "gdfq")
  local LG = acq.objective.acq_g(coef)
  LG:replace("L_BNS", { needs = { "eval.sample_stats" }, fn = function(c)
    local stats = c:stats "eval" -- per sample: mean, var [n, C] of each BN layer
    local m, L = margin_of(stats), #stats
    local w = enhancement(c.x:size(0), L, o.enhance)
    local total
    for l = 1, L do -- one layer at a time: each has its own margin
      local t = acq.loss.bns({ stats[l] }, { margin = m[l], weights = w:narrow(1, l - 1, 1),
        form = coef.bns_form, reduction = coef.bns_reduction })
      total = total and total + t or t
    end
    return coef.bns_reduction == "mean" and total / L or total
  end })
  local alg = recipe.algorithm(run, { F = d.F, G = G, g_objective = LG, groups = 1, target = "labels",
    input_range = recipe.input_range(d.norm.mean, d.norm.std) })

  local res = run:loop(alg, function(it)
    local b = alg:sample(it)          -- z ~ N(0, I), y ~ U(C)
    local c = alg:g_step(b)           -- G on L_CE + 0.1 slack, enhanced L_BNS
    if alg:calibrating(it) then alg:calibrate(c)   -- warm-up: Q's activation bounds
    else alg:q_step(c) end            -- Q on its strategy's objective, towards y
  end, { evaluate = d.evaluate, model = d.model })
  if res.interrupted then return "interrupted" end
  run:finish { fp_top1 = d.fp_top1, q_top1 = res.q_top1, q_top5 = res.q_top5, bits = o.bits, strategy = o.strategy,
    method = "dsg", margins = margins, iters = res.iter, seconds = res.elapsed, export = res.export }
  print(("DSG %s: %s%s (%d iterations, %s)"):format(o.bits, res.q_top1 and ("%.2f%%"):format(res.q_top1) or "-",
    d.fp_top1 and (" (FP32 %.2f%%)"):format(d.fp_top1) or "", res.iter, acq.progress.hms(res.elapsed)))
end)
