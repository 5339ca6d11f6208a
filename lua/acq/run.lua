--- acq.run: a run of Algorithm 1 on disk: options, the run folder, the
-- metrics log, checkpoints, resume, signals and the loop that ties them to
-- an acq.algorithm state.
--
-- A run folder (--out) holds:
--   options.json             every option of the run, and _recipe (the
--                            recipe that owns the folder): the record that
--                            --force and --resume trust, written once
--   history.jsonl            start, files (the picture kinds), resume,
--                            rollback and finish events
--   metrics.jsonl            one JSON line per logged iteration
--   checkpoint.safetensors   G, Q (with its activation bounds), both
--                            optimizers, the random state, the sampler's and
--                            hooks' state, atomically
--   samples/iter_NNNNNN.png  the fixed (y, p) samples with their attention
--   losses.png               the loss curves (every term of both objectives)
--   q_<bits>.safetensors     the exported quantized model (at the end)
--   result.json              final accuracies and times (at the end; the
--                            lock is held until it is written)
-- --resume DIR continues from the checkpoint, bit for bit; Ctrl-C (or
-- SIGTERM) finishes the current iteration, writes a checkpoint and stops.
local acq = require "acq"
local dist = require "acq.dist"

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

--- msg without the library's own positions ("acq/objective.lua:12: ").
function R.strip_positions(msg)
  msg = msg:gsub("[^%s:]*acq/[%w_]+%.lua:%d+: ", "")
  if LIB ~= "" then msg = msg:gsub(LIB:gsub("%p", "%%%0") .. "/[%w_]+%.lua:%d+: ", "") end
  return msg
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
  msg = R.strip_positions(msg)
  if where then msg = where .. ": " .. msg end
  msg = msg:gsub("\n.*", "")
  if os.getenv("ACQ_TRACEBACK") then msg = debug.traceback(msg, 2) end
  return setmetatable({ msg = msg, code = 1 }, UserError)
end

-- What a start leaves before it has written its record: the lock and the
-- temporaries of its first writes (a folder holding only these is empty).
local function start_debris(f)
  return f == ".lock" or f:match("^options%.json%.tmp%.%d+$") or f:match("^history%.jsonl%.tmp%.%d+$")
end

--- A new run that fails before its loop starts (bad --weights contents, a
-- dataset that will not load) leaves nothing: the records R.start wrote go,
-- and the folder too when R.start made it, so the same command can run again.
function R.undo_fresh()
  local run = R.current
  if not (run and run.fresh) then return end
  run.fresh = false
  for _, f in ipairs(acq.listdir(run.dir)) do
    if f == "options.json" or f == "history.jsonl" or start_debris(f) then os.remove(run.dir .. "/" .. f) end
  end
  if run.lock then run.lock:release() end
  if run.made_dir and #acq.listdir(run.dir) == 0 then os.remove(run.dir) end
end

