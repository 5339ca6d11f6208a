--- acq.dist: data-parallel Algorithm 1 over c10d process groups (Gloo on
-- CPUs; the shim's acq.core.dist), as PyTorch users already launch them.
--
-- A process learns its place from the launcher's environment:
--   torchrun   RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
--   Slurm      SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID (MASTER_ADDR and
--              MASTER_PORT from the job script, or SLURM_LAUNCH_NODE_IPADDR
--              and 29500)
--   bench/launch.sh -n N   the torchrun variables, for N local processes
-- With several processes (acq.run does this for every recipe):
--   * each rank draws its own z, y, p from a stream of seed + 1000003 rank,
--     so --batch is the batch of one process;
--   * G's and Q's gradients are averaged over the ranks after each
--     backward (one flat all-reduce each), so every rank takes the same step
--     and the parameters stay equal (they start equal: rank 0's are
--     broadcast);
--   * during calibration each activation quantizer takes the min of the
--     ranks' batch minima and the max of their maxima before it updates,
--     layer after layer inside the forward (as one process calibrating on
--     the union of the batches);
--   * BN statistics of L_BNS and the F^train penalties are each rank's own
--     (each rank's batch is a paper's batch), or with {sync_stats = true}
--     (--sync-stats) those of the union of the ranks' batches, as
--     SyncBatchNorm computes them (one differentiable all-reduce a layer);
--   * rank 0 alone writes the run folder; a checkpoint holds every rank's
--     stream, and every rank resumes from it;
--   * every collective waits at most --dist-timeout seconds: a rank that
--     died ends the others with a message, not a hang.
local acq = require "acq"
local core = require "acq.core"

local D = {}

D.rank, D.world, D.active, D.barrier = core.dist.rank, core.dist.world, core.dist.active, core.dist.barrier
--- all_reduce({tensors}, "sum"|"min"|"max"|"avg"): in place, over every rank.
D.all_reduce = core.dist.all_reduce
--- broadcast({tensors}, root): every rank's tensors become root's.
D.broadcast = core.dist.broadcast

-- The integer in environment variable k (nil when unset); a value that is
-- not a whole number in [lo, hi] is an error naming the variable.
local function int_env(k, lo, hi)
  local v = os.getenv(k)
  if v == nil then return nil end
  local n = v:match("^%s*(%d+)%s*$") and math.tointeger(tonumber(v))
  if not n or n < (lo or 0) or n > (hi or math.maxinteger) then
    error(("%s=%s in the environment is not a whole number%s (the launcher's variables)")
      :format(k, v, hi and (" in [%d, %d]"):format(lo or 0, hi) or ""), 0)
  end
  return n
end

--- The launcher's description of this process: {rank, world, local_rank,
-- addr, port, launcher = "torchrun" | "slurm"}, or nil for a lone process.
-- A variable that is not a number, a rank outside the world, or one of RANK
-- and WORLD_SIZE without the other is an error (never a silent lone run).
function D.env()
  local rank, world = int_env("RANK"), int_env("WORLD_SIZE", 1)
  if (rank == nil) ~= (world == nil) then
    error(("%s is set in the environment but %s is not (torchrun sets both)")
      :format(rank and "RANK" or "WORLD_SIZE", rank and "WORLD_SIZE" or "RANK"), 0)
  end
  if rank and rank >= world then error(("RANK=%d is outside WORLD_SIZE=%d"):format(rank, world), 0) end
  if rank and world then
    int_env("MASTER_PORT", 1, 65535)
    return { rank = rank, world = world, local_rank = int_env("LOCAL_RANK") or rank, launcher = "torchrun",
      addr = os.getenv("MASTER_ADDR") or "127.0.0.1", port = int_env("MASTER_PORT") or 29500 }
  end
  rank, world = int_env("SLURM_PROCID"), int_env("SLURM_NTASKS", 1)
  if rank and world then
    if rank >= world then error(("SLURM_PROCID=%d is outside SLURM_NTASKS=%d"):format(rank, world), 0) end
    int_env("MASTER_PORT", 1, 65535)
    return { rank = rank, world = world, local_rank = int_env("SLURM_LOCALID") or 0, launcher = "slurm",
      addr = os.getenv("MASTER_ADDR") or os.getenv("SLURM_LAUNCH_NODE_IPADDR") or "127.0.0.1",
      port = int_env("MASTER_PORT") or 29500 }
  end
end

--- Joins the process group the environment describes (a no-op for a lone
-- process or a world of 1); opts.sync_stats: synchronised BN statistics.
-- Returns the env table or nil.
function D.init(timeout_s, opts)
  local e = D.env()
  if not e or e.world <= 1 or D.active() then return e end
  if e.rank < 0 or e.rank >= e.world then
    error(("rank %d is outside a world of %d (RANK / SLURM_PROCID)"):format(e.rank, e.world), 0)
  end
  -- torchrun's agent may serve the store itself (PyTorch >= 2.4)
  local agent = os.getenv("TORCHELASTIC_USE_AGENT_STORE") == "True"
  core.dist.init(e.rank, e.world, e.addr, e.port, timeout_s or 300, not agent)
  core.dist.reduce_calibration(true)
  core.dist.sync_stats(opts and opts.sync_stats or false)
  return e
end

--- true when there are several processes to keep in step.
function D.parallel() return D.active() and D.world() > 1 end

--- Averages the gradients of params over the ranks, in place (one flat
-- all-reduce; parameters without a gradient are left out on every rank).
function D.average_gradients(params)
  local gs = {}
  for _, p in ipairs(params) do
    local g = p:grad()
    if g then gs[#gs + 1] = g end
  end
  if #gs == 0 then return end
  D.all_reduce(gs, "avg")
end

--- Makes every rank's tensors (a list) rank 0's (the parameters at the start).
function D.sync(tensors)
  if #tensors > 0 then D.broadcast(tensors, 0) end
end

--- Every rank's copy of t (a 1-D tensor of the same size on each rank) as
-- rows of a [world, n] tensor, on every rank.
function D.gather_rows(t)
  local W, r = D.world(), D.rank()
  local n = t:numel()
  local all = acq.zeros({ W, n }, { dtype = t:dtype() })
  all[r]:copy_(t:view(-1))
  D.all_reduce({ all }, "sum")
  return all
end

--- The seed of rank r's sampling stream.
function D.stream_seed(seed, rank)
  return seed + 1000003 * (rank or D.rank())
end

return D
