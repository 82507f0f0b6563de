/*
 * recover_linear: the recovery kinds `linear` and `linear-cos`, a linear map
 * folded into a weight that stays (ReplaceMe-style; docs/recovery.md has the
 * method, recover.h the representation).
 *
 * A span is a maximal run of removed units (in unit order a0 f0 a1 f1 ...)
 * holding units of the recovery; its host is the last kept unit before it,
 * whose update m = W g (W the host's output matrix: ffn_down of an FFN,
 * attn_output of an attention) enters the span. With x the stream entering
 * the host, the span sees x + m and, in the full model, leaves x + m + r
 * (r: the span's update). The pruned model computes x + T m; T = I + B A is
 * fitted so that (T - I) m ~ r, and export writes T W in place of W.
 *
 *  - Statistics: one pass of the model with the recovery's units kept (the
 *    full model), an observer summing, in double, S_mm = sum m m^T,
 *    S_mr = sum m r^T, sum r and sum r^2 over every calibration token. The
 *    d x d products are split by rows over the pool's threads, each row
 *    summed in token order: the same bits for any thread count. Nothing is
 *    stored beyond O(d^2) per span.
 *  - linear (least squares, no intercept, ridge towards T = I):
 *        W = (S_mm + lambda tr(S_mm)/d I)^-1 S_mr     (Cholesky, double)
 *    full rank: A = W^T, B = I. Rank R < d: V = the top-R eigenvectors of
 *    W^T S_mm W (LAPACKE dsyevr), A = (W V)^T, B = V (reduced-rank
 *    regression, as lowrank:R). The rank for `linear` without :R is the
 *    rule rank_rule(): the full map when the calibration has at least
 *    LINEAR_EQ_PER_PARAM * d tokens, else the largest R whose R (2d - R)
 *    parameters get LINEAR_EQ_PER_PARAM of the N d equations each.
 *  - linear-cos: starts from the least-squares map and maximises the mean
 *    cosine between x + T m and the stream leaving the span by Adam (beta
 *    0.9/0.999, eps 1e-8, bias-corrected; opts' steps, lr, batch) on
 *    batches of calibration sequences drawn in a shuffled order from
 *    dp_rng_seeded(opts->seed, 'L', 0). Its step size is relative: lr times
 *    the root mean square of the least-squares A (and B), so one --lr suits
 *    any width. Each step runs the full model on its
 *    batch (one sequence's activations at a time) and sums the gradient in
 *    token order, so it too is thread-count independent.
 *  - explained variance: 1 - SSE/SST of (T - I) m against r from the
 *    statistics, SST centred (the span update's variance).
 *
 * Which removals a weight can absorb: a span after a kept unit folds into
 * that unit's output matrix, which must have no bias (a host with
 * attn_output.bias or ffn_down.bias is refused with one line); a span at
 * the start of the model (b0.., a0..) sees the embedding row itself, m = e,
 * and folds into token_embd (every row e becomes T e; a tied head then gets
 * the original embedding as output.weight).
 */
#include "recover.h"

#include "rng.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#ifndef DP_NO_LAPACKE
#include <lapacke.h>
void openblas_set_num_threads(int n);
#endif

#define LINEAR_EQ_PER_PARAM 16   /* equations (token x output) per free parameter of the map */

bool dp_recovery_is_linear(const struct dp_recovery *r) { return r && !strncmp(r->kind, "linear", 6); }

void dp_recovery_linear_delta(const struct dp_recovery *r, const struct dp_unit_recovery *u, const float *m, int n,
                              float *delta) {
    int d = r->dim, R = u->rank;
    double local[512], *am = R <= 512 ? local : malloc((size_t)R * sizeof *am);
    DP_ASSERT(am != NULL && u->A && u->B);
    for (int t = 0; t < n; t++) {
        const float *mr = m + (size_t)t * d;
        for (int k = 0; k < R; k++) {
            const float *a = u->A + (size_t)k * d;
            double s = 0;
            for (int i = 0; i < d; i++) s += (double)a[i] * mr[i];
            am[k] = s;
        }
        for (int j = 0; j < d; j++) {
            const float *b = u->B + (size_t)j * R;
            double s = 0;
            for (int k = 0; k < R; k++) s += (double)b[k] * am[k];
            delta[(size_t)t * d + j] = (float)s;
        }
    }
    if (am != local) free(am);
}

