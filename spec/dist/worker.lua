-- spec/dist/worker.lua -- the processes of spec/dist_spec.lua.
--   acqlua spec/dist/worker.lua allreduce OUT     (in a process group)
--   acqlua spec/dist/worker.lua steps OUT B K     (in a group: batch B per rank;
--                                                  alone: WORLD ranks' batches at once)
-- steps runs K iterations of Algorithm 1 (GDFQ's objective plus an F^train
-- CE penalty, warm-up 1) and saves G's and Q's parameters to OUT. The BN
-- statistics are each rank's own (alone: over each stand-in rank's batch),
-- or with SYNC=1 those of all ranks' batches (alone: of the whole batch).
local acq = require "acq"
local dist = require "acq.dist"
local A = require "acq.algorithm"
local O = require "acq.objective"

local mode, out = arg[1], arg[2]
dist.init(30, { sync_stats = os.getenv("SYNC") == "1" })

if mode == "allreduce" then
  local r, W = dist.rank(), dist.world()
  local s = acq.tensor({ r + 1, -(r + 1) * 2, 0.5 * r }, { dtype = "f64" })
  local m1, m2 = acq.tensor({ 3 - r, r }), acq.tensor({ { 10 * r } })
  local a = acq.tensor({ r * 4.0 })
  dist.all_reduce({ s }, "sum")
  dist.all_reduce({ m1, m2 }, "min")
  local x = acq.tensor({ r - 7.0 })
  dist.all_reduce({ x }, "max")
  dist.all_reduce({ a }, "avg")
  acq.safetensors.save(("%s.%d"):format(out, r), { sum = s, min1 = m1, min2 = m2, max = x, avg = a, world = acq.tensor({ W }) })
  return
end

local B, K = tonumber(arg[3]), tonumber(arg[4])
local W = tonumber(os.getenv("SPLIT") or "1") -- alone: how many ranks to stand in for
acq.set_num_threads(1)
acq.manual_seed(11)
local F = acq.models.resnet20 { classes = 10, in_channels = 1 }
local G = acq.gen.gdfq { classes = 10, size = 16, channels = 1 }
local sync = os.getenv("SYNC") == "1"
if os.getenv("PERTURB") == "1" then
  -- Monte Carlo arithmetic (spec/helper.lua): G's float operands
  -- moved by 2 float32 ulps, so the spec sees how far roundoff alone
  -- carries each trained value in 4 iterations
  local H = require "spec.helper"
  acq.manual_seed(20261207)
  acq.no_grad(function()
    for _, m in ipairs { G } do
      for _, p in ipairs(m:parameters()) do p:copy_(H.perturb(p, 2)) end
    end
  end)
  acq.manual_seed(11)
end
local parts = (dist.parallel() or sync) and 1 or W

-- the same objective in both: CE over all samples, BNS averaged over the
-- ranks' batches (each rank's batch statistics)
local function chunks(x, fn)
  local n = x:size(0) // parts
  local s = 0
  for i = 0, parts - 1 do s = s + fn(x:narrow(0, i * n, n), i * n, n) end
  return s / parts
end
local LG = O.new("L_G", {
  { name = "L_CE", weight = 1, needs = { "eval" }, fn = function(c) return acq.loss.ce((c:eval()), c.y) end },
  { name = "L_BNS", weight = 0.1, fn = function(c)
    return chunks(c.x, function(x)
      local _, aux = c.F:forward(x, { bn = "eval", stats = true })
      return (acq.loss.bns(aux.stats, { reduction = "mean" }))
    end)
  end },
  { name = "Pen_CE", weight = 0.5, fn = function(c) -- F^train: BN on batch statistics, which it records too
    return chunks(c.x, function(x, at, n)
      local logits, aux = c.F:forward(x, { bn = "batch", stats = true })
      return acq.loss.ce(logits, c.y:narrow(0, at, n)) + 0.1 * acq.loss.bns(aux.stats, { reduction = "mean" })
    end)
  end },
})

local sampler, Gx = nil, G
if not dist.parallel() then
  -- one process standing in for W ranks: each rank's stream, its batch
  -- through G alone (G's BN sees one rank's batch), concatenated
  local gens = {}
  for r = 0, W - 1 do gens[r] = acq.generator(dist.stream_seed(0, r)) end
  sampler = function(ctx)
    local z, y = {}, {}
    for r = 0, W - 1 do
      local c = { batch = B, classes = ctx.classes, latent = ctx.latent, groups = 1, generator = gens[r] }
      local b = A.paired_sampler(c)
      z[#z + 1], y[#y + 1] = b.z1, b.y
    end
    return { z1 = acq.cat(z, 0), y = acq.cat(y, 0) }
  end
  Gx = setmetatable({ latent = G.latent, classes = G.classes, parameters = function() return G:parameters() end },
    { __call = function(_, z, y)
      local xs = {}
      for r = 0, W - 1 do xs[#xs + 1] = G(z:narrow(0, r * B, B), y:narrow(0, r * B, B)) end
      return acq.cat(xs, 0)
    end })
end

local alg = A.new { F = F, G = Gx, bits = "w4a4", batch = B, warmup = 1, seed = 0, groups = 1, target = "labels",
  g_objective = LG, q_objective = O.acq_q { tau = 1 }, sampler = sampler,
  -- SGD for G: Adam would blow the float noise of gradients that are zero in
  -- exact arithmetic (conv biases before a BN) up to whole steps
  optG = function(g) return acq.optim.sgd(g:parameters(), { lr = 0.01, momentum = 0.9 }) end }
local function rss_mb()
  local f = io.open("/proc/self/status")
  local kb = f and f:read("a"):match("VmRSS:%s*(%d+)")
  if f then f:close() end
  return kb and tonumber(kb) / 1024 or 0
end
local rss = {}
for it = 1, K do
  alg:iteration(it, A.body(alg))
  if it == 5 or it == K then collectgarbage(); rss[#rss + 1] = rss_mb() end
end

local t = {}
for _, e in ipairs(G:named_parameters()) do t["G." .. e[1]] = e[2] end
for _, e in ipairs(alg.Q:named_parameters()) do t["Q." .. e[1]] = e[2] end
for _, b in ipairs(alg.Q:act_bounds()) do
  if b.lo then t["bounds." .. b.name .. ".lo"], t["bounds." .. b.name .. ".hi"] = b.lo, b.hi end
end
acq.safetensors.save(("%s.%d"):format(out, dist.rank()), t,
  { rss_growth_mb = tostring(#rss == 2 and rss[2] - rss[1] or 0) })
