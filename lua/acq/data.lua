--- acq.data -- datasets for evaluation and for training the demo's FP model.
--
-- Data-free means the ACQ training loop never sees any of this: recipes
-- pass datasets to evaluation (acq.eval) and, in the Fashion-MNIST demo, to
-- the training of the full-precision model, and nowhere else.
--
--   acq.data.fashion_mnist{root = DIR, split = "train" | "test"}
--   acq.data.cifar{root = DIR, classes = 10 | 100, split = "train" | "test"}
--   acq.data.image_folder{root = DIR, resize = 256, crop = 224}
--                                           ImageNet-style class subfolders
--   acq.data.read_idx(path)                 one idx file (gzip or not)
--   acq.data.subset(ds, n, seed)            n samples drawn without replacement
--   acq.data.loader(ds, {batch_size, shuffle, seed, drop_last})
--
-- A dataset is a table {name, images = u8 [N,C,H,W], labels = i64 [N],
-- classes = {names}, mean = {..}, std = {..}}, or, when its images do not
-- fit in memory, {name, n, get = function(i) -> u8 [C,H,W] (0-based),
-- labels, classes, mean, std}; the loader yields float32 batches
-- normalised with the dataset's mean and std.
local acq = require "acq"

local D = {}

D.FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
D.FASHION_MNIST_CLASSES = { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                            "Sneaker", "Bag", "Ankle boot" }

-- stat only (opening a FIFO would block); acq.read_file then refuses
-- anything but a regular file with a message
local exists = acq.exists

-- path or path.gz, whichever exists.
local function find(root, base, what)
  for _, p in ipairs { root .. "/" .. base, root .. "/" .. base .. ".gz" } do
    if exists(p) then return p end
  end
  error(("%s: %s/%s[.gz] not found%s"):format(what, root, base,
    root == D.FASHION_MNIST_ROOT and " (apt-get install dataset-fashion-mnist)" or ""), 0)
end

local IDX_TYPES = { [0x08] = { "u8", 1 }, [0x09] = { "u8", 1 }, [0x0B] = { "i32", 2 }, [0x0C] = { "i32", 4 },
                    [0x0D] = { "f32", 4 }, [0x0E] = { "f64", 8 } }

