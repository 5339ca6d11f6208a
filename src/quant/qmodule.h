/*
 * qmodule.h -- the quantizer rules of a model: which layers carry fake
 * quantizers (conv2d and linear: one on the weight, per output channel, and
 * one on the input, per layer), their states and activation bounds.
 */
#ifndef ACQ_QMODULE_H
#define ACQ_QMODULE_H

#include "fakequant.h"
#include "module.h"

/* 1 when m is a layer that can carry quantizers (conv2d, linear). */
int acq_module_is_affine(const acq_module *m);

/* Gives affine layer m a weight quantizer of wbits and an input quantizer of
 * abits (32: none, the previous one removed); ema in [0, 1) for the input's
 * bounds (0: running min/max). On error m is unchanged. */
int acq_module_set_quant(atc_status *st, acq_module *m, int wbits, int abits, double ema);

/* Every quantizer below m: activation quantizers to state s, weight
 * quantizers frozen (their bounds follow the weight) or off. */
void acq_module_quant_state(acq_module *m, acq_fq_state s);

/* Fixes affine layer m's input bounds (0-dim tensors) and freezes them. */
int acq_module_set_act_bounds(atc_status *st, acq_module *m, const atc_tensor *lo, const atc_tensor *hi);

#endif /* ACQ_QMODULE_H */
