/*
 * test_api_workflow: the recovery, sweep and export steps through
 * include/depthprune.h alone (this file is compiled with -Iinclude only) on
 * stories260K: a mean recovery fitted on TinyStories text changes the
 * pruned model's logits when attached to a session and reproduces them
 * bit for bit after a save/load round trip; a short sweep follows a
 * hand-written scores order; an export with the recovery folded in reloads
 * with the session's logits; cancellation through the progress callback
 * returns DP_ERR_CANCELLED. (docs/example.c, the whole workflow in one
 * program, is run by tests/cli_example.sh.)
 */
#include "harness.h"

#include "depthprune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_TOK 24

static char tmpdir[256];

static const char *tmp(const char *name) {
    static char buf[8][512];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", tmpdir, name);
    return b;
}

static const char *model_path(void) { return test_shared("models/stories260K/stories260K.gguf"); }
static const char *corpus_path(void) { return test_shared("data/tinystories/valid-first1000.txt"); }

/* Logits of N_TOK fixed tokens in a session made with p (NULL when it fails). */
static float *logits_of(const struct dp_model *m, struct dp_pool *pool, const struct dp_session_params *p) {
    int n_vocab = dp_model_config(m)->n_vocab, ids[N_TOK];
    for (int i = 0; i < N_TOK; i++) ids[i] = i ? (i * 37 + 11) % n_vocab : 1;
    float *out = malloc((size_t)N_TOK * n_vocab * sizeof *out);
    struct dp_session *s = NULL;
    dp_status st = out ? dp_session_new_with(m, p, &s) : DP_ERR_NOMEM;
    if (!st) st = dp_session_forward(s, pool, ids, N_TOK, out, DP_LOGITS_ALL);
    dp_session_free(s);
    if (st) {
        fprintf(stderr, "logits: %s\n", dp_last_error());
        free(out);
        return NULL;
    }
    return out;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static int n_calls;
static bool stop_at_second(const char *stage, int64_t done, int64_t total, void *user) {
    (void)stage, (void)done, (void)total, (void)user;
    return ++n_calls < 2;
}

/*
 * The pieces a program assembles a recovery step from: chunks it made itself
 * (params.chunks) fit the same recovery as the corpus spec; the hooks of a
 * recovery passed to dp_session_forward_hooked give the logits of a session
 * with the recovery attached; kind names are checked.
 */
static void test_recovery_pieces(const struct dp_model *m, struct dp_pool *pool, const struct dp_mask *mask,
                                 const struct dp_recovery *rec, const float *recovered) {
    size_t n = (size_t)N_TOK * dp_model_config(m)->n_vocab;
    struct dp_corpus *c = NULL;
    struct dp_chunks *ch = NULL;
    CHECK(dp_corpus_read(corpus_path(), &c) == DP_OK);
    CHECK(c && dp_chunks_paper(dp_model_tokenizer(m), c, 0, 40, 64, 8, &ch) == DP_OK);
    struct dp_recovery_params rp = dp_recovery_default_params();
    rp.kind = "mean";
    rp.units = "b2";
    rp.chunks = ch;
    struct dp_recovery *r2 = NULL;
    CHECK_MSG(ch && dp_recovery_fit_with(m, pool, &rp, &r2) == DP_OK, "%s", dp_last_error());
    struct dp_session_params sp = dp_session_default_params();
    sp.n_ctx = N_TOK;
    sp.mask = mask;
    sp.recovery = r2;
    float *from_chunks = r2 ? logits_of(m, pool, &sp) : NULL;
    CHECK_MSG(from_chunks && !memcmp(from_chunks, recovered, n * sizeof *from_chunks),
              "a fit on the caller's chunks differs from the fit on the same corpus spec");
    free(from_chunks);
    dp_recovery_free(r2);
    dp_chunks_free(ch);
    dp_corpus_free(c);

    struct dp_hooks *h = NULL;
    CHECK(dp_recovery_hooks_new(rec, m, &h) == DP_OK && h);
    struct dp_session *s = NULL;
    sp.recovery = NULL;
    int n_vocab = dp_model_config(m)->n_vocab, ids[N_TOK];
    for (int i = 0; i < N_TOK; i++) ids[i] = i ? (i * 37 + 11) % n_vocab : 1;
    float *hooked = malloc(n * sizeof *hooked);
    CHECK(h && hooked && dp_session_new_with(m, &sp, &s) == DP_OK &&
          dp_session_forward_hooked(s, pool, ids, N_TOK, hooked, DP_LOGITS_ALL, h) == DP_OK);
    CHECK_MSG(s && !memcmp(hooked, recovered, n * sizeof *hooked), "the recovery's hooks differ from the attached recovery");
    dp_session_free(s);
    dp_hooks_free(h);
    free(hooked);

    bool none = true;
    CHECK(dp_recovery_kind_parse("lowrank:4", &none) == DP_OK && !none);
    CHECK(dp_recovery_kind_parse("linear-cos", &none) == DP_OK && !none);
    CHECK(dp_recovery_kind_parse("none", &none) == DP_OK && none);
    CHECK(dp_recovery_kind_parse("median", &none) == DP_ERR_ARG && strstr(dp_last_error(), "median"));
    CHECK(dp_recovery_kind_parse("lowrank:", NULL) == DP_ERR_ARG);
}

static void test_recovery_and_export(const struct dp_model *m, struct dp_pool *pool) {
    size_t n = (size_t)N_TOK * dp_model_config(m)->n_vocab;
    struct dp_mask mask;
    dp_mask_all(m, &mask);
    CHECK(dp_mask_drop(&mask, "b2") == DP_OK);
    struct dp_recovery_params rp = dp_recovery_default_params();
    rp.kind = "mean";
    rp.units = "b2";
    rp.calib = (struct dp_corpus_spec){.path = corpus_path(), .docs = "0:40", .ctx = 64, .max_seqs = 8};
    struct dp_recovery *rec = NULL;
    dp_status st = dp_recovery_fit_with(m, pool, &rp, &rec);
    CHECK_MSG(st == DP_OK && rec, "%s", dp_last_error());
    if (!rec) return;
    CHECK(!strcmp(dp_recovery_kind(rec), "mean") && dp_recovery_n_units(rec) == 1 && !strcmp(dp_recovery_unit(rec, 0), "b2"));
    CHECK(dp_recovery_unit(rec, 1) == NULL);

    struct dp_session_params sp = dp_session_default_params();
    sp.n_ctx = N_TOK;
    sp.mask = &mask;
    float *plain = logits_of(m, pool, &sp);
    sp.recovery = rec;
    float *recovered = logits_of(m, pool, &sp);
    CHECK(plain && recovered);
    if (plain && recovered) CHECK_MSG(max_diff(plain, recovered, n) > 1e-3, "the attached recovery changed nothing");

    /* save, load: the same logits, bit for bit */
    CHECK(dp_recovery_save(rec, tmp("r.gguf")) == DP_OK);
    struct dp_recovery *back = NULL;
    CHECK_MSG(dp_recovery_load(tmp("r.gguf"), m, &back) == DP_OK, "%s", dp_last_error());
    sp.recovery = back;
    float *reloaded = back ? logits_of(m, pool, &sp) : NULL;
    CHECK(reloaded && recovered && !memcmp(reloaded, recovered, n * sizeof *reloaded));
    if (recovered) test_recovery_pieces(m, pool, &mask, rec, recovered);

    /* export with the recovery folded in: the written file gives the session's logits */
    struct dp_export_params ep = dp_export_default_params();
    ep.units = "b2";
    ep.recovery = rec;
    struct dp_export_result res;
    st = dp_export_file(model_path(), tmp("out.gguf"), &ep, pool, &res);
    CHECK_MSG(st == DP_OK, "%s", dp_last_error());
    CHECK(res.verified && res.n_blocks == dp_model_config(m)->n_layers - 1 && res.lossless);
    struct dp_model *e = NULL;
    CHECK(!st && dp_model_open(tmp("out.gguf"), NULL, &e) == DP_OK);
    if (e && recovered) {
        struct dp_session_params ep_s = dp_session_default_params();
        ep_s.n_ctx = N_TOK;
        float *exported = logits_of(e, pool, &ep_s);
        CHECK(exported != NULL);
        /* float rounding only: the constant is folded into an ffn_down bias */
        if (exported) CHECK_CLOSE_ARR(exported, recovered, n, 1e-4, 1e-5);
        if (exported && plain) CHECK(max_diff(exported, plain, n) > 1e-3);
        free(exported);
    }
    dp_model_close(e);
    /* bad input: a unit list that does not parse, the output onto the source, a type the writer lacks */
    ep.units = "b2,x9";
    CHECK(dp_export_file(model_path(), tmp("bad.gguf"), &ep, pool, NULL) == DP_ERR_ARG);
    CHECK(access(tmp("bad.gguf"), F_OK) != 0);
    ep.units = "b2";
    ep.out_type = "Q9_9";
    CHECK(dp_export_file(model_path(), tmp("bad.gguf"), &ep, pool, NULL) == DP_ERR_ARG);
    /* cancelled after writing, before verifying: nothing is left behind */
    ep.out_type = NULL;
    ep.progress = stop_at_second;
    n_calls = 0;
    CHECK(dp_export_file(model_path(), tmp("bad.gguf"), &ep, pool, NULL) == DP_ERR_CANCELLED && n_calls == 2);
    CHECK(access(tmp("bad.gguf"), F_OK) != 0);
    char left[600];
    snprintf(left, sizeof left, "ls %s | grep -q unverified", tmpdir);
    CHECK_MSG(system(left) != 0, "a temporary export file was left in %s", tmpdir);

    /* cancellation: the second progress call stops the fit, nothing is handed out */
    rp.progress = stop_at_second;
    n_calls = 0;
    struct dp_recovery *none = (struct dp_recovery *)1;
    CHECK(dp_recovery_fit_with(m, pool, &rp, &none) == DP_ERR_CANCELLED && none == NULL && n_calls == 2);
    CHECK(strstr(dp_last_error(), "cancelled") != NULL);
    /* bad kind, unit not removed by the mask */
    rp.progress = NULL;
    rp.kind = "median";
    CHECK(dp_recovery_fit_with(m, pool, &rp, &none) == DP_ERR_ARG);
    free(plain);
    free(recovered);
    free(reloaded);
    dp_recovery_free(back);
    dp_recovery_free(rec);
}

static void test_sweep(const struct dp_model *m, struct dp_pool *pool) {
    FILE *f = fopen(tmp("scores.json"), "w");
    if (!f) {
        CHECK(f != NULL);
        return;
    }
    /* order by ascending influence: b3, b1, b4, b2, b0 */
    fputs("{\"units\": [{\"unit\": \"b0\", \"metric\": \"m\", \"influence\": 5}, {\"unit\": \"b1\", \"metric\": \"m\", "
          "\"influence\": 2}, {\"unit\": \"b2\", \"metric\": \"m\", \"influence\": 4}, {\"unit\": \"b3\", \"metric\": "
          "\"m\", \"influence\": 1}, {\"unit\": \"b4\", \"metric\": \"m\", \"influence\": 3}]}\n", f);
    fclose(f);
    struct dp_sweep_params p = dp_sweep_default_params();
    p.scores = tmp("scores.json");
    p.schemes = "block";
    p.max_units = 2;
    p.ppl = (struct dp_corpus_spec){.path = corpus_path(), .docs = "100:140", .ctx = 64, .max_seqs = 2};
    p.out_path = tmp("sweep.json");
    struct dp_sweep *s = NULL;
    dp_status st = dp_sweep_evaluate(m, pool, &p, &s);
    CHECK_MSG(st == DP_OK, "%s", dp_last_error());
    CHECK_EQ_INT(dp_sweep_n_runs(s), 1);
    struct dp_sweep_run_info run;
    CHECK(dp_sweep_get_run(s, 0, &run) == DP_OK && !strcmp(run.metric, "m") && !strcmp(run.scheme, "block"));
    CHECK_EQ_INT(run.n_steps, 3);
    char u[16];
    struct dp_sweep_step_info step;
    CHECK(dp_sweep_get_step(s, 0, 2, &step) == DP_OK && step.n_removed == 2 && isfinite(step.ppl) && step.ppl > 1);
    dp_sweep_step_unit(s, 0, 2, 0, u);
    CHECK(!strcmp(u, "b3"));
    dp_sweep_step_unit(s, 0, 2, 1, u);
    CHECK(!strcmp(u, "b1"));
    CHECK(dp_sweep_get_step(s, 0, 3, &step) == DP_ERR_ARG);
    struct dp_sweep_step_info s0;
    CHECK(dp_sweep_get_step(s, 0, 0, &s0) == DP_OK && s0.n_removed == 0 && s0.kv_bytes_per_token > step.kv_bytes_per_token);
    dp_sweep_free(s);
    /* an unknown metric names it; cancellation at the first step */
    p.metrics = "nope";
    CHECK(dp_sweep_evaluate(m, pool, &p, &s) == DP_ERR_ARG && strstr(dp_last_error(), "nope") && !s);
    p.metrics = NULL;
    p.out_path = tmp("sweep2.json");
    p.progress = stop_at_second;
    n_calls = 0;
    CHECK(dp_sweep_evaluate(m, pool, &p, &s) == DP_ERR_CANCELLED && !s);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dp_test_api_XXXXXX");
    if (!mkdtemp(tmpdir)) return fprintf(stderr, "mkdtemp failed\n"), 1;
    struct dp_model *m = NULL;
    if (dp_model_open(model_path(), NULL, &m)) {
        fprintf(stderr, "missing fixture: %s\n", dp_last_error());
        CHECK(m != NULL);
        return TEST_END();
    }
    struct dp_pool *pool = dp_pool_new(2);
    test_recovery_and_export(m, pool);
    test_sweep(m, pool);
    dp_pool_free(pool);
    dp_model_close(m);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return TEST_END();
}
