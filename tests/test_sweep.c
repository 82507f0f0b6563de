/*
 * test_sweep: pruning orders, budgets and resumable sweeps.
 *
 * - Orders and ties from a scores file written by hand: ascending influence,
 *   ties by index within the scheme (a0,f0,a1,f1... for "both"), protected
 *   units left out, several files merged, missing units and spans.
 * - Budgets on hand-made steps (which step, which constraint bound) and on
 *   stories260K, whose KV cache holds 1280 bytes per token, 256 per attention
 *   sublayer (4 KV heads x head size 8 x K and V x 4 bytes), so --target-kv
 *   0.6 stops after two blocks or two attention sublayers and no FFN-only
 *   plan can meet it.
 * - A sweep written, cut short (steps removed from the file as an interrupted
 *   run leaves it) and resumed gives the same bytes, one-shot and iterative;
 *   a file of other arguments is refused.
 * - The speedup objective (cfg.draft): every step's draft acceptance equals
 *   src/spec.h's teacher-forced agreement of that step's mask computed here
 *   directly (and its best length and speed-up dp_spec_measure's), step 0
 *   (nothing removed) accepts everything, the best step is the largest
 *   speed-up, the file resumes to the same bytes and reads back, one thread
 *   and two give the same bytes, and bad settings are refused.
 */
#include "harness.h"

#include "data.h"
#include "eval.h"
#include "prune.h"
#include "sweep.h"

#include <unistd.h>

static char tmpdir[256];

static const char *tmp(const char *name) {
    static char buf[8][512];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", tmpdir, name);
    return b;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static char *read_all(const char *path) {
    char *t;
    size_t n;
    return dp_read_file(path, &t, &n) ? NULL : t;
}

static void order_text(const struct dp_unit *u, int n, char *buf) {
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        char name[16];
        dp_unit_name(u[i], name);
        strcat(buf, i ? " " : "");
        strcat(buf, name);
    }
}

static void expect_order(const struct dp_influences *sc, const char *metric, enum dp_scheme scheme,
                         const struct dp_mask *protect, const char *want) {
    struct dp_unit u[2 * DP_MAX_LAYERS];
    int n = -1;
    char got[512] = "(failed)";
    if (!dp_prune_order(sc, metric, scheme, 3, protect, u, &n)) order_text(u, n, got);
    CHECK_MSG(!strcmp(got, want), "%s %s: order '%s', expected '%s'", metric, dp_scheme_name(scheme), got, want);
}

