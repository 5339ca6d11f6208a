--- acq.export -- a quantized model as a safetensors file of integer codes.
--
-- For every quantized conv/linear layer NAME the file holds
--   NAME.weight.codes   i32, the integer codes q of eq. (1)
--   NAME.weight.scale   f32 [O,1,..], s of eq. (1), per output channel
--   NAME.weight.offset  f32 [O,1,..], b of eq. (1); weight = (q + b) * s
--   NAME.input.lo/.hi   f32 [], the frozen activation bounds
-- and, under their state-dict keys, every tensor that stays full precision
-- (BN parameters and statistics, biases, weights of layers left in fp).
-- The metadata names the model, its options and the quant spec, so
-- acq.export.load rebuilds it without any other file.
local acq = require "acq"

local E = {}
E.FORMAT = "acq-quantized-v1"

--- Writes Q (from acq.quant.quantize, bounds frozen) to path.
-- info = {model = "resnet20", classes = 10, in_channels = 3, spec = "w4a4"}
function E.save(Q, path, info)
  assert(info and info.model and info.spec, "export.save: info.model and info.spec are required")
  local out, quantized = {}, {}
  for _, e in ipairs(Q:named_modules("conv2d")) do
    local name, m = e[1], e[2]
    local cfg = m:config()
    if cfg.weight_bits then
      local codes, s, b = m:weight_codes()
      out[name .. ".weight.codes"] = codes:to("i32")
      out[name .. ".weight.scale"] = s
      out[name .. ".weight.offset"] = b
      quantized[name .. ".weight"] = true
    end
    if cfg.act_bits then
      local bounds = m:act_bounds()[1]
      if not bounds.lo then error(("export.save: layer '%s' has no activation bounds (calibrate Q first)"):format(name), 2) end
      out[name .. ".input.lo"], out[name .. ".input.hi"] = bounds.lo, bounds.hi
    end
  end
  for k, t in pairs((Q:state_dict())) do
    if not quantized[k] then out[k] = t end -- save reads the values only
  end
  acq.safetensors.save(path, out, {
    format = E.FORMAT, model = info.model, spec = info.spec,
    classes = tostring(info.classes or 10), in_channels = tostring(info.in_channels or 3),
  }, { checksum = true }) -- CRC-32 of the codes and of the metadata: a flipped bit is refused on load
end

--- Reads a file written by save; returns Q (eval-ready: weights on the
-- quantization grid, activation bounds frozen) and the metadata.
function E.load(path)
  local t, meta = acq.safetensors.load(path)
  if meta.format ~= E.FORMAT then
    error(("%s: not an acq quantized model (format %s)"):format(path, tostring(meta.format)), 2)
  end
  local F = acq.models.build(meta.model, { classes = tonumber(meta.classes), in_channels = tonumber(meta.in_channels) })
  local Q = acq.quant.quantize(F, meta.spec)
  local fp = {}
  for k, v in pairs(t) do
    if not (k:match("%.weight%.codes$") or k:match("%.weight%.scale$") or k:match("%.weight%.offset$")
            or k:match("%.input%.lo$") or k:match("%.input%.hi$")) then
      fp[k] = v
    end
  end
  for _, e in ipairs(Q:named_modules("conv2d")) do
    local name, m = e[1], e[2]
    local codes = t[name .. ".weight.codes"]
    if codes then
      local w = (codes:float() + t[name .. ".weight.offset"]) * t[name .. ".weight.scale"] -- eq. (2)
      fp[name .. ".weight"] = w
    end
  end
  Q:load_state_dict(fp, { strict = true, source = path })
  for _, e in ipairs(Q:named_modules("conv2d")) do
    local name, m = e[1], e[2]
    local cfg = m:config()
    -- the weight is already on its grid: drop its quantizer, keep the input's
    m:set_quant { weight_bits = 32, act_bits = cfg.act_bits or 32 }
    if cfg.act_bits then
      local lo, hi = t[name .. ".input.lo"], t[name .. ".input.hi"]
      if not lo or not hi then error(("%s: no activation bounds for layer '%s'"):format(path, name), 2) end
      m:set_act_bounds(lo, hi)
    end
  end
  return Q, meta
end

return E
