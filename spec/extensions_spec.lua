-- extensions_spec.lua -- every extension point of Algorithm 1's pieces, used
-- as a recipe would use it (no assignment into a library table): a sampler
-- with extra fields, terms added, removed and replaced by name with
-- coefficients that follow the iteration, G's parts given to the
-- constructor, optimizers and schedules as values, hooks with state, and
-- registered series and pictures; and a run using all of them resumes bit
-- for bit.
local acq = require "acq"
local H = require "spec.helper"
local recipe = require "acq.recipe"
local A = require "acq.algorithm"
local O = require "acq.objective"
local S = require "acq.schedule"

local tmpdir = H.tmpdir
local function rows_of(path) return H.rows_of(path, true) end

-- A run with every extension point in use; `seen` records what reached where.
local function custom_run(dir, args, seen)
  local spec = recipe.cli("t", "extensions", {}, true)
  local a = { "--out", dir, "--warmup", "2", "--batch", "3", "--log-every", "1", "--ckpt-every", "2",
    "--sample-every", "2", "--threads", "1", "--lr-q", "0.01" }
  for _, v in ipairs(args) do a[#a + 1] = v end
  local run = recipe.start("ext", spec, a)
  acq.manual_seed(1)
  local F = acq.models.resnet20 { classes = 4, in_channels = 1 }
  -- a sampler with two extra fields: a random shift, and a counter that
  -- depends on the previous sample (so resuming needs the saved sample)
  local function sampler(ctx)
    local b = A.paired_sampler(ctx)
    b.shift = acq.randn(b.y:size(0), 1, { generator = ctx.generator }) * 0.1
    b.count = (ctx.prev and ctx.prev.count or acq.zeros(1)) + 1
    if ctx.fixed then seen.picture_shift = true end
    return b
  end
  -- G's class embedding replaced, with a trainable part of its own
  local G = acq.gen.acq { classes = 4, size = 16, channels = 1, modules = { mapping = acq.nn.linear(100, 100) },
    class_embedding = function(G, y, b)
      if b and b.shift then seen.G_shift = true end
      local e = G.parts.mapping(G.net.label_emb(y))
      return b and b.shift and e + b.shift or e
    end }
  local LG = O.acq_g(recipe.coefficients(run.opts, "cifar10"))
  LG:remove "Pen_CACM"
  LG:weight("L_AD", S.linear(0, 1, 1, 4))
  LG:add { name = "L_shift", weight = function(it) return 0.01 * it end, needs = { "eval" }, fn = function(c)
    seen.objective_count = c.b.count:item()
    return (c:eval()):pow(2):mean() * (1 + c.b.shift:abs():mean()) + c.b.count:sum() * 1e-3
  end }
  local LQ = O.acq_q { tau = 1 }
  LQ:replace("Q_KD", { weight = 0.5 })
  -- a hook whose state changes what is logged: an EMA of L_G and a count
  local hook = { name = "ema", n = 0 }
  hook.acc = acq.zeros(1)
  hook.after = function(_, _, row)
    hook.acc = hook.acc * 0.9 + row.L_G
    hook.n = hook.n + 1
    row.ema_L_G, row.hook_n = hook.acc:item(), hook.n
  end
  hook.on_checkpoint = function() seen.checkpoints = (seen.checkpoints or 0) + 1 end
  hook.state = function() return { acc = hook.acc, n = hook.n } end
  hook.load = function(_, st) hook.acc, hook.n = st.acc, st.n end
  local alg = recipe.algorithm(run, { F = F, G = G, g_objective = LG, q_objective = LQ, sampler = sampler,
    optG = function(g) return acq.optim.adam(g:parameters(), { lr = 5e-4, betas = { 0.5, 0.999 } }) end,
    lr_g = function(it) return 5e-4 / it end, hooks = { hook }, series = { { "ema_L_G", "EMA of L_G" } },
    pictures = { { "noise", draw = function(_, path)
      acq.image.save(path, acq.image.grid(acq.rand(2, 3, 8, 8), { nrow = 2 }))
    end } } })
  local res = run:loop(alg, function(it)
    local b = alg:sample(it)
    local c = alg:g_step(b)
    if alg:calibrating(it) then alg:calibrate(c) else alg:q_step(c) end
  end, { model = { name = "resnet20", classes = 4, in_channels = 1 } })
  return res, alg
end

describe("extension points", function()
  it("reach G, both objectives, the log, the pictures and the checkpoint", function()
    local dir, seen = tmpdir(), {}
    local res, alg = custom_run(dir, { "--iters", "5" }, seen)
    assert.equal(5, res.iter)
    assert.is_true(seen.G_shift)
    assert.is_true(seen.picture_shift)
    assert.equal(5, seen.objective_count)         -- the counter made from ctx.prev
    local rows = rows_of(dir .. "/metrics.jsonl")
    assert.equal(5, #rows)
    -- terms by name in the log: L_shift added, Pen_CACM removed, L_AD ramped in
    assert.is_number(rows[1].L_shift)
    assert.is_nil(rows[1].Pen_CACM)
    assert.is_nil(rows[1].L_AD)                     -- weight 0 at iteration 1: not computed
    assert.is_number(rows[2].L_AD)
    assert.is_number(rows[4].Q_KD)
    H.close(rows[3].lr_g, 5e-4 / 3, 1e-12)          -- the schedule, as a value
    assert.equal(5, rows[5].hook_n)
    -- every term and the recipe's series are drawn
    local names = require("acq.pictures").series(alg)
    local set = {}
    for _, n in ipairs(names) do set[n] = true end
    assert.is_true(set.L_shift and set.ema_L_G and set.Q_KD and not set.Pen_CACM)
    assert.is_true(recipe.exists(dir .. "/noise_000002.png"))
    assert.is_true(recipe.exists(dir .. "/losses.png"))
    -- the checkpoint holds the sample's extra fields, G's own part and the hook's state
    local t, meta = acq.safetensors.load(dir .. "/checkpoint.safetensors")
    assert.is_not_nil(t["sample.shift"])
    assert.equal(5, t["sample.count"]:item())
    assert.is_not_nil(t["G.mapping.weight"])
    assert.is_not_nil(t["hook.ema.acc"])
    assert.equal(5, acq.json.decode(meta["hook.ema"]).n)
    assert.equal(3, seen.checkpoints)               -- iterations 2, 4 and 5
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("a run with a custom sampler field and a hook with state resumes bit for bit", function()
    local a, b = tmpdir(), tmpdir()
    local ra = custom_run(a, { "--iters", "7" }, {})
    custom_run(b, { "--iters", "3" }, {})          -- stops with a checkpoint at 3
    local rb = custom_run(b, { "--iters", "7", "--resume", b }, {})
    assert.same(rows_of(a .. "/metrics.jsonl"), rows_of(b .. "/metrics.jsonl"))
    local qa, qb = ra.Q:state_dict(), rb.Q:state_dict()
    for k, t in pairs(qa) do assert.is_true(t:equal(qb[k]), k) end
    os.execute("rm -rf '" .. a .. "' '" .. b .. "'")
  end)

  it("objectives: add, remove, replace and weigh terms by name, with clear errors", function()
    local LG = O.acq_g(acq.loss.coefficients("cifar10"))
    assert.same({ "L_CE", "Pen_CE", "L_BNS", "Pen_BNS", "L_CACM", "Pen_CACM", "L_AD" }, LG:names())
    local copy = LG:copy():remove("L_AD")
    assert.equal(7, #LG:names())                    -- the copy is independent
    assert.equal(6, #copy:names())
    copy:add({ name = "L_X", weight = 2, fn = function() return acq.tensor(1.5) end }, { before = "L_CE" })
    assert.equal("L_X", copy:names()[1])
    assert.matches("has no term L_Y", H.fails(copy.remove, copy, "L_Y"))
    assert.matches("already has a term L_X", H.fails(copy.add, copy, { name = "L_X", weight = 1, fn = print }))
    assert.matches("weight must be a number or a function", H.fails(copy.weight, copy, "L_X", "big"))
    -- a Q objective on a hand-made context: 2 * 1.5 + the CE
    local LQ = O.new("L_Q", { { name = "A", weight = 2, fn = function() return acq.tensor(1.5) end },
      { name = "B", weight = function(it) return it end, fn = function() return acq.tensor(0.25) end } })
    local L, values, v = LQ:evaluate(O.context { it = 4 })
    assert.equal(3 + 1, v)
    H.close(L, 4, 0)
    H.close(values.B, 0.25, 0)
    local bad = O.new("L", { { name = "N", weight = 1, fn = function() return acq.tensor(0 / 0) end } })
    assert.matches("N", H.fails(bad.evaluate, bad, O.context { it = 1 }))
  end)
end)
