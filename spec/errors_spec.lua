-- errors_spec.lua -- every libtorch error is a Lua error whose message names
-- the operation and the problem; the state keeps working afterwards.
local acq = require "acq"
local H = require "spec.helper"

local function no_backtrace(msg)
  assert.is_nil(msg:find("Exception raised from", 1, true), "C++ backtrace in: " .. msg)
  assert.is_nil(msg:find("frame #", 1, true), "C++ frames in: " .. msg)
end

-- A message from libtorch: acq's part (the operation's name, a colon) and
-- libtorch's own part present, non-empty and on one line. libtorch's wording
-- is its own and changes between versions, so no spec pins it; `needle`
-- names what the user's input makes certain to appear (a size they passed).
local function libtorch_message(msg, op, needle)
  local rest = msg:match("^[^\n]-" .. op:gsub("%p", "%%%0") .. ": (.*)$")
  assert(rest, ("expected '%s: ...' in: %s"):format(op, msg))
  assert(rest:find("%S"), "libtorch's part is empty: " .. msg)
  assert(not rest:find("\n"), "libtorch's part spans lines: " .. msg)
  if needle then assert(rest:find(needle, 1, true), ("'%s' not in: %s"):format(needle, msg)) end
  no_backtrace(msg)
end

describe("errors", function()
  it("matmul of [2,3] by [2,3]", function()
    local a = acq.ones(2, 3)
    local msg = H.fails(function() return a:matmul(a) end)
    libtorch_message(msg, "matmul", "2x3")
    assert.matches("errors_spec.lua:%d+:", msg) -- points at the Lua caller
    no_backtrace(msg)
  end)

  it("conv2d with the wrong channel count", function()
    local msg = H.fails(acq.conv2d, acq.ones(1, 3, 8, 8), acq.ones(4, 2, 3, 3))
    libtorch_message(msg, "conv2d", "[1, 3, 8, 8]")
    no_backtrace(msg)
  end)

  it("a dtype mismatch", function()
    local msg = H.fails(acq.matmul, acq.ones(2, 2), acq.ones({2, 2}, {dtype = "f64"}))
    -- 1.13 says "expected scalar type Float but found Double", 2.6 "expected
    -- m1 and m2 to have the same dtype, but got: float != double"
    libtorch_message(msg, "matmul")
    msg = H.fails(function() return acq.ones(3):index_select(0, acq.tensor{0.5}) end)
    libtorch_message(msg, "index_select")
    no_backtrace(msg)
  end)

  it(":item() on a non-scalar", function()
    local msg = H.fails(function() return acq.ones(2, 2):item() end)
    libtorch_message(msg, "item", "4")
  end)

  it("use of a freed tensor", function()
    local t = acq.ones(2)
    t:free()
    assert.matches("attempt to use a freed tensor", H.fails(function() return t:matmul(t) end))
    assert.matches("attempt to use a freed tensor", H.fails(function() return acq.cat({t}) end))
  end)

  it("broadcasting, shapes and arguments", function()
    libtorch_message(H.fails(function() return acq.ones(2, 3) + acq.ones(3, 2) end), "add", "(3)")
    libtorch_message(H.fails(function() return acq.ones(2, 3):view(5) end), "view", "[5]")
    assert.matches("bad argument #1 to 'matmul' %(acq.Tensor expected, got number%)",
      H.fails(function() return acq.matmul(1, acq.ones(1)) end))
    assert.matches("randint: empty range %[5, 5%)", H.fails(acq.randint, 5, 5, {2}))
    assert.matches("too many dimensions", H.fails(acq.zeros, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}))
    assert.matches("must be an integer", H.fails(acq.zeros, 2.5))
    assert.matches("bad device 'tpu'", H.fails(function() return acq.ones(1):to("tpu") end))
  end)

  it("out of memory is an error, not an abort", function()
    local msg = H.fails(acq.empty, 1 << 40, 1 << 12)
    assert.matches("^.-empty: .*", msg)
    no_backtrace(msg)
  end)

  it("autograd misuse", function()
    assert.matches("backward: the tensor does not require grad",
      H.fails(function() acq.ones(2):sum():backward() end))
    local x = acq.ones({2}, {requires_grad = true})
    assert.matches("backward: a gradient can be implied only for a one%-element tensor",
      H.fails(function() (x * 2):backward() end))
    local y = (x * x):sum()
    y:backward()
    assert.matches("backward through the graph a second time", H.fails(function() y:backward() end))
    assert.matches("not a leaf tensor", H.fails(acq.optim.sgd, {x * 2}, {lr = 0.1}))
    assert.matches("sgd: the options need a learning rate", H.fails(acq.optim.sgd, {x}, {}))
    assert.matches("betas must lie in", H.fails(acq.optim.adam, {x}, {betas = {1.5, 0.9}}))
  end)

  it("the state keeps working after each error", function()
    for _ = 1, 50 do
      pcall(function() return acq.ones(2, 3):matmul(acq.ones(2, 3)) end)
    end
    local a = acq.tensor{{1, 2}, {3, 4}}
    assert.equal(22, a:matmul(a):totable()[2][2])
  end)
end)
