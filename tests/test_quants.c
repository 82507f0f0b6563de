/*
 * test_quants: the weight types of quants.c (Q4_1, Q5_0, Q5_1, Q2_K..Q6_K,
 * IQ4_NL, IQ4_XS) in the kernels.
 *
 * Bit-exact, every SIMD set against the scalar set, on random blocks (any
 * code bytes, any finite scales): dequant, vecdot and pack (the exact mode's
 * two orders), vecdot_q8 (the q8 order), and dp_matmul in both modes for 1, 2
 * and 3 threads, one token at a time against a batch; and the largest
 * integer sums (all codes at their extreme, activations all +-1).
 *
 * Against an independent computation: a q8-order block dot (integer codes,
 * scales and mins) equals sum_k w_k * xhat_k in double, w from the f32
 * decoder and xhat the rounded activation dx*qx, within the float rounding
 * of the chain: |err| <= (4 nb + 8) 2^-24 sum_k |w_k xhat_k| (two roundings
 * of the decoded weight, the scale product, the int->float conversion and
 * one or two fmas per block). The Q8_1 and Q8_K roundings are checked
 * against their definitions (quants.h), element by element.
 *
 * Against outside data: every tensor of every file in ../shared/models/quants
 * and ../shared/models/synthetic (made by llama-quantize from one F32 model)
 * decodes to the F32 source within the type's quantization error: relative
 * rms error below a bound set per type from the measured value with a
 * margin (a decoder that reads one bit wrong lands far above it).
 */
#include "kernel_testing.h"
#include "gguf.h"
#include "model.h"

#include <float.h>
#include <stdint.h>
#include <stdlib.h>

static const uint32_t qtypes[] = {DP_TYPE_Q4_1, DP_TYPE_Q5_0, DP_TYPE_Q5_1, DP_TYPE_IQ4_NL, DP_TYPE_Q2_K,
                                  DP_TYPE_Q3_K, DP_TYPE_Q4_K, DP_TYPE_Q5_K, DP_TYPE_Q6_K, DP_TYPE_IQ4_XS};
#define N_QTYPES (int)(sizeof qtypes / sizeof qtypes[0])

static const struct dp_kernel_ops *sets[3];
static int n_sets;

static int block_size(uint32_t t) { return dp_type_traits(t)->block_size; }

/* Byte offsets of a block's f16 scale fields (d, then dmin/m when the type has one; -1: none). */
static void scale_fields(uint32_t t, int *d, int *m) {
    *m = -1;
    switch (t) {
    case DP_TYPE_Q4_1: case DP_TYPE_Q5_1: case DP_TYPE_Q4_K: case DP_TYPE_Q5_K: *d = 0, *m = 2; break;
    case DP_TYPE_Q2_K: *d = 80, *m = 82; break;
    case DP_TYPE_Q3_K: *d = 108; break;
    case DP_TYPE_Q6_K: *d = 208; break;
    default: *d = 0; /* Q5_0, IQ4_NL, IQ4_XS */
    }
}

static void put_f16(uint8_t *p, float x) {
    uint16_t h = dp_f32_to_f16(x);
    p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8);
}

/* n_blocks random blocks of t: any code bytes; scales of either sign, small enough that sums stay finite. */
static uint8_t *random_blocks(uint32_t t, int64_t n_blocks) {
    size_t bb = dp_type_traits(t)->block_bytes;
    uint8_t *p = malloc((size_t)n_blocks * bb + 64);
    for (size_t i = 0; i < (size_t)n_blocks * bb; i++) p[i] = (uint8_t)rnd();
    int od, om;
    scale_fields(t, &od, &om);
    for (int64_t b = 0; b < n_blocks; b++) {
        uint8_t *q = p + b * bb;
        put_f16(q + od, rndf() * (block_size(t) == 256 ? 0.01f : 0.1f));
        if (om >= 0) put_f16(q + om, rndf() * 0.01f);
    }
    return p;
}

/* The row lengths the set tests use for t: one block, three blocks, and a long row. */
static void row_lengths(uint32_t t, int64_t ns[3]) {
    int bs = block_size(t);
    ns[0] = bs, ns[1] = 3 * bs, ns[2] = bs == 32 ? 2048 : 1792;
}

