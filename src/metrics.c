/*
 * metrics: a scoring run, its options and its results (see metrics.h for
 * the design and metrics_run.h for the run's state).
 *
 * dp_metrics_score sets up the game (coalition.c), the accumulators, the
 * checkpoint key and the workers, resumes from a checkpoint when one
 * matches, runs the families of passes asked for in order (static, then
 * leave-one-out, Banzhaf, Shapley: metrics_<family>.c) and the MMLU oracle
 * (metrics_mmlu.c), and turns the accumulators into influences, standard
 * errors and orders. The families share one loop over sequences
 * (dp_metrics_for_sequences): a round evaluates one sequence per worker and
 * reduces the results in sequence order, so the bits never depend on the
 * number of threads.
 */
#include "metrics_run.h"

#include "dist.h"
#include "rng.h"
#include "shapley.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const metric_names[DP_N_METRICS] = {
    "cosine", "rel_l1", "rel_l2", "angular", "loo_loss", "loo_logit", "banzhaf_loss", "banzhaf_logit",
    "shapley_loss", "shapley_logit", "mmlu_shapley", "mmlu_shapley_iterative",
};

const char *dp_metric_name(int metric) { return metric >= 0 && metric < DP_N_METRICS ? metric_names[metric] : NULL; }

int dp_metric_parse(const char *s, size_t n) {
    for (int i = 0; i < DP_N_METRICS; i++)
        if (strlen(metric_names[i]) == n && !memcmp(metric_names[i], s, n)) return i;
    return -1;
}

bool dp_metric_random(int metric) {
    return metric == DP_METRIC_BANZHAF_LOSS || metric == DP_METRIC_BANZHAF_LOGIT ||
           metric == DP_METRIC_SHAPLEY_LOSS || metric == DP_METRIC_SHAPLEY_LOGIT || metric == DP_METRIC_MMLU_SHAPLEY ||
           metric == DP_METRIC_MMLU_SHAPLEY_ITER;
}

void dp_score_opts_default(struct dp_score_opts *o) {
    memset(o, 0, sizeof *o);
    o->kind = DP_UNITS_BLOCK;
    o->banzhaf_subsets = 10;
    o->shapley_perms = 200;
    o->shapley_min_pairs = 8;
    o->shapley_tol = 0.01;
    o->shapley_estimator = DP_SHAPLEY_DEFAULT;
    o->seed = 1;
    o->checkpoint_every = 60;
    dp_mmlu_shapley_opts_default(&o->mmlu_opts);
}

void dp_metrics_memory(const struct dp_model *m, int ctx, int64_t *snapshot_bytes, int64_t *logits_bytes) {
    const struct dp_config *c = &m->cfg;
    *snapshot_bytes = (int64_t)2 * c->n_layers * ctx * c->n_embd * (int64_t)sizeof(float);
    *logits_bytes = (int64_t)2 * ctx * c->n_vocab * (int64_t)sizeof(float);
}

/* ---- families ---- */

static int family_of(int metric) {
    switch (metric) {
    case DP_METRIC_COSINE: case DP_METRIC_REL_L1: case DP_METRIC_REL_L2: case DP_METRIC_ANGULAR: return FAM_STATIC;
    case DP_METRIC_LOO_LOSS: case DP_METRIC_LOO_LOGIT: return FAM_LOO;
    case DP_METRIC_BANZHAF_LOSS: case DP_METRIC_BANZHAF_LOGIT: return FAM_BANZHAF;
    case DP_METRIC_SHAPLEY_LOSS: case DP_METRIC_SHAPLEY_LOGIT: return FAM_SHAPLEY;
    default: return -1;
    }
}

/* ---- sequences, in rounds of one per worker ---- */

struct seq_job {
    struct run *r;
    seq_fn fn;
    int q0, nq;
    size_t width;
    double *buf;
};

