-- primitives_spec.lua -- the C pieces the variants and strategies need:
-- soft-label cross-entropy, per-sample BN statistics from one batched
-- forward, the slack (margin) form of L_BNS with per-sample weights, the
-- 2-D sinusoidal position encoding, KL with temperature and AIT's
-- inundation factor search. Each against values computed here by hand (in
-- plain Lua arithmetic), by running samples one at a time, or by finite
-- differences.
local acq = require "acq"
local H = require "spec.helper"

-- plain-Lua softmax of a list
local softmax = H.softmax

describe("soft-label cross-entropy", function()
  it("is -mean_i sum_k p_ik log softmax(l)_ik, with finite-difference gradients", function()
    local l = { { 1.0, -2.0, 0.5 }, { 0.1, 0.2, 3.0 } }
    local p = { { 0.7, 0.3, 0.0 }, { 0.2, 0.2, 0.6 } }
    local want = 0
    for i = 1, 2 do
      local s = softmax(l[i])
      for k = 1, 3 do want = want - p[i][k] * math.log(s[k]) end
    end
    want = want / 2
    H.close(acq.loss.soft_ce(acq.tensor(l), acq.tensor(p)), want, 1e-6)
    -- one-hot soft labels give the ordinary cross-entropy
    local y = acq.tensor({ 0, 2 }, { dtype = "i64" })
    H.close(acq.loss.soft_ce(acq.tensor(l), acq.one_hot(y, 3):float()), acq.loss.ce(acq.tensor(l), y), 1e-6)
    local x = acq.tensor(l, { dtype = "f64" })
    local P = acq.tensor(p, { dtype = "f64" })
    H.gradcheck(function() return acq.loss.soft_ce(x, P) end, x, "d soft_ce / d logits", 1e-6, 1e-9)
  end)

  it("rejects mismatched shapes and NaN labels", function()
    assert.matches("soft labels", H.fails(acq.loss.soft_ce, acq.randn(2, 3), acq.rand(2, 4)))
    assert.matches("soft labels contains NaN", H.fails(acq.loss.soft_ce, acq.randn(2, 3), acq.full({ 2, 3 }, 0 / 0)))
  end)
end)

