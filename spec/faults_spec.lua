-- faults_spec.lua -- misuse and faults, each a reproduction from the
-- reliability issue: hostile files, a busy or finished run folder, a resume
-- that would change the checkpoint's meaning, divergence, a corrupted
-- checkpoint, Ctrl-C in the final evaluation, and kill -9 at several points
-- followed by --resume. Every run is recipes/acq_cifar.lua on random weights.
local acq = require "acq"
local H = require "spec.helper"

local ACQLUA = os.getenv("ACQLUA") or "build/bin/acqlua"
local BASE = "recipes/acq_cifar.lua --threads 1 --batch 2 --warmup 1 --log-every 1 "

local function acqlua(args) return H.run(ACQLUA .. " " .. args) end
local function lines(s) return select(2, s:gsub("\n", "")) end
local function rm(...) for _, d in ipairs { ... } do os.execute("rm -rf '" .. d .. "'") end end

-- a fresh path for a run folder (not created)
local function outdir()
  local d = H.tmpdir()
  rm(d)
  return d
end

local function finite_checkpoint(path)
  local t = acq.safetensors.load(path)
  local n = 0
  for k, v in pairs(t) do
    if v:dtype() == "f32" or v:dtype() == "f64" then
      assert.is_true(v:isfinite():all():item(), k .. " is not finite")
      n = n + 1
    end
  end
  return n
end

describe("hostile files", function()
  it("a pickle nested 200,000 deep is an error, not a crash", function()
    local pth = os.tmpname() .. ".pth"
    local ok = os.execute(("python3 -c \"import zipfile; z = zipfile.ZipFile('%s', 'w'); "
      .. "z.writestr('archive/data.pkl', b'\\x80\\x02]' + b'\\x85' * 200000 + b'.'); "
      .. "z.writestr('archive/version', '3\\n'); z.close()\""):format(pth))
    assert.is_true(ok)
    local d = outdir()
    local out, rc = acqlua(BASE .. "--iters 2 --weights " .. pth .. " --out " .. d)
    assert.equal(2, rc, out)
    assert.matches("nested more than 1000 levels deep", out)
    assert.equal(1, lines(out), out)
    os.remove(pth)
    rm(d)
  end)

  it("a FIFO, a folder or a device as --weights is refused at once", function()
    local fifo = os.tmpname()
    os.remove(fifo)
    assert.is_true(os.execute("mkfifo " .. fifo))
    for _, c in ipairs { { fifo, "is a FIFO" }, { "/tmp", "is a directory" }, { "/dev/zero", "is a device" } } do
      local d = outdir()
      local t0 = acq.clock()
      local out, rc = acqlua(BASE .. "--iters 2 --weights " .. c[1] .. " --out " .. d)
      assert.equal(2, rc, out)
      assert.matches(c[2], out)
      assert.is_true(acq.clock() - t0 < 20, "took " .. (acq.clock() - t0) .. " s")
      assert.is_false(acq.isdir(d), "a folder was created")
    end
    os.remove(fifo)
  end)

  it("an image above the pixel limit is refused from its header", function()
    local root = H.tmpdir()
    acq.mkdir(root .. "/n01")
    -- a PNG header claiming 20000x20000 pixels, 400 megapixels
    assert.is_true(os.execute(("python3 -c \"import zlib, struct\n"
      .. "def c(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))\n"
      .. "open('%s/n01/bomb.png', 'wb').write(b'\\x89PNG\\r\\n\\x1a\\n' + c(b'IHDR', struct.pack('>IIBBBBB', "
      .. "20000, 20000, 8, 0, 0, 0, 0)) + c(b'IDAT', zlib.compress(b'\\0' * 20001)) + c(b'IEND', b''))\"")
      :format(root)))
    local t0 = acq.clock()
    local ok, err = pcall(acq.decode_image, root .. "/n01/bomb.png")
    assert.is_false(ok)
    assert.matches("bomb%.png: 20000x20000 pixels is above the limit of 178956970", err)
    assert.is_true(acq.clock() - t0 < 1)
    assert.matches("above the limit of 100 ", select(2, pcall(acq.decode_image,
      "spec/fixtures/imagefolder/n01_cat/a.JPEG", { max_pixels = 100 })) or "") -- 30x22 = 660
    rm(root)
  end)
end)

