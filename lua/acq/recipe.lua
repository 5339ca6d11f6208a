--- acq.recipe: what the recipes share besides Algorithm 1 itself: their
-- command-line options, eq. (15)'s coefficients from the options, the FP
-- model and evaluation set of each dataset, and the assembly of an
-- acq.algorithm state from the options and the chosen strategy.
--
--   local recipe = require "acq.recipe"
--   recipe.main(function()
--     local run = recipe.start("acq_cifar", spec, arg)   -- options, run folder, seeds
--     local alg = recipe.algorithm(run, { F = F, G = G, g_objective = O.acq_g(coef) })
--     local res = run:loop(alg, function(it)
--       local b = alg:sample(it)                        -- Algorithm 1, step by step
--       local c = alg:g_step(b)
--       if alg:calibrating(it) then alg:calibrate(c) else alg:q_step(c) end
--     end, { evaluate = evaluate })
--   end)
--
-- The run (folder, log, checkpoints, resume, signals) is acq.run; the state
-- and steps acq.algorithm; the objectives acq.objective; the strategies
-- acq.strategy; schedules acq.schedule; pictures acq.pictures.
local acq = require "acq"
local cli = require "acq.cli"
local run = require "acq.run"
local A = require "acq.algorithm"
local S = require "acq.schedule"
local strategy = require "acq.strategy"

local R = {}

-- Options every Algorithm-1 recipe has ({name, default, help}).
R.options = {
  { "iters", 1200, "iterations of Algorithm 1" },
  { "warmup", 200, "warm-up iterations: G trains, Q only calibrates its activation bounds" },
  { "batch", 32, "synthetic samples per group (ACQ draws two groups sharing y and p)" },
  { "bits", "w4a4", "quantization spec, e.g. w4a4, w5a5, 'w4a4,first=w8a8' (see acq.quant)" },
  { "seed", 0, "seed of every random draw" },
  { "lr_g", 1e-3, "generator learning rate (Adam, betas 0.5/0.999)" },
  { "lr_q", 1e-4, "learning rate of Q (SGD, Nesterov momentum 0.9)" },
  { "wd_q", 1e-4, "weight decay of Q" },
  { "decay_every", 20000, "both learning rates x0.1 every n iterations (100 epochs of 200)" },
  { "tau", 1.0, "weight of L_KD in eq. (16)" },
  { "kd_t", 1.0, "distillation temperature of L_KD" },
  { "eval_every", 0, "evaluate Q every n iterations after warm-up (0: at the end only)" },
  { "log_every", 10, "write a metrics line every n iterations" },
  { "ckpt_every", 100, "write a checkpoint every n iterations" },
  { "sample_every", 200, "draw the fixed samples and their attention every n iterations" },
  { "out", cli.none "path", "run folder (default: runs/<recipe>-<date>-<time>)" },
  { "resume", cli.none "path", "continue the run in this folder from its last checkpoint" },
  { "threads", 0, "CPU threads (0: one per processor)" },
  { "device", "cpu", "where the run computes: cpu, cuda, cuda:N or auto (cuda when there is one)" },
  { "dist_timeout", 300, "several processes: seconds a collective may wait for the other ranks before the run stops" },
  { "sync_stats", false, "several processes: BN statistics of L_BNS and F^train over every rank's batch (as SyncBatchNorm), not each rank's own" },
  { "force", false, "start over in an --out folder that holds a run (the files its record names are replaced, nothing else)" },
  { "unchecked_checkpoint", false, "--resume from a checkpoint without checksums over its tensors and metadata (written before acq 0.3)" },
  { "on_nan", "stop", "a NaN or Inf in a loss or the state: stop, or rollback (to the last checkpoint, learning rates halved)" },
  { "max_rollbacks", 3, "with --on-nan rollback: at most this many rollbacks" },
  { "calibration", "range", "first layer's input bounds: range (the normalised image's [0,1] range) or "
    .. "observe (min/max of G's warm-up batches, as before 0.2)" },
}
for _, o in ipairs(strategy.options) do R.options[#R.options + 1] = o end

-- Options that change eq. (15)'s coefficients (nil: the preset's value).
R.coefficient_options = {
  { "alpha", cli.none("number", "preset"), "weight of L_BNS + pen_bns Pen_BNS" },
  { "beta", cli.none("number", "preset"), "weight of L_CACM + pen_cacm Pen_CACM" },
  { "gamma", cli.none("number", "preset"), "weight of L_AD" },
  { "pen_ce", cli.none("number", "preset"), "weight of Pen_CE" },
  { "pen_bns", cli.none("number", "preset"), "penalty coefficient of Pen_BNS" },
  { "pen_cacm", cli.none("number", "preset"), "penalty coefficient of Pen_CACM" },
  { "bns_form", cli.none("string", "preset"), "L_BNS form: var (eq. (6)) or std" },
  { "bns_reduction", cli.none("string", "preset"), "L_BNS over layers: sum (as printed) or mean (GDFQ's code)" },
  { "ad_form", cli.none("string", "preset"), "L_AD form: batch or sample" },
  { "cacm", true, "L_CACM and Pen_CACM (--no-cacm: Table 6)" },
  { "ad", true, "L_AD (--no-ad: Table 6)" },
  { "penalty", true, "the three penalties (--no-penalty: Table 6)" },
}

