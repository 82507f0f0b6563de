/*
 * test_families: the forward pass of each model family on the fixtures of
 * ../shared/models/families/ (random weights written as llama.cpp's loader
 * expects them; llama.cpp's perplexities are checked by cli_families.sh).
 *
 *  - logits of 48 tokens against a double-precision forward written here
 *    from each family's definition, reading tensors by their GGUF names and
 *    hyperparameters by their keys (not through model.c's loader): llama3
 *    RoPE frequency factors and tied output, qwen2 q/k/v biases, qwen3
 *    per-head q/k norms with q width != dim, phi3's fused attn_qkv and
 *    gate-then-up ffn_up, gemma2's embedding scale, pre/post norms,
 *    tanh-GELU, attention and final soft-caps and sliding window on even
 *    layers (48 > window 32, so the window masks keys), gemma3's q/k norms,
 *    local/global RoPE bases and window pattern. Tolerance 1e-4 abs + 1e-5
 *    rel per logit (f32 against double; the largest difference seen is 8e-6);
 *  - a sliding-window session whose cache is a ring (context 2048) gives the
 *    bits of one with a linear cache (context 576) over 576 tokens; going
 *    back further than the ring keeps fails with a message;
 *  - the training tape equals the forward pass bit for bit on llama3, qwen2
 *    and phi3, and refuses gemma2 and qwen3 naming the missing gradient;
 *  - an unknown architecture fails naming it and the supported list.
 */
#include "harness.h"

#include "backward.h"
#include "layer.h"
#include "model.h"

#include <unistd.h>

static const char *fixture(const char *name) {
    static char buf[4][512];
    static int k;
    char rel[256];
    snprintf(rel, sizeof rel, "models/families/synth-%s.gguf", name);
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "%s", test_shared(rel));
    return b;
}

/* ---- the double-precision reference ---- */

struct ref {
    const struct dp_gguf *g;
    char arch[32];
    int dim, L, nh, nkv, hd, n_rot, ff, V, window;
    double eps, base, base_swa, cap_attn, cap_final;
    bool neox, gemma, gemma2, gemma3, phi3;
};

/* A whole tensor in double, rows of n_in; NULL when absent. */
static double *tensor(const struct ref *r, const char *name, int64_t *n_out) {
    const struct dp_gguf_tensor *t = dp_gguf_find_tensor(r->g, name);
    if (!t) return NULL;
    int64_t n_in = t->ne[0], rows = t->ne[1];
    size_t rb = dp_type_row_bytes(t->type, n_in);
    double *d = malloc((size_t)(n_in * rows) * sizeof *d);
    float *row = malloc((size_t)n_in * sizeof *row);
    for (int64_t i = 0; i < rows; i++) {
        dp_dequant_row(t->type, t->data + (size_t)i * rb, row, n_in);
        for (int64_t j = 0; j < n_in; j++) d[i * n_in + j] = row[j];
    }
    free(row);
    if (n_out) *n_out = rows;
    return d;
}

static double *blk(const struct ref *r, int l, const char *sfx) {
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s", l, sfx);
    return tensor(r, name, NULL);
}

static int64_t key_int(const struct ref *r, const char *sfx, int64_t dflt) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", r->arch, sfx);
    int64_t v = dflt;
    dp_gguf_get_int(r->g, key, false, &v);
    return v;
}

static double key_float(const struct ref *r, const char *sfx, double dflt) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", r->arch, sfx);
    double v = dflt;
    dp_gguf_get_float(r->g, key, false, &v);
    return v;
}

/* y (n_out) = W (n_out, n_in) x, plus b when given */
static void mv(double *y, const double *W, const double *b, const double *x, int n_in, int n_out) {
    for (int o = 0; o < n_out; o++) {
        double s = b ? b[o] : 0;
        for (int i = 0; i < n_in; i++) s += W[(size_t)o * n_in + i] * x[i];
        y[o] = s;
    }
}

static void rms(double *y, const double *x, const double *w, int n, double eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double s = 1 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * s * w[i];
}

