/*
 * shapley: the five Shapley estimators (see shapley.h for the list).
 *
 * Each estimator works in batches: it draws the coalitions of a batch from
 * its own seeded stream, asks the oracle for all of them at once (so the
 * caller can order the passes for prefix reuse and cache the values), then
 * folds the batch into its accumulators in draw order. Stopping rules are
 * checked at fixed points (after every pair, round or batch, as each
 * estimator says), so a result depends on the seed, the budget and the
 * tolerance only. A resumed run asks the same batches again and the caller's
 * cache answers them.
 *
 * Stopping rule of every estimator: stop when the estimator has at least its
 * minimum number of samples and every unit's standard error is below tol;
 * otherwise stop at the budget (converged = false).
 *
 * Kernel regression (kernel, leverage). With z the 0/1 membership vector of a
 * coalition and y(z) = D(none) - D(z), the Shapley values solve
 *     min_phi E_mu[(y(z) - z.phi)^2]  subject to  1.phi = D(none) - D(all),
 * mu being the Shapley kernel over sizes 1..n-1 (mu(s) proportional to
 * 1/(s (n-s)), uniform within a size). With A = E[z z^T] and b = E[z y]:
 *     phi = A^-1 (b - 1 (1.A^-1 b - delta) / (1.A^-1 1)).
 * A and b are estimated from exact sizes (their every coalition, weighted by
 * mu) plus complementary pairs drawn from the other sizes with proposal q and
 * importance weight mu/q. Linearising the solution in the sample means gives
 * phi - phi* ~ M mean_j u_j with M = A^-1 - A^-1 1 1^T A^-1 / (1.A^-1 1) and
 * u_j the pair's weighted z (y - z.phi): the sandwich covariance
 * M Cov(u) M^T / m, whose diagonal gives the standard errors.
 */
#include "shapley.h"

#include "rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const est_names[DP_SHAPLEY_N_EST + 1] = {"permutation", "stratified", "kernel", "leverage", "hybrid", "auto"};

const char *dp_shapley_estimator_name(int e) { return e >= 0 && e <= DP_SHAPLEY_N_EST ? est_names[e] : NULL; }

int dp_shapley_estimator_parse(const char *s) {
    for (int e = 0; e <= DP_SHAPLEY_N_EST; e++)
        if (!strcmp(est_names[e], s)) return e;
    return -1;
}

static bool bit_get(const uint64_t *set, int i) { return (set[i >> 6] >> (i & 63)) & 1; }
static void bit_set(uint64_t *set, int i) { set[i >> 6] |= 1ull << (i & 63); }
static void bit_clear(uint64_t *set, int i) { set[i >> 6] &= ~(1ull << (i & 63)); }

static double dval(const struct dp_shapley_game *g, const uint64_t *set, int v) { return g->d(g->ctx, set, v); }

/* Coalition `k` of `set`: all players. */
static void set_all(uint64_t *set, int n, int nw) {
    memset(set, 0, (size_t)nw * 8);
    for (int i = 0; i < n; i++) bit_set(set, i);
}

/* p[0..k) a uniform random k-subset of 0..n-1 (a partial Fisher-Yates shuffle of p, which holds a permutation). */
static void draw_subset(struct dp_rng *rng, int *p, int n, int k) {
    for (int i = 0; i < k; i++) {
        int s = i + (int)dp_rng_below(rng, (uint64_t)(n - i)), t = p[i];
        p[i] = p[s];
        p[s] = t;
    }
}

/* ---- permutation: antithetic permutation sampling ---- */

/* Marginal contributions along permutation p (phi[p[k]] = D(S_{k-1}) - D(S_k)), reversed when rev. */
static void marginals(const struct dp_shapley_game *g, const int *p, bool rev, int value, uint64_t *set, double *phi) {
    int n = g->n;
    memset(set, 0, (size_t)g->nw * 8);
    double prev = dval(g, set, value);
    for (int k = 0; k < n; k++) {
        int i = p[rev ? n - 1 - k : k];
        bit_set(set, i);
        double d = dval(g, set, value);
        phi[i] = prev - d;
        prev = d;
    }
}

/* Next permutation in lexicographic order; false after the last. */
static bool next_perm(int *p, int n) {
    int i = n - 2;
    while (i >= 0 && p[i] >= p[i + 1]) i--;
    if (i < 0) return false;
    int j = n - 1;
    while (p[j] <= p[i]) j--;
    int t = p[i];
    p[i] = p[j];
    p[j] = t;
    for (int a = i + 1, b = n - 1; a < b; a++, b--) {
        t = p[a];
        p[a] = p[b];
        p[b] = t;
    }
    return true;
}

/* Whether p precedes its reverse lexicographically (each antithetic pair listed once). */
static bool before_reverse(const int *p, int n) {
    for (int k = 0; k < n; k++)
        if (p[k] != p[n - 1 - k]) return p[k] < p[n - 1 - k];
    return true;
}

/*
 * Batches of up to 8 pairs; for each pair, each value kind still running
 * adds the mean of the two permutations' marginal contributions, then stops
 * when it has min_pairs pairs and every standard error is below tol.
 */
