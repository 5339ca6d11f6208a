/*
 * loss.c -- eq. (3) attention map, eqs. (6), (7), (9), (10), (13), (14)
 * losses and the weighted sums of eqs. (15), (16), composed from shim calls
 * (so autograd, dtypes and devices come from libtorch).
 *
 * Every function keeps its temporaries in a scope that is freed on every
 * path; results are moved out of it. Errors get the loss's name as prefix.
 */
#include "loss.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- temporaries ------------------------------------------------------------ */
#define SCOPE_MAX 64

typedef struct scope {
  atc_tensor *t[SCOPE_MAX];
  int n;
} scope;

/* A fresh output slot; NULL if the scope is full (the shim then rejects it). */
static atc_tensor **slot(scope *s) {
  if (s->n == SCOPE_MAX) return NULL;
  s->t[s->n] = NULL;
  return &s->t[s->n++];
}

/* Moves a tensor out of the scope (the caller owns it). */
static atc_tensor *take(atc_tensor **p) {
  atc_tensor *t = *p;
  *p = NULL;
  return t;
}

static void scope_free(scope *s) {
  for (int i = 0; i < s->n; i++) atc_tensor_free(s->t[i]);
  s->n = 0;
}

static int argf(atc_status *st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  st->code = ATC_ERR_ARG;
  vsnprintf(st->msg, sizeof st->msg, fmt, ap);
  va_end(ap);
  return st->code;
}

/* Frees the scope and, on error, prefixes the message with the loss's name. */
static int finish(atc_status *st, scope *s, const char *what, int rc) {
  scope_free(s);
  if (rc != ATC_OK) {
    char msg[ATC_MSG_SIZE + 128];
    size_t n = strlen(what);
    if (strncmp(st->msg, what, n) != 0 || st->msg[n] != ':') {
      snprintf(msg, sizeof msg, "%.100s: %s", what, st->msg);
      snprintf(st->msg, sizeof st->msg, "%.*s", (int)sizeof st->msg - 1, msg);
    }
    return st->code ? st->code : ATC_ERR_UNKNOWN;
  }
  st->code = ATC_OK;
  return ATC_OK;
}

#define R(call)                          \
  do {                                   \
    if ((rc = (call)) != ATC_OK) goto out; \
  } while (0)
#define BAD(...)                         \
  do {                                   \
    rc = argf(st, __VA_ARGS__);          \
    goto out;                            \
  } while (0)

static atc_scalar D(double v) {
  atc_scalar s = {0, 0, v};
  return s;
}

static int meta(atc_status *st, const atc_tensor *t, const char *which, atc_meta *m) {
  if (!t) return argf(st, "%s is missing", which);
  return atc_tensor_meta(st, t, m);
}

static void shape_str(const atc_meta *m, char *buf, size_t n) {
  size_t k = 0;
  k += (size_t)snprintf(buf + k, n - k, "[");
  for (int i = 0; i < m->ndim && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)m->sizes[i]);
  if (k < n) snprintf(buf + k, n - k, "]");
}

static int is_float(const atc_meta *m) {
  return m->dtype == ATC_F32 || m->dtype == ATC_F64 || m->dtype == ATC_F16 ||
         m->dtype == ATC_BF16;
}

/* Reads a 0-dim tensor as a double. */
static int scalar_of(atc_status *st, const atc_tensor *t, double *v) {
  atc_scalar s;
  if (atc_item(st, t, &s)) return st->code;
  *v = s.is_int ? (double)s.i : s.d;
  return ATC_OK;
}

int acq_check_finite(atc_status *st, const char *what, const char *which,
                     const atc_tensor *t) {
  atc_tensor *fin = NULL, *all = NULL;
  atc_meta m;
  int rc = atc_tensor_meta(st, t, &m);
  if (rc) return rc;
  if (!is_float(&m)) return ATC_OK;
  atc_scalar s = {1, 1, 1.0};
  rc = atc_unary(st, ATC_ISFINITE, t, &fin);
  if (!rc) rc = atc_reduce(st, ATC_ALL, fin, NULL, 0, 0, &all);
  if (!rc) rc = atc_item(st, all, &s);
  if (!rc && !s.i) {
    /* Say which: NaN or Inf, and where the first one is. */
    atc_tensor *nan = NULL, *any = NULL;
    atc_scalar hasnan = {1, 0, 0.0};
    if (!atc_unary(st, ATC_ISNAN, t, &nan) && !atc_reduce(st, ATC_ANY, nan, NULL, 0, 0, &any))
      atc_item(st, any, &hasnan);
    atc_tensor_free(nan);
    atc_tensor_free(any);
    rc = argf(st, "%s: %s contains %s", what, which, hasnan.i ? "NaN" : "Inf");
  }
  atc_tensor_free(fin);
  atc_tensor_free(all);
  return rc;
}

/* An int64 [N] tensor with values in [0, hi). */
static int check_index(atc_status *st, const char *which, const atc_tensor *t, int64_t n,
                       int64_t hi, const char *range_what) {
  atc_meta m;
  int rc = meta(st, t, which, &m);
  if (rc) return rc;
  char sh[96];
  shape_str(&m, sh, sizeof sh);
  if (m.dtype != ATC_I64) return argf(st, "%s must be int64, got %s", which, atc_dtype_name(m.dtype));
  if (m.ndim != 1 || m.sizes[0] != n)
    return argf(st, "%s has shape %s, expected [%lld] (one per sample)", which, sh, (long long)n);
  if (n == 0) return ATC_OK;
  atc_tensor *lo = NULL, *up = NULL;
  double vlo = 0, vhi = 0;
  rc = atc_reduce(st, ATC_AMIN, t, NULL, 0, 0, &lo);
  if (!rc) rc = atc_reduce(st, ATC_AMAX, t, NULL, 0, 0, &up);
  if (!rc) rc = scalar_of(st, lo, &vlo);
  if (!rc) rc = scalar_of(st, up, &vhi);
  atc_tensor_free(lo);
  atc_tensor_free(up);
  if (rc) return rc;
  if (vlo < 0) return argf(st, "%s %lld is outside [0, %lld) (%s)", which, (long long)vlo, (long long)hi, range_what);
  if (vhi >= (double)hi)
    return argf(st, "%s %lld is outside [0, %lld) (%s)", which, (long long)vhi, (long long)hi, range_what);
  return ATC_OK;
}