static void test_orders(void) {
    /* blocks: b1 and b2 tie (b1 first), b0 largest */
    write_file(tmp("blocks.json"),
               "{\"units\": [{\"unit\": \"b0\", \"metric\": \"m\", \"influence\": 3},"
               " {\"unit\": \"b2\", \"metric\": \"m\", \"influence\": 1.5},"
               " {\"unit\": \"b1\", \"metric\": \"m\", \"influence\": 1.5},"
               " {\"unit\": \"b0..b1\", \"metric\": \"angular\", \"influence\": 0.4},"
               " {\"unit\": \"b1..b2\", \"metric\": \"angular\", \"influence\": 0.3},"
               " {\"unit\": \"b0\", \"metric\": \"angular\", \"influence\": 0.2},"
               " {\"unit\": \"b1\", \"metric\": \"angular\", \"influence\": 0.1},"
               " {\"unit\": \"b2\", \"metric\": \"angular\", \"influence\": 0.1}],"
               " \"data\": {\"file\": \"corpus.txt\", \"docs\": \"0:500\"}}");
    /* sublayers: a2 = f0 = 0 (tie: f0 has index 1 in "both", a2 index 4); f1 < a1 */
    write_file(tmp("sub.json"),
               "{\"units\": [{\"unit\": \"a0\", \"metric\": \"m\", \"influence\": 5},"
               " {\"unit\": \"f0\", \"metric\": \"m\", \"influence\": 0},"
               " {\"unit\": \"a1\", \"metric\": \"m\", \"influence\": 2, \"stderr\": 0.5},"
               " {\"unit\": \"f1\", \"metric\": \"m\", \"influence\": -1},"
               " {\"unit\": \"a2\", \"metric\": \"m\", \"influence\": 0},"
               " {\"unit\": \"f2\", \"metric\": \"m\", \"influence\": 7}]}");
    struct dp_influences sc = {0};
    CHECK(dp_influences_load(tmp("blocks.json"), &sc) == DP_OK);
    CHECK(dp_influences_load(tmp("sub.json"), &sc) == DP_OK);
    CHECK_EQ_INT(sc.n_files, 2);
    CHECK(!strcmp(sc.calib[0], "corpus.txt docs 0:500"));
    CHECK(!strcmp(sc.calib[1], ""));
    expect_order(&sc, "m", DP_SCHEME_BLOCK, NULL, "b1 b2 b0");
    expect_order(&sc, "m", DP_SCHEME_ATTN, NULL, "a2 a1 a0");
    expect_order(&sc, "m", DP_SCHEME_FFN, NULL, "f1 f0 f2");
    expect_order(&sc, "m", DP_SCHEME_BOTH, NULL, "f1 f0 a2 a1 a0 f2");
    struct dp_mask protect;
    CHECK(dp_units_protect("b1,a0", 3, &protect) == DP_OK);
    expect_order(&sc, "m", DP_SCHEME_BLOCK, &protect, "b2");            /* b0 holds a0 */
    expect_order(&sc, "m", DP_SCHEME_BOTH, &protect, "f0 a2 f2");
    CHECK(dp_units_protect("b3", 3, &protect) != DP_OK);                /* no such block */
    CHECK(dp_units_protect("x1", 3, &protect) != DP_OK);
    CHECK(dp_influences_cover(&sc, "m", DP_SCHEME_BOTH, 3));
    CHECK(!dp_influences_cover(&sc, "m", DP_SCHEME_BOTH, 4));
    struct dp_unit u[8];
    int n;
    CHECK(dp_prune_order(&sc, "m", DP_SCHEME_BLOCK, 4, NULL, u, &n) != DP_OK); /* b3 missing */
    CHECK(strstr(dp_last_error(), "b3") != NULL);
    CHECK(dp_prune_order(&sc, "angular", DP_SCHEME_BLOCK, 3, NULL, u, &n) != DP_OK);
    /* spans: best of length 1 is b1 (tie with b2: lower start), of length 2 is b1..b2 */
    bool found;
    CHECK(dp_prune_span(&sc, "angular", 1, NULL, u, &found) == DP_OK && found && u[0].layer == 1);
    CHECK(dp_prune_span(&sc, "angular", 2, NULL, u, &found) == DP_OK && found && u[0].layer == 1 && u[1].layer == 2);
    CHECK(dp_units_protect("b2", 3, &protect) == DP_OK);
    CHECK(dp_prune_span(&sc, "angular", 2, &protect, u, &found) == DP_OK && found && u[0].layer == 0);
    CHECK(dp_prune_span(&sc, "angular", 3, NULL, u, &found) == DP_OK && !found);
    const char *metrics[8];
    CHECK_EQ_INT(dp_influences_metrics(&sc, metrics, 8), 2);
    dp_influences_free(&sc);

    /* rank: stable for ties, NaN last */
    double v[6] = {2, NAN, 1, 2, 0, 1};
    int order[6];
    dp_prune_rank(v, 6, order);
    int want[6] = {4, 2, 5, 0, 3, 1};
    bool same = true;
    for (int i = 0; i < 6; i++) same &= order[i] == want[i];
    CHECK(same);

    /* bad files fail naming the file */
    write_file(tmp("bad.json"), "{\"units\": [{\"unit\": \"q1\", \"metric\": \"m\", \"influence\": 1}]}");
    memset(&sc, 0, sizeof sc);
    CHECK(dp_influences_load(tmp("bad.json"), &sc) != DP_OK && strstr(dp_last_error(), "bad.json"));
    write_file(tmp("bad2.json"), "{\"order\": {}}");
    CHECK(dp_influences_load(tmp("bad2.json"), &sc) != DP_OK && strstr(dp_last_error(), "bad2.json"));
    dp_influences_free(&sc);
}

