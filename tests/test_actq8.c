/*
 * test_actq8: the q8 activation mode (kernels.h, `--act q8`).
 *
 * Bit-exact: the rounding of activations (quant_act) and the q8-order
 * products (vecdot_q8) of every SIMD set against the scalar set, on random
 * blocks with any code bytes (Q8_0 -128 included) and any finite scales;
 * dp_matmul in the q8 mode for 1, 2 and 3 threads and every set; one token
 * at a time against a batch (one order for every n_tok), for products and
 * for a whole model's logits; F32/F16/BF16 weights unaffected by the mode.
 * Against llama.cpp: the rounding equals dp_quantize_row(Q8_0) (llama.cpp's
 * quantize_row_q8_0_ref, checked by hand in test_kernels), ties round away
 * from zero, and a q8 product equals sum_k w_k * xhat_k (xhat: x rounded and
 * dequantized) to within the float rounding of the chain,
 * |err| <= (nb + 2) 2^-24 sum_k |w_k xhat_k|.
 * Against the exact mode (the stated tolerance): with d_b = amax_b/127 the
 * block's step, |x - dx*qx| <= d_b/2 + 127 |dx - d_b| <= d_b (1/2 + 127 * 2^-11)
 * for a normal f16 scale, so per output
 *     |y_q8 - y_exact| <= Q8_ERR * sum_b amax_b * sum_{k in b} |w_k|
 *                         + (nb + 200) 2^-24 * (the same sum),
 * Q8_ERR = (1/2 + 127 * 2^-11) / 127 = 0.00443 (the second term covers the
 * float rounding of both modes' sums). The measured worst and rms errors are
 * printed.
 */
#include "kernel_testing.h"
#include "model.h"

#include <float.h>
#include <stdint.h>

#define Q8_ERR ((0.5 + 127.0 / 2048.0) / 127.0)

static const struct dp_kernel_ops *sets[3];
static int n_sets;
static const uint32_t qtypes[2] = {DP_TYPE_Q8_0, DP_TYPE_Q4_0};

/* Rounded activations of n_tok rows of n_in, owned. */
struct act {
    int8_t *q;
    float *d;
    int32_t *bias;
    struct dp_act_q8 a;
};
static void act_make(struct act *A, const struct dp_kernel_ops *k, const float *X, int n_tok, int64_t n_in,
                     int32_t off) {
    int64_t nb = n_in / 32;
    A->q = malloc((size_t)(n_tok * n_in));
    A->d = malloc((size_t)(n_tok * nb) * sizeof(float));
    A->bias = malloc((size_t)(n_tok * nb) * sizeof(int32_t));
    for (int t = 0; t < n_tok; t++) k->quant_act(X + t * n_in, n_in, off, A->q + t * n_in, A->d + t * nb, A->bias + t * nb);
    A->a = (struct dp_act_q8){A->q, A->d, A->bias, n_in, NULL, NULL};
}
static void act_free(struct act *A) { free(A->q), free(A->d), free(A->bias); }

/* ---- rounding of activations ---- */

