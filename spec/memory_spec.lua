-- memory_spec.lua -- tensor bytes drive the Lua collector: a loop that
-- creates 100,000 tensors of 1 MB without <close> or :free() keeps resident
-- memory flat.
local acq = require "acq"
local H = require "spec.helper"

describe("memory", function()
  it("100,000 tensors of 1 MB in a loop stay under a resident bound", function()
    collectgarbage()
    local base = H.rss_mib()
    local peak = base
    local n = 262144 -- f32 elements: 1 MiB
    for i = 1, 100000 do
      local t = acq.zeros(n)
      if i % 5000 == 0 then
        local r = H.rss_mib()
        if r > peak then peak = r end
        if peak - base >= 256 then break end -- already failed: stop before swapping
      end
      t = nil -- luacheck: ignore (no <close>, no :free(): the collector must act)
    end
    local m = acq.memory()
    -- forced collections run after max(64 MiB, live/2) new bytes: at most
    -- ~64 tensors of 1 MiB are alive at once, plus allocator slack.
    assert.is_true(peak - base < 256, ("resident grew by %.0f MiB"):format(peak - base))
    assert.is_true(m.peak_bytes < 160 * 2^20, ("peak live tensor bytes %d"):format(m.peak_bytes))
    assert.is_true(m.collections >= 1000, ("only %d forced collections"):format(m.collections))
    collectgarbage()
    assert.is_true(acq.memory().bytes < 2^20)
  end)

  it("acq.memory counts live tensors and bytes", function()
    collectgarbage()
    local m0 = acq.memory()
    local a = acq.zeros({10}, {dtype = "f64"})
    local b = acq.zeros({5}, {dtype = "u8"})
    local m1 = acq.memory()
    assert.equal(m0.tensors + 2, m1.tensors)
    assert.equal(m0.bytes + 80 + 5, m1.bytes)
    a:free()
    b = nil
    collectgarbage()
    assert.equal(m0.tensors, acq.memory().tensors)
    assert.equal(m0.bytes, acq.memory().bytes)
  end)

  it("an Algorithm 1 iteration collects the handles of the iteration before it", function()
    -- Lua sees a tensor handle as a few bytes, so without a collection per
    -- iteration hundreds stay alive and pin heap that malloc then cannot
    -- reuse (the demo peaked at 5.2 GB resident instead of ~1 GB)
    local A = require "acq.algorithm"
    acq.manual_seed(3)
    local F = acq.models.resnet20 { classes = 10, in_channels = 1 }
    F:forward(acq.randn(8, 1, 28, 28), { bn = "train" })
    local G = acq.gen.acq { classes = 10, size = 28, channels = 1 }
    local alg = A.new { F = F, G = G, bits = "w4a4", seed = 7, batch = 2, warmup = 2, log_every = 100, iters = 6,
      g_objective = acq.objective.acq_g(acq.loss.coefficients("cifar10")) }
    local body = A.body(alg)
    local live = {}
    for it = 1, 6 do
      alg:iteration(it, body)
      live[it] = acq.memory().tensors
    end
    -- each iteration creates ~200 handles; only one iteration's may be alive
    -- (warm-up steps 1-2 and training steps 3-6 each compared among themselves)
    for it = 4, 6 do
      assert.is_true(math.abs(live[it] - live[3]) < 20,
        ("live tensor handles after each step: %s"):format(table.concat(live, ", ")))
    end
    assert.is_true(math.abs(live[2] - live[1]) < 20, ("live tensor handles: %s"):format(table.concat(live, ", ")))
  end)

  it("acq.supervised.train collects the handles of the step before it", function()
    acq.manual_seed(4)
    local ds = { images = (acq.rand({ 96, 1, 28, 28 }) * 255):to("u8"), labels = acq.randint(0, 10, { 96 }),
      mean = { 0.5 }, std = { 0.25 } }
    local F = acq.models.resnet20 { classes = 10, in_channels = 1 }
    local live, new = {}, acq.progress.new
    acq.progress.new = function(o)
      local bar = new(o)
      local update = bar.update
      bar.update = function(b, step, ...)
        live[step] = acq.memory().tensors
        return update(b, step, ...)
      end
      return bar
    end
    local ok, err = pcall(acq.supervised.train, F, ds, { epochs = 1, batch = 16, label = "spec" })
    acq.progress.new = new
    assert(ok, err)
    assert.equal(6, #live)
    for step = 3, 6 do
      assert.is_true(math.abs(live[step] - live[2]) < 10,
        ("live tensor handles after each step: %s"):format(table.concat(live, ", ")))
    end
  end)

  it("acq.trim_memory gives the freed heap back; heap_used follows the live blocks", function()
    collectgarbage()
    local ts = {}
    for i = 1, 160 do ts[i] = acq.zeros(262144) end -- 160 MiB of 1 MiB blocks, touched
    local used_live = acq.memory().heap_used
    local rss_live = H.rss_mib()
    ts = nil -- luacheck: ignore
    collectgarbage()
    assert.is_true(used_live - acq.memory().heap_used > 150 * 2^20, "heap_used did not fall by the freed blocks")
    acq.trim_memory()
    -- acqlua keeps up to 1 GiB of freed heap resident (runtime/acqlua.c):
    -- only the trim can hand these pages back
    local drop = rss_live - H.rss_mib()
    assert.is_true(drop > 120, ("resident memory fell by %.0f MiB after the trim"):format(drop))
  end)
end)