--- Reads an idx file (the MNIST format: big-endian header, then the data).
function D.read_idx(path)
  local s = acq.read_file(path)
  if #s < 4 then error(path .. ": too short for an idx file", 0) end
  local z1, z2, ty, nd = s:byte(1, 4)
  local t = IDX_TYPES[ty]
  if z1 ~= 0 or z2 ~= 0 or not t or nd == 0 then error(path .. ": not an idx file (bad magic number)", 0) end
  if #s < 4 + 4 * nd then error(path .. ": truncated idx header", 0) end
  local shape, n = {}, 1
  for i = 1, nd do
    shape[i] = string.unpack(">I4", s, 5 + 4 * (i - 1))
    n = n * shape[i]
  end
  local off = 4 + 4 * nd
  if #s - off ~= n * t[2] then
    error(("%s: %d data bytes, the header promises %d (truncated?)"):format(path, #s - off, n * t[2]), 0)
  end
  if t[2] > 1 then -- idx stores big-endian: reverse each element's bytes
    local parts = {}
    for i = 0, n - 1 do parts[i + 1] = s:sub(off + i * t[2] + 1, off + (i + 1) * t[2]):reverse() end
    s, off = table.concat(parts), 0
  end
  return acq.frombytes(s, t[1], shape, off)
end

--- Fashion-MNIST (Debian's dataset-fashion-mnist by default).
function D.fashion_mnist(o)
  o = o or {}
  local root = o.root or D.FASHION_MNIST_ROOT
  local split = o.split or "test"
  local prefix = ({ train = "train", test = "t10k" })[split]
  if not prefix then error("fashion_mnist: split must be 'train' or 'test', got " .. tostring(split), 2) end
  local images = D.read_idx(find(root, prefix .. "-images-idx3-ubyte", "fashion-mnist"))
  local labels = D.read_idx(find(root, prefix .. "-labels-idx1-ubyte", "fashion-mnist"))
  local n = images:shape()[1]
  if labels:shape()[1] ~= n then error(("fashion-mnist: %d images but %d labels"):format(n, labels:shape()[1]), 0) end
  return {
    name = "fashion-mnist-" .. split,
    images = images:view(n, 1, 28, 28), labels = labels:long(),
    classes = D.FASHION_MNIST_CLASSES, mean = D.FASHION_NORM.mean, std = D.FASHION_NORM.std,
  }
end

--- CIFAR-10/100 from the binary distribution (cifar-10-batches-bin/*.bin,
-- cifar-100-binary/{train,test}.bin); root is the folder holding the files.
function D.cifar(o)
  o = o or {}
  local classes = o.classes or 10
  local split = o.split or "test"
  local root = o.root or error("cifar: root (the folder of the .bin files) is required", 2)
  local files, label_bytes
  if classes == 10 then
    files = split == "train" and { "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                                   "data_batch_5.bin" } or { "test_batch.bin" }
    label_bytes = 1
  elseif classes == 100 then
    files = { split == "train" and "train.bin" or "test.bin" }
    label_bytes = 2 -- coarse, fine
  else
    error("cifar: classes must be 10 or 100", 2)
  end
  local rec = label_bytes + 3072
  local imgs, labs = {}, {}
  for _, f in ipairs(files) do
    local path = find(root, f, "cifar-" .. classes)
    local s = acq.read_file(path)
    if #s == 0 or #s % rec ~= 0 then
      error(("%s: %d bytes is not a whole number of %d-byte records (truncated?)"):format(path, #s, rec), 0)
    end
    local t = acq.frombytes(s, "u8", { #s // rec, rec })
    imgs[#imgs + 1] = t:narrow(1, label_bytes, 3072):contiguous():view(-1, 3, 32, 32)
    labs[#labs + 1] = t:select(1, label_bytes - 1):long()
  end
  return {
    name = ("cifar%d-%s"):format(classes, split),
    images = acq.cat(imgs, 0), labels = acq.cat(labs, 0), classes = nil,
    mean = D.CIFAR_NORM[classes].mean, std = D.CIFAR_NORM[classes].std,
  }
end

local IMAGE_EXTENSIONS = { jpg = true, jpeg = true, png = true }
-- Fashion-MNIST's statistics (of its training images)
D.FASHION_NORM = { mean = { 0.2860 }, std = { 0.3530 } }
-- CIFAR's per-channel statistics (the peers' Normalize), by class count
D.CIFAR_NORM = {
  [10] = { mean = { 0.4914, 0.4822, 0.4465 }, std = { 0.2470, 0.2435, 0.2616 } },
  [100] = { mean = { 0.5071, 0.4865, 0.4409 }, std = { 0.2673, 0.2564, 0.2762 } },
}
-- ImageNet's per-channel statistics (torchvision's Normalize)
D.IMAGENET_MEAN, D.IMAGENET_STD = { 0.485, 0.456, 0.406 }, { 0.229, 0.224, 0.225 }

-- Python's round(): half to even (torchvision's centre crop uses it).
local function round_half_even(x)
  local f = math.floor(x)
  local d = x - f
  if d > 0.5 or (d == 0.5 and f % 2 == 1) then return f + 1 end
  return f
end

--- One image the way torchvision's ImageNet evaluation transform sees it:
-- decoded to RGB (acq.decode_image, as PIL's convert("RGB")),
-- Resize(resize): the shorter side to `resize` (the longer one to
-- int(resize * long / short)) with PIL's bilinear filter, bit for bit
-- (acq.resize_image), then CenterCrop(crop). Returns u8 [3, crop, crop].
function D.load_image(path, resize, crop, max_pixels)
  local img = acq.decode_image(path, max_pixels and { max_pixels = max_pixels } or nil)
  local h, w = img:shape()[1], img:shape()[2]
  local oh, ow
  if h <= w then oh, ow = resize, math.floor(resize * w / h) else oh, ow = math.floor(resize * h / w), resize end
  if oh < crop or ow < crop then
    error(("%s: resized to %dx%d, smaller than the %d crop"):format(path, oh, ow, crop), 0)
  end
  if oh ~= h or ow ~= w then img = acq.resize_image(img, oh, ow) end
  local top, left = round_half_even((oh - crop) / 2), round_half_even((ow - crop) / 2)
  return img:narrow(0, top, crop):narrow(1, left, crop):permute(2, 0, 1):contiguous()
end

--- An ImageNet-style folder: one subfolder per class (sorted names give the
-- class indices, as torchvision's ImageFolder), JPEG or PNG files in each
-- (sorted). Images are decoded when a batch asks for them. resize (256) and
-- crop (224) as torchvision's ImageNet evaluation; mean/std ImageNet's.
-- An image that cannot be read or decoded (or is above max_pixels, default
-- PIL's limit) is an error naming it (on_error = "refuse", the default), or,
-- with on_error = "skip", is left out of its batch and its path added to
-- ds.unreadable (accuracy then counts the images that were read).
function D.image_folder(o)
  o = o or {}
  local root = o.root or error("image_folder: root (the folder of class folders) is required", 2)
  if not acq.isdir(root) then error(("%s: no such folder"):format(root), 0) end
  local resize, crop = o.resize or 256, o.crop or 224
  local on_error = o.on_error or "refuse"
  if on_error ~= "refuse" and on_error ~= "skip" then
    error(("image_folder: on_error must be refuse or skip, got '%s'"):format(tostring(on_error)), 2)
  end
  local classes, paths, labels, other = {}, {}, {}, 0
  for _, c in ipairs(acq.listdir(root)) do
    local dir = root .. "/" .. c
    if acq.isdir(dir) then
      classes[#classes + 1] = c
      for _, f in ipairs(acq.listdir(dir)) do
        local ext = f:match("%.([^.]+)$")
        if ext and IMAGE_EXTENSIONS[ext:lower()] then
          paths[#paths + 1] = dir .. "/" .. f
          labels[#labels + 1] = #classes - 1
        else
          other = other + 1
        end
      end
    end
  end
  if #classes == 0 then error(("%s: no class subfolders (expected <root>/<class>/<image>.JPEG)"):format(root), 0) end
  if #paths == 0 then error(("%s: no JPEG or PNG files in its %d class folders"):format(root, #classes), 0) end
  local ds = {
    name = "image_folder:" .. root, n = #paths, paths = paths, skipped = other, unreadable = {},
    labels = acq.tensor(labels, { dtype = "i64" }), classes = classes,
    mean = o.mean or D.IMAGENET_MEAN, std = o.std or D.IMAGENET_STD,
  }
  function ds.get(i)
    if on_error == "refuse" then return D.load_image(paths[i + 1], resize, crop, o.max_pixels) end
    local ok, img = pcall(D.load_image, paths[i + 1], resize, crop, o.max_pixels)
    if ok then return img end
    ds.unreadable[#ds.unreadable + 1] = tostring(img)
    return nil
  end
  return ds
end

--- The number of samples of a dataset.
function D.size(ds)
  return ds.n or ds.images:shape()[1]
end

-- The u8 images of the samples at idx (an i64 tensor of 0-based indices),
-- and the indices kept (a get that returns nil leaves its sample out).
local function images_at(ds, idx)
  if ds.images then return ds.images:index_select(0, idx), idx end
  local list, kept = {}, {}
  for _, i in ipairs(idx:totable()) do
    local img = ds.get(i)
    if img then list[#list + 1], kept[#kept + 1] = img, i end
  end
  if #list == 0 then return nil end
  return acq.stack(list, 0), #kept < idx:numel() and acq.tensor(kept, { dtype = "i64" }) or idx
end

--- A fixed random subset of n samples (all of them if n >= size), drawn
-- with acq.randperm from seed and kept in dataset order.
function D.subset(ds, n, seed)
  local size = D.size(ds)
  if n >= size then return ds end
  local pick = acq.randperm(size, { generator = acq.generator(seed or 0) }):narrow(0, 0, n):totable()
  table.sort(pick)
  local idx = acq.tensor(pick, { dtype = "i64" })
  local sub = {}
  for k, v in pairs(ds) do sub[k] = v end
  sub.name, sub.labels = ("%s[%d of %d]"):format(ds.name, n, size), ds.labels:index_select(0, idx)
  if ds.images then
    sub.images = ds.images:index_select(0, idx)
  else
    local get = ds.get
    sub.n, sub.get = n, function(i) return get(pick[i + 1]) end
  end
  return sub
end

--- Normalises u8 images [B,C,H,W] to float32 with the dataset's mean/std.
function D.normalize(ds, images)
  local c = images:shape()[2]
  local mean = acq.tensor(ds.mean):view(1, c, 1, 1)
  local std = acq.tensor(ds.std):view(1, c, 1, 1)
  return (images:float() / 255 - mean) / std
end

--- Iterates over (x, y) batches: for x, y in acq.data.loader(ds, {...}) do.
-- batch_size (256), shuffle (false) with generator (an acq.generator, so
-- successive epochs differ) or seed (0) for a fixed order,
-- drop_last (false), transform: function(x) -> x on each float batch.
function D.loader(ds, o)
  o = o or {}
  local bs = o.batch_size or 256
  if math.type(bs) ~= "integer" or bs < 1 then
    error(("acq.data.loader: batch_size must be a whole number of at least 1, got %s"):format(tostring(bs)), 2)
  end
  local n = D.size(ds)
  local order
  if o.shuffle then -- torch.randperm's order for the same seed
    order = acq.randperm(n, { generator = o.generator or acq.generator(o.seed or 0) })
  end
  local start = 0
  local function batch()
    if start >= n or (o.drop_last and start + bs > n) then return nil end
    local len = math.min(bs, n - start)
    local xi, yi
    if order or not ds.images then
      local sel = order and order:narrow(0, start, len) or acq.arange(start, start + len, { dtype = "i64" })
      local kept
      xi, kept = images_at(ds, sel)
      if not xi then -- every image of the batch was left out
        start = start + len
        return batch()
      end
      yi = ds.labels:index_select(0, kept)
    else
      xi, yi = ds.images:narrow(0, start, len), ds.labels:narrow(0, start, len)
    end
    start = start + len
    local x = D.normalize(ds, xi)
    if o.transform then x = o.transform(x) end
    return x, yi
  end
  return batch
end

return D
