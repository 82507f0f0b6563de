/*
 * kernels_avx2: AVX2 + FMA + F16C variants of the kernel set, bit-identical
 * to the scalar reference (see kernels.h for the two orders). Used when the
 * CPU reports the extensions and AVX-512 is absent (or DP_KERNELS=avx2), and
 * for the q8 mode of types the AVX-512 set lacks.
 *
 * The quants.c types (Q4_1 ... IQ4_XS) are decoded in registers to bytes
 * in element order (q32_codes, kq_codes) and to their scales (kq_scales);
 * the exact mode turns them into f32 with the decoders' expressions, the
 * q8 mode multiplies the bytes with vpmaddubsw (sections below).
 *
 * The sixteen lanes of the dot order take two ymm registers per output
 * (lanes 0-7 and 8-15), so decode tiles are small (4 rows x 1 token,
 * 2 x 2 or 1 x 4) to stay within the sixteen ymm registers. Prefill packs
 * 16 rows through 8 x 8 register transposes; the micro-kernel holds 16 rows
 * x 6 tokens (12 ymm accumulators).
 */
#include "kernels.h"
#include "kernels_attend.h"
#include "cpu_features.h"

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

/* ---- eight weights at a time ---- */

INLINE float f16_scale(const uint8_t *p) { return _cvtsh_ss((unsigned short)(p[0] | p[1] << 8)); }

/* Elements k..k+7 of a row (k a multiple of 8). */
INLINE __m256 load8(uint32_t type, const uint8_t *row, int64_t k) {
    switch (type) {
    case DP_TYPE_F32: return _mm256_loadu_ps((const float *)row + k);
    case DP_TYPE_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * k)));
    case DP_TYPE_BF16:
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(row + 2 * k))), 16));
    case DP_TYPE_Q8_0: {
        const uint8_t *p = row + (k >> 5) * 34;
        __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 2 + (k & 31)))));
        return _mm256_mul_ps(q, _mm256_set1_ps(f16_scale(p)));
    }
    default: { /* Q4_0: elements 0-15 are the low nibbles of bytes 0-15, 16-31 the high ones */
        const uint8_t *p = row + (k >> 5) * 18;
        __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 2 + (k & 15))));
        if (k & 16) b = _mm256_srli_epi32(b, 4);
        b = _mm256_sub_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0xF)), _mm256_set1_epi32(8));
        return _mm256_mul_ps(_mm256_cvtepi32_ps(b), _mm256_set1_ps(f16_scale(p)));
    }
    }
}

/* The f16 scale at p, in all lanes. */
INLINE __m256 f16_scale8(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _mm256_cvtph_ps(_mm_set1_epi16((short)h));
}

/* ---- the quants.c types: codes of 32 elements in one register, in element order ---- */

/* Whether a type has 256-element blocks (the K-quants and IQ4_XS). */
INLINE bool is_k(uint32_t type) {
    return type == DP_TYPE_Q2_K || type == DP_TYPE_Q3_K || type == DP_TYPE_Q4_K || type == DP_TYPE_Q5_K ||
           type == DP_TYPE_Q6_K || type == DP_TYPE_IQ4_XS;
}

/* The sixteen IQ4 values in both 128-bit lanes (a vpshufb table). */
INLINE __m256i iq4_table(void) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)dp_quants_iq4_values));
}

/* Nibbles of 16 bytes in element order: low nibbles are elements 0..15, high ones 16..31. */
INLINE __m256i nibbles32(const uint8_t *p) {
    __m128i b = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), _mm256_set1_epi8(0x0F));
}

/* 0x10 in byte j where bit j of the 32-bit qh at p is set (the fifth bit of Q5_0 / Q5_1 codes). */
INLINE __m256i fifth_bits(const uint8_t *p) {
    int32_t qh;
    memcpy(&qh, p, 4);
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                            3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201ll);
    __m256i b = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(qh), spread), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(b, bit), _mm256_set1_epi8(0x10));
}

/*
 * The 32 codes of a Q4_1, Q5_0, Q5_1 or IQ4_NL block as bytes in element
 * order: the unsigned codes (Q5_0: qw + 16), IQ4_NL's signed table values.
 */
INLINE __m256i q32_codes(uint32_t type, const uint8_t *p) {
    switch (type) {
    case DP_TYPE_Q4_1: return nibbles32(p + 4);
    case DP_TYPE_Q5_0: return _mm256_or_si256(nibbles32(p + 6), fifth_bits(p + 2));
    case DP_TYPE_Q5_1: return _mm256_or_si256(nibbles32(p + 8), fifth_bits(p + 4));
    default: return _mm256_shuffle_epi8(iq4_table(), nibbles32(p + 2)); /* IQ4_NL */
    }
}

/* The unsigned offset of a 256-block type's codes: u = qw + off (IQ4_XS: signed values, none). */
INLINE int kq_off(uint32_t type) { return type == DP_TYPE_Q6_K ? 32 : type == DP_TYPE_Q3_K ? 4 : 0; }
/* Whether the type has mins (a second sum with dmin). */
INLINE bool kq_mins(uint32_t type) {
    return type == DP_TYPE_Q2_K || type == DP_TYPE_Q4_K || type == DP_TYPE_Q5_K;
}

/* Byte x shifted so that its bit `from` lands on bit `to` (bits leaving the byte are masked by the caller). */
INLINE __m256i move_bit(__m256i x, int from, int to) {
    return from < to ? _mm256_slli_epi16(x, to - from) : from > to ? _mm256_srli_epi16(x, from - to) : x;
}

/*
 * Codes of elements 32c..32c+31 of the 256-block at p, in element order:
 * u = qw + kq_off(type) (0..63), or IQ4_XS's signed table values.
 */
INLINE __m256i kq_codes(uint32_t type, const uint8_t *p, int c) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
    switch (type) {
    case DP_TYPE_Q4_K: {
        __m256i b = _mm256_loadu_si256((const __m256i *)(p + 16 + 32 * (c / 2)));
        return _mm256_and_si256(c & 1 ? _mm256_srli_epi16(b, 4) : b, m4);
    }
    case DP_TYPE_Q5_K: { /* qs after 32 bytes of qh; the fifth bit of element 32c + l is bit c of qh[l] */
        __m256i b = _mm256_loadu_si256((const __m256i *)(p + 48 + 32 * (c / 2)));
        __m256i h = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(p + 16)), _mm256_set1_epi8((char)(1 << c)));
        return _mm256_or_si256(_mm256_and_si256(c & 1 ? _mm256_srli_epi16(b, 4) : b, m4), move_bit(h, c, 4));
    }
    case DP_TYPE_Q6_K: { /* half h = c/4 of 128: ql 64 bytes, qh 32; k = c%4 picks the nibble and the bit pair */
        int h = c / 4, k = c % 4;
        __m256i l = _mm256_loadu_si256((const __m256i *)(p + 64 * h + 32 * (k & 1)));
        __m256i q = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h));
        l = _mm256_and_si256(k < 2 ? l : _mm256_srli_epi16(l, 4), m4);
        return _mm256_or_si256(l, _mm256_and_si256(move_bit(q, 2 * k, 4), _mm256_set1_epi8(0x30)));
    }
    case DP_TYPE_Q3_K: { /* 2 bits from qs (half c/4, pair c%4), +4 where bit c of hmask is set */
        __m256i q = _mm256_and_si256(_mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)(p + 32 + 32 * (c / 4))),
                                                       2 * (c % 4)),
                                     m2);
        __m256i h = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)p), _mm256_set1_epi8((char)(1 << c)));
        return _mm256_or_si256(q, _mm256_and_si256(move_bit(h, c, 2), _mm256_set1_epi8(4)));
    }
    case DP_TYPE_Q2_K:
        return _mm256_and_si256(
            _mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)(p + 16 + 32 * (c / 4))), 2 * (c % 4)), m2);
    default: return _mm256_shuffle_epi8(iq4_table(), nibbles32(p + 8 + 16 * c)); /* IQ4_XS */
    }
}

