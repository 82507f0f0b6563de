/*
 * kernels_avx2: AVX2+FMA+F16C variants of the kernel set (see kernels.h).
 * Compiled with -mavx2 -mfma -mf16c; used only when the CPU reports them.
 */
#include "kernels.h"

#include <immintrin.h>

static float dot_avx2(const float *a, const float *b, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    for (int k = 0; i < n; i++, k++) lanes[k] += a[i] * b[i];
    return ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
}

static struct dp_kernel_ops avx2_ops = {.name = "avx2", .dot = dot_avx2};

const struct dp_kernel_ops *dp_kernels_avx2(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return NULL;
    return &avx2_ops;
}
