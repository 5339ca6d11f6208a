--- acq.run: a run of Algorithm 1 on disk: options, the run folder, the
-- metrics log, checkpoints, resume, signals and the loop that ties them to
-- an acq.algorithm state.
--
-- A run folder (--out) holds:
--   options.json             every option of the run
--   metrics.jsonl            one JSON line per logged iteration
--   checkpoint.safetensors   G, Q (with its activation bounds), both
--                            optimizers, the random state, the sampler's and
--                            hooks' state, atomically
--   samples/iter_NNNNNN.png  the fixed (y, p) samples with their attention
--   losses.png               the loss curves (every term of both objectives)
--   q_<bits>.safetensors     the exported quantized model (at the end)
--   result.json              final accuracies and times (at the end)
-- --resume DIR continues from the checkpoint, bit for bit; Ctrl-C (or
-- SIGTERM) finishes the current iteration, writes a checkpoint and stops.
local acq = require "acq"
local P = require "acq.pictures"

local R = {}

-- Errors meant for the user (a bad option, a missing file): one line, no
-- traceback.
local UserError = { __tostring = function(e) return e.msg end }
R.UserError = UserError

--- Raises a one-line error for the user (R.main prints it alone, exit 2).
function R.die(fmt, ...)
  error(setmetatable({ msg = fmt:format(...), code = 2 }, UserError), 0)
end

--- Raises a one-line error that ends the run with exit status code.
function R.stop(code, fmt, ...)
  error(setmetatable({ msg = fmt:format(...), code = code }, UserError), 0)
end

local LIB = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "" -- lua/acq