INLINE uint32_t u32_at(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/*
 * The scales of the 256-block at p as int16 lanes, lane i for elements
 * 16i..16i+15 (a scale of 32 elements fills two lanes): *S the scales
 * (Q3_K, IQ4_XS: minus 32, as their decoders), *M the mins (Q2_K, Q4_K,
 * Q5_K; others: zero).
 */
INLINE void kq_scales(uint32_t type, const uint8_t *p, __m256i *S, __m256i *M) {
    *M = _mm256_setzero_si256();
    switch (type) {
    case DP_TYPE_Q4_K: case DP_TYPE_Q5_K: { /* 8 six-bit scales and mins in 12 bytes (quants.c's scale_min_k4) */
        uint32_t u0 = u32_at(p + 4), u1 = u32_at(p + 8), u2 = u32_at(p + 12);
        uint32_t sc_lo = u0 & 0x3F3F3F3F, mn_lo = u1 & 0x3F3F3F3F;
        uint32_t sc_hi = (u2 & 0x0F0F0F0F) | ((u0 >> 6) & 0x03030303) << 4;
        uint32_t mn_hi = ((u2 >> 4) & 0x0F0F0F0F) | ((u1 >> 6) & 0x03030303) << 4;
        __m128i v = _mm_setr_epi32((int)sc_lo, (int)sc_hi, (int)mn_lo, (int)mn_hi);
        *S = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(v, v));
        *M = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(v, v));
        break;
    }
    case DP_TYPE_Q6_K: *S = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p + 192))); break;
    case DP_TYPE_Q3_K: { /* low nibbles of bytes 0..7 (scales 0..7, then their high nibbles 8..15), 2 bits from 8..11 */
        uint32_t a0 = u32_at(p + 96), a1 = u32_at(p + 100), a2 = u32_at(p + 104), w[4];
        uint32_t lo[4] = {a0 & 0x0F0F0F0F, a1 & 0x0F0F0F0F, (a0 >> 4) & 0x0F0F0F0F, (a1 >> 4) & 0x0F0F0F0F};
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) w[g] = lo[g] | ((a2 >> (2 * g)) & 0x03030303) << 4;
        __m128i v = _mm_sub_epi8(_mm_setr_epi32((int)w[0], (int)w[1], (int)w[2], (int)w[3]), _mm_set1_epi8(32));
        *S = _mm256_cvtepi8_epi16(v);
        break;
    }
    case DP_TYPE_Q2_K: {
        __m128i v = _mm_loadu_si128((const __m128i *)p), m4 = _mm_set1_epi8(0x0F);
        *S = _mm256_cvtepu8_epi16(_mm_and_si128(v, m4));
        *M = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(v, 4), m4));
        break;
    }
    default: { /* IQ4_XS: scale j has 4 bits in nibble j of bytes 4..7 and 2 bits at 2j of the u16 at 2 */
        uint32_t sl = u32_at(p + 4), sh = (uint32_t)(p[2] | p[3] << 8);
        uint32_t sh4 = (sh & 0xF) | (sh & 0xF0) << 4 | (sh & 0xF00) << 8 | (sh & 0xF000) << 12; /* nibble k -> byte k */
        uint32_t even = (sl & 0x0F0F0F0F) | (sh4 & 0x03030303) << 4;
        uint32_t odd = ((sl >> 4) & 0x0F0F0F0F) | ((sh4 >> 2) & 0x03030303) << 4;
        __m128i v = _mm_sub_epi8(_mm_unpacklo_epi8(_mm_cvtsi32_si128((int)even), _mm_cvtsi32_si128((int)odd)),
                                 _mm_set1_epi8(32));
        *S = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(v, v));
        break;
    }
    }
}

/* The f16 scale d and min scale dmin (0 without mins) of the 256-block at p. */
INLINE float kq_d(uint32_t type, const uint8_t *p) {
    switch (type) {
    case DP_TYPE_Q2_K: return f16_scale(p + 80);
    case DP_TYPE_Q3_K: return f16_scale(p + 108);
    case DP_TYPE_Q6_K: return f16_scale(p + 208);
    default: return f16_scale(p); /* Q4_K, Q5_K, IQ4_XS */
    }
}
INLINE float kq_dmin(uint32_t type, const uint8_t *p) {
    return type == DP_TYPE_Q2_K ? f16_scale(p + 82) : kq_mins(type) ? f16_scale(p + 2) : 0.0f;
}

/* Bytes 8h..8h+7 of v (h < 4) as eight f32 values, signed. */
INLINE __m256 bytes8_ps(__m256i v, int h) {
    __m128i x = h < 2 ? _mm256_castsi256_si128(v) : _mm256_extracti128_si256(v, 1);
    if (h & 1) x = _mm_unpackhi_epi64(x, x);
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(x));
}

/* Elements k..k+31 of a row (k a multiple of 32) into w[0..3], eight each. */
INLINE void load32(uint32_t type, const uint8_t *row, int64_t k, __m256 w[4]) {
    switch (type) {
    case DP_TYPE_Q8_0: {
        const uint8_t *p = row + (k >> 5) * 34;
        __m256 d = f16_scale8(p);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            w[i] = _mm256_mul_ps(
                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 2 + 8 * i)))), d);
        break;
    }
    case DP_TYPE_Q4_0: { /* q - 8 as signed bytes: low nibbles are elements 0..15, high ones 16..31 */
        const uint8_t *p = row + (k >> 5) * 18;
        __m256 d = f16_scale8(p);
        __m128i b = _mm_loadu_si128((const __m128i *)(p + 2)), m = _mm_set1_epi8(0xF), e = _mm_set1_epi8(8);
        __m128i q0 = _mm_sub_epi8(_mm_and_si128(b, m), e), q1 = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), m), e);
        w[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q0)), d);
        w[1] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(q0, q0))), d);
        w[2] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q1)), d);
        w[3] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(q1, q1))), d);
        break;
    }
    case DP_TYPE_Q4_1: case DP_TYPE_Q5_0: case DP_TYPE_Q5_1: case DP_TYPE_IQ4_NL: { /* the decoders' expressions */
        const uint8_t *p = row + (k >> 5) * (size_t)dp_quants_block_bytes(type);
        __m256i q = q32_codes(type, p);
        if (type == DP_TYPE_Q5_0) q = _mm256_sub_epi8(q, _mm256_set1_epi8(16));
        __m256 d = f16_scale8(p), m = f16_scale8(p + 2);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            w[i] = _mm256_mul_ps(bytes8_ps(q, i), d);
            if (type == DP_TYPE_Q4_1 || type == DP_TYPE_Q5_1) w[i] = _mm256_add_ps(w[i], m);
        }
        break;
    }
    default: /* written out: a loop here kept w[] in memory (a store-forwarding stall per load) */
        w[0] = load8(type, row, k);
        w[1] = load8(type, row, k + 8);
        w[2] = load8(type, row, k + 16);
        w[3] = load8(type, row, k + 24);
        break;
    }
}

/* Bytes of 32 elements. */
INLINE int64_t bytes32(uint32_t type) {
    switch (type) {
    case DP_TYPE_F32: return 128;
    case DP_TYPE_F16: case DP_TYPE_BF16: return 64;
    default: return dp_quants_block_bytes(type);
    }
}

/* Element k of an F32, F16 or BF16 row. */
INLINE float load1(uint32_t type, const uint8_t *row, int64_t k) {
    if (type == DP_TYPE_F32) {
        float f;
        memcpy(&f, row + 4 * k, 4);
        return f;
    }
    unsigned short h = (unsigned short)(row[2 * k] | row[2 * k + 1] << 8);
    if (type == DP_TYPE_F16) return _cvtsh_ss(h);
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* The tree of the dot order, lanes 0-7 in lo and 8-15 in hi. */
INLINE float reduce16(__m256 lo, __m256 hi) {
    __m256 s8 = _mm256_add_ps(lo, hi);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

/* Lanes below m set. */
INLINE __m256i lanes_below(int m) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* acc lanes < m (m may be <= 0 or >= 8) get fma(w, x, acc); the others keep their value. */
INLINE __m256 fma_lanes(__m256 w, __m256 x, __m256 acc, int m) {
    return _mm256_blendv_ps(acc, _mm256_fmadd_ps(w, x, acc), _mm256_castsi256_ps(lanes_below(m)));
}

static void axpy_avx2(float a, const float *x, float *y, int64_t n) {
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] = fmaf(a, x[i], y[i]);
}

static float dot_avx2(const float *a, const float *b, int64_t n) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        lo = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), lo);
        hi = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), hi);
    }
    if (i < n) {
        float ta[16] = {0}, tb[16] = {0};
        int m = (int)(n - i);
        memcpy(ta, a + i, (size_t)m * sizeof *a);
        memcpy(tb, b + i, (size_t)m * sizeof *b);
        lo = fma_lanes(_mm256_loadu_ps(ta), _mm256_loadu_ps(tb), lo, m);
        hi = fma_lanes(_mm256_loadu_ps(ta + 8), _mm256_loadu_ps(tb + 8), hi, m - 8);
    }
    return reduce16(lo, hi);
}

