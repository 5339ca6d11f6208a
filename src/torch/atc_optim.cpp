// atc_optim.cpp -- Adam and SGD with the update rules of PyTorch's
// torch.optim (1.13, single-tensor path), so trajectories match step for step.
#include "atc_internal.hpp"

#include <ATen/ops/zeros_like.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <memory>

struct atc_optim {
  enum Kind { ADAM, SGD } kind;
  std::vector<at::Tensor> params;
  double lr;
  // Adam
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  std::vector<at::Tensor> exp_avg, exp_avg_sq;
  // SGD
  double momentum = 0, dampening = 0;
  bool nesterov = false;
  std::vector<at::Tensor> momentum_buf;
  // both
  double weight_decay = 0;
  std::vector<int64_t> steps;
};

using namespace atc;

namespace {

std::vector<at::Tensor> collect(atc_tensor *const *ps, int n) {
  if (n <= 0) arg_error("empty parameter list");
  if (!ps) arg_error("NULL parameter list");
  std::vector<at::Tensor> v;
  for (int i = 0; i < n; i++) {
    const at::Tensor &p = T(ps[i]);
    if (!p.is_leaf())
      arg_error("parameter " + std::to_string(i + 1) +
                " is not a leaf tensor (it was computed from others)");
    if (!at::isFloatingType(p.scalar_type()))
      arg_error("parameter " + std::to_string(i + 1) +
                " is not floating point");
    v.push_back(p);
  }
  return v;
}

void check_hyper(double lr, double wd) {
  if (!(lr >= 0)) arg_error("learning rate must be >= 0");
  if (!(wd >= 0)) arg_error("weight decay must be >= 0");
}

void adam_step(atc_optim &o, size_t i) {
  at::Tensor &p = o.params[i];
  at::Tensor g = p.grad();
  if (o.weight_decay != 0) g = g.add(p, o.weight_decay);
  if (!o.exp_avg[i].defined()) {
    o.exp_avg[i] = at::zeros_like(p, at::MemoryFormat::Preserve);
    o.exp_avg_sq[i] = at::zeros_like(p, at::MemoryFormat::Preserve);
  }
  int64_t step = ++o.steps[i];
  o.exp_avg[i].lerp_(g, 1 - o.beta1);
  o.exp_avg_sq[i].mul_(o.beta2).addcmul_(g, g, 1 - o.beta2);
  double bc1 = 1 - std::pow(o.beta1, static_cast<double>(step));
  double bc2 = 1 - std::pow(o.beta2, static_cast<double>(step));
  double step_size = o.lr / bc1;
  at::Tensor denom = o.exp_avg_sq[i].sqrt().div_(std::sqrt(bc2)).add_(o.eps);
  p.addcdiv_(o.exp_avg[i], denom, -step_size);
}

void sgd_step(atc_optim &o, size_t i) {
  at::Tensor &p = o.params[i];
  at::Tensor d = p.grad();
  if (o.weight_decay != 0) d = d.add(p, o.weight_decay);
  if (o.momentum != 0) {
    at::Tensor &buf = o.momentum_buf[i];
    if (!buf.defined()) buf = d.clone().detach();
    else buf.mul_(o.momentum).add_(d, 1 - o.dampening);
    d = o.nesterov ? d.add(buf, o.momentum) : buf;
  }
  p.add_(d, -o.lr);
  o.steps[i]++;
}

}  // namespace

