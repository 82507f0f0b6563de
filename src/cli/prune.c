/*
 * prune: write the pruned model as a smaller GGUF file (src/export.h) that
 * depthprune and llama.cpp load.
 *
 * The units come from --drop, a saved --plan, or the first --count units of
 * a scores file's order (--scores, --metric, --scheme); a recovery (from the
 * plan, or fitted with --recover KIND on --calib CORPUS, both handled by
 * cli_open) is folded into the file. The export is written under a
 * temporary name and verified before it takes its final name: the file is
 * reloaded and its logits on a short token sequence compared with the
 * in-memory pruned model's (mask plus recovery hooks). New and modified
 * matrices are written in the types of their counterparts in the source
 * (by default) or in --out-type T; when every one of them reads back
 * exactly (F32, or zero placeholders in any type) the logits must agree to
 * float rounding, or nothing is written; otherwise the difference is
 * reported. A matrix whose rows are not whole blocks of its type takes
 * llama-quantize's fallback type, with a note on stderr.
 *
 * With --draft the units come from a search for the best draft model of
 * self-speculative decoding (src/spec.h, dp_spec_search): per scheme, plans
 * of 1..--count units (default 4) by teacher-forced agreement with the full
 * model on --calib CORPUS, each scored by its expected speed-up with costs
 * timed on the file at hand (--cost time, the default) or from weight bytes
 * (--cost bytes); the best plan is exported. The written draft runs next to
 * the original in llama.cpp's llama-speculative (same vocabulary).
 */
#include "cli.h"

#include "data.h"
#include "export.h"
#include "model.h"
#include "plan.h"
#include "prune.h"
#include "quantize.h"
#include "recover.h"
#include "spec.h"
#include "sweep.h"
#include "tasks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define VERIFY_TOKENS 32

/*
 * The first `count` units of a metric's order under a scheme, as a --drop
 * list (the model is opened only for its block count).
 */
static int from_scores(const struct cli_common *c, const char *path, const char *metric, const char *scheme_s,
                       long count, char *list, size_t cap) {
    enum dp_scheme scheme;
    const char *model = c->model;
    if (dp_scheme_parse(scheme_s, &scheme)) return cli_error("prune", 2, "--scheme: %s", dp_last_error());
    struct dp_model *m;
    if (dp_model_open(model, c->vocab, &m)) return cli_error("prune", 1, "%s", dp_last_error());
    int n_layers = dp_model_config(m)->n_layers;
    struct dp_influences sc = {0};
    struct dp_unit *order = calloc(2 * DP_MAX_LAYERS, sizeof *order);
    int n = 0;
    dp_status st = order ? dp_influences_load(path, &sc) : dp_fail(DP_ERR_NOMEM, "out of memory");
    int rc = st ? 0 : cli_check_scores("prune", c, m, &sc, (int)scheme);
    dp_model_close(m);
    if (rc) {
        dp_influences_free(&sc);
        free(order);
        return rc;
    }
    if (!st && dp_metric_is_span(metric)) {
        bool found = false;
        st = dp_prune_span(&sc, metric, (int)count, NULL, order, &found);
        if (!st && !found) st = dp_fail(DP_ERR_ARG, "%s: no span of %ld blocks scored by %s", path, count, metric);
        n = (int)count;
    } else if (!st) {
        st = dp_prune_order(&sc, metric, scheme, n_layers, NULL, order, &n);
        if (!st && count > n)
            st = dp_fail(DP_ERR_ARG, "%s: --count %ld but the %s order has only %d units", path, count, metric, n);
        n = (int)count;
    }
    dp_influences_free(&sc);
    size_t len = 0;
    list[0] = 0;
    for (int i = 0; !st && i < n; i++) {
        char u[16];
        dp_unit_name(order[i], u);
        if (order[i].layer >= n_layers)
            st = dp_fail(DP_ERR_ARG, "%s: unit %s does not exist in %s", path, u, model);
        int w = snprintf(list + len, cap - len, "%s%s", len ? "," : "", u);
        if (w > 0) len += (size_t)w;
        if (len >= cap) st = dp_fail(DP_ERR_ARG, "%s: too many units", path);
    }
    free(order);
    return st ? cli_error("prune", st == DP_ERR_ARG ? 2 : 1, "%s", dp_last_error()) : 0;
}