static void seq_worker(void *ctx, int ith, int nth) {
    struct seq_job *j = ctx;
    (void)nth;
    if (ith >= j->nq) return;
    struct worker *w = &j->r->w[ith];
    w->st = j->fn(j->r, w, j->q0 + ith, j->buf + (size_t)ith * j->width);
    if (w->st) snprintf(w->err, sizeof w->err, "%s", dp_last_error());
}

dp_status dp_metrics_for_batches(struct run *r, int fam, size_t width, seq_fn fn, batch_fn batch, reduce_fn reduce,
                                 const char *what) {
    int B = r->n_batch, N = r->ch->n_seqs;
    if (B <= 1 || !batch) return dp_metrics_for_sequences(r, fam, width, fn, reduce, what);
    double *buf = dp_malloc((size_t)B * (width ? width : 1) * sizeof *buf);
    double *outs[DP_MULTI_MAX];
    dp_status st = buf ? DP_OK : DP_ERR_NOMEM;
    for (int i = 0; i < B; i++) outs[i] = buf + (size_t)i * width;
    for (int q0 = r->next_seq; !st && q0 < N; q0 += B) {
        int nq = N - q0 < B ? N - q0 : B;
        st = batch(r, q0, nq, outs);
        for (int i = 0; i < B; i++) {
            struct dp_cost *c = &r->w[i].ev.cost;
            r->fam[fam].passes += c->passes;
            r->fam[fam].unit_evals += c->unit_evals;
            r->fam[fam].naive_unit_evals += c->naive_unit_evals;
            memset(c, 0, sizeof *c);
        }
        if (st) break;
        for (int i = 0; i < nq; i++) reduce(r, q0 + i, outs[i]);
        r->next_seq = q0 + nq;
        st = dp_metrics_checkpoint_round(r);
        if (!st && !dp_progress_step(r->o->progress, r->o->progress_user, what, r->next_seq, N)) st = DP_ERR_CANCELLED;
    }
    free(buf);
    return st;
}

dp_status dp_metrics_for_sequences(struct run *r, int fam, size_t width, seq_fn fn, reduce_fn reduce, const char *what) {
    /* with ranks (dist.h), a round is one sequence per worker of every rank: rank k runs the k-th block of P */
    int P = r->n_workers, N = r->ch->n_seqs;
    int R = dp_dist_active() ? dp_dist_size() : 1, me = R > 1 ? dp_dist_rank() : 0;
    double *buf = dp_malloc((size_t)P * R * (width ? width : 1) * sizeof *buf);
    dp_status st = buf ? DP_OK : DP_ERR_NOMEM;
    for (int q0 = r->next_seq; !st && q0 < N; q0 += P * R) {
        int n_round = N - q0 < P * R ? N - q0 : P * R;
        int64_t bounds[DP_DIST_MAX_BOUNDS];
        for (int k = 0; k <= R; k++) bounds[k] = k * P < n_round ? k * P : n_round;
        int lo = (int)bounds[me], hi = (int)bounds[me + 1];
        struct seq_job job = {r, fn, q0 + lo, hi - lo, width, buf + (size_t)lo * width};
        if (P == 1 && job.nq > 0) seq_worker(&job, 0, 1);
        else if (job.nq > 0) dp_pool_run(r->pool, seq_worker, &job);
        int64_t cost[3] = {0, 0, 0};
        for (int i = 0; i < P; i++) {
            struct dp_cost *c = &r->w[i].ev.cost;
            cost[0] += c->passes;
            cost[1] += c->unit_evals;
            cost[2] += c->naive_unit_evals;
            memset(c, 0, sizeof *c);
            if (!st && i < job.nq && r->w[i].st) st = dp_fail(r->w[i].st, "%s", r->w[i].err);
        }
        if (st) break;
        dp_dist_sum_i64(cost, 3);
        r->fam[fam].passes += cost[0];
        r->fam[fam].unit_evals += cost[1];
        r->fam[fam].naive_unit_evals += cost[2];
        dp_dist_allgather(buf, width, bounds);
        for (int i = 0; i < n_round; i++) reduce(r, q0 + i, buf + (size_t)i * width);
        r->next_seq = q0 + n_round;
        st = dp_metrics_checkpoint_round(r);
        if (!st && !dp_progress_step(r->o->progress, r->o->progress_user, what, r->next_seq, N)) st = DP_ERR_CANCELLED;
    }
    free(buf);
    return st;
}

