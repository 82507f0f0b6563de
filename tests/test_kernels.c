/*
 * test_kernels: every kernel set against the scalar reference, and the
 * reference against numbers worked out by hand or in double precision.
 *
 * Bit-exact (both orders are defined independently of the instruction set,
 * see kernels.h): dequantization (all 65536 F16 and BF16 patterns; NaN only
 * has to stay NaN), dot, vecdot, panel packing and dp_matmul of every SIMD
 * set against the scalar set; dp_matmul for 1, 2 and 3 threads.
 * Within tolerance: dot products against a double-precision sum,
 * |err| <= 1e-5 * sum|a_i b_i| (DOT_TOL); quantize -> dequantize round trips
 * within the rounding step of the block scale.
 * By hand: Q8_0 and Q4_0 blocks of 0..31 and -31..0 (llama.cpp's reference
 * formulas: Q8_0 d = amax/127, q = round(x/d); Q4_0 d = max/-8 with max the
 * signed value of largest magnitude, q = min(15, (int8)(x/d + 8.5))); F16 and
 * BF16 conversions at infinities, NaN, subnormals and rounding ties.
 */
#include "kernel_testing.h"
#include "kernels_attend.h"

#include <float.h>
#include <stdint.h>

#define DOT_TOL 1e-5

static const uint32_t types[] = {DP_TYPE_F32, DP_TYPE_F16, DP_TYPE_BF16, DP_TYPE_Q8_0, DP_TYPE_Q4_0};
#define N_TYPES (int)(sizeof types / sizeof types[0])

static bool is_block_type(uint32_t t) { return t == DP_TYPE_Q8_0 || t == DP_TYPE_Q4_0; }

/* A row of n random values in `type` (finite, |x| < 1). */
static void *random_row(uint32_t type, int64_t n) {
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = rndf();
    void *row = malloc(dp_type_row_bytes(type, n) + 64);
    CHECK(dp_quantize_row(type, x, row, n) == DP_OK);
    free(x);
    return row;
}

static const struct dp_kernel_ops *sets[3];
static int n_sets;

/* ---- conversions by hand ---- */

