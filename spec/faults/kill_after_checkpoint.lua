-- spec/faults/kill_after_checkpoint.lua K RECIPE ARGS... -- runs RECIPE with
-- ARGS and kill -9s itself right after the checkpoint of iteration K is on
-- disk: the moment a run's log used to lose its row (faults_spec).
local acq = require "acq"
local K = table.remove(arg, 1)
local recipe = table.remove(arg, 1)
local save = acq.safetensors.save
acq.safetensors.save = function(path, t, meta, o)
  save(path, t, meta, o)
  if path:match("/checkpoint%.safetensors$") and meta and meta.iter == K then
    local f = assert(io.open("/proc/self/stat"))
    local pid = f:read("a"):match("^(%d+)")
    f:close()
    os.execute("kill -KILL " .. pid)
  end
end
arg[0] = recipe
assert(loadfile(recipe))()
