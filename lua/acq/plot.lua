--- acq.plot: loss curves as a PNG, with no plotting library.
--
--   plot.losses(path, rows, title)   rows: the decoded lines of metrics.jsonl
--
-- One small panel per quantity (its own linear y range, labelled with its
-- minimum and maximum; the x axis is the iteration), three panels a row.
-- The canvas is a byte array drawn in Lua (lines, dots, a 5x7 bitmap font)
-- and written by acq.write_png.
local acq = require "acq"

local plot = {}

-- 5x7 glyphs, one string of 7 rows of 5 pixels each; lowercase letters
-- are drawn as capitals.
local FONT = {
  ["0"] = "01110 10001 10011 10101 11001 10001 01110", ["1"] = "00100 01100 00100 00100 00100 00100 01110",
  ["2"] = "01110 10001 00001 00010 00100 01000 11111", ["3"] = "11111 00010 00100 00010 00001 10001 01110",
  ["4"] = "00010 00110 01010 10010 11111 00010 00010", ["5"] = "11111 10000 11110 00001 00001 10001 01110",
  ["6"] = "00110 01000 10000 11110 10001 10001 01110", ["7"] = "11111 00001 00010 00100 01000 01000 01000",
  ["8"] = "01110 10001 10001 01110 10001 10001 01110", ["9"] = "01110 10001 10001 01111 00001 00010 01100",
  A = "01110 10001 10001 10001 11111 10001 10001", B = "11110 10001 10001 11110 10001 10001 11110",
  C = "01110 10001 10000 10000 10000 10001 01110", D = "11100 10010 10001 10001 10001 10010 11100",
  E = "11111 10000 10000 11110 10000 10000 11111", F = "11111 10000 10000 11110 10000 10000 10000",
  G = "01110 10001 10000 10111 10001 10001 01111", H = "10001 10001 10001 11111 10001 10001 10001",
  I = "01110 00100 00100 00100 00100 00100 01110", J = "00111 00010 00010 00010 00010 10010 01100",
  K = "10001 10010 10100 11000 10100 10010 10001", L = "10000 10000 10000 10000 10000 10000 11111",
  M = "10001 11011 10101 10101 10001 10001 10001", N = "10001 10001 11001 10101 10011 10001 10001",
  O = "01110 10001 10001 10001 10001 10001 01110", P = "11110 10001 10001 11110 10000 10000 10000",
  Q = "01110 10001 10001 10001 10101 10010 01101", R = "11110 10001 10001 11110 10100 10010 10001",
  S = "01111 10000 10000 01110 00001 00001 11110", T = "11111 00100 00100 00100 00100 00100 00100",
  U = "10001 10001 10001 10001 10001 10001 01110", V = "10001 10001 10001 10001 10001 01010 00100",
  W = "10001 10001 10001 10101 10101 10101 01010", X = "10001 10001 01010 00100 01010 10001 10001",
  Y = "10001 10001 10001 01010 00100 00100 00100", Z = "11111 00001 00010 00100 01000 10000 11111",
  ["."] = "00000 00000 00000 00000 00000 01100 01100", ["-"] = "00000 00000 00000 11111 00000 00000 00000",
  ["_"] = "00000 00000 00000 00000 00000 00000 11111", ["+"] = "00000 00100 00100 11111 00100 00100 00000",
  ["%"] = "11000 11001 00010 00100 01000 10011 00011", [":"] = "00000 01100 01100 00000 01100 01100 00000",
  ["("] = "00010 00100 01000 01000 01000 00100 00010", [")"] = "01000 00100 00010 00010 00010 00100 01000",
  ["/"] = "00000 00001 00010 00100 01000 10000 00000", [","] = "00000 00000 00000 00000 01100 00100 01000",
  ["="] = "00000 00000 11111 00000 11111 00000 00000", [" "] = "00000 00000 00000 00000 00000 00000 00000",
}
plot.FONT = FONT

local Canvas = {}
Canvas.__index = Canvas

--- A white w x h RGB canvas.
function plot.canvas(w, h)
  local px = {}
  for i = 1, w * h * 3 do px[i] = 255 end
  return setmetatable({ w = w, h = h, px = px }, Canvas)
end

--- Colours pixel (x, y) (rounded; outside the canvas: nothing) with c = {r, g, b}.
function Canvas:set(x, y, c)
  x, y = math.floor(x + 0.5), math.floor(y + 0.5)
  if x < 0 or y < 0 or x >= self.w or y >= self.h then return end
  local i = (y * self.w + x) * 3
  self.px[i + 1], self.px[i + 2], self.px[i + 3] = c[1], c[2], c[3]
end

--- The r, g, b of pixel (x, y).
function Canvas:get(x, y)
  local i = (y * self.w + x) * 3
  return self.px[i + 1], self.px[i + 2], self.px[i + 3]
end

--- A line from (x0, y0) to (x1, y1), one pixel wide (sampled densely).
function Canvas:line(x0, y0, x1, y1, c)
  local n = math.max(1, math.ceil(math.max(math.abs(x1 - x0), math.abs(y1 - y0))))
  for k = 0, n do
    self:set(x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n, c)
  end
end

--- The outline of the rectangle with corners (x0, y0) and (x1, y1).
function Canvas:rect(x0, y0, x1, y1, c)
  self:line(x0, y0, x1, y0, c)
  self:line(x1, y0, x1, y1, c)
  self:line(x1, y1, x0, y1, c)
  self:line(x0, y1, x0, y0, c)
end

--- A 3x3 dot centred on (x, y).
function Canvas:dot(x, y, c)
  for dy = -1, 1 do for dx = -1, 1 do self:set(x + dx, y + dy, c) end end