static uint16_t f16_of(float x) {
    uint8_t p[2];
    dp_quantize_row(DP_TYPE_F16, &x, p, 1);
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint16_t bf16_of(float x) {
    uint8_t p[2];
    dp_quantize_row(DP_TYPE_BF16, &x, p, 1);
    return (uint16_t)(p[0] | p[1] << 8);
}

static void test_conversions(void) {
    float inf = INFINITY, nan = NAN;
    /* F16: round to nearest even, overflow to infinity, subnormals */
    CHECK_EQ_INT(f16_of(0.0f), 0x0000);
    CHECK_EQ_INT(f16_of(-0.0f), 0x8000);
    CHECK_EQ_INT(f16_of(1.0f), 0x3C00);
    CHECK_EQ_INT(f16_of(-2.0f), 0xC000);
    CHECK_EQ_INT(f16_of(65504.0f), 0x7BFF);
    CHECK_EQ_INT(f16_of(65519.0f), 0x7BFF);
    CHECK_EQ_INT(f16_of(65520.0f), 0x7C00); /* the tie above the largest half rounds to infinity */
    CHECK_EQ_INT(f16_of(inf), 0x7C00);
    CHECK_EQ_INT(f16_of(-inf), 0xFC00);
    uint16_t hn = f16_of(nan);
    CHECK((hn & 0x7C00) == 0x7C00 && (hn & 0x3FF) != 0);
    CHECK_EQ_INT(f16_of(ldexpf(1, -24)), 0x0001);         /* smallest subnormal */
    CHECK_EQ_INT(f16_of(ldexpf(1, -25)), 0x0000);         /* tie, to even zero */
    CHECK_EQ_INT(f16_of(ldexpf(1.5f, -24)), 0x0002);      /* tie, to even 2 */
    CHECK_EQ_INT(f16_of(ldexpf(2.5f, -24)), 0x0002);      /* tie, to even 2 */
    CHECK_EQ_INT(f16_of(ldexpf(1.25f, -25)), 0x0001);     /* above the tie */
    CHECK_EQ_INT(f16_of(ldexpf(1, -14)), 0x0400);         /* smallest normal */
    CHECK_EQ_INT(f16_of(ldexpf(1023.5f, -24)), 0x0400);   /* subnormal tie rounds up into the normals */
    CHECK_EQ_INT(f16_of(1.0f + ldexpf(1, -11)), 0x3C00);  /* tie, to even */
    CHECK_EQ_INT(f16_of(1.0f + ldexpf(3, -11)), 0x3C02);  /* tie, to even */
    CHECK_EQ_INT(f16_of(1.0f + ldexpf(1, -11) + ldexpf(1, -20)), 0x3C01);
    /* BF16 */
    CHECK_EQ_INT(bf16_of(1.0f), 0x3F80);
    CHECK_EQ_INT(bf16_of(-0.0f), 0x8000);
    CHECK_EQ_INT(bf16_of(1.0f + ldexpf(1, -8)), 0x3F80);  /* tie, to even */
    CHECK_EQ_INT(bf16_of(1.0f + ldexpf(3, -8)), 0x3F82);  /* tie, to even */
    CHECK_EQ_INT(bf16_of(1.0f + ldexpf(1, -8) + ldexpf(1, -20)), 0x3F81);
    CHECK_EQ_INT(bf16_of(FLT_MAX), 0x7F80);               /* rounds up to infinity */
    CHECK_EQ_INT(bf16_of(inf), 0x7F80);
    CHECK_EQ_INT(bf16_of(-inf), 0xFF80);
    uint16_t bn = bf16_of(nan);
    CHECK((bn & 0x7F80) == 0x7F80 && (bn & 0x7F) != 0);
    CHECK_EQ_INT(bf16_of(ldexpf(1, -133)), 0x0001);       /* bf16 subnormal */
    CHECK_EQ_INT(bf16_of(ldexpf(1, -140)), 0x0000);       /* below half the smallest */
    /* decoding, with every kernel set */
    const uint16_t h[] = {0x0001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0x7C00, 0xFC00, 0x8000, 0x7E00, 0x3555};
    const float hv[] = {ldexpf(1, -24), ldexpf(1023, -24), ldexpf(1, -14), 1.0f, 65504.0f, inf, -inf, -0.0f, nan,
                        0.333251953125f};
    const uint16_t b[] = {0x0001, 0x3F80, 0x7F80, 0xFF80, 0x8000, 0x7FC0, 0x3EAB};
    const float bv[] = {ldexpf(1, -133), 1.0f, inf, -inf, -0.0f, nan, 0.333984375f};
    for (int s = 0; s < n_sets; s++) {
        dp_kernels_use(sets[s]);
        float out[16];
        dp_dequant_row(DP_TYPE_F16, h, out, 10);
        CHECK_MSG(same_bits("f16 decode", out, hv, 10), "%s", sets[s]->name);
        dp_dequant_row(DP_TYPE_BF16, b, out, 7);
        CHECK_MSG(same_bits("bf16 decode", out, bv, 7), "%s", sets[s]->name);
    }
    dp_kernels_use(NULL);
}

/* ---- quantization by hand and round trips ---- */

static void test_quant_known(void) {
    float x[32], neg[32];
    uint8_t blk[34];
    for (int j = 0; j < 32; j++) x[j] = (float)j, neg[j] = -(float)j;
    /* Q8_0: d = 31/127 = 0.244094..., as f16 (1 + 976/1024)/8 = 0x33D0; q = round(127 j / 31) */
    static const int8_t q8[32] = {0,  4,  8,  12, 16, 20, 25, 29,  33,  37,  41,  45,  49,  53,  57,  61,
                                  66, 70, 74, 78, 82, 86, 90, 94, 98, 102, 107, 111, 115, 119, 123, 127};
    CHECK(dp_quantize_row(DP_TYPE_Q8_0, x, blk, 32) == DP_OK);
    CHECK_EQ_INT(blk[0] | blk[1] << 8, 0x33D0);
    int bad = 0;
    for (int j = 0; j < 32; j++) bad += (int8_t)blk[2 + j] != q8[j];
    CHECK_EQ_INT(bad, 0);
    CHECK(dp_quantize_row(DP_TYPE_Q8_0, neg, blk, 32) == DP_OK);
    CHECK_EQ_INT(blk[0] | blk[1] << 8, 0x33D0);
    bad = 0;
    for (int j = 0; j < 32; j++) bad += (int8_t)blk[2 + j] != -q8[j];
    CHECK_EQ_INT(bad, 0);
    /* Q4_0: max = 31, d = -31/8 = -3.875 = 0xC3C0; q = trunc(8.5 - 8j/31) = floor((527 - 16 j) / 62) */
    CHECK(dp_quantize_row(DP_TYPE_Q4_0, x, blk, 32) == DP_OK);
    CHECK_EQ_INT(blk[0] | blk[1] << 8, 0xC3C0);
    bad = 0;
    for (int j = 0; j < 16; j++) {
        bad += (blk[2 + j] & 0xF) != (527 - 16 * j) / 62;
        bad += (blk[2 + j] >> 4) != (527 - 16 * (j + 16)) / 62;
    }
    CHECK_EQ_INT(bad, 0);
    float back[32];
    dp_dequant_row(DP_TYPE_Q4_0, blk, back, 32);
    CHECK_CLOSE(back[0], -3.875f * (8 - 8), 0, 0);
    CHECK_CLOSE(back[31], 31.0f, 0, 0); /* q = 0: -8 * -3.875 */
    /* ... and the mirror block: max = -31, d = +3.875 = 0x43C0, the same q */
    CHECK(dp_quantize_row(DP_TYPE_Q4_0, neg, blk, 32) == DP_OK);
    CHECK_EQ_INT(blk[0] | blk[1] << 8, 0x43C0);
    bad = 0;
    for (int j = 0; j < 16; j++) bad += (blk[2 + j] & 0xF) != (527 - 16 * j) / 62;
    CHECK_EQ_INT(bad, 0);
    /* a zero block: Q4_0 d = 0/-8 = -0 (0x8000, as llama.cpp stores it), codes 8; Q8_0 d = +0 */
    float z[32] = {0};
    CHECK(dp_quantize_row(DP_TYPE_Q4_0, z, blk, 32) == DP_OK);
    CHECK(blk[0] == 0 && blk[1] == 0x80 && blk[2] == 0x88 && blk[17] == 0x88);
    CHECK(dp_quantize_row(DP_TYPE_Q8_0, z, blk, 32) == DP_OK);
    CHECK(blk[0] == 0 && blk[1] == 0 && blk[2] == 0 && blk[33] == 0);
    /* bad input */
    CHECK(dp_quantize_row(DP_TYPE_Q8_0, x, blk, 31) != DP_OK);
    CHECK(dp_quantize_row(DP_TYPE_Q4_K, x, blk, 32) != DP_OK);
}

static void test_quant_roundtrip(void) {
    enum { N = 32 * 64 };
    float x[N], y[N];
    static uint8_t row[N * 2];
    for (int i = 0; i < N; i++) x[i] = rndf() * (i % 64 < 32 ? 1.0f : 1e-3f) * (float)(1 + i % 7);
    /* Q8_0: |x - d16 q| <= d/2 + 127 |d16 - d| (d = amax/127 before the f16 rounding of the scale) */
    CHECK(dp_quantize_row(DP_TYPE_Q8_0, x, row, N) == DP_OK);
    dp_dequant_row(DP_TYPE_Q8_0, row, y, N);
    int bad = 0;
    for (int b = 0; b < N / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        float d = amax / 127, d16 = dp_f16_to_f32(dp_f32_to_f16(d));
        for (int j = 0; j < 32; j++)
            bad += !(fabsf(x[b * 32 + j] - y[b * 32 + j]) <= d / 2 + 127 * fabsf(d16 - d) + 1e-12f);
    }
    CHECK_EQ_INT(bad, 0);
    /* Q4_0: |x - d16 (q-8)| <= |d|/2 + 8 |d16 - d|, or |d| + ... where x/d + 8.5 >= 16 is clamped to 15 */
    CHECK(dp_quantize_row(DP_TYPE_Q4_0, x, row, N) == DP_OK);
    dp_dequant_row(DP_TYPE_Q4_0, row, y, N);
    bad = 0;
    for (int b = 0; b < N / 32; b++) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(x[b * 32 + j]) > amax) amax = fabsf(x[b * 32 + j]), max = x[b * 32 + j];
        float d = max / -8, d16 = dp_f16_to_f32(dp_f32_to_f16(d));
        for (int j = 0; j < 32; j++) {
            float v = x[b * 32 + j], step = v / d + 8.5f >= 16 ? fabsf(d) : fabsf(d) / 2;
            bad += !(fabsf(v - y[b * 32 + j]) <= step + 8 * fabsf(d16 - d) + 1e-12f);
        }
    }
    CHECK_EQ_INT(bad, 0);
    /* F16 / BF16: relative 2^-11 / 2^-8, and half the smallest F16 subnormal (2^-25) for tiny values */
    CHECK(dp_quantize_row(DP_TYPE_F16, x, row, N) == DP_OK);
    dp_dequant_row(DP_TYPE_F16, row, y, N);
    CHECK_CLOSE_ARR(y, x, N, 0x1p-25, 0x1p-11);
    CHECK(dp_quantize_row(DP_TYPE_BF16, x, row, N) == DP_OK);
    dp_dequant_row(DP_TYPE_BF16, row, y, N);
    CHECK_CLOSE_ARR(y, x, N, 0, 0x1p-8);
}

