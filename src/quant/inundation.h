/*
 * inundation.h -- AIT's gradient inundation ("It's All In the Teacher",
 * the training strategy of the ACQ paper's Table 4): the step of a weight
 * tensor is scaled until enough of its integer levels change.
 *
 * Levels are those of the weight fake quantizer (eq. (1)), on the bounds of
 * the weights before the step (per output channel when per_channel): a weight
 * w "passes" when level(w + alpha d) != level(w).
 */
#ifndef ACQ_INUNDATION_H
#define ACQ_INUNDATION_H

#include "atc.h"

/* The share of the elements of w whose level changes when w moves by
 * alpha * d (w, d of one shape; d is the optimizer's step). */
int acq_level_change_share(atc_status *st, const atc_tensor *w, const atc_tensor *d, int bits,
                           int per_channel, double alpha, double *share);

/* The factor alpha of the step d of w: 1 when the share at alpha = 1 reaches
 * threshold; else alpha is doubled until it does (at most max_doublings
 * times, and the last one is returned if it never does), then refined by
 * `bisections` bisection steps between alpha / 2 (short of the threshold)
 * and alpha (reaching it), returning the upper end. *share: the share at the
 * returned alpha. */
int acq_inundation_factor(atc_status *st, const atc_tensor *w, const atc_tensor *d, int bits,
                          int per_channel, double threshold, int bisections, int max_doublings,
                          double *alpha, double *share);

#endif /* ACQ_INUNDATION_H */
