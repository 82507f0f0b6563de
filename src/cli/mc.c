/*
 * mc: zero-shot multiple-choice accuracy (HellaSwag, ARC, PIQA, WinoGrande,
 * BoolQ; src/mc.h and src/tasks.h), acc and acc_norm with standard errors,
 * optionally paired with a second configuration of the same model.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#define SYNOPSIS                                                                                         \
    "-m MODEL --task hellaswag|arc|piqa|winogrande|boolq --data FILE [--labels FILE] [--limit N]\n"      \
    "       [--ctx-limit N] [--paired-drop UNITS | --baseline] [--no-prefix-cache] [--progress] [--drop UNITS] [--json]"

int cmd_mc(int argc, char **argv) {
    struct cli_common c = {0};
    const char *task_s = NULL, *data = NULL, *labels = NULL, *limit_s = NULL, *ctx_s = NULL;
    const char *paired_drop = NULL, *baseline = NULL, *no_cache = NULL, *progress = NULL;
    const struct cli_opt opts[] = {
        CLI_COMMON_OPTS(c),
        {"--task", NULL, false, &task_s, "hellaswag, arc, piqa, winogrande or boolq"},
        {"--data", NULL, false, &data, "the task file (see the README for the formats)"},
        {"--labels", NULL, false, &labels, "PIQA labels (default: FILE with .jsonl -> -labels.lst)"},
        {"--limit", NULL, false, &limit_s, "first N items"},
        {"--ctx-limit", NULL, false, &ctx_s, "token limit per sequence (default 2048, capped at the model's context)"},
        {"--paired-drop", NULL, false, &paired_drop, "also evaluate the model without UNITS; paired statistics"},
        {"--baseline", NULL, true, &baseline, "also evaluate the unpruned model; paired statistics"},
        {"--no-prefix-cache", NULL, true, &no_cache, "evaluate every item from scratch (for checks)"},
        {"--progress", NULL, true, &progress, "progress on stderr even with --json"},
        CLI_END};
    const char *pos[1];
    int n_pos, rc = cli_parse("mc", argc, argv, opts, pos, 0, &n_pos);
    if (rc) return rc == 2 && !c.model ? cli_usage("mc", SYNOPSIS, opts) : rc;
    enum dp_task task;
    if (!task_s) return cli_error("mc", 2, "missing --task (hellaswag, arc, piqa, winogrande or boolq)");
    if (dp_task_parse(task_s, &task)) return cli_error("mc", 2, "--task: %s", dp_last_error());
    if (!data) return cli_error("mc", 2, "missing --data FILE");
    if (labels && task != DP_TASK_PIQA) return cli_error("mc", 2, "--labels applies to --task piqa only");
    if (paired_drop && baseline) return cli_error("mc", 2, "--paired-drop and --baseline exclude each other");
    long limit = 0, ctx_limit = 0;
    if ((limit_s && !cli_int("mc", "--limit", limit_s, 1, 1L << 30, &limit)) ||
        (ctx_s && !cli_int("mc", "--ctx-limit", ctx_s, 8, 1 << 20, &ctx_limit)))
        return 2;
    cli_progress_mode(c.json != NULL, progress != NULL);
    struct cli_io io = {0};
    cli_io_common(&io, &c);
    cli_io_in(&io, "--data", data);
    char default_labels[4200];
    if (task == DP_TASK_PIQA && !labels) { /* the default of src/tasks.h: FILE with .jsonl -> -labels.lst */
        size_t n = strlen(data), stem = n > 6 && !strcmp(data + n - 6, ".jsonl") ? n - 6 : n;
        snprintf(default_labels, sizeof default_labels, "%.*s-labels.lst", (int)stem, data);
        cli_io_in(&io, "the labels of --data", default_labels);
    }
    cli_io_in(&io, "--labels", labels);
    if ((rc = cli_io_check("mc", &io))) return rc;
    struct cli_model cm;
    if ((rc = cli_open("mc", &c, &cm))) return rc;
    struct dp_mask mask_b;
    dp_mask_all(cm.m, &mask_b);
    if (paired_drop && dp_mask_drop(&mask_b, paired_drop)) {
        cli_close(&cm);
        return cli_error("mc", 2, "--paired-drop: %s", dp_last_error());
    }
    const struct dp_config *cf = dp_model_config(cm.m);
    struct dp_mc_opts o = dp_mc_default_opts(cm.m); /* the protocol's defaults for this model */
    if (!ctx_limit) ctx_limit = o.ctx_limit;
    else if (ctx_limit > cf->n_ctx_train)
        fprintf(stderr, "depthprune mc: warning: --ctx-limit %ld exceeds the model's trained context %d\n", ctx_limit,
                cf->n_ctx_train);
    if ((rc = cli_check_sessions("mc", &cm, NULL, 1, ctx_limit, 1, 0, "--ctx-limit"))) {
        cli_close(&cm);
        return rc;
    }
    struct dp_mc_set *set = NULL;
    struct dp_mc_result *r = NULL, *rb = NULL;
    o.ctx_limit = (int)ctx_limit, o.prefix_cache = !no_cache, o.progress = cli_progress_lines;
    double t0 = dp_now();
    dp_status st = dp_mc_read(task, data, labels, (int)limit, &set);
    if (!st) st = dp_mc_eval(cm.m, &cm.mask, cm.hooks, cm.pool, set, &o, &r);
    if (!st && (paired_drop || baseline)) st = dp_mc_eval(cm.m, &mask_b, NULL, cm.pool, set, &o, &rb);
    double secs = dp_now() - t0;
    if (st) {
        rc = cli_error("mc", 1, "%s", dp_last_error());
    } else {
        char removed[4096], removed_b[4096];
        dp_mask_format(&cm.mask, removed, sizeof removed);
        dp_mask_format(&mask_b, removed_b, sizeof removed_b);
        struct dp_paired p, pn;
        if (rb) {
            dp_stats_paired(r->correct, rb->correct, r->n, &p);
            dp_stats_paired(r->correct_norm, rb->correct_norm, r->n, &pn);
        }
        double acc = 100.0 * r->n_correct / r->n, accn = 100.0 * r->n_correct_norm / r->n;
        double se = 100 * dp_stats_acc_stderr(r->n_correct, r->n), sen = 100 * dp_stats_acc_stderr(r->n_correct_norm, r->n);
        if (c.json) {
            struct dp_json j;
            dp_json_init(&j, stdout);
            dp_json_begin_obj(&j, NULL);
            dp_json_str(&j, "task", task_s);
            dp_json_num(&j, "accuracy", acc);
            dp_json_num(&j, "stderr", se);
            dp_json_num(&j, "acc_norm", accn);
            dp_json_num(&j, "acc_norm_stderr", sen);
            dp_json_int(&j, "n", r->n);
            dp_json_int(&j, "truncated", r->n_truncated);
            dp_json_int(&j, "ctx_limit", ctx_limit);
            dp_json_int(&j, "tokens_evaluated", r->tokens_evaluated);
            dp_json_int(&j, "tokens_naive", r->tokens_naive);
            dp_json_str(&j, "removed", removed);
            dp_json_num(&j, "seconds", secs);
            if (rb) {
                dp_json_str(&j, "removed_b", removed_b);
                dp_stats_paired_json(&j, "paired", &p);
                dp_stats_paired_json(&j, "paired_norm", &pn);
            }
            dp_json_end(&j);
        } else {
            printf("%s: acc %.2f%% +/- %.2f, acc_norm %.2f%% +/- %.2f (n %d, %d truncated%s%s)\n", task_s, acc, se, accn,
                   sen, r->n, r->n_truncated, removed[0] ? ", removed " : "", removed);
            printf("tokens evaluated %lld, naive %lld, %.1f s\n", (long long)r->tokens_evaluated,
                   (long long)r->tokens_naive, secs);
            if (rb)
                printf("paired with %s: acc difference %+.2f +/- %.2f points (McNemar p = %.4g), "
                       "acc_norm difference %+.2f +/- %.2f (p = %.4g)\n",
                       removed_b[0] ? removed_b : "the unpruned model", 100 * p.diff, 100 * p.diff_stderr, p.mcnemar_p,
                       100 * pn.diff, 100 * pn.diff_stderr, pn.mcnemar_p);
        }
    }
    dp_mc_result_free(r);
    dp_mc_result_free(rb);
    dp_mc_set_free(set);
    cli_close(&cm);
    return rc;
}