/* ---- each SIMD set against the scalar set ---- */

static void test_dequant_exact(void) {
    const struct dp_kernel_ops *ref = dp_kernels_scalar();
    /* every F16 and BF16 pattern */
    static uint16_t all[65536 + 3];
    static float a[65536 + 3], b[65536 + 3];
    for (int i = 0; i < 65536 + 3; i++) all[i] = (uint16_t)i;
    for (int s = 0; s < n_sets; s++) {
        for (int ti = 1; ti <= 2; ti++) {
            uint32_t t = ti == 1 ? DP_TYPE_F16 : DP_TYPE_BF16;
            ref->dequant[t](all, a, 65536 + 3);
            if (!sets[s]->dequant[t]) continue;
            sets[s]->dequant[t](all, b, 65536 + 3);
            CHECK_MSG(same_bits("dequant", b, a, 65536 + 3), "%s %s", sets[s]->name, dp_type_name(t));
        }
    }
    /* random blocks, any bits in the scale except NaN and infinity */
    enum { NB = 200 };
    static uint8_t raw[NB * 34];
    for (int i = 0; i < NB * 34; i++) raw[i] = (uint8_t)rnd();
    for (int ti = 3; ti < N_TYPES; ti++) {
        uint32_t t = types[ti];
        size_t bs = dp_type_traits(t)->block_bytes;
        for (int blk = 0; blk < NB; blk++)
            if ((raw[blk * bs + 1] & 0x7C) == 0x7C) raw[blk * bs + 1] &= 0xBF;
        for (int s = 0; s < n_sets; s++) {
            if (!sets[s]->dequant[t]) continue;
            for (int nb = 1; nb <= NB; nb += 37) {
                ref->dequant[t](raw, a, nb * 32);
                sets[s]->dequant[t](raw, b, nb * 32);
                CHECK_MSG(same_bits("dequant", b, a, nb * 32), "%s %s %d blocks", sets[s]->name, dp_type_name(t), nb);
            }
        }
    }
}

