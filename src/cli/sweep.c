/*
 * sweep: the experiment grid (src/sweep.h): for every metric of the scores
 * files, every scheme, one-shot and (with --iterative) iterative orders and
 * every recovery of --recover, the model after removing 0, 1, 2, ... units,
 * with perplexity (--ppl) and MMLU (--mmlu) at each step. Writes the sweep
 * JSON (-o, rewritten after every step; rerunning continues), a CSV, an SVG
 * figure, and with a budget (--target-kv, --target-params, --max-ppl-ratio,
 * --max-mmlu-drop) the step each run stops at; --save-plans DIR writes each
 * run's plan (the budget's step, or every unit of the run).
 */
#include "cli.h"

#include "data.h"
#include "eval.h"
#include "metrics.h"
#include "mmlu.h"
#include "model.h"
#include "plan.h"
#include "recover.h"
#include "report.h"
#include "sha256.h"
#include "sweep.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CMD "sweep"

struct opts {
    struct cli_common c;
    const char *scores, *metric, *scheme, *max, *iterative, *no_oneshot, *out, *svg, *csv, *save_plans;
    const char *ppl, *ppl_docs, *ctx, *max_seqs, *protocol;
    const char *mmlu, *mmlu_limit, *mmlu_shots, *mmlu_subjects, *mmlu_ctx;
    const char *target_kv, *target_params, *max_ppl_ratio, *max_mmlu_drop, *protect;
};

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

static void log_line(void *ctx, const char *line) {
    (void)ctx;
    fprintf(stderr, "depthprune sweep: %s\n", line);
}

/* ---- arguments the steps depend on ---- */

struct args {
    int n;
    struct dp_sweep_arg a[32];
    char values[32][2048];
};

static void arg(struct args *a, const char *key, const char *value) {
    DP_ASSERT(a->n < 32);
    snprintf(a->a[a->n].key, sizeof a->a[a->n].key, "%s", key);
    snprintf(a->values[a->n], sizeof a->values[a->n], "%s", value ? value : "");
    a->a[a->n].value = a->values[a->n];
    a->n++;
}

/* "path (sha256 prefix)" of a file, so a changed scores file is not resumed over. */
static int file_id(const char *path, char *buf, size_t cap) {
    char *text;
    size_t len;
    if (dp_read_file(path, &text, &len)) return cli_error(CMD, 1, "%s", dp_last_error());
    char hex[65];
    dp_sha256_hex(text, len, hex);
    free(text);
    size_t used = strlen(buf);
    snprintf(buf + used, cap - used, "%s%s (sha256 %.16s)", used ? ", " : "", path, hex);
    return 0;
}

/* ---- corpora ---- */

static int read_ids(const struct dp_model *m, const char *file, int **ids, int *n) {
    char *text;
    size_t len;
    if (dp_read_file(file, &text, &len)) return cli_error(CMD, 1, "%s", dp_last_error());
    if (len && text[len - 1] == '\n') len--; /* llama.cpp strips one trailing newline */
    int cap = (int)(len < 1 << 28 ? len : 1 << 28) + 16;
    *ids = malloc((size_t)cap * sizeof **ids);
    dp_status st = *ids ? dp_tokenize(dp_model_tokenizer(m), text, len, DP_TOKENIZE_BOS, *ids, cap, n) : DP_ERR_NOMEM;
    free(text);
    if (!st && *n > cap) st = dp_fail(DP_ERR_FORMAT, "%s: more tokens than bytes", file);
    return st ? cli_error(CMD, 1, "%s", dp_last_error()) : 0;
}

