// atc_autograd.cpp -- requires_grad, backward, gradients, grad mode.
#include "atc_internal.hpp"

#include <c10/core/GradMode.h>

using namespace atc;

extern "C" {

int atc_requires_grad_(atc_status *st, atc_tensor *h, int on) {
  ATC_TRY
  T(h).requires_grad_(on != 0);
  ATC_END(st)
}

int atc_backward(atc_status *st, const atc_tensor *h, const atc_tensor *grad,
                 int retain_graph) {
  ATC_TRY
  const at::Tensor &t = T(h);
  if (!t.requires_grad())
    arg_error("the tensor does not require grad and has no grad_fn "
              "(was it computed under no_grad, or from detached inputs?)");
  if (!grad && t.numel() != 1)
    arg_error("a gradient can be implied only for a one-element "
              "tensor, this one has " + std::to_string(t.numel()) +
              " elements; pass the gradient");
  c10::optional<bool> retain;
  if (retain_graph) retain = true;
  t.backward(grad ? at::Tensor(T(grad)) : at::Tensor(), retain, /*create_graph=*/false);
  ATC_END(st)
}

int atc_grad(atc_status *st, const atc_tensor *h, atc_tensor **out) {
  ATC_TRY
  if (!out) arg_error("NULL output pointer");
  *out = release(T(h).grad());
  ATC_END(st)
}

int atc_zero_grad(atc_status *st, atc_tensor *h, int set_to_none) {
  ATC_TRY
  const at::Tensor &t = T(h);
  if (t.grad().defined()) {
    if (set_to_none) t.mutable_grad() = at::Tensor();
    else t.mutable_grad().detach_().zero_();
  }
  ATC_END(st)
}

int atc_detach(atc_status *st, const atc_tensor *h, atc_tensor **out) {
  ATC_TRY
  put(out, T(h).detach());
  ATC_END(st)
}

int atc_grad_enabled(void) { return c10::GradMode::is_enabled() ? 1 : 0; }

void atc_set_grad_enabled(int on) { c10::GradMode::set_enabled(on != 0); }

}  // extern "C"
