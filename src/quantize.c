/*
 * quantize: f32 rows to GGUF weight types, rounding exactly as llama.cpp's
 * reference quantizers do without an importance matrix (the bytes equal
 * llama-quantize's), for the tensors an export creates or modifies and for
 * synthetic models.
 *
 * Exactness rests on three things. The arithmetic is written in the same
 * order as the reference (float, evaluated left to right, no contraction:
 * the build is -std=c11, where GCC does not fuse multiply-adds), halves are
 * rounded to nearest even, and `nearest_int` is the magic-number trick
 * (adding 1.5*2^23 makes the FPU round to nearest even, the low mantissa bits
 * are the integer), which differs from lrintf only in how it is written.
 *
 * The layouts are GGUF's (little endian):
 *   Q4_1  {f16 d, f16 m, 16 B nibbles}                        32 per block
 *   Q5_0  {f16 d, u32 qh, 16 B}   Q5_1 {f16 d, f16 m, u32 qh, 16 B}
 *   Q2_K  {16 B scales, 64 B qs, f16 d, f16 dmin}              256 per block
 *   Q3_K  {32 B hmask, 64 B qs, 12 B scales, f16 d}
 *   Q4_K  {f16 d, f16 dmin, 12 B scales, 128 B qs}
 *   Q5_K  {f16 d, f16 dmin, 12 B scales, 32 B qh, 128 B qs}
 *   Q6_K  {128 B ql, 64 B qh, 16 B int8 scales, f16 d}
 *   IQ4_NL {f16 d, 16 B}  IQ4_XS {f16 d, u16 scales_h, 4 B scales_l, 128 B}
 */
#include "quantize.h"

#include <float.h>
#include <math.h>
#include <string.h>
#include <strings.h>

/*
 * A fused a*b+c changes the bytes (tried: hundreds of K-quant blocks differ).
 * GCC does not fuse in ISO C mode (the Makefile's -std=c11); clang would,
 * within a statement, on an FMA target unless told.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define QK 256                /* elements per K-quant super-block */
#define GROUP_MAX_EPS 1e-15f  /* below this a group counts as all zero */

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i);
}

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/*
 * The integer nearest to f (ties to even) for |f| <= 2^22 - 1, computed as
 * llama.cpp's nearest_int: f + 1.5*2^23 rounds in the FPU, and the low 23
 * mantissa bits minus 2^22 are the result.
 */
static int nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* Q8_0: d = amax/127, q = round(x/d) (ties away from zero). */
static void q8_0_block(const float *v, uint8_t *p) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(v[j]));
    float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
    put16(p, dp_f32_to_f16(d));
    for (int j = 0; j < 32; j++) p[2 + j] = (uint8_t)(int8_t)roundf(v[j] * id);
}

/* The element of largest magnitude of v[0..n) (the first one on ties), signed. */
static float signed_absmax(const float *v, int n) {
    float amax = 0, max = 0;
    for (int j = 0; j < n; j++)
        if (fabsf(v[j]) > amax) {
            amax = fabsf(v[j]);
            max = v[j];
        }
    return max;
}

/* Q4_0: d = max/-8 (max the signed extreme), q = min(15, trunc(x/d + 8.5)). */
static void q4_0_block(const float *v, uint8_t *p) {
    float d = signed_absmax(v, 32) / -8.0f, id = d ? 1.0f / d : 0.0f;
    put16(p, dp_f32_to_f16(d));
    for (int j = 0; j < 16; j++) {
        int q0 = imin(15, (int8_t)(v[j] * id + 8.5f)), q1 = imin(15, (int8_t)(v[j + 16] * id + 8.5f));
        p[2 + j] = (uint8_t)(q0 | q1 << 4);
    }
}

/* Lowest and highest of v[0..32). */
static void min_max32(const float *v, float *mn, float *mx) {
    *mn = FLT_MAX;
    *mx = -FLT_MAX;
    for (int j = 0; j < 32; j++) {
        if (v[j] < *mn) *mn = v[j];
        if (v[j] > *mx) *mx = v[j];
    }
}