/* ---- every set against the scalar set ---- */

static void test_sets_exact(void) {
    enum { ROWS = 9, VT = 12, MAXN = 2048 };
    static float X[VT * MAXN], Ya[VT * ROWS], Yb[VT * ROWS];
    static float Pa[DP_GEMM_KC * DP_GEMM_MR_MAX], Pb[DP_GEMM_KC * DP_GEMM_MR_MAX];
    for (int i = 0; i < VT * MAXN; i++) X[i] = rndf();
    const struct dp_kernel_ops *ref = dp_kernels_scalar();
    for (int ti = 0; ti < N_QTYPES; ti++) {
        uint32_t t = qtypes[ti];
        int bs = block_size(t);
        int64_t ns[3];
        row_lengths(t, ns);
        for (int in = 0; in < 3; in++) {
            int64_t n = ns[in];
            uint8_t *W = random_blocks(t, n / bs * ROWS);
            size_t rb = dp_type_row_bytes(t, n);
            for (int s = 1; s < n_sets; s++) {
                const struct dp_kernel_ops *k = sets[s];
                dp_vecdot_fn f = k->vecdot[t] ? k->vecdot[t] : ref->vecdot[t];
                int bad = 0;
                for (int nt = 1; nt <= VT; nt += nt < 4 ? 1 : 4)
                    for (int nr = 1; nr <= ROWS; nr += 4) {
                        ref->vecdot[t](W, rb, nr, X, MAXN, nt, n, Ya, ROWS);
                        memset(Yb, 0xFF, sizeof Yb);
                        f(W, rb, nr, X, MAXN, nt, n, Yb, ROWS);
                        for (int tt = 0; tt < nt; tt++) bad += !same_bits("vecdot", Yb + tt * ROWS, Ya + tt * ROWS, nr);
                    }
                CHECK_MSG(bad == 0, "%s vecdot %s n=%lld: %d token rows differ", k->name, dp_type_name(t), (long long)n,
                          bad);
                if (k->dequant[t]) {
                    float *da = malloc((size_t)n * sizeof *da), *db = malloc((size_t)n * sizeof *db);
                    ref->dequant[t](W + rb, da, n);
                    k->dequant[t](W + rb, db, n);
                    CHECK_MSG(same_bits("dequant", db, da, n), "%s dequant %s n=%lld", k->name, dp_type_name(t),
                              (long long)n);
                    free(da), free(db);
                }
                dp_pack_fn pk = k->pack[t] ? k->pack[t] : ref->pack[t];
                int64_t k0 = n > 2 * bs ? bs : 0, kc = n - k0 < DP_GEMM_KC ? n - k0 : DP_GEMM_KC;
                for (int nr = 1; nr <= k->mr && nr <= ROWS; nr += 4) {
                    ref->pack[t](W, rb, nr, k->mr, k0, kc, Pa);
                    pk(W, rb, nr, k->mr, k0, kc, Pb);
                    CHECK_MSG(same_bits("pack", Pb, Pa, kc * k->mr), "%s pack %s n=%lld rows=%d", k->name,
                              dp_type_name(t), (long long)n, nr);
                }
            }
            free(W);
        }
    }
}

/* Activation rows rounded for weight type t by the reference, owned. */
struct act {
    int8_t *q;
    float *d, *s;
    int32_t *bias, *sum16;
    struct dp_act_q8 a;
};

static void act_make(struct act *A, uint32_t t, const float *X, int n_tok, int64_t n) {
    enum dp_act_kind kind = dp_quants_act_kind(t);
    int64_t n32 = n / 32, nb = n / dp_quants_act_block(kind);
    A->q = malloc((size_t)(n_tok * n));
    A->d = malloc((size_t)(n_tok * n32) * sizeof(float));
    A->s = malloc((size_t)(n_tok * n32) * sizeof(float));
    A->bias = malloc((size_t)(n_tok * n32) * sizeof(int32_t));
    A->sum16 = malloc((size_t)(n_tok * n / 16) * sizeof(int32_t));
    int32_t off = t == DP_TYPE_Q5_0 ? 16 : 128;
    for (int tt = 0; tt < n_tok; tt++) {
        const float *x = X + tt * n;
        int8_t *q = A->q + tt * n;
        if (kind == DP_ACT_KIND_Q8_0) dp_kernels_scalar()->quant_act(x, n, off, q, A->d + tt * nb, A->bias + tt * nb);
        else if (kind == DP_ACT_KIND_Q8_1) dp_quants_act_q8_1(x, n, q, A->d + tt * nb, A->s + tt * nb);
        else dp_quants_act_q8_k(x, n, q, A->d + tt * nb, A->sum16 + tt * (n / 16));
    }
    A->a = (struct dp_act_q8){A->q, A->d, kind == DP_ACT_KIND_Q8_0 ? A->bias : NULL, n,
                              kind == DP_ACT_KIND_Q8_1 ? A->s : NULL, kind == DP_ACT_KIND_Q8_K ? A->sum16 : NULL};
}

