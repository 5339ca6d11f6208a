// atc_nn.cpp -- the neural-network operators: convolutions, batch norm,
// linear, pooling, upsampling, softmax, embedding, one-hot.
#include "atc_internal.hpp"

#include <atomic>

#include <ATen/ops/adaptive_avg_pool2d.h>
#include <ATen/ops/adaptive_max_pool2d.h>
#include <ATen/ops/avg_pool2d.h>
#include <ATen/ops/batch_norm.h>
#include <ATen/ops/conv2d.h>
#include <ATen/ops/conv_transpose2d.h>
#include <ATen/ops/einsum.h>
#include <ATen/ops/embedding.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/log_softmax.h>
#include <ATen/ops/max_pool2d.h>
#include <ATen/ops/one_hot.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/upsample_bilinear2d.h>
#include <ATen/ops/upsample_nearest2d.h>

using namespace atc;

namespace {
at::IntArrayRef pair(const int64_t *p, const char *what) {
  if (!p) arg_error(std::string("NULL ") + what + " array");
  return at::IntArrayRef(p, 2);
}

std::atomic<bool> channels_last{false};

// The layout a convolution runs in (atc_set_channels_last).
at::Tensor conv_layout(const at::Tensor &t) {
  if (!channels_last.load(std::memory_order_relaxed) || t.dim() != 4 || !t.device().is_cpu() ||
      t.scalar_type() != at::kFloat)
    return t;
  return t.contiguous(at::MemoryFormat::ChannelsLast);
}

void need_4d(const at::Tensor &x, const char *op) {
  if (x.dim() != 4)
    arg_error(std::string(op) + ": expected a 4-d input [N,C,H,W], got " +
              std::to_string(x.dim()) + "-d input of shape " +
              c10::str(x.sizes()));
}
}  // namespace