/* A hand-made run: kv and params fall by 10 per unit, ppl and mmlu as given. */
static void make_run(struct dp_sweep_run *r, struct dp_sweep_step *steps, struct dp_unit *units, int n,
                     const double *ppl, const double *acc) {
    memset(r, 0, sizeof *r);
    for (int k = 0; k < n; k++) {
        units[k] = (struct dp_unit){'b', k};
        steps[k] = (struct dp_sweep_step){.n_removed = k, .removed = units, .ppl = ppl[k], .ppl_seq = ppl[k],
                                          .mmlu_acc = acc[k], .mmlu_stderr = 1, .mmlu_n = 100,
                                          .kv_bytes_per_token = 100 - 10 * k, .n_params = 100 - 10 * k};
    }
    r->steps = steps;
    r->n_steps = n;
}

static void test_budget_choose(void) {
    double ppl[6] = {10, 11, 12, 20, 40, 80}, acc[6] = {50, 49, 47, 46, 40, 30};
    struct dp_sweep_run run;
    struct dp_sweep_step steps[6];
    struct dp_unit units[6];
    make_run(&run, steps, units, 6, ppl, acc);
    struct dp_budget b;
    struct dp_budget_result res;
    dp_budget_none(&b);
    b.target_kv = 0.75; /* 80% after 2, 70% after 3 */
    CHECK(dp_budget_choose(&b, &run, 100, 100, &res) == DP_OK);
    CHECK_EQ_INT(res.step, 3);
    CHECK(res.met && res.decided && !strcmp(res.bound, "target-kv"));
    b.max_ppl_ratio = 1.5; /* step 3 has ppl 2x: stop at 2, target not met */
    CHECK(dp_budget_choose(&b, &run, 100, 100, &res) == DP_OK);
    CHECK_EQ_INT(res.step, 2);
    CHECK(!res.met && !strcmp(res.bound, "max-ppl-ratio"));
    dp_budget_none(&b);
    b.max_mmlu_drop = 3; /* 50 -> 47 is a drop of 3 (allowed), 46 is 4 */
    CHECK(dp_budget_choose(&b, &run, 100, 100, &res) == DP_OK);
    CHECK_EQ_INT(res.step, 2);
    CHECK(res.met && !strcmp(res.bound, "max-mmlu-drop"));
    dp_budget_none(&b);
    b.max_ppl_ratio = 100; /* never broken: every unit removed */
    CHECK(dp_budget_choose(&b, &run, 100, 100, &res) == DP_OK);
    CHECK_EQ_INT(res.step, 5);
    CHECK(res.met && !res.decided && !strcmp(res.bound, "units"));
    dp_budget_none(&b);
    b.target_kv = 0.9;
    b.target_params = 0.7; /* kv met at 1, params at 3: params binds */
    CHECK(dp_budget_choose(&b, &run, 100, 100, &res) == DP_OK);
    CHECK_EQ_INT(res.step, 3);
    CHECK(!strcmp(res.bound, "target-params"));
    b.target_kv = 0.01; /* never met */
    CHECK(dp_budget_choose(&b, &run, 100, 100, &res) == DP_OK);
    CHECK(!res.met && !strcmp(res.bound, "units"));
    /* limits need their evaluations */
    for (int k = 0; k < 6; k++) steps[k].ppl = NAN;
    dp_budget_none(&b);
    b.max_ppl_ratio = 2;
    CHECK(dp_budget_choose(&b, &run, 100, 100, &res) != DP_OK);
}

/* ---- on stories260K ---- */

struct fixture {
    struct dp_model *m;
    struct dp_pool *pool;
    struct dp_influences sc;
    struct dp_chunks *calib, *eval;
};

