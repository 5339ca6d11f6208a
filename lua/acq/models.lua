--- acq.models -- the CNNs of the paper, composed from acq.nn modules.
--
-- The forward pass runs in C (src/nn/module.c); these builders only choose
-- the layers and their names, and the names are the state-dict keys:
--   resnet20       pytorchcv's resnet20_cifar10 layout, with the short
--                  names of spec/fixtures/golden.safetensors (conv, bn, layer1.0.conv1,
--                  layer2.0.short_conv, ..., fc); acq.models.pytorchcv_names
--                  maps pytorchcv's own keys onto them.
--   resnet18/50    torchvision's layout and keys.
--   mobilenet_v2   torchvision's layout and keys.
-- Every builder takes {classes = 10, in_channels = 3} and marks the backbone
-- output (the last block, after its activation) as the model's features,
-- the input of the attention map, eq. (3).
local acq = require "acq"
local nn = acq.nn

local M = {}

local function opts_of(o)
  o = o or {}
  return o.classes or 10, o.in_channels or 3, o
end

local function conv(cin, cout, k, stride, pad, groups)
  return nn.conv2d(cin, cout, k, { stride = stride or 1, padding = pad or 0, groups = groups or 1, bias = false })
end

-- Kaiming-normal conv weights (fan_out, ReLU gain) as torchvision and
-- pytorchcv's training code use; BN starts at weight 1, bias 0.
local function init_kaiming(model)
  acq.no_grad(function()
    for _, e in ipairs(model:named_modules("conv2d")) do
      local m = e[2]
      if m:kind() == "conv2d" then
        local w = m:state_dict().weight
        local s = w:shape()
        local fan_out = s[1] * s[3] * s[4] / m:config().groups
        w:copy_(acq.randn(s) * math.sqrt(2 / fan_out))
      end
    end
  end)
  return model
end
M.init_kaiming = init_kaiming

--- ResNet-20 for 32x32 (CIFAR) or 28x28 (Fashion-MNIST) inputs: 21 BN layers,
-- projection shortcuts (1x1 strided conv + BN), global average pooling.
function M.resnet20(o)
  local classes, cin = opts_of(o)
  local function block(i, o_, stride)
    local main = {
      { "conv1", conv(i, o_, 3, stride, 1) }, { "bn1", nn.batchnorm2d(o_) }, { "relu1", nn.relu() },
      { "conv2", conv(o_, o_, 3, 1, 1) }, { "bn2", nn.batchnorm2d(o_) },
    }
    local short
    if stride ~= 1 or i ~= o_ then
      short = { { "short_conv", conv(i, o_, 1, stride, 0) }, { "short_bn", nn.batchnorm2d(o_) } }
    end
    return nn.residual(main, short, { relu = true })
  end
  local function stage(i, o_, stride)
    return nn.sequential { block(i, o_, stride), block(o_, o_, 1), block(o_, o_, 1) }
  end
  local layer3 = stage(32, 64, 2)
  layer3:set_tap()
  return init_kaiming(nn.sequential {
    { "conv", conv(cin, 16, 3, 1, 1) }, { "bn", nn.batchnorm2d(16) }, { "relu", nn.relu() },
    { "layer1", stage(16, 16, 1) }, { "layer2", stage(16, 32, 2) }, { "layer3", layer3 },
    { "pool", nn.global_avgpool() }, { "fc", nn.linear(64, classes) },
  })
end

--- pytorchcv resnet20_cifar10 key -> acq key (nil for keys with no place).
function M.pytorchcv_names(key)
  local k = key
  k = k:gsub("^features%.init_block%.conv%.", "conv.")
  k = k:gsub("^features%.init_block%.bn%.", "bn.")
  k = k:gsub("^features%.stage(%d+)%.unit(%d+)%.", function(s, u)
    return ("layer%d.%d."):format(tonumber(s), tonumber(u) - 1)
  end)
  k = k:gsub("%.body%.conv(%d)%.conv%.", ".conv%1.")
  k = k:gsub("%.body%.conv(%d)%.bn%.", ".bn%1.")
  k = k:gsub("%.identity_conv%.conv%.", ".short_conv.")
  k = k:gsub("%.identity_conv%.bn%.", ".short_bn.")
  k = k:gsub("^output%.", "fc.")
  return k
