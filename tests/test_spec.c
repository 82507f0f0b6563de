/*
 * test_spec: self-speculative decoding (src/spec.c).
 *
 *  - the sampling rule preserves the verifier's distribution: tokens drawn
 *    from synthetic draft distributions q, accepted or resampled by
 *    dp_spec_rule, must follow p; a chi-square goodness-of-fit test at
 *    significance 0.001 (critical values from the chi-square table), with a
 *    fixed seed, on several (p, q) pairs of a 6-token vocabulary; tokens
 *    with p = 0 must never come out;
 *  - greedy speculative decoding on stories260K gives exactly the tokens of
 *    plain greedy decoding (written here as its own loop: one token per
 *    forward pass, argmax with the first index on ties) for several drafts
 *    and every draft length 1..6 and auto, with a short and a long (>= 64
 *    tokens, so the prefill takes the gemm order) prompt;
 *  - the cost model: tokens per verification against hand-computed values
 *    of (1 - a^(K+1)) / (1 - a), and the best draft length;
 *  - teacher-forced agreement is 1 for the full model as its own draft;
 *  - sampled speculative decoding on stories260K, end to end: over 10,000
 *    seeds per K, the first three tokens dp_spec_generate yields (temperature 1,
 *    draft: a2,a4 removed, K = 1 and 2) follow the full model's distribution
 *    p(t1) p(t2 | t1) p(t3 | t1, t2), computed here by plain forward passes
 *    and a softmax of this file. Chi-square over the likeliest triples plus
 *    an "other" bin, at significance 1e-4 (the critical value from the
 *    Wilson-Hilferty approximation, z = 3.719); a decoder that accepts every
 *    drafted token (so emits the draft's distribution), takes the bonus
 *    token from the wrong row or checks a second drafted token against the
 *    first one's draft distribution fails it (tests/mutants.txt).
 */
#include "harness.h"

#include "spec.h"
#include "tokenizer.h"

#include <math.h>

#define NV 6
#define DRAWS 200000

