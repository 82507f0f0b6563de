/*
 * test_api: the public header's workflow steps, through include/depthprune.h
 * alone (no internal header): metadata, the llamacpp protocol's tokens and
 * perplexity against llama.cpp's figure (../shared/reference/README.md),
 * score -> plan -> evaluate, bench, and progress and cancellation from a
 * progress callback in every evaluation (reports of done rising to total on
 * the calling thread; DP_ERR_CANCELLED, no result, nothing leaked: run under
 * `make asan`).
 */
#include "depthprune.h"
#include "harness.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/*
 * A progress trace of one stage: every report checked as it comes (the
 * stage, the calling thread, done rising by at least one up to a fixed
 * total); cancel on report number cancel_at (0: never).
 */
struct trace {
    const char *stage;           /* the stage expected */
    pthread_t thread;            /* the thread that called the step */
    int calls, cancel_at, bad;   /* bad: reports that broke a rule */
    int64_t done, total;         /* of the last report */
};

static struct trace trace_of(const char *stage, int cancel_at) {
    struct trace t = {stage, pthread_self(), 0, cancel_at, 0, 0, -1};
    return t;
}

static bool trace_cb(const char *stage, int64_t done, int64_t total, void *user) {
    struct trace *t = user;
    bool ok = !strcmp(stage, t->stage) && pthread_equal(pthread_self(), t->thread) && done > t->done &&
              done <= total && (t->total < 0 || total == t->total);
    t->bad += !ok;
    t->done = done;
    t->total = total;
    return ++t->calls != t->cancel_at;
}

/* Every report of a step with several stages, in order; cancel on report number cancel_at (0: never). */
struct stages {
    int n, cancel_at;
    struct {
        char stage[32];
        int64_t done, total;
    } e[64];
};

static bool stages_cb(const char *stage, int64_t done, int64_t total, void *user) {
    struct stages *s = user;
    if (s->n < 64) {
        snprintf(s->e[s->n].stage, sizeof s->e[s->n].stage, "%s", stage);
        s->e[s->n].done = done;
        s->e[s->n].total = total;
    }
    return ++s->n != s->cancel_at;
}

/* A complete trace: every report well formed, the last one total of total (n reports at least). */
#define CHECK_TRACE(t, want_total, min_calls)                                                       \
    do {                                                                                            \
        CHECK_EQ_INT((t).bad, 0);                                                                   \
        CHECK_EQ_INT((int)(t).total, (int)(want_total));                                            \
        CHECK_EQ_INT((int)(t).done, (int)(want_total));                                             \
        CHECK((t).calls >= (min_calls));                                                            \
    } while (0)
/* A cancelled step: DP_ERR_CANCELLED, stopped at the report that asked, message "STAGE: cancelled". */
#define CHECK_CANCELLED(st, t)                                                                      \
    do {                                                                                            \
        CHECK_EQ_INT((st), DP_ERR_CANCELLED);                                                       \
        CHECK_EQ_INT((t).calls, (t).cancel_at);                                                     \
        CHECK_EQ_INT((t).bad, 0);                                                                   \
        CHECK(strstr(dp_last_error(), (t).stage) && strstr(dp_last_error(), "cancelled"));          \
    } while (0)

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

