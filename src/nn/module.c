/*
 * module.c -- the module tree: construction with PyTorch's default
 * initialisation, reference counting, deep copy, traversal, and the forward
 * pass with the three batch-norm modes and the BN-statistics recorder.
 */
#include "module.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const KIND_NAMES[ACQ_M_KIND_COUNT] = {
  "conv2d", "batchnorm2d", "linear", "relu", "relu6", "maxpool2d",
  "global_avgpool", "flatten", "identity", "embedding", "leaky_relu", "tanh",
  "upsample", "unflatten", "condbn", "sequential", "residual", "gate"};

const char *acq_mkind_name(acq_mkind k) {
  return (k >= 0 && k < ACQ_M_KIND_COUNT) ? KIND_NAMES[k] : "?";
}

static int set_error(atc_status *st, int code, const char *fmt, const char *a) {
  st->code = code;
  snprintf(st->msg, sizeof st->msg, fmt, a);
  return code;
}

static int ok(atc_status *st) {
  st->code = ATC_OK;
  return ATC_OK;
}

static acq_module *alloc_module(atc_status *st, acq_mkind kind) {
  acq_module *m = calloc(1, sizeof *m);
  if (!m) {
    set_error(st, ATC_ERR_OOM, "%s", "out of memory");
    return NULL;
  }
  m->refs = 1;
  m->kind = kind;
  m->bn_fixed = -1;
  m->groups = 1;
  for (int i = 0; i < 2; i++) m->stride[i] = m->dilation[i] = m->kernel[i] = 1;
  return m;
}

static acq_param *add_param(acq_module *m, const char *name, int buffer) {
  acq_param *p = &m->params[m->nparams++];
  snprintf(p->name, sizeof p->name, "%s", name);
  p->buffer = buffer;
  p->t = NULL;
  return p;
}

/* U(-bound, bound), a trainable leaf. */
static int uniform_param(atc_status *st, const int64_t *sizes, int nd, double bound,
                         atc_tensor **out) {
  atc_device cpu = {ATC_CPU, -1};
  atc_tensor *t = NULL;
  atc_scalar two_b = {0, 0, 2.0 * bound}, b = {0, 0, bound};
  if (atc_rand(st, sizes, nd, ATC_F32, cpu, NULL, &t) ||
      atc_binary_scalar_(st, ATC_MUL, t, two_b) || atc_binary_scalar_(st, ATC_SUB, t, b) ||
      atc_requires_grad_(st, t, 1)) {
    atc_tensor_free(t);
    return st->code;
  }
  *out = t;
  return ATC_OK;
}

static int full_param(atc_status *st, const int64_t *sizes, int nd, double v, atc_dtype dt,
                      int grad, atc_tensor **out) {
  atc_device cpu = {ATC_CPU, -1};
  atc_scalar s = {dt == ATC_I64, (int64_t)v, v};
  atc_tensor *t = NULL;
  if (atc_full(st, sizes, nd, s, dt, cpu, &t) || (grad && atc_requires_grad_(st, t, 1))) {
    atc_tensor_free(t);
    return st->code;
  }
  *out = t;
  return ATC_OK;
}

int acq_conv2d_new(atc_status *st, int64_t in, int64_t out, const int64_t k[2],
                   const int64_t stride[2], const int64_t pad[2], const int64_t dil[2],
                   int64_t groups, int bias, acq_module **res) {
  if (in <= 0 || out <= 0 || groups <= 0 || in % groups || out % groups || k[0] <= 0 || k[1] <= 0)
    return set_error(st, ATC_ERR_ARG, "%s",
                     "conv2d: channels and kernel must be positive, channels divisible by groups");
  acq_module *m = alloc_module(st, ACQ_M_CONV2D);
  if (!m) return st->code;
  memcpy(m->kernel, k, sizeof m->kernel);
  memcpy(m->stride, stride, sizeof m->stride);
  memcpy(m->padding, pad, sizeof m->padding);
  memcpy(m->dilation, dil, sizeof m->dilation);
  m->groups = groups;
  int64_t ws[4] = {out, in / groups, k[0], k[1]}, bs[1] = {out};
  double bound = 1.0 / sqrt((double)(in / groups * k[0] * k[1]));
  acq_param *w = add_param(m, "weight", 0), *b = add_param(m, "bias", 0);
  if (uniform_param(st, ws, 4, bound, &w->t) || (bias && uniform_param(st, bs, 1, bound, &b->t))) {
    acq_module_free(m);
    return st->code;
  }
  *res = m;
  return ok(st);
}