static void test_quant_act(void) {
    const struct dp_kernel_ops *ref = dp_kernels_scalar();
    int8_t q[64];
    float d[2];
    int32_t bias[2];
    /* the block 0..31 (test_kernels): d = 31/127 as f16 0x33D0, q = round(127 j / 31) */
    static const int8_t q8[32] = {0,  4,  8,  12, 16, 20, 25, 29,  33,  37,  41,  45,  49,  53,  57,  61,
                                  66, 70, 74, 78, 82, 86, 90, 94, 98, 102, 107, 111, 115, 119, 123, 127};
    float x[64];
    for (int j = 0; j < 32; j++) x[j] = (float)j;
    ref->quant_act(x, 32, 128, q, d, bias);
    CHECK(fbits(d[0]) == fbits(dp_f16_to_f32(0x33D0)));
    int bad = 0, sum = 0;
    for (int j = 0; j < 32; j++) bad += q[j] != q8[j], sum += q8[j];
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(bias[0], -128 * sum);
    /* ties round away from zero: amax 127 gives d = 1 and x*id = x */
    static const float tx[10] = {127, 0.5f, -0.5f, 1.5f, -1.5f, 2.5f, 126.5f, -126.5f, 0.49999997f, -2.5f};
    static const int8_t tq[10] = {127, 1, -1, 2, -2, 3, 127, -127, 0, -3};
    memset(x, 0, sizeof x);
    memcpy(x, tx, sizeof tx);
    ref->quant_act(x, 32, 8, q, d, bias);
    CHECK(d[0] == 1.0f);
    bad = 0;
    for (int j = 0; j < 10; j++) bad += q[j] != tq[j];
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(bias[0], -8 * (127 + 1 - 1 + 2 - 2 + 3 + 127 - 127 + 0 - 3));
    /* a zero block, and non-finite values (d NaN, q 0) */
    for (int j = 0; j < 64; j++) x[j] = 0;
    x[40] = NAN;
    ref->quant_act(x, 64, 128, q, d, bias);
    CHECK(d[0] == 0 && bias[0] == 0 && isnan(d[1]) && bias[1] == 0 && q[33] == 0);
    x[40] = -INFINITY;
    ref->quant_act(x, 64, 128, q, d, bias);
    CHECK(isnan(d[1]));

    /* random rows of every magnitude, with ties: equal to dp_quantize_row(Q8_0), and every set to the reference */
    enum { N = 32 * 300 };
    static float xr[N], da[N / 32], db[N / 32];
    static int8_t qa[N], qb[N];
    static int32_t ba[N / 32], bb[N / 32];
    static uint8_t blk[N / 32 * 34];
    for (int i = 0; i < N; i++) {
        int b = i / 32;
        float scale = ldexpf(1.0f, b % 40 - 20);
        xr[i] = b % 7 == 3 ? (float)((int)(rnd() % 255) - 127) * 0.5f * scale : rndf() * scale;
        if (b % 7 == 3 && i % 32 == 0) xr[i] = 127 * scale; /* amax 127 * 2^e: halves are ties */
    }
    ref->quant_act(xr, N, 128, qa, da, ba);
    CHECK(dp_quantize_row(DP_TYPE_Q8_0, xr, blk, N) == DP_OK);
    bad = 0;
    for (int b = 0; b < N / 32; b++) {
        bad += fbits(da[b]) != fbits(dp_f16_to_f32((uint16_t)(blk[b * 34] | blk[b * 34 + 1] << 8)));
        int s = 0;
        for (int j = 0; j < 32; j++) bad += qa[b * 32 + j] != (int8_t)blk[b * 34 + 2 + j], s += qa[b * 32 + j];
        bad += ba[b] != -128 * s;
    }
    CHECK_MSG(bad == 0, "%d differences from dp_quantize_row(Q8_0)", bad);
    xr[77] = NAN, xr[200] = INFINITY;
    ref->quant_act(xr, N, 8, qa, da, ba);
    for (int s = 0; s < n_sets; s++) {
        if (!sets[s]->quant_act) continue;
        sets[s]->quant_act(xr, N, 8, qb, db, bb);
        CHECK_MSG(same_bits("d", db, da, N / 32) && !memcmp(qa, qb, N) && !memcmp(ba, bb, sizeof ba), "%s quant_act",
                  sets[s]->name);
    }
}

/* ---- q8-order products: every set against the scalar one ---- */

/* n random blocks of `type`: any code bytes, any finite scale. */
static uint8_t *random_blocks(uint32_t type, int64_t n_blocks) {
    size_t bs = dp_type_traits(type)->block_bytes;
    uint8_t *p = malloc((size_t)n_blocks * bs + 64);
    for (size_t i = 0; i < (size_t)n_blocks * bs; i++) p[i] = (uint8_t)rnd();
    for (int64_t b = 0; b < n_blocks; b++) {
        if ((p[b * bs + 1] & 0x7C) == 0x7C) p[b * bs + 1] &= 0xBF; /* no infinity or NaN */
        if (b % 5 == 0) p[b * bs + 2] = 0x80;                      /* Q8_0: -128 */
    }
    return p;
}

