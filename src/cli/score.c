/*
 * score: how much each block or sublayer matters (METHODS.md sections 3-4;
 * src/metrics.h), written as a scores file (-o, JSON), a CSV (--csv), one
 * JSON object on stdout (--json) or a table with bars.
 *
 * With -o FILE, progress is checkpointed to FILE.ckpt (or --checkpoint) and a
 * rerun with the same arguments continues from it; the checkpoint is removed
 * once the outputs are written (mmlu_shapley is not checkpointed). DP_SCORE_STOP_AFTER=N
 * (tests) interrupts the run after N forward passes, leaving the checkpoint behind.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const SYN =
    "-m MODEL -f CALIB --metric M[,M...] [--unit block|sublayer] [--ctx N] [--docs A:B] [--max-seqs N]\n"
    "       [--samples K] [--subsets K] [--seed S] [--tol T] [--exact] [--estimator E] [--span N] [-o FILE]\n"
    "       [--csv FILE] [--json] [--mmlu DIR [--mmlu-limit N] [--iterative]]\n"
    "  metrics: cosine rel_l1 rel_l2 angular loo_loss loo_logit banzhaf_loss banzhaf_logit shapley_loss\n"
    "           shapley_logit mmlu_shapley (an oracle on the MMLU test set), or all";

/* "all" or a comma list into want[]; false (message printed) on an unknown name. */
static bool parse_metrics(const char *list, enum dp_unit_kind kind, bool mmlu, bool *want) {
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == 3 && !memcmp(p, "all", 3)) {
            for (int k = 0; k < DP_N_METRICS; k++)
                want[k] = want[k] || (k == DP_METRIC_MMLU_SHAPLEY ? mmlu
                                      : k != DP_METRIC_MMLU_SHAPLEY_ITER && (k != DP_METRIC_ANGULAR || kind == DP_UNITS_BLOCK));
        } else {
            int k = dp_metric_parse(p, n);
            if (k < 0) {
                cli_error("score", 2, "unknown metric '%.*s' (cosine, rel_l1, rel_l2, angular, loo_loss, loo_logit, "
                          "banzhaf_loss, banzhaf_logit, shapley_loss, shapley_logit, mmlu_shapley, mmlu_shapley_iterative, all)", (int)n, p);
                return false;
            }
            want[k] = true;
        }
        if (!comma) break;
        p = comma + 1;
        if (!*p) {
            cli_error("score", 2, "--metric list ends with a comma");
            return false;
        }
    }
    return true;
}

/* Write a result to path atomically with writer w. */
static dp_status write_file(const char *path, const struct dp_score_result *r,
                            void (*w)(FILE *, const struct dp_score_result *)) {
    struct dp_out out;
    dp_status st = dp_out_open(path, &out);
    if (st) return st;
    w(out.f, r);
    return dp_out_commit(&out);
}