/* What a budget plan needs besides the scores (prune --target-kv ... ). */
struct budget_opts {
    const char *target_kv, *target_params, *max_ppl_ratio, *max_mmlu_drop, *protect;
    const char *ppl, *ppl_docs, *ctx, *max_seqs, *mmlu, *mmlu_limit;
};

static bool budget_given(const struct budget_opts *b) {
    return b->target_kv || b->target_params || b->max_ppl_ratio || b->max_mmlu_drop;
}

/*
 * The units of a budget plan (src/sweep.h, dp_budget_plan): the metric's
 * one-shot order under the scheme, evaluated step by step (perplexity by the
 * paper protocol on --ppl, MMLU on --mmlu, only as the limits need) until
 * the budget decides; the chosen step's units go to `list`, what bound it to *res.
 */
static int from_budget(const struct cli_common *c, const struct budget_opts *b, const char *path, const char *metric,
                       const char *scheme_s, char *list, size_t cap, struct dp_budget_result *res) {
    struct dp_budget budget;
    dp_budget_none(&budget);
    long ctx = 0, max_seqs = 0, limit = 0;
    if ((b->target_kv && !cli_double("prune", "--target-kv", b->target_kv, 1e-9, 1, &budget.target_kv)) ||
        (b->target_params && !cli_double("prune", "--target-params", b->target_params, 1e-9, 1, &budget.target_params)) ||
        (b->max_ppl_ratio && !cli_double("prune", "--max-ppl-ratio", b->max_ppl_ratio, 1, 1e12, &budget.max_ppl_ratio)) ||
        (b->max_mmlu_drop && !cli_double("prune", "--max-mmlu-drop", b->max_mmlu_drop, 0, 100, &budget.max_mmlu_drop)) ||
        (b->ctx && !cli_int("prune", "--ctx", b->ctx, 4, 1 << 20, &ctx)) ||
        (b->max_seqs && !cli_int("prune", "--max-seqs", b->max_seqs, 1, 1L << 30, &max_seqs)) ||
        (b->mmlu_limit && !cli_int("prune", "--mmlu-limit", b->mmlu_limit, 1, 1L << 30, &limit)))
        return 2;
    if (b->max_ppl_ratio && !b->ppl) return cli_error("prune", 2, "--max-ppl-ratio needs --ppl CORPUS");
    if (b->max_mmlu_drop && !b->mmlu) return cli_error("prune", 2, "--max-mmlu-drop needs --mmlu DIR");
    enum dp_scheme scheme;
    if (dp_scheme_parse(scheme_s, &scheme)) return cli_error("prune", 2, "--scheme: %s", dp_last_error());
    /* the unpruned model (a recovery is fitted later, for the chosen units) */
    struct cli_common base = *c;
    base.drop = base.plan = base.save_plan = NULL;
    base.own_recover = true;
    struct cli_model cm;
    int rc = cli_open("prune", &base, &cm);
    if (rc) return rc;
    const struct dp_config *cf = dp_model_config(cm.m);
    if (!ctx) ctx = cf->n_ctx_train < 2048 ? cf->n_ctx_train : 2048;
    if (b->ppl && (rc = cli_check_sessions("prune", &cm, NULL, 1, ctx, ctx, 0, "--ctx"))) {
        cli_close(&cm);
        return rc;
    }
    struct dp_influences sc = {0};
    struct dp_chunks *pplc = NULL;
    struct dp_mmlu_data *mmlu = NULL;
    struct dp_mask protect;
    struct dp_plan plan = {0};
    struct dp_sweep_mmlu mc = {NULL, 5, cf->n_ctx_train < 2048 ? cf->n_ctx_train : 2048};
    if (dp_influences_load(path, &sc)) rc = cli_error("prune", 1, "%s", dp_last_error());
    if (!rc) rc = cli_check_scores("prune", c, cm.m, &sc, (int)scheme);
    if (!rc && b->protect && dp_units_protect(b->protect, cf->n_layers, &protect))
        rc = cli_error("prune", 2, "--protect: %s", dp_last_error());
    if (!rc && b->ppl) rc = cli_read_chunks("prune", cm.m, b->ppl, b->ppl_docs, ctx, max_seqs, "--ppl-docs", "--ppl", &pplc);
    if (!rc && b->mmlu && dp_mmlu_read(b->mmlu, NULL, (int)limit, &mmlu)) rc = cli_error("prune", 1, "%s", dp_last_error());
    mc.data = mmlu;
    if (!rc) {
        const char *metrics[1] = {metric};
        struct dp_sweep_config cfg = {
            .model = cm.m, .pool = cm.pool, .model_name = c->model, .scores = &sc, .metrics = metrics, .n_metrics = 1,
            .schemes = &scheme, .n_schemes = 1, .oneshot = true, .ppl_chunks = pplc, .ppl_ctx = (int)ctx,
            .mmlu = mmlu ? dp_sweep_mmlu_eval : NULL, .mmlu_ctx = &mc, .protect = b->protect ? &protect : NULL,
            .budget = budget, .log = NULL};
        if (dp_budget_plan(&cfg, &plan, res)) rc = cli_error("prune", 1, "%s", dp_last_error());
    }
    size_t len = 0;
    list[0] = 0;
    for (int i = 0; !rc && i < plan.n_units; i++) {
        int w = snprintf(list + len, cap - len, "%s%s", len ? "," : "", plan.units[i]);
        if (w > 0) len += (size_t)w;
        if (len >= cap) rc = cli_error("prune", 2, "%s: too many units", path);
    }
    if (!rc && !plan.n_units) rc = cli_error("prune", 1, "the budget removes nothing: %s", res->why);
    dp_mmlu_data_free(mmlu);
    dp_chunks_free(pplc);
    dp_influences_free(&sc);
    cli_close(&cm);
    return rc;
}

