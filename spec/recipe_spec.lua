-- recipe_spec.lua -- the Algorithm 1 runner (acq.recipe) and the recipes:
-- data-free by construction, checkpoints that resume bit for bit (after
-- Ctrl-C and after a kill), a NaN that stops the run with a named term and
-- iteration, and the recipes' command lines.
local acq = require "acq"
local H = require "spec.helper"
local recipe = require "acq.recipe"

local ACQLUA = os.getenv("ACQLUA") or "build/bin/acqlua"

local tmpdir, rows_of = H.tmpdir, H.rows_of

-- metrics without the wall-clock fields
local function strip(rows)
  for _, r in ipairs(rows) do r.sec_per_iter, r.elapsed = nil, nil end
  return rows
end

-- A run small enough for CI: ResNet-20 on 1x16x16 (a 4x4 attention grid,
-- 16 positions), 4 classes, 4 samples per group.
local function tiny(dir, args, hooks)
  hooks = hooks or {}
  local spec = recipe.cli("t", "a tiny run", {}, true)
  local a = { "--out", dir, "--iters", "6", "--warmup", "2", "--batch", "4", "--log-every", "1",
    "--ckpt-every", "2", "--sample-every", "3", "--threads", "1", "--lr-q", "0.01" }
  for _, v in ipairs(args or {}) do a[#a + 1] = v end
  local run = recipe.start("tiny", spec, a)
  acq.manual_seed(1)
  local F = acq.models.resnet20 { classes = 4, in_channels = 1 }
  acq.no_grad(function() -- BN statistics that are not the (0, 1) defaults
    for k, t in pairs((F:state_dict())) do
      if k:match("running_mean$") then t:copy_(acq.randn(t:shape()) * 0.1) end
      if k:match("running_var$") then t:copy_(acq.rand(t:shape()) + 0.5) end
    end
  end)
  local G = acq.gen.acq { classes = 4, size = 16, channels = 1 }
  if hooks.G then G = hooks.G(G) end
  local alg = recipe.algorithm(run, { F = F, G = G, g_objective = acq.objective.acq_g(recipe.coefficients(run.opts, "cifar10")),
    input_range = hooks.input_range, sampler = hooks.sampler, hooks = hooks.hooks })
  return run:loop(alg, hooks.body and hooks.body(alg) or acq.algorithm.body(alg), { evaluate = hooks.evaluate,
    model = { name = "resnet20", classes = 4, in_channels = 1 } }), run, alg
end

describe("acq.recipe: Algorithm 1", function()
  it("runs without any dataset: every reader raises, evaluation gets data only through its argument", function()
    local saved = {}
    local readers = { "fashion_mnist", "cifar", "read_idx", "loader", "normalize" }
    for _, k in ipairs(readers) do
      saved[k] = acq.data[k]
      acq.data[k] = function() error("the training loop opened a dataset (acq.data." .. k .. ")") end
    end
    local saved_read = acq.read_file
    acq.read_file = function(p) error("the training loop read a file: " .. tostring(p)) end
    local dir = tmpdir()
    local evaluated = {}
    local ok, res = pcall(tiny, dir, {}, { evaluate = function(Q)
      evaluated[#evaluated + 1] = Q
      return 12.5, 50
    end })
    for _, k in ipairs(readers) do acq.data[k] = saved[k] end
    acq.read_file = saved_read
    assert(ok, tostring(res))
    assert.equal(6, res.iter)
    assert.equal(1, #evaluated)          -- at the end only (eval_every 0)
    assert.equal(res.Q, evaluated[1])     -- the quantized model, nothing else
    local rows = rows_of(dir .. "/metrics.jsonl")
    assert.equal(6, #rows)
    assert.equal("warmup", rows[2].phase)
    assert.is_nil(rows[2].L_Q)            -- warm-up: Q only calibrates
    assert.equal("train", rows[3].phase)
    assert.is_number(rows[3].L_Q)
    for _, k in ipairs { "L_CE", "Pen_CE", "L_BNS", "Pen_BNS", "L_CACM", "Pen_CACM", "L_AD", "cacm_m" } do
      assert.is_number(rows[6][k], k)
    end
    assert.equal(12.5, rows[6].q_top1)
    for _, f in ipairs { "options.json", "checkpoint.safetensors", "samples/iter_000000.png", "samples/iter_000003.png",
                         "samples/iter_000006.png", "losses.png", "q_w4a4.safetensors" } do
      assert.is_true(recipe.exists(dir .. "/" .. f), f)
    end
    -- the exported model reloads and computes what Q computes
    local Qx, meta = acq.export.load(dir .. "/q_w4a4.safetensors")
    assert.equal("w4a4", meta.spec)
    local x = acq.randn(3, 1, 16, 16)
    H.close(Qx:forward(x, { bn = "eval" }), res.Q:forward(x, { bn = "eval" }), 1e-4, 1e-5)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("Table 6's ablations switch terms off, and the options reach the coefficients", function()
    local spec = recipe.cli("t", "t", {}, true)
    local o = spec:parse { "--no-cacm", "--no-penalty", "--alpha", "0.1", "--bns-reduction", "mean" }
    local c = recipe.coefficients(o, "cifar10")
    assert.equal(0, c.beta)
    assert.equal(1, c.gamma)
    assert.same({ 0, 0, 0 }, { c.pen_ce, c.pen_bns, c.pen_cacm })
    assert.equal(0.1, c.alpha)
    assert.equal("mean", c.bns_reduction)
    assert.equal(0, recipe.coefficients(spec:parse { "--no-ad" }, "cifar10").gamma)
    assert.same(acq.loss.coefficients("imagenet").alpha, recipe.coefficients(spec:parse {}, "imagenet").alpha)
  end)

  it("an interrupted run resumes bit for bit", function()
    local a, b = tmpdir(), tmpdir()
    local ra = tiny(a)
    -- the same run, interrupted by SIGTERM during iteration 3
    local calls = 0
    local rb = tiny(b, {}, { G = function(G)
      local fwd = G.forward
      G.forward = function(self, z, ...)
        if z:size(0) == 4 then calls = calls + 1 end -- training calls only (pictures draw 16)
        if calls == 5 and z:size(0) == 4 then os.execute("kill -TERM $PPID") end -- 2 calls per iteration
        return fwd(self, z, ...)
      end
      return setmetatable(G, { __index = getmetatable(G).__index, __call = G.forward })
    end })
    assert.is_true(rb.interrupted)
    assert.equal(3, rb.iter)
    assert.equal(3, #rows_of(b .. "/metrics.jsonl"))
    local _, meta = acq.safetensors.load(b .. "/checkpoint.safetensors")
    assert.equal("3", meta.iter)
    local rc = tiny(b, { "--resume", b })
    assert.is_nil(rc.interrupted)
    assert.same(strip(rows_of(a .. "/metrics.jsonl")), strip(rows_of(b .. "/metrics.jsonl")))
    local qa, qb = ra.Q:state_dict(), rc.Q:state_dict()
    for k, t in pairs(qa) do assert.is_true(t:equal(qb[k]), k) end
    os.execute("rm -rf '" .. a .. "' '" .. b .. "'")
  end)

  it("a NaN stops the run naming the term and the iteration; the last good checkpoint survives", function()
    local dir = tmpdir()
    local calls = 0
    local err = H.fails(tiny, dir, {}, { G = function(G)
      local fwd = G.forward
      G.forward = function(self, z, ...)
        local x = fwd(self, z, ...)
        if z:size(0) == 4 then calls = calls + 1 end
        if calls == 9 and z:size(0) == 4 then x = x * (0 / 0) end -- iteration 5
        return x
      end
      return setmetatable(G, { __index = getmetatable(G).__index, __call = G.forward })
    end })
    assert.matches("stopped at iteration 5: .*L_CE: .*NaN", err)
    assert.matches("last checkpoint %(.*checkpoint.safetensors, iteration 4%) is intact", err)
    local t, meta = acq.safetensors.load(dir .. "/checkpoint.safetensors")
    assert.equal("4", meta.iter)
    for k, v in pairs(t) do
      if v:dtype() == "f32" then assert.is_true(v:isfinite():all():item(), k) end
    end
    assert.equal(4, #rows_of(dir .. "/metrics.jsonl"))
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)

describe("recipes from the command line", function()
  local function acqlua(args)
    return H.run(ACQLUA .. " " .. args)
  end

  it("--help lists the options of each recipe", function()
    for _, r in ipairs { "acq_cifar", "acq_imagenet", "fashion", "gdfq" } do
      local out, rc = acqlua("recipes/" .. r .. ".lua --help")
      assert.equal(0, rc, out)
      assert.matches("usage: acqlua recipes/" .. r .. ".lua %[options%]", out)
      assert.matches("%-%-iters INTEGER", out)
      assert.matches("%-%-resume PATH", out)
    end
    for _, r in ipairs { "acq_cifar", "acq_imagenet", "fashion", "gdfq" } do
      local out = acqlua("recipes/" .. r .. ".lua --help")
      assert.matches("%-%-strategy STRING%s+Q's training strategy %(section 4%.2%): gdfq %(Table 3%), ait %(Table 4%) or intraq", out)
      assert.matches("%-%-calibration STRING", out)
    end
    assert.matches("%-%-no%-cacm", (acqlua("recipes/acq_imagenet.lua --help")))
    assert.matches("%-%-val PATH", (acqlua("recipes/acq_imagenet.lua --help")))
  end)

  it("a missing --weights or --val, or a bad option, is one line naming it", function()
    local cases = {
      { "recipes/acq_imagenet.lua --weights /nonexistent/r18.safetensors", "%-%-weights /nonexistent/r18.safetensors: no such file" },
      { "recipes/acq_imagenet.lua --val /nonexistent/val", "%-%-val /nonexistent/val: no such file" },
      { "recipes/acq_imagenet.lua --val spec/fixtures/imagefolder", "%-%-val spec/fixtures/imagefolder: 3 class folders, but %-%-classes is 1000" },
      { "recipes/acq_cifar.lua --val /nonexistent/cifar", "%-%-val /nonexistent/cifar: no such file or folder" },
      { "recipes/acq_cifar.lua --iter 3", "unknown option %-%-iter, did you mean %-%-iters%?" },
      { "recipes/fashion.lua --data /nonexistent/fm", "%-%-data /nonexistent/fm: no such folder" },
      { "recipes/acq_cifar.lua --warmup 0", "%-%-warmup must be in %[1, %-%-iters%]" },
      { "recipes/acq_cifar.lua --warmup 9 --iters 8", "%-%-warmup must be in %[1, %-%-iters%]" },
    }
    for _, c in ipairs(cases) do
      os.execute("rm -rf /tmp/acq_spec_unused")
      local out, rc = acqlua(c[1] .. " --out /tmp/acq_spec_unused")
      assert.equal(2, rc, c[1] .. "\n" .. out)
      assert.matches(c[2], out)
      local _, lines = out:gsub("\n", "")
      assert.equal(1, lines, "one line expected:\n" .. out)
    end
    -- bad options: one line, exit 2, and no run folder
    for _, c in ipairs {
      { "--strategy bogus", "%-%-strategy must be one of gdfq, ait, intraq, got 'bogus'" },
      { "--lr-q -1", "%-%-lr%-q must be positive, got %-1" },
      { "--bits w4a", "%-%-bits: quant spec: expected a bit width after 'a'" },
      { "--decay-every 0", "%-%-decay%-every must be at least 1, got 0" },
      { "--preset bogus", "%-%-preset must be one of cifar10, cifar100, gdfq, imagenet, mobilenet_v2, got 'bogus'" },
      { "--tau -1", "%-%-tau must be a finite number >= 0, got %-1" },
      { "--kd-t 0", "%-%-kd%-t must be positive, got 0" },
      { "--bns-form stdev", "%-%-bns%-form must be var or std, got 'stdev'" },
      { "--calibration min", "%-%-calibration must be range or observe" },
      { "--classes 7", "%-%-classes must be 10 or 100, got 7" },
    } do
      local out, rc = acqlua("recipes/acq_cifar.lua " .. c[1] .. " --out /tmp/acq_spec_nofolder")
      assert.equal(2, rc, c[1] .. "\n" .. out)
      assert.matches(c[2], out)
      assert.equal(1, select(2, out:gsub("\n", "")), out)
      assert.is_false(acq.isdir("/tmp/acq_spec_nofolder"), c[1] .. " created the run folder")
    end
    -- a corrupt weights file: one line naming the file
    local bad = os.tmpname()
    H.write_file(bad, "not a safetensors file")
    local out, rc = acqlua("recipes/acq_cifar.lua --weights " .. bad .. " --out /tmp/acq_spec_unused")
    assert.equal(2, rc, out)
    assert.matches("%-%-weights " .. bad:gsub("%p", "%%%0") .. ": ", out)
    os.remove(bad)
    os.execute("rm -rf /tmp/acq_spec_unused")
  end)

  it("each strategy runs, with its presets recorded in options.json", function()
    local want = { gdfq = { terms = { "Q_CE", "Q_KD" }, wd_q = 1e-4, kd_t = 1 },
      ait = { terms = { "Q_KD" }, wd_q = 0, kd_t = 1, extra = "inundation" },
      intraq = { terms = { "Q_CE", "Q_KD" }, wd_q = 1e-4, kd_t = 20 } }
    for _, st in ipairs { "gdfq", "ait", "intraq" } do
      local dir = tmpdir()
      local out, rc = acqlua(("recipes/acq_cifar.lua --strategy %s --iters 3 --warmup 1 --batch 2 --log-every 1 "
        .. "--threads 1 --out %s"):format(st, dir))
      assert.equal(0, rc, out)
      local o = acq.json.decode(H.read_file(dir .. "/options.json"))
      assert.equal(st, o.strategy)
      assert.equal(want[st].wd_q, o.wd_q, st)
      assert.equal(want[st].kd_t, o.kd_t, st)
      local rows = rows_of(dir .. "/metrics.jsonl")
      for _, k in ipairs(want[st].terms) do assert.is_number(rows[3][k], st .. " " .. k) end
      if st == "ait" then
        assert.is_nil(rows[3].Q_CE)
        assert.is_true(rows[3].inundation >= 1, tostring(rows[3].inundation))
      end
      os.execute("rm -rf '" .. dir .. "'")
    end
  end)

  it("an error in recipe code is one line with the recipe's file and line, exit 1", function()
    local dir = tmpdir()
    local path = dir .. "/broken.lua"
    H.write_file(path, table.concat({
      'local acq = require "acq"',
      'local recipe = require "acq.recipe"',
      'local spec = recipe.cli("broken.lua", "a recipe with a bug", {}, true)',
      'recipe.main(function()',
      '  local run = recipe.start("broken", spec, arg)',
      '  local F = acq.models.resnet20 { classes = 4, in_channels = 1 }',
      '  local G = acq.gen.acq { classes = 4, size = 16, channels = 1 }',
      '  local LG = acq.objective.acq_g(recipe.coefficients(run.opts, "cifar10"))',
      '  if os.getenv("BUG") == "top" then local t = nil; return t.field end',
      '  LG:add { name = "L_bug", weight = 1, fn = function(c) return c.x + {} end }',
      '  local alg = recipe.algorithm(run, { F = F, G = G, g_objective = LG })',
      '  run:loop(alg, acq.algorithm.body(alg))',
      'end)' }, "\n") .. "\n")
    local out, rc = H.run(("BUG=top %s %s --out %s/run1 --iters 2 --warmup 1"):format(ACQLUA, path, dir))
    assert.equal(1, rc, out)
    assert.matches("broken%.lua:9: attempt to index a nil value", out)
    assert.equal(1, select(2, out:gsub("\n", "")), out)
    -- stderr alone (stdout has the run's progress)
    out, rc = H.run(("(%s %s --out %s/run2 --iters 2 --warmup 1 --batch 2 2>&1 >/dev/null)"):format(ACQLUA, path, dir))
    assert.equal(1, rc, out)
    assert.matches("stopped at iteration 1: .*broken%.lua:10: ", out)
    assert.equal(1, select(2, out:gsub("\n", "")), out)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("acq_imagenet runs an iteration on random weights (fusion generator at 224x224), evaluating on a JPEG folder", function()
    local dir = tmpdir()
    local out, rc = acqlua(("recipes/acq_imagenet.lua --iters 2 --warmup 1 --batch 2 --log-every 1 --out %s "
      .. "--val spec/fixtures/imagefolder --classes 3 --val-images 4"):format(dir))
    assert.equal(0, rc, out)
    assert.matches("evaluation: 4 images of spec/fixtures/imagefolder", out)
    assert.matches("done in", out)
    local result = acq.json.decode(H.read_file(dir .. "/result.json"))
    assert.is_number(result.fp_top1)
    assert.is_number(result.q_top1)
    local rows = rows_of(dir .. "/metrics.jsonl")
    assert.equal(2, #rows)
    assert.is_number(rows[2].L_Q)
    assert.is_number(rows[2].L_AD)
    assert.is_true(recipe.exists(dir .. "/q_w4a4.safetensors"))
    os.execute("rm -rf '" .. dir .. "'")
  end)

  -- Starts a recipe in the background, waits until its metrics log has
  -- `lines` lines, sends `signal`, and waits for it; returns the exit status.
  local function run_and_kill(args, dir, lines, signal)
    local log = dir .. ".log"
    local out = H.run(("%s %s --out %s > %s 2>&1 & pid=$!; "
      .. "while [ \"$(cat %s/metrics.jsonl 2>/dev/null | wc -l)\" -lt %d ]; do "
      .. "kill -0 $pid 2>/dev/null || break; sleep 0.02; done; kill -%s $pid; wait $pid; echo rc=$?")
      :format(ACQLUA, args, dir, log, dir, lines, signal))
    return tonumber(out:match("rc=(%d+)")), H.read_file(log)
  end

  it("Ctrl-C stops within an iteration and --resume reaches the uninterrupted run's final state; so does a kill -9",
    function()
      local args = "recipes/acq_cifar.lua --iters 12 --warmup 3 --batch 2 --log-every 1 --ckpt-every 4 "
        .. "--sample-every 100 --threads 1 --lr-q 0.01"
      local a, b, c = tmpdir(), tmpdir(), tmpdir()
      local out, rc = acqlua(args .. " --out " .. a)
      assert.equal(0, rc, out)
      -- SIGINT: the run finishes its iteration, writes a checkpoint, exits 130
      local rcb, logb = run_and_kill(args, b, 6, "INT")
      assert.equal(130, rcb, logb)
      assert.matches("SIGINT: stopped after iteration %d+; checkpoint written", logb)
      local stopped = tonumber(logb:match("stopped after iteration (%d+)"))
      assert.is_true(stopped >= 6 and stopped <= 7, logb) -- within one iteration of the signal
      local _, meta = acq.safetensors.load(b .. "/checkpoint.safetensors")
      assert.equal(tostring(stopped), meta.iter)
      out, rc = acqlua(args .. " --resume " .. b)
      assert.equal(0, rc, out)
      assert.matches("resuming .* at iteration " .. stopped, out)
      -- SIGKILL: nothing runs at exit; the periodic checkpoint (iteration 4 or 8) is the restart point
      local rcc = run_and_kill(args, c, 9, "KILL")
      assert.equal(137, rcc)
      out, rc = acqlua(args .. " --resume " .. c)
      assert.equal(0, rc, out)
      local ra = strip(rows_of(a .. "/metrics.jsonl"))
      assert.same(ra, strip(rows_of(b .. "/metrics.jsonl")))
      assert.same(ra, strip(rows_of(c .. "/metrics.jsonl")))
      local qa = acq.safetensors.load(a .. "/q_w4a4.safetensors")
      for _, d in ipairs { b, c } do
        local qd = acq.safetensors.load(d .. "/q_w4a4.safetensors")
        for k, t in pairs(qa) do assert.is_true(t:equal(qd[k]), d .. ": " .. k) end
      end
      os.execute(("rm -rf '%s' '%s' '%s' '%s.log' '%s.log'"):format(a, b, c, b, c))
    end)
end)
