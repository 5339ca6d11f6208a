// atc_internal.hpp -- what the shim's C++ files share: the handle structs, the
// exception barrier every ABI function runs inside, and conversions between
// the ABI's plain types and ATen's.
#pragma once

#include "atc.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/Scalar.h>
#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>

#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>

// A handle is a c10::TensorImpl* carrying one owned reference: no allocation
// beyond libtorch's own per tensor. (atc_tensor is never defined.)
namespace atc {

using ImplPtr = c10::intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>;

inline c10::TensorImpl *impl(const atc_tensor *h) {
  return reinterpret_cast<c10::TensorImpl *>(const_cast<atc_tensor *>(h));
}

// Gives up the tensor's reference to a new handle.
inline atc_tensor *release(at::Tensor t) {
  if (!t.defined()) return nullptr;
  return reinterpret_cast<atc_tensor *>(t.unsafeReleaseTensorImpl());
}

// A tensor that borrows a handle's reference for the length of a call and
// gives it back untouched (no refcount traffic), also during unwinding.
class Borrowed : public at::Tensor {
 public:
  explicit Borrowed(const atc_tensor *h) : at::Tensor(ImplPtr::reclaim(impl(h))) {}
  Borrowed(const Borrowed &) = delete;
  Borrowed &operator=(const Borrowed &) = delete;
  ~Borrowed() { unsafeReleaseTensorImpl(); }
};

// Writes a message into the caller's status, truncated to fit.
inline int fail(atc_status *st, int code, const char *msg) {
  if (st) {
    st->code = code;
    std::snprintf(st->msg, ATC_MSG_SIZE, "%s", msg);
  }
  return code;
}

// c10 messages end in a newline or carry an "Exception raised from" trailer
// when built with full backtraces; keep the first meaningful part only.
inline int fail_c10(atc_status *st, int code, const char *what) {
  std::string m(what ? what : "unknown libtorch error");
  auto cut = m.find("\nException raised from");
  if (cut != std::string::npos) m.resize(cut);
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return fail(st, code, m.c_str());
}

struct ArgError {
  std::string msg;
};

// The exception barrier: every ABI function body runs inside ATC_TRY/ATC_END.
#define ATC_TRY                                                           \
  try {
#define ATC_END(st)                                                       \
  }                                                                       \
  catch (const ::atc::ArgError &e) {                                      \
    return ::atc::fail(st, ATC_ERR_ARG, e.msg.c_str());                   \
  }                                                                       \
  catch (const c10::OutOfMemoryError &e) {                                \
    return ::atc::fail_c10(st, ATC_ERR_OOM, e.what_without_backtrace());  \
  }                                                                       \
  catch (const c10::Error &e) {                                           \
    return ::atc::fail_c10(st, ATC_ERR_TORCH, e.what_without_backtrace()); \
  }                                                                       \
  catch (const std::bad_alloc &) {                                        \
    return ::atc::fail(st, ATC_ERR_OOM, "out of memory");                 \
  }                                                                       \
  catch (const std::exception &e) {                                       \
    return ::atc::fail(st, ATC_ERR_UNKNOWN, e.what());                    \
  }                                                                       \
  catch (...) {                                                           \
    return ::atc::fail(st, ATC_ERR_UNKNOWN, "unknown C++ exception");     \
  }                                                                       \
  if (st) st->code = ATC_OK;                                              \
  return ATC_OK;

[[noreturn]] inline void arg_error(const std::string &m) { throw ArgError{m}; }

// const: a Borrowed prvalue must never bind to at::Tensor&& (a move would
// steal the handle's reference); copies out of it are counted.
inline const Borrowed T(const atc_tensor *h) {
  if (!h) arg_error("NULL tensor handle");
  return Borrowed(h);
}
inline c10::optional<at::Tensor> opt(const atc_tensor *h) {
  if (!h) return c10::nullopt;
  return at::Tensor(T(h));  // a counted copy: optionals outlive the borrow
}

// Moves a result into a new handle written to *out.
inline void put(atc_tensor **out, at::Tensor t) {
  if (!out) arg_error("NULL output pointer");
  if (!t.defined()) arg_error("libtorch returned an undefined tensor");
  *out = release(std::move(t));
}

at::ScalarType scalar_type(int dt);
int dtype_of(at::ScalarType s);
c10::Device device(atc_device d);
atc_device device_of(const c10::Device &d);

inline c10::Scalar scalar(atc_scalar s) {
  return s.is_int ? c10::Scalar(s.i) : c10::Scalar(s.d);
}

inline at::IntArrayRef dims(const int64_t *p, int n) {
  if (n < 0 || n > ATC_MAX_DIMS)
    arg_error("number of dimensions " + std::to_string(n) + " out of range [0, " +
              std::to_string(ATC_MAX_DIMS) + "]");
  if (n > 0 && !p) arg_error("NULL size array");
  return at::IntArrayRef(p, static_cast<size_t>(n));
}

inline at::TensorOptions options(int dt, atc_device dev) {
  return at::TensorOptions().dtype(scalar_type(dt)).device(device(dev));
}

}  // namespace atc
