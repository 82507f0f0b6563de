/*
 * metrics_mmlu: the research's MMLU oracle, mmlu_shapley (METHODS.md section
 * 4). It is measured on the MMLU test questions themselves: an upper bound
 * of what a metric could know, never a calibration metric, and every output
 * says so.
 *
 * For each question, `draws` (10) random subnetworks each keep floor(0.9 m)
 * of the m remaining units, uniformly without replacement (seeded per
 * iteration and question, so results do not depend on the evaluation
 * order). The value of a (question, subnetwork) pair is 1 when the
 * subnetwork answers the question right; the influence of unit i is the mean
 * value over pairs whose subnetwork contains i minus the mean over pairs
 * that lack it, with the standard error of that difference.
 *
 * Cost: within a subject, the questions that drew the same subnetwork are
 * evaluated together by the MMLU evaluator (src/mmlu.h), whose prefix cache
 * then runs the subject's header and shots once per subnetwork instead of
 * once per question. With few units most questions draw the same handful of
 * subnetworks (for m <= 10 each one removes exactly one unit), so this is
 * where the time goes down. The groups of a subject are independent: on
 * small models they run one per thread with single-threaded passes (as
 * score's sequences do), combined in group order, so the bits never depend
 * on the thread count.
 *
 * Iterative: after each estimate the least influential remaining unit is
 * removed and the estimate repeated on the rest, until one unit is left.
 * Its "influence" is the removal step (0 first), so sorting by influence
 * gives the removal order; the estimate at removal is kept beside it.
 */
#include "metrics.h"

#include "mmlu.h"
#include "rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { TAG_MMLU = 3 };

struct oracle {
    const struct dp_model *m;
    const struct dp_mask *base;
    const struct dp_hooks *hooks;
    struct dp_pool *pool;
    const struct dp_mmlu_data *data;
    const struct dp_mmlu_shapley_opts *o;
    struct dp_scores *res;
    int n;                      /* players */
    int64_t n_reports;          /* subjects times estimates: the total of stage "mmlu_shapley" */
    uint8_t *remaining;         /* (n) */
    double *sum, *cnt;          /* (2, n): [0] pairs containing i, [1] pairs lacking i */
};

/* The mask of the base model keeping only the players flagged in `in`. */
static dp_status subnet_mask(const struct oracle *w, const uint8_t *in, struct dp_mask *mask) {
    *mask = *w->base;
    for (int i = 0; i < w->n; i++)
        if (!in[i]) {
            dp_status st = dp_mask_drop(mask, w->res->names[i]);
            if (st) return st;
        }
    return DP_OK;
}

/* One distinct subnetwork of a subject and the questions (in order) that drew it. */
struct group {
    int first;                    /* (question, draw) index where it was first drawn */
    int cnt;
    int *qs;                      /* (cnt) questions */
    struct dp_mmlu_row *rows;     /* (cnt) their rows */
    bool *correct;                /* (cnt) owned by the MMLU result */
    struct dp_mmlu_result *r;
    dp_status st;
    char err[512];
};

struct group_job {
    struct oracle *w;
    const struct dp_mmlu_subject *s;
    const uint8_t *in;
    struct group *g;
    int n_groups;
    struct dp_pool *pool;         /* for the passes: NULL when groups run in parallel */
    bool parallel;                /* groups on the pool's workers (no progress callback there) */
};

static void eval_group(struct group_job *j, struct group *g) {
    struct oracle *w = j->w;
    struct dp_mask mask;
    g->st = subnet_mask(w, j->in + (size_t)g->first * w->n, &mask);
    struct dp_mmlu_subject view = *j->s;
    view.n_test = g->cnt;
    view.test = g->rows;
    struct dp_mmlu_data dv = {1, &view, g->cnt};
    struct dp_mmlu_opts mo = {w->o->shots, w->o->ctx_limit, true, NULL, NULL, NULL};
    if (!j->parallel) { /* on the calling thread: the progress callback may be called */
        mo.progress = w->o->progress;
        mo.progress_user = w->o->progress_user;
    }
    if (!g->st) g->st = dp_mmlu_eval(w->m, &mask, w->hooks, j->pool, &dv, &mo, &g->r);
    if (g->st) snprintf(g->err, sizeof g->err, "%s", dp_last_error());
}

