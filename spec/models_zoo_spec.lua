-- models_zoo_spec.lua -- ResNet-18, ResNet-50 and MobileNetV2 against
-- torchvision: acq builds each with seeded random weights, saves and reloads
-- them through safetensors, and compares its logits with those torchvision
-- computed from the same weights (spec/fixtures/make_models_fixture.sh).
local acq = require "acq"
local H = require "spec.helper"
local fixture = require "spec.fixtures.models_fixture"

local ref = acq.safetensors.load("spec/fixtures/models.safetensors")

describe("torchvision models", function()
  for _, name in ipairs(fixture.models) do
    it(name .. ": torchvision keys, and its logits after a safetensors round trip", function()
      local model, x = fixture.build(name)
      local _, names = model:state_dict()
      assert.equal(ref[name .. ".nkeys"]:item(), #names)
      local path = os.tmpname()
      acq.models.save_weights(model, path)
      acq.manual_seed(12345) -- the fresh model starts from other weights
      local fresh = acq.models.build(name, { classes = 10 })
      acq.models.load_weights(fresh, path)
      os.remove(path)
      H.rel(fresh:forward(x, { bn = "eval" }), ref[name .. ".logits_eval"], 1e-4, name .. " eval")
      H.rel(fresh:forward(x, { bn = "batch" }), ref[name .. ".logits_batch"], 1e-4, name .. " batch")
    end)
  end

  it("tap the backbone output for the attention map", function()
    local m = acq.models.resnet18 { classes = 5 }
    local _, aux = m:forward(acq.randn(1, 3, 64, 64), { features = true })
    assert.same({ 1, 512, 2, 2 }, aux.features:shape())
    local v = acq.models.mobilenet_v2 { classes = 5, in_channels = 1 }
    local y, aux2 = v:forward(acq.randn(2, 1, 32, 32), { features = true })
    assert.same({ 2, 5 }, y:shape())
    assert.same({ 2, 1280, 1, 1 }, aux2.features:shape())
  end)
end)