int cmd_score(int argc, char **argv) {
    struct cli_common c = {0};
    const char *file = NULL, *metric = NULL, *unit = "block", *ctx_s = NULL, *docs = NULL, *max_seqs_s = NULL,
               *samples_s = NULL, *subsets_s = NULL, *tol_s = NULL, *span_s = NULL, *out_path = NULL,
               *csv_path = NULL, *exact = NULL, *ckpt = NULL, *ckpt_every_s = NULL,
               *no_reuse = NULL, *seq_batch_s = NULL, *min_pairs_s = NULL, *mmlu = NULL, *mmlu_limit = NULL, *iterative = NULL, *parallel = "auto", *mmlu_draws = NULL,
               *mmlu_shots = NULL, *mmlu_ctx = NULL, *estimator = NULL;
    const struct cli_opt opts[] = {
        CLI_COMMON_OPTS(c),
        {"-f", "--file", false, &file, "calibration corpus (text with <|endoftext|> separators, or .jsonl)"},
        {"--metric", NULL, false, &metric, "metrics, comma-separated, or all"},
        {"--unit", NULL, false, &unit, "block (default) or sublayer"},
        {"--ctx", NULL, false, &ctx_s, "tokens per calibration sequence (default 2048 capped at the model's)"},
        {"--docs", NULL, false, &docs, "documents A:B of the corpus"},
        {"--max-seqs", NULL, false, &max_seqs_s, "at most N sequences"},
        {"--samples", NULL, false, &samples_s, "shapley: at most K permutations, or K (n+1) sampled coalitions (default 200)"},
        {"--subsets", NULL, false, &subsets_s, "banzhaf: random subsets per sequence (default 10)"},
        {"--tol", NULL, false, &tol_s, "shapley: stop when every stderr is below T (default 0.01; 0: never early)"},
        {"--min-pairs", NULL, false, &min_pairs_s, "shapley: pairs (stratified: rounds) before an early stop (default 8)"},
        {"--estimator", NULL, false, &estimator,
         "shapley: auto (default: exact when 2^n <= K (n+1), else hybrid), hybrid, stratified, kernel, leverage, permutation"},
        {"--exact", NULL, true, &exact, "shapley: exact values by enumerating every coalition (<= 24 units)"},
        {"--span", NULL, false, &span_s, "angular: only spans of N blocks (default: every N)"},
        {"-o", "--output", false, &out_path, "scores file (JSON) for sweep and prune"},
        {"--csv", NULL, false, &csv_path, "CSV, one row per unit"},
        {"--checkpoint", NULL, false, &ckpt, "checkpoint file (default: OUTPUT.ckpt with -o)"},
        {"--checkpoint-every", NULL, false, &ckpt_every_s, "seconds between checkpoints (default 60)"},
        {"--no-reuse", NULL, true, &no_reuse, "run every pass from the embedding (checks prefix reuse)"},
        {"--parallel", NULL, false, &parallel, "auto (default), seqs (a sequence per thread) or matmul"},
        {"--seq-batch", NULL, false, &seq_batch_s, "leave-one-out: sequences per weight pass when passes split over threads (1-16, default 1; same results)"},
        {"--mmlu", NULL, false, &mmlu, "mmlu_shapley: MMLU folder (dev/, test/)"},
        {"--mmlu-limit", NULL, false, &mmlu_limit, "mmlu_shapley: questions per subject (default all)"},
        {"--mmlu-draws", NULL, false, &mmlu_draws, "mmlu_shapley: random subnetworks per question (default 10)"},
        {"--mmlu-shots", NULL, false, &mmlu_shots, "mmlu_shapley: few-shot examples (default 5)"},
        {"--mmlu-ctx-limit", NULL, false, &mmlu_ctx, "mmlu_shapley: prompt tokens (default 2048 capped at the model's)"},
        {"--iterative", NULL, true, &iterative, "mmlu_shapley: also re-estimate after each removal"},
        CLI_END};
    const char *pos[1];
    int n_pos, rc = cli_parse("score", argc, argv, opts, pos, 0, &n_pos);
    if (rc) return rc == 2 && !c.model ? cli_usage("score", SYN, opts) : rc;
    if (!metric) return cli_error("score", 2, "missing --metric (e.g. --metric loo_loss,cosine or --metric all)");
    struct dp_score_params o;
    dp_score_default_params(&o);
    if (!strcmp(unit, "block")) o.kind = DP_UNITS_BLOCK;
    else if (!strcmp(unit, "sublayer")) o.kind = DP_UNITS_SUBLAYER;
    else return cli_error("score", 2, "--unit must be block or sublayer, not '%s'", unit);
    if (!parse_metrics(metric, o.kind, mmlu != NULL, o.want)) return 2;
    if (o.want[DP_METRIC_ANGULAR] && o.kind != DP_UNITS_BLOCK)
        return cli_error("score", 2, "angular scores spans of blocks: use --unit block");
    if (iterative) {
        if (!o.want[DP_METRIC_MMLU_SHAPLEY]) return cli_error("score", 2, "--iterative applies to mmlu_shapley");
        o.want[DP_METRIC_MMLU_SHAPLEY_ITER] = true;
    }
    bool oracle = o.want[DP_METRIC_MMLU_SHAPLEY] || o.want[DP_METRIC_MMLU_SHAPLEY_ITER], calib = false;
    for (int k = 0; k < DP_N_METRICS; k++)
        calib |= o.want[k] && k != DP_METRIC_MMLU_SHAPLEY && k != DP_METRIC_MMLU_SHAPLEY_ITER;
    if (oracle && !mmlu) return cli_error("score", 2, "mmlu_shapley needs --mmlu DIR (the MMLU dev/ and test/ folders)");
    if (!oracle && (mmlu || mmlu_limit || mmlu_draws || mmlu_shots || mmlu_ctx))
        return cli_error("score", 2, "--mmlu options apply to mmlu_shapley");
    if (calib && !file) return cli_error("score", 2, "missing -f CALIB");
    long mlimit = 0, mdraws = o.mmlu_draws, mshots = o.mmlu_shots, mctx = 0;
    if ((mmlu_limit && !cli_int("score", "--mmlu-limit", mmlu_limit, 1, 1L << 30, &mlimit)) ||
        (mmlu_draws && !cli_int("score", "--mmlu-draws", mmlu_draws, 1, 1000, &mdraws)) ||
        (mmlu_shots && !cli_int("score", "--mmlu-shots", mmlu_shots, 0, 16, &mshots)) ||
        (mmlu_ctx && !cli_int("score", "--mmlu-ctx-limit", mmlu_ctx, 8, 1 << 20, &mctx)))
        return 2;
    long ctx = 0, max_seqs = 0, samples = o.shapley_samples, subsets = o.banzhaf_subsets, span = 0,
         min_pairs = o.shapley_min_pairs;
    double tol = o.shapley_tol, every = o.checkpoint_every;
    unsigned long long seed = o.seed;
    int lo = 0, hi = -1;
    if ((ctx_s && !cli_int("score", "--ctx", ctx_s, 2, 1 << 20, &ctx)) ||
        (max_seqs_s && !cli_int("score", "--max-seqs", max_seqs_s, 1, 1L << 30, &max_seqs)) ||
        (samples_s && !cli_int("score", "--samples", samples_s, 2, 1L << 30, &samples)) ||
        (subsets_s && !cli_int("score", "--subsets", subsets_s, 1, 1 << 20, &subsets)) ||
        (span_s && !cli_int("score", "--span", span_s, 1, DP_MAX_LAYERS, &span)) ||
        (min_pairs_s && !cli_int("score", "--min-pairs", min_pairs_s, 2, 1L << 30, &min_pairs)) ||
        (tol_s && !cli_double("score", "--tol", tol_s, 0, 1e300, &tol)) ||
        (ckpt_every_s && !cli_double("score", "--checkpoint-every", ckpt_every_s, 0, 1e9, &every)))
        return 2;
    const char *seed_s = c.seed; /* --seed is a common option */
    if (seed_s) {
        char *end;
        errno = 0;
        seed = strtoull(seed_s, &end, 10);
        if (!*seed_s || *end || errno || *seed_s == '-')
            return cli_error("score", 2, "--seed must be a non-negative integer, not '%s'", seed_s);
    }
    if (c.max_mem && !dp_parse_bytes(c.max_mem, &o.max_mem))
        return cli_error("score", 2, "--max-mem must be a size such as 512M or 8G, not '%s'", c.max_mem);
    if (docs && dp_parse_range(docs, &lo, &hi)) return cli_error("score", 2, "--docs: %s", dp_last_error());
    o.shapley_samples = (int)samples;
    o.banzhaf_subsets = (int)subsets;
    o.span = (int)span;
    o.shapley_min_pairs = (int)min_pairs;
    o.shapley_tol = tol;
    o.shapley_exact = exact != NULL;
    if (estimator) {
        o.shapley_estimator = dp_shapley_estimator_parse(estimator);
        if (o.shapley_estimator < 0)
            return cli_error("score", 2, "--estimator must be auto, hybrid, kernel, permutation, stratified or leverage, not '%s'",
                             estimator);
        if (!o.want[DP_METRIC_SHAPLEY_LOSS] && !o.want[DP_METRIC_SHAPLEY_LOGIT])
            return cli_error("score", 2, "--estimator applies to shapley_loss and shapley_logit");
    }
    o.seed = seed;
    o.mmlu_draws = (int)mdraws;
    o.mmlu_shots = (int)mshots;
    o.no_reuse = no_reuse != NULL;
    if (seq_batch_s) {
        long sb;
        if (!cli_int("score", "--seq-batch", seq_batch_s, 1, 16, &sb)) return 2;
        o.seq_batch = (int)sb;
    }
    o.checkpoint_every = every;
    if (!strcmp(parallel, "auto")) o.parallel = DP_SCORE_PAR_AUTO;
    else if (!strcmp(parallel, "seqs")) o.parallel = DP_SCORE_PAR_SEQS;
    else if (!strcmp(parallel, "matmul")) o.parallel = DP_SCORE_PAR_MATMUL;
    else return cli_error("score", 2, "--parallel must be auto, seqs or matmul, not '%s'", parallel);
    const char *stop = getenv("DP_SCORE_STOP_AFTER");
    if (stop) o.stop_after_passes = atoll(stop);
    char *ckpt_path = NULL;
    if (ckpt) ckpt_path = strdup(ckpt);
    else if (out_path) {
        size_t n = strlen(out_path) + 6;
        ckpt_path = malloc(n);
        if (ckpt_path) snprintf(ckpt_path, n, "%s.ckpt", out_path);
    }
    if ((ckpt || out_path) && !ckpt_path) return cli_error("score", 1, "out of memory");
    o.checkpoint = ckpt_path;
    struct cli_io io = {0};
    cli_io_common(&io, &c);
    cli_io_in(&io, "-f", file);
    cli_io_in_dir(&io, "--mmlu", mmlu);
    cli_io_out(&io, "-o", out_path);
    cli_io_out(&io, "--csv", csv_path);
    cli_io_out(&io, ckpt ? "--checkpoint" : "the checkpoint", ckpt_path);
    if ((rc = cli_io_check("score", &io))) {
        free(ckpt_path);
        return rc;
    }

    c.ctx = ctx_s; /* the calibration corpus of --recover defaults to these settings */
    c.docs = docs;
    c.max_seqs = max_seqs_s;
    struct cli_model cm;
    if ((rc = cli_open("score", &c, &cm))) {
        free(ckpt_path);
        return rc;
    }
    const struct dp_config *cf = dp_model_config(cm.m);
    if (span > cf->n_layers) {
        rc = cli_error("score", 2, "--span %ld is longer than the model's %d blocks", span, cf->n_layers);
        cli_close(&cm);
        free(ckpt_path);
        return rc;
    }
    if (!ctx) ctx = cf->n_ctx_train < 2048 ? cf->n_ctx_train : 2048;
    if (ctx > cf->n_ctx_train)
        fprintf(stderr, "depthprune score: warning: --ctx %ld exceeds the model's trained context %d\n", ctx,
                cf->n_ctx_train);
    o.mmlu_ctx_limit = (int)(mctx ? mctx : cf->n_ctx_train < 2048 ? cf->n_ctx_train : 2048);
    /* one worker at least: a session, the snapshots and logits of the adaptive metrics, the static observers */
    bool adaptive = false;
    for (int k = DP_METRIC_LOO_LOSS; k <= DP_METRIC_SHAPLEY_LOGIT; k++) adaptive |= o.want[k];
    int64_t snap = 0, lg = 0;
    dp_metrics_memory(cm.m, (int)ctx, &snap, &lg);
    int64_t extra = (adaptive ? snap + lg : 0) + (ctx + cf->n_layers + 1) * cf->n_embd * (int64_t)sizeof(float);
    if ((calib && (rc = cli_check_sessions("score", &cm, &cm.mask, 1, ctx, 0, extra, "--ctx"))) ||
        (oracle && (rc = cli_check_sessions("score", &cm, &cm.mask, 1, o.mmlu_ctx_limit, 1, 0, "--mmlu-ctx-limit")))) {
        cli_close(&cm);
        free(ckpt_path);
        return rc;
    }
    o.corpus = file; /* read when a calibration metric needs it */
    o.docs = docs;
    o.doc_lo = lo;
    o.doc_hi = hi;
    o.ctx = (int)ctx;
    o.max_seqs = (int)max_seqs;
    o.mmlu_dir = oracle ? mmlu : NULL;
    o.mmlu_limit = (int)mlimit;
    o.hooks = cm.hooks;
    o.n_threads = cm.n_threads;
    o.progress = cli_progress_lines;
    struct dp_score_result *s = NULL;
    dp_status st = dp_score_run(cm.m, &cm.mask, cm.pool, &o, &s);
    if (st) rc = cli_error("score", 1, "%s", dp_last_error());
    if (!rc && out_path && write_file(out_path, s, dp_score_write_json))
        rc = cli_error("score", 1, "%s", dp_last_error());
    if (!rc && csv_path && write_file(csv_path, s, dp_score_write_csv)) rc = cli_error("score", 1, "%s", dp_last_error());
    if (!rc) {
        if (c.json) dp_score_write_json(stdout, s);
        else dp_score_write_table(stdout, s);
        if (ckpt_path && dp_dist_rank() == 0) remove(ckpt_path); /* rank 0 alone: it wrote the outputs */
    }
    dp_score_result_free(s);
    cli_close(&cm);
    free(ckpt_path);
    return rc;
}
