-- bench/soak.lua [ITERS] [EVERY] [B] [SHAPE] [THREADS] [OUT]
--   runs ITERS (10000) ACQ iterations of alg:iteration (the runner's code: a
--   50-iteration warm-up, then G and Q steps) on ResNet-20 with random
--   weights, B (4) samples per group of SHAPE (28x28x1), and records the
--   resident memory (VmRSS) every EVERY (500) iterations, with the live
--   tensors Lua holds and the malloc heap in use and kept free (acq.memory):
--   a flat heap_used with a growing RSS is fragmentation, not a leak.
--   acq.algorithm hands the free heap back every 100 iterations, so the
--   resident size right at a multiple of EVERY is a low point; the table
--   also gives the largest resident size seen after any iteration of the
--   EVERY before it (rss_max_mb). Writes OUT.jsonl
--   and OUT.png (default bench/soak) and prints the table and the change
--   from iteration EVERY to the last.
--   bench/soak.lua --smoke: 40 iterations, every 10, into a temporary file.
local acq = require "acq"
local A = require "acq.algorithm"

local smoke = arg[1] == "--smoke"
local a = smoke and { 40, 10, 2, "28x28x1", 1, os.tmpname() } or arg
local iters, every, B = tonumber(a[1]) or 10000, tonumber(a[2]) or 500, tonumber(a[3]) or 4
local shape, threads, out = a[4] or "28x28x1", tonumber(a[5]) or 1, a[6] or "bench/soak"
acq.set_num_threads(threads)

local function status(key)
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match(key .. ":%s*(%d+)")) / 1024
end

local h, c = shape:match("^(%d+)x%d+x(%d+)$")
h, c = tonumber(h), tonumber(c)
acq.manual_seed(20261125)
local F = acq.models.resnet20 { classes = 10, in_channels = c }
for _ = 1, 5 do F:forward(acq.randn(64, c, h, h), { bn = "train" }) end
local G = acq.gen.acq { classes = 10, size = h, channels = c, positions = (h // 4) * (h // 4) }
-- Adam 1e-3 for G, SGD 1e-4 (Nesterov, weight decay 1e-4) for Q: acq.algorithm's defaults
local alg = A.new { F = F, G = G, bits = "w4a4", seed = 7, batch = B, warmup = 50, log_every = 100, iters = iters,
  g_objective = acq.objective.acq_g(acq.loss.coefficients("cifar10")) }
local body = A.body(alg)

local rows, log = {}, assert(io.open(out .. ".jsonl", "w"))
local bar = acq.progress.new { total = iters, label = "soak" }
local t0 = acq.clock()
local window_max = 0
for it = 1, iters do
  local row = alg:iteration(it, body)
  window_max = math.max(window_max, status("VmRSS"))
  if it % every == 0 then
    collectgarbage()
    local m = acq.memory()
    local r = { iter = it, rss_mb = status("VmRSS"), rss_max_mb = window_max, peak_mb = status("VmHWM"), L_G = row.L_G,
      sec = acq.clock() - t0, tensors = m.tensors, heap_used_mb = m.heap_used and m.heap_used / 2 ^ 20,
      heap_free_mb = m.heap_free and m.heap_free / 2 ^ 20 }
    rows[#rows + 1] = r
    window_max = 0
    log:write(acq.json.encode(r), "\n")
    log:flush()
  end
  bar:update(it, { L_G = row.L_G })
end
bar:finish()
log:close()

print(("ACQ %s, %d per group, %d thread(s), %d iterations, %.0f s"):format(shape, B, threads, iters, acq.clock() - t0))
print("| iteration | resident MB | largest resident MB since the last row | peak MB | live tensors | heap in use MB | heap kept free MB |")
print("|---:|---:|---:|---:|---:|---:|---:|")
for _, r in ipairs(rows) do
  print(("| %d | %.1f | %.1f | %.1f | %d | %.1f | %.1f |"):format(r.iter, r.rss_mb, r.rss_max_mb, r.peak_mb, r.tensors,
    r.heap_used_mb or 0 / 0, r.heap_free_mb or 0 / 0))
end
local first, last = rows[1], rows[#rows]
print(("resident memory at %d: %.1f MB, at %d: %.1f MB (%+.2f %%)"):format(first.iter, first.rss_mb, last.iter,
  last.rss_mb, 100 * (last.rss_mb - first.rss_mb) / first.rss_mb))
print(("largest resident memory in the %d iterations up to %d: %.1f MB, up to %d: %.1f MB (%+.2f %%)"):format(
  every, first.iter, first.rss_max_mb, last.iter, last.rss_max_mb, 100 * (last.rss_max_mb - first.rss_max_mb) / first.rss_max_mb))
if first.heap_used_mb then
  print(("heap in use at %d: %.1f MB, at %d: %.1f MB (%+.2f %%)"):format(first.iter, first.heap_used_mb, last.iter,
    last.heap_used_mb, 100 * (last.heap_used_mb - first.heap_used_mb) / first.heap_used_mb))
end
if smoke then
  os.remove(out .. ".jsonl")
else
  local top = 0
  for _, r in ipairs(rows) do top = math.max(top, r.rss_max_mb) end
  local cv = acq.plot.canvas(640, 260)
  cv:text(10, 8, ("resident MB, max per %d its (ACQ %s, %d/grp)"):format(every, shape, B),
    { 0, 0, 0 }, 2)
  acq.plot.panel(cv, 10, 36, 620, 216, "rss_max_mb", rows, { 0, top })
  acq.image.save(out .. ".png", cv:tensor())
end
