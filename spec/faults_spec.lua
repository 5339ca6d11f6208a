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

-- An uninterrupted run of args, the reference of the kill and fault specs:
-- its folder, its metrics rows (without the wall-clock fields), export and
-- checkpoint.
local function uninterrupted(args)
  local ref = outdir()
  local out, rc = acqlua(args .. " --out " .. ref)
  assert.equal(0, rc, out)
  return { dir = ref, rows = H.rows_of(ref .. "/metrics.jsonl", true),
    q = acq.safetensors.load(ref .. "/q_w4a4.safetensors"), ckpt = acq.safetensors.load(ref .. "/checkpoint.safetensors") }
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
    assert.matches("the folder holds a run; continue it with %-%-resume", out)
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
    local hist = {}
    for _, e in ipairs(H.rows_of(d .. "/history.jsonl")) do if e.event ~= "files" then hist[#hist + 1] = e end end
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
    local ref = uninterrupted(args)
    local qa, ra = ref.q, ref.rows
    local out, rc
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
    rm(ref.dir)
  end)
end)

describe("reliability, second round", function()
  -- the lines of an error message (the random-weights note aside)
  local function lines(s) return select(2, s:gsub("no %-%-weights: [^\n]*\n", ""):gsub("\n", "")) end

  it("--force never deletes a file that is not the run's, and refuses a folder with no run in it", function()
    local d = outdir()
    acq.mkdir(d)
    acq.mkdir(d .. "/samples")
    local mine = { "IMG_000123.png", "holiday_202312.png", "q_backup.safetensors", "thesis.tex.tmp.4242",
      "samples/my_drawing.jpg", "notes.txt" }
    for _, n in ipairs(mine) do H.write_file(d .. "/" .. n, "precious " .. n) end
    local out, rc = acqlua(BASE .. "--iters 2 --force --out " .. d)
    assert.equal(2, rc, out)
    assert.matches("holds no acq run", out)
    assert.is_nil(out:find("--force", 1, true), out) -- no advice to delete
    assert.equal(1, lines(out), out)
    for _, n in ipairs(mine) do assert.equal("precious " .. n, H.read_file(d .. "/" .. n), n) end
    -- the same files beside a real run: --force replaces the run's files only
    local r = outdir()
    out, rc = acqlua(BASE .. "--iters 2 --sample-every 1 --out " .. r)
    assert.equal(0, rc, out)
    for _, n in ipairs(mine) do H.write_file(r .. "/" .. n, "precious " .. n) end
    H.write_file(r .. "/metrics.jsonl.tmp.77", "a temporary of the run") -- an interrupted atomic write
    out, rc = acqlua(BASE .. "--iters 2 --seed 3 --force --out " .. r)
    assert.equal(0, rc, out)
    for _, n in ipairs(mine) do assert.equal("precious " .. n, H.read_file(r .. "/" .. n), n) end
    assert.is_false(acq.is_regular_file(r .. "/metrics.jsonl.tmp.77"))
    assert.equal(3, acq.json.decode(H.read_file(r .. "/options.json")).seed)
    -- the refusal of / and of a non-folder does not advise --force either
    for _, bad in ipairs { "/", "/proc/self" } do
      out, rc = acqlua(BASE .. "--iters 2 --out " .. bad)
      assert.equal(2, rc, out)
      assert.is_nil(out:find("--force", 1, true), out)
    end
    rm(d, r)
  end)

  it("a .lock that is a symbolic link or a hard link is refused and its target left alone", function()
    local target = os.tmpname()
    H.write_file(target, "precious data")
    for _, how in ipairs { "ln -s", "ln" } do
      local d = outdir()
      acq.mkdir(d)
      assert.is_true(os.execute(("%s '%s' '%s/.lock'"):format(how, target, d)))
      local out, rc = acqlua(BASE .. "--iters 2 --out " .. d .. "/run")
      assert.equal(0, rc, out) -- a folder below is another folder
      out, rc = acqlua(BASE .. "--iters 2 --force --out " .. d)
      assert.equal(2, rc, out)
      out, rc = acqlua("recipes/acq_cifar.lua --resume " .. d .. "/run --iters 3")
      assert.equal(0, rc, out)
      H.write_file(d .. "/run/.lock.x", "")
      os.remove(d .. "/run/.lock")
      assert.is_true(os.execute(("%s '%s' '%s/run/.lock'"):format(how, target, d)))
      out, rc = acqlua("recipes/acq_cifar.lua --resume " .. d .. "/run --iters 4")
      assert.equal(2, rc, out)
      assert.matches(how == "ln" and "hard link" or "symbolic link", out)
      assert.equal(1, lines(out), out)
      assert.equal("precious data", H.read_file(target))
      rm(d)
    end
    os.remove(target)
  end)

  it("kill -9 right after checkpoint k: after --resume the log equals the uninterrupted run's, row for row", function()
    local args = BASE .. "--iters 8 --ckpt-every 1 --sample-every 100"
    local ref = uninterrupted(args)
    local rows, out, rc = ref.rows, nil, nil
    assert.equal(8, #rows)
    for _, k in ipairs { 2, 5, 8 } do
      local d = outdir()
      out, rc = acqlua(("spec/faults/kill_after_checkpoint.lua %d %s --out %s"):format(k, args, d))
      assert.equal(137, rc, out)
      out, rc = acqlua("recipes/acq_cifar.lua --resume " .. d)
      assert.equal(0, rc, out)
      assert.same(rows, H.rows_of(d .. "/metrics.jsonl", true), "killed after checkpoint " .. k)
      rm(d)
    end
    rm(ref.dir)
  end)

  it("nothing waits forever: FIFOs, absurd --threads, a broken or lonely process group", function()
    local fifo = os.tmpname()
    os.remove(fifo)
    assert.is_true(os.execute("mkfifo " .. fifo))
    local cf = H.tmpdir() -- a CIFAR folder whose test batch is a FIFO
    assert.is_true(os.execute("mkfifo " .. cf .. "/test_batch.bin"))
    for _, c in ipairs {
      { "recipes/acq_cifar.lua", fifo, "is a FIFO" }, { "recipes/acq_imagenet.lua", fifo, "is a FIFO" },
      { "recipes/acq_cifar.lua", cf, "FIFO" } } do
      local d = outdir()
      local t0 = acq.clock()
      local out, rc = H.run(("timeout 60 %s %s --threads 1 --batch 2 --warmup 1 --iters 1 --val %s --out %s")
        :format(ACQLUA, c[1], c[2], d))
      assert.is_true(rc == 1 or rc == 2, out)
      assert.matches(c[3], out)
      assert.is_true(acq.clock() - t0 < 30, "waited")
      rm(d)
    end
    -- --threads far beyond the machine: a note, and the run goes on
    local d = outdir()
    local out, rc = H.run(("timeout 120 %s %s--iters 1 --threads 100000 --out %s"):format(ACQLUA, BASE, d))
    assert.equal(0, rc, out)
    assert.matches("%-%-threads 100000 is more than this machine's", out)
    rm(d)
    -- the launcher's environment: broken is an error at once, a missing peer within --dist-timeout
    for _, env in ipairs { "WORLD_SIZE=abc RANK=0", "WORLD_SIZE=2", "WORLD_SIZE=2 RANK=5", "WORLD_SIZE=2 RANK=0 MASTER_PORT=99999" } do
      d = outdir()
      out, rc = H.run(("%s timeout 60 %s %s--iters 1 --out %s"):format(env, ACQLUA, BASE, d))
      assert.equal(2, rc, env .. ": " .. out)
      assert.equal(1, lines(out), out)
      assert.is_false(acq.isdir(d), env)
      rm(d)
    end
    d = outdir()
    local t0 = acq.clock()
    out, rc = H.run(("WORLD_SIZE=2 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=%d timeout 60 %s %s--iters 1 --dist-timeout 3 --out %s")
      :format(24000 + math.random(0, 4000), ACQLUA, BASE, d))
    assert.equal(2, rc, out)
    assert.matches("joining the group", out) -- said at once
    assert.matches("within %-%-dist%-timeout 3 s", out)
    assert.is_true(acq.clock() - t0 < 30, "waited " .. (acq.clock() - t0) .. " s")
    rm(d, cf)
    os.remove(fifo)
  end)

  it("messages without internals, and a refused start leaves no folder", function()
    local out, rc = acqlua(BASE .. "--iters 1 --out ''")
    assert.equal(2, rc, out)
    assert.matches("%-%-out: the path is empty", out)
    assert.is_nil(out:find("%.lua:%d+"), out)
    local bad = os.tmpname() .. "-\xff\xfe"
    out, rc = acqlua(BASE .. "--iters 1 --out '" .. bad .. "'")
    assert.equal(2, rc, out)
    assert.matches("not valid UTF%-8", out)
    assert.is_false(acq.isdir(bad))
    -- --weights that is a file but not weights: refused, and the same --out works afterwards
    local w = os.tmpname()
    H.write_file(w, "not weights at all, just text")
    local d = outdir()
    out, rc = acqlua(BASE .. "--iters 1 --weights " .. w .. " --out " .. d)
    assert.equal(2, rc, out)
    assert.is_false(acq.isdir(d), "the refused run left its folder")
    out, rc = acqlua(BASE .. "--iters 1 --out " .. d)
    assert.equal(0, rc, out)
    rm(d)
    os.remove(w)
    -- loops with nothing to loop over
    local ds = { images = acq.zeros(4, 1, 2, 2), labels = acq.zeros({ 4 }, { dtype = "i64" }) }
    assert.matches("batch_size must be a whole number of at least 1", H.fails(acq.data.loader, ds, { batch_size = 0 }))
    assert.matches("batch_size must be a whole number of at least 1", H.fails(acq.eval.evaluator, ds, 0))
  end)

  it("SIGTERM stops with exit status 143 and is named SIGTERM; SIGINT with 130", function()
    for _, c in ipairs { { "TERM", 143, "SIGTERM" }, { "INT", 130, "SIGINT" } } do
      local d = outdir()
      local out = H.run(("%s %s--iters 400 --out %s > %s.log 2>&1 & pid=$!; "
        .. "while [ ! -s %s/metrics.jsonl ]; do kill -0 $pid 2>/dev/null || break; sleep 0.05; done; "
        .. "kill -%s $pid; wait $pid; echo rc=$?"):format(ACQLUA, BASE, d, d, d, c[1]))
      assert.matches("rc=" .. c[2], out)
      assert.matches(c[3] .. ": stopped after iteration", H.read_file(d .. ".log"))
      rm(d, d .. ".log")
    end
  end)

  it("kill -9 at 20 random moments, each followed by --resume: metrics, checkpoint and export equal the uninterrupted run's", function()
    local args = BASE .. "--iters 6 --ckpt-every 1 --sample-every 100"
    local ref = uninterrupted(args)
    local rows, qa, ca, out, rc = ref.rows, ref.q, ref.ckpt, nil, nil
    -- the run's own duration sets the range of the delays
    local t0 = acq.clock()
    local d0 = outdir()
    acqlua(args .. " --out " .. d0)
    local span = acq.clock() - t0
    rm(d0)
    math.randomseed(20261207)
    for trial = 1, 20 do
      local d = outdir()
      local delay = math.random() * span
      H.run(("%s %s --out %s > /dev/null 2>&1 & pid=$!; sleep %.3f; kill -KILL $pid; wait $pid"):format(ACQLUA, args, d, delay))
      local tries = 0
      repeat -- resume (or start over when killed before its first checkpoint) until it finishes
        if acq.is_regular_file(d .. "/result.json") then -- killed after it finished
          out, rc = "finished before the kill", 0
        elseif acq.is_regular_file(d .. "/checkpoint.safetensors") then
          out, rc = acqlua("recipes/acq_cifar.lua --resume " .. d)
        elseif acq.isdir(d) and acq.is_regular_file(d .. "/options.json") then
          out, rc = acqlua(args .. " --force --out " .. d)
        else
          out, rc = acqlua(args .. " --out " .. d)
        end
        tries = tries + 1
      until rc == 0 or tries == 2
      assert.equal(0, rc, ("trial %d (kill after %.2f s): %s"):format(trial, delay, out))
      assert.same(rows, H.rows_of(d .. "/metrics.jsonl", true), ("trial %d: kill after %.2f s"):format(trial, delay))
      local qd = acq.safetensors.load(d .. "/q_w4a4.safetensors")
      for k, t in pairs(qa) do assert.is_true(t:equal(qd[k]), ("trial %d: export %s"):format(trial, k)) end
      local cd = acq.safetensors.load(d .. "/checkpoint.safetensors")
      for k, t in pairs(ca) do assert.is_true(t:equal(cd[k]), ("trial %d: checkpoint %s"):format(trial, k)) end
      local left = H.run("ls -a '" .. d .. "' | grep -c '\\.tmp\\.' || true")
      assert.equal("0\n", left, "trial " .. trial .. ": temporaries left")
      rm(d)
    end
    rm(ref.dir)
  end)

  it("a .pth is checked whole before it is read: CRCs, zip bombs, repeated members, two tensors of one name", function()
    local py = "/usr/bin/python3"
    local dir = H.tmpdir()
    local script = dir .. "/make.py"
    H.write_file(script, ([[
import io, zipfile, torch, sys
d = sys.argv[1]
sd = {"fc.weight": torch.arange(12.).reshape(3, 4), "fc.bias": torch.ones(3)}
torch.save(sd, d + "/good.pth")
b = bytearray(open(d + "/good.pth", "rb").read())
z = zipfile.ZipFile(io.BytesIO(bytes(b)))
info = [i for i in z.infolist() if i.filename.endswith("/data/0")][0]
h = info.header_offset  # the local header's own name and extra lengths (torch pads with extra)
start = h + 30 + int.from_bytes(b[h + 26:h + 28], "little") + int.from_bytes(b[h + 28:h + 30], "little")
b[start + 5] ^= 0x40  # one bit of fc.weight's data
open(d + "/crc.pth", "wb").write(bytes(b))
with zipfile.ZipFile(d + "/bomb.pth", "w", zipfile.ZIP_DEFLATED) as w:
    w.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    w.writestr("archive/data/0", b"\0" * (64 << 20))
with zipfile.ZipFile(d + "/twice.pth", "w") as w:
    w.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    w.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
torch.save({"fc": {"weight": torch.zeros(3, 4)}, "fc.weight": torch.ones(3, 4)}, d + "/nested.pth")
]]))
    local o, rc = H.run(("%s -W ignore %s %s"):format(py, script, dir))
    assert.equal(0, rc, o)
    assert.equal(12, #acq.pth.load(dir .. "/good.pth")["fc.weight"]:view(-1):totable())
    for _, c in ipairs { { "crc.pth", "is corrupted %(CRC%-32" }, { "bomb.pth", "zip bomb" },
      { "twice.pth", "appears twice" }, { "nested.pth", "two tensors named 'fc.weight'" } } do
      local before = H.rss_mib()
      local m = H.fails(acq.pth.load, dir .. "/" .. c[1])
      assert.matches(c[2], m)
      assert.is_true(H.rss_mib() - before < 32, c[1] .. " was inflated")
    end
    rm(dir)
  end)

  it("a FIFO in place of a run file makes --resume an error at once, never a wait", function()
    local d = outdir()
    local out, rc = acqlua(BASE .. "--iters 2 --out " .. d)
    assert.equal(0, rc, out)
    for _, f in ipairs { "checkpoint.safetensors", "options.json", "history.jsonl", "metrics.jsonl" } do
      local keep = H.read_file(d .. "/" .. f)
      os.remove(d .. "/" .. f)
      assert.is_true(os.execute("mkfifo '" .. d .. "/" .. f .. "'"))
      local t0 = acq.clock()
      out, rc = H.run(("timeout 60 %s recipes/acq_cifar.lua --resume %s --iters 3"):format(ACQLUA, d))
      assert.equal(2, rc, f .. ": " .. out)
      assert.matches("FIFO", out)
      assert.is_nil(out:find("%.lua:%d+"), out)
      assert.is_true(acq.clock() - t0 < 30, f .. ": waited")
      os.remove(d .. "/" .. f)
      H.write_file(d .. "/" .. f, keep)
    end
    rm(d)
  end)

  it("a checkpoint that fails to write (a disk full for a moment) stops the run; the resume's log equals the uninterrupted one's", function()
    local args = BASE .. "--iters 8 --ckpt-every 2 --sample-every 100"
    local ref = uninterrupted(args)
    local d = outdir()
    local out, rc = acqlua(("spec/faults/inject.lua fail_checkpoint 6 %s --out %s"):format(args, d))
    assert.equal(1, rc, out)
    assert.matches("stopped at iteration 6: .*No space left on device; the last checkpoint %(.*iteration 4%) is intact", out)
    out, rc = acqlua("recipes/acq_cifar.lua --resume " .. d)
    assert.equal(0, rc, out)
    assert.same(ref.rows, H.rows_of(d .. "/metrics.jsonl", true))
    rm(ref.dir, d)
  end)

  it("Ctrl-C while the export is written exits 130, named", function()
    local d = outdir()
    local out, rc = acqlua(("spec/faults/inject.lua sigint_export 0 %s--iters 2 --out %s"):format(BASE, d))
    assert.equal(130, rc, out)
    assert.matches("interrupted %(SIGINT%)", out)
    rm(d)
  end)

  it("a safetensors file truncated by another process while it is read is an error, never SIGBUS", function()
    local p = os.tmpname()
    acq.safetensors.save(p, { a = acq.zeros(4 * 1024 * 1024) }) -- 16 MiB
    local full = p .. ".full"
    os.execute(("cp '%s' '%s'"):format(p, full))
    local o = H.run(([[
      ( for i in $(seq 1 400); do truncate -s 4096 '%s'; cp '%s' '%s'; done ) & w=$!
      for i in $(seq 1 30); do %s -e 'pcall(require("acq").safetensors.load, "%s")' || echo "died $?"; done
      kill $w 2>/dev/null; wait $w 2>/dev/null; echo done]]):format(p, full, p, ACQLUA, p))
    assert.matches("done", o)
    assert.is_nil(o:find("died", 1, true), o) -- SIGBUS is exit 135
    os.remove(p)
    os.remove(full)
  end)

  it("a folder left with only its lock is reusable; a second resume goes on to the --iters the first asked for", function()
    local d = outdir()
    acq.mkdir(d)
    H.write_file(d .. "/.lock", "4242\n") -- a start killed right after taking the lock
    local out, rc = acqlua(BASE .. "--iters 2 --out " .. d)
    assert.equal(0, rc, out)
    out, rc = H.run(("%s recipes/acq_cifar.lua --resume %s --iters 30 > %s.log 2>&1 & pid=$!; "
      .. "while [ \"$(cat %s/metrics.jsonl 2>/dev/null | wc -l)\" -lt 4 ]; do kill -0 $pid 2>/dev/null || break; sleep 0.05; done; "
      .. "kill -INT $pid; wait $pid; echo rc=$?"):format(ACQLUA, d, d, d))
    assert.matches("rc=130", out)
    out, rc = acqlua("recipes/acq_cifar.lua --resume " .. d)
    assert.equal(0, rc, out)
    assert.equal(30, acq.json.decode(H.read_file(d .. "/result.json")).iter or #H.rows_of(d .. "/metrics.jsonl"))
    assert.equal(30, H.rows_of(d .. "/metrics.jsonl")[#H.rows_of(d .. "/metrics.jsonl")].iter)
    rm(d, d .. ".log")
  end)

  it("a hostile zip64 record pointing outside a short file is an error, not a crash", function()
    -- 46 bytes: a local-header magic, a zip64 locator pointing at 2^40, an EOCD saying zip64
    local b = "PK\3\4" .. "PK\6\7" .. ("\0"):rep(4) .. string.pack("<I8", 1 << 40) .. ("\0"):rep(4)
      .. "PK\5\6" .. ("\0"):rep(12) .. string.pack("<I4", 0xffffffff) .. ("\0"):rep(2)
    assert.equal(46, #b)
    local p = os.tmpname() .. ".pth"
    H.write_file(p, b)
    assert.matches("zip", H.fails(acq.pth.load, p))
    os.remove(p)
  end)

  describe("a checkpoint is trusted whole", function()
    local d
    local ckpt
    setup(function()
      d = outdir()
      local out, rc = acqlua(BASE .. "--iters 5 --ckpt-every 5 --out " .. d)
      assert.equal(0, rc, out)
      ckpt = d .. "/checkpoint.safetensors"
      os.remove(d .. "/result.json") -- as if stopped at iteration 5
    end)
    teardown(function() rm(d) end)

    -- rewrites the checkpoint with edit(meta) applied; keep = true keeps the
    -- stored checksums (an edit behind the writer's back)
    local function edited(edit, keep)
      local t, meta = acq.safetensors.load(ckpt)
      local copy = d .. "/edited.safetensors"
      edit(meta, t)
      acq.safetensors.save(copy, t, meta, { checksum = not keep })
      return copy
    end
    local function resume_with(path, extra)
      local saved = H.read_file(ckpt)
      H.write_file(ckpt, H.read_file(path))
      local out, rc = acqlua("recipes/acq_cifar.lua --resume " .. d .. " --iters 12 " .. (extra or ""))
      H.write_file(ckpt, saved)
      return out, rc
    end

    it("refuses edited metadata, a missing checksum, and bad fields, naming them in one line", function()
      local cases = {
        { function(m) m.iter = "11" end, true, "metadata checksum mismatch" },
        { function(m) m.lr_scale = "nan" end, true, "metadata checksum mismatch" },
        { function(m, t) m.crc32, m.crc32_meta = nil, nil; t["G.l1.weight"]:fill_(7) end, true, "carries no checksum" },
      }
      for _, c in ipairs(cases) do
        local out, rc = resume_with(edited(c[1], c[2]))
        assert.equal(2, rc, out)
        assert.matches(c[3], out)
        assert.equal(1, lines(out), out)
      end
      -- written with fresh checksums, the fields themselves are checked
      local fields = {
        { function(m) m.lr_scale = "nan" end, "'lr_scale' is 'nan'" },
        { function(m) m.iter = nil end, "'iter' is missing" },
        { function(m) m.iter = "3.5" end, "'iter' is 3.5" },
        { function(m) m.elapsed = "-1" end, "'elapsed'" },
        { function(_, t) t["bounds.conv.hi"] = nil end, "bounds.conv" },
        { function(_, t) t["rng.sample"] = nil end, "rng.sample" },
        { function(_, t) t["G.l1.weight"][0][0]:fill_(0 / 0) end, "tensor 'G.l1.weight' holds NaN or Inf" },
      }
      for _, c in ipairs(fields) do
        local out, rc = resume_with(edited(c[1], false))
        assert.equal(2, rc, out)
        assert.matches(c[2], out, 1, true)
        assert.is_nil(out:find("attempt to", 1, true), out)
        assert.is_nil(out:find("bad argument", 1, true), out)
        assert.equal(1, lines(out), out)
      end
      -- an unchecked checkpoint resumes only when asked
      local out, rc = resume_with(edited(function(m) m.crc32, m.crc32_meta = nil, nil end, true), "--unchecked-checkpoint")
      assert.equal(0, rc, out)
    end)

    it("an edited options.json is refused, and so is another recipe", function()
      local path = d .. "/options.json"
      local orig = H.read_file(path)
      for _, edit in ipairs {
        function(o) o.bits = "w5a5" end, function(o) o.strategy = "ait" end, function(o) o.bits = nil end } do
        local o = acq.json.decode(orig)
        edit(o)
        H.write_file(path, acq.json.encode(o))
        local out, rc = acqlua("recipes/acq_cifar.lua --resume " .. d .. " --iters 12")
        assert.equal(2, rc, out)
        assert.matches("options.json was changed after the run wrote it", out)
        assert.equal(1, lines(out), out)
      end
      H.write_file(path, orig)
      local out, rc = acqlua("recipes/dsg.lua --resume " .. d .. " --iters 12")
      assert.equal(2, rc, out)
      assert.matches("holds a acq_cifar run; continue it with recipes/acq_cifar.lua", out)
    end)
  end)
end)