extern "C" {

int atc_optim_adam_new(atc_status *st, atc_tensor *const *ps, int n, double lr,
                       double beta1, double beta2, double eps,
                       double weight_decay, atc_optim **out) {
  ATC_TRY
  if (!out) arg_error("NULL output pointer");
  check_hyper(lr, weight_decay);
  if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
    arg_error("betas must lie in [0, 1)");
  if (!(eps >= 0)) arg_error("eps must be >= 0");
  auto o = std::make_unique<atc_optim>();
  o->kind = atc_optim::ADAM;
  o->params = collect(ps, n);
  o->lr = lr;
  o->beta1 = beta1;
  o->beta2 = beta2;
  o->eps = eps;
  o->weight_decay = weight_decay;
  o->exp_avg.resize(o->params.size());
  o->exp_avg_sq.resize(o->params.size());
  o->steps.assign(o->params.size(), 0);
  *out = o.release();
  ATC_END(st)
}

int atc_optim_sgd_new(atc_status *st, atc_tensor *const *ps, int n, double lr,
                      double momentum, double dampening, double weight_decay,
                      int nesterov, atc_optim **out) {
  ATC_TRY
  if (!out) arg_error("NULL output pointer");
  check_hyper(lr, weight_decay);
  if (!(momentum >= 0)) arg_error("momentum must be >= 0");
  if (nesterov && (momentum <= 0 || dampening != 0))
    arg_error("nesterov momentum requires a momentum and zero dampening");
  auto o = std::make_unique<atc_optim>();
  o->kind = atc_optim::SGD;
  o->params = collect(ps, n);
  o->lr = lr;
  o->momentum = momentum;
  o->dampening = dampening;
  o->weight_decay = weight_decay;
  o->nesterov = nesterov != 0;
  o->momentum_buf.resize(o->params.size());
  o->steps.assign(o->params.size(), 0);
  *out = o.release();
  ATC_END(st)
}

int atc_optim_step(atc_status *st, atc_optim *o) {
  ATC_TRY
  if (!o) arg_error("NULL optimizer");
  c10::NoGradGuard no_grad;
  for (size_t i = 0; i < o->params.size(); i++) {
    if (!o->params[i].grad().defined()) continue;  // as torch.optim: skipped
    if (o->kind == atc_optim::ADAM) adam_step(*o, i);
    else sgd_step(*o, i);
  }
  ATC_END(st)
}

int atc_optim_zero_grad(atc_status *st, atc_optim *o, int set_to_none) {
  ATC_TRY
  if (!o) arg_error("NULL optimizer");
  for (auto &p : o->params) {
    if (!p.grad().defined()) continue;
    if (set_to_none) p.mutable_grad() = at::Tensor();
    else p.mutable_grad().detach_().zero_();
  }
  ATC_END(st)
}

void atc_optim_set_lr(atc_optim *o, double lr) {
  if (o) o->lr = lr;
}

double atc_optim_lr(const atc_optim *o) { return o ? o->lr : 0.0; }

int atc_optim_nparams(const atc_optim *o) {
  return o ? static_cast<int>(o->params.size()) : 0;
}

int atc_optim_nslots(const atc_optim *o) {
  if (!o) return 0;
  return o->kind == atc_optim::ADAM ? 2 : 1;
}

namespace {
at::Tensor &slot_ref(atc_optim *o, int i, int k) {
  if (!o) arg_error("NULL optimizer");
  if (i < 0 || i >= static_cast<int>(o->params.size()))
    arg_error("parameter index " + std::to_string(i) + " out of range");
  if (k < 0 || k >= atc_optim_nslots(o)) arg_error("state slot " + std::to_string(k) + " out of range");
  if (o->kind == atc_optim::ADAM) return k == 0 ? o->exp_avg[i] : o->exp_avg_sq[i];
  return o->momentum_buf[i];
}
}  // namespace

int atc_optim_state_get(atc_status *st, atc_optim *o, int i, int k, int64_t *step,
                        atc_tensor **out) {
  ATC_TRY
  if (!out || !step) arg_error("NULL output pointer");
  at::Tensor &t = slot_ref(o, i, k);
  *step = o->steps[i];
  *out = nullptr;
  if (t.defined()) put(out, t.detach().clone());
  ATC_END(st)
}

int atc_optim_load_state(atc_status *st, atc_optim *o, const int64_t *steps,
                         const atc_tensor *const *bufs) {
  ATC_TRY
  if (!o) arg_error("NULL optimizer");
  if (!steps || !bufs) arg_error("NULL state arrays");
  int n = static_cast<int>(o->params.size()), ns = atc_optim_nslots(o);
  std::vector<at::Tensor> vals(static_cast<size_t>(n * ns));
  for (int i = 0; i < n; i++) {  // check everything before changing anything
    if (steps[i] < 0) arg_error("negative step count for parameter " + std::to_string(i + 1));
    const at::Tensor &p = o->params[i];
    for (int k = 0; k < ns; k++) {
      const atc_tensor *h = bufs[i * ns + k];
      if (!h) continue;
      const at::Tensor &v = T(h);
      if (!v.sizes().equals(p.sizes()))
        arg_error("state of parameter " + std::to_string(i + 1) + " has shape " +
                  c10::str(v.sizes()) + ", the parameter " + c10::str(p.sizes()));
      vals[static_cast<size_t>(i * ns + k)] = v.detach().to(p.options()).clone();
    }
  }
  for (int i = 0; i < n; i++) {
    for (int k = 0; k < ns; k++) slot_ref(o, i, k) = vals[static_cast<size_t>(i * ns + k)];
    o->steps[i] = steps[i];
  }
  ATC_END(st)
}

void atc_optim_free(atc_optim *o) { delete o; }

}  // extern "C"