static bool open_fixture(struct fixture *fx) {
    memset(fx, 0, sizeof *fx);
    if (dp_model_open(test_shared("models/stories260K/stories260K.gguf"), NULL, &fx->m)) return false;
    fx->pool = dp_pool_new(2);
    /* b2 < b4 < b3 < b1 < b0 (leave-one-out's order on this model); sublayers: a2 a4 a3 f2 f3 a0 a1 f0 f4 f1 */
    write_file(tmp("s260.json"),
               "{\"units\": ["
               "{\"unit\": \"b0\", \"metric\": \"loo_loss\", \"influence\": 9}, {\"unit\": \"b1\", \"metric\": \"loo_loss\", \"influence\": 5},"
               "{\"unit\": \"b2\", \"metric\": \"loo_loss\", \"influence\": 1}, {\"unit\": \"b3\", \"metric\": \"loo_loss\", \"influence\": 3},"
               "{\"unit\": \"b4\", \"metric\": \"loo_loss\", \"influence\": 2},"
               "{\"unit\": \"a0\", \"metric\": \"loo_loss\", \"influence\": 6}, {\"unit\": \"f0\", \"metric\": \"loo_loss\", \"influence\": 8},"
               "{\"unit\": \"a1\", \"metric\": \"loo_loss\", \"influence\": 7}, {\"unit\": \"f1\", \"metric\": \"loo_loss\", \"influence\": 10},"
               "{\"unit\": \"a2\", \"metric\": \"loo_loss\", \"influence\": 1}, {\"unit\": \"f2\", \"metric\": \"loo_loss\", \"influence\": 4},"
               "{\"unit\": \"a3\", \"metric\": \"loo_loss\", \"influence\": 3}, {\"unit\": \"f3\", \"metric\": \"loo_loss\", \"influence\": 5},"
               "{\"unit\": \"a4\", \"metric\": \"loo_loss\", \"influence\": 2}, {\"unit\": \"f4\", \"metric\": \"loo_loss\", \"influence\": 9},"
               "{\"unit\": \"b0\", \"metric\": \"cosine\", \"influence\": 0.22}, {\"unit\": \"b1\", \"metric\": \"cosine\", \"influence\": 0.14},"
               "{\"unit\": \"b2\", \"metric\": \"cosine\", \"influence\": 0.11}, {\"unit\": \"b3\", \"metric\": \"cosine\", \"influence\": 0.12},"
               "{\"unit\": \"b4\", \"metric\": \"cosine\", \"influence\": 0.14}]}");
    if (dp_influences_load(tmp("s260.json"), &fx->sc)) return false;
    struct dp_corpus *c;
    if (dp_corpus_read(test_shared("data/tinystories/valid-first1000.txt"), &c)) return false;
    dp_status st = dp_chunks_paper(dp_model_tokenizer(fx->m), c, 0, 20, 64, 4, &fx->calib);
    if (!st) st = dp_chunks_paper(dp_model_tokenizer(fx->m), c, 500, 520, 64, 6, &fx->eval);
    dp_corpus_free(c);
    return st == DP_OK;
}

static void close_fixture(struct fixture *fx) {
    dp_chunks_free(fx->calib);
    dp_chunks_free(fx->eval);
    dp_influences_free(&fx->sc);
    dp_pool_free(fx->pool);
    dp_model_close(fx->m);
}

static void base_config(struct fixture *fx, struct dp_sweep_config *c, const char **metric, enum dp_scheme *scheme) {
    memset(c, 0, sizeof *c);
    c->model = fx->m;
    c->pool = fx->pool;
    c->model_name = "stories260K.gguf";
    c->scores = &fx->sc;
    c->metrics = metric;
    c->n_metrics = 1;
    c->schemes = scheme;
    c->n_schemes = 1;
    c->oneshot = true;
    dp_budget_none(&c->budget);
}

