/*
 * test_shapley: the estimators of src/shapley.c on synthetic games, without a
 * model. The reference values come from the definition, computed here: phi_i
 * as the weighted sum over all coalitions S without i of D(S) - D(S + i),
 * weights |S|! (n - |S| - 1)! / n!. The oracle records which coalitions were
 * asked, and fails a check when an estimator reads a value it never asked
 * for (the real cache would assert).
 *
 * hybrid: exact (to rounding, stderr 0, converged) when the budget covers
 * the whole game up front and when its draws exhaust every sampled stratum;
 * unbiased with 2-SE coverage in [0.88, 0.99] over 200 seeds of a partial
 * budget; the stopping rule stops early at a loose tolerance; the same bits
 * for the same seed; a 70-player additive game (sizes drawn with
 * replacement) gives the additive values. permutation and kernel keep the
 * efficiency sum.
 */
#include "harness.h"

#include "shapley.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct game {
    int n;
    double a[80], b[80][80];   /* the game's parameters */
    uint8_t *asked;            /* (2^n) when n <= 20 */
    int64_t distinct, unasked; /* coalitions asked; reads of coalitions never asked */
    int64_t first;             /* coalitions of the first batch */
};

/* D(S): a saturating, strongly non-additive loss (like a network losing its sublayers), or additive for n > 20. */
static double game_d(const struct game *g, const uint64_t *set) {
    if (g->n > 20) {
        double d = 0;
        for (int i = 0; i < g->n; i++)
            if (!((set[i >> 6] >> (i & 63)) & 1)) d += g->a[i];
        return d;
    }
    double x = 0.3;
    for (int i = 0; i < g->n; i++) {
        if (!((set[0] >> i) & 1)) continue;
        x += g->a[i];
        for (int j = 0; j < i; j++)
            if ((set[0] >> j) & 1) x += g->b[i][j];
    }
    return 20.0 / (1.0 + x * x) + 0.5 * ((set[0] & 5) == 5);
}

static dp_status g_need(void *ctx, const uint64_t *sets, int64_t C) {
    struct game *g = ctx;
    if (!g->asked) return DP_OK;
    if (!g->first) g->first = C;
    for (int64_t j = 0; j < C; j++) {
        uint64_t c = sets[j];
        if (!g->asked[c]) g->distinct++;
        g->asked[c] = 1;
    }
    return DP_OK;
}

static double g_d(void *ctx, const uint64_t *set, int value) {
    struct game *g = ctx;
    if (g->asked && !g->asked[set[0]]) g->unasked++;
    return (value ? 0.5 : 1.0) * game_d(g, set);
}

static void game_init(struct game *g, int n, uint64_t seed) {
    memset(g, 0, sizeof *g);
    g->n = n;
    uint64_t s = seed;
    for (int i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        g->a[i] = 0.2 + (double)(s >> 40) / (double)(1ull << 24);
        for (int j = 0; j < i; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            g->b[i][j] = ((double)(s >> 40) / (double)(1ull << 24) - 0.5) * 0.3;
        }
    }
    if (n <= 20) g->asked = calloc((size_t)1 << n, 1);
}

static void game_reset(struct game *g) {
    if (g->asked) memset(g->asked, 0, (size_t)1 << g->n);
    g->distinct = g->unasked = g->first = 0;
}

/* The definition: phi_i = sum over S without i of |S|! (n-|S|-1)! / n! (D(S) - D(S + i)). */
static void exact_phi(const struct game *g, double *phi) {
    int n = g->n;
    double w[32];
    for (int s = 0; s < n; s++) {
        double f = 1.0 / n; /* 1 / (n C(n-1, s)) */
        for (int k = 1; k <= s; k++) f *= (double)k / (n - k);
        w[s] = f;
    }
    for (int i = 0; i < n; i++) {
        double sum = 0;
        for (uint64_t S = 0; S < (1ull << n); S++) {
            if ((S >> i) & 1) continue;
            uint64_t T = S | 1ull << i;
            sum += w[__builtin_popcountll(S)] * (game_d(g, &S) - game_d(g, &T));
        }
        phi[i] = sum;
    }
}

