/*
 * shapley: estimators of Shapley values over a game given by an oracle
 * (docs/shapley-estimators.md compares them).
 *
 * The game has n players; a coalition is a bit set of nw 64-bit words. The
 * oracle evaluates lists of coalitions (`need`, in batches, so the caller can
 * share prefixes between passes and cache values) and then answers D(S) for
 * any coalition it evaluated (`d`). The value of S is v(S) = -D(S), so the
 * Shapley value of i averages D(S) - D(S + i) and the values sum to
 * D(none) - D(all). Two value kinds (0: CE, 1: logit distance) share the same
 * coalitions; each stops on its own.
 *
 * Estimators (every random choice from a seeded stream, so the same bits for
 * any thread count; checkpoint/resume is the caller's: a rerun asks the same
 * coalitions in the same batches):
 *
 *   permutation  antithetic permutation sampling (a permutation and its
 *                reverse form one sample); efficient by construction.
 *   stratified   stratified by coalition size (Castro et al. 2017): for every
 *                unit i and size s the mean marginal D(S) - D(S + i) over S of
 *                size s; sizes 0 and n-1 exact (leave-one-out and singletons),
 *                the others sampled with one coalition shared by half the
 *                units; stderr from the strata's variances. Not efficient.
 *   kernel       paired KernelSHAP (Lundberg & Lee 2017; Covert & Lee 2021):
 *                the Shapley kernel's weighted least squares with the
 *                efficiency constraint, sizes 1 and n-1 enumerated exactly,
 *                the other sizes sampled in complementary pairs; stderr by
 *                the sandwich (delta-method) covariance over pairs.
 *   leverage     Leverage SHAP (Musco & Witter 2024): the same regression
 *                with sizes drawn uniformly (the leverage scores) and every
 *                size sampled, reweighted to the kernel; the same stderr.
 *   hybrid       stratified by size, with whole strata enumerated first
 *                from the edges inwards (s = 0, n-1, 1, n-2, ...) while
 *                they fit in a quarter of the budget, the others drawn
 *                without replacement (finite population correction; a
 *                stratum drawn to its end is exact) and allocated by Neyman
 *                allocation, batches sized to the draws predicted to reach
 *                tol. With a budget of 4 * 2^n coalitions it enumerates the
 *                game: exact values, stderr 0. Not efficient unless exact.
 *
 * The kernel estimators are efficient by construction (sum = D(none) - D(all)
 * up to rounding).
 */
#ifndef DP_SHAPLEY_H
#define DP_SHAPLEY_H

#include "base.h"

enum dp_shapley_estimator {
    DP_SHAPLEY_PERMUTATION,
    DP_SHAPLEY_STRATIFIED,
    DP_SHAPLEY_KERNEL,
    DP_SHAPLEY_LEVERAGE,
    DP_SHAPLEY_HYBRID,
    DP_SHAPLEY_N_EST,
    /*
     * auto, the default: exact enumeration when the 2^n coalitions are no more
     * than the sampling budget's samples * (n + 1) coalitions (and n <= 24),
     * else hybrid (docs/shapley-estimators.md: the fewest unit evaluations to
     * a given error of the samplers at 10 sublayers). dp_shapley_estimate
     * runs hybrid for it; the enumeration is the caller's (metrics_shapley.c).
     */
    DP_SHAPLEY_AUTO = DP_SHAPLEY_N_EST
};

/* The estimator used when none is named. */
#define DP_SHAPLEY_DEFAULT DP_SHAPLEY_AUTO

/* "permutation", ..., "auto" (NULL when out of range). */
const char *dp_shapley_estimator_name(int e);
/* The estimator named s, or -1. */
int dp_shapley_estimator_parse(const char *s);

struct dp_shapley_game {
    int n, nw;   /* players, words of a coalition */
    void *ctx;
    /* Evaluate C coalitions (C x nw words; repeats and known ones allowed). */
    dp_status (*need)(void *ctx, const uint64_t *sets, int64_t C);
    /* D(S) of an evaluated coalition; value 0 or 1. */
    double (*d)(void *ctx, const uint64_t *set, int value);
};

struct dp_shapley_opts {
    int estimator;        /* enum dp_shapley_estimator */
    bool want[2];         /* value kinds to estimate */
    int64_t samples;      /* budget: permutations, or (others) samples * (n + 1) sampled coalitions */
    int min_pairs;        /* no early stop before this many pairs (rounds for stratified, draws per stratum for hybrid) */
    double tol;           /* stop when every stderr is below (0: use the whole budget) */
    uint64_t seed;
    bool all_perms;       /* permutation only: every permutation once */
};

struct dp_shapley_result {
    double *phi[2], *se[2];   /* (n) each, owned by the caller, filled for wanted kinds */
    int pairs[2];             /* antithetic or complementary pairs used (0: stratified, hybrid) */
    int64_t samples[2];       /* permutations, sampled coalitions, or stratified/hybrid marginals used */
    bool converged[2];        /* every stderr below tol */
};

/*
 * Estimate the Shapley values of the game under o into r (arrays allocated
 * by the caller). Fails only when the oracle fails or memory runs out.
 */
dp_status dp_shapley_estimate(const struct dp_shapley_game *g, const struct dp_shapley_opts *o,
                              struct dp_shapley_result *r);

#endif
