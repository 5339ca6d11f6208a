--- recipes/gdfq.lua -- the GDFQ baseline (Xu et al., 2020) in the same
-- runner: GDFQ's generator (eq. (5): Emb_class(y) * z), its objective
-- L_CE + 0.1 L_BNS (mean over layers, as in its code), one group per
-- iteration, and Q trained towards the labels y with KD. Everything else
-- (optimizers, warm-up, quantizer, budget) is shared with the ACQ recipes,
-- so the two compare like for like.
--
--   acqlua recipes/gdfq.lua                          # Fashion-MNIST demo model
--   acqlua recipes/gdfq.lua --dataset cifar10 --weights W --val DIR
local acq = require "acq"
local recipe = require "acq.recipe"
local cli = require "acq.cli"

local own = {
  { "dataset", "fashion", "fashion (trains or loads the demo's FP model), cifar10 or cifar100" },
  { "val", cli.none "path", "CIFAR binary folder for evaluation (cifar datasets)" },
}
for _, o in ipairs(recipe.fashion_options) do own[#own + 1] = o end
local spec = recipe.cli("recipes/gdfq.lua",
  "GDFQ, the generative data-free baseline: L_CE + 0.1 L_BNS, labels as Q's target.", own, true,
  { iters = 800, warmup = 100, eval_every = 200, batch = 64 })

recipe.main(function()
  local run = recipe.start("gdfq", spec, arg)
  local o = run.opts
  local F, evaluate, model, size, channels, classes
  if o.dataset == "fashion" then
    F, evaluate = recipe.fashion(o)
    model, size, channels, classes = { name = "resnet20", classes = 10, in_channels = 1 }, 28, 1, 10
  elseif o.dataset == "cifar10" or o.dataset == "cifar100" then
    classes = o.dataset == "cifar10" and 10 or 100
    F, evaluate = recipe.cifar(o, classes)
    model, size, channels = { name = "resnet20", classes = classes, in_channels = 3 }, 32, 3
  else
    recipe.die("--dataset must be fashion, cifar10 or cifar100, got '%s'", o.dataset)
  end
  local fp_top1 = evaluate and evaluate(F)
  if fp_top1 then print(("FP32 test accuracy %.2f%%"):format(fp_top1)) end

  local G = acq.gen.gdfq { classes = classes, size = size, channels = channels }
  local res = run:train { F = F, G = G, coef = recipe.coefficients(o, "gdfq"), groups = 1,
    target = "labels", evaluate = evaluate, model = model }
  if res.interrupted then return "interrupted" end
  run:finish { fp_top1 = fp_top1, q_top1 = res.q_top1, q_top5 = res.q_top5, bits = o.bits,
    iters = res.iter, seconds = res.elapsed, export = res.export }
  print(("GDFQ %s: %s%s (%d iterations, %s)"):format(o.bits, res.q_top1 and ("%.2f%%"):format(res.q_top1) or "-",
    fp_top1 and (" (FP32 %.2f%%)"):format(fp_top1) or "", res.iter, acq.progress.hms(res.elapsed)))
end)