/* ---- the end of a family ---- */

dp_status dp_metrics_family_done(struct run *r, int fam, double t0, double c0) {
    r->fam[fam].seconds += dp_now() - t0;
    r->fam[fam].cpu_seconds += dp_cpu_now() - c0;
    r->stage = fam + 1;
    r->next_seq = 0;
    return r->o->checkpoint ? dp_metrics_checkpoint_write(r) : DP_OK;
}

/* ---- results ---- */

static void make_order(const double *v, int n, int *order) {
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 1; i < n; i++) { /* insertion sort: stable, NaN last */
        int x = order[i], j = i;
        while (j > 0) {
            double a = v[order[j - 1]], b = v[x];
            bool after = isnan(b) ? false : (isnan(a) || a > b);
            if (!after) break;
            order[j] = order[j - 1];
            j--;
        }
        order[j] = x;
    }
}

static dp_status finish(struct run *r) {
    const struct dp_game *g = &r->g;
    struct dp_scores *res = r->res;
    int n = g->n, N = r->ch->n_seqs;
    for (int p = 0; p < n; p++) {
        int b = g->block_of[p];
        int u = r->o->kind == DP_UNITS_BLOCK ? g->n_mu + b : 0;
        if (r->o->kind == DP_UNITS_SUBLAYER)
            for (int k = 0; k < g->n_mu; k++)
                if (g->player_of[k] == p) u = k;
        if (res->has[DP_METRIC_COSINE]) res->influence[DP_METRIC_COSINE][p] = 1 - r->st_cos[u] / N;
        if (res->has[DP_METRIC_REL_L1]) res->influence[DP_METRIC_REL_L1][p] = r->st_l1[u] / N;
        if (res->has[DP_METRIC_REL_L2]) res->influence[DP_METRIC_REL_L2][p] = r->st_l2[u] / N;
        if (res->has[DP_METRIC_ANGULAR]) res->influence[DP_METRIC_ANGULAR][p] = r->st_ang[span_index(g->n_present, 1, p)] / N;
    }
    if (res->has[DP_METRIC_ANGULAR]) {
        int np = g->n_present, k = 0;
        for (int sn = 1; sn <= np; sn++) {
            if (r->o->span && sn != r->o->span) continue;
            int best = -1;
            for (int j = 0; j + sn <= np; j++) {
                struct dp_span *s = &res->spans[k];
                s->first_block = g->present[j];
                s->last_block = g->present[j + sn - 1];
                s->n = sn;
                s->distance = r->st_ang[span_index(np, sn, j)] / N;
                if (best < 0 || s->distance < res->spans[best].distance) best = k;
                k++;
            }
            res->best[res->n_best++] = best;
        }
        res->n_spans = k;
    }
    for (int v = 0; v < 2; v++) {
        int metric = v ? DP_METRIC_LOO_LOGIT : DP_METRIC_LOO_LOSS;
        if (!res->has[metric]) continue;
        const double *sum = v ? r->loo_dist : r->loo_ce;
        double total = 0;
        for (int i = 0; i < n; i++) total += sum[i] / N;
        for (int i = 0; i < n; i++) {
            double d = sum[i] / N;
            res->value[metric][i] = d;
            res->influence[metric][i] = n > 1 ? d - (total - d) / (n - 1) : d;
        }
    }
    for (int v = 0; v < 2; v++) {
        int metric = v ? DP_METRIC_BANZHAF_LOGIT : DP_METRIC_BANZHAF_LOSS;
        if (!res->has[metric]) continue;
        for (int i = 0; i < n; i++) {
            double mean[2], var[2], cnt[2];
            for (int side = 0; side < 2; side++) {
                double s = bz_stat(r, v, side, 0)[i], q = bz_stat(r, v, side, 1)[i];
                cnt[side] = bz_stat(r, v, side, 2)[i];
                mean[side] = cnt[side] > 0 ? s / cnt[side] : NAN;
                var[side] = cnt[side] > 1 ? (q - cnt[side] * mean[side] * mean[side]) / (cnt[side] - 1) : NAN;
                if (var[side] < 0) var[side] = 0;
            }
            res->influence[metric][i] = mean[1] - mean[0];
            res->std_err[metric][i] = sqrt(var[0] / cnt[0] + var[1] / cnt[1]);
        }
    }
    for (int f = FAM_LOO; f <= FAM_BANZHAF && isnan(res->base_ce); f++)
        if (r->fam[f].passes) res->base_ce = r->base_sum[f] / N;
    if (isnan(res->base_ce) && res->shapley[0].coalitions) res->base_ce = -res->shapley[0].v_all;
    for (int k = 0; k < DP_N_METRICS; k++) {
        if (!res->has[k]) continue;
        make_order(res->influence[k], n, res->order[k]);
        int f = family_of(k);
        if (f >= 0) res->cost[k] = r->fam[f];
        else res->cost[k] = (struct dp_cost){0, 0, res->mmlu.questions_evaluated, res->mmlu.seconds, res->mmlu.cpu_seconds};
    }
    for (int f = 0; f < N_FAM; f++) {
        res->unit_evals += r->fam[f].unit_evals;
        res->naive_unit_evals += r->fam[f].naive_unit_evals;
    }
    return DP_OK;
}