int acq_batchnorm2d_new(atc_status *st, int64_t c, double eps, double momentum, int affine,
                        acq_module **res) {
  if (c <= 0) return set_error(st, ATC_ERR_ARG, "%s", "batchnorm2d: channels must be positive");
  acq_module *m = alloc_module(st, ACQ_M_BATCHNORM2D);
  if (!m) return st->code;
  m->eps = eps;
  m->momentum = momentum;
  int64_t s[1] = {c};
  acq_param *w = add_param(m, "weight", 0), *b = add_param(m, "bias", 0);
  acq_param *rm = add_param(m, "running_mean", 1), *rv = add_param(m, "running_var", 1);
  acq_param *nb = add_param(m, "num_batches_tracked", 1);
  if ((affine && (full_param(st, s, 1, 1.0, ATC_F32, 1, &w->t) ||
                  full_param(st, s, 1, 0.0, ATC_F32, 1, &b->t))) ||
      full_param(st, s, 1, 0.0, ATC_F32, 0, &rm->t) ||
      full_param(st, s, 1, 1.0, ATC_F32, 0, &rv->t) ||
      full_param(st, NULL, 0, 0.0, ATC_I64, 0, &nb->t)) {
    acq_module_free(m);
    return st->code;
  }
  *res = m;
  return ok(st);
}

int acq_linear_new(atc_status *st, int64_t in, int64_t out, int bias, acq_module **res) {
  if (in <= 0 || out <= 0) return set_error(st, ATC_ERR_ARG, "%s", "linear: sizes must be positive");
  acq_module *m = alloc_module(st, ACQ_M_LINEAR);
  if (!m) return st->code;
  int64_t ws[2] = {out, in}, bs[1] = {out};
  double bound = 1.0 / sqrt((double)in);
  acq_param *w = add_param(m, "weight", 0), *b = add_param(m, "bias", 0);
  if (uniform_param(st, ws, 2, bound, &w->t) || (bias && uniform_param(st, bs, 1, bound, &b->t))) {
    acq_module_free(m);
    return st->code;
  }
  *res = m;
  return ok(st);
}

int acq_maxpool2d_new(atc_status *st, const int64_t k[2], const int64_t stride[2],
                      const int64_t pad[2], acq_module **res) {
  acq_module *m = alloc_module(st, ACQ_M_MAXPOOL2D);
  if (!m) return st->code;
  memcpy(m->kernel, k, sizeof m->kernel);
  memcpy(m->stride, stride, sizeof m->stride);
  memcpy(m->padding, pad, sizeof m->padding);
  *res = m;
  return ok(st);
}

int acq_simple_new(atc_status *st, acq_mkind kind, acq_module **res) {
  switch (kind) {
    case ACQ_M_RELU: case ACQ_M_RELU6: case ACQ_M_GLOBAL_AVGPOOL: case ACQ_M_FLATTEN:
    case ACQ_M_IDENTITY: case ACQ_M_TANH: break;
    default: return set_error(st, ATC_ERR_ARG, "module kind %s needs arguments", acq_mkind_name(kind));
  }
  acq_module *m = alloc_module(st, kind);
  if (!m) return st->code;
  *res = m;
  return ok(st);
}

int acq_embedding_new(atc_status *st, int64_t num, int64_t dim, acq_module **res) {
  if (num <= 0 || dim <= 0) return set_error(st, ATC_ERR_ARG, "%s", "embedding: sizes must be positive");
  acq_module *m = alloc_module(st, ACQ_M_EMBEDDING);
  if (!m) return st->code;
  int64_t ws[2] = {num, dim};
  atc_device cpu = {ATC_CPU, -1};
  acq_param *w = add_param(m, "weight", 0);
  if (atc_randn(st, ws, 2, ATC_F32, cpu, NULL, &w->t) || atc_requires_grad_(st, w->t, 1)) {
    acq_module_free(m);
    return st->code;
  }
  *res = m;
  return ok(st);
}

int acq_leaky_relu_new(atc_status *st, double slope, acq_module **res) {
  acq_module *m = alloc_module(st, ACQ_M_LEAKY_RELU);
  if (!m) return st->code;
  m->slope = slope;
  *res = m;
  return ok(st);
}

int acq_upsample_new(atc_status *st, const int64_t scale[2], acq_module **res) {
  if (scale[0] <= 0 || scale[1] <= 0)
    return set_error(st, ATC_ERR_ARG, "%s", "upsample: the scale factor must be a positive integer");
  acq_module *m = alloc_module(st, ACQ_M_UPSAMPLE);
  if (!m) return st->code;
  memcpy(m->kernel, scale, sizeof m->kernel);
  *res = m;
  return ok(st);
}