static struct dp_shapley_result run(struct game *g, int est, int64_t samples, double tol, uint64_t seed, double *phi,
                                    double *se) {
    struct dp_shapley_game gm = {g->n, (g->n + 63) / 64, g, g_need, g_d};
    struct dp_shapley_opts o = {.estimator = est, .want = {true, true}, .samples = samples, .min_pairs = 8,
                                .tol = tol, .seed = seed};
    struct dp_shapley_result r = {.phi = {phi, phi + g->n}, .se = {se, se + g->n}};
    game_reset(g);
    CHECK(dp_shapley_estimate(&gm, &o, &r) == DP_OK);
    CHECK_MSG(g->unasked == 0, "%s: %lld reads of coalitions never asked", dp_shapley_estimator_name(est),
              (long long)g->unasked);
    return r;
}

static void test_hybrid_exact(void) {
    struct game g;
    double ex[16], phi[32], se[32];
    for (int n = 4; n <= 10; n += 3) {
        game_init(&g, n, 7 + n);
        exact_phi(&g, ex);
        /* up front: 4 * 2^n coalitions of budget enumerate everything */
        int64_t K = (4 << n) / (n + 1) + 1;
        struct dp_shapley_result r = run(&g, DP_SHAPLEY_HYBRID, K, 0, 1, phi, se);
        CHECK_EQ_INT(g.distinct, 1 << n);
        CHECK(r.converged[0] && r.converged[1]);
        double sum = 0, none = 0, all;
        uint64_t z = 0, a = (1ull << n) - 1;
        none = game_d(&g, &z);
        all = game_d(&g, &a);
        for (int i = 0; i < n; i++) {
            CHECK_CLOSE(phi[i], ex[i], 1e-12, 1e-12);
            CHECK_CLOSE(phi[n + i], 0.5 * ex[i], 1e-12, 1e-12);
            CHECK(se[i] == 0 && se[n + i] == 0);
            sum += phi[i];
        }
        CHECK_CLOSE(sum, none - all, 1e-12, 1e-12); /* exact, hence efficient */
        free(g.asked);
    }
    /* n = 8, budget 900: strata 3 and 4 sampled, drawn to their ends: exact too */
    game_init(&g, 8, 3);
    exact_phi(&g, ex);
    struct dp_shapley_result r = run(&g, DP_SHAPLEY_HYBRID, 100, 0, 5, phi, se);
    CHECK(r.converged[0]);
    for (int i = 0; i < 8; i++) {
        CHECK_CLOSE(phi[i], ex[i], 1e-12, 1e-12);
        CHECK_MSG(se[i] == 0, "unit %d: stderr %g after every stratum was drawn", i, se[i]);
    }
    free(g.asked);
}

/*
 * The whole strata enumerated first, from the edges inwards (s = 1, 8, 2, 7,
 * 3, 6, 4: sizes s and s + 1), while the coalitions fit in a quarter of the
 * budget K (n + 1), n = 10. Always sizes 0, 1, 9, 10: 22 coalitions; then
 * size 2 (67), 8 (112), 3 (232), 7 (352), 4 (562), 6 (772), 5 (1024).
 * K = 20: quota 55 -> 22; 80: 220 -> 112; 100: 275 -> 232; 200: 550 -> 352;
 * 372: 1023 -> 772; 373: 1025 -> all 1024.
 */
static void test_hybrid_quota(void) {
    struct game g;
    game_init(&g, 10, 23);
    double phi[32], se[32];
    static const struct { int64_t K, first; } want[] = {{20, 22}, {80, 112}, {100, 232}, {200, 352}, {372, 772}, {373, 1024}};
    for (int k = 0; k < 6; k++) {
        run(&g, DP_SHAPLEY_HYBRID, want[k].K, 0, 1, phi, se);
        CHECK_MSG(g.first == want[k].first, "K %lld: first batch %lld coalitions, expected %lld", (long long)want[k].K,
                  (long long)g.first, (long long)want[k].first);
    }
    free(g.asked);
}

