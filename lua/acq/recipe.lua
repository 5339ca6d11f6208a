--- acq.recipe: the machinery every recipe shares, so that a recipe reads
-- like Algorithm 1 and stays a page long.
--
--   local recipe = require "acq.recipe"
--   recipe.main(function()
--     local run = recipe.start("acq_cifar", spec, arg)  -- options, run folder, seeds
--     local F = ...; local G = acq.gen.acq {...}
--     local res = run:train { F = F, G = G, coef = recipe.coefficients(run.opts, "cifar10"),
--                             evaluate = acq.eval.evaluator(test_set) }
--   end)
--
-- run:train is Algorithm 1: per iteration it samples two groups with shared
-- (y, p), takes a G step on eq. (15), and then, on the same detached
-- samples, either calibrates Q's activation bounds (warm-up) or takes a Q
-- step on eq. (16). It has no dataset: evaluation reaches real data only
-- through the `evaluate` function the recipe passes.
--
-- A run folder (--out) holds:
--   options.json             every option of the run
--   metrics.jsonl            one JSON line per logged iteration
--   checkpoint.safetensors   G, Q (with its activation bounds), both
--                            optimizers and the random state, atomically
--   samples/iter_NNNNNN.png  the fixed (y, p) samples with their attention
--   losses.png               the loss curves
--   q_<bits>.safetensors     the exported quantized model (at the end)
--   result.json              final accuracies and times (at the end)
-- --resume DIR continues from the checkpoint, bit for bit; Ctrl-C (or
-- SIGTERM) finishes the current iteration, writes a checkpoint and stops.
local acq = require "acq"
local cli = require "acq.cli"

local R = {}

--- Options every Algorithm-1 recipe has ({name, default, help}).
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
}

--- Options that change eq. (15)'s coefficients (nil: the preset's value).
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

-- Errors meant for the user (a bad option, a missing file): one line, no
-- traceback.
local UserError = { __tostring = function(e) return e.msg end }

--- Raises a one-line error for the user (recipe.main prints it alone).
function R.die(fmt, ...)
  error(setmetatable({ msg = fmt:format(...), code = 2 }, UserError), 0)
end

--- Runs a recipe body: user errors print one line and exit 2; a run that
-- stopped on a non-finite loss exits 1; an interrupted run exits 130;
-- anything else is a bug and prints its traceback.
function R.main(body, ...)
  local ok, err = xpcall(body, function(e)
    if getmetatable(e) == UserError then return e end
    return debug.traceback(tostring(e), 2)
  end, ...)
  if ok then -- err is the body's result
    io.stdout:flush()
    if err == "interrupted" then os.exit(130, true) end
    return
  end
  io.stdout:flush()
  io.stderr:write((arg and arg[0] or "acqlua"), ": ", tostring(err), "\n")
  io.stderr:flush()
  os.exit(getmetatable(err) == UserError and err.code or 1, true)
end

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

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end
R.exists = exists

--- Dies with "<what> <path>: no such file" unless path is a readable file.
function R.need_file(path, what)
  if not exists(path) or acq.isdir(path) then R.die("%s %s: no such file", what, path) end
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