int acq_unflatten_new(atc_status *st, const int64_t *shape, int n, acq_module **res) {
  if (n < 1 || n > 4) return set_error(st, ATC_ERR_ARG, "%s", "unflatten: 1 to 4 sizes");
  for (int i = 0; i < n; i++)
    if (shape[i] <= 0) return set_error(st, ATC_ERR_ARG, "%s", "unflatten: sizes must be positive");
  acq_module *m = alloc_module(st, ACQ_M_UNFLATTEN);
  if (!m) return st->code;
  m->nshape = n;
  memcpy(m->shape, shape, (size_t)n * sizeof *shape);
  *res = m;
  return ok(st);
}

int acq_condbn_new(atc_status *st, int64_t classes, int64_t c, double eps, double momentum,
                   acq_module **res) {
  if (classes <= 0 || c <= 0) return set_error(st, ATC_ERR_ARG, "%s", "condbn: sizes must be positive");
  acq_module *m = alloc_module(st, ACQ_M_CONDBN);
  if (!m) return st->code;
  m->eps = eps;
  m->momentum = momentum;
  int64_t s[1] = {c}, e[2] = {classes, c};
  /* the same slots as batchnorm2d: scale, shift, running mean, var, count */
  acq_param *w = add_param(m, "weights.weight", 0), *b = add_param(m, "biases.weight", 0);
  acq_param *rm = add_param(m, "running_mean", 1), *rv = add_param(m, "running_var", 1);
  acq_param *nb = add_param(m, "num_batches_tracked", 1);
  if (full_param(st, e, 2, 1.0, ATC_F32, 1, &w->t) || full_param(st, e, 2, 0.0, ATC_F32, 1, &b->t) ||
      full_param(st, s, 1, 0.0, ATC_F32, 0, &rm->t) || full_param(st, s, 1, 1.0, ATC_F32, 0, &rv->t) ||
      full_param(st, NULL, 0, 0.0, ATC_I64, 0, &nb->t)) {
    acq_module_free(m);
    return st->code;
  }
  *res = m;
  return ok(st);
}

int acq_container_new(atc_status *st, acq_mkind kind, acq_module *const *children,
                      const char *const *names, int n, int nmain, int post_relu,
                      acq_module **res) {
  if (kind != ACQ_M_SEQUENTIAL && kind != ACQ_M_RESIDUAL && kind != ACQ_M_GATE)
    return set_error(st, ATC_ERR_ARG, "%s is not a container kind", acq_mkind_name(kind));
  if (nmain < 0 || nmain > n) return set_error(st, ATC_ERR_ARG, "%s", "residual: bad split");
  acq_module *m = alloc_module(st, kind);
  if (!m) return st->code;
  m->child = calloc(n ? (size_t)n : 1, sizeof *m->child);
  if (!m->child) {
    free(m);
    return set_error(st, ATC_ERR_OOM, "%s", "out of memory");
  }
  /* children are stored by reference; the name is the parent's to give, so
   * each child keeps the name it got last (modules are not meant to be shared
   * between parents with different names) */
  for (int i = 0; i < n; i++) {
    m->child[i] = acq_module_retain(children[i]);
    if (names && names[i]) snprintf(children[i]->name, ACQ_NAME_MAX, "%s", names[i]);
    else snprintf(children[i]->name, ACQ_NAME_MAX, "%d", i);
  }
  m->nchild = n;
  m->nmain = kind == ACQ_M_RESIDUAL ? nmain : n;
  m->post_relu = post_relu;
  *res = m;
  return ok(st);
}

int acq_lka_new(atc_status *st, int64_t channels, int64_t k, int64_t d, acq_module **res) {
  char msg[256];
  if (channels <= 0 || k <= 0 || d <= 0) {
    snprintf(msg, sizeof msg, "lka: channels, kernel and dilation must be positive, got %lld, %lld, %lld",
             (long long)channels, (long long)k, (long long)d);
    return set_error(st, ATC_ERR_ARG, "%s", msg);
  }
  int64_t k2 = (k + d - 1) / d;
  if (k2 % 2 == 0) {
    snprintf(msg, sizeof msg, "lka: kernel %lld / dilation %lld gives an even %lld x %lld dilated kernel "
             "(no same padding); VAN uses 21 / 3", (long long)k, (long long)d, (long long)k2, (long long)k2);
    return set_error(st, ATC_ERR_ARG, "%s", msg);
  }
  int64_t one[2] = {1, 1}, k0[2] = {2 * d - 1, 2 * d - 1}, p0[2] = {d - 1, d - 1};
  int64_t ks[2] = {k2, k2}, ps[2] = {(k2 - 1) * d / 2, (k2 - 1) * d / 2}, ds[2] = {d, d}, zero[2] = {0, 0};
  acq_module *c[3] = {NULL, NULL, NULL};
  const char *names[3] = {"conv0", "conv_spatial", "conv1"};
  int rc = acq_conv2d_new(st, channels, channels, k0, one, p0, one, channels, 1, &c[0]) ||
           acq_conv2d_new(st, channels, channels, ks, one, ps, ds, channels, 1, &c[1]) ||
           acq_conv2d_new(st, channels, channels, one, one, zero, one, 1, 1, &c[2]) ||
           acq_container_new(st, ACQ_M_GATE, c, names, 3, 3, 0, res);
  for (int i = 0; i < 3; i++) acq_module_free(c[i]);
  return rc ? st->code : ok(st);
}