static void act_free(struct act *A) { free(A->q), free(A->d), free(A->s), free(A->bias), free(A->sum16); }

static void test_sets_q8(void) {
    enum { ROWS = 33, MAXT = 40, MAXN = 2048 };
    static const int toks[] = {1, 2, 3, 4, 5, 8, 9, 16, 17, 40};
    static float X[MAXT * MAXN], Ya[MAXT * ROWS], Yb[MAXT * ROWS];
    for (int i = 0; i < MAXT * MAXN; i++) X[i] = rndf() * (i % 97 == 0 ? 30.0f : 1.0f);
    const struct dp_kernel_ops *ref = dp_kernels_scalar();
    for (int ti = 0; ti < N_QTYPES; ti++) {
        uint32_t t = qtypes[ti];
        int bs = block_size(t);
        int64_t ns[3];
        row_lengths(t, ns);
        for (int in = 0; in < 3; in++) {
            int64_t n = ns[in];
            uint8_t *W = random_blocks(t, n / bs * ROWS);
            size_t rb = dp_type_row_bytes(t, n);
            struct act A;
            act_make(&A, t, X, MAXT, n);
            for (int s = 1; s < n_sets; s++) {
                const struct dp_kernel_ops *k = sets[s];
                if (!k->vecdot_q8[t]) continue;
                int bad = 0;
                for (size_t it = 0; it < sizeof toks / sizeof toks[0]; it++)
                    for (int nr = 1; nr <= ROWS; nr += nr < 17 ? 3 : 8) {
                        int nt = toks[it];
                        ref->vecdot_q8[t](W, rb, nr, &A.a, nt, Ya, ROWS);
                        memset(Yb, 0xFF, sizeof Yb);
                        k->vecdot_q8[t](W, rb, nr, &A.a, nt, Yb, ROWS);
                        for (int tt = 0; tt < nt; tt++)
                            bad += !same_bits("vecdot_q8", Yb + tt * ROWS, Ya + tt * ROWS, nr);
                    }
                CHECK_MSG(bad == 0, "%s vecdot_q8 %s n=%lld: %d token rows differ", k->name, dp_type_name(t),
                          (long long)n, bad);
            }
            act_free(&A);
            free(W);
        }
    }
}

/*
 * The largest integer sums: every code byte 0xFF (or 0x00) and every
 * activation +1 or -1, so each rounded activation is +-127 and all products
 * of a block have one sign: a kernel whose 16-bit partial sums could
 * saturate (vpmaddubsw pairs added over too many registers) differs here.
 */
