-- spec/progress_spec.lua -- the progress line: rate, ETA, values; redrawn in
-- place on a terminal, plain lines otherwise.
local acq = require "acq"

-- A fake output stream and clock.
local function sink()
  local s = { text = "" }
  function s:write(...) for _, v in ipairs { ... } do self.text = self.text .. v end end
  function s:flush() end
  return s
end

describe("progress", function()
  it("plain mode prints every `every` iterations and at the end, with rate and ETA", function()
    local t = 100
    local out = sink()
    local bar = acq.progress.new { total = 10, label = "run", out = out, tty = false, every = 4,
      clock = function() return t end }
    for i = 1, 10 do
      t = 100 + 2 * i -- 2 s per iteration
      bar:update(i, { L_G = 3.14159, L_Q = 0.5 })
    end
    bar:finish()
    local lines = {}
    for l in out.text:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal(3, #lines) -- iterations 4, 8, 10
    assert.equal("run   4/10   40%  2.00 s/it  ETA 00:12  L_G 3.142  L_Q 0.5", lines[1])
    assert.equal("run  10/10  100%  2.00 s/it  took 00:20  L_G 3.142  L_Q 0.5", lines[3])
  end)

  it("terminal mode redraws one line with a bar", function()
    local t = 0
    local out = sink()
    local bar = acq.progress.new { total = 4, out = out, tty = true, width = 4, clock = function() return t end }
    for i = 1, 4 do
      t = t + 1
      bar:update(i)
    end
    bar:finish()
    assert.matches("^\r\27%[K%[#%-%-%-%]  1/4   25%%  1.0 it/s  ETA 00:03", out.text)
    assert.matches("\r\27%[K%[####%]  4/4  100%%  1.0 it/s  took 00:04\n$", out.text)
  end)

  it("formats durations", function()
    assert.equal("01:05", acq.progress.hms(65))
    assert.equal("2:00:00", acq.progress.hms(7200))
    assert.equal("--:--", acq.progress.hms(math.huge))
  end)
end)
