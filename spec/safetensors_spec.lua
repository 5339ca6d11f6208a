-- safetensors_spec.lua -- the reader and writer: every dtype, byte layout
-- checked independently with string.unpack, and each kind of bad file.
local acq = require "acq"
local H = require "spec.helper"

local tmp = os.tmpname()

local write = H.write_file

local read = H.read_file

-- A file from a header string and data bytes, with the true length field.
local function file_of(header, data)
  return string.pack("<I8", #header) .. header .. (data or "")
end

describe("safetensors", function()
  after_each(function() os.remove(tmp) end)

  it("round-trips every dtype, 0-d and empty tensors, and metadata", function()
    local t = {
      f32 = acq.tensor({ 1.5, -2.25 }), f64 = acq.tensor({ 3.0 }, { dtype = "f64" }),
      i64 = acq.tensor({ -7, 2 ^ 40 }, { dtype = "i64" }), i32 = acq.tensor({ 5 }, { dtype = "i32" }),
      u8 = acq.tensor({ 0, 255 }, { dtype = "u8" }), bool = acq.tensor({ true, false }),
      f16 = acq.tensor({ 0.5 }):to("f16"), bf16 = acq.tensor({ -4.0 }):to("bf16"),
      scalar = acq.tensor(2.5), empty = acq.zeros(0, 3),
    }
    acq.safetensors.save(tmp, t, { who = "spec", n = 3 })
    local back, meta, names = acq.safetensors.load(tmp)
    assert.same({ who = "spec", n = "3" }, meta)
    assert.equal(10, #names)
    for k, v in pairs(t) do
      assert.equal(v:dtype(), back[k]:dtype(), k)
      assert(v:equal(back[k]), k)
    end
    assert.same({}, back.scalar:shape())
  end)

  it("writes the documented byte layout (read back with string.unpack)", function()
    acq.safetensors.save(tmp, { w = acq.tensor { 1.0, -2.0 }, i = acq.tensor({ 3 }, { dtype = "i64" }) })
    local s = read(tmp)
    local n = string.unpack("<I8", s)
    assert.equal(0, n % 8) -- padded to 8 bytes
    local header = s:sub(9, 8 + n)
    assert.truthy(header:find('"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}', 1, true))
    assert.truthy(header:find('"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}', 1, true))
    local i, a, b = string.unpack("<i8<f<f", s, 9 + n)
    assert.same({ 3, 1.0, -2.0 }, { i, a, b })
  end)

  it("reads a file written by hand", function()
    local header = '{"x":{"dtype":"F64","shape":[2,1],"data_offsets":[0,16]},"__metadata__":{"k":"v"}}'
    write(tmp, file_of(header, string.pack("<d<d", 0.25, -8)))
    local t, meta = acq.safetensors.load(tmp)
    H.equal(t.x, { { 0.25 }, { -8 } })
    assert.equal("v", meta.k)
    local entries = acq.safetensors.header(tmp)
    assert.same({ name = "x", dtype = "F64", shape = { 2, 1 }, nbytes = 16 }, entries[1])
  end)

  it("selects by prefix and strips it", function()
    acq.safetensors.save(tmp, { ["fp.a"] = acq.ones(1), ["gen.b"] = acq.ones(2) })
    local t, _, names = acq.safetensors.load(tmp, { prefix = "fp." })
    assert.same({ "a" }, names)
    assert.truthy(t.a)
  end)

  local bad = {
    { "a missing file", nil, "No such file or directory" },
    { "a file shorter than the length field", "abc", "too short" },
    { "a truncated file (header length past the end)", string.pack("<I8", 1000) .. "{}", "does not fit in the file" },
    { "a header that is not JSON", file_of("{nope", ""), "not valid JSON" },
    { "a tensor past the end of the data (truncated data)",
      file_of('{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', string.rep("\0", 8)),
      "overrun the data section" },
    { "overlapping tensors",
      file_of('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',
        string.rep("\0", 12)), "overlap" },
    { "an unknown dtype", file_of('{"x":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}', "\0"), 'unknown dtype "F8"' },
    { "a size that does not match the shape",
      file_of('{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', string.rep("\0", 8)), "needs 12" },
    { "a negative shape", file_of('{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}', ""), "not a non-negative" },
    { "a duplicated name",
      file_of('{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"x":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', "\0\0"),
      "duplicate" },
    { "non-string metadata", file_of('{"__metadata__":{"k":1}}', ""), "is not a string" },
  }
  for _, case in ipairs(bad) do
    it("rejects " .. case[1] .. " with a message naming the file", function()
      if case[2] then write(tmp, case[2]) end
      local path = case[2] and tmp or "/nonexistent/weights.safetensors"
      local msg = H.fails(acq.safetensors.load, path)
      assert.truthy(msg:find(path, 1, true), msg)
      assert.truthy(msg:find(case[3], 1, true), msg)
    end)
  end

  it("writes atomically: a failed save leaves the old file and no temporary", function()
    acq.safetensors.save(tmp, { a = acq.ones(2) })
    local before = read(tmp)
    local freed = acq.ones(2)
    freed:free()
    H.fails(acq.safetensors.save, tmp, { a = acq.ones(3), b = freed })
    assert.equal(before, read(tmp))
    local dir = tmp:match("^(.*)/")
    local p = io.popen("ls " .. dir)
    local listing = p:read("a")
    p:close()
    assert.falsy(listing:find(tmp:match("[^/]+$") .. ".tmp", 1, true))
  end)

  it("load_weights names the file and loads nothing on a shape mismatch", function()
    local F = acq.models.resnet20 { classes = 10 }
    local sd = F:state_dict()
    sd["fc.weight"] = acq.zeros(100, 64)
    sd["fc.bias"] = acq.zeros(100)
    acq.safetensors.save(tmp, sd)
    local G = acq.models.resnet20 { classes = 10 }
    local before = G:state_dict()["conv.weight"]:clone()
    local msg = H.fails(acq.models.load_weights, G, tmp)
    assert.truthy(msg:find(tmp .. ": the weights do not fit the model", 1, true), msg)
    assert.truthy(msg:find("'fc.weight' has shape [100,64], model expects [10,64]", 1, true), msg)
    assert(G:state_dict()["conv.weight"]:equal(before))
  end)

  it("save_weights then load_weights restores the logits exactly", function()
    local F = H.golden_fp()
    acq.models.save_weights(F, tmp)
    local C = acq.models.resnet20 { classes = 10 }
    acq.models.load_weights(C, tmp)
    local x = H.golden_x()
    assert(F:forward(x):equal(C:forward(x)))
  end)

  it("refuses names and metadata that are not UTF-8 text, and paths with a NUL byte, instead of dropping them", function()
    local p = os.tmpname()
    assert.matches("tensor name 1 is not valid UTF%-8", H.fails(acq.safetensors.save, p, { ["w\xff"] = acq.ones(1) }))
    assert.matches("tensor name 1 is not valid UTF%-8", H.fails(acq.safetensors.save, p, { ["a\0b"] = acq.ones(1) }))
    assert.matches("metadata value", H.fails(acq.safetensors.save, p, { a = acq.ones(1) }, { k = "\xc3" }))
    assert.matches("metadata key", H.fails(acq.safetensors.save, p, { a = acq.ones(1) }, { ["k\0"] = "v" }))
    for _, f in ipairs { acq.write_file, acq.mkdir, acq.safetensors.load, acq.read_file } do
      assert.matches("a path with a NUL byte", H.fails(f, p .. "\0.x", "bytes"))
    end
    -- metadata edited behind the writer's back: its own checksum says so
    acq.safetensors.save(p, { a = acq.ones(2) }, { iter = "5" }, { checksum = true })
    local bytes = H.read_file(p):gsub('"iter":"5"', '"iter":"7"')
    H.write_file(p, bytes)
    assert.matches("metadata checksum mismatch", H.fails(acq.safetensors.load, p))
    os.remove(p)
  end)
end)
