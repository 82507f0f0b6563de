/*
 * kernels_avx512: AVX-512 (F, BW, VL, DQ) + F16C variants of the kernel set,
 * bit-identical to the scalar reference (see kernels.h for the two orders).
 * Used only when the CPU reports the extensions. The q8-mode kernels also
 * need AVX-512 VNNI: they alone are compiled for it (a target pragma around
 * their section) and are in the set only when the CPU reports it.
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
 * The types of quants.c decode in load32_more (exact mode) and have q8-mode
 * kernels of their own: the 32-element types on the Q8_0/Q4_0 layout, the
 * 256-element ones through struct kq_blk (see those sections).
 */
#include "kernels.h"
#include "kernels_attend.h"
#include "cpu_features.h"

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

/* ---- sixteen and thirty-two weights at a time ---- */

/* The f16 scale at p, in all lanes. */
INLINE __m512 f16_scale(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _mm512_cvtph_ps(_mm256_set1_epi16((short)h));
}

/* ---- the weight types of quants.c, 32 elements at a time (exact mode) ---- */

INLINE float f16s(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}
INLINE __m512 iota16(float first) {
    return _mm512_add_ps(_mm512_set1_ps(first), _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}
/* Bytes 0..15 at p, one per lane. */
INLINE __m512i bytes16(const uint8_t *p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)); }
/* Bit l of the 32 bits v, for l = 0..15 (lo) or 16..31 (hi), moved to bit 4. */
INLINE __m512i bit4_of(uint32_t v, int hi) {
    __m512i sh = _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                  _mm512_set1_epi32(16 * hi));
    return _mm512_slli_epi32(_mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32((int)v), sh), _mm512_set1_epi32(1)), 4);
}
/* Q4_K / Q5_K: scale and min of sub-block j (quants.c's scale_min_k4). */
INLINE void k4_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}
INLINE __m512 iq4_table(void) {
    return _mm512_setr_ps(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
}

/*
 * Elements k..k+31 (k a multiple of 32) of a row of a quants.c type, each
 * with its decoder's expression: the products that do not depend on the
 * code are formed once (scalar or vector, the same rounding), then applied
 * to the codes, or looked up by vpermps/vpermt2ps from a table of the
 * block's 16 or 32 possible values computed by that same expression.
 */
INLINE void load32_more(uint32_t type, const uint8_t *row, int64_t k, __m512 *lo, __m512 *hi) {
    int j = (int)(k >> 5) & 7; /* the group of 32 in a superblock */
    switch (type) {
    case DP_TYPE_Q4_1: case DP_TYPE_Q5_1: { /* q*d + m */
        bool q5 = type == DP_TYPE_Q5_1;
        const uint8_t *p = row + (k >> 5) * (q5 ? 24 : 20);
        __m512 d = _mm512_set1_ps(f16s(p)), m = _mm512_set1_ps(f16s(p + 2));
        __m512i b = bytes16(p + (q5 ? 8 : 4)), bl = _mm512_and_si512(b, _mm512_set1_epi32(15)), bh = _mm512_srli_epi32(b, 4);
        if (!q5) {
            __m512 t = _mm512_add_ps(_mm512_mul_ps(iota16(0), d), m);
            *lo = _mm512_permutexvar_ps(bl, t), *hi = _mm512_permutexvar_ps(bh, t);
        } else {
            uint32_t qh;
            memcpy(&qh, p + 4, 4);
            __m512 t0 = _mm512_add_ps(_mm512_mul_ps(iota16(0), d), m), t1 = _mm512_add_ps(_mm512_mul_ps(iota16(16), d), m);
            *lo = _mm512_permutex2var_ps(t0, _mm512_or_si512(bl, bit4_of(qh, 0)), t1);
            *hi = _mm512_permutex2var_ps(t0, _mm512_or_si512(bh, bit4_of(qh, 1)), t1);
        }
        break;
    }
    case DP_TYPE_Q5_0: { /* (q-16)*d */
        const uint8_t *p = row + (k >> 5) * 22;
        __m512 d = _mm512_set1_ps(f16s(p));
        uint32_t qh;
        memcpy(&qh, p + 2, 4);
        __m512i b = bytes16(p + 6);
        __m512 t0 = _mm512_mul_ps(iota16(-16), d), t1 = _mm512_mul_ps(iota16(0), d);
        *lo = _mm512_permutex2var_ps(t0, _mm512_or_si512(_mm512_and_si512(b, _mm512_set1_epi32(15)), bit4_of(qh, 0)), t1);
        *hi = _mm512_permutex2var_ps(t0, _mm512_or_si512(_mm512_srli_epi32(b, 4), bit4_of(qh, 1)), t1);
        break;
    }
    case DP_TYPE_IQ4_NL: { /* d*value */
        const uint8_t *p = row + (k >> 5) * 18;
        __m512 t = _mm512_mul_ps(_mm512_set1_ps(f16s(p)), iq4_table());
        __m512i b = bytes16(p + 2);
        *lo = _mm512_permutexvar_ps(b, t), *hi = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), t);
        break;
    }
    case DP_TYPE_IQ4_XS: { /* d*(ls-32)*value */
        const uint8_t *p = row + (k >> 8) * 136;
        uint16_t sh = (uint16_t)(p[2] | p[3] << 8);
        int ls = (((p[4 + j / 2] >> (4 * (j % 2))) & 0xF) | ((sh >> (2 * j)) & 3) << 4) - 32;
        __m512 t = _mm512_mul_ps(_mm512_set1_ps(f16s(p) * (float)ls), iq4_table());
        __m512i b = bytes16(p + 8 + 16 * j);
        *lo = _mm512_permutexvar_ps(b, t), *hi = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), t);
        break;
    }
    case DP_TYPE_Q4_K: case DP_TYPE_Q5_K: { /* d*sc*q - dmin*m */
        bool q5 = type == DP_TYPE_Q5_K;
        const uint8_t *p = row + (k >> 8) * (q5 ? 176 : 144), *qs = p + (q5 ? 48 : 16) + 32 * (j / 2);
        int sc, m;
        k4_scale_min(p + 4, j, &sc, &m);
        __m512 dsc = _mm512_set1_ps(f16s(p) * (float)sc), dm = _mm512_set1_ps(f16s(p + 2) * (float)m);
        __m512i b0 = bytes16(qs), b1 = bytes16(qs + 16);
        if (j & 1) b0 = _mm512_srli_epi32(b0, 4), b1 = _mm512_srli_epi32(b1, 4);
        if (!q5) {
            __m512 t = _mm512_sub_ps(_mm512_mul_ps(dsc, iota16(0)), dm);
            *lo = _mm512_permutexvar_ps(b0, t), *hi = _mm512_permutexvar_ps(b1, t);
        } else {
            __m512i m15 = _mm512_set1_epi32(15), one = _mm512_set1_epi32(1);
            __m512i h0 = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(bytes16(p + 16), j), one), 4);
            __m512i h1 = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(bytes16(p + 32), j), one), 4);
            __m512 t0 = _mm512_sub_ps(_mm512_mul_ps(dsc, iota16(0)), dm), t1 = _mm512_sub_ps(_mm512_mul_ps(dsc, iota16(16)), dm);
            *lo = _mm512_permutex2var_ps(t0, _mm512_or_si512(_mm512_and_si512(b0, m15), h0), t1);
            *hi = _mm512_permutex2var_ps(t0, _mm512_or_si512(_mm512_and_si512(b1, m15), h1), t1);
        }
        break;
    }
    case DP_TYPE_Q6_K: { /* d*sc*(q-32) */
        const uint8_t *p = row + (k >> 8) * 210;
        int h = j / 4, kq = j % 4;
        const uint8_t *ql = p + 64 * h + 32 * (kq & 1), *qh = p + 128 + 32 * h;
        float d = f16s(p + 208);
        const int8_t *sc = (const int8_t *)(p + 192);
        __m512i m15 = _mm512_set1_epi32(15), m3 = _mm512_set1_epi32(3), c32 = _mm512_set1_epi32(32);
        __m512i l0 = bytes16(ql), l1 = bytes16(ql + 16);
        if (kq >= 2) l0 = _mm512_srli_epi32(l0, 4), l1 = _mm512_srli_epi32(l1, 4);
        __m512i q0 = _mm512_or_si512(_mm512_and_si512(l0, m15),
                                     _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(bytes16(qh), 2 * kq), m3), 4));
        __m512i q1 = _mm512_or_si512(_mm512_and_si512(l1, m15),
                                     _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(bytes16(qh + 16), 2 * kq), m3), 4));
        *lo = _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[2 * j]), _mm512_cvtepi32_ps(_mm512_sub_epi32(q0, c32)));
        *hi = _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[2 * j + 1]), _mm512_cvtepi32_ps(_mm512_sub_epi32(q1, c32)));
        break;
    }
    case DP_TYPE_Q2_K: { /* d*(sc&15)*q - dmin*(sc>>4) */
        const uint8_t *p = row + (k >> 8) * 84, *qs = p + 16 + 32 * (j / 4);
        float d = f16s(p + 80), dmin = f16s(p + 82);
        __m512i m3 = _mm512_set1_epi32(3);
        __m512 t[2];
        for (int hh = 0; hh < 2; hh++) {
            int s = p[2 * j + hh];
            t[hh] = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(d * (float)(s & 0xF)), iota16(0)),
                                  _mm512_set1_ps(dmin * (float)(s >> 4)));
        }
        *lo = _mm512_permutexvar_ps(_mm512_and_si512(_mm512_srli_epi32(bytes16(qs), 2 * (j % 4)), m3), t[0]);
        *hi = _mm512_permutexvar_ps(_mm512_and_si512(_mm512_srli_epi32(bytes16(qs + 16), 2 * (j % 4)), m3), t[1]);
        break;
    }
    default: { /* Q3_K: d*scale*code, code = q - 4 unless the hmask bit is set */
        const uint8_t *p = row + (k >> 8) * 110, *qs = p + 32 + 32 * (j / 4), *s = p + 96;
        float d = f16s(p + 108);
        __m512i m3 = _mm512_set1_epi32(3), m4 = _mm512_set1_epi32(4);
        __m512 t[2];
        for (int hh = 0; hh < 2; hh++) {
            int i = 2 * j + hh;
            int sc = ((i < 8 ? s[i] & 0xF : s[i - 8] >> 4) | ((s[8 + (i & 3)] >> (2 * (i >> 2))) & 3) << 4) - 32;
            t[hh] = _mm512_mul_ps(_mm512_set1_ps(d * (float)sc), iota16(-4));
        }
        __m512i c0 = _mm512_and_si512(_mm512_srli_epi32(bytes16(qs), 2 * (j % 4)), m3);
        __m512i c1 = _mm512_and_si512(_mm512_srli_epi32(bytes16(qs + 16), 2 * (j % 4)), m3);
        c0 = _mm512_or_si512(c0, _mm512_and_si512(_mm512_slli_epi32(_mm512_srli_epi32(bytes16(p), j), 2), m4));
        c1 = _mm512_or_si512(c1, _mm512_and_si512(_mm512_slli_epi32(_mm512_srli_epi32(bytes16(p + 16), j), 2), m4));
        *lo = _mm512_permutexvar_ps(c0, t[0]), *hi = _mm512_permutexvar_ps(c1, t[1]);
        break;
    }
    }
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
    case DP_TYPE_Q4_0: { /* low nibbles are elements 0..15, high nibbles 16..31 */
        const uint8_t *p = row + (k >> 5) * 18;
        /* a table of the sixteen products d*(q-8), looked up by vpermps (low four bits of each lane) */
        const __m512 q8 = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
        __m512 table = _mm512_mul_ps(q8, f16_scale(p));
        __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p + 2)));
        *lo = _mm512_permutexvar_ps(b, table);
        *hi = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), table);
        break;
    }
    default: load32_more(type, row, k, lo, hi); break;
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

