/*
 * zipcheck.h -- checks a zip archive held in memory before anything is
 * inflated: its central directory (zip64 included) lies inside the buffer,
 * every member is stored or deflated, no name repeats, no member inflates
 * beyond a bound (a zip bomb), and every member's CRC-32 matches its data
 * (libtorch's zip reader, miniz built without CRC checks, would load a
 * corrupted record).
 */
#ifndef ACQ_ZIPCHECK_H
#define ACQ_ZIPCHECK_H

#include <stddef.h>
#include <stdint.h>

/* 0, or -1 with a message in err. max_inflated bounds any one member's
 * uncompressed size (and deflated members inflate at most 4x + 1 MiB). */
int acq_zip_check(const uint8_t *p, size_t n, uint64_t max_inflated, char *err, size_t errn);

#endif