/* ---- spans ---- */

struct span {
    struct dp_unit_recovery *carrier;   /* the span's first unit: holds the map */
    int host, lo, hi;                   /* host unit; first and last unit numbers of the recovery's units */
    /* statistics */
    int64_t count;
    double *smm, *smr;                  /* (d, d) */
    double *sr, *srr;                   /* (d) */
    /* current batch */
    float *m, *xin;                     /* (cap, d) host update, stream entering the span */
    double *md, *rd;                    /* (cap, d) m and r in double */
    float *out;                         /* (cap, d) linear-cos: stream leaving the span */
    bool have_m, have_in;
};

static bool unit_kept(const struct dp_model *m, const struct dp_mask *mask, int u) {
    int l = u / 2;
    return u & 1 ? mask->ffn[l] && m->layers[l].has_ffn : mask->attn[l] && m->layers[l].has_attn;
}

static int first_unit(const struct dp_unit_recovery *u) { return 2 * u->layer + (u->kind == 'f'); }
static int last_unit(const struct dp_unit_recovery *u) { return 2 * u->layer + (u->kind != 'a'); }

static void unit_name(int u, char *buf, size_t cap) {
    if (u == DP_RECOVERY_HOST_EMBD) snprintf(buf, cap, "token_embd");
    else snprintf(buf, cap, "%c%d", u & 1 ? 'f' : 'a', u / 2);
}

/* Group r's units into spans (sp has room for r->n), each with its kept host. */
static dp_status make_spans(const struct dp_model *m, const struct dp_mask *mask, struct dp_recovery *r,
                            struct span *sp, int *n_spans) {
    int n = r->n, *ord = dp_malloc((size_t)n * sizeof *ord);
    if (!ord) return DP_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        int j = i;
        while (j > 0 && first_unit(&r->units[ord[j - 1]]) > first_unit(&r->units[i])) {
            ord[j] = ord[j - 1];
            j--;
        }
        ord[j] = i;
    }
    int ns = 0;
    dp_status st = DP_OK;
    for (int k = 0; k < n && !st; k++) {
        struct dp_unit_recovery *u = &r->units[ord[k]];
        bool joined = false;
        if (ns > 0) {
            joined = true;
            for (int s = sp[ns - 1].hi + 1; s < first_unit(u) && joined; s++) joined = !unit_kept(m, mask, s);
        }
        if (joined) {
            sp[ns - 1].hi = last_unit(u);
            continue;
        }
        struct span *p = &sp[ns++];
        memset(p, 0, sizeof *p);
        p->carrier = u;
        p->lo = first_unit(u);
        p->hi = last_unit(u);
        p->host = p->lo - 1;
        while (p->host >= 0 && !unit_kept(m, mask, p->host)) p->host--;
        char hn[16];
        if (p->host < 0) {
            p->host = DP_RECOVERY_HOST_EMBD; /* the stream entering the span is the embedding row */
            continue;
        }
        unit_name(p->host, hn, sizeof hn);
        const struct dp_layer *L = &m->layers[p->host / 2];
        if (p->host & 1 ? L->b_down.data != NULL : L->bo.data != NULL)
            st = dp_fail(DP_ERR_UNSUPPORTED, "unit %s: its host %s has an output bias (%s), which %s cannot fold",
                         u->unit, hn, p->host & 1 ? "ffn_down.bias" : "attn_output.bias", r->kind);
    }
    free(ord);
    *n_spans = ns;
    return st;
}

