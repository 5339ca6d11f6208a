-- embed_script.lua -- run by examples/embed_host.c: uses acq and a C
-- function the host registered, and leaves a global for the host to read.
local acq = require "acq"
local k = tonumber(arg[1])          -- "7", passed by the host
local t = acq.tensor { 1, 2, 3 }    -- sum 6
result = host_scale(t:sum():item(), k)
