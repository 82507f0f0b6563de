/*
 * metrics: how much each unit matters (METHODS.md sections 3 and 4).
 *
 * The units scored ("players") are the blocks b<i> or the sublayers a<i>,
 * f<i> that the base mask keeps (a block counts when either of its sublayers
 * is kept), so scoring an already-pruned model ranks what is left.
 *
 * Static metrics (cosine, rel_l1, rel_l2, angular) come from one forward pass
 * per sequence with an observer that sees every sublayer's input and output:
 * all units and all four metrics at once, means over positions then over
 * sequences, double accumulators.
 *
 * Adaptive metrics (leave-one-out, Banzhaf, Shapley; loss and logit variants)
 * evaluate "coalitions": networks that keep a subset of the players. Every
 * coalition value is a per-sequence mean (CE over the ctx-1 predictions, or
 * the mean L2 distance of the raw logits to the base model's) averaged over
 * sequences. They are computed sequence by sequence: a pass of the base model
 * records the residual stream entering every sublayer, then the coalitions are
 * run in lexicographic order of their masks (in model order, kept before
 * removed), each starting at the first sublayer where it differs from the
 * coalition run before it, from the stream that pass left. Lexicographic order
 * makes the predecessor the coalition that shares the longest prefix, so this
 * is prefix reuse generalised from "the base model" to "any earlier pass": a
 * trie walk. It is exact: a pass is bit-identical to one from the embedding.
 * cost.unit_evals counts the sublayers actually computed, cost.naive_unit_evals
 * what passes from the embedding would have computed (base pass included).
 *
 * Shapley values are estimated by one of the estimators of shapley.h
 * (antithetic permutations, stratified by size, paired KernelSHAP, Leverage
 * SHAP; --estimator) over a cache of coalition values, each asking its
 * coalitions in batches that the evaluator orders for prefix reuse. Everything random is drawn from
 * a seeded generator outside the forward passes, so results are identical for
 * any thread count.
 *
 * Long runs write a checkpoint (an exact binary image of the accumulators) at
 * sequence boundaries; a rerun with the same key resumes from it.
 *
 * Files: metrics.c (the run, options, results), coalition.c (players,
 * coalition cache, the evaluator with prefix reuse), metrics_static.c,
 * metrics_loo.c, metrics_banzhaf.c, metrics_shapley.c (one family of passes
 * each), metrics_checkpoint.c, metrics_mmlu.c (the MMLU oracle); the run's
 * state is metrics_run.h.
 */
#ifndef DP_METRICS_H
#define DP_METRICS_H

#include "data.h"
#include "model.h"

/* "cosine", "loo_loss", ... (NULL when out of range). */
const char *dp_metric_name(int metric);
/* The metric named by the n bytes of s, or -1. */
int dp_metric_parse(const char *s, size_t n);
/* Whether the metric is a random estimate (it has standard errors). */
bool dp_metric_random(int metric);

/* What a family of passes cost, in sublayer evaluations (attention or FFN). */
struct dp_cost {
    int64_t unit_evals;        /* sublayers actually computed */
    int64_t naive_unit_evals;  /* what passes from the embedding would have computed */
    int64_t passes;            /* forward passes (one sequence each), the base passes included */
    double seconds;            /* wall time (a family resumed from a checkpoint counts its last session) */
    double cpu_seconds;        /* CPU time of every thread of the process over the same spans */
};

struct dp_mmlu_data;

/* mmlu_shapley (METHODS.md section 4). */
struct dp_mmlu_shapley_opts {
    int draws;       /* random subnetworks per question (default 10), each keeping floor(0.9 m) of m units */
    int shots;       /* few-shot examples (default 5) */
    int ctx_limit;   /* prompt tokens (default 2048) */
    uint64_t seed;   /* default 1 */
    int parallel;    /* enum dp_score_parallel: subnetworks one per thread (small models) or passes split */
    /* Progress and cancellation (NULL: silent): stage "mmlu" for the base model's accuracy, then the
     * groups' "mmlu" when they run on the calling thread, else "mmlu_shapley": subjects done of all
     * (times the estimates of an iterative run). */
    dp_progress_fn progress;
    void *progress_user;
};
void dp_mmlu_shapley_opts_default(struct dp_mmlu_shapley_opts *o);

struct dp_score_opts {
    enum dp_unit_kind kind;
    bool want[DP_N_METRICS];   /* metrics to compute */
    int span;                  /* angular: only spans of this many blocks (0: every n) */
    int banzhaf_subsets;       /* random subsets per sequence (default 10) */
    int shapley_perms;         /* at most this many permutations (rounded up to pairs; default 200), or as many
                                  permutations' coalitions, samples * (n + 1), for the other estimators */
    int shapley_min_pairs;     /* no early stop before this many pairs (default 8) */
    double shapley_tol;        /* stop when every standard error is below (0: never early; default 0.01) */
    bool shapley_exact;        /* exact values by enumerating every coalition (at most 24 units) */
    bool shapley_all_perms;    /* "sample" every permutation once (at most 9 units; a check of the sampler) */
    int shapley_estimator;     /* enum dp_shapley_estimator (shapley.h; default DP_SHAPLEY_DEFAULT) */
    bool shapley_table;        /* exact: keep every coalition's value in the result (bench/shapley_study) */
    uint64_t seed;             /* default 1 */
    bool no_reuse;             /* run every pass from the embedding (a check of prefix reuse) */
    int64_t max_mem;           /* fail when snapshots and logits need more bytes (0: no limit) */
    const char *checkpoint;    /* checkpoint file, or NULL */
    const char *checkpoint_key;/* identifies the run (arguments); the library adds the data shape */
    double checkpoint_every;   /* seconds between checkpoints (default 60; 0: at every sequence) */
    int64_t stop_after_passes; /* tests: fail with DP_ERR_IO after this many passes (0: never) */
    enum dp_score_parallel parallel; /* depthprune.h */
    int seq_batch;             /* leave-one-out: sequences per weight pass with one worker (1..DP_MULTI_MAX; 0: 1) */
    const struct dp_mmlu_data *mmlu;       /* questions of mmlu_shapley (an oracle on the test set) */
    struct dp_mmlu_shapley_opts mmlu_opts; /* its progress fields are set from the two below */
    /* Progress and cancellation (NULL: silent), on the calling thread: per family, stage "static
     * metrics", "leave-one-out", "banzhaf", "shapley coalitions": sequences done of all; then
     * mmlu_shapley's stages (above). */
    dp_progress_fn progress;
    void *progress_user;
};
void dp_score_opts_default(struct dp_score_opts *o);

