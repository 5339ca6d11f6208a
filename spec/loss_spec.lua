-- spec/loss_spec.lua -- the attention map and every loss of the paper against
-- spec/fixtures/golden.safetensors (computed by an independent PyTorch
-- implementation in float64), finite differences in float64, and the errors.
local acq = require "acq"
local H = require "spec.helper"

local loss = acq.loss

local gradcheck = H.gradcheck

describe("losses against the reference", function()
  local G = H.golden()
  local F = H.golden_fp()
  F:requires_grad_(false)
  local x = H.golden_x()
  local y2 = acq.cat({ G["in.y"], G["in.y"] }, 0)
  local p2 = acq.cat({ G["in.p"], G["in.p"] }, 0)
  local le, ae = F:forward(x, { bn = "eval", stats = true, features = true })
  local lt, at = F:forward(x, { bn = "batch", stats = true, features = true })
  local Me, Mt = acq.attention(ae.features), acq.attention(at.features)

  it("eq. (3): attention maps of F^eval and F^train", function()
    assert.same({ 8, 8, 8 }, Me:shape())
    H.rel(Me, G["out.att_eval"], 1e-5, "att_eval")
    H.rel(Mt, G["out.att_train"], 1e-5, "att_train")
    -- per-sample min-max: every map spans exactly [0, 1]
    H.equal(Me:flatten(1):amin(1), { 0, 0, 0, 0, 0, 0, 0, 0 }, "min")
    H.equal(Me:flatten(1):amax(1), { 1, 1, 1, 1, 1, 1, 1, 1 }, "max")
  end)

  it("eq. (3): resized for pictures (bilinear), same range", function()
    local Mu = acq.attention(ae.features, { size = { 32, 32 } })
    assert.same({ 8, 32, 32 }, Mu:shape())
    -- bilinear with align_corners = false: the mean of a 4x4 upsampled block
    -- centre equals the source value only in the interior; check the range
    -- and one interior point against a hand interpolation
    local a = Me:select(0, 0):totable()
    local v = Mu[0][5][6]:item() -- source coordinates (5.5/4 - 0.5, 6.5/4 - 0.5)
    local sy, sx = (5 + 0.5) / 4 - 0.5, (6 + 0.5) / 4 - 0.5
    local y0, x0 = math.floor(sy), math.floor(sx)
    local fy, fx = sy - y0, sx - x0
    local e = (1 - fy) * ((1 - fx) * a[y0 + 1][x0 + 1] + fx * a[y0 + 1][x0 + 2])
      + fy * ((1 - fx) * a[y0 + 2][x0 + 1] + fx * a[y0 + 2][x0 + 2])
    H.close(v, e, 1e-6, 1e-7, "bilinear value")
  end)

  it("eq. (6): L_BNS in the variance, std and GDFQ-mean forms, with per-layer terms", function()
    local l, layers = loss.bns(ae.stats)
    H.rel(l, G["loss.L_BNS"], 1e-5, "L_BNS")
    H.rel(layers, G["loss.L_BNS_layers"], 1e-5, "L_BNS_layers")
    l, layers = loss.bns(ae.stats, { form = "std" })
    H.rel(l, G["loss.L_BNS_std"], 1e-5, "L_BNS_std")
    H.rel(layers, G["loss.L_BNS_std_layers"], 1e-5, "L_BNS_std_layers")
    H.rel(loss.bns(ae.stats, { reduction = "mean" }), G["loss.L_BNS_gdfq_mean"], 1e-5, "gdfq mean")
  end)

  it("eq. (14): Penalty_BNS from F^train's batch statistics", function()
    local l, layers = loss.bns(at.stats, { what = "Pen_BNS" })
    H.rel(l, G["loss.Pen_BNS"], 1e-5, "Pen_BNS")
    H.rel(layers, G["loss.Pen_BNS_layers"], 1e-5, "Pen_BNS_layers")
    H.rel(loss.bns(at.stats, { form = "std" }), G["loss.Pen_BNS_std"], 1e-5, "Pen_BNS_std")
  end)

  it("eq. (7) L_CE and eq. (14) Penalty_CE", function()
    H.rel(loss.ce(le, y2), G["loss.L_CE"], 1e-5, "L_CE")
    H.rel(loss.ce(lt, y2), G["loss.Pen_CE"], 1e-5, "Pen_CE")
  end)

  it("eq. (10) L_CACM and M(p), row-major positions", function()
    local l, m = loss.cacm(Me, p2)
    H.rel(l, G["loss.L_CACM"], 1e-5, "L_CACM")
    H.rel(m, G["loss.CACM_m_at_p"], 1e-5, "M(p)")
    -- row p // 8, column p % 8, read directly
    local p = p2:totable()
    local A = Me:totable()
    for i = 1, 8 do
      H.close(m[i - 1]:item(), A[i][p[i] // 8 + 1][p[i] % 8 + 1], 0, 0, "M(p) sample " .. i)
    end
  end)

  it("eq. (13) L_AD, batch and per-sample forms, with its parts", function()
    local l1, l2 = le:narrow(0, 0, 4), le:narrow(0, 4, 4)
    local l, parts = loss.ad(l1, l2, G["in.z1"], G["in.z2"])
    H.rel(l, G["loss.L_AD"], 1e-5, "L_AD")
    H.rel(parts.js, G["loss.AD_js"], 1e-5, "AD_js")
    H.rel(parts.mae, G["loss.AD_mae"], 1e-5, "AD_mae")
    H.equal(parts.o1, G["loss.AD_o1"], "o1")
    H.equal(parts.o2, G["loss.AD_o2"], "o2")
    H.rel(loss.ad(l1, l2, G["in.z1"], G["in.z2"], { form = "sample" }), G["loss.L_AD_sample"], 1e-5,
      "L_AD_sample")
  end)

  it("eq. (14) Penalty_CACM and its MAE", function()
    local l, mae = loss.penalty_cacm(Mt, Me)
    -- a hinge of mae (~0.1) minus 0.1: judged at its operands' magnitude
    H.rel(l, G["loss.Pen_CACM"], 1e-5, "Pen_CACM", G["loss.Pen_CACM_mae"]:item() + 0.1)
    H.rel(mae, G["loss.Pen_CACM_mae"], 1e-5, "Pen_CACM_mae")
  end)

  it("eq. (15) with the CIFAR-10 and ImageNet presets", function()
    local batch = { x1 = G["in.x1"], x2 = G["in.x2"], y = G["in.y"], p = G["in.p"], z1 = G["in.z1"], z2 = G["in.z2"] }
    for _, name in ipairs { "cifar10", "imagenet" } do
      local L, T = loss.g_objective(F, batch, loss.coefficients(name))
      H.rel(L, G["loss.L_G_" .. name], 1e-5, "L_G " .. name)
      H.rel(T.L_AD, G["loss.L_AD"], 1e-5, "term L_AD")
      H.rel(T.Pen_CACM, G["loss.Pen_CACM"], 1e-5, "term Pen_CACM", G["loss.Pen_CACM_mae"]:item() + 0.1)
    end
  end)

  it("gradients of L_CACM and L_G with respect to x1, x2 (float64 F)", function()
    local F64 = H.golden_fp():to { dtype = "f64" }
    F64:requires_grad_(false)
    local x1, x2 = G["in.x1"]:double():requires_grad_(true), G["in.x2"]:double():requires_grad_(true)
    local _, a = F64:forward(acq.cat({ x1, x2 }, 0), { features = true })
    loss.cacm(acq.attention(a.features), p2):backward()
    H.rel(x1:grad(), G["grad.L_CACM.x1"], 1e-4, "dL_CACM/dx1")
    H.rel(x2:grad(), G["grad.L_CACM.x2"], 1e-4, "dL_CACM/dx2")
    x1:zero_grad(true)
    x2:zero_grad(true)
    local L = loss.g_objective(F64, { x1 = x1, x2 = x2, y = G["in.y"], p = G["in.p"],
      z1 = G["in.z1"]:double(), z2 = G["in.z2"]:double() }, loss.coefficients("cifar10"))
    L:backward()
    H.rel(x1:grad(), G["grad.L_G_cifar10.x1"], 1e-4, "dL_G/dx1")
    H.rel(x2:grad(), G["grad.L_G_cifar10.x2"], 1e-4, "dL_G/dx2")
  end)

  it("gradients in float32 agree with the reference within their Monte Carlo spread", function()
    -- A float32 forward of F crosses ReLU kinks (a pre-activation within
    -- roundoff of 0) that float64 does not, and whose side depends on the
    -- kernels: a sample's whole gradient then moves by up to 2 % of the
    -- largest entry (seen on AVX-512 for x2[3], on AVX2 for x1[3]). Each
    -- sample is judged by how far its gradient moves when F's weights and x
    -- are perturbed by 16 float32 ulps (H.spread); a sign or axis error is O(1).
    local fpw = acq.safetensors.load(H.GOLDEN, { prefix = "fp." })
    local function run(perturbed)
      local Fp = F
      if perturbed then
        Fp = acq.models.resnet20 { classes = 10, in_channels = 3 }
        local w = {}
        for k, v in pairs(fpw) do w[k] = H.perturb(v) end
        Fp:load_state_dict(w)
        Fp:requires_grad_(false)
      end
      local pr = perturbed and H.perturb or function(t) return t:clone() end
      local x1, x2 = pr(G["in.x1"]):requires_grad_(true), pr(G["in.x2"]):requires_grad_(true)
      local L = loss.g_objective(Fp, { x1 = x1, x2 = x2, y = G["in.y"], p = G["in.p"],
        z1 = G["in.z1"], z2 = G["in.z2"] }, loss.coefficients("cifar10"))
      L:backward()
      return { x1:grad(), x2:grad() }
    end
    local base, spread = H.spread(run)
    local k1 = H.rows_within_spread(base[1], G["grad.L_G_cifar10.x1"], spread[1], 1e-4, "dL_G/dx1 f32")
    local k2 = H.rows_within_spread(base[2], G["grad.L_G_cifar10.x2"], spread[2], 1e-4, "dL_G/dx2 f32")
    -- not vacuous: a sign error fails even at a kink
    assert.truthy(H.fails(H.rows_within_spread, -base[1], G["grad.L_G_cifar10.x1"], spread[1], 1e-4, "-dL_G/dx1"))
    print(("# float32 dL_G/dx: %d + %d of 8 samples at a kink"):format(k1, k2))
  end)

  it("eq. (16) and KD with temperature (T^2 included), on the reference's logits", function()
    -- Q's own logits are quant_spec's (downstream of 4-bit roundings); the
    -- objective is tested on well-defined inputs: the reference's logits
    local q = G["q.logits"]:clone():requires_grad_(true)
    local f = G["q.f_logits"]
    local L, T = loss.q_objective(q, f, G["q.target"])
    H.rel(L, G["q.L_Q"], 1e-5, "L_Q")
    H.rel(T.L_CE, G["q.L_CE"], 1e-5, "L_CE")
    H.rel(T.L_KD, G["q.L_KD"], 1e-5, "L_KD")
    H.rel(loss.kd(q, f, { T = 4 }), G["q.L_KD_T4"], 1e-5, "L_KD_T4")
    -- dL_Q/dlogits by hand: (softmax(q) - onehot(target)) / N + (softmax(q) - softmax(f)) / N
    L:backward()
    local qv, fv, tv = q:totable(), f:double():totable(), G["q.target"]:totable()
    local e = {}
    for i = 1, 8 do
      local sq, sf = H.softmax(qv[i]), H.softmax(fv[i])
      e[i] = {}
      for k = 1, 10 do e[i][k] = ((sq[k] - (k - 1 == tv[i] and 1 or 0)) + (sq[k] - sf[k])) / 8 end
    end
    H.close(q:grad(), e, 1e-5, 1e-7, "dL_Q/dq")
  end)
end)

describe("loss hand computations", function()
  it("KD detaches the teacher and is zero for equal logits", function()
    local f = acq.tensor({ { 1, 2, 3 }, { 0, 0, 1 } }, { dtype = "f64" }):requires_grad_(true)
    local q = f:detach():clone():requires_grad_(true)
    local l = loss.kd(q, f, { T = 2 })
    H.close(l, 0, 0, 1e-12, "KD of equal logits")
    l:backward()
    assert.is_nil(f:grad())
    H.close(q:grad(), { { 0, 0, 0 }, { 0, 0, 0 } }, 0, 1e-12, "zero gradient")
  end)

  it("L_CACM is 0 with zero gradient where M(p) + eps1 >= 1", function()
    local M = acq.tensor({ { { 0.0, 0.9 }, { 0.5, 1.0 } } }, { dtype = "f64" }):requires_grad_(true)
    local l = loss.cacm(M, acq.tensor({ 1 }), { eps = 0.2 }) -- M(0,1) = 0.9
    H.close(l, 0, 0, 0, "clamped")
    l:backward()
    H.close(M:grad(), { { { 0, 0 }, { 0, 0 } } }, 0, 0, "no gradient")
    -- below the clamp: -log(0.5 + 0.2), d/dM = -1/0.7 at p = 2 (row 1, col 0)
    M:zero_grad(true)
    l = loss.cacm(M, acq.tensor({ 2 }), { eps = 0.2 })
    H.close(l, -math.log(0.7), 1e-12, 0, "value")
    l:backward()
    H.close(M:grad(), { { { 0, 0 }, { -1 / 0.7, 0 } } }, 1e-12, 0, "gradient")
  end)

  it("Penalty_CACM is a hinge on the mean absolute difference", function()
    local a = acq.tensor({ { 0.0, 0.5 } }, { dtype = "f64" })
    local b = acq.tensor({ { 0.3, 0.5 } }, { dtype = "f64" })
    local l, mae = loss.penalty_cacm(a, b, { eps = 0.1 })
    H.close(mae, 0.15, 1e-12, 0, "mae")
    H.close(l, 0.05, 1e-12, 0, "hinge")
    H.close(loss.penalty_cacm(a, b, { eps = 0.2 }), 0, 0, 0, "below eps")
  end)

  it("L_AD removes o1 and o2 from both distributions (hand computation)", function()
    -- row 1: o1 = 0, o2 = 1, left {2, 3}; row 2: o1 = o2 = 3, left {0, 1, 2}
    local l1 = acq.tensor({ { 5, 1, 0, 1 }, { 0, 1, 2, 9 } }, { dtype = "f64" })
    local l2 = acq.tensor({ { 1, 6, 2, 0 }, { 1, 0, 0, 8 } }, { dtype = "f64" })
    local z1 = acq.tensor({ { 0, 0 }, { 1, 1 } }, { dtype = "f64" })
    local z2 = acq.tensor({ { 1, -1 }, { 1, 2 } }, { dtype = "f64" })
    local function sm(v)
      local s, r = 0, {}
      for _, e in ipairs(v) do s = s + math.exp(e) end
      for i, e in ipairs(v) do r[i] = math.exp(e) / s end
      return r
    end
    local function js(P, Q)
      local d = 0
      for i = 1, #P do
        local m = (P[i] + Q[i]) / 2
        d = d + 0.5 * P[i] * math.log(P[i] / m) + 0.5 * Q[i] * math.log(Q[i] / m)
      end
      return d
    end
    local j1 = js(sm { 0, 1 }, sm { 2, 0 })
    local j2 = js(sm { 0, 1, 2 }, sm { 1, 0, 0 })
    local l, parts = loss.ad(l1, l2, z1, z2)
    H.close(parts.js, { j1, j2 }, 1e-12, 0, "js")
    H.close(parts.mae, { 1, 0.5 }, 1e-12, 0, "mae")
    H.equal(parts.o1, { 0, 3 }, "o1")
    H.equal(parts.o2, { 1, 3 }, "o2")
    H.close(l, 0.75 / ((j1 + j2) / 2 + 1e-8), 1e-12, 0, "batch form")
    H.close(loss.ad(l1, l2, z1, z2, { form = "sample" }), (1 / (j1 + 1e-8) + 0.5 / (j2 + 1e-8)) / 2,
      1e-12, 0, "sample form")
  end)
end)

describe("loss gradients by finite differences (float64)", function()
  acq.manual_seed(5)

  it("L_CACM composed with the attention map, with respect to the feature map", function()
    local A = acq.randn(3, 4, 3, 3, { dtype = "f64" })
    local p = acq.tensor({ 0, 4, 7 })
    local function f() return loss.cacm(acq.attention(A), p, { eps = 0.2 }) end
    -- make sure no sample sits at the clamp (its gradient would be 0)
    local _, m = f()
    for _, v in ipairs(m:totable()) do assert.is_true(v + 0.2 < 1) end
    local g = gradcheck(function() return (f()) end, A, "dL_CACM/dA")
    assert.is_true(g:abs():amax():item() > 1e-3)
  end)

  it("L_AD (both forms), with respect to both logits", function()
    local l1 = acq.randn(3, 5, { dtype = "f64" })
    local l2 = acq.randn(3, 5, { dtype = "f64" })
    local z1, z2 = acq.randn(3, 4, { dtype = "f64" }), acq.randn(3, 4, { dtype = "f64" })
    for _, form in ipairs { "batch", "sample" } do
      gradcheck(function() return (loss.ad(l1, l2, z1, z2, { form = form })) end, l1, "dL_AD/dl1 " .. form)
      gradcheck(function() return (loss.ad(l1, l2, z1, z2, { form = form })) end, l2, "dL_AD/dl2 " .. form)
    end
  end)

  it("Penalty_CACM through both maps (attention of two feature maps)", function()
    local At = acq.randn(2, 3, 3, 3, { dtype = "f64" })
    local Ae = acq.randn(2, 3, 3, 3, { dtype = "f64" })
    local function f() return (loss.penalty_cacm(acq.attention(At), acq.attention(Ae), { eps = 0.05 })) end
    assert.is_true(f():item() > 0, "hinge active")
    gradcheck(f, At, "dPen_CACM/dA_train")
    gradcheck(f, Ae, "dPen_CACM/dA_eval")
  end)

  it("L_BNS in both forms and reductions, with respect to the input of a BN layer", function()
    local m = acq.nn.sequential { acq.nn.conv2d(2, 3, 1), acq.nn.batchnorm2d(3) }
    m:to { dtype = "f64" }
    m:requires_grad_(false)
    local sd = m:state_dict()
    sd["1.running_mean"]:copy_(acq.tensor { 0.1, -0.2, 0.3 })
    sd["1.running_var"]:copy_(acq.tensor { 0.5, 2.0, 1.5 })
    local xin = acq.randn(4, 2, 3, 3, { dtype = "f64" })
    for _, form in ipairs { "var", "std" } do
      for _, red in ipairs { "sum", "mean" } do
        gradcheck(function()
          local _, aux = m:forward(xin, { stats = true })
          return (loss.bns(aux.stats, { form = form, reduction = red }))
        end, xin, ("dL_BNS/dx %s %s"):format(form, red))
      end
    end
  end)
end)

describe("loss errors", function()
  local l = acq.randn(4, 10)
  local y = acq.tensor { 1, 2, 3, 4 }
  it("name the loss and the problem", function()
    local bad = l:clone()
    bad[1][2]:fill_(0 / 0)
    assert.matches("L_CE: logits contains NaN", H.fails(loss.ce, bad, y))
    bad[1][2]:fill_(math.huge)
    assert.matches("L_CE: logits contains Inf", H.fails(loss.ce, bad, y))
    assert.matches("Pen_CE: label 10 is outside %[0, 10%)",
      H.fails(loss.ce, l, acq.tensor { 1, 2, 3, 10 }, { what = "Pen_CE" }))
    assert.matches("L_CE: label has shape %[3%], expected %[4%]", H.fails(loss.ce, l, acq.tensor { 1, 2, 3 }))
    local M = acq.rand(4, 8, 8)
    assert.matches("L_CACM: position 64 is outside %[0, 64%) %(the 8x8 attention grid%)",
      H.fails(loss.cacm, M, acq.tensor { 0, 1, 2, 64 }))
    assert.matches("L_CACM: position %-1 is outside", H.fails(loss.cacm, M, acq.tensor { 0, -1, 2, 3 }))
    local Mn = M:clone()
    Mn[0][0][0]:fill_(0 / 0)
    assert.matches("L_CACM: attention map M contains NaN", H.fails(loss.cacm, Mn, acq.tensor { 0, 1, 2, 3 }))
    assert.matches("L_AD: 3 noise vectors but 4 pairs of logits",
      H.fails(loss.ad, l, l, acq.randn(3, 100), acq.randn(3, 100)))
    assert.matches("L_AD: logits of x1 has shape %[4,10%] but logits of x2 has shape %[2,10%]",
      H.fails(loss.ad, l, l:narrow(0, 0, 2), acq.randn(4, 100), acq.randn(4, 100)))
    assert.matches("L_KD: student logits has shape %[4,10%] but teacher logits has shape %[4,5%]",
      H.fails(loss.kd, l, acq.randn(4, 5)))
    assert.matches("Pen_CACM: attention map of F%^train has shape",
      H.fails(loss.penalty_cacm, M, acq.rand(2, 8, 8)))
    assert.matches("attention: the feature map A must have 4 dimensions",
      H.fails(acq.attention, acq.randn(2, 3)))
  end)

  it("BNS names the layer whose statistics are not finite", function()
    local F = acq.models.resnet20 { classes = 10, in_channels = 3 }
    local _, aux = F:forward(acq.randn(2, 3, 32, 32), { stats = true })
    aux.stats[5].var[3]:fill_(math.huge)
    assert.matches("L_BNS: layer layer1.1.bn2's batch variance contains Inf", H.fails(loss.bns, aux.stats))
    assert.matches("L_BNS: no BN statistics", H.fails(loss.bns, {}))
    assert.matches("option form = 'stdev'", H.fails(loss.bns, aux.stats, { form = "stdev" }))
  end)

  it("objectives name the term that is not finite, and unknown presets", function()
    local t = acq.tensor(0 / 0)
    assert.matches("L_G: term L_AD contains NaN",
      H.fails(loss.weighted_sum, { { "L_CE", acq.tensor(1.0), 1 }, { "L_AD", t, 1 } }, "L_G"))
    assert.matches("unknown coefficient preset 'cifar11' %(known: cifar10, cifar100, gdfq, imagenet, mobilenet_v2%)",
      H.fails(loss.coefficients, "cifar11"))
  end)
end)

describe("coefficient presets and ablations", function()
  it("are the numbers of section 4.1, as Lua tables", function()
    local c = loss.presets.cifar10
    assert.same({ 0.5, 1, 1, 0.5, 1, 1, 0.2, 0.1 },
      { c.pen_ce, c.pen_bns, c.pen_cacm, c.alpha, c.beta, c.gamma, c.eps_cacm, c.eps_pen })
    local i = loss.presets.imagenet
    assert.same({ 0.05, 0.5, 1, 0.1, 1, 0.5 }, { i.pen_ce, i.pen_bns, i.pen_cacm, i.alpha, i.beta, i.gamma })
    assert.equal(0.1, loss.presets.mobilenet_v2.gamma)
    assert.matches("0.5 and 0.1", loss.presets.cifar100.note)
    local o = loss.coefficients("cifar10", { gamma = 0 })
    assert.equal(0, o.gamma)
    assert.equal(1, loss.presets.cifar10.gamma, "the preset is not modified")
  end)

  it("a zero coefficient drops its term (Table 6's ablations)", function()
    local G = H.golden()
    local F = H.golden_fp()
    local batch = { x1 = G["in.x1"], x2 = G["in.x2"], y = G["in.y"], p = G["in.p"], z1 = G["in.z1"], z2 = G["in.z2"] }
    local c = loss.coefficients("cifar10", { beta = 0, gamma = 0, pen_ce = 0, pen_bns = 0 })
    local L, T = loss.g_objective(F, batch, c)
    assert.is_nil(T.L_CACM)
    assert.is_nil(T.L_AD)
    assert.is_nil(T.Pen_CE)
    -- L_CE + alpha L_BNS, from the reference's own terms
    H.rel(L, G["loss.L_CE"]:item() + 0.5 * G["loss.L_BNS"]:item(), 1e-5, "L_CE + 0.5 L_BNS")
    local _, Tg = loss.g_objective(F, batch, loss.coefficients("gdfq"))
    H.rel(Tg.L_BNS, G["loss.L_BNS_gdfq_mean"], 1e-5, "GDFQ preset uses the mean form")
  end)
end)
