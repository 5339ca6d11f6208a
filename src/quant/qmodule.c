/*
 * qmodule.c -- the quantizer rules of a model (qmodule.h).
 */
#include "qmodule.h"

#include <stdio.h>

static int arg(atc_status *st, const char *msg) {
  st->code = ATC_ERR_ARG;
  snprintf(st->msg, sizeof st->msg, "%s", msg);
  return st->code;
}

int acq_module_is_affine(const acq_module *m) {
  return m && (m->kind == ACQ_M_CONV2D || m->kind == ACQ_M_LINEAR);
}

int acq_module_set_quant(atc_status *st, acq_module *m, int wbits, int abits, double ema) {
  if (!acq_module_is_affine(m)) return arg(st, "only conv2d and linear layers have quantizers");
  if (!(ema >= 0 && ema < 1)) return arg(st, "ema must be in [0, 1)");
  acq_fq *wq = NULL, *aq = NULL;
  if (wbits != 32 && acq_fq_new(st, wbits, 1, &wq)) return st->code;
  if (abits != 32 && acq_fq_new(st, abits, 0, &aq)) {
    acq_fq_free(wq);
    return st->code;
  }
  if (aq) aq->ema = ema;
  acq_fq_free(m->wq);
  acq_fq_free(m->aq);
  m->wq = wq;
  m->aq = aq;
  st->code = ATC_OK;
  return ATC_OK;
}

static int state_visit(acq_module *m, const char *path, void *ud) {
  (void)path;
  acq_fq_state s = *(acq_fq_state *)ud;
  if (m->aq) acq_fq_set_state(m->aq, s);
  if (m->wq) acq_fq_set_state(m->wq, s);
  return 0;
}

void acq_module_quant_state(acq_module *m, acq_fq_state s) { acq_module_walk(m, state_visit, &s); }

int acq_module_set_act_bounds(atc_status *st, acq_module *m, const atc_tensor *lo, const atc_tensor *hi) {
  if (!acq_module_is_affine(m) || !m->aq) return arg(st, "this layer has no activation quantizer");
  return acq_fq_set_bounds(st, m->aq, lo, hi);
}
