--- acq.loop: Run:loop, the part of acq.run that repeats Algorithm 1's
-- iterations with the metrics log, pictures, evaluation, checkpoints,
-- signals and the divergence policy around them (see acq.run for the run
-- folder). This module is loaded by acq.run, which passes itself.
local acq = require "acq"
local P = require "acq.pictures"

return function(R, Run)
local exists, history, read = R.exists, R.history, R.read

-- ---- metrics.jsonl ----------------------------------------------------------

-- Opens the log for appending; keeps only the complete lines up to `upto`
-- (a resumed run rewrites what came after its checkpoint).
local function open_log(path, upto)
  local keep, rows = {}, {}
  if R.regular(path, "cannot resume: ") then
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

-- Writes the checkpoint atomically, with the CRC-32 of its tensor data,
-- and only when every floating tensor in it is finite (else an error
-- naming the first that is not; the previous checkpoint stays).
-- The checkpoint's metadata also name the recipe that wrote it and carry
-- the run's options record (options.json, canonical), so a resume can tell
-- another recipe's folder and an edited options.json (acq.run); checksums
-- cover the tensors and the metadata.
local function save_checkpoint(path, alg, it, elapsed, run)
  local t, meta = alg:state()
  t["rng.global"] = acq.rng_state()
  meta.format, meta.iter, meta.elapsed = FORMAT, tostring(it), ("%.17g"):format(elapsed)
  meta.lr_scale = ("%.17g"):format(alg.lr_scale or 1)
  meta.recipe, meta.record = run.name, run.record
  acq.safetensors.save(path, t, meta, { checksum = true, finite = true })
end

-- Every metadata field a resume uses, checked for type and range: a
-- one-line error naming the field (no Lua internals).
local function checked_meta(path, meta, unchecked)
  local function bad(field, why) R.die("cannot resume: %s: metadata field '%s' %s", path, field, why) end
  if meta.format ~= FORMAT then R.die("cannot resume: %s is not an acq run checkpoint", path) end
  if not (meta.crc32 and meta.crc32_meta) and not unchecked then
    R.die("cannot resume: %s carries no checksum over its %s (written by an older acq, or edited); "
      .. "--unchecked-checkpoint accepts it", path, meta.crc32 and "metadata" or "tensors and metadata")
  end
  local it = meta.iter and tonumber(meta.iter)
  if not it then bad("iter", meta.iter and ("is '%s', not a number"):format(meta.iter) or "is missing") end
  if it ~= math.floor(it) or it < 0 or it > 1e9 then bad("iter", ("is %s, not an iteration"):format(meta.iter)) end
  local elapsed = tonumber(meta.elapsed or "0")
  if not elapsed or elapsed ~= elapsed or elapsed < 0 or elapsed == math.huge then
    bad("elapsed", ("is '%s', not a duration"):format(tostring(meta.elapsed)))
  end
  local lr = tonumber(meta.lr_scale or "1")
  if not lr or lr ~= lr or lr <= 0 or lr > 1 then
    bad("lr_scale", ("is '%s', not in (0, 1]"):format(tostring(meta.lr_scale)))
  end
  return math.tointeger(it), elapsed, lr
end

local function load_checkpoint(path, alg, unchecked)
  if not R.regular(path, "cannot resume: ") then R.die("cannot resume: %s: no such file", path) end
  -- finite: a checkpoint is written only when finite, anything else was edited
  local ok, t, meta = pcall(acq.safetensors.load, path, { finite = true })
  if not ok then R.die("cannot resume: %s", tostring(t):gsub("\n.*", "")) end
  local it, elapsed, lr = checked_meta(path, meta, unchecked)
  if not acq.is_tensor(t["rng.global"]) then R.die("cannot resume: %s: tensor 'rng.global' is missing", path) end
  local okl, err = pcall(alg.load, alg, t, meta, it, path)
  if not okl then R.die("cannot resume: %s", R.strip_positions(tostring(err)):gsub("\n.*", "")) end
  alg.lr_scale = lr
  acq.set_rng_state(t["rng.global"])
  return it, elapsed
end

local function number_of(t)
  if type(t) == "number" then return t end
  return t:item()
end

-- A failure that is the training diverging (a NaN or Inf in a loss or in
-- the state), as opposed to a bug.
local function diverged(msg)
  msg = tostring(msg)
  return msg:find("NaN") or msg:find("Inf") or msg:find(" is nan") or msg:find(" is inf") or msg:find(" is %-inf")
end