void dp_scores_free(struct dp_scores *s) {
    if (!s) return;
    for (int k = 0; k < DP_N_METRICS; k++) {
        free(s->influence[k]);
        free(s->std_err[k]);
        free(s->value[k]);
        free(s->order[k]);
    }
    for (int v = 0; v < 2; v++) free(s->shapley[v].table);
    free(s->names);
    free(s->spans);
    free(s->best);
    free(s);
}

static dp_status check_opts(const struct dp_model *m, const struct dp_game *g, const struct dp_chunks *ch,
                            const struct dp_score_opts *o) {
    bool any = false;
    for (int k = 0; k < DP_N_METRICS; k++) any |= o->want[k];
    if (!any) return dp_fail(DP_ERR_ARG, "no metric asked for");
    if ((o->want[DP_METRIC_MMLU_SHAPLEY] || o->want[DP_METRIC_MMLU_SHAPLEY_ITER]) && !o->mmlu)
        return dp_fail(DP_ERR_ARG, "mmlu_shapley needs MMLU questions (--mmlu DIR)");
    bool calib = false;
    for (int k = 0; k < DP_N_METRICS; k++) calib |= o->want[k] && family_of(k) >= 0;
    if (!calib) return DP_OK;
    if (!ch || ch->n_seqs < 1) return dp_fail(DP_ERR_ARG, "no calibration sequences");
    if (o->want[DP_METRIC_ANGULAR] && o->kind != DP_UNITS_BLOCK)
        return dp_fail(DP_ERR_ARG, "angular scores spans of blocks: use block units");
    if (o->span < 0 || o->span > g->n_present)
        return dp_fail(DP_ERR_ARG, "span %d is out of range (1..%d blocks)", o->span, g->n_present);
    if (ch->ctx < 2) return dp_fail(DP_ERR_ARG, "context %d is too small", ch->ctx);
    if (o->seq_batch < 0 || o->seq_batch > DP_MULTI_MAX)
        return dp_fail(DP_ERR_ARG, "sequences per weight pass must be in [1, %d], not %d", DP_MULTI_MAX, o->seq_batch);
    bool banzhaf = o->want[DP_METRIC_BANZHAF_LOSS] || o->want[DP_METRIC_BANZHAF_LOGIT];
    bool shapley = o->want[DP_METRIC_SHAPLEY_LOSS] || o->want[DP_METRIC_SHAPLEY_LOGIT];
    if (banzhaf && (o->banzhaf_subsets < 1 || o->banzhaf_subsets > 1 << 20))
        return dp_fail(DP_ERR_ARG, "banzhaf subsets per sequence must be in [1, 1048576]");
    if (banzhaf && g->n < 2) return dp_fail(DP_ERR_ARG, "banzhaf needs at least 2 units");
    if (shapley && o->shapley_exact && g->n > 24)
        return dp_fail(DP_ERR_ARG, "exact Shapley values enumerate 2^n coalitions: at most 24 units, not %d", g->n);
    if (shapley && o->shapley_all_perms && g->n > 9)
        return dp_fail(DP_ERR_ARG, "every permutation of %d units is too many (at most 9)", g->n);
    if (shapley && (o->shapley_estimator < 0 || o->shapley_estimator > DP_SHAPLEY_AUTO))
        return dp_fail(DP_ERR_ARG, "unknown Shapley estimator %d", o->shapley_estimator);
    if (shapley && o->shapley_all_perms && o->shapley_estimator != DP_SHAPLEY_PERMUTATION)
        return dp_fail(DP_ERR_ARG, "every permutation once is the permutation estimator's check");
    if (shapley && !o->shapley_exact && !o->shapley_all_perms && (o->shapley_perms < 2 || o->shapley_min_pairs < 2))
        return dp_fail(DP_ERR_ARG, "shapley needs at least 2 permutations and a minimum of 2 pairs");
    (void)m;
    return DP_OK;
}