/* A floating tensor of ndim dims; sizes[] < 0 means any. */
static int check_float(atc_status *st, const char *which, const atc_tensor *t, int ndim,
                       atc_meta *m) {
  int rc = meta(st, t, which, m);
  if (rc) return rc;
  if (!is_float(m)) return argf(st, "%s must be a floating tensor, got %s", which, atc_dtype_name(m->dtype));
  if (ndim >= 0 && m->ndim != ndim) {
    char sh[96];
    shape_str(m, sh, sizeof sh);
    return argf(st, "%s must have %d dimensions, got shape %s", which, ndim, sh);
  }
  return ATC_OK;
}

static int same_shape(atc_status *st, const char *wa, const atc_meta *a, const char *wb,
                      const atc_meta *b) {
  int same = a->ndim == b->ndim;
  for (int i = 0; same && i < a->ndim; i++) same = a->sizes[i] == b->sizes[i];
  if (same) return ATC_OK;
  char sa[96], sb[96];
  shape_str(a, sa, sizeof sa);
  shape_str(b, sb, sizeof sb);
  return argf(st, "%s has shape %s but %s has shape %s", wa, sa, wb, sb);
}

/* ---- eq. (3) ------------------------------------------------------------------- */
int acq_attention(atc_status *st, const atc_tensor *A, const int64_t *size, atc_tensor **M) {
  static const char *what = "attention";
  static const int64_t d1[1] = {1}, d12[2] = {1, 2};
  scope s = {0};
  atc_meta a;
  int rc;
  R(check_float(st, "the feature map A", A, 4, &a));
  R(acq_check_finite(st, what, "the feature map A", A));
  atc_tensor **sq = slot(&s), **S = slot(&s), **mn = slot(&s), **mx = slot(&s);
  atc_tensor **num = slot(&s), **den = slot(&s), **denc = slot(&s), **m = slot(&s);
  R(atc_unary(st, ATC_SQUARE, A, sq));
  R(atc_reduce(st, ATC_SUM, *sq, d1, 1, 0, S)); /* sum_C A^2: [N,h,w] */
  R(atc_reduce(st, ATC_AMIN, *S, d12, 2, 1, mn));
  R(atc_reduce(st, ATC_AMAX, *S, d12, 2, 1, mx));
  R(atc_binary(st, ATC_SUB, *S, *mn, num));
  R(atc_binary(st, ATC_SUB, *mx, *mn, den));
  R(atc_clamp(st, *den, 1, D(1e-12), 0, D(0), denc));
  R(atc_binary(st, ATC_DIV, *num, *denc, m));
  if (size) {
    atc_tensor **u = slot(&s), **r = slot(&s), **q = slot(&s);
    if (size[0] <= 0 || size[1] <= 0) BAD("size %lldx%lld is not positive", (long long)size[0], (long long)size[1]);
    R(atc_unsqueeze(st, *m, 1, u));
    R(atc_upsample_bilinear2d(st, *u, size, r));
    R(atc_squeeze(st, *r, 0, 1, q));
    *M = take(q);
  } else {
    *M = take(m);
  }
out:
  return finish(st, &s, what, rc);
}

/* ---- eq. (6) ------------------------------------------------------------------- */
/* One statistic's part: ||a - b||^2 over the channels (sum) or its mean;
 * with margin m > 0 the slack form ||max(|a - b| - m, 0)||^2 (DSG). a is [C]
 * (a 0-dim result) or [N,C] per sample (an [N] result). */
static int bns_term(atc_status *st, scope *s, const atc_tensor *a, const atc_tensor *b,
                    acq_reduction red, double margin, atc_tensor ***term) {
  static const int64_t last[1] = {-1};
  atc_tensor **d = slot(s), **sq = slot(s);
  *term = slot(s);
  if (atc_binary(st, ATC_SUB, a, b, d)) return st->code;
  if (margin > 0) {
    atc_tensor **ad = slot(s), **sl = slot(s), **h = slot(s);
    if (atc_unary(st, ATC_ABS, *d, ad) || atc_binary_scalar(st, ATC_SUB, *ad, D(margin), 0, sl) ||
        atc_unary(st, ATC_RELU, *sl, h))
      return st->code;
    d = h;
  }
  if (atc_unary(st, ATC_SQUARE, *d, sq)) return st->code;
  return atc_reduce(st, red == ACQ_RED_SUM ? ATC_SUM : ATC_MEAN, *sq, last, 1, 0, *term);
}

static int std_of(atc_status *st, scope *s, const atc_tensor *v, double eps, atc_tensor ***out) {
  atc_tensor **ve = slot(s);
  *out = slot(s);
  if (atc_binary_scalar(st, ATC_ADD, v, D(eps), 0, ve)) return st->code;
  return atc_unary(st, ATC_SQRT, *ve, *out);
}

/* One layer's term (the sum of the mean and variance parts), owned by *term:
 * 0-dim for batch statistics, [N] for per-sample ones (*nsamp is then N). */
