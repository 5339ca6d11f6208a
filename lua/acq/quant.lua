--- acq.quant -- bit-width specs and Q = quantize(F, spec).
--
-- A spec string says how many bits each conv/linear layer gets:
--   "w4a4"                         4-bit weights and 4-bit inputs everywhere
--   "w4a4,first=w8a8,last=w8a8"    8 bits for the first and last layer
--   "w4a4,layer1.0.conv1=w8"       per-layer override by name (`*` globs)
--   "w4a4,first=w4afp"             the image is not quantized (GDFQ's code)
--   "w4a4,ema=0.9"                 EMA activation bounds (GDFQ's code)
-- A width is 2..16, or "fp"/32 for full precision. In an override a missing
-- part keeps the default's width; in the default it means full precision.
--
-- The quantizer arithmetic (eqs. (1)-(2)) and bounds are in C: see
-- src/quant/fakequant.h. acq.quant also holds the raw functions
-- fake_quantize(x, lo, hi, bits), codes(x, lo, hi, bits), bounds(x, per_channel).
local lpeg = require "lpeg"
local core = require "acq.core"

local Q = {}
for k, v in pairs(core.quant) do Q[k] = v end

local P, R, S, C, Cc, Cp, Ct, Cmt = lpeg.P, lpeg.R, lpeg.S, lpeg.C, lpeg.Cc, lpeg.Cp, lpeg.Ct, lpeg.Cmt

-- Raises a table {pos, msg}; parse_spec turns it into a message with a caret.
local function expect(patt, what)
  return patt + Cmt(Cp(), function(_, pos) error({ pos = pos, msg = "expected " .. what }, 0) end)
end

local digits = R "09" ^ 1
local width = Cp() * (C(digits) / tonumber + (P "fp" + P "FP") * Cc(32))
local function bits_table(wpos, w, apos, a)
  return { w = w, a = a, wpos = wpos, apos = apos }
end
local bits = (P "w" * expect(width, "a bit width after 'w' (2..16 or fp)")
              * (P "a" * expect(width, "a bit width after 'a' (2..16 or fp)")) ^ -1) / bits_table
           + (P "a" * Cc(nil) * Cc(nil) * expect(width, "a bit width after 'a' (2..16 or fp)"))
             / function(_, _, apos, a) return { a = a, apos = apos } end
local name = (R("az", "AZ", "09") + S "_.*[]-") ^ 1
local number = (digits * (P "." * digits) ^ -1) / tonumber
local entry = Ct(P "ema" * P "=" * Cc "ema" * Cp() * expect(number, "a number after 'ema='"))
            + Ct(Cc "layer" * Cp() * C(name) * P "=" * expect(bits, "a width like w8a8 after '='"))
            + Ct(Cc "default" * Cp() * bits)
local spec = Ct(expect(entry, "w<bits>a<bits> or <layer>=w<bits>a<bits>")
             * (P "," * expect(entry, "an entry after ','")) ^ 0) * expect(P(-1), "',' or the end of the spec")

local function glob(pattern)
  return "^" .. pattern:gsub("[%-%.%[%]%(%)%%%+%?%^%$]", "%%%0"):gsub("%*", ".*") .. "$"
end

--- Parses a spec. Returns {w = bits, a = bits, ema = 0, overrides = {{target, w, a}}}
-- (32 = full precision) or raises "quant spec: <msg> at column N" with the
-- spec and a caret under the column.
function Q.parse_spec(s)
  if type(s) ~= "string" then error("quant spec must be a string like 'w4a4'", 2) end
  local ok, res = pcall(lpeg.match, spec, s)
  local function fail(pos, msg)
    error(("quant spec: %s at column %d\n  %s\n  %s^"):format(msg, pos, s, (" "):rep(pos - 1)), 0)
  end
  if not ok then
    if type(res) == "table" then fail(res.pos, res.msg) end
    error(res, 2)
  end
  local out = { w = nil, a = nil, ema = 0, overrides = {} }
  local function check(b)
    for _, part in ipairs { "w", "a" } do
      local v = b[part]
      if v and v ~= 32 and (v < 2 or v > 16) then
        fail(b[part .. "pos"], ("bit width %d out of range (2..16, or fp)"):format(v))
      end
    end
  end
  for _, e in ipairs(res) do
    local kind, pos = e[1], e[2]
    if kind == "default" then
      if out.w or out.a then fail(pos, "a second default width") end
      check(e[3])
      out.w, out.a = e[3].w or 32, e[3].a or 32
    elseif kind == "ema" then
      if e[3] >= 1 then fail(pos, "ema must be below 1") end
      out.ema = e[3]
    else
      check(e[4])
      out.overrides[#out.overrides + 1] = { target = e[3], w = e[4].w, a = e[4].a, pos = pos }
    end
  end
  if not out.w then fail(1, "a default width like w4a4") end
  return out
end

--- The widths each quantizable layer gets: list of {name, module, w, a}.
function Q.plan(model, spec)
  local sp = type(spec) == "table" and spec or Q.parse_spec(spec)
  local layers = model:named_modules("conv2d")
  local plan = {}
  for i, e in ipairs(layers) do
    plan[i] = { name = e[1], module = e[2], w = sp.w, a = sp.a }
  end
  for _, o in ipairs(sp.overrides) do
    local hit = false
    for i, p in ipairs(plan) do
      local match = (o.target == "first" and i == 1) or (o.target == "last" and i == #plan)
                    or p.name:match(glob(o.target))
      if match then
        p.w, p.a = o.w or p.w, o.a or p.a
        hit = true
      end
    end
    if not hit then
      error(("quant spec: '%s' names no conv/linear layer of the model (column %d)"):format(o.target, o.pos), 0)
    end
  end
  return plan, sp
end

--- Q = quantize(F, spec): a copy of F with a fake quantizer on every
-- conv/linear weight (per output channel, current min/max) and input (per
-- layer, calibrated then frozen); BN frozen in eval mode; weights, biases
-- and BN affine parameters trainable. Activation quantizers start in
-- "calibrate" state (Algorithm 1's warm-up); call q:quant_state("frozen").
function Q.quantize(F, spec)
  local q = F:clone()
  local plan, sp = Q.plan(q, spec)
  for _, p in ipairs(plan) do
    p.module:set_quant { weight_bits = p.w, act_bits = p.a, ema = sp.ema }
  end
  q:fix_bn "eval"
  q:requires_grad_(true)
  q:quant_state "calibrate"
  return q, plan
end

--- A short description of a plan: "22 layers: w4a4 x20, w8a8 x2".
function Q.describe(plan)
  local counts, order = {}, {}
  for _, p in ipairs(plan) do
    local k = ("w%sa%s"):format(p.w == 32 and "fp" or p.w, p.a == 32 and "fp" or p.a)
    if not counts[k] then order[#order + 1] = k end
    counts[k] = (counts[k] or 0) + 1
  end
  local parts = {}
  for _, k in ipairs(order) do parts[#parts + 1] = ("%s x%d"):format(k, counts[k]) end
  return ("%d layers: %s"):format(#plan, table.concat(parts, ", "))
end

return Q
