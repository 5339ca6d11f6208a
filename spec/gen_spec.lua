-- spec/gen_spec.lua -- the generators (GDFQ eq. (5), ACQ eq. (11), fusion
-- eq. (12)) against the reference and by hand, a position encoding replaced
-- from Lua alone, finite differences through the fusion generator, and the
-- sampling of Algorithm 1.
local acq = require "acq"
local H = require "spec.helper"

local gen = acq.gen

describe("the ACQ generator, eq. (11), against the reference", function()
  local G = H.golden()
  local weights = acq.safetensors.load(H.GOLDEN, { prefix = "gen." })

  it("has the reference's state-dict keys", function()
    local g = gen.acq { classes = 10, size = 32, channels = 3, positions = 64 }
    local _, names = g:state_dict()
    local want = {}
    for k in pairs(weights) do want[#want + 1] = k end
    table.sort(want)
    table.sort(names)
    assert.same(want, names)
  end)

  it("reproduces in.x1 and in.x2 (middle BN eps 0.8, two separate calls)", function()
    local g = gen.acq { classes = 10, size = 32, channels = 3, positions = 64 }
    g:load_state_dict(weights)
    H.rel(g(G["in.z1"], G["in.y"], G["in.p"]), G["in.x1"], 1e-5, "x1")
    H.rel(g(G["in.z2"], G["in.y"], G["in.p"]), G["in.x2"], 1e-5, "x2")
  end)

  it("reproduces out.gen_*_eps1e-5 with eps 1e-5", function()
    local g = gen.acq { classes = 10, size = 32, channels = 3, positions = 64, eps = 1e-5 }
    g:load_state_dict(weights)
    assert.equal(1e-5, g.net.bn1:config().eps)
    H.rel(g(G["in.z1"], G["in.y"], G["in.p"]), G["out.gen_x1_eps1e-5"], 1e-5, "x1 eps 1e-5")
    H.rel(g(G["in.z2"], G["in.y"], G["in.p"]), G["out.gen_x2_eps1e-5"], 1e-5, "x2 eps 1e-5")
  end)

  it("the input vector is (Emb_class(y) + z) * Emb_position(p)", function()
    local g = gen.acq { classes = 10, size = 32, channels = 3, positions = 64 }
    g:load_state_dict(weights)
    local i = g:condition(G["in.z1"], G["in.y"], G["in.p"])
    local y, p, z = G["in.y"]:totable(), G["in.p"]:totable(), G["in.z1"]:totable()
    local E, P = weights["label_emb.weight"]:totable(), weights["pos_emb.weight"]:totable()
    local got = i:totable()
    for b = 1, 4 do
      for d = 1, 100, 33 do
        local e = (E[y[b] + 1][d] + z[b][d]) * P[p[b] + 1][d]
        H.close(got[b][d], e, 1e-6, 1e-7, ("i[%d][%d]"):format(b, d))
      end
    end
  end)
end)

-- A sinusoidal position encoding (Transformer style), written in Lua only.
local function sinusoidal(p, D)
  local half = D // 2
  local freq = (acq.arange(0, half, { dtype = "f32" }) * (-math.log(10000) / half)):exp()
  local ang = p:float():view(-1, 1) * freq:view(1, -1)
  return acq.cat({ ang:sin(), ang:cos() }, 1)
end

describe("a position encoding replaced from Lua", function()
  it("changes the generator without recompiling", function()
    acq.manual_seed(3)
    local g = gen.acq { classes = 10, size = 32, channels = 3, positions = 64 }
    local z, y, p = acq.randn(4, 100), acq.tensor { 1, 2, 3, 4 }, acq.tensor { 0, 9, 63, 9 }
    local learned = g(z, y, p)
    -- the same weights, the position part given to the constructor
    local g2 = gen.acq { classes = 10, size = 32, channels = 3, positions = 64,
      position = function(G, pos) return sinusoidal(pos, G.latent) end }
    g2:load_state_dict(g:state_dict(), { strict = true })
    g = g2
    local x = g(z, y, p)
    assert.same({ 4, 3, 32, 32 }, x:shape())
    assert.is_false(x:allclose(learned, 1e-3, 1e-3))
    -- the input vector is (Emb_class(y) + z) * enc(p), enc checked by hand
    local i = g:condition(z, y, p):totable()
    local E, zt = g.net.label_emb:state_dict().weight:totable(), z:totable()
    local b, d = 3, 2 -- p = 63, dimension 2 of 100 (a sine): sin(63 * 10000^(-1/50))
    local enc = math.sin(63 * 10000 ^ (-1 / 50))
    H.close(i[b][d], (E[4][d] + zt[b][d]) * enc, 1e-5, 1e-6, "i with the sinusoidal encoding")
    -- pos_emb no longer takes part: no gradient reaches it
    x:sum():backward()
    assert.is_nil(g.net.pos_emb:state_dict().weight:grad())
    assert.is_not_nil(g.net.label_emb:state_dict().weight:grad())
  end)
end)

describe("the GDFQ generator, eq. (5)", function()
  it("multiplies the class embedding with the noise and shares ACQ's body", function()
    acq.manual_seed(4)
    local g = gen.gdfq { classes = 10, size = 28, channels = 1 }
    local z, y = acq.randn(3, 100), acq.tensor { 0, 5, 9 }
    local x = g(z, y)
    assert.same({ 3, 1, 28, 28 }, x:shape())
    local E = g.net.label_emb:state_dict().weight
    local i = E:index_select(0, y) * z
    H.close(g:condition(z, y), i, 0, 0, "Emb(y) * z")
    H.close(x, g:body(i), 0, 0, "body")
    -- the last BN has no affine parameters: each channel of the output has
    -- batch mean 0 and biased variance 1 - eps/(var + eps) ~ 1
    H.close(x:mean(), 0, 0, 1e-5, "output mean")
    local keys = {}
    for k in pairs(g:state_dict()) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.same({ "bn0.bias", "bn0.num_batches_tracked", "bn0.running_mean", "bn0.running_var", "bn0.weight",
      "bn1.bias", "bn1.num_batches_tracked", "bn1.running_mean", "bn1.running_var", "bn1.weight",
      "bn2.bias", "bn2.num_batches_tracked", "bn2.running_mean", "bn2.running_var", "bn2.weight",
      "bn_out.num_batches_tracked", "bn_out.running_mean", "bn_out.running_var",
      "conv1.bias", "conv1.weight", "conv2.bias", "conv2.weight", "conv3.bias", "conv3.weight",
      "l1.bias", "l1.weight", "label_emb.weight" }, keys)
  end)
end)

describe("a generator's body and input vector from the constructor", function()
  it("insert adds a layer after a named one, in the body and the state dict", function()
    acq.manual_seed(6)
    local lka = acq.nn.lka(128)
    local g = gen.gdfq { classes = 10, size = 28, channels = 1, insert = { { after = "act1", name = "lka1", module = lka } } }
    local names = {}
    for i, c in ipairs(g.net:children()) do names[i] = c:name() end
    assert.equal("lka1", names[9])
    assert.equal("act1", names[8])
    assert.is_not_nil(g:state_dict()["lka1.conv_spatial.weight"])
    -- the body is the plain one with the gate between act1 and up1
    local z, y = acq.randn(3, 100), acq.tensor { 0, 5, 9 }
    local h = g.net:forward(g:condition(z, y), { bn = "train", from = "l1", to = "act1" })
    local want = g.net:forward(lka(h), { bn = "train", from = "up1" })
    H.close(g(z, y), want, 1e-6, 1e-6, "body with the inserted layer")
    assert.matches("no layer 'act9'", H.fails(gen.gdfq, { insert = { { after = "act9", name = "x", module = lka } } }))
    assert.matches("already called 'bn1'", H.fails(gen.gdfq, { insert = { { after = "act1", name = "bn1", module = lka } } }))
  end)

  it("condition replaces the whole input vector", function()
    local g = gen.gdfq { classes = 10, size = 28, channels = 1,
      condition = function(G, z, y) return G:class_embedding(y) + 2 * z end }
    local z, y = acq.randn(2, 100), acq.tensor { 1, 3 }
    H.close(g:condition(z, y), g.net.label_emb(y) + z * 2, 0, 0, "Emb(y) + 2 z")
    assert.matches("condition must be a function", H.fails(gen.gdfq, { condition = 3 }))
  end)
end)

describe("class-conditional BN", function()
  it("is BN without affine, then the class's scale and shift", function()
    acq.manual_seed(6)
    local bn = acq.nn.condbn(3, 2, { eps = 0.5 })
    local sd = bn:state_dict()
    acq.no_grad(function()
      sd["weights.weight"]:copy_(acq.tensor { { 1, 2 }, { 3, 4 }, { 5, 6 } })
      sd["biases.weight"]:copy_(acq.tensor { { 0, 0.5 }, { 1, 1.5 }, { 2, 2.5 } })
    end)
    local x = acq.randn(4, 2, 2, 2, { dtype = "f32" })
    local y = acq.tensor { 2, 0, 1, 2 }
    local out = bn:forward(x, { bn = "train", labels = y }):totable()
    local xt, yt = x:totable(), y:totable()
    local W, B = { { 1, 2 }, { 3, 4 }, { 5, 6 } }, { { 0, 0.5 }, { 1, 1.5 }, { 2, 2.5 } }
    for c = 1, 2 do
      local s, s2, n = 0, 0, 0
      for b = 1, 4 do
        for h = 1, 2 do
          for w = 1, 2 do
            local v = xt[b][c][h][w]
            s, s2, n = s + v, s2 + v * v, n + 1
          end
        end
      end
      local mean = s / n
      local var = s2 / n - mean * mean
      for b = 1, 4 do
        local e = (xt[b][c][1][2] - mean) / math.sqrt(var + 0.5) * W[yt[b] + 1][c] + B[yt[b] + 1][c]
        H.close(out[b][c][1][2], e, 1e-5, 1e-5, ("sample %d channel %d"):format(b, c))
      end
    end
    assert.matches("needs class labels", H.fails(bn.forward, bn, x, { bn = "train" }))
    assert.matches("3 labels for a batch of 4", H.fails(bn.forward, bn, x, { labels = acq.tensor { 0, 1, 2 } }))
  end)
end)

describe("the fusion generator, eq. (12)", function()
  it("builds the position matrix with label smoothing", function()
    local P = gen.position_matrix(acq.tensor { 5, 0 }, 2, 3, 0.1)
    assert.same({ 2, 1, 2, 3 }, P:shape())
    local t = P:totable()
    H.close(t[1][1][2][3], 0.9 + 0.1 / 6, 1e-6, 0, "at p = 5 (row 1, col 2)")
    H.close(t[1][1][1][1], 0.1 / 6, 1e-6, 0, "elsewhere")
    H.close(P:sum(), 2, 1e-6, 0, "each sums to 1")
  end)

  it("runs (32x32, 4x4 grid) and mixes the position into the features", function()
    acq.manual_seed(8)
    local g = gen.fusion { classes = 4, size = 32, channels = 3, grid = { 4, 4 }, width = 16, latent = 12 }
    local z, y = acq.randn(2, 12), acq.tensor { 1, 3 }
    local x1 = g(z, y, acq.tensor { 0, 5 })
    local x2 = g(z, y, acq.tensor { 15, 5 })
    assert.same({ 2, 3, 32, 32 }, x1:shape())
    -- the position changes the image (it enters through f' and the residual)
    assert.is_false(x1:allclose(x2, 1e-4, 1e-4))
    -- F = Up(f') + f: the conditioned features before the body, by hand
    local f = g.net.l1(z):view(2, 16, 8, 8)
    local P = gen.position_matrix(acq.tensor { 0, 5 }, 4, 4, 0.1)
    local fp = g.net.fuse(acq.cat({ acq.adaptive_max_pool2d(f, { 4, 4 }), acq.adaptive_avg_pool2d(f, { 4, 4 }), P }, 1))
    H.close(g:condition(z, y, acq.tensor { 0, 5 }), acq.upsample_nearest2d(fp, { 8, 8 }) + f, 1e-6, 1e-7, "F")
  end)

  it("has gradients that match finite differences (float64)", function()
    acq.manual_seed(9)
    local g = gen.fusion { classes = 3, size = 16, channels = 1, grid = { 2, 2 }, width = 4, latent = 5 }
    g.net:to { dtype = "f64" }
    local z = acq.randn(3, 5, { dtype = "f64" })
    local y, p = acq.tensor { 0, 2, 1 }, acq.tensor { 3, 0, 1 }
    local R = acq.randn(3, 1, 16, 16, { dtype = "f64" }) -- a fixed readout
    local function f() return (g(z, y, p) * R):sum() end
    H.gradcheck(f, z, "dx/dz", 1e-5, 1e-8)
    H.gradcheck(f, g.net.fuse:state_dict().weight, "dx/d fuse.weight", 1e-5, 1e-8)
    H.gradcheck(f, g.net.bn1:state_dict()["weights.weight"], "dx/d bn1.weights.weight", 1e-5, 1e-8)
  end)
end)

describe("sampling for Algorithm 1", function()
  it("draws two noise groups sharing y and p, reproducibly", function()
    local s1 = gen.sample { batch = 16, classes = 10, positions = 49, latent = 100, generator = acq.generator(7) }
    local s2 = gen.sample { batch = 16, classes = 10, positions = 49, latent = 100, generator = acq.generator(7) }
    assert.same({ 16, 100 }, s1.z1:shape())
    assert.same({ 16, 100 }, s1.z2:shape())
    assert.same({ 16 }, s1.y:shape())
    assert.equal("i64", s1.p:dtype())
    assert.is_true(s1.z1:equal(s2.z1) and s1.y:equal(s2.y) and s1.p:equal(s2.p))
    assert.is_false(s1.z1:equal(s1.z2))
    assert.is_true(s1.y:ge(0):all():item() and s1.y:lt(10):all():item())
    assert.is_true(s1.p:ge(0):all():item() and s1.p:lt(49):all():item())
    local s3 = gen.sample { batch = 4, classes = 10 }
    assert.is_nil(s3.p)
  end)

  it("rejects labels and noise of different batch sizes", function()
    local g = gen.acq { classes = 10, size = 32, channels = 3 }
    assert.matches("3 labels for 4 noise vectors", H.fails(g.forward, g, acq.randn(4, 100), acq.tensor { 1, 2, 3 }, acq.tensor { 1, 2, 3, 4 }))
    assert.matches("size 30 must be a multiple of 4", H.fails(gen.acq, { size = 30 }))
  end)
end)
