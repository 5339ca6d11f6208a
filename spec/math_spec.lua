-- math_spec.lua -- elementwise math, comparisons, metamethods, type
-- promotion, reductions and matmul against hand computations.
local acq = require "acq"
local H = require "spec.helper"

describe("elementwise", function()
  local a = acq.tensor{1.0, -2.0, 4.0}

  it("metamethods with tensors and numbers on either side", function()
    local b = acq.tensor{2.0, 3.0, -1.0}
    H.close(a + b, {3, 1, 3})
    H.close(a - b, {-1, -5, 5})
    H.close(a * b, {2, -6, -4})
    H.close(a / b, {0.5, -2 / 3, -4}, 1e-6)
    H.close(a ^ 2, {1, 4, 16})
    H.close(2 ^ a, {2, 0.25, 16})
    H.close(-a, {-1, 2, -4})
    H.close(10 - a, {9, 12, 6})
    H.close(1 / a, {1, -0.5, 0.25})
    H.close(a % 3, {1, 1, 1})        -- Python-style remainder: -2 % 3 == 1
    H.close(a // 3, {0, -1, 1})
  end)

  it("promotes types the way PyTorch does with Python scalars", function()
    local i = acq.tensor{1, 2}
    assert.equal("i64", (i + 1):dtype())
    assert.equal("f32", (i + 1.5):dtype())
    assert.equal("f32", (1.5 * i):dtype())
    assert.equal("f32", (acq.tensor{1.0} * 2):dtype())
    assert.equal("f64", (acq.tensor({1.0}, {dtype = "f64"}) + acq.tensor{1.0}):dtype())
    assert.equal("f32", (i / 2):dtype()) -- true division
  end)

  it("unary functions", function()
    local x = acq.tensor({0.5, 1.0, 2.0}, {dtype = "f64"})
    H.close(x:exp(), {math.exp(0.5), math.exp(1), math.exp(2)}, 1e-12)
    H.close(x:log(), {math.log(0.5), 0, math.log(2)}, 1e-12, 1e-15)
    H.close(x:sqrt(), {math.sqrt(0.5), 1, math.sqrt(2)}, 1e-12)
    H.close(x:rsqrt(), {1 / math.sqrt(0.5), 1, 1 / math.sqrt(2)}, 1e-12)
    H.close(x:tanh(), {0.46211715726000974, 0.7615941559557649, 0.9640275800758169}, 1e-12)
    H.close(x:sigmoid(), {1 / (1 + math.exp(-0.5)), 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-2))}, 1e-12)
    H.close(x:square(), {0.25, 1, 4}, 0)
    H.close(acq.tensor{-1.5, 0, 2}:relu(), {0, 0, 2}, 0)
    H.close(acq.tensor{-1.0, 2.0}:leaky_relu(0.1), {-0.1, 2}, 1e-7)
    H.close(acq.tensor{-1.0, 7.0, 3.0}:relu6(), {0, 6, 3}, 0)
    H.close(acq.tensor{-1.0, 0.0, 2.0}:sign(), {-1, 0, 1}, 0)
  end)

  it("rounds half to even", function()
    H.equal(acq.tensor{0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997}:round(), {0, 2, 2, 0, -2, -2, 0})
  end)

  it("in-place forms change the tensor and return it", function()
    local x = acq.tensor{1.0, 2.0}
    local r = x:add_(1):mul_(acq.tensor{2.0, 3.0})
    assert.equal(x, r)
    H.close(x, {4, 9})
    x:sqrt_()
    H.close(x, {2, 3})
  end)

  it("clamp with either bound", function()
    local x = acq.tensor{-2.0, 0.5, 3.0}
    H.close(x:clamp(-1, 1), {-1, 0.5, 1})
    H.close(x:clamp(nil, 1), {-2, 0.5, 1})
    H.close(x:clamp(0), {0, 0.5, 3})
    assert.matches("clamp: give a minimum", H.fails(function() return x:clamp() end))
  end)

  it("comparisons give bool tensors; < and <= compare one-element tensors", function()
    local x = acq.tensor{1, 2, 3}
    assert.same({false, true, false}, x:eq(2):totable())
    assert.same({true, false, true}, x:ne(2):totable())
    assert.same({true, false, false}, x:lt(2):totable())
    assert.same({true, true, false}, x:le(2):totable())
    assert.same({false, false, true}, x:gt(2):totable())
    assert.same({false, true, true}, x:ge(2):totable())
    assert.is_true(acq.tensor(1) < acq.tensor(2))
    assert.is_true(acq.tensor(2) <= 2)
    assert.is_false(acq.tensor(3) < 2)
    assert.matches("compares one%-element tensors", H.fails(function() return x < x end))
    assert.same({true, false}, acq.tensor{true, false}:logical_and(acq.tensor{true, true}):totable())
    assert.same({false, true, false}, acq.tensor{1.0, 0 / 0, 2.0}:isnan():totable())
  end)
