// atc_math.cpp -- elementwise math and comparisons, reductions, matmul.
#include "atc_internal.hpp"

#include <ATen/ScalarOps.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/add.h>
#include <ATen/ops/all.h>
#include <ATen/ops/amax.h>
#include <ATen/ops/amin.h>
#include <ATen/ops/any.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/argmin.h>
#include <ATen/ops/atan2.h>
#include <ATen/ops/ceil.h>
#include <ATen/ops/clamp.h>
#include <ATen/ops/cos.h>
#include <ATen/ops/erf.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/expm1.h>
#include <ATen/ops/div.h>
#include <ATen/ops/eq.h>
#include <ATen/ops/floor.h>
#include <ATen/ops/ge.h>
#include <ATen/ops/gt.h>
#include <ATen/ops/le.h>
#include <ATen/ops/lt.h>
#include <ATen/ops/floor_divide.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/isinf.h>
#include <ATen/ops/isnan.h>
#include <ATen/ops/leaky_relu.h>
#include <ATen/ops/log.h>
#include <ATen/ops/log1p.h>
#include <ATen/ops/log2.h>
#include <ATen/ops/logical_and.h>
#include <ATen/ops/logical_not.h>
#include <ATen/ops/logical_or.h>
#include <ATen/ops/logsumexp.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/max.h>
#include <ATen/ops/maximum.h>
#include <ATen/ops/mean.h>
#include <ATen/ops/min.h>
#include <ATen/ops/minimum.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/ne.h>
#include <ATen/ops/neg.h>
#include <ATen/ops/pow.h>
#include <ATen/ops/reciprocal.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/remainder.h>
#include <ATen/ops/round.h>
#include <ATen/ops/rsqrt.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/sign.h>
#include <ATen/ops/sin.h>
#include <ATen/ops/sqrt.h>
#include <ATen/ops/square.h>
#include <ATen/ops/std.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/sub.h>
#include <ATen/ops/tanh.h>
#include <ATen/ops/trunc.h>
#include <ATen/ops/var.h>

namespace {

using atc::arg_error;

at::Tensor unary(int op, const at::Tensor &a) {
  switch (op) {
    case ATC_NEG: return at::neg(a);
    case ATC_ABS: return at::abs(a);
    case ATC_EXP: return at::exp(a);
    case ATC_LOG: return at::log(a);
    case ATC_SQRT: return at::sqrt(a);
    case ATC_RSQRT: return at::rsqrt(a);
    case ATC_SIN: return at::sin(a);
    case ATC_COS: return at::cos(a);
    case ATC_TANH: return at::tanh(a);
    case ATC_SIGMOID: return at::sigmoid(a);
    case ATC_RELU: return at::relu(a);
    case ATC_SIGN: return at::sign(a);
    case ATC_FLOOR: return at::floor(a);
    case ATC_CEIL: return at::ceil(a);
    case ATC_ROUND: return at::round(a);  // half to even, as torch.round
    case ATC_TRUNC: return at::trunc(a);
    case ATC_SQUARE: return at::square(a);
    case ATC_RECIPROCAL: return at::reciprocal(a);
    case ATC_LOG1P: return at::log1p(a);
    case ATC_EXPM1: return at::expm1(a);
    case ATC_ERF: return at::erf(a);
    case ATC_LOG2: return at::log2(a);
    case ATC_LOGICAL_NOT: return at::logical_not(a);
    case ATC_ISNAN: return at::isnan(a);
    case ATC_ISINF: return at::isinf(a);
    case ATC_ISFINITE: return at::isfinite(a);
    default: arg_error("unknown unary op " + std::to_string(op));
  }
}

void unary_(int op, const at::Tensor &a) {
  switch (op) {
    case ATC_NEG: a.neg_(); return;
    case ATC_ABS: a.abs_(); return;
    case ATC_EXP: a.exp_(); return;
    case ATC_LOG: a.log_(); return;
    case ATC_SQRT: a.sqrt_(); return;
    case ATC_RSQRT: a.rsqrt_(); return;
    case ATC_SIN: a.sin_(); return;
    case ATC_COS: a.cos_(); return;
    case ATC_TANH: a.tanh_(); return;
    case ATC_SIGMOID: a.sigmoid_(); return;
    case ATC_RELU: a.relu_(); return;
    case ATC_SIGN: a.sign_(); return;
    case ATC_FLOOR: a.floor_(); return;
    case ATC_CEIL: a.ceil_(); return;
    case ATC_ROUND: a.round_(); return;
    case ATC_TRUNC: a.trunc_(); return;
    case ATC_SQUARE: a.square_(); return;
    case ATC_RECIPROCAL: a.reciprocal_(); return;
    case ATC_LOG1P: a.log1p_(); return;
    case ATC_EXPM1: a.expm1_(); return;
    case ATC_ERF: a.erf_(); return;
    case ATC_LOG2: a.log2_(); return;
    default: arg_error("unary op " + std::to_string(op) + " has no in-place form");
  }
}

// A number operand becomes a CPU "wrapped number" tensor, which is what
// PyTorch does with Python scalars: 2.5 * int_tensor is float, 2 * f32 is f32.
at::Tensor wrap(atc_scalar s) {
  return at::native::wrapped_scalar_tensor(atc::scalar(s));
}

at::Tensor binary(int op, const at::Tensor &a, const at::Tensor &b) {
  switch (op) {
    case ATC_ADD: return at::add(a, b);
    case ATC_SUB: return at::sub(a, b);
    case ATC_MUL: return at::mul(a, b);
    case ATC_DIV: return at::div(a, b);
    case ATC_POW: return at::pow(a, b);
    case ATC_REMAINDER: return at::remainder(a, b);
    case ATC_FLOOR_DIVIDE: return at::floor_divide(a, b);
    case ATC_MAXIMUM: return at::maximum(a, b);
    case ATC_MINIMUM: return at::minimum(a, b);
    case ATC_ATAN2: return at::atan2(a, b);
    case ATC_EQ: return at::eq(a, b);
    case ATC_NE: return at::ne(a, b);
    case ATC_LT: return at::lt(a, b);
    case ATC_LE: return at::le(a, b);
    case ATC_GT: return at::gt(a, b);
    case ATC_GE: return at::ge(a, b);
    case ATC_LOGICAL_AND: return at::logical_and(a, b);
    case ATC_LOGICAL_OR: return at::logical_or(a, b);
    default: arg_error("unknown binary op " + std::to_string(op));
  }
}

void binary_(int op, const at::Tensor &a, const at::Tensor &b) {
  switch (op) {
    case ATC_ADD: a.add_(b); return;
    case ATC_SUB: a.sub_(b); return;
    case ATC_MUL: a.mul_(b); return;
    case ATC_DIV: a.div_(b); return;
    case ATC_POW: a.pow_(b); return;
    case ATC_REMAINDER: a.remainder_(b); return;
    case ATC_MAXIMUM: a.copy_(at::maximum(a, b)); return;
    case ATC_MINIMUM: a.copy_(at::minimum(a, b)); return;
    default: arg_error("binary op " + std::to_string(op) + " has no in-place form");
  }
}

}  // namespace