static void test_budget_stories(struct fixture *fx) {
    struct dp_model_stats ms;
    dp_model_stats(fx->m, NULL, &ms);
    CHECK_EQ_INT(ms.kv_bytes_per_token, 1280);
    const char *metric = "loo_loss";
    enum dp_scheme scheme = DP_SCHEME_BLOCK;
    struct dp_sweep_config c;
    base_config(fx, &c, &metric, &scheme);
    struct dp_plan plan;
    struct dp_budget_result res;
    c.budget.target_kv = 0.6; /* 768 of 1280 bytes: two blocks */
    CHECK(dp_budget_plan(&c, &plan, &res) == DP_OK);
    CHECK_EQ_INT(plan.n_units, 2);
    CHECK(plan.n_units == 2 && !strcmp(plan.units[0], "b2") && !strcmp(plan.units[1], "b4"));
    CHECK(!strcmp(res.bound, "target-kv") && res.met);
    c.budget.target_kv = 0.59; /* three */
    CHECK(dp_budget_plan(&c, &plan, &res) == DP_OK);
    CHECK_EQ_INT(plan.n_units, 3);
    scheme = DP_SCHEME_ATTN;
    c.budget.target_kv = 0.6;
    CHECK(dp_budget_plan(&c, &plan, &res) == DP_OK);
    CHECK(plan.n_units == 2 && !strcmp(plan.units[0], "a2") && !strcmp(plan.units[1], "a4"));
    struct dp_mask protect;
    CHECK(dp_units_protect("a4", 5, &protect) == DP_OK);
    c.protect = &protect;
    CHECK(dp_budget_plan(&c, &plan, &res) == DP_OK);
    CHECK(plan.n_units == 2 && !strcmp(plan.units[1], "a3"));
    c.protect = NULL;
    scheme = DP_SCHEME_FFN; /* FFN sublayers hold no KV cache */
    CHECK(dp_budget_plan(&c, &plan, &res) != DP_OK);
    CHECK(strstr(dp_last_error(), "cannot be met") != NULL);
    /* both: a2 a4 a3 f2 ...: 0.4 of the KV cache needs three attention sublayers, the fourth unit is not needed */
    scheme = DP_SCHEME_BOTH;
    c.budget.target_kv = 0.4;
    CHECK(dp_budget_plan(&c, &plan, &res) == DP_OK);
    CHECK_EQ_INT(plan.n_units, 3);
    /* a perplexity limit: one block removed at most when the ratio is small */
    scheme = DP_SCHEME_BLOCK;
    dp_budget_none(&c.budget);
    c.ppl_chunks = fx->eval;
    struct dp_ppl p0, p1, p2;
    struct dp_mask mask;
    dp_mask_all(fx->m, &mask);
    CHECK(dp_eval_ppl_paper(fx->m, &mask, NULL, fx->pool, fx->eval, &p0) == DP_OK);
    dp_mask_drop(&mask, "b2");
    CHECK(dp_eval_ppl_paper(fx->m, &mask, NULL, fx->pool, fx->eval, &p1) == DP_OK);
    dp_mask_drop(&mask, "b4");
    CHECK(dp_eval_ppl_paper(fx->m, &mask, NULL, fx->pool, fx->eval, &p2) == DP_OK);
    c.budget.max_ppl_ratio = 0.5 * (p1.ppl / p0.ppl + p2.ppl / p0.ppl);
    CHECK(dp_budget_plan(&c, &plan, &res) == DP_OK);
    CHECK(plan.n_units == 1 && !strcmp(res.bound, "max-ppl-ratio"));
}

