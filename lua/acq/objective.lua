--- acq.objective: objectives as tables of named terms over forwards that
-- are computed once per iteration.
--
--   local O = require "acq.objective"
--   local LG = O.acq_g(coef)                       -- eq. (15), seven terms
--   LG:remove "L_AD"                               -- Table 6's "w/o L_AD"
--   LG:replace("L_BNS", { fn = my_bns, needs = { "eval.sample_stats" } })
--   LG:add { name = "L_TV", weight = function(it) return 1e-4 * it / 1000 end,
--            fn = function(c) return total_variation(c.x) end }
--   local L, values = LG:evaluate(c)               -- c: a context (below)
--
-- A term is {name, weight, fn, needs}:
--   weight  a number, or a function of the iteration returning one; a term
--           whose weight is 0 at an iteration is not computed;
--   fn(c)   returns a scalar tensor (on the graph); it may leave values for
--           other terms or the log in c.extra;
--   needs   what fn reads from the context, so each forward runs once with
--           everything the active terms need: "eval", "eval.stats",
--           "eval.sample_stats", "eval.features", "train", "train.stats",
--           "train.features", "q".
--
-- A context is the state of one step: c.it, c.b (the sample table, with any
-- extra fields of a custom sampler), c.x (the images), c.y, c.p (labels and
-- positions of every image), c.B (samples per group), c.groups, c.F, and,
-- computed on first use and then kept: c:eval() (F^eval: logits, aux),
-- c:train() (F^train, batch statistics, running statistics untouched),
-- c:att_eval(), c:att_train() (eq. (3)). A Q context also has c.Q, c.f (F's
-- logits, detached), c.target and c:q() (Q's logits).
local acq = require "acq"
local loss = require "acq.loss"

local O = {}

local Objective = {}
Objective.__index = Objective

local function check_term(t, where)
  if type(t) ~= "table" or type(t.name) ~= "string" then
    error(where .. ": a term is a table {name = ..., weight = ..., fn = ...}", 3)
  end
  if type(t.fn) ~= "function" then error(("%s: term %s needs fn(c)"):format(where, t.name), 3) end
  local w = t.weight
  if type(w) ~= "number" and type(w) ~= "function" then
    error(("%s: term %s: weight must be a number or a function of the iteration, got %s")
      :format(where, t.name, type(w)), 3)
  end
  return t
end

--- A new objective named `name` ("L_G", "L_Q": the name of its sum in the
-- log) with the terms in order.
function O.new(name, terms)
  local o = setmetatable({ name = name, terms = {} }, Objective)
  for _, t in ipairs(terms or {}) do o:add(t) end
  return o
end

local function index_of(o, name)
  for i, t in ipairs(o.terms) do
    if t.name == name then return i end
  end
end

--- The term called name, or nil.
function Objective:get(name)
  local i = index_of(self, name)
  return i and self.terms[i]
end

--- The names of the terms, in order.
function Objective:names()
  local r = {}
  for i, t in ipairs(self.terms) do r[i] = t.name end
  return r
end

--- Adds a term (at the end, or before the term named opts.before).
function Objective:add(term, opts)
  check_term(term, "objective:add")
  if index_of(self, term.name) then error(("objective:add: %s already has a term %s"):format(self.name, term.name), 2) end
  local at = opts and opts.before and index_of(self, opts.before) or #self.terms + 1
  table.insert(self.terms, at, { name = term.name, weight = term.weight or 1, fn = term.fn,
    needs = term.needs or {} })
  return self
end

--- Removes the term called name (an error if there is none).
function Objective:remove(name)
  local i = index_of(self, name)
  if not i then error(("objective:remove: %s has no term %s (terms: %s)")
    :format(self.name, name, table.concat(self:names(), ", ")), 2) end
  table.remove(self.terms, i)
  return self
end

--- Replaces fields of the term called name: fields is {fn, weight, needs}
-- (any subset), or a function (the new fn).
function Objective:replace(name, fields)
  local i = index_of(self, name)
  if not i then error(("objective:replace: %s has no term %s (terms: %s)")
    :format(self.name, name, table.concat(self:names(), ", ")), 2) end
  if type(fields) == "function" then fields = { fn = fields } end
  local t = self.terms[i]
  for k, v in pairs(fields) do t[k] = v end
  check_term(t, "objective:replace")
  return self
end

--- Sets the weight of the term called name (a number or a function of it).
function Objective:weight(name, w)
  return self:replace(name, { weight = w })
end

local function weight_at(t, it)
  local w = t.weight
  if type(w) == "function" then w = w(it) end
  if type(w) ~= "number" or w ~= w then
    error(("term %s: weight at iteration %s is %s, not a number"):format(t.name, tostring(it), tostring(w)), 0)
  end
  return w
end

-- Names the first non-finite term: "<objective> is nan (T = nan, ...)".
local function check_finite(name, L, list)
  local v = L:item()
  if v == v and v ~= math.huge and v ~= -math.huge then return v end
  local bad = {}
  for _, e in ipairs(list) do
    local x = e[2]:item()
    if x ~= x or x == math.huge or x == -math.huge then bad[#bad + 1] = ("%s = %s"):format(e[1], tostring(x)) end
  end
  error(("%s is %s (%s)"):format(name, tostring(v),
    #bad > 0 and table.concat(bad, ", ") or "every term finite: the weighted sum overflowed"), 0)
end

--- Evaluates the active terms on context c (c.it: the iteration). Returns
-- L (the weighted sum), values (name -> scalar tensor) and L's value; a
-- non-finite L is an error naming the non-finite terms.
function Objective:evaluate(c)
  local active, needs = {}, {}
  for _, t in ipairs(self.terms) do
    local w = weight_at(t, c.it)
    if w ~= 0 then
      active[#active + 1] = { t, w }
      for _, n in ipairs(t.needs) do needs[n] = true end
    end
  end
  if #active == 0 then error(("%s: every term has weight 0 at iteration %s"):format(self.name, tostring(c.it)), 0) end
  c.needs = needs
  local list, values = {}, {}
  for _, e in ipairs(active) do
    local t, w = e[1], e[2]
    local ok, v = pcall(t.fn, c)
    if not ok then
      v = tostring(v)
      local bare = v:gsub("^[^%s:]*acq/[%w_]+%.lua:%d+: ", "")
      error(bare:sub(1, #t.name + 1) == t.name .. ":" and bare or ("term %s: %s"):format(t.name, v), 0)
    end
    if not acq.is_tensor(v) then error(("term %s returned %s, not a scalar tensor"):format(t.name, type(v)), 0) end
    values[t.name] = v
    list[#list + 1] = { t.name, v, w }
  end
  local L = loss.weighted_sum(list, self.name)
  return L, values, check_finite(self.name, L, list)
end

--- A copy whose terms can be changed without touching this one.
function Objective:copy()
  local o = O.new(self.name)
  for _, t in ipairs(self.terms) do o:add(t) end
  return o
end

-- ---- contexts ------------------------------------------------------------------

local Context = {}
Context.__index = Context

--- A context for an objective: for G's, fields {F, x, y, p, b, it, B,
-- groups}; for Q's, also {Q, f (F's logits, detached), target}.
function O.context(fields)
  fields.extra = fields.extra or {}
  fields.needs = fields.needs or {}
  return setmetatable(fields, Context)
end

local function forward(c, key, bn, prefix)
  if c[key] then return c[key][1], c[key][2] end
  local n = c.needs
  local stats = n[prefix .. ".sample_stats"] and "sample" or (n[prefix .. ".stats"] and true) or false
  local feats = n[prefix .. ".features"] or false
  local logits, aux = c.F:forward(c.x, { bn = bn, stats = stats, features = feats })
  aux = aux or {}
  c[key] = { logits, aux }
  return logits, aux
end

--- F^eval(x): logits [n,K], aux {stats, features} (as the active terms need).
function Context:eval() return forward(self, "_eval", "eval", "eval") end
--- F^train(x): batch statistics in BN, running statistics untouched.
function Context:train() return forward(self, "_train", "batch", "train") end

local function attention(c, key, run, what)
  if not c[key] then
    local _, aux = run(c)
    if not aux.features then
      error(("the attention map of %s needs its features: declare needs = {\"%s.features\"}"):format(what, what), 0)
    end
    c[key] = acq.attention(aux.features)
  end
  return c[key]
end

--- eq. (3) on F^eval's and on F^train's backbone output.
function Context:att_eval() return attention(self, "_att_eval", Context.eval, "eval") end
--- eq. (3) on F^train's backbone output.
function Context:att_train() return attention(self, "_att_train", Context.train, "train") end

--- The BN statistics of a forward, with a clear error when they were not asked for.
function Context:stats(which)
  local _, aux = (which == "train" and Context.train or Context.eval)(self)
  if not aux.stats then
    error(("BN statistics of F^%s were not recorded: declare needs = {\"%s.stats\"} (or \"%s.sample_stats\")")
      :format(which or "eval", which or "eval", which or "eval"), 0)
  end
  return aux.stats
end

--- Q's logits on c.x (BN in eval mode, as the peers keep it).
function Context:q()
  if not self._q then self._q = self.Q:forward(self.x, { bn = "eval" }) end
  return self._q
end

-- ---- eq. (15): G's objective ---------------------------------------------------------

local function need(coef, k)
  local v = coef[k]
  if type(v) ~= "number" and type(v) ~= "function" then
    error(("objective: coefficient '%s' must be a number, got %s"):format(k, tostring(v)), 3)
  end
  return v
end

local function times(a, b)
  if type(a) == "number" and type(b) == "number" then return a * b end
  return function(it)
    return (type(a) == "function" and a(it) or a) * (type(b) == "function" and b(it) or b)
  end
end

--- eq. (15) as seven named terms:
--   L_CE + pen_ce Pen_CE + alpha (L_BNS + pen_bns Pen_BNS)
--        + beta (L_CACM + pen_cacm Pen_CACM) + gamma L_AD
-- coef: see acq.loss.presets (any coefficient may be a function of the
-- iteration). L_CACM needs positions; L_AD needs the two groups.
function O.acq_g(coef)
  local alpha, beta, gamma = need(coef, "alpha"), need(coef, "beta"), need(coef, "gamma")
  local pen_ce, pen_bns, pen_cacm = need(coef, "pen_ce"), need(coef, "pen_bns"), need(coef, "pen_cacm")
  local bo = { form = coef.bns_form, reduction = coef.bns_reduction }
  local function bns(stats, what)
    return loss.bns(stats, { form = bo.form, reduction = bo.reduction, what = what })
  end
  return O.new("L_G", {
    { name = "L_CE", weight = 1, needs = { "eval" }, fn = function(c) return loss.ce((c:eval()), c.y) end },
    { name = "Pen_CE", weight = pen_ce, needs = { "train" },
      fn = function(c) return loss.ce((c:train()), c.y, { what = "Pen_CE" }) end },
    { name = "L_BNS", weight = alpha, needs = { "eval.stats" },
      fn = function(c) return (bns(c:stats "eval", "L_BNS")) end },
    { name = "Pen_BNS", weight = times(alpha, pen_bns), needs = { "train.stats" },
      fn = function(c) return (bns(c:stats "train", "Pen_BNS")) end },
    { name = "L_CACM", weight = beta, needs = { "eval.features" }, fn = function(c)
      if not c.p then error("L_CACM needs positions p (a generator with a position condition)", 0) end
      local l, m = loss.cacm(c:att_eval(), c.p, { eps = coef.eps_cacm })
      c.extra.cacm_m = m
      return l
    end },
    { name = "Pen_CACM", weight = times(beta, pen_cacm), needs = { "eval.features", "train.features" },
      fn = function(c) return (loss.penalty_cacm(c:att_train(), c:att_eval(), { eps = coef.eps_pen })) end },
    { name = "L_AD", weight = gamma, needs = { "eval" }, fn = function(c)
      if c.groups ~= 2 or not (c.b.z1 and c.b.z2) then
        error("L_AD needs the paired groups (two groups sharing y and p)", 0)
      end
      local le, B = c:eval(), c.B
      local l, ad = loss.ad(le:narrow(0, 0, B), le:narrow(0, B, B), c.b.z1, c.b.z2, { form = coef.ad_form })
      c.extra.ad = ad
      return l
    end },
  })
end

-- ---- eq. (16) and the strategies' Q objectives -----------------------------------------

--- eq. (16): Q_CE = CE(q, target) + tau Q_KD (KD at temperature T, T^2
-- included). target: o_eval (ACQ) or the labels (GDFQ), set by the step.
function O.acq_q(opts)
  opts = opts or {}
  local T = opts.T or 1
  return O.new("L_Q", {
    { name = "Q_CE", weight = 1, needs = { "q" }, fn = function(c) return loss.ce(c:q(), c.target) end },
    { name = "Q_KD", weight = opts.tau or 1, needs = { "q" }, fn = function(c) return loss.kd(c:q(), c.f, { T = T }) end },
  })
end

--- AIT's Q objective: the KL divergence to F alone (temperature T = 1).
function O.kl_q(opts)
  local T = opts and opts.T or 1
  return O.new("L_Q", {
    { name = "Q_KD", weight = 1, needs = { "q" }, fn = function(c) return loss.kd(c:q(), c.f, { T = T }) end },
  })
end

return O