static void axpy_avx512(float a, const float *x, float *y, int64_t n) {
    __m512 va = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
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

/* attend_softmax_ref sixteen keys a step: chains p mod 8 are the lanes of one double vector. */
static void softmax_avx512(float *sc, int n) {
    float mx = attend_max(sc, n);
    __m512d acc = _mm512_setzero_pd();
    int p = 0;
    for (; p + 16 <= n; p += 16) {
        __m512 x = _mm512_sub_ps(_mm512_loadu_ps(sc + p), _mm512_set1_ps(mx));
        __mmask16 ok = _mm512_cmp_ps_mask(x, _mm512_set1_ps(DP_EXP_MIN), _CMP_GE_OQ);
        __m512 nn = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(DP_EXP_LOG2E), _mm512_set1_ps(DP_EXP_ROUND)),
                                  _mm512_set1_ps(DP_EXP_ROUND));
        __m512 r = _mm512_fmadd_ps(nn, _mm512_set1_ps(-DP_EXP_LN2_HI), x);
        r = _mm512_fmadd_ps(nn, _mm512_set1_ps(-DP_EXP_LN2_LO), r);
        __m512 e = _mm512_set1_ps(DP_EXP_C(5040));
        e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(DP_EXP_C(720)));
        e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(DP_EXP_C(120)));
        e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(DP_EXP_C(24)));
        e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(DP_EXP_C(6)));
        e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(0.5f));
        e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.0f));
        e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.0f));
        __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(nn), _mm512_set1_epi32(127)), 23);
        e = _mm512_maskz_mov_ps(ok, _mm512_mul_ps(e, _mm512_castsi512_ps(bits)));
        _mm512_storeu_ps(sc + p, e);
        acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
    }
    double c[8];
    _mm512_storeu_pd(c, acc);
    attend_softmax_tail(sc, n, p, mx, c);
}

/*
 * Sixteen dot-order accumulators (a[r]: key r's 16 lanes) reduced at once:
 * lane r of the result is reduce16(a[r]), by the same adds (lane j + lane
 * j+8, then j+4, j+2, j+1), paired across registers instead of within one.
 */
INLINE __m512 reduce16x16(__m512 a[16]) {
    __m512 b[8], c[4], d[2];
    for (int m = 0; m < 8; m++) /* [key 2m | key 2m+1]: lanes j + j+8 */
        b[m] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * m], a[2 * m + 1], 0x44),
                             _mm512_shuffle_f32x4(a[2 * m], a[2 * m + 1], 0xEE));
    for (int m = 0; m < 4; m++) /* quarters: keys 4m..4m+3, lanes j + j+4 */
        c[m] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * m], b[2 * m + 1], 0x88),
                             _mm512_shuffle_f32x4(b[2 * m], b[2 * m + 1], 0xDD));
    for (int m = 0; m < 2; m++) /* quarter q: keys 8m+q and 8m+4+q, lanes j + j+2 */
        d[m] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * m], c[2 * m + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(c[2 * m], c[2 * m + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    /* quarter q, lane m: key 4m+q, lane 0 + lane 1 */
    __m512 e = _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), e);
}

/*
 * Large heads (keys as rows): sixteen keys' scores a step, each in the dot
 * order (so the same bits as dot_avx512 key by key), and the values added
 * with the output held in registers (the same fused multiply-adds as axpy).
 */
static void attend_large_avx512(const float *q, const float *K, const float *V, int n_keys, int hd, float scale,
                                float *sc, float *o) {
    int p = 0;
    __mmask16 tail = tail_mask(hd & 15);
    for (; p + 16 <= n_keys; p += 16) {
        __m512 a[16];
#pragma GCC unroll 16
        for (int r = 0; r < 16; r++) a[r] = _mm512_setzero_ps();
        int i = 0;
        for (; i + 16 <= hd; i += 16) {
            __m512 qv = _mm512_loadu_ps(q + i);
#pragma GCC unroll 16
            for (int r = 0; r < 16; r++) a[r] = _mm512_fmadd_ps(qv, _mm512_loadu_ps(K + (int64_t)(p + r) * hd + i), a[r]);
        }
        if (i < hd) {
            __m512 qv = _mm512_maskz_loadu_ps(tail, q + i);
#pragma GCC unroll 16
            for (int r = 0; r < 16; r++)
                a[r] = _mm512_mask3_fmadd_ps(qv, _mm512_maskz_loadu_ps(tail, K + (int64_t)(p + r) * hd + i), a[r], tail);
        }
        _mm512_storeu_ps(sc + p, _mm512_mul_ps(reduce16x16(a), _mm512_set1_ps(scale)));
    }
    for (; p < n_keys; p++) sc[p] = dot_avx512(q, K + (int64_t)p * hd, hd) * scale;
    softmax_avx512(sc, n_keys);
    for (int i0 = 0; i0 < hd; i0 += 128) { /* up to 8 registers of the output at a time */
        int nv = (hd - i0 + 15) / 16 < 8 ? (hd - i0 + 15) / 16 : 8;
        __mmask16 last = hd - i0 >= 16 * nv ? (__mmask16)0xFFFF : tail;
        __m512 acc[8];
#pragma GCC unroll 8
        for (int v = 0; v < 8; v++) acc[v] = _mm512_setzero_ps();
        if (nv == 8 && last == (__mmask16)0xFFFF) { /* whole registers (head sizes 128, 256, ...): kept in registers */
            for (int pp = 0; pp < n_keys; pp++) {
                __m512 w = _mm512_set1_ps(sc[pp]);
                const float *row = V + (int64_t)pp * hd + i0;
#pragma GCC unroll 8
                for (int v = 0; v < 8; v++) acc[v] = _mm512_fmadd_ps(w, _mm512_loadu_ps(row + 16 * v), acc[v]);
            }
#pragma GCC unroll 8
            for (int v = 0; v < 8; v++) _mm512_storeu_ps(o + i0 + 16 * v, acc[v]);
            continue;
        }
        for (int pp = 0; pp < n_keys; pp++) {
            __m512 w = _mm512_set1_ps(sc[pp]);
            const float *row = V + (int64_t)pp * hd + i0;
            for (int v = 0; v < nv; v++)
                acc[v] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(v == nv - 1 ? last : (__mmask16)0xFFFF, row + 16 * v),
                                         acc[v]);
        }
        for (int v = 0; v < nv; v++)
            _mm512_mask_storeu_ps(o + i0 + 16 * v, v == nv - 1 ? last : (__mmask16)0xFFFF, acc[v]);
    }
}

