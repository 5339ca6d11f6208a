/*
 * module.h -- layers and models in C over the shim: a tree of modules with
 * named parameters and buffers, a forward pass that walks it, and the three
 * batch-norm modes of the paper.
 *
 * Models are composed from Lua (lua/acq/models.lua) out of the leaf kinds
 * below and two containers: SEQUENTIAL (children in order) and RESIDUAL
 * (out = post(main(x) + shortcut(x)), where main is children [0, nmain) and
 * shortcut is children [nmain, nchild), the identity when empty). The
 * names of children make the state-dict keys ("layer1.0.conv1.weight"), so
 * a model built with torchvision's or pytorchcv's names loads their weights.
 *
 * Ownership: modules are reference counted. A container holds a reference to
 * each child; a Lua userdata holds one reference. Parameters are owned
 * handles; acq_module_free of the last reference frees the subtree.
 */
#ifndef ACQ_MODULE_H
#define ACQ_MODULE_H

#include "atc.h"
#include "fakequant.h"

typedef enum acq_mkind {
  ACQ_M_CONV2D,
  ACQ_M_BATCHNORM2D,
  ACQ_M_LINEAR,
  ACQ_M_RELU,
  ACQ_M_RELU6,
  ACQ_M_MAXPOOL2D,
  ACQ_M_GLOBAL_AVGPOOL, /* mean over H, W: [N,C,H,W] -> [N,C]          */
  ACQ_M_FLATTEN,        /* [N,...] -> [N,-1]                            */
  ACQ_M_IDENTITY,       /* also dropout: acq never trains with dropout  */
  ACQ_M_EMBEDDING,      /* int64 [N] -> [N,D] rows of weight [V,D]       */
  ACQ_M_LEAKY_RELU,
  ACQ_M_TANH,
  ACQ_M_UPSAMPLE,       /* nearest, by an integer factor per axis        */
  ACQ_M_UNFLATTEN,      /* [N,prod(shape)] -> [N,shape...]               */
  ACQ_M_CONDBN,         /* class-conditional BN: BN without affine, then
                           per-class scale and shift (the forward's labels) */
  ACQ_M_SEQUENTIAL,
  ACQ_M_RESIDUAL,
  ACQ_M_GATE,           /* out = x * chain(x): the children in order give
                           a multiplicative attention map (VAN's LKA)     */
  ACQ_M_KIND_COUNT
} acq_mkind;

/* Batch-norm modes (eq. (14) needs the second). */
typedef enum acq_bn_mode {
  ACQ_BN_EVAL = 0,  /* stored running statistics                         */
  ACQ_BN_BATCH = 1, /* statistics of the batch, running stats untouched: F^train */
  ACQ_BN_TRAIN = 2  /* statistics of the batch, running stats updated    */
} acq_bn_mode;

#define ACQ_MAX_PARAMS 5
#define ACQ_NAME_MAX 64
#define ACQ_PATH_MAX 512

typedef struct acq_param {
  char name[24];      /* "weight", "bias", "running_mean", ...           */
  atc_tensor *t;      /* NULL for an absent optional parameter (bias)    */
  int buffer;         /* 1: running statistics, not trained              */
} acq_param;

typedef struct acq_module acq_module;
struct acq_module {
  int refs;
  acq_mkind kind;
  char name[ACQ_NAME_MAX];     /* name inside its parent                   */
  int nparams;
  acq_param params[ACQ_MAX_PARAMS];
  int nchild, nmain;
  acq_module **child;
  int post_relu;               /* RESIDUAL: ReLU after the addition       */
  /* configuration */
  int64_t stride[2], padding[2], dilation[2], kernel[2], groups;
  double eps, momentum;
  double slope;                /* LEAKY_RELU                               */
  int nshape;                  /* UNFLATTEN: target shape without N        */
  int64_t shape[4];
  int bn_fixed;                /* -1: follow the forward's mode, else acq_bn_mode */
  int tap;                     /* record this module's output as "features" */
  acq_fq *wq, *aq;             /* CONV2D/LINEAR: weight and input quantizers */
};

/* One recorded batch-norm input: mean and biased variance over N, H, W
 * ([C] each), or per sample over H, W ([N,C] each, ACQ_RECORD_SAMPLE). */
typedef struct acq_bnstat {
  acq_module *bn;
  char path[ACQ_PATH_MAX];
  atc_tensor *mean, *var;      /* [C], on the autograd graph */
} acq_bnstat;

typedef enum acq_record {
  ACQ_RECORD_NONE = 0, ACQ_RECORD_BATCH = 1, ACQ_RECORD_SAMPLE = 2
} acq_record;

typedef struct acq_fwd {
  int bn_mode;                 /* acq_bn_mode for BN layers not fixed     */
  int record;                  /* acq_record: acq_bnstat for every BN layer */
  int nstats, capstats;
  acq_bnstat *stats;
  atc_tensor *features;        /* output of the tapped module, or NULL    */
  const atc_tensor *labels;    /* [N] int64 classes for CONDBN (borrowed) */
  char path[ACQ_PATH_MAX];     /* path of the module being run            */
} acq_fwd;

/* ---- construction ---------------------------------------------------------
 * Weights are initialised as PyTorch does by default (uniform in
 * +-1/sqrt(fan_in) for conv and linear weights and biases; BN weight 1,
 * bias 0, running mean 0, running var 1). */
