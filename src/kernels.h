/*
 * kernels: the arithmetic on weights. Weights stay in their file type (F32,
 * F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K, IQ4_NL, IQ4_XS; the
 * block formats beyond Q8_0/Q4_0 are decoded by quants.c) and are
 * dequantized on the fly; activations are f32.
 * Dequantized weights are exact in f32, so a product differs from a textbook
 * one only by the order of its sums, and that order is fixed here:
 *
 *  - the dot order (dp_matmul with n_tok < DP_GEMM_MIN_TOK: decode and short
 *    batches; the `dot` op): element k of a row goes to lane k mod 16; each lane is a
 *    chain of fused multiply-adds in increasing k starting from +0; the
 *    sixteen lanes are then added as a tree, lane j with lane j+8, then j+4,
 *    j+2, j+1 (dp_kernels_reduce16 spells it out);
 *  - the gemm order (prefill, n_tok >= DP_GEMM_MIN_TOK): every output element
 *    is one chain of fused multiply-adds over k = 0, 1, ..., n_in-1 from +0.
 *
 * Both orders depend only on n_in, never on the thread count, the tile an
 * element falls into, or the instruction set: the scalar reference (fmaf)
 * and the SIMD variants (kernels_avx2.c, kernels_avx512.c) give the same
 * bits, and tests/test_kernels.c holds them to it. The SIMD set is picked at
 * start-up unless DP_SCALAR=1 forces the reference.
 *
 * In the dot order, vecdot reads the quantized rows directly and
 * dequantizes in registers, a few rows by a few tokens at a time, so decode
 * is bound by memory bandwidth. The gemm order runs a register-blocked
 * outer-product kernel: a thread packs `mr` weight rows, dequantized and
 * transposed, into a panel of DP_GEMM_KC columns (k-major), the tokens are
 * packed `nr` at a time (k-major, shared by all threads), and the
 * micro-kernel keeps an mr x nr block of outputs in registers while it walks
 * k. Speed and the reasons for these choices: docs/performance.md.
 *
 * The q8 activation mode (dp_matmul's act = DP_ACT_Q8, `--act q8`) rounds
 * activations the way llama.cpp does before products with quantized weights
 * (Q8_0 blocks for Q8_0, Q4_0, Q5_0 and IQ4_NL; Q8_1 for Q4_1 and Q5_1;
 * Q8_K for the K-quants and IQ4_XS: quants.h); F32, F16 and BF16 weights stay
 * exact. dp_matmul rounds each row of X once per call with llama.cpp's
 * reference rounding (Q8_0: d = amax/127, q = round(x/d) half away from
 * zero, d stored as f16), and every output is then computed in the q8
 * order, the same for any n_tok (a decode step reproduces a batch bit for
 * bit). For Q8_0 and Q4_0 weights:
 *
 *  - per block b of 32 elements, I_b = sum of qw_j * qx_j, an exact integer
 *    (qw = q for Q8_0, nibble - 8 for Q4_0; |I_b| < 2^20);
 *  - y = +0, then y = fma(dw_b * dx_b, (float)I_b, y) for b = 0, 1, ... in
 *    increasing b. dw_b * dx_b is exact in f32 (two f16 values), and so is
 *    (float)I_b, so the fma is the only rounding per block.
 *
 * The other types follow the same pattern with their scales and mins; the
 * exact rule per type is in quants.h.
 *
 * Non-finite activations in a block make its d NaN (and the outputs NaN).
 * The SIMD variants compute I_b with vpdpbusd (AVX-512 VNNI) or
 * vpmaddubsw/vpmaddwd (AVX2), one 16- or 8-row register per block, and give
 * the scalar reference's bits. Error against the exact mode: tests and
 * docs/performance.md.
 */
#ifndef DP_KERNELS_H
#define DP_KERNELS_H

#include "pool.h"
#include "quantize.h"
#include "quants.h"
#include "types.h"

/* dp_matmul uses the gemm order from this many tokens on, the dot order below it. */
#define DP_GEMM_MIN_TOK 64
/* Columns of k per packed weight panel (a multiple of 32, so quantized blocks never straddle). */
#define DP_GEMM_KC 512
/* Largest register tile any variant uses. */
#define DP_GEMM_MR_MAX 32
#define DP_GEMM_NR_MAX 16

typedef void (*dp_dequant_fn)(const void *row, float *out, int64_t n);
/*
 * Y[t*ldy + r] = W_r . X_t in the dot order, for r < n_rows and t < n_tok;
 * W_r is row r of `type`, rows row_bytes apart, X_t = X + t*ldx holds n
 * elements.
 */
typedef void (*dp_vecdot_fn)(const void *W, size_t row_bytes, int n_rows, const float *X, int64_t ldx,
                             int n_tok, int64_t n, float *Y, int64_t ldy);
/*
 * Pack columns [k0, k0+kc) of rows 0..n_rows-1 (n_rows <= mr) of W, rows
 * row_bytes apart, into P[k*mr + i] (k < kc, i < mr), dequantized; rows
 * n_rows..mr-1 are zero. For quantized types k0 and kc are multiples of 32.
 */
typedef void (*dp_pack_fn)(const void *W, size_t row_bytes, int n_rows, int mr, int64_t k0, int64_t kc, float *P);
/*
 * The micro-kernel: for i < n_rows (<= mr) and t < n_tok (<= nr_b),
 * Y[t*ldy + i] = (acc ? Y[t*ldy + i] : 0) + sum over k < kc of P[k*mr + i] * Xp[k*nr_b + t],
 * one fused multiply-add per k in increasing k. nr_b (the width of the packed
 * token block) is a multiple of nr_step and at most nr.
 */