/* attend_softmax_ref eight keys a step: chains p mod 8 are the lanes of two double vectors. */
static void softmax_avx2(float *sc, int n) {
    float mx = attend_max(sc, n);
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    int p = 0;
    for (; p + 8 <= n; p += 8) {
        __m256 x = _mm256_sub_ps(_mm256_loadu_ps(sc + p), _mm256_set1_ps(mx));
        __m256 ok = _mm256_cmp_ps(x, _mm256_set1_ps(DP_EXP_MIN), _CMP_GE_OQ);
        __m256 nn = _mm256_sub_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(DP_EXP_LOG2E), _mm256_set1_ps(DP_EXP_ROUND)),
                                  _mm256_set1_ps(DP_EXP_ROUND));
        __m256 r = _mm256_fmadd_ps(nn, _mm256_set1_ps(-DP_EXP_LN2_HI), x);
        r = _mm256_fmadd_ps(nn, _mm256_set1_ps(-DP_EXP_LN2_LO), r);
        __m256 e = _mm256_set1_ps(DP_EXP_C(5040));
        e = _mm256_fmadd_ps(e, r, _mm256_set1_ps(DP_EXP_C(720)));
        e = _mm256_fmadd_ps(e, r, _mm256_set1_ps(DP_EXP_C(120)));
        e = _mm256_fmadd_ps(e, r, _mm256_set1_ps(DP_EXP_C(24)));
        e = _mm256_fmadd_ps(e, r, _mm256_set1_ps(DP_EXP_C(6)));
        e = _mm256_fmadd_ps(e, r, _mm256_set1_ps(0.5f));
        e = _mm256_fmadd_ps(e, r, _mm256_set1_ps(1.0f));
        e = _mm256_fmadd_ps(e, r, _mm256_set1_ps(1.0f));
        __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(nn), _mm256_set1_epi32(127)), 23);
        e = _mm256_and_ps(ok, _mm256_mul_ps(e, _mm256_castsi256_ps(bits)));
        _mm256_storeu_ps(sc + p, e);
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double c[8];
    _mm256_storeu_pd(c, lo);
    _mm256_storeu_pd(c + 4, hi);
    attend_softmax_tail(sc, n, p, mx, c);
}

/* Small heads: eight keys' scores a step; values of heads of 8 one key a register, of 16 two. */
static void attend_avx2(const float *q, const float *K, int64_t ldk, const float *V, int n_keys, int hd, float scale,
                        float *sc, float *o) {
    if (hd > DP_ATTEND_SMALL_HD) {
        attend_large(dot_avx2, axpy_avx2, softmax_avx2, q, K, V, n_keys, hd, scale, sc, o);
        return;
    }
    int p = 0;
    for (; p + 8 <= n_keys; p += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int i = 0; i < hd; i++) acc = _mm256_fmadd_ps(_mm256_set1_ps(q[i]), _mm256_loadu_ps(K + i * ldk + p), acc);
        _mm256_storeu_ps(sc + p, _mm256_mul_ps(acc, _mm256_set1_ps(scale)));
    }
    if (p < n_keys) attend_small_scores_ref(q, K + p, ldk, n_keys - p, hd, scale, sc + p);
    softmax_avx2(sc, n_keys);
    p = 0;
    if (hd == 8 || hd == 16) {
        int h = hd / 8; /* registers a key */
        __m256 c[4][2];
        for (int j = 0; j < 4; j++) c[j][0] = c[j][1] = _mm256_setzero_ps();
        for (; p < n_keys; p++) {
            __m256 w = _mm256_set1_ps(sc[p]);
            for (int r = 0; r < h; r++)
                c[p & 3][r] = _mm256_fmadd_ps(w, _mm256_loadu_ps(V + (int64_t)p * hd + 8 * r), c[p & 3][r]);
        }
        for (int r = 0; r < h; r++)
            _mm256_storeu_ps(o + 8 * r, _mm256_add_ps(_mm256_add_ps(c[0][r], c[2][r]), _mm256_add_ps(c[1][r], c[3][r])));
    } else {
        attend_small_values_ref(sc, V, n_keys, hd, o);
    }
}

/* ---- dequantization of whole rows ---- */

INLINE void dequant_row(uint32_t type, const void *row, float *out, int64_t n) {
    int64_t k = 0;
    for (; k + 32 <= n; k += 32) {
        __m256 w[4];
        load32(type, row, k, w);
        for (int i = 0; i < 4; i++) _mm256_storeu_ps(out + k + 8 * i, w[i]);
    }
    for (; k + 8 <= n; k += 8) _mm256_storeu_ps(out + k, load8(type, row, k));
    for (; k < n; k++) out[k] = load1(type, row, k);
}

static void dequant_f16(const void *row, float *out, int64_t n) { dequant_row(DP_TYPE_F16, row, out, n); }
static void dequant_bf16(const void *row, float *out, int64_t n) { dequant_row(DP_TYPE_BF16, row, out, n); }
static void dequant_q8_0(const void *row, float *out, int64_t n) { dequant_row(DP_TYPE_Q8_0, row, out, n); }
static void dequant_q4_0(const void *row, float *out, int64_t n) { dequant_row(DP_TYPE_Q4_0, row, out, n); }

/* ---- decode: R rows x T tokens in the dot order ---- */

/* ---- decode, 256-element blocks: the scales once per block, then 32 elements at a time ---- */

/* The f32 factors of the 256-block at p, lane i for elements 16i..16i+15: a = d * scale, b = dmin * min. */
INLINE void kq_factors(uint32_t type, const uint8_t *p, float a[16], float b[16]) {
    __m256i S, M;
    kq_scales(type, p, &S, &M);
    __m256 d = _mm256_set1_ps(kq_d(type, p));
    _mm256_storeu_ps(a, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(S)))));
    _mm256_storeu_ps(a + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(S, 1)))));
    if (kq_mins(type)) {
        __m256 dm = _mm256_set1_ps(kq_dmin(type, p));
        _mm256_storeu_ps(b, _mm256_mul_ps(dm, _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(M)))));
        _mm256_storeu_ps(b + 8,
                         _mm256_mul_ps(dm, _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(M, 1)))));
    }
}

/* Elements 32c..32c+31 of the 256-block at p, with its factors a and m, as f32 into w[0..3]: a * q (- m). */
INLINE void kq_dequant32(uint32_t type, const uint8_t *p, int c, const float a[16], const float m[16], __m256 w[4]) {
    __m256i q = kq_codes(type, p, c);
    if (kq_off(type)) q = _mm256_sub_epi8(q, _mm256_set1_epi8((char)kq_off(type)));
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        w[i] = _mm256_mul_ps(_mm256_set1_ps(a[2 * c + i / 2]), bytes8_ps(q, i));
        if (kq_mins(type)) w[i] = _mm256_sub_ps(w[i], _mm256_set1_ps(m[2 * c + i / 2]));
    }
}

/*
 * vecdot_tile for the K-quants and IQ4_XS: per block and row the sixteen
 * factors, then per 32 elements w = a * q (- b), the decoders' expressions.
 */
INLINE void vecdot_k_tile(uint32_t type, int R, int T, const uint8_t *W, size_t rb, const float *X, int64_t ldx,
                          int64_t n, float *Y, int64_t ldy, const uint8_t *next) {
    __m256 lo[4][4], hi[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) lo[r][t] = hi[r][t] = _mm256_setzero_ps();
    size_t bb = (size_t)dp_quants_block_bytes(type);
    for (int64_t b = 0; b < n / 256; b++) {
        const uint8_t *pf = next + (size_t)b * R * bb;
        for (size_t o = 0; o < R * bb; o += 64) _mm_prefetch((const char *)pf + o, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const uint8_t *p = W + r * rb + b * bb;
            float a[16], m[16];
            kq_factors(type, p, a, m);
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++) {
                __m256 w[4];
                kq_dequant32(type, p, c, a, m, w);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    const float *x = X + t * ldx + 256 * b + 32 * c;
                    lo[r][t] = _mm256_fmadd_ps(w[0], _mm256_loadu_ps(x), lo[r][t]);
                    hi[r][t] = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(x + 8), hi[r][t]);
                    lo[r][t] = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(x + 16), lo[r][t]);
                    hi[r][t] = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(x + 24), hi[r][t]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) Y[t * ldy + r] = reduce16(lo[r][t], hi[r][t]);
}

/* Elements [k0, k0 + len) of a row of a quants.c type (multiples of 32) as f32: the decoders' values. */
INLINE void dequant_span(uint32_t type, const uint8_t *row, int64_t k0, int64_t len, float *out) {
    __m256 w[4];
    float a[16], m[16];
    int64_t have = -1; /* the block whose factors a, m hold */
    for (int64_t k = k0; k < k0 + len; k += 32, out += 32) {
        if (is_k(type)) {
            const uint8_t *p = row + (size_t)(k / 256) * (size_t)dp_quants_block_bytes(type);
            if (k / 256 != have) kq_factors(type, p, a, m), have = k / 256;
            kq_dequant32(type, p, (int)(k % 256 / 32), a, m, w);
        } else {
            load32(type, row, k, w);
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) _mm256_storeu_ps(out + 8 * i, w[i]);
    }
}

#define DEQUANT(T, NAME) \
    static void dequant_##NAME(const void *row, float *out, int64_t n) { dequant_span(T, row, 0, n, out); }
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