describe("per-sample BN statistics", function()
  it("one batched forward gives each sample's statistics, as running it alone does", function()
    acq.manual_seed(5)
    local F = acq.models.resnet20 { classes = 4, in_channels = 1 }
    local x = acq.randn(3, 1, 16, 16)
    -- BN in eval mode: each sample's BN inputs do not depend on the others
    local _, a = F:forward(x, { bn = "eval", stats = "sample" })
    assert.equal(21, #a.stats)
    for i = 0, 2 do
      local _, ai = F:forward(x:narrow(0, i, 1), { bn = "eval", stats = true })
      for l = 1, #a.stats do
        H.close(a.stats[l].mean:select(0, i), ai.stats[l].mean, 1e-5, 1e-6, "mean " .. a.stats[l].name)
        H.close(a.stats[l].var:select(0, i), ai.stats[l].var, 1e-4, 1e-6, "var " .. a.stats[l].name)
      end
    end
    assert.same({ 3, 16 }, a.stats[1].mean:shape())
    assert.matches('stats must be true, false or "sample"', H.fails(F.forward, F, x, { stats = "batch" }))
  end)
end)

-- a one-layer statistics list with hand-set values
local function stats(mean, var, rm, rv)
  return { { name = "bn", mean = acq.tensor(mean, { dtype = "f64" }), var = acq.tensor(var, { dtype = "f64" }),
    running_mean = acq.tensor(rm, { dtype = "f64" }), running_var = acq.tensor(rv, { dtype = "f64" }), eps = 1e-5 } }
end

describe("L_BNS: the slack form and per-sample weights", function()
  it("margin m: sum over channels of max(|d| - m, 0)^2, for the mean and the variance", function()
    local s = stats({ 0.5, -0.05, 2.0 }, { 1.2, 0.9, 0.3 }, { 0, 0, 0 }, { 1, 1, 1 })
    local m = 0.1
    -- means: |0.5| - 0.1 = 0.4, 0, 1.9; variances: 0.1, 0, 0.6
    local want = 0.4 ^ 2 + 1.9 ^ 2 + 0.1 ^ 2 + 0.6 ^ 2
    H.close(acq.loss.bns(s, { margin = m }), want, 1e-12)
    -- mean reduction: the mean over channels of each part
    H.close(acq.loss.bns(s, { margin = m, reduction = "mean" }), (0.4 ^ 2 + 1.9 ^ 2) / 3 + (0.1 ^ 2 + 0.6 ^ 2) / 3, 1e-12)
    -- margin 0 is eq. (6)
    H.close(acq.loss.bns(s, { margin = 0 }), 0.5 ^ 2 + 0.05 ^ 2 + 4 + 0.2 ^ 2 + 0.1 ^ 2 + 0.7 ^ 2, 1e-12)
    local x = s[1].mean
    H.gradcheck(function() return (acq.loss.bns(s, { margin = m })) end, x, "d slack / d mean", 1e-6, 1e-9)
  end)

  it("per-sample statistics: each sample's terms weighted, summed over layers, averaged over samples", function()
    local rm, rv = { 0, 1 }, { 1, 2 }
    local two = {
      { name = "a", mean = acq.tensor({ { 1, 1 }, { 0, 3 } }, { dtype = "f64" }),
        var = acq.tensor({ { 1, 2 }, { 2, 2 } }, { dtype = "f64" }),
        running_mean = acq.tensor(rm, { dtype = "f64" }), running_var = acq.tensor(rv, { dtype = "f64" }) },
      { name = "b", mean = acq.tensor({ { 0, 0 }, { 1, 1 } }, { dtype = "f64" }),
        var = acq.tensor({ { 1, 1 }, { 1, 3 } }, { dtype = "f64" }),
        running_mean = acq.tensor(rm, { dtype = "f64" }), running_var = acq.tensor(rv, { dtype = "f64" }) },
    }
    -- per sample i and layer l: ||mu - rm||^2 + ||var - rv||^2
    -- sample 1: layer a: (1 + 0) + (0 + 0) = 1;   layer b: (0 + 1) + (0 + 1) = 2
    -- sample 2: layer a: (0 + 4) + (1 + 0) = 5;   layer b: (1 + 0) + (0 + 1) = 2
    H.close(acq.loss.bns(two), ((1 + 2) + (5 + 2)) / 2, 1e-12)
    -- weights [sample, layer]: sample 1 doubles layer a, sample 2 triples it
    local W = acq.tensor({ { 2, 1 }, { 3, 1 } }, { dtype = "f64" })
    local L, layers = acq.loss.bns(two, { weights = W })
    H.close(L, ((2 * 1 + 2) + (3 * 5 + 2)) / 2, 1e-12)
    H.close(layers, { (2 * 1 + 3 * 5) / 2, (2 + 2) / 2 }, 1e-12)
    assert.matches("weights must be %[2,2%]", H.fails(acq.loss.bns, two, { weights = acq.ones(2, 3, { dtype = "f64" }) }))
    assert.matches("per%-sample weights need per%-sample statistics",
      H.fails(acq.loss.bns, stats({ 1 }, { 1 }, { 0 }, { 1 }), { weights = acq.ones(1, 1, { dtype = "f64" }) }))
  end)
end)

describe("the 2-D sinusoidal position encoding", function()
  it("encodes row and column of p with sin and cos at 10000^(-k/d)", function()
    local h, w, dim = 3, 4, 8
    local ps = { 0, 5, 11, 6 }
    local E = acq.sincos2d(acq.tensor(ps, { dtype = "i64" }), h, w, dim, { dtype = "f64" })
    assert.same({ 4, 8 }, E:shape())
    local want = {}
    for i, p in ipairs(ps) do
      local r, c, d = p // w, p % w, dim // 4
      local row = {}
      for _, part in ipairs { { r, math.sin }, { r, math.cos }, { c, math.sin }, { c, math.cos } } do
        for k = 0, d - 1 do row[#row + 1] = part[2](part[1] * 10000 ^ (-k / d)) end
      end
      want[i] = row
    end
    H.close(E, want, 1e-12, 1e-12)
    assert.matches("multiple of 4", H.fails(acq.sincos2d, acq.tensor({ 0 }, { dtype = "i64" }), 2, 2, 6))
  end)
end)

describe("KL with temperature (L_KD)", function()
  it("is T^2 mean_i KL(softmax(f_i / T) || softmax(q_i / T))", function()
    local q = { { 1.0, 0.0, -1.0 }, { 0.3, 2.0, 0.1 } }
    local f = { { 2.0, -1.0, 0.5 }, { 0.0, 0.0, 1.0 } }
    for _, T in ipairs { 1, 4, 20 } do
      local want = 0
      for i = 1, 2 do
        local pf, pq = softmax(f[i], T), softmax(q[i], T)
        for k = 1, 3 do want = want + pf[k] * (math.log(pf[k]) - math.log(pq[k])) end
      end
      want = want / 2 * T * T
      -- in float64: at T = 20 the KL is ~1e-3 before x T^2, so float32's
      -- rounding of the log-probabilities would be magnified 400 times
      H.close(acq.loss.kd(acq.tensor(q, { dtype = "f64" }), acq.tensor(f, { dtype = "f64" }), { T = T }), want,
        1e-12, 1e-14, "T = " .. T)
    end
    local x = acq.tensor(q, { dtype = "f64" })
    H.gradcheck(function() return acq.loss.kd(x, acq.tensor(f, { dtype = "f64" }), { T = 4 }) end, x, "d KD / d q")
  end)
end)

describe("AIT's gradient inundation", function()
  -- one output channel, 2 bits: bounds [0, 3], step 1, levels = the weights
  local w = acq.tensor({ { 0, 1, 2, 3 } })
  local d = acq.tensor({ { 0.06, 0.11, -0.2, -0.3 } })
  it("counts the weights whose level changes under alpha * d", function()
    -- level changes: w3 once alpha > 5/3, w2 once alpha > 2.5 (2 - 0.5 = 1.5 rounds to even 2),
    -- w1 once alpha >= 4.5454..., w0 once alpha >= 8.333...
    for _, c in ipairs { { 1, 0 }, { 2, 0.25 }, { 3, 0.5 }, { 5, 0.75 }, { 9, 1 } } do
      assert.equal(c[2], acq.quant.level_change_share(w, d, 2, { alpha = c[1] }), "alpha " .. c[1])
    end
  end)

  it("doubles alpha until the share reaches the threshold, then bisects 5 times", function()
    -- threshold 0.5: alpha 1 (0), 2 (0.25), 4 (0.5) -> bisect [2, 4]:
    -- 3 ok, 2.5 no (the tie rounds to even), 2.75 ok, 2.625 ok, 2.5625 ok
    local a, s = acq.quant.inundation_factor(w, d, 2, { threshold = 0.5 })
    assert.equal(2.5625, a)
    assert.equal(0.5, s)
    -- reached at alpha = 1: no inundation
    assert.equal(1, (acq.quant.inundation_factor(w, d * 10, 2, { threshold = 0.5 })))
    -- threshold 1 (w0 moves once alpha >= 8.33): 8 (0.75), 16 (1) -> bisect [8, 16]:
    -- 12, 10, 9, 8.5 ok, 8.25 no -> 8.5
    assert.equal(8.5, (acq.quant.inundation_factor(w, d, 2, { threshold = 1 })))
    assert.matches("threshold", H.fails(acq.quant.inundation_factor, w, d, 2, { threshold = 0 }))
  end)

  it("per output channel, each channel has its own bounds", function()
    -- channel 2 spans [0, 30]: a step of 1 changes no 2-bit level of it (step 10)
    local w2 = acq.tensor({ { 0, 1, 2, 3 }, { 0, 10, 20, 30 } })
    local d2 = acq.tensor({ { 0.6, 0.6, 0.6, -0.6 }, { 1, 1, 1, -1 } })
    assert.equal(0.5, acq.quant.level_change_share(w2, d2, 2))
    -- one pair of bounds [0, 30] for the whole tensor: no level changes at all
    assert.equal(0, acq.quant.level_change_share(w2, d2, 2, { per_channel = false }))
  end)
end)