typedef void (*dp_gemm_fn)(const float *P, const float *Xp, int nr_b, int64_t kc, int n_tok, int n_rows,
                           float *Y, int64_t ldy, bool acc);

/*
 * Activation rows rounded to Q8_0 blocks (the q8 mode), n_in elements each,
 * nb = n_in/32 blocks each. bias lets SIMD kernels multiply unsigned weight
 * codes u = qw + off (Q8_0: off 128, Q4_0: off 8, the raw nibble):
 * sum qw*qx = sum u*qx + bias.
 */
struct dp_act_q8 {
    const int8_t *q;      /* (n_tok, n_in): the rounded values */
    const float *d;       /* (n_tok, nb): block scales (Q8_0/Q8_1: f16 values as f32, nb = n_in/32; Q8_K: f32, n_in/256) */
    const int32_t *bias;  /* Q8_0 only, (n_tok, nb): -off * sum of the block's q; NULL otherwise */
    int64_t n_in;
    const float *s;       /* Q8_1 only, (n_tok, nb): the block's s (f16 of d * sum q, as f32); NULL otherwise */
    const int32_t *sum16; /* Q8_K only, (n_tok, n_in/16): sums of q over 16 elements; NULL otherwise */
};
/* Round x[0..n) (n a multiple of 32) to Q8_0 blocks as llama.cpp does, into q, d and bias (see above). */
typedef void (*dp_quant_act_fn)(const float *x, int64_t n, int32_t off, int8_t *q, float *d, int32_t *bias);
/*
 * Y[t*ldy + r] = W_r . A_t in the q8 order, for r < n_rows and t < n_tok;
 * W_r is row r of a Q8_0 or Q4_0 matrix, rows row_bytes apart.
 */
typedef void (*dp_vecdot_q8_fn)(const void *W, size_t row_bytes, int n_rows, const struct dp_act_q8 *A, int n_tok,
                                float *Y, int64_t ldy);

/* Heads up to this size keep their keys as columns (see attend and kernels_attend.h). */
#define DP_ATTEND_SMALL_HD 16

/* One implementation of the kernel set. NULL entries fall back to the scalar set (same bits). */
struct dp_kernel_ops {
    const char *name;                        /* "scalar", "avx2", "avx512" */
    float (*dot)(const float *a, const float *b, int64_t n); /* dot order */
    /* y[i] = fma(a, x[i], y[i]): one rounding per element, so every set gives the same bits */
    void (*axpy)(float a, const float *x, float *y, int64_t n);
    /* One query's causal attention: scores, softmax, weighted values (kernels_attend.h);
     * K is (hd, ldk) column-major for hd <= DP_ATTEND_SMALL_HD, (n_keys, hd) rows above */
    void (*attend)(const float *q, const float *K, int64_t ldk, const float *V, int n_keys, int hd, float scale,
                   float *sc, float *o);
    dp_dequant_fn dequant[DP_TYPE_COUNT];
    dp_vecdot_fn vecdot[DP_TYPE_COUNT];
    dp_pack_fn pack[DP_TYPE_COUNT];
    dp_gemm_fn gemm;
    int mr, nr, nr_step;                     /* register tile of gemm */
    /* q8 mode (both NULL: this set has none; an AVX-512 set without VNNI uses the AVX2 set's) */
    dp_quant_act_fn quant_act;
    dp_vecdot_q8_fn vecdot_q8[DP_TYPE_COUNT];
};

/* The scalar reference set, and the set in use (SIMD unless DP_SCALAR=1 or absent). */
const struct dp_kernel_ops *dp_kernels_scalar(void);
const struct dp_kernel_ops *dp_kernels_best(void);
/* Set the kernels in use (tests, benchmarks); NULL restores the best. */
void dp_kernels_use(const struct dp_kernel_ops *ops);
const struct dp_kernel_ops *dp_kernels(void);

/* Whether rows of this type can be computed with. */
bool dp_kernels_supported(uint32_t type);
/* Dequantize n elements (a whole number of blocks) of a row. */
void dp_dequant_row(uint32_t type, const void *row, float *out, int64_t n);
/* The tree that ends the dot order: (l0+l8) with (l4+l12) ... as described above. */
float dp_kernels_reduce16(const float l[16]);

/* enum dp_act (the activation mode a model or session computes in) is declared in depthprune.h. */
/* The set whose q8 functions dp_matmul uses for `type` under the set in use (see struct dp_kernel_ops). */
const struct dp_kernel_ops *dp_kernels_q8(uint32_t type);

/*
 * Y (n_tok x n_out, row stride n_out) = X (n_tok x n_in, row stride n_in) W^T,
 * W (n_out x n_in) in `type` with row bytes dp_type_row_bytes(type, n_in).
 * Same bits for every pool size and every kernel set. In the q8 mode, Q8_0
 * and the other quantized types take the q8 order (above, quants.h); float types are unaffected.
 */
#define DP_MATMUL_MIN_PARALLEL 131072.0 /* multiply-adds below which dp_matmul stays on the caller */
void dp_matmul(struct dp_pool *pool, enum dp_act act, const void *W, uint32_t type, int64_t n_in, int64_t n_out,
               const float *X, int n_tok, float *Y);
/*
 * The same product in the order dp_matmul takes for seg_tok tokens, for a
 * batch of segments (several sequences) that each ran alone as seg_tok
 * tokens: every row gets the bits it has there, one weight pass serves all.
 */
void dp_matmul_seg(struct dp_pool *pool, enum dp_act act, const void *W, uint32_t type, int64_t n_in, int64_t n_out,
                   const float *X, int n_tok, float *Y, int seg_tok);

/* SIMD sets (NULL when the CPU or the build lacks them). */
const struct dp_kernel_ops *dp_kernels_avx2(void);
const struct dp_kernel_ops *dp_kernels_avx512(void);

#endif