describe("the run folder", function()
  it("a finished run's folder is not reused without --resume or --force", function()
    local d = outdir()
    local out, rc = acqlua(BASE .. "--iters 3 --out " .. d)
    assert.equal(0, rc, out)
    local before = H.read_file(d .. "/result.json") .. H.read_file(d .. "/metrics.jsonl")
    out, rc = acqlua(BASE .. "--iters 3 --seed 5 --out " .. d)
    assert.equal(2, rc, out)
    assert.matches("the folder is not empty; continue its run with %-%-resume", out)
    assert.equal(before, H.read_file(d .. "/result.json") .. H.read_file(d .. "/metrics.jsonl"))
    -- resuming a finished run has nothing to do
    out, rc = acqlua("recipes/acq_cifar.lua --resume " .. d)
    assert.equal(2, rc, out)
    assert.matches("the run finished at iteration 3", out)
    -- --force starts over, removing only what a run writes
    H.write_file(d .. "/notes.txt", "mine")
    H.write_file(d .. "/.keep", "")
    out, rc = acqlua(BASE .. "--iters 3 --seed 5 --force --out " .. d)
    assert.equal(0, rc, out)
    assert.equal(5, acq.json.decode(H.read_file(d .. "/options.json")).seed)
    assert.equal("mine", H.read_file(d .. "/notes.txt"))
    assert.equal("", H.read_file(d .. "/.keep"))
    local hist = H.rows_of(d .. "/history.jsonl")
    assert.equal("start", hist[1].event) -- the old run's history went with it
    rm(d)
  end)

  it("a second run on a busy folder is refused, naming the holder's pid", function()
    local d = outdir()
    local out = H.run(("(%s %s--iters 400 --out %s > %s.log 2>&1 & pid=$!; "
      .. "while [ ! -s %s/metrics.jsonl ]; do kill -0 $pid 2>/dev/null || break; sleep 0.05; done; "
      .. "%s recipes/acq_cifar.lua --resume %s 2>&1; echo rc=$? holder=$pid; kill -KILL $pid; wait $pid)")
      :format(ACQLUA, BASE, d, d, d, ACQLUA, d))
    local holder = out:match("holder=(%d+)")
    assert.matches("another run %(pid " .. holder .. "%) is using this folder", out)
    assert.matches("rc=2", out)
    rm(d, d .. ".log")
  end)

  it("a resume may not change what the checkpoint holds, and never rewrites options.json", function()
    local d = outdir()
    local out, rc = acqlua(BASE .. "--iters 4 --out " .. d)
    assert.equal(0, rc, out)
    local options = H.read_file(d .. "/options.json")
    out, rc = acqlua("recipes/acq_cifar.lua --resume " .. d .. " --bits w5a5 --iters 6")
    assert.equal(2, rc, out)
    assert.matches("%-%-bits w5a5 differs from the run's w4a4", out)
    assert.equal(options, H.read_file(d .. "/options.json"))
    out, rc = acqlua("recipes/acq_cifar.lua --resume " .. d .. " --iters 6 --lr-q 0.001")
    assert.equal(0, rc, out)
    assert.equal(options, H.read_file(d .. "/options.json"))
    local hist = H.rows_of(d .. "/history.jsonl")
    assert.same({ "start", "finish", "resume", "finish" }, { hist[1].event, hist[2].event, hist[3].event, hist[4].event })
    assert.same({ 4, 6 }, hist[3].changed.iters)
    assert.same({ 1e-4, 0.001 }, hist[3].changed.lr_q)
    rm(d)
  end)
end)

