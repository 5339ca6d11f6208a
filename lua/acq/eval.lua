--- acq.eval -- accuracy on a labelled dataset (evaluation only).
local acq = require "acq"

local E = {}

--- top-1 and top-5 accuracy (percent) of model over the batches of loader
-- (an iterator of x, y; see acq.data.loader), with BN in eval mode and no
-- gradient. Returns top1, top5, n, and the predictions (i64 [n]).
-- Top-1 is argmax (first index on ties, as torch.argmax); top-5 counts the
-- classes scoring strictly higher than the true one.
-- o.progress: function(done_samples) called after each batch.
function E.accuracy(model, loader, o)
  o = o or {}
  local n, c1, c5 = 0, 0, 0
  local preds = {}
  -- batches come from the host; they go where the model is
  local p1 = model:parameters()[1]
  local dev = p1 and p1:device() or "cpu"
  acq.no_grad(function()
    for x, y in loader do
      if dev ~= "cpu" then x, y = x:to { device = dev }, y:to { device = dev } end
      -- Ctrl-C in a run (acq.catch_interrupts) stops an evaluation at once
      if acq.interrupted() then error("interrupted", 0) end
      local logits = model:forward(x, { bn = "eval" })
      local pred = logits:argmax(1)
      local true_score = logits:gather(1, y:view(-1, 1))
      local rank = logits:gt(true_score):sum(1)
      c1 = c1 + pred:eq(y):sum():item()
      c5 = c5 + rank:lt(5):sum():item()
      n = n + y:shape()[1]
      preds[#preds + 1] = dev ~= "cpu" and pred:cpu() or pred
      if o.progress then o.progress(n) end
    end
  end)
  if n == 0 then error("accuracy: the loader gave no samples", 2) end
  return 100 * c1 / n, 100 * c5 / n, n, acq.cat(preds, 0)
end

--- evaluate(model) -> top1, top5, n, preds over the whole of dataset ds
-- (batches of batch_size, default 500, in order): what a recipe hands to
-- the training loop, so real data reaches it only through this function.
function E.evaluator(ds, batch_size)
  if batch_size ~= nil and (math.type(batch_size) ~= "integer" or batch_size < 1) then
    error(("acq.eval.evaluator: batch_size must be a whole number of at least 1, got %s"):format(tostring(batch_size)), 2)
  end
  return function(model)
    return E.accuracy(model, acq.data.loader(ds, { batch_size = batch_size or 500 }))
  end
end

return E
