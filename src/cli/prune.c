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
 *
 * A client of the public header alone: dp_prune_units_from_scores,
 * dp_budget_units, dp_draft_search and dp_export_file do the work.
 */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The first `count` units of a metric's order under a scheme, as a --drop list. */
static int from_scores(const struct cli_common *c, const char *path, const char *metric, const char *scheme_s,
                       long count, char *list, size_t cap) {
    struct dp_model *m;
    if (dp_model_open(c->model, c->vocab, &m)) return cli_error("prune", 1, "%s", dp_last_error());
    dp_status st = dp_prune_units_from_scores(m, path, c->allow_twin != NULL, metric, scheme_s, (int)count, list, cap,
                                              cli_log_line, (void *)"prune");
    dp_model_close(m);
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
 * The units of a budget plan (dp_budget_units): the metric's one-shot order
 * under the scheme, evaluated step by step (perplexity by the paper protocol
 * on --ppl, MMLU on --mmlu, only as the limits need) until the budget
 * decides; the chosen step's units go to `list`, what bound it to *res.
 */
static int from_budget(const struct cli_common *c, const struct budget_opts *b, const char *path, const char *metric,
                       const char *scheme_s, char *list, size_t cap, struct dp_budget_info *res) {
    struct dp_budget_params bp = dp_budget_default_params();
    long ctx = 0, max_seqs = 0, limit = 0;
    if ((b->target_kv && !cli_double("prune", "--target-kv", b->target_kv, 1e-9, 1, &bp.target_kv)) ||
        (b->target_params && !cli_double("prune", "--target-params", b->target_params, 1e-9, 1, &bp.target_params)) ||
        (b->max_ppl_ratio && !cli_double("prune", "--max-ppl-ratio", b->max_ppl_ratio, 1, 1e12, &bp.max_ppl_ratio)) ||
        (b->max_mmlu_drop && !cli_double("prune", "--max-mmlu-drop", b->max_mmlu_drop, 0, 100, &bp.max_mmlu_drop)) ||
        (b->ctx && !cli_int("prune", "--ctx", b->ctx, 4, 1 << 20, &ctx)) ||
        (b->max_seqs && !cli_int("prune", "--max-seqs", b->max_seqs, 1, 1L << 30, &max_seqs)) ||
        (b->mmlu_limit && !cli_int("prune", "--mmlu-limit", b->mmlu_limit, 1, 1L << 30, &limit)))
        return 2;
    if (b->max_ppl_ratio && !b->ppl) return cli_error("prune", 2, "--max-ppl-ratio needs --ppl CORPUS");
    if (b->max_mmlu_drop && !b->mmlu) return cli_error("prune", 2, "--max-mmlu-drop needs --mmlu DIR");
    if (strcmp(scheme_s, "block") && strcmp(scheme_s, "attn") && strcmp(scheme_s, "ffn") && strcmp(scheme_s, "both"))
        return cli_error("prune", 2, "--scheme: unknown scheme '%s' (block, attn, ffn or both)", scheme_s);
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
    bp.scores = path;
    bp.allow_twin = c->allow_twin != NULL;
    bp.metric = metric;
    bp.scheme = scheme_s;
    bp.protect = b->protect;
    bp.ppl = (struct dp_corpus_spec){.path = b->ppl, .docs = b->ppl_docs, .ctx = (int)ctx, .max_seqs = (int)max_seqs};
    bp.mmlu_dir = b->mmlu;
    bp.mmlu_limit = (int)limit;
    bp.progress = cli_progress_lines;
    bp.log = cli_log_line;
    bp.log_user = (void *)"prune";
    if (dp_budget_units(cm.m, cm.pool, &bp, list, cap, res)) rc = cli_error("prune", 1, "%s", dp_last_error());
    cli_close(&cm);
    return rc;
}

/* The draft search of prune --draft (dp_draft_search), printed on stderr; the best plan's units go to list. */
static int from_draft(const struct cli_common *c, const char *scheme_s, long count, const char *kmax_s,
                      const char *cost_s, struct dp_drafts *ds, const char **cost, char *list, size_t cap) {
    long k_max = 8, ctx = 0, max_seqs = 0;
    if ((kmax_s && !cli_int("prune", "--draft-len-max", kmax_s, 1, DP_DRAFT_MAX_LEN, &k_max)) ||
        (c->calib_ctx && !cli_int("prune", "--calib-ctx", c->calib_ctx, 4, 1 << 20, &ctx)) ||
        (c->calib_max_seqs && !cli_int("prune", "--calib-max-seqs", c->calib_max_seqs, 1, 1L << 30, &max_seqs)))
        return 2;
    if (!c->calib) return cli_error("prune", 2, "--draft needs --calib CORPUS (the text agreement is measured on)");
    if (cost_s && strcmp(cost_s, "time") && strcmp(cost_s, "bytes"))
        return cli_error("prune", 2, "--cost must be time or bytes, not '%s'", cost_s);
    struct dp_draft_params dp = dp_draft_default_params();
    dp.max_removed = count ? (int)count : 4;
    dp.k_max = (int)k_max;
    dp.timed = !cost_s || !strcmp(cost_s, "time");
    dp.schemes = scheme_s ? scheme_s : "all";
    dp.calib = (struct dp_corpus_spec){.path = c->calib, .docs = c->calib_docs, .ctx = (int)ctx, .max_seqs = (int)max_seqs};
    dp.progress = cli_progress_lines;
    *cost = dp.timed ? "time" : "bytes";
    struct cli_common base = *c;
    base.drop = base.plan = base.save_plan = NULL;
    base.calib = base.calib_docs = base.calib_ctx = base.calib_max_seqs = NULL;
    base.own_recover = true;
    struct cli_model cm;
    int rc = cli_open("prune", &base, &cm);
    if (rc) return rc;
    if (dp_draft_search(cm.m, cm.pool, &dp, ds))
        rc = cli_error("prune", dp_last_error()[0] && strstr(dp_last_error(), "scheme") ? 2 : 1, "%s", dp_last_error());
    if (!rc) {
        fprintf(stderr, "draft search on %s (%d x %d tokens), costs by %s; verifying k+1 tokens costs", c->calib,
                ds->n_seqs, ds->ctx, *cost);
        for (int k = 1; k <= ds->k_max; k++) fprintf(stderr, " %.2f", ds->c_verify[k]);
        fprintf(stderr, " decode steps\n%-6s %2s  %-24s %7s %7s %7s %3s %6s %7s\n", "scheme", "n", "removed", "agree",
                "c_bytes", "c_draft", "K", "tok/v", "speedup");
        for (int i = 0; i < ds->n_plans; i++) {
            const struct dp_draft_plan *p = &ds->plans[i];
            fprintf(stderr, "%-6s %2d  %-24s %7.4f %7.3f %7.3f %3d %6.2f %7.3f%s\n", p->scheme, p->n_removed, p->units,
                    p->agree, p->c_bytes, p->c_draft, p->best_len, p->tokens_per_verify, p->speedup,
                    i == ds->best ? "  <- best" : "");
        }
        if (snprintf(list, cap, "%s", ds->plans[ds->best].units) >= (int)cap) rc = cli_error("prune", 2, "too many units");
    }
    cli_close(&cm);
    return rc;
}

static void draft_json(struct cli_json *j, const struct dp_drafts *ds, const char *cost) {
    cli_json_begin_obj(j, "draft");
    cli_json_str(j, "cost", cost);
    cli_json_begin_arr(j, "c_verify");
    for (int k = 0; k <= ds->k_max; k++) cli_json_num(j, NULL, ds->c_verify[k]);
    cli_json_end(j);
    cli_json_begin_arr(j, "plans");
    for (int i = 0; i < ds->n_plans; i++) {
        const struct dp_draft_plan *p = &ds->plans[i];
        cli_json_begin_obj(j, NULL);
        cli_json_str(j, "scheme", p->scheme);
        cli_json_int(j, "n_removed", p->n_removed);
        cli_json_str(j, "removed", p->units);
        cli_json_num(j, "draft_accept", p->agree);
        cli_json_num(j, "c_bytes", p->c_bytes);
        cli_json_num(j, "c_draft", p->c_draft);
        cli_json_int(j, "draft_len", p->best_len);
        cli_json_num(j, "tokens_per_verify", p->tokens_per_verify);
        cli_json_num(j, "speedup", p->speedup);
        cli_json_end(j);
    }
    cli_json_end(j);
    cli_json_int(j, "best", ds->best);
    cli_json_end(j);
}

static long long file_size(const char *path) {
    struct stat s;
    return stat(path, &s) ? -1 : (long long)s.st_size;
}

static int print_result(bool json, const char *out, const struct dp_export_result *info, const char *removed,
                        const struct dp_model *m, const struct dp_model *e, const char *rec_kind, const char *type,
                        const struct dp_budget_info *budget, const struct dp_drafts *ds, const char *cost) {
    struct dp_model_stats s0, s1;
    dp_model_stats(m, NULL, &s0);
    dp_model_stats(e, NULL, &s1);
    long long b0 = file_size(dp_model_path(m)), b1 = file_size(out);
    double diff = info->verify_max_abs_diff;
    if (json) {
        struct cli_json *j = cli_json_new(stdout);
        if (!j) return cli_error("prune", 1, "out of memory");
        cli_json_begin_obj(j, NULL);
        cli_json_str(j, "path", out);
        cli_json_str(j, "arch", info->arch);
        cli_json_str(j, "out_type", type);
        cli_json_begin_arr(j, "removed");
        for (const char *s = removed; *s;) {
            const char *comma = strchr(s, ',');
            size_t n = comma ? (size_t)(comma - s) : strlen(s);
            char u[16];
            snprintf(u, sizeof u, "%.*s", (int)(n < sizeof u ? n : sizeof u - 1), s);
            cli_json_str(j, NULL, u);
            s = comma ? comma + 1 : s + n;
        }
        cli_json_end(j);
        cli_json_str(j, "recover", rec_kind);
        cli_json_int(j, "n_blocks", info->n_blocks);
        cli_json_int(j, "n_blocks_source", dp_model_config(m)->n_layers);
        cli_json_int(j, "n_params", s1.n_params);
        cli_json_int(j, "n_params_source", s0.n_params);
        cli_json_int(j, "kv_bytes_per_token", s1.kv_bytes_per_token);
        cli_json_int(j, "kv_bytes_per_token_source", s0.kv_bytes_per_token);
        cli_json_int(j, "file_bytes", b1);
        cli_json_int(j, "file_bytes_source", b0);
        cli_json_str(j, "source_sha256", info->sha256);
        if (info->verified) cli_json_num(j, "verify_max_abs_diff", diff);
        else cli_json_null(j, "verify_max_abs_diff");
        if (budget) {
            cli_json_begin_obj(j, "budget");
            cli_json_str(j, "bound", budget->bound);
            cli_json_str(j, "why", budget->why);
            cli_json_end(j);
        }
        if (ds) draft_json(j, ds, cost);
        cli_json_end(j);
        cli_json_free(j);
        fputc('\n', stdout);
        return 0;
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
    if (info->verified) printf("verified     max |logit difference| %.3g against the in-memory pruned model\n", diff);
    if (budget) printf("budget       %s\n", budget->why);
    if (ds)
        printf("draft        expected speed-up x%.2f at --draft-len %d (agreement %.3f, draft step %.2f of a decode step)\n",
               ds->plans[ds->best].speedup, ds->plans[ds->best].best_len, ds->plans[ds->best].agree,
               ds->plans[ds->best].c_draft);
    return 0;
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
    if (type_s && !dp_export_type_supported(type_s))
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
    struct dp_budget_info bres = {0};
    static struct dp_drafts ds;
    const char *cost = "time";
    if (draft) {
        if ((rc = from_draft(&c, scheme, count, kmax_s, cost_s, &ds, &cost, list, sizeof list))) return rc;
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
    char removed[4096] = "", calib[1200] = "";
    cli_plan_units(&cm, removed, sizeof removed);
    if (cm.recovery && c.calib)
        snprintf(calib, sizeof calib, "%s%s%s", c.calib, c.calib_docs ? " docs " : "", c.calib_docs ? c.calib_docs : "");
    const char *plan_metric = cli_plan_metric(&cm), *plan_scheme = cli_plan_scheme(&cm);
    struct dp_export_params ep = dp_export_default_params();
    ep.units = removed;
    ep.recovery = cm.recovery;
    ep.out_type = type_s;
    ep.verify = !no_verify;
    ep.metric = scores ? metric : plan_metric[0] ? plan_metric : NULL;
    ep.scheme = scores ? scheme : plan_scheme[0] ? plan_scheme : NULL;
    ep.calib = calib[0] ? calib : NULL;
    ep.plan = c.plan;
    ep.progress = cli_progress_lines;
    struct dp_export_result info;
    struct dp_model *e = NULL;
    if (dp_export_file(dp_model_path(cm.m), out, &ep, cm.pool, &info) ||
        (dp_dist_rank() == 0 && dp_model_open(out, NULL, &e))) {
        rc = cli_error("prune", 1, "%s", dp_last_error());
        goto done;
    }
    if (dp_dist_rank() > 0) goto done; /* rank 0 alone wrote the file and reports it (dp_export_file) */
    if (info.n_fallback)
        fprintf(stderr, "depthprune prune: %d new matrices have rows that are not whole blocks of their type; "
                        "written in llama-quantize's fallback type (e.g. Q4_K -> Q5_0)\n", info.n_fallback);
    rc = print_result(c.json != NULL, out, &info, removed, cm.m, e, cm.recovery ? dp_recovery_kind(cm.recovery) : "none",
                      type_s ? dp_synth_type_name(type_s) : "source", budget ? &bres : NULL, draft ? &ds : NULL, cost);
done:
    dp_model_close(e);
    cli_close(&cm);
    return rc;
}
