/*
 * posenc.c -- the 2-D sinusoidal position encoding (posenc.h), composed
 * from shim calls so it runs on p's device.
 */
#include "posenc.h"

#include <stdio.h>

#define NT 12

int acq_pos_sincos2d(atc_status *st, const atc_tensor *p, int64_t h, int64_t w, int64_t dim,
                     atc_dtype dt, atc_tensor **out) {
  atc_tensor *t[NT] = {0};
  atc_meta m;
  int rc = atc_tensor_meta(st, p, &m);
  if (rc) return rc;
  if (m.dtype != ATC_I64 || m.ndim != 1) {
    st->code = ATC_ERR_ARG;
    snprintf(st->msg, sizeof st->msg, "sincos2d: positions must be int64 [N], got %s with %d dimensions",
             atc_dtype_name(m.dtype), m.ndim);
    return st->code;
  }
  if (h <= 0 || w <= 0 || dim <= 0 || dim % 4 != 0) {
    st->code = ATC_ERR_ARG;
    snprintf(st->msg, sizeof st->msg, "sincos2d: needs a grid h, w > 0 and dim a positive multiple of 4, got %lldx%lld, dim %lld",
             (long long)h, (long long)w, (long long)dim);
    return st->code;
  }
  int64_t d = dim / 4;
  atc_scalar zero = {1, 0, 0}, dd = {1, d, 0}, one = {1, 1, 0}, W = {1, w, 0};
  atc_scalar lg = {0, 0, -9.210340371976184 / (double)d}; /* -ln(10000) / d */
  /* omega [1,d] = exp(-ln(10000) k / d), computed in double then cast */
  rc = atc_arange(st, zero, dd, one, ATC_F64, m.device, &t[0]) ||
       atc_binary_scalar(st, ATC_MUL, t[0], lg, 0, &t[1]) || atc_unary(st, ATC_EXP, t[1], &t[2]) ||
       atc_unsqueeze(st, t[2], 0, &t[3]) ||
       /* r, c as [N,1] */
       atc_binary_scalar(st, ATC_FLOOR_DIVIDE, p, W, 0, &t[4]) ||
       atc_binary_scalar(st, ATC_REMAINDER, p, W, 0, &t[5]) ||
       atc_to_dtype(st, t[4], ATC_F64, &t[6]) || atc_to_dtype(st, t[5], ATC_F64, &t[7]) ||
       atc_unsqueeze(st, t[6], 1, &t[8]) || atc_unsqueeze(st, t[7], 1, &t[9]) ||
       atc_binary(st, ATC_MUL, t[8], t[3], &t[10]) || atc_binary(st, ATC_MUL, t[9], t[3], &t[11]);
  if (!rc) {
    atc_tensor *parts[4] = {0}, *cat = NULL;
    rc = atc_unary(st, ATC_SIN, t[10], &parts[0]) || atc_unary(st, ATC_COS, t[10], &parts[1]) ||
         atc_unary(st, ATC_SIN, t[11], &parts[2]) || atc_unary(st, ATC_COS, t[11], &parts[3]) ||
         atc_cat(st, (const atc_tensor *const *)parts, 4, 1, &cat) || atc_to_dtype(st, cat, dt, out);
    for (int i = 0; i < 4; i++) atc_tensor_free(parts[i]);
    atc_tensor_free(cat);
  }
  for (int i = 0; i < NT; i++) atc_tensor_free(t[i]);
  return rc ? st->code : ATC_OK;
}
