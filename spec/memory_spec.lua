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
