/*
 * sweep: the research's experiment grid (METHODS.md section 5); plans to a
 * budget are budget.h.
 *
 * A sweep evaluates a model after removing 0, 1, 2, ... units, for every
 * (metric, scheme, mode, recovery) asked: a "run". One-shot runs remove units
 * in the order a scores file gives (src/prune.h); iterative runs take the
 * first unit from the scores file and then re-score the remaining units on
 * the pruned (and recovered) model after each removal (src/metrics.h) and
 * remove the lowest. `angular` scores block spans: its one-shot step n
 * removes the best span of n blocks; iterated, it removes the best single
 * block of the pruned model each time. Each step records perplexity (paper
 * or llama.cpp protocol), MMLU accuracy when asked, the KV cache bytes per
 * token and the parameter count. With the speedup objective (cfg->draft)
 * each step is also measured as a draft of the full model for
 * self-speculative decoding (src/spec.h): teacher-forced argmax agreement
 * with the full model on the calibration chunks, the best draft length and
 * the expected speed-up (costs by weight bytes, or timed), and each run
 * marks its step of the largest expected speed-up.
 *
 * Evaluations are memoised by what they evaluate (the removed set and the
 * recovery), so the unpruned model is evaluated once for all runs and
 * metrics that agree share their steps.
 *
 * On disk (DESIGN.md) a sweep is JSON:
 *   {"depthprune_sweep": 1, "model": ..., "n_blocks": 5,
 *    "full": {"kv_bytes_per_token", "n_params"},
 *    "args": {"metric": "...", ...},          what the steps depend on
 *    "budget": {...} or null, "warnings": [...],
 *    "runs": [{"metric","scheme","iterative","recover","oracle","note",
 *              "steps": [{"removed": ["b2"], "ppl", "ppl_seq",
 *                         "mmlu": {"accuracy","stderr","n"} or null,
 *                         "kv_bytes_per_token", "n_params",
 *                         with the speedup objective: "draft_accept", "c_bytes", "c_draft",
 *                         "draft_len", "tokens_per_verify", "speedup"}, ...],
 *              "budget": {"step","removed","bound","met","why"} (with a budget),
 *              "draft_best": {"step","removed","draft_accept","draft_len","speedup"}
 *                            (with the speedup objective)}],
 *    "draft": {"cost": "bytes"|"time", "k_max", "c_verify": [...], "n_seqs", "ctx"}
 *             (with the speedup objective only)}
 * It is rewritten atomically after every step; a sweep started with an
 * output path that already holds a sweep with the same "args" continues
 * from the steps written there (a different "args" is an error naming the
 * first difference). Timings are not stored, so a resumed sweep writes the
 * same bytes as an uninterrupted one.
 */
#ifndef DP_SWEEP_H
#define DP_SWEEP_H

#include "budget.h"
#include "data.h"
#include "model.h"
#include "plan.h"
#include "prune.h"
#include "recover.h"
#include "spec.h"

struct dp_sweep_step {
    int n_removed;
    struct dp_unit *removed;      /* (n_removed) in removal order */
    double ppl, ppl_seq;          /* NAN when perplexity is not evaluated */
    double mmlu_acc, mmlu_stderr; /* percent */
    int mmlu_n;                   /* 0 when MMLU is not evaluated */
    int64_t kv_bytes_per_token, n_params;
    /* as a draft of the full model (the speedup objective; NAN and 0 otherwise) */
    double draft_accept;          /* teacher-forced argmax agreement with the full model */
    double draft_c_bytes, draft_c_draft;  /* a draft step over a full one: by weight bytes; as used */
    int draft_len;                /* the draft length of the largest expected speed-up */
    double draft_tokens_per_verify, draft_speedup;  /* expected, at draft_len */
};

struct dp_sweep_run {
    char metric[64];
    enum dp_scheme scheme;
    bool iterative;
    char recover[64];             /* "none", "mean", ... */
    bool oracle;                  /* the metric was measured on the evaluation data (mmlu_shapley) */
    char note[256];               /* why a run stopped early or was skipped ("" when none) */
    int n_steps, cap;
    struct dp_sweep_step *steps;
    bool has_budget;
    struct dp_budget_result budget;
    int draft_best;               /* the step of the largest expected speed-up (first on ties), -1: none */
};

/* An argument a sweep's steps depend on (stored under "args", checked on resume). */
struct dp_sweep_arg {
    char key[32];
    char *value;
};

struct dp_sweep {
    char *model;
    int n_blocks;
    int64_t kv_full, params_full;
    int n_args;
    struct dp_sweep_arg *args;
    bool has_budget;
    struct dp_budget budget;
    int n_warnings;
    char **warnings;
    int n_runs;
    struct dp_sweep_run *runs;
    /* the speedup objective: steps measured as drafts */
    bool has_draft, draft_timed;
    int draft_k_max, draft_n_seqs, draft_ctx;
    double draft_c_verify[DP_SPEC_MAX_LEN + 1];   /* verifying k+1 tokens, in decode steps */
};