static void test_dot(void) {
    static const int64_t ns[] = {1, 7, 15, 16, 17, 31, 33, 100, 1000, 4096, 4099};
    static float a[4099], b[4099];
    for (int i = 0; i < 4099; i++) a[i] = rndf(), b[i] = rndf();
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        int64_t n = ns[i];
        double ref = 0, mag = 0;
        for (int64_t k = 0; k < n; k++) ref += (double)a[k] * b[k], mag += fabs((double)a[k] * b[k]);
        float r = dp_kernels_scalar()->dot(a, b, n);
        CHECK_CLOSE(r, ref, DOT_TOL * mag, 0);
        for (int s = 0; s < n_sets; s++) {
            float v = sets[s]->dot(a, b, n);
            CHECK_MSG(fbits(v) == fbits(r), "%s dot n=%lld: %.9g vs %.9g", sets[s]->name, (long long)n, v, r);
        }
    }
}

/* axpy: one fma per element, so every set gives the scalar reference's bits. */
static void test_axpy(void) {
    static const int64_t ns[] = {1, 7, 8, 15, 16, 17, 33, 128, 131};
    static float x[131], y0[131], r[131], v[131];
    for (int i = 0; i < 131; i++) x[i] = rndf(), y0[i] = rndf();
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        int64_t n = ns[i];
        memcpy(r, y0, sizeof r);
        dp_kernels_scalar()->axpy(0.37f, x, r, n);
        CHECK_CLOSE(r[n - 1], fmaf(0.37f, x[n - 1], y0[n - 1]), 0, 0);
        CHECK(n == 131 || r[n] == y0[n]); /* nothing written past n */
        for (int s = 0; s < n_sets; s++) {
            memcpy(v, y0, sizeof v);
            sets[s]->axpy(0.37f, x, v, n);
            CHECK_MSG(same_bits("axpy", v, r, 131), "%s axpy n=%lld", sets[s]->name, (long long)n);
        }
    }
}