/* Small heads: sixteen keys' scores a step; values of heads of 8 two keys a register, of 16 one. */
static void attend_avx512(const float *q, const float *K, int64_t ldk, const float *V, int n_keys, int hd, float scale,
                          float *sc, float *o) {
    if (hd > DP_ATTEND_SMALL_HD) {
        attend_large_avx512(q, K, V, n_keys, hd, scale, sc, o);
        return;
    }
    for (int p = 0; p < n_keys; p += 16) {
        __mmask16 m = n_keys - p >= 16 ? (__mmask16)0xFFFF : tail_mask(n_keys - p);
        __m512 acc = _mm512_setzero_ps();
        for (int i = 0; i < hd; i++)
            acc = _mm512_fmadd_ps(_mm512_set1_ps(q[i]), _mm512_maskz_loadu_ps(m, K + i * ldk + p), acc);
        _mm512_mask_storeu_ps(sc + p, m, _mm512_mul_ps(acc, _mm512_set1_ps(scale)));
    }
    softmax_avx512(sc, n_keys);
    int p = 0;
    if (hd == 8) {
        __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps(); /* chains 0|1 and 2|3 */
        for (; p + 4 <= n_keys; p += 4) {
            __m512 w01 = _mm512_insertf32x8(_mm512_set1_ps(sc[p]), _mm256_set1_ps(sc[p + 1]), 1);
            __m512 w23 = _mm512_insertf32x8(_mm512_set1_ps(sc[p + 2]), _mm256_set1_ps(sc[p + 3]), 1);
            a = _mm512_fmadd_ps(w01, _mm512_loadu_ps(V + (int64_t)p * 8), a);
            b = _mm512_fmadd_ps(w23, _mm512_loadu_ps(V + (int64_t)p * 8 + 16), b);
        }
        __m256 c[4] = {_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1), _mm512_castps512_ps256(b),
                       _mm512_extractf32x8_ps(b, 1)};
        for (int j = 0; p < n_keys; p++, j++)
            c[j] = _mm256_fmadd_ps(_mm256_set1_ps(sc[p]), _mm256_loadu_ps(V + (int64_t)p * 8), c[j]);
        _mm256_storeu_ps(o, _mm256_add_ps(_mm256_add_ps(c[0], c[2]), _mm256_add_ps(c[1], c[3])));
    } else if (hd == 16) {
        __m512 c[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (; p + 4 <= n_keys; p += 4)
            for (int j = 0; j < 4; j++)
                c[j] = _mm512_fmadd_ps(_mm512_set1_ps(sc[p + j]), _mm512_loadu_ps(V + (int64_t)(p + j) * 16), c[j]);
        for (int j = 0; p < n_keys; p++, j++)
            c[j] = _mm512_fmadd_ps(_mm512_set1_ps(sc[p]), _mm512_loadu_ps(V + (int64_t)p * 16), c[j]);
        _mm512_storeu_ps(o, _mm512_add_ps(_mm512_add_ps(c[0], c[2]), _mm512_add_ps(c[1], c[3])));
    } else {
        attend_small_values_ref(sc, V, n_keys, hd, o);
    }
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
#define DEQUANT(T, NAME) \
    static void dequant_##NAME(const void *row, float *out, int64_t n) { dequant_row(T, row, out, n); }
DEQUANT(DP_TYPE_Q4_1, q4_1)
DEQUANT(DP_TYPE_Q5_0, q5_0)
DEQUANT(DP_TYPE_Q5_1, q5_1)
DEQUANT(DP_TYPE_IQ4_NL, iq4_nl)
DEQUANT(DP_TYPE_Q2_K, q2_k)
DEQUANT(DP_TYPE_Q3_K, q3_k)
DEQUANT(DP_TYPE_Q4_K, q4_k)
DEQUANT(DP_TYPE_Q5_K, q5_k)
DEQUANT(DP_TYPE_Q6_K, q6_k)
DEQUANT(DP_TYPE_IQ4_XS, iq4_xs)

/* ---- decode: R rows x T tokens in the dot order ---- */

/* Bytes of 32 elements (rounded down for the 256-element types: a prefetch distance). */
INLINE int64_t bytes32(uint32_t type) {
    switch (type) {
    case DP_TYPE_F32: return 128;
    case DP_TYPE_F16: case DP_TYPE_BF16: return 64;
    case DP_TYPE_Q8_0: case DP_TYPE_Q4_0: case DP_TYPE_IQ4_NL: case DP_TYPE_Q4_1: case DP_TYPE_Q5_0: case DP_TYPE_Q5_1:
        return dp_quants_block_bytes(type);
    default: return dp_quants_block_bytes(type) / 8; /* 256-element blocks */
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
TYPED(DP_TYPE_Q4_1, q4_1)
TYPED(DP_TYPE_Q5_0, q5_0)
TYPED(DP_TYPE_Q5_1, q5_1)
TYPED(DP_TYPE_IQ4_NL, iq4_nl)
TYPED(DP_TYPE_Q2_K, q2_k)
TYPED(DP_TYPE_Q3_K, q3_k)
TYPED(DP_TYPE_Q4_K, q4_k)
TYPED(DP_TYPE_Q5_K, q5_k)
TYPED(DP_TYPE_Q6_K, q6_k)
TYPED(DP_TYPE_IQ4_XS, iq4_xs)

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

/* ---- the q8 mode: integer dot products with vpdpbusd (AVX-512 VNNI) ---- */

/*
 * Everything from here to the end of the q8-mode kernels is compiled for
 * AVX-512 VNNI on top of the file's flags (vpdpbusd, vpdpwssd), and runs only
 * from avx512_ops, which dp_kernels_avx512 hands out when the CPU reports
 * VNNI; the rest of the file needs none of it.
 */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512vnni")
#endif

/*
 * A block of 32 columns of 16 rows becomes eight registers of unsigned
 * weight codes, w[i] lane r = codes 4i..4i+3 of row r (Q8_0: q + 128; Q4_0:
 * the nibbles, q + 8), so that vpdpbusd of w[i] with the activation bytes
 * 4i..4i+3 broadcast adds row r's four products to lane r, exactly; the
 * activation's bias (-off * sum of its q) removes the offset. Each lane then
 * holds I_b of one row, and one fma per token and block continues the q8
 * order's chain. The 16 rows are transposed in registers (Q8_0: two rows
 * per register, 8 x 8 dwords in each half; Q4_0: four rows per register,
 * 4 x 4 dwords in each 128-bit lane). For up to Q8_DIRECT tokens (decode)
 * each block is transposed and used at once; for more, Q8_PKC columns at a
 * time go to a panel on the stack that every token then reads.
 */
#define Q8_PKC 512
#define Q8_NB (Q8_PKC / 32)
/* Tokens per pass over a panel: T int and T float accumulators, the codes of one register. */
#define Q8_T 10

struct q8_panel {
    __m512i w[Q8_NB][8]; /* the codes, as above */
    __m512 s[Q8_NB];     /* the 16 rows' block scales */
    __m512 m[Q8_NB];     /* Q4_1, Q5_1: the 16 rows' block mins */
};

/* Bytes 0..15 of p0..p3 into the four 128-bit lanes. */
INLINE __m512i load4x128(const uint8_t *p0, const uint8_t *p1, const uint8_t *p2, const uint8_t *p3) {
    __m512i z = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)p0));
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)p1), 1);
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)p2), 2);
    return _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)p3), 3);
}