static dp_status alloc_results(struct run *r) {
    const struct dp_game *g = &r->g;
    struct dp_scores *res = r->res;
    int n = g->n;
    res->kind = r->o->kind;
    res->n_units = n;
    res->ctx = r->ch->ctx;
    res->n_seqs = r->ch->n_seqs;
    res->base_ce = NAN;
    res->banzhaf_subsets = r->o->banzhaf_subsets;
    res->names = dp_calloc((size_t)n, sizeof *res->names);
    if (!res->names) return DP_ERR_NOMEM;
    for (int u = 0; u < g->n_mu; u++) {
        int p = g->player_of[u];
        if (p < 0) continue;
        if (r->o->kind == DP_UNITS_BLOCK) snprintf(res->names[p], sizeof res->names[p], "b%d", u / 2);
        else snprintf(res->names[p], sizeof res->names[p], "%c%d", u & 1 ? 'f' : 'a', u / 2);
    }
    for (int k = 0; k < DP_N_METRICS; k++) {
        if (!r->o->want[k]) continue;
        res->has[k] = true;
        res->influence[k] = dp_calloc((size_t)n, sizeof(double));
        res->order[k] = dp_calloc((size_t)n, sizeof(int));
        if (dp_metric_random(k)) res->std_err[k] = dp_calloc((size_t)n, sizeof(double));
        bool value = k == DP_METRIC_LOO_LOSS || k == DP_METRIC_LOO_LOGIT || k == DP_METRIC_MMLU_SHAPLEY_ITER;
        if (value) res->value[k] = dp_calloc((size_t)n, sizeof(double));
        if (!res->influence[k] || !res->order[k] || (dp_metric_random(k) && !res->std_err[k]) || (value && !res->value[k]))
            return DP_ERR_NOMEM;
    }
    if (r->o->want[DP_METRIC_ANGULAR]) {
        res->spans = dp_calloc((size_t)r->n_spans_all, sizeof *res->spans);
        res->best = dp_calloc((size_t)g->n_present, sizeof *res->best);
        if (!res->spans || !res->best) return DP_ERR_NOMEM;
    }
    return DP_OK;
}