static dp_status est_permutation(const struct dp_shapley_game *g, const struct dp_shapley_opts *o,
                                 struct dp_shapley_result *res) {
    int n = g->n, nw = g->nw;
    enum { BATCH = 8 };
    int64_t total = (o->samples + 1) / 2;
    int *cur = dp_malloc((size_t)n * sizeof *cur);
    if (o->all_perms) {
        total = 1;
        for (int k = 2; k <= n; k++) total *= k;
        total = n > 1 ? total / 2 : 1;
    }
    int *perms = dp_malloc((size_t)BATCH * n * sizeof *perms);
    uint64_t *sets = dp_malloc((size_t)BATCH * 2 * (n + 1) * nw * 8), *tmp = dp_malloc((size_t)nw * 8);
    double *acc = dp_calloc((size_t)4 * n, sizeof *acc), *phi = dp_malloc((size_t)2 * n * sizeof *phi);
    dp_status st = cur && perms && sets && tmp && acc && phi ? DP_OK : DP_ERR_NOMEM;
    bool active[2];
    int pairs[2] = {0, 0};
    for (int v = 0; v < 2; v++) active[v] = o->want[v];
    struct dp_rng rng = dp_rng_seeded(o->seed, DP_RNG_SHAPLEY, 0);
    for (int i = 0; cur && i < n; i++) cur[i] = i;
    bool more = true;
    for (int64_t done = 0; !st && done < total && more && (active[0] || active[1]);) {
        int nb = total - done < BATCH ? (int)(total - done) : BATCH;
        for (int b = 0; b < nb; b++) {
            int *p = perms + (size_t)b * n;
            if (o->all_perms) {
                while (!before_reverse(cur, n) && next_perm(cur, n)) {}
                memcpy(p, cur, (size_t)n * sizeof *p);
                more = next_perm(cur, n);
            } else {
                for (int i = 0; i < n; i++) p[i] = i;
                for (int i = n - 1; i > 0; i--) {
                    int j = (int)dp_rng_below(&rng, (uint64_t)i + 1), t = p[i];
                    p[i] = p[j];
                    p[j] = t;
                }
            }
            /* the prefixes of p and of its reverse */
            for (int rev = 0; rev < 2; rev++) {
                uint64_t *s0 = sets + ((size_t)(b * 2 + rev) * (n + 1)) * nw;
                memset(s0, 0, (size_t)nw * 8);
                for (int k = 0; k < n; k++) {
                    memcpy(s0 + (size_t)(k + 1) * nw, s0 + (size_t)k * nw, (size_t)nw * 8);
                    bit_set(s0 + (size_t)(k + 1) * nw, p[rev ? n - 1 - k : k]);
                }
            }
            if (!more) {
                nb = b + 1;
                break;
            }
        }
        st = g->need(g->ctx, sets, (int64_t)nb * 2 * (n + 1));
        for (int b = 0; !st && b < nb; b++) {
            for (int v = 0; v < 2; v++) {
                if (!active[v]) continue;
                double *sum = acc + (size_t)v * 2 * n, *sq = sum + n;
                marginals(g, perms + (size_t)b * n, false, v, tmp, phi);
                marginals(g, perms + (size_t)b * n, true, v, tmp, phi + n);
                for (int i = 0; i < n; i++) {
                    double m = 0.5 * (phi[i] + phi[n + i]);
                    sum[i] += m;
                    sq[i] += m * m;
                }
                int P = ++pairs[v];
                if (P < o->min_pairs || !(o->tol > 0)) continue;
                bool below = true;
                for (int i = 0; i < n && below; i++) {
                    double mean = sum[i] / P, var = (sq[i] - P * mean * mean) / (P - 1);
                    below = sqrt(var > 0 ? var / P : 0) < o->tol;
                }
                if (below) {
                    active[v] = false;
                    res->converged[v] = true;
                }
            }
        }
        done += nb;
    }
    for (int v = 0; !st && v < 2; v++) {
        if (!o->want[v]) continue;
        int P = pairs[v];
        const double *sum = acc + (size_t)v * 2 * n, *sq = sum + n;
        for (int i = 0; i < n; i++) {
            double mean = sum[i] / P, var = P > 1 ? (sq[i] - P * mean * mean) / (P - 1) : INFINITY;
            res->phi[v][i] = mean;
            res->se[v][i] = P > 1 ? sqrt(var > 0 ? var / P : 0) : INFINITY;
        }
        res->pairs[v] = P;
        res->samples[v] = 2 * (int64_t)P;
        if (o->all_perms) res->converged[v] = true;
    }
    free(cur);
    free(perms);
    free(sets);
    free(tmp);
    free(acc);
    free(phi);
    return st;
}

/* ---- stratified by coalition size ---- */

/*
 * Stratum (i, s): the marginal D(S) - D(S + i) over the coalitions S of size
 * s without i; phi_i is the mean over s of the stratum means. Sizes 0 and
 * n-1 have one coalition per unit and are computed exactly. A round draws
 * one coalition per other size: for 2s < n-1 a set S of size s, giving the
 * marginals of every unit outside S (n-s+1 coalitions); else a set T of size
 * s+1, giving D(T - i) - D(T) for every i in T (s+2 coalitions). Given that
 * i is covered, the coalition is uniform over the stratum, so each stratum
 * mean is unbiased and its variance is the sample variance over its count.
 * Rounds come in batches of 4; the stopping rule is checked after each round,
 * once every sampled stratum has 2 marginals and min_pairs rounds are done.
 */