static void span_free(struct span *p) {
    free(p->smm);
    free(p->smr);
    free(p->sr);
    free(p->srr);
    free(p->m);
    free(p->xin);
    free(p->md);
    free(p->rd);
    free(p->out);
}

static dp_status span_alloc(struct span *p, int d, int cap, bool stats) {
    size_t dd = (size_t)d * d, cd = (size_t)cap * d;
    bool ok = (p->m = dp_malloc(cd * sizeof(float))) && (p->xin = dp_malloc(cd * sizeof(float))) &&
              (p->out = dp_malloc(cd * sizeof(float)));
    if (ok && stats)
        ok = (p->smm = dp_calloc(dd, sizeof(double))) && (p->smr = dp_calloc(dd, sizeof(double))) &&
             (p->sr = dp_calloc((size_t)d, sizeof(double))) && (p->srr = dp_calloc((size_t)d, sizeof(double))) &&
             (p->md = dp_malloc(cd * sizeof(double))) && (p->rd = dp_malloc(cd * sizeof(double)));
    return ok ? DP_OK : dp_fail(DP_ERR_NOMEM, "out of memory for the linear map of unit %s", p->carrier->unit);
}

/* ---- the statistics pass ---- */

struct pass {
    struct span *sp;
    int n_spans, d;
    bool stats;            /* accumulate S_mm, ...; else only capture (linear-cos) */
    struct dp_pool *pool;
    struct span *job;      /* span of the running cross-product job */
    int job_n;
};

/* S_mm[i][:] += m_t[i] m_t, S_mr[i][:] += m_t[i] r_t over the batch, rows i split over threads. */
static void cross_worker(void *ctx, int ith, int nth) {
    const struct pass *p = ctx;
    const struct span *s = p->job;
    int d = p->d;
    int64_t lo, hi;
    dp_pool_split(d, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        double *mm = s->smm + i * d, *mr = s->smr + i * d;
        for (int t = 0; t < p->job_n; t++) {
            const double *mt = s->md + (size_t)t * d, *rt = s->rd + (size_t)t * d;
            double a = mt[i];
            for (int k = 0; k < d; k++) {
                mm[k] += a * mt[k];
                mr[k] += a * rt[k];
            }
        }
    }
}

static void pass_observe(void *ctx, int unit, const float *x, const float *y, int n, int dim, int pos0) {
    struct pass *p = ctx;
    (void)pos0;
    DP_ASSERT(dim == p->d);
    size_t len = (size_t)n * dim;
    for (int k = 0; k < p->n_spans; k++) {
        struct span *s = &p->sp[k];
        if (unit == s->host) {
            for (size_t i = 0; i < len; i++) s->m[i] = y[i] - x[i];
            s->have_m = true;
        }
        if (unit == s->lo) {
            memcpy(s->xin, x, len * sizeof *x);
            s->have_in = true;
            if (s->host == DP_RECOVERY_HOST_EMBD) { /* m = the embedding row, as it enters the span */
                memcpy(s->m, x, len * sizeof *x);
                s->have_m = true;
            }
        }
        if (unit != s->hi) continue;
        DP_ASSERT(s->have_m && s->have_in);
        s->have_m = s->have_in = false;
        memcpy(s->out, y, len * sizeof *y);
        if (!p->stats) continue;
        for (size_t i = 0; i < len; i++) {
            double r = (double)y[i] - s->xin[i];
            s->md[i] = s->m[i];
            s->rd[i] = r;
            s->sr[i % dim] += r;
            s->srr[i % dim] += r * r;
        }
        s->count += n;
        p->job = s;
        p->job_n = n;
        dp_pool_run(p->pool, cross_worker, p);
    }
}

/* ---- the least-squares solution ---- */

