-- method_recipes_spec.lua -- recipes/qimera.lua, dsg.lua and lrq.lua: each
-- runs three iterations with random FP weights and resumes, refuses a bad
-- option before any folder exists, is at most 150 lines of code and
-- assigns into no library table.
local acq = require "acq"
local H = require "spec.helper"
local exists = require("acq.run").exists

local ACQLUA = os.getenv("ACQLUA") or "build/bin/acqlua"
local METHODS = {
  qimera = { extra = " --mix-p 1 --mapping", bad = "--mix-p 2", says = "--mix%-p must be in %[0, 1%]" },
  dsg = { extra = " --margin-rule absolute --margin 0.05", bad = "--margin-rule median", says = "--margin%-rule must be" },
  lrq = { extra = " --dkd-warmup 1", bad = "--lka-kernel 12 --lka-dilation 2", says = "even 6 x 6" },
}

local weights = os.tmpname()
acq.manual_seed(2)
acq.models.save_weights(acq.models.resnet20 { classes = 10, in_channels = 1 }, weights)

describe("the method recipes", function()
  teardown(function() os.remove(weights) end)
  for _, m in ipairs { "qimera", "dsg", "lrq" } do
    it(m .. " runs three iterations, then resumes to five with the same rows", function()
      local dir = os.tmpname()
      os.remove(dir)
      local base = ("%s recipes/%s.lua --weights %s --warmup 1 --batch 4 --threads 1 --log-every 1 --ckpt-every 1 %s")
        :format(ACQLUA, m, weights, METHODS[m].extra)
      local out, rc = H.run(base .. " --iters 3 --out " .. dir)
      assert.equal(0, rc, out)
      assert.matches("top%-1", out)
      local res = acq.json.decode(H.read_file(dir .. "/result.json"))
      assert.equal(m, res.method)
      assert.is_number(res.q_top1)
      local rows = H.rows_of(dir .. "/metrics.jsonl", true)
      assert.equal(3, #rows)
      assert.is_true(exists(dir .. "/q_w4a4.safetensors"))
      -- the same five iterations in one go and as 3 + resume
      local one = os.tmpname()
      os.remove(one)
      out, rc = H.run(base .. " --iters 5 --out " .. one)
      assert.equal(0, rc, out)
      out, rc = H.run(("%s recipes/%s.lua --resume %s --iters 5"):format(ACQLUA, m, dir))
      assert.equal(0, rc, out)
      local a, b = H.rows_of(one .. "/metrics.jsonl", true), H.rows_of(dir .. "/metrics.jsonl", true)
      assert.equal(5, #b)
      for i = 1, 5 do
        for _, k in ipairs { "L_G", "L_Q" } do
          if a[i][k] then assert.equal(a[i][k], b[i][k], ("%s row %d %s"):format(m, i, k)) end
        end
      end
      os.execute("rm -rf '" .. dir .. "' '" .. one .. "'")
    end)

    it(m .. " refuses a bad option with one line, exit 2, no folder", function()
      local dir = os.tmpname()
      os.remove(dir)
      local out, rc = H.run(("%s recipes/%s.lua --weights %s %s --out %s"):format(ACQLUA, m, weights, METHODS[m].bad, dir))
      assert.equal(2, rc, out)
      assert.matches(METHODS[m].says, out)
      assert.equal(1, select(2, out:gsub("\n", "")), out)
      assert.is_false(exists(dir))
    end)
  end

  it("are each at most 150 lines of code and assign into no library table", function()
    for _, m in ipairs { "qimera", "dsg", "lrq" } do
      local src = H.read_file("recipes/" .. m .. ".lua")
      assert.is_true(H.code_lines(src) <= 150, m .. ": " .. H.code_lines(src) .. " code lines")
      assert.is_nil(H.library_assignment(src), m)
    end
  end)
end)