--- Runs a recipe body: every error is one line on stderr ("<prog>: ..."),
-- exit status 2 for the user's mistakes (options, files), 1 for the rest
-- (a stopped run, an error in recipe code); an interrupted run exits 130
-- (SIGINT) or 143 (SIGTERM), as a shell reports those signals.
function R.main(body, ...)
  local ok, err = xpcall(body, R.handler, ...)
  io.stdout:flush()
  if ok then -- err is the body's result
    if err == "interrupted" then os.exit(R.last_signal == "SIGTERM" and 143 or 130, true) end
    return
  end
  -- Ctrl-C outside the loop (the export, the FP model's evaluation): acqlua
  -- raises "interrupted!"; the exit status is a shell's for SIGINT
  if tostring(err):match("interrupted!$") then
    R.undo_fresh()
    io.stderr:write((arg and arg[0] or "acqlua"), ": interrupted (SIGINT)\n")
    os.exit(130, true)
  end
  R.undo_fresh()
  io.stderr:write((arg and arg[0] or "acqlua"), ": ", tostring(err), "\n")
  io.stderr:flush()
  os.exit(getmetatable(err) == UserError and err.code or 1, true)
end

local exists = acq.exists -- stat, never open: opening a FIFO blocks
R.exists = exists

--- true when path is a regular file, false when nothing is there; anything
-- else (a FIFO, a folder, a device) is a user error "<prefix><path> is <what>".
function R.regular(path, prefix)
  local ok, what = acq.is_regular_file(path)
  if ok then return true end
  if not exists(path) then return false end
  R.die("%s%s is %s", prefix or "", path, what)
end

local function read(path)
  local okr, what = acq.is_regular_file(path)
  if not okr then error(("%s: %s"):format(path, what), 0) end
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
R.read = read

local Run = {}
Run.__index = Run
R.Run = Run

-- Options that do not change the computation, so a resume may change them.
local HARMLESS = { iters = true, eval_every = true, log_every = true, ckpt_every = true,
  sample_every = true, threads = true, out = true, resume = true, force = true, on_nan = true,
  max_rollbacks = true, device = true, dist_timeout = true, unchecked_checkpoint = true }
-- Options that change what the checkpoint's tensors mean: a resume may not change them.
local STRUCTURAL = { bits = true, model = true, classes = true, dataset = true }

-- The run's record: options.json (every option, and "_recipe", the recipe
-- that owns the folder) and history.jsonl (its events; "files" records the
-- picture kinds the loop draws). nil (and why) when dir holds no record.
local function record_of(dir)
  local path = dir .. "/options.json"
  if not acq.is_regular_file(path) then return nil end
  local ok, saved = pcall(acq.json.decode, read(path))
  if not ok or type(saved) ~= "table" then return nil, ok and "not a JSON object" or tostring(saved) end
  local rec = { options = saved, pictures = {}, iters = tonumber(saved.iters) or 0 }
  local h = dir .. "/history.jsonl"
  if acq.is_regular_file(h) then
    for line in read(h):gmatch("[^\n]+") do
      local okl, e = pcall(acq.json.decode, line)
      if okl and type(e) == "table" then
        if e.event == "files" and type(e.pictures) == "table" then
          for _, k in ipairs(e.pictures) do if type(k) == "string" then rec.pictures[k] = true end end
        end
        local ch = type(e.changed) == "table" and e.changed.iters
        if type(ch) == "table" and tonumber(ch[2]) then
          rec.iters = math.max(rec.iters, tonumber(ch[2]))
          rec.last_iters = math.tointeger(tonumber(ch[2]))
        end
      end
    end
  end
  return rec
end
R.record_of = record_of