static uint64_t rng_state = 12345;
static double unif(void) { /* xorshift64*, independent of the library's generator */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

static int sample(const double *q) {
    double u = unif(), acc = 0;
    for (int i = 0; i < NV; i++)
        if ((acc += q[i]) > u && q[i] > 0) return i;
    for (int i = NV - 1; i >= 0; i--)
        if (q[i] > 0) return i;
    return 0;
}

/* chi-square critical values at p = 0.001 for 1..7 degrees of freedom (standard tables) */
static const double chi2_001[] = {0, 10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322};

static void rule_case(const double *p, const double *q) {
    long count[NV] = {0}, accepted = 0;
    for (int n = 0; n < DRAWS; n++) {
        int d = sample(q);
        bool ok;
        double u = unif(), w = unif();
        int t = dp_spec_rule(p, q, NV, d, u, w, &ok);
        count[t]++;
        accepted += ok;
    }
    double chi2 = 0, alpha = 0; /* alpha: the acceptance probability sum_i min(p_i, q_i) */
    int df = -1;
    for (int i = 0; i < NV; i++) {
        alpha += p[i] < q[i] ? p[i] : q[i];
        if (p[i] == 0) {
            CHECK_MSG(count[i] == 0, "token %d has p = 0 but came out %ld times", i, count[i]);
            continue;
        }
        double e = DRAWS * p[i];
        chi2 += (count[i] - e) * (count[i] - e) / e;
        df++;
    }
    if (df > 0) /* a one-point p is checked by the p = 0 tokens alone */
        CHECK_MSG(chi2 < chi2_001[df], "chi-square %.2f >= %.3f (df %d, p = 0.001)", chi2, chi2_001[df], df);
    /* the acceptance rate is sum min(p, q); 5 sigma of a binomial */
    double sd = sqrt(alpha * (1 - alpha) / DRAWS);
    CHECK_CLOSE((double)accepted / DRAWS, alpha, 5 * sd + 1e-12, 0);
}

static void test_rule(void) {
    const double cases[][2][NV] = {
        {{0.1, 0.2, 0.3, 0.15, 0.15, 0.1}, {0.3, 0.1, 0.1, 0.2, 0.2, 0.1}},
        {{0.5, 0.5, 0, 0, 0, 0}, {0.1, 0.1, 0.2, 0.2, 0.2, 0.2}},   /* q covers tokens p excludes */
        {{0.05, 0.05, 0.1, 0.1, 0.2, 0.5}, {0.6, 0.4, 0, 0, 0, 0}}, /* p covers tokens q never drafts */
        {{0.2, 0.2, 0.2, 0.2, 0.1, 0.1}, {0.2, 0.2, 0.2, 0.2, 0.1, 0.1}}, /* p == q: always accepted */
        {{0, 0, 0, 1, 0, 0}, {0.25, 0.25, 0.25, 0, 0.25, 0}},     /* greedy verifier, disjoint draft */
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) rule_case(cases[c][0], cases[c][1]);
    /* the boundary: accepted exactly when u < p/q */
    const double p[NV] = {0.25, 0.75, 0, 0, 0, 0}, q[NV] = {0.5, 0.5, 0, 0, 0, 0};
    bool ok;
    CHECK_EQ_INT(dp_spec_rule(p, q, NV, 0, 0.49, 0.9, &ok), 0);
    CHECK(ok);
    CHECK_EQ_INT(dp_spec_rule(p, q, NV, 0, 0.51, 0.9, &ok), 1); /* the residual is all on token 1 */
    CHECK(!ok);
}

static void test_costs(void) {
    CHECK_CLOSE(dp_spec_tokens_per_verify(0.5, 3), 1.875, 1e-12, 0);    /* (1 - 1/16) / (1/2) */
    CHECK_CLOSE(dp_spec_tokens_per_verify(0.8, 1), 1.8, 1e-12, 0);
    CHECK_CLOSE(dp_spec_tokens_per_verify(1.0, 4), 5, 0, 0);
    CHECK_CLOSE(dp_spec_tokens_per_verify(0.0, 4), 1, 0, 0);
    /* a = 0.8, draft cost 0.3: K = 1 1.8/1.3, K = 2 2.44/1.6, K = 3 2.952/1.9 (best), K = 4 3.3616/2.2 */
    double sp;
    CHECK_EQ_INT(dp_spec_best_len(0.8, 8, 0.3, NULL, &sp), 3);
    CHECK_CLOSE(sp, 2.952 / 1.9, 1e-12, 0);
    const double cv[] = {1, 1.5, 3, 4.5, 6}; /* verification cost growing with the batch */
    CHECK_EQ_INT(dp_spec_best_len(0.8, 4, 0.3, cv, NULL), 1);
}

static bool collect(void *ctx, int id) {
    int *buf = ctx;
    buf[++buf[0]] = id;
    return true;
}

/* Plain greedy decoding, written independently of spec.c. */
static int plain_greedy(const struct dp_model *m, struct dp_pool *pool, const int *prompt, int n_prompt, int n_new,
                        int eos, int *out) {
    int V = dp_model_config(m)->n_vocab, n = 0;
    struct dp_session *s;
    float *lg = malloc((size_t)V * sizeof *lg);
    if (dp_session_new(m, NULL, n_prompt + n_new, &s) || !lg) return -1;
    dp_session_forward(s, pool, prompt, n_prompt, lg, DP_LOGITS_LAST);
    while (n < n_new) {
        int b = 0;
        for (int i = 1; i < V; i++)
            if (lg[i] > lg[b]) b = i;
        if (b == eos) break;
        out[n++] = b;
        if (n < n_new) dp_session_forward(s, pool, &b, 1, lg, DP_LOGITS_LAST);
    }
    dp_session_free(s);
    free(lg);
    return n;
}

static int first_diff(const int *a, int na, const int *b, int nb) {
    int f = 0;
    while (f < na && f < nb && a[f] == b[f]) f++;
    return f;
}

static void test_greedy(void) {
    struct dp_model *m;
    if (dp_model_open(test_shared("models/stories260K/stories260K.gguf"), NULL, &m)) {
        CHECK_MSG(0, "%s", dp_last_error());
        return;
    }
    struct dp_pool *pool = dp_pool_new(2);
    const struct dp_tokenizer *t = dp_model_tokenizer(m);
    const char *prompts[] = {
        "Once upon a time",
        "Tom and Lily went to the park. They saw a big tree with red apples. Tom wanted an apple, "
        "but the tree was too tall. Lily had an idea. She found a long stick and"};
    const char *drafts[] = {"a2", "a2,a4", "b2", "f3,a1", "b0,b4"};
    enum { N_NEW = 120 };
    int want[N_NEW], got[N_NEW + 1];
    for (int pi = 0; pi < 2; pi++) {
        int ids[256], n_prompt;
        dp_tokenize(t, prompts[pi], strlen(prompts[pi]), DP_TOKENIZE_BOS, ids, 256, &n_prompt);
        CHECK(pi == 0 || n_prompt >= 64);
        int eos = dp_tokenizer_eos(t);
        int n_want = plain_greedy(m, pool, ids, n_prompt, N_NEW, eos, want);
        CHECK(n_want > 20);
        for (size_t di = 0; di < sizeof drafts / sizeof *drafts; di++) {
            for (int k = 0; k <= 6; k++) {
                struct dp_mask dm;
                dp_mask_all(m, &dm);
                dp_mask_drop(&dm, drafts[di]);
                struct dp_session *vs, *ds;
                dp_session_new(m, NULL, n_prompt + N_NEW, &vs);
                dp_session_new(m, &dm, n_prompt + N_NEW, &ds);
                struct dp_spec_opts o = {.draft_len = k, .draft_cost = 0.3, .eos = eos};
                struct dp_spec_stats st;
                got[0] = 0;
                dp_status s = dp_spec_generate(vs, ds, pool, ids, n_prompt, N_NEW, &o, collect, got, &st);
                CHECK_MSG(!s, "%s", dp_last_error());
                CHECK_MSG(got[0] == n_want && !memcmp(got + 1, want, (size_t)n_want * sizeof *want),
                          "prompt %d draft %s K=%d: %d tokens vs %d, first difference at %d", pi, drafts[di], k,
                          got[0], n_want, first_diff(got + 1, got[0], want, n_want));
                CHECK_EQ_INT(st.n_generated, n_want);
                CHECK(st.n_verify < n_want); /* speculation saved verifier passes */
                dp_session_free(vs);
                dp_session_free(ds);
            }
        }
        /* no draft: plain decoding through the same loop */
        struct dp_session *vs;
        dp_session_new(m, NULL, n_prompt + N_NEW, &vs);
        struct dp_spec_opts o = {.draft_len = 1, .eos = eos};
        struct dp_spec_stats st;
        got[0] = 0;
        CHECK(!dp_spec_generate(vs, NULL, pool, ids, n_prompt, N_NEW, &o, collect, got, &st));
        CHECK(got[0] == n_want && !memcmp(got + 1, want, (size_t)n_want * sizeof *want));
        CHECK_EQ_INT(st.n_verify, n_want - 1);
        /* a session too small, a used session */
        CHECK(dp_spec_generate(vs, NULL, pool, ids, n_prompt, N_NEW, &o, collect, got, &st) == DP_ERR_ARG);
        dp_session_free(vs);
    }
    /* agreement: the full model as its own draft agrees everywhere; a draft less than that */
    struct dp_chunks ch = {.n_seqs = 1, .ctx = 64};
    int ids[64], ref[64], n;
    dp_tokenize(t, prompts[1], strlen(prompts[1]), DP_TOKENIZE_BOS, ids, 64, &n);
    ch.ids = ids;
    struct dp_mask full, dm;
    dp_mask_all(m, &full);
    dm = full;
    dp_mask_drop(&dm, "b2");
    double rate;
    int64_t agree, total;
    CHECK(!dp_spec_reference(m, pool, &full, NULL, &ch, ref));
    CHECK(!dp_spec_agreement(m, pool, &full, NULL, &ch, ref, &rate, &agree, &total));
    CHECK_CLOSE(rate, 1, 0, 0);
    CHECK_EQ_INT(total, 64);
    CHECK(!dp_spec_agreement(m, pool, &dm, NULL, &ch, ref, &rate, &agree, &total));
    CHECK(rate > 0.2 && rate < 1);
    CHECK(dp_spec_step_bytes(m, &dm) < dp_spec_step_bytes(m, &full));
    dp_pool_free(pool);
    dp_model_close(m);
}

/* softmax(logits / temp) in double, written independently of spec.c */
static void softmax_ref(const float *lg, int n, double temp, double *p) {
    double mx = lg[0], sum = 0;
    for (int i = 1; i < n; i++) mx = lg[i] > mx ? lg[i] : mx;
    for (int i = 0; i < n; i++) sum += (p[i] = exp(((double)lg[i] - mx) / temp));
    for (int i = 0; i < n; i++) p[i] /= sum;
}

/* The upper 1e-4 quantile of chi-square with df degrees of freedom (Wilson-Hilferty). */
static double chi2_crit_1e4(int df) {
    double z = 3.719016, h = 2.0 / (9.0 * df), c = 1 - h + z * sqrt(h);
    return df * c * c * c;
}

struct first3 {
    int n, t[3];
};

static bool take3(void *ctx, int id) {
    struct first3 *f = ctx;
    f->t[f->n++] = id;
    return f->n < 3;
}

enum { SAMPLES = 10000, MAX_BINS = 40 }; /* samples per draft length; bins expect >= 10 each */

struct bin {
    int t[3];
    double p;
};

static int cmp_bin(const void *a, const void *b) {
    double x = ((const struct bin *)a)->p, y = ((const struct bin *)b)->p;
    return (x < y) - (x > y);
}

static void test_sampled(void) {
    struct dp_model *m;
    if (dp_model_open(test_shared("models/stories260K/stories260K.gguf"), NULL, &m)) {
        CHECK_MSG(0, "%s", dp_last_error());
        return;
    }
    struct dp_pool *pool = dp_pool_new(1); /* one thread: thousands of tiny passes */
    const double temp = 1.0;
    int V = dp_model_config(m)->n_vocab, ids[64], n_prompt;
    const char *prompt = "Lily";
    dp_tokenize(dp_model_tokenizer(m), prompt, strlen(prompt), DP_TOKENIZE_BOS, ids, 64, &n_prompt);
    /* the exact distribution: p1 after the prompt, p2 after each t1, p3 after the likeliest (t1, t2) */
    float *lg = malloc((size_t)V * sizeof *lg);
    double *p1 = malloc((size_t)V * sizeof *p1), *pp = malloc((size_t)V * V * sizeof *pp), *p3 = malloc((size_t)V * sizeof *p3);
    struct bin *pairs = malloc((size_t)V * V * sizeof *pairs), bins[MAX_BINS + 1];
    struct dp_session *s;
    CHECK(lg && p1 && pp && p3 && pairs && !dp_session_new(m, NULL, n_prompt + 4, &s));
    dp_session_forward(s, pool, ids, n_prompt, lg, DP_LOGITS_LAST);
    softmax_ref(lg, V, temp, p1);
    for (int a = 0; a < V; a++) {
        dp_session_rewind(s, n_prompt);
        dp_session_forward(s, pool, &a, 1, lg, DP_LOGITS_LAST);
        softmax_ref(lg, V, temp, pp + (size_t)a * V);
        for (int b = 0; b < V; b++) pairs[(size_t)a * V + b] = (struct bin){{a, b, -1}, p1[a] * pp[(size_t)a * V + b]};
    }
    qsort(pairs, (size_t)V * V, sizeof *pairs, cmp_bin);
    int n_bins = 0;
    for (int i = 0; i < 24 && pairs[i].p * SAMPLES >= 10; i++) { /* triples of the 24 likeliest pairs */
        int two[2] = {pairs[i].t[0], pairs[i].t[1]};
        dp_session_rewind(s, n_prompt);
        dp_session_forward(s, pool, two, 2, lg, DP_LOGITS_LAST);
        softmax_ref(lg, V, temp, p3);
        for (int c = 0; c < V; c++) {
            struct bin b = {{two[0], two[1], c}, pairs[i].p * p3[c]};
            if (b.p * SAMPLES < 10) continue;
            if (n_bins < MAX_BINS) bins[n_bins++] = b;
            else if (b.p > bins[MAX_BINS - 1].p) bins[MAX_BINS - 1] = b;
            qsort(bins, (size_t)n_bins, sizeof *bins, cmp_bin);
        }
    }
    double rest = 1;
    for (int i = 0; i < n_bins; i++) rest -= bins[i].p;
    CHECK_MSG(n_bins >= 10 && rest * SAMPLES >= 10, "%d bins, other %.3g", n_bins, rest);
    dp_session_free(s);
    /* sampling: fresh sessions per seed; K = 1 observes the bonus token, K = 2 a second drafted one */
    struct dp_mask dm;
    dp_mask_all(m, &dm);
    dp_mask_drop(&dm, "a2,a4");
    struct dp_session *vs, *ds;
    CHECK(!dp_session_new(m, NULL, n_prompt + 4, &vs) && !dp_session_new(m, &dm, n_prompt + 4, &ds));
    for (int K = 1; K <= 2; K++) {
        long count[MAX_BINS + 1] = {0}, accepted = 0, drafted = 0;
        for (int seed = 1; seed <= SAMPLES; seed++) {
            dp_session_reset(vs);
            dp_session_reset(ds);
            struct dp_spec_opts o = {.draft_len = K, .temp = temp, .seed = (uint64_t)(seed + K * SAMPLES), .eos = -1};
            struct dp_spec_stats st;
            struct first3 f = {0};
            if (dp_spec_generate(vs, ds, pool, ids, n_prompt, 4, &o, take3, &f, &st) || f.n != 3) {
                CHECK_MSG(0, "seed %d: %d tokens: %s", seed, f.n, dp_last_error());
                break;
            }
            accepted += st.n_accepted;
            drafted += st.n_drafted;
            int k = 0;
            while (k < n_bins && memcmp(bins[k].t, f.t, sizeof f.t)) k++;
            count[k]++;
        }
        double chi2 = 0;
        for (int k = 0; k <= n_bins; k++) {
            double e = SAMPLES * (k < n_bins ? bins[k].p : rest);
            chi2 += (count[k] - e) * (count[k] - e) / e;
        }
        double crit = chi2_crit_1e4(n_bins);
        CHECK_MSG(chi2 < crit, "K = %d: sampled tokens: chi-square %.1f >= %.1f (df %d, p = 1e-4)", K, chi2, crit, n_bins);
        /* both branches of the rule were taken: some drafts accepted, some rejected */
        CHECK_MSG(accepted > drafted / 10 && accepted < drafted * 9 / 10, "K = %d: %ld of %ld drafted tokens accepted", K,
                  accepted, drafted);
        fprintf(stderr, "sampled, K = %d: %d bins + other (p %.3f), chi-square %.1f (critical %.1f), %ld of %ld drafts accepted\n",
                K, n_bins, rest, chi2, crit, accepted, drafted);
    }
    dp_session_free(vs);
    dp_session_free(ds);
    free(lg);
    free(p1);
    free(pp);
    free(p3);
    free(pairs);
    dp_pool_free(pool);
    dp_model_close(m);
}

int main(void) {
    test_rule();
    test_costs();
    test_greedy();
    test_sampled();
    return TEST_END();
}
