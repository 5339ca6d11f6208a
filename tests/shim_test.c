/*
 * shim_test.c -- tests of the atc_ C ABI without Lua: values against hand
 * computations, every error path returning a status and a message, and no
 * output handle written on failure.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "atc.h"

static int failures = 0, checks = 0;

#define CHECK(cond, ...)                                   \
  do {                                                     \
    checks++;                                              \
    if (!(cond)) {                                         \
      failures++;                                          \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fprintf(stderr, "\n");                               \
    }                                                      \
  } while (0)

static const atc_device CPU = {ATC_CPU, -1};

static atc_tensor *from(const double *v, const int64_t *sizes, int nd) {
  atc_status st;
  atc_tensor *raw = NULL, *t = NULL;
  if (atc_from_buffer(&st, v, sizes, nd, ATC_F64, &raw)) {
    fprintf(stderr, "from_buffer: %s\n", st.msg);
    return NULL;
  }
  t = raw;
  return t;
}

static void read(atc_tensor *t, double *out, int64_t n) {
  atc_status st;
  if (atc_tensor_read(&st, t, ATC_F64, out, n)) fprintf(stderr, "read: %s\n", st.msg);
}

static void test_matmul(void) {
  const double a[] = {1, 2, 3, 4};
  const int64_t s[] = {2, 2};
  atc_tensor *x = from(a, s, 2), *y = NULL;
  atc_status st;
  double r[4];
  CHECK(atc_matmul(&st, x, x, &y) == ATC_OK, "matmul: %s", st.msg);
  read(y, r, 4);
  CHECK(r[0] == 7 && r[1] == 10 && r[2] == 15 && r[3] == 22, "matmul values %g %g %g %g", r[0],
        r[1], r[2], r[3]);
  atc_tensor_free(y);
  atc_tensor_free(x);
}

static void test_errors(void) {
  const double a[6] = {1, 2, 3, 4, 5, 6};
  const int64_t s[] = {2, 3};
  atc_tensor *x = from(a, s, 2);
  atc_tensor *out = (atc_tensor *)0x1; /* must stay untouched on failure */
  atc_status st;
  int rc = atc_matmul(&st, x, x, &out);
  CHECK(rc == ATC_ERR_TORCH && st.code == ATC_ERR_TORCH, "matmul [2,3]x[2,3] rc %d", rc);
  CHECK(strstr(st.msg, "cannot be multiplied") != NULL, "matmul message: %s", st.msg);
  CHECK(strstr(st.msg, "Exception raised from") == NULL, "backtrace in message: %s", st.msg);
  CHECK(out == (atc_tensor *)0x1, "output written on failure");

  rc = atc_item(&st, x, &(atc_scalar){0, 0, 0});
  CHECK(rc == ATC_ERR_TORCH && strstr(st.msg, "6 elements") != NULL, "item: %s", st.msg);

  rc = atc_unary(&st, ATC_EXP, NULL, &out);
  CHECK(rc == ATC_ERR_ARG && strstr(st.msg, "NULL") != NULL, "NULL handle: %d %s", rc, st.msg);

  /* conv2d with 3 input channels, weight expecting 2 */
  int64_t xs[] = {1, 3, 4, 4}, ws[] = {1, 2, 3, 3};
  atc_tensor *img = NULL, *w = NULL;
  atc_scalar one = {1, 1, 1};
  atc_full(&st, xs, 4, one, ATC_F32, CPU, &img);
  atc_full(&st, ws, 4, one, ATC_F32, CPU, &w);
  int64_t st1[2] = {1, 1}, p0[2] = {0, 0}, d1[2] = {1, 1};
  rc = atc_conv2d(&st, img, w, NULL, st1, p0, d1, 1, &out);
  CHECK(rc == ATC_ERR_TORCH && strstr(st.msg, "channels") != NULL, "conv2d channels: %s", st.msg);

  /* a huge allocation is an OOM status, not an abort */
  int64_t huge[] = {(int64_t)1 << 40, (int64_t)1 << 10};
  rc = atc_empty(&st, huge, 2, ATC_F32, CPU, &out);
  CHECK(rc == ATC_ERR_OOM || rc == ATC_ERR_TORCH, "huge alloc rc %d: %s", rc, st.msg);

  /* bad dtype code and too many dims are argument errors */
  rc = atc_full(&st, xs, 4, one, (atc_dtype)42, CPU, &out);
  CHECK(rc == ATC_ERR_ARG, "bad dtype rc %d", rc);
  rc = atc_full(&st, xs, 17, one, ATC_F32, CPU, &out);
  CHECK(rc == ATC_ERR_ARG, "17 dims rc %d", rc);
  CHECK(out == (atc_tensor *)0x1, "output written on failure");
  atc_tensor_free(img);
  atc_tensor_free(w);
  atc_tensor_free(x);
}

static void test_round_half_even(void) {
  const double v[] = {0.5, 1.5, 2.5, -0.5, -1.5, 2.4999};
  const int64_t s[] = {6};
  atc_tensor *x = from(v, s, 1), *y = NULL;
  atc_status st;
  double r[6];
  CHECK(atc_unary(&st, ATC_ROUND, x, &y) == ATC_OK, "round: %s", st.msg);
  read(y, r, 6);
  CHECK(r[0] == 0 && r[1] == 2 && r[2] == 2 && r[3] == 0 && r[4] == -2 && r[5] == 2,
        "round half-even %g %g %g %g %g %g", r[0], r[1], r[2], r[3], r[4], r[5]);
  atc_tensor_free(y);
  atc_tensor_free(x);
}