/* The draft search of prune --draft and its results. */
struct draft_search {
    struct dp_spec_plan plans[4 * 64];
    int n_plans, best;
    double c_verify[DP_SPEC_MAX_LEN + 1];
    int k_max;
    const char *cost;
};

static int from_draft(const struct cli_common *c, const char *scheme_s, long count, const char *kmax_s,
                      const char *cost_s, struct draft_search *ds, char *list, size_t cap) {
    long k_max = 8, ctx = 0, max_seqs = 0;
    if ((kmax_s && !cli_int("prune", "--draft-len-max", kmax_s, 1, DP_SPEC_MAX_LEN, &k_max)) ||
        (c->calib_ctx && !cli_int("prune", "--calib-ctx", c->calib_ctx, 4, 1 << 20, &ctx)) ||
        (c->calib_max_seqs && !cli_int("prune", "--calib-max-seqs", c->calib_max_seqs, 1, 1L << 30, &max_seqs)))
        return 2;
    if (!c->calib) return cli_error("prune", 2, "--draft needs --calib CORPUS (the text agreement is measured on)");
    if (cost_s && strcmp(cost_s, "time") && strcmp(cost_s, "bytes"))
        return cli_error("prune", 2, "--cost must be time or bytes, not '%s'", cost_s);
    struct dp_spec_search_opts o = {.max_removed = count ? (int)count : 4, .k_max = (int)k_max,
                                    .timed = !cost_s || !strcmp(cost_s, "time"), .time_reps = 15};
    if (scheme_s && strcmp(scheme_s, "all")) {
        enum dp_scheme sc;
        if (dp_scheme_parse(scheme_s, &sc)) return cli_error("prune", 2, "--scheme: %s", dp_last_error());
        o.schemes = 1u << sc;
    } else {
        o.schemes = (1u << DP_N_SCHEMES) - 1;
    }
    struct cli_common base = *c;
    base.drop = base.plan = base.save_plan = NULL;
    base.calib = base.calib_docs = base.calib_ctx = base.calib_max_seqs = NULL;
    base.own_recover = true;
    struct cli_model cm;
    int rc = cli_open("prune", &base, &cm);
    if (rc) return rc;
    const struct dp_config *cf = dp_model_config(cm.m);
    if (!ctx) ctx = cf->n_ctx_train < 256 ? cf->n_ctx_train : 256;
    if (!max_seqs) max_seqs = 16;
    o.time_pos = cf->n_ctx_train < 2 * 128 ? cf->n_ctx_train / 2 : 128;
    struct dp_chunks *ch = NULL;
    rc = cli_read_chunks("prune", cm.m, c->calib, c->calib_docs, ctx, max_seqs, "--calib-docs", "--calib", &ch);
    ds->k_max = o.k_max;
    ds->cost = o.timed ? "time" : "bytes";
    if (!rc && dp_spec_search(cm.m, cm.pool, ch, &o, ds->c_verify, ds->plans, (int)(sizeof ds->plans / sizeof *ds->plans),
                              &ds->n_plans))
        rc = cli_error("prune", 1, "%s", dp_last_error());
    ds->best = 0;
    for (int i = 1; !rc && i < ds->n_plans; i++)
        if (ds->plans[i].speedup > ds->plans[ds->best].speedup) ds->best = i;
    if (!rc && !ds->n_plans) rc = cli_error("prune", 1, "--draft: no plan to search (--count %ld)", count);
    if (!rc) {
        fprintf(stderr, "draft search on %s (%d x %d tokens), costs by %s; verifying k+1 tokens costs", c->calib,
                ch->n_seqs, ch->ctx, ds->cost);
        for (int k = 1; k <= o.k_max; k++) fprintf(stderr, " %.2f", ds->c_verify[k]);
        fprintf(stderr, " decode steps\n%-6s %2s  %-24s %7s %7s %7s %3s %6s %7s\n", "scheme", "n", "removed", "agree",
                "c_bytes", "c_draft", "K", "tok/v", "speedup");
        for (int i = 0; i < ds->n_plans; i++) {
            const struct dp_spec_plan *p = &ds->plans[i];
            fprintf(stderr, "%-6s %2d  %-24s %7.4f %7.3f %7.3f %3d %6.2f %7.3f%s\n", dp_scheme_name((enum dp_scheme)p->scheme),
                    p->n_removed, p->units, p->agree, p->c_bytes, p->c_draft, p->best_len, p->tokens_per_verify,
                    p->speedup, i == ds->best ? "  <- best" : "");
        }
        if (snprintf(list, cap, "%s", ds->plans[ds->best].units) >= (int)cap) rc = cli_error("prune", 2, "too many units");
    }
    dp_chunks_free(ch);
    cli_close(&cm);
    return rc;
}

