/*
 * kernels_avx512: AVX-512 (F, BW, VL, DQ) + F16C variants of the kernel set,
 * bit-identical to the scalar reference (see kernels.h for the two orders).
 * Used only when the CPU reports the extensions.
 *
 * One zmm register holds the sixteen lanes of the dot order, so vecdot is a
 * straight walk along the rows: 32 weights at a time are dequantized in
 * registers (F16 by vcvtph2ps, BF16 by a shift, Q8_0 by widening and one
 * multiply by the block scale, Q4_0 by vpermps from a table of the sixteen
 * products d*(q-8); all exact) and fused into R x T accumulators (8 rows x
 * 1 token for decode, 4 rows x up to 5 tokens otherwise), so each weight
 * byte is read from memory once per call. The gemm path packs 32 rows at a
 * time by dequantizing 16 x 32 blocks and transposing them in registers; its
 * micro-kernel holds 32 rows x 12 tokens (24 zmm accumulators) and per k
 * loads two weight vectors and broadcasts each token's activation.
 */
#include "kernels.h"

#include <immintrin.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

/* ---- sixteen and thirty-two weights at a time ---- */

/* The f16 scale at p, in all lanes. */
INLINE __m512 f16_scale(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _mm512_cvtph_ps(_mm256_set1_epi16((short)h));
}

/*
 * Elements k..k+31 of a row (k a multiple of 32) into lo (k..k+15) and hi,
 * each the exact product of the scale and the integer, as in the scalar code.
 */
INLINE void load32(uint32_t type, const uint8_t *row, int64_t k, __m512 *lo, __m512 *hi) {
    switch (type) {
    case DP_TYPE_F32:
        *lo = _mm512_loadu_ps((const float *)row + k);
        *hi = _mm512_loadu_ps((const float *)row + k + 16);
        break;
    case DP_TYPE_F16:
        *lo = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + 2 * k)));
        *hi = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + 2 * k + 32)));
        break;
    case DP_TYPE_BF16:
        *lo = _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(row + 2 * k))), 16));
        *hi = _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(row + 2 * k + 32))), 16));
        break;
    case DP_TYPE_Q8_0: {
        const uint8_t *p = row + (k >> 5) * 34;
        __m512 d = f16_scale(p);
        *lo = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 2)))), d);
        *hi = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 18)))), d);
        break;
    }
    default: { /* Q4_0: low nibbles are elements 0..15, high nibbles 16..31 */
        const uint8_t *p = row + (k >> 5) * 18;
        /* a table of the sixteen products d*(q-8), looked up by vpermps (low four bits of each lane) */
        const __m512 q8 = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
        __m512 table = _mm512_mul_ps(q8, f16_scale(p));
        __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p + 2)));
        *lo = _mm512_permutexvar_ps(b, table);
        *hi = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), table);
        break;
    }
    }
}

/* The first m elements (0 < m <= 16) of k..k+15, zeros after (F32, F16, BF16 only). */
INLINE __m512 load16_part(uint32_t type, const uint8_t *row, int64_t k, int64_t m) {
    __mmask16 mask = (__mmask16)((1u << m) - 1);
    switch (type) {
    case DP_TYPE_F32: return _mm512_maskz_loadu_ps(mask, (const float *)row + k);
    case DP_TYPE_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, row + 2 * k));
    default:
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, row + 2 * k)), 16));
    }
}

INLINE __mmask16 tail_mask(int64_t m) { return (__mmask16)((1u << m) - 1); }

/* The tree of the dot order: lanes j + j+8, then j + j+4, j + j+2, j + j+1. */
INLINE float reduce16(__m512 v) {
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

static float dot_avx512(const float *a, const float *b, int64_t n) {
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        acc = _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc, m);
    }
    return reduce16(acc);
}

/* ---- dequantization of whole rows ---- */

INLINE void dequant_row(uint32_t type, const void *row, float *out, int64_t n) {
    int64_t k = 0;
    for (; k + 32 <= n; k += 32) {
        __m512 lo, hi;
        load32(type, row, k, &lo, &hi);
        _mm512_storeu_ps(out + k, lo);
        _mm512_storeu_ps(out + k + 16, hi);
    }
    for (; k < n; k += 16) { /* F32, F16, BF16 */
        int64_t m = n - k < 16 ? n - k : 16;
        _mm512_mask_storeu_ps(out + k, tail_mask(m), load16_part(type, row, k, m));
    }
}