static void group_worker(void *ctx, int ith, int nth) {
    struct group_job *j = ctx;
    for (int gi = ith; gi < j->n_groups; gi += nth) {
        eval_group(j, &j->g[gi]);
        if (!j->parallel && j->g[gi].st) break; /* on the calling thread: a cancellation stops at once */
    }
}

/*
 * Evaluate the subject's questions under each distinct subnetwork they drew:
 * in (n_q, draws, n) player flags; correct (n_q, draws) receives 0/1. The
 * groups are independent: with a parallel pool they run one per thread with
 * single-threaded passes, and their results are combined in group order.
 */
static dp_status eval_subject(struct oracle *w, const struct dp_mmlu_subject *s, const uint8_t *in, int8_t *correct,
                              int64_t done) {
    int n = w->n, D = w->o->draws, nq = s->n_test, ng = 0;
    int *owner = dp_malloc((size_t)nq * D * sizeof *owner);
    struct group *g = dp_calloc((size_t)nq * D, sizeof *g);
    dp_status st = owner && g ? DP_OK : DP_ERR_NOMEM;
    for (int i = 0; !st && i < nq * D; i++) owner[i] = -1;
    for (int first = 0; !st && first < nq * D; first++) {
        if (owner[first] >= 0) continue;
        struct group *gr = &g[ng];
        gr->first = first;
        gr->qs = dp_malloc((size_t)nq * sizeof *gr->qs);
        gr->rows = dp_malloc((size_t)nq * sizeof *gr->rows);
        if (!gr->qs || !gr->rows) {
            st = DP_ERR_NOMEM;
            break;
        }
        const uint8_t *sub = in + (size_t)first * n;
        for (int q = first / D; q < nq; q++) { /* earlier questions did not draw it (they would own `first`) */
            bool drew = false;
            for (int d = 0; d < D; d++)
                if (!memcmp(in + ((size_t)q * D + d) * n, sub, (size_t)n)) {
                    owner[q * D + d] = ng;
                    drew = true;
                }
            if (drew) {
                gr->rows[gr->cnt] = s->test[q];
                gr->qs[gr->cnt++] = q;
            }
        }
        ng++;
    }
    int threads = w->pool ? dp_pool_threads(w->pool) : 1;
    bool par = threads > 1 && ng > 1 &&
               (w->o->parallel == DP_SCORE_PAR_SEQS ||
                (w->o->parallel == DP_SCORE_PAR_AUTO && dp_model_config(w->m)->n_embd <= 1024));
    struct group_job job = {w, s, in, g, ng, par ? NULL : w->pool, par};
    if (!st) {
        if (par) dp_pool_run(w->pool, group_worker, &job);
        else group_worker(&job, 0, 1);
    }
    for (int gi = 0; !st && gi < ng; gi++)
        if (g[gi].st) st = dp_fail(g[gi].st, "%s", g[gi].err);
    /* the groups in parallel report nothing: the subject is the unit here */
    if (!st && par && !dp_progress_step(w->o->progress, w->o->progress_user, "mmlu_shapley", done + 1, w->n_reports))
        st = DP_ERR_CANCELLED;
    for (int gi = 0; !st && gi < ng; gi++) {
        const struct group *gr = &g[gi];
        for (int k = 0; k < gr->cnt; k++)
            for (int d = 0; d < D; d++)
                if (owner[gr->qs[k] * D + d] == gi) correct[gr->qs[k] * D + d] = gr->r->correct[k];
        w->res->mmlu.distinct += 1;
        w->res->mmlu.questions_evaluated += gr->cnt;
        w->res->mmlu.tokens_evaluated += gr->r->tokens_evaluated;
        w->res->mmlu.tokens_naive += gr->r->tokens_naive;
    }
    for (int gi = 0; g && gi < ng; gi++) {
        free(g[gi].qs);
        free(g[gi].rows);
        dp_mmlu_result_free(g[gi].r);
    }
    free(g);
    free(owner);
    return st;
}