static void test_vecdot_q8(void) {
    static const int64_t ns[] = {32, 96, 544, 1056};
    static const int toks[] = {1, 2, 3, 4, 5, 8, 9, 13, 16, 17, 31, 40};
    enum { ROWS = 33, MAXT = 40, MAXN = 1056 };
    static float X[MAXT * MAXN], Ya[MAXT * ROWS], Yb[MAXT * ROWS];
    for (int i = 0; i < MAXT * MAXN; i++) X[i] = rndf() * (i % 97 == 0 ? 30.0f : 1.0f);
    const struct dp_kernel_ops *ref = dp_kernels_scalar();
    for (int ti = 0; ti < 2; ti++) {
        uint32_t t = qtypes[ti];
        for (size_t in = 0; in < sizeof ns / sizeof ns[0]; in++) {
            int64_t n = ns[in];
            size_t rb = dp_type_row_bytes(t, n);
            uint8_t *W = random_blocks(t, n / 32 * ROWS);
            struct act A;
            act_make(&A, ref, X, MAXT, n, t == DP_TYPE_Q8_0 ? 128 : 8);
            for (int s = 0; s < n_sets; s++) {
                const struct dp_kernel_ops *k = sets[s];
                if (!k->vecdot_q8[t]) continue;
                for (size_t it = 0; it < sizeof toks / sizeof toks[0]; it++)
                    for (int nr = 1; nr <= ROWS; nr += nr < 17 ? 3 : 8) {
                        int nt = toks[it];
                        ref->vecdot_q8[t](W, rb, nr, &A.a, nt, Ya, ROWS);
                        memset(Yb, 0xFF, sizeof Yb);
                        k->vecdot_q8[t](W, rb, nr, &A.a, nt, Yb, ROWS);
                        int ok = 1;
                        for (int tt = 0; tt < nt; tt++) ok &= same_bits("vecdot_q8", Yb + tt * ROWS, Ya + tt * ROWS, nr);
                        CHECK_MSG(ok, "%s vecdot_q8 %s n=%lld rows=%d tok=%d", k->name, dp_type_name(t), (long long)n,
                                  nr, nt);
                    }
            }
            act_free(&A);
            free(W);
        }
    }
}

/* ---- dp_matmul in the q8 mode ---- */

/* A matrix of n_out rows of n_in random values (|x| < 1) in `type`. */
static void *random_matrix(uint32_t type, int64_t n_in, int64_t n_out) {
    float *x = malloc((size_t)(n_in * n_out) * sizeof *x);
    for (int64_t i = 0; i < n_in * n_out; i++) x[i] = rndf();
    void *W = malloc(dp_type_row_bytes(type, n_in) * (size_t)n_out + 64);
    CHECK(dp_quantize_row(type, x, W, n_in * n_out) == DP_OK);
    free(x);
    return W;
}

/* Worst ratio of |error| to the bound and rms error relative to rms y, over every q8 product checked. */
static double worst_ratio, err2, y2;

/*
 * y (n_tok x n_out) from the q8 mode against the exact mode's ye (the
 * stated tolerance) and against sum_k w_k xhat_k in double (llama.cpp's
 * rounding, the chain's float rounding).
 */
static int check_q8_against(uint32_t t, const void *W, int64_t n_in, int64_t n_out, const float *X, int n_tok,
                            const float *y, const float *ye) {
    int64_t nb = n_in / 32;
    size_t rb = dp_type_row_bytes(t, n_in);
    float *w = malloc((size_t)n_in * sizeof *w), *xh = malloc((size_t)n_in * sizeof *xh);
    uint8_t *blk = malloc((size_t)nb * 34);
    double *amax = malloc((size_t)nb * sizeof *amax);
    int bad = 0;
    for (int tt = 0; tt < n_tok; tt++) {
        const float *x = X + tt * n_in;
        dp_quantize_row(DP_TYPE_Q8_0, x, blk, n_in);
        dp_dequant_row(DP_TYPE_Q8_0, blk, xh, n_in);
        for (int64_t b = 0; b < nb; b++) {
            amax[b] = 0;
            for (int j = 0; j < 32; j++) amax[b] = fmax(amax[b], fabs(x[b * 32 + j]));
        }
        for (int64_t r = 0; r < n_out; r++) {
            dp_dequant_row(t, (const uint8_t *)W + r * rb, w, n_in);
            double s = 0, mag = 0, bound = 0;
            for (int64_t b = 0; b < nb; b++) {
                double l1 = 0;
                for (int j = 0; j < 32; j++) {
                    int64_t k = b * 32 + j;
                    s += (double)w[k] * xh[k];
                    mag += fabs((double)w[k] * xh[k]);
                    l1 += fabs(w[k]);
                }
                bound += amax[b] * l1;
            }
            double yq = y[tt * n_out + r], yx = ye[tt * n_out + r];
            double tol = Q8_ERR * bound + (double)(nb + 200) * 0x1p-24 * bound;
            if (!(fabs(yq - s) <= (double)(nb + 2) * 0x1p-24 * mag + 1e-30)) {
                if (bad++ < 3) fprintf(stderr, "  tok %d row %lld: q8 %.9g vs sum w*xhat %.9g\n", tt, (long long)r, yq, s);
            }
            if (!(fabs(yq - yx) <= tol)) {
                if (bad++ < 3) fprintf(stderr, "  tok %d row %lld: q8 %.9g vs exact %.9g, bound %.3g\n", tt, (long long)r, yq, yx, tol);
            }
            if (bound > 0) worst_ratio = fmax(worst_ratio, fabs(yq - yx) / (Q8_ERR * bound));
            err2 += (yq - yx) * (yq - yx);
            y2 += yx * yx;
        }
    }
    free(w), free(xh), free(blk), free(amax);
    return bad;
}