R.die, R.main, R.exists = run.die, run.main, run.exists

--- A cli spec with the recipe's own options first, then R.options and,
-- when `coefficients` is set, R.coefficient_options; `defaults` (name ->
-- value) replaces shared defaults.
function R.cli(prog, about, own, coefficients, defaults)
  local all = {}
  local function add(list)
    for _, o in ipairs(list) do
      local d = defaults and defaults[o[1]]
      all[#all + 1] = d ~= nil and { o[1], d, o[3] } or o
    end
  end
  add(own or {})
  add(R.options)
  if coefficients then add(R.coefficient_options) end
  return cli.new(prog, about, all)
end

--- eq. (15)'s coefficients: the preset, then the options, then Table 6's
-- ablation flags.
function R.coefficients(opts, preset)
  local coef = acq.loss.coefficients(preset)
  coef.note = nil
  for _, o in ipairs(R.coefficient_options) do
    local v = opts[o[1]]
    if v ~= nil and type(coef[o[1]]) ~= "nil" then coef[o[1]] = v end
  end
  if opts.cacm == false then coef.beta = 0 end
  if opts.ad == false then coef.gamma = 0 end
  if opts.penalty == false then coef.pen_ce, coef.pen_bns, coef.pen_cacm = 0, 0, 0 end
  return coef
end

local exists = run.exists

--- Dies with "<what> <path>: no such file" unless path is a readable file.
function R.need_file(path, what)
  local ok, kind = acq.is_regular_file(path)
  if not ok then
    R.die("%s %s: %s", what, path, kind == "No such file or directory" and "no such file" or "is " .. kind)
  end
  return path
end

--- Dies unless path is a folder.
function R.need_dir(path, what)
  if not acq.isdir(path) then R.die("%s %s: no such folder", what, path) end
  return path
end

--- Loads FP weights (safetensors or a torch.save file; pytorchcv keys are
-- recognised and renamed) into model; any problem is a one-line error naming the file.
function R.load_weights(model, path)
  R.need_file(path, "--weights")
  local ok, err = pcall(acq.models.load_weights, model, path, { map = "auto" })
  if not ok then R.die("--weights %s: %s", path, tostring(err):gsub("\n.*", "")) end
  return model
end

--- F from --weights, or random weights (a pipeline check) with a note.
function R.fp_model(o, model)
  if o.device and o.device ~= "cpu" then model:to { device = o.device } end
  if o.weights then return R.load_weights(model, o.weights) end
  print("no --weights: F has random weights (a pipeline check, not a quantization)")
  return model
end

--- CIFAR-10/100: ResNet-20 from --weights and, with --val (the folder of
-- the binary batches), evaluate(model) -> top1, top5 on the test set.
function R.cifar(o, classes)
  local evaluate
  if o.val then
    R.need_dir(o.val, "--val")
    local ok, test = pcall(acq.data.cifar, { root = o.val, classes = classes, split = "test" })
    if not ok then R.die("--val %s: %s", o.val, tostring(test)) end
    evaluate = acq.eval.evaluator(test)
  end
  return R.fp_model(o, acq.models.resnet20 { classes = classes }), evaluate
end

-- Options of the Fashion-MNIST FP model (shared by fashion.lua and gdfq.lua).
R.fashion_options = {
  { "weights", cli.none "path", "FP weights (safetensors or torch.save .pth); none: Fashion-MNIST trains them (or reuses the cached ones)" },
  { "data", "/usr/share/datasets/fashion-mnist", "Fashion-MNIST folder (train and test idx files)" },
  { "fp_epochs", 2, "epochs of FP training when no weights are given or cached" },
  { "fp_cache", "runs/fp", "folder of the cached FP weights" },
}

--- The demo's FP model: loads --weights, or the cached weights for this
-- seed and epoch count, or trains ResNet-20 on the Fashion-MNIST training
-- set (the only read of training data) and caches it. Returns F and
-- evaluate(model) -> top1, top5 on the test set.
function R.fashion(o)
  local function dataset(split)
    local ok, ds = pcall(acq.data.fashion_mnist, { root = o.data, split = split })
    if not ok then R.die("--data %s: %s", o.data, tostring(ds)) end
    return ds
  end
  local evaluate = acq.eval.evaluator(dataset("test"))
  local F = acq.models.resnet20 { classes = 10, in_channels = 1 }
  local path = o.weights
  if not path then
    path = ("%s/resnet20_fashion_e%d_s%d.safetensors"):format(o.fp_cache, o.fp_epochs, o.seed)
    if exists(path) then
      print(("FP weights: %s (cached; delete it to retrain)"):format(path))
    else
      print(("FP weights: training ResNet-20 on the Fashion-MNIST training set, %d epochs (cached as %s)")
        :format(o.fp_epochs, path))
      local r = acq.supervised.train(F, dataset("train"), { epochs = o.fp_epochs, seed = o.seed })
      acq.mkdir(o.fp_cache)
      acq.models.save_weights(F, path, { epochs = tostring(o.fp_epochs), seed = tostring(o.seed),
        seconds = ("%.1f"):format(r.seconds) })
      return F, evaluate, r.seconds
    end
  end
  R.load_weights(F, path)
  return F, evaluate
end

--- ImageNet's evaluation from --val (a folder of class folders of JPEGs,
-- or a safetensors file of u8 images and i64 labels), --val-images,
-- --val-errors and --classes: evaluate(model) -> top1, top5, and the set.
function R.imagenet(o)
  if not o.val then return nil end
  local ok, test
  if acq.isdir(o.val) then -- ImageNet's val folder: <val>/<wnid>/<image>.JPEG
    ok, test = pcall(acq.data.image_folder, { root = o.val, on_error = o.val_errors })
    if ok and #test.classes ~= o.classes then
      R.die("--val %s: %d class folders, but --classes is %d", o.val, #test.classes, o.classes)
    end
  else
    R.need_file(o.val, "--val")
    local t
    ok, t = pcall(acq.safetensors.load, o.val)
    if ok and not (t.images and t.labels) then ok, t = false, "needs tensors 'images' and 'labels'" end
    test = ok and { name = o.val, images = t.images, labels = t.labels:long(), mean = acq.data.IMAGENET_MEAN,
      std = acq.data.IMAGENET_STD } or t
  end
  if not ok then R.die("--val %s: %s", o.val, tostring(test):gsub("\n.*", "")) end
  if o.val_images > 0 then test = acq.data.subset(test, o.val_images, o.seed) end
  print(("evaluation: %d images of %s"):format(acq.data.size(test), o.val))
  return acq.eval.evaluator(test, 50), test
end

-- ImageNet's evaluation options (acq_imagenet.lua and R.dataset_options).
R.imagenet_options = {
  { "val_images", 0, "evaluate on this many validation images, a fixed random subset (0: all)" },
  { "val_errors", "refuse", "an unreadable validation image: refuse (stop, naming it) or skip (leave it out, named at the end)" },
}

-- Options of R.dataset: the dataset, F, and the evaluation set of each.
R.dataset_options = {
  { "dataset", "fashion", "fashion (trains or loads the demo's FP model), cifar10, cifar100 or imagenet" },
  { "model", cli.none("string", "resnet20; imagenet: resnet18"), "imagenet: resnet18, resnet50 or mobilenet_v2" },
  { "val", cli.none "path", "evaluation set: CIFAR binary folder (cifar), ImageNet val folder or safetensors (imagenet)" },
}
for _, x in ipairs(R.imagenet_options) do R.dataset_options[#R.dataset_options + 1] = x end
for _, x in ipairs(R.fashion_options) do R.dataset_options[#R.dataset_options + 1] = x end

local DATASETS = { fashion = true, cifar10 = true, cifar100 = true, imagenet = true }

--- Checks R.dataset_options (before the run folder exists).
function R.check_dataset(o)
  if not DATASETS[o.dataset] then
    R.die("--dataset must be fashion, cifar10, cifar100 or imagenet, got '%s'", tostring(o.dataset))
  end
  if o.dataset == "imagenet" then
    local m = o.model or "resnet18"
    if not acq.models.names[m] or m == "resnet20" then
      R.die("--model must be resnet18, resnet50 or mobilenet_v2 on imagenet, got '%s'", m)
    end
  elseif o.model and o.model ~= "resnet20" then
    R.die("--model: %s uses resnet20, got '%s'", o.dataset, o.model)
  end
  if o.val_errors ~= "refuse" and o.val_errors ~= "skip" then
    R.die("--val-errors must be refuse or skip, got '%s'", tostring(o.val_errors))
  end
end

--- The FP model and evaluation of --dataset (R.dataset_options): returns
-- {F, evaluate (or nil), fp_top1, model (the export's description), size,
-- channels, classes, norm = {mean, std}, test}.
function R.dataset(o)
  local d = {}
  if o.dataset == "fashion" then
    d.F, d.evaluate = R.fashion(o)
    d.size, d.channels, d.classes, d.norm = 28, 1, 10, acq.data.FASHION_NORM
    d.model = { name = "resnet20", classes = 10, in_channels = 1 }
  elseif o.dataset == "imagenet" then
    d.classes, d.size, d.channels = 1000, 224, 3
    o.classes = o.classes or 1000
    d.evaluate, d.test = R.imagenet(o)
    d.model = { name = o.model or "resnet18", classes = 1000, in_channels = 3 }
    d.F = R.fp_model(o, acq.models.build(d.model.name, { classes = 1000 }))
    d.norm = { mean = acq.data.IMAGENET_MEAN, std = acq.data.IMAGENET_STD }
  else
    d.classes = o.dataset == "cifar10" and 10 or 100
    d.F, d.evaluate = R.cifar(o, d.classes)
    d.size, d.channels, d.norm = 32, 3, acq.data.CIFAR_NORM[d.classes]
    d.model = { name = "resnet20", classes = d.classes, in_channels = 3 }
  end
  d.fp_top1 = d.evaluate and d.evaluate(d.F)
  if d.fp_top1 then print(("FP32 test top-1 %.2f%%"):format(d.fp_top1)) end
  return d
end

--- Parses the options and starts the run (acq.run.start): the strategy's
-- presets fill the options not given, and the options are checked (with
-- check(o), the recipe's own checks) before any file is written.
function R.start(name, spec, args, check)
  return run.start(name, spec, args, {
    defaults = strategy.apply_defaults,
    check = function(o)
      if not strategy.defaults[o.strategy] then
        R.die("--strategy must be one of %s, got '%s'", table.concat(strategy.names, ", "), tostring(o.strategy))
      end
      if o.calibration ~= "range" and o.calibration ~= "observe" then
        R.die("--calibration must be range or observe, got '%s'", tostring(o.calibration))
      end
      local function flag(k) return "--" .. k:gsub("_", "-") end
      local function finite(v) return v == v and v ~= math.huge and v ~= -math.huge end
      for _, k in ipairs { "lr_g", "lr_q", "inundation", "kd_t" } do
        if o[k] ~= nil and not (o[k] > 0 and finite(o[k])) then R.die("%s must be positive, got %s", flag(k), tostring(o[k])) end
      end
      for _, k in ipairs { "wd_q", "tau", "alpha", "beta", "gamma", "pen_ce", "pen_bns", "pen_cacm" } do
        if o[k] ~= nil and not (o[k] >= 0 and finite(o[k])) then
          R.die("%s must be a finite number >= 0, got %s", flag(k), tostring(o[k]))
        end
      end
      if o.dist_timeout and not (o.dist_timeout > 0) then R.die("--dist-timeout must be positive, got %s", tostring(o.dist_timeout)) end
      for _, k in ipairs { "eval_every", "threads", "seed", "val_images" } do
        if o[k] ~= nil and o[k] < 0 then R.die("%s must be at least 0, got %s", flag(k), tostring(o[k])) end
      end
      for _, k in ipairs { "decay_every", "epoch_iters", "fp_epochs", "classes" } do
        if o[k] ~= nil and o[k] < 1 then R.die("%s must be at least 1, got %s", flag(k), tostring(o[k])) end
      end
      for k, choices in pairs { bns_form = { "var", "std" }, bns_reduction = { "sum", "mean" },
                                ad_form = { "batch", "sample" } } do
        if o[k] ~= nil and o[k] ~= choices[1] and o[k] ~= choices[2] then
          R.die("%s must be %s or %s, got '%s'", flag(k), choices[1], choices[2], tostring(o[k]))
        end
      end
      if o.preset and not acq.loss.presets[o.preset] then
        local names = {}
        for n in pairs(acq.loss.presets) do names[#names + 1] = n end
        table.sort(names)
        R.die("--preset must be one of %s, got '%s'", table.concat(names, ", "), o.preset)
      end
      if o.bits then
        local ok, err = pcall(acq.quant.parse_spec, o.bits)
        if not ok then R.die("--bits: %s", tostring(err):gsub("\n.*", "")) end
      end
      -- files and folders named by the options exist (read later, after these checks)
      if o.weights then R.need_file(o.weights, "--weights") end
      if o.val and not acq.isdir(o.val) then -- a folder or a regular file, never opened when a FIFO or a device
        local okv, what = acq.is_regular_file(o.val)
        if not okv then
          R.die("--val %s: %s", o.val, what == "No such file or directory" and "no such file or folder" or "is " .. what)
        end
      end
      if o.data and o._given and o._given.data then R.need_dir(o.data, "--data") end
      o.device = R.device(o.device)
      if check then check(o) end
    end,
  })
end

--- The device --device names, checked: "cpu", "cuda:N", or for "auto"
-- cuda:0 when there is a CUDA device and cpu otherwise; a device this
-- machine does not have is a one-line error (exit status 2).
function R.device(s)
  s = s or "cpu"
  if s == "cpu" then return s end
  if s == "auto" then return acq.cuda_is_available() and "cuda:0" or "cpu" end
  local n = s == "cuda" and 0 or tonumber(s:match("^cuda:(%d+)$"))
  if not n then R.die("--device must be cpu, cuda, cuda:N or auto, got '%s'", s) end
  local count = acq.cuda_device_count()
  if count == 0 then
    R.die("--device %s: no CUDA device here (acq.cuda_device_count() is 0: no GPU, or a libtorch without CUDA)", s)
  end
  if n >= count then R.die("--device %s: this machine has %d CUDA device%s", s, count, count == 1 and "" or "s") end
  return ("cuda:%d"):format(n)
end

--- The input range of images normalised with mean and std (lists, one
-- entry per channel): [min_c (0 - m_c) / s_c, max_c (1 - m_c) / s_c].
function R.input_range(mean, std)
  local lo, hi = math.huge, -math.huge
  for c = 1, #mean do
    lo = math.min(lo, (0 - mean[c]) / std[c])
    hi = math.max(hi, (1 - mean[c]) / std[c])
  end
  return { lo, hi }
end

--- An acq.algorithm state from the run's options and a: {F, G,
-- g_objective, target, groups, input_range (with --calibration range),
-- sampler, hooks, series, pictures}. The strategy (--strategy) gives Q's
-- objective, optimizer and schedule unless a gives them.
function R.algorithm(r, a)
  local o = r.opts
  local p = strategy.pieces(o, function(Q) return (acq.quant.plan(Q, o.bits)) end)
  local hooks = {}
  for _, h in ipairs(p.hooks or {}) do hooks[#hooks + 1] = h end
  for _, h in ipairs(a.hooks or {}) do hooks[#hooks + 1] = h end
  local series = {}
  for _, e in ipairs(p.series or {}) do series[#series + 1] = e end
  for _, e in ipairs(a.series or {}) do series[#series + 1] = e end
  return A.new {
    F = a.F, G = a.G, bits = o.bits, batch = o.batch, warmup = o.warmup, seed = o.seed, device = o.device,
    classes = a.classes, groups = a.groups, target = a.target, sampler = a.sampler,
    g_objective = a.g_objective, q_objective = a.q_objective or p.q_objective,
    optG = a.optG or function(G) return acq.optim.adam(G:parameters(), { lr = o.lr_g, betas = { 0.5, 0.999 } }) end,
    optQ = a.optQ or p.optQ, lr_g = a.lr_g or S.step(o.lr_g, o.decay_every, 0.1), lr_q = a.lr_q or p.lr_q,
    input_range = o.calibration == "range" and a.input_range or nil,
    hooks = hooks, series = series, pictures = a.pictures, log_every = o.log_every, iters = o.iters,
  }
end

return R
