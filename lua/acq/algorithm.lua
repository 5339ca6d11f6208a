--- acq.algorithm: Algorithm 1 of the ACQ paper as pieces a recipe composes.
--
--   local A = require "acq.algorithm"
--   local alg = A.new { F = F, G = G, bits = "w4a4", batch = 32, warmup = 200,
--                       g_objective = acq.objective.acq_g(coef),
--                       q_objective = acq.objective.acq_q { tau = 1 } }
--   for it = 1, iters do
--     alg:iteration(it, function()
--       local b = alg:sample(it)           -- z ~ N(0, I), y ~ U(C), p ~ U(hw)
--       local c = alg:g_step(b)            -- eq. (15): a step of G
--       if alg:calibrating(it) then alg:calibrate(c)   -- warm-up: Q's bounds
--       else alg:q_step(c) end             -- eq. (16): a step of Q
--     end)
--   end
--
-- (acq.run's Run:loop runs that loop with logging, pictures, evaluation,
-- checkpoints and signals.) The pieces, each a value given to A.new:
--   sampler      function(ctx) -> sample table {z1, z2, y, p, ...}; or a table
--                {draw = function(self, ctx), state = fn, load = fn}. Every
--                extra field of the sample reaches G (its 4th argument), both
--                objectives (c.b), the pictures and the checkpoint. ctx:
--                {it, batch, classes, positions, latent, groups, generator,
--                prev (the last sample), fixed ({y, p} for pictures)}.
--                Samplers draw on the host, from the run's CPU stream, and
--                Alg:draw moves every tensor of the sample to the run's
--                device: the same draws on every device, and a checkpoint
--                of one device resumes on another.
--   g_objective, q_objective   acq.objective tables of named terms;
--   optG, optQ   optimizers, or functions (model) -> optimizer;
--   lr_g, lr_q   numbers or schedules (functions of the iteration, acq.schedule);
--   hooks        list of {name, before(alg, it), after(alg, it, row),
--                on_eval(alg, it, row), on_checkpoint(alg, it), state() ->
--                table, load(t)}; the state is saved with the run;
--   series       extra metrics drawn in losses.png: {{name, label}, ...};
--   pictures     extra pictures: {{name, draw = function(alg, path, it)}, ...}.
local acq = require "acq"
local O = require "acq.objective"
local S = require "acq.schedule"
local dist = require "acq.dist"

local A = {}

local Alg = {}
Alg.__index = Alg
A.Alg = Alg

