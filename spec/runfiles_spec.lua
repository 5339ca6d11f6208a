-- runfiles_spec.lua -- what a run needs from the runtime besides tensors:
-- JSON (options, metrics lines), folders, the processor count, and
-- interrupts as a flag that a training loop polls between iterations.
local acq = require "acq"
local H = require "spec.helper"

describe("acq.json", function()
  local j = acq.json

  it("writes sorted, compact objects and arrays, integers as integers", function()
    assert.equal('{"a":[1,2.5,"x"],"b":1,"c":true,"e":{}}', j.encode { b = 1, a = { 1, 2.5, "x" }, c = true, e = {} })
    assert.equal('"a\\"b\\n"', j.encode 'a"b\n')
    assert.equal("null", j.encode(nil))
    assert.equal('{\n  "a": 1\n}', j.encode({ a = 1 }, { indent = 2 }))
  end)

  it("writes NaN and infinities as null (JSON cannot spell them)", function()
    assert.equal('[null,null,null,1]', j.encode { 0 / 0, 1 / 0, -1 / 0, 1 })
  end)

  it("round-trips numbers exactly, keeping integer and float apart", function()
    local v = { 0.1, 1 / 3, 2 ^ 60, 1e-300, -0.5, 123 }
    local back = j.decode(j.encode(v))
    for i = 1, #v do
      assert.equal(v[i], back[i])
      assert.equal(math.type(v[i]), math.type(back[i]))
    end
  end)

  it("reads objects, arrays and null", function()
    local t = j.decode '{"x": [1, 2.0, null], "y": "s", "z": {"w": false}}'
    assert.equal(1, t.x[1])
    assert.equal("integer", math.type(t.x[1]))
    assert.equal("float", math.type(t.x[2]))
    assert.equal(j.null, t.x[3])
    assert.equal("s", t.y)
    assert.is_false(t.z.w)
  end)

  it("errors name the position, and bad values are refused", function()
    assert.matches("line 1, column 6", H.fails(j.decode, '{"x":}'))
    assert.matches("keys must be strings", H.fails(j.encode, { [true] = 1 }))
    assert.matches("cannot encode a function", H.fails(j.encode, { f = print }))
    local t = {}
    t.self = t
    assert.matches("nesting deeper", H.fails(j.encode, t))
  end)
end)

describe("folders and processors", function()
  it("mkdir creates parents, accepts an existing folder, refuses a file", function()
    local root = os.tmpname()
    os.remove(root)
    acq.mkdir(root .. "/a/b/c")
    assert.is_true(acq.isdir(root .. "/a/b/c"))
    acq.mkdir(root .. "/a/b")
    H.write_file(root .. "/f", "x")
    assert.matches("not a folder", H.fails(acq.mkdir, root .. "/f"))
    assert.matches("/f/g: Not a directory", H.fails(acq.mkdir, root .. "/f/g"))
    assert.is_false(acq.isdir(root .. "/f"))
    os.execute("rm -rf '" .. root .. "'")
  end)

  it("OpenBLAS runs on the calling thread unless OPENBLAS_NUM_THREADS says otherwise", function()
    local prev = acq.set_blas_threads()
    if prev == nil then return end -- the process's BLAS is not OpenBLAS: nothing to set
    assert.equal(1, prev)
    assert.equal(1, acq.set_blas_threads(3))
    assert.equal(3, acq.set_blas_threads(1))
    assert.matches("need at least 1 thread, got 0", H.fails(acq.set_blas_threads, 0))
    local acqlua = os.getenv("ACQLUA") or "build/bin/acqlua"
    local out = H.run("OPENBLAS_NUM_THREADS=2 " .. acqlua .. [[ -e 'print(require("acq").set_blas_threads())']])
    assert.equal("2", out:match("%d+"))
  end)

  it("cpu_count agrees with nproc", function()
    local out = H.run("nproc --all")
    assert.equal(tonumber(out:match("%d+")), acq.cpu_count())
  end)
end)

describe("interrupts", function()
  it("a caught SIGTERM only sets the flag; release restores the handler", function()
    acq.catch_interrupts()
    assert.is_false(acq.interrupted())
    os.execute("kill -TERM $PPID") -- the shell's parent is this process
    assert.equal("SIGTERM", acq.interrupted())
    acq.release_interrupts()
    assert.is_false(acq.interrupted())
  end)

  it("Ctrl-C in acqlua: the flag while caught, a Lua error after release", function()
    local script = os.tmpname()
    H.write_file(script, [[
      local acq = require "acq"
      acq.catch_interrupts()
      io.write("ready\n") io.flush()
      local t0 = acq.clock()
      while not acq.interrupted() and acq.clock() - t0 < 20 do end
      io.write("flag ", tostring(acq.interrupted()), "\n") io.flush()
      acq.release_interrupts()
      io.write("released\n") io.flush()
      while acq.clock() - t0 < 20 do end
    ]])
    local acqlua = os.getenv("ACQLUA") or "build/bin/acqlua"
    local out = H.run(("%s %s > %s.out 2>&1 & pid=$!; "
      .. "until grep -q ready %s.out; do sleep 0.05; done; kill -INT $pid; "
      .. "until grep -q released %s.out; do sleep 0.05; done; kill -INT $pid; wait $pid; echo rc=$?; cat %s.out")
      :format(acqlua, script, script, script, script, script))
    assert.matches("flag SIGINT", out)
    assert.matches("interrupted!", out)
    assert.matches("rc=1", out)
    os.remove(script)
    os.remove(script .. ".out")
  end)
end)
