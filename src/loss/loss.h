/*
 * loss.h -- the attention map and every loss of the ACQ paper, in C over the
 * shim. Each function is one call from Lua, returns new owned tensors on the
 * autograd graph, and checks its inputs first: a NaN or Inf, a label or
 * position out of range, or mismatched batch sizes is an ATC_ERR_ARG whose
 * message starts with the loss's name ("L_CACM: position 70 is outside
 * [0, 64)").
 *
 * Choices where the paper is ambiguous follow spec/fixtures/golden.md;
 * the alternatives it lists are options (acq_bns_form, acq_reduction,
 * acq_ad_form).
 */
#ifndef ACQ_LOSS_H
#define ACQ_LOSS_H

#include "atc.h"

/* ---- eq. (3): attention map ----------------------------------------------
 * M = sum over channels of A^2, min-max normalised per sample with the range
 * clamped at 1e-12. A is the backbone output [N,C,h,w]; M is [N,h,w].
 * With size != NULL, M is then resized to size[0] x size[1] (bilinear, for
 * pictures; not part of any loss). */
int acq_attention(atc_status *st, const atc_tensor *A /* [N,C,h,w] */,
                  const int64_t *size, atc_tensor **M /* [N,h,w] */);

/* ---- eq. (6): BN statistics matching ------------------------------------ */
typedef enum acq_bns_form {
  ACQ_BNS_VAR = 0, /* ||mu - mu_run||^2 + ||var - var_run||^2 (default)     */
  ACQ_BNS_STD = 1  /* var replaced by sqrt(var + eps) on both sides          */
} acq_bns_form;

typedef enum acq_reduction {
  ACQ_RED_SUM = 0, /* squared L2 norm per layer, summed over layers (eq. (6)) */
  ACQ_RED_MEAN = 1 /* MSE per layer, averaged over layers (GDFQ's code)      */
} acq_reduction;

/* One BN layer's input statistics and its stored statistics. */
typedef struct acq_bns_layer {
  const char *name;                 /* for messages                         */
  const atc_tensor *mean, *var;     /* [C] batch mean, biased variance      */
  const atc_tensor *rmean, *rvar;   /* [C] running statistics (constants)   */
  double eps;                       /* the BN's eps (STD form)              */
} acq_bns_layer;

/* what: "L_BNS" or "Pen_BNS", for messages. layers: [n] per-layer terms, or
 * NULL when not wanted.
 * margin > 0: the slack form of DSG, ||max(|mu - mu_run| - m, 0)||^2 (and the
 * same for the variance or std); 0 is eq. (6).
 * Statistics may be per sample (mean, var [N,C], from a forward with
 * stats = "sample"): each sample's term is then reduced over the layers and
 * the result averaged over the samples; weights [N,n] (may be NULL) scale
 * the term of sample i at layer l first (DSG's layerwise enhancement). */
int acq_loss_bns(atc_status *st, const char *what, const acq_bns_layer *l, int n,
                 acq_bns_form form, acq_reduction red, double margin,
                 const atc_tensor *weights /* [N,n] */, atc_tensor **loss,
                 atc_tensor **layers /* [n] */);

/* Soft-label cross-entropy: -mean_i sum_k probs[i,k] log softmax(logits)[i,k]
 * (Qimera's mixed labels); probs is a constant for autograd. */
int acq_loss_soft_ce(atc_status *st, const char *what, const atc_tensor *logits /* [N,K] */,
                     const atc_tensor *probs /* [N,K] */, atc_tensor **loss);

/* ---- eq. (7) L_CE and eq. (14) Penalty_CE: mean cross-entropy ------------ */
int acq_loss_ce(atc_status *st, const char *what, const atc_tensor *logits /* [N,K] */,
                const atc_tensor *target /* [N] int64 */, atc_tensor **loss);

/* ---- eq. (9) KD: KL(softmax(f/T) || softmax(q/T)) * T^2, batch mean --------
 * The teacher f is detached (it is a fixed target). */
int acq_loss_kd(atc_status *st, const atc_tensor *q /* [N,K] */,
                const atc_tensor *f /* [N,K] */, double T, atc_tensor **loss);

