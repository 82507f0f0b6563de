/*
 * kernels: the arithmetic on weights. Rows of every supported tensor type are
 * dequantized to f32 and multiplied with f32 activations (the exact mode:
 * dequantized weights are exact in f32, so only the order of the sums
 * differs from a textbook product). The scalar code in kernels.c is the
 * reference; SIMD variants (kernels_avx2.c, kernels_avx512.c) fill the same
 * table and are picked at start-up unless DP_SCALAR=1 forces the reference.
 *
 * Matrix products split the output rows into fixed contiguous shares per
 * thread, and every output element is one dot product computed start to end
 * by one thread, so results are identical for any thread count.
 */
#ifndef DP_KERNELS_H
#define DP_KERNELS_H

#include "pool.h"
#include "types.h"

typedef void (*dp_dequant_fn)(const void *row, float *out, int64_t n);
typedef void (*dp_quant_fn)(const float *x, void *row, int64_t n);

/* One implementation of the kernel set. */
struct dp_kernel_ops {
    const char *name;                        /* "scalar", "avx2", "avx512" */
    float (*dot)(const float *a, const float *b, int64_t n);
    dp_dequant_fn dequant[DP_TYPE_COUNT];    /* NULL: type not supported */
    /*
     * Optional fast path for a tile: Y[t*ldy + r] = W_r . X_t for r < n_rows,
     * t < n_tok, where W holds n_rows f32 rows of n (already dequantized).
     * NULL falls back to calls of dot.
     */
    void (*gemm_f32)(const float *W, int n_rows, const float *X, int64_t ldx, int n_tok,
                     int64_t n, float *Y, int64_t ldy);
};

/* The scalar reference set, and the set in use (SIMD unless DP_SCALAR=1 or absent). */
const struct dp_kernel_ops *dp_kernels_scalar(void);
const struct dp_kernel_ops *dp_kernels_best(void);
/* Set the kernels in use (tests); NULL restores the best. */
void dp_kernels_use(const struct dp_kernel_ops *ops);
const struct dp_kernel_ops *dp_kernels(void);

/* Whether rows of this type can be computed with. */
bool dp_kernels_supported(uint32_t type);
/* Dequantize n elements (a whole number of blocks) of a row. */
void dp_dequant_row(uint32_t type, const void *row, float *out, int64_t n);
/* Quantize n f32 values into a row of `type` (F32, F16, BF16, Q8_0, Q4_0), as llama.cpp rounds. */
dp_status dp_quantize_row(uint32_t type, const float *x, void *row, int64_t n);

/*
 * Y (n_tok x n_out, row stride n_out) = X (n_tok x n_in, row stride n_in) W^T,
 * W (n_out x n_in) in `type` with row bytes dp_type_row_bytes(type, n_in).
 */
void dp_matmul(struct dp_pool *pool, const void *W, uint32_t type, int64_t n_in, int64_t n_out,
               const float *X, int n_tok, float *Y);

/* SIMD sets (NULL when the CPU or the build lacks them). */
const struct dp_kernel_ops *dp_kernels_avx2(void);
const struct dp_kernel_ops *dp_kernels_avx512(void);

#endif