static dp_status est_stratified(const struct dp_shapley_game *g, const struct dp_shapley_opts *o,
                                struct dp_shapley_result *res) {
    int n = g->n, nw = g->nw, ns = n > 2 ? n - 2 : 0; /* sampled sizes 1..n-2 */
    enum { ROUNDS = 4 };
    size_t nn = (size_t)n * n;
    int per_round = 0; /* coalitions a round asks */
    for (int s = 1; s <= ns; s++) per_round += 2 * s < n - 1 ? n - s + 1 : s + 2;
    int64_t budget = o->samples * (n + 1);
    uint64_t *sets = dp_malloc(((size_t)ROUNDS * (per_round ? per_round : 1) + 2 * (size_t)n + 2) * nw * 8);
    int *draws = dp_malloc((size_t)ROUNDS * (ns ? ns : 1) * n * sizeof *draws), *p = dp_malloc((size_t)n * sizeof *p);
    double *acc = dp_calloc(5 * nn, sizeof *acc); /* sum, sq per value; count */
    uint64_t *tmp = dp_malloc((size_t)nw * 8);
    dp_status st = sets && draws && p && acc && tmp ? DP_OK : DP_ERR_NOMEM;
    double *cnt = acc + 4 * nn;
    /* exact strata: none, singletons, all but one, all */
    int64_t C = 0;
    if (!st) {
        memset(sets, 0, (size_t)nw * 8);
        C = 1;
        for (int i = 0; i < n; i++) {
            uint64_t *a = sets + (size_t)C++ * nw, *b = sets + (size_t)C++ * nw;
            memset(a, 0, (size_t)nw * 8);
            bit_set(a, i);
            set_all(b, n, nw);
            bit_clear(b, i);
        }
        set_all(sets + (size_t)C++ * nw, n, nw);
        st = g->need(g->ctx, sets, C);
    }
    bool active[2] = {o->want[0], o->want[1]};
    int64_t used = 0, marg = 0, rounds = 0;
    struct dp_rng rng = dp_rng_seeded(o->seed, DP_RNG_STRATIFIED, 0);
    while (!st && ns > 0 && used < budget && (active[0] || active[1])) {
        /* a batch of rounds: for round r and size s, the drawn set in draws[(r * ns + s - 1) * n ...] */
        int nr = 0;
        C = 0;
        for (; nr < ROUNDS && used < budget; nr++) {
            for (int s = 1; s <= ns; s++) {
                int k = 2 * s < n - 1 ? s : s + 1, *dr = draws + ((size_t)nr * ns + s - 1) * n;
                for (int i = 0; i < n; i++) p[i] = i;
                draw_subset(&rng, p, n, k);
                memcpy(dr, p, (size_t)n * sizeof *dr);
                uint64_t *base = sets + (size_t)C++ * nw;
                memset(base, 0, (size_t)nw * 8);
                for (int j = 0; j < k; j++) bit_set(base, p[j]);
                /* the sets one unit away: add each outsider, or remove each member */
                int from = k == s ? k : 0, to = k == s ? n : k;
                for (int j = from; j < to; j++) {
                    uint64_t *x = sets + (size_t)C++ * nw;
                    memcpy(x, base, (size_t)nw * 8);
                    if (k == s) bit_set(x, p[j]);
                    else bit_clear(x, p[j]);
                }
            }
            used += per_round;
        }
        st = g->need(g->ctx, sets, C);
        for (int r = 0; !st && r < nr && (active[0] || active[1]); r++) {
            for (int s = 1; s <= ns; s++) {
                int k = 2 * s < n - 1 ? s : s + 1;
                const int *dr = draws + ((size_t)r * ns + s - 1) * n;
                memset(tmp, 0, (size_t)nw * 8);
                for (int j = 0; j < k; j++) bit_set(tmp, dr[j]);
                double big[2] = {0, 0};
                for (int v = 0; v < 2; v++)
                    if (active[v]) big[v] = dval(g, tmp, v);
                int from = k == s ? k : 0, to = k == s ? n : k;
                for (int j = from; j < to; j++) {
                    int i = dr[j];
                    if (k == s) bit_set(tmp, i);
                    else bit_clear(tmp, i);
                    for (int v = 0; v < 2; v++) {
                        if (!active[v]) continue;
                        double d = dval(g, tmp, v), m = k == s ? big[v] - d : d - big[v];
                        acc[(size_t)v * 2 * nn + (size_t)i * n + s] += m;
                        acc[(size_t)v * 2 * nn + nn + (size_t)i * n + s] += m * m;
                    }
                    cnt[(size_t)i * n + s] += 1;
                    marg++;
                    if (k == s) bit_clear(tmp, i);
                    else bit_set(tmp, i);
                }
            }
            rounds++;
            if (rounds < o->min_pairs || !(o->tol > 0)) continue;
            bool covered = true;
            for (int i = 0; i < n && covered; i++)
                for (int s = 1; s <= ns && covered; s++) covered = cnt[(size_t)i * n + s] >= 2;
            if (!covered) continue;
            for (int v = 0; v < 2; v++) {
                if (!active[v]) continue;
                bool below = true;
                for (int i = 0; i < n && below; i++) {
                    double var = 0;
                    for (int s = 1; s <= ns; s++) {
                        double c = cnt[(size_t)i * n + s], sm = acc[(size_t)v * 2 * nn + (size_t)i * n + s],
                               q = acc[(size_t)v * 2 * nn + nn + (size_t)i * n + s], mean = sm / c,
                               w = (q - c * mean * mean) / (c - 1);
                        var += (w > 0 ? w : 0) / c;
                    }
                    below = sqrt(var) / n < o->tol;
                }
                if (below) {
                    active[v] = false;
                    res->converged[v] = true;
                    res->samples[v] = marg;
                }
            }
        }
    }
    uint64_t *set = tmp;
    for (int v = 0; !st && v < 2; v++) {
        if (!o->want[v]) continue;
        double *sum = acc + (size_t)v * 2 * nn, *sq = sum + nn;
        for (int i = 0; i < n; i++) {
            /* exact strata */
            memset(set, 0, (size_t)nw * 8);
            double none = dval(g, set, v);
            bit_set(set, i);
            double phi = none - dval(g, set, v), var = 0;
            if (n > 1) {
                set_all(set, n, nw);
                double all = dval(g, set, v);
                bit_clear(set, i);
                phi += dval(g, set, v) - all;
            }
            for (int s = 1; s <= ns; s++) {
                double c = cnt[(size_t)i * n + s], mean = c > 0 ? sum[(size_t)i * n + s] / c : NAN,
                       w = c > 1 ? (sq[(size_t)i * n + s] - c * mean * mean) / (c - 1) : INFINITY;
                phi += mean;
                var += (w > 0 ? w : 0) / c;
            }
            res->phi[v][i] = phi / n;
            res->se[v][i] = sqrt(var) / n;
        }
        if (ns == 0) res->converged[v] = true;
        if (active[v]) res->samples[v] = marg;
        res->pairs[v] = 0;
    }
    free(sets);
    free(draws);
    free(p);
    free(acc);
    free(tmp);
    return st;
}

/* ---- hybrid: whole strata enumerated as the budget allows, the rest sampled with Neyman allocation ---- */

/* C(n, k), saturating at UINT64_MAX (exact up to n = 64, and wherever it fits). */
static uint64_t binom(int n, int k) {
    if (k < 0 || k > n) return 0;
    if (k > n - k) k = n - k;
    uint64_t c = 1;
    for (int j = 1; j <= k; j++) {
        uint64_t m = (uint64_t)(n - k + j), q = c / j, r = c % j;
        if (q > UINT64_MAX / m / 2) return UINT64_MAX; /* C(n, j) <= C(n, j-1) * m: no longer fits */
        c = q * m + r * m / j;
    }
    return c;
}

/* The k-subset of rank r in colexicographic order, as bits of set. */
static void unrank(uint64_t r, int n, int k, uint64_t *set, int nw) {
    memset(set, 0, (size_t)nw * 8);
    for (int j = k, x = n - 1; j >= 1; j--) {
        while (binom(x, j) > r) x--;
        bit_set(set, x);
        r -= binom(x, j);
        x--;
    }
}

/* The next k-subset c[0] < ... < c[k-1] of 0..n-1 in lexicographic order; false after the last. */
static bool next_comb(int *c, int k, int n) {
    int j = k - 1;
    while (j >= 0 && c[j] == n - k + j) j--;
    if (j < 0) return false;
    c[j]++;
    for (int l = j + 1; l < k; l++) c[l] = c[l - 1] + 1;
    return true;
}

enum { HYB_PERM_MAX = 1 << 20 }; /* strata with more base sets are drawn with replacement */

struct hstratum {
    bool exact;       /* every coalition of sizes s and s + 1 enumerated */
    bool up;          /* draws a base set S of size s (else T of size s + 1) */
    int k;            /* base size */
    uint64_t N;       /* base sets C(n, k) */
    uint64_t Npop;    /* stratum population per unit, C(n - 1, s) */
    int64_t drawn;    /* base sets drawn */
    uint32_t *perm;   /* lazy shuffle of the base ranks (N <= HYB_PERM_MAX), else NULL */
    int cost;         /* new coalitions per draw */
};

struct hybrid {
    int n, nw;
    struct hstratum *st;  /* (n) */
    double *sum, *sq, *cnt; /* (2, n, n) each, by value, unit, stratum */
};

static bool hyb_exhausted(const struct hstratum *h) { return h->perm ? (uint64_t)h->drawn >= h->N : false; }

