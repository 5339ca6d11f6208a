--- acq.supervised: ordinary supervised training of a full-precision model,
-- for the demo's FP ResNet-20. This is the one place training data is read;
-- the data-free part (acq.recipe) never calls it.
--
--   acq.supervised.train(model, ds, {epochs = 3, batch = 128, lr = 0.1, ...})
--
-- SGD with Nesterov momentum 0.9 and weight decay, a one-cycle learning
-- rate (linear from lr/25 up to lr over the first 30 % of the steps, then a
-- cosine down to lr/1e4; PyTorch's OneCycleLR without its momentum cycle),
-- random horizontal flips, BN in train mode.
local acq = require "acq"

local S = {}

--- The one-cycle learning rate at step k of n (0-based).
function S.one_cycle(k, n, lr, pct)
  pct = pct or 0.3
  local up = math.max(1, math.floor(pct * n + 0.5))
  local lo, final = lr / 25, lr / 1e4
  if k < up then return lo + (lr - lo) * k / up end
  local t = (k - up) / math.max(1, n - 1 - up)
  return final + (lr - final) * 0.5 * (1 + math.cos(math.pi * math.min(1, t)))
end

-- Flips a random half of the batch left-right (generator g).
local function random_flip(x, g)
  local B = x:size(0)
  local m = acq.rand({ B, 1, 1, 1 }, { generator = g }):lt(0.5)
  return acq.where(m, x:flip { 3 }, x)
end

--- Trains model on ds. opts: epochs (3), batch (128), lr (0.1),
-- weight_decay (5e-4), seed (0), flip (true), label ("FP training").
-- Returns {loss = last epoch's mean loss, seconds}.
function S.train(model, ds, opts)
  opts = opts or {}
  local epochs, bs, lr = opts.epochs or 3, opts.batch or 128, opts.lr or 0.1
  local g = acq.generator(opts.seed or 0)
  model:requires_grad_(true)
  local opt = acq.optim.sgd(model:parameters(), { lr = lr, momentum = 0.9, nesterov = true,
    weight_decay = opts.weight_decay or 5e-4 })
  local n = ds.images:size(0)
  local per_epoch = n // bs
  local total = epochs * per_epoch
  local bar = acq.progress.new { total = total, label = opts.label or "FP training" }
  local step, t0, mean = 0, acq.clock(), 0
  for epoch = 1, epochs do
    local sum, count = 0, 0
    for x, y in acq.data.loader(ds, { batch_size = bs, shuffle = true, generator = g, drop_last = true }) do
      collectgarbage() -- the last step's tensor handles (see recipe.step)
      if opts.flip ~= false then x = random_flip(x, g) end
      opt:lr(S.one_cycle(step, total, lr))
      local logits = model:forward(x, { bn = "train" })
      local L = acq.loss.ce(logits, y)
      opt:zero_grad()
      L:backward()
      opt:step()
      step = step + 1
      local l = L:item()
      if l ~= l then error(("FP training: the loss became NaN at epoch %d, step %d"):format(epoch, step), 0) end
      sum, count = sum + l, count + 1
      bar:update(step, { epoch = epoch, loss = sum / count })
    end
    mean = sum / count
  end
  bar:finish()
  model:requires_grad_(false)
  return { loss = mean, seconds = acq.clock() - t0 }
end

return S