/* o[g] dword m of 128-bit lane l = dword g of z[m]'s lane l: with z[m] lane l = row m + 4l, lane r of o[g] is row r. */
INLINE void transpose4x4(const __m512i z[4], __m512i o[4]) {
    __m512i a0 = _mm512_unpacklo_epi32(z[0], z[1]), a1 = _mm512_unpackhi_epi32(z[0], z[1]);
    __m512i a2 = _mm512_unpacklo_epi32(z[2], z[3]), a3 = _mm512_unpackhi_epi32(z[2], z[3]);
    o[0] = _mm512_unpacklo_epi64(a0, a2);
    o[1] = _mm512_unpackhi_epi64(a0, a2);
    o[2] = _mm512_unpacklo_epi64(a1, a3);
    o[3] = _mm512_unpackhi_epi64(a1, a3);
}

/* w[g] lane r = bytes 4g..4g+3 of rows[r] + o (g < 8): rows r and r+8 in the halves of a register, then 8 x 8 dwords. */
INLINE void transpose16x32(const uint8_t *const rows[16], size_t o, __m512i w[8]) {
    __m512i zz[8], t[8], u[8];
#pragma GCC unroll 8
    for (int m = 0; m < 8; m++)
        zz[m] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(rows[m] + o))),
                                   _mm256_loadu_si256((const __m256i *)(rows[m + 8] + o)), 1);
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++) {
        t[2 * p] = _mm512_unpacklo_epi32(zz[2 * p], zz[2 * p + 1]);
        t[2 * p + 1] = _mm512_unpackhi_epi32(zz[2 * p], zz[2 * p + 1]);
    }
    /* u[4q+g], 128-bit lanes 0..3: rows 4q..4q+3 at dword g, g+4, and rows 8+4q.. at g, g+4 */
#pragma GCC unroll 2
    for (int q = 0; q < 2; q++) {
        u[4 * q + 0] = _mm512_unpacklo_epi64(t[4 * q], t[4 * q + 2]);
        u[4 * q + 1] = _mm512_unpackhi_epi64(t[4 * q], t[4 * q + 2]);
        u[4 * q + 2] = _mm512_unpacklo_epi64(t[4 * q + 1], t[4 * q + 3]);
        u[4 * q + 3] = _mm512_unpackhi_epi64(t[4 * q + 1], t[4 * q + 3]);
    }
    const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        w[g] = _mm512_permutex2var_epi64(u[g], lo, u[4 + g]);
        w[4 + g] = _mm512_permutex2var_epi64(u[g], hi, u[4 + g]);
    }
}

/* w[g] lane r = bytes 4g..4g+3 of rows[r] + o (g < 4). */
INLINE void transpose16x16(const uint8_t *const rows[16], size_t o, __m512i w[4]) {
    __m512i z[4];
#pragma GCC unroll 4
    for (int m = 0; m < 4; m++) z[m] = load4x128(rows[m] + o, rows[m + 4] + o, rows[m + 8] + o, rows[m + 12] + o);
    transpose4x4(z, w);
}

/* Bytes of a block of the 32-element types, and where its codes start. */
INLINE int64_t q8_bb(uint32_t type) {
    switch (type) {
    case DP_TYPE_Q8_0: return 34;
    case DP_TYPE_Q4_1: return 20;
    case DP_TYPE_Q5_0: return 22;
    case DP_TYPE_Q5_1: return 24;
    default: return 18; /* Q4_0, IQ4_NL */
    }
}
INLINE int q8_qs(uint32_t type) {
    switch (type) {
    case DP_TYPE_Q4_1: return 4;
    case DP_TYPE_Q5_0: return 6;
    case DP_TYPE_Q5_1: return 8;
    default: return 2;
    }
}
/* Whether the type's block has a min m (Q4_1, Q5_1: y gets fma(m, s) after the scaled sum). */
INLINE bool q8_has_m(uint32_t type) { return type == DP_TYPE_Q4_1 || type == DP_TYPE_Q5_1; }

/* The sixteen IQ4 values plus 128 (unsigned codes), in each 128-bit lane for vpshufb. */
INLINE __m512i iq4_lut(void) {
    return _mm512_broadcast_i32x4(_mm_setr_epi8(1, 24, 45, 63, 79, 93, 106, (char)118, (char)129, (char)141, (char)153,
                                                (char)166, (char)181, (char)197, (char)217, (char)241));
}

/*
 * Q5_0 / Q5_1: the fifth bits (qh lane r: row r's 32 bits) added to w[i] (codes 4i..4i+3): byte i/2 of
 * qh goes to every byte of its dword, and bit 4(i%2)+c of byte c decides whether c gets 16.
 */
INLINE void q5_high(__m512i qh, __m512i w[8]) {
    const __m512i b0 = _mm512_set1_epi32(0x08040201), b1 = _mm512_set1_epi32((int)0x80402010u);
    const __m512i sixteen = _mm512_set1_epi8(16);
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++) {
        __m512i sel = _mm512_shuffle_epi8(qh, _mm512_add_epi32(_mm512_set1_epi32(p * 0x01010101),
                                                               _mm512_set4_epi32(0x0C0C0C0C, 0x08080808, 0x04040404, 0)));
        w[2 * p] = _mm512_mask_add_epi8(w[2 * p], _mm512_test_epi8_mask(sel, b0), w[2 * p], sixteen);
        w[2 * p + 1] = _mm512_mask_add_epi8(w[2 * p + 1], _mm512_test_epi8_mask(sel, b1), w[2 * p + 1], sixteen);
    }
}

/*
 * Block b of the 16 rows (row pointers rows[], byte offsets from rows[0] in idx) into w[8], the scales s
 * and (Q4_1, Q5_1) the mins m.
 */
INLINE void q8_block16(uint32_t type, const uint8_t *const rows[16], __m512i idx, int64_t b, __m512i w[8], __m512 *s,
                       __m512 *m) {
    size_t o = (size_t)b * (size_t)q8_bb(type);
    if (type == DP_TYPE_Q8_0) {
        transpose16x32(rows, o + 2, w);
        const __m512i flip = _mm512_set1_epi8((char)0x80);
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) w[g] = _mm512_xor_si512(w[g], flip);
    } else { /* raw dword g holds the nibbles of elements 4g..4g+3 (low) and 16+4g.. (high) */
        __m512i raw[4], m4 = _mm512_set1_epi8(0x0F);
        transpose16x16(rows, o + (size_t)q8_qs(type), raw);
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
            w[g] = _mm512_and_si512(raw[g], m4);
            w[4 + g] = _mm512_and_si512(_mm512_srli_epi16(raw[g], 4), m4);
        }
        if (type == DP_TYPE_IQ4_NL) {
            __m512i lut = iq4_lut();
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++) w[g] = _mm512_shuffle_epi8(lut, w[g]);
        }
        if (type == DP_TYPE_Q5_0 || type == DP_TYPE_Q5_1)
            q5_high(_mm512_i32gather_epi32(idx, (const void *)(rows[0] + o + (type == DP_TYPE_Q5_0 ? 2 : 4)), 1), w);
    }
    /* the scales: the first dword of each row's block (the f16 and two more bytes: Q4_1/Q5_1's m) */
    __m512i h = _mm512_i32gather_epi32(idx, (const void *)(rows[0] + o), 1);
    *s = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h));
    if (q8_has_m(type)) *m = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(h, 16)));
}

/*
 * Blocks b0..b0+nbl-1 of the 16 rows into P. Rows are short streams (as in
 * vecdot), so the next 16 rows (next, 16 nb blocks, contiguous) are swept
 * into the cache in step with the progress over these.
 */
INLINE void q8_pack(uint32_t type, const uint8_t *const rows[16], __m512i idx, int64_t b0, int nbl,
                    const uint8_t *next, struct q8_panel *P) {
    int64_t bb = q8_bb(type);
    for (int bl = 0; bl < nbl; bl++) {
        const uint8_t *pf = next + (b0 + bl) * 16 * bb;
#pragma GCC unroll 9
        for (int64_t c = 0; c < 16 * bb; c += 64) _mm_prefetch((const char *)pf + c, _MM_HINT_T0);
        q8_block16(type, rows, idx, b0 + bl, P->w[bl], &P->s[bl], &P->m[bl]);
    }
}