/* Perplexity (both protocols) and KL divergence (from tokens and from a base file): chunks as units. */
static void test_progress_ppl_kld(const struct dp_model *m, struct dp_pool *pool, const struct dp_mask *all) {
    struct dp_eval_params ep = dp_eval_default_params();
    CHECK(ep.progress == NULL && ep.progress_user == NULL);
    ep.progress = trace_cb;
    struct dp_corpus *corpus = NULL;
    struct dp_chunks *ch = NULL;
    CHECK(dp_corpus_read(test_shared("reference/tiny_text.txt"), &corpus) == DP_OK);
    CHECK(corpus && dp_chunks_paper(dp_model_tokenizer(m), corpus, 0, -1, 64, 4, &ch) == DP_OK);
    if (!ch) return;
    struct dp_ppl plain, with;
    struct trace t = trace_of("perplexity", 0);
    ep.progress_user = &t;
    CHECK(dp_eval_ppl_paper(m, all, NULL, pool, ch, &plain) == DP_OK);
    CHECK(dp_eval_ppl_paper_with(m, all, NULL, pool, ch, &ep, &with) == DP_OK);
    CHECK_TRACE(t, 4, 4);
    CHECK(with.ppl == plain.ppl && with.n_tokens == plain.n_tokens); /* the callback changes nothing */
    CHECK(dp_eval_ppl_paper_with(m, all, NULL, pool, ch, NULL, &with) == DP_OK && with.ppl == plain.ppl);
    t = trace_of("perplexity", 2);
    CHECK_CANCELLED(dp_eval_ppl_paper_with(m, all, NULL, pool, ch, &ep, &with), t);

    int *ids = NULL, n = 0;
    CHECK(dp_corpus_tokens(dp_model_tokenizer(m), test_shared("reference/tiny_text.txt"), &ids, &n) == DP_OK);
    if (!ids) return;
    t = trace_of("perplexity", 0);
    CHECK(dp_eval_ppl_llamacpp_with(m, all, NULL, pool, ids, n, 128, &ep, &with) == DP_OK);
    CHECK_TRACE(t, 19, 19);
    CHECK_CLOSE(with.ppl, 4.0603, 0, 1e-3);
    t = trace_of("perplexity", 1);
    CHECK_CANCELLED(dp_eval_ppl_llamacpp_with(m, all, NULL, pool, ids, n, 128, &ep, &with), t);

    /* KL of a pruned model, the base's log-probabilities saved; cancelled: nothing saved */
    struct dp_mask pruned = *all;
    CHECK(dp_mask_drop(&pruned, "b3") == DP_OK);
    struct dp_kld_model base = {m, all, NULL}, cand = {m, &pruned, NULL};
    char dir[] = "/tmp/dp_test_api_XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/base.kld", dir);
    struct dp_kld_result kr;
    t = trace_of("kl divergence", 3);
    CHECK_CANCELLED(dp_kld_eval_with(&base, &cand, pool, ids, n, 128, path, &ep, &kr), t);
    CHECK(access(path, F_OK) != 0);
    t = trace_of("kl divergence", 0);
    CHECK(dp_kld_eval_with(&base, &cand, pool, ids, n, 128, path, &ep, &kr) == DP_OK);
    CHECK_TRACE(t, 19, 19);
    CHECK(kr.kld_mean > 0 && kr.n == 19 * 63);
    struct dp_kld_result kf;
    t = trace_of("kl divergence", 0);
    CHECK(dp_kld_eval_file_with(path, &cand, pool, &ep, &kf) == DP_OK);
    CHECK_TRACE(t, 19, 19);
    CHECK_CLOSE(kf.kld_mean, kr.kld_mean, 0, 1e-2);
    t = trace_of("kl divergence", 19); /* the last report may cancel too */
    CHECK_CANCELLED(dp_kld_eval_file_with(path, &cand, pool, &ep, &kf), t);
    remove(path);
    rmdir(dir);
    free(ids);
    dp_chunks_free(ch);
    dp_corpus_free(corpus);
}

