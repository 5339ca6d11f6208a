/*
 * inundation.c -- the factor search of AIT's gradient inundation
 * (inundation.h): levels from the fake quantizer's codes, the search in C.
 */
#include "inundation.h"

#include <math.h>
#include <stdio.h>

typedef struct probe {
  const atc_tensor *w, *d;
  atc_tensor *lo, *hi, *codes; /* the levels before the step */
  int bits;
  int64_t numel;
} probe;

static void probe_free(probe *p) {
  atc_tensor_free(p->lo);
  atc_tensor_free(p->hi);
  atc_tensor_free(p->codes);
}

static int codes_of(atc_status *st, const probe *p, const atc_tensor *x, atc_tensor **codes) {
  atc_tensor *s = NULL, *b = NULL;
  int rc = atc_quantize_codes(st, x, p->lo, p->hi, p->bits, codes, &s, &b);
  atc_tensor_free(s);
  atc_tensor_free(b);
  return rc;
}

static int probe_init(atc_status *st, probe *p, const atc_tensor *w, const atc_tensor *d, int bits,
                      int per_channel) {
  atc_meta mw, md;
  p->w = w;
  p->d = d;
  p->bits = bits;
  if (atc_tensor_meta(st, w, &mw) || atc_tensor_meta(st, d, &md)) return st->code;
  int same = mw.ndim == md.ndim;
  for (int i = 0; same && i < mw.ndim; i++) same = mw.sizes[i] == md.sizes[i];
  if (!same) {
    st->code = ATC_ERR_ARG;
    snprintf(st->msg, sizeof st->msg, "inundation: the step and the weights differ in shape");
    return st->code;
  }
  p->numel = 1;
  for (int i = 0; i < mw.ndim; i++) p->numel *= mw.sizes[i];
  if (p->numel == 0) {
    st->code = ATC_ERR_ARG;
    snprintf(st->msg, sizeof st->msg, "inundation: empty weight tensor");
    return st->code;
  }
  if (atc_minmax_bounds(st, w, per_channel, &p->lo, &p->hi)) return st->code;
  return codes_of(st, p, w, &p->codes);
}

static int share_at(atc_status *st, const probe *p, double alpha, double *share) {
  atc_tensor *t[5] = {0};
  atc_scalar a = {0, 0, alpha}, n = {0, 0, 0};
  int rc = atc_binary_scalar(st, ATC_MUL, p->d, a, 0, &t[0]) || atc_binary(st, ATC_ADD, p->w, t[0], &t[1]) ||
           codes_of(st, p, t[1], &t[2]) || atc_binary(st, ATC_NE, t[2], p->codes, &t[3]) ||
           atc_reduce(st, ATC_SUM, t[3], NULL, 0, 0, &t[4]) || atc_item(st, t[4], &n);
  for (int i = 0; i < 5; i++) atc_tensor_free(t[i]);
  if (rc) return st->code;
  *share = (double)(n.is_int ? (double)n.i : n.d) / (double)p->numel;
  return ATC_OK;
}

int acq_level_change_share(atc_status *st, const atc_tensor *w, const atc_tensor *d, int bits,
                           int per_channel, double alpha, double *share) {
  probe p = {0};
  int rc = probe_init(st, &p, w, d, bits, per_channel) || share_at(st, &p, alpha, share);
  probe_free(&p);
  return rc ? st->code : ATC_OK;
}

int acq_inundation_factor(atc_status *st, const atc_tensor *w, const atc_tensor *d, int bits,
                          int per_channel, double threshold, int bisections, int max_doublings,
                          double *alpha, double *share) {
  if (!(threshold > 0 && threshold <= 1) || bisections < 0 || max_doublings < 0) {
    st->code = ATC_ERR_ARG;
    snprintf(st->msg, sizeof st->msg,
             "inundation: threshold %g must be in (0, 1], bisections and doublings >= 0", threshold);
    return st->code;
  }
  probe p = {0};
  double a = 1, s = 0;
  int rc = probe_init(st, &p, w, d, bits, per_channel) || share_at(st, &p, a, &s);
  for (int k = 0; !rc && s < threshold && k < max_doublings; k++) {
    a *= 2;
    rc = share_at(st, &p, a, &s);
  }
  if (!rc && s >= threshold && a > 1) {
    double lo = a / 2, hi = a, shi = s;
    for (int k = 0; !rc && k < bisections; k++) {
      double mid = 0.5 * (lo + hi), sm = 0;
      rc = share_at(st, &p, mid, &sm);
      if (sm >= threshold) hi = mid, shi = sm;
      else lo = mid;
    }
    a = hi;
    s = shi;
  }
  probe_free(&p);
  if (rc) return st->code;
  *alpha = a;
  *share = s;
  return ATC_OK;
}
