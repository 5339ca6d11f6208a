--- acq.progress: a progress line for long work.
--
--   local bar = acq.progress.new { total = 1200, label = "ACQ w4a4" }
--   for it = 1, 1200 do ...; bar:update(it, { L_G = 3.1, L_Q = 0.42 }) end
--   bar:finish()
--
-- On a terminal the line is redrawn in place (at most 10 times a second):
--   ACQ w4a4 [#########-----------]  540/1200  45%  3.1 it/s  ETA 03:33  L_G 3.1  L_Q 0.42
-- Otherwise (a log file, a pipe, CI) it prints the same information as plain
-- lines, every `every` iterations or every `interval` seconds.
local acq = require "acq"

local progress = {}
local Bar = {}
Bar.__index = Bar

local function hms(s)
  if s ~= s or s == math.huge then return "--:--" end
  s = math.floor(s + 0.5)
  local h, m, sec = s // 3600, s % 3600 // 60, s % 60
  if h > 0 then return ("%d:%02d:%02d"):format(h, m, sec) end
  return ("%02d:%02d"):format(m, sec)
end
progress.hms = hms

--- opts: total, label = "", out = io.stdout, tty (default: acq.isatty(1)),
-- width = 20 (bar cells), every (plain mode: lines every n iterations,
-- default total / 20), interval = 30 (plain mode: seconds), clock.
function progress.new(opts)
  local b = setmetatable({}, Bar)
  b.total = assert(opts.total, "progress.new: total is required")
  b.label = opts.label or ""
  b.out = opts.out or io.stdout
  if opts.tty == nil then b.tty = acq.isatty(1) and b.out == io.stdout else b.tty = opts.tty end
  b.width = opts.width or 20
  b.every = opts.every or math.max(1, b.total // 20)
  b.interval = opts.interval or 30
  b.clock = opts.clock or acq.clock
  b.t0 = b.clock()
  b.start = opts.start or 0 -- iterations already done (a resumed run)
  b.last_draw = b.tty and -math.huge or b.t0
  return b
end

local function fmt_num(v)
  if math.type(v) == "integer" then return tostring(v) end
  local a = math.abs(v)
  if a ~= 0 and (a < 1e-3 or a >= 1e5) then return ("%.3g"):format(v) end
  return ("%.4g"):format(v)
end

--- The text of the line for iteration it with the given named values.
function Bar:line(it, values, now)
  local dt = now - self.t0
  local done = it - self.start
  local rate = dt > 0 and done / dt or 0
  local eta = rate > 0 and (self.total - it) / rate or math.huge
  local parts = {}
  if self.label ~= "" then parts[#parts + 1] = self.label end
  if self.tty then
    local fill = math.floor(self.width * it / self.total + 0.5)
    parts[#parts + 1] = "[" .. ("#"):rep(fill) .. ("-"):rep(self.width - fill) .. "]"
  end
  local w = #tostring(self.total)
  parts[#parts + 1] = ("%" .. w .. "d/%d"):format(it, self.total)
  parts[#parts + 1] = ("%3d%%"):format(math.floor(100 * it / self.total))
  parts[#parts + 1] = rate >= 1 and ("%.1f it/s"):format(rate) or ("%.2f s/it"):format(rate > 0 and 1 / rate or 0)
  parts[#parts + 1] = (it >= self.total and "took " .. hms(dt)) or ("ETA " .. hms(eta))
  if values then
    local keys = {}
    for k in pairs(values) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local v = values[k]
      parts[#parts + 1] = k .. " " .. (type(v) == "number" and fmt_num(v) or tostring(v))
    end
  end
  return table.concat(parts, "  ")
end

--- Reports iteration it (1..total) with optional named numbers.
function Bar:update(it, values)
  local now = self.clock()
  if self.tty then
    if now - self.last_draw < 0.1 and it < self.total then return end
    self.out:write("\r\27[K", self:line(it, values, now))
  else
    local due = it % self.every == 0 or now - self.last_draw >= self.interval
    if not due and it < self.total then return end
    self.out:write(self:line(it, values, now), "\n")
  end
  self.out:flush()
  self.last_draw = now
end

--- Prints a message above the bar (evaluation results, checkpoints).
function Bar:print(msg)
  if self.tty then self.out:write("\r\27[K") end
  self.out:write(msg, "\n")
  self.out:flush()
  if self.tty then self.last_draw = -math.huge end
end

--- Ends the bar's line.
function Bar:finish()
  if self.tty then self.out:write("\n") end
  self.out:flush()
end

return progress
