// atc_quant.cpp -- the fake-quantization arithmetic of eqs. (1)-(2) with a
// straight-through gradient; the observers that choose bounds live in C
// (src/quant/fakequant.c).
#include "atc_internal.hpp"

#include <ATen/Parallel.h>
#include <ATen/ops/amax.h>
#include <ATen/ops/amin.h>
#include <ATen/ops/empty_like.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>

using namespace atc;

namespace {
void check_bits(int bits) {
  if (bits < 2 || bits > 16) arg_error("bit width " + std::to_string(bits) + " out of range [2, 16]");
}

// s and b of eq. (1) from the bounds (detached: the bounds are constants).
void scale_offset(const at::Tensor &lo, const at::Tensor &hi, int bits, at::Tensor &s,
                  at::Tensor &b) {
  double levels = std::ldexp(1.0, bits) - 1.0;  // 2^n - 1
  double half = std::ldexp(1.0, bits - 1);      // 2^(n-1)
  at::Tensor l = lo.detach(), u = hi.detach();
  s = u.sub(l).clamp_min(1e-8).div(levels);
  b = l.div(s).add(half);
}

at::Tensor codes_of(const at::Tensor &x, const at::Tensor &s, const at::Tensor &b, int bits) {
  double half = std::ldexp(1.0, bits - 1);
  return x.detach().div(s).sub(b).round().clamp(-half, half - 1.0);  // eq. (1)
}

// eqs. (1)-(2) in one pass over a contiguous f32 tensor, with one scale and
// offset (an activation quantizer). The same float operations in the same
// order as codes_of(...).add_(b).mul_(s), so the same values, bit for bit.
at::Tensor fake_quantize_f32(const at::Tensor &x, float s, float b, int bits) {
  const float half = std::ldexp(1.0f, bits - 1);
  at::Tensor xc = x.detach().contiguous();
  at::Tensor y = at::empty_like(xc);
  const float *px = xc.data_ptr<float>();
  float *py = y.data_ptr<float>();
  at::parallel_for(0, xc.numel(), 32768, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
      float q = std::nearbyint(px[i] / s - b);  // round half to even, as torch.round
      q = std::min(std::max(q, -half), half - 1.0f);
      py[i] = (q + b) * s;
    }
  });
  return y;
}

// The straight-through estimator as one autograd node: the gradient passes
// unchanged (instead of y + (x - x.detach()), two more passes forward).
struct StraightThrough : public torch::autograd::Function<StraightThrough> {
  static at::Tensor forward(torch::autograd::AutogradContext *, const at::Tensor &x, double s,
                            double b, int64_t bits) {
    return fake_quantize_f32(x, static_cast<float>(s), static_cast<float>(b), static_cast<int>(bits));
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext *,
                                                 torch::autograd::variable_list g) {
    return {g[0], at::Tensor(), at::Tensor(), at::Tensor()};
  }
};
}  // namespace

extern "C" {

int atc_minmax_bounds(atc_status *st, const atc_tensor *xh, int per_channel,
                      atc_tensor **lo, atc_tensor **hi) {
  ATC_TRY
  const at::Tensor &x = T(xh);
  if (!lo || !hi) arg_error("NULL output pointer");
  if (x.numel() == 0) arg_error("cannot take bounds of an empty tensor");
  at::Tensor xd = x.detach(), l, u;
  if (per_channel) {
    if (x.dim() < 1) arg_error("per-channel bounds need at least 1 dimension");
    std::vector<int64_t> red;
    for (int64_t d = 1; d < x.dim(); d++) red.push_back(d);
    if (red.empty()) {
      l = xd.clone();
      u = xd.clone();
    } else {
      l = at::amin(xd, red, /*keepdim=*/true);
      u = at::amax(xd, red, /*keepdim=*/true);
    }
  } else {
    l = at::amin(xd, at::IntArrayRef{}, false);
    u = at::amax(xd, at::IntArrayRef{}, false);
  }
  *lo = release(std::move(l));
  *hi = release(std::move(u));
  ATC_END(st)
}

int atc_fake_quantize(atc_status *st, const atc_tensor *xh, const atc_tensor *loh,
                      const atc_tensor *hih, int bits, atc_tensor **out) {
  ATC_TRY
  check_bits(bits);
  const at::Tensor &x = T(xh);
  at::Tensor s, b;
  scale_offset(T(loh), T(hih), bits, s, b);
  if (s.numel() == 1 && x.scalar_type() == at::kFloat && s.scalar_type() == at::kFloat &&
      x.device().is_cpu() && s.device().is_cpu()) {
    float sf = s.item<float>(), bf = b.item<float>();
    put(out, x.requires_grad() ? StraightThrough::apply(x, sf, bf, static_cast<int64_t>(bits))
                               : fake_quantize_f32(x, sf, bf, bits));
  } else {
    at::Tensor y = codes_of(x, s, b, bits).add_(b).mul_(s);  // eq. (2)
    if (x.requires_grad()) {
      // straight-through: value y exactly (x - x is exactly 0), gradient 1
      y = y.add(x.sub(x.detach()));
    }
    put(out, std::move(y));
  }
  ATC_END(st)
}

int atc_quantize_codes(atc_status *st, const atc_tensor *xh, const atc_tensor *loh,
                       const atc_tensor *hih, int bits, atc_tensor **codes,
                       atc_tensor **scale, atc_tensor **offset) {
  ATC_TRY
  check_bits(bits);
  if (!codes || !scale || !offset) arg_error("NULL output pointer");
  at::Tensor s, b;
  scale_offset(T(loh), T(hih), bits, s, b);
  at::Tensor q = codes_of(T(xh), s, b, bits).to(at::kLong);
  *codes = release(std::move(q));
  *scale = release(std::move(s));
  *offset = release(std::move(b));
  ATC_END(st)
}

}  // extern "C"
