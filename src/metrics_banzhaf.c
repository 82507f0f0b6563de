/*
 * metrics_banzhaf: Banzhaf values (METHODS.md section 4). Each sequence
 * draws `banzhaf_subsets` coalitions of floor(n/2) players, uniformly
 * without replacement, from its own seeded stream (rng.h, DP_RNG_BANZHAF,
 * index = sequence), so the draws never depend on the thread count. Every
 * (coalition, player) pair adds the coalition's value to the player's
 * "member" or "lacking" sums; the influence is the difference of the two
 * means, with the standard error of that difference (metrics.c).
 */
#include "metrics_run.h"

#include "rng.h"

#include <string.h>

/* ---- Banzhaf ---- */

/* out: CE (k), logit distance (k), base CE, membership (k, n) as 0/1. */
static dp_status banzhaf_seq(struct run *r, struct worker *w, int q, double *out) {
    const struct dp_game *g = &r->g;
    int n = g->n, k = r->o->banzhaf_subsets, half = n / 2;
    double *in = out + 2 * k + 1;
    /* k subsets of floor(n/2) players, uniform without replacement: a partial Fisher-Yates shuffle */
    struct dp_rng rng = dp_rng_seeded(r->o->seed, DP_RNG_BANZHAF, (uint64_t)q);
    for (int j = 0; j < k; j++) {
        for (int i = 0; i < n; i++) w->perm[i] = i;
        memset(w->set, 0, (size_t)g->nw * 8);
        for (int i = 0; i < n; i++) in[(size_t)j * n + i] = 0;
        for (int i = 0; i < half; i++) {
            int s = i + (int)dp_rng_below(&rng, (uint64_t)(n - i)), tmp = w->perm[i];
            w->perm[i] = w->perm[s];
            w->perm[s] = tmp;
            dp_coalition_bit_set(w->set, w->perm[i]);
            in[(size_t)j * n + w->perm[i]] = 1;
        }
        dp_coalition_kept(g, w->set, w->kept + (size_t)j * g->n_mu);
    }
    dp_status st = dp_coalition_sort(w->kept, g->n_mu, k, w->order);
    if (!st) st = dp_coalition_eval_base(&w->ev, seq_ids(r, q));
    if (!st) st = dp_coalition_eval_list(&w->ev, w->kept, w->order, k, out, out + k);
    out[2 * k] = w->ev.full_ce;
    return st;
}

static void banzhaf_reduce(struct run *r, int q, const double *out) {
    (void)q;
    int n = r->g.n, k = r->o->banzhaf_subsets;
    const double *in = out + 2 * k + 1;
    for (int j = 0; j < k; j++)
        for (int v = 0; v < 2; v++) {
            double x = out[(size_t)v * k + j];
            for (int i = 0; i < n; i++) {
                int lacking = in[(size_t)j * n + i] == 0;
                bz_stat(r, v, lacking, 0)[i] += x;
                bz_stat(r, v, lacking, 1)[i] += x * x;
                bz_stat(r, v, lacking, 2)[i] += 1;
            }
        }
    r->base_sum[FAM_BANZHAF] += out[2 * k];
}

dp_status dp_metrics_banzhaf_run(struct run *r) {
    int n = r->g.n, k = r->o->banzhaf_subsets;
    double t0 = dp_now(), c0 = dp_cpu_now();
    dp_status st = dp_metrics_for_sequences(r, FAM_BANZHAF, 2 * (size_t)k + 1 + (size_t)k * n, banzhaf_seq, banzhaf_reduce,
                                 "banzhaf");
    return st ? st : dp_metrics_family_done(r, FAM_BANZHAF, t0, c0);
}