/* Solve S X = Y in place (Y: d x d, S symmetric positive definite, both overwritten). Cholesky, double. */
static bool cholesky_solve(double *S, double *Y, int d) {
    for (int j = 0; j < d; j++) {
        double s = S[(size_t)j * d + j];
        for (int k = 0; k < j; k++) s -= S[(size_t)j * d + k] * S[(size_t)j * d + k];
        if (!(s > 0)) return false;
        double l = sqrt(s);
        S[(size_t)j * d + j] = l;
        for (int i = j + 1; i < d; i++) {
            double v = S[(size_t)i * d + j];
            for (int k = 0; k < j; k++) v -= S[(size_t)i * d + k] * S[(size_t)j * d + k];
            S[(size_t)i * d + j] = v / l;
        }
    }
    for (int c = 0; c < d; c++) { /* L z = y, then L^T x = z, column c of Y */
        for (int i = 0; i < d; i++) {
            double v = Y[(size_t)i * d + c];
            for (int k = 0; k < i; k++) v -= S[(size_t)i * d + k] * Y[(size_t)k * d + c];
            Y[(size_t)i * d + c] = v / S[(size_t)i * d + i];
        }
        for (int i = d - 1; i >= 0; i--) {
            double v = Y[(size_t)i * d + c];
            for (int k = i + 1; k < d; k++) v -= S[(size_t)k * d + i] * Y[(size_t)k * d + c];
            Y[(size_t)i * d + c] = v / S[(size_t)i * d + i];
        }
    }
    return true;
}

/* The rank the rule gives N tokens of width d (see the top of the file). */
static int rank_rule(int64_t N, int d) {
    if (N >= (int64_t)LINEAR_EQ_PER_PARAM * d) return d;
    int R = 1;
    while (R < d && (int64_t)LINEAR_EQ_PER_PARAM * (R + 1) * (2 * d - R - 1) <= N * d) R++;
    return R;
}

/* Rank-R directions of W (d x d): V (d x R, largest first) of W^T S W. */
static dp_status top_directions(const struct span *s, const double *w, int d, int R, double *v) {
#ifdef DP_NO_LAPACKE
    (void)w;
    (void)d;
    (void)v;
    return dp_fail(DP_ERR_UNSUPPORTED, "unit %s: a rank-%d linear map needs LAPACKE, which this build lacks "
                   "(install liblapacke-dev libopenblas-dev and rebuild)", s->carrier->unit, R);
#else
    size_t dd = (size_t)d * d;
    double *p = malloc(dd * sizeof *p), *f = malloc(dd * sizeof *f), *ev = malloc((size_t)d * sizeof *ev),
           *vv = malloc((size_t)d * R * sizeof *vv);
    lapack_int *sup = malloc((size_t)2 * d * sizeof *sup);
    dp_status st = DP_OK;
    if (!p || !f || !ev || !vv || !sup) st = DP_ERR_NOMEM;
    if (!st) {
        for (int i = 0; i < d; i++) /* p = S W */
            for (int j = 0; j < d; j++) {
                double a = 0;
                for (int k = 0; k < d; k++) a += s->smm[(size_t)i * d + k] * w[(size_t)k * d + j];
                p[(size_t)i * d + j] = a;
            }
        for (int i = 0; i < d; i++) /* f = W^T p */
            for (int j = 0; j < d; j++) {
                double a = 0;
                for (int k = 0; k < d; k++) a += w[(size_t)k * d + i] * p[(size_t)k * d + j];
                f[(size_t)i * d + j] = a;
            }
        openblas_set_num_threads(1);
        lapack_int found = 0;
        lapack_int info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'V', 'I', 'U', d, f, d, 0.0, 0.0, d - R + 1, d, 0.0,
                                         &found, ev, vv, R, sup);
        if (info != 0 || found != R)
            st = dp_fail(DP_ERR_ARG, "unit %s: eigen-decomposition failed (LAPACK dsyevr info %d)", s->carrier->unit,
                         (int)info);
        for (int k = 0; !st && k < R; k++) /* ascending: largest first */
            for (int j = 0; j < d; j++) v[(size_t)j * R + k] = vv[(size_t)j * R + (R - 1 - k)];
    }
    free(p);
    free(f);
    free(ev);
    free(vv);
    free(sup);
    return st;
