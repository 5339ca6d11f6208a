/*
 * fakequant.h -- the fake quantizer of eqs. (1)-(2) and its bounds.
 *
 *   s = max(u - l, 1e-8) / (2^n - 1)        (the paper prints 2^(n-1): a typo,
 *   b = l / s + 2^(n-1)   (not rounded)      see spec/fixtures/golden.md)
 *   q = clamp(round(x / s - b), -2^(n-1), 2^(n-1) - 1)    eq. (1), half to even
 *   x_fake = (q + b) * s                                  eq. (2)
 *
 * The gradient is straight-through: identity everywhere, bounds constant.
 *
 * Bounds:
 *   - weights (per_channel): min/max over every dimension but 0 of the
 *     current weight, recomputed at each forward;
 *   - activations (per layer): the running min/max of every batch seen while
 *     calibrating (Algorithm 1's warm-up), then frozen; or, as GDFQ's code
 *     does, an exponential moving average with factor ema.
 */
#ifndef ACQ_FAKEQUANT_H
#define ACQ_FAKEQUANT_H

#include "atc.h"

typedef enum acq_fq_state {
  ACQ_FQ_CALIBRATE = 0, /* update the bounds from each input, then quantize */
  ACQ_FQ_FROZEN = 1,    /* quantize with the stored bounds                  */
  ACQ_FQ_OFF = 2        /* pass the input through unchanged                 */
} acq_fq_state;

typedef struct acq_fq {
  int bits;             /* 2..16                                           */
  int per_channel;      /* 1: weight bounds over dim 0, recomputed         */
  int state;            /* acq_fq_state (activation quantizers)            */
  double ema;           /* 0: running min/max; else lo = ema*lo + (1-ema)*min */
  atc_tensor *lo, *hi;  /* activation bounds (0-dim f32), NULL before calibration */
  int64_t batches;      /* batches seen while calibrating                  */
} acq_fq;

/* The one check of a bit width: 2..16 (full precision, 32, is the absence
 * of a quantizer). */
int  acq_fq_check_bits(atc_status *st, int bits);
int  acq_fq_new(atc_status *st, int bits, int per_channel, acq_fq **out);
int  acq_fq_clone(atc_status *st, const acq_fq *q, acq_fq **out);
void acq_fq_free(acq_fq *q);                                     /* NULL ok */

/* Bounds of x as the quantizer would use them now (lo/hi are new handles). */
int acq_fq_bounds(atc_status *st, acq_fq *q, const atc_tensor *x,
                  atc_tensor **lo, atc_tensor **hi);
/* Applies the quantizer (calibrating first when in that state). */
int acq_fq_apply(atc_status *st, acq_fq *q, const atc_tensor *x, atc_tensor **out);
/* Integer codes q of eq. (1) (int64) with the scale s and offset b. */
int acq_fq_codes(atc_status *st, acq_fq *q, const atc_tensor *x,
                 atc_tensor **codes, atc_tensor **scale, atc_tensor **offset);

/* Sets activation bounds (copied as 0-dim f32 on the CPU) and freezes them. */
int acq_fq_set_bounds(atc_status *st, acq_fq *q, const atc_tensor *lo, const atc_tensor *hi);
/* Sets the state of an activation quantizer; a weight quantizer is FROZEN
 * (its bounds are the current weight's) unless OFF. */
void acq_fq_set_state(acq_fq *q, acq_fq_state s);

/* Calibration across processes: when set, every calibrating quantizer hands
 * its batch's bounds (0-d lo, hi, its own tensors) to fn before it updates
 * its running bounds; acq.dist sets a min/max all-reduce, so each layer is
 * calibrated on the union of the ranks' batches, layer after layer, as one
 * process would calibrate it. NULL: off. Process-wide. */
typedef int (*acq_fq_reduce_fn)(atc_status *st, atc_tensor *lo, atc_tensor *hi);
void acq_fq_set_reduce(acq_fq_reduce_fn fn);

#endif /* ACQ_FAKEQUANT_H */
