-- bench/overhead.lua N -- calls per second of a tiny op from Lua: c = a + b
-- on two 1-element f32 tensors, N times (default 200000). Prints one line:
-- "acq <calls per second>". Run by bench/overhead.sh beside overhead.py.
local acq = require "acq"
local n = tonumber(arg and arg[1]) or 200000
acq.set_num_threads(1)
local a, b = acq.tensor{1.0}, acq.tensor{2.0}
for _ = 1, 1000 do local c = a + b end -- warm-up
local clock = os.clock
local t0 = clock()
for _ = 1, n do local c = a + b end
local dt = clock() - t0
print(("acq %.0f"):format(n / dt))
