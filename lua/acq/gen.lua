--- acq.gen: the generators of GDFQ and ACQ, and the sampling of Algorithm 1.
--
-- A generator is a Lua object around one acq.Module (`G.net`, a sequential
-- whose children carry the reference's state-dict names) and a `condition`
-- step written in Lua. The layers run in C; the composition is here, so a
-- recipe can change it without recompiling:
--
--   local G = acq.gen.acq { classes = 10, size = 32, channels = 3,
--     position = function(G, p) return my_encoding(p) end }  -- replace Emb_pos
--   local x = G(z, y, p)                                     -- [B,3,32,32]
--
-- Parts a constructor takes in place of its own (no patching needed):
--   class_embedding(G, y, b) -> [B, latent]   Emb_class(y) (gdfq, acq)
--   condition(G, z, y, p, b) -> [B, latent]   the whole input vector (gdfq,
--                            acq), e.g. Qimera's BN(Emb_class(y) + z)
--   position(G, p, b)        -> [B, latent] (acq) or [B,1,h,w] (fusion)
--   fusion(G, f, P, b)       -> [B, width, s/4, s/4]: eq. (12)'s fusion
--   modules = {name = Module} trainable parts those functions use (as
--                            G.parts.name): in G:parameters() and the
--                            state dict under "name."
--   insert = {{after = "act1", name = "lka1", module = M}, ...}
--                            layers added to the body after the named
--                            layer (LRQ's large-kernel attention, say);
--                            they run in the body and are in its state
--                            dict under their name
-- b is the sample table of the iteration (acq.algorithm's sampler), so a
-- part can read a custom sampler's extra fields.
--
-- Kinds:
--   gen.gdfq   GDFQ's CIFAR generator, eq. (5): i = Emb_class(y) * z
--   gen.acq    ACQ's generator for small images, eq. (11):
--              i = (Emb_class(y) + z) * Emb_position(p)
--   gen.fusion ACQ's generator for large images, eq. (12) and Fig. 5: the
--              position matrix P = label_smooth(one_hot(p)) as h x w is fused
--              with the features f = Linear(z): f' = conv([AdaMax(f),
--              AdaAvg(f), P]), F = Up(f') + f; classes enter through
--              class-conditional BN (GDFQ's ImageNet generator).
--
-- The body is GDFQ's: Linear -> [128, s/4, s/4] -> BN -> up x2 -> conv BN
-- LeakyReLU(0.2) -> up x2 -> conv BN LeakyReLU -> conv -> tanh -> BN without
-- affine. Its two middle BN layers have eps 0.8, because GDFQ's code writes
-- nn.BatchNorm2d(128, 0.8) (0.8 lands in the eps slot); `eps = 1e-5` gives
-- ordinary BN. Generators always run their BN in train mode.
local acq = require "acq"
local nn = acq.nn

local gen = {}

local Generator = {}
Generator.__index = Generator

--- G(z, y, p [, b]) / G:forward(z, y, p, b) -> images [B, channels, size,
-- size]; b: the sample table (extra fields for replaced parts).
function Generator:forward(z, y, p, b)
  return self:body(self:condition(z, y, p, b), y)
end
Generator.__call = Generator.forward

--- The trainable tensors of the whole generator (for an optimizer).
function Generator:parameters()
  local ps = self.net:parameters()
  for _, n in ipairs(self.part_names) do
    for _, t in ipairs(self.parts[n]:parameters()) do ps[#ps + 1] = t end
  end
  return ps
end
--- {name, tensor} pairs of every trainable tensor (the constructor's modules
-- under "name.").
function Generator:named_parameters()
  local ps = self.net:named_parameters()
  for _, n in ipairs(self.part_names) do
    for _, e in ipairs(self.parts[n]:named_parameters()) do ps[#ps + 1] = { n .. "." .. e[1], e[2] } end
  end
  return ps
end
--- name -> tensor of every parameter and buffer, and the sorted names.
function Generator:state_dict()
  local t, names = self.net:state_dict()
  for _, n in ipairs(self.part_names) do
    local pt, pn = self.parts[n]:state_dict()
    for _, k in ipairs(pn) do
      t[n .. "." .. k] = pt[k]
      names[#names + 1] = n .. "." .. k
    end
  end
  return t, names
end
--- Loads a state dict made by state_dict (opts as acq.Module's).
function Generator:load_state_dict(t, opts)
  local own, parts = {}, {}
  for k, v in pairs(t) do
    local n, rest = k:match("^([^.]+)%.(.*)$")
    if n and self.parts[n] then
      parts[n] = parts[n] or {}
      parts[n][rest] = v
    else
      own[k] = v
    end
  end
  for _, n in ipairs(self.part_names) do self.parts[n]:load_state_dict(parts[n] or {}, opts) end
  return self.net:load_state_dict(own, opts)
end
--- Moves (or converts) every parameter and buffer, the constructor's
-- modules too: opts as acq.Module's to ({device = "cuda"}, {dtype = "f64"}).
-- Returns G.
function Generator:to(opts)
  self.net:to(opts)
  for _, n in ipairs(self.part_names) do self.parts[n]:to(opts) end
  return self
end

--- A description: kind, sizes and the layers.
function Generator:__tostring()
  return ("acq generator (%s, %d classes, %d positions, latent %d, %dx%dx%d)\n%s")
    :format(self.kind, self.classes, self.positions or 0, self.latent, self.channels,
      self.size, self.size, tostring(self.net))
end

local function check_opts(kind, o)
  assert(type(o) == "table", "gen." .. kind .. ": expects an options table")
  local function int(k, def)
    local v = o[k] == nil and def or o[k]
    if math.type(v) ~= "integer" or v <= 0 then
      error(("gen.%s: %s must be a positive integer, got %s"):format(kind, k, tostring(v)), 3)
    end
    return v
  end
  local s = {
    kind = kind,
    classes = int("classes", 10),
    latent = int("latent", 100),
    size = int("size", 32),
    channels = int("channels", 3),
    width = int("width", 128),
    eps = o.eps or 0.8,
  }
  if s.size % 4 ~= 0 then
    error(("gen.%s: size %d must be a multiple of 4 (two x2 upsamplings)"):format(kind, s.size), 3)
  end
  s.init = s.size // 4
  return s
end

-- GDFQ's layers after the input vector; ccbn: class-conditional BN.
local function body_layers(s, ccbn)
  local w, c = s.width, s.channels
  local function bn(ch, eps)
    if ccbn then return nn.condbn(s.classes, ch, { eps = eps }) end
    return nn.batchnorm2d(ch, { eps = eps })
  end
  return {
    { "bn0", bn(w, 1e-5) },
    { "up0", nn.upsample(2) },
    { "conv1", nn.conv2d(w, w, 3, { padding = 1 }) },
    { "bn1", bn(w, s.eps) },
    { "act1", nn.leaky_relu(0.2) },
    { "up1", nn.upsample(2) },
    { "conv2", nn.conv2d(w, w // 2, 3, { padding = 1 }) },
    { "bn2", bn(w // 2, s.eps) },
    { "act2", nn.leaky_relu(0.2) },
    { "conv3", nn.conv2d(w // 2, c, 3, { padding = 1 }) },
    { "tanh", nn.tanh() },
    { "bn_out", nn.batchnorm2d(c, { affine = false }) },
  }
end

-- The generator object; o: the constructor's options (its parts).
local function new(s, children, o)
  for _, e in ipairs(o.insert or {}) do
    if type(e) ~= "table" or type(e.after) ~= "string" or type(e.name) ~= "string" or not acq.is_module(e.module) then
      error(("gen.%s: insert takes {after = layer name, name = new name, module = acq.Module} entries"):format(s.kind), 3)
    end
    local at
    for i, c in ipairs(children) do
      if c[1] == e.name then error(("gen.%s: insert: a layer is already called '%s'"):format(s.kind, e.name), 3) end
      if c[1] == e.after then at = i end
    end
    if not at then
      local names = {}
      for i, c in ipairs(children) do names[i] = c[1] end
      error(("gen.%s: insert: no layer '%s' (layers: %s)"):format(s.kind, e.after, table.concat(names, ", ")), 3)
    end
    table.insert(children, at + 1, { e.name, e.module })
  end
  s.net = nn.sequential(children)
  s.parts, s.part_names = {}, {}
  for name, m in pairs(o.modules or {}) do
    if type(name) ~= "string" or name:find("%.") then error(("gen.%s: module names must be plain strings"):format(s.kind), 3) end
    for _, c in ipairs(children) do
      if c[1] == name then error(("gen.%s: module '%s' would shadow the layer of that name"):format(s.kind, name), 3) end
    end
    s.parts[name] = m
    s.part_names[#s.part_names + 1] = name
  end
  table.sort(s.part_names)
  for _, k in ipairs { "class_embedding", "condition", "position", "fusion" } do
    if o[k] ~= nil and type(o[k]) ~= "function" then
      error(("gen.%s: %s must be a function, got %s"):format(s.kind, k, type(o[k])), 3)
    end
  end
  local G = setmetatable(s, Generator)
  G.custom = { class_embedding = o.class_embedding, condition = o.condition, position = o.position, fusion = o.fusion }
  return G
end

--- Emb_class(y), or the constructor's class_embedding(G, y, b).
function Generator:class_embedding(y, b)
  if self.custom.class_embedding then return self.custom.class_embedding(self, y, b) end
  return self.net.label_emb(y)
end

-- Runs net from child `from` to the end in train mode (labels for CCBN).
local function run_body(G, h, y, from)
  return G.net:forward(h, { bn = "train", from = from, labels = y })
end

local function check_labels(z, y, p)
  local B = z:size(0)
  if y:size(0) ~= B then
    error(("generator: %d labels for %d noise vectors"):format(y:size(0), B), 3)
  end
  if p and p:size(0) ~= B then
    error(("generator: %d positions for %d noise vectors"):format(p:size(0), B), 3)
  end
end

--- GDFQ's generator, eq. (5): i = Emb_class(y) * z.
-- opts: classes, latent = 100, size = 32, channels = 3, width = 128, eps = 0.8.
function gen.gdfq(opts)
  local s = check_opts("gdfq", opts or {})
  local ch = {
    { "label_emb", nn.embedding(s.classes, s.latent) },
    { "l1", nn.linear(s.latent, s.width * s.init * s.init) },
    { "view", nn.unflatten { s.width, s.init, s.init } },
  }
  for _, l in ipairs(body_layers(s, false)) do ch[#ch + 1] = l end
  local G = new(s, ch, opts or {})
  function G.condition(G, z, y, p, b)
    check_labels(z, y)
    if G.custom.condition then return G.custom.condition(G, z, y, p, b) end
    return G:class_embedding(y, b) * z
  end
  function G.body(G, h) return run_body(G, h, nil, "l1") end
  return G
end

--- ACQ's generator for small images, eq. (11).
-- opts: as gen.gdfq, plus positions (h*w of the attention grid, e.g. 64 for
-- ResNet-20 on 32x32). G:position(p, b) -> [B, latent] is Emb_position, or
-- opts.position(G, p, b).
function gen.acq(opts)
  opts = opts or {}
  local s = check_opts("acq", opts)
  s.positions = opts.positions or (s.size // 4) * (s.size // 4)
  local ch = {
    { "label_emb", nn.embedding(s.classes, s.latent) },
    { "pos_emb", nn.embedding(s.positions, s.latent) },
    { "l1", nn.linear(s.latent, s.width * s.init * s.init) },
    { "view", nn.unflatten { s.width, s.init, s.init } },
  }
  for _, l in ipairs(body_layers(s, false)) do ch[#ch + 1] = l end
  local G = new(s, ch, opts)
  function G.position(G, p, b)
    if G.custom.position then return G.custom.position(G, p, b) end
    return G.net.pos_emb(p)
  end
  function G.condition(G, z, y, p, b)
    check_labels(z, y, p)
    if G.custom.condition then return G.custom.condition(G, z, y, p, b) end
    return (G:class_embedding(y, b) + z) * G:position(p, b) -- eq. (11)
  end
  function G.body(G, h) return run_body(G, h, nil, "l1") end
  return G
end

--- The position matrix of eq. (12): label_smooth(one_hot(p)) as [B,1,h,w].
-- smoothing s: (1 - s) on p, s / (h*w) spread over every position.
function gen.position_matrix(p, h, w, smoothing, dtype)
  local oh = acq.one_hot(p, h * w):to(dtype or "f32")
  local P = oh * (1 - smoothing) + smoothing / (h * w)
  return P:view(-1, 1, h, w)
end

--- ACQ's generator for large images, eq. (12) / Fig. 5.
-- opts: as gen.gdfq (size e.g. 224), plus grid = {h, w} (the attention grid,
-- 7x7 for ResNet-18 at 224) and smoothing = 0.1. G:position(p, b) ->
-- [B,1,h,w], or opts.position(G, p, b); opts.fusion(G, f, P, b) replaces
-- the fusion.
function gen.fusion(opts)
  opts = opts or {}
  local s = check_opts("fusion", opts)
  local grid = opts.grid or { 7, 7 }
  if type(grid) == "number" then grid = { grid, grid } end
  s.grid = grid
  s.positions = grid[1] * grid[2]
  s.smoothing = opts.smoothing or 0.1
  local ch = {
    { "l1", nn.linear(s.latent, s.width * s.init * s.init) },
    { "view", nn.unflatten { s.width, s.init, s.init } },
    -- f' = conv([f1, f2, P]): 2 * width + 1 channels in, width out
    { "fuse", nn.conv2d(2 * s.width + 1, s.width, 3, { padding = 1 }) },
  }
  for _, l in ipairs(body_layers(s, true)) do ch[#ch + 1] = l end
  local G = new(s, ch, opts)
  function G.position(G, p, b, dtype)
    if G.custom.position then return G.custom.position(G, p, b) end
    return gen.position_matrix(p, G.grid[1], G.grid[2], G.smoothing, dtype)
  end
  function G.condition(G, z, y, p, b)
    check_labels(z, y, p)
    local f = G.net:forward(z, { from = "l1", to = "view" }) -- f = Linear(z)
    local P = G:position(p, b, f:dtype())
    if G.custom.fusion then return G.custom.fusion(G, f, P, b) end
    local f1 = acq.adaptive_max_pool2d(f, G.grid)
    local f2 = acq.adaptive_avg_pool2d(f, G.grid)
    local fp = G.net.fuse(acq.cat({ f1, f2, P }, 1))
    return acq.upsample_nearest2d(fp, { G.init, G.init }) + f -- eq. (12)
  end
  function G.body(G, h, y) return run_body(G, h, y, "bn0") end
  return G
end

--- Samples for one iteration of Algorithm 1: two groups sharing (y, p).
-- opts: batch (per group), classes, positions (nil: no p), latent = 100,
-- generator (an acq.generator for reproducible draws), device, dtype.
-- Returns {z1 = [B,latent], z2, y = [B] int64, p = [B] int64}.
function gen.sample(opts)
  local B, K = opts.batch, opts.classes
  assert(math.type(B) == "integer" and B > 0, "gen.sample: batch must be a positive integer")
  assert(math.type(K) == "integer" and K > 0, "gen.sample: classes must be a positive integer")
  local D = opts.latent or 100
  local o = { generator = opts.generator, device = opts.device, dtype = opts.dtype }
  local io = { generator = opts.generator, device = opts.device }
  local s = {}
  s.z1 = acq.randn(B, D, o)           -- z ~ N(0, 1)
  s.z2 = acq.randn(B, D, o)
  s.y = acq.randint(0, K, { B }, io)  -- y ~ U(0, C)
  if opts.positions then
    s.p = acq.randint(0, opts.positions, { B }, io) -- p ~ U(0, hw)
  end
  return s
end

return gen
