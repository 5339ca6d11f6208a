--- acq: ACQ data-free quantization on libtorch, from Lua.
--
-- `require "acq"` gives the C core (tensors, autograd, optimizers: the
-- module acq.core) together with the pure-Lua parts. Tensor dimensions and
-- indices count from 0, as in PyTorch; tables from t:totable() are Lua tables
-- and count from 1.
local core = require "acq.core"

-- acq.core keeps one sub-table per concept; acq has the flat, PyTorch-like
-- names (acq.zeros, acq.conv2d, acq.no_grad, acq.safetensors, ...).
local GROUPS = { "tensor", "math", "functional", "autograd", "optim", "runtime", "io" }
local acq = {}
for _, g in ipairs(GROUPS) do
  for k, v in pairs(core[g]) do acq[k] = v end
end
acq.nn, acq.Tensor, acq.version = core.nn, core.Tensor, core.version
-- acq.quant and acq.loss are lua/acq/quant.lua and loss.lua (which include
-- core.quant and core.loss), loaded on first use below

-- Submodules load on first use: acq.models, acq.quant, acq.data, ...
local lazy = { models = true, quant = true, data = true, eval = true, export = true,
  loss = true, gen = true, image = true, progress = true, cli = true, recipe = true,
  objective = true, algorithm = true, run = true, schedule = true, strategy = true, pictures = true,
  supervised = true, plot = true, dist = true }
setmetatable(acq, {
  __index = function(t, k)
    if lazy[k] then
      local m = require("acq." .. k)
      rawset(t, k, m)
      return m
    end
  end,
})

local Tensor = core.Tensor
local tensor_mt = debug.getregistry()["acq.Tensor"]

--- true when x is an acq tensor (freed or not).
function acq.is_tensor(x)
  return getmetatable(x) == tensor_mt
end

local module_mt = debug.getregistry()["acq.Module"]

--- true when x is an acq module (a layer or a model).
function acq.is_module(x)
  return getmetatable(x) == module_mt
end

--- Optimizers with PyTorch's update rules.
-- acq.optim.adam(params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0})
-- acq.optim.sgd(params, {lr = ..., momentum = 0, dampening = 0, weight_decay = 0, nesterov = false})
acq.optim = { adam = core.optim.adam, sgd = core.optim.sgd }

--- t:allclose(u, rtol, atol): |t - u| <= atol + rtol * |u| everywhere.
function Tensor.allclose(t, u, rtol, atol)
  rtol, atol = rtol or 1e-5, atol or 1e-8
  local ok = acq.no_grad(function()
    local a, b = t:double(), u:double()
    return ((a - b):abs():le(b:abs() * rtol + atol)):all():item()
  end)
  return ok
end

--- t:equal(u): same shape, same dtype and every element equal (torch.equal).
function Tensor.equal(t, u)
  if t:dtype() ~= u:dtype() or t:shape_string() ~= u:shape_string() then return false end
  return acq.no_grad(function() return t:eq(u):all():item() end)
end

--- t:shape_string() -> "[2,3]"
function Tensor.shape_string(t)
  return "[" .. table.concat(t:shape(), ",") .. "]"
end

return acq