end)

describe("reductions", function()
  local t = acq.tensor{{1.0, 2.0, 3.0}, {4.0, 5.0, 7.0}}

  it("sum and mean over all, one or several dimensions", function()
    assert.equal(22, t:sum():item())
    H.close(t:sum(0), {5, 7, 10})
    H.close(t:sum(1), {6, 16})
    H.close(t:sum(-1, true), {{6}, {16}})
    assert.same({2, 1}, t:sum(1, true):shape())
    H.close(t:sum{0, 1}, 22)
    H.close(t:mean(0), {2.5, 3.5, 5})
    H.close(t:mean(), 22 / 6, 1e-6)
  end)

  it("var and std, unbiased by default, biased on request", function()
    -- row 1: 1,2,3 mean 2, squares 1+0+1 = 2; row 2: 4,5,7 mean 16/3
    local m2 = (4 - 16 / 3) ^ 2 + (5 - 16 / 3) ^ 2 + (7 - 16 / 3) ^ 2
    H.close(t:var(1), {2 / 2, m2 / 2}, 1e-6)
    H.close(t:var(1, false), {2 / 3, m2 / 3}, 1e-6)
    H.close(t:std(1, false), {math.sqrt(2 / 3), math.sqrt(m2 / 3)}, 1e-6)
    H.close(t:var(1, true, true), {{1}, {m2 / 2}}, 1e-6)
  end)

  it("min, max, amin, amax, argmax, argmin, logsumexp", function()
    assert.equal(7, t:max():item())
    assert.equal(1, t:min():item())
    local v, i = t:max(1)
    H.close(v, {3, 7})
    assert.same({2, 2}, i:totable())
    local v0, i0 = t:min(0)
    H.close(v0, {1, 2, 3})
    assert.same({0, 0, 0}, i0:totable())
    assert.same({2, 2}, t:argmax(1):totable())
    assert.equal(5, t:argmax():item()) -- over the flattened tensor
    assert.same({0, 0, 0}, t:argmin(0):totable())
    H.close(t:amax(0), {4, 5, 7})
    H.close(t:amin{0, 1}, 1)
    H.close(t:max(acq.tensor{2.0, 2.0, 2.0}), {{2, 2, 3}, {4, 5, 7}})
    H.close(t:logsumexp(1), {math.log(math.exp(1) + math.exp(2) + math.exp(3)),
                             math.log(math.exp(4) + math.exp(5) + math.exp(7))}, 1e-6)
    assert.is_true(t:gt(0):all():item())
    assert.is_false(t:gt(6):all():item())
    assert.is_true(t:gt(6):any():item())
  end)
end)

describe("matmul", function()
  it("multiplies matrices, vectors and batches", function()
    local a = acq.tensor{{1, 2}, {3, 4}}
    assert.same({{7, 10}, {15, 22}}, a:matmul(a):totable())
    assert.same({5, 11}, a:matmul(acq.tensor{1, 2}):totable())
    local b = acq.stack({a, a})
    assert.same({2, 2, 2}, b:matmul(a):shape())
    assert.same({{7, 10}, {15, 22}}, acq.matmul(b, a)[1]:totable())
    local x = acq.tensor{{1.5, -1.0, 2.0}}
    H.close(x:matmul(acq.tensor{{1.0}, {2.0}, {3.0}}), {{1.5 - 2 + 6}})
  end)
end)