static void test_matmul_q8(void) {
    struct dp_pool *pools[3] = {dp_pool_new(1), dp_pool_new(2), dp_pool_new(3)};
    static const int toks[] = {1, 2, 5, 17, DP_GEMM_MIN_TOK - 1, DP_GEMM_MIN_TOK, 100, 300};
    enum { MAXT = 300 };
    struct shape {
        int64_t n_in, n_out;
    } shapes[] = {{64, 33}, {544, 70}, {1056, 5}, {4096, 20}};
    for (int ti = 0; ti < 2; ti++) {
        uint32_t t = qtypes[ti];
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            struct shape sh = shapes[si];
            bool big = sh.n_in > 2000;
            void *W = random_matrix(t, sh.n_in, sh.n_out);
            float *X = malloc((size_t)(MAXT * sh.n_in) * sizeof *X);
            for (int64_t i = 0; i < MAXT * sh.n_in; i++) X[i] = rndf() * (i % 61 == 0 ? 8.0f : 1.0f);
            size_t ny = (size_t)(MAXT * sh.n_out);
            float *ref = malloc(ny * sizeof *ref), *y = malloc(ny * sizeof *y), *ye = malloc(ny * sizeof *ye);
            for (size_t it = 0; it < sizeof toks / sizeof toks[0]; it++) {
                int nt = toks[it];
                if (big && nt > 17) continue;
                dp_kernels_use(dp_kernels_scalar());
                dp_matmul(pools[0], DP_ACT_Q8, W, t, sh.n_in, sh.n_out, X, nt, ref);
                dp_matmul(pools[0], DP_ACT_EXACT, W, t, sh.n_in, sh.n_out, X, nt, ye);
                int bad = check_q8_against(t, W, sh.n_in, sh.n_out, X, nt, ref, ye);
                CHECK_MSG(bad == 0, "%s %lldx%lld tok=%d: %d elements out of tolerance", dp_type_name(t),
                          (long long)sh.n_out, (long long)sh.n_in, nt, bad);
                for (int s = 0; s < n_sets; s++)
                    for (int p = 0; p < 3; p++) {
                        if (s == 0 && p == 0) continue;
                        dp_kernels_use(sets[s]);
                        memset(y, 0xFF, ny * sizeof *y);
                        dp_matmul(pools[p], DP_ACT_Q8, W, t, sh.n_in, sh.n_out, X, nt, y);
                        CHECK_MSG(same_bits("matmul q8", y, ref, (int64_t)nt * sh.n_out), "%s %s %lldx%lld tok=%d threads=%d",
                                  sets[s]->name, dp_type_name(t), (long long)sh.n_out, (long long)sh.n_in, nt, p + 1);
                    }
                /* one token at a time gives the batch's bits */
                dp_kernels_use(NULL);
                int ok = 1;
                for (int tt = 0; tt < nt && ok; tt++) {
                    dp_matmul(pools[1], DP_ACT_Q8, W, t, sh.n_in, sh.n_out, X + tt * sh.n_in, 1, y);
                    ok = same_bits("q8 decode vs batch", y, ref + tt * sh.n_out, sh.n_out);
                }
                CHECK_MSG(ok, "%s %lldx%lld tok=%d: a token alone differs from the batch", dp_type_name(t),
                          (long long)sh.n_out, (long long)sh.n_in, nt);
            }
            free(W), free(X), free(ref), free(y), free(ye);
        }
    }
    printf("q8 vs exact: worst |error| / bound %.3f, rms error / rms y %.2e\n", worst_ratio, sqrt(err2 / y2));
    CHECK(worst_ratio > 0.01 && worst_ratio <= 1); /* the mode was on, and the bound is not vacuous */

    /* other weight types ignore the mode */
    static const uint32_t others[] = {DP_TYPE_F32, DP_TYPE_F16, DP_TYPE_BF16};
    for (int oi = 0; oi < 3; oi++) {
        void *W = random_matrix(others[oi], 96, 40);
        float X[70 * 96], a[70 * 40], b[70 * 40];
        for (int i = 0; i < 70 * 96; i++) X[i] = rndf();
        for (int nt = 1; nt <= 70; nt += 69) {
            dp_matmul(pools[1], DP_ACT_EXACT, W, others[oi], 96, 40, X, nt, a);
            dp_matmul(pools[1], DP_ACT_Q8, W, others[oi], 96, 40, X, nt, b);
            CHECK_MSG(same_bits("other types", b, a, nt * 40), "%s tok=%d", dp_type_name(others[oi]), nt);
        }
        free(W);
    }
    for (int p = 0; p < 3; p++) dp_pool_free(pools[p]);
}

