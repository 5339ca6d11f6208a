--- recipes/lrq.lua -- LRQ ("Long-Range Zero-Shot Generative Deep Network
-- Quantization", ../shared/seeds/004_...), from its abstract: no code is
-- public, so every choice below is acq's, stated here and in the README.
--   long-range generator  GDFQ's generator with large-kernel attention
--         (VAN's LKA, acq.nn.lka: depthwise 5x5, depthwise 7x7 dilated by 3,
--         1x1; a 21x21 window; out = x * attention) after each of its two
--         upsampling blocks (after act1 and act2; --lka-kernel, --lka-dilation);
--   AMA   Adversarial Margin Add: ArcFace's additive angular margin between
--         F's pooled penultimate feature of each sample and its class centre
--         (the row of F's last linear layer for its label): G also minimises
--         CE(s cos(theta + m), y) (--ama weight 0.1, --ama-scale 16,
--         --ama-margin 0.3). The margin enlarges the angle the loss sees, so
--         it pushes back against the ordinary CE, which is already satisfied:
--         the "adversarial" process of the abstract, as we read it;
--   DKD   decoupled knowledge distillation for Q (Zhao et al., CVPR 2022):
--         Q's KD term replaced by alpha TCKD + beta NCKD at temperature T
--         (--dkd-alpha 1, --dkd-beta 8, --dkd-t 4: DKD's CIFAR settings),
--         its weight ramped from 0 to 1 over --dkd-warmup iterations after
--         the warm-up (DKD's 20-epoch warm-up), towards the labels;
--   L_G   L_CE + 0.1 L_BNS (GDFQ's) + AMA; Q: --strategy gdfq's CE + DKD.
--
--   acqlua recipes/lrq.lua                           # Fashion-MNIST demo model
--   acqlua recipes/lrq.lua --dataset cifar10 --weights W --val DIR
local acq = require "acq"
local recipe = require "acq.recipe"

local own = {
  { "lka_kernel", 21, "receptive field of the large-kernel attention (VAN: 21)" },
  { "lka_dilation", 3, "dilation of its second depthwise convolution (VAN: 3)" },
  { "ama", 0.1, "weight of the Adversarial Margin Add term in G's loss (0: off)" },
  { "ama_scale", 16.0, "AMA: scale s of the cosine logits" },
  { "ama_margin", 0.3, "AMA: additive angular margin m (radians)" },
  { "dkd_alpha", 1.0, "DKD: weight of the target-class part (TCKD)" },
  { "dkd_beta", 8.0, "DKD: weight of the non-target-class part (NCKD)" },
  { "dkd_t", 4.0, "DKD: temperature" },
  { "dkd_warmup", 100, "DKD's weight ramps from 0 to 1 over this many iterations after the warm-up" },
}
for _, x in ipairs(recipe.dataset_options) do own[#own + 1] = x end
local spec = recipe.cli("recipes/lrq.lua",
  "LRQ (from its abstract): a long-range generator (large-kernel attention), AMA and decoupled KD.", own, true,
  { iters = 800, warmup = 100, eval_every = 200, batch = 64 })

recipe.main(function()
  local run = recipe.start("lrq", spec, arg, function(o)
    recipe.check_dataset(o)
    if not (o.ama >= 0) then recipe.die("--ama must be >= 0, got %g", o.ama) end
    if not (o.ama_margin >= 0 and o.ama_margin < math.pi / 2) then
      recipe.die("--ama-margin must be in [0, pi/2), got %g", o.ama_margin)
    end
    if o.dkd_warmup < 0 then recipe.die("--dkd-warmup must be >= 0, got %d", o.dkd_warmup) end
    local ok, err = pcall(acq.nn.lka, 8, { kernel = o.lka_kernel, dilation = o.lka_dilation })
    if not ok then recipe.die("--lka-kernel/--lka-dilation: %s", tostring(err):gsub("^.-lka: ", "")) end
  end)
  local o = run.opts
  local d = recipe.dataset(o) -- F, and the only read of real data: evaluation

  -- the long-range generator: an LKA block after each upsampling block
  local lka = function(ch) return acq.nn.lka(ch, { kernel = o.lka_kernel, dilation = o.lka_dilation }) end
  local G = acq.gen.gdfq { classes = d.classes, size = d.size, channels = d.channels, insert = {
    { after = "act1", name = "lka1", module = lka(128) },
    { after = "act2", name = "lka2", module = lka(64) } } }

  -- AMA: the class centres are the rows of F's classifier
  local head
  for _, e in ipairs(d.F:named_modules("linear")) do head = e[2] end
  local centres = head:state_dict().weight
  local LG = acq.objective.acq_g(recipe.coefficients(o, "gdfq"))
  LG:add { name = "L_AMA", weight = o.ama, needs = { "eval.features" }, fn = function(c)
    local _, aux = c:eval()
    local feat = aux.features:mean({ 2, 3 }) -- the pooled penultimate feature
    local logits = acq.loss.angular_margin(feat, centres, c.y, { scale = o.ama_scale, margin = o.ama_margin })
    return acq.loss.ce(logits, c.y, { what = "L_AMA" })
  end }

  -- Q: the strategy's objective with DKD in place of its KD term
  local LQ = require("acq.strategy").pieces(o, function() end).q_objective
  LQ:remove "Q_KD"
  LQ:add { name = "Q_DKD", needs = { "q" },
    weight = function(it) return o.dkd_warmup == 0 and 1 or math.min(1, math.max(0, it - o.warmup) / o.dkd_warmup) end,
    fn = function(c)
      return (acq.loss.dkd(c:q(), c.f, c.y, { alpha = o.dkd_alpha, beta = o.dkd_beta, T = o.dkd_t }))
    end }
  local alg = recipe.algorithm(run, { F = d.F, G = G, g_objective = LG, q_objective = LQ, groups = 1,
    target = "labels", input_range = recipe.input_range(d.norm.mean, d.norm.std) })

  local res = run:loop(alg, function(it)
    local b = alg:sample(it)          -- z ~ N(0, I), y ~ U(C)
    local c = alg:g_step(b)           -- G on L_CE + 0.1 L_BNS + AMA
    if alg:calibrating(it) then alg:calibrate(c)   -- warm-up: Q's activation bounds
    else alg:q_step(c) end            -- Q on CE + DKD, towards y
  end, { evaluate = d.evaluate, model = d.model })
  if res.interrupted then return "interrupted" end
  run:finish { fp_top1 = d.fp_top1, q_top1 = res.q_top1, q_top5 = res.q_top5, bits = o.bits, strategy = o.strategy,
    method = "lrq", iters = res.iter, seconds = res.elapsed, export = res.export }
  print(("LRQ %s: %s%s (%d iterations, %s)"):format(o.bits, res.q_top1 and ("%.2f%%"):format(res.q_top1) or "-",
    d.fp_top1 and (" (FP32 %.2f%%)"):format(d.fp_top1) or "", res.iter, acq.progress.hms(res.elapsed)))
end)