/* Draw the next base set of stratum s into set (without replacement where the population is listed). */
static bool hyb_draw(struct hstratum *h, struct dp_rng *rng, int n, int nw, uint64_t *set, int *p) {
    if (h->N <= HYB_PERM_MAX) {
        if (!h->perm) {
            h->perm = dp_malloc((size_t)h->N * sizeof *h->perm);
            if (!h->perm) return false;
            for (uint64_t r = 0; r < h->N; r++) h->perm[r] = (uint32_t)r;
        }
        uint64_t d = (uint64_t)h->drawn, j = d + dp_rng_below(rng, h->N - d);
        uint32_t t = h->perm[d];
        h->perm[d] = h->perm[j];
        h->perm[j] = t;
        unrank(h->perm[d], n, h->k, set, nw);
    } else {
        for (int i = 0; i < n; i++) p[i] = i;
        draw_subset(rng, p, n, h->k);
        memset(set, 0, (size_t)nw * 8);
        for (int j = 0; j < h->k; j++) bit_set(set, p[j]);
    }
    h->drawn++;
    return true;
}

/* Double the capacity of a batch's plan, base sets and coalitions (n + 1 per draw). */
static dp_status hyb_grow(int **plan, uint64_t **bases, uint64_t **sets, int64_t *cap, int nw, int n) {
    int64_t c = *cap ? 2 * *cap : 64;
    int *p = realloc(*plan, (size_t)c * sizeof *p);
    if (p) *plan = p;
    uint64_t *b = realloc(*bases, (size_t)c * nw * 8);
    if (b) *bases = b;
    uint64_t *x = realloc(*sets, (size_t)c * (n + 1) * nw * 8);
    if (x) *sets = x;
    if (!p || !b || !x) return dp_fail(DP_ERR_NOMEM, "out of memory");
    *cap = c;
    return DP_OK;
}

/* Standard error of unit i, value v, over the sampled strata (with the finite population correction). */
static double hyb_se(const struct hybrid *H, int v, int i) {
    int n = H->n;
    size_t nn = (size_t)n * n;
    double var = 0;
    for (int s = 0; s < n; s++) {
        const struct hstratum *h = H->st + s;
        if (h->exact) continue;
        size_t x = (size_t)v * nn + (size_t)i * n + s;
        double c = H->cnt[x];
        if (c < 2) return INFINITY;
        double mean = H->sum[x] / c, w = (H->sq[x] - c * mean * mean) / (c - 1), fpc = h->N <= HYB_PERM_MAX ? 1 - c / (double)h->Npop : 1;
        var += (w > 0 ? w : 0) * (fpc > 0 ? fpc : 0) / c;
    }
    return sqrt(var) / n;
}

/*
 * Strata (unit i, size s) as in stratified, but: (1) whole strata are
 * enumerated first, from the edges inwards (s = 0, n-1, 1, n-2, ...: the
 * cheap and most variable ones), while their coalitions stay within a
 * quarter of the budget; (2) the others are drawn without replacement (a
 * seeded shuffle of each size's base sets, where there are at most 2^20 of
 * them), so the stratum variances carry the finite population correction
 * and a stratum drawn to the end is exact; (3) after a pilot (rounds of one
 * draw per sampled stratum until every (i, s) has two marginals), each batch
 * goes by Neyman allocation: one draw at a time to the stratum with the
 * largest expected fall of sum_i Var(phi_i) per new coalition, from the
 * stratum's variance pooled over the units (a stratum's own variance would
 * tie its sample size to its values and bias its mean), until the standard
 * errors predicted from those variances are below tol and every (i, s) has
 * min_pairs marginals (or the batch has as many draws as all before it, at
 * least 4 per sampled stratum; with tol 0 always the latter). The stopping
 * rule (every stderr below tol, min_pairs marginals in every sampled (i, s)
 * or the whole stratum) is checked after each batch. Every choice depends on
 * the seeded draws only.
 */
