-- dist_spec.lua -- several processes with c10d/Gloo on loopback (ctest -R
-- dist): the all-reduce's values, a bit-exact resume of a two-process run,
-- and a killed rank ending the other instead of hanging. Two ranks against
-- one process on the same samples: dist_equivalence_spec.lua.
local acq = require "acq"
local H = require "spec.helper"
local L = require "spec.dist.launch"
local ACQLUA, ranks, next_port = L.ACQLUA, L.ranks, L.next_port

describe("acq.dist over Gloo", function()
  it("all-reduces sums, minima, maxima and means in place, several tensors at once", function()
    local out = os.tmpname()
    local log, rcs = ranks(2, "spec/dist/worker.lua allreduce " .. out)
    assert.same({ [0] = 0, [1] = 0 }, rcs, log)
    for r = 0, 1 do
      local t = acq.safetensors.load(("%s.%d"):format(out, r))
      -- rank r gave {r+1, -2(r+1), r/2}, {3-r, r}, {{10r}}, {r-7}, {4r}
      H.equal(t.sum, acq.tensor({ 3, -6, 0.5 }, { dtype = "f64" }), "sum")
      H.equal(t.min1, acq.tensor({ 2, 0 }), "min, first tensor")
      H.equal(t.min2, acq.tensor({ { 0 } }), "min, second tensor")
      H.equal(t.max, acq.tensor({ -6 }), "max")
      H.equal(t.avg, acq.tensor({ 2 }), "avg")
      os.remove(("%s.%d"):format(out, r))
    end
    os.remove(out)
  end)

  local weights = os.tmpname()
  setup(function()
    acq.manual_seed(3)
    acq.models.save_weights(acq.models.resnet20 { classes = 10, in_channels = 1 }, weights)
  end)
  teardown(function() os.remove(weights) end)

  it("resumes a two-process run bit for bit, and refuses to resume it in one process", function()
    local a, b = os.tmpname(), os.tmpname()
    os.remove(a); os.remove(b)
    local base = ("recipes/gdfq.lua --weights %s --warmup 2 --batch 4 --threads 1 --log-every 1 --ckpt-every 2 "
      .. "--eval-every 0 --dist-timeout 60"):format(weights)
    local log, rcs = ranks(2, base .. " --iters 5 --out " .. a)
    assert.same({ [0] = 0, [1] = 0 }, rcs, log)
    log, rcs = ranks(2, base .. " --iters 3 --out " .. b)
    assert.same({ [0] = 0, [1] = 0 }, rcs, log)
    local o, rc = H.run(("%s recipes/gdfq.lua --resume %s --iters 5"):format(ACQLUA, b))
    assert.equal(2, rc, o) -- the user's mistake: resume with as many processes
    assert.matches("written by 2 processes", o)
    log, rcs = ranks(2, ("recipes/gdfq.lua --resume %s --iters 5 --threads 1"):format(b))
    assert.same({ [0] = 0, [1] = 0 }, rcs, log)
    local ra, rb = H.rows_of(a .. "/metrics.jsonl", true), H.rows_of(b .. "/metrics.jsonl", true)
    assert.equal(5, #rb)
    for i = 1, 5 do
      assert.equal(ra[i].L_G, rb[i].L_G, "L_G of iteration " .. i)
      assert.equal(ra[i].L_Q, rb[i].L_Q, "L_Q of iteration " .. i)
    end
    local qa, qb = acq.safetensors.load(a .. "/q_w4a4.safetensors"), acq.safetensors.load(b .. "/q_w4a4.safetensors")
    for k, v in pairs(qa) do H.equal(qb[k], v, k) end
    -- rank 1 wrote nothing into the run folder, and left no scratch behind
    assert.is_nil(H.read_file(a .. "/history.jsonl"):match("rank"))
    os.execute("rm -rf '" .. a .. "' '" .. b .. "'")
  end)

  it("ends the other rank with a message when one is killed, well within the timeout", function()
    local dir = os.tmpname()
    os.remove(dir)
    local p = next_port()
    local cmd = ("%s recipes/gdfq.lua --weights %s --iters 100000 --warmup 2 --batch 4 --threads 1 --log-every 1 --dist-timeout 60 --out %s")
      :format(ACQLUA, weights, dir)
    local env = ("WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=%d"):format(p)
    local o = H.run(([[
      RANK=0 %s %s > %s.r0 2>&1 & p0=$!
      RANK=1 %s %s > %s.r1 2>&1 & p1=$!
      for i in $(seq 1 240); do [ "$(cat %s/metrics.jsonl 2>/dev/null | wc -l)" -ge 3 ] && break; sleep 0.25; done
      t0=$(date +%%s); kill -9 $p1
      wait $p0; echo "rank0=$? after=$(( $(date +%%s) - t0 ))"
    ]]):format(env, cmd, dir, env, cmd, dir, dir))
    local took = tonumber(o:match("after=(%d+)"))
    local rc0 = tonumber(o:match("rank0=(%d+)"))
    local msg = H.read_file(dir .. ".r0")
    assert.is_true(rc0 ~= nil and rc0 ~= 0, o .. msg)
    assert.matches("rank 0 of 2", msg)
    assert.is_true(took ~= nil and took < 60, o)
    os.execute("rm -rf '" .. dir .. "' '" .. dir .. ".r0' '" .. dir .. ".r1'")
  end)
end)