end

--- torchvision ResNet (BasicBlock for 18/34, Bottleneck v1.5 for 50).
local function tv_resnet(layers, bottleneck, o)
  local classes, cin = opts_of(o)
  local expansion = bottleneck and 4 or 1
  local inplanes = 64
  local function block(planes, stride)
    local out = planes * expansion
    local main
    if bottleneck then
      main = {
        { "conv1", conv(inplanes, planes, 1) }, { "bn1", nn.batchnorm2d(planes) }, { "relu1", nn.relu() },
        { "conv2", conv(planes, planes, 3, stride, 1) }, { "bn2", nn.batchnorm2d(planes) }, { "relu2", nn.relu() },
        { "conv3", conv(planes, out, 1) }, { "bn3", nn.batchnorm2d(out) },
      }
    else
      main = {
        { "conv1", conv(inplanes, planes, 3, stride, 1) }, { "bn1", nn.batchnorm2d(planes) }, { "relu1", nn.relu() },
        { "conv2", conv(planes, planes, 3, 1, 1) }, { "bn2", nn.batchnorm2d(planes) },
      }
    end
    local short
    if stride ~= 1 or inplanes ~= out then
      short = { { "downsample", nn.sequential { conv(inplanes, out, 1, stride), nn.batchnorm2d(out) } } }
    end
    inplanes = out
    return nn.residual(main, short, { relu = true })
  end
  local function stage(planes, n, stride)
    local blocks = { block(planes, stride) }
    for _ = 2, n do blocks[#blocks + 1] = block(planes, 1) end
    return nn.sequential(blocks)
  end
  local l1, l2, l3 = stage(64, layers[1], 1), stage(128, layers[2], 2), stage(256, layers[3], 2)
  local l4 = stage(512, layers[4], 2)
  l4:set_tap()
  return init_kaiming(nn.sequential {
    { "conv1", conv(cin, 64, 7, 2, 3) }, { "bn1", nn.batchnorm2d(64) }, { "relu", nn.relu() },
    { "maxpool", nn.maxpool2d(3, { stride = 2, padding = 1 }) },
    { "layer1", l1 }, { "layer2", l2 }, { "layer3", l3 }, { "layer4", l4 },
    { "avgpool", nn.global_avgpool() }, { "fc", nn.linear(512 * expansion, classes) },
  })
end

--- torchvision's ResNet-18 (layout and state-dict keys); o: {classes = 1000}.
function M.resnet18(o) return tv_resnet({ 2, 2, 2, 2 }, false, o) end
--- torchvision's ResNet-50 (bottleneck blocks); o: {classes = 1000}.
function M.resnet50(o) return tv_resnet({ 3, 4, 6, 3 }, true, o) end

--- torchvision MobileNetV2 (width 1.0): inverted residual blocks with ReLU6.
function M.mobilenet_v2(o)
  local classes, cin = opts_of(o)
  local function cna(i, o_, k, stride, groups) -- Conv2dNormActivation
    return nn.sequential { conv(i, o_, k, stride or 1, (k - 1) // 2, groups), nn.batchnorm2d(o_), nn.relu6() }
  end
  local features = { cna(cin, 32, 3, 2) }
  local inp = 32
  local settings = { { 1, 16, 1, 1 }, { 6, 24, 2, 2 }, { 6, 32, 3, 2 }, { 6, 64, 4, 2 },
                     { 6, 96, 3, 1 }, { 6, 160, 3, 2 }, { 6, 320, 1, 1 } }
  for _, s in ipairs(settings) do
    local t, c, n, first_stride = s[1], s[2], s[3], s[4]
    for i = 1, n do
      local stride = i == 1 and first_stride or 1
      local hidden = math.floor(inp * t + 0.5)
      local layers = {}
      if t ~= 1 then layers[#layers + 1] = cna(inp, hidden, 1) end
      layers[#layers + 1] = cna(hidden, hidden, 3, stride, hidden)
      layers[#layers + 1] = conv(hidden, c, 1)
      layers[#layers + 1] = nn.batchnorm2d(c)
      local body = nn.sequential(layers)
      if stride == 1 and inp == c then
        features[#features + 1] = nn.residual({ { "conv", body } }, nil, { relu = false })
      else
        features[#features + 1] = nn.sequential { { "conv", body } }
      end
      inp = c
    end
  end
  features[#features + 1] = cna(inp, 1280, 1)
  local feats = nn.sequential(features)
  feats:set_tap()
  return init_kaiming(nn.sequential {
    { "features", feats }, { "pool", nn.global_avgpool() },
    { "classifier", nn.sequential { nn.dropout(), nn.linear(1280, classes) } },
  })
end

--- The format of a weights file from its first bytes: "safetensors" or
-- "pth" (a zip-format torch.save file); nil and a reason otherwise.
function M.weights_format(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local head = f:read(8) or ""
  f:close()
  if head:sub(1, 4) == "PK\3\4" then return "pth" end
  -- legacy torch.save: pickle protocol 2, then its magic number (acq.pth says
  -- what to do with it); a safetensors header this long could not exist
  if head == "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46" then return "pth" end
  if #head == 8 then return "safetensors" end   -- its reader checks the rest
  return nil, path .. ": too short for a weights file"
end

-- Checkpoints wrap the state dict ({"state_dict": ..., "epoch": 90,
-- "optimizer": ...}) and DataParallel prefixes "module."; keep the model's.
local WRAPPERS = { "state_dict", "model_state_dict", "model", "net", "module" }

-- The entries of t whose keys start with prefix, renamed without it, and
-- whether any and whether every key had it.
local function under(t, prefix)
  local sub, any, all = {}, false, true
  for k, v in pairs(t) do
    if k:sub(1, #prefix) == prefix then sub[k:sub(#prefix + 1)] = v; any = true else all = false end
  end
  return sub, any, all
end

--- The state dict inside a checkpoint (its "state_dict", "model", ... entry,
-- and without DataParallel's "module." prefix): t itself when it is one.
function M.unwrap(t)
  for _, w in ipairs(WRAPPERS) do
    local sub, any, all = under(t, w .. ".")
    -- a wrapper holds the model; "module." only counts when every key has it
    if any and (all or w ~= "module") then t = sub end
  end
  return t
end

--- Reads a weights file: safetensors, or a PyTorch torch.save file (.pth,
-- .pt, .tar: a state_dict, possibly inside a checkpoint dict). Returns the
-- name -> tensor table and the format.
function M.read_weights(path, o)
  o = o or {}
  local format, err = M.weights_format(path)
  if not format then error(err, 2) end
  if format == "safetensors" then return acq.safetensors.load(path, { prefix = o.prefix }), format end
  local t = M.unwrap((acq.pth.load(path)))
  if o.prefix then t = (under(t, o.prefix)) end
  return t, format
end

--- Loads weights from a safetensors or torch.save file into model, checking
-- every key and shape first (nothing is loaded on error; the message names
-- the file). o.map: "pytorchcv", "auto" (pytorchcv when its keys are
-- there) or a function(key) -> key (nil drops the key); o.prefix: only
-- keys starting with it, stripped; o.strict (default true).
function M.load_weights(model, path, o)
  o = o or {}
  local t = M.read_weights(path, o)
  local map = o.map
  if map == "auto" then
    map = nil
    for k in pairs(t) do if k:match("^features%.init_block%.") then map = "pytorchcv" end end
  end
  if map == "pytorchcv" then map = M.pytorchcv_names end
  if map then
    local mapped = {}
    for k, v in pairs(t) do
      local nk = map(k)
      if nk then mapped[nk] = v end
    end
    t = mapped
  end
  return model:load_state_dict(t, { strict = o.strict ~= false, source = path })
end

--- Writes the model's state dict (parameters and running statistics) to a
-- safetensors file, atomically.
function M.save_weights(model, path, metadata)
  acq.safetensors.save(path, (model:state_dict()), metadata)
end

--- Builds a model by name: "resnet20", "resnet18", "resnet50", "mobilenet_v2".
function M.build(name, o)
  local f = M[name]
  if type(f) ~= "function" or not M.names[name] then
    error(("unknown model '%s' (known: resnet20, resnet18, resnet50, mobilenet_v2)"):format(tostring(name)), 2)
  end
  return f(o)
end

M.names = { resnet20 = true, resnet18 = true, resnet50 = true, mobilenet_v2 = true }

return M
