/*
 * quants: the block formats of GGUF's quantized weight types beyond Q8_0 and
 * Q4_0 (Q4_1, Q5_0, Q5_1, Q2_K..Q6_K, IQ4_NL, IQ4_XS), read three ways:
 *
 *  - decoders to f32, each value computed with llama.cpp's own expression
 *    and rounding (e.g. Q4_K: (d*sc)*q - dmin*m, two products and a
 *    difference, no fused operation), so "the weight" means the same number
 *    here as in llama.cpp's dequantize_row_*;
 *  - the activation rounding llama.cpp pairs with each type in a product
 *    (Q8_0 for Q5_0 and IQ4_NL, Q8_1 for Q4_1 and Q5_1, Q8_K for the
 *    K-quants and IQ4_XS), with its reference rounding;
 *  - block dots in the q8 order (kernels.h): per weight block, exact
 *    integer sums, then one or two fused multiply-adds into the output.
 *
 * The q8 order, per type (dw, mw: the block's f16 scale and min/offset;
 * dx: the activation block's scale; I_j = sum of qw*qx over sub-block j;
 * S_j = sum of qx over sub-block j; every sum below an exact int32):
 *
 *    Q5_0, IQ4_NL   y = fma(dw*dx, I, y)                        (block of 32)
 *    Q4_1, Q5_1     y = fma(dw*dx, I, y); y = fma(mw, sx, y)    (sx: Q8_1's s)
 *    Q4_K, Q5_K     y = fma(dw*dx, sum sc_j I_j, y); y = fma(-(dmin*dx), sum m_j S_j, y)
 *    Q2_K           the same with 16 sub-blocks of 16
 *    Q3_K, Q6_K     y = fma(dw*dx, sum sc_j I_j, y)             (16 sub-blocks of 16)
 *    IQ4_XS         y = fma(dw*dx, sum (ls_j-32) I_j, y)         (8 sub-blocks of 32)
 *
 * where qw is the weight's integer code as its decoder reads it (Q5_0: q-16,
 * Q3_K: q-4 or q, Q6_K: q-32, IQ4: the table value) and the integer sums
 * are converted to f32 (round to nearest) before the fma. Products of two
 * f16 values (dw*dx for Q8_0/Q8_1 activations) are exact; with Q8_K's f32
 * scale dw*dx is one rounding, the same in every kernel set.
 */
#ifndef DP_QUANTS_H
#define DP_QUANTS_H

#include "types.h"

#include <stdbool.h>
#include <stdint.h>

/* The activation rounding of the q8 mode for a weight type. */
enum dp_act_kind { DP_ACT_KIND_NONE = -1, DP_ACT_KIND_Q8_0, DP_ACT_KIND_Q8_1, DP_ACT_KIND_Q8_K };

/* Which rounding llama.cpp applies to activations multiplied by `type` (NONE: F32, F16, BF16, unsupported). */
enum dp_act_kind dp_quants_act_kind(uint32_t type);
/* Elements per activation block of a kind: 32 (Q8_0, Q8_1) or 256 (Q8_K). */
int dp_quants_act_block(enum dp_act_kind kind);

/* Decode n elements (whole blocks) of a row of `type` to f32, as llama.cpp's dequantize_row_*. */
void dp_quants_dequant_q4_1(const void *row, float *out, int64_t n);
void dp_quants_dequant_q5_0(const void *row, float *out, int64_t n);
void dp_quants_dequant_q5_1(const void *row, float *out, int64_t n);
void dp_quants_dequant_q2_k(const void *row, float *out, int64_t n);
void dp_quants_dequant_q3_k(const void *row, float *out, int64_t n);
void dp_quants_dequant_q4_k(const void *row, float *out, int64_t n);
void dp_quants_dequant_q5_k(const void *row, float *out, int64_t n);
void dp_quants_dequant_q6_k(const void *row, float *out, int64_t n);
void dp_quants_dequant_iq4_nl(const void *row, float *out, int64_t n);
void dp_quants_dequant_iq4_xs(const void *row, float *out, int64_t n);

/*
 * Bytes of a block of Q8_0, Q4_0 and the types above, as a constant the
 * compiler folds (the SIMD kernels need it in their inner loops, where a
 * call to dp_type_traits would stop unrolling); equal to types.c's table
 * (tests/test_quants.c). 0 for any other type.
 */
static inline int dp_quants_block_bytes(uint32_t type) {
    switch (type) {
    case DP_TYPE_Q8_0: return 34;
    case DP_TYPE_Q4_0: return 18;
    case DP_TYPE_Q4_1: return 20;
    case DP_TYPE_Q5_0: return 22;
    case DP_TYPE_Q5_1: return 24;
    case DP_TYPE_IQ4_NL: return 18;
    case DP_TYPE_Q2_K: return 84;
    case DP_TYPE_Q3_K: return 110;
    case DP_TYPE_Q4_K: return 144;
    case DP_TYPE_Q5_K: return 176;
    case DP_TYPE_Q6_K: return 210;
    case DP_TYPE_IQ4_XS: return 136;
    default: return 0;
    }
}

/* The sixteen values of IQ4_NL and IQ4_XS codes. */
extern const int8_t dp_quants_iq4_values[16];

/*
 * Activation rounding as llama.cpp's quantize_row_q8_1_ref and
 * quantize_row_q8_K_ref, x[0..n) (n a multiple of the block):
 *  Q8_1: per 32, d = amax/127 (f16 kept in d[b] as f32), q = roundf(x/d)
 *        half away from zero, s[b] = f16(sum q * d) as f32;
 *  Q8_K: per 256, max = the value of largest magnitude (first on ties),
 *        iscale = -127/max, q = min(127, nearest(iscale*x)) (ties to even),
 *        d[b] = 1/iscale in f32 (0 and q = 0 for an all-zero block);
 *        sum16[j] = sum of q over elements 16j..16j+15.
 * A block holding a non-finite value gets d (and s) NaN and q = 0, so its
 * outputs are NaN, as in the Q8_0 rounding of kernels.c.
 */
void dp_quants_act_q8_1(const float *x, int64_t n, int8_t *q, float *d, float *s);
void dp_quants_act_q8_k(const float *x, int64_t n, int8_t *q, float *d, int32_t *sum16);

/*
 * One weight block's contribution in the q8 order (above): returns y after
 * the block's fma(s). w: the weight block; qx: the activation block's 32 or
 * 256 codes; dx its scale; sx its Q8_1 s (other kinds: unused); sum16 its
 * sums over 16 elements (Q8_K; others: unused).
 */
typedef float (*dp_quants_q8_block_fn)(const uint8_t *w, const int8_t *qx, float dx, float sx, const int32_t *sum16,
                                       float y);
/* The block function of a weight type, including Q8_0 and Q4_0; NULL for types without a q8 order. */
dp_quants_q8_block_fn dp_quants_q8_block(uint32_t type);

#endif