static void dequant_f16(const void *row, float *out, int64_t n) { dequant_row(DP_TYPE_F16, row, out, n); }
static void dequant_bf16(const void *row, float *out, int64_t n) { dequant_row(DP_TYPE_BF16, row, out, n); }
static void dequant_q8_0(const void *row, float *out, int64_t n) { dequant_row(DP_TYPE_Q8_0, row, out, n); }
static void dequant_q4_0(const void *row, float *out, int64_t n) { dequant_row(DP_TYPE_Q4_0, row, out, n); }

/* ---- decode: R rows x T tokens in the dot order ---- */

/* Bytes of 32 elements. */
INLINE int64_t bytes32(uint32_t type) {
    switch (type) {
    case DP_TYPE_F32: return 128;
    case DP_TYPE_F16: case DP_TYPE_BF16: return 64;
    case DP_TYPE_Q8_0: return 34;
    default: return 18;
    }
}

/*
 * R rows x T tokens. The rows of a tile are R short streams that the
 * hardware prefetcher learns too late, so the loop sweeps the next tile's
 * bytes (next, R*rb of them) into the cache in step with its own progress.
 */
INLINE void vecdot_tile(uint32_t type, int R, int T, const uint8_t *W, size_t rb, const float *X, int64_t ldx,
                        int64_t n, float *Y, int64_t ldy, const uint8_t *next) {
    __m512 acc[8][5];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 32 <= n; k += 32) {
        const uint8_t *pf = next + (k >> 5) * R * bytes32(type);
#pragma GCC unroll 16
        for (int64_t b = 0; b < R * bytes32(type); b += 64) _mm_prefetch((const char *)pf + b, _MM_HINT_T0);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            __m512 lo, hi;
            load32(type, W + r * rb, k, &lo, &hi);
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                acc[r][t] = _mm512_fmadd_ps(lo, _mm512_loadu_ps(X + t * ldx + k), acc[r][t]);
                acc[r][t] = _mm512_fmadd_ps(hi, _mm512_loadu_ps(X + t * ldx + k + 16), acc[r][t]);
            }
        }
    }
    for (; k < n; k += 16) { /* F32, F16, BF16 */
        int64_t m = n - k < 16 ? n - k : 16;
        __mmask16 mask = tail_mask(m);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            __m512 w = load16_part(type, W + r * rb, k, m);
#pragma GCC unroll 8
            for (int t = 0; t < T; t++)
                acc[r][t] = _mm512_mask3_fmadd_ps(w, _mm512_maskz_loadu_ps(mask, X + t * ldx + k), acc[r][t], mask);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) Y[t * ldy + r] = reduce16(acc[r][t]);
}

/* R-row tiles over all tokens, T at a time; a tile's rows stay in cache while the tokens pass. */
INLINE void vecdot_rows(uint32_t type, int R, int T, const uint8_t *W, size_t rb, int n_rows, const float *X,
                        int64_t ldx, int n_tok, int64_t n, float *Y, int64_t ldy) {
    for (int r = 0; r < n_rows;) {
        int nr = n_rows - r >= R ? R : 1;
        const uint8_t *w = W + r * rb, *next = W + (r + nr) * rb;
        for (int t = 0; t < n_tok; t += T) {
            const float *x = X + t * ldx;
            float *y = Y + t * ldy + r;
            if (T == 1) {
                if (nr == R) vecdot_tile(type, R, 1, w, rb, x, ldx, n, y, ldy, next);
                else vecdot_tile(type, 1, 1, w, rb, x, ldx, n, y, ldy, next);
            } else if (nr == R) {
                switch (n_tok - t < T ? n_tok - t : T) {
                case 1: vecdot_tile(type, R, 1, w, rb, x, ldx, n, y, ldy, next); break;
                case 2: vecdot_tile(type, R, 2, w, rb, x, ldx, n, y, ldy, next); break;
                case 3: vecdot_tile(type, R, 3, w, rb, x, ldx, n, y, ldy, next); break;
                case 4: vecdot_tile(type, R, 4, w, rb, x, ldx, n, y, ldy, next); break;
                default: vecdot_tile(type, R, T, w, rb, x, ldx, n, y, ldy, next); break;
                }
            } else {
                switch (n_tok - t < T ? n_tok - t : T) {
                case 1: vecdot_tile(type, 1, 1, w, rb, x, ldx, n, y, ldy, next); break;
                case 2: vecdot_tile(type, 1, 2, w, rb, x, ldx, n, y, ldy, next); break;
                case 3: vecdot_tile(type, 1, 3, w, rb, x, ldx, n, y, ldy, next); break;
                case 4: vecdot_tile(type, 1, 4, w, rb, x, ldx, n, y, ldy, next); break;
                default: vecdot_tile(type, 1, T, w, rb, x, ldx, n, y, ldy, next); break;
                }
            }
        }
        r += nr;
    }
}

