// atc_tensor.cpp -- tensor handles: lifecycle, metadata, creation, reading
// values back, dtype/device conversion, views and shape operations.
#include "atc_internal.hpp"

#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/full.h>
#include <ATen/ops/gather.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/masked_fill.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randperm.h>
#include <ATen/ops/flip.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/scatter.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/where.h>

#include "atc_generator.hpp"

namespace atc {

static const at::ScalarType kTypes[ATC_DTYPE_COUNT] = {
    at::kFloat, at::kDouble, at::kLong,     at::kInt,
    at::kByte,  at::kBool,   at::kHalf,     at::kBFloat16};
static const char *const kNames[ATC_DTYPE_COUNT] = {
    "f32", "f64", "i64", "i32", "u8", "bool", "f16", "bf16"};

at::ScalarType scalar_type(int dt) {
  if (dt < 0 || dt >= ATC_DTYPE_COUNT)
    arg_error("unknown dtype code " + std::to_string(dt));
  return kTypes[dt];
}

int dtype_of(at::ScalarType s) {
  for (int i = 0; i < ATC_DTYPE_COUNT; i++)
    if (kTypes[i] == s) return i;
  return -1;
}

c10::Device device(atc_device d) {
  switch (d.type) {
    case ATC_CPU: return c10::Device(c10::kCPU);
    case ATC_CUDA:
      return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(d.index));
    default: arg_error("unknown device type " + std::to_string(d.type));
  }
}

atc_device device_of(const c10::Device &d) {
  atc_device r;
  r.type = d.is_cuda() ? ATC_CUDA : ATC_CPU;
  r.index = d.has_index() ? d.index() : -1;
  if (!d.is_cpu() && !d.is_cuda())
    arg_error("tensor on unsupported device " + d.str());
  return r;
}

}  // namespace atc

using namespace atc;

