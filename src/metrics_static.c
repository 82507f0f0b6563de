/*
 * metrics_static: the static metrics cosine, rel_l1, rel_l2 and angular
 * (METHODS.md section 3) from one observed pass of the base model per
 * sequence (see metrics.h). The observer sees every sublayer's input x and
 * output y: per token it adds cos(x, y), |y - x|_1 / |x|_1 and
 * |y - x|_2 / |x|_2 for the sublayer and, at an FFN, for its whole block
 * (from the stream entering the block); the stream entering each block at
 * the last position gives the angular distance of every span of blocks.
 */
#include "metrics_run.h"

#include <math.h>
#include <string.h>

/* ---- static metrics: one observed pass of the base model ---- */

static void tok_stats(const float *x, const float *y, int dim, double *c, double *r1, double *r2) {
    double xy = 0, xx = 0, yy = 0, d1 = 0, x1 = 0, d2 = 0;
    for (int i = 0; i < dim; i++) {
        double a = x[i], b = y[i], d = b - a;
        xy += a * b;
        xx += a * a;
        yy += b * b;
        d1 += fabs(d);
        x1 += fabs(a);
        d2 += d * d;
    }
    *c = xx > 0 && yy > 0 ? xy / sqrt(xx * yy) : (xx == yy ? 1.0 : 0.0);
    *r1 = x1 > 0 ? d1 / x1 : (d1 > 0 ? INFINITY : 0.0);
    *r2 = xx > 0 ? sqrt(d2) / sqrt(xx) : (d2 > 0 ? INFINITY : 0.0);
}

static void static_observe(void *ctx, int unit, const float *x, const float *y, int n, int dim, int pos0) {
    struct static_obs *so = ctx;
    int l = unit / 2, blk = so->n_mu + l;
    bool last = pos0 + n == so->ctx;
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * dim, *yt = y + (size_t)t * dim;
        double c, r1, r2;
        tok_stats(xt, yt, dim, &c, &r1, &r2);
        so->cos[unit] += c;
        so->l1[unit] += r1;
        so->l2[unit] += r2;
        if (unit & 1) {
            tok_stats(so->block_in + (size_t)(pos0 + t) * dim, yt, dim, &c, &r1, &r2);
            so->cos[blk] += c;
            so->l1[blk] += r1;
            so->l2[blk] += r2;
        }
    }
    if (!(unit & 1)) {
        memcpy(so->block_in + (size_t)pos0 * dim, x, (size_t)n * dim * sizeof *x);
        if (last) memcpy(so->h_last + (size_t)l * dim, x + (size_t)(n - 1) * dim, (size_t)dim * sizeof *x);
    } else if (last && l == so->L - 1) {
        memcpy(so->h_last + (size_t)so->L * dim, y + (size_t)(n - 1) * dim, (size_t)dim * sizeof *y);
    }
}

static double angle(const float *a, const float *b, int dim) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < dim; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    double c = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb ? 1.0 : 0.0);
    if (c > 1) c = 1;
    if (c < -1) c = -1;
    return acos(c) / M_PI;
}

/* ---- static metrics ---- */

static dp_status static_seq(struct run *r, struct worker *w, int q, double *out) {
    const struct dp_game *g = &r->g;
    struct static_obs *so = &w->so;
    int ctx = r->ch->ctx, dim = so->dim, n_su = g->n_mu + g->L, np = g->n_present;
    memset(so->cos, 0, (size_t)n_su * 3 * sizeof(double));
    struct dp_coalition_hooks hc = {r->hooks, static_observe, so};
    struct dp_hooks h = {.ctx = &hc, .observe = dp_coalition_hook_observe, .replace = dp_coalition_hook_replace};
    dp_session_reset(w->session);
    dp_status st = dp_session_forward_hooked(w->session, w->ev.pool, seq_ids(r, q), ctx, NULL, DP_LOGITS_NONE, &h);
    if (st) return st;
    int kept = dp_coalition_count_kept(g->base, 0, g->n_mu);
    w->ev.cost.passes++;
    w->ev.cost.unit_evals += kept;
    w->ev.cost.naive_unit_evals += kept;
    for (int u = 0; u < 3 * n_su; u++) out[u] = so->cos[u] / ctx; /* cos, l1, l2 are consecutive */
    /* spans of n present blocks: from the stream entering the first to the one leaving the last */
    for (int n = 1; n <= np; n++)
        for (int j = 0; j + n <= np; j++)
            out[3 * n_su + span_index(np, n, j)] = angle(so->h_last + (size_t)g->present[j] * dim,
                                                         so->h_last + (size_t)(g->present[j + n - 1] + 1) * dim, dim);
    return DP_OK;
}

static void static_reduce(struct run *r, int q, const double *out) {
    (void)q;
    size_t n = 3 * (size_t)(r->g.n_mu + r->g.L) + (size_t)r->n_spans_all;
    for (size_t i = 0; i < n; i++) r->st_cos[i] += out[i]; /* st_cos, st_l1, st_l2, st_ang are consecutive */
}

dp_status dp_metrics_static_run(struct run *r) {
    const struct dp_game *g = &r->g;
    struct dp_mask mask;
    dp_coalition_mask(g, g->base, &mask);
    dp_status st = DP_OK;
    for (int i = 0; !st && i < r->n_workers; i++) st = dp_session_new(r->m, &mask, r->ch->ctx, &r->w[i].session);
    double t0 = dp_now(), c0 = dp_cpu_now();
    if (!st)
        st = dp_metrics_for_sequences(r, FAM_STATIC, 3 * (size_t)(g->n_mu + g->L) + (size_t)r->n_spans_all, static_seq,
                           static_reduce, "static metrics");
    for (int i = 0; i < r->n_workers; i++) {
        dp_session_free(r->w[i].session);
        r->w[i].session = NULL;
    }
    return st ? st : dp_metrics_family_done(r, FAM_STATIC, t0, c0);
}