static int bns_layer(atc_status *st, const acq_bns_layer *l, acq_bns_form form,
                     acq_reduction red, double margin, atc_tensor **term, int64_t *nsamp) {
  scope s = {0};
  atc_meta mm, mv, mr, mq;
  const char *nm = l->name ? l->name : "?";
  char w1[160], w2[160];
  atc_tensor **tm, **tv;
  int rc;
  snprintf(w1, sizeof w1, "layer %s batch mean", nm);
  snprintf(w2, sizeof w2, "layer %s running mean", nm);
  R(check_float(st, w1, l->mean, -1, &mm));
  R(check_float(st, w2, l->rmean, 1, &mr));
  if (mm.ndim != 1 && mm.ndim != 2) BAD("%s must be [C] or [N,C] (per sample)", w1);
  if (mm.sizes[mm.ndim - 1] != mr.sizes[0]) R(same_shape(st, w1, &mm, w2, &mr));
  *nsamp = mm.ndim == 2 ? mm.sizes[0] : -1;
  snprintf(w1, sizeof w1, "layer %s batch variance", nm);
  snprintf(w2, sizeof w2, "layer %s running variance", nm);
  R(check_float(st, w1, l->var, mm.ndim, &mv));
  R(check_float(st, w2, l->rvar, 1, &mq));
  R(same_shape(st, w1, &mv, "its mean", &mm));
  if (mv.sizes[mv.ndim - 1] != mq.sizes[0]) R(same_shape(st, w1, &mv, w2, &mq));
  R(bns_term(st, &s, l->mean, l->rmean, red, margin, &tm));
  if (form == ACQ_BNS_STD) {
    atc_tensor **sa, **sb;
    R(std_of(st, &s, l->var, l->eps, &sa));
    R(std_of(st, &s, l->rvar, l->eps, &sb));
    R(bns_term(st, &s, *sa, *sb, red, margin, &tv));
  } else {
    R(bns_term(st, &s, l->var, l->rvar, red, margin, &tv));
  }
  R(atc_binary(st, ATC_ADD, *tm, *tv, term));
out:
  scope_free(&s);
  return rc;
}

int acq_loss_bns(atc_status *st, const char *what, const acq_bns_layer *l, int n,
                 acq_bns_form form, acq_reduction red, double margin,
                 const atc_tensor *weights, atc_tensor **loss, atc_tensor **layers) {
  enum { MAXL = 1024 };
  scope s = {0};
  int rc = ATC_OK, nt = 0;
  int64_t N = -1;
  atc_tensor *terms[MAXL];
  what = what ? what : "L_BNS";
  if (n <= 0) BAD("no BN statistics were recorded (was the forward run with stats = true?)");
  if (n > MAXL) BAD("%d BN layers, at most %d", n, (int)MAXL);
  if (form != ACQ_BNS_VAR && form != ACQ_BNS_STD) BAD("unknown form %d", (int)form);
  if (red != ACQ_RED_SUM && red != ACQ_RED_MEAN) BAD("unknown reduction %d", (int)red);
  if (!(margin >= 0) || !isfinite(margin)) BAD("margin %g must be >= 0", margin);
  for (; nt < n; nt++) {
    int64_t ni = -1;
    terms[nt] = NULL;
    R(bns_layer(st, &l[nt], form, red, margin, &terms[nt], &ni));
    if (nt == 0) N = ni;
    else if (ni != N)
      BAD("layer %s has %s statistics but layer %s has %s", l[0].name ? l[0].name : "?",
          N < 0 ? "batch" : "per-sample", l[nt].name ? l[nt].name : "?", ni < 0 ? "batch" : "per-sample");
  }
  if (weights && N < 0) BAD("per-sample weights need per-sample statistics (forward with stats = \"sample\")");
  atc_tensor **stk = slot(&s), **tot = slot(&s);
  R(atc_stack(st, (const atc_tensor *const *)terms, n, 0, stk)); /* [n] or [n,N] */
  if (N >= 0) {
    /* per sample: weight each (layer, sample) term, reduce over the layers,
     * then average over the samples */
    static const int64_t d0[1] = {0}, d1[1] = {1};
    atc_tensor **wt = slot(&s), **ws = slot(&s), **per = slot(&s), **lay = slot(&s);
    if (weights) {
      atc_meta wm;
      R(check_float(st, "weights", weights, 2, &wm));
      if (wm.sizes[0] != N || wm.sizes[1] != n)
        BAD("weights must be [%lld,%d] (samples x BN layers), got [%lld,%lld]", (long long)N, n,
            (long long)wm.sizes[0], (long long)wm.sizes[1]);
      R(atc_transpose(st, weights, 0, 1, wt));
      R(atc_binary(st, ATC_MUL, *stk, *wt, ws));
    } else {
      R(atc_tensor_alias(st, *stk, ws));
    }
    R(atc_reduce(st, red == ACQ_RED_SUM ? ATC_SUM : ATC_MEAN, *ws, d0, 1, 0, per)); /* [N] */
    R(atc_reduce(st, ATC_MEAN, *per, NULL, 0, 0, tot));
    R(atc_reduce(st, ATC_MEAN, *ws, d1, 1, 0, lay)); /* [n] */
    atc_tensor *t = *stk;
    *stk = *lay;
    *lay = t;
  } else {
    R(atc_reduce(st, red == ACQ_RED_SUM ? ATC_SUM : ATC_MEAN, *stk, NULL, 0, 0, tot));
  }
  {
    /* Name the first layer whose statistics are not finite. */
    double v = 0;
    R(scalar_of(st, *tot, &v));
    if (!isfinite(v)) {
      for (int i = 0; i < n; i++) {
        const char *nm = l[i].name ? l[i].name : "?";
        char w[160];
        snprintf(w, sizeof w, "layer %s's batch mean", nm);
        R(acq_check_finite(st, what, w, l[i].mean));
        snprintf(w, sizeof w, "layer %s's batch variance", nm);
        R(acq_check_finite(st, what, w, l[i].var));
        snprintf(w, sizeof w, "layer %s's running mean", nm);
        R(acq_check_finite(st, what, w, l[i].rmean));
        snprintf(w, sizeof w, "layer %s's running variance", nm);
        R(acq_check_finite(st, what, w, l[i].rvar));
      }
      BAD("the loss is %s (finite statistics whose squared differences overflow)",
          isnan(v) ? "NaN" : "Inf");
    }
  }
  *loss = take(tot);
  if (layers) *layers = take(stk);
out:
  for (int i = 0; i < nt && i < n; i++) atc_tensor_free(terms[i]);
  return finish(st, &s, what, rc);
}

