-- tensor_spec.lua -- creation, reading back, printing, dtype/device, views
-- and shape operations, indexing and the userdata lifecycle.
local acq = require "acq"
local H = require "spec.helper"

describe("tensor creation", function()
  it("infers dtype from Lua values like PyTorch", function()
    assert.equal("i64", acq.tensor{1, 2}:dtype())
    assert.equal("f32", acq.tensor{1, 2.5}:dtype())
    assert.equal("bool", acq.tensor{true, false}:dtype())
    assert.equal("f64", acq.tensor({1, 2}, {dtype = "f64"}):dtype())
    assert.equal(3, acq.tensor{1, 2}:sum():item())
    assert.equal(math.type(acq.tensor{1, 2}:sum():item()), "integer")
  end)

  it("reads nested tables in row-major order", function()
    local t = acq.tensor{{1, 2, 3}, {4, 5, 6}}
    assert.same({2, 3}, t:shape())
    assert.same({{1, 2, 3}, {4, 5, 6}}, t:totable())
    assert.equal(6, t:select(0, 1):select(0, 2):item())
    assert.equal(4, t[1][0]:item())
  end)

  it("takes a shape option to reshape flat data", function()
    local t = acq.tensor({1, 2, 3, 4, 5, 6}, {shape = {3, 2}})
    assert.same({{1, 2}, {3, 4}, {5, 6}}, t:totable())
  end)

  it("rejects ragged and mixed tables with a message", function()
    assert.matches("ragged", H.fails(acq.tensor, {{1, 2}, {3}}))
    assert.matches("ragged", H.fails(acq.tensor, {{1, 2}, 3}))
    assert.matches("mixes booleans", H.fails(acq.tensor, {1, true}))
    assert.matches("expected numbers", H.fails(acq.tensor, {1, "x"}))
    assert.matches("unknown dtype 'f31'", H.fails(acq.tensor, {1}, {dtype = "f31"}))
  end)

  it("builds zeros, ones, full, empty and arange", function()
    assert.same({{0, 0, 0}, {0, 0, 0}}, acq.zeros(2, 3):totable())
    assert.same({{1, 1}}, acq.ones({1, 2}):totable())
    assert.equal("f64", acq.ones({2}, {dtype = "f64"}):dtype())
    assert.same({7, 7}, acq.full({2}, 7):totable())
    assert.equal("i64", acq.full({2}, 7):dtype())
    assert.same({3, 4}, acq.empty(3, 4):shape())
    assert.same({0, 1, 2, 3}, acq.arange(4):totable())
    assert.same({2, 5, 8}, acq.arange(2, 10, 3):totable())
    H.close(acq.arange(0, 1, 0.25), {0, 0.25, 0.5, 0.75}, 0, 0)
    assert.equal("f32", acq.arange(0, 1, 0.25):dtype())
  end)

  it("repeats random draws under manual_seed and private generators", function()
    acq.manual_seed(123)
    local a = acq.randn(50)
    acq.manual_seed(123)
    local b = acq.randn(50)
    H.equal(a, b, "randn after the same seed")
    local g1, g2 = acq.generator(5), acq.generator(5)
    H.equal(acq.rand({20}, {generator = g1}), acq.rand({20}, {generator = g2}), "rand with generators")
    g1:seed(9); g2:seed(9)
    H.equal(acq.randint(0, 10, {30}, {generator = g1}), acq.randint(0, 10, {30}, {generator = g2}))
    local r = acq.randint(3, 7, {1000})
    assert.equal(3, r:min():item())
    assert.equal(6, r:max():item())
    local n = acq.randn(20000)
    assert.is_true(math.abs(n:mean():item()) < 0.05)
    assert.is_true(math.abs(n:std():item() - 1) < 0.05)
  end)

  it("requires_grad can be given at creation", function()
    assert.is_true(acq.zeros({2}, {requires_grad = true}):requires_grad())
    assert.is_false(acq.zeros(2):requires_grad())
  end)
end)