static void draft_json(struct dp_json *j, const struct draft_search *ds) {
    dp_json_begin_obj(j, "draft");
    dp_json_str(j, "cost", ds->cost);
    dp_json_begin_arr(j, "c_verify");
    for (int k = 0; k <= ds->k_max; k++) dp_json_num(j, NULL, ds->c_verify[k]);
    dp_json_end(j);
    dp_json_begin_arr(j, "plans");
    for (int i = 0; i < ds->n_plans; i++) {
        const struct dp_spec_plan *p = &ds->plans[i];
        dp_json_begin_obj(j, NULL);
        dp_json_str(j, "scheme", dp_scheme_name((enum dp_scheme)p->scheme));
        dp_json_int(j, "n_removed", p->n_removed);
        dp_json_str(j, "removed", p->units);
        dp_json_num(j, "draft_accept", p->agree);
        dp_json_num(j, "c_bytes", p->c_bytes);
        dp_json_num(j, "c_draft", p->c_draft);
        dp_json_int(j, "draft_len", p->best_len);
        dp_json_num(j, "tokens_per_verify", p->tokens_per_verify);
        dp_json_num(j, "speedup", p->speedup);
        dp_json_end(j);
    }
    dp_json_end(j);
    dp_json_int(j, "best", ds->best);
    dp_json_end(j);
}

