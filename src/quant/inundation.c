/*
 * inundation.c -- the factor search of AIT's gradient inundation
 * (inundation.h), in C on host copies of one weight tensor and its step.
 */
#include "inundation.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* The search runs on host copies of the weights and the step: every probe
 * is one pass over them in plain C, with the float operations of the fake
 * quantizer's codes (atc_quantize_codes: round(x / s - b), clamped). */
typedef struct probe {
  float *w, *d, *s, *b; /* weights, step; scale and offset per channel */
  float *q0;            /* the levels before the step */
  int64_t numel, per;   /* elements, elements per channel */
  float half;
} probe;

static void probe_free(probe *p) {
  free(p->w);
  free(p->d);
  free(p->s);
  free(p->b);
  free(p->q0);
}

static float level(const probe *p, float x, int64_t i) {
  int64_t c = i / p->per;
  float q = nearbyintf(x / p->s[c] - p->b[c]);
  return q < -p->half ? -p->half : q > p->half - 1.0f ? p->half - 1.0f : q;
}

static int read_f32(atc_status *st, const atc_tensor *t, int64_t n, float **out) {
  *out = malloc(sizeof(float) * (size_t)(n ? n : 1));
  if (!*out) {
    st->code = ATC_ERR_OOM;
    snprintf(st->msg, sizeof st->msg, "inundation: out of memory");
    return st->code;
  }
  return atc_tensor_read(st, t, ATC_F32, *out, n);
}

static int probe_init(atc_status *st, probe *p, const atc_tensor *w, const atc_tensor *d, int bits,
                      int per_channel) {
  atc_meta mw, md, ms;
  if (atc_tensor_meta(st, w, &mw) || atc_tensor_meta(st, d, &md)) return st->code;
  int same = mw.ndim == md.ndim;
  for (int i = 0; same && i < mw.ndim; i++) same = mw.sizes[i] == md.sizes[i];
  if (!same) {
    st->code = ATC_ERR_ARG;
    snprintf(st->msg, sizeof st->msg, "inundation: the step and the weights differ in shape");
    return st->code;
  }
  p->numel = mw.numel;
  if (p->numel == 0 || mw.ndim == 0) {
    st->code = ATC_ERR_ARG;
    snprintf(st->msg, sizeof st->msg, "inundation: an empty or 0-d weight tensor");
    return st->code;
  }
  atc_tensor *lo = NULL, *hi = NULL, *codes = NULL, *sc = NULL, *off = NULL;
  int rc = atc_minmax_bounds(st, w, per_channel, &lo, &hi) ||
           atc_quantize_codes(st, w, lo, hi, bits, &codes, &sc, &off) || atc_tensor_meta(st, sc, &ms) ||
           read_f32(st, w, p->numel, &p->w) || read_f32(st, d, p->numel, &p->d) ||
           read_f32(st, sc, ms.numel, &p->s) || read_f32(st, off, ms.numel, &p->b);
  atc_tensor_free(lo);
  atc_tensor_free(hi);
  atc_tensor_free(codes);
  atc_tensor_free(sc);
  atc_tensor_free(off);
  if (rc) return st->code;
  p->per = p->numel / (ms.numel > 0 ? ms.numel : 1);
  p->half = ldexpf(1.0f, bits - 1);
  p->q0 = malloc(sizeof(float) * (size_t)p->numel);
  if (!p->q0) {
    st->code = ATC_ERR_OOM;
    snprintf(st->msg, sizeof st->msg, "inundation: out of memory");
    return st->code;
  }
  for (int64_t i = 0; i < p->numel; i++) p->q0[i] = level(p, p->w[i], i);
  return ATC_OK;
}

static int share_at(atc_status *st, const probe *p, double alpha, double *share) {
  (void)st;
  const float a = (float)alpha;
  int64_t n = 0;
  for (int64_t i = 0; i < p->numel; i++) n += level(p, p->w[i] + a * p->d[i], i) != p->q0[i];
  *share = (double)n / (double)p->numel;
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
