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