static dp_status est_hybrid(const struct dp_shapley_game *g, const struct dp_shapley_opts *o,
                            struct dp_shapley_result *res) {
    int n = g->n, nw = g->nw;
    size_t nn = (size_t)n * n;
    int64_t budget = o->samples * (n + 1);
    struct hybrid H = {.n = n, .nw = nw};
    H.st = dp_calloc((size_t)n, sizeof *H.st);
    H.sum = dp_calloc(6 * nn, sizeof(double));
    bool *size_enum = dp_calloc((size_t)n + 1, sizeof *size_enum);
    int *p = dp_malloc((size_t)(n + 1) * sizeof *p), *plan = NULL;
    uint64_t *tmp = dp_malloc((size_t)nw * 8), *sets = NULL;
    double *plan_c = dp_malloc(nn * sizeof *plan_c);
    int64_t *drawn_plan = dp_malloc((size_t)n * sizeof *drawn_plan);
    dp_status st = H.st && H.sum && size_enum && p && tmp && plan_c && drawn_plan ? DP_OK : DP_ERR_NOMEM;
    if (st) goto out;
    H.sq = H.sum + 2 * nn;
    H.cnt = H.sum + 4 * nn;
    /* (1) the enumerated strata: sizes 0, 1, n-1, n always; then from the edges inwards */
    int64_t enum_coal = 0;
    size_enum[0] = size_enum[n] = true;
    if (n >= 1) size_enum[1] = size_enum[n - 1] = true;
    for (int t = 0; t <= n; t++) enum_coal += size_enum[t] ? (int64_t)binom(n, t) : 0; /* n + 1 or 2n + 2 */
    H.st[0].exact = H.st[n - 1].exact = true;
    for (int step = 1; step < n - 1; step++) {
        int s = step & 1 ? step / 2 + 1 : n - 1 - step / 2; /* 1, n-2, 2, n-3, ... */
        if (H.st[s].exact) continue;
        double extra = (size_enum[s] ? 0 : (double)binom(n, s)) + (size_enum[s + 1] ? 0 : (double)binom(n, s + 1));
        if ((double)enum_coal + extra > (double)(budget / 4)) break;
        enum_coal += (int64_t)extra;
        size_enum[s] = size_enum[s + 1] = true;
        H.st[s].exact = true;
    }
    int n_sampled = 0;
    for (int s = 0; s < n; s++) {
        struct hstratum *h = H.st + s;
        h->Npop = binom(n - 1, s);
        if (h->exact) continue;
        n_sampled++;
        /* the base on an enumerated size when there is one (its coalitions are known), else the cheaper design */
        h->up = size_enum[s] ? true : size_enum[s + 1] ? false : 2 * s < n - 1;
        h->k = h->up ? s : s + 1;
        h->N = binom(n, h->k);
        h->cost = (h->up ? n - s : s + 1) + !size_enum[h->k];
    }
    sets = dp_malloc((size_t)(enum_coal > 0 ? enum_coal : 1) * nw * 8);
    if (!sets) {
        st = DP_ERR_NOMEM;
        goto out;
    }
    int64_t C = 0;
    for (int t = 0; t <= n; t++) {
        if (!size_enum[t]) continue;
        for (int j = 0; j < t; j++) p[j] = j;
        do {
            uint64_t *x = sets + (size_t)C++ * nw;
            memset(x, 0, (size_t)nw * 8);
            for (int j = 0; j < t; j++) bit_set(x, p[j]);
        } while (t > 0 && next_comb(p, t, n));
    }
    st = g->need(g->ctx, sets, C);
    int64_t used = C, marg = 0;
    free(sets);
    sets = NULL;
    /* (2, 3) sampled strata in batches */
    int per_batch = 4 * (n_sampled > 0 ? n_sampled : 1);
    int64_t plan_cap = 0;
    uint64_t *bases = NULL;
    double *W = dp_malloc(2 * nn * sizeof *W);
    if (!st && !W) st = DP_ERR_NOMEM;
    if (!st) st = hyb_grow(&plan, &bases, &sets, &plan_cap, nw, n);
    bool active[2] = {o->want[0], o->want[1]}, pilot = true;
    struct dp_rng rng = dp_rng_seeded(o->seed, DP_RNG_HYBRID, 0);
    while (!st && n_sampled > 0 && used < budget && (active[0] || active[1])) {
        int va = active[0] ? 0 : 1; /* the counts of the first running value kind plan the batch */
        int nb = 0;
        int64_t coal = 0;
        if (pilot) {
            /* one draw per sampled stratum that is short of its minimum */
            bool short_any = false;
            for (int s = 0; s < n; s++) {
                struct hstratum *h = H.st + s;
                if (h->exact || hyb_exhausted(h)) continue;
                bool short_s = h->drawn < 2;
                for (int i = 0; i < n && !short_s; i++)
                    short_s = H.cnt[(size_t)va * nn + (size_t)i * n + s] < 2;
                if (!short_s) continue;
                short_any = true;
                if (used + coal + h->cost > budget && nb > 0) break;
                if (nb == plan_cap && (st = hyb_grow(&plan, &bases, &sets, &plan_cap, nw, n))) break;
                plan[nb++] = s;
                coal += h->cost;
            }
            if (st) break;
            if (!short_any) pilot = false;
        }
        if (!pilot) {
            /* Neyman allocation, one draw at a time, up to the draws predicted to reach tol (at most doubling) */
            int64_t drawn_all = 0;
            for (int s = 0; s < n; s++) drawn_all += H.st[s].drawn;
            int64_t cap = drawn_all > per_batch ? drawn_all : per_batch;
            for (int v = 0; v < 2; v++) {
                for (int s = 0; s < n; s++) {
                    double pooled = 0;
                    for (int i = 0; i < n; i++) {
                        size_t x = (size_t)v * nn + (size_t)i * n + s;
                        double c = H.cnt[x], mean = c > 0 ? H.sum[x] / c : 0, w = c > 1 ? (H.sq[x] - c * mean * mean) / (c - 1) : 0;
                        W[x] = w > 0 ? w : 0;
                        pooled += W[x] / n;
                    }
                    for (int i = 0; i < n; i++) W[(size_t)v * nn + (size_t)i * n + s] = pooled;
                }
            }
            memcpy(plan_c, H.cnt + (size_t)va * nn, nn * sizeof *plan_c);
            for (int s = 0; s < n; s++) drawn_plan[s] = H.st[s].drawn;
            while (nb < cap && used + coal < budget) {
                int forced = -1;
                if (o->tol > 0 && nb > 0) { /* predicted standard errors after the planned draws */
                    bool below = true;
                    for (int v = 0; v < 2 && below; v++) {
                        if (!active[v]) continue;
                        for (int i = 0; i < n && below; i++) {
                            double var = 0;
                            for (int s = 0; s < n; s++) {
                                const struct hstratum *h = H.st + s;
                                if (h->exact) continue;
                                double pc = plan_c[(size_t)i * n + s], f = 1 / pc - (h->N <= HYB_PERM_MAX ? 1 / (double)h->Npop : 0);
                                var += W[(size_t)v * nn + (size_t)i * n + s] * (f > 0 ? f : 0);
                            }
                            below = sqrt(var) / n < o->tol;
                        }
                    }
                    if (below) { /* then the strata still short of min_pairs marginals, fewest first */
                        int least = -1;
                        double lc = 0;
                        for (int s = 0; s < n; s++) {
                            const struct hstratum *h = H.st + s;
                            if (h->exact || (h->N <= HYB_PERM_MAX && (uint64_t)drawn_plan[s] >= h->N)) continue;
                            for (int i = 0; i < n; i++) {
                                double pc = plan_c[(size_t)i * n + s];
                                if (pc < o->min_pairs && pc < (double)h->Npop && (least < 0 || pc < lc)) least = s, lc = pc;
                            }
                        }
                        if (least < 0) break;
                        forced = least;
                    }
                }
                int best = forced;
                double best_gain = 0;
                for (int s = 0; s < n && forced < 0; s++) {
                    struct hstratum *h = H.st + s;
                    if (h->exact || (h->N <= HYB_PERM_MAX && (uint64_t)drawn_plan[s] >= h->N)) continue;
                    double gain = 0, pi = (double)(h->up ? n - s : s + 1) / n;
                    for (int v = 0; v < 2; v++) {
                        if (!active[v]) continue;
                        for (int i = 0; i < n; i++) {
                            double pc = plan_c[(size_t)i * n + s];
                            gain += W[(size_t)v * nn + (size_t)i * n + s] * pi * (1 / pc - 1 / (pc + 1));
                        }
                    }
                    gain /= h->cost;
                    if (best < 0 || gain > best_gain) best = s, best_gain = gain;
                }
                if (best < 0) break;
                if (nb == plan_cap && (st = hyb_grow(&plan, &bases, &sets, &plan_cap, nw, n))) break;
                plan[nb++] = best;
                coal += H.st[best].cost;
                drawn_plan[best]++;
                double pi = (double)(H.st[best].up ? n - best : best + 1) / n;
                for (int i = 0; i < n; i++) plan_c[(size_t)i * n + best] += pi;
            }
            if (st) break;
        }
        if (nb == 0) break;
        /* the batch's coalitions */
        C = 0;
        for (int b = 0; b < nb && !st; b++) {
            struct hstratum *h = H.st + plan[b];
            uint64_t *base = bases + (size_t)b * nw;
            if (!hyb_draw(h, &rng, n, nw, base, p)) {
                st = DP_ERR_NOMEM;
                break;
            }
            memcpy(sets + (size_t)C++ * nw, base, (size_t)nw * 8);
            for (int i = 0; i < n; i++) {
                if (bit_get(base, i) == h->up) continue; /* up: add each outsider; down: remove each member */
                uint64_t *x = sets + (size_t)C++ * nw;
                memcpy(x, base, (size_t)nw * 8);
                if (h->up) bit_set(x, i);
                else bit_clear(x, i);
            }
        }
        if (!st) st = g->need(g->ctx, sets, C);
        used += coal;
        for (int b = 0; !st && b < nb; b++) {
            int s = plan[b];
            struct hstratum *h = H.st + s;
            const uint64_t *base = bases + (size_t)b * nw;
            memcpy(tmp, base, (size_t)nw * 8);
            double d0[2] = {0, 0};
            for (int v = 0; v < 2; v++)
                if (active[v]) d0[v] = dval(g, tmp, v);
            for (int i = 0; i < n; i++) {
                if (bit_get(base, i) == h->up) continue;
                if (h->up) bit_set(tmp, i);
                else bit_clear(tmp, i);
                for (int v = 0; v < 2; v++) {
                    if (!active[v]) continue;
                    double d1 = dval(g, tmp, v), m = h->up ? d0[v] - d1 : d1 - d0[v];
                    size_t x = (size_t)v * nn + (size_t)i * n + s;
                    H.sum[x] += m;
                    H.sq[x] += m * m;
                    H.cnt[x] += 1;
                }
                marg++;
                memcpy(tmp, base, (size_t)nw * 8);
            }
        }
        if (st || pilot || !(o->tol > 0)) continue;
        for (int v = 0; v < 2; v++) {
            if (!active[v]) continue;
            bool below = true;
            for (int i = 0; i < n && below; i++) below = hyb_se(&H, v, i) < o->tol;
            for (int s = 0; s < n && below; s++) { /* and min_pairs marginals in every sampled (i, s), or all of them */
                const struct hstratum *h = H.st + s;
                for (int i = 0; i < n && below && !h->exact; i++) {
                    double c = H.cnt[(size_t)v * nn + (size_t)i * n + s];
                    below = c >= o->min_pairs || (h->N <= HYB_PERM_MAX && c >= (double)h->Npop);
                }
            }
            if (below) {
                active[v] = false;
                res->converged[v] = true;
                res->samples[v] = marg;
            }
        }
    }
    free(bases);
    free(W);
    /* the values: exact strata by enumeration, sampled ones from their means */
    for (int v = 0; !st && v < 2; v++) {
        if (!o->want[v]) continue;
        bool all_exact = true;
        for (int i = 0; i < n; i++) res->phi[v][i] = 0;
        for (int s = 0; s < n; s++) {
            struct hstratum *h = H.st + s;
            if (!h->exact) {
                all_exact = all_exact && hyb_exhausted(h);
                for (int i = 0; i < n; i++) {
                    size_t x = (size_t)v * nn + (size_t)i * n + s;
                    res->phi[v][i] += H.cnt[x] > 0 ? H.sum[x] / H.cnt[x] : NAN;
                }
                continue;
            }
            /* every S of size s: D(S) - D(S + i) for i outside */
            for (int j = 0; j < s; j++) p[j] = j;
            double *m = plan_c; /* (n) scratch */
            for (int i = 0; i < n; i++) m[i] = 0;
            do {
                memset(tmp, 0, (size_t)nw * 8);
                for (int j = 0; j < s; j++) bit_set(tmp, p[j]);
                double d0 = dval(g, tmp, v);
                for (int i = 0; i < n; i++) {
                    if (bit_get(tmp, i)) continue;
                    bit_set(tmp, i);
                    m[i] += d0 - dval(g, tmp, v);
                    bit_clear(tmp, i);
                }
            } while (s > 0 && next_comb(p, s, n));
            for (int i = 0; i < n; i++) res->phi[v][i] += m[i] / (double)h->Npop;
        }
        for (int i = 0; i < n; i++) {
            res->phi[v][i] /= n;
            res->se[v][i] = hyb_se(&H, v, i);
        }
        if (all_exact) res->converged[v] = true;
        if (active[v]) res->samples[v] = marg;
        res->pairs[v] = 0;
    }
out:
    for (int s = 0; H.st && s < n; s++) free(H.st[s].perm);
    free(H.st);
    free(H.sum);
    free(size_enum);
    free(p);
    free(plan);
    free(tmp);
    free(sets);
    free(plan_c);
    free(drawn_plan);
    return st;
}

