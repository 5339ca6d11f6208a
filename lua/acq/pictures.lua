--- acq.pictures: what a run draws. Each sample beside its attention map
-- (eq. (3) on F^eval) with its target cell outlined, the loss curves, and
-- the pictures a recipe registers.
local acq = require "acq"

local P = {}

--- The fixed samples of the pictures: up to 10 classes (4 at ImageNet
-- size) x 4 columns (2), positions spread across the grid, drawn by the run's
-- sampler (so its extra fields are in them) from a stream of their own.
function P.fixed_samples(alg)
  local G = alg.G
  local big = G.size >= 128
  local K, ncol = math.min(alg.classes, big and 4 or 10), big and 2 or 4
  local ys, ps = {}, {}
  for c = 0, K - 1 do
    for j = 1, ncol do
      ys[#ys + 1] = c
      if G.positions then ps[#ps + 1] = math.floor((j - 0.5) * G.positions / ncol) end
    end
  end
  local fixed = { y = acq.tensor(ys, { dtype = "i64" }), -- on the host, as every draw (Alg:draw moves them)
    p = G.positions and acq.tensor(ps, { dtype = "i64" }) or nil }
  local ctx = alg:sampler_context(0, fixed, acq.generator(alg.seed + 7919))
  ctx.batch = #ys
  local s = alg:draw(ctx)
  s.ncol = ncol
  return s
end

--- Outlines, on each overlay (the odd images of pair [2n,3,H,W]), the
-- attention cell ps[i] (row-major on a gh x gw grid over the picture) that
-- sample i was generated for, in white (absent from the heat colours).
function P.mark_cells(pair, ps, gh, gw)
  local H, W = pair:shape()[3], pair:shape()[4]
  for i, p in ipairs(ps) do
    local r, c = p // gw, p % gw
    local y0, y1 = r * H // gh, (r + 1) * H // gh - 1
    local x0, x1 = c * W // gw, (c + 1) * W // gw - 1
    local img = pair:select(0, 2 * i - 1)
    img:narrow(1, y0, 1):narrow(2, x0, x1 - x0 + 1):fill_(1)
    img:narrow(1, y1, 1):narrow(2, x0, x1 - x0 + 1):fill_(1)
    img:narrow(1, y0, y1 - y0 + 1):narrow(2, x0, 1):fill_(1)
    img:narrow(1, y0, y1 - y0 + 1):narrow(2, x1, 1):fill_(1)
  end
end

--- One row per class: each sample s (from P.fixed_samples) beside its
-- attention map, the target cell outlined; written to path.
function P.samples(path, F, G, s)
  acq.no_grad(function()
    local x = G(s.z1, s.y, s.p, s)
    local _, aux = F:forward(x, { bn = "eval", features = true })
    local M = acq.attention(aux.features)
    local n, c, h, w = table.unpack(x:shape())
    local scale = math.max(1, 96 // h)
    x = x:cpu()
    local u = acq.image.unit(x)
    if c == 1 then u = u:expand(n, 3, h, w) end
    local ov = acq.image.overlay(x, M:cpu())
    local pair = acq.stack({ u:contiguous(), ov }, 1):view(2 * n, 3, h, w)
    if scale > 1 then pair = acq.upsample_nearest2d(pair, { h * scale, w * scale }) end
    if s.p then P.mark_cells(pair, s.p:cpu():totable(), M:shape()[2], M:shape()[3]) end
    acq.image.save(path, acq.image.grid(pair, { nrow = 2 * s.ncol, normalize = "none", pad = 4 }))
  end)
end

--- The loss curves' series of a run: the totals, every term of both
-- objectives in order, the run's diagnostics and the recipe's series.
-- Returns names, labels (name -> panel title).
function P.series(alg)
  local names, labels, seen = {}, {}, {}
  local function add(n, label)
    if not seen[n] then names[#names + 1], seen[n] = n, true end
    if label then labels[n] = label end
  end
  add(alg.g_objective.name)
  for _, n in ipairs(alg.g_objective:names()) do add(n) end
  add "cacm_m"
  add "fp_agree"
  add(alg.q_objective.name)
  for _, n in ipairs(alg.q_objective:names()) do add(n) end
  for _, e in ipairs(alg.series) do add(e[1], e[2]) end
  add "q_top1"
  return names, labels
end

--- Draws every picture of iteration it into dir: the samples, the loss
-- curves (rows: the metrics so far) and the recipe's pictures. say(msg)
-- reports a picture that could not be drawn (a picture never stops a run).
function P.draw_all(dir, alg, fixed, rows, title, it, say)
  P.samples(("%s/samples/iter_%06d.png"):format(dir, it), alg.F, alg.G, fixed)
  local names, labels = P.series(alg)
  local ok, err = pcall(acq.plot.losses, dir .. "/losses.png", rows, title, names, labels)
  if not ok then say("losses.png not drawn: " .. tostring(err)) end
  for _, p in ipairs(alg.pictures) do
    local okp, errp = pcall(p.draw, alg, ("%s/%s_%06d.png"):format(dir, p[1] or p.name, it), it)
    if not okp then say(("%s not drawn: %s"):format(p[1] or p.name, tostring(errp))) end
  end
end

return P
