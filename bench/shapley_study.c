/*
 * shapley_study: the Shapley estimators against exact values, many seeds
 * (docs/shapley-estimators.md).
 *
 *   build/bench/shapley_study MODEL CALIB DOCS CTX block|sublayer SEEDS TABLE [ESTIMATORS [MAXK]]
 *
 * Step 1 (once, cached in TABLE): `score --exact` through the library on the
 * calibration set (DOCS "A:B", CTX tokens per sequence) with the coalition
 * table kept: D(S) of all 2^n coalitions, CE and logit distance, each the
 * mean over the sequences exactly as a sampled run computes it (so a sampled
 * run's cache holds the same bits).
 * Step 2: every estimator (or those named in ESTIMATORS, comma-separated) at
 * a grid of budgets 2, 4, ..., MAXK (default 1024; tol 0) and at --tol 0.01
 * with the default budget 200 and with MAXK, seeds 1..SEEDS, against the table through the library's estimators
 * (src/shapley.c) with an oracle that charges what the evaluator would: per
 * batch of new coalitions, sorted for prefix reuse, a base pass plus every
 * sublayer from the first one where a coalition departs from the previous
 * pass, times the number of sequences.
 * Step 3: one real run (kernel, seed 1) checks that the simulation gives the
 * same bits and the same unit evaluations as the library on the model.
 * Step 4: per estimator, the unit evaluations to reach RMSE 0.01 nats: where
 * the grid crosses 0.01, interpolated log-log between the two budgets around
 * the crossing ("measured"); where it never does, the 1/sqrt(evals) law
 * fitted (least squares in log-log, slope fixed at -1/2) to the budgets whose
 * cost still grows by at least 1% per doubling ("extrapolated"; "saturated"
 * when the cost has stopped growing, so more samples cost nothing: then the
 * figure is the saturated cost).
 * Output: tab-separated lines (value kind CE only).
 */
#include "data.h"
#include "metrics.h"
#include "model.h"
#include "pool.h"
#include "shapley.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct table {
    int n, n_mu, n_seqs;
    double *d[2];      /* (2^n) */
    double phi[2][64]; /* exact */
};

struct sim {
    const struct table *t;
    int block;          /* players are blocks (2 sublayers each) */
    uint8_t *seen;      /* (2^n) */
    int64_t cost;       /* sublayer evaluations */
    uint8_t *kept;      /* scratch (2^n, n_mu) */
    int64_t *list;      /* (2^n) */
};

static void kept_of(const struct sim *s, uint64_t c, uint8_t *k) {
    for (int u = 0; u < s->t->n_mu; u++) k[u] = (c >> (s->block ? u / 2 : u)) & 1;
}

static const uint8_t *sort_kept;
static int sort_nmu;
static int cmp_desc(const void *a, const void *b) {
    return -memcmp(sort_kept + *(const int64_t *)a * sort_nmu, sort_kept + *(const int64_t *)b * sort_nmu,
                   (size_t)sort_nmu);
}

static dp_status sim_need(void *ctx, const uint64_t *sets, int64_t C) {
    struct sim *s = ctx;
    int n_mu = s->t->n_mu;
    int64_t np = 0;
    for (int64_t j = 0; j < C; j++) {
        uint64_t c = sets[j];
        if (s->seen[c]) continue;
        s->seen[c] = 1;
        kept_of(s, c, s->kept + np * n_mu);
        s->list[np] = np;
        np++;
    }
    if (!np) return DP_OK;
    sort_kept = s->kept;
    sort_nmu = n_mu;
    qsort(s->list, (size_t)np, sizeof *s->list, cmp_desc); /* distinct rows: the stable order is this order */
    uint8_t path[128], base[128];
    memset(base, 1, (size_t)n_mu);
    memcpy(path, base, (size_t)n_mu);
    int64_t per_seq = n_mu; /* the base pass */
    for (int64_t j = 0; j < np; j++) {
        const uint8_t *k = s->kept + s->list[j] * n_mu;
        if (!memcmp(k, base, (size_t)n_mu)) continue;
        int f = 0;
        while (f < n_mu && k[f] == path[f]) f++;
        if (f == n_mu) continue;
        for (int u = f; u < n_mu; u++) per_seq += k[u];
        memcpy(path, k, (size_t)n_mu);
    }
    s->cost += per_seq * s->t->n_seqs;
    return DP_OK;
}