/* One estimate over the remaining players (iteration `it`): influence and stderr per player. */
static dp_status estimate(struct oracle *w, int it, double *influence, double *std_err) {
    int n = w->n, D = w->o->draws, m = 0;
    int *rem = dp_malloc((size_t)n * sizeof *rem), *perm = dp_malloc((size_t)n * sizeof *perm);
    for (int i = 0; rem && i < n; i++)
        if (w->remaining[i]) rem[m++] = i;
    int keep = (9 * m) / 10; /* floor(0.9 m) */
    int max_q = 0;
    for (int si = 0; si < w->data->n_subjects; si++)
        if (w->data->subjects[si].n_test > max_q) max_q = w->data->subjects[si].n_test;
    uint8_t *in = dp_malloc((size_t)(max_q ? max_q : 1) * D * n);
    int8_t *correct = dp_malloc((size_t)(max_q ? max_q : 1) * D);
    dp_status st = rem && perm && in && correct ? DP_OK : DP_ERR_NOMEM;
    memset(w->sum, 0, (size_t)2 * n * sizeof *w->sum);
    memset(w->cnt, 0, (size_t)2 * n * sizeof *w->cnt);
    int qg = 0; /* question index over all subjects */
    for (int si = 0; si < w->data->n_subjects && !st; si++) {
        const struct dp_mmlu_subject *s = &w->data->subjects[si];
        for (int q = 0; q < s->n_test; q++) {
            struct dp_rng rs = dp_rng_raw(
                dp_mix64(w->o->seed + 0x9E3779B97F4A7C15ull * (1 + dp_mix64(TAG_MMLU + 0x100ull * (uint64_t)it))) ^
                dp_mix64((uint64_t)(qg + q) + 0x632BE59BD9B4E019ull));
            for (int d = 0; d < D; d++) {
                uint8_t *sub = in + ((size_t)q * D + d) * n;
                memset(sub, 0, (size_t)n);
                for (int i = 0; i < m; i++) perm[i] = rem[i];
                for (int i = 0; i < keep; i++) {
                    int j = i + (int)dp_rng_below(&rs, (uint64_t)(m - i)), t = perm[i];
                    perm[i] = perm[j];
                    perm[j] = t;
                    sub[perm[i]] = 1;
                }
            }
        }
        st = eval_subject(w, s, in, correct, it * w->data->n_subjects + si);
        for (int q = 0; !st && q < s->n_test; q++)
            for (int d = 0; d < D; d++) {
                const uint8_t *sub = in + ((size_t)q * D + d) * n;
                for (int k = 0; k < m; k++) {
                    int i = rem[k], side = sub[i] ? 0 : 1;
                    w->sum[side * n + i] += correct[q * D + d];
                    w->cnt[side * n + i] += 1;
                }
            }
        qg += s->n_test;
    }
    for (int k = 0; !st && k < m; k++) {
        int i = rem[k];
        double p1 = w->cnt[i] ? w->sum[i] / w->cnt[i] : NAN, p0 = w->cnt[n + i] ? w->sum[n + i] / w->cnt[n + i] : NAN;
        influence[i] = p1 - p0;
        std_err[i] = sqrt(p1 * (1 - p1) / w->cnt[i] + p0 * (1 - p0) / w->cnt[n + i]);
    }
    if (it == 0) w->res->mmlu.keep = keep; /* of the first estimate, over all units */
    free(rem);
    free(perm);
    free(in);
    free(correct);
    return st;
}

void dp_mmlu_shapley_opts_default(struct dp_mmlu_shapley_opts *o) {
    memset(o, 0, sizeof *o);
    o->draws = 10;
    o->shots = 5;
    o->ctx_limit = 2048;
    o->seed = 1;
}

