-- plot_spec.lua -- the loss-curve picture: glyphs, lines and panels drawn
-- where they should be, checked pixel by pixel.
local acq = require "acq"
local H = require "spec.helper"
local plot = acq.plot

local function ink(c, x, y)
  local r, g, b = c:get(x, y)
  return not (r == 255 and g == 255 and b == 255)
end

describe("acq.plot", function()
  it("draws a glyph from its 5x7 bitmap, lowercase as capitals", function()
    local c = plot.canvas(20, 10)
    assert.equal(12, c:text(1, 1, "1l", { 0, 0, 0 }))
    -- '1': 00100 / 01100 / 00100 x4 / 01110
    local rows = {}
    for y = 1, 7 do
      local s = ""
      for x = 1, 5 do s = s .. (ink(c, x, y) and "1" or "0") end
      rows[y] = s
    end
    assert.same({ "00100", "01100", "00100", "00100", "00100", "00100", "01110" }, rows)
    -- 'l' drawn as 'L': a column at x = 7 and a bottom row
    for y = 1, 7 do assert.is_true(ink(c, 7, y)) end
    for x = 7, 11 do assert.is_true(ink(c, x, 7)) end
    assert.is_false(ink(c, 8, 1))
    assert.is_false(ink(c, 0, 0))
  end)

  it("a line reaches both ends; the canvas becomes an RGB tensor row by row", function()
    local c = plot.canvas(7, 5)
    c:line(0, 4, 6, 0, { 10, 20, 30 })
    assert.is_true(ink(c, 0, 4) and ink(c, 6, 0) and ink(c, 3, 2))
    assert.is_false(ink(c, 0, 0))
    local t = c:tensor()
    assert.same({ 5, 7, 3 }, t:shape())
    assert.same({ 10, 20, 30 }, t[4][0]:totable())
    assert.same({ 255, 255, 255 }, t[0][0]:totable())
  end)

  it("a panel maps the first and last point to its corners and labels min and max", function()
    local rows = {}
    for i = 1, 5 do rows[i] = { iter = 10 * i, L_CE = 3 - 0.5 * i } end
    local c = plot.canvas(300, 170)
    plot.panel(c, 0, 0, 288, 162, "L_CE", rows)
    -- frame: left 58, top 20, right 282, bottom 148; points inset by 2
    local left, top, right, bottom = 58, 20, 282, 148
    assert.is_true(ink(c, left + 2, top + 2))          -- iteration 10, the maximum 2.5
    assert.is_true(ink(c, right - 2, bottom - 2))      -- iteration 50, the minimum 0.5
    assert.is_false(ink(c, left + 2, bottom - 12))     -- nothing below a falling line's start
    assert.equal("2.5", plot.format(2.5))
    assert.equal("1.37e+04", plot.format(13677.9))
    -- the maximum's label sits at the top left, in black
    -- ("2.5": the top row of '2' is 01110)
    assert.same({ false, true, true, true, false }, { ink(c, 0, top), ink(c, 1, top), ink(c, 2, top),
      ink(c, 3, top), ink(c, 4, top) })
    assert.same({ 0, 0, 0 }, { c:get(1, top) })
  end)

  it("writes losses.png with a panel per quantity found", function()
    local rows = { { iter = 1, L_G = 5, L_CE = 2 }, { iter = 2, L_G = 4, L_CE = 1.5, q_top1 = 80 } }
    local path = os.tmpname() .. ".png"
    assert.is_true(plot.losses(path, rows, "test"))
    local png = H.read_file(path)
    assert.equal("\137PNG", png:sub(1, 4))
    -- IHDR: 3 panels in one row -> 920 x 210
    assert.equal(920, string.unpack(">I4", png, 17))
    assert.equal(210, string.unpack(">I4", png, 21))
    assert.is_false(plot.losses(path, { { iter = 1 } }, "none"))
    os.remove(path)
  end)
end)

describe("sample pictures", function()
  it("outline the target cell p of each sample on its overlay, row-major on the grid", function()
    local pictures = require "acq.pictures"
    -- two samples (4 images: picture, overlay, picture, overlay) of 28x28 on a 7x7 grid
    local pair = acq.zeros(4, 3, 28, 28)
    pictures.mark_cells(pair, { 6, 8 }, 7, 7)
    -- p = 6: row 0, column 6 -> pixels rows 0..3, columns 24..27 of image 2
    local o = pair:select(0, 1):select(0, 0)
    H.equal(o:narrow(0, 0, 1):narrow(1, 24, 4), { { 1, 1, 1, 1 } })
    H.equal(o:narrow(0, 3, 1):narrow(1, 24, 4), { { 1, 1, 1, 1 } })
    H.equal(o:narrow(0, 1, 2):narrow(1, 24, 1), { { 1 }, { 1 } })
    H.equal(o:narrow(0, 1, 2):narrow(1, 25, 2), { { 0, 0 }, { 0, 0 } }) -- inside stays
    assert.equal(12, o:sum():item()) -- the outline of a 4x4 cell and nothing else
    -- p = 8: row 1, column 1 -> rows 4..7, columns 4..7 of image 4
    local q = pair:select(0, 3):select(0, 2)
    H.equal(q:narrow(0, 4, 1):narrow(1, 4, 4), { { 1, 1, 1, 1 } })
    assert.equal(12, q:sum():item())
    -- the pictures themselves are untouched
    assert.equal(0, pair:select(0, 0):sum():item() + pair:select(0, 2):sum():item())
  end)
end)