INLINE __m512i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* y + (the block's product of token t with the 16 rows in w and s), the next link of the q8 order's chains. */
INLINE __m512 q8_step(uint32_t type, const __m512i w[8], __m512 s, __m512 m, const struct dp_act_q8 *A, int64_t t,
                      int64_t b, __m512 y) {
    int64_t at = t * (A->n_in / 32) + b;
    const int8_t *x = A->q + at * 32;
    /* two chains of four (the sum is an exact integer in any order) */
    __m512i i0 = q8_has_m(type) ? _mm512_setzero_si512() : _mm512_set1_epi32(A->bias[at]), i1 = _mm512_setzero_si512();
    i0 = _mm512_dpbusd_epi32(i0, w[0], bcast4(x));
    i1 = _mm512_dpbusd_epi32(i1, w[4], bcast4(x + 16));
    i0 = _mm512_dpbusd_epi32(i0, w[1], bcast4(x + 4));
    i1 = _mm512_dpbusd_epi32(i1, w[5], bcast4(x + 20));
    i0 = _mm512_dpbusd_epi32(i0, w[2], bcast4(x + 8));
    i1 = _mm512_dpbusd_epi32(i1, w[6], bcast4(x + 24));
    i0 = _mm512_dpbusd_epi32(i0, w[3], bcast4(x + 12));
    i1 = _mm512_dpbusd_epi32(i1, w[7], bcast4(x + 28));
    __m512 sc = _mm512_mul_ps(s, _mm512_set1_ps(A->d[at])); /* exact: two f16 values */
    y = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(_mm512_add_epi32(i0, i1)), y);
    return q8_has_m(type) ? _mm512_fmadd_ps(m, _mm512_set1_ps(A->s[at]), y) : y;
}

/*
 * T tokens (from token t0) over the panel's nbl blocks (from block b0);
 * Y = (acc ? Y : 0) + the chains' links. The eight dpbusd of a token form a
 * chain, so the loop runs across tokens first: T independent chains (their
 * latency hidden) on one register of codes at a time.
 */
INLINE void q8_tile(uint32_t type, int T, const struct q8_panel *P, int nbl, const struct dp_act_q8 *A, int64_t b0, int t0, float *Y,
                    int64_t ldy, __mmask16 mask, bool acc) {
    int64_t n = A->n_in, nb = n / 32;
    __m512 y[Q8_T];
#pragma GCC unroll 10
    for (int t = 0; t < T; t++) y[t] = acc ? _mm512_maskz_loadu_ps(mask, Y + t * ldy) : _mm512_setzero_ps();
    for (int bl = 0; bl < nbl; bl++) {
        int64_t b = b0 + bl;
        __m512i I[Q8_T];
#pragma GCC unroll 10
        for (int t = 0; t < T; t++)
            I[t] = q8_has_m(type) ? _mm512_setzero_si512() : _mm512_set1_epi32(A->bias[(t0 + t) * nb + b]);
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            __m512i w = _mm512_load_si512(&P->w[bl][g]);
#pragma GCC unroll 10
            for (int t = 0; t < T; t++) I[t] = _mm512_dpbusd_epi32(I[t], w, bcast4(A->q + (t0 + t) * n + b * 32 + 4 * g));
        }
        __m512 s = _mm512_load_ps(&P->s[bl]);
#pragma GCC unroll 10
        for (int t = 0; t < T; t++) /* s * d is exact: two f16 values */
            y[t] = _mm512_fmadd_ps(_mm512_mul_ps(s, _mm512_set1_ps(A->d[(t0 + t) * nb + b])), _mm512_cvtepi32_ps(I[t]), y[t]);
        if (q8_has_m(type)) {
            __m512 m = _mm512_load_ps(&P->m[bl]);
#pragma GCC unroll 10
            for (int t = 0; t < T; t++) y[t] = _mm512_fmadd_ps(m, _mm512_set1_ps(A->s[(t0 + t) * nb + b]), y[t]);
        }
    }
#pragma GCC unroll 10
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(Y + t * ldy, mask, y[t]);
}

/* T tokens (T <= Q8_DIRECT) straight from the rows: each block is transposed once, in registers, for all T. */
#define Q8_DIRECT 4
INLINE void q8_direct(uint32_t type, int T, const uint8_t *const rows[16], __m512i idx, int64_t nb,
                      const uint8_t *next, const struct dp_act_q8 *A, float *Y, int64_t ldy, __mmask16 mask) {
    int64_t bb = q8_bb(type);
    __m512 y[Q8_DIRECT];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) y[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *pf = next + b * 16 * bb; /* the next 16 rows, as in q8_pack */
#pragma GCC unroll 9
        for (int64_t c = 0; c < 16 * bb; c += 64) _mm_prefetch((const char *)pf + c, _MM_HINT_T0);
        __m512i w[8];
        __m512 s, m = _mm512_setzero_ps();
        q8_block16(type, rows, idx, b, w, &s, &m);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t] = q8_step(type, w, s, m, A, t, b, y[t]);
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(Y + t * ldy, mask, y[t]);
}

/*
 * The 16 rows of a q8 panel from base, rb bytes apart: their pointers, and
 * their byte offsets as gather indices. Rows past nr repeat the last one
 * (their lanes are computed but never stored).
 */
INLINE __m512i row_offsets16(const uint8_t *base, size_t rb, int nr, const uint8_t *rows[16]) {
    int32_t off[16];
    for (int i = 0; i < 16; i++) {
        off[i] = (int32_t)((size_t)(i < nr ? i : nr - 1) * rb);
        rows[i] = base + off[i];
    }
    return _mm512_loadu_si512(off);
}

INLINE void vecdot_q8(uint32_t type, const void *W, size_t rb, int n_rows, const struct dp_act_q8 *A, int n_tok,
                      float *Y, int64_t ldy) {
    int64_t nb = A->n_in / 32;
    DP_ASSERT(rb * 15 <= INT32_MAX);
    struct q8_panel P;
    for (int r0 = 0; r0 < n_rows; r0 += 16) {
        int nr = n_rows - r0 < 16 ? n_rows - r0 : 16;
        const uint8_t *rows[16], *base = (const uint8_t *)W + (size_t)r0 * rb;
        __m512i idx = row_offsets16(base, rb, nr, rows);
        __mmask16 mask = tail_mask(nr);
        float *y = Y + r0;
        switch (n_tok) {
        case 1: q8_direct(type, 1, rows, idx, nb, base + 16 * rb, A, y, ldy, mask); continue;
        case 2: q8_direct(type, 2, rows, idx, nb, base + 16 * rb, A, y, ldy, mask); continue;
        case 3: q8_direct(type, 3, rows, idx, nb, base + 16 * rb, A, y, ldy, mask); continue;
        case 4: q8_direct(type, 4, rows, idx, nb, base + 16 * rb, A, y, ldy, mask); continue;
        default: break;
        }
        for (int64_t b0 = 0; b0 < nb; b0 += Q8_NB) {
            int nbl = nb - b0 < Q8_NB ? (int)(nb - b0) : Q8_NB;
            q8_pack(type, rows, idx, b0, nbl, base + 16 * rb, &P);
            bool acc = b0 > 0;
            int t = 0;
            for (; t + Q8_T <= n_tok; t += Q8_T) q8_tile(type, Q8_T, &P, nbl, A, b0, t, y + t * ldy, ldy, mask, acc);
            if (n_tok - t >= 8) q8_tile(type, 8, &P, nbl, A, b0, t, y + t * ldy, ldy, mask, acc), t += 8;
            if (n_tok - t >= 4) q8_tile(type, 4, &P, nbl, A, b0, t, y + t * ldy, ldy, mask, acc), t += 4;
            if (n_tok - t >= 2) q8_tile(type, 2, &P, nbl, A, b0, t, y + t * ldy, ldy, mask, acc), t += 2;
            if (n_tok - t >= 1) q8_tile(type, 1, &P, nbl, A, b0, t, y + t * ldy, ldy, mask, acc);
        }
    }
}

static void vecdot_q8_q8_0(const void *W, size_t rb, int nr, const struct dp_act_q8 *A, int nt, float *Y, int64_t ldy) {
    vecdot_q8(DP_TYPE_Q8_0, W, rb, nr, A, nt, Y, ldy);
}
#define Q8_TYPED(T, NAME)                                                                                    \
    static void vecdot_q8_##NAME(const void *W, size_t rb, int nr, const struct dp_act_q8 *A, int nt, float *Y, \
                                 int64_t ldy) {                                                               \
        vecdot_q8(T, W, rb, nr, A, nt, Y, ldy);                                                               \
    }
Q8_TYPED(DP_TYPE_Q4_0, q4_0)
Q8_TYPED(DP_TYPE_Q4_1, q4_1)
Q8_TYPED(DP_TYPE_Q5_0, q5_0)
Q8_TYPED(DP_TYPE_Q5_1, q5_1)
Q8_TYPED(DP_TYPE_IQ4_NL, iq4_nl)

