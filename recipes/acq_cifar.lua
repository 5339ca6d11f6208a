--- recipes/acq_cifar.lua -- ACQ on CIFAR-10/100 (section 4.1): ResNet-20,
-- the eq. (11) generator (class and position embeddings), eq. (15) with
-- the CIFAR coefficients, Q trained by --strategy (eq. (16) by default).
--
--   acqlua recipes/acq_cifar.lua --weights resnet20_cifar10.safetensors \
--          --val data/cifar-10-batches-bin --bits w4a4 [--strategy ait]
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
  local run = recipe.start("acq_cifar", spec, arg, function(o)
    if o.classes ~= 10 and o.classes ~= 100 then recipe.die("--classes must be 10 or 100, got %d", o.classes) end
  end)
  local o = run.opts
  -- evaluation is the only place real data is read, through this function
  local F, evaluate = recipe.cifar(o, o.classes)
  local fp_top1 = evaluate and evaluate(F)
  if fp_top1 then print(("FP32 top-1 %.2f%%"):format(fp_top1)) end

  -- the pieces: eq. (11)'s generator, eq. (15) over F, Q's strategy from --strategy
  local G = acq.gen.acq { classes = o.classes, size = 32, channels = 3 }
  local LG = acq.objective.acq_g(recipe.coefficients(o, o.preset or ("cifar" .. o.classes)))
  local norm = acq.data.CIFAR_NORM[o.classes]
  local alg = recipe.algorithm(run, { F = F, G = G, g_objective = LG, target = "o_eval",
    input_range = recipe.input_range(norm.mean, norm.std) })

  -- Algorithm 1
  local res = run:loop(alg, function(it)
    local b = alg:sample(it)          -- z1, z2 ~ N(0, I), y ~ U(C), p ~ U(hw): two groups sharing y, p
    local c = alg:g_step(b)           -- G on eq. (15)
    if alg:calibrating(it) then alg:calibrate(c)   -- warm-up: Q's activation bounds
    else alg:q_step(c) end            -- Q on its strategy's objective (eq. (16))
  end, { evaluate = evaluate, model = { name = "resnet20", classes = o.classes, in_channels = 3 } })
  if res.interrupted then return "interrupted" end
  run:finish { fp_top1 = fp_top1, q_top1 = res.q_top1, q_top5 = res.q_top5, bits = o.bits, strategy = o.strategy,
    iters = res.iter, seconds = res.elapsed, export = res.export }
  print(("done in %s: %s%s"):format(acq.progress.hms(res.elapsed), res.export,
    res.q_top1 and ("; %s top-1 %.2f%% (FP32 %.2f%%)"):format(o.bits, res.q_top1, fp_top1) or ""))
end)