extern "C" {

void atc_tensor_free(atc_tensor *t) {
  if (t) ImplPtr::reclaim(impl(t));  // drops the handle's reference
}

int64_t atc_tensor_nbytes(const atc_tensor *h) {
  try {
    if (!h) return 0;
    const c10::TensorImpl *t = impl(h);
    return static_cast<int64_t>(t->numel()) * static_cast<int64_t>(t->itemsize());
  } catch (...) {
    return 0;
  }
}

int atc_tensor_meta(atc_status *st, const atc_tensor *h, atc_meta *m) {
  ATC_TRY
  const at::Tensor &t = T(h);
  if (!m) arg_error("NULL meta pointer");
  if (!t.defined()) arg_error("undefined tensor");
  int64_t nd = t.dim();
  if (nd > ATC_MAX_DIMS)
    arg_error("tensor has " + std::to_string(nd) + " dimensions, the ABI allows " +
              std::to_string(ATC_MAX_DIMS));
  m->dtype = dtype_of(t.scalar_type());
  m->device = device_of(t.device());
  m->ndim = static_cast<int32_t>(nd);
  m->requires_grad = t.requires_grad();
  m->is_leaf = t.is_leaf();
  m->numel = t.numel();
  auto sz = t.sizes();
  for (int64_t i = 0; i < nd; i++) m->sizes[i] = sz[i];
  ATC_END(st)
}

int atc_tensor_alias(atc_status *st, const atc_tensor *h, atc_tensor **out) {
  ATC_TRY
  put(out, T(h));
  ATC_END(st)
}

size_t atc_dtype_size(atc_dtype d) {
  if (d < 0 || d >= ATC_DTYPE_COUNT) return 0;
  return c10::elementSize(kTypes[d]);
}

const char *atc_dtype_name(atc_dtype d) {
  if (d < 0 || d >= ATC_DTYPE_COUNT) return "unknown";
  return kNames[d];
}

int atc_device_parse(atc_status *st, const char *s, atc_device *out) {
  ATC_TRY
  if (!s || !out) arg_error("NULL device string");
  c10::Device d{std::string(s)};
  *out = device_of(d);
  ATC_END(st)
}

int atc_device_name(const atc_device *d, char *buf, size_t n) {
  if (!d || !buf || n == 0) return -1;
  const char *ty = d->type == ATC_CUDA ? "cuda" : "cpu";
  if (d->index >= 0) return std::snprintf(buf, n, "%s:%d", ty, d->index);
  return std::snprintf(buf, n, "%s", ty);
}

/* ---- creation ---------------------------------------------------------- */

int atc_empty(atc_status *st, const int64_t *sizes, int ndim, atc_dtype dt,
              atc_device dev, atc_tensor **out) {
  ATC_TRY
  put(out, at::empty(dims(sizes, ndim), options(dt, dev)));
  ATC_END(st)
}

int atc_full(atc_status *st, const int64_t *sizes, int ndim, atc_scalar v,
             atc_dtype dt, atc_device dev, atc_tensor **out) {
  ATC_TRY
  put(out, at::full(dims(sizes, ndim), scalar(v), options(dt, dev)));
  ATC_END(st)
}

int atc_arange(atc_status *st, atc_scalar start, atc_scalar end,
               atc_scalar step, atc_dtype dt, atc_device dev,
               atc_tensor **out) {
  ATC_TRY
  put(out, at::arange(scalar(start), scalar(end), scalar(step),
                      options(dt, dev)));
  ATC_END(st)
}

int atc_randn(atc_status *st, const int64_t *sizes, int ndim, atc_dtype dt,
              atc_device dev, atc_generator *g, atc_tensor **out) {
  ATC_TRY
  put(out, at::randn(dims(sizes, ndim), gen(g), options(dt, dev)));
  ATC_END(st)
}

int atc_rand(atc_status *st, const int64_t *sizes, int ndim, atc_dtype dt,
             atc_device dev, atc_generator *g, atc_tensor **out) {
  ATC_TRY
  put(out, at::rand(dims(sizes, ndim), gen(g), options(dt, dev)));
  ATC_END(st)
}

int atc_randint(atc_status *st, int64_t low, int64_t high,
                const int64_t *sizes, int ndim, atc_dtype dt, atc_device dev,
                atc_generator *g, atc_tensor **out) {
  ATC_TRY
  if (high <= low)
    arg_error("randint: empty range [" + std::to_string(low) + ", " +
              std::to_string(high) + ")");
  put(out, at::randint(low, high, dims(sizes, ndim), gen(g), options(dt, dev)));
  ATC_END(st)
}

int atc_randperm(atc_status *st, int64_t n, atc_device dev, atc_generator *g,
                 atc_tensor **out) {
  ATC_TRY
  if (n < 0) arg_error("randperm: n must be >= 0, got " + std::to_string(n));
  put(out, at::randperm(n, gen(g), options(ATC_I64, dev)));
  ATC_END(st)
}

int atc_from_buffer(atc_status *st, const void *data, const int64_t *sizes,
                    int ndim, atc_dtype dt, atc_tensor **out) {
  ATC_TRY
  auto sz = dims(sizes, ndim);
  auto opts = at::TensorOptions().dtype(scalar_type(dt));
  at::Tensor t = at::empty(sz, opts);
  size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
  if (nbytes > 0) {
    if (!data) arg_error("NULL data buffer");
    std::memcpy(t.data_ptr(), data, nbytes);
  }
  put(out, std::move(t));
  ATC_END(st)
}

int atc_tensor_read(atc_status *st, const atc_tensor *h, atc_dtype as,
                    void *buf, int64_t n) {
  ATC_TRY
  const at::Tensor &t = T(h);
  if (t.numel() > n)
    arg_error("read buffer holds " + std::to_string(n) + " elements, tensor has " +
              std::to_string(t.numel()));
  if (t.numel() == 0) return (st ? st->code = ATC_OK : ATC_OK);
  if (!buf) arg_error("NULL read buffer");
  at::Tensor c = t.detach()
                     .to(at::TensorOptions().dtype(scalar_type(as)).device(c10::kCPU))
                     .contiguous();
  std::memcpy(buf, c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size());
  ATC_END(st)
}

int atc_item(atc_status *st, const atc_tensor *h, atc_scalar *out) {
  ATC_TRY
  const at::Tensor &t = T(h);
  if (!out) arg_error("NULL output pointer");
  c10::Scalar s = t.item();
  if (s.isIntegral(/*includeBool=*/true)) {
    out->is_int = 1;
    out->i = s.toLong();
    out->d = static_cast<double>(out->i);
  } else {
    out->is_int = 0;
    out->d = s.toDouble();
    out->i = 0;
  }
  ATC_END(st)
}

/* ---- dtype and device -------------------------------------------------- */

int atc_to(atc_status *st, const atc_tensor *h, atc_dtype dt, atc_device dev,
           atc_tensor **out) {
  ATC_TRY
  put(out, T(h).to(device(dev), scalar_type(dt)));
  ATC_END(st)
}

int atc_to_dtype(atc_status *st, const atc_tensor *h, atc_dtype dt,
                 atc_tensor **out) {
  ATC_TRY
  put(out, T(h).to(scalar_type(dt)));
  ATC_END(st)
}

int atc_to_device(atc_status *st, const atc_tensor *h, atc_device dev,
                  atc_tensor **out) {
  ATC_TRY
  put(out, T(h).to(device(dev)));
  ATC_END(st)
}

/* ---- views and shape --------------------------------------------------- */

int atc_view(atc_status *st, const atc_tensor *h, const int64_t *sizes,
             int ndim, atc_tensor **out) {
  ATC_TRY
  put(out, T(h).view(dims(sizes, ndim)));
  ATC_END(st)
}

int atc_reshape(atc_status *st, const atc_tensor *h, const int64_t *sizes,
                int ndim, atc_tensor **out) {
  ATC_TRY
  put(out, T(h).reshape(dims(sizes, ndim)));
  ATC_END(st)
}

int atc_permute(atc_status *st, const atc_tensor *h, const int64_t *d,
                int ndim, atc_tensor **out) {
  ATC_TRY
  put(out, T(h).permute(dims(d, ndim)));
  ATC_END(st)
}

int atc_flip(atc_status *st, const atc_tensor *h, const int64_t *d, int ndim,
             atc_tensor **out) {
  ATC_TRY
  put(out, T(h).flip(dims(d, ndim)));
  ATC_END(st)
}

int atc_transpose(atc_status *st, const atc_tensor *h, int64_t d0, int64_t d1,
                  atc_tensor **out) {
  ATC_TRY
  put(out, T(h).transpose(d0, d1));
  ATC_END(st)
}

int atc_expand(atc_status *st, const atc_tensor *h, const int64_t *sizes,
               int ndim, atc_tensor **out) {
  ATC_TRY
  put(out, T(h).expand(dims(sizes, ndim)));
  ATC_END(st)
}

int atc_repeat(atc_status *st, const atc_tensor *h, const int64_t *reps,
               int ndim, atc_tensor **out) {
  ATC_TRY
  put(out, T(h).repeat(dims(reps, ndim)));
  ATC_END(st)
}

int atc_squeeze(atc_status *st, const atc_tensor *h, int all, int64_t dim,
                atc_tensor **out) {
  ATC_TRY
  put(out, all ? T(h).squeeze() : T(h).squeeze(dim));
  ATC_END(st)
}

int atc_unsqueeze(atc_status *st, const atc_tensor *h, int64_t dim,
                  atc_tensor **out) {
  ATC_TRY
  put(out, T(h).unsqueeze(dim));
  ATC_END(st)
}

int atc_flatten(atc_status *st, const atc_tensor *h, int64_t start,
                int64_t end, atc_tensor **out) {
  ATC_TRY
  put(out, T(h).flatten(start, end));
  ATC_END(st)
}

int atc_contiguous(atc_status *st, const atc_tensor *h, atc_tensor **out) {
  ATC_TRY
  put(out, T(h).contiguous());
  ATC_END(st)
}

int atc_clone(atc_status *st, const atc_tensor *h, atc_tensor **out) {
  ATC_TRY
  put(out, T(h).clone());
  ATC_END(st)
}

static std::vector<at::Tensor> list(const atc_tensor *const *ts, int n) {
  if (n <= 0) arg_error("empty tensor list");
  if (!ts) arg_error("NULL tensor list");
  std::vector<at::Tensor> v;
  v.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) v.push_back(T(ts[i]));
  return v;
}

