/*
 * sweep: the experiment grid (dp_sweep_evaluate): for every metric of the
 * scores files, every scheme, one-shot and (with --iterative) iterative
 * orders and every recovery of --recover, the model after removing 0, 1,
 * 2, ... units, with perplexity (--ppl) and MMLU (--mmlu) at each step.
 * Writes the sweep JSON (-o, rewritten after every step; rerunning
 * continues), a CSV, an SVG figure, and with a budget (--target-kv,
 * --target-params, --max-ppl-ratio, --max-mmlu-drop) the step each run stops
 * at; --save-plans DIR writes each run's plan (the budget's step, or every
 * unit of the run). With --objective speedup every step is also scored as
 * a draft of the full model for self-speculative decoding (as prune --draft
 * scores its plans: argmax agreement on --calib, best draft length up to
 * --draft-len-max, expected speed-up with costs by weight bytes or, with
 * --cost time, timed) and each run marks its best step. A client of the
 * public header alone: this file parses and checks the flags, the library
 * does the rest.
 */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CMD "sweep"

struct opts {
    struct cli_common c;
    const char *scores, *metric, *scheme, *max, *iterative, *no_oneshot, *out, *svg, *csv, *save_plans;
    const char *ppl, *ppl_docs, *ctx, *max_seqs, *protocol;
    const char *mmlu, *mmlu_limit, *mmlu_shots, *mmlu_subjects, *mmlu_ctx;
    const char *target_kv, *target_params, *max_ppl_ratio, *max_mmlu_drop, *protect;
    const char *cost, *draft_len_max;
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Split a comma list into at most cap pieces of buf (modified in place). */
static int split(char *buf, const char **out, int cap) {
    int n = 0;
    for (char *p = buf; p && *p && n < cap;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = 0;
        if (*p) out[n++] = p;
        p = comma ? comma + 1 : NULL;
    }
    return n;
}

/* ---- arguments the steps depend on ---- */

struct args {
    int n;
    const char *keys[32], *vals[32];
    char key_buf[32][32], values[32][2048];
};

static void arg(struct args *a, const char *key, const char *value) {
    if (a->n >= 32) return;
    snprintf(a->key_buf[a->n], sizeof a->key_buf[a->n], "%s", key);
    snprintf(a->values[a->n], sizeof a->values[a->n], "%s", value ? value : "");
    a->keys[a->n] = a->key_buf[a->n];
    a->vals[a->n] = a->values[a->n];
    a->n++;
}

/* "path (sha256 prefix)" of a file, so a changed scores file is not resumed over. */
static int file_id(const char *path, char *buf, size_t cap) {
    char hex[65];
    if (dp_file_sha256(path, hex)) return cli_error(CMD, 1, "%s", dp_last_error());
    size_t used = strlen(buf);
    snprintf(buf + used, cap - used, "%s%s (sha256 %.16s)", used ? ", " : "", path, hex);
    return 0;
}

/*
 * --objective: a comma list of the trained recoveries' objective (ce or kl)
 * and "speedup" (every step also scored as a draft); *rec gets "ce", "kl" or
 * NULL (not given).
 */
static int parse_objective(const char *list, const char **rec, bool *speedup) {
    *rec = NULL;
    *speedup = false;
    if (!list) return 0;
    char buf[256];
    const char *items[8];
    snprintf(buf, sizeof buf, "%s", list);
    int n = split(buf, items, 8);
    if (n == 0) return cli_error(CMD, 2, "--objective must be ce, kl or speedup (a comma list), not '%s'", list);
    for (int i = 0; i < n; i++) {
        if (!strcmp(items[i], "speedup")) *speedup = true;
        else if (!*rec && (!strcmp(items[i], "ce") || !strcmp(items[i], "kl"))) *rec = !strcmp(items[i], "kl") ? "kl" : "ce";
        else return cli_error(CMD, 2, "--objective must be ce, kl or speedup (a comma list), not '%s'", list);
    }
    return 0;
}

/* The recovery options of the common flags (--recover-stats, --ridge, the trained kinds' settings). */
static int recover_opts(const struct cli_common *c, struct dp_recovery_params *o) {
    *o = dp_recovery_default_params();
    long v;
    if (c->recover_stats && strcmp(c->recover_stats, "full") && strcmp(c->recover_stats, "sequential"))
        return cli_error(CMD, 2, "--recover-stats must be full or sequential, not '%s'", c->recover_stats);
    o->sequential = c->recover_stats && !strcmp(c->recover_stats, "sequential");
    if (c->recover_init && strcmp(c->recover_init, "zero") && strcmp(c->recover_init, "mean"))
        return cli_error(CMD, 2, "--recover-init must be zero or mean, not '%s'", c->recover_init);
    o->init_mean = c->recover_init && !strcmp(c->recover_init, "mean");
    const char *rec_objective;
    bool speedup;
    if (parse_objective(c->objective, &rec_objective, &speedup)) return 2;
    o->objective_kl = rec_objective && !strcmp(rec_objective, "kl");
    if ((c->ridge && !cli_double(CMD, "--ridge", c->ridge, 0, 1e6, &o->ridge)) ||
        (c->lr && !cli_double(CMD, "--lr", c->lr, 1e-12, 1e3, &o->lr)))
        return 2;
    if (c->steps) {
        if (!cli_int(CMD, "--steps", c->steps, 0, 100000000, &v)) return 2;
        o->steps = (int)v;
    }
    if (c->batch) {
        if (!cli_int(CMD, "--batch", c->batch, 1, 1000000, &v)) return 2;
        o->batch = (int)v;
    }
    if (c->seed) {
        if (!cli_int(CMD, "--seed", c->seed, 0, 0x7fffffffL, &v)) return 2;
        o->seed = (uint64_t)v;
    }
    o->progress = cli_progress_lines;
    o->log = cli_log_line;
    o->log_user = (void *)CMD;
    return 0;
}

/* ---- output ---- */

static void print_text(const struct dp_sweep *s, double secs) {
    int n_runs = dp_sweep_n_runs(s);
    for (int r = 0; r < n_runs; r++) {
        struct dp_sweep_run_info run;
        dp_sweep_get_run(s, r, &run);
        printf("%s%s %s %s recover=%s:", run.metric, run.oracle ? " (oracle)" : "", run.scheme,
               run.iterative ? "iterative" : "one-shot", run.recover);
        for (int k = 0; k < run.n_steps; k++) {
            struct dp_sweep_step_info st;
            dp_sweep_get_step(s, r, k, &st);
            char u[40] = "-";
            if (!k && st.n_removed) snprintf(u, sizeof u, "base");
            if (k && run.span && !run.iterative && st.n_removed > 1) {
                char first[16], last[16];
                dp_sweep_step_unit(s, r, k, 0, first);
                dp_sweep_step_unit(s, r, k, st.n_removed - 1, last);
                snprintf(u, sizeof u, "%s..%s", first, last);
            } else if (k) {
                dp_sweep_step_unit(s, r, k, st.n_removed - 1, u);
            }
            printf("  %s", u);
            if (isfinite(st.ppl)) printf(" %.4g", st.ppl);
            if (st.mmlu_n) printf(" %.1f%%", st.mmlu_acc);
            if (isfinite(st.speedup)) printf(" x%.3f%s", st.speedup, k == run.draft_best_step ? "*" : "");
        }
        printf("\n");
        if (run.draft_best_step >= 0) {
            struct dp_sweep_step_info st;
            dp_sweep_get_step(s, r, run.draft_best_step, &st);
            printf("  best draft (*): step %d, draft_accept %.4f, draft_len %d, expected speed-up x%.3f\n",
                   run.draft_best_step, st.draft_accept, st.draft_len, st.speedup);
        }
        if (run.note[0]) printf("  note: %s\n", run.note);
        if (run.has_budget)
            printf("  budget: step %d, bound %s%s: %s\n", run.budget_step, run.budget_bound,
                   run.budget_met ? "" : " (target not met)", run.budget_why);
    }
    for (int i = 0; i < dp_sweep_n_warnings(s); i++) printf("warning: %s\n", dp_sweep_warning(s, i));
    printf("%d runs in %.1f s\n", n_runs, secs);
}

/* A run's identity and one of its steps with the units it removes, into the open object; the step's info. */
static struct dp_sweep_step_info json_run_step(struct cli_json *j, const struct dp_sweep *s, int r,
                                               const struct dp_sweep_run_info *run, int step) {
    cli_json_str(j, "metric", run->metric);
    cli_json_str(j, "scheme", run->scheme);
    cli_json_bool(j, "iterative", run->iterative);
    cli_json_str(j, "recover", run->recover);
    cli_json_int(j, "step", step);
    cli_json_begin_arr(j, "removed");
    struct dp_sweep_step_info st;
    dp_sweep_get_step(s, r, step, &st);
    for (int i = 0; i < st.n_removed; i++) {
        char u[16];
        dp_sweep_step_unit(s, r, step, i, u);
        cli_json_str(j, NULL, u);
    }
    cli_json_end(j);
    return st;
}

static int print_json(const struct opts *o, const struct dp_sweep *s, double secs) {
    struct cli_json *j = cli_json_new(stdout);
    if (!j) return cli_error(CMD, 1, "out of memory");
    int n_runs = dp_sweep_n_runs(s);
    cli_json_begin_obj(j, NULL);
    cli_json_str(j, "output", o->out);
    cli_json_int(j, "n_runs", n_runs);
    int steps = 0;
    bool any_budget = false;
    for (int r = 0; r < n_runs; r++) {
        struct dp_sweep_run_info run;
        dp_sweep_get_run(s, r, &run);
        steps += run.n_steps;
        any_budget |= run.has_budget;
    }
    cli_json_int(j, "n_steps", steps);
    cli_json_begin_arr(j, "budgets");
    for (int r = 0; r < n_runs && any_budget; r++) {
        struct dp_sweep_run_info run;
        dp_sweep_get_run(s, r, &run);
        if (!run.has_budget) continue;
        cli_json_begin_obj(j, NULL);
        json_run_step(j, s, r, &run, run.budget_step);
        cli_json_str(j, "bound", run.budget_bound);
        cli_json_bool(j, "met", run.budget_met);
        cli_json_end(j);
    }
    cli_json_end(j);
    bool any_draft = false;
    for (int r = 0; r < n_runs; r++) {
        struct dp_sweep_run_info run;
        dp_sweep_get_run(s, r, &run);
        any_draft |= run.draft_best_step >= 0;
    }
    if (any_draft) cli_json_begin_arr(j, "drafts"); /* the speedup objective: each run's best draft */
    for (int r = 0; r < n_runs && any_draft; r++) {
        struct dp_sweep_run_info run;
        dp_sweep_get_run(s, r, &run);
        if (run.draft_best_step < 0) continue;
        cli_json_begin_obj(j, NULL);
        struct dp_sweep_step_info st = json_run_step(j, s, r, &run, run.draft_best_step);
        cli_json_num(j, "draft_accept", st.draft_accept);
        cli_json_int(j, "draft_len", st.draft_len);
        cli_json_num(j, "speedup", st.speedup);
        cli_json_end(j);
    }
    if (any_draft) cli_json_end(j);
    cli_json_begin_arr(j, "warnings");
    for (int i = 0; i < dp_sweep_n_warnings(s); i++) cli_json_str(j, NULL, dp_sweep_warning(s, i));
    cli_json_end(j);
    cli_json_num(j, "seconds", secs);
    cli_json_end(j);
    cli_json_free(j);
    fputc('\n', stdout);
    return 0;
}

/* ---- the command ---- */

#define SYNOPSIS                                                                                                       \
    "-m MODEL --scores FILE[,FILE] -o OUT.json [--metric LIST] [--scheme LIST] [--max K] [--iterative --calib CORPUS] " \
    "[--ppl CORPUS --ppl-docs A:B] [--mmlu DIR --mmlu-limit N] [--recover KIND[,KIND]] [--svg FILE] [--csv FILE] "      \
    "[--target-kv F] [--target-params F] [--max-ppl-ratio R] [--max-mmlu-drop P] [--protect UNITS] [--save-plans DIR] [--drop UNITS | --plan FILE] "    \
    "[--objective speedup --calib CORPUS [--cost bytes|time] [--draft-len-max K]]"

struct setup {
    const char *metrics[64], *schemes[8], *recovers[16];
    int n_metrics, n_schemes, n_recovers;
    char metric_buf[1024], scheme_buf[256], recover_buf[512], all_metrics[1024];
    long max, ctx, max_seqs, calib_ctx, calib_max_seqs, mmlu_limit, mmlu_shots, mmlu_ctx;
    double target_kv, target_params, max_ppl_ratio, max_mmlu_drop;
    bool paper;
    bool speedup, timed;            /* --objective speedup; --cost time */
    long draft_len_max;
    const char *rec_objective;      /* ce, kl or NULL */
};

/* Parse the lists and numbers (no model needed). */
static int parse_setup(struct opts *o, struct setup *su) {
    if (dp_sweep_scores_metrics(o->scores, su->all_metrics, sizeof su->all_metrics))
        return cli_error(CMD, 1, "%s", dp_last_error());
    snprintf(su->metric_buf, sizeof su->metric_buf, "%s", o->metric && strcmp(o->metric, "all") ? o->metric : su->all_metrics);
    su->n_metrics = split(su->metric_buf, su->metrics, 64);
    for (int i = 0; i < su->n_metrics; i++) {
        bool known = false;
        char all[1024];
        const char *names[64];
        snprintf(all, sizeof all, "%s", su->all_metrics);
        int n = split(all, names, 64);
        for (int k = 0; k < n && !known; k++) known = !strcmp(names[k], su->metrics[i]);
        if (!known) return cli_error(CMD, 2, "--metric: the scores files hold no %s scores", su->metrics[i]);
    }
    snprintf(su->scheme_buf, sizeof su->scheme_buf, "%s", o->scheme && strcmp(o->scheme, "all") ? o->scheme : "block,attn,ffn,both");
    su->n_schemes = split(su->scheme_buf, su->schemes, 8);
    for (int i = 0; i < su->n_schemes; i++)
        if (strcmp(su->schemes[i], "block") && strcmp(su->schemes[i], "attn") && strcmp(su->schemes[i], "ffn") &&
            strcmp(su->schemes[i], "both"))
            return cli_error(CMD, 2, "--scheme: unknown scheme '%s' (block, attn, ffn or both)", su->schemes[i]);
    snprintf(su->recover_buf, sizeof su->recover_buf, "%s", o->c.recover ? o->c.recover : "none");
    su->n_recovers = split(su->recover_buf, su->recovers, 16);
    for (int i = 0; i < su->n_recovers; i++)
        if (dp_recovery_check_kind(su->recovers[i])) return cli_error(CMD, 2, "--recover: %s", dp_last_error());
    su->max_mmlu_drop = NAN;
    if ((o->max && !cli_int(CMD, "--max", o->max, 1, 2 * DP_MAX_LAYERS, &su->max)) ||
        (o->ctx && !cli_int(CMD, "--ctx", o->ctx, 4, 1 << 20, &su->ctx)) ||
        (o->max_seqs && !cli_int(CMD, "--max-seqs", o->max_seqs, 1, 1L << 30, &su->max_seqs)) ||
        (o->c.calib_ctx && !cli_int(CMD, "--calib-ctx", o->c.calib_ctx, 2, 1 << 20, &su->calib_ctx)) ||
        (o->c.calib_max_seqs && !cli_int(CMD, "--calib-max-seqs", o->c.calib_max_seqs, 1, 1L << 30, &su->calib_max_seqs)) ||
        (o->mmlu_limit && !cli_int(CMD, "--mmlu-limit", o->mmlu_limit, 1, 1L << 30, &su->mmlu_limit)) ||
        (o->mmlu_shots && !cli_int(CMD, "--mmlu-shots", o->mmlu_shots, 0, DP_SWEEP_MAX_SHOTS, &su->mmlu_shots)) ||
        (o->mmlu_ctx && !cli_int(CMD, "--mmlu-ctx-limit", o->mmlu_ctx, 8, 1 << 20, &su->mmlu_ctx)) ||
        (o->target_kv && !cli_double(CMD, "--target-kv", o->target_kv, 1e-9, 1, &su->target_kv)) ||
        (o->target_params && !cli_double(CMD, "--target-params", o->target_params, 1e-9, 1, &su->target_params)) ||
        (o->max_ppl_ratio && !cli_double(CMD, "--max-ppl-ratio", o->max_ppl_ratio, 1, 1e12, &su->max_ppl_ratio)) ||
        (o->max_mmlu_drop && !cli_double(CMD, "--max-mmlu-drop", o->max_mmlu_drop, 0, 100, &su->max_mmlu_drop)))
        return 2;
    if (!o->mmlu_shots) su->mmlu_shots = 5;
    if (parse_objective(o->c.objective, &su->rec_objective, &su->speedup)) return 2;
    su->draft_len_max = 8;
    if (o->draft_len_max && !cli_int(CMD, "--draft-len-max", o->draft_len_max, 1, DP_DRAFT_MAX_LEN, &su->draft_len_max))
        return 2;
    if (o->cost && strcmp(o->cost, "time") && strcmp(o->cost, "bytes"))
        return cli_error(CMD, 2, "--cost must be bytes or time, not '%s'", o->cost);
    su->timed = o->cost && !strcmp(o->cost, "time");
    if (!su->speedup && (o->cost || o->draft_len_max))
        return cli_error(CMD, 2, "--cost and --draft-len-max go with --objective speedup");
    if (su->speedup && !o->c.calib)
        return cli_error(CMD, 2, "--objective speedup measures draft acceptance on calibration text: give --calib CORPUS");
    su->paper = !strcmp(o->protocol, "paper");
    if (!su->paper && strcmp(o->protocol, "llamacpp"))
        return cli_error(CMD, 2, "--protocol must be paper or llamacpp, not '%s'", o->protocol);
    if (!su->paper && (o->ppl_docs || o->max_seqs))
        return cli_error(CMD, 2, "--ppl-docs and --max-seqs apply to the paper protocol only");
    if (!o->ppl && (o->ppl_docs || o->max_seqs))
        return cli_error(CMD, 2, "--ppl-docs and --max-seqs go with --ppl CORPUS");
    if ((o->mmlu_limit || o->mmlu_shots || o->mmlu_subjects || o->mmlu_ctx) && !o->mmlu)
        return cli_error(CMD, 2, "--mmlu-limit, --mmlu-shots, --mmlu-subjects and --mmlu-ctx-limit go with --mmlu DIR");
    if (o->max_ppl_ratio && !o->ppl) return cli_error(CMD, 2, "--max-ppl-ratio needs --ppl CORPUS");
    if (o->max_mmlu_drop && !o->mmlu) return cli_error(CMD, 2, "--max-mmlu-drop needs --mmlu DIR");
    bool calib_needed = false;
    for (int i = 0; i < su->n_metrics; i++) calib_needed |= !dp_sweep_metric_oracle(su->metrics[i]);
    if (o->iterative && calib_needed && !o->c.calib)
        return cli_error(CMD, 2, "--iterative re-scores on calibration data: give --calib CORPUS");
    if (o->no_oneshot && !o->iterative) return cli_error(CMD, 2, "--no-oneshot leaves nothing to run without --iterative");
    bool fitted = false;
    for (int i = 0; i < su->n_recovers; i++) fitted |= strcmp(su->recovers[i], "none") != 0;
    if (fitted && !o->c.calib) return cli_error(CMD, 2, "--recover %s is fitted on calibration data: give --calib CORPUS", o->c.recover);
    if (o->c.calib && !o->iterative && !fitted && !su->speedup)
        return cli_error(CMD, 2, "--calib is used by --iterative, --recover and --objective speedup only");
    return 0;
}

/* The files --save-plans DIR would write (every metric, scheme, mode and recovery asked) against the inputs. */
static int check_plan_files(const struct opts *o, const struct setup *su) {
    if (!o->save_plans) return 0;
    struct cli_io io = {0};
    cli_io_common(&io, &o->c);
    cli_io_in_list(&io, "--scores", o->scores);
    cli_io_in(&io, "--ppl", o->ppl);
    cli_io_in_dir(&io, "--mmlu", o->mmlu);
    for (int m = 0; m < su->n_metrics; m++)
        for (int k = 0; k < su->n_schemes; k++)
            for (int it = 0; it < 2; it++)
                for (int r = 0; r < su->n_recovers; r++) {
                    char path[2048];
                    dp_sweep_plan_path(o->save_plans, su->metrics[m], su->schemes[k], it, su->recovers[r], path, sizeof path);
                    cli_io_out(&io, "--save-plans", path);
                    snprintf(path + strlen(path) - 5, 14, ".recover.gguf");
                    if (strcmp(su->recovers[r], "none")) cli_io_out(&io, "--save-plans", path);
                }
    return cli_io_check(CMD, &io);
}

static void build_args(const struct opts *o, const struct setup *su, const char *scores_id, struct args *a) {
    char buf[2048] = "";
    arg(a, "model", o->c.model);
    arg(a, "scores", scores_id);
    for (int i = 0; i < su->n_metrics; i++) snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? "," : "", su->metrics[i]);
    arg(a, "metric", buf);
    buf[0] = 0;
    for (int i = 0; i < su->n_schemes; i++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? "," : "", su->schemes[i]);
    arg(a, "scheme", buf);
    snprintf(buf, sizeof buf, "%ld", su->max);
    arg(a, "max", su->max ? buf : "all");
    arg(a, "mode", o->iterative ? (o->no_oneshot ? "iterative" : "one-shot,iterative") : "one-shot");
    arg(a, "recover", o->c.recover ? o->c.recover : "none");
    snprintf(buf, sizeof buf, "%s docs %s ctx %ld max-seqs %ld stats %s ridge %s objective %s steps %s lr %s batch %s seed %s init %s",
             o->c.calib ? o->c.calib : "", o->c.calib_docs ? o->c.calib_docs : "all", su->calib_ctx, su->calib_max_seqs,
             o->c.recover_stats ? o->c.recover_stats : "full", o->c.ridge ? o->c.ridge : "-", su->rec_objective ? su->rec_objective : "-",
             o->c.steps ? o->c.steps : "-", o->c.lr ? o->c.lr : "-", o->c.batch ? o->c.batch : "-", o->c.seed ? o->c.seed : "-",
             o->c.recover_init ? o->c.recover_init : "-");
    arg(a, "calib", o->c.calib ? buf : "");
    snprintf(buf, sizeof buf, "%s protocol %s docs %s ctx %ld max-seqs %ld", o->ppl ? o->ppl : "", o->protocol,
             o->ppl_docs ? o->ppl_docs : "all", su->ctx, su->max_seqs);
    arg(a, "ppl", o->ppl ? buf : "");
    snprintf(buf, sizeof buf, "%s limit %ld shots %ld subjects %s ctx-limit %ld", o->mmlu ? o->mmlu : "", su->mmlu_limit,
             su->mmlu_shots, o->mmlu_subjects ? o->mmlu_subjects : "all", su->mmlu_ctx);
    arg(a, "mmlu", o->mmlu ? buf : "");
    arg(a, "protect", o->protect ? o->protect : "");
    if (su->speedup) {
        snprintf(buf, sizeof buf, "speedup cost %s k-max %ld", su->timed ? "time" : "bytes", su->draft_len_max);
        arg(a, "draft", buf);
    }
}

