/*
 * atc.h -- the C ABI over libtorch ("ATen + autograd"), the only place where
 * acq talks to C++.
 *
 * Rules, for every function declared here:
 *   - Handles are opaque. Every tensor a function produces is a new handle
 *     owned by the caller, released with atc_tensor_free(). Inputs are
 *     borrowed: the callee never keeps or frees them.
 *   - Functions that can fail return an int status (ATC_OK == 0) and fill the
 *     caller-owned atc_status: code and a NUL-terminated message without the
 *     C++ backtrace. On failure no output handle is written.
 *   - No C++ exception ever leaves this ABI; nothing here calls Lua.
 *   - Dimensions and indices count from 0; a negative dimension counts from
 *     the end, as in PyTorch.
 */
#ifndef ATC_H
#define ATC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define ATC_API __declspec(dllexport)
#else
#define ATC_API __attribute__((visibility("default")))
#endif

#define ATC_MAX_DIMS 16
#define ATC_MSG_SIZE 512

typedef struct atc_tensor atc_tensor;       /* one owned at::Tensor          */
typedef struct atc_optim atc_optim;         /* Adam or SGD over a param list */
typedef struct atc_generator atc_generator; /* a seedable random generator   */

typedef enum atc_code {
  ATC_OK = 0,
  ATC_ERR_TORCH = 1,   /* c10::Error: bad shapes, dtypes, devices, ...       */
  ATC_ERR_OOM = 2,     /* c10::OutOfMemoryError or std::bad_alloc            */
  ATC_ERR_ARG = 3,     /* rejected by the shim before reaching libtorch      */
  ATC_ERR_UNKNOWN = 4  /* any other exception                                */
} atc_code;

typedef struct atc_status {
  int32_t code;
  char msg[ATC_MSG_SIZE];
} atc_status;

typedef enum atc_dtype {
  ATC_F32 = 0,
  ATC_F64 = 1,
  ATC_I64 = 2,
  ATC_I32 = 3,
  ATC_U8 = 4,
  ATC_BOOL = 5,
  ATC_F16 = 6,
  ATC_BF16 = 7,
  ATC_DTYPE_COUNT = 8
} atc_dtype;

typedef enum atc_device_type { ATC_CPU = 0, ATC_CUDA = 1 } atc_device_type;

typedef struct atc_device {
  int32_t type;   /* atc_device_type                  */
  int32_t index;  /* -1: the current device of a type */
} atc_device;

/* A number argument: integral scalars keep integer tensors integral. */
typedef struct atc_scalar {
  int32_t is_int;
  int64_t i;
  double d;
} atc_scalar;

typedef struct atc_meta {
  int32_t dtype;        /* atc_dtype, or -1 for a dtype the ABI does not name */
  atc_device device;
  int32_t ndim;
  int32_t requires_grad;
  int32_t is_leaf;
  int64_t numel;
  int64_t sizes[ATC_MAX_DIMS];
} atc_meta;

/* ---- lifecycle and metadata -------------------------------------------- */
ATC_API void    atc_tensor_free(atc_tensor *t);                  /* NULL ok */
ATC_API int64_t atc_tensor_nbytes(const atc_tensor *t);  /* numel * itemsize */
ATC_API int atc_tensor_meta(atc_status *st, const atc_tensor *t, atc_meta *m);
ATC_API int atc_tensor_alias(atc_status *st, const atc_tensor *t, atc_tensor **out);
ATC_API size_t      atc_dtype_size(atc_dtype d);
ATC_API const char *atc_dtype_name(atc_dtype d);            /* "f32", ...    */
ATC_API int atc_device_parse(atc_status *st, const char *s, atc_device *out);
ATC_API int atc_device_name(const atc_device *d, char *buf, size_t n);

/* ---- creation ---------------------------------------------------------- */
ATC_API int atc_empty(atc_status *st, const int64_t *sizes, int ndim,
                      atc_dtype dt, atc_device dev, atc_tensor **out);
ATC_API int atc_full(atc_status *st, const int64_t *sizes, int ndim,
                     atc_scalar value, atc_dtype dt, atc_device dev,
                     atc_tensor **out);
ATC_API int atc_arange(atc_status *st, atc_scalar start, atc_scalar end,
                       atc_scalar step, atc_dtype dt, atc_device dev,
                       atc_tensor **out);
/* gen may be NULL (the default generator, seeded by atc_manual_seed). */
ATC_API int atc_randn(atc_status *st, const int64_t *sizes, int ndim,
                      atc_dtype dt, atc_device dev, atc_generator *gen,
                      atc_tensor **out);
