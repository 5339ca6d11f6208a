-- data_spec.lua -- idx files (plain and gzip), Fashion-MNIST, CIFAR binary
-- records, the loader's normalisation, and accuracy counted by hand.
local acq = require "acq"
local H = require "spec.helper"

local tmp = os.tmpname()

local write = H.write_file

-- An idx file: magic (0, 0, type, ndim), big-endian sizes, data.
local function idx(ty, shape, data)
  local s = string.char(0, 0, ty, #shape)
  for _, n in ipairs(shape) do s = s .. string.pack(">I4", n) end
  return s .. data
end

describe("idx files", function()
  after_each(function()
    os.remove(tmp)
    os.remove(tmp .. ".gz")
  end)

  it("reads u8 images in C order", function()
    write(tmp, idx(0x08, { 2, 2, 3 }, string.char(0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255)))
    local t = acq.data.read_idx(tmp)
    assert.equal("u8", t:dtype())
    H.equal(t, { { { 0, 1, 2 }, { 3, 4, 5 } }, { { 250, 251, 252 }, { 253, 254, 255 } } })
  end)

  it("reads big-endian int32 and float64", function()
    write(tmp, idx(0x0C, { 2 }, string.pack(">i4>i4", -2, 70000)))
    H.equal(acq.data.read_idx(tmp), { -2, 70000 })
    write(tmp, idx(0x0E, { 2 }, string.pack(">d>d", 0.5, -3.25)))
    H.equal(acq.data.read_idx(tmp), { 0.5, -3.25 })
  end)

  it("reads gzip files (through zlib)", function()
    write(tmp, idx(0x08, { 3 }, string.char(7, 8, 9)))
    assert.equal(0, select(2, H.run("gzip -kf " .. tmp)))
    os.remove(tmp)
    H.equal(acq.data.read_idx(tmp .. ".gz"), { 7, 8, 9 })
  end)

  it("rejects a bad magic number, a truncated file and a missing file", function()
    write(tmp, "\1\2\3\4rest")
    assert.truthy(H.fails(acq.data.read_idx, tmp):find("not an idx file", 1, true))
    write(tmp, idx(0x08, { 10 }, "abc"))
    assert.truthy(H.fails(acq.data.read_idx, tmp):find("3 data bytes, the header promises 10", 1, true))
    assert.truthy(H.fails(acq.data.read_idx, "/nonexistent.idx"):find("/nonexistent.idx", 1, true))
  end)
end)

describe("Fashion-MNIST (Debian's dataset-fashion-mnist)", function()
  it("has 10,000 test images of 28x28 with labels 0..9, 1,000 per class", function()
    local ds = acq.data.fashion_mnist { split = "test" }
    assert.same({ 10000, 1, 28, 28 }, ds.images:shape())
    assert.equal("i64", ds.labels:dtype())
    for c = 0, 9 do assert.equal(1000, ds.labels:eq(c):sum():item()) end
    -- the first test labels of Fashion-MNIST (Ankle boot, Pullover, Trouser, ...)
    H.equal(ds.labels:narrow(0, 0, 5), { 9, 2, 1, 1, 6 })
  end)

  it("names a missing folder", function()
    local msg = H.fails(acq.data.fashion_mnist, { root = "/nonexistent/fmnist" })
    assert.truthy(msg:find("/nonexistent/fmnist/t10k-images-idx3-ubyte", 1, true), msg)
  end)
end)

describe("CIFAR binary records", function()
  it("splits label and 3x32x32 image bytes (CIFAR-10 and CIFAR-100's fine label)", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local img = {}
    for i = 1, 3072 do img[i] = string.char((i - 1) % 256) end
    img = table.concat(img)
    write(dir .. "/test_batch.bin", string.char(3) .. img .. string.char(7) .. img)
    local ds = acq.data.cifar { root = dir, classes = 10 }
    H.equal(ds.labels, { 3, 7 })
    assert.same({ 2, 3, 32, 32 }, ds.images:shape())
    assert.equal(255, ds.images[0][0][7][31]:item()) -- byte 255 of the red plane
    assert.equal(0, ds.images[1][1][0][0]:item())     -- byte 1024: green starts at 0
    write(dir .. "/test.bin", string.char(1, 42) .. img)
    H.equal(acq.data.cifar({ root = dir, classes = 100 }).labels, { 42 })
    write(dir .. "/test.bin", string.char(1, 42) .. img:sub(1, 100))
    assert.truthy(H.fails(acq.data.cifar, { root = dir, classes = 100 }):find("not a whole number", 1, true))
    os.execute("rm -rf " .. dir)
  end)
end)

describe("loader and accuracy", function()
  local ds = {
    images = acq.tensor({ 0, 255, 51, 102, 0, 0 }, { dtype = "u8", shape = { 3, 1, 1, 2 } }),
    labels = acq.tensor({ 1, 0, 2 }, { dtype = "i64" }),
    mean = { 0.5 }, std = { 0.25 },
  }

  it("normalises with the dataset's mean and std, in order, last batch short", function()
    local batches = {}
    for x, y in acq.data.loader(ds, { batch_size = 2 }) do batches[#batches + 1] = { x, y } end
    assert.equal(2, #batches)
    H.close(batches[1][1], { { { { -2, 2 } } }, { { { -1.2, -0.4 } } } }, 1e-6)
    H.equal(batches[2][2], { 2 })
  end)

  it("shuffles reproducibly with a seed, visiting every sample once", function()
    local function order(seed)
      local ys = {}
      for _, y in acq.data.loader(ds, { batch_size = 1, shuffle = true, seed = seed }) do ys[#ys + 1] = y:item() end
      return ys
    end
    assert.same(order(3), order(3))
    local s = order(3)
    table.sort(s)
    assert.same({ 0, 1, 2 }, s)
  end)

  it("shuffles in torch.randperm's order, and a generator makes epochs differ", function()
    -- torch.randperm(10, generator=torch.Generator().manual_seed(3)) in PyTorch 1.13
    assert.same({ 6, 0, 3, 7, 8, 5, 1, 9, 2, 4 }, acq.randperm(10, { generator = acq.generator(3) }):totable())
    local g = acq.generator(3)
    local function epoch()
      local ys = {}
      for _, y in acq.data.loader(ds, { batch_size = 3, shuffle = true, generator = g }) do ys = y:totable() end
      return table.concat(ys, ",")
    end
    local seen = {}
    for _ = 1, 8 do seen[epoch()] = true end
    local k = 0
    for _ in pairs(seen) do k = k + 1 end
    assert.is_true(k > 1)
  end)

  it("counts top-1 and top-5 by hand", function()
    -- a linear "model" on the 2 pixels: logits = W x, 6 classes
    local lin = acq.nn.linear(2, 6, { bias = false })
    acq.no_grad(function()
      lin:state_dict().weight:copy_(acq.tensor { { 1, 0 }, { 0, 1 }, { -1, 0 }, { 0, -1 }, { 0.5, 0.5 }, { 0, 0 } })
    end)
    local model = acq.nn.sequential { acq.nn.flatten(), lin }
    -- x: sample 0 (-2, 2): logits -2, 2, 2, -2, 0, 0 -> argmax 1 (first of the
    -- tie), label 1: top-1 hit. sample 1 (-1.2, -0.4): logits -1.2, -0.4,
    -- 1.2, 0.4, -0.8, 0 -> argmax 2, label 0 (-1.2 is the lowest: rank 5, top-5
    -- miss). sample 2 (-2, -2): argmax 2, label 2: hit.
    local top1, top5, n, pred = acq.eval.accuracy(model, acq.data.loader(ds, { batch_size = 2 }))
    assert.equal(3, n)
    H.equal(pred, { 1, 2, 2 })
    assert.near(200 / 3, top1, 1e-9)
    assert.near(200 / 3, top5, 1e-9)
    -- a recipe's evaluate(model): the same counts over the whole set, any batch size
    local e1, e5, en = acq.eval.evaluator(ds, 2)(model)
    assert.equal(3, en)
    assert.near(200 / 3, e1, 1e-9)
    assert.near(200 / 3, e5, 1e-9)
  end)
end)