int cmd_sweep(int argc, char **argv) {
    struct opts o;
    memset(&o, 0, sizeof o);
    o.protocol = "paper";
    const struct cli_opt opts[] = {
        CLI_COMMON_OPTS(o.c),
        {"--scores", NULL, false, &o.scores, "scores JSON of `score` (comma list: block and sublayer files)"},
        {"--metric", NULL, false, &o.metric, "metrics to sweep, comma list (default: all in the scores)"},
        {"--scheme", NULL, false, &o.scheme, "block, attn, ffn, both: comma list (default: all four)"},
        {"--max", NULL, false, &o.max, "at most K units removed (default: all)"},
        {"--iterative", NULL, true, &o.iterative, "also iterative runs: re-score on --calib after every removal"},
        {"--no-oneshot", NULL, true, &o.no_oneshot, "with --iterative: no one-shot runs"},
        {"--ppl", NULL, false, &o.ppl, "perplexity corpus"},
        {"--ppl-docs", NULL, false, &o.ppl_docs, "its documents A:B (paper protocol)"},
        {"--ctx", NULL, false, &o.ctx, "perplexity context (default: 2048 capped at the model's; 512 for llamacpp)"},
        {"--max-seqs", NULL, false, &o.max_seqs, "at most N perplexity chunks"},
        {"--protocol", NULL, false, &o.protocol, "paper (default) or llamacpp"},
        {"--mmlu", NULL, false, &o.mmlu, "MMLU folder (dev/, test/)"},
        {"--mmlu-limit", NULL, false, &o.mmlu_limit, "first N test questions per subject"},
        {"--mmlu-shots", NULL, false, &o.mmlu_shots, "few-shot examples (default 5)"},
        {"--mmlu-subjects", NULL, false, &o.mmlu_subjects, "subjects, comma list (default: all)"},
        {"--mmlu-ctx-limit", NULL, false, &o.mmlu_ctx, "MMLU prompt token limit (default 2048 capped at the model's)"},
        {"--target-kv", NULL, false, &o.target_kv, "budget: keep at most this fraction of the KV cache"},
        {"--target-params", NULL, false, &o.target_params, "budget: keep at most this fraction of the parameters"},
        {"--max-ppl-ratio", NULL, false, &o.max_ppl_ratio, "budget: perplexity at most R times the unpruned"},
        {"--max-mmlu-drop", NULL, false, &o.max_mmlu_drop, "budget: MMLU at most P points below the unpruned"},
        {"--protect", NULL, false, &o.protect, "units never removed, e.g. b0,a4"},
        {"-o", "--output", false, &o.out, "sweep JSON (rewritten after every step; rerun to continue)"},
        {"--svg", NULL, false, &o.svg, "SVG figure"},
        {"--csv", NULL, false, &o.csv, "CSV, one row per step"},
        {"--save-plans", NULL, false, &o.save_plans, "folder: one plan per run (the budget's step)"},
        {"--cost", NULL, false, &o.cost, "--objective speedup: draft costs by bytes (default: weight bytes) or time"},
        {"--draft-len-max", NULL, false, &o.draft_len_max, "--objective speedup: largest draft length considered (default 8)"},
        CLI_END};
    const char *pos[1];
    int n_pos, rc = cli_parse(CMD, argc, argv, opts, pos, 0, &n_pos);
    if (rc) return rc == 2 && !o.c.model ? cli_usage(CMD, SYNOPSIS, opts) : rc;
    if (!o.c.model) return cli_error(CMD, 2, "missing -m MODEL");
    if (!o.scores) return cli_error(CMD, 2, "missing --scores FILE");
    if (!o.out) return cli_error(CMD, 2, "missing -o OUT.json");
    if (o.c.save_plan) return cli_error(CMD, 2, "--save-plan does not apply to a sweep: use --save-plans DIR");
    o.c.own_recover = true;
    struct cli_io io = {0};
    cli_io_common(&io, &o.c);
    cli_io_in_list(&io, "--scores", o.scores);
    cli_io_in(&io, "--ppl", o.ppl);
    cli_io_in_dir(&io, "--mmlu", o.mmlu);
    cli_io_out(&io, "-o", o.out);
    cli_io_out(&io, "--svg", o.svg);
    cli_io_out(&io, "--csv", o.csv);
    if ((rc = cli_io_check(CMD, &io))) return rc;

    char scores_buf[4096], scores_id[4096] = "";
    const char *score_files[16];
    snprintf(scores_buf, sizeof scores_buf, "%s", o.scores);
    int n_files = split(scores_buf, score_files, 16);
    for (int i = 0; i < n_files; i++)
        if ((rc = file_id(score_files[i], scores_id, sizeof scores_id))) return rc;
    struct setup su;
    memset(&su, 0, sizeof su);
    if ((rc = parse_setup(&o, &su)) || (rc = check_plan_files(&o, &su))) return rc;
    struct dp_sweep_params p = dp_sweep_default_params();
    if ((rc = recover_opts(&o.c, &p.recover_params))) return rc;
    struct cli_model cm;
    if ((rc = cli_open(CMD, &o.c, &cm))) {
        if (cm.m) cli_close(&cm);
        return rc;
    }
    const struct dp_config *cf = dp_model_config(cm.m);
    /* a base plan (--drop or --plan): removed in every step */
    char base_list[1024] = "";
    int n_base = cli_plan_units(&cm, base_list, sizeof base_list);
    if (cm.recovery)
        rc = cli_error(CMD, 2, "a base plan with a recovery cannot be swept: give the units with --drop and the recovery "
                               "with --recover");
    if (!su.ctx) su.ctx = su.paper ? (cf->n_ctx_train < 2048 ? cf->n_ctx_train : 2048) : 512;
    if (!su.calib_ctx) su.calib_ctx = su.paper ? su.ctx : (cf->n_ctx_train < 2048 ? cf->n_ctx_train : 2048);
    if (!o.c.calib_max_seqs && su.paper) su.calib_max_seqs = su.max_seqs;
    if (!su.mmlu_ctx) su.mmlu_ctx = cf->n_ctx_train < 2048 ? cf->n_ctx_train : 2048;
    if (!rc && o.ppl) rc = cli_check_sessions(CMD, &cm, NULL, 1, su.ctx, su.ctx, 0, "--ctx");
    if (!rc && o.mmlu) rc = cli_check_sessions(CMD, &cm, NULL, 1, su.mmlu_ctx, 1, 0, "--mmlu-ctx-limit");
    if (!rc && o.c.calib) { /* fitting recoveries; iterative runs re-score with snapshots and logits */
        int64_t extra = o.iterative ? dp_sweep_rescore_bytes(cm.m, (int)su.calib_ctx) : 0;
        rc = cli_check_sessions(CMD, &cm, NULL, 1, su.calib_ctx, su.calib_ctx, extra, "--calib-ctx");
    }

    struct args a = {0};
    build_args(&o, &su, scores_id, &a);
    if (n_base) arg(&a, "base", base_list);
    p.model_name = o.c.model;
    p.scores = o.scores;
    p.allow_twin = o.c.allow_twin != NULL;
    char metrics[1024] = "", schemes[256] = "";
    for (int i = 0; i < su.n_metrics; i++) snprintf(metrics + strlen(metrics), sizeof metrics - strlen(metrics), "%s%s", i ? "," : "", su.metrics[i]);
    for (int i = 0; i < su.n_schemes; i++) snprintf(schemes + strlen(schemes), sizeof schemes - strlen(schemes), "%s%s", i ? "," : "", su.schemes[i]);
    p.metrics = metrics;
    p.schemes = schemes;
    p.max_units = (int)su.max;
    p.oneshot = !o.no_oneshot;
    p.iterative = o.iterative != NULL;
    p.recover = o.c.recover;
    p.calib = (struct dp_corpus_spec){.path = o.c.calib, .docs = o.c.calib_docs, .ctx = (int)su.calib_ctx,
                                      .max_seqs = (int)su.calib_max_seqs};
    p.ppl = (struct dp_corpus_spec){.path = o.ppl, .docs = o.ppl_docs, .ctx = (int)su.ctx, .max_seqs = (int)su.max_seqs};
    p.ppl_llamacpp = !su.paper;
    p.mmlu_dir = o.mmlu;
    p.mmlu_subjects = o.mmlu_subjects;
    p.mmlu_limit = (int)su.mmlu_limit;
    p.mmlu_shots = (int)su.mmlu_shots;
    p.mmlu_ctx = (int)su.mmlu_ctx;
    p.target_kv = su.target_kv;
    p.target_params = su.target_params;
    p.max_ppl_ratio = su.max_ppl_ratio;
    p.max_mmlu_drop = su.max_mmlu_drop;
    p.protect = o.protect;
    p.base = n_base ? base_list : NULL;
    p.out_path = o.out;
    p.draft = su.speedup;
    p.draft_timed = su.timed;
    p.draft_k_max = (int)su.draft_len_max;
    p.arg_keys = a.keys;
    p.arg_values = a.vals;
    p.n_args = a.n;
    p.progress = cli_progress_lines;
    p.log = cli_log_line;
    p.log_user = (void *)CMD;
    struct dp_sweep *s = NULL;
    double t0 = now();
    if (!rc && dp_sweep_evaluate(cm.m, cm.pool, &p, &s)) rc = cli_error(CMD, 1, "%s", dp_last_error());
    double secs = now() - t0;
    if (!rc && o.csv && dp_sweep_write_csv(s, o.csv)) rc = cli_error(CMD, 1, "%s", dp_last_error());
    if (!rc && o.svg && dp_sweep_write_svg(s, o.svg)) rc = cli_error(CMD, 1, "%s", dp_last_error());
    if (!rc && o.save_plans && dp_sweep_save_plans(s, cm.m, cm.pool, &p, o.save_plans))
        rc = cli_error(CMD, 1, "%s", dp_last_error());
    if (!rc) {
        if (o.c.json) rc = print_json(&o, s, secs);
        else print_text(s, secs);
    }
    dp_sweep_free(s);
    cli_close(&cm);
    return rc;
}
