-- quant_spec.lua -- the fake quantizer of eqs. (1)-(2), the spec grammar,
-- and Q = quantize(F, spec) against spec/fixtures/golden.safetensors.
local acq = require "acq"
local H = require "spec.helper"

local G = H.golden()

describe("fake quantizer, eqs. (1)-(2)", function()
  local fp = acq.safetensors.load(H.GOLDEN, { prefix = "fp." })
  local w = fp["layer2.0.conv1.weight"]

  it("per-output-channel weight bounds, codes bit-exact, values exact (4 and 5 bits)", function()
    local lo, hi = acq.quant.bounds(w, true)
    H.equal(lo, G["quant.w4.lo"], "lo")
    H.equal(hi, G["quant.w4.hi"], "hi")
    local codes = acq.quant.codes(w, lo, hi, 4)
    assert.equal("i64", codes:dtype())
    H.equal(codes, G["quant.w4.codes"], "codes")
    H.equal(acq.quant.fake_quantize(w, lo, hi, 4), G["quant.w4.weight"], "w4")
    H.equal(acq.quant.fake_quantize(w, lo, hi, 5), G["quant.w5.weight"], "w5")
  end)

  it("per-layer activation bounds and values", function()
    local a = G["quant.a4.in"]
    local lo, hi = acq.quant.bounds(a, false)
    assert.equal(G["quant.a4.lo"]:item(), lo:item())
    assert.equal(G["quant.a4.hi"]:item(), hi:item())
    H.equal(acq.quant.fake_quantize(a, lo, hi, 4), G["quant.a4.out"], "a4")
  end)

  it("by hand: s = (u-l)/(2^n-1), unrounded offset, half-to-even rounding", function()
    -- l = -1, u = 2, 2 bits: s = 1, b = -1 + 2 = 1; q = clamp(round(x - 1), -2, 1)
    local x = acq.tensor { -1.0, -0.5, 0.5, 1.5, 2.0, 3.0 }
    local lo, hi = acq.tensor(-1.0), acq.tensor(2.0)
    -- x - 1 = -2, -1.5, -0.5, 0.5, 1, 2 -> round half even -2, -2, -0, 0, 1, 2 -> clamp 1
    H.equal(acq.quant.codes(x, lo, hi, 2), { -2, -2, 0, 0, 1, 1 })
    H.close(acq.quant.fake_quantize(x, lo, hi, 2), { -1, -1, 1, 1, 2, 2 })
  end)

  it("passes the gradient straight through, also outside [l, u]", function()
    local x = acq.tensor({ -3.0, 0.2, 0.7, 5.0 }):requires_grad_()
    local y = acq.quant.fake_quantize(x, acq.tensor(0.0), acq.tensor(1.0), 4)
    ;(y * acq.tensor { 1.0, 2.0, 3.0, 4.0 }):sum():backward()
    H.close(x:grad(), { 1, 2, 3, 4 })
  end)

  it("rejects bit widths outside 2..16", function()
    local m = H.fails(acq.quant.fake_quantize, acq.ones(2), acq.tensor(0.0), acq.tensor(1.0), 1)
    assert.truthy(m:find("bit width 1 out of range", 1, true))
  end)
end)