/* ---- a whole model ---- */

/* Logits of ids in a session of mode act (DP_ACT_DEFAULT: the model's). */
static float *logits_of(struct dp_model *m, enum dp_act act, const int *ids, int n, bool incremental) {
    struct dp_session_params sp = dp_session_default_params();
    sp.n_ctx = n;
    sp.act = act;
    struct dp_session *s;
    if (dp_session_new_with(m, &sp, &s)) return NULL;
    struct dp_pool *pool = dp_pool_new(2);
    int V = dp_model_config(m)->n_vocab;
    float *lg = malloc((size_t)(n * V) * sizeof *lg);
    dp_status st = DP_OK;
    if (incremental)
        for (int t = 0; t < n && !st; t++) st = dp_session_forward(s, pool, ids + t, 1, lg + t * V, DP_LOGITS_LAST);
    else st = dp_session_forward(s, pool, ids, n, lg, DP_LOGITS_ALL);
    dp_pool_free(pool);
    dp_session_free(s);
    if (st) free(lg);
    return st ? NULL : lg;
}

/*
 * The mode belongs to the session and the model, not the process: two
 * sessions of one model in different modes, their tokens interleaved, each
 * give the bits they give alone; a model opened in q8 mode makes q8 sessions.
 */
static void test_modes_per_session(struct dp_model *m, const int *ids, int n, const float *q8, const float *exact,
                                   const float *exact_inc) {
    int V = dp_model_config(m)->n_vocab;
    struct dp_session_params sp = dp_session_default_params();
    sp.n_ctx = n;
    struct dp_session *sq = NULL, *se = NULL;
    sp.act = DP_ACT_Q8;
    CHECK(dp_session_new_with(m, &sp, &sq) == DP_OK);
    sp.act = DP_ACT_EXACT;
    CHECK(dp_session_new_with(m, &sp, &se) == DP_OK);
    if (!sq || !se) goto done;
    CHECK(dp_session_act(sq) == DP_ACT_Q8 && dp_session_act(se) == DP_ACT_EXACT);
    CHECK(dp_model_act(m) == DP_ACT_EXACT);
    struct dp_pool *pool = dp_pool_new(2);
    float *lq = malloc((size_t)V * sizeof *lq), *le = malloc((size_t)V * sizeof *le);
    int ok = 1;
    for (int t = 0; t < n && ok; t++) {
        ok = !dp_session_forward(sq, pool, ids + t, 1, lq, DP_LOGITS_LAST) &&
             !dp_session_forward(se, pool, ids + t, 1, le, DP_LOGITS_LAST);
        ok = ok && same_bits("interleaved q8 session", lq, q8 + (size_t)t * V, V) &&
             same_bits("interleaved exact session", le, exact_inc + (size_t)t * V, V);
    }
    CHECK_MSG(ok, "two sessions in different modes interfere");
    free(lq), free(le);
    dp_pool_free(pool);
    sp.act = (enum dp_act)7;
    struct dp_session *bad = NULL;
    CHECK(dp_session_new_with(m, &sp, &bad) == DP_ERR_ARG && !bad);
done:
    dp_session_free(sq), dp_session_free(se);

    /* a model opened in the q8 mode: its default sessions are q8 */
    struct dp_model_params mp = dp_model_default_params();
    CHECK(mp.act == DP_ACT_EXACT && !mp.vocab_path);
    mp.act = DP_ACT_Q8;
    struct dp_model *mq;
    if (dp_model_open_with(dp_model_path(m), &mp, &mq)) {
        CHECK_MSG(0, "%s", dp_last_error());
        return;
    }
    CHECK(dp_model_act(mq) == DP_ACT_Q8);
    float *d = logits_of(mq, DP_ACT_DEFAULT, ids, n, false), *x = logits_of(mq, DP_ACT_EXACT, ids, n, false);
    CHECK(d && same_bits("q8 model, default session", d, q8, (int64_t)n * V));
    CHECK(x && same_bits("q8 model, exact session", x, exact, (int64_t)n * V));
    free(d), free(x);
    dp_model_close(mq);
    mp.act = (enum dp_act)-3;
    CHECK(dp_model_open_with(dp_model_path(m), &mp, &mq) == DP_ERR_ARG && !mq);
}