/* An MMLU evaluation of the model under a mask (+ hooks): accuracy and its standard error in percent, n questions. */
typedef dp_status (*dp_sweep_mmlu_fn)(void *ctx, const struct dp_model *m, const struct dp_mask *mask,
                                      const struct dp_hooks *hooks, struct dp_pool *pool, double *acc, double *se,
                                      int *n);

/*
 * The MMLU evaluation of src/mmlu.h as a dp_sweep_mmlu_fn: pass
 * dp_sweep_mmlu_eval with a struct dp_sweep_mmlu as its context.
 */
struct dp_mmlu_data;
struct dp_sweep_mmlu {
    const struct dp_mmlu_data *data;
    int shots, ctx_limit;
    dp_progress_fn progress;                 /* stage "mmlu" (NULL: silent) */
    void *progress_user;
};
dp_status dp_sweep_mmlu_eval(void *ctx, const struct dp_model *m, const struct dp_mask *mask,
                             const struct dp_hooks *hooks, struct dp_pool *pool, double *acc, double *se, int *n);

struct dp_sweep_config {
    const struct dp_model *model;
    struct dp_pool *pool;
    const char *model_name;                  /* recorded in the output */
    const struct dp_influences *scores;
    const char *const *metrics;              /* metrics to sweep */
    int n_metrics;
    const enum dp_scheme *schemes;
    int n_schemes;
    bool oneshot, iterative;                 /* modes to run (at least one) */
    int max_units;                           /* at most this many removed (0: all) */
    const struct dp_chunks *calib;           /* iterative re-scoring, recovery fits, drafts (NULL: none) */
    /* The speedup objective: every step also measured as a draft of the full model on calib
     * (src/spec.h) with draft lengths 1..draft_k_max, costs by weight bytes or timed. */
    bool draft, draft_timed;
    int draft_k_max;
    const struct dp_chunks *ppl_chunks;      /* perplexity by the paper protocol, or */
    const int *ppl_ids;                      /* the whole text for the llamacpp protocol */
    int n_ppl_ids, ppl_ctx;
    dp_sweep_mmlu_fn mmlu;                   /* NULL: no MMLU */
    void *mmlu_ctx;
    const struct dp_sweep_mmlu *oracle;      /* questions to re-score mmlu_shapley in iterative runs (NULL: none) */
    const char *const *recover;              /* recovery kinds ("none", "mean", ...); NULL: {"none"} */
    int n_recover;
    const struct dp_recover_opts *recover_opts;  /* NULL: defaults */
    const struct dp_mask *protect;           /* protected units (src/prune.h), or NULL */
    /* A base plan: units removed in every step (step 0 is the base model; steps list them first
     * in `removed`, and orders skip them). NULL/0: the unpruned model. No span metrics with it. */
    const struct dp_unit *base;
    int n_base;
    struct dp_budget budget;
    bool stop_at_budget;                     /* evaluate no step once the budget has decided */
    const struct dp_sweep_arg *args;         /* what the steps depend on (resume check) */
    int n_args;
    const char *out_path;                    /* JSON rewritten after every step; resumed from (NULL: none) */
    const char *const *warnings;             /* recorded in the output */
    int n_warnings;
    /* Progress lines (no newline) for people; NULL for silence. */
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
    /* Progress and cancellation: stage "sweep", steps evaluated so far, and the stages of the
     * evaluations and re-scorings of each step ("perplexity", "static metrics", ...; NULL: none). */
    dp_progress_fn progress;
    void *progress_user;
};

/*
 * Run a sweep. On success *out holds every run (owned by the caller:
 * dp_sweep_free). Fails on bad configurations (a metric without scores for
 * a scheme, iterative without calibration data, a limit without the
 * evaluation it needs), on an output file of another sweep, and on any
 * evaluation failure (the steps done so far are already written).
 */
dp_status dp_sweep_run(const struct dp_sweep_config *cfg, struct dp_sweep **out);

/* Read a sweep JSON file (checks the layout; fails naming the file). */
dp_status dp_sweep_load(const char *path, struct dp_sweep **out);
/* Write atomically. */
dp_status dp_sweep_save(const struct dp_sweep *s, const char *path);
void dp_sweep_free(struct dp_sweep *s);

/* A plan of the first units of a run's step (metric, scheme, model and n_blocks filled in; no recovery). */
dp_status dp_sweep_plan(const struct dp_sweep *s, int run, int step, struct dp_plan *out);

/*
 * Whether two corpus selections overlap: the same file (same device and
 * inode) and intersecting document ranges [lo, hi) (hi < 0: to the end).
 */
bool dp_corpus_overlap(const char *path_a, int lo_a, int hi_a, const char *path_b, int lo_b, int hi_b);

#endif