/* ---- eq. (7) / eq. (14) --------------------------------------------------------- */
int acq_loss_ce(atc_status *st, const char *what, const atc_tensor *logits,
                const atc_tensor *target, atc_tensor **loss) {
  scope s = {0};
  atc_meta m;
  int rc;
  what = what ? what : "L_CE";
  R(check_float(st, "logits", logits, 2, &m));
  R(acq_check_finite(st, what, "logits", logits));
  R(check_index(st, "label", target, m.sizes[0], m.sizes[1], "number of classes"));
  if (m.sizes[0] == 0) BAD("empty batch");
  atc_tensor **ls = slot(&s), **idx = slot(&s), **g = slot(&s), **mean = slot(&s), **neg = slot(&s);
  int64_t col[2] = {-1, 1};
  R(atc_softmax(st, logits, 1, 1, ls));
  R(atc_view(st, target, col, 2, idx));
  R(atc_gather(st, *ls, 1, *idx, g));
  R(atc_reduce(st, ATC_MEAN, *g, NULL, 0, 0, mean));
  R(atc_unary(st, ATC_NEG, *mean, neg));
  *loss = take(neg);
out:
  return finish(st, &s, what, rc);
}

/* ---- soft-label cross-entropy ------------------------------------------------------ */
int acq_loss_soft_ce(atc_status *st, const char *what, const atc_tensor *logits,
                     const atc_tensor *probs, atc_tensor **loss) {
  scope s = {0};
  atc_meta ml, mp;
  int rc;
  what = what ? what : "L_CE";
  R(check_float(st, "logits", logits, 2, &ml));
  R(check_float(st, "soft labels", probs, 2, &mp));
  R(same_shape(st, "logits", &ml, "soft labels", &mp));
  if (ml.sizes[0] == 0) BAD("empty batch");
  R(acq_check_finite(st, what, "logits", logits));
  R(acq_check_finite(st, what, "soft labels", probs));
  atc_tensor **pd = slot(&s), **ls = slot(&s), **pl = slot(&s), **sum = slot(&s), **r = slot(&s);
  R(atc_detach(st, probs, pd));
  R(atc_softmax(st, logits, 1, 1, ls));
  R(atc_binary(st, ATC_MUL, *pd, *ls, pl));
  R(atc_reduce(st, ATC_SUM, *pl, NULL, 0, 0, sum));
  R(atc_binary_scalar(st, ATC_MUL, *sum, D(-1.0 / (double)ml.sizes[0]), 0, r));
  *loss = take(r);
out:
  return finish(st, &s, what, rc);
}

/* ---- eq. (9) --------------------------------------------------------------------- */
/* What KD and DKD check: student and teacher logits [N,K] alike, finite,
 * N > 0, a positive temperature. */
static int check_distill(atc_status *st, const char *what, const atc_tensor *q, const atc_tensor *f,
                         double T, atc_meta *mq) {
  atc_meta mf;
  int rc;
  if ((rc = check_float(st, "student logits", q, 2, mq)) || (rc = check_float(st, "teacher logits", f, 2, &mf)) ||
      (rc = same_shape(st, "student logits", mq, "teacher logits", &mf)))
    return rc;
  if (!(T > 0) || !isfinite(T)) return argf(st, "temperature %g must be positive", T);
  if (mq->sizes[0] == 0) return argf(st, "empty batch");
  if ((rc = acq_check_finite(st, what, "student logits", q))) return rc;
  return acq_check_finite(st, what, "teacher logits", f);
}

/* sum(t * (log t - log s)) * scale over every element, from probabilities
 * (binary parts, clamped away from 0) or from log-probabilities. */
static int kl_sum(atc_status *st, scope *s, const atc_tensor *pt, const atc_tensor *lt,
                  const atc_tensor *ls, double scale, atc_tensor ***out) {
  atc_tensor **d = slot(s), **m = slot(s), **sum = slot(s), **r = slot(s);
  int rc;
  if ((rc = atc_binary(st, ATC_SUB, lt, ls, d)) || (rc = atc_binary(st, ATC_MUL, pt, *d, m)) ||
      (rc = atc_reduce(st, ATC_SUM, *m, NULL, 0, 0, sum)) ||
      (rc = atc_binary_scalar(st, ATC_MUL, *sum, D(scale), 0, r)))
    return rc;
  *out = r;
  return ATC_OK;
}

/* KL(softmax(ft) || softmax(qt)) summed over every element, times scale,
 * from logits already divided by the temperature (ft: the teacher's, detached). */
static int kl_logits(atc_status *st, scope *s, const atc_tensor *qt, const atc_tensor *ft, double scale,
                     atc_tensor ***out) {
  atc_tensor **lq = slot(s), **lf = slot(s), **pf = slot(s);
  int rc;
  if ((rc = atc_softmax(st, qt, 1, 1, lq)) || (rc = atc_softmax(st, ft, 1, 1, lf)) ||
      (rc = atc_unary(st, ATC_EXP, *lf, pf)))
    return rc;
  return kl_sum(st, s, *pf, *lf, *lq, scale, out);
}