ATC_API int atc_rand(atc_status *st, const int64_t *sizes, int ndim,
                     atc_dtype dt, atc_device dev, atc_generator *gen,
                     atc_tensor **out);
ATC_API int atc_randint(atc_status *st, int64_t low, int64_t high,
                        const int64_t *sizes, int ndim, atc_dtype dt,
                        atc_device dev, atc_generator *gen, atc_tensor **out);
/* A random permutation of 0..n-1 (int64), from gen (NULL: the default). */
ATC_API int atc_randperm(atc_status *st, int64_t n, atc_device dev,
                         atc_generator *gen, atc_tensor **out);
/* Copies ndim-shaped, C-contiguous data of dtype dt into a new CPU tensor. */
ATC_API int atc_from_buffer(atc_status *st, const void *data,
                            const int64_t *sizes, int ndim, atc_dtype dt,
                            atc_tensor **out);
/* Copies the elements of t, converted to dtype as, to buf (C order).
 * n is the capacity of buf in elements; it must be >= numel(t). */
ATC_API int atc_tensor_read(atc_status *st, const atc_tensor *t, atc_dtype as,
                            void *buf, int64_t n);
ATC_API int atc_item(atc_status *st, const atc_tensor *t, atc_scalar *out);

/* ---- dtype and device -------------------------------------------------- */
ATC_API int atc_to(atc_status *st, const atc_tensor *t, atc_dtype dt,
                   atc_device dev, atc_tensor **out);
ATC_API int atc_to_dtype(atc_status *st, const atc_tensor *t, atc_dtype dt,
                         atc_tensor **out);
ATC_API int atc_to_device(atc_status *st, const atc_tensor *t, atc_device dev,
                          atc_tensor **out);

/* ---- views and shape --------------------------------------------------- */
ATC_API int atc_view(atc_status *st, const atc_tensor *t, const int64_t *sizes,
                     int ndim, atc_tensor **out);
ATC_API int atc_reshape(atc_status *st, const atc_tensor *t,
                        const int64_t *sizes, int ndim, atc_tensor **out);
ATC_API int atc_permute(atc_status *st, const atc_tensor *t,
                        const int64_t *dims, int ndim, atc_tensor **out);
/* Reverses the order of elements along the dims listed. */
ATC_API int atc_flip(atc_status *st, const atc_tensor *t, const int64_t *dims,
                     int ndim, atc_tensor **out);
ATC_API int atc_transpose(atc_status *st, const atc_tensor *t, int64_t d0,
                          int64_t d1, atc_tensor **out);
ATC_API int atc_expand(atc_status *st, const atc_tensor *t,
                       const int64_t *sizes, int ndim, atc_tensor **out);
ATC_API int atc_repeat(atc_status *st, const atc_tensor *t,
                       const int64_t *reps, int ndim, atc_tensor **out);
ATC_API int atc_squeeze(atc_status *st, const atc_tensor *t, int all,
                        int64_t dim, atc_tensor **out);
ATC_API int atc_unsqueeze(atc_status *st, const atc_tensor *t, int64_t dim,
                          atc_tensor **out);
ATC_API int atc_flatten(atc_status *st, const atc_tensor *t, int64_t start,
                        int64_t end, atc_tensor **out);
ATC_API int atc_contiguous(atc_status *st, const atc_tensor *t, atc_tensor **out);
ATC_API int atc_clone(atc_status *st, const atc_tensor *t, atc_tensor **out);
ATC_API int atc_cat(atc_status *st, const atc_tensor *const *ts, int n,
                    int64_t dim, atc_tensor **out);
ATC_API int atc_stack(atc_status *st, const atc_tensor *const *ts, int n,
                      int64_t dim, atc_tensor **out);
ATC_API int atc_narrow(atc_status *st, const atc_tensor *t, int64_t dim,
                       int64_t start, int64_t len, atc_tensor **out);
ATC_API int atc_slice(atc_status *st, const atc_tensor *t, int64_t dim,
                      int64_t start, int64_t end, int64_t step,
                      atc_tensor **out);
ATC_API int atc_select(atc_status *st, const atc_tensor *t, int64_t dim,
                       int64_t index, atc_tensor **out);
ATC_API int atc_index_select(atc_status *st, const atc_tensor *t, int64_t dim,
                             const atc_tensor *index, atc_tensor **out);