static double sim_d(void *ctx, const uint64_t *set, int v) {
    const struct sim *s = ctx;
    return s->t->d[v][set[0]];
}

static void sim_reset(struct sim *s) {
    memset(s->seen, 0, (size_t)1 << s->t->n);
    s->cost = 0;
}

/* One run: fills phi, se; returns the cost. */
static int64_t run_one(struct sim *s, int est, int64_t samples, double tol, uint64_t seed, double *phi, double *se,
                       bool *conv) {
    struct dp_shapley_game g = {s->t->n, 1, s, sim_need, sim_d};
    struct dp_shapley_opts o = {.estimator = est, .want = {true, false}, .samples = samples, .min_pairs = 8,
                                .tol = tol, .seed = seed};
    double phi1[64], se1[64];
    struct dp_shapley_result r = {.phi = {phi, phi1}, .se = {se, se1}};
    sim_reset(s);
    int n = s->t->n;
    if (est == DP_SHAPLEY_AUTO && n <= 24 && ((int64_t)1 << n) <= samples * (n + 1)) {
        /* auto enumerates (metrics_shapley.c): all 2^n coalitions in one batch, the exact values */
        uint64_t *all = malloc(sizeof(uint64_t) << n);
        for (uint64_t c = 0; c < (1ull << n); c++) all[c] = c;
        sim_need(s, all, (int64_t)1 << n);
        free(all);
        for (int i = 0; i < n; i++) phi[i] = s->t->phi[0][i], se[i] = 0;
        *conv = true;
        return s->cost;
    }
    if (dp_shapley_estimate(&g, &o, &r)) {
        fprintf(stderr, "shapley_study: %s\n", dp_last_error());
        exit(1);
    }
    *conv = r.converged[0];
    return s->cost;
}

/* Whether estimator `name` is in the comma-separated list (NULL: all). */
static bool wanted(const char *list, const char *name) {
    if (!list) return true;
    size_t l = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k == l && !strncmp(p, name, l)) return true;
        p += k + (e != NULL);
    }
    return false;
}

/* Step 3: a real sampled run (8 samples, seed 1) of every wanted estimator against the simulation. */
static dp_status real_check(struct dp_model *m, struct dp_pool *pool, const struct dp_chunks *ch, struct dp_score_opts *op,
                            const struct dp_mask *maskp, struct table *t, int block, const char *ests) {
    struct dp_score_opts o = *op;
    struct dp_mask mask = *maskp;
    dp_status st = DP_OK;
    /* step 3: a real sampled run against the simulation */
    struct sim sm = {t, block, calloc((size_t)1 << t->n, 1), 0, malloc(((size_t)1 << t->n) * t->n_mu),
                     malloc(sizeof(int64_t) << t->n)};
    for (int est = 0; est < DP_SHAPLEY_N_EST; est++) {
        if (!wanted(ests, dp_shapley_estimator_name(est))) continue;
        o.shapley_exact = o.shapley_table = false;
        o.want[DP_METRIC_SHAPLEY_LOGIT] = false;
        o.shapley_estimator = est;
        o.shapley_perms = 8;
        o.shapley_tol = 0;
        struct dp_scores *r;
        if ((st = dp_metrics_score(m, &mask, NULL, pool, ch, &o, &r))) break;
        double phi[64], se[64];
        bool conv;
        int64_t cost = run_one(&sm, est, 8, 0, 1, phi, se, &conv);
        bool same = !memcmp(phi, r->influence[DP_METRIC_SHAPLEY_LOSS], (size_t)t->n * 8) &&
                    !memcmp(se, r->std_err[DP_METRIC_SHAPLEY_LOSS], (size_t)t->n * 8);
        printf("check\t%s\tsame_bits=%d\tunit_evals real=%lld simulated=%lld\n", dp_shapley_estimator_name(est), same,
               (long long)r->cost[DP_METRIC_SHAPLEY_LOSS].unit_evals, (long long)cost);
        dp_scores_free(r);
    }
    free(sm.seen);
    free(sm.kept);
    free(sm.list);
    return st;
}