/* 8 rows x 1 token for decode proper; 4 rows x up to 5 tokens otherwise (20 of the 32 zmm registers). */
INLINE void vecdot(uint32_t type, const void *W, size_t rb, int n_rows, const float *X, int64_t ldx, int n_tok,
                   int64_t n, float *Y, int64_t ldy) {
    if (n_tok == 1) vecdot_rows(type, 8, 1, W, rb, n_rows, X, ldx, n_tok, n, Y, ldy);
    else vecdot_rows(type, 4, 5, W, rb, n_rows, X, ldx, n_tok, n, Y, ldy);
}

/* ---- prefill: packing 16 x 16 blocks through a register transpose ---- */

/* r[i][j] -> r[j][i] for a 16 x 16 block. */
INLINE void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int p = 0; p < 8; p++) {
        t[2 * p] = _mm512_unpacklo_ps(r[2 * p], r[2 * p + 1]);
        t[2 * p + 1] = _mm512_unpackhi_ps(r[2 * p], r[2 * p + 1]);
    }
    /* u[4q+m], 128-bit lane L: rows 4q..4q+3 at column 4L+m */
    for (int q = 0; q < 4; q++) {
        u[4 * q + 0] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0x44);
        u[4 * q + 1] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0xEE);
        u[4 * q + 2] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0x44);
        u[4 * q + 3] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0xEE);
    }
    /* a 4 x 4 transpose of 128-bit lanes across u[m], u[4+m], u[8+m], u[12+m] */
    for (int m = 0; m < 4; m++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x88), v1 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xDD);
        __m512 v2 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x88), v3 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xDD);
        r[m] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        r[4 + m] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        r[8 + m] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
        r[12 + m] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
}

INLINE void pack(uint32_t type, const void *W, size_t rb, int n_rows, int mr, int64_t k0, int64_t kc, float *P) {
    const uint8_t *w = W;
    for (int i0 = 0; i0 < mr; i0 += 16) {
        for (int64_t c = 0; c < kc; c += 32) {
            int64_t len = kc - c < 32 ? kc - c : 32;
            __m512 a[16], b[16];
            for (int i = 0; i < 16; i++) {
                const uint8_t *row = w + (i0 + i) * rb;
                if (i0 + i >= n_rows) {
                    a[i] = b[i] = _mm512_setzero_ps();
                } else if (len == 32) {
                    /* the same columns of the next column block: rows are short streams, as in vecdot */
                    _mm_prefetch((const char *)row + (k0 + c + DP_GEMM_KC) / 32 * bytes32(type), _MM_HINT_T1);
                    load32(type, row, k0 + c, &a[i], &b[i]);
                } else { /* F32, F16, BF16 */
                    a[i] = load16_part(type, row, k0 + c, len < 16 ? len : 16);
                    b[i] = len > 16 ? load16_part(type, row, k0 + c + 16, len - 16) : _mm512_setzero_ps();
                }
            }
            transpose16(a);
            for (int j = 0; j < len && j < 16; j++) _mm512_storeu_ps(P + (c + j) * mr + i0, a[j]);
            if (len <= 16) continue;
            transpose16(b);
            for (int j = 16; j < len; j++) _mm512_storeu_ps(P + (c + j) * mr + i0, b[j - 16]);
        }
    }
}