end

--- Text with its top-left corner at (x, y), glyphs 6 * scale apart;
-- returns the width drawn. Unknown characters are drawn as '?'-less gaps.
function Canvas:text(x, y, s, c, scale)
  scale = scale or 1
  s = s:upper()
  for i = 1, #s do
    local g = FONT[s:sub(i, i)]
    if g then
      local rows = {}
      for r in g:gmatch("%d+") do rows[#rows + 1] = r end
      for ry = 1, 7 do
        for rx = 1, 5 do
          if rows[ry]:sub(rx, rx) == "1" then
            for sy = 0, scale - 1 do
              for sx = 0, scale - 1 do
                self:set(x + (i - 1) * 6 * scale + (rx - 1) * scale + sx, y + (ry - 1) * scale + sy, c)
              end
            end
          end
        end
      end
    end
  end
  return #s * 6 * scale
end

--- The canvas as a uint8 tensor [h, w, 3].
function Canvas:tensor()
  local parts = {}
  local rowlen = self.w * 3
  for y = 0, self.h - 1 do
    parts[#parts + 1] = string.char(table.unpack(self.px, y * rowlen + 1, (y + 1) * rowlen))
  end
  return acq.frombytes(table.concat(parts), "u8", { self.h, self.w, 3 })
end

local function fmt(v)
  local a = math.abs(v)
  if a ~= 0 and (a < 1e-2 or a >= 1e4) then return ("%.2e"):format(v) end
  return ("%.4g"):format(v)
end
plot.format = fmt

-- The quantities drawn, in order, when present in the rows.
plot.SERIES = { "L_G", "L_CE", "L_BNS", "L_CACM", "L_AD", "Pen_CE", "Pen_BNS", "Pen_CACM",
  "cacm_m", "fp_agree", "L_Q", "Q_CE", "Q_KD", "q_top1" }

-- Panel titles that say more than the metric's key.
plot.LABELS = { cacm_m = "M(p), eq. (10)", fp_agree = "F: argmax = y", q_top1 = "Q top-1 %",
  L_Q = "L_Q, eq. (16)", Q_CE = "Q: CE", Q_KD = "Q: KD", L_G = "L_G, eq. (15)" }

local BLUE, BLACK, GREY, RED = { 31, 90, 180 }, { 0, 0, 0 }, { 170, 170, 170 }, { 200, 40, 40 }

--- Draws one panel of series `name` from rows into canvas c at (x, y).
-- range = {lo, hi} fixes the y axis (it is fitted to the data otherwise);
-- label replaces the panel's title.
function plot.panel(c, x, y, w, h, name, rows, range, label)
  local pts = {}
  for _, r in ipairs(rows) do
    local v = r[name]
    if type(v) == "number" and v == v and math.abs(v) ~= math.huge then pts[#pts + 1] = { r.iter, v } end
  end
  c:text(x, y, label or plot.LABELS[name] or name, BLACK, 2)
  local top, left, bottom, right = y + 20, x + 58, y + h - 14, x + w - 6
  c:rect(left, top, right, bottom, GREY)
  if #pts == 0 then return end
  local x0, x1 = pts[1][1], pts[#pts][1]
  local lo, hi = math.huge, -math.huge
  for _, p in ipairs(pts) do
    lo, hi = math.min(lo, p[2]), math.max(hi, p[2])
  end
  if range then lo, hi = math.min(lo, range[1]), math.max(hi, range[2]) end
  if hi == lo then hi, lo = hi + 0.5 * math.max(1e-12, math.abs(hi)), lo - 0.5 * math.max(1e-12, math.abs(lo)) end
  local function px(it) return x1 > x0 and left + 2 + (right - left - 4) * (it - x0) / (x1 - x0) or (left + right) / 2 end
  local function py(v) return bottom - 2 - (bottom - top - 4) * (v - lo) / (hi - lo) end
  c:text(x, top, fmt(hi), BLACK)
  c:text(x, bottom - 7, fmt(lo), BLACK)
  c:text(left, bottom + 4, tostring(x0), BLACK)
  local lab = tostring(x1)
  c:text(right - 6 * #lab + 1, bottom + 4, lab, BLACK)
  local colour = name == "q_top1" and RED or BLUE
  for i = 2, #pts do
    c:line(px(pts[i - 1][1]), py(pts[i - 1][2]), px(pts[i][1]), py(pts[i][2]), colour)
  end
  if #pts <= 30 then for _, p in ipairs(pts) do c:dot(px(p[1]), py(p[2]), colour) end end
end

--- Writes the loss curves of a run (rows of metrics.jsonl) to path: one
-- panel for each of `series` (default plot.SERIES) present in the rows;
-- labels (name -> title) add to plot.LABELS.
function plot.losses(path, rows, title, series, labels)
  local names = {}
  for _, n in ipairs(series or plot.SERIES) do
    for _, r in ipairs(rows) do
      if type(r[n]) == "number" then names[#names + 1] = n break end
    end
  end
  if #names == 0 then return false end
  local cols, pw, ph = 3, 300, 170
  local nrow = (#names + cols - 1) // cols
  local c = plot.canvas(cols * pw + 20, nrow * ph + 40)
  c:text(10, 8, (title or "") .. "  (x: iteration)", BLACK, 2)
  for i, n in ipairs(names) do
    local col, row = (i - 1) % cols, (i - 1) // cols
    plot.panel(c, 10 + col * pw, 36 + row * ph, pw - 12, ph - 8, n, rows, nil, labels and labels[n])
  end
  acq.image.save(path, c:tensor())
  return true
end

return plot