/* ---- kernel regression: kernel and leverage ---- */

/* In-place inverse of the symmetric positive definite n x n matrix a by Cholesky; false when not positive definite. */
static bool spd_inverse(double *a, int n, double *work) {
    double *L = work, *x = work + (size_t)n * n; /* (n, n), (n) */
    double scale = 0;
    for (int i = 0; i < n; i++) scale = fmax(scale, a[(size_t)i * n + i]);
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double s = a[(size_t)i * n + j];
            for (int k = 0; k < j; k++) s -= L[(size_t)i * n + k] * L[(size_t)j * n + k];
            if (i == j) {
                if (!(s > 1e-12 * scale)) return false;
                L[(size_t)i * n + i] = sqrt(s);
            } else {
                L[(size_t)i * n + j] = s / L[(size_t)j * n + j];
            }
        }
    for (int c = 0; c < n; c++) { /* column c of the inverse: solve L L^T x = e_c */
        for (int i = 0; i < n; i++) {
            double s = i == c ? 1 : 0;
            for (int k = 0; k < i; k++) s -= L[(size_t)i * n + k] * x[k];
            x[i] = s / L[(size_t)i * n + i];
        }
        for (int i = n - 1; i >= 0; i--) {
            double s = x[i];
            for (int k = i + 1; k < n; k++) s -= L[(size_t)k * n + i] * x[k];
            x[i] = s / L[(size_t)i * n + i];
        }
        for (int i = 0; i < n; i++) a[(size_t)i * n + c] = x[i];
    }
    return true;
}

struct kreg {
    int n, nw;
    double mu_r;          /* kernel mass of the sampled sizes */
    double *A_ex, *b_ex;  /* (n, n), (2, n): the exact sizes' part, weighted by mu */
    double *A_sum, *b_sum;/* (n, n), (2, n): sums over pairs of w (z z^T + zc zc^T) / 2, w (z y + zc yc) / 2 */
    int64_t m, cap;       /* pairs */
    uint64_t *pz;         /* (cap, nw) each pair's first coalition */
    double *pw;           /* (cap) its importance weight */
    double *A, *Ainv, *work, *u, *S;   /* scratch */
};

/* Add w z z^T into A and w z y into b (y = D(none) - D(z) per value). */
static void add_point(const struct dp_shapley_game *g, const uint64_t *z, double w, double *A, double *b,
                      const double *none, const bool *want) {
    int n = g->n;
    for (int i = 0; i < n; i++) {
        if (!bit_get(z, i)) continue;
        for (int j = 0; j < n; j++)
            if (bit_get(z, j)) A[(size_t)i * n + j] += w;
    }
    for (int v = 0; v < 2; v++) {
        if (!want[v]) continue;
        double y = none[v] - dval(g, z, v);
        for (int i = 0; i < n; i++)
            if (bit_get(z, i)) b[(size_t)v * n + i] += w * y;
    }
}