using namespace atc;

extern "C" {

int atc_unary(atc_status *st, atc_unary_op op, const atc_tensor *a,
              atc_tensor **out) {
  ATC_TRY
  put(out, unary(op, T(a)));
  ATC_END(st)
}

int atc_unary_(atc_status *st, atc_unary_op op, atc_tensor *a) {
  ATC_TRY
  unary_(op, T(a));
  ATC_END(st)
}

int atc_binary(atc_status *st, atc_binary_op op, const atc_tensor *a,
               const atc_tensor *b, atc_tensor **out) {
  ATC_TRY
  put(out, binary(op, T(a), T(b)));
  ATC_END(st)
}

int atc_binary_(atc_status *st, atc_binary_op op, atc_tensor *a,
                const atc_tensor *b) {
  ATC_TRY
  binary_(op, T(a), T(b));
  ATC_END(st)
}

int atc_binary_scalar(atc_status *st, atc_binary_op op, const atc_tensor *a,
                      atc_scalar s, int reverse, atc_tensor **out) {
  ATC_TRY
  put(out, reverse ? binary(op, wrap(s), T(a)) : binary(op, T(a), wrap(s)));
  ATC_END(st)
}

int atc_binary_scalar_(atc_status *st, atc_binary_op op, atc_tensor *a,
                       atc_scalar s) {
  ATC_TRY
  binary_(op, T(a), wrap(s));
  ATC_END(st)
}

int atc_add_scaled_(atc_status *st, atc_tensor *a, const atc_tensor *b,
                    atc_scalar alpha) {
  ATC_TRY
  T(a).add_(T(b), scalar(alpha));
  ATC_END(st)
}

int atc_clamp(atc_status *st, const atc_tensor *a, int has_min, atc_scalar mn,
              int has_max, atc_scalar mx, atc_tensor **out) {
  ATC_TRY
  if (!has_min && !has_max) arg_error("clamp: give a minimum, a maximum or both");
  c10::optional<c10::Scalar> lo, hi;
  if (has_min) lo = scalar(mn);
  if (has_max) hi = scalar(mx);
  put(out, at::clamp(T(a), lo, hi));
  ATC_END(st)
}

int atc_leaky_relu(atc_status *st, const atc_tensor *a, double slope,
                   atc_tensor **out) {
  ATC_TRY
  put(out, at::leaky_relu(T(a), slope));
  ATC_END(st)
}

/* ---- reductions -------------------------------------------------------- */

int atc_reduce(atc_status *st, atc_reduce_op op, const atc_tensor *a,
               const int64_t *d, int nd, int keepdim, atc_tensor **out) {
  ATC_TRY
  const at::Tensor &t = T(a);
  at::IntArrayRef ds = dims(d, nd);
  bool all = nd == 0;
  switch (op) {
    case ATC_SUM: put(out, all ? at::sum(t) : at::sum(t, ds, keepdim)); break;
    case ATC_MEAN: put(out, all ? at::mean(t) : at::mean(t, ds, keepdim)); break;
    case ATC_AMIN: put(out, at::amin(t, ds, keepdim)); break;
    case ATC_AMAX: put(out, at::amax(t, ds, keepdim)); break;
    case ATC_LOGSUMEXP: {
      std::vector<int64_t> every;
      if (all)
        for (int64_t i = 0; i < t.dim(); i++) every.push_back(i);
      put(out, at::logsumexp(t, all ? at::IntArrayRef(every) : ds, keepdim));
      break;
    }
    case ATC_ANY:
    case ATC_ALL: {
      if (nd > 1) arg_error("any/all reduce over one dimension or all of them");
      bool any = op == ATC_ANY;
      if (all) put(out, any ? at::any(t) : at::all(t));
      else put(out, any ? at::any(t, ds[0], keepdim) : at::all(t, ds[0], keepdim));
      break;
    }
    default: arg_error("unknown reduction " + std::to_string(op));
  }
  ATC_END(st)
}

int atc_var(atc_status *st, const atc_tensor *a, const int64_t *d, int nd,
            int unbiased, int keepdim, int sd, atc_tensor **out) {
  ATC_TRY
  const at::Tensor &t = T(a);
  at::OptionalIntArrayRef ds;  // none: every dimension
  if (nd > 0) ds = dims(d, nd);
  // the (dim, bool unbiased, keepdim) overload exists in libtorch 1.13 and 2.x
  put(out, sd ? at::std(t, ds, unbiased != 0, keepdim != 0)
              : at::var(t, ds, unbiased != 0, keepdim != 0));
  ATC_END(st)
}

int atc_channel_stats(atc_status *st, const atc_tensor *xh, atc_tensor **mean,
                      atc_tensor **var) {
  ATC_TRY
  if (!mean || !var) arg_error("NULL output pointer");
  const at::Tensor &x = T(xh);
  if (x.dim() != 2 && x.dim() != 4)
    arg_error("channel_stats: expected [N,C] or [N,C,H,W], got shape " + c10::str(x.sizes()));
  std::vector<int64_t> red = x.dim() == 4 ? std::vector<int64_t>{0, 2, 3} : std::vector<int64_t>{0};
  at::Tensor m = x.mean(red);
  // (x - m) with m detached: the gradient through m is sum(x - m) = 0 times
  // something, so leaving it out is exact and saves a reduction in backward
  at::Tensor md = x.dim() == 4 ? m.detach().view({1, -1, 1, 1}) : m.detach();
  at::Tensor c = x.sub(md);
  at::Tensor v = c.mul(c).mean(red);
  *mean = release(std::move(m));
  *var = release(std::move(v));
  ATC_END(st)
}

int atc_sample_stats(atc_status *st, const atc_tensor *xh, atc_tensor **mean,
                     atc_tensor **var) {
  ATC_TRY
  if (!mean || !var) arg_error("NULL output pointer");
  const at::Tensor &x = T(xh);
  if (x.dim() != 2 && x.dim() != 4)
    arg_error("sample_stats: expected [N,C] or [N,C,H,W], got shape " + c10::str(x.sizes()));
  if (x.dim() == 2) {  // one value per sample and channel: its own mean, variance 0
    *mean = release(x.clone());
    *var = release(at::zeros_like(x));
  } else {
    at::Tensor m = x.mean({2, 3});
    at::Tensor c = x.sub(m.detach().unsqueeze(2).unsqueeze(3));  // as atc_channel_stats
    *mean = release(std::move(m));
    *var = release(c.mul(c).mean({2, 3}));
  }
  ATC_END(st)
}

int atc_minmax_dim(atc_status *st, int is_max, const atc_tensor *a,
                   int64_t dim, int keepdim, atc_tensor **values,
                   atc_tensor **indices) {
  ATC_TRY
  if (!values || !indices) arg_error("NULL output pointer");
  auto r = is_max ? at::max(T(a), dim, keepdim) : at::min(T(a), dim, keepdim);
  if (!std::get<0>(r).defined() || !std::get<1>(r).defined())
    arg_error("libtorch returned an undefined tensor");
  *values = release(std::move(std::get<0>(r)));
  *indices = release(std::move(std::get<1>(r)));
  ATC_END(st)
}

int atc_argminmax(atc_status *st, int is_max, const atc_tensor *a, int has_dim,
                  int64_t dim, int keepdim, atc_tensor **out) {
  ATC_TRY
  c10::optional<int64_t> d;
  if (has_dim) d = dim;
  put(out, is_max ? at::argmax(T(a), d, keepdim) : at::argmin(T(a), d, keepdim));
  ATC_END(st)
}

int atc_matmul(atc_status *st, const atc_tensor *a, const atc_tensor *b,
               atc_tensor **out) {
  ATC_TRY
  put(out, at::matmul(T(a), T(b)));
  ATC_END(st)
}

}  // extern "C"