static dp_status make_table(const char *model, const char *calib, const char *docs, int ctx, int block,
                            const char *path, const char *ests, struct table *t) {
    FILE *f = fopen(path, "rb");
    bool cached = f != NULL, check = getenv("STUDY_CHECK") && *getenv("STUDY_CHECK") == '1';
    if (f) {
        bool ok = fread(&t->n, sizeof t->n, 1, f) == 1 && fread(&t->n_mu, sizeof t->n_mu, 1, f) == 1 &&
                  fread(&t->n_seqs, sizeof t->n_seqs, 1, f) == 1;
        for (int v = 0; ok && v < 2; v++) {
            t->d[v] = malloc(sizeof(double) << t->n);
            ok = t->d[v] && fread(t->d[v], sizeof(double), (size_t)1 << t->n, f) == (size_t)1 << t->n &&
                 fread(t->phi[v], sizeof(double), (size_t)t->n, f) == (size_t)t->n;
        }
        fclose(f);
        if (!ok) return dp_fail(DP_ERR_FORMAT, "%s: damaged table", path);
        if (!check) return DP_OK; /* STUDY_CHECK=1: the real runs of step 3 against a cached table too */
    }
    struct dp_model *m;
    dp_status st = dp_model_open(model, NULL, &m);
    if (st) return st;
    struct dp_corpus *c;
    struct dp_chunks *ch;
    int lo = 0, hi = -1;
    if ((st = dp_parse_range(docs, &lo, &hi)) || (st = dp_corpus_read(calib, &c))) return st;
    if ((st = dp_chunks_paper(dp_model_tokenizer(m), c, lo, hi, ctx, 0, &ch))) return st;
    struct dp_score_opts o;
    dp_score_opts_default(&o);
    o.kind = block ? DP_UNITS_BLOCK : DP_UNITS_SUBLAYER;
    o.want[DP_METRIC_SHAPLEY_LOSS] = o.want[DP_METRIC_SHAPLEY_LOGIT] = true;
    o.shapley_exact = o.shapley_table = true;
    struct dp_mask mask;
    dp_mask_all(m, &mask);
    struct dp_pool *pool = dp_pool_new(2);
    struct dp_scores *s = NULL;
    if (cached) {
        st = real_check(m, pool, ch, &o, &mask, t, block, ests);
        dp_pool_free(pool);
        dp_chunks_free(ch);
        dp_corpus_free(c);
        dp_model_close(m);
        return st;
    }
    double t0 = dp_now();
    if ((st = dp_metrics_score(m, &mask, NULL, pool, ch, &o, &s))) return st;
    fprintf(stderr, "exact table: %d units, %d sequences of %d tokens, %lld unit evaluations, %.1f s\n", s->n_units,
            ch->n_seqs, ctx, (long long)s->cost[DP_METRIC_SHAPLEY_LOSS].unit_evals, dp_now() - t0);
    t->n = s->n_units;
    t->n_mu = 2 * dp_model_config(m)->n_layers;
    t->n_seqs = ch->n_seqs;
    f = fopen(path, "wb");
    if (!f) return dp_fail(DP_ERR_IO, "%s: cannot write", path);
    fwrite(&t->n, sizeof t->n, 1, f);
    fwrite(&t->n_mu, sizeof t->n_mu, 1, f);
    fwrite(&t->n_seqs, sizeof t->n_seqs, 1, f);
    for (int v = 0; v < 2; v++) {
        t->d[v] = s->shapley[v].table;
        s->shapley[v].table = NULL;
        memcpy(t->phi[v], s->influence[v ? DP_METRIC_SHAPLEY_LOGIT : DP_METRIC_SHAPLEY_LOSS], (size_t)t->n * 8);
        fwrite(t->d[v], sizeof(double), (size_t)1 << t->n, f);
        fwrite(t->phi[v], sizeof(double), (size_t)t->n, f);
    }
    fclose(f);
    dp_status cs = real_check(m, pool, ch, &o, &mask, t, block, ests);
    dp_scores_free(s);
    dp_pool_free(pool);
    dp_chunks_free(ch);
    dp_corpus_free(c);
    dp_model_close(m);
    return cs;
}

