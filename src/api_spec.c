/*
 * api_spec: the search for a self-speculative draft plan (src/spec.h,
 * dp_spec_search) through the public header, as `prune --draft` uses it:
 * the calibration corpus is read here, the schemes parsed, and the plans
 * handed out with the best (largest expected speed-up) marked.
 */
#include "api.h"
#include "prune.h"
#include "spec.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(DP_DRAFT_MAX_LEN == DP_SPEC_MAX_LEN, "the header's draft length bound is spec.h's");

struct dp_draft_params dp_draft_default_params(void) {
    struct dp_draft_params p = {.schemes = "all", .max_removed = 4, .k_max = 8, .timed = true};
    return p;
}

dp_status dp_draft_search(const struct dp_model *m, struct dp_pool *pool, const struct dp_draft_params *p,
                          struct dp_drafts *out) {
    memset(out, 0, sizeof *out);
    if (!m || !pool || !p) return dp_fail(DP_ERR_ARG, "draft search: model, pool and params are required");
    if (!p->calib.path) return dp_fail(DP_ERR_ARG, "draft search: no calibration corpus (the text agreement is measured on)");
    if (p->k_max < 1 || p->k_max > DP_SPEC_MAX_LEN || p->max_removed < 1)
        return dp_fail(DP_ERR_ARG, "draft search: k_max must be in 1..%d and max_removed at least 1", DP_SPEC_MAX_LEN);
    const struct dp_config *cf = dp_model_config(m);
    struct dp_spec_search_opts o = {.max_removed = p->max_removed, .k_max = p->k_max, .timed = p->timed, .time_reps = DP_SPEC_TIME_REPS};
    if (p->schemes && strcmp(p->schemes, "all")) {
        enum dp_scheme sc;
        if (dp_scheme_parse(p->schemes, &sc)) return DP_ERR_ARG;
        o.schemes = 1u << sc;
    } else {
        o.schemes = (1u << DP_N_SCHEMES) - 1;
    }
    o.time_pos = dp_spec_time_pos(m);
    struct dp_chunks *ch = NULL;
    dp_status st = dp_api_chunks(m, &p->calib, cf->n_ctx_train < 256 ? cf->n_ctx_train : 256, 16, "calibration corpus", &ch);
    if (st) return st;
    struct dp_spec_plan *plans = malloc(256 * sizeof *plans);
    int n = 0;
    if (!dp_progress_step(p->progress, p->progress_user, "draft search", 0, 1)) st = DP_ERR_CANCELLED;
    else st = plans ? dp_spec_search(m, pool, ch, &o, out->c_verify, plans, 256, &n) : dp_fail(DP_ERR_NOMEM, "out of memory");
    out->k_max = o.k_max;
    out->n_seqs = ch->n_seqs;
    out->ctx = ch->ctx;
    for (int i = 0; !st && i < n; i++) {
        struct dp_draft_plan *d = &out->plans[i];
        snprintf(d->scheme, sizeof d->scheme, "%s", dp_scheme_name((enum dp_scheme)plans[i].scheme));
        d->n_removed = plans[i].n_removed;
        snprintf(d->units, sizeof d->units, "%s", plans[i].units);
        d->agree = plans[i].agree;
        d->c_bytes = plans[i].c_bytes;
        d->c_draft = plans[i].c_draft;
        d->best_len = plans[i].best_len;
        d->tokens_per_verify = plans[i].tokens_per_verify;
        d->speedup = plans[i].speedup;
        if (d->speedup > out->plans[out->best].speedup) out->best = i;
    }
    if (!st && !dp_progress_step(p->progress, p->progress_user, "draft search", 1, 1)) st = DP_ERR_CANCELLED;
    if (!st) out->n_plans = n;
    if (!st && !n) st = dp_fail(DP_ERR_ARG, "draft search: no plan to search (max_removed %d)", p->max_removed);
    free(plans);
    dp_chunks_free(ch);
    return st;
}
