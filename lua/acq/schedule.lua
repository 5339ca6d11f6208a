--- acq.schedule: learning rates and coefficients as functions of the
-- iteration (1-based). A schedule is a plain Lua function it -> number, so
-- a recipe may also write its own.
--
--   local S = require "acq.schedule"
--   alg = A.new { ..., lr_q = S.step(1e-4, 20000, 0.1) }    -- x0.1 every 20,000
--   LG:weight("L_BNS", S.linear(0, 0.5, 1, 400))            -- a ramp
local S = {}

--- The value of x at iteration it: x itself when it is a number, x(it) when
-- it is a function.
function S.value(x, it)
  if type(x) == "function" then
    local v = x(it)
    if type(v) ~= "number" then error(("schedule: value at iteration %d is %s, not a number"):format(it, tostring(v)), 2) end
    return v
  end
  return x
end

--- A constant v.
function S.constant(v)
  return function() return v end
end

--- v * gamma^floor((it - 1) / every): GDFQ's "x0.1 every 100 epochs".
function S.step(v, every, gamma)
  assert(math.type(every) == "integer" and every > 0, "schedule.step: every must be a positive integer")
  gamma = gamma or 0.1
  return function(it) return v * gamma ^ ((it - 1) // every) end
end

--- v * gamma^(number of milestones <= it - 1): decays after each milestone
-- iteration (IntraQ's epochs 20, 40, 60 as iterations).
function S.multistep(v, milestones, gamma)
  gamma = gamma or 0.1
  return function(it)
    local n = 0
    for _, m in ipairs(milestones) do if it - 1 >= m then n = n + 1 end end
    return v * gamma ^ n
  end
end

--- A linear ramp from a (at iteration first and before) to b (at last and
-- after); with last == first, a step from a to b.
function S.linear(a, b, first, last)
  assert(last >= first, "schedule.linear: last must not be before first")
  return function(it)
    if it <= first then return a end
    if it >= last then return b end
    return a + (b - a) * (it - first) / (last - first)
  end
end

return S