int acq_loss_kd(atc_status *st, const atc_tensor *q, const atc_tensor *f, double T,
                atc_tensor **loss) {
  static const char *what = "L_KD";
  scope s = {0};
  atc_meta mq;
  int rc;
  R(check_distill(st, what, q, f, T, &mq));
  atc_tensor **fd = slot(&s), **qs = slot(&s), **fs = slot(&s), **kd;
  R(atc_detach(st, f, fd));
  R(atc_binary_scalar(st, ATC_DIV, q, D(T), 0, qs));
  R(atc_binary_scalar(st, ATC_DIV, *fd, D(T), 0, fs));
  R(kl_logits(st, &s, *qs, *fs, T * T / (double)mq.sizes[0], &kd));
  *loss = take(kd);
out:
  return finish(st, &s, what, rc);
}

#define ACQ_PI 3.14159265358979323846

/* ---- decoupled knowledge distillation ------------------------------------------- */
/* [p_t, p_o] of softmax probabilities p [N,K] and the target mask gt, clamped
 * at 1e-30 (so a certain teacher gives 0 log 0 = 0, not NaN); log too. */
static int binary_split(atc_status *st, scope *s, const atc_tensor *p, const atc_tensor *gt,
                        const atc_tensor *other, atc_tensor ***b, atc_tensor ***lb) {
  atc_tensor **pg = slot(s), **po = slot(s), **t = slot(s), **o = slot(s), **c = slot(s);
  atc_tensor **cl = slot(s), **l = slot(s);
  int64_t d1 = 1;
  int rc;
  if ((rc = atc_binary(st, ATC_MUL, p, gt, pg)) || (rc = atc_binary(st, ATC_MUL, p, other, po)) ||
      (rc = atc_reduce(st, ATC_SUM, *pg, &d1, 1, 1, t)) || (rc = atc_reduce(st, ATC_SUM, *po, &d1, 1, 1, o)))
    return rc;
  const atc_tensor *parts[2] = {*t, *o};
  atc_scalar lo = D(1e-30), none = D(0);
  if ((rc = atc_cat(st, parts, 2, 1, c)) || (rc = atc_clamp(st, *c, 1, lo, 0, none, cl)) ||
      (rc = atc_unary(st, ATC_LOG, *cl, l)))
    return rc;
  *b = cl;
  *lb = l;
  return ATC_OK;
}

int acq_loss_dkd(atc_status *st, const atc_tensor *q, const atc_tensor *f, const atc_tensor *target,
                 double alpha, double beta, double T, atc_tensor **loss, atc_tensor **tckd,
                 atc_tensor **nckd) {
  static const char *what = "L_DKD";
  scope s = {0};
  atc_meta mq;
  int rc;
  R(check_distill(st, what, q, f, T, &mq));
  if (!isfinite(alpha) || !isfinite(beta)) BAD("alpha %g and beta %g must be finite", alpha, beta);
  if (mq.sizes[1] < 2) BAD("needs at least 2 classes, got %lld", (long long)mq.sizes[1]);
  R(check_index(st, "label", target, mq.sizes[0], mq.sizes[1], "number of classes"));
  atc_tensor **fd = slot(&s), **qs = slot(&s), **fs = slot(&s), **oh = slot(&s), **gt = slot(&s);
  atc_tensor **other = slot(&s), **ps = slot(&s), **pt = slot(&s);
  R(atc_detach(st, f, fd));
  R(atc_binary_scalar(st, ATC_DIV, q, D(T), 0, qs));
  R(atc_binary_scalar(st, ATC_DIV, *fd, D(T), 0, fs));
  R(atc_one_hot(st, target, mq.sizes[1], oh));
  R(atc_to_dtype(st, *oh, (atc_dtype)mq.dtype, gt));
  R(atc_binary_scalar(st, ATC_SUB, *gt, D(1.0), 1, other)); /* 1 - gt */
  R(atc_softmax(st, *qs, 1, 0, ps));
  R(atc_softmax(st, *fs, 1, 0, pt));
  /* TCKD: the binary target / non-target distributions */
  atc_tensor **bq, **lbq, **bf, **lbf, **tk, **nk;
  double scale = T * T / (double)mq.sizes[0];
  R(binary_split(st, &s, *ps, *gt, *other, &bq, &lbq));
  R(binary_split(st, &s, *pt, *gt, *other, &bf, &lbf));
  R(kl_sum(st, &s, *bf, *lbf, *lbq, scale, &tk));
  /* NCKD: the distributions over the non-target classes */
  atc_tensor **big = slot(&s), **qm = slot(&s), **fm = slot(&s);
  R(atc_binary_scalar(st, ATC_MUL, *gt, D(1000.0), 0, big));
  R(atc_binary(st, ATC_SUB, *qs, *big, qm));
  R(atc_binary(st, ATC_SUB, *fs, *big, fm));
  R(kl_logits(st, &s, *qm, *fm, scale, &nk));
  atc_tensor **a = slot(&s), **b = slot(&s), **sum = slot(&s);
  R(atc_binary_scalar(st, ATC_MUL, *tk, D(alpha), 0, a));
  R(atc_binary_scalar(st, ATC_MUL, *nk, D(beta), 0, b));
  R(atc_binary(st, ATC_ADD, *a, *b, sum));
  if (tckd) R(atc_detach(st, *tk, tckd));
  if (nckd) R(atc_detach(st, *nk, nckd));
  *loss = take(sum);
out:
  if (rc) {
    if (tckd) atc_tensor_free(*tckd), *tckd = NULL;
    if (nckd) atc_tensor_free(*nckd), *nckd = NULL;
  }
  return finish(st, &s, what, rc);
}