-- The files of dir that its record says the run wrote (--force removes
-- these and nothing else): the fixed names, the export of its bit widths,
-- the pictures of its recorded kinds at iterations 0..its --iters, and the
-- temporaries of interrupted atomic writes of any of them (NAME.tmp.PID).
local function run_files(dir, rec)
  local o = rec.options
  local fixed = { ["options.json"] = true, ["history.jsonl"] = true, ["metrics.jsonl"] = true,
    ["checkpoint.safetensors"] = true, ["result.json"] = true, ["losses.png"] = true }
  if type(o.bits) == "string" then fixed[("q_%s.safetensors"):format(o.bits:gsub("[^%w]+", "_"))] = true end
  local function picture(n, kinds)
    local kind, it = n:match("^(.+)_(%d%d%d%d%d%d)%.png$")
    return kind and kinds[kind] and tonumber(it) <= rec.iters
  end
  local function ours(n, kinds)
    local base = n:match("^(.-)%.tmp%.%d+$") or n
    return fixed[base] or picture(base, kinds)
  end
  local r = {}
  for _, n in ipairs(acq.listdir(dir)) do
    if ours(n, rec.pictures) and n ~= ".lock" then r[#r + 1] = dir .. "/" .. n end
  end
  if acq.isdir(dir .. "/samples") then
    fixed = {}
    for _, n in ipairs(acq.listdir(dir .. "/samples")) do
      if ours(n, { iter = true }) then r[#r + 1] = dir .. "/samples/" .. n end
    end
  end
  return r
end

-- Appends one record to the run's history.jsonl (atomically: the file is
-- rewritten whole).
local function history(dir, record)
  record.time = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local path = dir .. "/history.jsonl"
  local old = R.regular(path) and read(path) or ""
  acq.write_file(path, old .. acq.json.encode(record) .. "\n")
end
R.history = history

local function take_lock(dir, flag)
  -- this process's own earlier run of the folder, whose loop has returned
  -- (a caller that never called Run:finish): its lock is handed over
  local prev = R.current
  if prev and prev.dir == dir and prev.loop_done and prev.lock then prev.lock:release() end
  local okl, lock, holder = pcall(acq.lock, dir .. "/.lock")
  if not okl then R.die("%s %s: cannot take the lock: %s", flag, dir, tostring(lock)) end
  if not lock then R.die("%s %s: another run (pid %s) is using this folder", flag, dir, holder) end
  return lock
end

--- The options record as one canonical string (keys sorted, JSON values):
-- what a checkpoint keeps of options.json, to tell an edited file.
function R.canonical(saved)
  local keys, parts = {}, {}
  for k in pairs(saved) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = acq.json.encode(k) .. ":" .. acq.json.encode(saved[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- The metadata of DIR's checkpoint (its header alone: the loop reads the
-- tensors), or nil when it has none; a checkpoint that cannot be read is a
-- user error.
local function checkpoint_meta(dir)
  local path = dir .. "/checkpoint.safetensors"
  if not R.regular(path, "cannot resume: ") then return nil end
  local ok, _, meta = pcall(acq.safetensors.header, path)
  if not ok then R.die("cannot resume: %s", (tostring(_):gsub("\n.*", ""))) end
  return meta
end

--- On --resume: the folder belongs to this recipe, and options.json is the
-- record its checkpoint was written under (an edited options.json is
-- refused, naming the first field that differs). Returns the record,
-- canonical (R.canonical).
function R.check_record(dir, name, saved)
  local record = R.canonical(saved)
  local owner = saved._recipe
  local meta = checkpoint_meta(dir)
  if meta and meta.recipe then owner = meta.recipe end
  if owner and owner ~= name then
    R.die("--resume %s: the folder holds a %s run; continue it with recipes/%s.lua, not %s", dir, owner, owner, name)
  end
  if meta and meta.record and meta.record ~= record then
    local okc, copy = pcall(acq.json.decode, meta.record)
    local field = "?"
    if okc and type(copy) == "table" then
      local keys = {}
      for k in pairs(copy) do keys[#keys + 1] = k end
      for k in pairs(saved) do if copy[k] == nil then keys[#keys + 1] = k end end
      table.sort(keys)
      for _, k in ipairs(keys) do
        if acq.json.encode(copy[k]) ~= acq.json.encode(saved[k]) then
          field = ("'%s' is %s there, %s in the checkpoint's copy"):format(k,
            saved[k] == nil and "missing" or acq.json.encode(saved[k]), copy[k] == nil and "missing" or acq.json.encode(copy[k]))
          break
        end
      end
    end
    R.die("--resume %s: options.json was changed after the run wrote it (%s); restore it, or start a new run "
      .. "(options a resume may change are given on the command line)", dir, field)
  end
  return record
end

--- Parses the options (--help prints and exits), checks them, then takes
-- the run folder and seeds. Nothing is written before every check passed.
--   new run:  --out must be a fresh or empty folder (--force replaces the
--             run in it); options.json is written once;
--   --resume: the saved options are used; options given again replace them
--             (a note for each, and a record in history.jsonl), except those
--             that change what the checkpoint holds (--bits, --model, ...).
-- A lock (flock on DIR/.lock, held until the process ends) refuses a second
-- run on the same folder. hooks.defaults(opts) fills options not given (a
-- strategy's presets); hooks.check(opts) raises with R.die on a bad one.
function R.start(name, spec, args, hooks)
  hooks = hooks or {}
  local ok, opts, help = pcall(spec.parse, spec, args or {})
  if not ok then R.die("%s", opts) end
  if not opts then
    print(help)
    os.exit(0, true)
  end
  local changed, lock, record, resumed = {}, nil, nil, nil
  local run = setmetatable({ name = name, opts = opts, fresh = false }, Run)
  if opts.resume then
    local dir = opts.resume
    if not acq.isdir(dir) then R.die("--resume %s: no such folder", dir) end
    local path = dir .. "/options.json"
    if not R.regular(path, "--resume: ") then R.die("--resume %s: no options.json (not a run folder)", dir) end
    local why
    resumed, why = record_of(dir)
    if not resumed then R.die("--resume %s: options.json is damaged: %s", dir, why) end
    local saved = resumed.options
    record = R.check_record(dir, name, saved)
    saved._recipe = nil
    -- options.json is the start's record: a resume that asked for more
    -- iterations is in the history, and a later resume goes on to those
    if not opts._given.iters and resumed.last_iters then saved.iters = resumed.last_iters end
    for k, v in pairs(saved) do
      if opts._given[k] and v ~= opts[k] then
        if STRUCTURAL[k] then
          R.die("--resume %s: --%s %s differs from the run's %s, which its checkpoint was trained with; "
            .. "start a new run instead", dir, k:gsub("_", "-"), tostring(opts[k]), tostring(v))
        end
        if not HARMLESS[k] then
          io.stderr:write(("note: --%s %s replaces the run's %s; the run will not repeat bit for bit\n")
            :format(k:gsub("_", "-"), tostring(opts[k]), tostring(v)))
        end
        changed[k] = { v, opts[k] }
      elseif not opts._given[k] and v ~= acq.json.null then
        opts[k] = v
      end
    end
    opts.out = dir
  else
    if hooks.defaults then hooks.defaults(opts) end
    opts.out = opts.out or ("runs/%s-%s"):format(name, os.date("%Y%m%d-%H%M%S"))
  end
  -- a folder named by --out or --resume: a JSON string (the records), not empty
  for _, k in ipairs { "out", "resume" } do
    local v = opts[k]
    if v ~= nil then
      if v == "" then R.die("--%s: the path is empty", k) end
      if not utf8.len(v) then R.die("--%s: the path is not valid UTF-8 (a run's records are JSON text)", k) end
    end
  end
  -- more threads than processors only slows a run down (and 100,000 of
  -- them never start): at most the machine's count
  if opts.threads and opts.threads > acq.cpu_count() then
    io.stderr:write(("note: --threads %d is more than this machine's %d processors; using %d\n")
      :format(opts.threads, acq.cpu_count(), acq.cpu_count()))
    opts.threads = acq.cpu_count()
  end
  if opts.threads and opts.threads < 0 then R.die("--threads must be at least 0, got %d", opts.threads) end
  for _, k in ipairs { "iters", "batch", "log_every", "ckpt_every", "sample_every" } do
    if opts[k] ~= nil and opts[k] < 1 then R.die("--%s must be at least 1, got %d", k:gsub("_", "-"), opts[k]) end
  end
  if opts.warmup ~= nil and (opts.warmup < 1 or opts.warmup > opts.iters) then
    R.die("--warmup must be in [1, --iters] (Q needs calibrated bounds before it trains; --warmup = --iters "
      .. "calibrates Q and does not train it), got %d", opts.warmup)
  end
  if opts.on_nan ~= nil and opts.on_nan ~= "stop" and opts.on_nan ~= "rollback" then
    R.die("--on-nan must be stop or rollback, got '%s'", tostring(opts.on_nan))
  end
  if opts.max_rollbacks ~= nil and opts.max_rollbacks < 0 then R.die("--max-rollbacks must be at least 0") end
  if hooks.check then hooks.check(opts) end
  -- several processes (torchrun, Slurm, bench/launch.sh): join the group; rank 0
  -- alone takes and writes the run folder
  local okenv, env = pcall(dist.env)
  if not okenv then R.die("%s", tostring(env)) end
  local rank = 0
  if env and env.world > 1 then
    if not (opts._given.out or opts.resume) then
      R.die("%d processes: name the run folder with --out (or --resume); every rank must use the same one", env.world)
    end
    if opts.on_nan == "rollback" then R.die("--on-nan rollback runs in one process only (the ranks would part ways)") end
    if env.rank == 0 or os.getenv("ACQ_DIST_VERBOSE") then
      io.stderr:write(("rank %d of %d: joining the group at %s:%d (waits up to --dist-timeout %g s for the others)\n")
        :format(env.rank, env.world, env.addr, env.port, opts.dist_timeout))
    end
    local okd, errd = pcall(dist.init, opts.dist_timeout, { sync_stats = opts.sync_stats })
    if not okd then
      R.die("%d processes (%s): rank %d could not join the group at %s:%d within --dist-timeout %g s: %s", env.world,
        env.launcher, env.rank, env.addr, env.port, opts.dist_timeout, (tostring(errd):gsub("\n.*", "")))
    end
    rank = dist.rank()
  end
  local dir, source = opts.out, nil
  if rank > 0 then -- a scratch folder of its own; rank 0's run folder is read on resume
    source, dir = dir, os.tmpname()
    os.remove(dir)
    acq.mkdir(dir)
    local okb, errb = pcall(dist.barrier) -- rank 0 has taken the folder
    if not okb then R.die("rank %d: rank 0 did not start the run: %s", rank, tostring(errb)) end
  elseif opts.resume then
    lock = take_lock(dir, "--resume")
    -- temporaries of atomic writes that a kill interrupted (NAME.tmp.PID)
    for _, f in ipairs(run_files(dir, resumed)) do
      if f:match("%.tmp%.%d+$") then os.remove(f) end
    end
    local record = { event = "resume", args = table.concat(args or {}, " ") }
    if next(changed) then record.changed = changed end
    history(dir, record)
  else
    local rec
    -- what a start that died before its record leaves (the lock, temporaries
    -- of its first writes) does not make a folder non-empty
    local empty = true
    for _, f in ipairs(acq.isdir(dir) and acq.listdir(dir) or {}) do
      if not start_debris(f) then empty = false end
    end
    if not empty then
      rec = record_of(dir)
      if not rec then
        R.die("--out %s: the folder is not empty and holds no acq run (no options.json); choose a new or empty folder",
          dir)
      end
      if not opts.force then
        R.die("--out %s: the folder holds a run; continue it with --resume %s, or start over with --force",
          dir, dir)
      end
    elseif exists(dir) and not acq.isdir(dir) then
      R.die("--out %s: not a folder", dir)
    end
    run.made_dir = not acq.isdir(dir)
    acq.mkdir(dir)
    lock = take_lock(dir, "--out")
    -- registered at once, so a failure from here on is undone (R.undo_fresh)
    run.dir, run.lock, run.fresh = dir, lock, true
    R.current = run
    if opts.force and rec then -- only what the run's record says it wrote
      for _, f in ipairs(run_files(dir, rec)) do os.remove(f) end
      if acq.isdir(dir .. "/samples") and #acq.listdir(dir .. "/samples") == 0 then os.remove(dir .. "/samples") end
    end
    local saved = { _recipe = name }
    for k, v in pairs(opts) do
      if k ~= "_given" and k ~= "resume" and k ~= "force" then saved[k] = v end
    end
    acq.write_file(dir .. "/options.json", acq.json.encode(saved, { indent = 2 }) .. "\n")
    record = R.canonical(saved)
    history(dir, { event = "start", recipe = name, args = table.concat(args or {}, " ") })
  end
  if rank == 0 and dist.parallel() then dist.barrier() end -- the others may start
  acq.set_num_threads(opts.threads and opts.threads > 0 and opts.threads or acq.cpu_count())
  acq.manual_seed(opts.seed or 0)
  run.dir, run.source, run.lock, run.rank, run.record = dir, source, lock, rank, record
  R.current = run
  return run
end

-- The loop, the metrics log and the checkpoints: acq.loop adds Run:loop.
require("acq.loop")(R, Run)

--- Writes result.json (a summary of the run), the last file a run writes:
-- its presence marks a finished run. Returns the summary.
function Run:finish(summary)
  if (self.rank or 0) > 0 then -- a follower's scratch folder goes; rank 0 writes the run's
    os.execute("rm -rf '" .. self.dir .. "'")
    return summary
  end
  summary.dir = self.dir
  history(self.dir, { event = "finish", iter = self.opts.iters })
  acq.write_file(self.dir .. "/result.json", acq.json.encode(summary, { indent = 2 }) .. "\n")
  if self.lock then self.lock:release() end -- held until the folder is complete
  return summary
end

return R