acq_module *acq_module_retain(acq_module *m) {
  if (m) m->refs++;
  return m;
}

void acq_module_free(acq_module *m) {
  if (!m || --m->refs > 0) return;
  for (int i = 0; i < m->nparams; i++) atc_tensor_free(m->params[i].t);
  for (int i = 0; i < m->nchild; i++) acq_module_free(m->child[i]);
  free(m->child);
  acq_fq_free(m->wq);
  acq_fq_free(m->aq);
  free(m);
}

int acq_module_clone(atc_status *st, const acq_module *m, acq_module **out) {
  acq_module *c = calloc(1, sizeof *c);
  if (!c) return set_error(st, ATC_ERR_OOM, "%s", "out of memory");
  *c = *m;
  c->refs = 1;
  c->child = NULL;
  c->nchild = 0;
  c->wq = c->aq = NULL;
  for (int i = 0; i < m->nparams; i++) c->params[i].t = NULL;
  int rc = 0;
  for (int i = 0; i < m->nparams && !rc; i++) {
    atc_tensor *src = m->params[i].t, *d = NULL;
    if (!src) continue;
    atc_meta meta;
    rc = atc_tensor_meta(st, src, &meta) || atc_detach(st, src, &d) ||
         atc_clone(st, d, &c->params[i].t) ||
         (meta.requires_grad && atc_requires_grad_(st, c->params[i].t, 1));
    atc_tensor_free(d);
  }
  if (!rc && m->wq) rc = acq_fq_clone(st, m->wq, &c->wq);
  if (!rc && m->aq) rc = acq_fq_clone(st, m->aq, &c->aq);
  if (!rc && m->nchild) {
    c->child = calloc((size_t)m->nchild, sizeof *c->child);
    if (!c->child) rc = set_error(st, ATC_ERR_OOM, "%s", "out of memory");
    for (int i = 0; i < m->nchild && !rc; i++) {
      rc = acq_module_clone(st, m->child[i], &c->child[i]);
      if (!rc) c->nchild = i + 1;
    }
  }
  if (rc) {
    acq_module_free(c);
    return st->code;
  }
  *out = c;
  return ok(st);
}

/* ---- traversal ------------------------------------------------------------ */

static int walk(acq_module *m, char *path, size_t len, acq_visit_fn fn, void *ud) {
  int r = fn(m, path, ud);
  if (r) return r;
  for (int i = 0; i < m->nchild; i++) {
    int n = snprintf(path + len, ACQ_PATH_MAX - len, len ? ".%s" : "%s", m->child[i]->name);
    size_t nl = len + (size_t)n < ACQ_PATH_MAX ? len + (size_t)n : ACQ_PATH_MAX - 1;
    r = walk(m->child[i], path, nl, fn, ud);
    path[len] = '\0';
    if (r) return r;
  }
  return 0;
}

int acq_module_walk(acq_module *m, acq_visit_fn fn, void *ud) {
  char path[ACQ_PATH_MAX] = "";
  return walk(m, path, 0, fn, ud);
}

typedef struct Slots {
  atc_tensor ***p; /* where each tensor lives */
  int n, cap;
} Slots;

static int add_slot(Slots *s, atc_tensor **t) {
  if (!*t) return 0;
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 64;
    atc_tensor ***np = realloc(s->p, (size_t)cap * sizeof *np);
    if (!np) return 1;
    s->p = np;
    s->cap = cap;
  }
  s->p[s->n++] = t;
  return 0;
}

static int collect_slots(acq_module *m, const char *path, void *ud) {
  (void)path;
  Slots *s = ud;
  for (int i = 0; i < m->nparams; i++)
    if (add_slot(s, &m->params[i].t)) return 1;
  acq_fq *q[2] = {m->wq, m->aq};
  for (int i = 0; i < 2; i++)
    if (q[i] && (add_slot(s, &q[i]->lo) || add_slot(s, &q[i]->hi))) return 1;
  return 0;
}

