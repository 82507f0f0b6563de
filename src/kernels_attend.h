/*
 * One query's causal attention over n_keys cached keys and values, shared by
 * the kernel sets (each includes this file). Two layouts and orders:
 *
 *  - large heads (hd > DP_ATTEND_SMALL_HD): keys are rows, K[p*hd + i];
 *    score p = dot(q, K_p) in the dot order (the set's `dot`);
 *  - small heads (hd <= DP_ATTEND_SMALL_HD): keys are columns, K[i*ldk + p]
 *    (so sixteen keys' scores are hd vector fused multiply-adds); score p is
 *    one chain of fused multiply-adds over i = 0..hd-1 from +0.
 *
 * Then, in both: sc[p] = score * scale and the softmax of attend_softmax_ref
 * (an exponential of its own, so that it vectorizes with the same bits). The output o = sum_p w[p] V_p (values
 * are rows, V[p*hd + i]): large heads as a chain of axpy over p; small heads
 * as four chains over p mod 4 (each a chain of fused multiply-adds from +0),
 * added (c0 + c2) + (c1 + c3). A set may vectorize any of this as long as it
 * keeps these orders, so every set gives the same bits (tests/test_kernels.c).
 */
#ifndef DP_KERNELS_ATTEND_H
#define DP_KERNELS_ATTEND_H

#include "kernels.h"

#include <math.h>
#include <stdint.h>

/*
 * e^x for x <= 0 (softmax arguments), 0 below -87: x = n ln2 + r with n =
 * round(x log2 e) and ln2 split in two (Cody and Waite), e^r by its Taylor
 * series to degree 7 in Horner form (error below 1e-8 for |r| <= ln2/2), then
 * scaled by 2^n through the exponent bits. Every step is one rounded
 * operation, so the SIMD sets reproduce it bit for bit.
 */
#define DP_EXP_MIN -87.0f
#define DP_EXP_LOG2E 1.44269504f
#define DP_EXP_ROUND 12582912.0f     /* 1.5 * 2^23: adding it rounds to an integer */
#define DP_EXP_LN2_HI 0.693145752f   /* 0x3F317200: n * LN2_HI is exact */
#define DP_EXP_LN2_LO 1.42860677e-6f /* ln 2 - LN2_HI */
#define DP_EXP_C(k) (1.0f / (float)(k))
static inline float attend_exp(float x) {
    if (!(x >= DP_EXP_MIN)) return 0.0f;
    float n = fmaf(x, DP_EXP_LOG2E, DP_EXP_ROUND) - DP_EXP_ROUND;
    float r = fmaf(n, -DP_EXP_LN2_HI, x);
    r = fmaf(n, -DP_EXP_LN2_LO, r);
    float p = DP_EXP_C(5040);
    p = fmaf(p, r, DP_EXP_C(720));
    p = fmaf(p, r, DP_EXP_C(120));
    p = fmaf(p, r, DP_EXP_C(24));
    p = fmaf(p, r, DP_EXP_C(6));
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    union { uint32_t u; float f; } e = {(uint32_t)((int32_t)n + 127) << 23};
    return p * e.f;
}

/*
 * Softmax of sc[0..n) in place: w = attend_exp(sc - max), the sum in double
 * as eight chains over p mod 8 added ((c0+c4) + (c2+c6)) + ((c1+c5) + (c3+c7)),
 * then w * (float)(1 / sum). `from`: the first p not yet exponentiated (a set
 * does [0, from) itself and passes its chains in c).
 */
static inline void attend_softmax_tail(float *sc, int n, int from, float mx, double c[8]) {
    for (int p = from; p < n; p++) {
        sc[p] = attend_exp(sc[p] - mx);
        c[p & 7] += sc[p];
    }
    float inv = (float)(1.0 / (((c[0] + c[4]) + (c[2] + c[6])) + ((c[1] + c[5]) + (c[3] + c[7]))));
    for (int p = 0; p < n; p++) sc[p] *= inv;
}

static inline float attend_max(const float *sc, int n) {
    float mx = -INFINITY;
    for (int p = 0; p < n; p++) mx = sc[p] > mx ? sc[p] : mx;
    return mx;
}

static inline void attend_softmax_ref(float *sc, int n) {
    double c[8] = {0};
    attend_softmax_tail(sc, n, 0, attend_max(sc, n), c);
}

/* Small heads, written out in scalar form: the reference of the orders above. */
static inline void attend_small_scores_ref(const float *q, const float *K, int64_t ldk, int n_keys, int hd, float scale,
                                           float *sc) {
    for (int p = 0; p < n_keys; p++) {
        float s = 0.0f;
        for (int i = 0; i < hd; i++) s = fmaf(q[i], K[i * ldk + p], s);
        sc[p] = s * scale;
    }
}

static inline void attend_small_values_ref(const float *w, const float *V, int n_keys, int hd, float *o) {
    float c[4][DP_ATTEND_SMALL_HD] = {{0}};
    for (int p = 0; p < n_keys; p++)
        for (int i = 0; i < hd; i++) c[p & 3][i] = fmaf(w[p], V[(int64_t)p * hd + i], c[p & 3][i]);
    for (int i = 0; i < hd; i++) o[i] = (c[0][i] + c[2][i]) + (c[1][i] + c[3][i]);
}

/* Large heads with the set's dot, axpy and softmax. */
static inline void attend_large(float (*dot)(const float *, const float *, int64_t),
                                void (*axpy)(float, const float *, float *, int64_t), void (*softmax)(float *, int),
                                const float *q, const float *K, const float *V, int n_keys, int hd, float scale,
                                float *sc, float *o) {
    for (int p = 0; p < n_keys; p++) sc[p] = dot(q, K + (int64_t)p * hd, hd) * scale;
    softmax(sc, n_keys);
    for (int i = 0; i < hd; i++) o[i] = 0;
    for (int p = 0; p < n_keys; p++) axpy(sc[p], V + (int64_t)p * hd, o, hd);
}

#endif
