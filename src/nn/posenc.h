/*
 * posenc.h -- fixed position encodings for the generator's position
 * condition (a replacement for the learned Emb_position of eq. (11)).
 */
#ifndef ACQ_POSENC_H
#define ACQ_POSENC_H

#include "atc.h"

/* The 2-D sinusoidal encoding of cell p on an h x w grid (row r = p / w,
 * column c = p % w), as in MAE's 2-D sin-cos embedding: with d = dim / 4 and
 * omega_k = 10000^(-k/d), k = 0..d-1,
 *   out[i] = [sin(r omega), cos(r omega), sin(c omega), cos(c omega)].
 * dim must be a positive multiple of 4; p is int64 [N] in [0, h*w). The
 * result has dtype dt on p's device and needs no gradient. */
int acq_pos_sincos2d(atc_status *st, const atc_tensor *p /* [N] */, int64_t h, int64_t w,
                     int64_t dim, atc_dtype dt, atc_tensor **out /* [N,dim] */);

#endif /* ACQ_POSENC_H */