int atc_cat(atc_status *st, const atc_tensor *const *ts, int n, int64_t dim,
            atc_tensor **out) {
  ATC_TRY
  put(out, at::cat(list(ts, n), dim));
  ATC_END(st)
}

int atc_stack(atc_status *st, const atc_tensor *const *ts, int n, int64_t dim,
              atc_tensor **out) {
  ATC_TRY
  put(out, at::stack(list(ts, n), dim));
  ATC_END(st)
}

int atc_narrow(atc_status *st, const atc_tensor *h, int64_t dim, int64_t start,
               int64_t len, atc_tensor **out) {
  ATC_TRY
  put(out, T(h).narrow(dim, start, len));
  ATC_END(st)
}

int atc_slice(atc_status *st, const atc_tensor *h, int64_t dim, int64_t start,
              int64_t end, int64_t step, atc_tensor **out) {
  ATC_TRY
  put(out, T(h).slice(dim, start, end, step));
  ATC_END(st)
}

int atc_select(atc_status *st, const atc_tensor *h, int64_t dim, int64_t index,
               atc_tensor **out) {
  ATC_TRY
  put(out, T(h).select(dim, index));
  ATC_END(st)
}

int atc_index_select(atc_status *st, const atc_tensor *h, int64_t dim,
                     const atc_tensor *index, atc_tensor **out) {
  ATC_TRY
  put(out, at::index_select(T(h), dim, T(index)));
  ATC_END(st)
}

