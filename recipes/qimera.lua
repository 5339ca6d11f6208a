--- recipes/qimera.lua -- Qimera (Choi et al., NeurIPS 2021), as its public
-- code does it (../shared/PEERS.md), in Algorithm 1's runner:
--   G     GDFQ's generator whose input vector is BN(Emb_class(y) + z), with
--         Qimera's optional disentanglement mapping (a Linear on the
--         embedding, --mapping; off, as in its scripts);
--   mix   with probability --mix-p (0.4) per batch, each sample's embedding
--         is sum_k w_k Emb_class(y_k) over --mix-k (2) classes drawn
--         uniformly, w = softmax(N(0, I)), and w spread over those classes
--         is its soft label;
--   L_G   soft-label CE + 0.1 L_BNS (GDFQ's coefficients: mean over layers);
--   Q     as GDFQ trains it (--strategy gdfq: CE + tau KD, SGD Nesterov),
--         with the soft labels as CE's target.
-- One group per iteration, as in GDFQ and Qimera. acq's choices where the
-- code leaves one: classes of a mix are drawn with replacement (Qimera's
-- too), the fixed samples of the pictures are never mixed.
--
--   acqlua recipes/qimera.lua                        # Fashion-MNIST demo model
--   acqlua recipes/qimera.lua --dataset cifar10 --weights W --val DIR
local acq = require "acq"
local recipe = require "acq.recipe"

local own = {
  { "mix_p", 0.4, "probability that a batch's samples are superposed classes" },
  { "mix_k", 2, "classes superposed in one sample (Qimera: 2 for 10 classes, 10 for 100)" },
  { "mapping", false, "Qimera's disentanglement mapping: a trainable Linear on the class embedding" },
}
for _, x in ipairs(recipe.dataset_options) do own[#own + 1] = x end
local spec = recipe.cli("recipes/qimera.lua",
  "Qimera: superposed class embeddings as boundary-supporting samples, soft-label CE + 0.1 L_BNS.", own, true,
  { iters = 800, warmup = 100, eval_every = 200, batch = 64 })

recipe.main(function()
  local run = recipe.start("qimera", spec, arg, function(o)
    recipe.check_dataset(o)
    if not (o.mix_p >= 0 and o.mix_p <= 1) then recipe.die("--mix-p must be in [0, 1], got %g", o.mix_p) end
    if o.mix_k < 1 then recipe.die("--mix-k must be at least 1, got %d", o.mix_k) end
  end)
  local o = run.opts
  local d = recipe.dataset(o) -- F, and the only read of real data: evaluation
  local C, K, D = d.classes, o.mix_k, 100

  -- the sample: GDFQ's draw, then, with probability mix_p, the superposition
  local function sampler(ctx)
    local b = acq.algorithm.paired_sampler(ctx)
    local B = b.y:size(0)
    b.soft = acq.one_hot(b.y, C):float()
    if not ctx.fixed and acq.rand({ 1 }, { generator = ctx.generator }):item() < o.mix_p then
      b.mix_y = acq.randint(0, C, { B, K }, { generator = ctx.generator })
      b.mix_w = acq.softmax(acq.randn(B, K, { generator = ctx.generator }), 1)
      b.soft = (acq.one_hot(b.mix_y, C):float() * b.mix_w:unsqueeze(2)):sum(1)
    end
    return b
  end

  -- G: input BN(Emb(y) + z), Emb(y) the mix when there is one
  local modules = { input_bn = acq.nn.batchnorm2d(D), mapping = o.mapping and acq.nn.linear(D, D) or nil }
  local G = acq.gen.gdfq { classes = C, size = d.size, channels = d.channels, modules = modules,
    class_embedding = function(G, y, b)
      local e = G.net.label_emb(y)
      if b and b.mix_y then
        e = (G.net.label_emb(b.mix_y:view(-1)):view(y:size(0), K, D) * b.mix_w:unsqueeze(2)):sum(1)
      end
      return G.parts.mapping and G.parts.mapping(e) or e
    end,
    condition = function(G, z, y, _, b)
      return G.parts.input_bn:forward(G:class_embedding(y, b) + z, { bn = "train" })
    end }

  -- L_G: GDFQ's L_CE + 0.1 L_BNS with the soft labels in CE
  local LG = acq.objective.acq_g(recipe.coefficients(o, "gdfq"))
  LG:replace("L_CE", function(c) return acq.loss.soft_ce((c:eval()), c.b.soft) end)
  -- Q: the strategy's objective, CE towards the same soft labels
  local LQ = require("acq.strategy").pieces(o, function() end).q_objective
  if LQ:get("Q_CE") then LQ:replace("Q_CE", function(c) return acq.loss.soft_ce(c:q(), c.b.soft, { what = "Q_CE" }) end) end
  local alg = recipe.algorithm(run, { F = d.F, G = G, g_objective = LG, q_objective = LQ, sampler = sampler,
    groups = 1, target = "labels", input_range = recipe.input_range(d.norm.mean, d.norm.std),
    series = { { "mixed", "share of mixed batches" } },
    hooks = { { name = "mixed", after = function(alg, _, row) row.mixed = alg.last_sample.mix_y and 1 or 0 end } } })

  local res = run:loop(alg, function(it)
    local b = alg:sample(it)          -- z ~ N(0, I), y ~ U(C); superposed with probability mix_p
    local c = alg:g_step(b)           -- G on soft-label CE + 0.1 L_BNS
    if alg:calibrating(it) then alg:calibrate(c)   -- warm-up: Q's activation bounds
    else alg:q_step(c) end            -- Q on its strategy's objective, towards the soft labels
  end, { evaluate = d.evaluate, model = d.model })
  if res.interrupted then return "interrupted" end
  run:finish { fp_top1 = d.fp_top1, q_top1 = res.q_top1, q_top5 = res.q_top5, bits = o.bits, strategy = o.strategy,
    method = "qimera", iters = res.iter, seconds = res.elapsed, export = res.export }
  print(("Qimera %s: %s%s (%d iterations, %s)"):format(o.bits, res.q_top1 and ("%.2f%%"):format(res.q_top1) or "-",
    d.fp_top1 and (" (FP32 %.2f%%)"):format(d.fp_top1) or "", res.iter, acq.progress.hms(res.elapsed)))
end)