/*
 * R rows x T tokens. As in kernels_avx512.c, the loop sweeps the next tile's
 * bytes (next, R*rb of them) into the cache in step with its own progress.
 */
INLINE void vecdot_tile(uint32_t type, int R, int T, const uint8_t *W, size_t rb, const float *X, int64_t ldx,
                        int64_t n, float *Y, int64_t ldy, const uint8_t *next) {
    if (is_k(type)) {
        vecdot_k_tile(type, R, T, W, rb, X, ldx, n, Y, ldy, next);
        return;
    }
    __m256 lo[4][4], hi[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) lo[r][t] = hi[r][t] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 32 <= n; k += 32) {
        const uint8_t *pf = next + (k >> 5) * R * bytes32(type);
#pragma GCC unroll 8
        for (int64_t b = 0; b < R * bytes32(type); b += 64) _mm_prefetch((const char *)pf + b, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256 w[4];
            load32(type, W + r * rb, k, w);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                const float *x = X + t * ldx + k;
                lo[r][t] = _mm256_fmadd_ps(w[0], _mm256_loadu_ps(x), lo[r][t]);
                hi[r][t] = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(x + 8), hi[r][t]);
                lo[r][t] = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(x + 16), lo[r][t]);
                hi[r][t] = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(x + 24), hi[r][t]);
            }
        }
    }
    for (; k < n; k += 16) { /* F32, F16, BF16 */
        int m = n - k < 16 ? (int)(n - k) : 16;
        for (int r = 0; r < R; r++) {
            float w[16] = {0};
            for (int j = 0; j < m; j++) w[j] = load1(type, W + r * rb, k + j);
            for (int t = 0; t < T; t++) {
                float x[16] = {0};
                memcpy(x, X + t * ldx + k, (size_t)m * sizeof *x);
                lo[r][t] = fma_lanes(_mm256_loadu_ps(w), _mm256_loadu_ps(x), lo[r][t], m);
                hi[r][t] = fma_lanes(_mm256_loadu_ps(w + 8), _mm256_loadu_ps(x + 8), hi[r][t], m - 8);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) Y[t * ldy + r] = reduce16(lo[r][t], hi[r][t]);
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
            int nt = n_tok - t < T ? n_tok - t : T;
            if (nr == R && nt == T) vecdot_tile(type, R, T, w, rb, x, ldx, n, y, ldy, next);
            else if (nt == 1) vecdot_tile(type, 1, 1, w, rb, x, ldx, n, y, ldy, next);
            else if (nt == 2) vecdot_tile(type, 1, 2, w, rb, x, ldx, n, y, ldy, next);
            else if (nt == 3) vecdot_tile(type, 1, 3, w, rb, x, ldx, n, y, ldy, next);
            else vecdot_tile(type, 1, 4, w, rb, x, ldx, n, y, ldy, next);
        }
        r += nr;
    }
}

/* 4 rows x 1 token, 2 rows x 2 tokens, or 1 row x 4 tokens: 8 of the 16 ymm registers as accumulators. */
INLINE void vecdot(uint32_t type, const void *W, size_t rb, int n_rows, const float *X, int64_t ldx, int n_tok,
                   int64_t n, float *Y, int64_t ldy) {
    if (n_tok == 1) vecdot_rows(type, 4, 1, W, rb, n_rows, X, ldx, n_tok, n, Y, ldy);
    else if (n_tok == 2) vecdot_rows(type, 2, 2, W, rb, n_rows, X, ldx, n_tok, n, Y, ldy);
    else vecdot_rows(type, 1, 4, W, rb, n_rows, X, ldx, n_tok, n, Y, ldy);
}

/* ---- prefill: packing 8 x 8 blocks through a register transpose ---- */

INLINE void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int p = 0; p < 4; p++) {
        t[2 * p] = _mm256_unpacklo_ps(r[2 * p], r[2 * p + 1]);
        t[2 * p + 1] = _mm256_unpackhi_ps(r[2 * p], r[2 * p + 1]);
    }
    /* u[4q+m], 128-bit lane L: rows 4q..4q+3 at column 4L+m */
    for (int q = 0; q < 2; q++) {
        u[4 * q + 0] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], 0x44);
        u[4 * q + 1] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], 0xEE);
        u[4 * q + 2] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0x44);
        u[4 * q + 3] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0xEE);
    }
    for (int m = 0; m < 4; m++) {
        r[m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x20);
        r[4 + m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x31);
    }
}

INLINE void pack(uint32_t type, const void *W, size_t rb, int n_rows, int mr, int64_t k0, int64_t kc, float *P) {
    const uint8_t *w = W;
    for (int i0 = 0; i0 < mr; i0 += 8) {
        for (int64_t c = 0; c < kc; c += 8) {
            int64_t len = kc - c < 8 ? kc - c : 8;
            __m256 r[8];
            for (int i = 0; i < 8; i++) {
                if (i0 + i >= n_rows) {
                    r[i] = _mm256_setzero_ps();
                } else if (len == 8) {
                    r[i] = load8(type, w + (i0 + i) * rb, k0 + c);
                } else {
                    float tmp[8] = {0};
                    for (int j = 0; j < len; j++) tmp[j] = load1(type, w + (i0 + i) * rb, k0 + c + j);
                    r[i] = _mm256_loadu_ps(tmp);
                }
            }
            transpose8(r);
            for (int j = 0; j < len; j++) _mm256_storeu_ps(P + (c + j) * mr + i0, r[j]);
        }
    }
}

/* pack for the quants.c types: 8 rows' spans decoded, then 8 x 8 transposes. */
INLINE void pack_q(uint32_t type, const void *W, size_t rb, int n_rows, int mr, int64_t k0, int64_t kc, float *P) {
    static _Thread_local float tmp[8][DP_GEMM_KC];
    const uint8_t *w = W;
    for (int i0 = 0; i0 < mr; i0 += 8) {
        for (int i = 0; i < 8; i++) {
            if (i0 + i < n_rows) dequant_span(type, w + (size_t)(i0 + i) * rb, k0, kc, tmp[i]);
            else memset(tmp[i], 0, (size_t)kc * sizeof(float));
        }
        for (int64_t c = 0; c < kc; c += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(tmp[i] + c);
            transpose8(r);
            for (int j = 0; j < 8; j++) _mm256_storeu_ps(P + (c + j) * mr + i0, r[j]);
        }
    }
}

/* The typed entries of the table: vecdot, and pack through PACK (pack for the float types, Q8_0 and Q4_0; pack_q for quants.c's). */
#define TYPED_WITH(T, NAME, PACK)                                                                         \
    static void vecdot_##NAME(const void *W, size_t rb, int nr, const float *X, int64_t ldx, int nt, int64_t n, \
                              float *Y, int64_t ldy) {                                                    \
        vecdot(T, W, rb, nr, X, ldx, nt, n, Y, ldy);                                                      \
    }                                                                                                     \
    static void pack_##NAME(const void *W, size_t rb, int nr, int mr, int64_t k0, int64_t kc, float *P) {  \
        PACK(T, W, rb, nr, mr, k0, kc, P);                                                                \
    }
#define TYPED(T, NAME) TYPED_WITH(T, NAME, pack)
#define VECDOT(T, NAME) TYPED_WITH(T, NAME, pack_q)
TYPED(DP_TYPE_F32, f32)
TYPED(DP_TYPE_F16, f16)
TYPED(DP_TYPE_BF16, bf16)
TYPED(DP_TYPE_Q8_0, q8_0)
TYPED(DP_TYPE_Q4_0, q4_0)

VECDOT(DP_TYPE_Q4_1, q4_1)
VECDOT(DP_TYPE_Q5_0, q5_0)
VECDOT(DP_TYPE_Q5_1, q5_1)
VECDOT(DP_TYPE_IQ4_NL, iq4_nl)
VECDOT(DP_TYPE_Q2_K, q2_k)
VECDOT(DP_TYPE_Q3_K, q3_k)
VECDOT(DP_TYPE_Q4_K, q4_k)
VECDOT(DP_TYPE_Q5_K, q5_k)
VECDOT(DP_TYPE_Q6_K, q6_k)
VECDOT(DP_TYPE_IQ4_XS, iq4_xs)

/* ---- prefill: the 16 x NR micro-kernel ---- */

#define MR 16
#define NR 6