/* A warning when two corpus selections overlap (dp_corpus_overlap). */
static void overlap_warning(const char *a, const char *docs_a, const char *what_a, const char *b, const char *docs_b,
                            const char *what_b, char warnings[][512], int *n) {
    int lo_a = 0, hi_a = -1, lo_b = 0, hi_b = -1;
    if ((docs_a && *docs_a && dp_parse_range(docs_a, &lo_a, &hi_a)) || (docs_b && *docs_b && dp_parse_range(docs_b, &lo_b, &hi_b)))
        return;
    if (*n >= 8 || !dp_corpus_overlap(a, lo_a, hi_a, b, lo_b, hi_b)) return;
    snprintf(warnings[(*n)++], 512,
             "%s (%s, documents %s) and %s (%s, documents %s) overlap: the evaluation is not on held-out text", what_a,
             a, docs_a && *docs_a ? docs_a : "all", what_b, b, docs_b && *docs_b ? docs_b : "all");
}

/* The recovery options of the common flags (--recover-stats, --ridge, the trained kinds' settings). */
static int recover_opts(const struct cli_common *c, struct dp_recover_opts *o) {
    dp_recover_opts_default(o);
    long v;
    if (c->recover_stats && strcmp(c->recover_stats, "full") && strcmp(c->recover_stats, "sequential"))
        return cli_error(CMD, 2, "--recover-stats must be full or sequential, not '%s'", c->recover_stats);
    o->sequential = c->recover_stats && !strcmp(c->recover_stats, "sequential");
    if (c->recover_init && strcmp(c->recover_init, "zero") && strcmp(c->recover_init, "mean"))
        return cli_error(CMD, 2, "--recover-init must be zero or mean, not '%s'", c->recover_init);
    o->init_mean = c->recover_init && !strcmp(c->recover_init, "mean");
    if (c->objective && strcmp(c->objective, "ce") && strcmp(c->objective, "kl"))
        return cli_error(CMD, 2, "--objective must be ce or kl, not '%s'", c->objective);
    if (c->objective && !strcmp(c->objective, "kl")) o->objective = DP_OBJECTIVE_KL;
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
    return 0;
}

/* ---- plans ---- */

/* The plan file of one run under --save-plans DIR: DIR/METRIC_SCHEME_MODE_RECOVER.json, ':' as '-' in the name. */
static void plan_path(const char *dir, const char *metric, enum dp_scheme scheme, bool iterative, const char *recover,
                      char *path, size_t cap) {
    snprintf(path, cap, "%s/%s_%s_%s_%s.json", dir, metric, dp_scheme_name(scheme), iterative ? "iterative" : "oneshot",
             recover);
    for (char *p = path + strlen(dir) + 1; *p; p++)
        if (*p == ':') *p = '-';
}

/* --save-plans DIR: one plan per run (the budget's step, or every unit), with a fitted recovery when the run has one. */
static int save_plans(const struct opts *o, const struct dp_sweep *s, const struct cli_model *cm,
                      const struct dp_chunks *calib, const struct dp_recover_opts *ropts) {
    if (mkdir(o->save_plans, 0777) != 0 && errno != EEXIST)
        return cli_error(CMD, 1, "%s: cannot create the folder: %s", o->save_plans, strerror(errno));
    struct dp_identity id;
    dp_identity_of(cm->m, &id);
    for (int r = 0; r < s->n_runs; r++) {
        const struct dp_sweep_run *run = &s->runs[r];
        if (run->n_steps == 0) continue;
        int step = run->has_budget ? run->budget.step : run->n_steps - 1;
        struct dp_plan plan;
        if (dp_sweep_plan(s, r, step, &plan)) return cli_error(CMD, 1, "%s", dp_last_error());
        dp_plan_set_identity(&plan, &id);
        char path[2048];
        plan_path(o->save_plans, run->metric, run->scheme, run->iterative, run->recover, path, sizeof path);
        struct dp_recovery *rec = NULL;
        if (strcmp(run->recover, "none") && plan.n_units > 0) {
            struct dp_mask mask;
            dp_mask_all(cm->m, &mask);
            const char *units[DP_PLAN_MAX_UNITS];
            for (int i = 0; i < plan.n_units; i++) units[i] = plan.units[i];
            if (dp_plan_apply(&plan, &mask) ||
                dp_recovery_fit(cm->m, &mask, units, plan.n_units, run->recover, calib, ropts, cm->pool, &rec))
                return cli_error(CMD, 1, "%s", dp_last_error());
            snprintf(plan.recover_kind, sizeof plan.recover_kind, "%s", run->recover);
            snprintf(plan.recover_file, sizeof plan.recover_file, "%.*s.recover.gguf", (int)(strlen(path) - 5), path);
            dp_status st = dp_recovery_save(rec, plan.recover_file);
            dp_recovery_free(rec);
            if (st) return cli_error(CMD, 1, "%s", dp_last_error());
        }
        if (dp_plan_save(&plan, path)) return cli_error(CMD, 1, "%s", dp_last_error());
    }
    return 0;
}