/* ---- the q8 mode of the 256-element types (K-quants, IQ4_XS) against Q8_K activations ---- */

/*
 * The same register layout as above (lane r = row r, four unsigned codes u
 * = qw + off per dword), a superblock of 16 rows at a time: w[8j + g] holds
 * codes 4g..4g+3 of group j (elements 32j..32j+31). Per token, the integer
 * sums of the q8 order are
 *
 *   isc = sum_s sc_s * U_s  -  off * sum_s sc_s * S_s,     im = sum_s m_s * S_s,
 *
 * over the type's sub-blocks s (of 32 or 16), U_s = sum of u*qx (vpdpbusd
 * chains, then one vpmulld by the sub-block's scales) and S_s the
 * activation sums; the S terms are dot products of int16 pairs (vpdpwssd of
 * per-row coefficient pairs with the token's sum16 values, which fit int16):
 * the coefficients are -off*sc (Q6_K, Q3_K, IQ4_XS) or the mins (Q4_K,
 * Q5_K, Q2_K, into im). Every sum is an exact int32 (wrapping in between is
 * harmless: the true value fits), so the two fmas of the q8 order follow as
 * in quants.c. A superblock is decoded once into a struct kq_blk (about 6
 * KiB, in L1) that every token then reads.
 */
struct kq_blk {
    __m512i w[64];  /* the codes */
    __m512i sc[16]; /* scale of sub-block s (s < 8 for sub-blocks of 32) */
    __m512i cp[8];  /* int16 pairs: coefficients of sum16[2i] (low) and sum16[2i+1] (high) */
    __m512 d, dm;   /* d, and dmin (types with mins) */
};

/* Codes per sub-block / 4: 8 (sub-blocks of 32) or 4 (of 16). */
INLINE int kq_nw(uint32_t type) {
    return type == DP_TYPE_Q6_K || type == DP_TYPE_Q2_K || type == DP_TYPE_Q3_K ? 4 : 8;
}
INLINE bool kq_mins(uint32_t type) { return type == DP_TYPE_Q4_K || type == DP_TYPE_Q5_K || type == DP_TYPE_Q2_K; }

/* Low 16 bits of a in the low half of each dword, of b in the high half. */
INLINE __m512i pair16(__m512i a, __m512i b) { return _mm512_mask_blend_epi16(0xAAAAAAAA, a, _mm512_slli_epi32(b, 16)); }
INLINE __m512i byte_of(__m512i v, int i) { return _mm512_and_si512(_mm512_srli_epi32(v, 8 * i), _mm512_set1_epi32(0xFF)); }
/* (a | (b & c)) bit by bit. */
INLINE __m512i or_and(__m512i a, __m512i b, __m512i c) { return _mm512_ternarylogic_epi32(a, b, c, 0xF8); }
/* v shifted left by n (right for n < 0). */
INLINE __m512i shl(__m512i v, int n) { return n >= 0 ? _mm512_slli_epi32(v, (unsigned)n) : _mm512_srli_epi32(v, (unsigned)-n); }

/* Q4_K / Q5_K: the 8 scales and mins from the 12 packed bytes (dwords s0, s1, s2 of each row). */
INLINE void kq_scales_k4(__m512i s0, __m512i s1, __m512i s2, struct kq_blk *K) {
    const __m512i c3f = _mm512_set1_epi32(0x3F3F3F3F), c0f = _mm512_set1_epi32(0x0F0F0F0F), c30 = _mm512_set1_epi32(0x30303030);
    __m512i scl = _mm512_and_si512(s0, c3f), ml = _mm512_and_si512(s1, c3f);
    __m512i sch = or_and(_mm512_and_si512(s2, c0f), _mm512_srli_epi32(s0, 2), c30);
    __m512i mh = or_and(_mm512_and_si512(_mm512_srli_epi32(s2, 4), c0f), _mm512_srli_epi32(s1, 2), c30);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        K->sc[j] = byte_of(scl, j);
        K->sc[j + 4] = byte_of(sch, j);
        __m512i m0 = byte_of(ml, j), m1 = byte_of(mh, j);
        K->cp[j] = _mm512_or_si512(m0, _mm512_slli_epi32(m0, 16));
        K->cp[j + 4] = _mm512_or_si512(m1, _mm512_slli_epi32(m1, 16));
    }
}

/* Superblock b of the 16 rows into K. */
INLINE void kq_unpack(uint32_t type, const uint8_t *const rows[16], __m512i idx, int64_t b, struct kq_blk *K) {
    size_t o = (size_t)b * (size_t)dp_quants_block_bytes(type);
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x03);
    const void *base = rows[0] + o;
    switch (type) {
    case DP_TYPE_Q4_K: case DP_TYPE_Q5_K: {
        bool q5 = type == DP_TYPE_Q5_K;
        __m512i h[4], hq[8], raw[8];
        transpose16x16(rows, o, h); /* d|dmin, then the 12 scale bytes */
        K->d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h[0]));
        K->dm = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(h[0], 16)));
        kq_scales_k4(h[1], h[2], h[3], K);
        if (q5) transpose16x32(rows, o + 16, hq);
        for (int c = 0; c < 4; c++) {
            transpose16x32(rows, o + (q5 ? 48 : 16) + 32 * (size_t)c, raw);
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++) {
                __m512i lo = _mm512_and_si512(raw[g], m4), hi = _mm512_and_si512(_mm512_srli_epi16(raw[g], 4), m4);
                if (q5) { /* the fifth bit of group j is bit j of qh */
                    lo = or_and(lo, shl(hq[g], 4 - 2 * c), _mm512_set1_epi8(0x10));
                    hi = or_and(hi, shl(hq[g], 3 - 2 * c), _mm512_set1_epi8(0x10));
                }
                K->w[16 * c + g] = lo;
                K->w[16 * c + 8 + g] = hi;
            }
        }
        break;
    }
    case DP_TYPE_Q6_K: {
        __m512i s[4], H[8], L[8];
        transpose16x16(rows, o + 192, s);
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) K->sc[i] = _mm512_srai_epi32(_mm512_slli_epi32(s[i / 4], 24 - 8 * (i % 4)), 24);
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) /* -32 sc */
            K->cp[i] = pair16(_mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(K->sc[2 * i], 5)),
                              _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(K->sc[2 * i + 1], 5)));
        /* d at bytes 208..209: the dword from 206 stays inside the block */
        K->d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_i32gather_epi32(idx, (const uint8_t *)base + 206, 1), 16)));
        for (int h = 0; h < 2; h++) {
            transpose16x32(rows, o + 128 + 32 * (size_t)h, H);
            for (int kk = 0; kk < 2; kk++) {
                transpose16x32(rows, o + 64 * (size_t)h + 32 * (size_t)kk, L);
#pragma GCC unroll 8
                for (int g = 0; g < 8; g++) { /* groups kk (low nibbles) and kk+2 (high), bits 2k..2k+1 of qh on top */
                    int k0 = kk, k1 = kk + 2;
                    K->w[8 * (4 * h + k0) + g] = or_and(_mm512_and_si512(L[g], m4), shl(H[g], 4 - 2 * k0), _mm512_set1_epi8(0x30));
                    K->w[8 * (4 * h + k1) + g] =
                        or_and(_mm512_and_si512(_mm512_srli_epi16(L[g], 4), m4), shl(H[g], 4 - 2 * k1), _mm512_set1_epi8(0x30));
                }
            }
        }
        break;
    }
    case DP_TYPE_IQ4_XS: {
        __m512i h0 = _mm512_i32gather_epi32(idx, base, 1), sl = _mm512_i32gather_epi32(idx, (const uint8_t *)base + 4, 1);
        K->d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h0));
        __m512i sh = _mm512_srli_epi32(h0, 16);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m512i ls = or_and(_mm512_and_si512(_mm512_srli_epi32(sl, 4 * j), _mm512_set1_epi32(15)), shl(sh, 4 - 2 * j),
                                _mm512_set1_epi32(0x30));
            K->sc[j] = _mm512_sub_epi32(ls, _mm512_set1_epi32(32));
            __m512i c = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(K->sc[j], 7)); /* -128 sc */
            K->cp[j] = pair16(c, c);
        }
        __m512i lut = iq4_lut(), raw[4];
        for (int j = 0; j < 8; j++) {
            transpose16x16(rows, o + 8 + 16 * (size_t)j, raw);
#pragma GCC unroll 4
            for (int g = 0; g < 4; g++) {
                K->w[8 * j + g] = _mm512_shuffle_epi8(lut, _mm512_and_si512(raw[g], m4));
                K->w[8 * j + 4 + g] = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(raw[g], 4), m4));
            }
        }
        break;
    }
    case DP_TYPE_Q2_K: {
        __m512i s[4], Q[8];
        transpose16x16(rows, o, s);
        __m512i dd = _mm512_i32gather_epi32(idx, (const uint8_t *)base + 80, 1);
        K->d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
        K->dm = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16)));
        __m512i mn[16];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            __m512i v = byte_of(s[i / 4], i % 4);
            K->sc[i] = _mm512_and_si512(v, _mm512_set1_epi32(15));
            mn[i] = _mm512_srli_epi32(v, 4);
        }
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) K->cp[i] = pair16(mn[2 * i], mn[2 * i + 1]);
        for (int h = 0; h < 2; h++) {
            transpose16x32(rows, o + 16 + 32 * (size_t)h, Q);
#pragma GCC unroll 4
            for (int jj = 0; jj < 4; jj++)
#pragma GCC unroll 8
                for (int g = 0; g < 8; g++) K->w[8 * (4 * h + jj) + g] = _mm512_and_si512(_mm512_srli_epi16(Q[g], 2 * jj), m2);
        }
        break;
    }
    default: { /* Q3_K */
        __m512i a0 = _mm512_i32gather_epi32(idx, (const uint8_t *)base + 96, 1);
        __m512i a1 = _mm512_i32gather_epi32(idx, (const uint8_t *)base + 100, 1);
        __m512i a2 = _mm512_i32gather_epi32(idx, (const uint8_t *)base + 104, 1);
        __m512i dd = _mm512_i32gather_epi32(idx, (const uint8_t *)base + 106, 1); /* d at 108..109 */
        K->d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16)));
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            __m512i lo = _mm512_and_si512(_mm512_srli_epi32((i & 4) ? a1 : a0, 8 * (i & 3) + 4 * (i >> 3)), _mm512_set1_epi32(15));
            __m512i hi = _mm512_and_si512(_mm512_srli_epi32(a2, 8 * (i & 3) + 2 * (i >> 2)), _mm512_set1_epi32(3));
            K->sc[i] = _mm512_sub_epi32(_mm512_or_si512(lo, _mm512_slli_epi32(hi, 4)), _mm512_set1_epi32(32));
        }
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) /* -4 sc */
            K->cp[i] = pair16(_mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(K->sc[2 * i], 2)),
                              _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(K->sc[2 * i + 1], 2)));
        __m512i HM[8], Q[8];
        transpose16x32(rows, o, HM);
        for (int h = 0; h < 2; h++) {
            transpose16x32(rows, o + 32 + 32 * (size_t)h, Q);
#pragma GCC unroll 4
            for (int jj = 0; jj < 4; jj++) {
                int j = 4 * h + jj; /* u = q + 4 * (bit j of hmask) */
#pragma GCC unroll 8
                for (int g = 0; g < 8; g++)
                    K->w[8 * j + g] = or_and(_mm512_and_si512(_mm512_srli_epi16(Q[g], 2 * jj), m2), shl(HM[g], 2 - j),
                                             _mm512_set1_epi8(0x04));
            }
        }
        break;
    }
    }
}

