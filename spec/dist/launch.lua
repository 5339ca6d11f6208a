-- spec/dist/launch.lua -- starts `args` of acqlua as ranks 0..n-1 of one
-- c10d group on loopback (torchrun's environment), for dist_spec and
-- dist_equivalence_spec.
local H = require "spec.helper"
local L = {}

L.ACQLUA = os.getenv("ACQLUA") or "build/bin/acqlua"
local port = 21000 + (os.time() * 7 + math.random(0, 999)) % 15000

--- A fresh loopback port for the next group.
function L.next_port() port = port + 1; return port end

--- Runs `args` as ranks 0..n-1 of one group, each with `env`; returns the
-- combined output and each rank's exit status (a table indexed by rank).
function L.ranks(n, args, env)
  local p = L.next_port()
  local parts = {}
  for r = 0, n - 1 do
    parts[#parts + 1] = ("(RANK=%d WORLD_SIZE=%d LOCAL_RANK=%d MASTER_ADDR=127.0.0.1 MASTER_PORT=%d %s %s %s "
      .. "> /tmp/acq_dist_%d_%d.log 2>&1; echo $? > /tmp/acq_dist_%d_%d.rc) &")
      :format(r, n, r, p, env or "", L.ACQLUA, args, p, r, p, r)
  end
  os.execute(table.concat(parts, " ") .. " wait")
  local out, rcs = {}, {}
  for r = 0, n - 1 do
    out[#out + 1] = H.read_file(("/tmp/acq_dist_%d_%d.log"):format(p, r))
    rcs[r] = tonumber(H.read_file(("/tmp/acq_dist_%d_%d.rc"):format(p, r)))
    os.remove(("/tmp/acq_dist_%d_%d.log"):format(p, r))
    os.remove(("/tmp/acq_dist_%d_%d.rc"):format(p, r))
  end
  return table.concat(out, "\n"), rcs
end

return L
