/*
 * metrics_shapley: Shapley values over the coalition cache (METHODS.md
 * section 4). Exact values enumerate all 2^n coalitions; sampled ones let an
 * estimator of shapley.h ask its coalitions in batches. Either way a batch
 * of coalitions the cache lacks becomes pending entries, evaluated over
 * every sequence in prefix-reuse order (sums per entry), then divided into
 * means; a checkpoint taken in the middle of a batch resumes it.
 */
#include "metrics_run.h"

#include "shapley.h"

#include <stdlib.h>
#include <string.h>

/* ---- Shapley ---- */

static dp_status pending_seq(struct run *r, struct worker *w, int q, double *out) {
    dp_status st = dp_coalition_eval_base(&w->ev, seq_ids(r, q));
    if (!st) st = dp_coalition_eval_list(&w->ev, r->list_kept, r->list_order, r->list_n, out, out + r->list_n);
    return st;
}

static void pending_reduce(struct run *r, int q, const double *out) {
    (void)q;
    for (int64_t j = 0; j < r->list_n; j++) {
        r->cache.ce[r->list_entry[j]] += out[j];
        r->cache.dist[r->list_entry[j]] += out[r->list_n + j];
    }
}

/*
 * Evaluate the pending cache entries (listed in `pend`) over every sequence,
 * from r->next_seq (a resumed batch) on; then they are done and hold means.
 */
static dp_status eval_pending(struct run *r, const int64_t *pend, int64_t C) {
    const struct dp_game *g = &r->g;
    struct dp_coalition_cache *c = &r->cache;
    uint8_t *kept = dp_malloc((size_t)C * g->n_mu);
    int64_t *order = dp_malloc((size_t)C * sizeof *order);
    dp_status st = kept && order ? DP_OK : DP_ERR_NOMEM;
    for (int64_t j = 0; !st && j < C; j++) dp_coalition_kept(g, c->keys + pend[j] * c->nw, kept + j * g->n_mu);
    if (!st) st = dp_coalition_sort(kept, g->n_mu, C, order);
    r->list_kept = kept;
    r->list_order = order;
    r->list_entry = pend;
    r->list_n = C;
    if (!st) st = dp_metrics_for_sequences(r, FAM_SHAPLEY, 2 * (size_t)C, pending_seq, pending_reduce, "shapley coalitions");
    if (!st) {
        for (int64_t j = 0; j < C; j++) {
            c->ce[pend[j]] /= r->ch->n_seqs;
            c->dist[pend[j]] /= r->ch->n_seqs;
            c->done[pend[j]] = 1;
        }
        r->next_seq = 0;
    }
    free(kept);
    free(order);
    return st;
}

/*
 * Collect the coalitions of `sets` (C bit sets) that the cache lacks, as
 * pending entries (deduplicated); then evaluate them. A resumed batch is
 * recognised by its pending entries being exactly the cache's unfinished
 * ones, whose partial sums then continue from r->next_seq.
 */
static dp_status need(struct run *r, const uint64_t *sets, int64_t C) {
    struct dp_coalition_cache *c = &r->cache;
    int64_t unfinished = 0, np = 0;
    for (int64_t e = 0; e < c->n; e++) unfinished += !c->done[e];
    int64_t *pend = dp_malloc((size_t)(C ? C : 1) * sizeof *pend);
    uint8_t *listed = dp_calloc((size_t)(c->n + C + 1), 1); /* by entry: already in pend */
    dp_status st = pend && listed ? DP_OK : DP_ERR_NOMEM;
    bool resumed = true;
    for (int64_t j = 0; !st && j < C; j++) {
        const uint64_t *key = sets + j * c->nw;
        int64_t e = dp_coalition_cache_find(c, key);
        if (e >= 0 && (c->done[e] || listed[e])) continue;
        if (e < 0) {
            resumed = false;
            st = dp_coalition_cache_add(c, key, &e);
            if (st) break;
        }
        listed[e] = 1;
        pend[np++] = e;
    }
    if (!st && np) {
        if (!resumed || np != unfinished) { /* a fresh batch: sums from zero */
            for (int64_t j = 0; j < np; j++) c->ce[pend[j]] = c->dist[pend[j]] = 0;
            r->next_seq = 0;
        }
        st = eval_pending(r, pend, np);
    }
    free(pend);
    free(listed);
    return st;
}

/* D(S) of a coalition known to be in the cache: value 0 = CE, 1 = logit distance. */
static double cached_d(const struct dp_coalition_cache *c, const uint64_t *key, int value) {
    int64_t e = dp_coalition_cache_find(c, key);
    DP_ASSERT(e >= 0 && c->done[e]);
    return value ? c->dist[e] : c->ce[e];
}

