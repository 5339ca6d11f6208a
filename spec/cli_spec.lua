-- spec/cli_spec.lua -- recipe options: parsing, types, flags, help, errors.
local cli = require "acq.cli"
local H = require "spec.helper"

local spec = cli.new("recipes/x.lua", "A test recipe.", {
  { "iters", 1200, "iterations of Algorithm 1" },
  { "lr", 1e-3, "generator learning rate" },
  { "bits", "w4a4", "quantization spec" },
  { "cacm", true, "use L_CACM" },
  { "weights", cli.none "path", "FP weights" },
  { "warmup_iters", 200, "warm-up iterations" },
})

describe("command-line options", function()
  it("fill defaults and convert by the default's type", function()
    local o = spec:parse { "--iters", "50", "--lr=0.5", "--no-cacm", "--weights", "w.safetensors", "--warmup-iters", "7" }
    assert.equal(50, o.iters)
    assert.equal("integer", math.type(o.iters))
    assert.equal(0.5, o.lr)
    assert.is_false(o.cacm)
    assert.equal("w.safetensors", o.weights)
    assert.equal(7, o.warmup_iters)
    assert.equal("w4a4", o.bits)
    assert.is_true(o._given.iters and o._given.cacm)
    assert.is_nil(o._given.bits)
    local d = spec:parse {}
    assert.equal(1200, d.iters)
    assert.is_true(d.cacm)
    assert.is_nil(d.weights)
    assert.is_true(spec:parse({ "--cacm=true" }).cacm)
  end)

  it("help lists every option with its default and meaning", function()
    local o, text = spec:parse { "--iters", "3", "--help" }
    assert.is_nil(o)
    assert.matches("usage: acqlua recipes/x.lua %[options%]", text)
    assert.matches("%-%-iters INTEGER%s+iterations of Algorithm 1 %(default: 1200%)", text)
    assert.matches("%-%-cacm, %-%-no%-cacm%s+use L_CACM %(default: true%)", text)
    assert.matches("%-%-weights PATH%s+FP weights %(default: none%)", text)
    assert.matches('%-%-bits STRING%s+quantization spec %(default: "w4a4"%)', text)
    -- underscores are shown as dashes (both are accepted)
    assert.matches("%-%-warmup%-iters INTEGER%s+warm%-up iterations %(default: 200%)", text)
    assert.not_matches("warmup_iters", text)
    local s2 = cli.new("x", "y", { { "alpha", cli.none("number", "the preset's"), "a weight" } })
    assert.matches("%-%-alpha NUMBER%s+a weight %(default: the preset's%)", select(2, s2:parse { "--help" }))
    assert.equal("--warmup-iters expects an integer, got 'x'", H.fails(spec.parse, spec, { "--warmup_iters", "x" }))
    assert.equal("unknown option --warmup-iter, did you mean --warmup-iters? (see --help)",
      H.fails(spec.parse, spec, { "--warmup-iter", "3" }))
  end)

  it("errors are one line and suggest the nearest option", function()
    assert.equal("unknown option --iter, did you mean --iters? (see --help)",
      H.fails(spec.parse, spec, { "--iter", "3" }))
    assert.equal("--iters expects an integer, got '1.5'", H.fails(spec.parse, spec, { "--iters", "1.5" }))
    assert.equal("--lr needs a value", H.fails(spec.parse, spec, { "--lr" }))
    assert.equal("unexpected argument 'x' (options start with --; see --help)", H.fails(spec.parse, spec, { "x" }))
    assert.equal("unknown option --no-iters (see --help)", H.fails(spec.parse, spec, { "--no-iters" }))
  end)
end)
