-- autograd_spec.lua -- gradients against central finite differences in
-- float64, grad mode, and the optimizers against hand-computed steps.
local acq = require "acq"
local H = require "spec.helper"

describe("autograd", function()
  it("conv2d + batch_norm + log_softmax + mean matches finite differences", function()
    acq.manual_seed(42)
    local f64 = {dtype = "f64", requires_grad = true}
    local x = acq.randn(2, 2, 5, 5, f64)
    local w = acq.randn(3, 2, 3, 3, f64)
    local b = acq.randn(3, f64)
    local gamma = acq.rand(3, f64) + 0.5
    gamma = gamma:detach():requires_grad_()
    local beta = acq.randn(3, f64)
    local R = acq.randn(2, 75, {dtype = "f64"}) -- a fixed readout: catches a wrong axis
    local function f()
      local h = acq.conv2d(x, w, b, {padding = 1})
      h = acq.batch_norm(h, gamma, beta, nil, nil, {training = true})
      return (h:view(2, 75):log_softmax(1) * R):mean()
    end
    local loss = f()
    loss:backward()
    for name, p in pairs({x = x, w = w, gamma = gamma, beta = beta}) do
      H.close(p:grad(), H.numgrad(f, p), 1e-6, 1e-9, "d loss / d " .. name)
    end
    -- batch norm removes a per-channel constant: the conv bias has no effect
    H.close(b:grad(), {0, 0, 0}, 0, 1e-12, "d loss / d bias")
    H.close(H.numgrad(f, b), {0, 0, 0}, 0, 1e-8, "finite differences for the bias")
  end)

  it("backward takes an explicit gradient and can retain the graph", function()
    local x = acq.tensor({1.0, 2.0, 3.0}, {requires_grad = true, dtype = "f64"})
    local y = x * x
    y:backward(acq.tensor({1.0, 0.5, 0.0}, {dtype = "f64"}), {retain_graph = true})
    H.close(x:grad(), {2, 2, 0})
    y:backward(acq.tensor({1.0, 1.0, 1.0}, {dtype = "f64"})) -- accumulates
    H.close(x:grad(), {4, 6, 6})
    x:zero_grad()
    H.close(x:grad(), {0, 0, 0})
    x:zero_grad(true)
    assert.is_nil(x:grad())
  end)

  it("detach cuts the graph", function()
    local x = acq.tensor({2.0}, {requires_grad = true})
    local y = (x * x):detach() * x
    y:sum():backward()
    H.close(x:grad(), {4}) -- only the outer factor: d(c x)/dx = c = 4
    assert.is_false((x * x):detach():requires_grad())
    assert.is_true(x:is_leaf())
    assert.is_false((x * 2):is_leaf())
  end)

  it("no_grad records nothing and restores the mode, even on error", function()
    local x = acq.ones({2}, {requires_grad = true})
    local y, extra = acq.no_grad(function(a) return a * 2, "second" end, x)
    assert.is_false(y:requires_grad())
    assert.equal("second", extra)
    assert.is_true(acq.is_grad_enabled())
    local ok, err = pcall(acq.no_grad, function() error("boom") end)
    assert.is_false(ok)
    assert.matches("boom", err)
    assert.is_true(acq.is_grad_enabled())
    acq.no_grad(function()
      acq.no_grad(function() end)
      assert.is_false(acq.is_grad_enabled()) -- nested scopes restore the outer one
    end)
    assert.is_true(acq.set_grad_enabled(false))
    assert.is_false((x * 2):requires_grad())
    acq.set_grad_enabled(true)
    assert.is_true((x * 2):requires_grad())
  end)
end)