-- The innermost frame of the error that is not the library's nor C: the
-- recipe's own code ("recipes/x.lua:12"), or nil.
local function recipe_frame(level)
  for l = level, 60 do
    local info = debug.getinfo(l, "Sl")
    if not info then return nil end
    local src = info.source
    if src:sub(1, 1) == "@" and info.currentline > 0 and src:sub(2, #LIB + 1) ~= LIB
       and not src:match("acqlua%.lua$") then
      return ("%s:%d"):format(info.short_src, info.currentline)
    end
  end
end

--- A message handler for xpcall: user errors pass; any other error becomes
-- one line "<recipe file>:<line>: <message>", naming the recipe's frame
-- nearest the error (ACQ_TRACEBACK=1 appends the traceback).
function R.handler(e)
  if getmetatable(e) == UserError then return e end
  local msg = tostring(e)
  local named = false -- does the message already name a position in recipe code?
  for file in msg:gmatch("([^%s:]+%.lua):%d+:") do
    if not file:match("^acq/") and not file:find(LIB, 1, true) then named = true end
  end
  local where = not named and recipe_frame(3)
  if where then msg = where .. ": " .. msg:gsub("^[^:\n]*%.lua:%d+: ", "") end
  msg = msg:gsub("\n.*", "")
  if os.getenv("ACQ_TRACEBACK") then msg = debug.traceback(msg, 2) end
  return setmetatable({ msg = msg, code = 1 }, UserError)
end

--- Runs a recipe body: every error is one line on stderr ("<prog>: ..."),
-- exit status 2 for the user's mistakes (options, files), 1 for the rest
-- (a stopped run, an error in recipe code); an interrupted run exits 130.
function R.main(body, ...)
  local ok, err = xpcall(body, R.handler, ...)
  io.stdout:flush()
  if ok then -- err is the body's result
    if err == "interrupted" then os.exit(130, true) end
    return
  end
  io.stderr:write((arg and arg[0] or "acqlua"), ": ", tostring(err), "\n")
  io.stderr:flush()
  os.exit(getmetatable(err) == UserError and err.code or 1, true)
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end
R.exists = exists

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local Run = {}
Run.__index = Run
R.Run = Run

-- Options that do not change the computation, so a resume may change them.
local HARMLESS = { iters = true, eval_every = true, log_every = true, ckpt_every = true,
  sample_every = true, threads = true, out = true, resume = true }

--- Parses the options (--help prints and exits), checks them, then prepares
-- the run folder and seeds. With --resume the saved options are used;
-- options given again replace them (a note for each). defaults(opts), when
-- given, fills options that were not given (a strategy's presets) and
-- check(opts) raises with R.die on a bad one: both run before any file is
-- written.
function R.start(name, spec, args, hooks)
  hooks = hooks or {}
  local ok, opts, help = pcall(spec.parse, spec, args or {})
  if not ok then R.die("%s", opts) end
  if not opts then
    print(help)
    os.exit(0, true)
  end
  if opts.resume then
    local dir = opts.resume
    if not acq.isdir(dir) then R.die("--resume %s: no such folder", dir) end
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
    if hooks.defaults then hooks.defaults(opts) end
    opts.out = opts.out or ("runs/%s-%s"):format(name, os.date("%Y%m%d-%H%M%S"))
  end
  for _, k in ipairs { "iters", "batch", "log_every", "ckpt_every", "sample_every" } do
    if opts[k] ~= nil and opts[k] < 1 then R.die("--%s must be at least 1, got %d", k, opts[k]) end
  end
  if opts.warmup ~= nil and (opts.warmup < 1 or opts.warmup >= opts.iters) then
    R.die("--warmup must be in [1, --iters) (Q needs calibrated bounds before it trains), got %d", opts.warmup)
  end
  if hooks.check then hooks.check(opts) end
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

-- ---- checkpoints -------------------------------------------------------------

local FORMAT = "acq-run-v1"

local function save_checkpoint(path, alg, it, elapsed)
  local t, meta = alg:state()
  t["rng.global"] = acq.rng_state()
  meta.format, meta.iter, meta.elapsed = FORMAT, tostring(it), ("%.17g"):format(elapsed)
  acq.safetensors.save(path, t, meta)
end

local function load_checkpoint(path, alg)
  local ok, t, meta = pcall(acq.safetensors.load, path)
  if not ok then R.die("cannot resume: %s", tostring(t)) end
  if meta.format ~= FORMAT then R.die("cannot resume: %s is not an acq run checkpoint", path) end
  local it = tonumber(meta.iter)
  alg:load(t, meta, it, path)
  acq.set_rng_state(t["rng.global"])
  return it, tonumber(meta.elapsed) or 0
end

local function number_of(t)
  if type(t) == "number" then return t end
  return t:item()
end

--- Algorithm 1 on this run: alg (acq.algorithm.new) repeats body(it) from
-- the first iteration, or the checkpoint's, to --iters, with the metrics
-- log, pictures, evaluation, checkpoints and signals around it. a:
-- {evaluate = function(Q) -> top1[, top5] (real data reaches the run only
-- through it), model = {name, classes, in_channels} (for the export)}.
-- Returns {iter, q_top1, q_top5, interrupted, elapsed, dir, Q, export}.
function Run:loop(alg, body, a)
  a = a or {}
  local o, dir = self.opts, self.dir
  alg.iters = o.iters
  local ckpt = dir .. "/checkpoint.safetensors"
  local start, elapsed0 = 0, 0
  if o.resume then
    if not exists(ckpt) then R.die("--resume %s: no checkpoint.safetensors yet (the run stopped before its first)", dir) end
    start, elapsed0 = load_checkpoint(ckpt, alg)
  end
  local log, rows = open_log(dir .. "/metrics.jsonl", start)
  acq.mkdir(dir .. "/samples")
  local fixed = P.fixed_samples(alg)
  if start > 0 then print(("resuming %s at iteration %d of %d"):format(dir, start, o.iters))
  else print(("run folder %s; Q: %s"):format(dir, acq.quant.describe(alg.plan))) end

  local bar = acq.progress.new { total = o.iters, label = self.name, start = start }
  local function say(msg) bar:print(msg) end
  local t_start = acq.clock()
  local last = {}
  local function elapsed() return elapsed0 + acq.clock() - t_start end

  local function evaluate(it, row)
    if not a.evaluate then return end
    local top1, top5 = a.evaluate(alg.Q)
    row.q_top1, row.q_top5 = number_of(top1), top5 and number_of(top5)
    last.top1, last.top5 = row.q_top1, row.q_top5
    say(("iteration %d: Q top-1 %.2f%%"):format(it, row.q_top1))
    alg:notify("on_eval", it, row)
  end
  local function picture(it) P.draw_all(dir, alg, fixed, rows, self.name, it, say) end

  if start == 0 then picture(0) end
  acq.catch_interrupts()
  local t_log, it_log = acq.clock(), start
  local ok, err = pcall(function()
    for it = start + 1, o.iters do
      local okit, row = xpcall(alg.iteration, R.handler, alg, it, body)
      if not okit then
        local good = exists(ckpt) and ("the last checkpoint (%s) is intact"):format(ckpt) or "no checkpoint was written yet"
        local why = tostring(row):gsub("^[^:\n]*/acq/[^:\n]*%.lua:%d+: ", "")
        R.stop(1, "stopped at iteration %d: %s; %s", it, why, good)
      end
      local evaluated = false
      if it > o.warmup and ((o.eval_every > 0 and it % o.eval_every == 0) or it == o.iters) then
        evaluate(it, row)
        evaluated = true
      end
      if row.lr_g or evaluated then
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
      if it % o.ckpt_every == 0 or it == o.iters or stop then
        save_checkpoint(ckpt, alg, it, elapsed())
        alg:notify("on_checkpoint", it)
      end
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
  local res = { iter = o.iters, q_top1 = last.top1, q_top5 = last.top5, elapsed = elapsed(), dir = dir, Q = alg.Q }
  if a.model then
    res.export = ("%s/q_%s.safetensors"):format(dir, o.bits:gsub("[^%w]+", "_"))
    acq.export.save(alg.Q, res.export, { model = a.model.name, classes = a.model.classes,
      in_channels = a.model.in_channels, spec = o.bits })
  end
  return res
end

--- Writes result.json (a summary of the run) and returns it.
function Run:finish(summary)
  summary.dir = self.dir
  acq.write_file(self.dir .. "/result.json", acq.json.encode(summary, { indent = 2 }) .. "\n")
  return summary
end

return R
