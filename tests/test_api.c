/*
 * test_api: the public header's workflow steps, through include/depthprune.h
 * alone (no internal header): metadata, the llamacpp protocol's tokens and
 * perplexity against llama.cpp's figure (../shared/reference/README.md),
 * score -> plan -> evaluate, bench, and cancellation from a progress
 * callback (DP_ERR_CANCELLED, nothing leaked: run under `make asan`).
 */
#include "depthprune.h"
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct counter {
    int calls, cancel_at;   /* cancel on call number cancel_at (0: never) */
    char stage[32];
};

static bool count_cb(const char *stage, int64_t done, int64_t total, void *user) {
    struct counter *c = user;
    (void)done;
    (void)total;
    snprintf(c->stage, sizeof c->stage, "%s", stage);
    return ++c->calls != c->cancel_at;
}

static void test_meta(const struct dp_model *m) {
    char buf[64];
    CHECK(dp_model_meta_str(m, "general.architecture", buf, sizeof buf) == 5 && !strcmp(buf, "llama"));
    CHECK(dp_model_meta_str(m, "general.architecture", buf, 3) == 5 && !strcmp(buf, "ll")); /* cut, NUL kept */
    CHECK(dp_model_meta_str(m, "no.such.key", buf, sizeof buf) == -1);
    CHECK(!dp_model_meta_has(m, "no.such.key") && dp_model_meta_has(m, "general.architecture"));
    int64_t v = -7;
    CHECK(dp_model_meta_int(m, "llama.block_count", &v) && v == dp_model_config(m)->n_layers);
    CHECK(!dp_model_meta_int(m, "general.architecture", &v) && v == dp_model_config(m)->n_layers);
    CHECK(!strcmp(dp_type_name(0), "F32"));
    bool gguf = false;
    struct dp_tokenizer *t = NULL;
    CHECK(dp_tokenizer_open(test_shared("models/stories260K/stories260K.gguf"), &gguf, &t) == DP_OK && gguf && t);
    CHECK(t && dp_tokenizer_n_vocab(t) == dp_model_config(m)->n_vocab);
    dp_tokenizer_free(t);
    CHECK(dp_tokenizer_open(test_shared("reference/tiny_text.txt"), &gguf, &t) == DP_ERR_FORMAT && !gguf && !t);
}

/* llama.cpp: PPL 4.0603 at ctx 128 on tiny_text.txt, 19 chunks (reference/README.md, rel tol 1e-3). */
static void test_ppl(const struct dp_model *m, struct dp_pool *pool, const struct dp_mask *all) {
    int *ids = NULL, n = 0;
    CHECK(dp_corpus_tokens(dp_model_tokenizer(m), test_shared("reference/tiny_text.txt"), &ids, &n) == DP_OK);
    CHECK(n > 19 * 128 && n < 20 * 128);
    CHECK(ids && ids[0] == dp_tokenizer_bos(dp_model_tokenizer(m)));
    struct dp_ppl r;
    CHECK(ids && dp_eval_ppl_llamacpp(m, all, NULL, pool, ids, n, 128, &r) == DP_OK);
    CHECK_CLOSE(r.ppl, 4.0603, 0, 1e-3);
    CHECK_EQ_INT(r.n_seqs, 19);
    free(ids);
    CHECK(dp_corpus_tokens(dp_model_tokenizer(m), "/nonexistent/x.txt", &ids, &n) == DP_ERR_IO && !ids);
    CHECK(strstr(dp_last_error(), "/nonexistent/x.txt") != NULL);
}

