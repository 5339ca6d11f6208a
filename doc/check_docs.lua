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
for _, m in ipairs(missing) do print("no doc comment: " .. m) end
print(("%d public functions, %d without a doc comment"):format(total, #missing))
os.exit(#missing == 0 and 0 or 1)
