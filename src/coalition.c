/*
 * coalition: players, coalitions, the coalition cache and the evaluator with
 * prefix reuse (see coalition.h; the scoring design is in metrics.h).
 *
 * The cache is open addressing over the bit sets (linear probing, a power
 * of two of slots, at most half full); entries keep their insertion order,
 * which is what a checkpoint stores. The evaluator's passes are ordinary
 * hooked forward passes of a fresh session under the coalition's mask; the
 * observer of a pass with reuse copies the stream entering every sublayer
 * after the start one into `stack`, and a pass from sublayer k starts from
 * stack[k].
 */
#include "coalition.h"

#include "eval.h"
#include "profile.h"
#include "rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- players and coalitions ---- */

dp_status dp_coalition_game_init(const struct dp_model *m, const struct dp_mask *base, enum dp_unit_kind kind,
                                 struct dp_game *g) {
    int L = m->cfg.n_layers;
    g->L = L;
    g->n_mu = 2 * L;
    g->base = dp_calloc((size_t)g->n_mu, 1);
    g->player_of = dp_malloc((size_t)g->n_mu * sizeof *g->player_of);
    g->block_of = dp_malloc((size_t)g->n_mu * sizeof *g->block_of);
    g->present = dp_malloc((size_t)L * sizeof *g->present);
    if (!g->base || !g->player_of || !g->block_of || !g->present) return DP_ERR_NOMEM;
    if (base->n_layers != L)
        return dp_fail(DP_ERR_ARG, "the mask has %d blocks, the model %d", base->n_layers, L);
    for (int l = 0; l < L; l++) {
        g->base[2 * l] = base->attn[l] && m->layers[l].has_attn;
        g->base[2 * l + 1] = base->ffn[l] && m->layers[l].has_ffn;
        if (g->base[2 * l] || g->base[2 * l + 1]) g->present[g->n_present++] = l;
    }
    g->n = 0;
    for (int u = 0; u < g->n_mu; u++) {
        g->player_of[u] = -1;
        if (!g->base[u]) continue;
        if (kind == DP_UNITS_SUBLAYER || !(u & 1) || !g->base[u - 1]) g->block_of[g->n++] = u / 2;
        g->player_of[u] = g->n - 1;
    }
    if (g->n == 0) return dp_fail(DP_ERR_ARG, "the mask removes every unit: nothing to score");
    g->nw = (g->n + 63) / 64;
    return DP_OK;
}

void dp_coalition_game_free(struct dp_game *g) {
    free(g->base);
    free(g->player_of);
    free(g->block_of);
    free(g->present);
}

void dp_coalition_kept(const struct dp_game *g, const uint64_t *set, uint8_t *kept) {
    for (int u = 0; u < g->n_mu; u++)
        kept[u] = g->base[u] && g->player_of[u] >= 0 && dp_coalition_bit_get(set, g->player_of[u]);
}

void dp_coalition_mask(const struct dp_game *g, const uint8_t *kept, struct dp_mask *mask) {
    memset(mask, 0, sizeof *mask);
    mask->n_layers = g->L;
    for (int l = 0; l < g->L; l++) {
        mask->attn[l] = kept[2 * l];
        mask->ffn[l] = kept[2 * l + 1];
    }
}

/* ---- the Shapley coalition cache: bit set -> summed values ---- */

static uint64_t key_hash(const uint64_t *k, int nw) {
    uint64_t h = 0x84222325CBF29CE4ull;
    for (int i = 0; i < nw; i++) h = dp_mix64(h ^ k[i]);
    return h;
}

int64_t dp_coalition_cache_find(const struct dp_coalition_cache *c, const uint64_t *key) {
    if (!c->cap) return -1;
    for (int64_t i = (int64_t)(key_hash(key, c->nw) & (uint64_t)(c->cap - 1));; i = (i + 1) & (c->cap - 1)) {
        int64_t e = c->slot[i];
        if (e < 0) return -1;
        if (!memcmp(c->keys + e * c->nw, key, (size_t)c->nw * 8)) return e;
    }
}

static dp_status cache_rehash(struct dp_coalition_cache *c, int64_t cap) {
    int64_t *slot = dp_malloc((size_t)cap * sizeof *slot);
    if (!slot) return DP_ERR_NOMEM;
    for (int64_t i = 0; i < cap; i++) slot[i] = -1;
    for (int64_t e = 0; e < c->n; e++) {
        int64_t i = (int64_t)(key_hash(c->keys + e * c->nw, c->nw) & (uint64_t)(cap - 1));
        while (slot[i] >= 0) i = (i + 1) & (cap - 1);
        slot[i] = e;
    }
    free(c->slot);
    c->slot = slot;
    c->cap = cap;
    return DP_OK;
}