static void test_sets_extremes(void) {
    enum { ROWS = 9, NT = 5, N = 512 };
    static float X[NT * N], Ya[NT * ROWS], Yb[NT * ROWS];
    const struct dp_kernel_ops *ref = dp_kernels_scalar();
    for (int i = 0; i < NT * N; i++) X[i] = (i / N) % 2 ? -1.0f : 1.0f;
    for (int ti = 0; ti < N_QTYPES; ti++) {
        uint32_t t = qtypes[ti];
        size_t bb = dp_type_traits(t)->block_bytes, rb = dp_type_row_bytes(t, N);
        int64_t n_blocks = N / block_size(t) * ROWS;
        uint8_t *W = malloc((size_t)n_blocks * bb);
        struct act A;
        act_make(&A, t, X, NT, N);
        for (int fill = 0; fill < 2; fill++) {
            memset(W, fill ? 0x00 : 0xFF, (size_t)n_blocks * bb);
            int od, om;
            scale_fields(t, &od, &om);
            for (int64_t b = 0; b < n_blocks; b++) {
                put_f16(W + b * bb + od, 0.01f);
                if (om >= 0) put_f16(W + b * bb + om, 0.001f);
            }
            for (int s = 1; s < n_sets; s++) {
                const struct dp_kernel_ops *k = sets[s];
                if (k->vecdot_q8[t]) {
                    ref->vecdot_q8[t](W, rb, ROWS, &A.a, NT, Ya, ROWS);
                    k->vecdot_q8[t](W, rb, ROWS, &A.a, NT, Yb, ROWS);
                    CHECK_MSG(same_bits("vecdot_q8", Yb, Ya, NT * ROWS), "%s vecdot_q8 %s, code bytes 0x%02x",
                              k->name, dp_type_name(t), fill ? 0 : 0xFF);
                }
                if (k->vecdot[t]) {
                    ref->vecdot[t](W, rb, ROWS, X, N, NT, N, Ya, ROWS);
                    k->vecdot[t](W, rb, ROWS, X, N, NT, N, Yb, ROWS);
                    CHECK_MSG(same_bits("vecdot", Yb, Ya, NT * ROWS), "%s vecdot %s, code bytes 0x%02x", k->name,
                              dp_type_name(t), fill ? 0 : 0xFF);
                }
            }
        }
        act_free(&A);
        free(W);
    }
}

/* dp_matmul, both modes: every set and pool size gives the scalar set's bits; a token alone gives the batch's. */
static void test_matmul(void) {
    struct dp_pool *pools[3] = {dp_pool_new(1), dp_pool_new(2), dp_pool_new(3)};
    static const int toks[] = {1, 5, 17, DP_GEMM_MIN_TOK, 100};
    enum { MAXT = 100 };
    for (int ti = 0; ti < N_QTYPES; ti++) {
        uint32_t t = qtypes[ti];
        int bs = block_size(t);
        int64_t n_in = bs == 32 ? 544 : 1280, n_out = 70;
        uint8_t *W = random_blocks(t, n_in / bs * n_out);
        float *X = malloc((size_t)(MAXT * n_in) * sizeof *X);
        for (int64_t i = 0; i < MAXT * n_in; i++) X[i] = rndf();
        size_t ny = (size_t)(MAXT * n_out);
        float *ref = malloc(ny * sizeof *ref), *y = malloc(ny * sizeof *y);
        for (int mode = 0; mode < 2; mode++) {
            enum dp_act act = mode ? DP_ACT_Q8 : DP_ACT_EXACT;
            for (size_t it = 0; it < sizeof toks / sizeof toks[0]; it++) {
                int nt = toks[it];
                dp_kernels_use(dp_kernels_scalar());
                dp_matmul(pools[0], act, W, t, n_in, n_out, X, nt, ref);
                for (int s = 0; s < n_sets; s++)
                    for (int p = 0; p < 3; p++) {
                        if (s == 0 && p == 0) continue;
                        dp_kernels_use(sets[s]);
                        memset(y, 0xFF, ny * sizeof *y);
                        dp_matmul(pools[p], act, W, t, n_in, n_out, X, nt, y);
                        CHECK_MSG(same_bits("matmul", y, ref, (int64_t)nt * n_out), "%s %s %s tok=%d threads=%d",
                                  sets[s]->name, dp_type_name(t), mode ? "q8" : "exact", nt, p + 1);
                    }
                if (!mode) continue;
                dp_kernels_use(NULL);
                int ok = 1;
                for (int tt = 0; tt < nt && ok; tt++) {
                    dp_matmul(pools[1], act, W, t, n_in, n_out, X + tt * n_in, 1, y);
                    ok = same_bits("q8 decode vs batch", y, ref + tt * n_out, n_out);
                }
                CHECK_MSG(ok, "%s q8 tok=%d: a token alone differs from the batch", dp_type_name(t), nt);
            }
        }
        dp_kernels_use(NULL);
        free(W), free(X), free(ref), free(y);
    }
    for (int p = 0; p < 3; p++) dp_pool_free(pools[p]);
}


/* ---- the q8 order against sum w * xhat in double ---- */

