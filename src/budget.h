/*
 * budget: how far a plan may go. A budget names targets (how small the
 * model must become) and limits (how much quality may be lost); applied to
 * the steps of a sweep run (0, 1, 2, ... units removed), it picks the step
 * a plan stops at and says why in one sentence (`prune --target-kv 0.5`,
 * `sweep --max-ppl-ratio 1.5`).
 */
#ifndef DP_BUDGET_H
#define DP_BUDGET_H

#include "plan.h"

struct dp_sweep_run;
struct dp_sweep_config;

/*
 * A budget (all optional). Targets say how small the model must become;
 * limits how much quality may be lost:
 *   target_kv      keep at most this fraction of the KV cache (0: none)
 *   target_params  keep at most this fraction of the parameters (0: none)
 *   max_ppl_ratio  perplexity at most this multiple of the unpruned one (0: none)
 *   max_mmlu_drop  MMLU accuracy at most this many points below (NAN: none)
 * A plan walks its order and stops at the first step that meets every
 * target, but never past the last step before a limit is broken; with
 * limits only, it stops at that last step.
 */
struct dp_budget {
    double target_kv, target_params, max_ppl_ratio, max_mmlu_drop;
};
/* No target and no limit. */
void dp_budget_none(struct dp_budget *b);
/* Whether any target or limit is set. */
bool dp_budget_any(const struct dp_budget *b);
/* Whether a limit (max_ppl_ratio, max_mmlu_drop) is set. */
bool dp_budget_has_limits(const struct dp_budget *b);

struct dp_budget_result {
    int step;             /* the step chosen (index into steps) */
    bool met;             /* every target met at that step (true when there are no targets) */
    bool decided;         /* the steps so far decide the step (no later step could change it) */
    char bound[64];       /* what stopped it: "target-kv", "max-ppl-ratio", ..., or "units" (none left) */
    char why[512];        /* one sentence for people */
};

/*
 * The budget's step in a run's steps (steps 0..n_steps-1 hold 0..n removed
 * units; step 0 is the unpruned model). Fails when a limit needs a value
 * the steps lack (perplexity or MMLU not evaluated).
 */
dp_status dp_budget_choose(const struct dp_budget *b, const struct dp_sweep_run *run, int64_t kv_full,
                           int64_t params_full, struct dp_budget_result *out);

/*
 * Plan to a budget for `prune --target...`: a one-run sweep (cfg names one
 * metric, one scheme and one mode; cfg->budget set) that evaluates only the
 * steps the limits need and stops once the budget has decided. *plan gets
 * the chosen step's units (no recovery file: fit one for the plan's units),
 * *res says what bound it. Fails when a target cannot be met at all
 * (the message names the target, the best fraction reached and the step).
 */
dp_status dp_budget_plan(const struct dp_sweep_config *cfg, struct dp_plan *plan, struct dp_budget_result *res);

#endif