describe("quant spec grammar", function()
  local parse = acq.quant.parse_spec

  it("parses defaults, overrides and options", function()
    local s = parse "w4a4"
    assert.same({ 4, 4, 0, 0 }, { s.w, s.a, s.ema, #s.overrides })
    s = parse "w5a5,first=w8a8,last=w8,layer1.*=afp,ema=0.9"
    assert.same({ 5, 5, 0.9 }, { s.w, s.a, s.ema })
    assert.same({ "first", 8, 8 }, { s.overrides[1].target, s.overrides[1].w, s.overrides[1].a })
    assert.same({ "last", 8 }, { s.overrides[2].target, s.overrides[2].w })
    assert.is_nil(s.overrides[2].a)
    assert.same({ "layer1.*", 32 }, { s.overrides[3].target, s.overrides[3].a })
    assert.same({ 4, 32 }, { parse("w4").w, parse("w4").a })
  end)

  it("points at the column of a malformed spec", function()
    local function col(spec)
      return tonumber(H.fails(parse, spec):match("at column (%d+)"))
    end
    assert.equal(1, col "x4a4")
    assert.equal(3, col "w4b4")
    assert.equal(6, col "w4a4,")
    assert.equal(2, col "w40a4")
    assert.equal(12, col "w4a4,first=")
    assert.equal(4, col "w4a1")
    local msg = H.fails(parse, "w4a4,first=w8x8")
    assert.truthy(msg:find("w4a4,first=w8x8\n" .. (" "):rep(15) .. "^", 1, true), msg)
  end)

  it("plans the widths of every conv/linear layer (first, last, globs)", function()
    local F = acq.models.resnet20()
    local plan = acq.quant.plan(F, "w4a4,first=w8a8,last=w8a8,layer2.0.short_conv=w6")
    assert.equal(22, #plan)
    assert.same({ "conv", 8, 8 }, { plan[1].name, plan[1].w, plan[1].a })
    assert.same({ "fc", 8, 8 }, { plan[22].name, plan[22].w, plan[22].a })
    for _, p in ipairs(plan) do
      if p.name == "layer2.0.short_conv" then assert.same({ 6, 4 }, { p.w, p.a }) end
    end
    assert.equal("22 layers: w8a8 x2, w4a4 x19, w6a4 x1", acq.quant.describe(plan))
    assert.truthy(H.fails(acq.quant.plan, F, "w4a4,fist=w8a8"):find("'fist' names no conv/linear layer", 1, true))
  end)
end)

describe("Q = quantize(F, 'w4a4') with the reference weights (spec/helper.lua's rule for quantized networks)", function()
  local F = H.golden_fp()
  local x = H.golden_x()
  local Q = acq.quant.quantize(F, "w4a4")
  Q:forward(x) -- calibration on [x1; x2]
  Q:quant_state "frozen"
  -- the reference's bounds injected: every rounding below sees the
  -- reference's own scale and offset
  local R = H.inject_bounds(acq.quant.quantize(F, "w4a4"), G["q.act_lo"], G["q.act_hi"])

  it("has 22 quantizers whose calibrated bounds are the reference's to float32 roundoff", function()
    local b = Q:act_bounds()
    assert.equal(22, #b)
    assert.equal("conv", b[1].name)
    assert.equal("layer2.0.short_conv", b[10].name)
    assert.equal("fc", b[22].name)
    local lo, hi = {}, {}
    for i, e in ipairs(b) do lo[i], hi[i] = e.lo:item(), e.hi:item() end
    -- each bound is the min or max of a float32 activation: judged at the
    -- magnitude of the bounds (rule 1)
    local m = math.max(G["q.act_lo"]:abs():max():item(), G["q.act_hi"]:abs():max():item())
    H.rel(lo, G["q.act_lo"], 1e-5, "act_lo", m)
    H.rel(hi, G["q.act_hi"], 1e-5, "act_hi", m)
    -- the bounds calibrated from the image itself are exact (no arithmetic)
    assert.equal(G["q.act_lo"]:totable()[1], lo[1])
    assert.equal(G["q.act_hi"]:totable()[1], hi[1])
  end)

  it("frozen bounds do not move", function()
    local C = Q:clone()
    C:forward(x * 10)
    local lo = C:act_bounds()[1].lo:item()
    assert.equal(G["q.act_lo"]:totable()[1], lo)
  end)

  it("Q logits with the reference's bounds: every row the reference's, or a counted tie at fc's input", function()
    local f = F:forward(x)
    H.rel(f, G["q.f_logits"], 1e-5, "f_logits")
    H.equal(f:argmax(1), G["q.target"], "target")
    local q, ties = H.quantized_logits(R, x, G["q.logits"], "q.logits")
    assert.is_true(#ties <= 2, #ties .. " ties")
    -- the rule itself: one level more at fc's input element 5 of row 2 (not a
    -- tie) fails; declared a tie (every element within reach), it is found
    local wc, ws, wb = R.fc:weight_codes()
    local fb = R:act_bounds()[22]
    local step = ((fb.hi - fb.lo) / 15):item()
    local off = q:double():clone()
    local col = ((wc:select(1, 4):double() + wb:select(1, 0):double()) * ws:select(1, 0):double()) -- W[:, 4]
    -- the reference's code one level away from acq's, on the far side of
    -- the nearer rounding boundary
    local _, aux = R:forward(x, { features = true })
    local t = (aux.features:mean({ 2, 3 }) / ((fb.hi - fb.lo) / 15) - (fb.lo / ((fb.hi - fb.lo) / 15) + 8))[2][4]:item()
    local delta = t >= acq.round(acq.tensor(t)):item() and 1 or -1
    off[2]:copy_(off[2] + col * (delta * step))
    local m = H.fails(H.quantized_logits, R, x, off, "shifted")
    assert.truthy(m:find("row 2", 1, true), m)
    local _, found = H.quantized_logits(R, x, off, "shifted", 1e-5, 0.5)
    assert.same({ 2, 5, delta }, { found[1].row, found[1].col, found[1].delta })
  end)

  it("L_CE, L_KD, L_Q on the reference's logits, and Q's weight gradients through the straight-through quantizers", function()
    -- the losses on well-defined inputs (rule 4): the reference's logits
    local qr = G["q.logits"]:clone():requires_grad_(true)
    local f = G["q.f_logits"]
    local target = G["q.target"]
    -- CE to o^eval and KL(softmax f || softmax q), batch mean (eq. (16), T = 1)
    local lq, lf = acq.log_softmax(qr, 1), acq.log_softmax(f, 1)
    local ce = -(lq:gather(1, target:view(-1, 1))):mean()
    local kd = (lf:exp() * (lf - lq)):sum() / 8
    H.rel(ce, G["q.L_CE"], 1e-5, "L_CE")
    H.rel(kd, G["q.L_KD"], 1e-5, "L_KD")
    local L = ce + kd
    H.rel(L, G["q.L_Q"], 1e-5, "L_Q")
    L:backward()
    local g = qr:grad()
    -- the reference's dL/dlogits back through acq's Q (rule 4)
    local _, ties = H.quantized_logits(R, x, G["q.logits"], "q.logits")
    local Rc = R:clone()
    ;(Rc:forward(x) * g):sum():backward()
    H.rel(H.tie_corrected_fc_grad(Rc.fc:state_dict().weight:grad(), g, ties), G["q.grad.fc.weight"], 1e-5, "grad fc")
    -- the first conv's weight gradient is a sum over N*H*W = 8192 products
    -- dL/dout * x_q with heavy cancellation: its float32 error is bounded by
    -- its operands (Higham's n u sum |terms|), doubled for the error that
    -- dL/dout itself carries, elementwise
    local out1 = R:forward(x, { to = "conv" }):detach():requires_grad_(true)
    ;(R:forward(out1, { from = "bn" }) * g):sum():backward()
    local b1 = R:act_bounds()[1]
    local xq = acq.quant.fake_quantize(x, b1.lo, b1.hi, 4)
    local W0 = acq.zeros({ 16, 3, 3, 3 }):requires_grad_(true)
    ;(acq.conv2d(xq:abs(), W0, nil, { padding = 1 }) * out1:grad():abs()):sum():backward()
    local bound = W0:grad():double() * (2 * 8192 * 2 ^ -24)
    local got, ref = Rc.conv:state_dict().weight:grad():double(), G["q.grad.conv.weight"]:double()
    local over = ((got - ref):abs() - bound):max():item()
    assert(over <= 1e-6, ("grad conv: beyond its operands' float32 bound by %g"):format(over))
    -- not vacuous: the bound is below the gradient itself at most elements,
    -- so a wrong sign fails there
    local tight = (bound:lt(ref:abs())):double():mean():item()
    assert(tight > 0.5, ("grad conv: the bound exceeds |grad| at %.0f %% of the elements"):format(100 * (1 - tight)))
    assert(((-got - ref):abs() - bound):max():item() > 0, "a sign error would pass")
  end)

  it("keeps BN frozen in eval mode and leaves F untouched", function()
    local q1 = R:forward(x, { bn = "batch" })
    H.rel(q1, R:forward(x), 1e-6, "Q ignores bn = batch")
    H.quantized_logits(R, x, G["q.logits"], "q.logits")
    H.rel(F:forward(x), G["out.logits_eval"], 1e-5, "F unchanged")
    assert.equal(0, #F:act_bounds())
  end)

  it("weight codes of a quantized layer are the reference's", function()
    local codes, s, b = Q.layer2[0].conv1:weight_codes()
    H.equal(codes, G["quant.w4.codes"], "codes")
    H.equal((codes:float() + b) * s, G["quant.w4.weight"], "dequantized")
  end)
end)

describe("export of a quantized model", function()
  it("holds integer codes, scales and offsets, and reads back to the same logits", function()
    local F = H.golden_fp()
    local x = H.golden_x()
    local Q = acq.quant.quantize(F, "w4a4,last=w8a8")
    Q:forward(x)
    Q:quant_state "frozen"
    local path = os.tmpname()
    acq.export.save(Q, path, { model = "resnet20", classes = 10, in_channels = 3, spec = "w4a4,last=w8a8" })
    local t, meta = acq.safetensors.load(path)
    assert.equal("acq-quantized-v1", meta.format)
    local codes = t["layer2.0.conv1.weight.codes"]
    assert.equal("i32", codes:dtype())
    H.equal(codes, G["quant.w4.codes"], "exported codes")
    assert.is_nil(t["layer2.0.conv1.weight"]) -- no FP copy of a quantized weight
    assert.truthy(t["layer2.0.bn1.running_var"])
    local fc = t["fc.weight.codes"]
    assert.is_true(fc:min():item() >= -128 and fc:max():item() <= 127 and fc:max():item() > 7) -- 8 bits
    local R = acq.export.load(path)
    os.remove(path)
    local q = Q:forward(x)
    assert(R:forward(x):equal(q), "logits differ after the round trip")
    assert(R:forward(x * 2):equal(Q:forward(x * 2)), "bounds not frozen alike")
  end)

  it("rejects a file that is not an exported model", function()
    local path = os.tmpname()
    acq.safetensors.save(path, { a = acq.ones(1) })
    assert.truthy(H.fails(acq.export.load, path):find("not an acq quantized model", 1, true))
    os.remove(path)
  end)
end)