/* Add a new entry (not done, sums zero); its index in *e. */
dp_status dp_coalition_cache_add(struct dp_coalition_cache *c, const uint64_t *key, int64_t *e) {
    if (c->n == c->cap_e) {
        int64_t cap = c->cap_e ? 2 * c->cap_e : 256;
        uint64_t *k = realloc(c->keys, (size_t)cap * c->nw * 8);
        if (k) c->keys = k;
        double *a = realloc(c->ce, (size_t)cap * sizeof *a);
        if (a) c->ce = a;
        double *b = realloc(c->dist, (size_t)cap * sizeof *b);
        if (b) c->dist = b;
        uint8_t *d = realloc(c->done, (size_t)cap);
        if (d) c->done = d;
        if (!k || !a || !b || !d) return dp_fail(DP_ERR_NOMEM, "out of memory for %lld coalitions", (long long)cap);
        c->cap_e = cap;
    }
    if (2 * (c->n + 1) > c->cap) {
        dp_status st = cache_rehash(c, c->cap ? 2 * c->cap : 1024);
        if (st) return st;
    }
    int64_t idx = c->n++;
    memcpy(c->keys + idx * c->nw, key, (size_t)c->nw * 8);
    c->ce[idx] = c->dist[idx] = 0;
    c->done[idx] = 0;
    int64_t i = (int64_t)(key_hash(key, c->nw) & (uint64_t)(c->cap - 1));
    while (c->slot[i] >= 0) i = (i + 1) & (c->cap - 1);
    c->slot[i] = idx;
    *e = idx;
    return DP_OK;
}

void dp_coalition_cache_free(struct dp_coalition_cache *c) {
    free(c->keys);
    free(c->ce);
    free(c->dist);
    free(c->done);
    free(c->slot);
    memset(c, 0, sizeof *c);
}

/* ---- the evaluator: passes of one sequence with prefix reuse ---- */

bool dp_coalition_hook_replace(void *ctx, int unit, const float *x, float *delta, int n, int dim, int pos0) {
    const struct dp_coalition_hooks *h = ctx;
    return h->user && h->user->replace && h->user->replace(h->user->ctx, unit, x, delta, n, dim, pos0);
}

void dp_coalition_hook_observe(void *ctx, int unit, const float *x, const float *y, int n, int dim, int pos0) {
    const struct dp_coalition_hooks *h = ctx;
    h->observe(h->ctx, unit, x, y, n, dim, pos0);
}

/* Observer of adaptive passes: keep the stream entering every sublayer after the start one. */
static void snap(void *ctx, int unit, const float *x, const float *y, int n, int dim, int pos0) {
    struct dp_evaluator *ev = ctx;
    (void)y;
    if (unit > ev->start || ev->start == 0)
        memcpy(ev->stack + ((size_t)unit * ev->ctx + pos0) * dim, x, (size_t)n * dim * sizeof *x);
}

int dp_coalition_count_kept(const uint8_t *kept, int from, int to) {
    int k = 0;
    for (int u = from; u < to; u++) k += kept[u];
    return k;
}

/*
 * One pass of the current sequence under `kept`, from sublayer `start`
 * (0: the embedding; else from stack[start]), logits of every position.
 */
static dp_status run_pass(struct dp_evaluator *ev, const uint8_t *kept, int start, float *logits) {
    const struct dp_game *g = ev->g;
    struct dp_mask mask;
    dp_coalition_mask(g, kept, &mask);
    struct dp_session *s;
    dp_status st = dp_session_new(ev->m, &mask, ev->ctx, &s);
    if (st) return st;
    ev->start = start;
    struct dp_coalition_hooks hc = {ev->user, snap, ev};
    struct dp_hooks h = {.ctx = &hc, .observe = ev->reuse ? dp_coalition_hook_observe : NULL, .replace = dp_coalition_hook_replace,
                         .start_unit = start, .start_x = start ? ev->stack + (size_t)start * ev->ctx * ev->dim : NULL};
    st = dp_session_forward_hooked(s, ev->pool, ev->ids, ev->ctx, logits, DP_LOGITS_ALL, &h);
    dp_session_free(s);
    ev->cost.passes++;
    ev->cost.unit_evals += dp_coalition_count_kept(kept, start, g->n_mu);
    ev->cost.naive_unit_evals += dp_coalition_count_kept(kept, 0, g->n_mu);
    return st;
}

