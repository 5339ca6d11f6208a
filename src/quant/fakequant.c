/*
 * fakequant.c -- the fake quantizer's bounds and state (eqs. (1)-(2)); the
 * arithmetic is atc_fake_quantize in the shim.
 */
#include "fakequant.h"

#include <stdio.h>
#include <stdlib.h>

static int arg_fail(atc_status *st, const char *msg) {
  st->code = ATC_ERR_ARG;
  snprintf(st->msg, sizeof st->msg, "%s", msg);
  return st->code;
}

int acq_fq_check_bits(atc_status *st, int bits) {
  if (bits < 2 || bits > 16) {
    char m[64];
    snprintf(m, sizeof m, "bit width %d out of range [2, 16]", bits);
    return arg_fail(st, m);
  }
  st->code = ATC_OK;
  return ATC_OK;
}

int acq_fq_new(atc_status *st, int bits, int per_channel, acq_fq **out) {
  if (acq_fq_check_bits(st, bits)) return st->code;
  acq_fq *q = calloc(1, sizeof *q);
  if (!q) return arg_fail(st, "out of memory");
  q->bits = bits;
  q->per_channel = per_channel;
  q->state = per_channel ? ACQ_FQ_FROZEN : ACQ_FQ_CALIBRATE;
  *out = q;
  st->code = ATC_OK;
  return ATC_OK;
}

int acq_fq_clone(atc_status *st, const acq_fq *q, acq_fq **out) {
  acq_fq *c = calloc(1, sizeof *c);
  if (!c) return arg_fail(st, "out of memory");
  *c = *q;
  c->lo = c->hi = NULL;
  if ((q->lo && atc_clone(st, q->lo, &c->lo)) || (q->hi && atc_clone(st, q->hi, &c->hi))) {
    acq_fq_free(c);
    return st->code;
  }
  *out = c;
  st->code = ATC_OK;
  return ATC_OK;
}

void acq_fq_free(acq_fq *q) {
  if (!q) return;
  atc_tensor_free(q->lo);
  atc_tensor_free(q->hi);
  free(q);
}

static acq_fq_reduce_fn reduce_fn = NULL;

void acq_fq_set_reduce(acq_fq_reduce_fn fn) { reduce_fn = fn; }

/* Calibration: running min/max (or EMA) of the per-layer bounds. */
static int calibrate(atc_status *st, acq_fq *q, const atc_tensor *x) {
  atc_tensor *l = NULL, *u = NULL, *nl = NULL, *nu = NULL;
  if (atc_minmax_bounds(st, x, 0, &l, &u)) return st->code;
  if (reduce_fn && reduce_fn(st, l, u)) {
    atc_tensor_free(l);
    atc_tensor_free(u);
    return st->code;
  }
  int rc = 0;
  if (!q->lo) {
    nl = l, nu = u, l = u = NULL;
  } else if (q->ema > 0) {
    atc_scalar a = {0, 0, q->ema}, b = {0, 0, 1.0 - q->ema};
    atc_tensor *t1 = NULL, *t2 = NULL;
    rc = atc_binary_scalar(st, ATC_MUL, q->lo, a, 0, &t1) ||
         atc_binary_scalar(st, ATC_MUL, l, b, 0, &t2) || atc_binary(st, ATC_ADD, t1, t2, &nl);
    atc_tensor_free(t1), atc_tensor_free(t2), t1 = t2 = NULL;
    rc = rc || atc_binary_scalar(st, ATC_MUL, q->hi, a, 0, &t1) ||
         atc_binary_scalar(st, ATC_MUL, u, b, 0, &t2) || atc_binary(st, ATC_ADD, t1, t2, &nu);
    atc_tensor_free(t1), atc_tensor_free(t2);
  } else {
    rc = atc_binary(st, ATC_MINIMUM, q->lo, l, &nl) || atc_binary(st, ATC_MAXIMUM, q->hi, u, &nu);
  }
  atc_tensor_free(l);
  atc_tensor_free(u);
  if (rc) {
    atc_tensor_free(nl);
    atc_tensor_free(nu);
    return st->code;
  }
  atc_tensor_free(q->lo);
  atc_tensor_free(q->hi);
  q->lo = nl;
  q->hi = nu;
  q->batches++;
  return ATC_OK;
}

int acq_fq_bounds(atc_status *st, acq_fq *q, const atc_tensor *x, atc_tensor **lo,
                  atc_tensor **hi) {
  if (q->per_channel) return atc_minmax_bounds(st, x, 1, lo, hi);
  if (!q->lo) return arg_fail(st, "activation quantizer used before calibration (no bounds yet)");
  if (atc_tensor_alias(st, q->lo, lo)) return st->code;
  if (atc_tensor_alias(st, q->hi, hi)) {
    atc_tensor_free(*lo);
    *lo = NULL;
    return st->code;
  }
  return ATC_OK;
}

int acq_fq_apply(atc_status *st, acq_fq *q, const atc_tensor *x, atc_tensor **out) {
  if (q->state == ACQ_FQ_OFF) return atc_tensor_alias(st, x, out);
  if (q->state == ACQ_FQ_CALIBRATE && !q->per_channel && calibrate(st, q, x)) return st->code;
  atc_tensor *lo = NULL, *hi = NULL;
  if (acq_fq_bounds(st, q, x, &lo, &hi)) return st->code;
  int rc = atc_fake_quantize(st, x, lo, hi, q->bits, out);
  atc_tensor_free(lo);
  atc_tensor_free(hi);
  return rc;
}

int acq_fq_codes(atc_status *st, acq_fq *q, const atc_tensor *x, atc_tensor **codes,
                 atc_tensor **scale, atc_tensor **offset) {
  atc_tensor *lo = NULL, *hi = NULL;
  if (acq_fq_bounds(st, q, x, &lo, &hi)) return st->code;
  int rc = atc_quantize_codes(st, x, lo, hi, q->bits, codes, scale, offset);
  atc_tensor_free(lo);
  atc_tensor_free(hi);
  return rc;
}

int acq_fq_set_bounds(atc_status *st, acq_fq *q, const atc_tensor *lo, const atc_tensor *hi) {
  atc_tensor *v[2] = {NULL, NULL};
  const atc_tensor *in[2] = {lo, hi};
  atc_device cpu = {ATC_CPU, -1};
  for (int i = 0; i < 2; i++) {
    atc_tensor *d = NULL;
    int rc = atc_detach(st, in[i], &d) || atc_to(st, d, ATC_F32, cpu, &v[i]);
    atc_tensor_free(d);
    if (rc) {
      atc_tensor_free(v[0]);
      atc_tensor_free(v[1]);
      return st->code;
    }
  }
  atc_tensor_free(q->lo);
  atc_tensor_free(q->hi);
  q->lo = v[0];
  q->hi = v[1];
  q->state = ACQ_FQ_FROZEN;
  st->code = ATC_OK;
  return ATC_OK;
}

void acq_fq_set_state(acq_fq *q, acq_fq_state s) {
  if (q->per_channel) q->state = s == ACQ_FQ_OFF ? ACQ_FQ_OFF : ACQ_FQ_FROZEN;
  else q->state = s;
}