/* A span of n consecutive present blocks starting at present block `first`. */
struct dp_span {
    int first_block, last_block;   /* model block indices (names b<first>..b<last>) */
    int n;
    double distance;               /* mean over sequences of arccos(cos(h_in, h_out))/pi at the last position */
};

struct dp_scores {
    enum dp_unit_kind kind;
    int n_units;
    char (*names)[16];                 /* (n_units) "b3" / "a3" / "f3" */
    bool has[DP_N_METRICS];
    double *influence[DP_N_METRICS];   /* (n_units) when has */
    double *std_err[DP_N_METRICS];     /* (n_units) for random metrics, else NULL */
    double *value[DP_N_METRICS];       /* loo: D_i, the mean CE or logit distance with unit i removed */
    int *order[DP_N_METRICS];          /* (n_units) ascending influence, ties by index */
    /* angular (block units only): every span considered, and the best one per n */
    int n_spans;
    struct dp_span *spans;
    int n_best;
    int *best;                         /* (n_best) index into spans of the best span of each n, ascending n */
    /* shapley_loss [0], shapley_logit [1] */
    struct {
        int pairs;                     /* antithetic or complementary pairs used (0 when exact or stratified) */
        int estimator;                 /* enum dp_shapley_estimator (when not exact) */
        int64_t samples;               /* permutations, sampled coalitions or stratified marginals used */
        bool converged;                /* every stderr below the tolerance */
        bool exact;
        double v_all, v_none;          /* v(S) = -D(S) of all units and of none */
        int64_t coalitions;            /* distinct coalitions evaluated */
        double *table;                 /* (2^n) D(S) by coalition bit mask, exact with opts.shapley_table, else NULL */
    } shapley[2];
    int banzhaf_subsets;
    /* mmlu_shapley: measured on MMLU test questions, an oracle (upper bound), not a calibration metric */
    struct {
        int questions, subjects, draws, keep, iterations;   /* keep: units per subnetwork, first estimate */
        double base_accuracy;              /* percent, the base model */
        int64_t distinct;                  /* (subject, subnetwork) evaluations */
        int64_t questions_evaluated, tokens_evaluated, tokens_naive;
        double seconds, cpu_seconds;
    } mmlu;
    double base_ce;                    /* mean CE of the base model (when an adaptive metric ran) */
    /* cost per metric; metrics computed from the same passes share one figure */
    struct dp_cost cost[DP_N_METRICS];
    int64_t unit_evals, naive_unit_evals;   /* all families together */
    int64_t snapshot_bytes, logits_bytes;   /* what the adaptive passes need */
    int n_seqs, ctx;
    int workers;                       /* sequences evaluated at once */
    bool resumed;                      /* continued from a checkpoint */
};
void dp_scores_free(struct dp_scores *s);

/*
 * Bytes the adaptive metrics need beyond the model and one session: the
 * residual-stream snapshots (every sublayer's input for ctx tokens) and two
 * logit buffers (ctx x n_vocab f32 each).
 */
void dp_metrics_memory(const struct dp_model *m, int ctx, int64_t *snapshot_bytes, int64_t *logits_bytes);

/*
 * mmlu_shapley into res (allocated by dp_metrics_score, which calls this):
 * influence, std_err (and value: the estimate at removal, iterated) of
 * DP_METRIC_MMLU_SHAPLEY and/or DP_METRIC_MMLU_SHAPLEY_ITER, whichever res has.
 */
dp_status dp_metrics_mmlu_oracle(const struct dp_model *m, const struct dp_mask *base, const struct dp_hooks *hooks,
                                 struct dp_pool *pool, const struct dp_mmlu_data *data,
                                 const struct dp_mmlu_shapley_opts *o, struct dp_scores *res);

/*
 * Score the units of the base mask (hooks: replacements of removed units, or
 * NULL; its observer and start fields are ignored) on the calibration chunks
 * (NULL when only mmlu_shapley is asked for, which reads opts->mmlu).
 * The result is owned by the caller (dp_scores_free). Fails on bad options,
 * on memory above opts->max_mem, or on an unreadable checkpoint.
 */
dp_status dp_metrics_score(const struct dp_model *m, const struct dp_mask *base, const struct dp_hooks *hooks,
                           struct dp_pool *pool, const struct dp_chunks *ch, const struct dp_score_opts *opts,
                           struct dp_scores **out);

#endif