#endif
}

/* Explained variance 1 - SSE/SST of delta = B A m against r, from the statistics. */
static double explained(const struct span *s, const struct dp_unit_recovery *u, int d) {
    int R = u->rank;
    double N = (double)s->count, sst = 0, srr = 0;
    for (int j = 0; j < d; j++) {
        sst += s->srr[j] - s->sr[j] * s->sr[j] / N;
        srr += s->srr[j];
    }
    /* M = (B A)^T as d x d: m -> delta is delta_j = sum_i M[i][j] m_i */
    double *M = malloc((size_t)d * d * sizeof *M);
    if (!M) return NAN;
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double a = 0;
            for (int k = 0; k < R; k++) a += (double)u->B[(size_t)j * R + k] * u->A[(size_t)k * d + i];
            M[(size_t)i * d + j] = a;
        }
    double cross = 0, quad = 0; /* tr(M^T S_mr), tr(M^T S_mm M) */
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) cross += M[(size_t)i * d + j] * s->smr[(size_t)i * d + j];
    for (int j = 0; j < d; j++)
        for (int i = 0; i < d; i++) {
            double a = 0;
            for (int k = 0; k < d; k++) a += s->smm[(size_t)i * d + k] * M[(size_t)k * d + j];
            quad += M[(size_t)i * d + j] * a;
        }
    free(M);
    double sse = srr - 2 * cross + quad;
    return sst > 0 ? 1.0 - sse / sst : NAN;
}

/* Least-squares map of span s with rank R (d: full) into its carrier. */
static dp_status fit_ls(struct span *s, int d, int R, double ridge) {
    struct dp_unit_recovery *u = s->carrier;
    size_t dd = (size_t)d * d;
    double *S = malloc(dd * sizeof *S), *W = malloc(dd * sizeof *W), *V = R < d ? malloc((size_t)d * R * sizeof *V) : NULL;
    dp_status st = S && W && (R == d || V) ? DP_OK : DP_ERR_NOMEM;
    if (!st) {
        memcpy(S, s->smm, dd * sizeof *S);
        memcpy(W, s->smr, dd * sizeof *W);
        double tr = 0;
        for (int i = 0; i < d; i++) tr += S[(size_t)i * d + i];
        for (int i = 0; i < d; i++) S[(size_t)i * d + i] += ridge * tr / d;
        if (!(tr > 0) || !cholesky_solve(S, W, d))
            st = dp_fail(DP_ERR_ARG, "unit %s: the least-squares system of its linear map is singular; raise --ridge",
                         u->unit);
    }
    if (!st && R < d) st = top_directions(s, W, d, R, V);
    if (!st) {
        u->rank = R;
        u->A = dp_calloc((size_t)R * d, sizeof(float));
        u->B = dp_calloc((size_t)R * d, sizeof(float));
        if (!u->A || !u->B) st = DP_ERR_NOMEM;
    }
    for (int k = 0; !st && k < R; k++) {
        for (int i = 0; i < d; i++) {
            double a = 0;
            if (R == d) a = W[(size_t)i * d + k];  /* A = W^T, B = I */
            else
                for (int j = 0; j < d; j++) a += W[(size_t)i * d + j] * V[(size_t)j * R + k];
            u->A[(size_t)k * d + i] = (float)a;
        }
        for (int j = 0; j < d; j++) u->B[(size_t)j * R + k] = R == d ? (float)(j == k) : (float)V[(size_t)j * R + k];
    }
    free(S);
    free(W);
    free(V);
    return st;
}

/* ---- linear-cos: Adam on the mean cosine ---- */

struct cos_span {
    double *gA, *gB;        /* (R, d), (d, R) gradient sums */
    double lrA, lrB;        /* Adam step sizes: lr times the rms of the least-squares A and B */
    float *mA, *vA, *mB, *vB;
    double *az, *g;         /* (cap, R), (cap, d) per token: A m and dLoss/dp */
};