--- The default sampler: `groups` groups of `batch` samples sharing (y, p)
-- (ACQ draws two; GDFQ one). ctx.fixed = {y, p} fixes the labels and
-- positions (the pictures' samples).
function A.paired_sampler(ctx)
  local g, dev = ctx.generator, ctx.device
  local s = {}
  if ctx.fixed then
    local n = ctx.fixed.y:size(0)
    s.y, s.p = ctx.fixed.y, ctx.fixed.p
    s.z1 = acq.randn(n, ctx.latent, { generator = g, device = dev })
    if ctx.groups == 2 then s.z2 = acq.randn(n, ctx.latent, { generator = g, device = dev }) end
    return s
  end
  local b = acq.gen.sample { batch = ctx.batch, classes = ctx.classes, positions = ctx.positions,
    latent = ctx.latent, generator = g, device = dev }
  if ctx.groups ~= 2 then b.z2 = nil end
  return b
end

local function opt_value(v, model, default)
  if v == nil then return default() end
  if type(v) == "function" then return v(model) end
  return v
end

--- The state of Algorithm 1. a: {F, G, bits (or Q and plan), batch, warmup,
-- seed = 0, classes (G's), groups = 2, target = "o_eval" | "labels",
-- device, sampler, g_objective, q_objective, optG, optQ, lr_g, lr_q,
-- input_range = {lo, hi} (the first layer's input bounds, not calibrated),
-- hooks, series, pictures, log_every = 10, iters}. Inside a process group
-- (acq.dist) the ranks keep in step: own sampling streams, averaged
-- gradients, calibration on every rank's batch (see acq.dist).
function A.new(a)
  local F, G = assert(a.F, "algorithm: F"), assert(a.G, "algorithm: G")
  if a.device and a.device ~= "cpu" then -- everything the run creates lives there
    F:to { device = a.device }
    G:to { device = a.device }
  end
  F:requires_grad_(false)
  local Q, plan = a.Q, a.plan
  if not Q then Q, plan = acq.quant.quantize(F, assert(a.bits, "algorithm: bits (or Q)")) end
  local parallel = dist.parallel()
  local alg = setmetatable({
    F = F, G = G, Q = Q, plan = plan, bits = a.bits,
    batch = assert(a.batch, "algorithm: batch"), warmup = assert(a.warmup, "algorithm: warmup"),
    seed = a.seed or 0, classes = a.classes or G.classes, groups = a.groups or 2,
    target = a.target or "o_eval", device = a.device, iters = a.iters, log_every = a.log_every or 10,
    rng = acq.generator(parallel and dist.stream_seed(a.seed or 0) or (a.seed or 0)),
    parallel = parallel,
    sampler = a.sampler or A.paired_sampler,
    g_objective = a.g_objective or error("algorithm: g_objective (acq.objective.acq_g(coef), ...)"),
    q_objective = a.q_objective or O.acq_q(),
    hooks = a.hooks or {}, series = a.series or {}, pictures = a.pictures or {},
    input_range = a.input_range, mark = a.mark or function() end,
  }, Alg)
  if alg.target ~= "o_eval" and alg.target ~= "labels" then
    error(("algorithm: target must be 'o_eval' or 'labels', got '%s'"):format(tostring(alg.target)), 2)
  end
  alg.optG = opt_value(a.optG, G, function()
    return acq.optim.adam(G:parameters(), { lr = 1e-3, betas = { 0.5, 0.999 } })
  end)
  alg.optQ = opt_value(a.optQ, Q, function()
    return acq.optim.sgd(Q:parameters(), { lr = 1e-4, momentum = 0.9, nesterov = true, weight_decay = 1e-4 })
  end)
  alg.lr_g, alg.lr_q = a.lr_g, a.lr_q
  for i, h in ipairs(alg.hooks) do
    if type(h) ~= "table" or type(h.name) ~= "string" then error(("algorithm: hook %d needs a name"):format(i), 2) end
  end
  alg:apply_input_range()
  if alg.parallel then -- every rank starts from rank 0's parameters
    dist.sync(G:parameters())
    dist.sync(Q:parameters())
  end
  return alg
end

--- Fixes the first quantized layer's input bounds at input_range (the range
-- of a normalised image), so calibration does not depend on G's first
-- batches; a no-op without input_range or when that input is not quantized.
function Alg:apply_input_range()
  local r = self.input_range
  if not r then return end
  local first = self.plan and self.plan[1]
  if first and first.a ~= 32 then first.module:set_act_bounds(r[1], r[2]) end
end

local function call_hooks(alg, what, ...)
  for _, h in ipairs(alg.hooks) do
    if h[what] then h[what](alg, ...) end
  end
end

local TRIM_EVERY = 100 -- iterations between acq.trim_memory() calls

--- Starts iteration it: collects the last iteration's handles, sets the
-- learning rates from their schedules, runs the `before` hooks.
function Alg:begin(it)
  -- collect the last iteration's tensor handles now: Lua sees each as a few
  -- bytes, so its collector leaves hundreds alive, and the heap they pin
  -- fragments malloc's (without this the demo peaked at 5.2 GB resident
  -- instead of ~1 GB; a full collection costs about 1 ms)
  collectgarbage()
  self.it = it
  self.row = { iter = it, phase = it <= self.warmup and "warmup" or "train" }
  local k = self.lr_scale or 1 -- < 1 after a rollback (acq.run)
  if self.lr_g then self.optG:lr(S.value(self.lr_g, it) * k) end
  if self.lr_q then self.optQ:lr(S.value(self.lr_q, it) * k) end
  call_hooks(self, "before", it)
end

--- The sampler's context for iteration it (fixed: {y, p} for pictures).
function Alg:sampler_context(it, fixed, generator)
  return { it = it, batch = self.batch, classes = self.classes, positions = self.G.positions,
    latent = self.G.latent, groups = self.groups, generator = generator or self.rng,
    prev = self.last_sample, fixed = fixed }
end

--- A sample table from the sampler (a function, or a table with draw),
-- its tensors moved to the run's device.
function Alg:draw(ctx)
  local b
  if type(self.sampler) == "table" then b = self.sampler:draw(ctx) else b = self.sampler(ctx) end
  local dev = self.device
  if dev and dev ~= "cpu" and type(b) == "table" then
    for k, v in pairs(b) do
      if acq.is_tensor(v) then b[k] = v:to { device = dev } end
    end
  end
  return b
end

--- Step 1: a sample table {z1, z2, y, p, ...} from the sampler.
function Alg:sample(it)
  local b = self:draw(self:sampler_context(it))
  if type(b) ~= "table" or not (b.z1 and b.y) then
    error("sampler: must return a table with at least z1 and y", 0)
  end
  self.last_sample = b
  return b
end

--- The images of a sample: G(z_g, y, p, b) for each group, and the labels
-- and positions of all of them. Returns x, y, p, B.
function Alg:generate(b)
  local G = self.G
  local x1 = G(b.z1, b.y, b.p, b)
  local B = x1:size(0)
  if self.groups == 2 and b.z2 then
    local x2 = G(b.z2, b.y, b.p, b)
    b.x1, b.x2 = x1, x2
    return acq.cat({ x1, x2 }, 0), acq.cat({ b.y, b.y }, 0), b.p and acq.cat({ b.p, b.p }, 0), B
  end
  b.x1 = x1
  return x1, b.y, b.p, B
end

local function log_iteration(alg)
  local it = alg.it
  return it % alg.log_every == 0 or (alg.iters and it == alg.iters)
end

--- Step 2: G's step on g_objective over the sample b. Returns the context,
-- whose x is then detached for Q's step, with F's logits kept.
function Alg:g_step(b)
  local x, y, p, B = self:generate(b)
  self.mark "G forward"
  local c = O.context { F = self.F, x = x, y = y, p = p, b = b, B = B, groups = (b.z2 and self.groups == 2) and 2 or 1,
    it = self.it }
  local L, values, lv = self.g_objective:evaluate(c)
  self.mark "F + losses"
  self.optG:zero_grad()
  L:backward()
  if self.parallel then dist.average_gradients(self.G:parameters()) end
  self.mark "backward"
  self.optG:step()
  self.mark "optimizer"
  local row = self.row
  row[self.g_objective.name] = lv
  if log_iteration(self) then
    for k, v in pairs(values) do row[k] = v:item() end
    if c.extra.cacm_m then row.cacm_m = c.extra.cacm_m:mean():item() end
  end
  -- F's logits on the same images, for Q's target and its distillation
  local f = c._eval and c._eval[1]
  if not f then f = acq.no_grad(function() return (self.F:forward(x, { bn = "eval" })) end) end
  local q = O.context { F = self.F, Q = self.Q, x = x:detach(), y = y, p = p, b = b, B = B, it = self.it,
    f = f:detach(), groups = c.groups }
  q.o_eval = q.f:argmax(1)
  q.target = self.target == "labels" and y or q.o_eval
  if log_iteration(self) then row.fp_agree = q.o_eval:eq(y):float():mean():item() end
  return q
end

--- true while Q only calibrates its activation bounds (the warm-up).
function Alg:calibrating(it) return (it or self.it) <= self.warmup end

--- Step 3 during warm-up: Q sees the samples, its activation quantizers
-- update their bounds.
function Alg:calibrate(c)
  acq.no_grad(function() self.Q:forward(c.x, { bn = "eval" }) end)
  self.mark "Q step"
end

--- Step 3 after warm-up: Q's step on q_objective over the detached samples.
function Alg:q_step(c)
  local L, values, lv = self.q_objective:evaluate(c)
  self.optQ:zero_grad()
  L:backward()
  if self.parallel then dist.average_gradients(self.Q:parameters()) end
  self.optQ:step()
  local row = self.row
  row[self.q_objective.name] = lv
  for k, v in pairs(values) do row[k] = v:item() end
  self.mark "Q step"
end

--- Ends iteration it: Q's bounds frozen when the warm-up ends, the learning
-- rates in the log, the `after` hooks, the heap trimmed now and then.
-- Returns the metrics row.
function Alg:finish(it)
  local row = self.row
  if it == self.warmup then self.Q:quant_state "frozen" end
  if log_iteration(self) then row.lr_g, row.lr_q = self.optG:lr(), self.optQ:lr() end
  call_hooks(self, "after", it, row)
  -- hand the heap's free pages back now and then: acqlua keeps freed heap
  -- between iterations (fewer page faults), and without this fragmentation
  -- raised the resident size by ~10 % over 10,000 iterations (bench/soak)
  if it % TRIM_EVERY == 0 then acq.trim_memory() end
  return row
end

--- One iteration: begin, body (the recipe's steps), finish. Returns the row.
function Alg:iteration(it, body)
  self:begin(it)
  body(it)
  return self:finish(it)
end

--- The iteration of the paper's Algorithm 1, as the recipes write it.
function A.body(alg)
  return function(it)
    local b = alg:sample(it)
    local c = alg:g_step(b)
    if alg:calibrating(it) then alg:calibrate(c) else alg:q_step(c) end
  end
end

-- ---- the state a checkpoint holds -------------------------------------------------

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

-- Splits a state table into tensors (saved as tensors) and plain values
-- (saved as JSON in the metadata).
local function split_state(prefix, st, t, plain)
  for k, v in pairs(st or {}) do
    if acq.is_tensor(v) then t[prefix .. k] = v else plain[k] = v end
  end
end

--- Everything that resumes the run: tensors (name -> tensor) and metadata
-- (name -> string): G, Q with its bounds, both optimizers, the sampling
-- stream, the last sample's tensor fields, the sampler's and hooks' state.
function Alg:state()
  local t, meta = {}, {}
  put(t, "G.", (self.G:state_dict()))
  put(t, "Q.", (self.Q:state_dict()))
  for _, b in ipairs(self.Q:act_bounds()) do
    if b.lo then t["bounds." .. b.name .. ".lo"], t["bounds." .. b.name .. ".hi"] = b.lo, b.hi end
  end
  put(t, "optG.", self.optG:state_dict())
  put(t, "optQ.", self.optQ:state_dict())
  t["rng.sample"] = self.rng:state()
  -- every rank's stream (a collective: every rank calls state together)
  if self.parallel then t["rng.sample.ranks"] = dist.gather_rows(t["rng.sample"]) end
  for k, v in pairs(self.last_sample or {}) do
    if acq.is_tensor(v) and k ~= "x1" and k ~= "x2" then t["sample." .. k] = v:detach() end
  end
  local function keep(prefix, st)
    local plain = {}
    split_state(prefix .. ".", st, t, plain)
    if next(plain) then meta[prefix] = acq.json.encode(plain) end
  end
  if type(self.sampler) == "table" and self.sampler.state then keep("sampler", self.sampler:state()) end
  for _, h in ipairs(self.hooks) do
    if h.state then keep("hook." .. h.name, h.state(self)) end
  end
  return t, meta
end

--- Restores what Alg:state saved, as of the end of iteration it.
function Alg:load(t, meta, it, source)
  local function need(name)
    if not acq.is_tensor(t[name]) then error(("%s: tensor '%s' is missing"):format(source, name), 0) end
    return t[name]
  end
  self.G:load_state_dict(sub(t, "G."), { strict = true, source = source })
  self.Q:load_state_dict(sub(t, "Q."), { strict = true, source = source })
  -- every activation quantizer has bounds from the first iteration on
  local quantized = {}
  for _, b in ipairs(self.Q:act_bounds()) do quantized[b.name] = true end
  for _, e in ipairs(self.Q:named_modules("conv2d")) do
    local key = "bounds." .. e[1]
    if quantized[e[1]] and (it > 0 or t[key .. ".lo"]) then
      e[2]:set_act_bounds(need(key .. ".lo"), need(key .. ".hi"))
    end
  end
  if not self.parallel then need("rng.sample") end
  self.optG:load_state_dict(sub(t, "optG."))
  self.optQ:load_state_dict(sub(t, "optQ."))
  local ranks = t["rng.sample.ranks"]
  if self.parallel then
    if not ranks or ranks:size(0) ~= dist.world() then
      error(("this checkpoint was written by %s process%s, this run has %d: resume with as many"):format(
        ranks and ranks:size(0) or 1, ranks and ranks:size(0) > 1 and "es" or "", dist.world()), 0)
    end
    self.rng:set_state(ranks[dist.rank()]:clone())
  elseif ranks and ranks:size(0) > 1 then
    error(("this checkpoint was written by %d processes: resume it with as many"):format(ranks:size(0)), 0)
  else
    self.rng:set_state(t["rng.sample"])
  end
  local last = sub(t, "sample.")
  self.last_sample = next(last) and last or nil
  local function restore(prefix, target, loader)
    local st = sub(t, prefix .. ".")
    if meta[prefix] then
      for k, v in pairs(acq.json.decode(meta[prefix])) do st[k] = v end
    end
    loader(target, st)
  end
  if type(self.sampler) == "table" and self.sampler.load then
    restore("sampler", self.sampler, self.sampler.load)
  end
  for _, h in ipairs(self.hooks) do
    if h.load then restore("hook." .. h.name, self, h.load) end
  end
  self.Q:quant_state(it >= self.warmup and "frozen" or "calibrate")
  if it < self.warmup then self:apply_input_range() end
end

--- Runs the `on_checkpoint` / `on_eval` hooks.
function Alg:notify(what, ...) call_hooks(self, what, ...) end

return A
