-- bench/eval_agreement.lua OUT.safetensors [ITERS] -- trains a ResNet-20 on
-- Fashion-MNIST for ITERS SGD steps (so its predictions are varied), writes
-- the weights, and evaluates them on the test set; prints top-1, top-5 and
-- writes the predictions beside the weights (OUT.pred.safetensors) for
-- bench/eval_agreement.py to compare sample by sample.
local acq = require "acq"
local out = assert(arg[1], "usage: eval_agreement.lua OUT.safetensors [ITERS]")
local iters = tonumber(arg[2] or 150)
acq.manual_seed(0)
local F = acq.models.resnet20 { in_channels = 1, classes = 10 }
local train = acq.data.fashion_mnist { split = "train" }
local opt = acq.optim.sgd(F:parameters(), { lr = 0.05, momentum = 0.9, nesterov = true, weight_decay = 5e-4 })
local t0 = os.time()
local it = 0
for x, y in acq.data.loader(train, { batch_size = 64, shuffle = true, seed = 1, drop_last = true }) do
  it = it + 1
  if it > iters then break end
  opt:zero_grad()
  local loss = -(acq.log_softmax(F:forward(x, { bn = "train" }), 1):gather(1, y:view(-1, 1))):mean()
  loss:backward()
  opt:step()
  if it % 50 == 0 then io.stderr:write(("step %d loss %.3f\n"):format(it, loss:item())) end
end
acq.models.save_weights(F, out)
local test = acq.data.fashion_mnist { split = "test" }
local t1 = os.clock()
local top1, top5, n, pred = acq.eval.accuracy(F, acq.data.loader(test, { batch_size = 500 }))
print(("acq: top-1 %.2f %%, top-5 %.2f %% on %d test images (eval %.1f s cpu)"):format(top1, top5, n, os.clock() - t1))
acq.safetensors.save(out:gsub("%.safetensors$", "") .. ".pred.safetensors", { pred = pred })