struct cos_job {
    struct span *s;
    struct cos_span *c;
    int n, d, R;
    bool full;
};

/* Gradient sums of one span for n tokens: dB += g az^T, dA += (B^T g) m^T; rows split over threads. */
static void cos_worker(void *ctx, int ith, int nth) {
    const struct cos_job *j = ctx;
    int d = j->d, R = j->R;
    const struct dp_unit_recovery *u = j->s->carrier;
    int64_t lo, hi;
    dp_pool_split(R, ith, nth, &lo, &hi);
    for (int64_t k = lo; k < hi; k++) {
        double *ga = j->c->gA + k * d;
        for (int t = 0; t < j->n; t++) {
            const double *g = j->c->g + (size_t)t * d;
            double bg = 0;
            if (j->full) bg = g[k];
            else
                for (int q = 0; q < d; q++) bg += (double)u->B[(size_t)q * R + k] * g[q];
            const float *m = j->s->m + (size_t)t * d;
            for (int i = 0; i < d; i++) ga[i] += bg * m[i];
        }
    }
    if (j->full) return;
    dp_pool_split(d, ith, nth, &lo, &hi);
    for (int64_t q = lo; q < hi; q++)
        for (int t = 0; t < j->n; t++) {
            double g = j->c->g[(size_t)t * d + q];
            for (int k = 0; k < R; k++) j->c->gB[q * R + k] += g * j->c->az[(size_t)t * R + k];
        }
}

/* Cosine loss sum of one span's captured batch; fills az and g (scaled by `scale`). */
static double cos_batch(struct span *s, struct cos_span *c, int n, int d, double scale) {
    const struct dp_unit_recovery *u = s->carrier;
    int R = u->rank;
    double loss = 0;
    for (int t = 0; t < n; t++) {
        const float *m = s->m + (size_t)t * d, *x = s->xin + (size_t)t * d, *L = s->out + (size_t)t * d;
        double *az = c->az + (size_t)t * R, *g = c->g + (size_t)t * d;
        for (int k = 0; k < R; k++) {
            double a = 0;
            for (int i = 0; i < d; i++) a += (double)u->A[(size_t)k * d + i] * m[i];
            az[k] = a;
        }
        double pp = 0, ll = 0, pl = 0;
        for (int j = 0; j < d; j++) {
            double b = x[j];
            for (int k = 0; k < R; k++) b += (double)u->B[(size_t)j * R + k] * az[k];
            g[j] = b; /* p, overwritten by the gradient below */
            pp += b * b;
            ll += (double)L[j] * L[j];
            pl += b * L[j];
        }
        double np = sqrt(pp), nl = sqrt(ll), cs = np > 0 && nl > 0 ? pl / (np * nl) : 0;
        loss += 1 - cs;
        for (int j = 0; j < d; j++)
            g[j] = np > 0 && nl > 0 ? -scale * (L[j] / (np * nl) - cs * g[j] / pp) : 0;
    }
    return loss;
}

/* Root mean square of n values (the scale of Adam's steps for them). */
static double rms(const float *v, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)v[i] * v[i];
    return n ? sqrt(s / n) : 0;
}

static void adam_step(float *w, const double *g, float *m1, float *m2, size_t n, int step, double lr) {
    double c1 = 1 - pow(0.9, step), c2 = 1 - pow(0.999, step);
    for (size_t i = 0; i < n; i++) {
        double m = 0.9 * m1[i] + 0.1 * g[i], v = 0.999 * m2[i] + 0.001 * g[i] * g[i];
        m1[i] = (float)m;
        m2[i] = (float)v;
        w[i] -= (float)(lr * (m / c1) / (sqrt(v / c2) + 1e-8));
    }
}