/*
 * The unit evaluations to RMSE 0.01 from the grid (K, cost, RMSE): measured
 * where it crosses (log-log between the two budgets around it); else the
 * 1/sqrt(K) law through the last budget for the samples and the cost's
 * log-log slope over the last doubling for their cost.
 */
static void reach(const char *name, const double *K, const double *cost, const double *rmse, int ng) {
    const double target = 0.01;
    double best = INFINITY, best_k = 0, first = INFINITY, first_k = 0;
    for (int g = 0; g < ng; g++) { /* the cheapest budget at or below the target (cost need not grow with K) */
        if (!(rmse[g] <= target)) continue;
        double ev = cost[g], k = K[g];
        if (g > 0 && rmse[g - 1] > target && rmse[g] > 0) {
            double f = log(rmse[g - 1] / target) / log(rmse[g - 1] / rmse[g]);
            ev = exp(log(cost[g - 1]) + f * (log(cost[g]) - log(cost[g - 1])));
            k = exp(log(K[g - 1]) + f * (log(K[g]) - log(K[g - 1])));
        }
        if (ev < best * (1 - 1e-9)) best = ev, best_k = k; /* ties (a saturated cost): the first budget */
        if (!isfinite(first)) first = ev, first_k = k;
    }
    if (isfinite(best)) {
        printf("reach0.01\t%s\tmeasured\tsamples=%.0f\tunit_evals=%.0f", name, best_k, best);
        if (first_k != best_k) printf("\t(first below 0.01 at %.0f samples, %.0f unit evals)", first_k, first);
        printf("\n");
        return;
    }
    if (ng < 2 || !(rmse[ng - 1] > 0)) {
        printf("reach0.01\t%s\tunknown\n", name);
        return;
    }
    double k = K[ng - 1] * pow(rmse[ng - 1] / target, 2), slope = log(cost[ng - 1] / cost[ng - 2]) / log(K[ng - 1] / K[ng - 2]);
    printf("reach0.01\t%s\textrapolated\tsamples=%.0f\tunit_evals=%.0f\t(RMSE %.5f at %.0f samples, %.0f unit evals; cost slope %.3f)\n",
           name, k, cost[ng - 1] * pow(k / K[ng - 1], slope > 0 ? slope : 0), rmse[ng - 1], K[ng - 1], cost[ng - 1], slope);
}

