/*
 * quants: decoders, activation roundings and q8-order block dots of GGUF's
 * quantized weight types (the contract and the q8 order: quants.h).
 *
 * Every decoder reads a block the way GGUF lays it out (little-endian f16
 * scales, codes packed as ggml packs them) and writes the values llama.cpp's
 * dequantize_row_* writes, with the same expression per element. The block
 * dots read the same codes as integers; both are written for reading, not
 * speed: the SIMD sets (kernels_avx2.c, kernels_avx512.c) must give their
 * bits.
 *
 * Layouts (bytes, in order):
 *   Q4_1   d f16, m f16, 16 qs: low nibbles elements 0..15, high 16..31
 *   Q5_0   d f16, qh u32 (bit j: 5th bit of element j), 16 qs as Q4_1
 *   Q5_1   d f16, m f16, qh u32, 16 qs
 *   IQ4_NL d f16, 16 qs (table indices, packed as Q4_1)
 *   Q2_K   16 scales (low nibble scale, high nibble min), 64 qs (2 bits), d f16, dmin f16
 *   Q3_K   32 hmask (3rd bit), 64 qs (2 bits), 12 scales (16 x 6 bits), d f16
 *   Q4_K   d f16, dmin f16, 12 scales (8 scales + 8 mins, 6 bits), 128 qs
 *   Q5_K   d f16, dmin f16, 12 scales, 32 qh (5th bit), 128 qs
 *   Q6_K   128 ql (low 4 bits), 64 qh (high 2 bits), 16 int8 scales, d f16
 *   IQ4_XS d f16, scales_h u16 (2 high bits each), 4 scales_l (4 low bits), 128 qs
 */
#include "quants.h"

#include "types.h"

#include <float.h>
#include <math.h>
#include <string.h>

const int8_t dp_quants_iq4_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

