-- methods_spec.lua -- the C pieces of the method recipes (recipes/qimera,
-- dsg, lrq): decoupled knowledge distillation, ArcFace's additive angular
-- margin and VAN's large-kernel attention. Values against plain-Lua
-- arithmetic written here from the papers' definitions (a different
-- formula where one exists: acos for the margin, the KD decomposition of
-- DKD's eq. (4) for DKD, loops for the convolutions); gradients against
-- finite differences.
local acq = require "acq"
local H = require "spec.helper"

local softmax = H.softmax

local function kl(p, q)
  local s = 0
  for i = 1, #p do if p[i] > 0 then s = s + p[i] * math.log(p[i] / q[i]) end end
  return s
end

-- DKD of one sample, from its definition: binary KL and the KL of the
-- renormalised non-target distributions
local function dkd_one(q, f, t, T)
  local ps, pt = softmax(q, T), softmax(f, T)
  local tck = kl({ pt[t], 1 - pt[t] }, { ps[t], 1 - ps[t] })
  local nq, nf = {}, {}
  for k = 1, #q do
    if k ~= t then nq[#nq + 1] = ps[k] / (1 - ps[t]); nf[#nf + 1] = pt[k] / (1 - pt[t]) end
  end
  return tck * T * T, kl(nf, nq) * T * T, kl(pt, ps) * T * T, pt[t]
end

local Q = { { 1.0, -2.0, 0.5, 0.3 }, { 0.1, 0.2, 3.0, -1.0 }, { -0.5, 0.7, 0.0, 2.2 } }
local Fl = { { 2.0, -1.0, 0.0, 0.4 }, { 0.5, -0.3, 1.5, 0.2 }, { 0.0, 1.5, -0.7, 1.0 } }
local Y = { 0, 2, 1 }

describe("decoupled knowledge distillation", function()
  for _, T in ipairs { 1, 4 } do
    it(("is alpha TCKD + beta NCKD, each KL x T^2 averaged over samples (T = %d)"):format(T), function()
      local tck, nck = 0, 0
      for i = 1, 3 do
        local a, b, kd, ptt = dkd_one(Q[i], Fl[i], Y[i] + 1, T)
        -- DKD's eq. (4): KD = TCKD + (1 - p_t^teacher) NCKD, sample by sample
        assert.is_true(math.abs(kd - (a + (1 - ptt) * b)) < 1e-9)
        tck, nck = tck + a / 3, nck + b / 3
      end
      local q, f = acq.tensor(Q, { dtype = "f64" }), acq.tensor(Fl, { dtype = "f64" })
      local y = acq.tensor(Y, { dtype = "i64" })
      local l, a, b = acq.loss.dkd(q, f, y, { alpha = 1.5, beta = 8, T = T })
      H.close(a, tck, 1e-9)
      H.close(b, nck, 1e-9)
      H.close(l, 1.5 * tck + 8 * nck, 1e-9)
      assert.is_false(a:requires_grad())
      H.gradcheck(function() return (acq.loss.dkd(q, f, y, { alpha = 1.5, beta = 8, T = T })) end, q,
        "d DKD / d student logits", 1e-5, 1e-9)
    end)
  end

  it("is zero when the student is the teacher, and the teacher gets no gradient", function()
    local f = acq.tensor(Fl, { dtype = "f64", requires_grad = true })
    local y = acq.tensor(Y, { dtype = "i64" })
    H.close(acq.loss.dkd(f:detach(), f, y), 0, 0, 1e-12)
    local q = acq.tensor(Q, { dtype = "f64", requires_grad = true })
    acq.loss.dkd(q, f, y):backward()
    assert.is_nil(f:grad())
  end)

  it("rejects labels out of range and non-finite logits", function()
    local q = acq.randn(2, 3)
    assert.matches("L_DKD: label 3 is outside %[0, 3%)",
      H.fails(acq.loss.dkd, q, acq.randn(2, 3), acq.tensor({ 0, 3 }, { dtype = "i64" })))
    assert.matches("NaN", H.fails(acq.loss.dkd, acq.full({ 2, 3 }, 0 / 0), q, acq.tensor({ 0, 1 }, { dtype = "i64" })))
    assert.matches("temperature", H.fails(acq.loss.dkd, q, q, acq.tensor({ 0, 1 }, { dtype = "i64" }), { T = 0 }))
  end)
end)

describe("additive angular margin", function()
  local X = { { 1.0, 0.5, -0.2 }, { -0.3, 0.8, 0.4 }, { -1.0, -0.1, 0.05 } }
  local C = { { 1.0, 0.0, 0.0 }, { 0.0, 2.0, 0.0 }, { 0.3, 0.3, 3.0 }, { 1.0, 0.1, 0.0 } }
  -- sample 3 points away from centre 3 (index 3, label 3): theta > pi - m
  local YA = { 0, 1, 3 }

  local function hand(s, m)
    local r = {}
    for i = 1, #X do
      r[i] = {}
      local nx = math.sqrt(X[i][1] ^ 2 + X[i][2] ^ 2 + X[i][3] ^ 2)
      for k = 1, #C do
        local nc = math.sqrt(C[k][1] ^ 2 + C[k][2] ^ 2 + C[k][3] ^ 2)
        local c = (X[i][1] * C[k][1] + X[i][2] * C[k][2] + X[i][3] * C[k][3]) / (nx * nc)
        if k == YA[i] + 1 then
          local th = math.acos(c)
          c = th + m <= math.pi and math.cos(th + m) or c - math.sin(m) * m
        end
        r[i][k] = s * c
      end
    end
    return r
  end

  it("is s cos(theta), the target's angle enlarged by m (ArcFace's linear tail past pi - m)", function()
    local x, c = acq.tensor(X, { dtype = "f64" }), acq.tensor(C, { dtype = "f64" })
    local y = acq.tensor(YA, { dtype = "i64" })
    local logits, ct = acq.loss.angular_margin(x, c, y, { scale = 10, margin = 0.5 })
    H.close(logits, acq.tensor(hand(10, 0.5), { dtype = "f64" }), 1e-6, 1e-9)
    -- the third sample is past pi - m: it takes the linear branch
    assert.is_true(math.acos(ct[2]:item()) > math.pi - 0.5)
    -- margin 0: plain scaled cosines
    H.close(acq.loss.angular_margin(x, c, y, { scale = 3, margin = 0 }), acq.tensor(hand(3, 0), { dtype = "f64" }), 1e-6, 1e-9)
    -- the margin lowers the target's logit and no other
    local l0 = acq.loss.angular_margin(x, c, y, { scale = 10, margin = 0 })
    local d = (l0 - logits):totable()
    for i = 1, 3 do
      for k = 1, 4 do
        if k == YA[i] + 1 then assert.is_true(d[i][k] > 0) else assert.is_true(math.abs(d[i][k]) < 1e-12) end
      end
    end
  end)

  it("has finite-difference gradients in the features; the centres get none", function()
    local x = acq.tensor(X, { dtype = "f64" })
    local c = acq.tensor(C, { dtype = "f64", requires_grad = true })
    local y = acq.tensor(YA, { dtype = "i64" })
    local w = acq.tensor({ { 1, 2, -1, 0.5 }, { 0.3, -0.2, 1, 2 }, { -1, 1, 0.7, 0.1 } }, { dtype = "f64" })
    H.gradcheck(function()
      return ((acq.loss.angular_margin(x, c, y, { scale = 4, margin = 0.5 })) * w):sum()
    end, x, "d margin logits / d features", 1e-5, 1e-8)
    assert.is_nil(c:grad())
  end)

  it("rejects mismatched dimensions and a margin outside [0, pi/2)", function()
    local y = acq.tensor({ 0, 1 }, { dtype = "i64" })
    assert.matches("features have 3 dimensions, class centres 4",
      H.fails(acq.loss.angular_margin, acq.randn(2, 3), acq.randn(5, 4), y))
    assert.matches("margin", H.fails(acq.loss.angular_margin, acq.randn(2, 3), acq.randn(5, 3), y, { margin = 2 }))
    assert.matches("label 7 is outside", H.fails(acq.loss.angular_margin, acq.randn(2, 3), acq.randn(5, 3),
      acq.tensor({ 0, 7 }, { dtype = "i64" })))
  end)
end)

describe("large-kernel attention (VAN)", function()
  -- depthwise (groups = C) or 1x1 convolution by loops, zero padding
  local function conv(x, w, b, k, pad, dil, depthwise)
    local C, H_, W_ = #x, #x[1], #x[1][1]
    local out = {}
    for o = 1, C do
      out[o] = {}
      for i = 1, H_ do
        out[o][i] = {}
        for j = 1, W_ do
          local s = b[o]
          if depthwise then
            for u = 1, k do
              for v = 1, k do
                local ii, jj = i - pad + (u - 1) * dil, j - pad + (v - 1) * dil
                if ii >= 1 and ii <= H_ and jj >= 1 and jj <= W_ then s = s + w[o][1][u][v] * x[o][ii][jj] end
              end
            end
          else
            for c = 1, C do s = s + w[o][c][1][1] * x[c][i][j] end
          end
          out[o][i][j] = s
        end
      end
    end
    return out
  end

  it("is x * conv1(conv_spatial(conv0(x))): 5x5, then 7x7 dilated by 3, then 1x1 (k = 21, d = 3)", function()
    acq.manual_seed(3)
    local m = acq.nn.lka(3)
    m:to { dtype = "f64" }
    local x = acq.randn(1, 3, 10, 9, { dtype = "f64" })
    local sd = m:state_dict()
    local t = function(k) return sd[k]:totable() end
    local a = conv(x[0]:totable(), t "conv0.weight", t "conv0.bias", 5, 2, 1, true)
    a = conv(a, t "conv_spatial.weight", t "conv_spatial.bias", 7, 9, 3, true)
    a = conv(a, t "conv1.weight", t "conv1.bias", 1, 0, 1, false)
    local xv = x[0]:totable()
    for c = 1, 3 do for i = 1, 10 do for j = 1, 9 do a[c][i][j] = a[c][i][j] * xv[c][i][j] end end end
    H.close(m(x)[0], acq.tensor(a, { dtype = "f64" }), 1e-9, 1e-12)
    assert.same({ 7, 7 }, m.conv_spatial:config().kernel)
    assert.same({ 3, 3 }, m.conv_spatial:config().dilation)
    assert.equal(3, m.conv0:config().groups)
  end)

  it("has finite-difference gradients in its input and weights", function()
    acq.manual_seed(4)
    local m = acq.nn.lka(2, { kernel = 9, dilation = 2 })
    m:to { dtype = "f64" }
    local x = acq.randn(2, 2, 6, 5, { dtype = "f64" })
    local w = acq.randn(2, 2, 6, 5, { dtype = "f64" })
    H.gradcheck(function() return (m(x) * w):sum() end, x, "d LKA / d x", 1e-5, 1e-8)
    local ws = m:state_dict()["conv_spatial.weight"]
    local f = function() return (m(x) * w):sum() end
    ws:requires_grad_(true)
    ws:zero_grad(true)
    f():backward()
    local auto = ws:grad():clone()
    H.close(auto, H.numgrad(f, ws), 1e-5, 1e-8, "d LKA / d conv_spatial.weight")
  end)

  it("refuses a kernel whose dilated part has no centre", function()
    assert.matches("even 6 x 6", H.fails(acq.nn.lka, 4, { kernel = 12, dilation = 2 }))
    assert.matches("positive", H.fails(acq.nn.lka, 0))
  end)
end)
