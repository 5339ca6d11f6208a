-- nn_spec.lua -- convolutions, batch norm in its three modes, linear,
-- pooling, upsampling, softmax, embedding and one-hot, by hand.
local acq = require "acq"
local H = require "spec.helper"

local img = acq.arange(16, {dtype = "f32"}):view(1, 1, 4, 4) -- 0..15 row-major

describe("conv2d", function()
  it("sums 3x3 windows, with bias, stride and padding", function()
    local w = acq.ones(1, 1, 3, 3)
    H.close(acq.conv2d(img, w), {{{{45, 54}, {81, 90}}}})
    H.close(acq.conv2d(img, w, acq.tensor{1.0}), {{{{46, 55}, {82, 91}}}})
    H.close(acq.conv2d(img, w, nil, {stride = 2, padding = 1}), {{{{10, 24}, {51, 90}}}})
  end)

  it("is a cross-correlation (the kernel is not flipped)", function()
    local w = acq.zeros(1, 1, 3, 3)
    w[0][0][0][0] = 1 -- top-left tap
    H.close(acq.conv2d(img, w), {{{{0, 1}, {4, 5}}}})
  end)

  it("groups and dilation", function()
    local x = acq.cat({img, img}, 1) -- 2 channels
    local w = acq.tensor({2.0, 3.0}, {shape = {2, 1, 1, 1}})
    local y = acq.conv2d(x, w, nil, {groups = 2})
    H.close(y[0][0], img[0][0] * 2)
    H.close(y[0][1], img[0][0] * 3)
    local d = acq.conv2d(img, acq.ones(1, 1, 2, 2), nil, {dilation = 3})
    H.close(d, {{{{0 + 3 + 12 + 15}}}})
  end)

  it("conv_transpose2d spreads each input over its kernel", function()
    local x = acq.tensor({1.0, 2.0, 3.0, 4.0}, {shape = {1, 1, 2, 2}})
    local y = acq.conv_transpose2d(x, acq.ones(1, 1, 2, 2), nil, {stride = 2})
    H.close(y, {{{{1, 1, 2, 2}, {1, 1, 2, 2}, {3, 3, 4, 4}, {3, 3, 4, 4}}}})
  end)
end)

describe("upsample2x_conv3x3: a x2 nearest upsampling and a 3x3 conv in one", function()
  -- f64, non-square 5x7, 3 -> 4 channels: a swapped axis or a wrong fold of
  -- the kernel rows gives a different value
  acq.manual_seed(11)
  local x0, w0, b0 = acq.randn(2, 3, 5, 7, {dtype = "f64"}), acq.randn(4, 3, 3, 3, {dtype = "f64"}),
    acq.randn(4, {dtype = "f64"})
  local g = acq.randn(2, 4, 10, 14, {dtype = "f64"})
  local function run(f, bias)
    local x, w = x0:clone():requires_grad_(true), w0:clone():requires_grad_(true)
    local b = bias and b0:clone():requires_grad_(true) or nil
    local y = f(x, w, b)
    ;(y * g):sum():backward()
    return y, x:grad(), w:grad(), b and b:grad()
  end
  local function composed(x, w, b)
    return acq.conv2d(acq.upsample_nearest2d(x, {10, 14}), w, b, {padding = 1})
  end

  for _, bias in ipairs {true, false} do
    it(("equals the composition, value and gradients (bias: %s)"):format(bias), function()
      local y, gx, gw, gb = run(acq.upsample2x_conv3x3, bias)
      local ry, rgx, rgw, rgb = run(composed, bias)
      assert.same({2, 4, 10, 14}, y:shape())
      H.close(y, ry, 1e-12, 1e-12, "y")
      H.close(gx, rgx, 1e-12, 1e-12, "dx")
      H.close(gw, rgw, 1e-12, 1e-12, "dw")
      if bias then H.close(gb, rgb, 1e-12, 1e-12, "db") end
    end)
  end

  it("a sequential runs upsample(2) + conv 3x3 through it, and other pairs as before", function()
    acq.manual_seed(12)
    local x = acq.randn(2, 3, 6, 5)
    for _, opts in ipairs {{padding = 1}, {padding = 1, stride = 2}, {padding = 0}} do
      local net = acq.nn.sequential {{"up", acq.nn.upsample(2)}, {"conv", acq.nn.conv2d(3, 4, 3, opts)}}
      local sd = net:state_dict()
      local want = acq.conv2d(acq.upsample_nearest2d(x, {12, 10}), sd["conv.weight"], sd["conv.bias"], opts)
      H.rel(net(x), want, 1e-5, "sequential, stride " .. tostring(opts.stride))
    end
  end)

  it("rejects a kernel that is not 3x3 or does not match the input channels", function()
    local x = acq.randn(1, 3, 4, 4)
    assert.matches("is not %[O,3,3,3%]", H.fails(acq.upsample2x_conv3x3, x, acq.randn(4, 3, 5, 5)))
    assert.matches("is not %[O,3,3,3%]", H.fails(acq.upsample2x_conv3x3, x, acq.randn(4, 2, 3, 3)))
  end)
end)