static float f16_at(const uint8_t *p) { return dp_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
static uint32_t u32_at(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- codes: element e of a block as the integer its decoder multiplies ---- */

/* Q4_1 / IQ4_NL nibble of element j (0..31) of a 16-byte code array. */
static int nib32(const uint8_t *qs, int j) { return j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4; }

/* Q5_0 / Q5_1 five-bit code of element j (0..31), unsigned. */
static int q5_code(uint32_t qh, const uint8_t *qs, int j) { return nib32(qs, j) | (int)((qh >> j) & 1) << 4; }

/* Q4_K / Q5_K: scale and min of sub-block j (0..7) from the 12 packed bytes. */
static void scale_min_k4(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

/* Q4_K / Q5_K: low four bits of element e (0..255): chunks of 64, low nibbles first. */
static int k4_nib(const uint8_t *qs, int e) {
    const uint8_t *q = qs + (e / 64) * 32;
    int l = e % 32;
    return (e % 64) < 32 ? q[l] & 0xF : q[l] >> 4;
}

/* Q5_K: the fifth bit of element e lives in qh[e % 32], bit e / 32. */
static int q5k_code(const uint8_t *qh, const uint8_t *qs, int e) {
    return k4_nib(qs, e) | ((qh[e % 32] >> (e / 32)) & 1) << 4;
}

/* Q6_K: element e (0..255) as q - 32 (-32..31). */
static int q6k_code(const uint8_t *ql, const uint8_t *qh, int e) {
    int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const uint8_t *L = ql + 64 * h, *H = qh + 32 * h;
    int lo = (k & 1) ? L[l + 32] : L[l];
    lo = k < 2 ? lo & 0xF : lo >> 4;
    int hi = (H[l] >> (2 * k)) & 3;
    return (lo | hi << 4) - 32;
}

/* Q3_K: the 6-bit scale of sub-block i (0..15), minus 32. */
static int q3k_scale(const uint8_t *s, int i) {
    int lo = i < 8 ? s[i] & 0xF : s[i - 8] >> 4;
    int hi = (s[8 + (i & 3)] >> (2 * (i >> 2))) & 3;
    return (lo | hi << 4) - 32;
}

/* Q3_K: element e as its 2 low bits minus 4 unless its hmask bit is set (-4..3). */
static int q3k_code(const uint8_t *hmask, const uint8_t *qs, int e) {
    int h = e / 128, j = (e % 128) / 32, l = e % 32;
    int q = (qs[32 * h + l] >> (2 * j)) & 3;
    return q - ((hmask[l] >> (4 * h + j)) & 1 ? 0 : 4);
}

/* Q2_K: element e's 2-bit code (0..3). */
static int q2k_code(const uint8_t *qs, int e) {
    int h = e / 128, j = (e % 128) / 32, l = e % 32;
    return (qs[32 * h + l] >> (2 * j)) & 3;
}

/* IQ4_XS: the scale of sub-block j (0..7), minus 32. */
static int iq4xs_scale(uint16_t sh, const uint8_t *sl, int j) {
    return (((sl[j / 2] >> (4 * (j % 2))) & 0xF) | ((sh >> (2 * j)) & 3) << 4) - 32;
}

/* IQ4_XS: element e's table index: sub-blocks of 32 packed as Q4_1. */
static int iq4xs_index(const uint8_t *qs, int e) { return nib32(qs + 16 * (e / 32), e % 32); }

/* ---- decoders (llama.cpp's expressions) ---- */

void dp_quants_dequant_q4_1(const void *row, float *out, int64_t n) {
    const uint8_t *p = row;
    for (int64_t b = 0; b < n / 32; b++, p += 20) {
        float d = f16_at(p), m = f16_at(p + 2);
        for (int j = 0; j < 32; j++) out[b * 32 + j] = (float)nib32(p + 4, j) * d + m;
    }
}

void dp_quants_dequant_q5_0(const void *row, float *out, int64_t n) {
    const uint8_t *p = row;
    for (int64_t b = 0; b < n / 32; b++, p += 22) {
        float d = f16_at(p);
        uint32_t qh = u32_at(p + 2);
        for (int j = 0; j < 32; j++) out[b * 32 + j] = (float)(q5_code(qh, p + 6, j) - 16) * d;
    }
}

void dp_quants_dequant_q5_1(const void *row, float *out, int64_t n) {
    const uint8_t *p = row;
    for (int64_t b = 0; b < n / 32; b++, p += 24) {
        float d = f16_at(p), m = f16_at(p + 2);
        uint32_t qh = u32_at(p + 4);
        for (int j = 0; j < 32; j++) out[b * 32 + j] = (float)q5_code(qh, p + 8, j) * d + m;
    }
}

void dp_quants_dequant_iq4_nl(const void *row, float *out, int64_t n) {
    const uint8_t *p = row;
    for (int64_t b = 0; b < n / 32; b++, p += 18) {
        float d = f16_at(p);
        for (int j = 0; j < 32; j++) out[b * 32 + j] = d * (float)dp_quants_iq4_values[nib32(p + 2, j)];
    }
}

void dp_quants_dequant_q2_k(const void *row, float *out, int64_t n) {
    const uint8_t *p = row;
    for (int64_t b = 0; b < n / 256; b++, p += 84, out += 256) {
        const uint8_t *sc = p, *qs = p + 16;
        float d = f16_at(p + 80), dmin = f16_at(p + 82);
        for (int e = 0; e < 256; e++) {
            float dl = d * (float)(sc[e / 16] & 0xF), ml = dmin * (float)(sc[e / 16] >> 4);
            out[e] = dl * (float)q2k_code(qs, e) - ml;
        }
    }
}

void dp_quants_dequant_q3_k(const void *row, float *out, int64_t n) {
    const uint8_t *p = row;
    for (int64_t b = 0; b < n / 256; b++, p += 110, out += 256) {
        const uint8_t *hm = p, *qs = p + 32, *sc = p + 96;
        float d = f16_at(p + 108);
        for (int e = 0; e < 256; e++) out[e] = d * (float)q3k_scale(sc, e / 16) * (float)q3k_code(hm, qs, e);
    }
}

/* Q4_K and Q5_K after their codes q: (d*sc)*q - dmin*m with each sub-block's 6-bit scale and min. */
static void k4_dequant(const uint8_t *p, const int *q, float *out) {
    float d = f16_at(p), dmin = f16_at(p + 2);
    for (int e = 0; e < 256; e++) {
        int sc, m;
        scale_min_k4(p + 4, e / 32, &sc, &m);
        out[e] = d * (float)sc * (float)q[e] - dmin * (float)m;
    }
}

void dp_quants_dequant_q4_k(const void *row, float *out, int64_t n) {
    const uint8_t *p = row;
    int q[256];
    for (int64_t b = 0; b < n / 256; b++, p += 144, out += 256) {
        for (int e = 0; e < 256; e++) q[e] = k4_nib(p + 16, e);
        k4_dequant(p, q, out);
    }
}

void dp_quants_dequant_q5_k(const void *row, float *out, int64_t n) {
    const uint8_t *p = row;
    int q[256];
    for (int64_t b = 0; b < n / 256; b++, p += 176, out += 256) {
        for (int e = 0; e < 256; e++) q[e] = q5k_code(p + 16, p + 48, e);
        k4_dequant(p, q, out);
    }
}

void dp_quants_dequant_q6_k(const void *row, float *out, int64_t n) {
    const uint8_t *p = row;
    for (int64_t b = 0; b < n / 256; b++, p += 210, out += 256) {
        const int8_t *sc = (const int8_t *)(p + 192);
        float d = f16_at(p + 208);
        for (int e = 0; e < 256; e++) out[e] = d * (float)sc[e / 16] * (float)q6k_code(p, p + 128, e);
    }
}

void dp_quants_dequant_iq4_xs(const void *row, float *out, int64_t n) {
    const uint8_t *p = row;
    for (int64_t b = 0; b < n / 256; b++, p += 136, out += 256) {
        float d = f16_at(p);
        uint16_t sh = (uint16_t)(p[2] | p[3] << 8);
        for (int e = 0; e < 256; e++)
            out[e] = d * (float)iq4xs_scale(sh, p + 4, e / 32) * (float)dp_quants_iq4_values[iq4xs_index(p + 8, e)];
    }
}

/* ---- activation roundings ---- */

enum dp_act_kind dp_quants_act_kind(uint32_t type) {
    switch (type) {
    case DP_TYPE_Q8_0: case DP_TYPE_Q4_0: case DP_TYPE_Q5_0: case DP_TYPE_IQ4_NL: return DP_ACT_KIND_Q8_0;
    case DP_TYPE_Q4_1: case DP_TYPE_Q5_1: return DP_ACT_KIND_Q8_1;
    case DP_TYPE_Q2_K: case DP_TYPE_Q3_K: case DP_TYPE_Q4_K: case DP_TYPE_Q5_K: case DP_TYPE_Q6_K:
    case DP_TYPE_IQ4_XS: return DP_ACT_KIND_Q8_K;
    default: return DP_ACT_KIND_NONE;
    }
}

int dp_quants_act_block(enum dp_act_kind kind) { return kind == DP_ACT_KIND_Q8_K ? 256 : 32; }

static bool all_finite(const float *x, int n) {
    for (int j = 0; j < n; j++)
        if (!(fabsf(x[j]) <= FLT_MAX)) return false;
    return true;
}

void dp_quants_act_q8_1(const float *x, int64_t n, int8_t *q, float *d, float *s) {
    for (int64_t b = 0; b < n / 32; b++, x += 32, q += 32) {
        if (!all_finite(x, 32)) {
            memset(q, 0, 32);
            d[b] = s[b] = NAN;
            continue;
        }
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float dd = amax / 127.0f, id = dd != 0 ? 1.0f / dd : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            q[j] = (int8_t)roundf(x[j] * id);
            sum += q[j];
        }
        d[b] = dp_f16_to_f32(dp_f32_to_f16(dd));
        s[b] = dp_f16_to_f32(dp_f32_to_f16((float)sum * dd));
    }
}

void dp_quants_act_q8_k(const float *x, int64_t n, int8_t *q, float *d, int32_t *sum16) {
    for (int64_t b = 0; b < n / 256; b++, x += 256, q += 256, sum16 += 16) {
        bool finite = all_finite(x, 256);
        float amax = 0, max = 0;
        for (int j = 0; j < 256 && finite; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        if (!finite || amax == 0) {
            memset(q, 0, 256);
            memset(sum16, 0, 16 * sizeof *sum16);
            d[b] = finite ? 0.0f : NAN;
            continue;
        }
        float iscale = -127.0f / max;
        for (int j = 0; j < 256; j++) {
            /* llama.cpp's nearest_int: round to nearest, ties to even (|iscale*x| <= 127.5) */
            int v = (int)rintf(iscale * x[j]);
            q[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < 16; j++) {
            int32_t sum = 0;
            for (int i = 0; i < 16; i++) sum += q[16 * j + i];
            sum16[j] = sum;
        }
        d[b] = 1.0f / iscale;
    }
}

/* ---- block dots in the q8 order ---- */

static int32_t dot_codes(const int *qw, const int8_t *qx, int n) {
    int32_t s = 0;
    for (int j = 0; j < n; j++) s += qw[j] * qx[j];
    return s;
}

static float blk_q8_0(const uint8_t *w, const int8_t *qx, float dx, float sx, const int32_t *sum16, float y) {
    (void)sx, (void)sum16;
    int qw[32];
    for (int j = 0; j < 32; j++) qw[j] = (int8_t)w[2 + j];
    return fmaf(f16_at(w) * dx, (float)dot_codes(qw, qx, 32), y);
}

static float blk_q4_0(const uint8_t *w, const int8_t *qx, float dx, float sx, const int32_t *sum16, float y) {
    (void)sx, (void)sum16;
    int qw[32];
    for (int j = 0; j < 32; j++) qw[j] = nib32(w + 2, j) - 8;
    return fmaf(f16_at(w) * dx, (float)dot_codes(qw, qx, 32), y);
}

static float blk_q5_0(const uint8_t *w, const int8_t *qx, float dx, float sx, const int32_t *sum16, float y) {
    (void)sx, (void)sum16;
    int qw[32];
    uint32_t qh = u32_at(w + 2);
    for (int j = 0; j < 32; j++) qw[j] = q5_code(qh, w + 6, j) - 16;
    return fmaf(f16_at(w) * dx, (float)dot_codes(qw, qx, 32), y);
}

static float blk_iq4_nl(const uint8_t *w, const int8_t *qx, float dx, float sx, const int32_t *sum16, float y) {
    (void)sx, (void)sum16;
    int qw[32];
    for (int j = 0; j < 32; j++) qw[j] = dp_quants_iq4_values[nib32(w + 2, j)];
    return fmaf(f16_at(w) * dx, (float)dot_codes(qw, qx, 32), y);
}

static float blk_q4_1(const uint8_t *w, const int8_t *qx, float dx, float sx, const int32_t *sum16, float y) {
    (void)sum16;
    int qw[32];
    for (int j = 0; j < 32; j++) qw[j] = nib32(w + 4, j);
    y = fmaf(f16_at(w) * dx, (float)dot_codes(qw, qx, 32), y);
    return fmaf(f16_at(w + 2), sx, y);
}

static float blk_q5_1(const uint8_t *w, const int8_t *qx, float dx, float sx, const int32_t *sum16, float y) {
    (void)sum16;
    int qw[32];
    uint32_t qh = u32_at(w + 4);
    for (int j = 0; j < 32; j++) qw[j] = q5_code(qh, w + 8, j);
    y = fmaf(f16_at(w) * dx, (float)dot_codes(qw, qx, 32), y);
    return fmaf(f16_at(w + 2), sx, y);
}

/* The K-quant tail: y = fma(d*dx, isc, y), then, with mins, fma(-(dmin*dx), im, y). */
static float k_tail(float d, float dmin, float dx, int32_t isc, int32_t im, bool mins, float y) {
    y = fmaf(d * dx, (float)isc, y);
    return mins ? fmaf(-(dmin * dx), (float)im, y) : y;
}

static float blk_q2_k(const uint8_t *w, const int8_t *qx, float dx, float sx, const int32_t *sum16, float y) {
    (void)sx;
    int qw[256];
    for (int e = 0; e < 256; e++) qw[e] = q2k_code(w + 16, e);
    int32_t isc = 0, im = 0;
    for (int j = 0; j < 16; j++) {
        isc += (w[j] & 0xF) * dot_codes(qw + 16 * j, qx + 16 * j, 16);
        im += (w[j] >> 4) * sum16[j];
    }
    return k_tail(f16_at(w + 80), f16_at(w + 82), dx, isc, im, true, y);
}

static float blk_q3_k(const uint8_t *w, const int8_t *qx, float dx, float sx, const int32_t *sum16, float y) {
    (void)sx, (void)sum16;
    int qw[256];
    for (int e = 0; e < 256; e++) qw[e] = q3k_code(w, w + 32, e);
    int32_t isc = 0;
    for (int j = 0; j < 16; j++) isc += q3k_scale(w + 96, j) * dot_codes(qw + 16 * j, qx + 16 * j, 16);
    return k_tail(f16_at(w + 108), 0, dx, isc, 0, false, y);
}

/* Q4_K and Q5_K after their codes: 8 sub-blocks of 32 with 6-bit scales and mins. */
static float k4_tail(const uint8_t *w, const int *qw, const int8_t *qx, float dx, const int32_t *sum16, float y) {
    int32_t isc = 0, im = 0;
    for (int j = 0; j < 8; j++) {
        int sc, m;
        scale_min_k4(w + 4, j, &sc, &m);
        isc += sc * dot_codes(qw + 32 * j, qx + 32 * j, 32);
        im += m * (sum16[2 * j] + sum16[2 * j + 1]);
    }
    return k_tail(f16_at(w), f16_at(w + 2), dx, isc, im, true, y);
}

static float blk_q4_k(const uint8_t *w, const int8_t *qx, float dx, float sx, const int32_t *sum16, float y) {
    (void)sx;
    int qw[256];
    for (int e = 0; e < 256; e++) qw[e] = k4_nib(w + 16, e);
    return k4_tail(w, qw, qx, dx, sum16, y);
}

static float blk_q5_k(const uint8_t *w, const int8_t *qx, float dx, float sx, const int32_t *sum16, float y) {
    (void)sx;
    int qw[256];
    for (int e = 0; e < 256; e++) qw[e] = q5k_code(w + 16, w + 48, e);
    return k4_tail(w, qw, qx, dx, sum16, y);
}

static float blk_q6_k(const uint8_t *w, const int8_t *qx, float dx, float sx, const int32_t *sum16, float y) {
    (void)sx, (void)sum16;
    int qw[256];
    for (int e = 0; e < 256; e++) qw[e] = q6k_code(w, w + 128, e);
    const int8_t *sc = (const int8_t *)(w + 192);
    int32_t isc = 0;
    for (int j = 0; j < 16; j++) isc += sc[j] * dot_codes(qw + 16 * j, qx + 16 * j, 16);
    return k_tail(f16_at(w + 208), 0, dx, isc, 0, false, y);
}

static float blk_iq4_xs(const uint8_t *w, const int8_t *qx, float dx, float sx, const int32_t *sum16, float y) {
    (void)sx, (void)sum16;
    int qw[256];
    uint16_t sh = (uint16_t)(w[2] | w[3] << 8);
    for (int e = 0; e < 256; e++) qw[e] = dp_quants_iq4_values[iq4xs_index(w + 8, e)];
    int32_t isc = 0;
    for (int j = 0; j < 8; j++) isc += iq4xs_scale(sh, w + 4, j) * dot_codes(qw + 32 * j, qx + 32 * j, 32);
    return k_tail(f16_at(w), 0, dx, isc, 0, false, y);
}

dp_quants_q8_block_fn dp_quants_q8_block(uint32_t type) {
    switch (type) {
    case DP_TYPE_Q8_0: return blk_q8_0;
    case DP_TYPE_Q4_0: return blk_q4_0;
    case DP_TYPE_Q5_0: return blk_q5_0;
    case DP_TYPE_IQ4_NL: return blk_iq4_nl;
    case DP_TYPE_Q4_1: return blk_q4_1;
    case DP_TYPE_Q5_1: return blk_q5_1;
    case DP_TYPE_Q2_K: return blk_q2_k;
    case DP_TYPE_Q3_K: return blk_q3_k;
    case DP_TYPE_Q4_K: return blk_q4_k;
    case DP_TYPE_Q5_K: return blk_q5_k;
    case DP_TYPE_Q6_K: return blk_q6_k;
    case DP_TYPE_IQ4_XS: return blk_iq4_xs;
    default: return NULL;
    }
}