static dp_status fit_cos(const struct dp_model *m, const struct dp_mask *base, struct span *sp, int ns,
                         const struct dp_chunks *calib, const struct dp_recover_opts *o, struct dp_pool *pool,
                         const char *kind) {
    int d = m->cfg.n_embd, cap = calib->ctx;
    struct cos_span *cs = dp_calloc((size_t)ns, sizeof *cs);
    int *perm = dp_malloc((size_t)calib->n_seqs * sizeof *perm);
    struct dp_session *sess = NULL;
    dp_status st = cs && perm ? dp_session_new(m, base, cap, &sess) : DP_ERR_NOMEM;
    for (int k = 0; k < ns && !st; k++) {
        size_t RA = (size_t)sp[k].carrier->rank * d;
        struct cos_span *c = &cs[k];
        if (!(c->gA = dp_malloc(RA * sizeof(double))) || !(c->gB = dp_malloc(RA * sizeof(double))) ||
            !(c->mA = dp_calloc(RA, sizeof(float))) || !(c->vA = dp_calloc(RA, sizeof(float))) ||
            !(c->mB = dp_calloc(RA, sizeof(float))) || !(c->vB = dp_calloc(RA, sizeof(float))) ||
            !(c->az = dp_malloc((size_t)cap * sp[k].carrier->rank * sizeof(double))) ||
            !(c->g = dp_malloc((size_t)cap * d * sizeof(double))))
            st = dp_fail(DP_ERR_NOMEM, "out of memory for %s", kind);
        if (!st) {
            c->lrA = o->lr * rms(sp[k].carrier->A, RA);
            c->lrB = o->lr * rms(sp[k].carrier->B, RA);
        }
    }
    struct pass p = {sp, ns, d, false, pool, NULL, 0};
    struct dp_hooks h = {.ctx = &p, .observe = pass_observe};
    struct dp_rng rng = dp_rng_seeded(o->seed, 'L', 0);
    for (int i = 0; perm && i < calib->n_seqs; i++) perm[i] = i;
    int next = calib->n_seqs;
    double scale = 1.0 / ((double)o->batch * cap), first = NAN, last = NAN;
    for (int step = 1; step <= o->steps && !st; step++) {
        for (int k = 0; k < ns; k++) {
            size_t RA = (size_t)sp[k].carrier->rank * d;
            memset(cs[k].gA, 0, RA * sizeof(double));
            memset(cs[k].gB, 0, RA * sizeof(double));
        }
        double loss = 0;
        for (int b = 0; b < o->batch && !st; b++) {
            if (next == calib->n_seqs) {
                for (int i = calib->n_seqs - 1; i > 0; i--) {
                    int j = (int)dp_rng_below(&rng, (uint64_t)i + 1), t = perm[i];
                    perm[i] = perm[j];
                    perm[j] = t;
                }
                next = 0;
            }
            dp_session_reset(sess);
            st = dp_session_forward_hooked(sess, pool, calib->ids + (size_t)perm[next++] * cap, cap, NULL,
                                           DP_LOGITS_NONE, &h);
            for (int k = 0; k < ns && !st; k++) {
                struct cos_job j = {&sp[k], &cs[k], cap, d, sp[k].carrier->rank, sp[k].carrier->rank == d};
                loss += cos_batch(&sp[k], &cs[k], cap, d, scale) * scale / ns;
                dp_pool_run(pool, cos_worker, &j);
            }
        }
        if (st) break;
        for (int k = 0; k < ns; k++) {
            struct dp_unit_recovery *u = sp[k].carrier;
            size_t RA = (size_t)u->rank * d;
            adam_step(u->A, cs[k].gA, cs[k].mA, cs[k].vA, RA, step, cs[k].lrA);
            if (u->rank < d) adam_step(u->B, cs[k].gB, cs[k].mB, cs[k].vB, RA, step, cs[k].lrB);
        }
        if (step == 1) first = loss;
        last = step == 1 ? loss : 0.9 * last + 0.1 * loss;
        int every = o->steps >= 10 ? o->steps / 10 : 1;
        if (step % every == 0 || step == o->steps)
            dp_recover_log(o, "%s: step %d/%d, mean cosine distance %.6f (running mean %.6f)", kind, step, o->steps, loss,
                     last);
        if (!dp_progress_step(o->progress, o->progress_user, "fitting linear-cos", step, o->steps)) st = DP_ERR_CANCELLED;
    }
    if (!st && o->steps > 0)
        dp_recover_log(o, "%s: mean cosine distance %.6f on the first batch (least-squares start), running mean %.6f after "
                 "%d steps", kind, first, last, o->steps);
    dp_session_free(sess);
    for (int k = 0; cs && k < ns; k++) {
        free(cs[k].gA);
        free(cs[k].gB);
        free(cs[k].mA);
        free(cs[k].vA);
        free(cs[k].mB);
        free(cs[k].vB);
        free(cs[k].az);
        free(cs[k].g);
    }
    free(cs);
    free(perm);
    return st;
}