static void rope_d(const struct ref *r, double *v, int pos, double base, const double *ff) {
    for (int i = 0; i < r->n_rot / 2; i++) {
        double f = pow(base, -2.0 * i / r->n_rot) / (ff ? ff[i] : 1.0), a = pos * f;
        int p0 = r->neox ? i : 2 * i, p1 = r->neox ? i + r->n_rot / 2 : 2 * i + 1;
        double x0 = v[p0], x1 = v[p1];
        v[p0] = x0 * cos(a) - x1 * sin(a);
        v[p1] = x0 * sin(a) + x1 * cos(a);
    }
}

static bool sliding(const struct ref *r, int l) {
    if (r->gemma2) return l % 2 == 0;
    if (r->gemma3) return l % 6 < 5;
    return false;
}

/* logits (n, V) of ids in double */
static double *ref_forward(const struct dp_model *m, const int *ids, int n) {
    struct ref r = {.g = m->gguf};
    dp_gguf_get_str(r.g, "general.architecture", true, r.arch, sizeof r.arch);
    r.dim = (int)key_int(&r, "embedding_length", 0);
    r.L = (int)key_int(&r, "block_count", 0);
    r.nh = (int)key_int(&r, "attention.head_count", 0);
    r.nkv = (int)key_int(&r, "attention.head_count_kv", r.nh);
    r.hd = (int)key_int(&r, "attention.key_length", r.dim / r.nh);
    r.n_rot = (int)key_int(&r, "rope.dimension_count", r.hd);
    r.ff = (int)key_int(&r, "feed_forward_length", 0);
    r.eps = key_float(&r, "attention.layer_norm_rms_epsilon", 1e-5);
    r.base = key_float(&r, "rope.freq_base", 10000);
    r.base_swa = key_float(&r, "rope.freq_base_swa", 10000);
    r.gemma2 = !strcmp(r.arch, "gemma2");
    r.gemma3 = !strcmp(r.arch, "gemma3");
    r.gemma = r.gemma2 || r.gemma3;
    r.phi3 = !strcmp(r.arch, "phi3");
    r.neox = strcmp(r.arch, "llama") != 0;
    r.window = (int)key_int(&r, "attention.sliding_window", 0);
    r.cap_attn = r.gemma2 ? key_float(&r, "attn_logit_softcapping", 50) : 0;
    r.cap_final = r.gemma2 ? key_float(&r, "final_logit_softcapping", 30) : 0;
    int64_t V;
    double *emb = tensor(&r, "token_embd.weight", &V), *out = tensor(&r, "output.weight", NULL);
    double *onorm = tensor(&r, "output_norm.weight", NULL), *ff = tensor(&r, "rope_freqs.weight", NULL);
    r.V = (int)V;
    int D = r.dim, qd = r.nh * r.hd, kvd = r.nkv * r.hd;
    double *x = calloc((size_t)n * D, sizeof *x), *xn = malloc((size_t)D * sizeof *xn);
    double *Q = malloc((size_t)n * qd * sizeof *Q), *K = malloc((size_t)n * kvd * sizeof *K);
    double *Vv = malloc((size_t)n * kvd * sizeof *Vv), *o = malloc((size_t)qd * sizeof *o);
    double *d = malloc((size_t)D * sizeof *d), *g = malloc((size_t)r.ff * sizeof *g), *u = malloc((size_t)r.ff * sizeof *u);
    double *p = malloc((size_t)n * sizeof *p);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < D; i++) x[(size_t)t * D + i] = emb[(size_t)ids[t] * D + i] * (r.gemma ? sqrt(D) : 1.0);
    for (int l = 0; l < r.L; l++) {
        double *an = blk(&r, l, "attn_norm.weight"), *wo = blk(&r, l, "attn_output.weight");
        double *wq, *wk, *wv, *qkv = NULL;
        if (r.phi3) { /* rows q, then k, then v */
            qkv = blk(&r, l, "attn_qkv.weight");
            wq = qkv, wk = qkv + (size_t)qd * D, wv = qkv + (size_t)(qd + kvd) * D;
        } else {
            wq = blk(&r, l, "attn_q.weight"), wk = blk(&r, l, "attn_k.weight"), wv = blk(&r, l, "attn_v.weight");
        }
        double *bq = blk(&r, l, "attn_q.bias"), *bk = blk(&r, l, "attn_k.bias"), *bv = blk(&r, l, "attn_v.bias");
        double *qn = blk(&r, l, "attn_q_norm.weight"), *kn = blk(&r, l, "attn_k_norm.weight");
        double *pa = blk(&r, l, "post_attention_norm.weight"), *pf = blk(&r, l, "post_ffw_norm.weight");
        bool swa = sliding(&r, l);
        double base = r.gemma3 && swa ? r.base_swa : r.base;
        for (int t = 0; t < n; t++) {
            rms(xn, x + (size_t)t * D, an, D, r.eps);
            mv(Q + (size_t)t * qd, wq, bq, xn, D, qd);
            mv(K + (size_t)t * kvd, wk, bk, xn, D, kvd);
            mv(Vv + (size_t)t * kvd, wv, bv, xn, D, kvd);
            for (int h = 0; h < r.nh; h++) {
                double *q = Q + (size_t)t * qd + (size_t)h * r.hd;
                if (qn) rms(q, q, qn, r.hd, r.eps);
                rope_d(&r, q, t, base, ff);
            }
            for (int h = 0; h < r.nkv; h++) {
                double *k = K + (size_t)t * kvd + (size_t)h * r.hd;
                if (kn) rms(k, k, kn, r.hd, r.eps);
                rope_d(&r, k, t, base, ff);
            }
        }
        for (int t = 0; t < n; t++) {
            int first = swa && t >= r.window ? t - r.window + 1 : 0;
            for (int h = 0; h < r.nh; h++) {
                const double *q = Q + (size_t)t * qd + (size_t)h * r.hd;
                int kh = h / (r.nh / r.nkv);
                double mx = -1e300, sum = 0;
                for (int s = first; s <= t; s++) {
                    const double *k = K + (size_t)s * kvd + (size_t)kh * r.hd;
                    double dd = 0;
                    for (int i = 0; i < r.hd; i++) dd += q[i] * k[i];
                    dd /= sqrt(r.hd);
                    if (r.cap_attn > 0) dd = r.cap_attn * tanh(dd / r.cap_attn);
                    p[s] = dd;
                    mx = dd > mx ? dd : mx;
                }
                for (int s = first; s <= t; s++) sum += (p[s] = exp(p[s] - mx));
                for (int i = 0; i < r.hd; i++) {
                    double acc = 0;
                    for (int s = first; s <= t; s++) acc += p[s] / sum * Vv[(size_t)s * kvd + (size_t)kh * r.hd + i];
                    o[h * r.hd + i] = acc;
                }
            }
            mv(d, wo, NULL, o, qd, D);
            if (pa) rms(d, d, pa, D, r.eps);
            for (int i = 0; i < D; i++) x[(size_t)t * D + i] += d[i];
        }
        double *fn = blk(&r, l, "ffn_norm.weight"), *wd = blk(&r, l, "ffn_down.weight"), *wg, *wu, *up = NULL;
        if (r.phi3) { /* gate rows, then up rows */
            up = blk(&r, l, "ffn_up.weight");
            wg = up, wu = up + (size_t)r.ff * D;
        } else {
            wg = blk(&r, l, "ffn_gate.weight"), wu = blk(&r, l, "ffn_up.weight");
        }
        for (int t = 0; t < n; t++) {
            rms(xn, x + (size_t)t * D, fn, D, r.eps);
            mv(g, wg, NULL, xn, D, r.ff);
            mv(u, wu, NULL, xn, D, r.ff);
            for (int i = 0; i < r.ff; i++) {
                double a = g[i];
                double act = r.gemma ? 0.5 * a * (1 + tanh(sqrt(2 / M_PI) * (a + 0.044715 * a * a * a)))
                                     : a / (1 + exp(-a));
                g[i] = act * u[i];
            }
            mv(d, wd, NULL, g, r.ff, D);
            if (pf) rms(d, d, pf, D, r.eps);
            for (int i = 0; i < D; i++) x[(size_t)t * D + i] += d[i];
        }
        double *all[] = {an, wo, bq, bk, bv, qn, kn, pa, pf, fn, wd};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
        if (qkv) free(qkv);
        else free(wq), free(wk), free(wv);
        if (up) free(up);
        else free(wg), free(wu);
    }
    double *lg = malloc((size_t)n * r.V * sizeof *lg);
    const double *W = out ? out : emb; /* tied: the unscaled embedding */
    for (int t = 0; t < n; t++) {
        rms(xn, x + (size_t)t * D, onorm, D, r.eps);
        mv(lg + (size_t)t * r.V, W, NULL, xn, D, r.V);
        if (r.cap_final > 0)
            for (int v = 0; v < r.V; v++) lg[(size_t)t * r.V + v] = r.cap_final * tanh(lg[(size_t)t * r.V + v] / r.cap_final);
    }
    double *fr[] = {emb, out, onorm, ff, x, xn, Q, K, Vv, o, d, g, u, p};
    for (size_t i = 0; i < sizeof fr / sizeof *fr; i++) free(fr[i]);
    return lg;
}

