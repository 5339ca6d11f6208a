-- doc/check_docs.lua: every public function of the Lua side (lua/acq/*.lua)
-- has a doc comment: a function assigned into a module or class table at
-- the top level (function M.f / function T:f / M.f = function) must follow
-- a comment line. Prints the ones that do not and exits 1; run by
-- `./acq doc` after LDoc.
local missing, total = {}, 0
local dir = arg[1] or "lua/acq"
local p = assert(io.popen("ls " .. dir .. "/*.lua"))
for path in p:lines() do
  local prev = ""
  local n = 0
  for line in io.lines(path) do
    n = n + 1
    local name = line:match("^function ([%w_]+[.:][%w_]+)%s*%(")
      or line:match("^([%w_]+%.[%w_]+)%s*=%s*function")
    if name then
      total = total + 1
      if not prev:match("^%s*%-%-") then missing[#missing + 1] = ("%s:%d: %s"):format(path, n, name) end
    end
    if line:match("%S") then prev = line end
  end
end
p:close()
-- The C side: every function a binding file registers for Lua ({"name",
-- l_fn} in a luaL_Reg, or pushed and set as a field) has an LDoc comment
-- (/*** ... @function name */) right above its definition.
local cdir = arg[2] or "src/lua"
local cp = assert(io.popen("ls " .. cdir .. "/l_*.c"))
for path in cp:lines() do
  local f = assert(io.open(path))
  local src = f:read("a")
  f:close()
  local seen = {}
  local function check(name, fn)
    if seen[fn] or name:sub(1, 2) == "__" then return end
    seen[fn] = true
    local at = src:find("\nstatic int " .. fn .. "%(lua_State %*L%)") or src:find("\nint " .. fn .. "%(lua_State %*L%)")
    if not at then return end -- defined elsewhere (a shared C function)
    total = total + 1
    local before = src:sub(math.max(1, at - 2000), at)
    local last = before:match(".*(/%*%*%*.-%*/)%s*$")
    if not (last and last:find("@function")) then missing[#missing + 1] = ("%s: %s (%s)"):format(path, fn, name) end
  end
  for name, fn in src:gmatch('{"([%w_]+)",%s*(l_[%w_]+)}') do check(name, fn) end
  for fn, name in src:gmatch('lua_pushcfunction%(L, (l_[%w_]+)%);%s*lua_setfield%(L, [^,]+, "([%w_]+)"%)') do check(name, fn) end
end
cp:close()
for _, m in ipairs(missing) do print("no doc comment: " .. m) end
print(("%d public functions (Lua and C), %d without a doc comment"):format(total, #missing))
os.exit(#missing == 0 and 0 or 1)
