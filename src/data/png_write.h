/*
 * png_write.h -- writing 8-bit PNG pictures (grey, grey+alpha, RGB, RGBA) with
 * zlib, atomically (atomic.h): sample grids, attention overlays, plots.
 */
#ifndef ACQ_PNG_WRITE_H
#define ACQ_PNG_WRITE_H

#include <stddef.h>
#include <stdint.h>

/* pixels: height rows of width * channels bytes (channels 1..4).
 * On error writes a message naming the file into err and returns non-zero. */
int acq_png_write(const char *path, const uint8_t *pixels, int width, int height,
                  int channels, char *err, size_t errn);

/* The same PNG in memory: *out (malloc'd, the caller frees) of *outlen bytes. */
int acq_png_encode(const uint8_t *pixels, int width, int height, int channels,
                   uint8_t **out, size_t *outlen, char *err, size_t errn);

#endif /* ACQ_PNG_WRITE_H */