static float *run(const struct dp_model *m, int n_ctx, const int *ids, int n) {
    struct dp_session *s;
    if (dp_session_new(m, NULL, n_ctx, &s)) return NULL;
    float *lg = malloc((size_t)n * m->cfg.n_vocab * sizeof *lg);
    dp_status st = dp_session_forward(s, NULL, ids, n, lg, DP_LOGITS_ALL);
    dp_session_free(s);
    if (st) free(lg);
    return st ? NULL : lg;
}

static void test_reference(const char *name) {
    struct dp_model *m = NULL;
    CHECK_MSG(dp_model_open(fixture(name), NULL, &m) == DP_OK, "%s: %s", name, dp_last_error());
    if (!m) return;
    enum { N = 48 };
    int ids[N];
    uint64_t st = 88172645463325252ull;
    for (int t = 0; t < N; t++) {
        st ^= st << 13, st ^= st >> 7, st ^= st << 17;
        ids[t] = (int)(st % (uint64_t)m->cfg.n_vocab);
    }
    float *got = run(m, N, ids, N);
    double *want = ref_forward(m, ids, N);
    CHECK(got != NULL);
    if (got) {
        size_t nv = (size_t)N * m->cfg.n_vocab;
        float *wf = malloc(nv * sizeof *wf);
        double worst = 0;
        for (size_t i = 0; i < nv; i++) {
            wf[i] = (float)want[i];
            worst = fmax(worst, fabs(want[i] - got[i]));
        }
        fprintf(stderr, "%s: largest logit difference to the double reference %.3g\n", name, worst);
        CHECK_CLOSE_ARR(got, wf, (long)nv, 1e-4, 1e-5);
        free(wf);
    }
    free(got);
    free(want);
    dp_model_close(m);
}