/* Mean next-token cross-entropy over the ctx-1 predictions. */
static double mean_ce(const float *logits, const int *ids, int ctx, int V) {
    double s = 0;
    for (int t = 0; t + 1 < ctx; t++) s -= dp_log_softmax_at(logits + (size_t)t * V, V, ids[t + 1]);
    return s / (ctx - 1);
}

/* Mean over positions 0..ctx-2 of the L2 distance between two logit rows. */
static double mean_dist(const float *a, const float *b, int ctx, int V) {
    double t0 = dp_profile_begin();
    double s = 0;
    for (int t = 0; t + 1 < ctx; t++) {
        double d2 = 0;
        const float *x = a + (size_t)t * V, *y = b + (size_t)t * V;
        for (int i = 0; i < V; i++) {
            double d = (double)x[i] - (double)y[i];
            d2 += d * d;
        }
        s += sqrt(d2);
    }
    dp_profile_end(t0, DP_PROF_LOSS, 3.0 * (ctx - 1) * (double)V, 0);
    return s / (ctx - 1);
}

/* The base model on sequence `seq`: its logits, CE, and (with reuse) every sublayer's input. */
dp_status dp_coalition_eval_base(struct dp_evaluator *ev, const int *ids) {
    ev->ids = ids;
    dp_status st = run_pass(ev, ev->g->base, 0, ev->full);
    if (st) return st;
    memcpy(ev->path, ev->g->base, (size_t)ev->g->n_mu);
    ev->full_ce = ev->path_ce = mean_ce(ev->full, ids, ev->ctx, ev->V);
    ev->path_dist = 0;
    return DP_OK;
}

/* One coalition on the current sequence, starting where it departs from the previous pass. */
static dp_status ev_coalition(struct dp_evaluator *ev, const uint8_t *kept, double *ce, double *dist) {
    const struct dp_game *g = ev->g;
    if (!memcmp(kept, g->base, (size_t)g->n_mu)) {
        *ce = ev->full_ce;
        *dist = 0;
        return DP_OK;
    }
    int k = 0;
    while (k < g->n_mu && kept[k] == ev->path[k]) k++;
    if (k == g->n_mu) {
        *ce = ev->path_ce;
        *dist = ev->path_dist;
        return DP_OK;
    }
    dp_status st = run_pass(ev, kept, ev->reuse ? k : 0, ev->logits);
    if (st) return st;
    memcpy(ev->path, kept, (size_t)g->n_mu);
    *ce = ev->path_ce = mean_ce(ev->logits, ev->ids, ev->ctx, ev->V);
    *dist = ev->path_dist = mean_dist(ev->full, ev->logits, ev->ctx, ev->V);
    return DP_OK;
}

/*
 * Sort coalition indices so that kept flags (rows of `kept`, n_mu bytes) are
 * in descending lexicographic order: every coalition follows the one sharing
 * its longest prefix. A stable bottom-up merge sort.
 */
dp_status dp_coalition_sort(const uint8_t *kept, int n_mu, int64_t C, int64_t *order) {
    int64_t *tmp = dp_malloc((size_t)(C ? C : 1) * sizeof *tmp);
    if (!tmp) return DP_ERR_NOMEM;
    for (int64_t i = 0; i < C; i++) order[i] = i;
    for (int64_t w = 1; w < C; w *= 2) {
        for (int64_t lo = 0; lo < C; lo += 2 * w) {
            int64_t mid = lo + w < C ? lo + w : C, hi = lo + 2 * w < C ? lo + 2 * w : C, a = lo, b = mid, o = lo;
            while (a < mid && b < hi)
                tmp[o++] = memcmp(kept + order[b] * n_mu, kept + order[a] * n_mu, (size_t)n_mu) > 0 ? order[b++] : order[a++];
            while (a < mid) tmp[o++] = order[a++];
            while (b < hi) tmp[o++] = order[b++];
        }
        memcpy(order, tmp, (size_t)C * sizeof *order);
    }
    free(tmp);
    return DP_OK;
}

/* Evaluate C coalitions on the current sequence in `order`. */
dp_status dp_coalition_eval_list(struct dp_evaluator *ev, const uint8_t *kept, const int64_t *order, int64_t C,
                                 double *ce, double *dist) {
    for (int64_t j = 0; j < C; j++) {
        int64_t c = order[j];
        dp_status st = ev_coalition(ev, kept + c * ev->g->n_mu, &ce[c], &dist[c]);
        if (st) return st;
    }
    return DP_OK;
}

/* ---- several sequences in lockstep: one weight pass per coalition for all ---- */

