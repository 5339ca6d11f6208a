--- recipes/acq_imagenet.lua -- ACQ on ImageNet (section 4.1): ResNet-18/50
-- or MobileNetV2 (torchvision layout and keys), the fusion generator of
-- eq. (12) at 224x224 (position matrix on the 7x7 attention grid, classes
-- through class-conditional BN), eq. (15) with the ImageNet coefficients
-- (gamma 0.1 for MobileNetV2), Q trained by --strategy
-- (eq. (16) with o_eval as Q's target by default).
--
--   acqlua recipes/acq_imagenet.lua --model resnet18 --weights resnet18.safetensors \
--          --val /data/imagenet/val --bits w4a4
local acq = require "acq"
local recipe = require "acq.recipe"
local cli = require "acq.cli"

local spec = recipe.cli("recipes/acq_imagenet.lua",
  "ACQ data-free quantization of an ImageNet CNN (Algorithm 1 with the fusion generator, eq. (12)).", {
    { "model", "resnet18", "resnet18, resnet50 or mobilenet_v2 (torchvision layout)" },
    { "weights", cli.none "path", "FP weights (safetensors or torch.save .pth, torchvision keys); none: random weights" },
    { "val", cli.none "path", "validation set: ImageNet's val folder (one subfolder of JPEGs per class, "
      .. "read as torchvision's Resize(256) + CenterCrop(224)), or a safetensors file with images "
      .. "(u8 [N,3,224,224]) and labels (i64 [N])" },
    recipe.imagenet_options[1], recipe.imagenet_options[2],
    { "classes", 1000, "number of classes" },
    { "preset", cli.none "string", "coefficient preset (default: imagenet, or mobilenet_v2)" },
  }, true, { batch = 16, iters = 80000, warmup = 800, eval_every = 2000, ckpt_every = 500, sample_every = 1000,
    inundation = 1e-4 })

recipe.main(function()
  local run = recipe.start("acq_imagenet", spec, arg, function(o)
    if not acq.models.names[o.model] or o.model == "resnet20" then
      recipe.die("--model must be resnet18, resnet50 or mobilenet_v2, got '%s'", o.model)
    end
    if o.val_errors ~= "refuse" and o.val_errors ~= "skip" then
      recipe.die("--val-errors must be refuse or skip, got '%s'", o.val_errors)
    end
  end)
  local o = run.opts
  -- evaluation is the only place real data is read, through this function
  local evaluate, test = recipe.imagenet(o)

  local F = recipe.fp_model(o, acq.models.build(o.model, { classes = o.classes }))
  local fp_top1 = evaluate and evaluate(F)
  if fp_top1 then print(("FP32 top-1 %.2f%%"):format(fp_top1)) end

  -- the pieces: the fusion generator (eq. (12)), eq. (15) over F, Q's strategy from --strategy
  local G = acq.gen.fusion { classes = o.classes, size = 224, channels = 3, grid = { 7, 7 } }
  local preset = o.preset or (o.model == "mobilenet_v2" and "mobilenet_v2" or "imagenet")
  local LG = acq.objective.acq_g(recipe.coefficients(o, preset))
  local alg = recipe.algorithm(run, { F = F, G = G, g_objective = LG, target = "o_eval",
    input_range = recipe.input_range(acq.data.IMAGENET_MEAN, acq.data.IMAGENET_STD) })

  -- Algorithm 1
  local res = run:loop(alg, function(it)
    local b = alg:sample(it)          -- two groups of z sharing y ~ U(1000) and p ~ U(7x7)
    local c = alg:g_step(b)           -- G on eq. (15)
    if alg:calibrating(it) then alg:calibrate(c)   -- warm-up: Q's activation bounds
    else alg:q_step(c) end            -- Q on its strategy's objective
  end, { evaluate = evaluate, model = { name = o.model, classes = o.classes, in_channels = 3 } })
  if res.interrupted then return "interrupted" end
  if test and test.unreadable and #test.unreadable > 0 then
    print(("%d unreadable validation images were left out (--val-errors skip), the first: %s")
      :format(#test.unreadable, test.unreadable[1]))
  end
  run:finish { fp_top1 = fp_top1, q_top1 = res.q_top1, q_top5 = res.q_top5, bits = o.bits, model = o.model,
    strategy = o.strategy,
    iters = res.iter, seconds = res.elapsed, export = res.export }
  print(("done in %s: %s%s"):format(acq.progress.hms(res.elapsed), res.export,
    res.q_top1 and ("; %s top-1 %.2f%% (FP32 %.2f%%)"):format(o.bits, res.q_top1, fp_top1) or ""))
end)