/* ---- sliding-window ring ---- */

static void test_ring(void) {
    struct dp_model *m = NULL;
    CHECK(dp_model_open(fixture("gemma2"), NULL, &m) == DP_OK);
    if (!m) return;
    enum { N = 576 };
    int *ids = malloc(N * sizeof *ids);
    for (int t = 0; t < N; t++) ids[t] = (t * 7919 + 13) % m->cfg.n_vocab;
    float *lin = run(m, N, ids, N), *ring = run(m, 2048, ids, N);
    CHECK(lin && ring);
    if (lin && ring)
        CHECK_MSG(!memcmp(lin, ring, (size_t)N * m->cfg.n_vocab * sizeof *lin), "ring cache differs from linear");
    /* going back more than a batch of positions is refused */
    struct dp_session *s;
    CHECK(dp_session_new(m, NULL, 2048, &s) == DP_OK);
    float *lg = malloc((size_t)m->cfg.n_vocab * sizeof *lg);
    CHECK(dp_session_forward(s, NULL, ids, N, lg, DP_LOGITS_LAST) == DP_OK);
    dp_session_rewind(s, 10);
    CHECK(dp_session_forward(s, NULL, ids, 4, lg, DP_LOGITS_LAST) == DP_ERR_ARG);
    CHECK(strstr(dp_last_error(), "sliding-window") != NULL);
    dp_session_rewind(s, 0);
    dp_session_reset(s);
    CHECK(dp_session_forward(s, NULL, ids, 4, lg, DP_LOGITS_LAST) == DP_OK);
    dp_session_free(s);
    free(lg);
    free(lin);
    free(ring);
    free(ids);
    dp_model_close(m);
}

