--- acq.strategy: the ACQ paper's three training strategies for Q (section
-- 4.2), each a preset of Algorithm 1's pieces: Q's objective, its optimizer
-- and learning-rate schedule, and the options they imply.
--
--   gdfq    Table 3: eq. (16), CE to o_eval plus tau KD (T = --kd-t); SGD
--           with Nesterov momentum, weight decay, x0.1 every --decay-every.
--   ait     Table 4 ("It's All In the Teacher"): Q's loss is the KL
--           divergence to F alone (T = 1), no weight decay, and gradient
--           inundation on every quantized conv/linear weight: the step of
--           each weight tensor is scaled by the factor that makes a share
--           --inundation of its integer levels change (doubling, then 5
--           bisections; acq.quant.inundation_factor, in C), the share x0.1
--           at each learning-rate decay.
--   intraq  Table 5: IntraQ's Q training, KL x T^2 (T = 20) plus CE, the
--           learning rate x0.1 at epochs 20, 40 and 60 (of --epoch-iters
--           iterations). IntraQ's synthesis (images optimised as
--           parameters, its intra-class heterogeneity loss, crops and
--           flips) belongs to a generator-free pipeline and is not used:
--           ACQ's generator makes the samples, and CE's target stays
--           o_eval as in eq. (16).
local acq = require "acq"
local O = require "acq.objective"
local S = require "acq.schedule"

local M = {}

M.names = { "gdfq", "ait", "intraq" }

--- The options each strategy sets when they are not given on the command
-- line (recorded in the run's options.json).
M.defaults = {
  gdfq = {},
  ait = { wd_q = 0, kd_t = 1 },
  intraq = { kd_t = 20 },
}

-- Options the strategies read (added to every Algorithm-1 recipe).
M.options = {
  { "strategy", "gdfq", "Q's training strategy (section 4.2): gdfq (Table 3), ait (Table 4) or intraq (Table 5)" },
  { "inundation", 1e-3, "ait: share of integer levels a step must change (AIT: 1e-3 CIFAR-size, 1e-4 ImageNet)" },
  { "epoch_iters", 200, "intraq: iterations per epoch of its schedule (x0.1 at epochs 20, 40, 60)" },
}

--- Fills the options strategy o.strategy presets (those not given); an
-- unknown strategy presets nothing (acq.recipe's checks refuse it).
function M.apply_defaults(o)
  for k, v in pairs(M.defaults[o.strategy] or {}) do
    if not (o._given and o._given[k]) then o[k] = v end
  end
end

--- An optimizer with AIT's gradient inundation: opt's step, then, for each
-- quantized conv/linear weight of Q (plan: acq.quant.plan's list), the step
-- d = w_new - w_old is replaced by alpha d (acq.quant.inundation_factor).
-- threshold(opt) -> the share of levels a step must change now. Has the
-- optimizer's methods; W.factor is the last step's mean alpha.
function M.inundated(opt, Q, plan, threshold)
  local byname = {}
  for _, e in ipairs(Q:named_parameters()) do byname[e[1]] = e[2] end
  local layers = {}
  for _, p in ipairs(plan) do
    if p.w ~= 32 then layers[#layers + 1] = { w = assert(byname[p.name .. ".weight"], p.name), bits = p.w } end
  end
  local W = { factor = 1 }
  function W.step()
    local old = {}
    acq.no_grad(function()
      for i, l in ipairs(layers) do old[i] = l.w:clone() end
    end)
    opt:step()
    local thr, sum = threshold(opt), 0
    acq.no_grad(function()
      for i, l in ipairs(layers) do
        local d = l.w - old[i]
        local a = acq.quant.inundation_factor(old[i], d, l.bits, { threshold = thr })
        if a ~= 1 then l.w:copy_(old[i] + d * a) end
        sum = sum + a
      end
    end)
    W.factor = #layers > 0 and sum / #layers or 1
  end
  function W.lr(_, v) return opt:lr(v) end
  function W.zero_grad() return opt:zero_grad() end
  function W.state_dict() return opt:state_dict() end
  function W.load_state_dict(_, t) return opt:load_state_dict(t) end
  return W
end

--- The pieces of strategy o.strategy for acq.algorithm.new, from the run's
-- options o (lr_q, wd_q, decay_every, tau, kd_t, inundation, epoch_iters,
-- warmup) and plan_of(Q) -> Q's quantization plan: returns {q_objective,
-- optQ = function(Q) -> optimizer, lr_q, series, hooks}.
function M.pieces(o, plan_of)
  local name = o.strategy
  local sgd = function(Q, wd)
    return acq.optim.sgd(Q:parameters(), { lr = o.lr_q, momentum = 0.9, nesterov = true, weight_decay = wd })
  end
  if name == "gdfq" then
    return { q_objective = O.acq_q { tau = o.tau, T = o.kd_t }, optQ = function(Q) return sgd(Q, o.wd_q) end,
      lr_q = S.step(o.lr_q, o.decay_every, 0.1) }
  elseif name == "ait" then
    local p = { q_objective = O.kl_q { T = o.kd_t }, lr_q = S.step(o.lr_q, o.decay_every, 0.1),
      series = { { "inundation", "AIT: mean factor" } } }
    p.optQ = function(Q)
      -- the passing threshold follows the learning rate: x0.1 at each decay
      p.inundated = M.inundated(sgd(Q, o.wd_q), Q, plan_of(Q), function(opt) return o.inundation * opt:lr() / o.lr_q end)
      return p.inundated
    end
    p.hooks = { { name = "inundation", after = function(alg, it, row)
      if not alg:calibrating(it) then row.inundation = p.inundated.factor end
    end } }
    return p
  elseif name == "intraq" then
    local e = o.epoch_iters
    return { q_objective = O.acq_q { tau = 1, T = o.kd_t }, optQ = function(Q) return sgd(Q, o.wd_q) end,
      lr_q = S.multistep(o.lr_q, { o.warmup + 20 * e, o.warmup + 40 * e, o.warmup + 60 * e }, 0.1) }
  end
  error(("unknown strategy '%s'"):format(tostring(name)), 2)
end

return M
