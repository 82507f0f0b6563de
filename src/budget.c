/*
 * budget: where a plan stops (see budget.h). dp_budget_choose walks a run's
 * steps once: the first step that breaks a limit ends the walk one step
 * earlier; otherwise the first step that meets every target is chosen, and
 * `bound` names the target that decided (the one the previous step missed
 * when it met the other); with neither, the last step. dp_budget_plan is a
 * one-run sweep (sweep.c) that stops as soon as the choice is decided.
 */
#include "budget.h"

#include "sweep.h"

#include <math.h>
#include <string.h>

void dp_budget_none(struct dp_budget *b) {
    b->target_kv = b->target_params = b->max_ppl_ratio = 0;
    b->max_mmlu_drop = NAN;
}

bool dp_budget_has_limits(const struct dp_budget *b) {
    return b->max_ppl_ratio > 0 || !isnan(b->max_mmlu_drop);
}

bool dp_budget_any(const struct dp_budget *b) {
    return b->target_kv > 0 || b->target_params > 0 || dp_budget_has_limits(b);
}

/* Which targets step s meets (bit 0: kv, bit 1: params; a target not set counts as met). */
static unsigned targets_met(const struct dp_budget *b, const struct dp_sweep_step *s, int64_t kv_full,
                            int64_t params_full) {
    unsigned m = 0;
    if (b->target_kv <= 0 || (double)s->kv_bytes_per_token <= b->target_kv * (double)kv_full * (1 + 1e-12)) m |= 1;
    if (b->target_params <= 0 || (double)s->n_params <= b->target_params * (double)params_full * (1 + 1e-12)) m |= 2;
    return m;
}

static void target_names(unsigned bits, char *buf, size_t cap) {
    snprintf(buf, cap, "%s%s%s", bits & 1 ? "target-kv" : "", (bits & 3) == 3 ? "," : "", bits & 2 ? "target-params" : "");
}

dp_status dp_budget_choose(const struct dp_budget *b, const struct dp_sweep_run *run, int64_t kv_full,
                           int64_t params_full, struct dp_budget_result *out) {
    memset(out, 0, sizeof *out);
    DP_ASSERT(run->n_steps > 0);
    const struct dp_sweep_step *base = &run->steps[0];
    bool has_targets = b->target_kv > 0 || b->target_params > 0;
    if (b->max_ppl_ratio > 0 && isnan(base->ppl))
        return dp_fail(DP_ERR_ARG, "--max-ppl-ratio needs perplexity at every step (--ppl CORPUS)");
    if (!isnan(b->max_mmlu_drop) && base->mmlu_n == 0)
        return dp_fail(DP_ERR_ARG, "--max-mmlu-drop needs MMLU at every step (--mmlu DIR)");
    for (int k = 0; k < run->n_steps; k++) {
        const struct dp_sweep_step *s = &run->steps[k];
        char broken[64] = "", detail[256] = "";
        if (b->max_ppl_ratio > 0 && s->ppl / base->ppl > b->max_ppl_ratio) {
            strcpy(broken, "max-ppl-ratio");
            snprintf(detail, sizeof detail, "perplexity %.4g would be %.3gx the unpruned %.4g (limit %gx)", s->ppl,
                     s->ppl / base->ppl, base->ppl, b->max_ppl_ratio);
        }
        if (!isnan(b->max_mmlu_drop) && base->mmlu_acc - s->mmlu_acc > b->max_mmlu_drop) {
            size_t l = strlen(broken);
            snprintf(broken + l, sizeof broken - l, "%smax-mmlu-drop", l ? "," : "");
            l = strlen(detail);
            snprintf(detail + l, sizeof detail - l, "%sMMLU %.2f%% would be %.2f points below the unpruned %.2f%% (limit %g)",
                     l ? "; " : "", s->mmlu_acc, base->mmlu_acc - s->mmlu_acc, base->mmlu_acc, b->max_mmlu_drop);
        }
        if (broken[0]) {
            DP_ASSERT(k > 0);
            char unit[16];
            dp_unit_name(s->removed[s->n_removed - 1], unit);
            out->step = k - 1;
            out->met = !has_targets;
            out->decided = true;
            snprintf(out->bound, sizeof out->bound, "%s", broken);
            snprintf(out->why, sizeof out->why, "stopped at %d removed: removing %s next: %s%s", k - 1, unit, detail,
                     has_targets ? "; the target is not met" : "");
            return DP_OK;
        }
        unsigned met = targets_met(b, s, kv_full, params_full);
        if (has_targets && met == 3) {
            unsigned before = k ? targets_met(b, &run->steps[k - 1], kv_full, params_full) : 0;
            unsigned binding = (b->target_kv > 0 ? 1u : 0u) | (b->target_params > 0 ? 2u : 0u);
            if (k && (before & binding) != 0 && (before & binding) != binding) binding &= ~before;
            target_names(binding, out->bound, sizeof out->bound);
            out->step = k;
            out->met = out->decided = true;
            snprintf(out->why, sizeof out->why,
                     "stopped at %d removed: KV cache %.1f%% and parameters %.1f%% of the unpruned model meet the target",
                     k, 100.0 * (double)s->kv_bytes_per_token / (double)kv_full,
                     100.0 * (double)s->n_params / (double)params_full);
            return DP_OK;
        }
    }
    const struct dp_sweep_step *last = &run->steps[run->n_steps - 1];
    out->step = run->n_steps - 1;
    out->met = !has_targets;
    out->decided = false;
    strcpy(out->bound, "units");
    snprintf(out->why, sizeof out->why,
             "stopped at %d removed: the run has no further step (its scheme's units, --max or protected units)%s "
             "(KV cache %.1f%%, parameters %.1f%%)",
             last->n_removed, has_targets ? " and the target is not met" : " and the limits still hold",
             100.0 * (double)last->kv_bytes_per_token / (double)kv_full,
             100.0 * (double)last->n_params / (double)params_full);
    return DP_OK;
}

dp_status dp_budget_plan(const struct dp_sweep_config *cfg, struct dp_plan *plan, struct dp_budget_result *res) {
    memset(plan, 0, sizeof *plan);
    memset(res, 0, sizeof *res);
    if (cfg->n_metrics != 1 || cfg->n_schemes != 1 || cfg->oneshot == cfg->iterative || (cfg->recover && cfg->n_recover != 1))
        return dp_fail(DP_ERR_ARG, "a budget plan needs one metric, one scheme, one mode and at most one recovery");
    if (!dp_budget_any(&cfg->budget)) return dp_fail(DP_ERR_ARG, "a budget plan needs a target or a limit");
    struct dp_sweep_config c = *cfg;
    c.stop_at_budget = true;
    struct dp_sweep *s;
    dp_status st = dp_sweep_run(&c, &s);
    if (st) return st;
    const struct dp_sweep_run *run = &s->runs[0];
    *res = run->budget;
    if (!res->met) {
        const struct dp_sweep_step *last = &run->steps[run->n_steps - 1];
        st = dp_fail(DP_ERR_ARG,
                     "the budget cannot be met by %s under scheme %s: at most %d units removed (KV cache %.1f%%, "
                     "parameters %.1f%% of the unpruned model): %s",
                     run->metric, dp_scheme_name(run->scheme), last->n_removed,
                     100.0 * (double)last->kv_bytes_per_token / (double)s->kv_full,
                     100.0 * (double)last->n_params / (double)s->params_full, res->why);
    }
    if (!st) st = dp_sweep_plan(s, 0, res->step, plan);
    dp_sweep_free(s);
    return st;
}