static void test_q8_vs_double(void) {
    enum { NB = 6 };
    double worst = 0;
    for (int ti = 0; ti < N_QTYPES; ti++) {
        uint32_t t = qtypes[ti];
        int bs = block_size(t);
        int64_t n = (int64_t)NB * bs;
        enum dp_act_kind kind = dp_quants_act_kind(t);
        float *x = malloc((size_t)n * sizeof *x), *w = malloc((size_t)n * sizeof *w);
        int bad = 0;
        for (int rep = 0; rep < 40; rep++) {
            uint8_t *W = random_blocks(t, NB);
            for (int64_t i = 0; i < n; i++) x[i] = rndf() * (i % 29 == 0 ? 20.0f : 1.0f);
            if (rep == 1) memset(x, 0, (size_t)bs * sizeof *x); /* an all-zero activation block */
            struct act A;
            act_make(&A, t, x, 1, n);
            float y;
            dp_kernels_scalar()->vecdot_q8[t](W, dp_type_row_bytes(t, n), 1, &A.a, 1, &y, 1);
            dp_kernels_scalar()->dequant[t](W, w, n);
            int nbx = dp_quants_act_block(kind);
            double s = 0, mag = 0;
            for (int64_t k = 0; k < n; k++) {
                double xh = (double)A.d[k / nbx] * A.q[k];
                s += (double)w[k] * xh;
                mag += fabs((double)w[k] * xh);
            }
            /* Q8_1's s is f16(d * sum q): the min term uses it instead of the exact sum */
            double tol = (4.0 * NB + 8) * 0x1p-24 * mag;
            if (kind == DP_ACT_KIND_Q8_1)
                for (int b = 0; b < NB; b++) {
                    const uint8_t *blk = W + b * dp_type_traits(t)->block_bytes;
                    double m = dp_f16_to_f32((uint16_t)(blk[2] | blk[3] << 8)), sum = 0;
                    for (int j = 0; j < 32; j++) sum += (double)A.d[b] * A.q[b * 32 + j];
                    tol += fabs(m) * (fabs(A.s[b] - sum) + 0x1p-24 * fabs(sum));
                }
            double err = fabs(y - s);
            if (mag > 0) worst = fmax(worst, err / mag);
            if (!(err <= tol)) {
                if (bad++ < 3)
                    fprintf(stderr, "  %s rep %d: q8 %.9g vs double %.9g (tol %.3g)\n", dp_type_name(t), rep, y, s, tol);
            }
            act_free(&A);
            free(W);
        }
        CHECK_MSG(bad == 0, "%s: %d q8 block dots off sum w*xhat", dp_type_name(t), bad);
        free(x), free(w);
    }
    printf("q8 order vs sum w*xhat in double: worst |error| / sum |w*xhat| %.2e\n", worst);
}

/* ---- the Q8_1 and Q8_K roundings against their definitions ---- */