static void test_score_plan(const struct dp_model *m, struct dp_pool *pool, const struct dp_mask *all) {
    struct dp_score_params p;
    dp_score_default_params(&p);
    p.want[DP_METRIC_COSINE] = p.want[DP_METRIC_LOO_LOSS] = true;
    p.corpus = test_shared("reference/tiny_text.txt");
    p.ctx = 64;
    p.max_seqs = 4;
    struct counter c = {0, 0, ""};
    p.progress = count_cb;
    p.progress_user = &c;
    struct dp_score_result *r = NULL;
    CHECK(dp_score_run(m, all, pool, &p, &r) == DP_OK && r);
    if (!r) return;
    int L = dp_model_config(m)->n_layers;
    CHECK_EQ_INT(dp_score_n_units(r), L);
    CHECK(!strcmp(dp_score_unit(r, 0), "b0") && dp_score_unit(r, L) == NULL);
    CHECK(dp_score_has(r, DP_METRIC_LOO_LOSS) && !dp_score_has(r, DP_METRIC_BANZHAF_LOSS));
    CHECK(c.calls >= 2 && !strcmp(c.stage, "score"));
    /* the order is ascending influence */
    for (int k = 1; k < L; k++)
        CHECK(dp_score_influence(r, DP_METRIC_LOO_LOSS, dp_score_order(r, DP_METRIC_LOO_LOSS, k - 1)) <=
              dp_score_influence(r, DP_METRIC_LOO_LOSS, dp_score_order(r, DP_METRIC_LOO_LOSS, k)));
    CHECK(dp_score_order(r, DP_METRIC_LOO_LOSS, L) == -1);
    CHECK(isnan(dp_score_stderr(r, DP_METRIC_COSINE, 0))); /* a static metric has no standard error */
    int64_t ev = 0, naive = 0;
    dp_score_cost(r, &ev, &naive);
    CHECK(ev > 0 && ev <= naive);
    /* plan of the 2 least important blocks, applied, evaluated: removing blocks costs perplexity */
    struct dp_plan *plan = calloc(1, sizeof *plan);
    CHECK(plan && dp_plan_from_scores(r, DP_METRIC_LOO_LOSS, 2, plan) == DP_OK);
    CHECK(plan && plan->n_units == 2 && !strcmp(plan->units[0], dp_score_unit(r, dp_score_order(r, DP_METRIC_LOO_LOSS, 0))));
    CHECK(plan && dp_plan_from_scores(r, DP_METRIC_LOO_LOSS, L + 1, plan) == DP_ERR_ARG);
    CHECK(plan && dp_plan_from_scores(r, DP_METRIC_LOO_LOSS, 2, plan) == DP_OK);
    struct dp_mask pruned = *all;
    CHECK(plan && dp_plan_apply(plan, &pruned) == DP_OK);
    char removed[64];
    dp_mask_format(&pruned, removed, sizeof removed);
    CHECK(strchr(removed, ',') != NULL);
    struct dp_corpus *corpus = NULL;
    struct dp_chunks *ch = NULL;
    struct dp_ppl full, cut;
    CHECK(dp_corpus_read(test_shared("reference/tiny_text.txt"), &corpus) == DP_OK);
    CHECK(corpus && dp_chunks_paper(dp_model_tokenizer(m), corpus, 0, -1, 64, 4, &ch) == DP_OK);
    CHECK(ch && ch->n_seqs == 4 && ch->ctx == 64);
    CHECK(ch && dp_eval_ppl_paper(m, all, NULL, pool, ch, &full) == DP_OK &&
          dp_eval_ppl_paper(m, &pruned, NULL, pool, ch, &cut) == DP_OK);
    CHECK(ch && cut.ppl > full.ppl && full.n_tokens == 4 * 63);
    dp_chunks_free(ch);
    dp_corpus_free(corpus);
    free(plan);
    dp_score_result_free(r);

    /* cancelled at its first progress report: DP_ERR_CANCELLED, no result */
    struct counter stop = {0, 1, ""};
    p.progress_user = &stop;
    r = (struct dp_score_result *)&stop;
    CHECK_EQ_INT(dp_score_run(m, all, pool, &p, &r), DP_ERR_CANCELLED);
    CHECK(r == NULL && strstr(dp_last_error(), "cancelled") != NULL);
    /* bad parameters */
    p.progress = NULL;
    p.corpus = NULL;
    CHECK(dp_score_run(m, all, pool, &p, &r) == DP_ERR_ARG && r == NULL);
}

static void test_bench(const struct dp_model *m, struct dp_pool *pool, const struct dp_mask *all) {
    struct dp_bench_params p;
    dp_bench_default_params(&p);
    CHECK(p.n_prefill == 512 && p.n_decode == 64 && p.reps == 3);
    p.n_prefill = 32;
    p.n_decode = 8;
    p.reps = 2;
    struct counter c = {0, 0, ""};
    p.progress = count_cb;
    p.progress_user = &c;
    struct dp_bench_result r;
    CHECK(dp_bench_run(m, all, pool, &p, &r) == DP_OK);
    CHECK(r.prefill_tok_s > 0 && r.decode_tok_s > 0 && r.gflops > 0 && r.gbps > 0 && r.peak_rss_mb > 0);
    CHECK_EQ_INT(c.calls, 2);
    CHECK(!strcmp(c.stage, "bench"));
    struct counter stop = {0, 1, ""};
    p.progress_user = &stop;
    CHECK_EQ_INT(dp_bench_run(m, all, pool, &p, &r), DP_ERR_CANCELLED);
    CHECK_EQ_INT(stop.calls, 1);
    p.reps = 0;
    CHECK(dp_bench_run(m, all, pool, &p, &r) == DP_ERR_ARG);
    CHECK(strlen(dp_kernels_name()) > 0);
}

int main(void) {
    struct dp_model *m = NULL;
    if (dp_model_open(test_shared("models/stories260K/stories260K.gguf"), NULL, &m) != DP_OK) {
        CHECK_MSG(0, "stories260K missing: %s", dp_last_error()); /* a missing fixture fails */
        return TEST_END();
    }
    struct dp_pool *pool = dp_pool_new(2);
    struct dp_mask all;
    dp_mask_all(m, &all);
    test_meta(m);
    test_ppl(m, pool, &all);
    test_score_plan(m, pool, &all);
    test_bench(m, pool, &all);
    dp_pool_free(pool);
    dp_model_close(m);
    return TEST_END();
}