/* Tokens per pass over a panel of superblocks, and superblocks per panel. */
#define KQ_T 8
#define KQ_NB 4

/*
 * Superblock b of K against tokens t0..t0+T-1: y[t] gets the block's one or
 * two fmas of the q8 order.
 */
INLINE void kq_tile(uint32_t type, int T, const struct kq_blk *K, const struct dp_act_q8 *A, int64_t b, int t0,
                    __m512 y[]) {
    const int NW = kq_nw(type), NS = 64 / NW;
    int64_t n = A->n_in, nb = n / 256, n16 = n / 16;
    const int8_t *x[KQ_T];
    __m512i isc[KQ_T], ims[KQ_T];
    int32_t sp[KQ_T][8] __attribute__((aligned(32)));
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        x[t] = A->q + (t0 + t) * n + b * 256;
        _mm256_store_si256((__m256i *)sp[t], _mm512_cvtepi32_epi16(_mm512_loadu_si512(A->sum16 + (t0 + t) * n16 + b * 16)));
        isc[t] = ims[t] = _mm512_setzero_si512();
    }
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        __m512i c = _mm512_load_si512(&K->cp[i]);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            if (kq_mins(type)) ims[t] = _mm512_dpwssd_epi32(ims[t], c, _mm512_set1_epi32(sp[t][i]));
            else isc[t] = _mm512_dpwssd_epi32(isc[t], c, _mm512_set1_epi32(sp[t][i]));
        }
    }
#pragma GCC unroll 16
    for (int s = 0; s < NS; s++) {
        __m512i I[KQ_T];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) I[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int g = 0; g < NW; g++) {
            __m512i w = _mm512_load_si512(&K->w[NW * s + g]);
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) I[t] = _mm512_dpbusd_epi32(I[t], w, bcast4(x[t] + 4 * (NW * s + g)));
        }
        __m512i sc = _mm512_load_si512(&K->sc[s]);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) isc[t] = _mm512_add_epi32(isc[t], _mm512_mullo_epi32(I[t], sc));
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        __m512 dx = _mm512_set1_ps(A->d[(t0 + t) * nb + b]);
        y[t] = _mm512_fmadd_ps(_mm512_mul_ps(K->d, dx), _mm512_cvtepi32_ps(isc[t]), y[t]);
        if (kq_mins(type)) y[t] = _mm512_fnmadd_ps(_mm512_mul_ps(K->dm, dx), _mm512_cvtepi32_ps(ims[t]), y[t]);
    }
}

/* Superblock b of the 16 rows into K, sweeping the next 16 rows (next) into the cache in step (as q8_pack). */
INLINE void kq_unpack_pf(uint32_t type, const uint8_t *const rows[16], __m512i idx, int64_t b, const uint8_t *next,
                         struct kq_blk *K) {
    int64_t bb = dp_quants_block_bytes(type);
    const uint8_t *pf = next + b * 16 * bb;
    for (int64_t c = 0; c < 16 * bb; c += 64) _mm_prefetch((const char *)pf + c, _MM_HINT_T0);
    kq_unpack(type, rows, idx, b, K);
}

/* T tokens of a panel's nbl superblocks (from b0); Y = (acc ? Y : 0) + their links. */
INLINE void kq_panel_tile(uint32_t type, int T, const struct kq_blk *P, int nbl, const struct dp_act_q8 *A, int64_t b0,
                          int t0, float *Y, int64_t ldy, __mmask16 mask, bool acc) {
    __m512 y[KQ_T];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) y[t] = acc ? _mm512_maskz_loadu_ps(mask, Y + t * ldy) : _mm512_setzero_ps();
    for (int bl = 0; bl < nbl; bl++) kq_tile(type, T, &P[bl], A, b0 + bl, t0, y);
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(Y + t * ldy, mask, y[t]);
}

/* T <= 4 tokens (decode): each superblock is decoded once and used at once. */
INLINE void kq_direct(uint32_t type, int T, const uint8_t *const rows[16], __m512i idx, int64_t nb, const uint8_t *next,
                      const struct dp_act_q8 *A, float *Y, int64_t ldy, __mmask16 mask, struct kq_blk *K) {
    __m512 y[4];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) y[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        kq_unpack_pf(type, rows, idx, b, next, K);
        kq_tile(type, T, K, A, b, 0, y);
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(Y + t * ldy, mask, y[t]);
}

/*
 * Q6_K against one token (decode) takes the AVX2 set's kq_one: eight rows
 * straight from the file's blocks, the next eight swept into L1 in step.
 * The 16-row AVX-512 kernel it replaces read 11-15 GB/s from memory and ran
 * at 0.48-0.63x llama.cpp's decode on an AVX-512 machine (stop 22); kq_one
 * runs at 1.09-1.12x llama.cpp on an AVX2 EPYC (docs/performance.md). Both
 * give the scalar set's bits, so the choice changes speed only.
 */