/* ---- eq. (10) L_CACM ---------------------------------------------------------
 * mean over samples of -log(min(M(p // w, p % w) + eps1, 1)). m_at_p (may be
 * NULL): M at p per sample, [N], before relaxing and clamping. */
int acq_loss_cacm(atc_status *st, const atc_tensor *M /* [N,h,w] */,
                  const atc_tensor *p /* [N] int64 */, double eps1,
                  atc_tensor **loss, atc_tensor **m_at_p);

/* ---- eq. (13) L_AD -------------------------------------------------------------
 * o1, o2 = argmax of the F^eval logits of the pair; both classes are removed
 * from both softmaxes; JS (natural log) between the rest; MAE = mean |z1-z2|
 * per pair. BATCH: mean MAE / (mean JS + 1e-8); SAMPLE: mean of
 * MAE_i / (JS_i + 1e-8). Outputs after loss may be NULL. */
typedef enum acq_ad_form { ACQ_AD_BATCH = 0, ACQ_AD_SAMPLE = 1 } acq_ad_form;

int acq_loss_ad(atc_status *st, const atc_tensor *l1 /* [B,K] */,
                const atc_tensor *l2 /* [B,K] */, const atc_tensor *z1 /* [B,D] */,
                const atc_tensor *z2 /* [B,D] */, acq_ad_form form, atc_tensor **loss,
                atc_tensor **js /* [B] */, atc_tensor **mae /* [B] */,
                atc_tensor **o1 /* [B] */, atc_tensor **o2 /* [B] */);

/* ---- eq. (14) Penalty_CACM: max(mean |M_train - M_eval| - eps2, 0) ---------
 * mae (may be NULL): the mean before the hinge. Gradient through both maps. */
int acq_penalty_cacm(atc_status *st, const atc_tensor *Mt, const atc_tensor *Me,
                     double eps2, atc_tensor **loss, atc_tensor **mae);

/* ---- decoupled knowledge distillation (Zhao et al., CVPR 2022) -------------
 * With p = softmax(x / T) for the student q and the teacher f (detached):
 * TCKD = KL([p_t, p_o]_f || [p_t, p_o]_q), the binary target / non-target
 * split (p_t: the target class's probability, p_o = sum of the others);
 * NCKD = KL(p^_f || p^_q) over the non-target classes only (softmax of
 * x / T - 1000 * one_hot(target), as its code writes it). Both are summed
 * over classes, averaged over the N samples and multiplied by T^2;
 * loss = alpha TCKD + beta NCKD. tckd, nckd (may be NULL): the two parts,
 * detached. */
int acq_loss_dkd(atc_status *st, const atc_tensor *q /* [N,K] */,
                 const atc_tensor *f /* [N,K] */, const atc_tensor *target /* [N] int64 */,
                 double alpha, double beta, double T, atc_tensor **loss,
                 atc_tensor **tckd, atc_tensor **nckd);

/* ---- additive angular margin (ArcFace, Deng et al., CVPR 2019) -------------
 * cos_ik = <x_i / |x_i|, c_k / |c_k|> between features x [N,D] and class
 * centres c [K,D] (detached); the target class's cosine cos(theta) becomes
 * cos(theta + m) (past theta = pi - m, where cos(theta + m) would turn back,
 * ArcFace's cos(theta) - m sin(m)); logits = s * cos. 0 <= m < pi / 2.
 * cos_target (may be NULL): cos(theta) of each sample's target [N], detached. */
int acq_angular_margin(atc_status *st, const atc_tensor *x /* [N,D] */,
                       const atc_tensor *centres /* [K,D] */,
                       const atc_tensor *target /* [N] int64 */, double s, double m,
                       atc_tensor **logits, atc_tensor **cos_target);

/* ---- eq. (15), (16): weighted sums -----------------------------------------
 * sum_i w[i] * terms[i] over the n scalar terms (NULL terms are skipped);
 * what names the objective in messages, names[i] each term. */
int acq_weighted_sum(atc_status *st, const char *what, const atc_tensor *const *terms,
                     const char *const *names, const double *w, int n,
                     atc_tensor **out);

/* Checks that t holds no NaN or Inf; the message names what and which. */
int acq_check_finite(atc_status *st, const char *what, const char *which,
                     const atc_tensor *t);

#endif /* ACQ_LOSS_H */