static void test_model(void) {
    struct dp_model *m;
    if (dp_model_open(test_shared("models/synthetic/synth-llama-q8_0.gguf"), NULL, &m)) {
        CHECK_MSG(0, "the model checks need their fixture: %s", dp_last_error());
        return;
    }
    enum { N = 80 };
    int ids[N];
    for (int i = 0; i < N; i++) ids[i] = (int)(rnd() % 512);
    int V = dp_model_config(m)->n_vocab;
    float *a = logits_of(m, DP_ACT_Q8, ids, N, false), *b = logits_of(m, DP_ACT_Q8, ids, N, true);
    float *e = logits_of(m, DP_ACT_DEFAULT, ids, N, false);
    CHECK(a && b && e);
    if (a && b && e) {
        /* a batch of 64+ tokens and one token at a time: the same bits in the q8 mode */
        CHECK(same_bits("q8 logits, batch vs decode", a, b, (int64_t)N * V));
        double d2 = 0, e2 = 0;
        for (int64_t i = 0; i < (int64_t)N * V; i++) d2 += (double)(a[i] - e[i]) * (a[i] - e[i]), e2 += (double)e[i] * e[i];
        printf("synth-llama-q8_0 logits, q8 vs exact: rms difference / rms logit %.2e\n", sqrt(d2 / e2));
        CHECK(d2 > 0 && sqrt(d2 / e2) < 0.05);
        float *ei = logits_of(m, DP_ACT_EXACT, ids, N, true);
        CHECK(ei != NULL);
        if (ei) test_modes_per_session(m, ids, N, a, e, ei);
        free(ei);
    }
    free(a), free(b), free(e);
    dp_model_close(m);
}

int main(void) {
    *rng_state() = 0x2545F4914F6CDD1Dull; /* this file's data, as before the generator was shared */
    n_sets = kernel_sets(sets);
    printf("q8 kernel sets tested:");
    for (int s = 0; s < n_sets; s++)
        if (sets[s]->vecdot_q8[DP_TYPE_Q8_0]) printf(" %s", sets[s]->name);
    printf("\n");
    enum dp_act mode;
    CHECK(dp_kernels_act_parse("q8", &mode) == DP_OK && mode == DP_ACT_Q8);
    CHECK(dp_kernels_act_parse("exact", &mode) == DP_OK && mode == DP_ACT_EXACT);
    CHECK(dp_kernels_act_parse("q4", &mode) == DP_ERR_ARG);
    CHECK(!strcmp(dp_kernels_act_name(DP_ACT_Q8), "q8") && !strcmp(dp_kernels_act_name(DP_ACT_EXACT), "exact"));
    CHECK(!strcmp(dp_kernels_act_name(DP_ACT_DEFAULT), "default"));
    test_quant_act();
    test_vecdot_q8();
    test_matmul_q8();
    test_model();
    return TEST_END();
}
