--- acq.cli: command-line options for recipes, declared once, with a
-- generated --help that lists every option, its default and its meaning.
--
--   local cli = require "acq.cli"
--   local spec = cli.new("recipes/fashion.lua", "Data-free ACQ on Fashion-MNIST.", {
--     { "iters", 1200, "iterations of Algorithm 1" },
--     { "bits", "w4a4", "quantization spec (see acq.quant)" },
--     { "cacm", true, "use L_CACM and its penalty (--no-cacm: Table 6)" },
--     { "weights", cli.none "path", "FP weights (safetensors)" },
--   })
--   local opts = spec:parse(arg)      -- errors are one line; --help prints and exits
--
-- Types come from the default: integer, number, string, boolean (a flag:
-- --name / --no-name). cli.none(kind) declares an option without a default
-- (nil unless given) of kind "path", "string", "number" or "integer".
local cli = {}

local Spec = {}
Spec.__index = Spec

local NONE = {}
--- An option without a default value, of the given kind; `shown` is what
-- --help prints as its default ("none" unless given).
function cli.none(kind, shown) return setmetatable({ kind = kind or "string", shown = shown }, NONE) end

local function kind_of(default)
  if getmetatable(default) == NONE then return default.kind end
  local t = math.type(default) or type(default)
  if t == "float" then return "number" end
  return t
end

--- Declares the options of a program.
function cli.new(prog, about, options)
  local s = setmetatable({ prog = prog, about = about, list = {}, by = {} }, Spec)
  for _, o in ipairs(options) do
    local name, default, help = o[1], o[2], o[3]
    assert(type(name) == "string" and help, "cli.new: each option is {name, default, help}")
    local e = { name = name, default = default, help = help, kind = kind_of(default),
      flag = name:gsub("_", "-") }
    if getmetatable(default) == NONE then e.default, e.shown = nil, default.shown end
    s.list[#s.list + 1] = e
    s.by[name] = e
  end
  return s
end

local function show(v, shown)
  if v == nil then return shown or "none" end
  if type(v) == "string" then return ("%q"):format(v) end
  return tostring(v)
end

--- The text of --help.
function Spec:help()
  local lines = { ("usage: acqlua %s [options]"):format(self.prog), "", self.about, "", "options:" }
  local w = 0
  local heads = {}
  for i, o in ipairs(self.list) do
    local h
    if o.kind == "boolean" then
      h = ("  --%s, --no-%s"):format(o.flag, o.flag)
    else
      h = ("  --%s %s"):format(o.flag, o.kind == "path" and "PATH" or o.kind:upper())
    end
    heads[i] = h
    if #h > w then w = #h end
  end
  for i, o in ipairs(self.list) do
    lines[#lines + 1] = ("%-" .. w .. "s  %s (default: %s)"):format(heads[i], o.help, show(o.default, o.shown))
  end
  lines[#lines + 1] = ("%-" .. w .. "s  %s"):format("  --help", "print this and exit")
  return table.concat(lines, "\n")
end

-- Closest known option name (edit distance), for "did you mean".
local function nearest(self, name)
  local best, bd = nil, math.huge
  for _, o in ipairs(self.list) do
    local a, b = name, o.name
    local prev = {}
    for j = 0, #b do prev[j] = j end
    for i = 1, #a do
      local cur = { [0] = i }
      for j = 1, #b do
        local c = a:sub(i, i) == b:sub(j, j) and 0 or 1
        cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + c)
      end
      prev = cur
    end
    if prev[#b] < bd then best, bd = o.flag, prev[#b] end
  end
  if bd <= math.max(2, #name // 3) then return best end
end

local function convert(o, v)
  if o.kind == "integer" then
    local n = math.tointeger(tonumber(v))
    if not n then error(("--%s expects an integer, got '%s'"):format(o.flag, v), 0) end
    return n
  elseif o.kind == "number" then
    local n = tonumber(v)
    if not n then error(("--%s expects a number, got '%s'"):format(o.flag, v), 0) end
    return n
  end
  return v
end

--- Parses a list of arguments (e.g. the arg table). Returns a table of every
-- option (defaults filled in) plus `_given` (the names given explicitly).
-- Raises a one-line message for an unknown option or a bad value; on --help
-- returns nil, the help text.
function Spec:parse(args)
  local r, given = {}, {}
  for _, o in ipairs(self.list) do r[o.name] = o.default end
  local i = 1
  while args[i] do
    local a = args[i]
    if a == "--help" or a == "-h" then return nil, self:help() end
    local name, value = a:match("^%-%-([%w_%-]+)=(.*)$")
    if not name then name = a:match("^%-%-([%w_%-]+)$") end
    if not name then
      error(("unexpected argument '%s' (options start with --; see --help)"):format(a), 0)
    end
    local key = name:gsub("%-", "_")
    local o = self.by[key] or self.by[name]
    local neg = false
    if not o and key:sub(1, 3) == "no_" then
      o, neg = self.by[key:sub(4)], true
      if o and o.kind ~= "boolean" then o = nil end
    end
    if not o then
      local near = nearest(self, key)
      error(("unknown option --%s%s (see --help)"):format(name, near and (", did you mean --" .. near .. "?") or ""), 0)
    end
    if o.kind == "boolean" then
      if value then
        if value == "true" or value == "1" then r[o.name] = not neg
        elseif value == "false" or value == "0" then r[o.name] = neg
        else error(("--%s expects true or false, got '%s'"):format(name, value), 0) end
      else
        r[o.name] = not neg
      end
    else
      if not value then
        i = i + 1
        value = args[i]
        if value == nil then error(("--%s needs a value"):format(name), 0) end
      end
      r[o.name] = convert(o, value)
    end
    given[o.name] = true
    i = i + 1
  end
  r._given = given
  return r
end

return cli