/* ---- the tape ---- */

static void test_tape(const char *name, const char *refusal) {
    struct dp_model *m = NULL;
    CHECK(dp_model_open(fixture(name), NULL, &m) == DP_OK);
    if (!m) return;
    enum { N = 16 };
    int ids[N];
    for (int t = 0; t < N; t++) ids[t] = (t * 104729 + 7) % m->cfg.n_vocab;
    struct dp_mask mask;
    dp_mask_all(m, &mask);
    struct dp_tape *tape = NULL;
    dp_status st = dp_tape_new(m, &mask, NULL, 0, N, &tape);
    if (refusal) {
        CHECK_MSG(st == DP_ERR_UNSUPPORTED && strstr(dp_last_error(), refusal), "%s: %s", name, dp_last_error());
    } else {
        CHECK_MSG(st == DP_OK, "%s: %s", name, dp_last_error());
        float *x0 = malloc((size_t)N * m->cfg.n_embd * sizeof *x0);
        float *lg = malloc((size_t)N * m->cfg.n_vocab * sizeof *lg), *want = run(m, N, ids, N);
        dp_layer_embed(m, ids, N, x0);
        if (tape && want) {
            dp_tape_forward(tape, NULL, x0, N, lg);
            CHECK_MSG(!memcmp(lg, want, (size_t)N * m->cfg.n_vocab * sizeof *lg), "%s: tape != forward", name);
        }
        free(x0);
        free(lg);
        free(want);
    }
    dp_tape_free(tape);
    dp_model_close(m);
}

/* ---- unknown architecture ---- */

static void test_unknown_arch(void) {
    char *data;
    size_t len;
    CHECK(dp_read_file(fixture("gemma2"), &data, &len) == DP_OK);
    if (!data) return;
    for (size_t i = 0; i + 6 <= len; i++) /* every "gemma2" (the architecture and its keys) becomes "gemmaZ" */
        if (!memcmp(data + i, "gemma2", 6)) data[i + 5] = 'Z';
    char path[] = "/tmp/dp_test_families_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, data, len) == (ssize_t)len);
    close(fd);
    struct dp_model *m = NULL;
    CHECK(dp_model_open(path, NULL, &m) == DP_ERR_UNSUPPORTED);
    const char *e = dp_last_error();
    CHECK_MSG(strstr(e, "'gemmaZ'") && strstr(e, "gemma2, gemma3") && strstr(e, "qwen3") && strstr(e, path) &&
                  !strchr(e, '\n'),
              "%s", e);
    dp_model_close(m);
    unlink(path);
    free(data);
}

int main(void) {
    const char *names[] = {"llama3-tied", "qwen2-tied", "qwen3", "phi3", "gemma2", "gemma3"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) test_reference(names[i]);
    test_ring();
    test_tape("llama3-tied", NULL);
    test_tape("qwen2-tied", NULL);
    test_tape("phi3", NULL);
    test_tape("gemma2", "soft-capping");
    test_tape("qwen3", "q/k norms");
    test_unknown_arch();
    return TEST_END();
}