/* Q4_1: d = (max-min)/15, m = min, q = min(15, trunc((x-min)/d + 0.5)). */
static void q4_1_block(const float *v, uint8_t *p) {
    float mn, mx;
    min_max32(v, &mn, &mx);
    float d = (mx - mn) / 15, id = d ? 1.0f / d : 0.0f;
    put16(p, dp_f32_to_f16(d));
    put16(p + 2, dp_f32_to_f16(mn));
    for (int j = 0; j < 16; j++) {
        int q0 = imin(15, (int8_t)((v[j] - mn) * id + 0.5f));
        int q1 = imin(15, (int8_t)((v[j + 16] - mn) * id + 0.5f));
        p[4 + j] = (uint8_t)(q0 | q1 << 4);
    }
}

/* Low nibbles of q[0..32) into qs (q[j] | q[j+16] << 4) and fifth bits into qh (bit j). */
static void pack5(const int *q, uint8_t *qs, uint8_t *qh) {
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
        h |= (uint32_t)((q[j] >> 4) & 1) << j;
        h |= (uint32_t)((q[j + 16] >> 4) & 1) << (j + 16);
    }
    put32(qh, h);
}

/* Q5_0: d = max/-16, q = min(31, trunc(x/d + 16.5)). */
static void q5_0_block(const float *v, uint8_t *p) {
    float d = signed_absmax(v, 32) / -16.0f, id = d ? 1.0f / d : 0.0f;
    int q[32];
    for (int j = 0; j < 32; j++) q[j] = imin(31, (int8_t)(v[j] * id + 16.5f));
    put16(p, dp_f32_to_f16(d));
    pack5(q, p + 6, p + 2);
}

/* Q5_1: d = (max-min)/31, m = min, q = trunc((x-min)/d + 0.5) (no clamp in the reference). */
static void q5_1_block(const float *v, uint8_t *p) {
    float mn, mx;
    min_max32(v, &mn, &mx);
    float d = (mx - mn) / 31, id = d ? 1.0f / d : 0.0f;
    int q[32];
    for (int j = 0; j < 32; j++) q[j] = (uint8_t)((v[j] - mn) * id + 0.5f);
    put16(p, dp_f32_to_f16(d));
    put16(p + 2, dp_f32_to_f16(mn));
    pack5(q, p + 8, p + 4);
}

/*
 * llama.cpp's make_qx_quants without weights: signed levels L in [0, 2*nmax)
 * for a group of n, and the scale. rmse_type 1 weighs errors by x^2 and tries
 * 18 scales around -nmax/max, keeping the one of least weighted error
 * (largest sum(wxl)^2 / sum(wl^2)).
 */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L, int rmse_type) {
    float max = signed_absmax(x, n);
    if (fabsf(max) < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    if (rmse_type == 0) {
        for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i]))));
        return 1 / iscale;
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i]))));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/*
 * llama.cpp's make_q3_quants with do_rmse: levels l in [-nmax, nmax) from
 * -nmax/max, then up to 5 sweeps moving single levels while that lowers the
 * x^2-weighted error; L gets l + nmax, the result is the scale.
 */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = signed_absmax(x, n);
    if (fabsf(max) < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = imax(-nmax, imin(nmax - 1, nearest_int(x[i] * sl2 / slx)));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return sumlx / suml2;
}