/* A formatted heap string (NULL when out of memory). */
static char *aprintf(const char *fmt, ...) DP_PRINTF(1, 2);
static char *aprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *buf = len >= 0 ? dp_malloc((size_t)len + 1) : NULL;
    if (!buf) return NULL;
    va_start(ap, fmt);
    vsnprintf(buf, (size_t)len + 1, fmt, ap);
    va_end(ap);
    return buf;
}

/* The checkpoint key: the caller's, plus everything that shapes the accumulators. */
static dp_status make_key(struct run *r, const struct dp_mask *base) {
    const struct dp_score_opts *o = r->o;
    uint64_t h = 0x84222325CBF29CE4ull;
    for (int64_t i = 0; i < (int64_t)r->ch->n_seqs * r->ch->ctx; i++) h = dp_mix64(h ^ (uint64_t)r->ch->ids[i]);
    char removed[4096], want[DP_N_METRICS + 1];
    dp_mask_format(base, removed, sizeof removed);
    for (int k = 0; k < DP_N_METRICS; k++) want[k] = o->want[k] ? '1' : '0';
    want[DP_N_METRICS] = 0;
    r->key = aprintf("%s|model=%s|removed=%s|kind=%d|seqs=%d|ctx=%d|ids=%016llx|want=%s|span=%d|subsets=%d|"
                     "perms=%d|minpairs=%d|tol=%.17g|exact=%d|allperms=%d|seed=%llu|noreuse=%d|estimator=%s",
                     o->checkpoint_key ? o->checkpoint_key : "", dp_model_path(r->m), removed, (int)o->kind,
                     r->ch->n_seqs, r->ch->ctx, (unsigned long long)h, want, o->span, o->banzhaf_subsets,
                     o->shapley_perms, o->shapley_min_pairs, o->shapley_tol, o->shapley_exact, o->shapley_all_perms,
                     (unsigned long long)o->seed, o->no_reuse, dp_shapley_estimator_name(o->shapley_estimator));
    return r->key ? DP_OK : DP_ERR_NOMEM;
}

static bool want_family(const struct dp_score_opts *o, int fam) {
    for (int k = 0; k < DP_N_METRICS; k++)
        if (o->want[k] && family_of(k) == fam) return true;
    return false;
}

/* Per-worker bytes: evaluator buffers for adaptive metrics, observer scratch for static ones. */
static int64_t worker_bytes(const struct run *r, bool adaptive) {
    const struct dp_config *c = &r->m->cfg;
    int64_t b = adaptive ? r->res->snapshot_bytes + r->res->logits_bytes : 0;
    if (want_family(r->o, FAM_STATIC)) b += ((int64_t)r->ch->ctx + r->g.L + 1) * c->n_embd * (int64_t)sizeof(float);
    return b;
}