static void test_resume(struct fixture *fx, bool iterative) {
    const char *metrics[2] = {"loo_loss", "cosine"};
    enum dp_scheme schemes[2] = {DP_SCHEME_BLOCK, DP_SCHEME_ATTN};
    struct dp_sweep_config c;
    base_config(fx, &c, metrics, schemes);
    c.n_metrics = iterative ? 1 : 2;
    c.n_schemes = 2;
    c.iterative = iterative;
    c.oneshot = !iterative;
    c.calib = fx->calib;
    c.ppl_chunks = fx->eval;
    c.max_units = 3;
    c.budget.target_kv = 0.7;
    struct dp_sweep_arg args[2] = {{"metric", "loo_loss"}, {"eval", "docs 500:520"}};
    c.args = args;
    c.n_args = 2;
    const char *full = tmp(iterative ? "full_it.json" : "full.json"), *cut = tmp(iterative ? "cut_it.json" : "cut.json");
    unlink(full);
    unlink(cut);
    c.out_path = full;
    struct dp_sweep *s;
    CHECK(dp_sweep_run(&c, &s) == DP_OK);
    if (!s) return;
    CHECK_EQ_INT(s->n_runs, iterative ? 2 : 3); /* cosine has no attention scores: no run */
    CHECK_EQ_INT(s->n_warnings, iterative ? 0 : 1);
    for (int r = 0; r < s->n_runs; r++) CHECK_EQ_INT(s->runs[r].n_steps, 4);
    CHECK(s->runs[0].has_budget && s->runs[0].budget.step == 2);
    /* cut: runs lose their last steps, the later run loses all but the first (as an interrupted sweep leaves them) */
    s->runs[0].n_steps = 2;
    s->runs[1].n_steps = 1;
    for (int r = 2; r < s->n_runs; r++) s->runs[r].n_steps = 0;
    for (int r = 0; r < s->n_runs; r++) s->runs[r].has_budget = false;
    CHECK(dp_sweep_save(s, cut) == DP_OK);
    for (int r = 2; r < s->n_runs; r++) s->runs[r].n_steps = 4;
    s->runs[0].n_steps = s->runs[1].n_steps = 4;
    dp_sweep_free(s);
    c.out_path = cut;
    CHECK_MSG(dp_sweep_run(&c, &s) == DP_OK, "resume: %s", dp_last_error());
    dp_sweep_free(s);
    char *a = read_all(full), *b = read_all(cut);
    CHECK_MSG(a && b && !strcmp(a, b), "resumed sweep differs from the uninterrupted one (%s vs %s)", full, cut);
    free(a);
    free(b);
    /* other arguments: refused, naming the difference */
    args[1].value = "docs 500:600";
    CHECK(dp_sweep_run(&c, &s) != DP_OK);
    CHECK(strstr(dp_last_error(), "eval") != NULL);
    /* load and save round trip */
    struct dp_sweep *l;
    CHECK(dp_sweep_load(full, &l) == DP_OK);
    if (l) {
        CHECK(dp_sweep_save(l, tmp("again.json")) == DP_OK);
        a = read_all(full);
        b = read_all(tmp("again.json"));
        CHECK(a && b && !strcmp(a, b));
        free(a);
        free(b);
        struct dp_plan plan;
        CHECK(dp_sweep_plan(l, 0, 2, &plan) == DP_OK);
        CHECK_EQ_INT(plan.n_units, 2);
        dp_sweep_free(l);
    }
}