/* MMLU (questions), multiple choice (items), score (sequences per family), linear recovery (sequences). */
static void test_progress_tasks(const struct dp_model *m, struct dp_pool *pool, const struct dp_mask *all) {
    struct dp_mmlu_data *d = NULL;
    CHECK(dp_mmlu_read(test_shared("data/mmlu"), "abstract_algebra,anatomy", 2, &d) == DP_OK);
    struct trace t = trace_of("mmlu", 0);
    struct dp_mmlu_opts mo = {2, 512, true, NULL, trace_cb, &t};
    struct dp_mmlu_result *mr = NULL;
    CHECK(d && dp_mmlu_eval(m, all, NULL, pool, d, &mo, &mr) == DP_OK && mr && mr->n == 4);
    CHECK_TRACE(t, 4, 4);
    dp_mmlu_result_free(mr);
    t = trace_of("mmlu", 3);
    mr = (struct dp_mmlu_result *)&t;
    if (d) CHECK_CANCELLED(dp_mmlu_eval(m, all, NULL, pool, d, &mo, &mr), t);
    CHECK(mr == NULL);
    dp_mmlu_data_free(d);

    struct dp_mc_set *set = NULL;
    CHECK(dp_mc_read(DP_TASK_PIQA, test_shared("data/piqa/valid.jsonl"), NULL, 5, &set) == DP_OK);
    t = trace_of("piqa", 0);
    struct dp_mc_opts co = {512, true, trace_cb, &t};
    struct dp_mc_result *cr = NULL;
    CHECK(set && dp_mc_eval(m, all, NULL, pool, set, &co, &cr) == DP_OK && cr && cr->n == 5);
    CHECK_TRACE(t, 5, 5);
    dp_mc_result_free(cr);
    t = trace_of("piqa", 1);
    cr = (struct dp_mc_result *)&t;
    if (set) CHECK_CANCELLED(dp_mc_eval(m, all, NULL, pool, set, &co, &cr), t);
    CHECK(cr == NULL);
    dp_mc_set_free(set);

    /* score reports its families' sequences inside "score" 0 and 1 of 1; cancelled inside a family */
    struct dp_score_params sp;
    dp_score_default_params(&sp);
    sp.want[DP_METRIC_LOO_LOSS] = true;
    sp.corpus = test_shared("reference/tiny_text.txt");
    sp.ctx = 64;
    sp.max_seqs = 4;
    struct stages log = {.n = 0};
    sp.progress = stages_cb;
    sp.progress_user = &log;
    struct dp_score_result *r = NULL;
    CHECK(dp_score_run(m, all, pool, &sp, &r) == DP_OK && r);
    dp_score_result_free(r);
    CHECK(log.n >= 4 && !strcmp(log.e[0].stage, "score") && log.e[0].done == 0 && log.e[0].total == 1);
    CHECK(log.n >= 4 && !strcmp(log.e[log.n - 1].stage, "score") && log.e[log.n - 1].done == 1);
    int64_t last = 0;
    for (int k = 1; k + 1 < log.n; k++) {
        CHECK(!strcmp(log.e[k].stage, "leave-one-out") && log.e[k].total == 4 && log.e[k].done > last);
        last = log.e[k].done;
    }
    CHECK_EQ_INT((int)last, 4);
    log = (struct stages){.cancel_at = 2}; /* the family's first report */
    CHECK_EQ_INT(dp_score_run(m, all, pool, &sp, &r), DP_ERR_CANCELLED);
    CHECK(r == NULL && log.n == 2 && strstr(dp_last_error(), "leave-one-out: cancelled"));

    /* linear recovery: its statistics over the calibration sequences */
    struct dp_recovery_params rp = dp_recovery_default_params();
    rp.kind = "linear";
    rp.units = "b2";
    rp.calib.path = test_shared("reference/tiny_text.txt");
    rp.calib.ctx = 64;
    rp.calib.max_seqs = 16; /* 1,024 tokens = 16 x width: the full map, which needs no LAPACKE */
    rp.progress = trace_cb;
    t = trace_of("linear map statistics", 0);
    rp.progress_user = &t;
    struct dp_recovery *rec = NULL;
    CHECK_MSG(dp_recovery_fit_with(m, pool, &rp, &rec) == DP_OK && rec, "%s", dp_last_error());
    CHECK_TRACE(t, 16, 16);
    dp_recovery_free(rec);
    t = trace_of("linear map statistics", 2);
    rec = (struct dp_recovery *)&t;
    CHECK_CANCELLED(dp_recovery_fit_with(m, pool, &rp, &rec), t);
    CHECK(rec == NULL);
}

/* The default options of the evaluation and generation steps: the documented protocol values. */
static void test_default_opts(const struct dp_model *m) {
    int want_ctx = dp_model_config(m)->n_ctx_train < 2048 ? dp_model_config(m)->n_ctx_train : 2048;
    struct dp_mmlu_opts mo = dp_mmlu_default_opts(m);
    CHECK(mo.shots == 5 && mo.ctx_limit == want_ctx && mo.prefix_cache && !mo.dump && !mo.progress);
    struct dp_mc_opts co = dp_mc_default_opts(m);
    CHECK(co.ctx_limit == want_ctx && co.prefix_cache && !co.progress);
    struct dp_spec_opts so = dp_spec_default_opts();
    CHECK(so.draft_len == 0 && so.temp == 0 && so.seed == 1 && so.eos == -1 && !so.verify_hooks && !so.draft_hooks);
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
    test_default_opts(m);
    test_ppl(m, pool, &all);
    test_score_plan(m, pool, &all);
    test_bench(m, pool, &all);
    test_progress_ppl_kld(m, pool, &all);
    test_progress_tasks(m, pool, &all);
    dp_pool_free(pool);
    dp_model_close(m);
    return TEST_END();
}