int acq_conv2d_new(atc_status *st, int64_t in, int64_t out, const int64_t k[2],
                   const int64_t stride[2], const int64_t pad[2],
                   const int64_t dil[2], int64_t groups, int bias,
                   acq_module **m);
int acq_batchnorm2d_new(atc_status *st, int64_t c, double eps, double momentum,
                        int affine, acq_module **m);
int acq_linear_new(atc_status *st, int64_t in, int64_t out, int bias,
                   acq_module **m);
int acq_maxpool2d_new(atc_status *st, const int64_t k[2], const int64_t stride[2],
                      const int64_t pad[2], acq_module **m);
int acq_simple_new(atc_status *st, acq_mkind kind, acq_module **m); /* relu ... */
/* weight N(0,1), as torch.nn.Embedding */
int acq_embedding_new(atc_status *st, int64_t num, int64_t dim, acq_module **m);
int acq_leaky_relu_new(atc_status *st, double slope, acq_module **m);
int acq_upsample_new(atc_status *st, const int64_t scale[2], acq_module **m);
int acq_unflatten_new(atc_status *st, const int64_t *shape, int n, acq_module **m);
/* Parameters "weights.weight" [K,C] (ones) and "biases.weight" [K,C] (zeros)
 * as GDFQ's CategoricalConditionalBatchNorm2d, plus the running buffers. */
int acq_condbn_new(atc_status *st, int64_t classes, int64_t c, double eps,
                   double momentum, acq_module **m);
/* Large-kernel attention (Guo et al., "Visual Attention Network", 2022):
 * a GATE with children "conv0" (depthwise (2d-1)x(2d-1), padding d-1),
 * "conv_spatial" (depthwise ceil(k/d) x ceil(k/d), dilation d, same
 * padding) and "conv1" (1x1), which together see a k x k window at the cost
 * of two depthwise convolutions; out = x * conv1(conv_spatial(conv0(x))).
 * VAN uses k = 21, d = 3 (5x5, then 7x7 with dilation 3). ceil(k/d) must be
 * odd. The children's names are VAN's AttentionModule's. */
int acq_lka_new(atc_status *st, int64_t channels, int64_t k, int64_t d, acq_module **m);
/* Containers take a reference to each child. names[i] may be NULL ("i"). */
int acq_container_new(atc_status *st, acq_mkind kind, acq_module *const *children,
                      const char *const *names, int n, int nmain, int post_relu,
                      acq_module **m);

acq_module *acq_module_retain(acq_module *m);
void acq_module_free(acq_module *m);                   /* drops one reference */
const char *acq_mkind_name(acq_mkind k);
const char *acq_bn_mode_name(int mode);                 /* "eval", "batch", "train" */

/* Deep copy: new tensors (same requires_grad), quantizers copied too. */
int acq_module_clone(atc_status *st, const acq_module *m, acq_module **out);

/* Converts every floating parameter and buffer (and the quantizers' bounds)
 * to dtype (dtype < 0: keep) and all of them to dev (NULL: keep). Leaves stay
 * leaves with the same requires_grad. All or nothing: on error m is unchanged. */
int acq_module_to(atc_status *st, acq_module *m, int dtype, const atc_device *dev);

/* ---- traversal -------------------------------------------------------------
 * Visits m and every descendant in module order (pre-order), with its
 * dotted path ("" for m itself). A non-zero return stops the walk. */
typedef int (*acq_visit_fn)(acq_module *m, const char *path, void *ud);
int acq_module_walk(acq_module *m, acq_visit_fn fn, void *ud);

/* ---- forward ---------------------------------------------------------------- */
void acq_fwd_init(acq_fwd *c, int bn_mode, int record);
void acq_fwd_clear(acq_fwd *c);                     /* frees stats, features */
int acq_module_forward(atc_status *st, acq_fwd *c, acq_module *m,
                       const atc_tensor *x, atc_tensor **out);
/* A SEQUENTIAL's children [from, to) only (a generator's body after its
 * conditioning layers, for example). */
int acq_module_forward_range(atc_status *st, acq_fwd *c, acq_module *m, int from,
                             int to, const atc_tensor *x, atc_tensor **out);
/* Index of the child called name, or -1. */
int acq_module_child_index(const acq_module *m, const char *name);

/* Synchronised batch statistics across processes: when set, fn replaces a
 * BN input's batch mean and biased variance ([C] each, on the graph) by
 * those of the union of every process's batch (acq.dist). It applies to
 * the statistics recorded for eq. (6) (stats = true, not per sample) and
 * to the normalisation of BN layers in ACQ_BN_BATCH mode (F^train), as
 * SyncBatchNorm does; NULL: each process's own. Process-wide. */
typedef int (*acq_stats_sync_fn)(atc_status *st, atc_tensor **mean, atc_tensor **var);
void acq_set_stats_sync(acq_stats_sync_fn fn);

/* Every BN layer below m runs in mode (acq_bn_mode) whatever a forward asks;
 * mode -1 lets the forward decide again. */
void acq_module_fix_bn(acq_module *m, int mode);
/* Records m's output as the forward's "features" (on != 0) or stops. */
void acq_module_set_tap(acq_module *m, int on);

#endif /* ACQ_MODULE_H */