static void test_roundings(void) {
    enum { N = 1024 };
    float x[N];
    int8_t q[N];
    float d[N / 32], s[N / 32];
    int32_t sum16[N / 16];
    int bad = 0;
    for (int rep = 0; rep < 20; rep++) {
        for (int i = 0; i < N; i++) x[i] = rndf() * (float)(1 << (rep % 8)) * (i % 50 == 0 ? 7.0f : 1.0f);
        if (rep == 3) x[5] = -x[5] - 1000.0f;                                  /* the largest is negative */
        if (rep == 4) for (int j = 0; j < 256; j++) x[256 + j] = 0;           /* an all-zero block */
        if (rep == 5) { /* ties: Q8_K's iscale and Q8_1's 1/d are exactly 1, halves fall between codes */
            for (int j = 0; j < 256; j++) x[512 + j] = (float)(j % 200 - 100) + 0.5f;
            x[512 + 77] = -127.0f;
            for (int j = 0; j < 32; j++) x[64 + j] = (float)(j * 7 % 200 - 100) + 0.5f;
            x[64 + 3] = 127.0f;
        }
        dp_quants_act_q8_k(x, N, q, d, sum16);
        for (int b = 0; b < N / 256; b++) {
            float amax = 0, max = 0;
            for (int j = 0; j < 256; j++)
                if (fabsf(x[b * 256 + j]) > amax) amax = fabsf(x[b * 256 + j]), max = x[b * 256 + j];
            float iscale = amax ? -127.0f / max : 0;
            for (int j = 0; j < 256; j++) {
                float v = iscale * x[b * 256 + j];
                int want = amax ? (int)nearbyintf(v) : 0; /* ties to even in the default rounding mode */
                if (want > 127) want = 127;
                bad += q[b * 256 + j] != want;
            }
            bad += amax ? d[b] != 1.0f / iscale : d[b] != 0.0f;
            for (int j = 0; j < 16; j++) {
                int32_t sum = 0;
                for (int i = 0; i < 16; i++) sum += q[b * 256 + 16 * j + i];
                bad += sum16[b * 16 + j] != sum;
            }
        }
        dp_quants_act_q8_1(x, N, q, d, s);
        for (int b = 0; b < N / 32; b++) {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
            float dd = amax / 127.0f, id = dd ? 1.0f / dd : 0;
            int sum = 0;
            for (int j = 0; j < 32; j++) {
                float v = x[b * 32 + j] * id;
                int want = (int)(v < 0 ? -floorf(-v + 0.5f) : floorf(v + 0.5f)); /* half away from zero */
                bad += q[b * 32 + j] != want;
                sum += want;
            }
            bad += d[b] != dp_f16_to_f32(dp_f32_to_f16(dd));
            bad += s[b] != dp_f16_to_f32(dp_f32_to_f16((float)sum * dd));
        }
    }
    CHECK_MSG(bad == 0, "%d values differ from the Q8_1/Q8_K definitions", bad);
    /* non-finite input: NaN scale, zero codes */
    x[7] = NAN;
    dp_quants_act_q8_k(x, N, q, d, sum16);
    CHECK(isnan(d[0]) && q[0] == 0 && !isnan(d[1]));
    x[7] = INFINITY;
    dp_quants_act_q8_1(x, N, q, d, s);
    CHECK(isnan(d[0]) && isnan(s[0]) && q[0] == 0 && !isnan(d[1]));
}

/* ---- decoders against the F32 source of llama-quantize's files ---- */

/*
 * Relative rms error |decoded - f32| / rms(f32) allowed per type: the
 * measured worst over the shared files' tensors (printed) plus about 25 %.
 * Measured on the shared files: Q2_K 0.297, Q3_K 0.152, Q4_0 0.087, Q4_1
 * 0.079, IQ4_NL 0.077, IQ4_XS 0.077, Q4_K 0.072, Q5_0 0.043, Q5_1 0.038,
 * Q5_K 0.036, Q6_K 0.018, Q8_0 0.0054.
 */
static double rel_rms_bound(uint32_t t) {
    switch (t) {
    case DP_TYPE_Q2_K: return 0.37;
    case DP_TYPE_Q3_K: return 0.19;
    case DP_TYPE_Q4_0: return 0.11;
    case DP_TYPE_Q4_1: return 0.099;
    case DP_TYPE_IQ4_NL: case DP_TYPE_IQ4_XS: return 0.096;
    case DP_TYPE_Q4_K: return 0.09;
    case DP_TYPE_Q5_0: return 0.054;
    case DP_TYPE_Q5_1: return 0.048;
    case DP_TYPE_Q5_K: return 0.045;
    case DP_TYPE_Q6_K: return 0.0225;
    case DP_TYPE_Q8_0: return 0.0068;
    default: return 0; /* float types: exact to their rounding, checked by test_kernels */
    }
}

static const char *const shared_files[] = {
    "models/quants/synth-llama-iq4_nl.gguf", "models/quants/synth-llama-iq4_xs.gguf",
    "models/quants/synth-llama-q2_k-mix.gguf", "models/quants/synth-llama-q2_k.gguf",
    "models/quants/synth-llama-q3_k.gguf", "models/quants/synth-llama-q3_k_m.gguf",
    "models/quants/synth-llama-q4_1.gguf", "models/quants/synth-llama-q4_k.gguf",
    "models/quants/synth-llama-q4_k_m.gguf", "models/quants/synth-llama-q4_k_s.gguf",
    "models/quants/synth-llama-q5_0.gguf", "models/quants/synth-llama-q5_1.gguf",
    "models/quants/synth-llama-q5_k.gguf", "models/quants/synth-llama-q5_k_m.gguf",
    "models/quants/synth-llama-q6_k.gguf", "models/synthetic/synth-llama-q8_0.gguf",
    "models/synthetic/synth-llama-q4_0.gguf", "models/synthetic/synth-llama-q6_k.gguf",
    "models/synthetic/synth-llama-q4_k_m.gguf",
};
#define N_SHARED (int)(sizeof shared_files / sizeof shared_files[0])