INLINE void kq_vecdot(uint32_t type, const void *W, size_t rb, int n_rows, const struct dp_act_q8 *A, int n_tok,
                      float *Y, int64_t ldy) {
    const struct dp_kernel_ops *avx2 = type == DP_TYPE_Q6_K && n_tok == 1 ? dp_kernels_avx2() : NULL;
    if (avx2 && avx2->vecdot_q8[type]) {
        avx2->vecdot_q8[type](W, rb, n_rows, A, n_tok, Y, ldy);
        return;
    }
    int64_t nb = A->n_in / 256;
    DP_ASSERT(rb * 15 <= INT32_MAX);
    struct kq_blk P[KQ_NB];
    for (int r0 = 0; r0 < n_rows; r0 += 16) {
        int nr = n_rows - r0 < 16 ? n_rows - r0 : 16;
        const uint8_t *rows[16], *base = (const uint8_t *)W + (size_t)r0 * rb, *next = base + 16 * rb;
        __m512i idx = row_offsets16(base, rb, nr, rows);
        __mmask16 mask = tail_mask(nr);
        float *y = Y + r0;
        switch (n_tok) {
        case 1: kq_direct(type, 1, rows, idx, nb, next, A, y, ldy, mask, P); continue;
        case 2: kq_direct(type, 2, rows, idx, nb, next, A, y, ldy, mask, P); continue;
        case 3: kq_direct(type, 3, rows, idx, nb, next, A, y, ldy, mask, P); continue;
        case 4: kq_direct(type, 4, rows, idx, nb, next, A, y, ldy, mask, P); continue;
        default: break;
        }
        for (int64_t b0 = 0; b0 < nb; b0 += KQ_NB) {
            int nbl = nb - b0 < KQ_NB ? (int)(nb - b0) : KQ_NB;
            for (int bl = 0; bl < nbl; bl++) kq_unpack_pf(type, rows, idx, b0 + bl, next, &P[bl]);
            bool acc = b0 > 0;
            int t = 0;
            for (; t + KQ_T <= n_tok; t += KQ_T) kq_panel_tile(type, KQ_T, P, nbl, A, b0, t, y + t * ldy, ldy, mask, acc);
            if (n_tok - t >= 4) kq_panel_tile(type, 4, P, nbl, A, b0, t, y + t * ldy, ldy, mask, acc), t += 4;
            if (n_tok - t >= 2) kq_panel_tile(type, 2, P, nbl, A, b0, t, y + t * ldy, ldy, mask, acc), t += 2;
            if (n_tok - t >= 1) kq_panel_tile(type, 1, P, nbl, A, b0, t, y + t * ldy, ldy, mask, acc);
        }
    }
}

#define KQ_TYPED(T, NAME)                                                                                    \
    static void vecdot_q8_##NAME(const void *W, size_t rb, int nr, const struct dp_act_q8 *A, int nt, float *Y, \
                                 int64_t ldy) {                                                               \
        kq_vecdot(T, W, rb, nr, A, nt, Y, ldy);                                                               \
    }
KQ_TYPED(DP_TYPE_Q2_K, q2_k)
KQ_TYPED(DP_TYPE_Q3_K, q3_k)
KQ_TYPED(DP_TYPE_Q4_K, q4_k)
KQ_TYPED(DP_TYPE_Q5_K, q5_k)
KQ_TYPED(DP_TYPE_Q6_K, q6_k)
KQ_TYPED(DP_TYPE_IQ4_XS, iq4_xs)

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

/* roundf: to the nearest integer, halves away from zero (t finite, |t| < 2^23). */
INLINE __m512 round_away(__m512 t) {
    __m512 r = _mm512_roundscale_ps(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m512 frac = _mm512_abs_ps(_mm512_sub_ps(t, r)); /* exact */
    __m512 one = _mm512_or_ps(_mm512_and_ps(t, _mm512_set1_ps(-0.0f)), _mm512_set1_ps(1.0f));
    return _mm512_mask_add_ps(r, _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ), r, one);
}

/* The scalar quant_act_block (kernels.c) sixteen lanes at a time. */
static void quant_act_avx512(const float *x, int64_t n, int32_t off, int8_t *q, float *d, int32_t *bias) {
    for (int64_t b = 0; b < n / 32; b++) {
        __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
        __m512 a0 = _mm512_abs_ps(x0), a1 = _mm512_abs_ps(x1), big = _mm512_set1_ps(FLT_MAX);
        if ((__mmask16)(_mm512_cmp_ps_mask(a0, big, _CMP_LE_OQ) & _mm512_cmp_ps_mask(a1, big, _CMP_LE_OQ)) != 0xFFFF) {
            memset(q + 32 * b, 0, 32);
            d[b] = NAN;
            bias[b] = 0;
            continue;
        }
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
        float dd = amax / 127.0f, id = dd != 0 ? 1.0f / dd : 0.0f;
        __m512 vid = _mm512_set1_ps(id);
        __m512i q0 = _mm512_cvtps_epi32(round_away(_mm512_mul_ps(x0, vid)));
        __m512i q1 = _mm512_cvtps_epi32(round_away(_mm512_mul_ps(x1, vid)));
        _mm_storeu_si128((__m128i *)(q + 32 * b), _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(q + 32 * b + 16), _mm512_cvtepi32_epi8(q1));
        d[b] = _cvtsh_ss(_cvtss_sh(dd, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        bias[b] = -off * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
}

#define AVX512_ALL(P)                                                                                          \
    {[DP_TYPE_F32] = P##f32, [DP_TYPE_F16] = P##f16, [DP_TYPE_BF16] = P##bf16, [DP_TYPE_Q8_0] = P##q8_0,       \
     [DP_TYPE_Q4_0] = P##q4_0, [DP_TYPE_Q4_1] = P##q4_1, [DP_TYPE_Q5_0] = P##q5_0, [DP_TYPE_Q5_1] = P##q5_1,  \
     [DP_TYPE_Q2_K] = P##q2_k, [DP_TYPE_Q3_K] = P##q3_k, [DP_TYPE_Q4_K] = P##q4_k, [DP_TYPE_Q5_K] = P##q5_k,  \
     [DP_TYPE_Q6_K] = P##q6_k, [DP_TYPE_IQ4_NL] = P##iq4_nl, [DP_TYPE_IQ4_XS] = P##iq4_xs}
#define AVX512_OPS                                                                       \
    .name = "avx512",                                                                    \
    .dot = dot_avx512,                                                                   \
    .axpy = axpy_avx512,                                                                 \
    .attend = attend_avx512,                                                             \
    .dequant = {                                                                         \
        [DP_TYPE_F16] = dequant_f16, [DP_TYPE_BF16] = dequant_bf16,                      \
        [DP_TYPE_Q8_0] = dequant_q8_0, [DP_TYPE_Q4_0] = dequant_q4_0,                    \
        [DP_TYPE_Q4_1] = dequant_q4_1, [DP_TYPE_Q5_0] = dequant_q5_0,                    \
        [DP_TYPE_Q5_1] = dequant_q5_1, [DP_TYPE_IQ4_NL] = dequant_iq4_nl,                \
        [DP_TYPE_Q2_K] = dequant_q2_k, [DP_TYPE_Q3_K] = dequant_q3_k,                    \
        [DP_TYPE_Q4_K] = dequant_q4_k, [DP_TYPE_Q5_K] = dequant_q5_k,                    \
        [DP_TYPE_Q6_K] = dequant_q6_k, [DP_TYPE_IQ4_XS] = dequant_iq4_xs,                \
    },                                                                                   \
    .vecdot = AVX512_ALL(vecdot_),                                                       \
    .pack = AVX512_ALL(pack_),                                                           \
    .gemm = gemm_avx512,                                                                 \
    .mr = MR, .nr = NR, .nr_step = 4

/* With VNNI, and without (its q8 mode then runs on the AVX2 set, see kernels.h). */
static const struct dp_kernel_ops avx512_ops = {
    AVX512_OPS,
    .quant_act = quant_act_avx512,
    .vecdot_q8 = {[DP_TYPE_Q8_0] = vecdot_q8_q8_0, [DP_TYPE_Q4_0] = vecdot_q8_q4_0, [DP_TYPE_Q4_1] = vecdot_q8_q4_1,
                  [DP_TYPE_Q5_0] = vecdot_q8_q5_0, [DP_TYPE_Q5_1] = vecdot_q8_q5_1, [DP_TYPE_IQ4_NL] = vecdot_q8_iq4_nl,
                  [DP_TYPE_Q2_K] = vecdot_q8_q2_k, [DP_TYPE_Q3_K] = vecdot_q8_q3_k, [DP_TYPE_Q4_K] = vecdot_q8_q4_k,
                  [DP_TYPE_Q5_K] = vecdot_q8_q5_k, [DP_TYPE_Q6_K] = vecdot_q8_q6_k, [DP_TYPE_IQ4_XS] = vecdot_q8_iq4_xs},
};
static const struct dp_kernel_ops avx512_novnni_ops = {AVX512_OPS};

const struct dp_kernel_ops *dp_kernels_avx512(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq") ||
        !dp_cpu_has_f16c() || !__builtin_cpu_supports("fma"))
        return NULL;
    return __builtin_cpu_supports("avx512vnni") ? &avx512_ops : &avx512_novnni_ops;
}