/* ---- additive angular margin ----------------------------------------------------- */
/* x / max(|x|, 1e-12) along dim 1. */
static int l2_normalize(atc_status *st, scope *s, const atc_tensor *x, atc_tensor ***out) {
  atc_tensor **sq = slot(s), **ss = slot(s), **cl = slot(s), **n = slot(s), **r = slot(s);
  int64_t d1 = 1;
  int rc;
  if ((rc = atc_unary(st, ATC_SQUARE, x, sq)) || (rc = atc_reduce(st, ATC_SUM, *sq, &d1, 1, 1, ss)) ||
      (rc = atc_clamp(st, *ss, 1, D(1e-24), 0, D(0), cl)) || (rc = atc_unary(st, ATC_SQRT, *cl, n)) ||
      (rc = atc_binary(st, ATC_DIV, x, *n, r)))
    return rc;
  *out = r;
  return ATC_OK;
}

int acq_angular_margin(atc_status *st, const atc_tensor *x, const atc_tensor *centres,
                       const atc_tensor *target, double sc, double m, atc_tensor **logits,
                       atc_tensor **cos_target) {
  static const char *what = "angular_margin";
  scope s = {0};
  atc_meta mx, mc;
  int rc;
  R(check_float(st, "features", x, 2, &mx));
  R(check_float(st, "class centres", centres, 2, &mc));
  if (mx.sizes[1] != mc.sizes[1])
    BAD("features have %lld dimensions, class centres %lld", (long long)mx.sizes[1], (long long)mc.sizes[1]);
  if (!(sc > 0) || !isfinite(sc)) BAD("scale %g must be positive", sc);
  if (!(m >= 0) || !(m < ACQ_PI / 2)) BAD("margin %g must be in [0, pi/2)", m);
  if (mx.sizes[0] == 0) BAD("empty batch");
  R(check_index(st, "label", target, mx.sizes[0], mc.sizes[0], "number of class centres"));
  R(acq_check_finite(st, what, "features", x));
  R(acq_check_finite(st, what, "class centres", centres));
  atc_tensor **cd = slot(&s), **xn, **cn, **ct = slot(&s), **cs = slot(&s), **cc = slot(&s);
  R(atc_detach(st, centres, cd));
  R(l2_normalize(st, &s, x, &xn));
  R(l2_normalize(st, &s, *cd, &cn));
  R(atc_transpose(st, *cn, 0, 1, ct));
  R(atc_matmul(st, *xn, *ct, cs));
  /* inside (-1, 1), so sin(theta) = sqrt(1 - cos^2) keeps a finite gradient */
  R(atc_clamp(st, *cs, 1, D(-1 + 1e-6), 1, D(1 - 1e-6), cc));
  atc_tensor **idx = slot(&s), **cy = slot(&s), **c2 = slot(&s), **s2 = slot(&s), **sn = slot(&s);
  atc_tensor **a = slot(&s), **b = slot(&s), **phi = slot(&s), **lin = slot(&s), **past = slot(&s), **ph = slot(&s);
  int64_t col[2] = {-1, 1};
  R(atc_view(st, target, col, 2, idx));
  R(atc_gather(st, *cc, 1, *idx, cy)); /* [N,1] */
  R(atc_unary(st, ATC_SQUARE, *cy, c2));
  R(atc_binary_scalar(st, ATC_SUB, *c2, D(1.0), 1, s2)); /* 1 - cos^2 */
  R(atc_unary(st, ATC_SQRT, *s2, sn));
  R(atc_binary_scalar(st, ATC_MUL, *cy, D(cos(m)), 0, a));
  R(atc_binary_scalar(st, ATC_MUL, *sn, D(sin(m)), 0, b));
  R(atc_binary(st, ATC_SUB, *a, *b, phi)); /* cos(theta + m) */
  R(atc_binary_scalar(st, ATC_SUB, *cy, D(sin(m) * m), 0, lin));
  R(atc_binary_scalar(st, ATC_GT, *cy, D(cos(ACQ_PI - m)), 0, past));
  R(atc_where(st, *past, *phi, *lin, ph));
  /* replace the target column: cos + one_hot * (phi - cos_target) */
  atc_tensor **oh = slot(&s), **gt = slot(&s), **dlt = slot(&s), **md = slot(&s), **mc2 = slot(&s), **r = slot(&s);
  R(atc_one_hot(st, target, mc.sizes[0], oh));
  R(atc_to_dtype(st, *oh, (atc_dtype)mx.dtype, gt));
  R(atc_binary(st, ATC_SUB, *ph, *cy, dlt));
  R(atc_binary(st, ATC_MUL, *gt, *dlt, md));
  R(atc_binary(st, ATC_ADD, *cc, *md, mc2));
  R(atc_binary_scalar(st, ATC_MUL, *mc2, D(sc), 0, r));
  if (cos_target) {
    atc_tensor **v = slot(&s);
    int64_t flat[1] = {-1};
    R(atc_view(st, *cy, flat, 1, v));
    R(atc_detach(st, *v, cos_target));
  }
  *logits = take(r);
out:
  if (rc && cos_target) atc_tensor_free(*cos_target), *cos_target = NULL;
  return finish(st, &s, what, rc);
}

