/*
 * What the kernel tests share (test_kernels.c, test_actq8.c): a seeded
 * xorshift generator for test data, bit-for-bit comparison of float
 * arrays, and the kernel sets this machine can run.
 */
#ifndef DP_KERNEL_TESTING_H
#define DP_KERNEL_TESTING_H

#include "harness.h"
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The generator's state; a test may seed it before drawing. */
static inline uint64_t *rng_state(void) {
    static uint64_t state = 0x9E3779B97F4A7C15ull;
    return &state;
}

static inline uint32_t rnd(void) {
    uint64_t *r = rng_state();
    *r ^= *r << 13;
    *r ^= *r >> 7;
    *r ^= *r << 17;
    return (uint32_t)(*r >> 16);
}

/* Uniform in [-1, 1). */
static inline float rndf(void) { return (float)((int32_t)rnd() % 65536) / 65536.0f; }

static inline uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Same bits, or both NaN. Reports the first difference. */
static inline int same_bits(const char *what, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (fbits(a[i]) != fbits(b[i]) && !(isnan(a[i]) && isnan(b[i]))) {
            fprintf(stderr, "  %s: element %lld: %.9g (0x%08x) vs %.9g (0x%08x)\n", what, (long long)i, a[i],
                    fbits(a[i]), b[i], fbits(b[i]));
            return 0;
        }
    return 1;
}

/* The scalar set and the SIMD sets present, in that order; returns their count (at most 3). */
static inline int kernel_sets(const struct dp_kernel_ops *out[3]) {
    int n = 0;
    out[n++] = dp_kernels_scalar();
    if (dp_kernels_avx2()) out[n++] = dp_kernels_avx2();
    if (dp_kernels_avx512()) out[n++] = dp_kernels_avx512();
    return n;
}

#endif
