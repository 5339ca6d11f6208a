/*
 * safetensors.h -- reading and writing the safetensors format in C.
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
 *    "__metadata__": {"key": "string", ...}}
 * then the raw little-endian data; offsets are relative to the end of the
 * header. The JSON is parsed by jansson.
 *
 * The header parser is pure C (no libtorch) so that it can be fuzzed on its
 * own under AddressSanitizer (tests/safetensors_fuzz.c). Every function that
 * can fail writes a one-line message into err and returns non-zero; nothing
 * here aborts or calls Lua.
 */
#ifndef ACQ_SAFETENSORS_H
#define ACQ_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "atc.h"

#define ACQ_ST_ERR 512
#define ACQ_ST_MAX_HEADER (100u * 1024u * 1024u) /* the format's own limit */

typedef struct acq_st_entry {
  char *name;
  int dtype;                      /* atc_dtype */
  int ndim;
  int64_t shape[ATC_MAX_DIMS];
  uint64_t begin, end;            /* byte offsets into the data section */
} acq_st_entry;

typedef struct acq_st_file {
  int n;                          /* tensors, in header order */
  acq_st_entry *e;
  int nmeta;                      /* __metadata__ pairs */
  char **meta_key, **meta_val;
  /* set by acq_st_open: the bytes read (the whole file, or the header) */
  const unsigned char *map;
  size_t map_size;
  const unsigned char *data;      /* start of the data section */
  uint64_t data_size;
} acq_st_file;

/* Parses and validates a header of len bytes (not NUL-terminated) that
 * describes a data section of data_size bytes: known dtypes, shapes of
 * non-negative sizes, offsets inside the data section matching the shape,
 * no two tensors overlapping, unique names, string metadata. */
int acq_st_parse_header(const char *json, size_t len, uint64_t data_size,
                        acq_st_file *out, char *err, size_t errn);

/* Reads path and parses its header. Messages start with the path. */
int acq_st_open(const char *path, acq_st_file *out, char *err, size_t errn);
/* The same, reading the header alone: data is NULL, data_size the size of
 * the data section the header was checked against. */
int acq_st_open_header(const char *path, acq_st_file *out, char *err, size_t errn);
void acq_st_close(acq_st_file *f);                    /* frees everything */
int acq_st_find(const acq_st_file *f, const char *name); /* index or -1 */

const char *acq_st_dtype_name(int dtype);       /* "F32", ... */
int acq_st_dtype_parse(const char *s);          /* atc_dtype or -1 */

/* One tensor to write: C-contiguous little-endian bytes. */
typedef struct acq_st_out {
  const char *name;
  int dtype;
  int ndim;
  const int64_t *shape;
  const void *data;
  uint64_t nbytes;
} acq_st_out;

/* Writes the tensors (in the order given) and the metadata pairs to
 * path atomically: a temporary file beside it, fsync, then rename, so a
 * crash leaves either the old file or the complete new one. */
int acq_st_write(const char *path, const acq_st_out *t, int n,
                 const char *const *meta_key, const char *const *meta_val,
                 int nmeta, char *err, size_t errn);

#endif /* ACQ_SAFETENSORS_H */
