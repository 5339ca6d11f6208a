--- examples/variants/sincos_position.lua -- ACQ on the Fashion-MNIST demo
-- with a fixed 2-D sinusoidal position encoding in G in place of the
-- learned Emb_position(p) of eq. (11): cell p of the 7x7 attention grid
-- becomes sin/cos of its row and column (acq.sincos2d, in C).
--
--   acqlua examples/variants/sincos_position.lua [--iters 600 ...]
local acq = require "acq"
local recipe = require "acq.recipe"

local spec = recipe.cli("examples/variants/sincos_position.lua",
  "ACQ with a fixed 2-D sinusoidal position encoding in G (Fashion-MNIST).", recipe.fashion_options, true,
  { iters = 600, warmup = 100, eval_every = 200 })

recipe.main(function()
  local run = recipe.start("sincos_position", spec, arg)
  local o = run.opts
  local F, evaluate = recipe.fashion(o)

  -- the variant: G's position part, given to the constructor
  local G = acq.gen.acq { classes = 10, size = 28, channels = 1,
    position = function(G, p) return acq.sincos2d(p, 7, 7, G.latent) end }
  local LG = acq.objective.acq_g(recipe.coefficients(o, "cifar10"))
  local norm = acq.data.FASHION_NORM
  local alg = recipe.algorithm(run, { F = F, G = G, g_objective = LG,
    input_range = recipe.input_range(norm.mean, norm.std) })

  local res = run:loop(alg, function(it)
    local b = alg:sample(it)
    local c = alg:g_step(b)
    if alg:calibrating(it) then alg:calibrate(c) else alg:q_step(c) end
  end, { evaluate = evaluate })
  if res.interrupted then return "interrupted" end
  run:finish { q_top1 = res.q_top1, iters = res.iter, variant = "sincos_position" }
  print(("sincos position encoding, %s: Q top-1 %.2f%%"):format(o.bits, res.q_top1))
end)