int acq_module_to(atc_status *st, acq_module *m, int dtype, const atc_device *dev) {
  Slots s = {NULL, 0, 0};
  if (acq_module_walk(m, collect_slots, &s)) {
    free(s.p);
    return set_error(st, ATC_ERR_OOM, "%s", "out of memory");
  }
  atc_tensor **nt = calloc(s.n ? (size_t)s.n : 1, sizeof *nt);
  int rc = nt ? ATC_OK : set_error(st, ATC_ERR_OOM, "%s", "out of memory");
  for (int i = 0; i < s.n && !rc; i++) {
    atc_tensor *t = *s.p[i], *d = NULL;
    atc_meta meta;
    if ((rc = atc_tensor_meta(st, t, &meta))) break;
    int floating = meta.dtype == ATC_F32 || meta.dtype == ATC_F64 || meta.dtype == ATC_F16 ||
                   meta.dtype == ATC_BF16;
    atc_dtype dt = dtype >= 0 && floating ? (atc_dtype)dtype : (atc_dtype)meta.dtype;
    atc_device dv = dev ? *dev : meta.device;
    rc = atc_detach(st, t, &d) || atc_to(st, d, dt, dv, &nt[i]) ||
         (meta.requires_grad && atc_requires_grad_(st, nt[i], 1));
    atc_tensor_free(d);
  }
  if (!rc) {
    for (int i = 0; i < s.n; i++) {
      atc_tensor_free(*s.p[i]);
      *s.p[i] = nt[i];
    }
  } else if (nt) {
    for (int i = 0; i < s.n; i++) atc_tensor_free(nt[i]);
  }
  free(nt);
  free(s.p);
  return rc ? st->code : ok(st);
}

/* ---- forward ------------------------------------------------------------------ */

void acq_fwd_init(acq_fwd *c, int bn_mode, int record) {
  memset(c, 0, sizeof *c);
  c->bn_mode = bn_mode;
  c->record = record;
}

void acq_fwd_clear(acq_fwd *c) {
  for (int i = 0; i < c->nstats; i++) {
    atc_tensor_free(c->stats[i].mean);
    atc_tensor_free(c->stats[i].var);
  }
  free(c->stats);
  atc_tensor_free(c->features);
  c->stats = NULL;
  c->nstats = c->capstats = 0;
  c->features = NULL;
}

static acq_stats_sync_fn stats_sync = NULL;

void acq_set_stats_sync(acq_stats_sync_fn fn) { stats_sync = fn; }

/* eq. (6) needs the mean and the biased variance of each BN input over N,H,W. */
static int record_stats(atc_status *st, acq_fwd *c, acq_module *m, const atc_tensor *x) {
  if (c->nstats == c->capstats) {
    int cap = c->capstats ? 2 * c->capstats : 32;
    acq_bnstat *s = realloc(c->stats, (size_t)cap * sizeof *s);
    if (!s) return set_error(st, ATC_ERR_OOM, "%s", "out of memory");
    c->stats = s;
    c->capstats = cap;
  }
  atc_tensor *mean = NULL, *var = NULL;
  if ((c->record == ACQ_RECORD_SAMPLE ? atc_sample_stats : atc_channel_stats)(st, x, &mean, &var))
    return st->code;
  if (stats_sync && c->record != ACQ_RECORD_SAMPLE && stats_sync(st, &mean, &var)) {
    atc_tensor_free(mean);
    atc_tensor_free(var);
    return st->code;
  }
  acq_bnstat *s = &c->stats[c->nstats++];
  s->bn = m;
  snprintf(s->path, sizeof s->path, "%s", c->path);
  s->mean = mean;
  s->var = var;
  return ATC_OK;
}

/* BN with the synchronised batch statistics of x (acq_set_stats_sync):
 * (x - mean) / sqrt(var + eps) * w + b, on the graph. rec: this layer's
 * statistics just recorded (already synchronised), or NULL to compute them. */
static int bn_synced(atc_status *st, acq_module *m, const atc_tensor *x, const atc_tensor *w,
                     const atc_tensor *b, const acq_bnstat *rec, atc_tensor **out) {
  atc_tensor *mean = NULL, *var = NULL, *mv = NULL, *vv = NULL, *ve = NULL, *is = NULL;
  atc_tensor *d = NULL, *n = NULL, *wv = NULL, *bv = NULL, *nw = NULL;
  atc_meta xm;
  if (atc_tensor_meta(st, x, &xm)) return st->code;
  int64_t sh[4] = {1, xm.sizes[1], 1, 1};
  int nd = xm.ndim == 4 ? 4 : 2;
  atc_scalar eps = {0, 0, m->eps};
  int rc = rec ? atc_tensor_alias(st, rec->mean, &mean) || atc_tensor_alias(st, rec->var, &var)
               : atc_channel_stats(st, x, &mean, &var) || stats_sync(st, &mean, &var);
  rc = rc || atc_view(st, mean, sh, nd, &mv) || atc_view(st, var, sh, nd, &vv) ||
           atc_binary_scalar(st, ATC_ADD, vv, eps, 0, &ve) || atc_unary(st, ATC_RSQRT, ve, &is) ||
           atc_binary(st, ATC_SUB, x, mv, &d) || atc_binary(st, ATC_MUL, d, is, &n);
  if (!rc && w) rc = atc_view(st, w, sh, nd, &wv) || atc_view(st, b, sh, nd, &bv) ||
                     atc_binary(st, ATC_MUL, n, wv, &nw) || atc_binary(st, ATC_ADD, nw, bv, out);
  if (!rc && !w) {
    *out = n;
    n = NULL;
  }
  atc_tensor *all[] = {mean, var, mv, vv, ve, is, d, n, wv, bv, nw};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) atc_tensor_free(all[i]);
  return rc ? st->code : ATC_OK;
}

