/*
 * atomic.h -- files that survive a crash: written to a temporary file beside
 * the target, fsync'd, then renamed over it, so a reader sees either the old
 * file or the complete new one (checkpoints, weights, pictures).
 */
#ifndef ACQ_ATOMIC_H
#define ACQ_ATOMIC_H

#include <stddef.h>

typedef struct acq_part {
  const void *data;
  size_t len;
} acq_part;

/* Writes the parts in order to path atomically. On error writes a one-line
 * message naming the file into err, removes the temporary file and returns
 * non-zero; the old file, if any, is untouched. */
int acq_atomic_write(const char *path, const acq_part *parts, int n, char *err, size_t errn);

#endif /* ACQ_ATOMIC_H */