int atc_gather(atc_status *st, const atc_tensor *h, int64_t dim,
               const atc_tensor *index, atc_tensor **out) {
  ATC_TRY
  put(out, at::gather(T(h), dim, T(index)));
  ATC_END(st)
}

int atc_scatter(atc_status *st, const atc_tensor *h, int64_t dim,
                const atc_tensor *index, const atc_tensor *src,
                atc_tensor **out) {
  ATC_TRY
  put(out, at::scatter(T(h), dim, T(index), T(src)));
  ATC_END(st)
}

int atc_scatter_value(atc_status *st, const atc_tensor *h, int64_t dim,
                      const atc_tensor *index, atc_scalar value,
                      atc_tensor **out) {
  ATC_TRY
  put(out, at::scatter(T(h), dim, T(index), scalar(value)));
  ATC_END(st)
}

int atc_where(atc_status *st, const atc_tensor *cond, const atc_tensor *a,
              const atc_tensor *b, atc_tensor **out) {
  ATC_TRY
  put(out, at::where(T(cond), T(a), T(b)));
  ATC_END(st)
}

int atc_masked_fill(atc_status *st, const atc_tensor *h,
                    const atc_tensor *mask, atc_scalar value,
                    atc_tensor **out) {
  ATC_TRY
  put(out, at::masked_fill(T(h), T(mask), scalar(value)));
  ATC_END(st)
}

int atc_copy_(atc_status *st, atc_tensor *dst, const atc_tensor *src) {
  ATC_TRY
  T(dst).copy_(T(src));
  ATC_END(st)
}

int atc_fill_(atc_status *st, atc_tensor *h, atc_scalar value) {
  ATC_TRY
  T(h).fill_(scalar(value));
  ATC_END(st)
}

}  // extern "C"