describe("reading and printing", function()
  it("item gives integers, floats and booleans", function()
    assert.equal(math.type(acq.tensor(3):item()), "integer")
    assert.equal(2.5, acq.tensor(2.5):item())
    assert.equal(true, acq.tensor(true):item())
  end)

  it("tostring shows shape, dtype, device and values", function()
    local s = tostring(acq.tensor{{1, 2}, {3, 4}})
    assert.matches("^acq.Tensor %[2,2%] i64 cpu\n", s)
    assert.matches("%[%[1, 2%],\n %[3, 4%]%]", s)
    assert.matches("requires_grad", tostring(acq.zeros({1}, {requires_grad = true})))
    assert.matches("%.%.%.", tostring(acq.arange(5000)))
    assert.matches("4999%]$", tostring(acq.arange(5000)))
    assert.matches("nan", tostring(acq.tensor{0.0 / 0.0}))
  end)

  it("reports nbytes, numel, dim and size", function()
    local t = acq.zeros({3, 4}, {dtype = "f64"})
    assert.equal(96, t:nbytes())
    assert.equal(12, t:numel())
    assert.equal(2, t:dim())
    assert.equal(4, t:size(1))
    assert.equal(4, t:size(-1))
    assert.same({3, 4}, t:size())
  end)
end)

describe("dtype and device", function()
  it("converts between dtypes", function()
    local t = acq.tensor{1.7, -1.7, 2.5}
    assert.same({1, -1, 2}, t:long():totable()) -- truncation, as PyTorch
    assert.equal("f64", t:double():dtype())
    assert.equal("u8", t:abs():to("u8"):dtype())
    assert.equal("f16", t:to{dtype = "f16"}:dtype())
    assert.equal("bf16", t:to("bf16"):dtype())
    assert.same({true, true, true}, t:bool():totable())
  end)

  it("stays on cpu and names cuda errors when there is no GPU", function()
    assert.equal("cpu", acq.zeros(1):cpu():device())
    if acq.cuda_device_count() == 0 then
      local msg = H.fails(function() return acq.zeros(1):cuda() end)
      assert.matches("^.-to: ", msg)
    else
      assert.matches("^cuda", acq.zeros(1):cuda():device())
    end
  end)
end)