/* ---- eq. (10) --------------------------------------------------------------------- */
int acq_loss_cacm(atc_status *st, const atc_tensor *M, const atc_tensor *p, double eps1,
                  atc_tensor **loss, atc_tensor **m_at_p) {
  static const char *what = "L_CACM";
  scope s = {0};
  atc_meta m;
  int rc;
  R(check_float(st, "attention map M", M, 3, &m));
  if (m.sizes[0] == 0) BAD("empty batch");
  if (!(eps1 >= 0) || !isfinite(eps1)) BAD("relaxing factor %g must be >= 0", eps1);
  R(acq_check_finite(st, what, "attention map M", M));
  char grid[64];
  snprintf(grid, sizeof grid, "the %lldx%lld attention grid", (long long)m.sizes[1], (long long)m.sizes[2]);
  R(check_index(st, "position", p, m.sizes[0], m.sizes[1] * m.sizes[2], grid));
  atc_tensor **flat = slot(&s), **idx = slot(&s), **g = slot(&s), **mp = slot(&s);
  atc_tensor **v = slot(&s), **lv = slot(&s), **mean = slot(&s), **neg = slot(&s);
  int64_t fl[2] = {m.sizes[0], -1}, col[2] = {-1, 1}, row[1] = {-1};
  R(atc_reshape(st, M, fl, 2, flat)); /* row-major: p = row * w + col */
  R(atc_view(st, p, col, 2, idx));
  R(atc_gather(st, *flat, 1, *idx, g));
  R(atc_view(st, *g, row, 1, mp));
  R(atc_binary_scalar(st, ATC_ADD, *mp, D(eps1), 0, v));
  {
    atc_tensor **vc = slot(&s);
    R(atc_clamp(st, *v, 0, D(0), 1, D(1.0), vc)); /* min(M(p) + eps1, 1) */
    R(atc_unary(st, ATC_LOG, *vc, lv));           /* BCE with target 1 = -log */
  }
  R(atc_reduce(st, ATC_MEAN, *lv, NULL, 0, 0, mean));
  R(atc_unary(st, ATC_NEG, *mean, neg));
  R(acq_check_finite(st, what, "the loss", *neg));
  atc_tensor **mpd = slot(&s);
  R(atc_detach(st, *mp, mpd));
  if (m_at_p) *m_at_p = take(mpd);
  *loss = take(neg);
out:
  return finish(st, &s, what, rc);
}

/* ---- eq. (13) --------------------------------------------------------------------- */
int acq_loss_ad(atc_status *st, const atc_tensor *l1, const atc_tensor *l2,
                const atc_tensor *z1, const atc_tensor *z2, acq_ad_form form,
                atc_tensor **loss, atc_tensor **js_out, atc_tensor **mae_out,
                atc_tensor **o1_out, atc_tensor **o2_out) {
  static const char *what = "L_AD";
  static const int64_t d1[1] = {1};
  scope s = {0};
  atc_meta a, b, za, zb;
  int rc;
  R(check_float(st, "logits of x1", l1, 2, &a));
  R(check_float(st, "logits of x2", l2, 2, &b));
  R(same_shape(st, "logits of x1", &a, "logits of x2", &b));
  R(check_float(st, "z1", z1, 2, &za));
  R(check_float(st, "z2", z2, 2, &zb));
  R(same_shape(st, "z1", &za, "z2", &zb));
  if (za.sizes[0] != a.sizes[0])
    BAD("%lld noise vectors but %lld pairs of logits (batch sizes differ)", (long long)za.sizes[0],
        (long long)a.sizes[0]);
  if (a.sizes[0] == 0) BAD("empty batch");
  if (a.sizes[1] < 3) BAD("needs at least 3 classes (two are removed), got %lld", (long long)a.sizes[1]);
  if (form != ACQ_AD_BATCH && form != ACQ_AD_SAMPLE) BAD("unknown form %d", (int)form);
  R(acq_check_finite(st, what, "logits of x1", l1));
  R(acq_check_finite(st, what, "logits of x2", l2));
  R(acq_check_finite(st, what, "z1", z1));
  R(acq_check_finite(st, what, "z2", z2));
  int64_t K = a.sizes[1];
  atc_tensor **o1 = slot(&s), **o2 = slot(&s), **h1 = slot(&s), **h2 = slot(&s);
  atc_tensor **hs = slot(&s), **mask = slot(&s), **f1 = slot(&s), **f2 = slot(&s);
  atc_tensor **lp1 = slot(&s), **lp2 = slot(&s), **p1 = slot(&s), **p2 = slot(&s);
  /* o1, o2 = argmax of F^eval (constants) */
  R(atc_argminmax(st, 1, l1, 1, 1, 0, o1));
  R(atc_argminmax(st, 1, l2, 1, 1, 0, o2));
  R(atc_one_hot(st, *o1, K, h1));
  R(atc_one_hot(st, *o2, K, h2));
  R(atc_binary(st, ATC_ADD, *h1, *h2, hs));
  R(atc_binary_scalar(st, ATC_GT, *hs, (atc_scalar){1, 0, 0.0}, 0, mask));
  /* Removed classes get a large finite negative logit, so their probability
   * is exactly 0 and every term below stays finite (no 0 * inf). */
  R(atc_masked_fill(st, l1, *mask, D(-1e30), f1));
  R(atc_masked_fill(st, l2, *mask, D(-1e30), f2));
  R(atc_softmax(st, *f1, 1, 1, lp1));
  R(atc_softmax(st, *f2, 1, 1, lp2));
  R(atc_unary(st, ATC_EXP, *lp1, p1));
  R(atc_unary(st, ATC_EXP, *lp2, p2));
  /* log of the mixture (P + Q) / 2, computed stably from the log-probabilities */
  atc_tensor **mx = slot(&s), **e1 = slot(&s), **e2 = slot(&s), **x1 = slot(&s), **x2 = slot(&s);
  atc_tensor **es = slot(&s), **lh = slot(&s), **lm0 = slot(&s), **lm = slot(&s);
  R(atc_binary(st, ATC_MAXIMUM, *lp1, *lp2, mx));
  R(atc_binary(st, ATC_SUB, *lp1, *mx, e1));
  R(atc_binary(st, ATC_SUB, *lp2, *mx, e2));
  R(atc_unary(st, ATC_EXP, *e1, x1));
  R(atc_unary(st, ATC_EXP, *e2, x2));
  R(atc_binary(st, ATC_ADD, *x1, *x2, es));
  R(atc_unary(st, ATC_LOG, *es, lh));
  R(atc_binary_scalar(st, ATC_SUB, *lh, D(log(2.0)), 0, lm0));
  R(atc_binary(st, ATC_ADD, *mx, *lm0, lm));
  /* JS_i = (KL(P||M) + KL(Q||M)) / 2 */
  atc_tensor **d1p = slot(&s), **d2p = slot(&s), **t1 = slot(&s), **t2 = slot(&s);
  atc_tensor **tt = slot(&s), **ksum = slot(&s), **js = slot(&s);
  R(atc_binary(st, ATC_SUB, *lp1, *lm, d1p));
  R(atc_binary(st, ATC_SUB, *lp2, *lm, d2p));
  R(atc_binary(st, ATC_MUL, *p1, *d1p, t1));
  R(atc_binary(st, ATC_MUL, *p2, *d2p, t2));
  R(atc_binary(st, ATC_ADD, *t1, *t2, tt));
  R(atc_reduce(st, ATC_SUM, *tt, d1, 1, 0, ksum));
  R(atc_binary_scalar(st, ATC_MUL, *ksum, D(0.5), 0, js));
  /* MAE_i = mean |z1 - z2| (constants for G) */
  atc_tensor **dz = slot(&s), **adz = slot(&s), **mae = slot(&s), **l = slot(&s);
  R(atc_binary(st, ATC_SUB, z1, z2, dz));
  R(atc_unary(st, ATC_ABS, *dz, adz));
  R(atc_reduce(st, ATC_MEAN, *adz, d1, 1, 0, mae));
  if (form == ACQ_AD_BATCH) {
    atc_tensor **mm = slot(&s), **mj = slot(&s), **den = slot(&s);
    R(atc_reduce(st, ATC_MEAN, *mae, NULL, 0, 0, mm));
    R(atc_reduce(st, ATC_MEAN, *js, NULL, 0, 0, mj));
    R(atc_binary_scalar(st, ATC_ADD, *mj, D(1e-8), 0, den));
    R(atc_binary(st, ATC_DIV, *mm, *den, l));
  } else {
    atc_tensor **den = slot(&s), **r = slot(&s);
    R(atc_binary_scalar(st, ATC_ADD, *js, D(1e-8), 0, den));
    R(atc_binary(st, ATC_DIV, *mae, *den, r));
    R(atc_reduce(st, ATC_MEAN, *r, NULL, 0, 0, l));
  }
  R(acq_check_finite(st, what, "the loss", *l));
  atc_tensor **jsd = slot(&s);
  R(atc_detach(st, *js, jsd));
  if (js_out) *js_out = take(jsd);
  if (mae_out) *mae_out = take(mae);
  if (o1_out) *o1_out = take(o1);
  if (o2_out) *o2_out = take(o2);
  *loss = take(l);
out:
  return finish(st, &s, what, rc);
}