int main(int argc, char **argv) {
    if (argc < 8 || argc > 10) {
        fprintf(stderr, "usage: shapley_study MODEL CALIB DOCS CTX block|sublayer SEEDS TABLE [ESTIMATORS [MAXK]]\n");
        return 2;
    }
    int block = !strcmp(argv[5], "block"), seeds = atoi(argv[6]);
    const char *ests = argc > 8 && strcmp(argv[8], "all") ? argv[8] : NULL;
    int64_t maxk = argc > 9 ? atoll(argv[9]) : 1024;
    if (seeds < 1 || seeds > 1000 || maxk < 2) {
        fprintf(stderr, "shapley_study: SEEDS must be 1..1000 and MAXK at least 2\n");
        return 2;
    }
    struct table t;
    memset(&t, 0, sizeof t);
    if (make_table(argv[1], argv[2], argv[3], atoi(argv[4]), block, argv[7], ests, &t)) {
        fprintf(stderr, "shapley_study: %s\n", dp_last_error());
        return 1;
    }
    int n = t.n;
    int64_t exact_cost;
    { /* the exact enumeration's cost under the same accounting */
        struct sim s = {&t, block, calloc((size_t)1 << n, 1), 0, malloc(((size_t)1 << n) * t.n_mu),
                        malloc(sizeof(int64_t) << n)};
        uint64_t *all = malloc(sizeof(uint64_t) << n);
        for (uint64_t c = 0; c < (1ull << n); c++) all[c] = c;
        sim_need(&s, all, (int64_t)1 << n);
        exact_cost = s.cost;
        free(all);
        free(s.seen);
        free(s.kept);
        free(s.list);
    }
    printf("game\t%s\tn=%d\tsequences=%d\texact_unit_evals=%lld\tv_all-v_none=%.6f\n", argv[5], n, t.n_seqs,
           (long long)exact_cost, t.d[0][0] - t.d[0][(1ull << n) - 1]);
    printf("exact_phi");
    for (int i = 0; i < n; i++) printf("\t%.6f", t.phi[0][i]);
    printf("\n");
    printf("mode\testimator\tsamples\tunit_evals\trmse\tworst_unit_rmse\tcoverage_2se\tconverged\n");
    struct sim s = {&t, block, calloc((size_t)1 << n, 1), 0, malloc(((size_t)1 << n) * t.n_mu),
                    malloc(sizeof(int64_t) << n)};
    enum { MAXG = 40 };
    for (int est = 0; est <= DP_SHAPLEY_N_EST; est++) {
        if (!wanted(ests, dp_shapley_estimator_name(est))) continue;
        double gK[MAXG], gcost[MAXG], grmse[MAXG];
        int ng = 0;
        for (int gi = -2; ; gi++) {
            /* the kernel regressions solve after every 16 pairs under a tolerance: their big-budget tol row stops at 1024 */
            bool reg = est == DP_SHAPLEY_KERNEL || est == DP_SHAPLEY_LEVERAGE;
            int64_t K = gi == -2 ? 200 : gi == -1 ? (reg && maxk > 1024 ? 1024 : maxk) : (int64_t)2 << gi;
            if (gi >= 0 && K > maxk) break;
            double tol = gi < 0 ? 0.01 : 0;
            double cost = 0, se2 = 0, unit2[64] = {0}, cover = 0, conv = 0;
            for (int seed = 1; seed <= seeds; seed++) {
                double phi[64], se[64];
                bool c;
                cost += (double)run_one(&s, est, K, tol, (uint64_t)seed, phi, se, &c);
                conv += c;
                for (int i = 0; i < n; i++) {
                    double e = phi[i] - t.phi[0][i];
                    se2 += e * e;
                    unit2[i] += e * e;
                    cover += fabs(e) <= 2 * se[i] + 1e-9; /* an exact value (stderr 0) is covered */
                }
            }
            double worst = 0, rmse = sqrt(se2 / (seeds * n));
            for (int i = 0; i < n; i++) worst = fmax(worst, sqrt(unit2[i] / seeds));
            printf("%s\t%s\t%lld\t%.0f\t%.5f\t%.5f\t%.3f\t%.2f\n", gi < 0 ? "tol0.01" : "budget",
                   dp_shapley_estimator_name(est), (long long)K, cost / seeds, rmse, worst,
                   cover / (seeds * n), conv / seeds);
            fflush(stdout);
            if (gi >= 0 && ng < MAXG) {
                gK[ng] = (double)K;
                gcost[ng] = cost / seeds;
                grmse[ng++] = rmse;
            }
        }
        reach(dp_shapley_estimator_name(est), gK, gcost, grmse, ng);
    }
    free(s.seen);
    free(s.kept);
    free(s.list);
    return 0;
}