/* run_pass for evaluators evs[0..B) on their own sequences, in one batched forward pass. */
static dp_status run_pass_multi(struct dp_evaluator *const *evs, int B, const uint8_t *kept, int start, bool base) {
    const struct dp_game *g = evs[0]->g;
    struct dp_mask mask;
    dp_coalition_mask(g, kept, &mask);
    struct dp_session *ss[DP_MULTI_MAX] = {NULL};
    struct dp_coalition_hooks hc[DP_MULTI_MAX];
    struct dp_hooks h[DP_MULTI_MAX];
    const struct dp_hooks *hp[DP_MULTI_MAX];
    const int *ids[DP_MULTI_MAX];
    float *lg[DP_MULTI_MAX];
    dp_status st = DP_OK;
    for (int i = 0; !st && i < B; i++) {
        struct dp_evaluator *ev = evs[i];
        st = dp_session_new(ev->m, &mask, ev->ctx, &ss[i]);
        ev->start = start;
        hc[i] = (struct dp_coalition_hooks){ev->user, snap, ev};
        h[i] = (struct dp_hooks){.ctx = &hc[i], .observe = ev->reuse ? dp_coalition_hook_observe : NULL,
                                 .replace = dp_coalition_hook_replace, .start_unit = start,
                                 .start_x = start ? ev->stack + (size_t)start * ev->ctx * ev->dim : NULL};
        hp[i] = &h[i];
        ids[i] = ev->ids;
        lg[i] = base ? ev->full : ev->logits;
    }
    if (!st) st = dp_session_forward_multi(ss, B, evs[0]->pool, ids, evs[0]->ctx, lg, hp);
    for (int i = 0; i < B; i++) {
        dp_session_free(ss[i]);
        evs[i]->cost.passes++;
        evs[i]->cost.unit_evals += dp_coalition_count_kept(kept, start, g->n_mu);
        evs[i]->cost.naive_unit_evals += dp_coalition_count_kept(kept, 0, g->n_mu);
    }
    return st;
}

dp_status dp_coalition_eval_base_multi(struct dp_evaluator *const *evs, int B, const int *const *ids) {
    if (B == 1) return dp_coalition_eval_base(evs[0], ids[0]);
    for (int i = 0; i < B; i++) evs[i]->ids = ids[i];
    dp_status st = run_pass_multi(evs, B, evs[0]->g->base, 0, true);
    for (int i = 0; !st && i < B; i++) {
        struct dp_evaluator *ev = evs[i];
        memcpy(ev->path, ev->g->base, (size_t)ev->g->n_mu);
        ev->full_ce = ev->path_ce = mean_ce(ev->full, ev->ids, ev->ctx, ev->V);
        ev->path_dist = 0;
    }
    return st;
}

dp_status dp_coalition_eval_list_multi(struct dp_evaluator *const *evs, int B, const uint8_t *kept,
                                       const int64_t *order, int64_t C, double *const *ce, double *const *dist) {
    if (B == 1) return dp_coalition_eval_list(evs[0], kept, order, C, ce[0], dist[0]);
    const struct dp_game *g = evs[0]->g;
    struct dp_evaluator *ev0 = evs[0];
    for (int64_t j = 0; j < C; j++) {
        int64_t c = order[j];
        const uint8_t *kc = kept + c * g->n_mu;
        /* the decisions of ev_coalition depend on the path alone, the same for every sequence in lockstep */
        if (!memcmp(kc, g->base, (size_t)g->n_mu)) {
            for (int i = 0; i < B; i++) ce[i][c] = evs[i]->full_ce, dist[i][c] = 0;
            continue;
        }
        int k = 0;
        while (k < g->n_mu && kc[k] == ev0->path[k]) k++;
        if (k == g->n_mu) {
            for (int i = 0; i < B; i++) ce[i][c] = evs[i]->path_ce, dist[i][c] = evs[i]->path_dist;
            continue;
        }
        for (int i = 1; i < B; i++) DP_ASSERT(!memcmp(evs[i]->path, ev0->path, (size_t)g->n_mu));
        dp_status st = run_pass_multi(evs, B, kc, ev0->reuse ? k : 0, false);
        if (st) return st;
        for (int i = 0; i < B; i++) {
            struct dp_evaluator *ev = evs[i];
            memcpy(ev->path, kc, (size_t)g->n_mu);
            ce[i][c] = ev->path_ce = mean_ce(ev->logits, ev->ids, ev->ctx, ev->V);
            dist[i][c] = ev->path_dist = mean_dist(ev->full, ev->logits, ev->ctx, ev->V);
        }
    }
    return DP_OK;
}
