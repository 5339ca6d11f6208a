-- bench/iteration.lua: one Algorithm 1 iteration after warm-up, timed in acq.
--
--   acqlua bench/iteration.lua --prepare FILE METHOD SHAPE B
--     writes the starting state both sides share: F (a ResNet-20 with random
--     weights and running statistics of N(0,1) images), G (eq. (11)'s
--     generator for acq, GDFQ's for gdfq) and Q's activation bounds after
--     a few calibration iterations. METHOD: acq | gdfq; SHAPE: 28x28x1 |
--     32x32x3; B: samples per group.
--   acqlua bench/iteration.lua FILE ITERS WARMUP THREADS
--     runs WARMUP + ITERS iterations of alg:iteration (the runner's own code)
--     from that state and prints one line of JSON: the median ms per
--     iteration and per phase, the first iteration's L_G and L_Q (to check
--     that PyTorch computed the same thing) and the peak resident memory.
-- bench/iteration.py is the same iteration in PyTorch; bench/iteration.sh
-- runs both, interleaved.
local acq = require "acq"
local A = require "acq.algorithm"

local CALIBRATE = 4 -- calibration iterations in --prepare (Q's bounds)

local function setup(method, shape, B)
  local h, w, c = shape:match("^(%d+)x(%d+)x(%d+)$")
  h, c = tonumber(h), tonumber(c)
  assert(h and h == tonumber(w), "shape must be SxSxC, e.g. 32x32x3")
  local F = acq.models.resnet20 { classes = 10, in_channels = c }
  local G
  if method == "acq" then
    G = acq.gen.acq { classes = 10, size = h, channels = c, positions = (h // 4) * (h // 4) }
  elseif method == "gdfq" then
    G = acq.gen.gdfq { classes = 10, size = h, channels = c }
  else
    error("method must be acq or gdfq, got " .. tostring(method))
  end
  -- Adam 1e-3 for G, SGD 1e-4 (Nesterov, weight decay 1e-4) for Q: acq.algorithm's defaults
  local a = { F = F, G = G, bits = "w4a4", seed = 7, batch = B, warmup = CALIBRATE, log_every = 1e9, iters = 1e9,
    g_objective = acq.objective.acq_g(acq.loss.coefficients(method == "acq" and "cifar10" or "gdfq")) }
  if method ~= "acq" then a.groups, a.target = 1, "labels" end
  return F, G, a
end

local function peak_rss_mb()
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  local kb = s:match("VmHWM:%s*(%d+)")
  return kb and tonumber(kb) / 1024
end

if arg[1] == "--prepare" then
  local path, method, shape, B = arg[2], arg[3], arg[4], tonumber(arg[5])
  acq.manual_seed(20261125)
  local F, G, a = setup(method, shape, B)
  local c = F:state_dict()["conv.weight"]:size(1)
  local h = tonumber(shape:match("^(%d+)"))
  -- running statistics of N(0,1) images, so L_BNS is not trivial
  for _ = 1, 5 do F:forward(acq.randn(64, c, h, h), { bn = "train" }) end
  local alg = A.new(a)
  local body = A.body(alg)
  for it = 1, CALIBRATE do alg:iteration(it, body) end
  local t = {}
  for k, v in pairs(F:state_dict()) do t["F." .. k] = v end
  for k, v in pairs(alg.G:state_dict()) do t["G." .. k] = v end
  for _, b in ipairs(alg.Q:act_bounds()) do
    t["bounds." .. b.name .. ".lo"], t["bounds." .. b.name .. ".hi"] = b.lo, b.hi
  end
  -- a fixed batch both sides give to Q with these bounds: the same-loss check
  -- on well-defined inputs (spec/helper.lua's rule for quantized networks)
  t["check.x"] = acq.randn(2 * B, c, h, h)
  acq.safetensors.save(path, t, { method = method, shape = shape, batch = tostring(B) })
  return
end

local path, iters, warmup, threads = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])
acq.set_num_threads(threads)
local t, meta = acq.safetensors.load(path)
local F, G, a = setup(meta.method, meta.shape, tonumber(meta.batch))
F:load_state_dict(acq.safetensors.load(path, { prefix = "F." }), { strict = true })
G:load_state_dict(acq.safetensors.load(path, { prefix = "G." }), { strict = true })
-- ACQ_BENCH_DEVICE=cuda: everything on the GPU (bench/gpu.sh)
local dev = os.getenv("ACQ_BENCH_DEVICE") or "cpu"
a.device = dev
local alg = A.new(a)
local body = A.body(alg)
for _, e in ipairs(alg.Q:named_modules("conv2d")) do
  local lo, hi = assert(t["bounds." .. e[1] .. ".lo"]), t["bounds." .. e[1] .. ".hi"]
  e[2]:set_act_bounds(lo:to { device = dev }, hi:to { device = dev })
end

local L_Q_same = acq.no_grad(function()
  local x0 = t["check.x"]:to { device = dev }
  local f0 = alg.F:forward(x0, { bn = "eval" })
  return (acq.loss.q_objective(alg.Q:forward(x0), f0, f0:argmax(1))):item()
end)

local PHASES = { "G forward", "F + losses", "backward", "optimizer", "Q step" }
local clock = acq.clock
local total, split, first = {}, {}, nil
for _, p in ipairs(PHASES) do split[p] = {} end
for i = 1, warmup + iters do
  collectgarbage("step", 0)
  local t0 = clock()
  local last, lap = t0, {}
  alg.mark = function(phase)
    local now = clock()
    lap[phase] = now - last
    last = now
  end
  local row = alg:iteration(CALIBRATE + i, body)
  local dt = clock() - t0
  if i == 1 then first = row end
  if i > warmup then
    total[#total + 1] = dt
    for _, p in ipairs(PHASES) do table.insert(split[p], lap[p]) end
  end
end

local function median(v)
  table.sort(v)
  return 1e3 * v[(#v + 1) // 2]
end
local out = { side = "acq", device = dev, method = meta.method, shape = meta.shape, batch = tonumber(meta.batch),
  threads = threads, ms = median(total), L_G = first.L_G, L_Q = first.L_Q, L_Q_same = L_Q_same, rss_mb = peak_rss_mb(), split = {} }
for _, p in ipairs(PHASES) do out.split[p] = median(split[p]) end
print(acq.json.encode(out))