ATC_API int atc_gather(atc_status *st, const atc_tensor *t, int64_t dim,
                       const atc_tensor *index, atc_tensor **out);
ATC_API int atc_scatter(atc_status *st, const atc_tensor *t, int64_t dim,
                        const atc_tensor *index, const atc_tensor *src,
                        atc_tensor **out);
ATC_API int atc_scatter_value(atc_status *st, const atc_tensor *t, int64_t dim,
                              const atc_tensor *index, atc_scalar value,
                              atc_tensor **out);
ATC_API int atc_where(atc_status *st, const atc_tensor *cond,
                      const atc_tensor *a, const atc_tensor *b,
                      atc_tensor **out);
ATC_API int atc_masked_fill(atc_status *st, const atc_tensor *t,
                            const atc_tensor *mask, atc_scalar value,
                            atc_tensor **out);

/* ---- in place ---------------------------------------------------------- */
ATC_API int atc_copy_(atc_status *st, atc_tensor *dst, const atc_tensor *src);
ATC_API int atc_fill_(atc_status *st, atc_tensor *t, atc_scalar value);

/* ---- elementwise ------------------------------------------------------- */
typedef enum atc_unary_op {
  ATC_NEG, ATC_ABS, ATC_EXP, ATC_LOG, ATC_SQRT, ATC_RSQRT, ATC_SIN, ATC_COS,
  ATC_TANH, ATC_SIGMOID, ATC_RELU, ATC_SIGN, ATC_FLOOR, ATC_CEIL,
  ATC_ROUND /* half to even */, ATC_TRUNC, ATC_SQUARE, ATC_RECIPROCAL,
  ATC_LOG1P, ATC_EXPM1, ATC_ERF, ATC_LOG2, ATC_LOGICAL_NOT, ATC_ISNAN,
  ATC_ISINF, ATC_ISFINITE,
  ATC_UNARY_COUNT
} atc_unary_op;

typedef enum atc_binary_op {
  ATC_ADD, ATC_SUB, ATC_MUL, ATC_DIV, ATC_POW, ATC_REMAINDER,
  ATC_FLOOR_DIVIDE, ATC_MAXIMUM, ATC_MINIMUM, ATC_ATAN2,
  ATC_EQ, ATC_NE, ATC_LT, ATC_LE, ATC_GT, ATC_GE,
  ATC_LOGICAL_AND, ATC_LOGICAL_OR,
  ATC_BINARY_COUNT
} atc_binary_op;

ATC_API int atc_unary(atc_status *st, atc_unary_op op, const atc_tensor *a,
                      atc_tensor **out);
ATC_API int atc_unary_(atc_status *st, atc_unary_op op, atc_tensor *a);
ATC_API int atc_binary(atc_status *st, atc_binary_op op, const atc_tensor *a,
                       const atc_tensor *b, atc_tensor **out);
ATC_API int atc_binary_(atc_status *st, atc_binary_op op, atc_tensor *a,
                        const atc_tensor *b);
/* reverse != 0 computes s op a instead of a op s. */
ATC_API int atc_binary_scalar(atc_status *st, atc_binary_op op,
                              const atc_tensor *a, atc_scalar s, int reverse,
                              atc_tensor **out);
ATC_API int atc_binary_scalar_(atc_status *st, atc_binary_op op, atc_tensor *a,
                               atc_scalar s);
/* a + alpha * b, in place on a (the optimizer's axpy). */
ATC_API int atc_add_scaled_(atc_status *st, atc_tensor *a, const atc_tensor *b,
                            atc_scalar alpha);
ATC_API int atc_clamp(atc_status *st, const atc_tensor *a, int has_min,
                      atc_scalar min, int has_max, atc_scalar max,
                      atc_tensor **out);
ATC_API int atc_leaky_relu(atc_status *st, const atc_tensor *a, double slope,
                           atc_tensor **out);

/* ---- reductions -------------------------------------------------------- */
typedef enum atc_reduce_op {
  ATC_SUM, ATC_MEAN, ATC_AMIN, ATC_AMAX, ATC_LOGSUMEXP, ATC_ANY, ATC_ALL,
  ATC_REDUCE_COUNT
} atc_reduce_op;

/* ndims == 0 reduces over every dimension. */
ATC_API int atc_reduce(atc_status *st, atc_reduce_op op, const atc_tensor *a,
                       const int64_t *dims, int ndims, int keepdim,
                       atc_tensor **out);