describe("views and shape operations", function()
  local t
  before_each(function() t = acq.arange(6):view(2, 3) end)

  it("view, reshape, flatten share or copy as PyTorch does", function()
    assert.same({{0, 1}, {2, 3}, {4, 5}}, t:view(3, 2):totable())
    assert.same({0, 1, 2, 3, 4, 5}, t:reshape(-1):totable())
    assert.same({0, 1, 2, 3, 4, 5}, t:flatten():totable())
    local v = t:view(6)
    v[0] = 42 -- a view writes through
    assert.equal(42, t[0][0]:item())
  end)

  it("permute and transpose move axes", function()
    assert.same({{0, 3}, {1, 4}, {2, 5}}, t:transpose(0, 1):totable())
    assert.same({{0, 3}, {1, 4}, {2, 5}}, t:permute(1, 0):totable())
    local c = acq.arange(24):view(2, 3, 4):permute{2, 0, 1}
    assert.same({4, 2, 3}, c:shape())
    assert.equal(1 * 12 + 2 * 4 + 3, c[3][1][2]:item())
  end)

  it("flip reverses the listed axes only", function()
    assert.same({{2, 1, 0}, {5, 4, 3}}, t:flip{1}:totable())
    assert.same({{3, 4, 5}, {0, 1, 2}}, t:flip{0}:totable())
    assert.same({{5, 4, 3}, {2, 1, 0}}, t:flip(0, 1):totable())
    assert.matches("flip", H.fails(t.flip, t, {2}))
  end)

  it("cat and stack join along a dimension", function()
    assert.same({{0, 1, 2}, {3, 4, 5}, {0, 1, 2}, {3, 4, 5}}, acq.cat({t, t}):totable())
    assert.same({{0, 1, 2, 0, 1, 2}, {3, 4, 5, 3, 4, 5}}, acq.cat({t, t}, 1):totable())
    assert.same({2, 2, 3}, acq.stack({t, t}):shape())
    assert.same({2, 3, 2}, acq.stack({t, t}, 2):shape())
    assert.matches("not a tensor", H.fails(acq.cat, {t, 1}))
  end)

  it("narrow, slice and select pick parts", function()
    assert.same({{1, 2}, {4, 5}}, t:narrow(1, 1, 2):totable())
    assert.same({{0, 2}, {3, 5}}, t:slice(1, 0, 3, 2):totable())
    assert.same({3, 4, 5}, t:select(0, 1):totable())
    assert.same({3, 4, 5}, t[-1]:totable())
  end)

  it("index_select, gather and scatter follow their index tensors", function()
    local idx = acq.tensor{2, 0}
    assert.same({{2, 0}, {5, 3}}, t:index_select(1, idx):totable())
    local g = acq.tensor{{2, 2}, {0, 1}}
    assert.same({{2, 2}, {3, 4}}, t:gather(1, g):totable())
    local z = acq.zeros({2, 3}, {dtype = "i64"})
    assert.same({{0, 0, 9}, {9, 0, 0}}, z:scatter(1, acq.tensor{{2}, {0}}, 9):totable())
    assert.same({{0, 0, 0}, {3, 0, 0}},
      z:scatter(1, acq.tensor{{0}, {0}}, acq.tensor{{0}, {3}}):totable())
  end)

  it("expand, squeeze, unsqueeze, repeat_", function()
    local c = acq.tensor{1, 2}:unsqueeze(1)
    assert.same({2, 1}, c:shape())
    assert.same({{1, 1, 1}, {2, 2, 2}}, c:expand(2, 3):totable())
    assert.same({2}, c:squeeze():shape())
    assert.same({2}, c:squeeze(1):shape())
    assert.same({{1, 1}, {2, 2}}, c:repeat_(1, 2):totable())
  end)

  it("masked_fill and where select by a mask", function()
    local m = t:gt(2)
    assert.same({{0, 1, 2}, {-1, -1, -1}}, t:masked_fill(m, -1):totable())
    assert.same({{0, 1, 2}, {0, 0, 0}}, acq.where(m, acq.zeros(2, 3):long(), t):totable())
  end)

  it("indexing assigns numbers and tensors", function()
    t[0] = 7
    t[1] = acq.tensor{8, 9, 10}
    assert.same({{7, 7, 7}, {8, 9, 10}}, t:totable())
    assert.matches("integer indices", H.fails(function() t.foo = 1 end))
    assert.matches("out of range", H.fails(function() return t[5] end))
  end)
end)

describe("lifecycle", function()
  it("free releases early and use after free raises", function()
    local t = acq.zeros(3)
    local before = acq.memory().tensors
    t:free()
    assert.equal(before - 1, acq.memory().tensors)
    t:free() -- idempotent
    assert.matches("attempt to use a freed tensor", H.fails(function() return t + 1 end))
    assert.matches("attempt to use a freed tensor", H.fails(function() return t:sum() end))
    assert.equal("acq.Tensor (freed)", tostring(t))
  end)

  it("<close> releases at the end of the scope", function()
    local before = acq.memory()
    do
      local t <close> = acq.zeros(1000)
      assert.equal(before.bytes + 4000, acq.memory().bytes)
    end
    assert.equal(before.bytes, acq.memory().bytes)
  end)

  it("Lua code can add methods to tensors", function()
    function acq.Tensor.twice(self) return self * 2 end
    assert.same({2, 4}, acq.tensor{1, 2}:twice():totable())
    acq.Tensor.twice = nil
  end)
end)
