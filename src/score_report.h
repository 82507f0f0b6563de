/*
 * score_report: the outputs of `score`: the scores file (JSON, read back by
 * sweep and prune through src/prune.h), a CSV with one row per unit, and a
 * table with bars for people.
 *
 * The JSON object (DESIGN.md, README "Scores files"):
 *   "depthprune_scores": 2, "model", "n_blocks", "model_hash", "model_shape"
 *       (src/identity.h: the model the scores are for, checked on use),
 *       "unit" ("block"|"sublayer"),
 *   "removed" (units the base model already lacks), "metrics": [...],
 *   "data": {"file","docs","documents","sequences","tokens","ctx"},
 *   "units": [{"unit","metric","influence","stderr"?,"d"?}, ...]
 *       every scored unit for every metric; angular lists every block span
 *       it scored ("b2" for one block, "b1..b3" for three) with its distance;
 *       "d" is leave-one-out's D_i (mean CE or logit distance without i);
 *       mmlu_shapley entries carry "oracle": true; mmlu_shapley_iterative's
 *       "influence" is the removal step and "estimate" the value at removal;
 *   "order": {metric: [unit, ...]}   ascending influence, ties by index;
 *       for angular the best span of each length n, ascending n;
 *   "shapley": {metric: {"pairs","permutations","converged","exact","tol",
 *       "v_all","v_none","coalitions"}}, "banzhaf": {"subsets_per_sequence","subset_size"},
 *   "mmlu": {"note" (an oracle measured on the test set), "dir", "questions", "subjects", "limit",
 *       "draws_per_question", "units_kept", "iterations", "base_accuracy", ...} with mmlu_shapley,
 *   "base_ce", "cost": {"unit_evals","naive_unit_evals","saving",
 *       "per_metric": {metric: {"family","unit_evals","naive_unit_evals","passes","seconds"}}},
 *   "memory": {"snapshot_bytes","logits_bytes" (per worker),"workers"}, "seed", "threads", "seconds", "resumed".
 * Numbers that are not finite are written as null.
 */
#ifndef DP_SCORE_REPORT_H
#define DP_SCORE_REPORT_H

#include "metrics.h"

#include <stdio.h>

/* What the scores do not know themselves: where they came from. */
struct dp_score_info {
    const char *model;      /* path */
    int n_blocks;
    const char *model_hash, *model_shape;   /* src/identity.h; NULL: not written */
    const char *removed;    /* "" or "b2,a4" */
    const char *file;       /* calibration corpus */
    const char *docs;       /* "A:B" as given, or NULL for all */
    int n_docs;             /* documents tokenized */
    int64_t n_tokens;       /* sequences x ctx */
    uint64_t seed;
    double tol;
    int n_threads;
    double seconds;
    const char *mmlu_dir;   /* mmlu_shapley's questions */
    int mmlu_limit;         /* questions per subject (0: all) */
};

void dp_score_report_json(FILE *f, const struct dp_scores *s, const struct dp_score_info *info);
/* unit,<metric>,<metric>_stderr...: one row per unit (angular: the one-block span). */
void dp_score_report_csv(FILE *f, const struct dp_scores *s);
/* A table per metric with bars, the order, convergence and cost. */
void dp_score_report_table(FILE *f, const struct dp_scores *s, const struct dp_score_info *info);

#endif