static void test_draft(struct fixture *fx) {
    const char *metric = "loo_loss";
    enum dp_scheme scheme = DP_SCHEME_ATTN;
    struct dp_sweep_config c;
    base_config(fx, &c, &metric, &scheme);
    c.calib = fx->calib;
    c.ppl_chunks = fx->eval;
    c.max_units = 3;
    c.draft = true;
    c.draft_k_max = 8;
    const char *full = tmp("draft.json"), *cut = tmp("draft_cut.json"), *one = tmp("draft_t1.json");
    unlink(full);
    unlink(cut);
    unlink(one);
    c.out_path = full;
    struct dp_sweep *s;
    CHECK_MSG(dp_sweep_run(&c, &s) == DP_OK, "%s", dp_last_error());
    if (!s) return;
    CHECK(s->has_draft && !s->draft_timed && s->draft_k_max == 8);
    CHECK_EQ_INT(s->n_runs, 1);
    const struct dp_sweep_run *r = &s->runs[0];
    CHECK_EQ_INT(r->n_steps, 4);
    /* the same numbers computed directly: the full model's argmax, then each step's mask */
    struct dp_mask full_mask;
    dp_mask_all(fx->m, &full_mask);
    int *ref = malloc((size_t)fx->calib->n_seqs * fx->calib->ctx * sizeof *ref);
    CHECK(ref && !dp_spec_reference(fx->m, fx->pool, &full_mask, NULL, fx->calib, ref));
    struct dp_spec_yardstick y;
    CHECK(!dp_spec_yardstick_init(&y, fx->m, fx->pool, fx->calib, 8, false, 0, 0));
    int best = 0;
    for (int k = 0; k < r->n_steps && ref; k++) {
        const struct dp_sweep_step *st = &r->steps[k];
        struct dp_mask mask;
        dp_mask_all(fx->m, &mask);
        for (int i = 0; i < st->n_removed; i++) dp_unit_remove(&mask, st->removed[i]);
        double a;
        CHECK(!dp_spec_agreement(fx->m, fx->pool, &mask, NULL, fx->calib, ref, &a, NULL, NULL));
        CHECK_CLOSE(st->draft_accept, a, 0, 1e-9); /* the file keeps 10 digits */
        struct dp_spec_plan d;
        CHECK(!dp_spec_measure(&y, fx->m, fx->pool, &mask, NULL, &d));
        CHECK_EQ_INT(st->draft_len, d.best_len);
        CHECK_CLOSE(st->draft_speedup, d.speedup, 0, 1e-9);
        CHECK_CLOSE(st->draft_c_bytes, d.c_bytes, 0, 1e-9);
        CHECK_CLOSE(st->draft_tokens_per_verify, d.tokens_per_verify, 0, 1e-9);
        CHECK(k == 0 ? a == 1 : a < 1);
        if (st->draft_speedup > r->steps[best].draft_speedup) best = k;
    }
    CHECK_EQ_INT(r->draft_best, best);
    CHECK(r->steps[0].draft_c_bytes == 1 && r->steps[0].draft_len == 1 && r->steps[0].draft_speedup == 1);
    CHECK(r->steps[1].draft_c_bytes < 1 && isfinite(r->steps[1].ppl)); /* the rest of the step as without drafts */
    dp_spec_yardstick_free(&y);
    free(ref);
    /* resumed after a cut, the same bytes; read back and written, the same bytes */
    s->runs[0].n_steps = 2;
    CHECK(dp_sweep_save(s, cut) == DP_OK);
    s->runs[0].n_steps = 4;
    dp_sweep_free(s);
    c.out_path = cut;
    CHECK_MSG(dp_sweep_run(&c, &s) == DP_OK, "resume: %s", dp_last_error());
    dp_sweep_free(s);
    char *a = read_all(full), *b = read_all(cut);
    CHECK_MSG(a && b && !strcmp(a, b), "resumed draft sweep differs (%s vs %s)", full, cut);
    CHECK(a && strstr(a, "\"draft_best\"") && strstr(a, "\"draft_accept\""));
    free(b);
    struct dp_sweep *l;
    CHECK(dp_sweep_load(full, &l) == DP_OK);
    if (l) {
        CHECK(l->has_draft && l->runs[0].draft_best == best);
        CHECK(dp_sweep_save(l, tmp("draft_again.json")) == DP_OK);
        b = read_all(tmp("draft_again.json"));
        CHECK(a && b && !strcmp(a, b));
        free(b);
        dp_sweep_free(l);
    }
    /* one thread: the same bytes */
    struct dp_pool *p1 = dp_pool_new(1);
    c.pool = p1;
    c.out_path = one;
    CHECK(dp_sweep_run(&c, &s) == DP_OK);
    dp_sweep_free(s);
    b = read_all(one);
    CHECK_MSG(a && b && !strcmp(a, b), "1 and 2 threads differ (%s vs %s)", one, full);
    free(a);
    free(b);
    dp_pool_free(p1);
    c.pool = fx->pool;
    /* bad settings */
    c.out_path = NULL;
    c.draft_k_max = DP_SPEC_MAX_LEN + 1;
    CHECK(dp_sweep_run(&c, &s) == DP_ERR_ARG);
    c.draft_k_max = 8;
    c.calib = NULL;
    CHECK(dp_sweep_run(&c, &s) == DP_ERR_ARG && strstr(dp_last_error(), "calib"));
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dp_test_sweep.%d", (int)getpid());
    char cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
    if (system(cmd) != 0) return 1;
    test_orders();
    test_budget_choose();
    struct fixture fx;
    if (open_fixture(&fx)) {
        test_budget_stories(&fx);
        test_resume(&fx, false);
        test_resume(&fx, true);
        test_draft(&fx);
    } else {
        CHECK_MSG(false, "stories260K fixture: %s", dp_last_error());
    }
    close_fixture(&fx);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) return 1;
    return TEST_END();
}