/* Variance (or standard deviation when sd != 0), unbiased or biased. */
ATC_API int atc_var(atc_status *st, const atc_tensor *a, const int64_t *dims,
                    int ndims, int unbiased, int keepdim, int sd,
                    atc_tensor **out);
/* The mean and biased variance per channel (dim 1) of x [N,C] or [N,C,H,W],
 * over every other dimension, differentiable (eq. (6)'s BN statistics).
 * Two passes, mean((x - mean)^2): ~6x faster than at::var's Welford
 * reduction over dims (0, 2, 3) of a contiguous NCHW tensor. */
ATC_API int atc_channel_stats(atc_status *st, const atc_tensor *x, atc_tensor **mean,
                              atc_tensor **var);
/* Per-sample input statistics of a BN layer: mean and biased variance over
 * H,W of each sample and channel, [N,C] each (for DSG's per-sample terms). */
ATC_API int atc_sample_stats(atc_status *st, const atc_tensor *x, atc_tensor **mean,
                             atc_tensor **var);
/* Min or max along dim: values and int64 indices. */
ATC_API int atc_minmax_dim(atc_status *st, int is_max, const atc_tensor *a,
                           int64_t dim, int keepdim, atc_tensor **values,
                           atc_tensor **indices);
/* argmax / argmin; has_dim == 0 flattens first. */
ATC_API int atc_argminmax(atc_status *st, int is_max, const atc_tensor *a,
                          int has_dim, int64_t dim, int keepdim,
                          atc_tensor **out);
ATC_API int atc_matmul(atc_status *st, const atc_tensor *a, const atc_tensor *b,
                       atc_tensor **out);

/* ---- neural network ---------------------------------------------------- */
/* Optional tensors (bias, BN parameters) may be NULL. */
ATC_API int atc_conv2d(atc_status *st, const atc_tensor *x /* [N,C,H,W] */,
                       const atc_tensor *w /* [O,C/g,kh,kw] */,
                       const atc_tensor *b /* [O] */, const int64_t stride[2],
                       const int64_t padding[2], const int64_t dilation[2],
                       int64_t groups, atc_tensor **out);
ATC_API int atc_conv_transpose2d(atc_status *st, const atc_tensor *x,
                                 const atc_tensor *w /* [C,O/g,kh,kw] */,
                                 const atc_tensor *b, const int64_t stride[2],
                                 const int64_t padding[2],
                                 const int64_t output_padding[2],
                                 const int64_t dilation[2], int64_t groups,
                                 atc_tensor **out);
/* Batch norm over dim 1.
 *   training == 0: normalise with running_mean/var (required).
 *   training != 0: normalise with the batch statistics; running_mean/var are
 *                  updated with momentum when given, untouched when NULL. */
ATC_API int atc_batch_norm(atc_status *st, const atc_tensor *x,
                           const atc_tensor *weight, const atc_tensor *bias,
                           atc_tensor *running_mean, atc_tensor *running_var,
                           int training, double momentum, double eps,
                           atc_tensor **out);
ATC_API int atc_linear(atc_status *st, const atc_tensor *x /* [...,in] */,
                       const atc_tensor *w /* [out,in] */,
                       const atc_tensor *b /* [out] */, atc_tensor **out);
ATC_API int atc_max_pool2d(atc_status *st, const atc_tensor *x,
                           const int64_t kernel[2], const int64_t stride[2],
                           const int64_t padding[2], const int64_t dilation[2],
                           int ceil_mode, atc_tensor **out);
ATC_API int atc_avg_pool2d(atc_status *st, const atc_tensor *x,
                           const int64_t kernel[2], const int64_t stride[2],
                           const int64_t padding[2], int ceil_mode,
                           int count_include_pad, atc_tensor **out);
ATC_API int atc_adaptive_pool2d(atc_status *st, int is_max, const atc_tensor *x,
                                const int64_t size[2], atc_tensor **out);
/* Nearest upsampling to size[2] ([H,W] of the output). */
ATC_API int atc_upsample_nearest2d(atc_status *st, const atc_tensor *x,
                                   const int64_t size[2], atc_tensor **out);
/* conv2d(upsample_nearest2d(x, 2x), w [O,C,3,3], b, stride 1, padding 1)
 * computed on x without the upsampled tensor (four 2x2 phase kernels):
 * the same value up to rounding in 44-56 % of the multiply-adds. */
ATC_API int atc_upsample2x_conv3x3(atc_status *st, const atc_tensor *x,
                                   const atc_tensor *w, const atc_tensor *b,
                                   atc_tensor **out);
