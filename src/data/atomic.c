/*
 * atomic.c -- temporary file + fsync + rename (see atomic.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

int acq_atomic_write(const char *path, const acq_part *parts, int n, char *err, size_t errn) {
  size_t tl = strlen(path) + 32;
  char *tmp = malloc(tl);
  if (!tmp) {
    snprintf(err, errn, "%s: out of memory", path);
    return -1;
  }
  snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    snprintf(err, errn, "%s: %s", tmp, strerror(errno));
    free(tmp);
    return -1;
  }
  int rc = 0;
  for (int i = 0; i < n && !rc; i++)
    if (parts[i].len && write_all(fd, parts[i].data, parts[i].len)) rc = -1;
  if (!rc && fsync(fd) != 0) rc = -1;
  if (close(fd) != 0) rc = -1;
  if (!rc && rename(tmp, path) != 0) rc = -1;
  if (rc) {
    snprintf(err, errn, "%s: write failed: %s", path, strerror(errno));
    unlink(tmp);
  }
  free(tmp);
  return rc;
}