describe("checkpoints", function()
  it("a diverging run never saves a non-finite state and names the last good checkpoint truthfully", function()
    local d = outdir()
    local out, rc = acqlua(BASE .. "--batch 4 --iters 30 --ckpt-every 1 --lr-q 1e6 --out " .. d)
    assert.equal(1, rc, out)
    local stopped = tonumber(out:match("stopped at iteration (%d+)"))
    local good = tonumber(out:match("checkpoint %(.-, iteration (%d+)%) is intact"))
    assert.is_number(stopped, out)
    assert.equal(stopped - 1, good, out)
    local _, meta = acq.safetensors.load(d .. "/checkpoint.safetensors")
    assert.equal(tostring(good), meta.iter)
    assert.is_true(finite_checkpoint(d .. "/checkpoint.safetensors") > 100)
    rm(d)
  end)

  it("--on-nan rollback returns to the last checkpoint with the learning rates halved", function()
    local d = outdir()
    local out, rc = acqlua(BASE .. "--batch 4 --iters 12 --ckpt-every 1 --lr-q 1e6 --on-nan rollback "
      .. "--max-rollbacks 2 --out " .. d)
    local hist = H.rows_of(d .. "/history.jsonl")
    local rb = {}
    for _, h in ipairs(hist) do if h.event == "rollback" then rb[#rb + 1] = h end end
    assert.is_true(#rb >= 1, out)
    assert.equal(0.5, rb[1].lr_scale)
    if #rb == 2 then assert.equal(0.25, rb[2].lr_scale) end
    if rc ~= 0 then assert.matches("stopped at iteration", out) end -- a third divergence stops it
    finite_checkpoint(d .. "/checkpoint.safetensors")
    rm(d)
  end)

  it("a corrupted checkpoint is a one-line error on --resume", function()
    local d = outdir()
    local out, rc = acqlua(BASE .. "--iters 4 --ckpt-every 2 --out " .. d)
    assert.equal(0, rc, out)
    local path = d .. "/checkpoint.safetensors"
    local bytes = H.read_file(path)
    local at = #bytes - 5000 -- inside the tensor data
    H.write_file(path, bytes:sub(1, at) .. ("\0"):rep(1000) .. bytes:sub(at + 1001))
    out, rc = H.run(("(%s recipes/acq_cifar.lua --resume %s --iters 6 2>&1 >/dev/null)"):format(ACQLUA, d))
    assert.equal(2, rc, out)
    assert.matches("cannot resume: .*checkpoint%.safetensors: checksum mismatch", out)
    assert.equal(1, lines(out), out)
    rm(d)
  end)
end)

describe("stopping and resuming", function()
  -- a recipe whose evaluation interrupts itself (SIGINT) when KILL_EVAL is set
  local recipe_src = table.concat({
    'local acq = require "acq"',
    'local recipe = require "acq.recipe"',
    'local spec = recipe.cli("evalstop.lua", "a run whose final evaluation is interrupted", {}, true)',
    'recipe.main(function()',
    '  local run = recipe.start("evalstop", spec, arg)',
    '  local F = acq.models.resnet20 { classes = 4, in_channels = 1 }',
    '  local G = acq.gen.acq { classes = 4, size = 16, channels = 1 }',
    '  local x, y = acq.randn(8, 1, 16, 16, { generator = acq.generator(3) }), acq.tensor { 0, 1, 2, 3, 0, 1, 2, 3 }',
    '  local function evaluate(Q)',
    -- the signal comes from a background shell: system() ignores SIGINT while it waits
    '    if os.getenv("KILL_EVAL") then',
    '      os.execute("(sleep 0.2; kill -INT $PPID) &")',
    '      local t0 = acq.clock()',
    '      while not acq.interrupted() and acq.clock() - t0 < 10 do end',
    '    end',
    '    if acq.interrupted() then error("interrupted", 0) end',
    '    return acq.no_grad(function() return Q:forward(x):argmax(1):eq(y):float():mean():item() * 100 end)',
    '  end',
    '  local alg = recipe.algorithm(run, { F = F, G = G,',
    '    g_objective = acq.objective.acq_g(recipe.coefficients(run.opts, "cifar10")) })',
    '  local res = run:loop(alg, acq.algorithm.body(alg), { evaluate = evaluate,',
    '    model = { name = "resnet20", classes = 4, in_channels = 1 } })',
    '  if res.interrupted then return "interrupted" end',
    '  run:finish { q_top1 = res.q_top1 }',
    'end)' }, "\n") .. "\n"

  it("Ctrl-C during the final evaluation: --resume completes the evaluation and the result", function()
    local root = H.tmpdir()
    H.write_file(root .. "/evalstop.lua", recipe_src)
    local args = root .. "/evalstop.lua --iters 4 --warmup 1 --batch 2 --threads 1 --log-every 1 --out "
    local out, rc = acqlua(args .. root .. "/a")
    assert.equal(0, rc, out)
    out, rc = H.run(("KILL_EVAL=1 %s %s%s/b"):format(ACQLUA, args, root))
    assert.equal(130, rc, out)
    assert.matches("stopped during the final evaluation; checkpoint written", out)
    assert.is_false(H.run("test -e " .. root .. "/b/result.json && echo yes") == "yes\n")
    out, rc = acqlua(root .. "/evalstop.lua --resume " .. root .. "/b")
    assert.equal(0, rc, out)
    local ra = acq.json.decode(H.read_file(root .. "/a/result.json"))
    local rb = acq.json.decode(H.read_file(root .. "/b/result.json"))
    assert.equal(ra.q_top1, rb.q_top1)
    assert.same(H.rows_of(root .. "/a/metrics.jsonl", true), H.rows_of(root .. "/b/metrics.jsonl", true))
    rm(root)
  end)

  it("kill -9 at several points, then --resume, gives the uninterrupted run's weights bit for bit", function()
    local args = BASE .. "--iters 10 --ckpt-every 3 --sample-every 100 --lr-q 0.01"
    local ref = outdir()
    local out, rc = acqlua(args .. " --out " .. ref)
    assert.equal(0, rc, out)
    local qa = acq.safetensors.load(ref .. "/q_w4a4.safetensors")
    local ra = H.rows_of(ref .. "/metrics.jsonl", true)
    for _, at in ipairs { 2, 5, 9 } do
      local d = outdir()
      H.run(("%s %s --out %s > /dev/null 2>&1 & pid=$!; "
        .. "while [ \"$(cat %s/metrics.jsonl 2>/dev/null | wc -l)\" -lt %d ]; do "
        .. "kill -0 $pid 2>/dev/null || break; sleep 0.01; done; kill -KILL $pid; wait $pid")
        :format(ACQLUA, args, d, d, at))
      if H.read_file(d .. "/options.json") and H.run("test -e " .. d .. "/checkpoint.safetensors && echo y") == "y\n" then
        out, rc = acqlua("recipes/acq_cifar.lua --resume " .. d)
      else -- killed before the first checkpoint: start over
        out, rc = acqlua(args .. " --force --out " .. d)
      end
      assert.equal(0, rc, out)
      local qd = acq.safetensors.load(d .. "/q_w4a4.safetensors")
      for k, t in pairs(qa) do assert.is_true(t:equal(qd[k]), ("kill after %d lines: %s"):format(at, k)) end
      assert.same(ra, H.rows_of(d .. "/metrics.jsonl", true))
      rm(d)
    end
    rm(ref)
  end)
end)
