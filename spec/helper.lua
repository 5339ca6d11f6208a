--- spec/helper.lua -- shared by the specs: tolerance checks that print the
-- first mismatches, finite differences, and process helpers.
local acq = require "acq"

local H = {}

local function flatten(x, out)
  out = out or {}
  if type(x) == "number" or type(x) == "boolean" then
    out[#out + 1] = x
  elseif acq.is_tensor(x) then
    local t = x:totable()
    if type(t) ~= "table" then out[#out + 1] = t else flatten(t, out) end
  else
    for _, v in ipairs(x) do flatten(v, out) end
  end
  return out
end
H.flatten = flatten

--- Asserts |a - e| <= atol + rtol * |e| elementwise; shapes must match when
-- both are tensors. Prints up to 5 mismatches.
function H.close(actual, expected, rtol, atol, what)
  rtol, atol = rtol or 1e-6, atol or 0
  what = what or "value"
  if acq.is_tensor(actual) and acq.is_tensor(expected) then
    local sa, se = actual:shape_string(), expected:shape_string()
    assert(sa == se, ("%s: shape %s, expected %s"):format(what, sa, se))
  end
  local a, e = flatten(actual), flatten(expected)
  assert(#a == #e, ("%s: %d elements, expected %d"):format(what, #a, #e))
  local bad, worst, msgs = 0, 0, {}
  for i = 1, #a do
    local ai, ei = a[i], e[i]
    if type(ai) == "boolean" then ai = ai and 1 or 0 end
    if type(ei) == "boolean" then ei = ei and 1 or 0 end
    local err = math.abs(ai - ei)
    local ok = err <= atol + rtol * math.abs(ei) or (ai ~= ai and ei ~= ei)
    if not ok then
      bad = bad + 1
      if #msgs < 5 then msgs[#msgs + 1] = ("  [%d] got %.10g, expected %.10g"):format(i, ai, ei) end
    end
    if err > worst then worst = err end
  end
  if bad > 0 then
    error(("%s: %d of %d elements differ (rtol %g, atol %g, worst abs error %g):\n%s")
      :format(what, bad, #a, rtol, atol, worst, table.concat(msgs, "\n")), 2)
  end
  return true
end

--- The tolerance rule of every golden comparison (a float32 result of acq
-- against the float64 reference):
--
--   |a - e| <= rtol * (|e| + S)   elementwise, S = max(max |e|, operands)
--
-- A float32 computation carries the rounding of its *operands*, a few ulps
-- of their magnitude (rtol = 1e-5 covers float32's 6e-8 through the sums
-- of these small models), not of its result. The error of an entry near
-- zero is judged at the tensor's magnitude (max |e|), and a quantity that
-- is a difference or a hinge of larger operands at theirs: Pen_CACM =
-- max(mae - 0.1, 0) has operands near 0.1 and a result near 2e-3, so its
-- float32 rounding is ~50 times its own ulp. `operands` is that magnitude,
-- given by the spec where a result is such a difference. With it the specs
-- hold for golden files made with any seed, not only the one they were
-- written against.
function H.rel(actual, expected, rtol, what, operands)
  local m = operands or 0
  for _, v in ipairs(flatten(expected)) do
    if math.abs(v) > m then m = math.abs(v) end
  end
  return H.close(actual, expected, rtol, rtol * m, what)
end

--- Monte Carlo arithmetic (Parker, 1997): t with every element perturbed
-- by a uniform relative error of up to `ulps` float32 units in the last place
-- (2^-24 each). A float32 implementation's rounding inside a computation acts
-- like such perturbations of its operands; where a quantity jumps under them
-- (a ReLU, a max or an argmax within roundoff of its kink), any correct float32
-- implementation may land on either side. Integer tensors are returned as is.
H.MCA_ULPS = 16
function H.perturb(t, ulps)
  local dt = t:dtype()
  if dt ~= "f32" and dt ~= "f64" then return t end
  local u = (acq.rand(t:shape()) * 2 - 1):to { dtype = dt }
  return t + t * u * ((ulps or H.MCA_ULPS) * 2 ^ -24)
end

--- The Monte Carlo spread of a computation: run(false) is the plain result
-- (a list of tensors), run(true) the same computation on perturbed operands
-- (the caller applies H.perturb). Returns the plain results and, for each,
-- the largest elementwise |perturbed - plain| over `trials` runs, per row
-- of dimension 0 (a row is one sample: a kink moves a whole sample). The
-- stream is seeded, so the spread is the same on every run of a machine.
function H.spread(run, trials)
  local base = run(false)
  local spread = {}
  for i, b in ipairs(base) do spread[i] = acq.zeros({ b:size(0) }, { dtype = "f64" }) end
  acq.manual_seed(20261207)
  for _ = 1, trials or 6 do
    for i, r in ipairs(run(true)) do
      spread[i] = acq.maximum(spread[i], (r:double() - base[i]:double()):abs():flatten(1):amax(1))
    end
  end
  return base, spread
end

--- A float result against the reference where float32 is ill-defined at some
-- rows: |a - e| <= rtol * max|e| + 2 * spread[row] elementwise, spread from
-- H.spread. A row whose spread exceeds `kink` (default 100 * rtol * max|e|)
-- sits at a kink; at most half the rows may, or the comparison would be
-- vacuous. Returns the number of kink rows.
function H.rows_within_spread(actual, expected, spread, rtol, what)
  local m = 0
  for _, v in ipairs(flatten(expected)) do m = math.max(m, math.abs(v)) end
  local n = actual:size(0)
  local kinks = 0
  local sp = spread:totable()
  for r = 0, n - 1 do
    if sp[r + 1] > 100 * rtol * m then kinks = kinks + 1 end
    H.close(actual[r], expected[r], 0, rtol * m + 2 * sp[r + 1],
      ("%s, row %d (Monte Carlo spread %.3g)"):format(what, r, sp[r + 1]))
  end
  assert(kinks <= n // 2, ("%s: %d of %d rows at a kink: the comparison says nothing"):format(what, kinks, n))
  return kinks
end

--- The rule of every golden comparison of a quantized network.
--
-- A b-bit rounding turns a 1-ulp difference of its input into a whole
-- quantization step, so a quantity downstream of a rounding is compared only
-- where the rounding's inputs are well defined:
--
-- 1. Bounds that acq calibrates are float32 results (the min and max of an
--    activation) and are compared as such (H.rel, rtol 1e-5 at the bounds'
--    magnitude), never exactly: two correct kernels differ there by an ulp.
-- 2. The roundings are tested alone and bit-exactly on the reference's own
--    inputs and bounds (codes, fake-quantized weights and activations).
-- 3. Q's forward runs with the reference's bounds injected (H.inject_bounds),
--    so no calibration roundoff enters. Its logits are compared row by row
--    at rtol 1e-5 (H.quantized_logits). A row that differs must be explained
--    by one-level changes of fc's input codes at ties -- elements whose
--    value x/s - b lies within float32 roundoff of a rounding boundary -- and
--    the ties are counted; any other difference fails, so a wrong sign, axis
--    or an off-by-one level at an element that is not a tie does.
-- 4. Quantities over the whole batch (the losses, the weight gradients) are
--    computed from well-defined inputs: the losses on the reference's logits,
--    Q's weight gradients by back-propagating the reference's dL/dlogits
--    through acq's Q (the straight-through quantizers make the backward
--    independent of fc's input codes), with each tie's known effect on fc's
--    weight gradient added back.
--
-- A float result that is not quantized but crosses kinks (ReLU, max) in
-- float32 is judged by its Monte Carlo spread (H.spread).
--
-- H.inject_bounds(Q, lo, hi): sets the activation bounds of Q's quantizers
-- (in Q:act_bounds() order) to the tensors lo[i], hi[i] and freezes them.
function H.inject_bounds(Q, lo, hi)
  local by = {}
  for _, e in ipairs(Q:named_modules("conv2d")) do by[e[1]] = e[2] end
  for i, b in ipairs(Q:act_bounds()) do by[b.name]:set_act_bounds(lo[i - 1], hi[i - 1]) end
  Q:quant_state "frozen"
  return Q
end

--- Q's logits on x against the reference's, row by row, under rule 3 above.
-- Q is a ResNet whose tapped features are average-pooled into fc (its last
-- quantizer). Returns the logits and the list of ties {row, col, delta,
-- scale} (delta: the reference's code minus acq's at fc's input element col
-- of that row). Raises with the first rows that no tie explains. tie_eps
-- replaces the tie margin (in code units), for the rule's own spec.
function H.quantized_logits(Q, x, expected, what, rtol, tie_eps)
  rtol = rtol or 1e-5
  what = what or "logits"
  local q, aux = Q:forward(x, { features = true })
  local bnds = Q:act_bounds()
  local fb = bnds[#bnds]
  assert(fb.name == "fc", "H.quantized_logits: the last quantizer is " .. fb.name .. ", not fc")
  local levels = 2 ^ fb.bits - 1
  local s = acq.clamp(fb.hi - fb.lo, 1e-8, math.huge) / levels -- float32, as acq and the reference
  local b = fb.lo / s + 2 ^ (fb.bits - 1)
  local t = aux.features:mean({ 2, 3 }) / s - b                -- [N, C] in code units
  local codes = acq.clamp(acq.round(t), -2 ^ (fb.bits - 1), 2 ^ (fb.bits - 1) - 1)
  local wc, ws, wb = Q.fc:weight_codes()
  local W = ((wc:double() + wb:double()) * ws:double()):totable() -- fc's fake-quantized weight [K, C]
  local sv, bv = s:item(), b:item()
  local tt, ct = t:double():totable(), codes:double():totable()
  local qv, ev = q:double():totable(), expected:double():totable()
  local m = 0
  for _, row in ipairs(ev) do for _, v in ipairs(row) do m = math.max(m, math.abs(v)) end end
  local tol = rtol * m
  local ties, bad = {}, {}
  local function fits(r, cand)
    for k = 1, #ev[r] do
      local d = ev[r][k] - qv[r][k]
      for _, c in ipairs(cand) do d = d - c.delta * sv * W[k][c.col] end
      if math.abs(d) > tol then return false end
    end
    return true
  end
  for r = 1, #ev do
    if not fits(r, {}) then
      -- float32 error of t: the mean of the pooled features carries a few
      -- ulps of its operands (the features' magnitude, in code units, and b)
      local fmax = 0
      for _, v in ipairs(tt[r]) do fmax = math.max(fmax, math.abs(v)) end
      local eps = tie_eps or 64 * 2 ^ -24 * (fmax + math.abs(bv) + 1)
      local cand = {}
      for c = 1, #tt[r] do
        local frac = tt[r][c] - math.floor(tt[r][c])
        local delta = tt[r][c] >= ct[r][c] and 1 or -1
        local other = ct[r][c] + delta
        if math.abs(frac - 0.5) <= eps and other >= -2 ^ (fb.bits - 1) and other <= 2 ^ (fb.bits - 1) - 1 then
          cand[#cand + 1] = { row = r - 1, col = c, delta = delta, scale = sv }
        end
      end
      local found
      for i = 1, #cand do
        if fits(r, { cand[i] }) then found = { cand[i] } break end
        for j = i + 1, #cand do
          if fits(r, { cand[i], cand[j] }) then found = { cand[i], cand[j] } break end
        end
        if found then break end
      end
      if found then
        for _, c in ipairs(found) do ties[#ties + 1] = c end
      else
        bad[#bad + 1] = ("  row %d: got %s, expected %s (%d ties at fc's input, none explains it)")
          :format(r - 1, table.concat(qv[r], " ", 1, math.min(4, #qv[r])),
            table.concat(ev[r], " ", 1, math.min(4, #ev[r])), #cand)
      end
    end
  end
  if #bad > 0 then
    error(("%s: %d of %d rows differ beyond rtol %g and are not explained by ties:\n%s")
      :format(what, #bad, #ev, rtol, table.concat(bad, "\n", 1, math.min(5, #bad))), 2)
  end
  return q, ties
end

--- fc's weight gradient of the reference, from acq's: each tie (a one-level
-- change of fc's input code col in row r) adds dL/dlogits[r] * delta * s to
-- column col. g: dL/dlogits [N, K]; grad: acq's [K, C]. Returns a new tensor.
function H.tie_corrected_fc_grad(grad, g, ties)
  local out = grad:double():clone()
  local gv = g:double():totable()
  for _, t in ipairs(ties) do
    for k = 1, #gv[t.row + 1] do
      local e = out[k - 1][t.col - 1]
      e:fill_(e:item() + gv[t.row + 1][k] * t.delta * t.scale)
    end
  end
  return out
end

-- The reference values (spec/fixtures/golden.md says how they were made and
-- the choices where the paper is ambiguous); ACQ_GOLDEN names another file
-- of the same layout.
H.GOLDEN = os.getenv("ACQ_GOLDEN") or "spec/fixtures/golden.safetensors"
local golden_cache
--- The reference tensors of spec/fixtures/golden.safetensors (loaded once).
function H.golden()
  if not golden_cache then golden_cache = acq.safetensors.load(H.GOLDEN) end
  return golden_cache
end

--- The reference ResNet-20 F (fp.* weights), in float32.
function H.golden_fp()
  local F = acq.models.resnet20 { classes = 10, in_channels = 3 }
  F:load_state_dict(acq.safetensors.load(H.GOLDEN, { prefix = "fp." }))
  return F
end

--- [x1; x2], the 8 reference inputs.
function H.golden_x()
  local G = H.golden()
  return acq.cat({ G["in.x1"], G["in.x2"] }, 0)
end

--- Exact equality of values (integers, booleans, or floats compared exactly).
function H.equal(actual, expected, what)
  return H.close(actual, expected, 0, 0, what)
end

--- Central finite differences of the scalar function f() with respect to
-- every element of the float64 tensor x (changed in place, then restored).
function H.numgrad(f, x, h)
  h = h or 1e-6
  local flat = x:view(-1)
  local n = flat:numel()
  local g = {}
  acq.no_grad(function()
    for i = 0, n - 1 do
      local e = flat[i]
      local v = e:item()
      e:fill_(v + h)
      local fp = f():item()
      e:fill_(v - h)
      local fm = f():item()
      e:fill_(v)
      g[i + 1] = (fp - fm) / (2 * h)
    end
  end)
  return acq.tensor(g, { dtype = "f64" }):view(x:shape())
end

--- Autograd gradient of the scalar f() with respect to the float64 tensor x
-- against central finite differences (H.numgrad), within rtol / atol.
-- Returns the autograd gradient.
function H.gradcheck(f, x, what, rtol, atol)
  x:requires_grad_(true)
  x:zero_grad(true)
  f():backward()
  local g = x:grad():clone()
  x:zero_grad(true)
  H.close(g, H.numgrad(f, x), rtol or 1e-6, atol or 1e-9, what)
  return g
end

--- A fresh empty folder under the system's temporary directory.
function H.tmpdir()
  local d = os.tmpname()
  os.remove(d)
  acq.mkdir(d)
  return d
end

--- The rows of a metrics.jsonl file; strip = true drops the wall-clock
-- fields (sec_per_iter, elapsed), which differ between identical runs.
function H.rows_of(path, strip)
  local rows = {}
  for line in io.lines(path) do
    local r = acq.json.decode(line)
    if strip then r.sec_per_iter, r.elapsed = nil, nil end
    rows[#rows + 1] = r
  end
  return rows
end

--- Runs a shell command; returns its output and exit status.
function H.run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"__rc=$?\""))
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)%s*$"))
  return out:gsub("__rc=%d+%s*$", ""), rc
end

--- Resident memory of this process in MiB (Linux).
function H.rss_mib()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) / 1024
end

--- Writes bytes to path / reads a whole file.
function H.write_file(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

function H.read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

--- The first line of a recipe's source that assigns into a library table
-- (acq.x = ..., recipe.x = ..., G.position = ..., setmetatable, rawset),
-- or nil. Fields of the sample table b are the recipe's own.
function H.library_assignment(src)
  for line in src:gmatch("[^\n]+") do
    local code = line:gsub("%-%-.*", "")
    if code:match("^%s*acq[%w_.%[%]\"]*%s*=[^=]") or code:match("^%s*recipe[%w_.]*%s*=[^=]")
      or (code:match("^%s*[%w_]+%.[%w_.]+%s*=[^=]") and not code:match("^%s*b%."))
      or code:match("setmetatable") or code:match("rawset") then
      return line
    end
  end
end

--- Lines of Lua code in src: neither blank nor only a comment.
function H.code_lines(src)
  local n = 0
  for line in (src .. "\n"):gmatch("([^\n]*)\n") do
    if not line:match("^%s*$") and not line:match("^%s*%-%-") then n = n + 1 end
  end
  return n
end

--- Softmax of a plain Lua list at temperature T (default 1), in plain Lua
-- arithmetic (the specs' independent reference).
function H.softmax(v, T)
  T = T or 1
  local m, s, r = -math.huge, 0, {}
  for _, x in ipairs(v) do m = math.max(m, x / T) end
  for i, x in ipairs(v) do r[i] = math.exp(x / T - m); s = s + r[i] end
  for i = 1, #r do r[i] = r[i] / s end
  return r
end

--- A pcall that must fail; returns the message.
function H.fails(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error, the call succeeded")
  return tostring(err)
end

return H
