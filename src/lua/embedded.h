/* embedded.h -- the Lua sources of lua/acq, compiled into the library. */
#ifndef ACQ_EMBEDDED_H
#define ACQ_EMBEDDED_H
#include <stddef.h>

typedef struct acq_embedded_module {
  const char *name;      /* "acq", "acq.cli", ...       */
  const char *chunkname; /* "@acq/init.lua", ...         */
  const char *source;
  size_t size;
} acq_embedded_module;

extern const acq_embedded_module acq_embedded_modules[]; /* NULL-terminated */

#endif