/* attend's exponential: within 2 ulp-ish (3e-7 relative) of exp in double on [-87, 0], 0 below. */
static void test_attend_exp(void) {
    double worst = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f * (float)i / 200000.0f;
        double want = exp((double)x), got = attend_exp(x);
        double rel = fabs(got - want) / want;
        if (rel > worst) worst = rel;
    }
    CHECK_MSG(worst <= 3e-7, "attend_exp worst relative error %.3g", worst);
    CHECK(attend_exp(-87.5f) == 0.0f && attend_exp(-INFINITY) == 0.0f && attend_exp(0.0f) == 1.0f);
}

/*
 * attend: one query's softmax attention, keys as columns for small heads and
 * as rows above. Every set gives the scalar set's bits, and the result is
 * within 1e-5 of softmax attention computed in double.
 */
static void test_attend(void) {
    static const int hds[] = {1, 5, 8, 12, 16, 17, 24, 64, 128, 200};
    static const int nks[] = {1, 2, 3, 5, 16, 17, 33, 130};
    enum { LDK = 131 };
    static float q[256], K[LDK * 256], V[130 * 256], sc[130], r[256], v[256];
    for (int i = 0; i < LDK * 256; i++) K[i] = 2 * rndf();
    for (int i = 0; i < 130 * 256; i++) V[i] = rndf();
    for (int i = 0; i < 256; i++) q[i] = 2 * rndf();
    for (size_t a = 0; a < sizeof hds / sizeof hds[0]; a++)
        for (size_t b = 0; b < sizeof nks / sizeof nks[0]; b++) {
            int hd = hds[a], nk = nks[b];
            bool cols = hd <= DP_ATTEND_SMALL_HD;
            float scale = 1.0f / sqrtf((float)hd);
            double w[130], dref[256] = {0}, dmx = -INFINITY, dsum = 0;
            for (int p = 0; p < nk; p++) {
                double d = 0;
                for (int i = 0; i < hd; i++) d += (double)q[i] * (cols ? K[i * LDK + p] : K[p * hd + i]);
                w[p] = d / sqrt((double)hd);
                dmx = fmax(dmx, w[p]);
            }
            for (int p = 0; p < nk; p++) w[p] = exp(w[p] - dmx), dsum += w[p];
            for (int p = 0; p < nk; p++)
                for (int i = 0; i < hd; i++) dref[i] += w[p] / dsum * V[p * hd + i];
            dp_kernels_scalar()->attend(q, K, LDK, V, nk, hd, scale, sc, r);
            float fref[256];
            for (int i = 0; i < hd; i++) fref[i] = (float)dref[i];
            if (!CHECK_CLOSE_ARR(r, fref, hd, 1e-5, 1e-6)) fprintf(stderr, "  scalar attend hd=%d keys=%d\n", hd, nk);
            for (int s = 0; s < n_sets; s++) {
                for (int i = 0; i < hd; i++) v[i] = -1;
                sets[s]->attend(q, K, LDK, V, nk, hd, scale, sc, v);
                CHECK_MSG(same_bits("attend", v, r, hd), "%s attend hd=%d keys=%d", sets[s]->name, hd, nk);
            }
        }
}