/* ---- the entry point ---- */

dp_status dp_recovery_fit_linear(const struct dp_model *m, const struct dp_mask *mask, struct dp_recovery *r,
                                 enum dp_recover_method method, int rank, const struct dp_chunks *calib,
                                 const struct dp_recover_opts *o, struct dp_pool *pool) {
    int d = m->cfg.n_embd, ns = 0;
    if (rank > d) return dp_fail(DP_ERR_ARG, "%s: rank %d is above the model's width %d", r->kind, rank, d);
    struct span *sp = dp_calloc((size_t)r->n, sizeof *sp);
    if (!sp) return DP_ERR_NOMEM;
    dp_status st = make_spans(m, mask, r, sp, &ns);
    struct dp_mask base = *mask; /* the recovery's units put back */
    for (int i = 0; i < r->n; i++) {
        const struct dp_unit_recovery *u = &r->units[i];
        if (u->kind != 'f') base.attn[u->layer] = m->layers[u->layer].has_attn;
        if (u->kind != 'a') base.ffn[u->layer] = m->layers[u->layer].has_ffn;
    }
    for (int k = 0; k < ns && !st; k++) st = span_alloc(&sp[k], d, calib->ctx, true);
    struct dp_session *sess = NULL;
    if (!st) st = dp_session_new(m, &base, calib->ctx, &sess);
    struct pass p = {sp, ns, d, true, pool, NULL, 0};
    struct dp_hooks h = {.ctx = &p, .observe = pass_observe};
    for (int q = 0; q < calib->n_seqs && !st; q++) {
        dp_session_reset(sess);
        st = dp_session_forward_hooked(sess, pool, calib->ids + (size_t)q * calib->ctx, calib->ctx, NULL,
                                       DP_LOGITS_NONE, &h);
        if (!st && !dp_progress_step(o->progress, o->progress_user, "linear map statistics", q + 1, calib->n_seqs))
            st = DP_ERR_CANCELLED;
    }
    dp_session_free(sess);
    for (int k = 0; k < ns && !st; k++) {
        int R = rank > 0 ? rank : rank_rule(sp[k].count, d);
        st = fit_ls(&sp[k], d, R, o->ridge);
        struct dp_unit_recovery *u = sp[k].carrier;
        if (!st) {
            u->host = sp[k].host;
            if (u->host >= 0 && !(u->hbuf = dp_malloc((size_t)DP_RECOVERY_MAX_ROWS * d * sizeof(float)))) st = DP_ERR_NOMEM;
        }
        char hn[16];
        unit_name(sp[k].host, hn, sizeof hn);
        if (!st)
            dp_recover_log(o, "%s: span %s.. folded into %s, rank %d of %d, from %lld tokens", r->kind, u->unit, hn,
                     u->rank, d, (long long)sp[k].count);
    }
    if (!st && method == DP_RECOVER_LINEAR_COS) st = fit_cos(m, &base, sp, ns, calib, o, pool, r->kind);
    for (int k = 0; k < ns && !st; k++) sp[k].carrier->explained_var = explained(&sp[k], sp[k].carrier, d);
    for (int k = 0; k < ns; k++) span_free(&sp[k]);
    free(sp);
    return st;
}
