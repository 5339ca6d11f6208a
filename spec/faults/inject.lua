-- spec/faults/inject.lua WHAT K RECIPE ARGS... -- runs RECIPE with ARGS and
-- injects one fault (faults_spec):
--   fail_checkpoint K   the checkpoint of iteration K fails to write, as on a
--                       disk that is full for a moment (later ones succeed)
--   sigint_export K     SIGINT arrives while the export is written (K unused)
local acq = require "acq"
local what = table.remove(arg, 1)
local K = table.remove(arg, 1)
local recipe = table.remove(arg, 1)
local function self_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  return pid
end
if what == "fail_checkpoint" then
  local save = acq.safetensors.save
  acq.safetensors.save = function(path, t, meta, o)
    if path:match("/checkpoint%.safetensors$") and meta and meta.iter == K then
      error(path .. ": No space left on device", 0)
    end
    return save(path, t, meta, o)
  end
elseif what == "sigint_export" then
  local save = acq.export.save
  acq.export.save = function(...)
    -- in the background: system() ignores SIGINT in its caller while it runs
    os.execute("(sleep 0.2; kill -INT " .. self_pid() .. ") &")
    local t = acq.clock()
    while acq.clock() - t < 5 do end -- the export's work, as long as the signal takes
    return save(...)
  end
else
  error("inject.lua: unknown fault " .. tostring(what))
end
arg[0] = recipe
assert(loadfile(recipe))()