/* 200 seeds of a partial budget: unbiased, 2-SE intervals cover 88-99 % */
static void test_hybrid_coverage(void) {
    struct game g;
    int n = 10, seeds = 200;
    game_init(&g, n, 11);
    double ex[16], phi[32], se[32], mean_err[16] = {0}, sq_err[16] = {0};
    exact_phi(&g, ex);
    int cover = 0, total = 0;
    int64_t distinct = 0;
    for (int seed = 1; seed <= seeds; seed++) {
        struct dp_shapley_result r = run(&g, DP_SHAPLEY_HYBRID, 80, 0, (uint64_t)seed, phi, se);
        CHECK(!r.converged[0] && r.samples[0] > 0 && r.pairs[0] == 0);
        distinct += g.distinct;
        for (int i = 0; i < n; i++) {
            double e = phi[i] - ex[i];
            CHECK(se[i] > 0 && isfinite(se[i]));
            cover += fabs(e) <= 2 * se[i];
            total++;
            mean_err[i] += e / seeds;
            sq_err[i] += e * e / seeds;
        }
    }
    double c = (double)cover / total;
    CHECK_MSG(c >= 0.88 && c <= 0.99, "2-SE coverage %.3f", c);
    CHECK_MSG(distinct < (int64_t)seeds << n, "partial budget: %lld coalitions over %d seeds", (long long)distinct, seeds);
    for (int i = 0; i < n; i++) {
        double sd_mean = sqrt((sq_err[i] - mean_err[i] * mean_err[i]) / (seeds - 1));
        CHECK_MSG(fabs(mean_err[i]) <= 4 * sd_mean + 1e-12, "unit %d: bias %.5f, stderr of the mean %.5f", i, mean_err[i],
                  sd_mean);
    }
    free(g.asked);
}

static void test_hybrid_stopping(void) {
    struct game g;
    int n = 10;
    game_init(&g, n, 13);
    double phi[32], se[32], phi2[32], se2[32];
    /* a loose tolerance stops before the budget, with every stderr below it */
    struct dp_shapley_result r = run(&g, DP_SHAPLEY_HYBRID, 200, 0.05, 2, phi, se);
    int64_t early = g.distinct;
    CHECK(r.converged[0] && r.converged[1]);
    for (int i = 0; i < n; i++) CHECK(se[i] < 0.05 && se[n + i] < 0.05);
    run(&g, DP_SHAPLEY_HYBRID, 200, 0, 2, phi2, se2);
    CHECK_MSG(early < g.distinct, "tol 0.05: %lld coalitions, whole budget %lld", (long long)early, (long long)g.distinct);
    /* the same seed, the same bits; another seed, other values */
    run(&g, DP_SHAPLEY_HYBRID, 200, 0.05, 2, phi2, se2);
    CHECK(!memcmp(phi, phi2, sizeof(double) * 2 * n) && !memcmp(se, se2, sizeof(double) * 2 * n));
    run(&g, DP_SHAPLEY_HYBRID, 200, 0.05, 3, phi2, se2);
    CHECK(memcmp(phi, phi2, sizeof(double) * n) != 0);
    free(g.asked);
}

/* 70 players (two words per coalition, middle sizes drawn with replacement): an additive game's values */
static void test_hybrid_large(void) {
    struct game g;
    game_init(&g, 70, 17);
    double phi[140], se[140];
    struct dp_shapley_result r = run(&g, DP_SHAPLEY_HYBRID, 600, 0, 1, phi, se);
    CHECK(r.samples[0] > 0);
    for (int i = 0; i < 70; i++) {
        CHECK_CLOSE(phi[i], g.a[i], 1e-9, 1e-9);
        CHECK(se[i] >= 0 && se[i] < 1e-6);
    }
}

static void test_efficient(void) {
    struct game g;
    int n = 8;
    game_init(&g, n, 19);
    uint64_t z = 0, a = (1ull << n) - 1;
    double delta = game_d(&g, &z) - game_d(&g, &a), phi[32], se[32];
    for (int est = 0; est < DP_SHAPLEY_N_EST; est++) {
        if (est != DP_SHAPLEY_PERMUTATION && est != DP_SHAPLEY_KERNEL && est != DP_SHAPLEY_LEVERAGE) continue;
        run(&g, est, 40, 0, 1, phi, se);
        double t = 0;
        for (int i = 0; i < n; i++) t += phi[i];
        CHECK_MSG(fabs(t - delta) <= 1e-9 * fabs(delta), "%s: sum %.12f, D(none) - D(all) %.12f",
                  dp_shapley_estimator_name(est), t, delta);
    }
    free(g.asked);
}

int main(void) {
    test_hybrid_exact();
    test_hybrid_quota();
    test_hybrid_coverage();
    test_hybrid_stopping();
    test_hybrid_large();
    test_efficient();
    return TEST_END();
}