--- Options of the Fashion-MNIST FP model (shared by fashion.lua and gdfq.lua).
R.fashion_options = {
  { "weights", cli.none "path", "FP ResNet-20 weights; none: train them (or reuse the cached ones)" },
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

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local Run = {}
Run.__index = Run

-- Options that do not change the computation, so a resume may change them.
local HARMLESS = { iters = true, eval_every = true, log_every = true, ckpt_every = true,
  sample_every = true, threads = true, out = true, resume = true }

--- Parses the options (--help prints and exits), prepares the run folder
-- and seeds. With --resume the saved options are used; options given again
-- on the command line replace them (a note is printed for each).
function R.start(name, spec, args)
  local ok, opts, help = pcall(spec.parse, spec, args or {})
  if not ok then R.die("%s", opts) end
  if not opts then
    print(help)
    os.exit(0, true)
  end
  if opts.resume then
    local dir = opts.resume
    R.need_dir(dir, "--resume")
    local path = dir .. "/options.json"
    if not exists(path) then R.die("--resume %s: no options.json (not a run folder)", dir) end
    local okj, saved = pcall(acq.json.decode, read(path))
    if not okj then R.die("--resume %s: options.json is damaged: %s", dir, saved) end
    for k, v in pairs(saved) do
      if opts._given[k] then
        if v ~= opts[k] and not HARMLESS[k] then
          io.stderr:write(("note: --%s %s replaces the run's %s; the run will not repeat bit for bit\n")
            :format(k, tostring(opts[k]), tostring(v)))
        end
      elseif v ~= acq.json.null then
        opts[k] = v
      end
    end
    opts.out = dir
  else
    opts.out = opts.out or ("runs/%s-%s"):format(name, os.date("%Y%m%d-%H%M%S"))
  end
  for _, k in ipairs { "iters", "batch", "log_every", "ckpt_every", "sample_every" } do
    if opts[k] ~= nil and opts[k] < 1 then R.die("--%s must be at least 1, got %d", k, opts[k]) end
  end
  if opts.warmup ~= nil and (opts.warmup < 1 or opts.warmup >= opts.iters) then
    R.die("--warmup must be in [1, --iters) (Q needs calibrated bounds before it trains), got %d", opts.warmup)
  end
  acq.mkdir(opts.out)
  local saved = {}
  for k, v in pairs(opts) do
    if k ~= "_given" and k ~= "resume" then saved[k] = v end
  end
  acq.write_file(opts.out .. "/options.json", acq.json.encode(saved, { indent = 2 }) .. "\n")
  acq.set_num_threads(opts.threads and opts.threads > 0 and opts.threads or acq.cpu_count())
  acq.manual_seed(opts.seed or 0)
  return setmetatable({ name = name, opts = opts, dir = opts.out }, Run)
end

-- ---- metrics.jsonl ----------------------------------------------------------

-- Opens the log for appending; keeps only the complete lines up to `upto`
-- (a resumed run rewrites what came after its checkpoint).
local function open_log(path, upto)
  local keep, rows = {}, {}
  if exists(path) then
    for line in read(path):gmatch("[^\n]+") do
      local ok, row = pcall(acq.json.decode, line)
      if ok and type(row) == "table" and row.iter and row.iter <= upto then
        keep[#keep + 1], rows[#rows + 1] = line, row
      end
    end
  end
  acq.write_file(path, #keep > 0 and table.concat(keep, "\n") .. "\n" or "")
  return assert(io.open(path, "ab")), rows
end

-- ---- the fixed samples of the pictures ----------------------------------------

local function fixed_samples(G, classes, seed, device)
  local big = G.size >= 128 -- ImageNet-size pictures: 8 samples, not 40
  local K, ncol = math.min(classes, big and 4 or 10), big and 2 or 4
  local g = acq.generator(seed + 7919)
  local ys, ps = {}, {}
  for c = 0, K - 1 do
    for j = 1, ncol do
      ys[#ys + 1] = c
      if G.positions then ps[#ps + 1] = math.floor((j - 0.5) * G.positions / ncol) end
    end
  end
  return {
    z = acq.randn(#ys, G.latent, { generator = g, device = device }),
    y = acq.tensor(ys, { dtype = "i64", device = device }),
    p = G.positions and acq.tensor(ps, { dtype = "i64", device = device }) or nil,
    ncol = ncol,
  }
end

--- Outlines, on each overlay (the odd images of pair [2n,3,H,W]), the
-- attention cell ps[i] (row-major on a gh x gw grid over the picture) that
-- sample i was generated for, in white (absent from the heat colours).
function R.mark_cells(pair, ps, gh, gw)
  local H, W = pair:shape()[3], pair:shape()[4]
  for i, p in ipairs(ps) do
    local r, c = p // gw, p % gw
    local y0, y1 = r * H // gh, (r + 1) * H // gh - 1
    local x0, x1 = c * W // gw, (c + 1) * W // gw - 1
    local img = pair:select(0, 2 * i - 1)
    img:narrow(1, y0, 1):narrow(2, x0, x1 - x0 + 1):fill_(1)
    img:narrow(1, y1, 1):narrow(2, x0, x1 - x0 + 1):fill_(1)
    img:narrow(1, y0, y1 - y0 + 1):narrow(2, x0, 1):fill_(1)
    img:narrow(1, y0, y1 - y0 + 1):narrow(2, x1, 1):fill_(1)
  end
end

-- One row per class: each sample beside its attention map (eq. (3) on F^eval),
-- the target cell p outlined on the map.
local function draw(path, F, G, s)
  acq.no_grad(function()
    local x = G(s.z, s.y, s.p)
    local _, aux = F:forward(x, { bn = "eval", features = true })
    local M = acq.attention(aux.features)
    local n, c, h, w = table.unpack(x:shape())
    local scale = math.max(1, 96 // h)
    x = x:cpu()
    local u = acq.image.unit(x)
    if c == 1 then u = u:expand(n, 3, h, w) end
    local ov = acq.image.overlay(x, M:cpu())
    local pair = acq.stack({ u:contiguous(), ov }, 1):view(2 * n, 3, h, w)
    if scale > 1 then pair = acq.upsample_nearest2d(pair, { h * scale, w * scale }) end
    if s.p then R.mark_cells(pair, s.p:cpu():totable(), M:shape()[2], M:shape()[3]) end
    acq.image.save(path, acq.image.grid(pair, { nrow = 2 * s.ncol, normalize = "none", pad = 4 }))
  end)
end

-- ---- checkpoints -------------------------------------------------------------

local FORMAT = "acq-run-v1"

local function put(t, prefix, map)
  for k, v in pairs(map) do t[prefix .. k] = v end
end

local function sub(t, prefix)
  local r = {}
  for k, v in pairs(t) do
    if k:sub(1, #prefix) == prefix then r[k:sub(#prefix + 1)] = v end
  end
  return r
end

local function save_checkpoint(path, s, it, elapsed)
  local t = {}
  put(t, "G.", (s.G:state_dict()))
  put(t, "Q.", (s.Q:state_dict()))
  for _, b in ipairs(s.Q:act_bounds()) do
    if b.lo then t["bounds." .. b.name .. ".lo"], t["bounds." .. b.name .. ".hi"] = b.lo, b.hi end
  end
  put(t, "optG.", s.optG:state_dict())
  put(t, "optQ.", s.optQ:state_dict())
  t["rng.sample"] = s.rng:state()
  t["rng.global"] = acq.rng_state()
  acq.safetensors.save(path, t, { format = FORMAT, iter = tostring(it), elapsed = ("%.17g"):format(elapsed) })
end

local function load_checkpoint(path, s, warmup)
  local ok, t, meta = pcall(acq.safetensors.load, path)
  if not ok then R.die("cannot resume: %s", tostring(t)) end
  if meta.format ~= FORMAT then R.die("cannot resume: %s is not an acq run checkpoint", path) end
  s.G:load_state_dict(sub(t, "G."), { strict = true, source = path })
  s.Q:load_state_dict(sub(t, "Q."), { strict = true, source = path })
  for _, e in ipairs(s.Q:named_modules("conv2d")) do
    local lo = t["bounds." .. e[1] .. ".lo"]
    if lo then e[2]:set_act_bounds(lo, t["bounds." .. e[1] .. ".hi"]) end
  end
  s.optG:load_state_dict(sub(t, "optG."))
  s.optQ:load_state_dict(sub(t, "optQ."))
  s.rng:set_state(t["rng.sample"])
  acq.set_rng_state(t["rng.global"])
  local it = tonumber(meta.iter)
  s.Q:quant_state(it >= warmup and "frozen" or "calibrate")
  return it, tonumber(meta.elapsed) or 0
end

-- ---- Algorithm 1 ---------------------------------------------------------------

local G_TERMS = { "L_CE", "Pen_CE", "L_BNS", "Pen_BNS", "L_CACM", "Pen_CACM", "L_AD" }

-- L's value, or an error "<objective> is nan (T1 = nan, ...)" naming every
-- non-finite term (the loop prefixes the iteration).
local function check_finite(objective, L, terms, order)
  local v = L:item()
  if v == v and v ~= math.huge and v ~= -math.huge then return v end
  local bad = {}
  for _, k in ipairs(order) do
    local t = terms[k]
    if t then
      local x = t:item()
      if x ~= x or x == math.huge or x == -math.huge then bad[#bad + 1] = ("%s = %s"):format(k, tostring(x)) end
    end
  end
  error(("%s is %s (%s)"):format(objective, tostring(v),
    #bad > 0 and table.concat(bad, ", ") or "every term finite: the weighted sum overflowed"), 0)
end

local function number_of(t)
  if type(t) == "number" then return t end
  return t:item()
end

--- The state Algorithm 1 carries from iteration to iteration: Q =
-- quantize(F, o.bits), the two optimizers, the sampling generator. a: as
-- Run:train's argument; o: the options (bits, seed, lr_g, lr_q, wd_q).
-- Returns s (see R.step) and Q's quantization plan.
function R.state(a, o)
  local F, G, coef = assert(a.F, "train: F"), assert(a.G, "train: G"), assert(a.coef, "train: coef")
  F:requires_grad_(false)
  local Q, plan = acq.quant.quantize(F, o.bits)
  return {
    F = F, G = G, Q = Q, coef = coef, rng = acq.generator(o.seed),
    groups = a.groups or 2, target = a.target or "o_eval", classes = a.classes or G.classes,
    optG = acq.optim.adam(G:parameters(), { lr = o.lr_g, betas = { 0.5, 0.999 } }),
    optQ = acq.optim.sgd(Q:parameters(), { lr = o.lr_q, momentum = 0.9, nesterov = true, weight_decay = o.wd_q }),
  }, plan
end

local TRIM_EVERY = 100 -- iterations between acq.trim_memory() calls (see R.step)

--- One iteration `it` of Algorithm 1 (what Run:train repeats; bench/iteration
-- times it). s: {F, G, Q, optG, optQ, rng (the sampling generator), coef,
-- groups (2: ACQ's paired groups, 1: GDFQ), target ("o_eval" or "labels"),
-- classes}; o: the run's options (batch, warmup, lr_g, lr_q, decay_every,
-- tau, kd_t, log_every, iters, device). mark(phase), when given, is called
-- as each phase ends: "G forward", "F + losses", "backward", "optimizer",
-- "Q step". Returns the metrics row of the iteration.
function R.step(s, o, it, mark)
  mark = mark or function() end
  -- collect the last iteration's tensor handles now: Lua sees each as a few
  -- bytes, so its collector leaves hundreds alive, and the heap they pin
  -- fragments malloc's (without this the demo peaked at 5.2 GB resident
  -- instead of ~1 GB; a full collection costs about 1 ms)
  collectgarbage()
  local F, G, Q, coef = s.F, s.G, s.Q, s.coef
  local f = 0.1 ^ ((it - 1) // o.decay_every)
  s.optG:lr(o.lr_g * f)
  s.optQ:lr(o.lr_q * f)
  if it == o.warmup + 1 then Q:quant_state "frozen" end
  -- 1. sample two groups with shared (y, p)
  local b = acq.gen.sample { batch = o.batch, classes = s.classes, positions = G.positions,
    latent = G.latent, generator = s.rng, device = o.device }
  local x1 = G(b.z1, b.y, b.p)
  local x2 = s.groups == 2 and G(b.z2, b.y, b.p) or nil
  mark "G forward"
  -- 2. G step on eq. (15)
  local LG, TG, ex = acq.loss.g_objective(F, { x1 = x1, x2 = x2, y = b.y, p = b.p, z1 = b.z1, z2 = b.z2 }, coef)
  local lg = check_finite("L_G", LG, TG, G_TERMS)
  mark "F + losses"
  s.optG:zero_grad()
  LG:backward()
  mark "backward"
  s.optG:step()
  mark "optimizer"
  -- 3. Q on the same samples, detached: calibrate (warm-up) or eq. (16)
  local x = (x2 and acq.cat({ x1, x2 }, 0) or x1):detach()
  local fl = ex.logits_eval:detach()
  local yy = x2 and acq.cat({ b.y, b.y }, 0) or b.y -- the labels of [x1; x2]
  local o_eval = fl:argmax(1)
  local row = { iter = it, phase = it <= o.warmup and "warmup" or "train", L_G = lg }
  if it <= o.warmup then
    acq.no_grad(function() Q:forward(x, { bn = "eval" }) end)
  else
    local tgt = s.target == "labels" and yy or o_eval
    local LQ, TQ = acq.loss.q_objective(Q:forward(x, { bn = "eval" }), fl, tgt, { tau = o.tau, T = o.kd_t })
    row.L_Q = check_finite("L_Q", LQ, TQ, { "L_CE", "L_KD" })
    s.optQ:zero_grad()
    LQ:backward()
    s.optQ:step()
    row.Q_CE, row.Q_KD = TQ.L_CE:item(), TQ.L_KD:item()
  end
  if it % o.log_every == 0 or it == o.iters then
    for _, k in ipairs(G_TERMS) do if TG[k] then row[k] = TG[k]:item() end end
    if ex.cacm_m then row.cacm_m = ex.cacm_m:mean():item() end
    row.fp_agree = o_eval:eq(yy):float():mean():item()
    row.lr_g, row.lr_q = s.optG:lr(), s.optQ:lr()
  end
  mark "Q step"
  -- hand the heap's free pages back now and then: acqlua keeps freed heap
  -- between iterations (fewer page faults), and without this fragmentation
  -- raised the resident size by ~10 % over 10,000 iterations (bench/soak)
  if it % TRIM_EVERY == 0 then acq.trim_memory() end
  return row
end

--- Algorithm 1. a = {F, G, coef, groups = 2 (1: GDFQ's single group),
-- target = "o_eval" (ACQ) or "labels" (GDFQ), evaluate = function(Q) ->
-- top1[, top5] (optional: real data reaches the run only through it),
-- model = {name, classes, in_channels} (for the export), classes}.
-- Returns {iter, q_top1, q_top5, interrupted, elapsed, dir, Q}.
function Run:train(a)
  local o, dir = self.opts, self.dir
  local s, plan = R.state(a, o)
  local F, G, Q, classes = s.F, s.G, s.Q, s.classes
  local ckpt = dir .. "/checkpoint.safetensors"
  local start, elapsed0 = 0, 0
  if o.resume then
    if not exists(ckpt) then R.die("--resume %s: no checkpoint.safetensors yet (the run stopped before its first)", dir) end
    start, elapsed0 = load_checkpoint(ckpt, s, o.warmup)
  end
  local log, rows = open_log(dir .. "/metrics.jsonl", start)
  acq.mkdir(dir .. "/samples")
  local fixed = fixed_samples(G, classes, o.seed, o.device)
  if start > 0 then print(("resuming %s at iteration %d of %d"):format(dir, start, o.iters))
  else print(("run folder %s; Q: %s"):format(dir, acq.quant.describe(plan))) end

  local bar = acq.progress.new { total = o.iters, label = self.name, start = start }
  local function say(msg) bar:print(msg) end
  local t_start = acq.clock()
  local last = { top1 = nil }
  local function elapsed() return elapsed0 + acq.clock() - t_start end

  local function evaluate(it, row)
    if not a.evaluate then return end
    local top1, top5 = a.evaluate(Q)
    row.q_top1, row.q_top5 = number_of(top1), top5 and number_of(top5)
    last.top1, last.top5 = row.q_top1, row.q_top5
    say(("iteration %d: Q top-1 %.2f%%"):format(it, row.q_top1))
  end

  local function iteration(it) return R.step(s, o, it) end

  local function picture(it)
    draw(("%s/samples/iter_%06d.png"):format(dir, it), F, G, fixed)
    if acq.plot then
      local ok, err = pcall(acq.plot.losses, dir .. "/losses.png", rows, self.name)
      if not ok then say("losses.png not drawn: " .. tostring(err)) end
    end
  end

  if start == 0 then picture(0) end
  acq.catch_interrupts()
  local t_log, it_log = acq.clock(), start
  local ok, err = pcall(function()
    for it = start + 1, o.iters do
      local okit, row = pcall(iteration, it)
      if not okit then
        local good = exists(ckpt) and ("the last checkpoint (%s) is intact"):format(ckpt) or "no checkpoint was written yet"
        local why = tostring(row):gsub("^[^:\n]*%.lua:%d+: ", "")
        error(setmetatable({ msg = ("stopped at iteration %d: %s; %s"):format(it, why, good), code = 1 },
          UserError), 0)
      end
      local evaluated = false
      if it > o.warmup and ((o.eval_every > 0 and it % o.eval_every == 0) or it == o.iters) then
        evaluate(it, row)
        evaluated = true
      end
      if row.L_CE or evaluated then
        local now = acq.clock()
        row.sec_per_iter = (now - t_log) / (it - it_log)
        row.elapsed = elapsed()
        t_log, it_log = now, it
        log:write(acq.json.encode(row), "\n")
        log:flush()
        rows[#rows + 1] = row
      end
      if it % o.sample_every == 0 or it == o.iters then picture(it) end
      local stop = acq.interrupted()
      if it % o.ckpt_every == 0 or it == o.iters or stop then save_checkpoint(ckpt, s, it, elapsed()) end
      bar:update(it, { L_G = row.L_G, L_Q = row.L_Q, top1 = last.top1 })
      if stop then
        bar:finish()
        print(("%s: stopped after iteration %d; checkpoint written. Continue with:\n  acqlua %s --resume %s")
          :format(stop, it, arg and arg[0] or "<recipe>", dir))
        return { interrupted = true, iter = it }
      end
    end
  end)
  acq.release_interrupts()
  log:close()
  if not ok then
    bar:finish()
    error(err, 0)
  end
  if err and err.interrupted then return err end
  bar:finish()
  local res = { iter = o.iters, q_top1 = last.top1, q_top5 = last.top5, elapsed = elapsed(), dir = dir, Q = Q }
  if a.model then
    res.export = ("%s/q_%s.safetensors"):format(dir, o.bits:gsub("[^%w]+", "_"))
    acq.export.save(Q, res.export, { model = a.model.name, classes = a.model.classes,
      in_channels = a.model.in_channels, spec = o.bits })
  end
  return res
end

--- Writes result.json (a summary of the run) and prints it.
function Run:finish(summary)
  summary.dir = self.dir
  acq.write_file(self.dir .. "/result.json", acq.json.encode(summary, { indent = 2 }) .. "\n")
  return summary
end

return R