static void test_vecdot_pack(void) {
    static const int64_t ns_any[] = {1, 15, 16, 17, 100, 4099}, ns_blk[] = {32, 96, 4096};
    enum { MAXN = 4099, ROWS = 9 };
    enum { VT = 12 };
    static float X[VT * MAXN], Ya[VT * ROWS], Yb[VT * ROWS];
    static float Pa[DP_GEMM_KC * DP_GEMM_MR_MAX], Pb[DP_GEMM_KC * DP_GEMM_MR_MAX];
    for (int i = 0; i < VT * MAXN; i++) X[i] = rndf();
    const struct dp_kernel_ops *ref = dp_kernels_scalar();
    for (int ti = 0; ti < N_TYPES; ti++) {
        uint32_t t = types[ti];
        const int64_t *ns = is_block_type(t) ? ns_blk : ns_any;
        int nn = is_block_type(t) ? 3 : 6;
        for (int in = 0; in < nn; in++) {
            int64_t n = ns[in];
            void *W = random_row(t, n * ROWS);
            size_t rb = dp_type_row_bytes(t, n);
            for (int s = 0; s < n_sets; s++) {
                const struct dp_kernel_ops *k = sets[s];
                for (int nt = 1; nt <= VT; nt++)
                    for (int nr = 1; nr <= ROWS; nr += 3) {
                        ref->vecdot[t](W, rb, nr, X, MAXN, nt, n, Ya, ROWS);
                        k->vecdot[t](W, rb, nr, X, MAXN, nt, n, Yb, ROWS);
                        int ok = 1;
                        for (int tt = 0; tt < nt; tt++) ok &= same_bits("vecdot", Yb + tt * ROWS, Ya + tt * ROWS, nr);
                        CHECK_MSG(ok, "%s vecdot %s n=%lld rows=%d tok=%d", k->name, dp_type_name(t), (long long)n,
                                  nr, nt);
                    }
                /* one dot product against double precision */
                float w[MAXN];
                dp_dequant_row(t, W, w, n);
                double d = 0, mag = 0;
                for (int64_t i = 0; i < n; i++) d += (double)w[i] * X[i], mag += fabs((double)w[i] * X[i]);
                CHECK_CLOSE(Ya[0], d, DOT_TOL * mag, 0);
                /* panels: a column window away from 0 when the row is long enough */
                int64_t k0 = n > 64 ? 32 : 0, kc = n - k0 < DP_GEMM_KC ? n - k0 : DP_GEMM_KC;
                for (int nr = 1; nr <= k->mr && nr <= ROWS; nr += 4) {
                    ref->pack[t](W, rb, nr, k->mr, k0, kc, Pa);
                    k->pack[t](W, rb, nr, k->mr, k0, kc, Pb);
                    CHECK_MSG(same_bits("pack", Pb, Pa, kc * k->mr), "%s pack %s n=%lld rows=%d", k->name,
                              dp_type_name(t), (long long)n, nr);
                }
            }
            free(W);
        }
    }
}

/* ---- dp_matmul ---- */

static void naive(uint32_t t, const void *W, int64_t n_in, int64_t n_out, const float *X, int n_tok, double *Y,
                  double *mag) {
    float *w = malloc((size_t)n_in * sizeof *w);
    size_t rb = dp_type_row_bytes(t, n_in);
    for (int64_t r = 0; r < n_out; r++) {
        dp_kernels_scalar()->dequant[t]((const uint8_t *)W + r * rb, w, n_in);
        for (int tt = 0; tt < n_tok; tt++) {
            double s = 0, m = 0;
            for (int64_t k = 0; k < n_in; k++) {
                s += (double)w[k] * X[tt * n_in + k];
                m += fabs((double)w[k] * X[tt * n_in + k]);
            }
            Y[tt * n_out + r] = s;
            mag[tt * n_out + r] = m;
        }
    }
    free(w);
}