extern "C" {

int atc_set_channels_last(int on) { return channels_last.exchange(on != 0) ? 1 : 0; }

int atc_conv2d(atc_status *st, const atc_tensor *x, const atc_tensor *w,
               const atc_tensor *b, const int64_t stride[2],
               const int64_t padding[2], const int64_t dilation[2],
               int64_t groups, atc_tensor **out) {
  ATC_TRY
  put(out, at::conv2d(conv_layout(T(x)), conv_layout(T(w)), opt(b), pair(stride, "stride"),
                      pair(padding, "padding"), pair(dilation, "dilation"),
                      groups));
  ATC_END(st)
}

int atc_conv_transpose2d(atc_status *st, const atc_tensor *x,
                         const atc_tensor *w, const atc_tensor *b,
                         const int64_t stride[2], const int64_t padding[2],
                         const int64_t output_padding[2],
                         const int64_t dilation[2], int64_t groups,
                         atc_tensor **out) {
  ATC_TRY
  put(out, at::conv_transpose2d(T(x), T(w), opt(b), pair(stride, "stride"),
                                pair(padding, "padding"),
                                pair(output_padding, "output_padding"), groups,
                                pair(dilation, "dilation")));
  ATC_END(st)
}

int atc_batch_norm(atc_status *st, const atc_tensor *x,
                   const atc_tensor *weight, const atc_tensor *bias,
                   atc_tensor *running_mean, atc_tensor *running_var,
                   int training, double momentum, double eps,
                   atc_tensor **out) {
  ATC_TRY
  const at::Tensor &in = T(x);
  if (in.dim() < 2)
    arg_error("batch_norm: expected an input with a channel dimension, got " +
              std::to_string(in.dim()) + "-d");
  if (!training && (!running_mean || !running_var))
    arg_error("batch_norm: eval mode needs running_mean and running_var");
  if ((running_mean == nullptr) != (running_var == nullptr))
    arg_error("batch_norm: give both running_mean and running_var, or neither");
  put(out, at::batch_norm(in, opt(weight), opt(bias), opt(running_mean),
                          opt(running_var), training != 0, momentum, eps,
                          /*cudnn_enabled=*/true));
  ATC_END(st)
}

int atc_linear(atc_status *st, const atc_tensor *x, const atc_tensor *w,
               const atc_tensor *b, atc_tensor **out) {
  ATC_TRY
  put(out, at::linear(T(x), T(w), opt(b)));
  ATC_END(st)
}

int atc_max_pool2d(atc_status *st, const atc_tensor *x, const int64_t kernel[2],
                   const int64_t stride[2], const int64_t padding[2],
                   const int64_t dilation[2], int ceil_mode, atc_tensor **out) {
  ATC_TRY
  put(out, at::max_pool2d(T(x), pair(kernel, "kernel"), pair(stride, "stride"),
                          pair(padding, "padding"), pair(dilation, "dilation"),
                          ceil_mode != 0));
  ATC_END(st)
}

int atc_avg_pool2d(atc_status *st, const atc_tensor *x, const int64_t kernel[2],
                   const int64_t stride[2], const int64_t padding[2],
                   int ceil_mode, int count_include_pad, atc_tensor **out) {
  ATC_TRY
  put(out, at::avg_pool2d(T(x), pair(kernel, "kernel"), pair(stride, "stride"),
                          pair(padding, "padding"), ceil_mode != 0,
                          count_include_pad != 0));
  ATC_END(st)
}

int atc_adaptive_pool2d(atc_status *st, int is_max, const atc_tensor *x,
                        const int64_t size[2], atc_tensor **out) {
  ATC_TRY
  if (is_max)
    put(out, std::get<0>(at::adaptive_max_pool2d(T(x), pair(size, "size"))));
  else
    put(out, at::adaptive_avg_pool2d(T(x), pair(size, "size")));
  ATC_END(st)
}

int atc_upsample_nearest2d(atc_status *st, const atc_tensor *x,
                           const int64_t size[2], atc_tensor **out) {
  ATC_TRY
  need_4d(T(x), "upsample_nearest2d");
  put(out, at::upsample_nearest2d(T(x), pair(size, "size")));
  ATC_END(st)
}

// conv3x3(upsample_nearest_x2(x)) without the upsampled tensor. Output pixel
// (2i+a, 2j+b) of the composition sees low-resolution rows {i-1, i} (a = 0)
// or {i, i+1} (a = 1), the 3 kernel rows folded onto 2 taps: [k0, k1+k2] or
// [k0+k1, k2]; the same for columns. So the four phases (a, b) are 2x2
// kernels W_ab = R_a W R_b^T on x itself: one 2x2 conv with padding 1 and
// 4*O outputs computes them all at (n+1)x(m+1) positions, phase (a, b) at
// offset (a, b); the phases are then interleaved. 16 (n+1)(m+1) instead of
// 36 n m multiply-adds per (output, input) channel pair, the same value up
// to rounding, and autograd carries the gradients of x, W and the bias.
int atc_upsample2x_conv3x3(atc_status *st, const atc_tensor *xh, const atc_tensor *wh,
                           const atc_tensor *bh, atc_tensor **out) {
  ATC_TRY
  const at::Tensor &x = T(xh), &w = T(wh);
  need_4d(x, "upsample2x_conv3x3");
  if (w.dim() != 4 || w.size(2) != 3 || w.size(3) != 3 || w.size(1) != x.size(1))
    arg_error("upsample2x_conv3x3: weight " + c10::str(w.sizes()) + " is not [O," +
              std::to_string(x.size(1)) + ",3,3]");
  const int64_t O = w.size(0), I = w.size(1), N = x.size(0), n = x.size(2), m = x.size(3);
  // R[a][tap][k]: which kernel rows fold onto each of the 2 taps of phase a
  static const float fold[2][2][3] = {{{1, 0, 0}, {0, 1, 1}}, {{1, 1, 0}, {0, 0, 1}}};
  at::Tensor R = at::tensor(at::ArrayRef<float>(&fold[0][0][0], 12), at::TensorOptions().dtype(at::kFloat))
                     .view({2, 2, 3}).to(w.options().requires_grad(false));
  at::Tensor w4 = at::einsum("atk,bsl,oikl->aboits", {R, R, w}).reshape({4 * O, I, 2, 2});
  at::Tensor b4 = bh ? T(bh).repeat({4}) : at::Tensor();
  at::Tensor y = at::conv2d(conv_layout(x), conv_layout(w4), b4, {1, 1}, {1, 1}).view({N, 2, 2, O, n + 1, m + 1});
  // interleave the phases; keep the layout the conv produced (channels-last
  // stays channels-last for the layers after it)
  const bool cl = y.is_contiguous(at::MemoryFormat::ChannelsLast) && !y.is_contiguous();
  at::Tensor rows[2];
  for (int64_t a = 0; a < 2; a++) {
    at::Tensor cols[2];
    for (int64_t b = 0; b < 2; b++) {
      cols[b] = y.select(1, a).select(1, b).narrow(2, a, n).narrow(3, b, m);  // [N,O,n,m]
      if (cl) cols[b] = cols[b].permute({0, 2, 3, 1});                        // [N,n,m,O]
    }
    rows[a] = at::stack({cols[0], cols[1]}, cl ? 3 : -1);  // [N,n,m,2,O] or [N,O,n,m,2]
  }
  if (cl)  // [N,n,2,m,2,O] -> [N,2n,2m,O] -> [N,O,2n,2m] (channels-last strides)
    put(out, at::stack({rows[0], rows[1]}, 2).view({N, 2 * n, 2 * m, O}).permute({0, 3, 1, 2}));
  else     // [N,O,n,2,m,2] -> [N,O,2n,2m]
    put(out, at::stack({rows[0], rows[1]}, 3).view({N, O, 2 * n, 2 * m}));
  ATC_END(st)
}

int atc_upsample_bilinear2d(atc_status *st, const atc_tensor *x,
                            const int64_t size[2], atc_tensor **out) {
  ATC_TRY
  need_4d(T(x), "upsample_bilinear2d");
  put(out, at::upsample_bilinear2d(T(x), pair(size, "size"), /*align_corners=*/false));
  ATC_END(st)
}

int atc_softmax(atc_status *st, const atc_tensor *x, int64_t dim, int log,
                atc_tensor **out) {
  ATC_TRY
  put(out, log ? at::log_softmax(T(x), dim) : at::softmax(T(x), dim));
  ATC_END(st)
}

int atc_embedding(atc_status *st, const atc_tensor *weight,
                  const atc_tensor *indices, atc_tensor **out) {
  ATC_TRY
  put(out, at::embedding(T(weight), T(indices)));
  ATC_END(st)
}

int atc_one_hot(atc_status *st, const atc_tensor *indices, int64_t num_classes,
                atc_tensor **out) {
  ATC_TRY
  put(out, at::one_hot(T(indices), num_classes));
  ATC_END(st)
}

}  // extern "C"