INLINE void gemm_tile(int nr, const float *P, const float *Xp, int64_t kc, int n_tok, int n_rows, float *Y,
                      int64_t ldy, bool acc) {
    __m256 c0[NR], c1[NR];
    __m256i m0 = lanes_below(n_rows), m1 = lanes_below(n_rows - 8);
#pragma GCC unroll 6
    for (int t = 0; t < nr; t++) {
        if (acc && t < n_tok) {
            c0[t] = _mm256_maskload_ps(Y + t * ldy, m0);
            c1[t] = _mm256_maskload_ps(Y + t * ldy + 8, m1);
        } else {
            c0[t] = c1[t] = _mm256_setzero_ps();
        }
    }
    for (int64_t k = 0; k < kc; k++) {
        __m256 w0 = _mm256_load_ps(P + k * MR), w1 = _mm256_load_ps(P + k * MR + 8);
#pragma GCC unroll 6
        for (int t = 0; t < nr; t++) {
            __m256 x = _mm256_broadcast_ss(Xp + k * nr + t);
            c0[t] = _mm256_fmadd_ps(w0, x, c0[t]);
            c1[t] = _mm256_fmadd_ps(w1, x, c1[t]);
        }
    }
#pragma GCC unroll 6
    for (int t = 0; t < nr; t++) {
        if (t < n_tok) {
            _mm256_maskstore_ps(Y + t * ldy, m0, c0[t]);
            _mm256_maskstore_ps(Y + t * ldy + 8, m1, c1[t]);
        }
    }
}

static void gemm_avx2(const float *P, const float *Xp, int nr_b, int64_t kc, int n_tok, int n_rows, float *Y,
                      int64_t ldy, bool acc) {
    switch (nr_b) {
    case 2: gemm_tile(2, P, Xp, kc, n_tok, n_rows, Y, ldy, acc); break;
    case 4: gemm_tile(4, P, Xp, kc, n_tok, n_rows, Y, ldy, acc); break;
    default: gemm_tile(NR, P, Xp, kc, n_tok, n_rows, Y, ldy, acc); break;
    }
}

/* ---- the q8 mode: integer dot products with vpmaddubsw / vpmaddwd ---- */

/*
 * As in kernels_avx512.c, 8 rows of a block of 32 columns become eight
 * registers, w[i] lane r = codes 4i..4i+3 of row r, so that each lane
 * accumulates one row's I_b against the broadcast activation bytes
 * 4i..4i+3, exactly:
 *  - Q4_0: the nibbles (q + 8) times qx by vpmaddubsw (pairs within 2*15*127)
 *    summed in 16 bits over the block's eight registers (within 8*3810),
 *    widened by vpmaddwd, and the activation's bias (-8 sum qx) added;
 *  - Q8_0: vpmaddubsw multiplies unsigned by signed bytes, so the unsigned
 *    side is |qw| (up to 128) and the signed one qx with qw's sign (|qx| <=
 *    127, never overflowing); pairs (within 2*128*127) widen by vpmaddwd
 *    at once.
 *  - Q4_1: the nibbles as Q4_0, without bias (its min is a second fma with
 *    the Q8_1 s);
 *  - Q5_0, Q5_1: five-bit codes (Q5_0: qw + 16, the bias -16 sum qx), pairs
 *    within 2*31*127, summed in 16 bits over four registers (4*7874), twice;
 *  - IQ4_NL: the table values as Q8_0 (|qw| <= 127).
 * The rows go through an 8 x 8 (Q8_0, Q5_0, Q5_1: codes decoded in element
 * order first) or 4 x 4 (Q4_0, Q4_1, IQ4_NL) dword transpose into a panel on
 * the stack, Q8_PKC columns at a time, that T <= 4 tokens at a time then read.
 */
#define Q8_PKC 512
#define Q8_NB (Q8_PKC / 32)
#define Q8_T 4

struct q8_panel {
    __m256i w[Q8_NB][8]; /* Q8_0, IQ4_NL: qw; Q4_0, Q4_1: the nibbles; Q5_0, Q5_1: the five-bit codes */
    __m256 s[Q8_NB];     /* the 8 rows' block scales */
    __m256 m[Q8_NB];     /* Q4_1, Q5_1: the 8 rows' mins */
};


/* Nibble types (4 x 4 transpose of the 16 code bytes): Q4_0, Q4_1, IQ4_NL. */
INLINE bool q8_nibbles(uint32_t type) {
    return type == DP_TYPE_Q4_0 || type == DP_TYPE_Q4_1 || type == DP_TYPE_IQ4_NL;
}

/* Block b of 8 rows (row pointers rows[]) into w[8] and the scales. */
INLINE void q8_block8(uint32_t type, const uint8_t *const rows[8], int64_t b, __m256i w[8], __m256 *s, __m256 *mn) {
    size_t o = (size_t)b * (size_t)(int64_t)dp_quants_block_bytes(type);
    if (!q8_nibbles(type)) {
        __m256i r[8], t[8], u[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++)
            r[i] = type == DP_TYPE_Q8_0 ? _mm256_loadu_si256((const __m256i *)(rows[i] + o + 2))
                                        : q32_codes(type, rows[i] + o);
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            t[2 * p] = _mm256_unpacklo_epi32(r[2 * p], r[2 * p + 1]);
            t[2 * p + 1] = _mm256_unpackhi_epi32(r[2 * p], r[2 * p + 1]);
        }
        /* u[4q+g], 128-bit lanes 0 and 1: rows 4q..4q+3 at dwords g and g+4 */
#pragma GCC unroll 2
        for (int q = 0; q < 2; q++) {
            u[4 * q + 0] = _mm256_unpacklo_epi64(t[4 * q], t[4 * q + 2]);
            u[4 * q + 1] = _mm256_unpackhi_epi64(t[4 * q], t[4 * q + 2]);
            u[4 * q + 2] = _mm256_unpacklo_epi64(t[4 * q + 1], t[4 * q + 3]);
            u[4 * q + 3] = _mm256_unpackhi_epi64(t[4 * q + 1], t[4 * q + 3]);
        }
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
            w[g] = _mm256_permute2x128_si256(u[g], u[4 + g], 0x20);
            w[4 + g] = _mm256_permute2x128_si256(u[g], u[4 + g], 0x31);
        }
    } else { /* rows m and m+4 in the lanes of z[m]; raw dword g: elements 4g.. (low nibbles), 16+4g.. (high) */
        __m256i z[4], a[4], raw[4], m4 = _mm256_set1_epi8(0x0F);
        size_t q = o + (type == DP_TYPE_Q4_1 ? 4 : 2);
#pragma GCC unroll 4
        for (int m = 0; m < 4; m++)
            z[m] = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(rows[m] + q))),
                                           _mm_loadu_si128((const __m128i *)(rows[m + 4] + q)), 1);
        a[0] = _mm256_unpacklo_epi32(z[0], z[1]);
        a[1] = _mm256_unpackhi_epi32(z[0], z[1]);
        a[2] = _mm256_unpacklo_epi32(z[2], z[3]);
        a[3] = _mm256_unpackhi_epi32(z[2], z[3]);
        raw[0] = _mm256_unpacklo_epi64(a[0], a[2]);
        raw[1] = _mm256_unpackhi_epi64(a[0], a[2]);
        raw[2] = _mm256_unpacklo_epi64(a[1], a[3]);
        raw[3] = _mm256_unpackhi_epi64(a[1], a[3]);
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
            w[g] = _mm256_and_si256(raw[g], m4);
            w[4 + g] = _mm256_and_si256(_mm256_srli_epi16(raw[g], 4), m4);
            if (type == DP_TYPE_IQ4_NL) {
                w[g] = _mm256_shuffle_epi8(iq4_table(), w[g]);
                w[4 + g] = _mm256_shuffle_epi8(iq4_table(), w[4 + g]);
            }
        }
    }
    uint16_t h[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) memcpy(&h[i], rows[i] + o, 2);
    *s = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
    if (type == DP_TYPE_Q4_1 || type == DP_TYPE_Q5_1) {
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) memcpy(&h[i], rows[i] + o + 2, 2);
        *mn = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
    }
}

INLINE __m256i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/*
 * T tokens (from token t0) over the panel's nbl blocks (from block b0);
 * Y = (acc ? Y : 0) + the chains' links, 8 rows (lanes below n_rows stored).
 */
