-- pth_spec.lua -- PyTorch torch.save files: spec/fixtures/checkpoint.pth was
-- written by Debian's python3-torch (make_pth_fixture.py) from arange-based
-- values that are recomputed here; models round-trip through acq.pth.save.
local acq = require "acq"
local H = require "spec.helper"

local FIX = "spec/fixtures/"
local tmp = os.tmpname()

local function keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

describe("acq.pth", function()
  after_each(function() os.remove(tmp) end)

  it("reads a checkpoint written by torch.save: every dtype, nesting, views", function()
    local t, names, info = acq.pth.load(FIX .. "checkpoint.pth")
    -- 10 state_dict entries + the optimizer's buffer; "epoch", "lr", None skipped
    assert.equal(11, #names)
    assert.equal(3, info.skipped)
    assert.equal("state_dict.conv.weight", names[1]) -- file order
    local s = function(k) return t["state_dict." .. k] end
    local w = s "conv.weight"
    assert.equal("f32", w:dtype())
    assert.same({ 4, 3, 3, 3 }, w:shape())
    assert(w:equal(acq.arange(0, 108, { dtype = "f32" }):reshape(4, 3, 3, 3) / 7))
    assert.equal("i64", s("bn.num_batches_tracked"):dtype())
    assert.same({}, s("bn.num_batches_tracked"):shape())
    assert.equal(12345678901, s("bn.num_batches_tracked"):item())
    assert.equal("f16", s("half"):dtype())
    H.equal(s("half"):to("f32"), { -0.5, -0.25, 0, 0.25, 0.5 })
    assert.equal("bf16", s("bfloat"):dtype())
    H.equal(s("bfloat"):to("f32"), { -2.5, 0, 2.5 })
    assert.equal("f64", s("double"):dtype())
    H.equal(s("double"), { { 0, 1 / 3, 2 / 3 }, { 1, 4 / 3, 5 / 3 } })
    H.equal(s("mask"), { false, true, false, true })
    -- a transposed (non-contiguous) tensor keeps its logical layout
    H.equal(s("view"), { { 0, 3 }, { 1, 4 }, { 2, 5 } })
    H.equal(s("nested.0"), { -3, 4 })
    assert.equal("i32", s("nested.0"):dtype())
    assert.is_true(s("nested.1"):item())
    -- two names over one storage in the file are independent copies here
    local m = t["optimizer.momentum_buffers.0"]
    assert.equal("f32", m:dtype())
    H.close(m, { { 0, 1 / 3, 2 / 3 }, { 1, 4 / 3, 5 / 3 } }, 1e-7)
    m:fill_(9)
    H.close(s("tied"), { 0, 1 / 3, 2 / 3, 1, 4 / 3, 5 / 3 }, 1e-7)
  end)

  it("load_weights finds the state_dict inside a checkpoint", function()
    local t, format = acq.models.read_weights(FIX .. "checkpoint.pth")
    assert.equal("pth", format)
    assert.truthy(t["conv.weight"])
    assert.falsy(t["state_dict.conv.weight"])
    assert.falsy(t["optimizer.momentum_buffers.0"])
  end)

  it("unwraps checkpoint dicts and DataParallel's module. prefix", function()
    local x = acq.zeros(1)
    local u = acq.models.unwrap { ["model.module.a"] = x, ["model.module.b"] = x, ["epoch_t"] = x }
    assert.same({ "a", "b" }, keys(u))
    -- module. is only stripped when every key carries it
    u = acq.models.unwrap { ["module.a"] = x, ["b"] = x }
    assert.same({ "b", "module.a" }, keys(u))
  end)

  it("round-trips a model: acq.pth.save, then load_weights gives the same logits", function()
    acq.manual_seed(5)
    local a = acq.models.resnet20 { classes = 10, in_channels = 1 }
    acq.pth.save(tmp, (a:state_dict()))
    local b = acq.models.resnet20 { classes = 10, in_channels = 1 }
    acq.models.load_weights(b, tmp)
    local x = acq.randn(3, 1, 28, 28)
    assert(a:forward(x):equal(b:forward(x)))
    -- and a pytorchcv-keyed file is recognised by map = "auto"
    local pcv = {}
    for k, v in pairs(a:state_dict()) do
      local key = k:gsub("^conv%.", "features.init_block.conv."):gsub("^bn%.", "features.init_block.bn.")
      pcv[key] = v
    end
    acq.pth.save(tmp, pcv)
    local c = acq.models.resnet20 { classes = 10, in_channels = 1 }
    local ok = pcall(acq.models.load_weights, c, tmp, { map = "auto" })
    -- the init block maps; the other (acq-named) keys pass through unchanged
    assert.is_true(ok)
    assert(a:forward(x):equal(c:forward(x)))
  end)

  it("names the file and the problem for files it cannot read; fuzzed files never crash", function()
    local function err(path)
      local ok, e = pcall(acq.pth.load, path)
      assert.is_false(ok)
      return tostring(e)
    end
    assert.truthy(err(FIX .. "legacy.pth"):find("legacy.pth: a legacy torch.save file", 1, true))
    assert.truthy(err(FIX .. "module.pth"):find("module.pth: .*save the model's state_dict%(%)"))
    -- an nn.Parameter (not what state_dict() saves) reads as its data
    H.equal(acq.pth.load(FIX .. "parameter.pth").w, { 1, 1 })
    assert.truthy(err(FIX .. "nothere.pth"):find("nothere.pth: No such file", 1, true))
    H.write_file(tmp, "hello, not a zip")
    assert.truthy(err(tmp):find("not a torch.save file", 1, true))
    -- truncations and flipped bytes of a real file: an error, never a crash
    local good = H.read_file(FIX .. "checkpoint.pth")
    local rng = acq.generator(11)
    for i = 1, 200 do
      local s
      if i <= 40 then
        s = good:sub(1, math.floor(#good * i / 41))
      else
        local pos = acq.randint(1, #good + 1, { 1 }, { generator = rng }):item()
        local byte = acq.randint(0, 256, { 1 }, { generator = rng }):item()
        s = good:sub(1, pos - 1) .. string.char(byte) .. good:sub(pos + 1)
      end
      H.write_file(tmp, s)
      local ok, t = pcall(acq.pth.load, tmp)
      if ok then assert.equal("table", type(t)) end
    end
    -- a load that fails leaves the model untouched
    local model = acq.models.resnet20 { classes = 10, in_channels = 1 }
    local before = model:state_dict()["conv.weight"]:clone()
    H.write_file(tmp, good:sub(1, #good // 2))
    assert.is_false(pcall(acq.models.load_weights, model, tmp))
    assert(model:state_dict()["conv.weight"]:equal(before))
  end)
end)

describe("weights_format", function()
  it("tells the formats apart by their first bytes, whatever a safetensors header length is", function()
    local tmp = os.tmpname()
    assert.equal("pth", acq.models.weights_format("spec/fixtures/checkpoint.pth"))
    assert.equal("pth", acq.models.weights_format("spec/fixtures/legacy.pth"))
    -- safetensors headers whose length starts with the bytes of a zip or a pickle
    for _, n in ipairs { 0x80, 0x0280, 0x4b50 } do
      H.write_file(tmp, string.pack("<I8", n) .. string.rep(" ", n))
      assert.equal("safetensors", acq.models.weights_format(tmp))
    end
    os.remove(tmp)
  end)
end)