describe("batch_norm", function()
  -- channel 0: 1, 2, 3 (mean 2, biased var 2/3, unbiased 1)
  -- channel 1: 2, 4, 9 (mean 5, biased var 26/3, unbiased 13)
  local x = acq.tensor{{1.0, 2.0}, {2.0, 4.0}, {3.0, 9.0}}
  local w, b = acq.tensor{2.0, 0.5}, acq.tensor{0.0, 1.0}
  local eps = 1e-5
  local function expect(mean, var)
    local out = {}
    local rows = x:totable()
    for i = 1, 3 do
      out[i] = {}
      for c = 1, 2 do
        local wc, bc = ({2.0, 0.5})[c], ({0.0, 1.0})[c]
        out[i][c] = (rows[i][c] - mean[c]) / math.sqrt(var[c] + eps) * wc + bc
      end
    end
    return out
  end

  it("batch mode: batch statistics, no running statistics touched", function()
    local y = acq.batch_norm(x, w, b, nil, nil, {training = true})
    H.close(y, expect({2, 5}, {2 / 3, 26 / 3}), 1e-5, 1e-6)
  end)

  it("train mode: batch statistics, running statistics updated with momentum", function()
    local rm, rv = acq.zeros(2), acq.ones(2)
    local y = acq.batch_norm(x, w, b, rm, rv, {training = true, momentum = 0.1})
    H.close(y, expect({2, 5}, {2 / 3, 26 / 3}), 1e-5, 1e-6)
    H.close(rm, {0.2, 0.5}, 1e-6)
    H.close(rv, {0.9 + 0.1 * 1, 0.9 + 0.1 * 13}, 1e-6) -- unbiased variance
  end)

  it("eval mode: stored statistics, which stay bit-identical", function()
    local rm, rv = acq.tensor{0.5, -1.0}, acq.tensor{2.0, 4.0}
    local rm0, rv0 = rm:clone(), rv:clone()
    local y = acq.batch_norm(x, w, b, rm, rv)
    H.close(y, expect({0.5, -1.0}, {2.0, 4.0}), 1e-6)
    H.equal(rm, rm0, "running_mean")
    H.equal(rv, rv0, "running_var")
    assert.matches("eval mode needs running_mean", H.fails(acq.batch_norm, x, w, b))
  end)

  it("normalises over N, H, W of a 4-d input", function()
    acq.manual_seed(1)
    local z = acq.randn(4, 3, 5, 5, {dtype = "f64"})
    local y = acq.batch_norm(z, nil, nil, nil, nil, {training = true, eps = 0})
    H.close(y:mean{0, 2, 3}, {0, 0, 0}, 0, 1e-12)
    H.close(y:var({0, 2, 3}, false), {1, 1, 1}, 1e-10)
  end)
end)

describe("other layers", function()
  it("linear is x w^T + b", function()
    local w = acq.tensor{{1.0, 0.0}, {0.0, 1.0}, {1.0, 1.0}}
    H.close(acq.linear(acq.tensor{{1.0, 2.0}}, w, acq.tensor{0.0, 0.0, 1.0}), {{1, 2, 4}})
  end)

  it("pooling", function()
    H.close(acq.max_pool2d(img, 2), {{{{5, 7}, {13, 15}}}})
    H.close(img:avg_pool2d(2), {{{{2.5, 4.5}, {10.5, 12.5}}}})
    H.close(acq.max_pool2d(img, 3, {stride = 1}), {{{{10, 11}, {14, 15}}}})
    H.close(acq.adaptive_avg_pool2d(img, 1), {{{{7.5}}}})
    H.close(acq.adaptive_max_pool2d(img, 1), {{{{15}}}})
    H.close(acq.adaptive_avg_pool2d(img, {1, 2}), {{{{6.5, 8.5}}}})
  end)

  it("nearest upsampling repeats pixels", function()
    local x = acq.tensor({1.0, 2.0, 3.0, 4.0}, {shape = {1, 1, 2, 2}})
    H.close(acq.upsample_nearest2d(x, 4), {{{{1, 1, 2, 2}, {1, 1, 2, 2}, {3, 3, 4, 4}, {3, 3, 4, 4}}}})
  end)

  it("softmax and log_softmax along the given dimension", function()
    local x = acq.tensor({{1, 2, 3}, {1, 1, 1}}, {dtype = "f64"})
    local z = math.exp(1) + math.exp(2) + math.exp(3)
    H.close(x:softmax(1), {{math.exp(1) / z, math.exp(2) / z, math.exp(3) / z}, {1 / 3, 1 / 3, 1 / 3}}, 1e-12)
    H.close(x:log_softmax(1)[0], {1 - math.log(z), 2 - math.log(z), 3 - math.log(z)}, 1e-12)
    H.close(x:softmax(0)[0], {0.5, 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-2))}, 1e-12)
  end)

  it("embedding looks rows up and one_hot encodes", function()
    local w = acq.tensor{{0.0, 1.0}, {2.0, 3.0}, {4.0, 5.0}}
    H.close(acq.embedding(w, acq.tensor{2, 0}), {{4, 5}, {0, 1}})
    assert.same({{1, 0, 0}, {0, 0, 1}}, acq.tensor{0, 2}:one_hot(3):totable())
    assert.matches("one_hot", H.fails(acq.one_hot, acq.tensor{0, 5}, 3))
  end)
end)