INLINE void q8_tile(uint32_t type, int T, const struct q8_panel *P, int nbl, const struct dp_act_q8 *A, int64_t b0,
                    int t0, float *Y, int64_t ldy, __m256i mask, bool acc) {
    int64_t n = A->n_in, nb = n / 32;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 y[Q8_T];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) y[t] = acc ? _mm256_maskload_ps(Y + t * ldy, mask) : _mm256_setzero_ps();
    for (int bl = 0; bl < nbl; bl++) {
        int64_t b = b0 + bl;
        __m256i I[Q8_T];
        if (type == DP_TYPE_Q8_0 || type == DP_TYPE_IQ4_NL) {
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) I[t] = _mm256_setzero_si256();
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++) {
                __m256i ws = _mm256_load_si256(&P->w[bl][g]), wa = _mm256_abs_epi8(ws);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    __m256i x = _mm256_sign_epi8(bcast4(A->q + (t0 + t) * n + b * 32 + 4 * g), ws);
                    I[t] = _mm256_add_epi32(I[t], _mm256_madd_epi16(_mm256_maddubs_epi16(wa, x), ones));
                }
            }
        } else { /* unsigned codes: 16-bit sums over eight registers (nibbles) or two sums over four (five bits) */
            const bool five = type == DP_TYPE_Q5_0 || type == DP_TYPE_Q5_1;
            __m256i H[Q8_T];
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) I[t] = H[t] = _mm256_setzero_si256();
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++) {
                __m256i w = _mm256_load_si256(&P->w[bl][g]);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    __m256i pr = _mm256_maddubs_epi16(w, bcast4(A->q + (t0 + t) * n + b * 32 + 4 * g));
                    if (five && g >= 4) H[t] = _mm256_add_epi16(H[t], pr);
                    else I[t] = _mm256_add_epi16(I[t], pr);
                }
            }
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                I[t] = _mm256_madd_epi16(I[t], ones);
                if (five) I[t] = _mm256_add_epi32(I[t], _mm256_madd_epi16(H[t], ones));
                if (type == DP_TYPE_Q4_0 || type == DP_TYPE_Q5_0)
                    I[t] = _mm256_add_epi32(I[t], _mm256_set1_epi32(A->bias[(t0 + t) * nb + b]));
            }
        }
        __m256 s = _mm256_load_ps((const float *)&P->s[bl]);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) { /* s * d is exact: two f16 values */
            y[t] = _mm256_fmadd_ps(_mm256_mul_ps(s, _mm256_set1_ps(A->d[(t0 + t) * nb + b])), _mm256_cvtepi32_ps(I[t]), y[t]);
            if (type == DP_TYPE_Q4_1 || type == DP_TYPE_Q5_1)
                y[t] = _mm256_fmadd_ps(_mm256_load_ps((const float *)&P->m[bl]), _mm256_set1_ps(A->s[(t0 + t) * nb + b]),
                                       y[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) _mm256_maskstore_ps(Y + t * ldy, mask, y[t]);
}

INLINE void vecdot_q8(uint32_t type, const void *W, size_t rb, int n_rows, const struct dp_act_q8 *A, int n_tok,
                      float *Y, int64_t ldy) {
    int64_t nb = A->n_in / 32, bb = (int64_t)dp_quants_block_bytes(type);
    struct q8_panel P;
    for (int r0 = 0; r0 < n_rows; r0 += 8) {
        int nr = n_rows - r0 < 8 ? n_rows - r0 : 8;
        const uint8_t *rows[8], *base = (const uint8_t *)W + (size_t)r0 * rb, *next = base + 8 * rb;
        for (int i = 0; i < 8; i++) rows[i] = base + (size_t)(i < nr ? i : nr - 1) * rb; /* extra lanes not stored */
        __m256i mask = lanes_below(nr);
        float *y = Y + r0;
        for (int64_t b0 = 0; b0 < nb; b0 += Q8_NB) {
            int nbl = nb - b0 < Q8_NB ? (int)(nb - b0) : Q8_NB;
            for (int bl = 0; bl < nbl; bl++) {
                /* the next 8 rows (contiguous) swept into the cache in step, as in kernels_avx512.c */
                const uint8_t *pf = next + (b0 + bl) * 8 * bb;
#pragma GCC unroll 5
                for (int64_t c = 0; c < 8 * bb; c += 64) _mm_prefetch((const char *)pf + c, _MM_HINT_T0);
                q8_block8(type, rows, b0 + bl, P.w[bl], &P.s[bl], &P.m[bl]);
            }
            bool acc = b0 > 0;
            int t = 0;
            for (; t + Q8_T <= n_tok; t += Q8_T) q8_tile(type, Q8_T, &P, nbl, A, b0, t, y + t * ldy, ldy, mask, acc);
            if (n_tok - t >= 2) q8_tile(type, 2, &P, nbl, A, b0, t, y + t * ldy, ldy, mask, acc), t += 2;
            if (n_tok - t >= 1) q8_tile(type, 1, &P, nbl, A, b0, t, y + t * ldy, ldy, mask, acc);
        }
    }
}

static void vecdot_q8_q8_0(const void *W, size_t rb, int nr, const struct dp_act_q8 *A, int nt, float *Y, int64_t ldy) {
    vecdot_q8(DP_TYPE_Q8_0, W, rb, nr, A, nt, Y, ldy);
}
static void vecdot_q8_q4_0(const void *W, size_t rb, int nr, const struct dp_act_q8 *A, int nt, float *Y, int64_t ldy) {
    vecdot_q8(DP_TYPE_Q4_0, W, rb, nr, A, nt, Y, ldy);
}
static void vecdot_q8_q4_1(const void *W, size_t rb, int nr, const struct dp_act_q8 *A, int nt, float *Y, int64_t ldy) {
    vecdot_q8(DP_TYPE_Q4_1, W, rb, nr, A, nt, Y, ldy);
}
static void vecdot_q8_q5_0(const void *W, size_t rb, int nr, const struct dp_act_q8 *A, int nt, float *Y, int64_t ldy) {
    vecdot_q8(DP_TYPE_Q5_0, W, rb, nr, A, nt, Y, ldy);
}
static void vecdot_q8_q5_1(const void *W, size_t rb, int nr, const struct dp_act_q8 *A, int nt, float *Y, int64_t ldy) {
    vecdot_q8(DP_TYPE_Q5_1, W, rb, nr, A, nt, Y, ldy);
}
static void vecdot_q8_iq4_nl(const void *W, size_t rb, int nr, const struct dp_act_q8 *A, int nt, float *Y,
                             int64_t ldy) {
    vecdot_q8(DP_TYPE_IQ4_NL, W, rb, nr, A, nt, Y, ldy);
}

/* ---- the q8 mode, 256-element blocks (K-quants, IQ4_XS): one row per register ---- */

/*
 * Here a register holds 32 consecutive codes of one row (the layout of the
 * file), and the block's integer sums are reduced across lanes once per
 * block. A panel of up to 16 rows x KQ_NB blocks is decoded once: the codes,
 * per 32 codes the scale of each int16 lane, and the coefficients of the
 * activation's sums over 16 (sum16). Then per row, token and 32 codes:
 *   vpmaddubsw(u, qx): pairs u0*x0 + u1*x1, within 2*63*127 (unsigned codes
 *     u = qw + off <= 63) or, IQ4_XS, |qw| <= 127 against qx with qw's sign,
 *     2*127*127; never saturated, so exact;
 *   vpmaddwd(pairs, scales): the scaled sums in int32, exact.
 * The offset's share -off * sum_j sc_j S_j (Q3_K, Q6_K) and the mins' sum
 * m_j S_j (Q2_K, Q4_K, Q5_K) take one vpmaddwd on the sixteen S_j (int16:
 * |S_j| <= 16*127). Every integer is the scalar's exact sum; the f32 tail is
 * the same fma (or two) per block.
 */
#define KQ_NB 2
#define KQ_ROWS 16

struct kq_blk {
    __m256i q[8];  /* codes 32c..32c+31: u = qw + off, or IQ4_XS's signed values */
    __m256i sc[8]; /* int16 lane l of chunk c: the scale of elements 32c + 2l, 32c + 2l + 1 */
    __m256i c;     /* int16 lane i: coefficient of S_i (-off * scale_i, or min_i) */
};

struct kq_panel {
    struct kq_blk b[KQ_NB][KQ_ROWS];
    float d[KQ_NB][KQ_ROWS + 8], dmin[KQ_NB][KQ_ROWS + 8]; /* + 8: a tile reads eight from its first row on */
};

/* vpshufb patterns: from eight int16 in each 128-bit lane, word 2q to the low half, 2q + 1 to the high half. */
#define KP2(a, b) a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b
#define KPICK(q) {KP2(4 * q, 4 * q + 1), KP2(4 * q + 2, 4 * q + 3)}
static const uint8_t kq_pick[4][32] = {KPICK(0), KPICK(1), KPICK(2), KPICK(3)};

INLINE void kq_decode(uint32_t type, const uint8_t *p, struct kq_blk *o, float *d, float *dmin) {
    __m256i S, M;
    kq_scales(type, p, &S, &M);
    __m256i lo = _mm256_permute4x64_epi64(S, 0x44), hi = _mm256_permute4x64_epi64(S, 0xEE);
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++) {
        o->q[c] = kq_codes(type, p, c);
        o->sc[c] = _mm256_shuffle_epi8(c < 4 ? lo : hi, _mm256_loadu_si256((const __m256i *)kq_pick[c % 4]));
    }
    if (kq_mins(type)) o->c = M;
    else if (kq_off(type)) o->c = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_mullo_epi16(S, _mm256_set1_epi16((short)kq_off(type))));
    *d = kq_d(type, p);
    *dmin = kq_dmin(type, p);
}

