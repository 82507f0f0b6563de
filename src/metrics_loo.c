/*
 * metrics_loo: leave-one-out (METHODS.md section 4): for each player, the
 * coalition of all the others, on every sequence, with prefix reuse. The
 * n coalitions are sorted once for the evaluator; a sequence's results are
 * n CE values, n logit distances and the base model's CE.
 */
#include "metrics_run.h"

#include <stdlib.h>
#include <string.h>

/* ---- leave-one-out ---- */

static dp_status loo_seq(struct run *r, struct worker *w, int q, double *out) {
    int64_t n = r->list_n;
    dp_status st = dp_coalition_eval_base(&w->ev, seq_ids(r, q));
    if (!st) st = dp_coalition_eval_list(&w->ev, r->list_kept, r->list_order, n, out, out + n);
    out[2 * n] = w->ev.full_ce;
    return st;
}

/* Sequences q0..q0+nq-1 in lockstep, one weight pass per coalition for all. */
static dp_status loo_batch(struct run *r, int q0, int nq, double *const *outs) {
    int64_t n = r->list_n;
    struct dp_evaluator *evs[DP_MULTI_MAX] = {NULL};
    const int *ids[DP_MULTI_MAX] = {NULL};
    double *ce[DP_MULTI_MAX] = {NULL}, *dist[DP_MULTI_MAX] = {NULL};
    for (int i = 0; i < nq; i++) {
        evs[i] = &r->w[i].ev;
        ids[i] = seq_ids(r, q0 + i);
        ce[i] = outs[i];
        dist[i] = outs[i] + n;
    }
    dp_status st = dp_coalition_eval_base_multi(evs, nq, ids);
    if (!st) st = dp_coalition_eval_list_multi(evs, nq, r->list_kept, r->list_order, n, ce, dist);
    for (int i = 0; i < nq; i++) outs[i][2 * n] = evs[i]->full_ce;
    return st;
}

static void loo_reduce(struct run *r, int q, const double *out) {
    (void)q;
    int n = r->g.n;
    for (int i = 0; i < 2 * n; i++) r->loo_ce[i] += out[i]; /* loo_ce, loo_dist are consecutive */
    r->base_sum[FAM_LOO] += out[2 * n];
}

dp_status dp_metrics_loo_run(struct run *r) {
    const struct dp_game *g = &r->g;
    int n = g->n;
    uint8_t *kept = dp_malloc((size_t)n * g->n_mu);
    int64_t *order = dp_malloc((size_t)n * sizeof *order);
    uint64_t *set = dp_calloc((size_t)g->nw, 8);
    dp_status st = kept && order && set ? DP_OK : DP_ERR_NOMEM;
    for (int i = 0; !st && i < n; i++) {
        memset(set, 0, (size_t)g->nw * 8);
        for (int j = 0; j < n; j++)
            if (j != i) dp_coalition_bit_set(set, j);
        dp_coalition_kept(g, set, kept + (size_t)i * g->n_mu);
    }
    if (!st) st = dp_coalition_sort(kept, g->n_mu, n, order);
    r->list_kept = kept;
    r->list_order = order;
    r->list_n = n;
    double t0 = dp_now(), c0 = dp_cpu_now();
    if (!st) st = dp_metrics_for_batches(r, FAM_LOO, 2 * (size_t)n + 1, loo_seq, loo_batch, loo_reduce, "leave-one-out");
    free(kept);
    free(order);
    free(set);
    return st ? st : dp_metrics_family_done(r, FAM_LOO, t0, c0);
}