static double measured[DP_TYPE_COUNT];

static void test_decode_files(void) {
    struct dp_gguf *src;
    CHECK_MSG(dp_gguf_open(test_shared("models/synthetic/synth-llama-f32.gguf"), &src) == DP_OK, "%s", dp_last_error());
    if (!src) return;
    for (int f = 0; f < N_SHARED; f++) {
        struct dp_gguf *g = NULL;
        if (dp_gguf_open(test_shared(shared_files[f]), &g)) {
            CHECK_MSG(0, "%s", dp_last_error());
            continue;
        }
        int n_quant = 0;
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const struct dp_gguf_tensor *t = &g->tensors[i];
            const struct dp_gguf_tensor *r = dp_gguf_find_tensor(src, t->name);
            CHECK_MSG(r && r->type == DP_TYPE_F32 && r->ne[0] == t->ne[0] && r->ne[1] == t->ne[1], "%s: %s",
                      shared_files[f], t->name);
            if (!r || rel_rms_bound(t->type) == 0) continue;
            CHECK_MSG(dp_kernels_supported(t->type), "%s: %s has type %s", shared_files[f], t->name,
                      dp_type_name(t->type));
            int64_t n_in = t->ne[0], n_out = t->ne[1];
            size_t rb = dp_type_row_bytes(t->type, n_in);
            float *w = malloc((size_t)n_in * sizeof *w);
            double e2 = 0, r2 = 0;
            for (int64_t row = 0; row < n_out; row++) {
                dp_dequant_row(t->type, t->data + (size_t)row * rb, w, n_in);
                const float *ref = (const float *)(r->data + (size_t)row * (size_t)n_in * 4);
                for (int64_t k = 0; k < n_in; k++) e2 += ((double)w[k] - ref[k]) * ((double)w[k] - ref[k]), r2 += (double)ref[k] * ref[k];
            }
            free(w);
            double rel = sqrt(e2 / r2);
            measured[t->type] = fmax(measured[t->type], rel);
            CHECK_MSG(rel <= rel_rms_bound(t->type), "%s: %s (%s) decodes with rel rms error %.4f > %.4f",
                      shared_files[f], t->name, dp_type_name(t->type), rel, rel_rms_bound(t->type));
            n_quant++;
        }
        CHECK_MSG(n_quant >= 7, "%s: only %d quantized tensors", shared_files[f], n_quant);
        dp_gguf_close(g);
    }
    dp_gguf_close(src);
    printf("decoded vs F32 source, worst rel rms error per type:");
    for (int t = 0; t < DP_TYPE_COUNT; t++)
        if (measured[t] > 0) printf(" %s %.4f", dp_type_name((uint32_t)t), measured[t]);
    printf("\n");
}

int main(void) {
    n_sets = kernel_sets(sets);
    printf("kernel sets tested:");
    for (int s = 0; s < n_sets; s++) printf(" %s", sets[s]->name);
    printf("\n");
    for (int ti = 0; ti < N_QTYPES; ti++) {
        CHECK_MSG(dp_kernels_supported(qtypes[ti]) && dp_quants_q8_block(qtypes[ti]),
                  "%s: no kernels", dp_type_name(qtypes[ti]));
        CHECK_EQ_INT(dp_quants_block_bytes(qtypes[ti]), (int)dp_type_traits(qtypes[ti])->block_bytes);
    }
    CHECK_EQ_INT(dp_quants_block_bytes(DP_TYPE_Q8_0), 34);
    CHECK_EQ_INT(dp_quants_block_bytes(DP_TYPE_Q4_0), 18);
    test_sets_exact();
    test_sets_q8();
    test_sets_extremes();
    test_matmul();
    test_q8_vs_double();
    test_roundings();
    test_decode_files();
    return TEST_END();
}