static dp_status setup_workers(struct run *r, bool adaptive) {
    const struct dp_config *c = &r->m->cfg;
    const struct dp_game *g = &r->g;
    int threads = r->pool ? dp_pool_threads(r->pool) : 1, P = 1;
    int64_t wb = worker_bytes(r, adaptive);
    bool seqs = r->o->parallel == DP_SCORE_PAR_SEQS || (r->o->parallel == DP_SCORE_PAR_AUTO && c->n_embd <= 1024);
    if (seqs && threads > 1) {
        P = threads;
        if (r->o->max_mem > 0 && wb > 0 && (int64_t)P * wb > r->o->max_mem) P = (int)(r->o->max_mem / wb);
        if (P < 1) P = 1;
    }
    /* several sequences per weight pass: leave-one-out with one worker whose passes use the pool */
    int B = P == 1 && want_family(r->o, FAM_LOO) && r->o->seq_batch > 1 ? r->o->seq_batch : 1;
    if (B > r->ch->n_seqs) B = r->ch->n_seqs > 0 ? r->ch->n_seqs : 1;
    if (B > 1 && r->o->max_mem > 0 && wb > 0 && (int64_t)B * wb > r->o->max_mem)
        B = (int)(r->o->max_mem / wb) > 1 ? (int)(r->o->max_mem / wb) : 1;
    r->n_workers = P;
    r->n_batch = B;
    r->res->workers = P;
    if (B > P) P = B;
    r->w = dp_calloc((size_t)P, sizeof *r->w);
    if (!r->w) return DP_ERR_NOMEM;
    int n_su = g->n_mu + g->L, k = r->o->banzhaf_subsets;
    for (int i = 0; i < P; i++) {
        struct worker *w = &r->w[i];
        w->ev = (struct dp_evaluator){.m = r->m, .pool = r->n_workers == 1 ? r->pool : NULL, .user = r->hooks, .g = g,
                                   .ctx = r->ch->ctx, .dim = c->n_embd, .V = c->n_vocab, .reuse = !r->o->no_reuse};
        w->perm = dp_malloc((size_t)g->n * sizeof *w->perm);
        w->set = dp_malloc((size_t)g->nw * 8);
        if (!w->perm || !w->set) return DP_ERR_NOMEM;
        if (adaptive) {
            w->ev.stack = dp_malloc((size_t)r->res->snapshot_bytes);
            w->ev.full = dp_malloc((size_t)r->res->logits_bytes);
            w->ev.path = dp_malloc((size_t)g->n_mu);
            if (!w->ev.stack || !w->ev.full || !w->ev.path) return DP_ERR_NOMEM;
            w->ev.logits = w->ev.full + (size_t)r->ch->ctx * c->n_vocab;
        }
        if (want_family(r->o, FAM_STATIC)) {
            w->so = (struct static_obs){g->L, g->n_mu, c->n_embd, r->ch->ctx, NULL, NULL, NULL, NULL, NULL};
            w->so.cos = dp_calloc((size_t)n_su * 3, sizeof(double));
            w->so.block_in = dp_malloc((size_t)r->ch->ctx * c->n_embd * sizeof(float));
            w->so.h_last = dp_calloc((size_t)(g->L + 1) * c->n_embd, sizeof(float));
            if (!w->so.cos || !w->so.block_in || !w->so.h_last) return DP_ERR_NOMEM;
            w->so.l1 = w->so.cos + n_su;
            w->so.l2 = w->so.cos + 2 * n_su;
        }
        if (want_family(r->o, FAM_BANZHAF)) {
            w->kept = dp_malloc((size_t)k * g->n_mu);
            w->order = dp_malloc((size_t)k * sizeof *w->order);
            if (!w->kept || !w->order) return DP_ERR_NOMEM;
        }
    }
    return DP_OK;
}

static void free_workers(struct run *r) {
    int n = r->n_batch > r->n_workers ? r->n_batch : r->n_workers;
    for (int i = 0; r->w && i < n; i++) {
        struct worker *w = &r->w[i];
        free(w->ev.stack);
        free(w->ev.full);
        free(w->ev.path);
        free(w->so.cos);
        free(w->so.block_in);
        free(w->so.h_last);
        free(w->kept);
        free(w->order);
        free(w->perm);
        free(w->set);
        dp_session_free(w->session);
    }
    free(r->w);
}