static int forward_bn(atc_status *st, acq_fwd *c, acq_module *m, const atc_tensor *x,
                      atc_tensor **out) {
  int mode = m->bn_fixed >= 0 ? m->bn_fixed : c->bn_mode;
  if (c->record && record_stats(st, c, m, x)) return st->code;
  atc_tensor *w = m->kind == ACQ_M_CONDBN ? NULL : m->params[0].t;
  atc_tensor *b = m->kind == ACQ_M_CONDBN ? NULL : m->params[1].t;
  atc_tensor *rm = m->params[2].t, *rv = m->params[3].t;
  switch (mode) {
    case ACQ_BN_EVAL:
      return atc_batch_norm(st, x, w, b, rm, rv, 0, m->momentum, m->eps, out);
    case ACQ_BN_BATCH: /* F^train: batch statistics, running stats untouched */
      /* with the statistics recorded (F^train's Pen_BNS), one synchronisation serves both */
      if (stats_sync)
        return bn_synced(st, m, x, w, b, c->record == ACQ_RECORD_BATCH ? &c->stats[c->nstats - 1] : NULL, out);
      return atc_batch_norm(st, x, w, b, NULL, NULL, 1, m->momentum, m->eps, out);
    default: {
      if (atc_batch_norm(st, x, w, b, rm, rv, 1, m->momentum, m->eps, out)) return st->code;
      atc_scalar one = {1, 1, 1.0};
      return atc_binary_scalar_(st, ATC_ADD, m->params[4].t, one);
    }
  }
}

/* Class-conditional BN: y = BN(x) * W[labels] + B[labels] (GDFQ's CCBN). */
static int forward_condbn(atc_status *st, acq_fwd *c, acq_module *m, const atc_tensor *x,
                          atc_tensor **out) {
  if (!c->labels)
    return set_error(st, ATC_ERR_ARG, "%s", "needs class labels: forward(x, {labels = y})");
  atc_meta xm, lm;
  if (atc_tensor_meta(st, x, &xm) || atc_tensor_meta(st, c->labels, &lm)) return st->code;
  if (xm.ndim != 4 || lm.ndim != 1 || lm.sizes[0] != xm.sizes[0]) {
    char msg[96];
    snprintf(msg, sizeof msg, "%lld labels for a batch of %lld", lm.ndim == 1 ? (long long)lm.sizes[0] : -1LL,
             (long long)xm.sizes[0]);
    return set_error(st, ATC_ERR_ARG, "%s", msg);
  }
  atc_tensor *n = NULL, *ws = NULL, *bs = NULL, *w4 = NULL, *b4 = NULL, *y = NULL;
  int64_t sh[4] = {xm.sizes[0], xm.sizes[1], 1, 1};
  int rc = forward_bn(st, c, m, x, &n) || atc_embedding(st, m->params[0].t, c->labels, &ws) ||
           atc_embedding(st, m->params[1].t, c->labels, &bs) || atc_view(st, ws, sh, 4, &w4) ||
           atc_view(st, bs, sh, 4, &b4) || atc_binary(st, ATC_MUL, n, w4, &y) ||
           atc_binary(st, ATC_ADD, y, b4, out);
  atc_tensor_free(n);
  atc_tensor_free(ws);
  atc_tensor_free(bs);
  atc_tensor_free(w4);
  atc_tensor_free(b4);
  atc_tensor_free(y);
  return rc ? st->code : ATC_OK;
}

static int forward_unflatten(atc_status *st, acq_module *m, const atc_tensor *x, atc_tensor **out) {
  atc_meta xm;
  if (atc_tensor_meta(st, x, &xm)) return st->code;
  int64_t sh[5] = {xm.ndim ? xm.sizes[0] : 1};
  memcpy(sh + 1, m->shape, (size_t)m->nshape * sizeof *sh);
  return atc_reshape(st, x, sh, m->nshape + 1, out);
}