/* Bilinear resizing (align_corners = false, as torchvision's Resize). */
ATC_API int atc_upsample_bilinear2d(atc_status *st, const atc_tensor *x,
                                    const int64_t size[2], atc_tensor **out);
ATC_API int atc_softmax(atc_status *st, const atc_tensor *x, int64_t dim,
                        int log, atc_tensor **out);
ATC_API int atc_embedding(atc_status *st, const atc_tensor *weight /* [V,D] */,
                          const atc_tensor *indices, atc_tensor **out);
ATC_API int atc_one_hot(atc_status *st, const atc_tensor *indices,
                        int64_t num_classes, atc_tensor **out);

/* ---- fake quantization, eqs. (1)-(2) ------------------------------------
 * s = max(hi - lo, 1e-8) / (2^bits - 1), b = lo / s + 2^(bits-1),
 * q = clamp(round(x / s - b), -2^(bits-1), 2^(bits-1) - 1), x_fake = (q + b) s.
 * lo and hi broadcast against x and are constants for autograd; the
 * gradient to x is the identity (straight-through). */
/* Bounds: per_channel != 0 -> min/max over every dim but 0, kept as
 * [C,1,...]; else 0-dim min/max of the whole tensor. Detached. */
ATC_API int atc_minmax_bounds(atc_status *st, const atc_tensor *x, int per_channel,
                              atc_tensor **lo, atc_tensor **hi);
ATC_API int atc_fake_quantize(atc_status *st, const atc_tensor *x,
                              const atc_tensor *lo, const atc_tensor *hi,
                              int bits, atc_tensor **out);
/* Integer codes (int64) with scale s and offset b (x's dtype). */
ATC_API int atc_quantize_codes(atc_status *st, const atc_tensor *x,
                               const atc_tensor *lo, const atc_tensor *hi,
                               int bits, atc_tensor **codes,
                               atc_tensor **scale, atc_tensor **offset);

/* ---- autograd ---------------------------------------------------------- */
ATC_API int atc_requires_grad_(atc_status *st, atc_tensor *t, int on);
/* grad may be NULL (t must then hold one element). */
ATC_API int atc_backward(atc_status *st, const atc_tensor *t,
                         const atc_tensor *grad, int retain_graph);
/* *out is NULL when t has no gradient. */
ATC_API int atc_grad(atc_status *st, const atc_tensor *t, atc_tensor **out);
/* set_to_none != 0 drops the gradient, else zeroes it in place. */
ATC_API int atc_zero_grad(atc_status *st, atc_tensor *t, int set_to_none);
ATC_API int atc_detach(atc_status *st, const atc_tensor *t, atc_tensor **out);
ATC_API int  atc_grad_enabled(void);
ATC_API void atc_set_grad_enabled(int on);

/* ---- optimizers (PyTorch's update rules) ------------------------------- */
ATC_API int atc_optim_adam_new(atc_status *st, atc_tensor *const *params,
                               int n, double lr, double beta1, double beta2,
                               double eps, double weight_decay,
                               atc_optim **out);
ATC_API int atc_optim_sgd_new(atc_status *st, atc_tensor *const *params, int n,
                              double lr, double momentum, double dampening,
                              double weight_decay, int nesterov,
                              atc_optim **out);
ATC_API int    atc_optim_step(atc_status *st, atc_optim *o);
ATC_API int    atc_optim_zero_grad(atc_status *st, atc_optim *o, int set_to_none);
ATC_API void   atc_optim_set_lr(atc_optim *o, double lr);
ATC_API double atc_optim_lr(const atc_optim *o);
ATC_API int    atc_optim_nparams(const atc_optim *o);
ATC_API void   atc_optim_free(atc_optim *o);                      /* NULL ok */
/* State for checkpoints: per parameter i, nslots buffers (Adam: exp_avg,
 * exp_avg_sq; SGD: momentum_buf) and a step count. *out is a copy, NULL
 * while the buffer does not exist yet. load_state takes steps[nparams] and
 * bufs[nparams * nslots] (NULL: no buffer yet), checks every shape, then
 * replaces the whole state (all or nothing). */
ATC_API int atc_optim_nslots(const atc_optim *o);
ATC_API int atc_optim_state_get(atc_status *st, atc_optim *o, int i, int slot,
                                int64_t *step, atc_tensor **out);
ATC_API int atc_optim_load_state(atc_status *st, atc_optim *o, const int64_t *steps,
                                 const atc_tensor *const *bufs);