/* Logits of VERIFY_TOKENS tokens (BOS, then a fixed walk through the vocabulary). */
static dp_status verify_logits(const struct dp_model *m, const struct dp_mask *mask, const struct dp_hooks *hooks,
                               struct dp_pool *pool, float *out) {
    const struct dp_config *c = dp_model_config(m);
    int n = VERIFY_TOKENS < c->n_ctx_train ? VERIFY_TOKENS : c->n_ctx_train, ids[VERIFY_TOKENS];
    ids[0] = dp_tokenizer_bos(dp_model_tokenizer(m));
    if (ids[0] < 0 || ids[0] >= c->n_vocab) ids[0] = 0;
    for (int i = 1; i < n; i++) ids[i] = (int)(((int64_t)i * 7919 + 17) % c->n_vocab);
    struct dp_session *s;
    dp_status st = dp_session_new(m, mask, n, &s);
    if (!st) st = dp_session_forward_hooked(s, pool, ids, n, out, DP_LOGITS_ALL, hooks);
    dp_session_free(s);
    return st;
}

static long long file_size(const char *path) {
    struct stat s;
    return stat(path, &s) ? -1 : (long long)s.st_size;
}

static void print_result(bool json, const char *out, const struct dp_export_info *info, const struct dp_plan *plan,
                         const char *removed, const struct dp_model *m, const struct dp_model *e,
                         const char *rec_kind, const char *type, double diff, bool verified,
                         const struct dp_budget_result *budget, const struct draft_search *ds) {
    struct dp_model_stats s0, s1;
    dp_model_stats(m, NULL, &s0);
    dp_model_stats(e, NULL, &s1);
    long long b0 = file_size(dp_model_path(m)), b1 = file_size(out);
    if (json) {
        struct dp_json j;
        dp_json_init(&j, stdout);
        dp_json_begin_obj(&j, NULL);
        dp_json_str(&j, "path", out);
        dp_json_str(&j, "arch", info->arch);
        dp_json_str(&j, "out_type", type);
        dp_json_begin_arr(&j, "removed");
        for (int i = 0; i < plan->n_units; i++) dp_json_str(&j, NULL, plan->units[i]);
        dp_json_end(&j);
        dp_json_str(&j, "recover", rec_kind);
        dp_json_int(&j, "n_blocks", info->n_blocks);
        dp_json_int(&j, "n_blocks_source", dp_model_config(m)->n_layers);
        dp_json_int(&j, "n_params", s1.n_params);
        dp_json_int(&j, "n_params_source", s0.n_params);
        dp_json_int(&j, "kv_bytes_per_token", s1.kv_bytes_per_token);
        dp_json_int(&j, "kv_bytes_per_token_source", s0.kv_bytes_per_token);
        dp_json_int(&j, "file_bytes", b1);
        dp_json_int(&j, "file_bytes_source", b0);
        dp_json_str(&j, "source_sha256", info->sha256);
        if (verified) dp_json_num(&j, "verify_max_abs_diff", diff);
        else dp_json_null(&j, "verify_max_abs_diff");
        if (budget) {
            dp_json_begin_obj(&j, "budget");
            dp_json_str(&j, "bound", budget->bound);
            dp_json_str(&j, "why", budget->why);
            dp_json_end(&j);
        }
        if (ds) draft_json(&j, ds);
        dp_json_end(&j);
        fputc('\n', stdout);
        return;
    }
    printf("wrote        %s (arch %s, new and modified tensors in %s)\n", out, info->arch,
           strcmp(type, "source") ? type : "the types of their source counterparts");
    printf("removed      %s (recovery %s)\n", removed[0] ? removed : "none", rec_kind);
    printf("blocks       %d -> %d\n", dp_model_config(m)->n_layers, info->n_blocks);
    printf("parameters   %lld -> %lld (%.1f%%)\n", (long long)s0.n_params, (long long)s1.n_params,
           100.0 * (double)s1.n_params / (double)s0.n_params);
    printf("KV cache     %lld -> %lld bytes per token (f32)\n", (long long)s0.kv_bytes_per_token,
           (long long)s1.kv_bytes_per_token);
    printf("file         %lld -> %lld bytes\n", b0, b1);
    if (verified) printf("verified     max |logit difference| %.3g against the in-memory pruned model\n", diff);
    if (budget) printf("budget       %s\n", budget->why);
    if (ds)
        printf("draft        expected speed-up x%.2f at --draft-len %d (agreement %.3f, draft step %.2f of a decode step)\n",
               ds->plans[ds->best].speedup, ds->plans[ds->best].best_len, ds->plans[ds->best].agree,
               ds->plans[ds->best].c_draft);
}