/* ---- output ---- */

static void print_text(const struct dp_sweep *s, double secs) {
    for (int r = 0; r < s->n_runs; r++) {
        const struct dp_sweep_run *run = &s->runs[r];
        printf("%s%s %s %s recover=%s:", run->metric, run->oracle ? " (oracle)" : "", dp_scheme_name(run->scheme),
               run->iterative ? "iterative" : "one-shot", run->recover);
        for (int k = 0; k < run->n_steps; k++) {
            const struct dp_sweep_step *st = &run->steps[k];
            char u[40] = "-";
            if (!k && st->n_removed) snprintf(u, sizeof u, "base");
            if (k && dp_metric_is_span(run->metric) && !run->iterative && st->n_removed > 1)
                snprintf(u, sizeof u, "b%d..b%d", st->removed[0].layer, st->removed[st->n_removed - 1].layer);
            else if (k)
                dp_unit_name(st->removed[st->n_removed - 1], u);
            printf("  %s", u);
            if (isfinite(st->ppl)) printf(" %.4g", st->ppl);
            if (st->mmlu_n) printf(" %.1f%%", st->mmlu_acc);
        }
        printf("\n");
        if (run->note[0]) printf("  note: %s\n", run->note);
        if (run->has_budget)
            printf("  budget: step %d, bound %s%s: %s\n", run->budget.step, run->budget.bound,
                   run->budget.met ? "" : " (target not met)", run->budget.why);
    }
    for (int i = 0; i < s->n_warnings; i++) printf("warning: %s\n", s->warnings[i]);
    printf("%d runs in %.1f s\n", s->n_runs, secs);
}

static void print_json(const struct opts *o, const struct dp_sweep *s, double secs) {
    struct dp_json j;
    dp_json_init(&j, stdout);
    dp_json_begin_obj(&j, NULL);
    dp_json_str(&j, "output", o->out);
    dp_json_int(&j, "n_runs", s->n_runs);
    int steps = 0;
    for (int r = 0; r < s->n_runs; r++) steps += s->runs[r].n_steps;
    dp_json_int(&j, "n_steps", steps);
    dp_json_begin_arr(&j, "budgets");
    for (int r = 0; r < s->n_runs && s->has_budget; r++) {
        const struct dp_sweep_run *run = &s->runs[r];
        if (!run->has_budget) continue;
        dp_json_begin_obj(&j, NULL);
        dp_json_str(&j, "metric", run->metric);
        dp_json_str(&j, "scheme", dp_scheme_name(run->scheme));
        dp_json_bool(&j, "iterative", run->iterative);
        dp_json_str(&j, "recover", run->recover);
        dp_json_int(&j, "step", run->budget.step);
        dp_json_begin_arr(&j, "removed");
        const struct dp_sweep_step *st = &run->steps[run->budget.step];
        for (int i = 0; i < st->n_removed; i++) {
            char u[16];
            dp_unit_name(st->removed[i], u);
            dp_json_str(&j, NULL, u);
        }
        dp_json_end(&j);
        dp_json_str(&j, "bound", run->budget.bound);
        dp_json_bool(&j, "met", run->budget.met);
        dp_json_end(&j);
    }
    dp_json_end(&j);
    dp_json_begin_arr(&j, "warnings");
    for (int i = 0; i < s->n_warnings; i++) dp_json_str(&j, NULL, s->warnings[i]);
    dp_json_end(&j);
    dp_json_num(&j, "seconds", secs);
    dp_json_end(&j);
    fputc('\n', stdout);
}