static int forward_upsample(atc_status *st, acq_module *m, const atc_tensor *x, atc_tensor **out) {
  atc_meta xm;
  if (atc_tensor_meta(st, x, &xm)) return st->code;
  if (xm.ndim != 4) return set_error(st, ATC_ERR_ARG, "%s", "expects [N,C,H,W]");
  int64_t size[2] = {xm.sizes[2] * m->kernel[0], xm.sizes[3] * m->kernel[1]};
  return atc_upsample_nearest2d(st, x, size, out);
}

/* conv2d and linear, with their quantizers when Q has them. */
static int forward_affine(atc_status *st, acq_module *m, const atc_tensor *x, atc_tensor **out) {
  atc_tensor *xq = NULL, *wq = NULL;
  const atc_tensor *xi = x, *wi = m->params[0].t;
  int rc = 0;
  if (m->aq) {
    rc = acq_fq_apply(st, m->aq, x, &xq);
    xi = xq;
  }
  if (!rc && m->wq) {
    rc = acq_fq_apply(st, m->wq, m->params[0].t, &wq);
    wi = wq;
  }
  if (!rc) {
    if (m->kind == ACQ_M_CONV2D)
      rc = atc_conv2d(st, xi, wi, m->params[1].t, m->stride, m->padding, m->dilation, m->groups, out);
    else
      rc = atc_linear(st, xi, wi, m->params[1].t, out);
  }
  atc_tensor_free(xq);
  atc_tensor_free(wq);
  return rc;
}

static int forward_leaf(atc_status *st, acq_fwd *c, acq_module *m, const atc_tensor *x,
                        atc_tensor **out) {
  switch (m->kind) {
    case ACQ_M_CONV2D:
    case ACQ_M_LINEAR: return forward_affine(st, m, x, out);
    case ACQ_M_BATCHNORM2D: return forward_bn(st, c, m, x, out);
    case ACQ_M_RELU: return atc_unary(st, ATC_RELU, x, out);
    case ACQ_M_RELU6: {
      atc_scalar lo = {0, 0, 0.0}, hi = {0, 0, 6.0};
      return atc_clamp(st, x, 1, lo, 1, hi, out);
    }
    case ACQ_M_MAXPOOL2D:
      return atc_max_pool2d(st, x, m->kernel, m->stride, m->padding, m->dilation, 0, out);
    case ACQ_M_GLOBAL_AVGPOOL: {
      static const int64_t hw[2] = {2, 3};
      return atc_reduce(st, ATC_MEAN, x, hw, 2, 0, out);
    }
    case ACQ_M_FLATTEN: return atc_flatten(st, x, 1, -1, out);
    case ACQ_M_IDENTITY: return atc_tensor_alias(st, x, out);
    case ACQ_M_EMBEDDING: return atc_embedding(st, m->params[0].t, x, out);
    case ACQ_M_LEAKY_RELU: return atc_leaky_relu(st, x, m->slope, out);
    case ACQ_M_TANH: return atc_unary(st, ATC_TANH, x, out);
    case ACQ_M_UPSAMPLE: return forward_upsample(st, m, x, out);
    case ACQ_M_UNFLATTEN: return forward_unflatten(st, m, x, out);
    case ACQ_M_CONDBN: return forward_condbn(st, c, m, x, out);
    default: return set_error(st, ATC_ERR_ARG, "cannot run a %s as a leaf", acq_mkind_name(m->kind));
  }
}

/* A x2 nearest upsampling followed by a plain 3x3 convolution (stride 1,
 * padding 1, no quantizer, neither tapped): GDFQ's and ACQ's generators have
 * two. atc_upsample2x_conv3x3 computes the pair in about half the work. */
static int upsample_conv_pair(const acq_module *u, const acq_module *k) {
  return u->kind == ACQ_M_UPSAMPLE && u->kernel[0] == 2 && u->kernel[1] == 2 && !u->tap &&
         k->kind == ACQ_M_CONV2D && k->kernel[0] == 3 && k->kernel[1] == 3 && k->stride[0] == 1 &&
         k->stride[1] == 1 && k->padding[0] == 1 && k->padding[1] == 1 && k->dilation[0] == 1 &&
         k->dilation[1] == 1 && k->groups == 1 && !k->wq && !k->aq && !k->tap;
}

