-- spec/image_spec.lua -- picture grids, the attention colour map and overlay,
-- and PNG files (the encoder itself is checked with zlib in tests/png_test.c).
local acq = require "acq"
local H = require "spec.helper"
local image = acq.image

describe("pictures", function()
  it("grid: each image scaled to [0, 255] by its own range, placed row by row on white", function()
    -- two 1-channel 2x2 images: [[0, 1], [2, 3]] and [[10, 10], [10, 20]]
    local x = acq.tensor({ { { { 0, 1 }, { 2, 3 } } }, { { { 10, 10 }, { 10, 20 } } } })
    local g = image.grid(x, { nrow = 2, pad = 1 })
    assert.same({ 4, 7, 3 }, g:shape()) -- 1 + 2 + 1 rows, 1 + 2 + 1 + 2 + 1 columns
    local t = g:totable()
    local function px(r, c) return t[r + 1][c + 1][1] end
    assert.same({ 255, 255, 255 }, t[1][1]) -- padding
    assert.equal(0, px(1, 1))
    assert.equal(85, px(1, 2))   -- 1/3 of 255
    assert.equal(170, px(2, 1))
    assert.equal(255, px(2, 2))
    assert.equal(0, px(1, 4))    -- second image: 10 -> 0, 20 -> 255
    assert.equal(255, px(2, 5))
    assert.same({ 85, 85, 85 }, t[2][3], "grey images become grey RGB")
  end)

  it("heat: blue at 0, green at 0.5, red at 1", function()
    local h = image.heat(acq.tensor({ { { 0, 0.5, 1 } } })):totable()
    local function rgb(i) return { h[1][1][1][i], h[1][2][1][i], h[1][3][1][i] } end
    H.close(rgb(1), { 0, 0, 0.5 }, 0, 1e-7, "m = 0")
    H.close(rgb(2), { 0.5, 1, 0.5 }, 0, 1e-7, "m = 0.5")
    H.close(rgb(3), { 0.5, 0, 0 }, 0, 1e-7, "m = 1")
  end)

  it("overlay: alpha * heat + (1 - alpha) * grey, the map resized to the image", function()
    local x = acq.zeros(1, 3, 4, 4) -- a constant image: grey 0 after scaling
    local M = acq.tensor({ { { 1, 1 }, { 1, 1 } } })
    local o = image.overlay(x, M, { alpha = 0.5 })
    assert.same({ 1, 3, 4, 4 }, o:shape())
    H.close(o[0]:select(1, 2):select(1, 3), { 0.25, 0, 0 }, 0, 1e-7, "red at full attention")
  end)

  it("save writes a PNG atomically and names the file on error", function()
    local path = os.tmpname()
    image.save(path, acq.rand(3, 5, 7))
    local s = H.read_file(path)
    os.remove(path)
    assert.equal("\137PNG\r\n\26\n", s:sub(1, 8))
    local w, h, depth, ctype = string.unpack(">I4I4BB", s, 17)
    assert.same({ 7, 5, 8, 2 }, { w, h, depth, ctype })
    assert.matches("/nonexistent/x.png", H.fails(image.save, "/nonexistent/x.png", acq.rand(3, 2, 2)))
    assert.matches("expected a uint8 tensor", H.fails(acq.write_png, path, acq.rand(2, 2)))
  end)
end)
