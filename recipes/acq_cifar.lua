--- recipes/acq_cifar.lua -- ACQ on CIFAR-10/100 (section 4.1): ResNet-20,
-- the eq. (11) generator (class and position embeddings), eq. (15) with
-- the CIFAR coefficients, eq. (16) with o_eval as Q's target.
--
--   acqlua recipes/acq_cifar.lua --weights resnet20_cifar10.safetensors \
--          --val data/cifar-10-batches-bin --bits w4a4
local acq = require "acq"
local recipe = require "acq.recipe"
local cli = require "acq.cli"

local spec = recipe.cli("recipes/acq_cifar.lua",
  "ACQ data-free quantization of ResNet-20 on CIFAR-10/100 (Algorithm 1 with eq. (11)'s generator).", {
    { "weights", cli.none "path", "FP ResNet-20 weights (safetensors or torch.save .pth; acq or pytorchcv keys); none: random" },
    { "val", cli.none "path", "CIFAR binary folder (test_batch.bin or test.bin) for evaluation" },
    { "classes", 10, "10 (CIFAR-10) or 100 (CIFAR-100)" },
    { "preset", cli.none "string", "coefficient preset (default: cifar10 or cifar100)" },
  }, true)

recipe.main(function()
  local run = recipe.start("acq_cifar", spec, arg)
  local o = run.opts
  if o.classes ~= 10 and o.classes ~= 100 then recipe.die("--classes must be 10 or 100, got %d", o.classes) end
  -- evaluation is the only place real data is read, through this function
  local F, evaluate = recipe.cifar(o, o.classes)
  local fp_top1 = evaluate and evaluate(F)
  if fp_top1 then print(("FP32 top-1 %.2f%%"):format(fp_top1)) end

  local G = acq.gen.acq { classes = o.classes, size = 32, channels = 3 }
  local coef = recipe.coefficients(o, o.preset or ("cifar" .. o.classes))
  local res = run:train { F = F, G = G, coef = coef, target = "o_eval", evaluate = evaluate,
    model = { name = "resnet20", classes = o.classes, in_channels = 3 } }
  if res.interrupted then return "interrupted" end
  run:finish { fp_top1 = fp_top1, q_top1 = res.q_top1, q_top5 = res.q_top5, bits = o.bits,
    iters = res.iter, seconds = res.elapsed, export = res.export }
  print(("done in %s: %s%s"):format(acq.progress.hms(res.elapsed), res.export,
    res.q_top1 and ("; %s top-1 %.2f%% (FP32 %.2f%%)"):format(o.bits, res.q_top1, fp_top1) or ""))
end)
