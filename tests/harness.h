/*
 * harness: the tiny test harness every tests/test_*.c includes.
 *
 * CHECK(cond) and the CHECK_* comparisons count a pass or report the failing
 * file:line with both values; CHECK_CLOSE_ARR compares arrays under a stated
 * tolerance and names the worst element. SKIP(reason) counts a check that
 * cannot run in this build (never a silent pass). Each test program ends with
 * `return TEST_END();`, which prints "N skipped" when any, then "N passed,
 * N failed", and gives the exit status. Reference files are found under DP_SHARED (default ../shared).
 */
#ifndef DP_TEST_HARNESS_H
#define DP_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed, test_failed, test_skipped;

/* A check that cannot run here (a library the build lacks): counted and said, never a pass. */
#define SKIP(...)                                                                        \
    do {                                                                                 \
        test_skipped++;                                                                  \
        fprintf(stderr, "%s:%d: SKIPPED: ", __FILE__, __LINE__);                         \
        fprintf(stderr, __VA_ARGS__);                                                    \
        fputc('\n', stderr);                                                             \
    } while (0)

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (cond) test_passed++;                                                         \
        else {                                                                           \
            test_failed++;                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);     \
        }                                                                                \
    } while (0)

#define CHECK_MSG(cond, ...)                                                             \
    do {                                                                                 \
        if (cond) test_passed++;                                                         \
        else {                                                                           \
            test_failed++;                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
        }                                                                                \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                               \
    do {                                                                                 \
        long long va_ = (long long)(a), vb_ = (long long)(b);                            \
        if (va_ == vb_) test_passed++;                                                   \
        else {                                                                           \
            test_failed++;                                                               \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld vs %lld\n", __FILE__, __LINE__, \
                    #a, #b, va_, vb_);                                                   \
        }                                                                                \
    } while (0)

/* |a-b| <= abs_tol + rel_tol*|b| */
#define CHECK_CLOSE(a, b, abs_tol, rel_tol)                                              \
    do {                                                                                 \
        double va_ = (double)(a), vb_ = (double)(b);                                     \
        if (fabs(va_ - vb_) <= (abs_tol) + (rel_tol)*fabs(vb_)) test_passed++;           \
        else {                                                                           \
            test_failed++;                                                               \
            fprintf(stderr, "%s:%d: %s ~ %s failed: %.9g vs %.9g (diff %.3g)\n",         \
                    __FILE__, __LINE__, #a, #b, va_, vb_, va_ - vb_);                    \
        }                                                                                \
    } while (0)

/* Arrays of n floats; reports the worst element. */
static inline int test_close_arr(const char *file, int line, const char *what, const float *a,
                                 const float *b, long n, double abs_tol, double rel_tol) {
    long worst = -1;
    double worst_excess = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double lim = abs_tol + rel_tol * fabs((double)b[i]);
        if (!(d <= lim) && (worst < 0 || d - lim > worst_excess)) {
            worst = i;
            worst_excess = d - lim;
        }
    }
    if (worst < 0) {
        test_passed++;
        return 1;
    }
    test_failed++;
    fprintf(stderr, "%s:%d: %s: worst element %ld: %.9g vs %.9g (tol %g abs + %g rel)\n", file,
            line, what, worst, a[worst], b[worst], abs_tol, rel_tol);
    return 0;
}
#define CHECK_CLOSE_ARR(a, b, n, abs_tol, rel_tol)                                       \
    test_close_arr(__FILE__, __LINE__, #a " ~ " #b, (a), (b), (n), (abs_tol), (rel_tol))

/* Path of a file under the shared folder (static buffer per call site use). */
static inline const char *test_shared(const char *rel) {
    static char buf[8][1024];
    static int k;
    const char *root = getenv("DP_SHARED");
    if (!root) root = "../shared";
    char *b = buf[k++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", root, rel);
    return b;
}

/* "N skipped" (when any) before the result line; tests/run.sh adds them up. */
#define TEST_END()                                                                       \
    (test_skipped ? printf("%d skipped\n", test_skipped) : 0,                           \
     printf("%d passed, %d failed\n", test_passed, test_failed), test_failed ? 1 : 0)

#endif