/*
 * Solve the constrained regression of value v from the current sums: phi and
 * stderr; false when A is singular (too few pairs).
 */
static bool kreg_solve(const struct dp_shapley_game *g, struct kreg *k, int v, double none, double delta, double *phi,
                       double *se) {
    int n = k->n, nw = k->nw;
    size_t nn = (size_t)n * n;
    double f = k->m ? k->mu_r / (double)k->m : 0;
    for (size_t e = 0; e < nn; e++) k->A[e] = k->A_ex[e] + f * k->A_sum[e];
    memcpy(k->Ainv, k->A, nn * sizeof *k->A);
    if (!spd_inverse(k->Ainv, n, k->work)) return false;
    double *b = k->u, *a1 = k->u + n; /* scratch: b_hat, A^-1 1 */
    for (int i = 0; i < n; i++) b[i] = k->b_ex[(size_t)v * n + i] + f * k->b_sum[(size_t)v * n + i];
    double oneA1 = 0, oneAb = 0;
    for (int i = 0; i < n; i++) {
        double s1 = 0, sb = 0;
        for (int j = 0; j < n; j++) {
            s1 += k->Ainv[(size_t)i * n + j];
            sb += k->Ainv[(size_t)i * n + j] * b[j];
        }
        a1[i] = s1;
        oneA1 += s1;
        oneAb += sb;
        phi[i] = sb;
    }
    double lambda = (oneAb - delta) / oneA1;
    for (int i = 0; i < n; i++) phi[i] -= lambda * a1[i];
    /* M = A^-1 - a1 a1^T / (1.A^-1 1), into A */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) k->A[(size_t)i * n + j] = k->Ainv[(size_t)i * n + j] - a1[i] * a1[j] / oneA1;
    /* Cov(u) over pairs, u_j = w/2 (z r(z) + zc r(zc)), r = y - z.phi */
    double *mean = k->u + 2 * n, *uj = k->u + 3 * n, *z = k->u + 4 * n;
    uint64_t *c = (uint64_t *)(k->u + 5 * n);
    memset(mean, 0, (size_t)n * sizeof *mean);
    memset(k->S, 0, nn * sizeof *k->S);
    double total = 0;
    for (int i = 0; i < n; i++) total += phi[i];
    for (int64_t j = 0; j < k->m; j++) {
        const uint64_t *pz = k->pz + (size_t)j * nw;
        set_all(c, n, nw);
        for (int w = 0; w < nw; w++) c[w] &= ~pz[w];
        double zphi = 0;
        for (int i = 0; i < n; i++) {
            z[i] = bit_get(pz, i);
            zphi += z[i] * phi[i];
        }
        double r1 = none - dval(g, pz, v) - zphi, r2 = none - dval(g, c, v) - (total - zphi);
        for (int i = 0; i < n; i++) uj[i] = 0.5 * k->pw[j] * (z[i] ? r1 : r2);
        for (int i = 0; i < n; i++) {
            mean[i] += uj[i];
            for (int l = 0; l <= i; l++) k->S[(size_t)i * n + l] += uj[i] * uj[l];
        }
    }
    double m = (double)k->m;
    for (int i = 0; i < n; i++)
        for (int l = 0; l <= i; l++) {
            double cv = m > 1 ? (k->S[(size_t)i * n + l] - mean[i] * mean[l] / m) / (m - 1) : 0;
            k->S[(size_t)i * n + l] = k->S[(size_t)l * n + i] = cv;
        }
    /* Var(phi_i) = mu_r^2 / m * (M S M^T)_ii */
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int a = 0; a < n; a++) {
            double t = 0;
            for (int l = 0; l < n; l++) t += k->S[(size_t)a * n + l] * k->A[(size_t)i * n + l];
            s += k->A[(size_t)i * n + a] * t;
        }
        se[i] = m > 1 ? k->mu_r * sqrt(s > 0 ? s / m : 0) : (k->mu_r > 0 ? INFINITY : 0);
    }
    return true;
}

/*
 * kernel: sizes 1 and n-1 exact, the others drawn with q proportional to the
 * kernel (weight 1); leverage: every size drawn uniformly (weight mu / q).
 * Pairs come in batches of 16; the stopping rule is checked after each batch,
 * once there are at least max(min_pairs, n) pairs.
 */