dp_status dp_metrics_mmlu_oracle(const struct dp_model *m, const struct dp_mask *base, const struct dp_hooks *hooks,
                                 struct dp_pool *pool, const struct dp_mmlu_data *data,
                                 const struct dp_mmlu_shapley_opts *o, struct dp_scores *res) {
    int n = res->n_units;
    bool one = res->has[DP_METRIC_MMLU_SHAPLEY], iter = res->has[DP_METRIC_MMLU_SHAPLEY_ITER];
    if (!one && !iter) return DP_OK;
    if (!data || data->n_test < 1) return dp_fail(DP_ERR_ARG, "mmlu_shapley needs MMLU questions (--mmlu DIR)");
    if (o->draws < 1 || o->draws > 1000) return dp_fail(DP_ERR_ARG, "MMLU draws per question must be in [1, 1000]");
    if (n < 2) return dp_fail(DP_ERR_ARG, "mmlu_shapley needs at least 2 units");
    double t0 = dp_now(), c0 = dp_cpu_now();
    int steps = iter ? n - 1 : 1;
    struct oracle w = {m, base, hooks, pool, data, o, res, n, (int64_t)steps * data->n_subjects, NULL, NULL, NULL};
    w.remaining = dp_malloc((size_t)n);
    w.sum = dp_malloc((size_t)2 * n * sizeof *w.sum);
    w.cnt = dp_malloc((size_t)2 * n * sizeof *w.cnt);
    double *inf = dp_malloc((size_t)n * sizeof *inf), *se = dp_malloc((size_t)n * sizeof *se);
    dp_status st = w.remaining && w.sum && w.cnt && inf && se ? DP_OK : DP_ERR_NOMEM;
    if (!st) memset(w.remaining, 1, (size_t)n);
    res->mmlu.questions = data->n_test;
    res->mmlu.subjects = data->n_subjects;
    res->mmlu.draws = o->draws;
    /* the base model's accuracy, for reference */
    struct dp_mmlu_opts mo = {o->shots, o->ctx_limit, true, NULL, o->progress, o->progress_user};
    struct dp_mmlu_result *full = NULL;
    if (!st) st = dp_mmlu_eval(m, base, hooks, pool, data, &mo, &full);
    if (!st) {
        res->mmlu.base_accuracy = 100.0 * full->n_correct / full->n;
        res->mmlu.tokens_evaluated += full->tokens_evaluated;
        res->mmlu.tokens_naive += full->tokens_naive;
    }
    dp_mmlu_result_free(full);
    for (int it = 0; it < steps && !st; it++) {
        for (int i = 0; i < n; i++) inf[i] = se[i] = NAN;
        st = estimate(&w, it, inf, se);
        if (st) break;
        if (it == 0 && one) {
            memcpy(res->influence[DP_METRIC_MMLU_SHAPLEY], inf, (size_t)n * sizeof *inf);
            memcpy(res->std_err[DP_METRIC_MMLU_SHAPLEY], se, (size_t)n * sizeof *se);
        }
        if (!iter) break;
        int low = -1; /* the least influential remaining unit, ties by index */
        for (int i = 0; i < n; i++)
            if (w.remaining[i] && (low < 0 || inf[i] < inf[low] || (isnan(inf[low]) && !isnan(inf[i])))) low = i;
        w.remaining[low] = 0;
        res->influence[DP_METRIC_MMLU_SHAPLEY_ITER][low] = it;
        res->value[DP_METRIC_MMLU_SHAPLEY_ITER][low] = inf[low];
        res->std_err[DP_METRIC_MMLU_SHAPLEY_ITER][low] = se[low];
        if (it == steps - 1) /* the one left: last, with its estimate of this final round */
            for (int i = 0; i < n; i++)
                if (w.remaining[i]) {
                    res->influence[DP_METRIC_MMLU_SHAPLEY_ITER][i] = it + 1;
                    res->value[DP_METRIC_MMLU_SHAPLEY_ITER][i] = inf[i];
                    res->std_err[DP_METRIC_MMLU_SHAPLEY_ITER][i] = se[i];
                }
    }
    res->mmlu.iterations = steps;
    res->mmlu.seconds = dp_now() - t0;
    res->mmlu.cpu_seconds = dp_cpu_now() - c0;
    free(w.remaining);
    free(w.sum);
    free(w.cnt);
    free(inf);
    free(se);
    return st;
}
