-- device_spec.lua -- --device on every recipe: listed by --help, checked
-- before any folder exists (a device this machine lacks is exit status 2
-- and one line), and, where CUDA is present (ACQ_TEST_DEVICE=cuda on a GPU
-- machine: bench/gpu.sh), a run on the GPU that follows the CPU run's
-- numbers and a GPU checkpoint that resumes on the CPU.
local acq = require "acq"
local H = require "spec.helper"
local exists = require("acq.run").exists

local ACQLUA = os.getenv("ACQLUA") or "build/bin/acqlua"
local RECIPES = { "fashion", "acq_cifar", "acq_imagenet", "gdfq", "qimera", "dsg", "lrq" }
local CUDA = acq.cuda_device_count() > 0
local want_cuda = os.getenv("ACQ_TEST_DEVICE") == "cuda"

describe("--device", function()
  it("is listed by every recipe's --help", function()
    for _, r in ipairs(RECIPES) do
      local out, rc = H.run(("%s recipes/%s.lua --help"):format(ACQLUA, r))
      assert.equal(0, rc, out)
      assert.matches("%-%-device STRING[^\n]*cpu, cuda, cuda:N or auto", out, r)
    end
  end)

  it("refuses an unknown device, and a CUDA device this machine lacks, with one line and no folder", function()
    local bad = { "tpu", "cuda:x" }
    if not CUDA then bad[#bad + 1] = "cuda"; bad[#bad + 1] = "cuda:1" end
    for _, r in ipairs(RECIPES) do
      for _, d in ipairs(bad) do
        local dir = os.tmpname()
        os.remove(dir)
        local out, rc = H.run(("%s recipes/%s.lua --device %s --out %s"):format(ACQLUA, r, d, dir))
        assert.equal(2, rc, r .. " " .. d .. ": " .. out)
        assert.equal(1, select(2, out:gsub("\n", "")), out)
        assert.matches("%-%-device", out)
        assert.is_false(exists(dir), r .. " " .. d)
      end
    end
  end)

  it("auto runs on the CPU here when there is no CUDA device, and says so in options.json", function()
    if CUDA then return end
    local w = os.tmpname()
    acq.manual_seed(1)
    acq.models.save_weights(acq.models.resnet20 { classes = 10, in_channels = 1 }, w)
    local dir = os.tmpname()
    os.remove(dir)
    local out, rc = H.run(("%s recipes/gdfq.lua --weights %s --device auto --iters 1 --warmup 1 --batch 2 --threads 1 --out %s")
      :format(ACQLUA, w, dir))
    assert.equal(0, rc, out)
    assert.equal("cpu", acq.json.decode(H.read_file(dir .. "/options.json")).device)
    os.execute("rm -rf '" .. dir .. "'")
    os.remove(w)
  end)

  local cuda_it = (CUDA or want_cuda) and it or pending
  cuda_it("runs Algorithm 1 on the GPU as on the CPU, and a GPU checkpoint resumes on the CPU", function()
    assert.is_true(CUDA, "ACQ_TEST_DEVICE=cuda, but acq.cuda_device_count() is 0")
    local base = ("%s recipes/acq_cifar.lua --classes 10 --iters 4 --warmup 2 --batch 4 --threads 1 --log-every 1 --ckpt-every 2")
      :format(ACQLUA)
    local cpu, gpu = os.tmpname(), os.tmpname()
    os.remove(cpu); os.remove(gpu)
    local out, rc = H.run(base .. " --device cpu --out " .. cpu)
    assert.equal(0, rc, out)
    out, rc = H.run(base .. " --device cuda --iters 2 --out " .. gpu)
    assert.equal(0, rc, out)
    out, rc = H.run(("%s recipes/acq_cifar.lua --resume %s --iters 4 --device cpu"):format(ACQLUA, gpu))
    assert.equal(0, rc, out)
    local a, b = H.rows_of(cpu .. "/metrics.jsonl", true), H.rows_of(gpu .. "/metrics.jsonl", true)
    assert.equal(4, #b)
    for i = 1, 4 do -- the same draws; float differences between the devices' kernels only
      assert.is_true(math.abs(a[i].L_G - b[i].L_G) <= 1e-2 * math.abs(a[i].L_G) + 1e-3,
        ("row %d: L_G %g (cpu) vs %g (cuda, then cpu)"):format(i, a[i].L_G, b[i].L_G))
    end
    os.execute("rm -rf '" .. cpu .. "' '" .. gpu .. "'")
  end)
end)
