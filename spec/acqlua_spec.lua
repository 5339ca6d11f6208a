-- acqlua_spec.lua -- the acqlua program: options, script arguments, errors
-- with tracebacks and exit status 1, the REPL, and Ctrl-C as a Lua error.
local H = require "spec.helper"

local ACQLUA = os.getenv("ACQLUA") or "build/bin/acqlua"

local function tmpscript(src)
  local name = os.tmpname() .. ".lua"
  local f = assert(io.open(name, "w"))
  f:write(src)
  f:close()
  return name
end

-- Starts script s, waits for it to print "started", sends SIGINT, and
-- returns "exit=<status>" followed by what the script printed.
local function interrupt(s)
  local cmd = ("(%s %s > %s.out 2>&1 & pid=$!; for i in $(seq 100); do "
    .. "grep -q started %s.out 2>/dev/null && break; sleep 0.1; done; "
    .. "kill -INT $pid; wait $pid; echo \"exit=$?\"; cat %s.out)"):format(ACQLUA, s, s, s, s)
  local out = H.run(cmd)
  os.remove(s); os.remove(s .. ".out")
  return out
end

describe("acqlua", function()
  it("runs -e and prints the issue's example", function()
    local out, rc = H.run(ACQLUA .. [[ -e 'local acq=require"acq"; print(acq.tensor{{1,2},{3,4}}:matmul(acq.tensor{{1,2},{3,4}}):totable()[2][2])']])
    assert.equal(0, rc)
    assert.equal("22\n", out)
  end)

  it("--help and -h describe the usage; -v names the versions", function()
    for _, flag in ipairs({"--help", "-h"}) do
      local out, rc = H.run(ACQLUA .. " " .. flag)
      assert.equal(0, rc)
      assert.matches("usage: .*acqlua %[options%] %[script %[args%]%]", out)
      assert.matches("%-e stat", out)
      assert.matches("Ctrl%-C", out)
    end
    local out, rc = H.run(ACQLUA .. " -v")
    assert.equal(0, rc)
    assert.matches("^acq %d+%.%d+%.%d+  %(Lua 5%.4%.%d+, libtorch [%d.]+", out)
  end)

  it("passes script arguments in arg and ...", function()
    local s = tmpscript([[
      local a, b = ...
      print(arg[0]:match("[^/]+$"), #arg, arg[1], arg[2], a, b)
      print(require("acq").ones(tonumber(a)):sum():item())
    ]])
    local out, rc = H.run(ACQLUA .. " " .. s .. " 3 x")
    os.remove(s)
    assert.equal(0, rc)
    assert.matches("^%S+%.lua\t2\t3\tx\t3\tx\n3%.0\n$", out)
  end)

  it("-l loads a library into a global", function()
    local out, rc = H.run(ACQLUA .. [[ -l acq -e 'print(acq.arange(4):sum():item())']])
    assert.equal(0, rc)
    assert.equal("6\n", out)
    out, rc = H.run(ACQLUA .. [[ -l T=acq -e 'print(T.arange(3):sum():item())']])
    assert.equal("3\n", out)
  end)

  it("an error prints the message and a traceback and exits with 1", function()
    local s = tmpscript([[
      local acq = require "acq"
      local function inner() return acq.ones(2, 3):matmul(acq.ones(2, 3)) end
      inner()
    ]])
    local out, rc = H.run(ACQLUA .. " " .. s)
    os.remove(s)
    assert.equal(1, rc)
    assert.matches("matmul: mat1 and mat2 shapes cannot be multiplied", out)
    assert.matches("stack traceback:", out)
    assert.matches("in %a* ?%a* ?'?inner'?", out)
    assert.is_nil(out:find("Exception raised from", 1, true))
  end)

  it("a missing script and a bad option are errors", function()
    local out, rc = H.run(ACQLUA .. " /nonexistent/recipe.lua")
    assert.equal(1, rc)
    assert.matches("cannot open /nonexistent/recipe.lua", out)
    out, rc = H.run(ACQLUA .. " -Z")
    assert.equal(1, rc)
    assert.matches("unrecognized option '%-Z'", out)
  end)

  it("reads a script from stdin and runs the REPL with -i", function()
    local out, rc = H.run("echo 'print(require(\"acq\").tensor{5}:item())' | " .. ACQLUA .. " -")
    assert.equal(0, rc)
    assert.equal("5\n", out)
    out, rc = H.run("printf 'acq = require \"acq\"\\n=acq.tensor{2,3}:sum():item()\\nx = 1 +\\n 1\\n=x\\n' | "
      .. ACQLUA .. " -i")
    assert.equal(0, rc)
    assert.matches("> 5\n", out)
    assert.matches(">> > 2\n", out)
  end)

  it("Ctrl-C interrupts a running script with a catchable Lua error", function()
    local s = tmpscript([[
      local acq = require "acq"
      io.write("started\n"); io.flush()
      local ok, err = pcall(function()
        while true do local x = acq.zeros(100) + 1 end
      end)
      print("caught: " .. tostring(err))
      os.exit(3)
    ]])
    local out = interrupt(s)
    assert.matches("exit=3", out)
    assert.matches("caught: .*interrupted!", out)
  end)

  it("Ctrl-C in an uncaught loop exits with 1 and a message", function()
    local s = tmpscript([[
      io.write("started\n"); io.flush()
      while true do end
    ]])
    local out = interrupt(s)
    assert.matches("exit=1", out)
    assert.matches("interrupted!", out)
  end)
end)