/* ---- eq. (14) Penalty_CACM ------------------------------------------------------------ */
int acq_penalty_cacm(atc_status *st, const atc_tensor *Mt, const atc_tensor *Me, double eps2,
                     atc_tensor **loss, atc_tensor **mae_out) {
  static const char *what = "Pen_CACM";
  scope s = {0};
  atc_meta a, b;
  int rc;
  R(check_float(st, "attention map of F^train", Mt, -1, &a));
  R(check_float(st, "attention map of F^eval", Me, -1, &b));
  R(same_shape(st, "attention map of F^train", &a, "attention map of F^eval", &b));
  if (a.numel == 0) BAD("empty attention maps");
  if (!(eps2 >= 0) || !isfinite(eps2)) BAD("relaxing factor %g must be >= 0", eps2);
  R(acq_check_finite(st, what, "attention map of F^train", Mt));
  R(acq_check_finite(st, what, "attention map of F^eval", Me));
  atc_tensor **d = slot(&s), **ad = slot(&s), **mae = slot(&s), **h = slot(&s), **l = slot(&s);
  R(atc_binary(st, ATC_SUB, Mt, Me, d));
  R(atc_unary(st, ATC_ABS, *d, ad));
  R(atc_reduce(st, ATC_MEAN, *ad, NULL, 0, 0, mae));
  R(atc_binary_scalar(st, ATC_SUB, *mae, D(eps2), 0, h));
  R(atc_unary(st, ATC_RELU, *h, l)); /* max(MAE - eps2, 0) */
  atc_tensor **maed = slot(&s);
  R(atc_detach(st, *mae, maed));
  if (mae_out) *mae_out = take(maed);
  *loss = take(l);
out:
  return finish(st, &s, what, rc);
}

/* ---- eqs. (15), (16) ----------------------------------------------------------------- */
int acq_weighted_sum(atc_status *st, const char *what, const atc_tensor *const *terms,
                     const char *const *names, const double *w, int n, atc_tensor **out) {
  scope s = {0};
  int rc = ATC_OK;
  atc_tensor **acc = NULL; /* the running sum's slot */
  what = what ? what : "objective";
  for (int i = 0; i < n; i++) {
    if (!terms[i]) continue;
    const char *nm = names && names[i] ? names[i] : "?";
    atc_meta m;
    R(check_float(st, nm, terms[i], -1, &m));
    if (m.numel != 1) {
      char sh[96];
      shape_str(&m, sh, sizeof sh);
      BAD("term %s must be a scalar, got shape %s", nm, sh);
    }
    if (!isfinite(w[i])) BAD("coefficient of %s is %g", nm, w[i]);
    char which[96];
    snprintf(which, sizeof which, "term %s", nm);
    R(acq_check_finite(st, what, which, terms[i]));
    atc_tensor **wt = slot(&s);
    R(atc_binary_scalar(st, ATC_MUL, terms[i], D(w[i]), 0, wt));
    if (acc) {
      atc_tensor **sum = slot(&s);
      R(atc_binary(st, ATC_ADD, *acc, *wt, sum));
      acc = sum;
    } else {
      acc = wt;
    }
    if (s.n > SCOPE_MAX - 4) BAD("too many terms");
  }
  if (!acc) BAD("no terms");
  *out = take(acc);
out:
  return finish(st, &s, what, rc);
}