static void test_matmul(void) {
    struct dp_pool *pools[3] = {dp_pool_new(1), dp_pool_new(2), dp_pool_new(3)};
    /* both orders, tiles cut in every way */
    enum { G = DP_GEMM_MIN_TOK };
    static const int toks[] = {1, 2, 3, 4, 5, 6, 12, 13, 17, G - 1, G, G + 1, G + 13};
    struct shape {
        int64_t n_in, n_out;
    } shapes_any[] = {{67, 33}, {515, 70}, {1029, 7}}, shapes_blk[] = {{64, 33}, {544, 70}, {1056, 5}};
    for (int ti = 0; ti < N_TYPES; ti++) {
        uint32_t t = types[ti];
        for (int si = 0; si < 3; si++) {
            struct shape sh = is_block_type(t) ? shapes_blk[si] : shapes_any[si];
            void *W = random_row(t, sh.n_in * sh.n_out);
            int max_tok = G + 13;
            float *X = malloc((size_t)max_tok * sh.n_in * sizeof *X);
            for (int64_t i = 0; i < max_tok * sh.n_in; i++) X[i] = rndf();
            size_t ny = (size_t)max_tok * sh.n_out;
            float *ref = malloc(ny * sizeof *ref), *y = malloc(ny * sizeof *y);
            double *yd = malloc(ny * sizeof *yd), *mag = malloc(ny * sizeof *mag);
            naive(t, W, sh.n_in, sh.n_out, X, max_tok, yd, mag);
            for (size_t it = 0; it < sizeof toks / sizeof toks[0]; it++) {
                int nt = toks[it];
                dp_kernels_use(dp_kernels_scalar());
                dp_matmul(pools[0], DP_ACT_EXACT, W, t, sh.n_in, sh.n_out, X, nt, ref);
                int worst = 0;
                for (int i = 0; i < nt * sh.n_out; i++)
                    if (!(fabs(ref[i] - yd[i]) <= DOT_TOL * mag[i])) worst++;
                CHECK_MSG(worst == 0, "%s %lldx%lld tok=%d: %d elements off the double reference", dp_type_name(t),
                          (long long)sh.n_out, (long long)sh.n_in, nt, worst);
                for (int s = 0; s < n_sets; s++)
                    for (int p = 0; p < 3; p++) {
                        if (s == 0 && p == 0) continue;
                        dp_kernels_use(sets[s]);
                        memset(y, 0xFF, ny * sizeof *y);
                        dp_matmul(pools[p], DP_ACT_EXACT, W, t, sh.n_in, sh.n_out, X, nt, y);
                        CHECK_MSG(same_bits("matmul", y, ref, (int64_t)nt * sh.n_out), "%s %s %lldx%lld tok=%d threads=%d",
                                  sets[s]->name, dp_type_name(t), (long long)sh.n_out, (long long)sh.n_in, nt, p + 1);
                    }
            }
            dp_kernels_use(NULL);
            free(W), free(X), free(ref), free(y), free(yd), free(mag);
        }
    }
    for (int p = 0; p < 3; p++) dp_pool_free(pools[p]);
}

static void test_dispatch(void) {
    setenv("DP_SCALAR", "1", 1);
    CHECK(dp_kernels_best() == dp_kernels_scalar());
    dp_kernels_use(NULL);
    CHECK(dp_kernels() == dp_kernels_scalar());
    setenv("DP_SCALAR", "0", 1);
    const struct dp_kernel_ops *best = dp_kernels_best();
    CHECK(best == (dp_kernels_avx512() ? dp_kernels_avx512() : dp_kernels_avx2() ? dp_kernels_avx2() : dp_kernels_scalar()));
    unsetenv("DP_SCALAR");
    dp_kernels_use(NULL);
    CHECK(dp_kernels() == best);
    /* DP_KERNELS names a set; one the CPU lacks or an unknown name gives the best; DP_SCALAR wins */
    setenv("DP_KERNELS", "scalar", 1);
    CHECK(dp_kernels_best() == dp_kernels_scalar());
    setenv("DP_KERNELS", "avx2", 1);
    CHECK(dp_kernels_best() == (dp_kernels_avx2() ? dp_kernels_avx2() : best));
    setenv("DP_SCALAR", "1", 1);
    CHECK(dp_kernels_best() == dp_kernels_scalar());
    unsetenv("DP_SCALAR");
    setenv("DP_KERNELS", "avx512", 1);
    CHECK(dp_kernels_best() == best);
    setenv("DP_KERNELS", "nonesuch", 1);
    CHECK(dp_kernels_best() == best);
    unsetenv("DP_KERNELS");
    CHECK(dp_kernels_supported(DP_TYPE_Q4_0) && dp_kernels_supported(DP_TYPE_Q4_K) &&
          !dp_kernels_supported(DP_TYPE_IQ2_XXS) && !dp_kernels_supported(999));
    printf("kernel sets tested: scalar%s%s\n", dp_kernels_avx2() ? ", avx2" : "", dp_kernels_avx512() ? ", avx512" : "");
}

int main(void) {
    n_sets = kernel_sets(sets);
    test_dispatch();
    test_conversions();
    test_quant_known();
    test_quant_roundtrip();
    test_dequant_exact();
    test_dot();
    test_axpy();
    test_attend_exp();
    test_attend();
    test_vecdot_pack();
    test_matmul();
    return TEST_END();
}