dp_status dp_metrics_score(const struct dp_model *m, const struct dp_mask *base, const struct dp_hooks *hooks,
                           struct dp_pool *pool, const struct dp_chunks *ch, const struct dp_score_opts *opts,
                           struct dp_scores **out) {
    *out = NULL;
    static const struct dp_chunks no_chunks; /* only mmlu_shapley: no calibration text */
    struct run r;
    memset(&r, 0, sizeof r);
    r.m = m;
    r.o = opts;
    r.ch = ch ? ch : &no_chunks;
    r.hooks = hooks;
    r.pool = pool;
    r.res = dp_calloc(1, sizeof *r.res);
    dp_status st = r.res ? dp_coalition_game_init(m, base, opts->kind, &r.g) : DP_ERR_NOMEM;
    if (!st) st = check_opts(m, &r.g, ch, opts);
    ch = r.ch;
    bool adaptive = want_family(opts, FAM_LOO) || want_family(opts, FAM_BANZHAF) || want_family(opts, FAM_SHAPLEY);
    if (!st) {
        dp_metrics_memory(m, ch->ctx, &r.res->snapshot_bytes, &r.res->logits_bytes);
        int64_t need_bytes = adaptive ? r.res->snapshot_bytes + r.res->logits_bytes : 0;
        if (opts->max_mem > 0 && need_bytes > opts->max_mem)
            st = dp_fail(DP_ERR_NOMEM,
                         "the residual-stream snapshots (%.1f MiB) and logits (%.1f MiB) need %.1f MiB, more than "
                         "--max-mem %.1f MiB: lower --ctx",
                         r.res->snapshot_bytes / 1048576.0, r.res->logits_bytes / 1048576.0, need_bytes / 1048576.0,
                         opts->max_mem / 1048576.0);
    }
    const struct dp_game *g = &r.g;
    int n = g->n, n_su = g->n_mu + g->L;
    if (!st) {
        r.n_spans_all = n_spans_of(g->n_present);
        r.n_acc = (size_t)3 * n_su + (size_t)r.n_spans_all + 2 * (size_t)n + 12 * (size_t)n + N_FAM;
        r.acc = dp_calloc(r.n_acc, sizeof *r.acc);
        r.cache.nw = g->nw;
        st = r.acc ? alloc_results(&r) : DP_ERR_NOMEM;
    }
    if (!st) {
        double *p = r.acc;
        r.st_cos = p, p += n_su;
        r.st_l1 = p, p += n_su;
        r.st_l2 = p, p += n_su;
        r.st_ang = p, p += r.n_spans_all;
        r.loo_ce = p, p += n;
        r.loo_dist = p, p += n;
        r.bz = p, p += 12 * (size_t)n;
        r.base_sum = p, p += N_FAM;
        DP_ASSERT((size_t)(p - r.acc) == r.n_acc);
        st = make_key(&r, base);
    }
    if (!st) st = dp_metrics_checkpoint_read(&r);
    if (!st) st = setup_workers(&r, adaptive);
    r.t_ckpt = dp_now();
    static dp_status (*const runs[N_FAM])(struct run *) = {dp_metrics_static_run, dp_metrics_loo_run, dp_metrics_banzhaf_run,
                                                           dp_metrics_shapley_run};
    for (int f = 0; !st && f < N_FAM; f++) {
        if (!want_family(opts, f)) continue;
        if (f == FAM_SHAPLEY || r.stage <= f) {
            if (r.stage < f) {
                r.stage = f;
                r.next_seq = 0;
            }
            st = runs[f](&r);
        }
    }
    struct dp_mmlu_shapley_opts mo = opts->mmlu_opts;
    mo.parallel = (int)opts->parallel;
    mo.progress = opts->progress;
    mo.progress_user = opts->progress_user;
    if (!st) st = dp_metrics_mmlu_oracle(m, base, hooks, pool, opts->mmlu, &mo, r.res);
    if (!st) {
        r.stage = FAM_DONE;
        st = finish(&r);
    }
    if (!st && opts->checkpoint) st = dp_metrics_checkpoint_write(&r);
    free_workers(&r);
    free(r.acc);
    free(r.key);
    dp_coalition_cache_free(&r.cache);
    dp_coalition_game_free(&r.g);
    if (st) {
        dp_scores_free(r.res);
        return st;
    }
    *out = r.res;
    return DP_OK;
}