/* d/dx sum(x*x) = 2x, then one SGD step and one Adam step by hand. */
static void test_autograd_optim(void) {
  const double v[] = {1, -2, 3};
  const int64_t s[] = {3};
  atc_tensor *x = from(v, s, 1), *sq = NULL, *loss = NULL, *g = NULL;
  atc_status st;
  double r[3];
  atc_requires_grad_(&st, x, 1);
  CHECK(atc_binary(&st, ATC_MUL, x, x, &sq) == ATC_OK, "mul: %s", st.msg);
  CHECK(atc_reduce(&st, ATC_SUM, sq, NULL, 0, 0, &loss) == ATC_OK, "sum: %s", st.msg);
  CHECK(atc_backward(&st, loss, NULL, 0) == ATC_OK, "backward: %s", st.msg);
  CHECK(atc_grad(&st, x, &g) == ATC_OK && g, "grad: %s", st.msg);
  read(g, r, 3);
  CHECK(r[0] == 2 && r[1] == -4 && r[2] == 6, "grad %g %g %g", r[0], r[1], r[2]);

  /* backward on a non-scalar without a gradient is an error */
  CHECK(atc_backward(&st, sq, NULL, 0) == ATC_ERR_ARG, "backward non-scalar");

  atc_optim *sgd = NULL;
  CHECK(atc_optim_sgd_new(&st, &x, 1, 0.1, 0, 0, 0, 0, &sgd) == ATC_OK, "sgd: %s", st.msg);
  CHECK(atc_optim_step(&st, sgd) == ATC_OK, "step: %s", st.msg);
  read(x, r, 3);
  CHECK(fabs(r[0] - 0.8) < 1e-12 && fabs(r[1] + 1.6) < 1e-12 && fabs(r[2] - 2.4) < 1e-12,
        "sgd step %g %g %g", r[0], r[1], r[2]);
  atc_optim_free(sgd);

  /* Adam's first step moves each coordinate by lr * g / (|g| + eps). */
  atc_optim *adam = NULL;
  CHECK(atc_optim_adam_new(&st, &x, 1, 0.01, 0.9, 0.999, 1e-8, 0, &adam) == ATC_OK, "adam: %s",
        st.msg);
  CHECK(atc_optim_step(&st, adam) == ATC_OK, "adam step: %s", st.msg);
  read(x, r, 3);
  CHECK(fabs(r[0] - (0.8 - 0.01)) < 1e-8 && fabs(r[1] - (-1.6 + 0.01)) < 1e-8 &&
            fabs(r[2] - (2.4 - 0.01)) < 1e-8,
        "adam step %.10f %.10f %.10f", r[0], r[1], r[2]);
  CHECK(atc_optim_zero_grad(&st, adam, 0) == ATC_OK, "zero_grad");
  atc_tensor *g2 = NULL;
  atc_grad(&st, x, &g2);
  read(g2, r, 3);
  CHECK(r[0] == 0 && r[1] == 0 && r[2] == 0, "zero_grad left %g %g %g", r[0], r[1], r[2]);
  atc_optim_free(adam);

  /* an optimizer over a non-leaf tensor is refused */
  atc_optim *bad = NULL;
  CHECK(atc_optim_sgd_new(&st, &sq, 1, 0.1, 0, 0, 0, 0, &bad) == ATC_ERR_ARG && !bad,
        "non-leaf param: %s", st.msg);
  atc_tensor_free(g2);
  atc_tensor_free(g);
  atc_tensor_free(loss);
  atc_tensor_free(sq);
  atc_tensor_free(x);
}

/* Same seed, same numbers; a private generator does not disturb the global. */
static void test_seed(void) {
  atc_status st;
  int64_t s[] = {5};
  atc_tensor *a = NULL, *b = NULL;
  double ra[5], rb[5];
  atc_manual_seed(&st, 7);
  atc_randn(&st, s, 1, ATC_F32, CPU, NULL, &a);
  atc_manual_seed(&st, 7);
  atc_randn(&st, s, 1, ATC_F32, CPU, NULL, &b);
  read(a, ra, 5);
  read(b, rb, 5);
  CHECK(memcmp(ra, rb, sizeof ra) == 0, "manual_seed does not repeat");
  atc_tensor_free(a);
  atc_tensor_free(b);
  atc_generator *g = NULL;
  CHECK(atc_generator_new(&st, 7, CPU, &g) == ATC_OK, "generator: %s", st.msg);
  atc_randn(&st, s, 1, ATC_F32, CPU, g, &a);
  read(a, rb, 5);
  CHECK(memcmp(ra, rb, sizeof ra) == 0, "generator seeded 7 differs from manual_seed(7)");
  atc_tensor_free(a);
  atc_generator_free(g);
}

int main(void) {
  test_matmul();
  test_errors();
  test_round_half_even();
  test_autograd_optim();
  test_seed();
  printf("%d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
