--- examples/variants/qimera_mix.lua -- ACQ with Qimera's superposed class
-- embeddings: with probability --mix-p per batch, each sample's class
-- embedding is a mix of K = 2 class embeddings weighted by softmax of
-- Gaussian noise, and those weights are its soft label in L_CE and Pen_CE.
-- The mix travels in the sample table (fields mix_y, mix_w, soft), so it
-- reaches G, the objective, the pictures and the checkpoint.
local acq = require "acq"
local recipe = require "acq.recipe"

local own = { { "mix_p", 0.4, "probability that a batch's samples are superposed classes" } }
for _, x in ipairs(recipe.fashion_options) do own[#own + 1] = x end
local spec = recipe.cli("examples/variants/qimera_mix.lua",
  "ACQ with Qimera's superposed class embeddings and soft labels (Fashion-MNIST).", own, true,
  { iters = 600, warmup = 100, eval_every = 200 })

recipe.main(function()
  local run = recipe.start("qimera_mix", spec, arg)
  local o = run.opts
  local F, evaluate = recipe.fashion(o)
  local K, C = 2, 10

  local function sampler(ctx) -- the default draw, then the mix
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
  local G = acq.gen.acq { classes = C, size = 28, channels = 1, class_embedding = function(G, y, b)
    if not (b and b.mix_y) then return G.net.label_emb(y) end
    local E = G.net.label_emb(b.mix_y:view(-1)):view(y:size(0), K, G.latent)
    return (E * b.mix_w:unsqueeze(2)):sum(1)
  end }
  local LG = acq.objective.acq_g(recipe.coefficients(o, "cifar10"))
  local function soft(c) return c.groups == 2 and acq.cat({ c.b.soft, c.b.soft }, 0) or c.b.soft end
  LG:replace("L_CE", function(c) return acq.loss.soft_ce((c:eval()), soft(c)) end)
  LG:replace("Pen_CE", function(c) return acq.loss.soft_ce((c:train()), soft(c), { what = "Pen_CE" }) end)
  local norm = acq.data.FASHION_NORM
  local alg = recipe.algorithm(run, { F = F, G = G, g_objective = LG, sampler = sampler,
    input_range = recipe.input_range(norm.mean, norm.std) })

  local res = run:loop(alg, function(it)
    local b = alg:sample(it)
    local c = alg:g_step(b)
    if alg:calibrating(it) then alg:calibrate(c) else alg:q_step(c) end
  end, { evaluate = evaluate })
  if res.interrupted then return "interrupted" end
  run:finish { q_top1 = res.q_top1, iters = res.iter, variant = "qimera_mix" }
  print(("Qimera's superposed embeddings, %s: Q top-1 %.2f%%"):format(o.bits, res.q_top1))
end)