/* ---- PyTorch files (torch.save / torch.load) ---------------------------- */
/* Named tensors: n names (malloc'd) and n owned handles, plus how many
 * non-tensor leaves (step counts, strings, ...) the file held besides. */
typedef struct atc_named_list {
  int64_t n;
  char **names;
  atc_tensor **tensors;
  int64_t skipped;
} atc_named_list;
/* Reads the bytes of a zip-format torch.save file holding (nested) dicts,
 * lists or tuples of tensors; names join the path with dots ("state_dict.
 * conv1.weight"). Every tensor is a contiguous CPU copy. All or nothing: on
 * error *out is empty. */
ATC_API int  atc_pth_load(atc_status *st, const void *data, size_t size, atc_named_list *out);
ATC_API void atc_named_list_free(atc_named_list *l);             /* NULL ok */
/* The bytes of a torch.save file holding {name: tensor} (torch.load returns
 * a dict); *data is malloc'd, the caller frees it. */
ATC_API int  atc_pth_save(atc_status *st, const char *const *names,
                          const atc_tensor *const *ts, int64_t n, void **data,
                          size_t *size);

/* ---- runtime ----------------------------------------------------------- */
ATC_API int  atc_manual_seed(atc_status *st, uint64_t seed);
ATC_API int  atc_generator_new(atc_status *st, uint64_t seed, atc_device dev,
                               atc_generator **out);
ATC_API int  atc_generator_seed(atc_status *st, atc_generator *g, uint64_t seed);
ATC_API void atc_generator_free(atc_generator *g);                /* NULL ok */
/* The full state (uint8 tensor) of g, or of the default CPU generator when g
 * is NULL; set_state restores it exactly (checkpoints). */
ATC_API int  atc_generator_get_state(atc_status *st, atc_generator *g, atc_tensor **out);
ATC_API int  atc_generator_set_state(atc_status *st, atc_generator *g,
                                     const atc_tensor *state);
ATC_API int  atc_set_num_threads(atc_status *st, int n);
ATC_API int  atc_num_threads(void);
/* Convolutions of 4-d float CPU tensors run in channels-last layout (their
 * input and weight are converted when they are not already; outputs are
 * channels-last and later layers keep it), so oneDNN needs no reorders.
 * Off by default: on the 2-core development machine it made the forward
 * passes ~10 % faster and the backward passes as much slower (bench/README.md).
 * Returns the previous setting. */
ATC_API int  atc_set_channels_last(int on);
/* OpenBLAS's own thread count (n < 1: only read it). Returns the previous
 * count, or -1 when the process's BLAS is not OpenBLAS. The runtime sets 1
 * when it opens: ATen's pool is the parallelism (see atc_runtime.cpp). */
ATC_API int  atc_set_blas_threads(int n);
ATC_API int  atc_cuda_device_count(void);         /* 0 without CUDA support */
ATC_API const char *atc_version(void);            /* libtorch version       */

/* ---- processes: one c10d process group (Gloo) per process --------------
 * Rank 0 serves the TCP store at addr:port (unless serve_store is 0: a
 * launcher's agent serves it, as torchrun's does with
 * TORCHELASTIC_USE_AGENT_STORE); every collective waits at most
 * timeout_s seconds (a failed or stopped rank is then an error, not a hang).
 * all_reduce works in place on the n tensors (one flat buffer, one call). */
/* AVG: the sum divided by the number of ranks */
typedef enum atc_dist_op { ATC_DIST_SUM = 0, ATC_DIST_MIN = 1, ATC_DIST_MAX = 2, ATC_DIST_AVG = 3 } atc_dist_op;
ATC_API int  atc_dist_init(atc_status *st, int rank, int world, const char *addr, int port,
                           double timeout_s, int serve_store);
ATC_API int  atc_dist_allreduce(atc_status *st, atc_tensor *const *ts, int n, int op);
ATC_API int  atc_dist_broadcast(atc_status *st, atc_tensor *const *ts, int n, int root);
ATC_API int  atc_dist_barrier(atc_status *st);
/* The mean of x over the ranks (same shape everywhere), differentiable: its
 * backward averages the gradients over the ranks too. */
ATC_API int  atc_dist_mean(atc_status *st, const atc_tensor *x, atc_tensor **out);
ATC_API int  atc_dist_rank(void);   /* 0 without a group */
ATC_API int  atc_dist_world(void);  /* 1 without a group */
ATC_API int  atc_dist_active(void);
ATC_API void atc_dist_destroy(void);

#ifdef __cplusplus
}
#endif
#endif /* ATC_H */
