/*
 * overhead_floor.c N -- the floor under any binding: the same tiny add
 * (two 1-element f32 tensors) called N times from C through the shim
 * (atc_binary + atc_tensor_free), with no Lua at all. Prints
 * "floor <calls per second>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "atc.h"

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 200000;
  atc_status st;
  atc_scalar one = {0, 0, 1.0};
  int64_t size[1] = {1};
  atc_device cpu = {ATC_CPU, -1};
  atc_tensor *a = NULL, *b = NULL, *c = NULL;
  if (atc_set_num_threads(&st, 1) || atc_full(&st, size, 1, one, ATC_F32, cpu, &a) ||
      atc_full(&st, size, 1, one, ATC_F32, cpu, &b)) {
    fprintf(stderr, "overhead_floor: %s\n", st.msg);
    return 1;
  }
  for (int i = 0; i < 1000; i++) {
    atc_binary(&st, ATC_ADD, a, b, &c);
    atc_tensor_free(c);
  }
  clock_t t0 = clock();
  for (long i = 0; i < n; i++) {
    if (atc_binary(&st, ATC_ADD, a, b, &c)) {
      fprintf(stderr, "overhead_floor: %s\n", st.msg);
      return 1;
    }
    atc_tensor_free(c);
  }
  double dt = (double)(clock() - t0) / CLOCKS_PER_SEC;
  printf("floor %.0f\n", (double)n / dt);
  atc_tensor_free(a);
  atc_tensor_free(b);
  return 0;
}