#define TYPED(T, NAME)                                                                                    \
    static void vecdot_##NAME(const void *W, size_t rb, int nr, const float *X, int64_t ldx, int nt, int64_t n, \
                              float *Y, int64_t ldy) {                                                    \
        vecdot(T, W, rb, nr, X, ldx, nt, n, Y, ldy);                                                      \
    }                                                                                                     \
    static void pack_##NAME(const void *W, size_t rb, int nr, int mr, int64_t k0, int64_t kc, float *P) {  \
        pack(T, W, rb, nr, mr, k0, kc, P);                                                                \
    }
TYPED(DP_TYPE_F32, f32)
TYPED(DP_TYPE_F16, f16)
TYPED(DP_TYPE_BF16, bf16)
TYPED(DP_TYPE_Q8_0, q8_0)
TYPED(DP_TYPE_Q4_0, q4_0)

/* ---- prefill: the 32 x NR micro-kernel ---- */

#define MR 32
#define NR 12

INLINE void gemm_tile(int nr, const float *P, const float *Xp, int64_t kc, int n_tok, int n_rows, float *Y,
                      int64_t ldy, bool acc) {
    __m512 c0[NR], c1[NR];
    __mmask16 m0 = n_rows >= 16 ? 0xFFFF : tail_mask(n_rows), m1 = n_rows >= 32 ? 0xFFFF : n_rows > 16 ? tail_mask(n_rows - 16) : 0;
#pragma GCC unroll 12
    for (int t = 0; t < nr; t++) {
        if (acc && t < n_tok) {
            c0[t] = _mm512_maskz_loadu_ps(m0, Y + t * ldy);
            c1[t] = _mm512_maskz_loadu_ps(m1, Y + t * ldy + 16);
        } else {
            c0[t] = c1[t] = _mm512_setzero_ps();
        }
    }
    for (int64_t k = 0; k < kc; k++) {
        __m512 w0 = _mm512_load_ps(P + k * MR), w1 = _mm512_load_ps(P + k * MR + 16);
#pragma GCC unroll 12
        for (int t = 0; t < nr; t++) {
            __m512 x = _mm512_set1_ps(Xp[k * nr + t]);
            c0[t] = _mm512_fmadd_ps(w0, x, c0[t]);
            c1[t] = _mm512_fmadd_ps(w1, x, c1[t]);
        }
    }
#pragma GCC unroll 12
    for (int t = 0; t < nr; t++) {
        if (t < n_tok) {
            _mm512_mask_storeu_ps(Y + t * ldy, m0, c0[t]);
            _mm512_mask_storeu_ps(Y + t * ldy + 16, m1, c1[t]);
        }
    }
}

static void gemm_avx512(const float *P, const float *Xp, int nr_b, int64_t kc, int n_tok, int n_rows, float *Y,
                        int64_t ldy, bool acc) {
    switch (nr_b) {
    case 4: gemm_tile(4, P, Xp, kc, n_tok, n_rows, Y, ldy, acc); break;
    case 8: gemm_tile(8, P, Xp, kc, n_tok, n_rows, Y, ldy, acc); break;
    default: gemm_tile(NR, P, Xp, kc, n_tok, n_rows, Y, ldy, acc); break;
    }
}

static const struct dp_kernel_ops avx512_ops = {
    .name = "avx512",
    .dot = dot_avx512,
    .dequant = {
        [DP_TYPE_F16] = dequant_f16, [DP_TYPE_BF16] = dequant_bf16,
        [DP_TYPE_Q8_0] = dequant_q8_0, [DP_TYPE_Q4_0] = dequant_q4_0,
    },
    .vecdot = {
        [DP_TYPE_F32] = vecdot_f32, [DP_TYPE_F16] = vecdot_f16, [DP_TYPE_BF16] = vecdot_bf16,
        [DP_TYPE_Q8_0] = vecdot_q8_0, [DP_TYPE_Q4_0] = vecdot_q4_0,
    },
    .pack = {
        [DP_TYPE_F32] = pack_f32, [DP_TYPE_F16] = pack_f16, [DP_TYPE_BF16] = pack_bf16,
        [DP_TYPE_Q8_0] = pack_q8_0, [DP_TYPE_Q4_0] = pack_q4_0,
    },
    .gemm = gemm_avx512,
    .mr = MR, .nr = NR, .nr_step = 4,
};

const struct dp_kernel_ops *dp_kernels_avx512(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq") ||
        !__builtin_cpu_supports("f16c") || !__builtin_cpu_supports("fma"))
        return NULL;
    return &avx512_ops;
}