/* Lane r of the result: the sum of the lanes of v[r]. */
INLINE __m256i hsum8(const __m256i v[8]) {
    __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

/* The sixteen sum16 of a Q8_K block as int16 lanes. */
INLINE __m256i sums16(const int32_t *s) {
    __m256i v = _mm256_packs_epi32(_mm256_loadu_si256((const __m256i *)s), _mm256_loadu_si256((const __m256i *)(s + 8)));
    return _mm256_permute4x64_epi64(v, 0xD8);
}

/*
 * R rows (panel rows r0..) x T tokens (from t0), R*T = 8, over the panel's
 * nbl blocks from block b0: lane i = t*R + r holds output (r, t)'s chain;
 * Y = (acc ? Y : +0) + the blocks' links; rows from nr on are not stored.
 */
INLINE void kq_tile(uint32_t type, int R, int T, const struct kq_panel *P, int r0, int nr, int nbl,
                    const struct dp_act_q8 *A, int64_t b0, int t0, float *Y, int64_t ldy, bool acc) {
    int64_t n = A->n_in, nb = n / 256;
    float yv[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        yv[i] = acc && r0 + i % R < nr ? Y[(i / R) * ldy + r0 + i % R] : 0.0f;
    __m256 y = _mm256_loadu_ps(yv);
    const __m256i rsel = _mm256_setr_epi32(0 % R, 1 % R, 2 % R, 3 % R, 4 % R, 5 % R, 6 % R, 7 % R);
    const __m256i tsel = _mm256_setr_epi32(0 / R, 1 / R, 2 / R, 3 / R, 4 / R, 5 / R, 6 / R, 7 / R);
    for (int bl = 0; bl < nbl; bl++) {
        int64_t b = b0 + bl;
        __m256i I[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) I[i] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            __m256i x[4];
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) x[t] = _mm256_loadu_si256((const __m256i *)(A->q + (t0 + t) * n + b * 256 + 32 * c));
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                const struct kq_blk *k = &P->b[bl][r0 + r];
                __m256i w = _mm256_load_si256(&k->q[c]), wa = type == DP_TYPE_IQ4_XS ? _mm256_abs_epi8(w) : w;
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    __m256i xs = type == DP_TYPE_IQ4_XS ? _mm256_sign_epi8(x[t], w) : x[t];
                    __m256i pr = _mm256_maddubs_epi16(wa, xs);
                    I[t * R + r] = _mm256_add_epi32(I[t * R + r], _mm256_madd_epi16(pr, _mm256_load_si256(&k->sc[c])));
                }
            }
        }
        __m256i Mv[8];
        if (kq_mins(type) || kq_off(type)) {
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                __m256i s = sums16(A->sum16 + (t0 + t) * (n / 16) + b * 16);
#pragma GCC unroll 8
                for (int r = 0; r < R; r++) {
                    __m256i v = _mm256_madd_epi16(s, _mm256_load_si256(&P->b[bl][r0 + r].c));
                    if (kq_mins(type)) Mv[t * R + r] = v;
                    else I[t * R + r] = _mm256_add_epi32(I[t * R + r], v);
                }
            }
        }
        float dx4[4] = {0};
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) dx4[t] = A->d[(t0 + t) * nb + b];
        __m256 dx = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(dx4)), tsel);
        __m256 dw = _mm256_permutevar8x32_ps(_mm256_loadu_ps(&P->d[bl][r0]), rsel);
        y = _mm256_fmadd_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(hsum8(I)), y);
        if (kq_mins(type)) {
            __m256 dm = _mm256_permutevar8x32_ps(_mm256_loadu_ps(&P->dmin[bl][r0]), rsel);
            __m256 f = _mm256_xor_ps(_mm256_mul_ps(dm, dx), _mm256_set1_ps(-0.0f));
            y = _mm256_fmadd_ps(f, _mm256_cvtepi32_ps(hsum8(Mv)), y);
        }
    }
    _mm256_storeu_ps(yv, y);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        if (r0 + i % R < nr) Y[(i / R) * ldy + r0 + i % R] = yv[i];
}

/*
 * One token (decode): eight rows at a time straight from the file's blocks,
 * without the panel. Per row and block the codes of each 32 elements meet
 * the token's 32 codes (vpmaddubsw, exact as in kq_tile) and their two
 * scales (vpmaddwd), the offset or mins take their vpmaddwd on sum16, and
 * hsum8 gives the same exact integers as kq_tile(R = 8, T = 1); the f32 tail
 * is its fma (or two) per block, in block order.
 */
INLINE void kq_one(uint32_t type, const void *W, size_t rb, int n_rows, const struct dp_act_q8 *A, float *Y) {
    int64_t n = A->n_in, nb = n / 256;
    size_t bb = (size_t)dp_quants_block_bytes(type);
    for (int g0 = 0; g0 < n_rows; g0 += 8) {
        int nr = n_rows - g0 < 8 ? n_rows - g0 : 8;
        const uint8_t *rows[8], *next = (const uint8_t *)W + (size_t)(g0 + 8) * rb;
        for (int i = 0; i < 8; i++) rows[i] = (const uint8_t *)W + (size_t)(g0 + (i < nr ? i : nr - 1)) * rb;
        __m256 y = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            /* the next eight rows (contiguous) swept into the cache in step */
            const uint8_t *pf = next + (size_t)b * 8 * bb;
            for (size_t c = 0; c < 8 * bb; c += 64) _mm_prefetch((const char *)pf + c, _MM_HINT_T0);
            const int8_t *xq = A->q + b * 256;
            __m256i s16 = kq_mins(type) || kq_off(type) ? sums16(A->sum16 + b * 16) : _mm256_setzero_si256();
            __m256i I[8], Mv[8];
            float dw[8], dm[8];
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) {
                const uint8_t *p = rows[r] + (size_t)b * bb;
                __m256i S, M;
                kq_scales(type, p, &S, &M);
                __m256i lo = _mm256_permute4x64_epi64(S, 0x44), hi = _mm256_permute4x64_epi64(S, 0xEE);
                __m256i a = _mm256_setzero_si256();
#pragma GCC unroll 8
                for (int c = 0; c < 8; c++) {
                    __m256i w = kq_codes(type, p, c), x = _mm256_loadu_si256((const __m256i *)(xq + 32 * c));
                    __m256i wa = w;
                    if (type == DP_TYPE_IQ4_XS) {
                        wa = _mm256_abs_epi8(w);
                        x = _mm256_sign_epi8(x, w);
                    }
                    __m256i sc = _mm256_shuffle_epi8(c < 4 ? lo : hi, _mm256_loadu_si256((const __m256i *)kq_pick[c % 4]));
                    a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_maddubs_epi16(wa, x), sc));
                }
                if (kq_mins(type)) Mv[r] = _mm256_madd_epi16(s16, M);
                else if (kq_off(type))
                    a = _mm256_add_epi32(
                        a, _mm256_madd_epi16(s16, _mm256_sub_epi16(_mm256_setzero_si256(),
                                                                   _mm256_mullo_epi16(S, _mm256_set1_epi16((short)kq_off(type))))));
                I[r] = a;
                dw[r] = kq_d(type, p);
                dm[r] = kq_dmin(type, p);
            }
            __m256 dx = _mm256_set1_ps(A->d[b]);
            y = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(dw), dx), _mm256_cvtepi32_ps(hsum8(I)), y);
            if (kq_mins(type)) {
                __m256 f = _mm256_xor_ps(_mm256_mul_ps(_mm256_loadu_ps(dm), dx), _mm256_set1_ps(-0.0f));
                y = _mm256_fmadd_ps(f, _mm256_cvtepi32_ps(hsum8(Mv)), y);
            }
        }
        float yv[8];
        _mm256_storeu_ps(yv, y);
        for (int i = 0; i < nr; i++) Y[g0 + i] = yv[i];
    }
}