/*
 * llama.cpp's make_qkx2_quants: unsigned levels L in [0, nmax] with a scale
 * (returned) and an offset (-*the_min) for a group of n under weights w. It
 * starts from the min..max grid, then tries nstep+1 grids
 * (rmin + rdelta*is + nmax)/(max-min), solving the weighted least squares
 * for scale and offset each time, and keeps the one of least weighted
 * absolute (use_mad) or squared error.
 */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                              float rmin, float rdelta, int nstep, bool use_mad) {
    uint8_t Laux[32];
    float min = x[0], max = x[0];
    float sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_mad = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_mad += w[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float mad = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                mad += w[i] * diff;
            }
            if (mad < best_mad) {
                memcpy(L, Laux, (size_t)n);
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Scale and min j (of 8) of a Q4_K/Q5_K scale array: 6 bits each, packed in 12 bytes. */
static void scale_min_k4(int j, const uint8_t *q, int *d, int *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/*
 * The shared first half of Q4_K and Q5_K: 8 groups of 32 each fitted by
 * make_qkx2_quants (weights sqrt(mean x^2) + |x|), their scales and mins
 * quantized to 6 bits against the largest (stored as d, dmin, 12 scale
 * bytes), then every level recomputed from the stored scales:
 * L = clamp(round((x + dmin*m)/(d*s)), 0, nmax).
 */
static void qk_scales_mins(const float *x, int nmax, float rmin, int nstep, uint8_t *L, uint8_t *dd,
                           uint8_t *sc12) {
    float w[32], mins[8], scales[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *g = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += g[l] * g[l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(g[l]);
        scales[j] = make_qkx2_quants(32, nmax, g, w, L + 32 * j, &mins[j], rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(sc12, 0, 12);
    for (int j = 0; j < 8; j++) {
        int ls = imin(63, (uint8_t)nearest_int(inv_scale * scales[j]));
        int lm = imin(63, (uint8_t)nearest_int(inv_min * mins[j]));
        if (j < 4) {
            sc12[j] = (uint8_t)ls;
            sc12[j + 4] = (uint8_t)lm;
        } else {
            sc12[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            sc12[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sc12[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    uint16_t hd = dp_f32_to_f16(max_scale / 63.f), hm = dp_f32_to_f16(max_min / 63.f);
    put16(dd, hd);
    put16(dd + 2, hm);
    for (int j = 0; j < 8; j++) {
        int s, m;
        scale_min_k4(j, sc12, &s, &m);
        float d = dp_f16_to_f32(hd) * s;
        if (!d) continue;
        float dm = dp_f16_to_f32(hm) * m;
        for (int i = 0; i < 32; i++) L[32 * j + i] = (uint8_t)imax(0, imin(nmax, nearest_int((x[32 * j + i] + dm) / d)));
    }
}

/* Q4_K: 8 groups of 32 with 6-bit scales and mins, 4-bit levels; nibbles of 64 at a time. */
static void q4_k_block(const float *x, uint8_t *p) {
    uint8_t L[QK];
    qk_scales_mins(x, 15, -1.f, 20, L, p, p + 4);
    uint8_t *q = p + 16;
    for (int j = 0; j < QK; j += 64, q += 32)
        for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
}

/* Q5_K: as Q4_K with 5-bit levels; the fifth bits of 64 at a time go to two bit planes of qh. */
static void q5_k_block(const float *x, uint8_t *p) {
    uint8_t L[QK];
    qk_scales_mins(x, 31, -0.5f, 15, L, p, p + 4);
    uint8_t *qh = p + 16, *ql = p + 48;
    memset(qh, 0, 32);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < QK; n += 64, ql += 32) {
        for (int j = 0; j < 32; j++) {
            int l1 = L[n + j], l2 = L[n + j + 32];
            if (l1 > 15) {
                l1 -= 16;
                qh[j] |= m1;
            }
            if (l2 > 15) {
                l2 -= 16;
                qh[j] |= m2;
            }
            ql[j] = (uint8_t)(l1 | (l2 << 4));
        }
        m1 = (uint8_t)(m1 << 2);
        m2 = (uint8_t)(m2 << 2);
    }
}

/*
 * Q6_K: 16 groups of 16 fitted by make_qx_quants(nmax 32), int8 group scales
 * against the largest (d = max_scale/-128), 6-bit levels recomputed from the
 * stored scales; low nibbles in ql, high 2 bits in qh, 128 at a time.
 */
static void q6_k_block(const float *x, uint8_t *p) {
    int8_t L[QK];
    float scales[16], max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ib++) {
        scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1);
        if (fabsf(scales[ib]) > max_abs_scale) {
            max_abs_scale = fabsf(scales[ib]);
            max_scale = scales[ib];
        }
    }
    memset(p, 0, 210);
    if (max_abs_scale < GROUP_MAX_EPS) return; /* all zero, d = 0 */
    int8_t *sc = (int8_t *)(p + 192);
    float iscale = -128.f / max_scale;
    uint16_t hd = dp_f32_to_f16(1 / iscale);
    put16(p + 208, hd);
    for (int ib = 0; ib < 16; ib++) sc[ib] = (int8_t)imin(127, nearest_int(iscale * scales[ib]));
    for (int j = 0; j < 16; j++) {
        float d = dp_f16_to_f32(hd) * sc[j];
        if (!d) continue;
        for (int i = 0; i < 16; i++) L[16 * j + i] = (int8_t)(imax(-32, imin(31, nearest_int(x[16 * j + i] / d))) + 32);
    }
    uint8_t *ql = p, *qh = p + 128;
    for (int j = 0; j < QK; j += 128, ql += 64, qh += 32)
        for (int l = 0; l < 32; l++) {
            int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
            ql[l] = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
            ql[l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
            qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
        }
}

/* 2-bit levels L[0..256) into 64 bytes: four 32-element planes per 128. */
static void pack2(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

/*
 * Q2_K: 16 groups of 16 fitted by make_qkx2_quants (nmax 3, weights |x|,
 * absolute error), 4-bit scales and mins against the largest (d, dmin),
 * levels recomputed from the stored scales.
 */
static void q2_k_block(const float *x, uint8_t *p) {
    uint8_t L[QK], *sc = p, *qs = p + 16;
    float w[16], mins[16], scales[16], max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; j++) {
        for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
        scales[j] = make_qkx2_quants(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    uint16_t hd = 0, hm = 0;
    memset(sc, 0, 16);
    if (max_scale > 0) {
        float iscale = 15.f / max_scale;
        for (int j = 0; j < 16; j++) sc[j] = (uint8_t)nearest_int(iscale * scales[j]);
        hd = dp_f32_to_f16(max_scale / 15.f);
    }
    if (max_min > 0) {
        float iscale = 15.f / max_min;
        for (int j = 0; j < 16; j++) sc[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
        hm = dp_f32_to_f16(max_min / 15.f);
    }
    put16(p + 80, hd);
    put16(p + 82, hm);
    for (int j = 0; j < 16; j++) {
        float d = dp_f16_to_f32(hd) * (sc[j] & 0xF);
        if (!d) continue;
        float dm = dp_f16_to_f32(hm) * (sc[j] >> 4);
        for (int i = 0; i < 16; i++) L[16 * j + i] = (uint8_t)imax(0, imin(3, nearest_int((x[16 * j + i] + dm) / d)));
    }
    pack2(L, qs);
}

/*
 * Q3_K: 16 groups of 16 fitted by make_q3_quants (nmax 4), 6-bit signed
 * scales against the largest (d = max_scale/-32; low nibbles in 8 bytes,
 * high 2 bits in 4), 3-bit levels recomputed from the stored scales; the
 * third bit of element j goes to hmask[j % 32] bit j / 32.
 */
static void q3_k_block(const float *x, uint8_t *p) {
    int8_t L[QK];
    uint8_t *hmask = p, *qs = p + 32, *sc = p + 96;
    float scales[16], max_scale = 0, amax = 0;
    for (int j = 0; j < 16; j++) {
        scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
        if (fabsf(scales[j]) > amax) {
            amax = fabsf(scales[j]);
            max_scale = scales[j];
        }
    }
    memset(sc, 0, 12);
    uint16_t hd = 0;
    if (max_scale) {
        float iscale = -32.f / max_scale;
        for (int j = 0; j < 16; j++) {
            int l = imax(-32, imin(31, (int8_t)nearest_int(iscale * scales[j]))) + 32;
            if (j < 8) sc[j] = (uint8_t)(l & 0xF);
            else sc[j - 8] |= (uint8_t)((l & 0xF) << 4);
            sc[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
        }
        hd = dp_f32_to_f16(1 / iscale);
    }
    put16(p + 108, hd);
    for (int j = 0; j < 16; j++) {
        int s = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
        s = (s | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
        float d = dp_f16_to_f32(hd) * s;
        if (!d) continue;
        for (int i = 0; i < 16; i++) L[16 * j + i] = (int8_t)(imax(-4, imin(3, nearest_int(x[16 * j + i] / d))) + 4);
    }
    memset(hmask, 0, 32);
    uint8_t L2[QK];
    for (int j = 0; j < QK; j++) {
        int l = L[j];
        if (l > 3) {
            hmask[j % 32] |= (uint8_t)(1u << (j / 32));
            l -= 4;
        }
        L2[j] = (uint8_t)l;
    }
    pack2(L2, qs);
}

/* The non-linear 4-bit grid of IQ4_NL and IQ4_XS. */
static const int8_t iq4_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* Index of the grid value nearest x (the lower one on ties), by bisection as llama.cpp's best_index_int8. */
static int iq4_index(float x) {
    const int8_t *val = iq4_values;
    if (x <= val[0]) return 0;
    if (x >= val[15]) return 15;
    int ml = 0, mu = 15;
    while (mu - ml > 1) {
        int mav = (ml + mu) / 2;
        if (x < val[mav]) mu = mav;
        else ml = mav;
    }
    return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

/*
 * The scale of one group of 32 on the IQ4 grid, as llama.cpp's
 * quantize_row_iq4_nl_impl without weights (errors weighed by x^2, ntry 7):
 * from d = -max/-127, 15 trial scales (itry - 127)/max, the least-squares
 * scale of the best. L gets the levels of the first trial; 0 for an all-zero group.
 */
static float iq4_group_scale(const float *xb, uint8_t *L) {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++)
        if (fabsf(xb[j]) > amax) {
            amax = fabsf(xb[j]);
            max = xb[j];
        }
    if (amax < GROUP_MAX_EPS) return 0;
    const int ntry = 7;
    float d = -max / iq4_values[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; j++) {
        int l = iq4_index(id * xb[j]);
        L[j] = (uint8_t)l;
        float q = iq4_values[l], w = xb[j] * xb[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
    }
    d = sumqx / sumq2;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; itry++) {
        id = (itry + iq4_values[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < 32; j++) {
            float q = iq4_values[iq4_index(id * xb[j])], w = xb[j] * xb[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

/* Levels L[0..32) (grid indices) as IQ4 nibbles: q[j] = L[j] | L[j+16] << 4. */
static void iq4_pack(const uint8_t *L, uint8_t *q) {
    for (int j = 0; j < 16; j++) q[j] = (uint8_t)(L[j] | (L[16 + j] << 4));
}

/* IQ4_NL: one group of 32, its f16 scale, levels the nearest grid points to x/d. */
static void iq4_nl_block(const float *x, uint8_t *p) {
    uint8_t L[32];
    float d = iq4_group_scale(x, L);
    put16(p, dp_f32_to_f16(d));
    float id = d ? 1 / d : 0;
    for (int j = 0; j < 32; j++) L[j] = (uint8_t)iq4_index(id * x[j]);
    iq4_pack(L, p + 2);
}

/*
 * IQ4_XS: 8 groups of 32 scaled as in IQ4_NL, their scales quantized to 6
 * bits against the largest (d = max_scale/-32; low nibbles in scales_l, high
 * 2 bits in scales_h), levels recomputed from the stored group scales.
 */
static void iq4_xs_block(const float *x, uint8_t *p) {
    uint8_t L[QK];
    float scales[8], max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < 8; ib++) {
        scales[ib] = iq4_group_scale(x + 32 * ib, L + 32 * ib);
        if (fabsf(scales[ib]) > amax_scale) {
            amax_scale = fabsf(scales[ib]);
            max_scale = scales[ib];
        }
    }
    uint8_t *sl = p + 4;
    uint16_t sh = 0;
    memset(sl, 0, 4);
    float d = -max_scale / 32;
    put16(p, dp_f32_to_f16(d));
    float id = d ? 1 / d : 0.f;
    for (int ib = 0; ib < 8; ib++) {
        int l = imax(-32, imin(31, nearest_int(id * scales[ib])));
        float dl = d * l, idl = dl ? 1 / dl : 0.f;
        for (int j = 0; j < 32; j++) L[32 * ib + j] = (uint8_t)iq4_index(idl * x[32 * ib + j]);
        l += 32;
        sl[ib / 2] |= (uint8_t)((l & 0xF) << (4 * (ib % 2)));
        sh |= (uint16_t)((l >> 4) << (2 * ib));
    }
    put16(p + 2, sh);
    for (int i = 0; i < 8; i++) iq4_pack(L + 32 * i, p + 8 + 16 * i);
}

/* The block quantizer of each type this file writes (F32/F16/BF16 are handled element-wise). */
static void (*const block_fn[DP_TYPE_COUNT])(const float *, uint8_t *) = {
    [DP_TYPE_Q4_0] = q4_0_block, [DP_TYPE_Q4_1] = q4_1_block, [DP_TYPE_Q5_0] = q5_0_block,
    [DP_TYPE_Q5_1] = q5_1_block, [DP_TYPE_Q8_0] = q8_0_block, [DP_TYPE_Q2_K] = q2_k_block,
    [DP_TYPE_Q3_K] = q3_k_block, [DP_TYPE_Q4_K] = q4_k_block, [DP_TYPE_Q5_K] = q5_k_block,
    [DP_TYPE_Q6_K] = q6_k_block, [DP_TYPE_IQ4_NL] = iq4_nl_block, [DP_TYPE_IQ4_XS] = iq4_xs_block,
};

bool dp_quantize_supported(uint32_t type) {
    return type == DP_TYPE_F32 || type == DP_TYPE_F16 || type == DP_TYPE_BF16 ||
           (type < DP_TYPE_COUNT && block_fn[type]);
}

dp_status dp_quantize_row(uint32_t type, const float *x, void *row, int64_t n) {
    uint8_t *p = row;
    switch (type) {
    case DP_TYPE_F32: memcpy(row, x, (size_t)n * sizeof *x); return DP_OK;
    case DP_TYPE_F16:
        for (int64_t i = 0; i < n; i++) put16(p + 2 * i, dp_f32_to_f16(x[i]));
        return DP_OK;
    case DP_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) put16(p + 2 * i, dp_f32_to_bf16(x[i]));
        return DP_OK;
    default: break;
    }
    if (!dp_quantize_supported(type))
        return dp_fail(DP_ERR_UNSUPPORTED, "quantization to %s is not supported", dp_type_name(type));
    const struct dp_type_traits *t = dp_type_traits(type);
    if (n < 0 || n % t->block_size)
        return dp_fail(DP_ERR_ARG, "cannot quantize %lld values to %s: not a multiple of %d", (long long)n,
                       t->name, t->block_size);
    for (int64_t b = 0; b < n / t->block_size; b++) block_fn[type](x + b * t->block_size, p + b * t->block_bytes);
    return DP_OK;
}

uint32_t dp_quantize_fallback(uint32_t type, int64_t n_in) {
    const struct dp_type_traits *t = dp_type_traits(type);
    if (t && n_in % t->block_size == 0) return type;
    uint32_t f = DP_TYPE_F16;
    switch (type) {
    case DP_TYPE_Q2_K: case DP_TYPE_Q3_K: case DP_TYPE_IQ4_XS: f = DP_TYPE_IQ4_NL; break;
    case DP_TYPE_Q4_K: f = DP_TYPE_Q5_0; break;
    case DP_TYPE_Q5_K: f = DP_TYPE_Q5_1; break;
    case DP_TYPE_Q6_K: f = DP_TYPE_Q8_0; break;
    default: break;
    }
    return n_in % dp_type_traits(f)->block_size == 0 ? f : DP_TYPE_F16;
}

/* ---- llama-quantize's preset mixes ---- */

static const struct {
    const char *name;
    uint32_t base;
} mixes[DP_MIX_COUNT] = {
    [DP_MIX_Q2_K] = {"Q2_K_MIX", DP_TYPE_Q2_K},   [DP_MIX_Q3_K_S] = {"Q3_K_S", DP_TYPE_Q3_K},
    [DP_MIX_Q3_K_M] = {"Q3_K_M", DP_TYPE_Q3_K},   [DP_MIX_Q3_K_L] = {"Q3_K_L", DP_TYPE_Q3_K},
    [DP_MIX_Q4_K_S] = {"Q4_K_S", DP_TYPE_Q4_K},   [DP_MIX_Q4_K_M] = {"Q4_K_M", DP_TYPE_Q4_K},
    [DP_MIX_Q5_K_S] = {"Q5_K_S", DP_TYPE_Q5_K},   [DP_MIX_Q5_K_M] = {"Q5_K_M", DP_TYPE_Q5_K},
};

int dp_quantize_mix_from_name(const char *name) {
    for (int i = 0; i < DP_MIX_COUNT; i++)
        if (!strcasecmp(mixes[i].name, name)) return i;
    return DP_MIX_NONE;
}

const char *dp_quantize_mix_name(int mix) { return mix >= 0 && mix < DP_MIX_COUNT ? mixes[mix].name : "none"; }

/* llama.cpp's use_more_bits: the first and last eighth of the layers and every third one between. */
static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static bool has(const char *name, const char *part) { return strstr(name, part) != NULL; }

uint32_t dp_quantize_mix_type(int mix, const char *name, int layer, int n_layers, int n_gqa, int64_t n_in,
                              bool has_output) {
    DP_ASSERT(mix >= 0 && mix < DP_MIX_COUNT);
    uint32_t t = mixes[mix].base;
    int i = layer, n = n_layers;
    if (!strcmp(name, "output.weight") || (!has_output && !strcmp(name, "token_embd.weight"))) {
        /* the head: Q6_K, or Q8_0 when its rows are not whole super-blocks */
        t = n_in % QK ? DP_TYPE_Q8_0 : DP_TYPE_Q6_K;
    } else if (!strcmp(name, "token_embd.weight")) {
        /* the base type */
    } else if (has(name, "attn_v.weight")) {
        switch (mix) {
        case DP_MIX_Q2_K: t = n_gqa >= 4 ? DP_TYPE_Q4_K : DP_TYPE_Q3_K; break;
        case DP_MIX_Q3_K_M: t = i < 2 ? DP_TYPE_Q5_K : DP_TYPE_Q4_K; break;
        case DP_MIX_Q3_K_L: t = DP_TYPE_Q5_K; break;
        case DP_MIX_Q4_K_M: case DP_MIX_Q5_K_M: if (use_more_bits(i, n)) t = DP_TYPE_Q6_K; break;
        case DP_MIX_Q4_K_S: if (i < 4) t = DP_TYPE_Q5_K; break;
        default: break;
        }
    } else if (has(name, "ffn_down")) {
        switch (mix) {
        case DP_MIX_Q2_K: t = DP_TYPE_Q3_K; break;
        case DP_MIX_Q3_K_M: t = i < n / 16 ? DP_TYPE_Q5_K : DP_TYPE_Q4_K; break;
        case DP_MIX_Q3_K_L: t = DP_TYPE_Q5_K; break;
        case DP_MIX_Q4_K_M: case DP_MIX_Q5_K_M: if (use_more_bits(i, n)) t = DP_TYPE_Q6_K; break;
        case DP_MIX_Q4_K_S: if (i < n / 8) t = DP_TYPE_Q5_K; break;
        default: break;
        }
    } else if (has(name, "attn_output.weight")) {
        if (mix == DP_MIX_Q2_K) t = DP_TYPE_Q3_K;
        else if (mix == DP_MIX_Q3_K_M) t = DP_TYPE_Q4_K;
        else if (mix == DP_MIX_Q3_K_L) t = DP_TYPE_Q5_K;
    } else if (has(name, "attn_qkv.weight")) {
        if (mix == DP_MIX_Q3_K_M || mix == DP_MIX_Q3_K_L) t = DP_TYPE_Q4_K;
        else if (mix == DP_MIX_Q4_K_M) t = DP_TYPE_Q5_K;
        else if (mix == DP_MIX_Q5_K_M) t = DP_TYPE_Q6_K;
    }
    return dp_quantize_fallback(t, n_in);
}