static dp_status est_kernel(const struct dp_shapley_game *g, const struct dp_shapley_opts *o,
                            struct dp_shapley_result *res, bool leverage) {
    int n = g->n, nw = g->nw;
    enum { BATCH = 16 };
    size_t nn = (size_t)n * n;
    struct kreg k = {.n = n, .nw = nw};
    double *mu = dp_calloc((size_t)n + 1, sizeof *mu), *q = dp_calloc((size_t)n + 1, sizeof *q);
    bool *exact = dp_calloc((size_t)n + 1, sizeof *exact);
    k.A_ex = dp_calloc(nn, sizeof(double));
    k.b_ex = dp_calloc(2 * (size_t)n, sizeof(double));
    k.A_sum = dp_calloc(nn, sizeof(double));
    k.b_sum = dp_calloc(2 * (size_t)n, sizeof(double));
    k.A = dp_malloc(nn * sizeof(double));
    k.Ainv = dp_malloc(nn * sizeof(double));
    k.S = dp_malloc(nn * sizeof(double));
    k.work = dp_malloc((nn + (size_t)n) * sizeof(double));
    k.u = dp_malloc((5 * (size_t)n + (size_t)nw) * sizeof(double));
    uint64_t *sets = dp_malloc(((size_t)2 * BATCH + 2 * (size_t)n + 2) * nw * 8);
    int *p = dp_malloc((size_t)n * sizeof *p);
    double *phi = dp_malloc((size_t)n * sizeof *phi), *se = dp_malloc((size_t)n * sizeof *se);
    dp_status st = mu && q && exact && k.A_ex && k.b_ex && k.A_sum && k.b_sum && k.A && k.Ainv && k.S && k.work &&
                   k.u && sets && p && phi && se ? DP_OK : DP_ERR_NOMEM;
    /* the kernel over sizes 1..n-1, the exact sizes, the proposal over the others */
    double ktot = 0, qtot = 0;
    for (int s = 1; !st && s < n; s++) ktot += mu[s] = 1.0 / ((double)s * (n - s));
    for (int s = 1; !st && s < n; s++) {
        mu[s] /= ktot;
        exact[s] = !leverage && (s == 1 || s == n - 1);
        if (!exact[s]) k.mu_r += mu[s], qtot += q[s] = leverage ? 1.0 : mu[s];
    }
    for (int s = 1; !st && s < n; s++) q[s] = exact[s] ? 0 : q[s] / qtot;
    /* none, all and the exact sizes' coalitions (sizes 1 and n-1: n each) */
    int64_t C = 0;
    if (!st) {
        memset(sets, 0, (size_t)nw * 8);
        set_all(sets + nw, n, nw);
        C = 2;
        for (int s = 1; s < n; s++) {
            if (!exact[s]) continue;
            DP_ASSERT(s == 1 || s == n - 1);
            for (int i = 0; i < n; i++) {
                uint64_t *x = sets + (size_t)C++ * nw;
                if (s == 1) {
                    memset(x, 0, (size_t)nw * 8);
                    bit_set(x, i);
                } else {
                    set_all(x, n, nw);
                    bit_clear(x, i);
                }
            }
        }
        st = g->need(g->ctx, sets, C);
    }
    double none[2] = {0, 0}, delta[2] = {0, 0};
    for (int v = 0; !st && v < 2; v++) {
        if (!o->want[v]) continue;
        none[v] = dval(g, sets, v);
        delta[v] = none[v] - dval(g, sets + nw, v);
    }
    for (int64_t c = 2; !st && c < C; c++) { /* each coalition of size s weighs mu(s) / C(n, s) = mu(s) / n */
        int s = 0;
        for (int i = 0; i < n; i++) s += bit_get(sets + (size_t)c * nw, i);
        add_point(g, sets + (size_t)c * nw, mu[s] / n, k.A_ex, k.b_ex, none, o->want);
    }
    int64_t max_pairs = k.mu_r > 0 ? (o->samples * (n + 1) + 1) / 2 : 0;
    if (max_pairs < 1 && k.mu_r > 0) max_pairs = 1;
    bool active[2] = {o->want[0], o->want[1]};
    struct dp_rng rng = dp_rng_seeded(o->seed, leverage ? DP_RNG_LEVERAGE : DP_RNG_KERNEL, 0);
    int min_pairs = o->min_pairs > n ? o->min_pairs : n;
    while (!st && k.m < max_pairs && (active[0] || active[1])) {
        int nb = max_pairs - k.m < BATCH ? (int)(max_pairs - k.m) : BATCH;
        if (k.m + nb > k.cap) {
            int64_t cap = k.cap ? 2 * k.cap : 256;
            uint64_t *pz = realloc(k.pz, (size_t)cap * nw * 8);
            if (pz) k.pz = pz;
            double *pw = realloc(k.pw, (size_t)cap * sizeof *pw);
            if (pw) k.pw = pw;
            if (!pz || !pw) {
                st = DP_ERR_NOMEM;
                break;
            }
            k.cap = cap;
        }
        for (int b = 0; b < nb; b++) {
            double x = dp_rng_unit(&rng), cum = 0;
            int s = 0;
            for (int t = 1; t < n && !s; t++) {
                cum += q[t];
                if (!exact[t] && (x < cum || t == n - 1 || cum >= 1)) s = t;
            }
            if (!s) /* rounding: the last sampled size */
                for (int t = n - 1; t >= 1 && !s; t--)
                    if (!exact[t]) s = t;
            for (int i = 0; i < n; i++) p[i] = i;
            draw_subset(&rng, p, n, s);
            uint64_t *z = sets + (size_t)(2 * b) * nw, *zc = z + nw;
            memset(z, 0, (size_t)nw * 8);
            for (int j = 0; j < s; j++) bit_set(z, p[j]);
            set_all(zc, n, nw);
            for (int w = 0; w < nw; w++) zc[w] &= ~z[w];
            memcpy(k.pz + (size_t)(k.m + b) * nw, z, (size_t)nw * 8);
            k.pw[k.m + b] = (mu[s] / k.mu_r) / q[s];
        }
        st = g->need(g->ctx, sets, 2 * (int64_t)nb);
        for (int b = 0; !st && b < nb; b++) {
            const uint64_t *z = sets + (size_t)(2 * b) * nw;
            double w = 0.5 * k.pw[k.m + b];
            bool want1[2] = {active[0], active[1]};
            add_point(g, z, w, k.A_sum, k.b_sum, none, want1);
            add_point(g, z + nw, w, k.A_sum, k.b_sum, none, want1);
        }
        if (st) break;
        k.m += nb;
        if (k.m < min_pairs || !(o->tol > 0)) continue;
        for (int v = 0; v < 2; v++) {
            if (!active[v] || !kreg_solve(g, &k, v, none[v], delta[v], phi, se)) continue;
            bool below = true;
            for (int i = 0; i < n && below; i++) below = se[i] < o->tol;
            if (below) {
                active[v] = false;
                res->converged[v] = true;
                res->pairs[v] = (int)k.m;
                memcpy(res->phi[v], phi, (size_t)n * sizeof *phi);
                memcpy(res->se[v], se, (size_t)n * sizeof *se);
            }
        }
    }
    for (int v = 0; !st && v < 2; v++) {
        if (!active[v]) continue;
        res->pairs[v] = (int)k.m;
        if (!kreg_solve(g, &k, v, none[v], delta[v], res->phi[v], res->se[v]))
            for (int i = 0; i < n; i++) res->phi[v][i] = NAN, res->se[v][i] = INFINITY;
        res->converged[v] = k.mu_r == 0;
    }
    for (int v = 0; v < 2; v++) res->samples[v] = 2 * (int64_t)res->pairs[v];
    free(mu);
    free(q);
    free(exact);
    free(k.A_ex);
    free(k.b_ex);
    free(k.A_sum);
    free(k.b_sum);
    free(k.A);
    free(k.Ainv);
    free(k.S);
    free(k.work);
    free(k.u);
    free(k.pz);
    free(k.pw);
    free(sets);
    free(p);
    free(phi);
    free(se);
    return st;
}

dp_status dp_shapley_estimate(const struct dp_shapley_game *g, const struct dp_shapley_opts *o,
                              struct dp_shapley_result *r) {
    for (int v = 0; v < 2; v++) {
        r->pairs[v] = 0;
        r->samples[v] = 0;
        r->converged[v] = false;
    }
    switch (o->estimator) {
    case DP_SHAPLEY_PERMUTATION: return est_permutation(g, o, r);
    case DP_SHAPLEY_STRATIFIED: return est_stratified(g, o, r);
    case DP_SHAPLEY_KERNEL: return est_kernel(g, o, r, false);
    case DP_SHAPLEY_LEVERAGE: return est_kernel(g, o, r, true);
    case DP_SHAPLEY_AUTO: /* the sampler auto falls back to (enumeration is the caller's) */
    case DP_SHAPLEY_HYBRID: return est_hybrid(g, o, r);
    default: return dp_fail(DP_ERR_ARG, "unknown Shapley estimator %d", o->estimator);
    }
}