static dp_status shapley_exact(struct run *r) {
    const struct dp_game *g = &r->g;
    int n = g->n;
    int64_t C = (int64_t)1 << n;
    uint64_t *sets = dp_calloc((size_t)C, (size_t)g->nw * 8);
    if (!sets) return DP_ERR_NOMEM;
    for (int64_t s = 0; s < C; s++) sets[s * g->nw] = (uint64_t)s;
    dp_status st = need(r, sets, C);
    /* phi_i = sum over S without i of |S|! (n-|S|-1)! / n! * (D(S) - D(S+i)) */
    double *w = dp_malloc((size_t)n * sizeof *w);
    for (int v = 0; !st && v < 2; v++) {
        int metric = v ? DP_METRIC_SHAPLEY_LOGIT : DP_METRIC_SHAPLEY_LOSS;
        if (!r->o->want[metric]) continue;
        if (!w) {
            st = DP_ERR_NOMEM;
            break;
        }
        for (int s = 0; s < n; s++) { /* 1 / (n * C(n-1, s)) */
            double binom = 1;
            for (int k = 1; k <= s; k++) binom = binom * (n - s + k - 1) / k;
            w[s] = 1.0 / (n * binom);
        }
        double *phi = r->res->influence[metric];
        for (int i = 0; i < n; i++) {
            double sum = 0;
            for (int64_t s = 0; s < C; s++) {
                if ((s >> i) & 1) continue;
                uint64_t with = (uint64_t)s | (1ull << i);
                int size = 0;
                for (uint64_t b = (uint64_t)s; b; b &= b - 1) size++;
                sum += w[size] *
                       (cached_d(&r->cache, (const uint64_t *)&sets[s * g->nw], v) - cached_d(&r->cache, &with, v));
            }
            phi[i] = sum;
            r->res->std_err[metric][i] = 0;
        }
        r->res->shapley[v].exact = true;
        r->res->shapley[v].converged = true;
        if (r->o->shapley_table) {
            double *t = dp_malloc((size_t)C * sizeof *t);
            if (!t) {
                st = DP_ERR_NOMEM;
                break;
            }
            for (int64_t c = 0; c < C; c++) t[c] = cached_d(&r->cache, (const uint64_t *)&sets[c * g->nw], v);
            r->res->shapley[v].table = t;
        }
    }
    free(w);
    free(sets);
    return st;
}

/* The coalition cache as the estimators' oracle (shapley.h). */
static dp_status oracle_need(void *ctx, const uint64_t *sets, int64_t C) { return need(ctx, sets, C); }

static double oracle_d(void *ctx, const uint64_t *set, int value) {
    const struct run *r = ctx;
    return cached_d(&r->cache, set, value);
}

static dp_status shapley_sampled(struct run *r) {
    const struct dp_score_opts *o = r->o;
    struct dp_shapley_game game = {r->g.n, r->g.nw, r, oracle_need, oracle_d};
    int est = o->shapley_estimator == DP_SHAPLEY_AUTO ? DP_SHAPLEY_HYBRID : o->shapley_estimator;
    struct dp_shapley_opts so = {.estimator = est, .samples = o->shapley_perms,
                                 .min_pairs = o->shapley_min_pairs, .tol = o->shapley_tol, .seed = o->seed,
                                 .all_perms = o->shapley_all_perms};
    struct dp_shapley_result sr;
    memset(&sr, 0, sizeof sr);
    for (int v = 0; v < 2; v++) {
        int metric = v ? DP_METRIC_SHAPLEY_LOGIT : DP_METRIC_SHAPLEY_LOSS;
        so.want[v] = o->want[metric];
        sr.phi[v] = r->res->influence[metric];
        sr.se[v] = r->res->std_err[metric];
    }
    dp_status st = dp_shapley_estimate(&game, &so, &sr);
    for (int v = 0; !st && v < 2; v++) {
        r->res->shapley[v].pairs = sr.pairs[v];
        r->res->shapley[v].samples = sr.samples[v];
        r->res->shapley[v].estimator = est;
        r->res->shapley[v].converged = sr.converged[v];
    }
    return st;
}

dp_status dp_metrics_shapley_run(struct run *r) {
    double t0 = dp_now(), c0 = dp_cpu_now();
    /* auto: enumerating every coalition is cheaper than a sampling budget that would ask as many */
    int n = r->g.n;
    bool exact = r->o->shapley_exact || (r->o->shapley_estimator == DP_SHAPLEY_AUTO && n <= 24 &&
                                         ((int64_t)1 << n) <= (int64_t)r->o->shapley_perms * (n + 1));
    dp_status st = exact ? shapley_exact(r) : shapley_sampled(r);
    if (st) return st;
    /* v(all) and v(none) */
    uint64_t *set = dp_calloc((size_t)r->g.nw, 8);
    if (!set) return DP_ERR_NOMEM;
    for (int v = 0; v < 2; v++) {
        r->res->shapley[v].v_none = -cached_d(&r->cache, set, v);
        for (int i = 0; i < r->g.n; i++) dp_coalition_bit_set(set, i);
        r->res->shapley[v].v_all = -cached_d(&r->cache, set, v);
        memset(set, 0, (size_t)r->g.nw * 8);
        r->res->shapley[v].coalitions = r->cache.n;
    }
    free(set);
    if (r->stage > FAM_SHAPLEY) return DP_OK; /* everything came from the checkpoint */
    return dp_metrics_family_done(r, FAM_SHAPLEY, t0, c0);
}