describe("optimizers", function()
  local function param(v) return acq.tensor(v, {dtype = "f64", requires_grad = true}) end
  local k = {0.5, -2.0, 3.0} -- loss = sum(k * p), so grad = k

  local function step_with(opt, p)
    opt:zero_grad();
    (p * acq.tensor(k, {dtype = "f64"})):sum():backward()
    opt:step()
  end

  it("SGD with Nesterov momentum and weight decay, two steps by hand", function()
    local p0 = {1.0, 2.0, -1.0}
    local p = param(p0)
    local lr, mom, wd = 0.1, 0.9, 0.01
    local opt = acq.optim.sgd({p}, {lr = lr, momentum = mom, weight_decay = wd, nesterov = true})
    local ref, buf = {}, {}
    for i = 1, 3 do ref[i] = p0[i] end
    for s = 1, 2 do
      step_with(opt, p)
      for i = 1, 3 do
        local d = k[i] + wd * ref[i]
        buf[i] = s == 1 and d or mom * buf[i] + d
        ref[i] = ref[i] - lr * (d + mom * buf[i])
      end
      H.close(p, ref, 1e-12, 0, "sgd step " .. s)
    end
  end)

  it("Adam with weight decay, three steps by hand", function()
    local p0 = {1.0, 2.0, -1.0}
    local p = param(p0)
    local lr, b1, b2, eps, wd = 0.01, 0.5, 0.999, 1e-8, 0.1
    local opt = acq.optim.adam({p}, {lr = lr, betas = {b1, b2}, eps = eps, weight_decay = wd})
    local ref, m, v = {}, {0, 0, 0}, {0, 0, 0}
    for i = 1, 3 do ref[i] = p0[i] end
    for t = 1, 3 do
      step_with(opt, p)
      for i = 1, 3 do
        local g = k[i] + wd * ref[i]
        m[i] = b1 * m[i] + (1 - b1) * g
        v[i] = b2 * v[i] + (1 - b2) * g * g
        local denom = math.sqrt(v[i]) / math.sqrt(1 - b2 ^ t) + eps
        ref[i] = ref[i] - lr / (1 - b1 ^ t) * m[i] / denom
      end
      H.close(p, ref, 1e-12, 0, "adam step " .. t)
    end
  end)

  it("the learning rate can be read and set; parameters without grad are skipped", function()
    local p, q = param{1.0}, param{5.0}
    local opt = acq.optim.sgd({p, q}, {lr = 0.1})
    assert.equal(0.1, opt:lr())
    opt:lr(0.5)
    assert.equal(0.5, opt:lr())
    assert.equal(2, opt:nparams());
    (p * 2):sum():backward()
    opt:step()
    H.close(p, {0}, 0, 1e-15)
    H.close(q, {5}, 0, 0)
    opt:free()
    assert.matches("freed optimizer", H.fails(function() opt:step() end))
  end)
end)

describe("checkpoint state", function()
  -- f(p) = sum(k * p^2): a fixed, non-trivial gradient at every step
  local k = acq.tensor({ 1.0, -2.0, 0.5 }, { dtype = "f64" })
  local function run(opt, p, n)
    for _ = 1, n do
      opt:zero_grad();
      (k * p * p):sum():backward()
      opt:step()
    end
  end

  for _, kind in ipairs { "adam", "sgd" } do
    it(kind .. ": a state_dict restored into a new optimizer continues bit for bit", function()
      local make = function(p)
        if kind == "adam" then return acq.optim.adam({ p }, { lr = 0.1, betas = { 0.5, 0.999 } }) end
        return acq.optim.sgd({ p }, { lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 1e-4 })
      end
      local p = acq.tensor({ 1.0, 2.0, 3.0 }, { dtype = "f64" }):requires_grad_(true)
      local o = make(p)
      run(o, p, 3)
      local sd = o:state_dict()
      -- into safetensors and back, as a checkpoint does
      local path = os.tmpname()
      acq.safetensors.save(path, sd)
      local back = acq.safetensors.load(path)
      os.remove(path)
      local p2 = p:detach():clone():requires_grad_(true)
      local o2 = make(p2)
      o2:lr(1.0)
      o2:load_state_dict(back)
      assert.equal(0.1, o2:lr())
      run(o, p, 2)
      run(o2, p2, 2)
      assert.is_true(p:equal(p2))
      assert.is_true(H.equal(back.step, { 3 }, "steps"))
    end)
  end

  it("rejects a state of the wrong kind or shape, changing nothing", function()
    local p = acq.zeros(3):requires_grad_(true)
    local o = acq.optim.adam({ p }, { lr = 0.1 })
    assert.matches("unexpected entry 'momentum_buffer.0' %(this is an Adam optimizer over 1 tensors%)",
      H.fails(o.load_state_dict, o, { step = acq.tensor { 1 }, ["momentum_buffer.0"] = acq.zeros(3) }))
    assert.matches("state of parameter 1 has shape %[4%], the parameter %[3%]",
      H.fails(o.load_state_dict, o, { step = acq.tensor { 7 }, ["exp_avg.0"] = acq.zeros(4) }))
    assert.is_true(H.equal(o:state_dict().step, { 0 }, "unchanged"))
    assert.matches("no 'step' tensor", H.fails(o.load_state_dict, o, {}))
  end)

  it("generator states restore the random stream exactly", function()
    local g = acq.generator(11)
    acq.randn(5, { generator = g })
    local s = g:state()
    local a = acq.randn(5, { generator = g })
    g:set_state(s)
    assert.is_true(acq.randn(5, { generator = g }):equal(a))
    local d = acq.rng_state()
    local b = acq.rand(4)
    acq.set_rng_state(d)
    assert.is_true(acq.rand(4):equal(b))
    assert.matches("uint8", H.fails(acq.set_rng_state, acq.zeros(3)))
  end)
end)