/* ---- the command ---- */

#define SYNOPSIS                                                                                                       \
    "-m MODEL --scores FILE[,FILE] -o OUT.json [--metric LIST] [--scheme LIST] [--max K] [--iterative --calib CORPUS] " \
    "[--ppl CORPUS --ppl-docs A:B] [--mmlu DIR --mmlu-limit N] [--recover KIND[,KIND]] [--svg FILE] [--csv FILE] "      \
    "[--target-kv F] [--target-params F] [--max-ppl-ratio R] [--max-mmlu-drop P] [--protect UNITS] [--save-plans DIR] [--drop UNITS | --plan FILE]"

struct setup {
    const char *metrics[64], *recovers[16];
    enum dp_scheme schemes[DP_N_SCHEMES];
    int n_metrics, n_schemes, n_recovers;
    char metric_buf[1024], scheme_buf[256], recover_buf[512];
    long max, ctx, max_seqs, calib_ctx, calib_max_seqs, mmlu_limit, mmlu_shots, mmlu_ctx;
    struct dp_budget budget;
    struct dp_mask protect;
    bool has_protect, paper;
};

/* Parse the lists and numbers (no model needed). */
static int parse_setup(struct opts *o, struct setup *su, const struct dp_influences *sc) {
    if (o->metric && strcmp(o->metric, "all")) {
        snprintf(su->metric_buf, sizeof su->metric_buf, "%s", o->metric);
        su->n_metrics = split(su->metric_buf, su->metrics, 64);
    } else {
        su->n_metrics = dp_influences_metrics(sc, su->metrics, 64);
    }
    for (int i = 0; i < su->n_metrics; i++) {
        bool known = false;
        for (int k = 0; k < sc->n && !known; k++) known = !strcmp(sc->s[k].metric, su->metrics[i]);
        if (!known) return cli_error(CMD, 2, "--metric: the scores files hold no %s scores", su->metrics[i]);
    }
    if (o->scheme && strcmp(o->scheme, "all")) {
        const char *names[8];
        snprintf(su->scheme_buf, sizeof su->scheme_buf, "%s", o->scheme);
        int n = split(su->scheme_buf, names, 8);
        for (int i = 0; i < n; i++)
            if (dp_scheme_parse(names[i], &su->schemes[su->n_schemes++])) return cli_error(CMD, 2, "--scheme: %s", dp_last_error());
    } else {
        for (int i = 0; i < DP_N_SCHEMES; i++) su->schemes[su->n_schemes++] = (enum dp_scheme)i;
    }
    snprintf(su->recover_buf, sizeof su->recover_buf, "%s", o->c.recover ? o->c.recover : "none");
    su->n_recovers = split(su->recover_buf, su->recovers, 16);
    for (int i = 0; i < su->n_recovers; i++) {
        enum dp_recover_method method;
        int rank;
        if (dp_recover_parse_kind(su->recovers[i], &method, &rank)) return cli_error(CMD, 2, "--recover: %s", dp_last_error());
    }
    dp_budget_none(&su->budget);
    if ((o->max && !cli_int(CMD, "--max", o->max, 1, 2 * DP_MAX_LAYERS, &su->max)) ||
        (o->ctx && !cli_int(CMD, "--ctx", o->ctx, 4, 1 << 20, &su->ctx)) ||
        (o->max_seqs && !cli_int(CMD, "--max-seqs", o->max_seqs, 1, 1L << 30, &su->max_seqs)) ||
        (o->c.calib_ctx && !cli_int(CMD, "--calib-ctx", o->c.calib_ctx, 2, 1 << 20, &su->calib_ctx)) ||
        (o->c.calib_max_seqs && !cli_int(CMD, "--calib-max-seqs", o->c.calib_max_seqs, 1, 1L << 30, &su->calib_max_seqs)) ||
        (o->mmlu_limit && !cli_int(CMD, "--mmlu-limit", o->mmlu_limit, 1, 1L << 30, &su->mmlu_limit)) ||
        (o->mmlu_shots && !cli_int(CMD, "--mmlu-shots", o->mmlu_shots, 0, DP_MMLU_MAX_SHOTS, &su->mmlu_shots)) ||
        (o->mmlu_ctx && !cli_int(CMD, "--mmlu-ctx-limit", o->mmlu_ctx, 8, 1 << 20, &su->mmlu_ctx)) ||
        (o->target_kv && !cli_double(CMD, "--target-kv", o->target_kv, 1e-9, 1, &su->budget.target_kv)) ||
        (o->target_params && !cli_double(CMD, "--target-params", o->target_params, 1e-9, 1, &su->budget.target_params)) ||
        (o->max_ppl_ratio && !cli_double(CMD, "--max-ppl-ratio", o->max_ppl_ratio, 1, 1e12, &su->budget.max_ppl_ratio)) ||
        (o->max_mmlu_drop && !cli_double(CMD, "--max-mmlu-drop", o->max_mmlu_drop, 0, 100, &su->budget.max_mmlu_drop)))
        return 2;
    if (!o->mmlu_shots) su->mmlu_shots = 5;
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
    for (int i = 0; i < su->n_metrics; i++) calib_needed |= !dp_metric_is_oracle(su->metrics[i]);
    if (o->iterative && calib_needed && !o->c.calib)
        return cli_error(CMD, 2, "--iterative re-scores on calibration data: give --calib CORPUS");
    if (o->no_oneshot && !o->iterative) return cli_error(CMD, 2, "--no-oneshot leaves nothing to run without --iterative");
    bool fitted = false;
    for (int i = 0; i < su->n_recovers; i++) fitted |= strcmp(su->recovers[i], "none") != 0;
    if (fitted && !o->c.calib) return cli_error(CMD, 2, "--recover %s is fitted on calibration data: give --calib CORPUS", o->c.recover);
    if (o->c.calib && !o->iterative && !fitted)
        return cli_error(CMD, 2, "--calib is used by --iterative and --recover only");
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
                    plan_path(o->save_plans, su->metrics[m], su->schemes[k], it, su->recovers[r], path, sizeof path);
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
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? "," : "", dp_scheme_name(su->schemes[i]));
    arg(a, "scheme", buf);
    snprintf(buf, sizeof buf, "%ld", su->max);
    arg(a, "max", su->max ? buf : "all");
    arg(a, "mode", o->iterative ? (o->no_oneshot ? "iterative" : "one-shot,iterative") : "one-shot");
    arg(a, "recover", o->c.recover ? o->c.recover : "none");
    snprintf(buf, sizeof buf, "%s docs %s ctx %ld max-seqs %ld stats %s ridge %s objective %s steps %s lr %s batch %s seed %s init %s",
             o->c.calib ? o->c.calib : "", o->c.calib_docs ? o->c.calib_docs : "all", su->calib_ctx, su->calib_max_seqs,
             o->c.recover_stats ? o->c.recover_stats : "full", o->c.ridge ? o->c.ridge : "-", o->c.objective ? o->c.objective : "-",
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

    struct dp_influences sc;
    memset(&sc, 0, sizeof sc);
    char scores_buf[4096], scores_id[4096] = "";
    const char *score_files[16];
    snprintf(scores_buf, sizeof scores_buf, "%s", o.scores);
    int n_files = split(scores_buf, score_files, 16);
    for (int i = 0; i < n_files; i++) {
        if (dp_influences_load(score_files[i], &sc)) {
            dp_influences_free(&sc);
            return cli_error(CMD, 1, "%s", dp_last_error());
        }
        if ((rc = file_id(score_files[i], scores_id, sizeof scores_id))) {
            dp_influences_free(&sc);
            return rc;
        }
    }
    struct setup su;
    memset(&su, 0, sizeof su);
    if ((rc = parse_setup(&o, &su, &sc)) || (rc = check_plan_files(&o, &su))) {
        dp_influences_free(&sc);
        return rc;
    }
    struct cli_model cm;
    if ((rc = cli_open(CMD, &o.c, &cm)) || (rc = cli_check_scores(CMD, &o.c, cm.m, &sc, -1))) {
        if (cm.m) cli_close(&cm);
        dp_influences_free(&sc);
        return rc;
    }
    const struct dp_config *cf = dp_model_config(cm.m);
    /* a base plan (--drop or --plan): removed in every step */
    struct dp_unit base[2 * DP_MAX_LAYERS];
    int n_base = 0;
    char base_list[1024] = "";
    if (cm.recovery)
        rc = cli_error(CMD, 2, "a base plan with a recovery cannot be swept: give the units with --drop and the recovery "
                               "with --recover");
    for (int i = 0; !rc && i < cm.plan->n_units; i++) {
        if (dp_unit_parse(cm.plan->units[i], &base[n_base]))
            rc = cli_error(CMD, 2, "base plan: %s", dp_last_error());
        else n_base++;
        snprintf(base_list + strlen(base_list), sizeof base_list - strlen(base_list), "%s%s", i ? "," : "",
                 cm.plan->units[i]);
    }
    if (o.protect) {
        if (dp_units_protect(o.protect, cf->n_layers, &su.protect)) rc = cli_error(CMD, 2, "--protect: %s", dp_last_error());
        su.has_protect = true;
    }
    if (!su.ctx) su.ctx = su.paper ? (cf->n_ctx_train < 2048 ? cf->n_ctx_train : 2048) : 512;
    if (!su.calib_ctx) su.calib_ctx = su.paper ? su.ctx : (cf->n_ctx_train < 2048 ? cf->n_ctx_train : 2048);
    if (!o.c.calib_max_seqs && su.paper) su.calib_max_seqs = su.max_seqs;
    if (!su.mmlu_ctx) su.mmlu_ctx = cf->n_ctx_train < 2048 ? cf->n_ctx_train : 2048;
    if (!rc && o.ppl) rc = cli_check_sessions(CMD, &cm, NULL, 1, su.ctx, su.ctx, 0, "--ctx");
    if (!rc && o.mmlu) rc = cli_check_sessions(CMD, &cm, NULL, 1, su.mmlu_ctx, 1, 0, "--mmlu-ctx-limit");
    if (!rc && o.c.calib) { /* fitting recoveries; iterative runs re-score with snapshots and logits */
        int64_t snap = 0, lg = 0;
        if (o.iterative) dp_metrics_memory(cm.m, (int)su.calib_ctx, &snap, &lg);
        rc = cli_check_sessions(CMD, &cm, NULL, 1, su.calib_ctx, su.calib_ctx, snap + lg, "--calib-ctx");
    }

    /* corpora, MMLU and warnings */
    struct dp_chunks *calib = NULL, *pplc = NULL;
    int *ids = NULL, n_ids = 0;
    struct dp_mmlu_data *mmlu_data = NULL;
    struct dp_sweep_mmlu mc = {NULL, (int)su.mmlu_shots, (int)su.mmlu_ctx};
    char warnings[8][512];
    const char *warning_ptrs[8];
    int n_warnings = 0;
    if (!rc && o.c.calib)
        rc = cli_read_chunks(CMD, cm.m, o.c.calib, o.c.calib_docs, su.calib_ctx, su.calib_max_seqs, "--calib", "--calib",
                             &calib);
    if (!rc && o.ppl && su.paper)
        rc = cli_read_chunks(CMD, cm.m, o.ppl, o.ppl_docs, su.ctx, su.max_seqs, "--ppl", "--ppl", &pplc);
    if (!rc && o.ppl && !su.paper) rc = read_ids(cm.m, o.ppl, &ids, &n_ids);
    if (!rc && o.mmlu && dp_mmlu_read(o.mmlu, o.mmlu_subjects, (int)su.mmlu_limit, &mmlu_data))
        rc = cli_error(CMD, 1, "%s", dp_last_error());
    mc.data = mmlu_data;
    if (!rc && o.ppl && o.c.calib)
        overlap_warning(o.c.calib, o.c.calib_docs, "the calibration corpus (--calib)", o.ppl, su.paper ? o.ppl_docs : NULL,
                        "the perplexity corpus (--ppl)", warnings, &n_warnings);
    for (int i = 0; !rc && o.ppl && i < sc.n_files; i++) {
        const char *cal = sc.calib[i];
        char file[2048];
        snprintf(file, sizeof file, "%s", cal);
        char *docs = strstr(file, " docs ");
        if (docs) {
            *docs = 0;
            docs += 6;
        }
        char what[2200];
        snprintf(what, sizeof what, "the calibration data of %s", sc.files[i]);
        if (file[0]) overlap_warning(file, docs, what, o.ppl, su.paper ? o.ppl_docs : NULL, "the perplexity corpus (--ppl)", warnings, &n_warnings);
    }
    for (int i = 0; i < su.n_metrics && o.mmlu; i++)
        if (dp_metric_is_oracle(su.metrics[i]) && n_warnings < 8)
            snprintf(warnings[n_warnings++], 512,
                     "%s is an oracle: it was measured on MMLU test questions, the data that evaluates the pruned models",
                     su.metrics[i]);
    for (int i = 0; i < n_warnings; i++) {
        warning_ptrs[i] = warnings[i];
        fprintf(stderr, "depthprune sweep: warning: %s\n", warnings[i]);
    }

    struct dp_recover_opts ropts;
    if (!rc) rc = recover_opts(&o.c, &ropts);

    struct args a = {0};
    build_args(&o, &su, scores_id, &a);
    if (n_base) arg(&a, "base", base_list);
    struct dp_sweep *s = NULL;
    double t0 = dp_now();
    if (!rc) {
        struct dp_sweep_config cfg = {
            .model = cm.m, .pool = cm.pool, .model_name = o.c.model, .scores = &sc,
            .metrics = su.metrics, .n_metrics = su.n_metrics, .schemes = su.schemes, .n_schemes = su.n_schemes,
            .oneshot = !o.no_oneshot, .iterative = o.iterative != NULL, .max_units = (int)su.max,
            .calib = calib, .ppl_chunks = pplc, .ppl_ids = ids, .n_ppl_ids = n_ids, .ppl_ctx = (int)su.ctx,
            .mmlu = mc.data ? dp_sweep_mmlu_eval : NULL, .mmlu_ctx = &mc, .oracle = mc.data ? &mc : NULL,
            .recover = su.recovers, .n_recover = su.n_recovers, .recover_opts = &ropts,
            .protect = su.has_protect ? &su.protect : NULL, .base = base, .n_base = n_base, .budget = su.budget,
            .args = a.a, .n_args = a.n, .out_path = o.out,
            .warnings = warning_ptrs, .n_warnings = n_warnings,
            .log = log_line, .log_ctx = NULL};
        if (dp_sweep_run(&cfg, &s)) rc = cli_error(CMD, 1, "%s", dp_last_error());
    }
    double secs = dp_now() - t0;
    if (!rc && o.csv && dp_report_sweep_csv(s, o.csv)) rc = cli_error(CMD, 1, "%s", dp_last_error());
    if (!rc && o.svg && dp_report_sweep_svg_file(s, o.svg)) rc = cli_error(CMD, 1, "%s", dp_last_error());
    if (!rc && o.save_plans) rc = save_plans(&o, s, &cm, calib, &ropts);
    if (!rc) {
        if (o.c.json) print_json(&o, s, secs);
        else print_text(s, secs);
    }
    dp_sweep_free(s);
    dp_mmlu_data_free(mmlu_data);
    dp_chunks_free(calib);
    dp_chunks_free(pplc);
    free(ids);
    dp_influences_free(&sc);
    cli_close(&cm);
    return rc;
}