--- Algorithm 1 on this run: alg (acq.algorithm.new) repeats body(it) from
-- the first iteration, or the checkpoint's, to --iters, with the metrics
-- log, pictures, evaluation, checkpoints and signals around it. a:
-- {evaluate = function(Q) -> top1[, top5] (real data reaches the run only
-- through it), model = {name, classes, in_channels} (for the export)}.
-- The last iteration's checkpoint is written before the final evaluation,
-- so a run stopped during it resumes with the evaluation alone. A loss or a
-- state that is not finite stops the run (--on-nan stop), or rolls it back
-- to the last checkpoint with the learning rates halved, at most
-- --max-rollbacks times (--on-nan rollback).
-- Returns {iter, q_top1, q_top5, interrupted, elapsed, dir, Q, export}.
function Run.loop(self, alg, body, a)
  a = a or {}
  self.fresh = false -- from here on the folder holds a run (acq.run's R.undo_fresh)
  local o, dir = self.opts, self.dir
  alg.iters = o.iters
  alg.lr_scale = alg.lr_scale or 1
  local ckpt = dir .. "/checkpoint.safetensors"
  -- ranks other than 0 write into a scratch folder of their own, and read
  -- rank 0's checkpoint (the run folder's) when they resume
  local src = self.source or dir
  local follower = (self.rank or 0) > 0
  if follower then a = { model = a.model } end -- rank 0 alone evaluates
  local start, elapsed0 = 0, 0
  if o.resume then
    local from = src .. "/checkpoint.safetensors"
    if not exists(from) then R.die("--resume %s: no checkpoint.safetensors yet (the run stopped before its first)", src) end
    start, elapsed0 = load_checkpoint(from, alg, o.unchecked_checkpoint)
    if start >= o.iters and exists(src .. "/result.json") then
      R.die("--resume %s: the run finished at iteration %d (result.json); give a larger --iters to train on", src, start)
    end
    if not follower then os.remove(dir .. "/result.json") end -- the run is not finished any more
  end
  local logpath = dir .. "/metrics.jsonl"
  local log, rows = open_log(logpath, start)
  if not follower then -- the record of what the run draws (--force removes those and nothing else)
    local kinds = {}
    for _, p in ipairs(alg.pictures or {}) do kinds[#kinds + 1] = p[1] or p.name end
    history(dir, { event = "files", pictures = kinds })
  end
  acq.mkdir(dir .. "/samples")
  local fixed = P.fixed_samples(alg)
  if start > 0 then print(("resuming %s at iteration %d of %d"):format(dir, start, o.iters))
  else print(("run folder %s; Q: %s"):format(dir, acq.quant.describe(alg.plan))) end

  local bar = acq.progress.new { total = o.iters, label = self.name, start = start }
  local function say(msg) bar:print(msg) end
  local t_start = acq.clock()
  local last = {}
  local function elapsed() return elapsed0 + acq.clock() - t_start end

  -- A row is on disk (flushed) before the checkpoint of its iteration, and
  -- a resume keeps only the rows up to its checkpoint: the log of an
  -- interrupted run equals an uninterrupted one's. A failed write stops
  -- the run (the rows after the last checkpoint are rewritten on resume).
  local function write_row(row)
    local okw, errw = log:write(acq.json.encode(row), "\n")
    if okw then okw, errw = log:flush() end
    if not okw then error(("%s: %s"):format(logpath, tostring(errw)), 0) end
    rows[#rows + 1] = row
  end
  local INTERRUPTED = {}
  local function evaluate(it, row)
    if not a.evaluate then return end
    local okE, top1, top5 = pcall(a.evaluate, alg.Q)
    if not okE and top1 == "interrupted" then
      -- Ctrl-C stopped the evaluation: the state after iteration `it` is
      -- what a resume needs (at the last iteration it is already written)
      if it < o.iters then
        write_row(row) -- without its accuracy
        save_checkpoint(ckpt, alg, it, elapsed(), self)
      end
      INTERRUPTED.it = it
      error(INTERRUPTED, 0)
    end
    if not okE then error(top1, 0) end
    row.q_top1, row.q_top5 = number_of(top1), top5 and number_of(top5)
    last.top1, last.top5 = row.q_top1, row.q_top5
    say(("iteration %d: Q top-1 %.2f%%"):format(it, row.q_top1))
    alg:notify("on_eval", it, row)
  end
  local function picture(it)
    if not follower then P.draw_all(dir, alg, fixed, rows, self.name, it, say) end
  end
  -- The final evaluation completes the last iteration's row, already in the
  -- log: a run stopped during the evaluation resumes with it alone.
  local function final_evaluation(it, row)
    evaluate(it, row)
    log:close()
    log = open_log(logpath, it - 1)
    rows[#rows] = nil
    write_row(row)
  end

  if start == 0 then picture(0) end
  local last_good = start > 0 and start or nil -- the checkpoint on disk
  local rollbacks = 0
  acq.catch_interrupts()
  local t_log, it_log = acq.clock(), start
  local ok, err = pcall(function()
    if start >= o.iters then -- stopped during the final evaluation
      local row = rows[#rows] and rows[#rows].iter == start and rows[#rows]
      if not row then
        row = { iter = start }
        write_row(row)
      end
      final_evaluation(start, row)
      return
    end
    local it = start
    while it < o.iters do
      it = it + 1
      local okit, row = xpcall(alg.iteration, R.handler, alg, it, body)
      local stop = acq.interrupted()
      local final = false
      if okit then
        local due = it == o.iters or (it > o.warmup and o.eval_every > 0 and it % o.eval_every == 0)
        final = due and it == o.iters
        if row.lr_g or due then
          local now = acq.clock()
          row.sec_per_iter = (now - t_log) / (it - it_log)
          row.elapsed = elapsed()
          t_log, it_log = now, it
        end
        if due and not final then -- an evaluation that fails (a NaN state) takes the failure path below
          local oke, erre = pcall(evaluate, it, row)
          if not oke and erre == INTERRUPTED then error(erre, 0) end
          if not oke then okit, row = false, erre end
        end
        -- the row before its iteration's checkpoint (the final one's losses
        -- first; the final evaluation completes it after the checkpoint)
        if okit and (row.lr_g or due) then write_row(row) end
      end
      if okit and (it % o.ckpt_every == 0 or it == o.iters or stop) then
        local okc, errc = pcall(save_checkpoint, ckpt, alg, it, elapsed(), self)
        if okc then
          last_good = it
          alg:notify("on_checkpoint", it)
        else
          okit, row = false, tostring(errc):gsub("^[^:\n]*%.safetensors: not written: ", "the state is not finite: ")
        end
      end
      if not okit then
        local why = tostring(row):gsub("^[^:\n]*/acq/[^:\n]*%.lua:%d+: ", "")
        if (o.on_nan == "rollback") and diverged(why) and last_good and rollbacks < (o.max_rollbacks or 3) then
          rollbacks = rollbacks + 1
          local scale = alg.lr_scale
          local back = load_checkpoint(ckpt, alg, true)
          alg.lr_scale = scale * 0.5 -- halved again at each rollback
          log:close()
          log, rows = open_log(logpath, back)
          say(("iteration %d: %s; rolled back to iteration %d, learning rates x%g (rollback %d of %d)")
            :format(it, why, back, alg.lr_scale, rollbacks, o.max_rollbacks or 3))
          history(dir, { event = "rollback", failed_at = it, to = back, lr_scale = alg.lr_scale, why = why })
          it, t_log, it_log = back, acq.clock(), back
        else
          local good = last_good and ("the last checkpoint (%s, iteration %d) is intact"):format(ckpt, last_good)
            or "no checkpoint was written yet"
          R.stop(1, "stopped at iteration %d: %s; %s", it, why, good)
        end
      else
        if final then final_evaluation(it, row) end
        if it % o.sample_every == 0 or it == o.iters then picture(it) end
        bar:update(it, { L_G = row.L_G, L_Q = row.L_Q, top1 = last.top1 })
        if stop and it < o.iters then
          bar:finish()
          print(("%s: stopped after iteration %d; checkpoint written. Continue with:\n  acqlua %s --resume %s")
            :format(stop, it, arg and arg[0] or "<recipe>", dir))
          return { interrupted = true, iter = it }
        end
      end
    end
  end)
  self.loop_done = true
  R.last_signal = acq.interrupted() or nil -- named before the handlers go back
  acq.release_interrupts()
  log:close()
  -- a run that stops here leaves its folder complete up to its checkpoint;
  -- a finished one keeps the lock until Run:finish has written result.json
  if (not ok or (err and err.interrupted)) and self.lock then self.lock:release() end
  if not ok and err == INTERRUPTED then
    bar:finish()
    print(("%s: stopped during the %s evaluation; checkpoint written. Continue with:\n  acqlua %s --resume %s")
      :format(R.last_signal or "SIGINT", err.it == o.iters and "final" or ("iteration %d's"):format(err.it),
        arg and arg[0] or "<recipe>", dir))
    return { interrupted = true, iter = err.it }
  end
  if not ok then
    bar:finish()
    error(err, 0)
  end
  if err and err.interrupted then return err end
  bar:finish()
  local res = { iter = o.iters, q_top1 = last.top1, q_top5 = last.top5, elapsed = elapsed(), dir = dir, Q = alg.Q,
    rollbacks = rollbacks }
  if a.model then
    res.export = ("%s/q_%s.safetensors"):format(dir, o.bits:gsub("[^%w]+", "_"))
    acq.export.save(alg.Q, res.export, { model = a.model.name, classes = a.model.classes,
      in_channels = a.model.in_channels, spec = o.bits })
  end
  return res
end

end
