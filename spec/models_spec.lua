-- models_spec.lua -- the FP ResNet-20 F against spec/fixtures/golden.safetensors: logits
-- in the eval and batch-statistics modes, BN input statistics, the backbone
-- output feeding eq. (3); the three BN modes; state dicts; the other models.
local acq = require "acq"
local H = require "spec.helper"

local G = H.golden()

-- The backbone output is checked through eq. (3) (acq.attention, itself
-- checked in loss_spec), and the recorded BN statistics through the
-- per-layer terms of eq. (6) (acq.loss.bns).
local attention = acq.attention

describe("ResNet-20 F with the reference weights", function()
  local F = H.golden_fp()
  local x = H.golden_x()

  it("F^eval logits and o^eval", function()
    local y = F:forward(x, { bn = "eval" })
    H.rel(y, G["out.logits_eval"], 1e-5, "logits_eval")
    H.equal(y:argmax(1), G["out.o_eval"], "o_eval")
  end)

  it("F^train logits (batch statistics)", function()
    local y = F:forward(x, { bn = "batch" })
    H.rel(y, G["out.logits_train"], 1e-5, "logits_train")
  end)

  it("the backbone output gives the reference attention maps in both modes", function()
    for mode, key in pairs { eval = "out.att_eval", batch = "out.att_train" } do
      local _, aux = F:forward(x, { bn = mode, features = true })
      assert.same({ 8, 64, 8, 8 }, aux.features:shape())
      H.rel(attention(aux.features), G[key], 1e-5, key)
    end
  end)

  it("records the 21 BN inputs in forward order with their names", function()
    local _, aux = F:forward(x, { bn = "eval", stats = true })
    local names = {}
    for i, s in ipairs(aux.stats) do names[i] = s.name end
    local expect = { "bn" }
    for l = 1, 3 do
      for b = 0, 2 do
        local p = ("layer%d.%d."):format(l, b)
        expect[#expect + 1] = p .. "bn1"
        expect[#expect + 1] = p .. "bn2"
        if b == 0 and l > 1 then expect[#expect + 1] = p .. "short_bn" end
      end
    end
    assert.same(expect, names)
    -- the per-layer terms of eq. (6), variance form, from the recorded
    -- mean and biased variance: a wrong axis or the unbiased variance fails
    local _, terms = acq.loss.bns(aux.stats)
    H.rel(terms, G["loss.L_BNS_layers"], 1e-5, "L_BNS_layers")
    local _, aux2 = F:forward(x, { bn = "batch", stats = true })
    local _, pen = acq.loss.bns(aux2.stats)
    H.rel(pen, G["loss.Pen_BNS_layers"], 1e-5, "Pen_BNS_layers")
  end)

  it("BN statistics carry the gradient to the input", function()
    local xi = x:clone():requires_grad_()
    local _, aux = F:forward(xi, { bn = "eval", stats = true })
    aux.stats[1].var:sum():backward()
    -- d/dx of the sum of the first layer's input variances is nonzero
    assert.is_true(xi:grad():abs():sum():item() > 0)
  end)
end)

describe("batch-norm modes", function()
  local function snapshot(m)
    local sd = m:state_dict()
    local out = {}
    for k, v in pairs(sd) do out[k] = v:clone() end
    return out
  end

  it("F^train (bn = 'batch') leaves every running statistic bit-identical", function()
    local F = H.golden_fp()
    local before = snapshot(F)
    F:forward(H.golden_x(), { bn = "batch" })
    F:forward(H.golden_x() * 3 + 1, { bn = "batch", stats = true })
    for k, v in pairs(F:state_dict()) do
      assert(v:equal(before[k]), k .. " changed")
    end
  end)

  it("bn = 'train' updates running stats with momentum and the unbiased variance", function()
    local bn = acq.nn.batchnorm2d(2, { momentum = 0.1 })
    local x = acq.tensor({ 1.0, 2.0, 3.0, 6.0, -1.0, 1.0, 0.0, 4.0 }, { shape = { 2, 2, 2, 1 } })
    -- channel 0 holds 1, 2, -1, 1 (mean 0.75, unbiased var 1.5833...),
    -- channel 1 holds 3, 6, 0, 4 (mean 3.25, unbiased var 6.25)
    bn:forward(x, { bn = "train" })
    local sd = bn:state_dict()
    H.close(sd.running_mean, { 0.075, 0.325 }, 1e-6)
    H.close(sd.running_var, { 0.9 + 0.1 * (1.1875 * 4 / 3), 0.9 + 0.1 * 6.25 }, 1e-6)
    assert.equal(1, sd.num_batches_tracked:item())
  end)

  it("fix_bn pins a mode whatever the forward asks", function()
    local F = H.golden_fp()
    F:fix_bn "eval"
    local y = F:forward(H.golden_x(), { bn = "batch" })
    H.rel(y, G["out.logits_eval"], 1e-5, "pinned eval")
    F:fix_bn(nil)
    H.rel(F:forward(H.golden_x(), { bn = "batch" }), G["out.logits_train"], 1e-5, "unpinned")
  end)
end)

describe("state dicts", function()
  it("hold the reference keys and shapes, 128 entries", function()
    local F = acq.models.resnet20()
    local sd, names = F:state_dict()
    assert.equal(128, #names)
    local _, _, gnames = acq.safetensors.load(H.GOLDEN, { prefix = "fp." })
    table.sort(names)
    table.sort(gnames)
    assert.same(gnames, names)
    assert.same({ 32, 16, 1, 1 }, sd["layer2.0.short_conv.weight"]:shape())
  end)

  it("parameters() are the model's own tensors (an in-place step changes the model)", function()
    local F = acq.models.resnet20()
    local p = F:parameters()
    assert.equal(65, #p) -- 22 weights, 21 x (BN weight, bias), fc bias
    acq.no_grad(function() p[#p]:fill_(7) end)
    H.close(F:state_dict()["fc.bias"], { 7, 7, 7, 7, 7, 7, 7, 7, 7, 7 })
  end)

  it("a mis-shaped, missing or unexpected key is an error naming each, and loads nothing", function()
    local F = acq.models.resnet20()
    local before = F:state_dict()["conv.weight"]:clone()
    local sd = acq.safetensors.load(H.GOLDEN, { prefix = "fp." })
    sd["fc.weight"] = acq.zeros(100, 64)
    sd["bn.bias"] = nil
    sd["extra.weight"] = acq.zeros(1)
    sd["bn.weight"] = "not a tensor"
    local msg = H.fails(F.load_state_dict, F, sd, { source = "w.safetensors" })
    assert.truthy(msg:find("'bn.weight' has a non-tensor, model expects [16]", 1, true), msg)
    assert.truthy(msg:find("w.safetensors", 1, true))
    assert.truthy(msg:find("'fc.weight' has shape [100,64], model expects [10,64]", 1, true))
    assert.truthy(msg:find("1 missing key: bn.bias", 1, true))
    assert.truthy(msg:find("1 unexpected key: extra.weight", 1, true))
    assert.is_true(F:state_dict()["conv.weight"]:equal(before))
    -- non-strict: missing/unexpected are returned, a shape mismatch still fails
    sd["fc.weight"] = acq.zeros(10, 64)
    sd["bn.weight"] = acq.ones(16)
    local missing, unexpected = F:load_state_dict(sd, { strict = false })
    assert.same({ "bn.bias" }, missing)
    assert.same({ "extra.weight" }, unexpected)
  end)

  it("clone is deep: training the copy leaves the original", function()
    local F = H.golden_fp()
    local C = F:clone()
    acq.no_grad(function() C:state_dict()["fc.bias"]:fill_(0) end)
    assert.is_false(F:state_dict()["fc.bias"]:equal(C:state_dict()["fc.bias"]))
    H.rel(F:forward(H.golden_x()), G["out.logits_eval"], 1e-5)
  end)

  it("children are reachable by name and print as a tree", function()
    local F = acq.models.resnet20()
    assert.equal("conv2d", F.layer2[0].short_conv:kind())
    assert.equal(F.layer1, F.layer1) -- the same box each time
    assert.truthy(tostring(F):find("short_conv: conv2d(16, 32, k=1x1, stride=2", 1, true))
  end)

  it("maps pytorchcv keys onto the reference names", function()
    local m = acq.models.pytorchcv_names
    assert.equal("conv.weight", m "features.init_block.conv.weight")
    assert.equal("bn.running_var", m "features.init_block.bn.running_var")
    assert.equal("layer2.0.short_conv.weight", m "features.stage2.unit1.identity_conv.conv.weight")
    assert.equal("layer3.2.bn1.bias", m "features.stage3.unit3.body.conv1.bn.bias")
    assert.equal("fc.weight", m "output.weight")
  end)
end)

describe("other models", function()
  it("ResNet-20 takes 28x28x1 inputs (7x7 grid)", function()
    local F = acq.models.resnet20 { in_channels = 1, classes = 10 }
    local y, aux = F:forward(acq.randn(2, 1, 28, 28), { features = true })
    assert.same({ 2, 10 }, y:shape())
    assert.same({ 2, 64, 7, 7 }, aux.features:shape())
  end)

  it("build() names the known models and rejects others", function()
    assert.truthy(H.fails(acq.models.build, "vgg16"):find("unknown model 'vgg16'", 1, true))
  end)
end)