INLINE void vecdot_q8_k(uint32_t type, const void *W, size_t rb, int n_rows, const struct dp_act_q8 *A, int n_tok,
                        float *Y, int64_t ldy) {
    if (n_tok == 1) {
        kq_one(type, W, rb, n_rows, A, Y);
        return;
    }
    int64_t nb = A->n_in / 256;
    size_t bb = (size_t)dp_quants_block_bytes(type);
    struct kq_panel P;
    for (int g0 = 0; g0 < n_rows; g0 += KQ_ROWS) {
        int nr = n_rows - g0 < KQ_ROWS ? n_rows - g0 : KQ_ROWS, np = nr <= 8 ? 8 : 16; /* rows decoded */
        const uint8_t *base = (const uint8_t *)W + (size_t)g0 * rb, *next = base + (size_t)nr * rb;
        float *y = Y + g0;
        for (int64_t b0 = 0; b0 < nb; b0 += KQ_NB) {
            int nbl = nb - b0 < KQ_NB ? (int)(nb - b0) : KQ_NB;
            for (int bl = 0; bl < nbl; bl++) {
                /* the next rows (contiguous) swept into the cache in step, as in kernels_avx512.c */
                const uint8_t *pf = next + (size_t)(b0 + bl) * KQ_ROWS * bb;
                for (size_t c = 0; c < KQ_ROWS * bb; c += 64) _mm_prefetch((const char *)pf + c, _MM_HINT_T0);
                for (int i = 0; i < np; i++) /* rows from nr on repeat the last row; they are not stored */
                    kq_decode(type, base + (size_t)(i < nr ? i : nr - 1) * rb + (size_t)(b0 + bl) * bb, &P.b[bl][i],
                              &P.d[bl][i], &P.dmin[bl][i]);
            }
            bool acc = b0 > 0;
            int t = 0;
            for (; t + 4 <= n_tok; t += 4)
                for (int r = 0; r < np; r += 2) kq_tile(type, 2, 4, &P, r, nr, nbl, A, b0, t, y + t * ldy, ldy, acc);
            if (n_tok - t >= 2) {
                for (int r = 0; r < np; r += 4) kq_tile(type, 4, 2, &P, r, nr, nbl, A, b0, t, y + t * ldy, ldy, acc);
                t += 2;
            }
            if (n_tok - t >= 1)
                for (int r = 0; r < np; r += 8) kq_tile(type, 8, 1, &P, r, nr, nbl, A, b0, t, y + t * ldy, ldy, acc);
        }
    }
}

#define VECDOT_Q8_K(T, NAME)                                                                                      \
    static void vecdot_q8_##NAME(const void *W, size_t rb, int nr, const struct dp_act_q8 *A, int nt, float *Y,   \
                                 int64_t ldy) {                                                                   \
        vecdot_q8_k(T, W, rb, nr, A, nt, Y, ldy);                                                                 \
    }
VECDOT_Q8_K(DP_TYPE_Q2_K, q2_k)
VECDOT_Q8_K(DP_TYPE_Q3_K, q3_k)
VECDOT_Q8_K(DP_TYPE_Q4_K, q4_k)
VECDOT_Q8_K(DP_TYPE_Q5_K, q5_k)
VECDOT_Q8_K(DP_TYPE_Q6_K, q6_k)
VECDOT_Q8_K(DP_TYPE_IQ4_XS, iq4_xs)

/* roundf: to the nearest integer, halves away from zero (t finite, |t| < 2^23). */
INLINE __m256 round_away(__m256 t) {
    __m256 r = _mm256_round_ps(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC), sign = _mm256_set1_ps(-0.0f);
    __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(t, r)); /* exact */
    __m256 one = _mm256_or_ps(_mm256_and_ps(t, sign), _mm256_set1_ps(1.0f));
    return _mm256_add_ps(r, _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), one));
}

/* The scalar quant_act_block (kernels.c) eight lanes at a time. */
static void quant_act_avx2(const float *x, int64_t n, int32_t off, int8_t *q, float *d, int32_t *bias) {
    const __m256 sign = _mm256_set1_ps(-0.0f), big = _mm256_set1_ps(FLT_MAX);
    for (int64_t b = 0; b < n / 32; b++) {
        __m256 v[4], a[4];
        int finite = 1;
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(x + 32 * b + 8 * i);
            a[i] = _mm256_andnot_ps(sign, v[i]);
            finite &= _mm256_movemask_ps(_mm256_cmp_ps(a[i], big, _CMP_LE_OQ)) == 0xFF;
        }
        if (!finite) {
            memset(q + 32 * b, 0, 32);
            d[b] = NAN;
            bias[b] = 0;
            continue;
        }
        __m256 m = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
        m = _mm256_max_ps(m, _mm256_permute2f128_ps(m, m, 1));
        m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0x4E));
        m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0xB1));
        float amax = _mm256_cvtss_f32(m), dd = amax / 127.0f, id = dd != 0 ? 1.0f / dd : 0.0f;
        __m256 vid = _mm256_set1_ps(id);
        __m256i qi[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) qi[i] = _mm256_cvtps_epi32(round_away(_mm256_mul_ps(v[i], vid)));
        /* to bytes: the packs interleave 128-bit lanes; the permutation puts the dwords back in order */
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(q + 32 * b), p);
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(qi[0], qi[1]), _mm256_add_epi32(qi[2], qi[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
        d[b] = _cvtsh_ss(_cvtss_sh(dd, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        bias[b] = -off * _mm_cvtsi128_si32(s4);
    }
}

static const struct dp_kernel_ops avx2_ops = {
    .name = "avx2",
    .dot = dot_avx2,
    .axpy = axpy_avx2,
    .attend = attend_avx2,
    .dequant = {
        [DP_TYPE_F16] = dequant_f16, [DP_TYPE_BF16] = dequant_bf16,
        [DP_TYPE_Q8_0] = dequant_q8_0, [DP_TYPE_Q4_0] = dequant_q4_0, [DP_TYPE_Q4_1] = dequant_q4_1,
        [DP_TYPE_Q5_0] = dequant_q5_0, [DP_TYPE_Q5_1] = dequant_q5_1, [DP_TYPE_IQ4_NL] = dequant_iq4_nl,
        [DP_TYPE_Q2_K] = dequant_q2_k, [DP_TYPE_Q3_K] = dequant_q3_k, [DP_TYPE_Q4_K] = dequant_q4_k,
        [DP_TYPE_Q5_K] = dequant_q5_k, [DP_TYPE_Q6_K] = dequant_q6_k, [DP_TYPE_IQ4_XS] = dequant_iq4_xs,
    },
    .vecdot = {
        [DP_TYPE_F32] = vecdot_f32, [DP_TYPE_F16] = vecdot_f16, [DP_TYPE_BF16] = vecdot_bf16,
        [DP_TYPE_Q8_0] = vecdot_q8_0, [DP_TYPE_Q4_0] = vecdot_q4_0, [DP_TYPE_Q4_1] = vecdot_q4_1,
        [DP_TYPE_Q5_0] = vecdot_q5_0, [DP_TYPE_Q5_1] = vecdot_q5_1, [DP_TYPE_IQ4_NL] = vecdot_iq4_nl,
        [DP_TYPE_Q2_K] = vecdot_q2_k, [DP_TYPE_Q3_K] = vecdot_q3_k, [DP_TYPE_Q4_K] = vecdot_q4_k,
        [DP_TYPE_Q5_K] = vecdot_q5_k, [DP_TYPE_Q6_K] = vecdot_q6_k, [DP_TYPE_IQ4_XS] = vecdot_iq4_xs,
    },
    .pack = {
        [DP_TYPE_F32] = pack_f32, [DP_TYPE_F16] = pack_f16, [DP_TYPE_BF16] = pack_bf16,
        [DP_TYPE_Q8_0] = pack_q8_0, [DP_TYPE_Q4_0] = pack_q4_0, [DP_TYPE_Q4_1] = pack_q4_1,
        [DP_TYPE_Q5_0] = pack_q5_0, [DP_TYPE_Q5_1] = pack_q5_1, [DP_TYPE_IQ4_NL] = pack_iq4_nl,
        [DP_TYPE_Q2_K] = pack_q2_k, [DP_TYPE_Q3_K] = pack_q3_k, [DP_TYPE_Q4_K] = pack_q4_k,
        [DP_TYPE_Q5_K] = pack_q5_k, [DP_TYPE_Q6_K] = pack_q6_k, [DP_TYPE_IQ4_XS] = pack_iq4_xs,
    },
    .gemm = gemm_avx2,
    .mr = MR, .nr = NR, .nr_step = 2,
    .quant_act = quant_act_avx2,
    .vecdot_q8 = {[DP_TYPE_Q8_0] = vecdot_q8_q8_0, [DP_TYPE_Q4_0] = vecdot_q8_q4_0, [DP_TYPE_Q4_1] = vecdot_q8_q4_1,
                  [DP_TYPE_Q5_0] = vecdot_q8_q5_0, [DP_TYPE_Q5_1] = vecdot_q8_q5_1, [DP_TYPE_IQ4_NL] = vecdot_q8_iq4_nl,
                  [DP_TYPE_Q2_K] = vecdot_q8_q2_k,
                  [DP_TYPE_Q3_K] = vecdot_q8_q3_k, [DP_TYPE_Q4_K] = vecdot_q8_q4_k, [DP_TYPE_Q5_K] = vecdot_q8_q5_k,
                  [DP_TYPE_Q6_K] = vecdot_q8_q6_k, [DP_TYPE_IQ4_XS] = vecdot_q8_iq4_xs},
};

const struct dp_kernel_ops *dp_kernels_avx2(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") || !dp_cpu_has_f16c())
        return NULL;
    return &avx2_ops;
}
