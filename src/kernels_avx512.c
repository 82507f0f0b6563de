/*
 * kernels_avx512: AVX-512 (F, BW, VL, DQ, VNNI, BF16) variants of the kernel
 * set (see kernels.h). Used only when the CPU reports them.
 */
#include "kernels.h"

#include <immintrin.h>

static float dot_avx512(const float *a, const float *b, int64_t n) {
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

static struct dp_kernel_ops avx512_ops = {.name = "avx512", .dot = dot_avx512};

const struct dp_kernel_ops *dp_kernels_avx512(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512vnni"))
        return NULL;
    return &avx512_ops;
}
