--- acq.image: pictures of synthetic samples and their attention, as PNG.
--
--   image.grid(x, {nrow = 8, pad = 2, normalize = "each"}) -> uint8 [H,W,3]
--   image.overlay(x, M, {alpha = 0.5}) -> float [N,3,H,W] in [0, 1]
--   image.heat(M) -> float [N,3,h,w]: a blue-to-red colour map of M in [0, 1]
--   image.save(path, picture)  (uint8 [H,W,C], or a float [C,H,W] in [0, 1])
--
-- The work is tensor operations (C); only the placement loop is Lua.
local acq = require "acq"

local image = {}

-- float [C,H,W] in [0, 1] -> uint8 [H,W,C]
local function to_u8(chw)
  return (chw * 255):round():clamp(0, 255):to("u8"):permute(1, 2, 0):contiguous()
end

--- Scales each image of x [N,C,H,W] to [0, 1] by its own min and max
-- (normalize = "each"), or all of them together ("all"); "none" clamps.
function image.unit(x, normalize)
  normalize = normalize or "each"
  return acq.no_grad(function()
    x = x:detach():float()
    if normalize == "none" then return x:clamp(0, 1) end
    local N = x:size(0)
    local f = normalize == "all" and x:reshape(1, -1) or x:reshape(N, -1)
    local mn, mx = f:amin(1, true), f:amax(1, true)
    local u = (f - mn) / (mx - mn):clamp(1e-12)
    return u:view(x:shape())
  end)
end

--- Arranges x [N,C,H,W] (C = 1 or 3) into one RGB picture, nrow images per
-- row, separated by pad pixels of white. Returns uint8 [H', W', 3].
function image.grid(x, opts)
  opts = opts or {}
  local N, C, H, W = table.unpack(x:shape())
  assert(C == 1 or C == 3, "image.grid: images must have 1 or 3 channels")
  local nrow = math.min(opts.nrow or 8, N)
  local pad = opts.pad or 2
  local rows = (N + nrow - 1) // nrow
  return acq.no_grad(function()
    local u = image.unit(x, opts.normalize)
    if C == 1 then u = u:expand(N, 3, H, W) end
    local Ht, Wt = rows * H + (rows + 1) * pad, nrow * W + (nrow + 1) * pad
    local canvas = acq.ones(3, Ht, Wt)
    for i = 0, N - 1 do
      local r, c = i // nrow, i % nrow
      canvas:narrow(1, pad + r * (H + pad), H):narrow(2, pad + c * (W + pad), W):copy_(u[i])
    end
    return to_u8(canvas)
  end)
end

--- A blue (0) - cyan - yellow - red (1) colour map of M [N,h,w] in [0, 1]:
-- r = clamp(1.5 - |4m - 3|), g = clamp(1.5 - |4m - 2|), b = clamp(1.5 - |4m - 1|).
function image.heat(M)
  return acq.no_grad(function()
    local m = M:detach():float():unsqueeze(1)
    local function ch(c) return ((m * 4 - c):abs():neg() + 1.5):clamp(0, 1) end
    return acq.cat({ ch(3), ch(2), ch(1) }, 1)
  end)
end

--- The attention map M [N,h,w] (eq. (3), in [0, 1]) resized to the images
-- x [N,C,H,W] (bilinear) and blended over their grey version:
-- alpha * heat + (1 - alpha) * grey. Returns float [N,3,H,W] in [0, 1].
function image.overlay(x, M, opts)
  local alpha = (opts and opts.alpha) or 0.5
  local N, _, H, W = table.unpack(x:shape())
  return acq.no_grad(function()
    local grey = image.unit(x):mean(1, true):expand(N, 3, H, W)
    local Mu = acq.upsample_bilinear2d(M:detach():float():unsqueeze(1), { H, W }):squeeze(1):clamp(0, 1)
    return image.heat(Mu) * alpha + grey * (1 - alpha)
  end)
end

--- Writes a picture as PNG, atomically. picture: uint8 [H,W,C], or a float
-- [C,H,W] in [0, 1].
function image.save(path, pic)
  if pic:dtype() ~= "u8" then
    pic = acq.no_grad(function() return to_u8(pic:detach():float()) end)
  end
  acq.write_png(path, pic)
end

return image
