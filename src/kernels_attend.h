/*
 * One query's causal attention over n_keys cached keys and values, shared by
 * the kernel sets (each includes this file and passes its own dot and axpy):
 *   sc[p] = dot(q, K_p) * scale  (the dot order),  w[p] = expf(sc[p] - max),
 *   o = sum over p of fma((w[p] * (1/sum w)), V_p, o)  (sum w in double).
 * Head sizes 8 and 16 are unrolled here with the dot order written out
 * (element i is lane i, one fused multiply-add from +0, then the lane tree),
 * so small heads cost no call per key; every set gives the same bits.
 */
#ifndef DP_KERNELS_ATTEND_H
#define DP_KERNELS_ATTEND_H

#include <math.h>
#include <stdint.h>

typedef float (*dp_attend_dot_fn)(const float *a, const float *b, int64_t n);
typedef void (*dp_attend_axpy_fn)(float a, const float *x, float *y, int64_t n);

/* The dot order for a head of HD <= 16 elements (lanes HD..15 hold +0). */
static inline float attend_dot_small(const float *q, const float *k, const int HD) {
    float l[16];
    for (int i = 0; i < 16; i++) l[i] = i < HD ? fmaf(q[i], k[i], 0.0f) : 0.0f;
    float s8[8], s4[4];
    for (int j = 0; j < 8; j++) s8[j] = HD > 8 ? l[j] + l[j + 8] : l[j];
    for (int j = 0; j < 4; j++) s4[j] = s8[j] + s8[j + 4];
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

static inline void attend_body(dp_attend_dot_fn dot, dp_attend_axpy_fn axpy, const float *q, const float *K,
                               const float *V, int n_keys, int hd, float scale, float *sc, float *o, const int HD) {
    const int d = HD ? HD : hd;
    float mx = -INFINITY;
    for (int p = 0; p < n_keys; p++) {
        sc[p] = (HD ? attend_dot_small(q, K + (size_t)p * d, HD) : dot(q, K + (size_t)p * d, d)) * scale;
        if (sc[p] > mx) mx = sc[p];
    }
    double sum = 0;
    for (int p = 0; p < n_keys; p++) {
        sc[p] = expf(sc[p] - mx);
        sum += sc[p];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < d; i++) o[i] = 0;
    if (HD) {
        float acc[16] = {0};
        for (int p = 0; p < n_keys; p++) {
            float a = sc[p] * inv;
            const float *v = V + (size_t)p * HD;
            for (int i = 0; i < HD; i++) acc[i] = fmaf(a, v[i], acc[i]);
        }
        for (int i = 0; i < HD; i++) o[i] = acc[i];
    } else {
        for (int p = 0; p < n_keys; p++) axpy(sc[p] * inv, V + (size_t)p * d, o, d);
    }
}

/* Defines `name` for a set with dot function DOT and axpy function AXPY. */
#define DP_DEFINE_ATTEND(name, DOT, AXPY)                                                                     \
    static void name(const float *q, const float *K, const float *V, int n_keys, int hd, float scale,        \
                     float *sc, float *o) {                                                                  \
        if (hd == 8) attend_body(DOT, AXPY, q, K, V, n_keys, 8, scale, sc, o, 8);                            \
        else if (hd == 16) attend_body(DOT, AXPY, q, K, V, n_keys, 16, scale, sc, o, 16);                    \
        else attend_body(DOT, AXPY, q, K, V, n_keys, hd, scale, sc, o, 0);                                   \
    }

#endif
