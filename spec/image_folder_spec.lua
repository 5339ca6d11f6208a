-- image_folder_spec.lua -- JPEG/PNG decoding and the ImageNet-style folder
-- reader against what PIL and torchvision made of the same files
-- (spec/fixtures/make_imagefolder_fixture.py wrote both).
local acq = require "acq"
local H = require "spec.helper"

local ROOT = "spec/fixtures/imagefolder"
local want = acq.safetensors.load("spec/fixtures/imagefolder.safetensors")
local tmp = os.tmpname()

describe("acq.decode_image", function()
  after_each(function() os.remove(tmp) end)

  it("16-bit PNGs as PIL's convert('RGB') (grey clips at 255, colour keeps the high byte); a truncated JPEG is an error", function()
    local pil = acq.safetensors.load("spec/fixtures/pil16.safetensors")
    for _, name in ipairs { "gray16.png", "rgb16.png" } do
      H.equal(acq.decode_image("spec/fixtures/pil16/" .. name), pil["decoded." .. name], name)
    end
    assert.matches("truncated", H.fails(acq.decode_image, "spec/fixtures/pil16/truncated.jpg"))
  end)

  it("decodes RGB and grey JPEG, grey and RGBA PNG, CMYK JPEG exactly as PIL's convert('RGB')", function()
    local n = 0
    for k, v in pairs(want) do
      local class, file = k:match("^decoded%.([^.]+)%.(.+)$")
      if class then
        local got = acq.decode_image(ROOT .. "/" .. class .. "/" .. file)
        assert.equal("u8", got:dtype())
        assert.same(v:shape(), got:shape(), k)
        assert(got:equal(v), k .. ": pixels differ from PIL's")
        n = n + 1
      end
    end
    assert.equal(5, n)
  end)

  it("names the file and the problem for what it cannot decode", function()
    local function err(path)
      local ok, e = pcall(acq.decode_image, path)
      assert.is_false(ok)
      return tostring(e)
    end
    assert.truthy(err(ROOT .. "/n02_dog/notes.txt"):find("notes.txt: neither a JPEG nor a PNG", 1, true))
    assert.truthy(err(ROOT .. "/none.jpg"):find("none.jpg: No such file", 1, true))
    -- truncated and corrupted files: an error or a picture, never a crash
    for _, f in ipairs { "n01_cat/a.JPEG", "n02_dog/d.png", "n03_fox/e.jpeg" } do
      local good = H.read_file(ROOT .. "/" .. f)
      H.write_file(tmp, good:sub(1, 40))
      assert.truthy(err(tmp):find(tmp, 1, true))
      local rng = acq.generator(5)
      for _ = 1, 60 do
        local pos = acq.randint(1, #good + 1, { 1 }, { generator = rng }):item()
        local byte = acq.randint(0, 256, { 1 }, { generator = rng }):item()
        H.write_file(tmp, good:sub(1, pos - 1) .. string.char(byte) .. good:sub(pos + 1))
        local ok, img = pcall(acq.decode_image, tmp)
        if ok then assert.equal(3, img:shape()[3]) end
      end
    end
  end)
end)

describe("acq.data.image_folder", function()
  it("lists classes and files in ImageFolder's order and skips non-images", function()
    local ds = acq.data.image_folder { root = ROOT, resize = 16, crop = 12 }
    assert.same({ "n01_cat", "n02_dog", "n03_fox" }, ds.classes)
    assert.equal(5, ds.n)
    assert.equal(1, ds.skipped)
    assert(ds.labels:equal(want.labels))
  end)

  it("resizes and centre-crops exactly as torchvision's Resize + CenterCrop on PIL images", function()
    local ds = acq.data.image_folder { root = ROOT, resize = 16, crop = 12 }
    local got = acq.stack({ ds.get(0), ds.get(1), ds.get(2), ds.get(3), ds.get(4) }, 0)
    assert.same({ 5, 3, 12, 12 }, got:shape())
    assert(got:equal(want.eval), "resized and cropped pixels differ from torchvision's")
    -- the unresized image (17x17 with resize 17) is a plain centre crop
    local c = acq.data.image_folder { root = ROOT, resize = 17, crop = 11 }.get(2)
    local full = acq.decode_image(ROOT .. "/n02_dog/c.jpg"):permute(2, 0, 1)
    assert(c:equal(full:narrow(1, 3, 11):narrow(2, 3, 11)))
  end)

  it("feeds the loader and the evaluator, normalised with ImageNet's statistics", function()
    local ds = acq.data.image_folder { root = ROOT, resize = 16, crop = 12 }
    local xs, ys = {}, {}
    for x, y in acq.data.loader(ds, { batch_size = 2 }) do
      xs[#xs + 1], ys[#ys + 1] = x, y
    end
    assert.equal(3, #xs)
    local x = acq.cat(xs, 0)
    local mean = acq.tensor({ 0.485, 0.456, 0.406 }):view(1, 3, 1, 1)
    local std = acq.tensor({ 0.229, 0.224, 0.225 }):view(1, 3, 1, 1)
    H.close(x, (want.eval:float() / 255 - mean) / std, 1e-6, 1e-6)
    assert(acq.cat(ys, 0):equal(want.labels))
    local sub = acq.data.subset(ds, 3, 1)
    assert.equal(3, acq.data.size(sub))
    local seen = 0
    for _, y in acq.data.loader(sub, { batch_size = 2 }) do seen = seen + y:shape()[1] end
    assert.equal(3, seen)
  end)

  it("gives one-line errors for a missing or empty folder", function()
    local ok, e = pcall(acq.data.image_folder, { root = "spec/fixtures/nothere" })
    assert.is_false(ok)
    assert.truthy(tostring(e):find("spec/fixtures/nothere: no such folder", 1, true))
    ok, e = pcall(acq.data.image_folder, { root = ROOT .. "/n01_cat" })
    assert.is_false(ok)
    assert.truthy(tostring(e):find("no class subfolders", 1, true))
  end)
end)

describe("unreadable images in a folder", function()
  local function folder_with_bad_file()
    local root = os.tmpname()
    os.remove(root)
    os.execute(("cp -r %s %s"):format(ROOT, root))
    local f = assert(io.open(root .. "/n02_dog/broken.jpg", "wb"))
    f:write("\255\216\255 this is not a JPEG")
    f:close()
    return root
  end

  it("refuse (the default) stops at the file, naming it", function()
    local root = folder_with_bad_file()
    local ds = acq.data.image_folder { root = root, resize = 16, crop = 12 }
    local ok, err = pcall(function() for _ in acq.data.loader(ds, { batch_size = 2 }) do end end)
    assert.is_false(ok)
    assert.matches("broken%.jpg: JPEG", err)
    os.execute("rm -rf '" .. root .. "'")
  end)

  it("skip leaves it out of its batch and names it; accuracy counts the rest", function()
    local root = folder_with_bad_file()
    local ds = acq.data.image_folder { root = root, resize = 16, crop = 12, on_error = "skip" }
    local n = 0
    for x, y in acq.data.loader(ds, { batch_size = 2 }) do
      assert.equal(x:size(0), y:size(0))
      n = n + y:size(0)
    end
    assert.equal(ds.n - 1, n)
    assert.equal(1, #ds.unreadable)
    assert.matches("broken%.jpg", ds.unreadable[1])
    assert.matches("on_error must be refuse or skip", H.fails(acq.data.image_folder, { root = root, on_error = "x" }))
    os.execute("rm -rf '" .. root .. "'")
  end)
end)