/* Runs children [from, to) in order; the identity when the range is empty. */
static int run_chain(atc_status *st, acq_fwd *c, acq_module *m, int from, int to,
                     const atc_tensor *x, atc_tensor **out) {
  atc_tensor *cur = NULL;
  size_t len = strlen(c->path);
  for (int i = from; i < to; i++) {
    atc_tensor *next = NULL;
    if (i + 1 < to && upsample_conv_pair(m->child[i], m->child[i + 1])) {
      acq_module *k = m->child[++i];
      snprintf(c->path + len, ACQ_PATH_MAX - len, len ? ".%s" : "%s", k->name);
      int rc = atc_upsample2x_conv3x3(st, cur ? cur : x, k->params[0].t, k->params[1].t, &next);
      c->path[len] = '\0';
      atc_tensor_free(cur);
      if (rc) return rc;
      cur = next;
      continue;
    }
    snprintf(c->path + len, ACQ_PATH_MAX - len, len ? ".%s" : "%s", m->child[i]->name);
    int rc = acq_module_forward(st, c, m->child[i], cur ? cur : x, &next);
    c->path[len] = '\0';
    atc_tensor_free(cur);
    if (rc) return rc;
    cur = next;
  }
  if (!cur) return atc_tensor_alias(st, x, out);
  *out = cur;
  return ATC_OK;
}

int acq_module_child_index(const acq_module *m, const char *name) {
  for (int i = 0; i < m->nchild; i++)
    if (strcmp(m->child[i]->name, name) == 0) return i;
  return -1;
}

static int forward_module(atc_status *st, acq_fwd *c, acq_module *m, int from, int to,
                          const atc_tensor *x, atc_tensor **out);

int acq_module_forward(atc_status *st, acq_fwd *c, acq_module *m, const atc_tensor *x,
                       atc_tensor **out) {
  return forward_module(st, c, m, 0, m->nchild, x, out);
}

int acq_module_forward_range(atc_status *st, acq_fwd *c, acq_module *m, int from, int to,
                             const atc_tensor *x, atc_tensor **out) {
  if (m->kind != ACQ_M_SEQUENTIAL)
    return set_error(st, ATC_ERR_ARG, "a %s cannot run a range of its children (a sequential can)",
                     acq_mkind_name(m->kind));
  if (from < 0 || to > m->nchild || from > to)
    return set_error(st, ATC_ERR_ARG, "%s", "child range out of bounds");
  return forward_module(st, c, m, from, to, x, out);
}

static int forward_module(atc_status *st, acq_fwd *c, acq_module *m, int from, int to,
                          const atc_tensor *x, atc_tensor **out) {
  int rc;
  atc_tensor *y = NULL;
  if (m->kind == ACQ_M_SEQUENTIAL) {
    rc = run_chain(st, c, m, from, to, x, &y);
  } else if (m->kind == ACQ_M_RESIDUAL) {
    atc_tensor *a = NULL, *b = NULL, *s = NULL;
    rc = run_chain(st, c, m, 0, m->nmain, x, &a) || run_chain(st, c, m, m->nmain, m->nchild, x, &b) ||
         atc_binary(st, ATC_ADD, a, b, &s);
    atc_tensor_free(a);
    atc_tensor_free(b);
    if (!rc && m->post_relu) {
      rc = atc_unary(st, ATC_RELU, s, &y);
      atc_tensor_free(s);
    } else {
      y = s;
    }
  } else if (m->kind == ACQ_M_GATE) {
    atc_tensor *a = NULL;
    rc = run_chain(st, c, m, 0, m->nchild, x, &a) || atc_binary(st, ATC_MUL, x, a, &y);
    atc_tensor_free(a);
  } else {
    rc = forward_leaf(st, c, m, x, &y);
    if (rc && c->path[0]) {
      char msg[ACQ_PATH_MAX + ATC_MSG_SIZE + 32];
      snprintf(msg, sizeof msg, "%s (%s): %s", c->path, acq_mkind_name(m->kind), st->msg);
      snprintf(st->msg, sizeof st->msg, "%.*s", (int)sizeof st->msg - 1, msg);
    }
  }
  if (rc) {
    atc_tensor_free(y);
    return rc;
  }
  if (m->tap) {
    atc_tensor_free(c->features);
    c->features = NULL;
    if (atc_tensor_alias(st, y, &c->features)) {
      atc_tensor_free(y);
      return st->code;
    }
  }
  *out = y;
  return ATC_OK;
}

/* ---- configuration ------------------------------------------------------------ */

static int fix_bn_visit(acq_module *m, const char *path, void *ud) {
  (void)path;
  if (m->kind == ACQ_M_BATCHNORM2D || m->kind == ACQ_M_CONDBN) m->bn_fixed = *(int *)ud;
  return 0;
}

void acq_module_fix_bn(acq_module *m, int mode) { acq_module_walk(m, fix_bn_visit, &mode); }

void acq_module_set_tap(acq_module *m, int on) { m->tap = on ? 1 : 0; }

const char *acq_bn_mode_name(int mode) {
  static const char *const names[] = {"eval", "batch", "train"}; /* acq_bn_mode order */
  return mode >= 0 && mode < 3 ? names[mode] : "?";
}
