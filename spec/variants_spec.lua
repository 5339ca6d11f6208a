-- variants_spec.lua -- the four worked variants of doc/variants.md
-- (examples/variants/*.lua) run a few iterations end to end, and none of
-- them assigns into a library table (the extension points are enough).
local acq = require "acq"
local H = require "spec.helper"

local ACQLUA = os.getenv("ACQLUA") or "build/bin/acqlua"
local VARIANTS = { "sincos_position", "dsg_bns", "qimera_mix", "ramp" }

-- random FP weights: the variants run without training an FP model
local weights = os.tmpname()
acq.manual_seed(1)
acq.models.save_weights(acq.models.resnet20 { classes = 10, in_channels = 1 }, weights)

describe("the worked variants", function()
  teardown(function() os.remove(weights) end)
  for _, v in ipairs(VARIANTS) do
    it(v .. " runs three iterations and resumes", function()
      local path = "examples/variants/" .. v .. ".lua"
      local dir = os.tmpname()
      os.remove(dir)
      local args = ("%s %s --weights %s --iters 3 --warmup 1 --batch 4 --threads 1 --log-every 1 --out %s")
        :format(ACQLUA, path, weights, dir)
      local out, rc = H.run(args .. (v == "qimera_mix" and " --mix-p 1" or ""))
      assert.equal(0, rc, out)
      assert.matches("Q top%-1 %d+%.%d+%%", out)
      local rows = 0
      for _ in io.lines(dir .. "/metrics.jsonl") do rows = rows + 1 end
      assert.equal(3, rows)
      assert.is_true(acq.json.decode(H.read_file(dir .. "/result.json")).q_top1 ~= nil)
      os.execute("rm -rf '" .. dir .. "'")
    end)
  end

  it("assign into no library table and stay under 60 lines", function()
    for _, v in ipairs(VARIANTS) do
      local src = H.read_file("examples/variants/" .. v .. ".lua")
      local lines = select(2, src:gsub("\n", ""))
      assert.is_true(lines < 60, v .. ": " .. lines .. " lines")
      assert.is_nil(H.library_assignment(src), v)
    end
  end)
end)