/* Reload the export and compare its logits with the in-memory pruned model's; returns the largest difference. */
static dp_status verify(const struct cli_model *cm, const struct dp_model *e, double *diff, double *scale) {
    const struct dp_config *c = dp_model_config(cm->m);
    size_t n = (size_t)VERIFY_TOKENS * c->n_vocab;
    float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    dp_status st = want && got ? DP_OK : dp_fail(DP_ERR_NOMEM, "out of memory");
    if (!st) st = verify_logits(cm->m, &cm->mask, cm->hooks, cm->pool, want);
    if (!st) st = verify_logits(e, NULL, NULL, cm->pool, got);
    int rows = VERIFY_TOKENS < c->n_ctx_train ? VERIFY_TOKENS : c->n_ctx_train;
    *diff = *scale = 0;
    for (size_t i = 0; !st && i < (size_t)rows * c->n_vocab; i++) {
        *diff = fmax(*diff, fabs((double)got[i] - want[i]));
        *scale = fmax(*scale, fabs(want[i]));
    }
    free(want);
    free(got);
    return st;
}

int cmd_prune(int argc, char **argv) {
    struct cli_common c = {0};
    struct budget_opts bo = {0};
    const char *out = NULL, *scores = NULL, *metric = NULL, *scheme = NULL, *count_s = NULL, *type_s = NULL,
               *no_verify = NULL, *draft = NULL, *kmax_s = NULL, *cost_s = NULL;
    const struct cli_opt opts[] = {
        CLI_COMMON_OPTS(c),
        {"-o", "--output", false, &out, "output GGUF file"},
        {"--scores", NULL, false, &scores, "scores JSON of `score` (with --metric, --scheme, --count)"},
        {"--metric", NULL, false, &metric, "metric whose order to follow"},
        {"--scheme", NULL, false, &scheme, "block (default), attn, ffn or both"},
        {"--count", NULL, false, &count_s, "units to remove"},
        {"--out-type", NULL, false, &type_s, "type of new or modified matrices (default: each its source counterpart's): "
                                            "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K, IQ4_NL, IQ4_XS"},
        {"--no-verify", NULL, true, &no_verify, "skip the reload check"},
        {"--draft", NULL, true, &draft, "search the best draft for speculative decoding (--calib, --count N, --scheme X|all)"},
        {"--draft-len-max", NULL, false, &kmax_s, "draft: largest draft length considered (default 8)"},
        {"--cost", NULL, false, &cost_s, "draft: time (default: timed passes) or bytes (weight bytes)"},
        {"--target-kv", NULL, false, &bo.target_kv, "budget: keep at most this fraction of the KV cache"},
        {"--target-params", NULL, false, &bo.target_params, "budget: keep at most this fraction of the parameters"},
        {"--max-ppl-ratio", NULL, false, &bo.max_ppl_ratio, "budget: perplexity at most R times the unpruned (--ppl)"},
        {"--max-mmlu-drop", NULL, false, &bo.max_mmlu_drop, "budget: MMLU at most P points below the unpruned (--mmlu)"},
        {"--protect", NULL, false, &bo.protect, "budget: units never removed, e.g. b0,a4"},
        {"--ppl", NULL, false, &bo.ppl, "budget: perplexity corpus (paper protocol)"},
        {"--ppl-docs", NULL, false, &bo.ppl_docs, "budget: its documents A:B"},
        {"--ctx", NULL, false, &bo.ctx, "budget: perplexity context (default 2048 capped at the model's)"},
        {"--max-seqs", NULL, false, &bo.max_seqs, "budget: at most N perplexity sequences"},
        {"--mmlu", NULL, false, &bo.mmlu, "budget: MMLU folder (dev/, test/)"},
        {"--mmlu-limit", NULL, false, &bo.mmlu_limit, "budget: first N test questions per subject"},
        CLI_END};
    const char *pos[1];
    int n_pos, rc = cli_parse("prune", argc, argv, opts, pos, 0, &n_pos);
    const char *syn = "-m MODEL (--drop UNITS | --plan FILE | --scores S --metric M [--scheme X] (--count K | BUDGET) | "
                      "--draft --calib CORPUS [--count N] [--scheme X|all] [--cost time|bytes]) "
                      "[--recover KIND --calib CORPUS] [--out-type T] -o OUT.gguf\n"
                      "  BUDGET: --target-kv F | --target-params F | --max-ppl-ratio R --ppl CORPUS | "
                      "--max-mmlu-drop P --mmlu DIR (any of them) [--protect UNITS]";
    if (rc) return rc == 2 && !c.model ? cli_usage("prune", syn, opts) : rc;
    if (!c.model) return cli_error("prune", 2, "missing -m MODEL");
    if (!out) return cli_error("prune", 2, "missing -o OUT.gguf");
    if ((c.drop != NULL) + (c.plan != NULL) + (scores != NULL) + (draft != NULL) != 1)
        return cli_error("prune", 2, "give exactly one of --drop, --plan, --scores, --draft");
    if (!draft && (kmax_s || cost_s)) return cli_error("prune", 2, "--draft-len-max and --cost go with --draft");
    if (draft && (metric || budget_given(&bo) || c.recover))
        return cli_error("prune", 2, "--draft goes without --metric, budgets and --recover");
    bool budget = budget_given(&bo);
    if (scores && (!metric || (!count_s == !budget)))
        return cli_error("prune", 2, "--scores needs --metric and either --count or a budget (--target-kv, --target-params, "
                                     "--max-ppl-ratio, --max-mmlu-drop)");
    if (!scores && !draft && (metric || scheme || count_s || budget))
        return cli_error("prune", 2, "--metric, --scheme, --count and budgets go with --scores");
    if (!budget && (bo.protect || bo.ppl || bo.ppl_docs || bo.ctx || bo.max_seqs || bo.mmlu || bo.mmlu_limit))
        return cli_error("prune", 2, "--protect, --ppl, --ppl-docs, --ctx, --max-seqs, --mmlu and --mmlu-limit go with a budget");
    long count = 0;
    if (count_s && !cli_int("prune", "--count", count_s, 1, 2 * DP_MAX_LAYERS, &count)) return 2;
    int type = type_s ? dp_type_from_name(type_s) : -1;
    if (type_s && (type < 0 || !dp_quantize_supported((uint32_t)type)))
        return cli_error("prune", 2, "--out-type must be F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, "
                                     "Q4_K, Q5_K, Q6_K, IQ4_NL or IQ4_XS, not '%s'", type_s);
    struct cli_io io = {0};
    cli_io_common(&io, &c);
    cli_io_in(&io, "--scores", scores);
    cli_io_in(&io, "--ppl", bo.ppl);
    cli_io_in_dir(&io, "--mmlu", bo.mmlu);
    cli_io_out(&io, "-o", out);
    if ((rc = cli_io_check("prune", &io))) return rc;
    char list[4096];
    struct dp_budget_result bres = {0};
    static struct draft_search ds;
    if (draft) {
        if ((rc = from_draft(&c, scheme, count, kmax_s, cost_s, &ds, list, sizeof list))) return rc;
        c.drop = list;
        c.calib = c.calib_docs = c.calib_ctx = c.calib_max_seqs = NULL;
    }
    if (scores) {
        if (!scheme) scheme = "block";
        rc = budget ? from_budget(&c, &bo, scores, metric, scheme, list, sizeof list, &bres)
                    : from_scores(&c, scores, metric, scheme, count, list, sizeof list);
        if (rc) return rc;
        if (budget) fprintf(stderr, "depthprune prune: budget: %s\n", bres.why);
        c.drop = list;
    }

    struct cli_model cm;
    if ((rc = cli_open("prune", &c, &cm))) return rc;
    const struct dp_plan *plan = cm.plan;
    char removed[4096] = "", calib[1200] = "", tmp[4200] = "";
    for (int i = 0; i < plan->n_units; i++) {
        size_t len = strlen(removed);
        snprintf(removed + len, sizeof removed - len, "%s%s", i ? "," : "", plan->units[i]);
    }
    if (cm.recovery && c.calib)
        snprintf(calib, sizeof calib, "%s%s%s", c.calib, c.calib_docs ? " docs " : "", c.calib_docs ? c.calib_docs : "");
    struct dp_export_opts o = {.out_type = type_s ? (uint32_t)type : DP_EXPORT_SOURCE_TYPES, .removed = removed,
                               .metric = scores ? metric : plan->metric[0] ? plan->metric : NULL,
                               .scheme = scores ? scheme : plan->scheme[0] ? plan->scheme : NULL,
                               .calib = calib[0] ? calib : NULL, .plan = c.plan};
    struct dp_export_info info;
    struct dp_model *e = NULL;
    snprintf(tmp, sizeof tmp, "%s.unverified-%ld", out, (long)getpid());
    if (dp_export(cm.m, &cm.mask, cm.recovery, &o, tmp, &info) || dp_model_open(tmp, NULL, &e)) {
        rc = cli_error("prune", 1, "%s", dp_last_error());
        goto done;
    }
    if (info.n_fallback)
        fprintf(stderr, "depthprune prune: %d new matrices have rows that are not whole blocks of their type; "
                        "written in llama-quantize's fallback type (e.g. Q4_K -> Q5_0)\n", info.n_fallback);
    double diff = 0, scale = 0;
    if (!no_verify) {
        if (verify(&cm, e, &diff, &scale)) {
            rc = cli_error("prune", 1, "verifying %s: %s", out, dp_last_error());
            goto done;
        }
        /* float rounding only: folded constants and B / silu(1) reassociate sums */
        if (info.lossless && !(diff <= 1e-4 * fmax(1.0, scale))) {
            rc = cli_error("prune", 1, "%s would not reproduce the pruned model (max |logit difference| %.3g); not "
                           "written", out, diff);
            goto done;
        }
    }
    if (rename(tmp, out)) {
        rc = cli_error("prune", 1, "%s: cannot rename the verified file into place", out);
        goto done;
    }
    tmp[0] = 0;
    print_result(c.json != NULL, out, &info, plan, removed, cm.m, e, cm.recovery ? cm.recovery->kind : "none",
                 type_s ? dp_type_name((uint32_t)type) : "source", diff, !no_verify, budget ? &bres : NULL,
                 draft ? &ds : NULL);
done:
    if (tmp[0]) unlink(tmp);
    dp_model_close(e);
    cli_close(&cm);
    return rc;
}
