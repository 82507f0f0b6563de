/*
 * mmlu: 5-shot MMLU accuracy by the research's protocol (src/mmlu.h), with
 * per-subject accuracies, standard errors, the tokens the prefix cache
 * saved, and optionally a paired comparison with a second configuration of
 * the same model on the same questions.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#define SYNOPSIS                                                                                             \
    "-m MODEL --data DIR [--shots 5] [--limit N] [--subjects S,...] [--ctx-limit N] [--dump-prompts FILE]\n" \
    "       [--paired-drop UNITS | --baseline] [--no-prefix-cache] [--progress] [--drop UNITS] [--json]"

static void print_text(const struct dp_mmlu_data *d, const struct dp_mmlu_result *r, const struct dp_mmlu_opts *o,
                       const char *removed, double secs) {
    printf("%-40s %6s %9s\n", "subject", "n", "accuracy");
    for (int i = 0; i < dp_mmlu_data_n_subjects(d); i++) {
        const struct dp_mmlu_subject_result *s = &r->subjects[i];
        printf("%-40s %6d %8.2f%%\n", dp_mmlu_data_subject(d, i), s->n, 100.0 * s->n_correct / s->n);
    }
    printf("MMLU accuracy %.2f%% +/- %.2f (n %d, %d-shot, context limit %d, %d truncated%s%s)\n",
           100.0 * r->n_correct / r->n, 100 * dp_stats_acc_stderr(r->n_correct, r->n), r->n, o->shots, o->ctx_limit,
           r->n_truncated, removed[0] ? ", removed " : "", removed);
    printf("shots kept:");
    for (int k = 0; k <= o->shots; k++) printf(" %d:%d", k, r->shots_used[k]);
    printf("\ntokens evaluated %lld, naive %lld (%.2fx fewer), %.1f s\n", (long long)r->tokens_evaluated,
           (long long)r->tokens_naive, (double)r->tokens_naive / (double)(r->tokens_evaluated ? r->tokens_evaluated : 1),
           secs);
}

static void print_json(const struct dp_mmlu_data *d, const struct dp_mmlu_result *r, const struct dp_mmlu_opts *o,
                       const char *removed, double secs, const struct dp_paired *paired, const char *removed_b) {
    struct dp_json j;
    dp_json_init(&j, stdout);
    dp_json_begin_obj(&j, NULL);
    dp_json_num(&j, "accuracy", 100.0 * r->n_correct / r->n);
    dp_json_num(&j, "stderr", 100 * dp_stats_acc_stderr(r->n_correct, r->n));
    dp_json_int(&j, "n", r->n);
    dp_json_int(&j, "n_correct", r->n_correct);
    dp_json_begin_obj(&j, "per_subject");
    for (int i = 0; i < dp_mmlu_data_n_subjects(d); i++) {
        const struct dp_mmlu_subject_result *s = &r->subjects[i];
        dp_json_begin_obj(&j, dp_mmlu_data_subject(d, i));
        dp_json_num(&j, "accuracy", 100.0 * s->n_correct / s->n);
        dp_json_num(&j, "stderr", 100 * dp_stats_acc_stderr(s->n_correct, s->n));
        dp_json_int(&j, "n", s->n);
        dp_json_end(&j);
    }
    dp_json_end(&j);
    dp_json_int(&j, "truncated", r->n_truncated);
    dp_json_int(&j, "shots", o->shots);
    dp_json_begin_arr(&j, "shots_used");
    for (int k = 0; k <= o->shots; k++) dp_json_int(&j, NULL, r->shots_used[k]);
    dp_json_end(&j);
    dp_json_int(&j, "ctx_limit", o->ctx_limit);
    dp_json_int(&j, "tokens_evaluated", r->tokens_evaluated);
    dp_json_int(&j, "tokens_naive", r->tokens_naive);
    dp_json_str(&j, "removed", removed);
    dp_json_num(&j, "seconds", secs);
    if (paired) {
        dp_json_str(&j, "removed_b", removed_b);
        dp_stats_paired_json(&j, "paired", paired);
    }
    dp_json_end(&j);
}

int cmd_mmlu(int argc, char **argv) {
    struct cli_common c = {0};
    const char *data = NULL, *shots_s = NULL, *limit_s = NULL, *subjects = NULL, *ctx_s = NULL, *dump = NULL;
    const char *paired_drop = NULL, *baseline = NULL, *no_cache = NULL, *progress = NULL;
    const struct cli_opt opts[] = {
        CLI_COMMON_OPTS(c),
        {"--data", NULL, false, &data, "MMLU folder with dev/ and test/"},
        {"--shots", NULL, false, &shots_s, "few-shot examples (default 5)"},
        {"--limit", NULL, false, &limit_s, "first N test questions of each subject"},
        {"--subjects", NULL, false, &subjects, "comma list of subjects (default: all)"},
        {"--ctx-limit", NULL, false, &ctx_s, "prompt token limit (default 2048, capped at the model's context)"},
        {"--dump-prompts", NULL, false, &dump, "write every prompt as JSON lines to FILE"},
        {"--paired-drop", NULL, false, &paired_drop, "also evaluate the model without UNITS; paired statistics"},
        {"--baseline", NULL, true, &baseline, "also evaluate the unpruned model; paired statistics"},
        {"--no-prefix-cache", NULL, true, &no_cache, "evaluate every prompt from scratch (for checks)"},
        {"--progress", NULL, true, &progress, "progress on stderr even with --json"},
        CLI_END};
    const char *pos[1];
    int n_pos, rc = cli_parse("mmlu", argc, argv, opts, pos, 0, &n_pos);
    if (rc) return rc == 2 && !c.model ? cli_usage("mmlu", SYNOPSIS, opts) : rc;
    if (!data) return cli_error("mmlu", 2, "missing --data DIR");
    if (paired_drop && baseline) return cli_error("mmlu", 2, "--paired-drop and --baseline exclude each other");
    long shots = 5, limit = 0, ctx_limit = 0;
    if ((shots_s && !cli_int("mmlu", "--shots", shots_s, 0, DP_MMLU_MAX_SHOTS, &shots)) ||
        (limit_s && !cli_int("mmlu", "--limit", limit_s, 1, 1L << 30, &limit)) ||
        (ctx_s && !cli_int("mmlu", "--ctx-limit", ctx_s, 8, 1 << 20, &ctx_limit)))
        return 2;
    cli_progress_mode(c.json != NULL, progress != NULL);
    struct cli_io io = {0};
    cli_io_common(&io, &c);
    cli_io_in_dir(&io, "--data", data);
    cli_io_out(&io, "--dump-prompts", dump);
    if ((rc = cli_io_check("mmlu", &io))) return rc;
    struct cli_model cm;
    if ((rc = cli_open("mmlu", &c, &cm))) return rc;
    struct dp_mask mask_b;
    dp_mask_all(cm.m, &mask_b);
    if (paired_drop && dp_mask_drop(&mask_b, paired_drop)) {
        cli_close(&cm);
        return cli_error("mmlu", 2, "--paired-drop: %s", dp_last_error());
    }
    const struct dp_config *cf = dp_model_config(cm.m);
    struct dp_mmlu_opts o = dp_mmlu_default_opts(cm.m); /* the protocol's defaults for this model */
    if (!ctx_limit) ctx_limit = o.ctx_limit;
    else if (ctx_limit > cf->n_ctx_train)
        fprintf(stderr, "depthprune mmlu: warning: --ctx-limit %ld exceeds the model's trained context %d\n", ctx_limit,
                cf->n_ctx_train);
    if ((rc = cli_check_sessions("mmlu", &cm, NULL, 1, ctx_limit, 1, 0, "--ctx-limit"))) {
        cli_close(&cm);
        return rc;
    }
    struct dp_mmlu_data *d = NULL;
    struct dp_mmlu_result *r = NULL, *rb = NULL;
    struct dp_out out = {0};
    o.shots = (int)shots, o.ctx_limit = (int)ctx_limit, o.prefix_cache = !no_cache, o.progress = cli_progress_lines;
    double t0 = dp_now();
    dp_status st = dp_mmlu_read(data, subjects, (int)limit, &d);
    if (!st && dump && !(st = dp_out_open(dump, &out))) o.dump = out.f;
    if (!st) st = dp_mmlu_eval(cm.m, &cm.mask, cm.hooks, cm.pool, d, &o, &r);
    if (o.dump) {
        if (st) dp_out_abort(&out);
        else st = dp_out_commit(&out);
        o.dump = NULL;
    }
    if (!st && (paired_drop || baseline)) st = dp_mmlu_eval(cm.m, &mask_b, NULL, cm.pool, d, &o, &rb);
    double secs = dp_now() - t0;
    if (st) {
        rc = cli_error("mmlu", 1, "%s", dp_last_error());
    } else {
        char removed[4096], removed_b[4096];
        dp_mask_format(&cm.mask, removed, sizeof removed);
        dp_mask_format(&mask_b, removed_b, sizeof removed_b);
        struct dp_paired p;
        if (rb) dp_stats_paired(r->correct, rb->correct, r->n, &p);
        if (c.json) {
            print_json(d, r, &o, removed, secs, rb ? &p : NULL, removed_b);
        } else {
            print_text(d, r, &o, removed, secs);
            if (rb)
                printf("paired with %s: accuracy %.2f%% vs %.2f%%, difference %+.2f +/- %.2f points, "
                       "%lld right only here, %lld only there, McNemar p = %.4g\n",
                       removed_b[0] ? removed_b : "the unpruned model", 100 * p.acc_a, 100 * p.acc_b, 100 * p.diff,
                       100 * p.diff_stderr, (long long)p.a_only, (long long)p.b_only, p.mcnemar_p);
        }
    }
    dp_mmlu_result_free(r);
    dp_mmlu_result_free(rb);
    dp_mmlu_data_free(d);
    cli_close(&cm);
    return rc;
}
