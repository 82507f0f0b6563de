/*
 * test_dist: what the MPI sharding relies on, checked in one process
 * (tests/cli_mpi.sh runs the ranks themselves).
 *
 * - dp_dist_split: contiguous shares covering [0, n) in order; with costs,
 *   every share's cost within one item's cost of total / R (against sums
 *   computed here), equal counts without.
 * - dp_loglik_dry + dp_loglik_prime: a rank that starts at group g feeds
 *   groups 0..g-1 dry, rebuilds the cache, and then scores groups g.. with
 *   the bits (memcmp) and token counts of one run through all groups, for
 *   every g. The groups are built so that rows of the reused prefixes come
 *   from batches in both summation orders (below and above
 *   DP_GEMM_MIN_TOK, and past a DP_SESSION_MAX_BATCH split), which is what
 *   a rebuild from scratch would get wrong.
 * - without ranks, the public calls are no-ops: rank 0 of 1, bounds {0, n},
 *   dp_dist_same succeeds.
 */
#include "harness.h"

#include "dist.h"
#include "kernels.h"
#include "loglik.h"
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_split(void) {
    int64_t b[9];
    dp_dist_split(10, NULL, 3, b);
    CHECK_EQ_INT(b[0], 0);
    CHECK_EQ_INT(b[1], 4);
    CHECK_EQ_INT(b[2], 7);
    CHECK_EQ_INT(b[3], 10);
    /* costs: one heavy item among light ones */
    double cost[40];
    for (int i = 0; i < 40; i++) cost[i] = 1 + (i % 7) + (i == 13 ? 30 : 0);
    for (int R = 1; R <= 8; R++) {
        dp_dist_split(40, cost, R, b);
        double total = 0, max_item = 0;
        for (int i = 0; i < 40; i++) {
            total += cost[i];
            if (cost[i] > max_item) max_item = cost[i];
        }
        CHECK_EQ_INT(b[0], 0);
        CHECK_EQ_INT(b[R], 40);
        for (int r = 0; r < R; r++) {
            CHECK(b[r] <= b[r + 1]);
            double share = 0;
            for (int64_t i = b[r]; i < b[r + 1]; i++) share += cost[i];
            CHECK_MSG(fabs(share - total / R) <= max_item, "R %d share %d: cost %g, target %g", R, r, share, total / R);
        }
    }
    /* more shares than items: empty shares, still ordered and covering */
    dp_dist_split(2, cost, 5, b);
    CHECK_EQ_INT(b[5], 2);
    for (int r = 0; r < 5; r++) CHECK(b[r] <= b[r + 1]);
}

static void test_single_rank(void) {
    CHECK_EQ_INT(dp_dist_rank(), 0);
    CHECK_EQ_INT(dp_dist_size(), 1);
    CHECK(!dp_dist_active());
    int64_t b[2], lo, hi;
    CHECK_EQ_INT(dp_dist_bounds(17, NULL, b), 1);
    dp_dist_mine(b, &lo, &hi);
    CHECK_EQ_INT(lo, 0);
    CHECK_EQ_INT(hi, 17);
    CHECK_EQ_INT(dp_dist_progress(b, 5), 5);
    CHECK(dp_dist_same("x", "abc") == DP_OK);
}

#define N_GROUPS 9
#define K 3

/*
 * Group g: a prefix shared by all groups (a long run, then pieces that
 * consecutive groups share to different lengths), a middle of its own whose
 * length varies around DP_GEMM_MIN_TOK, and K one- or two-token
 * continuations. ids come from the model's vocabulary by a fixed formula.
 */
static int build_group(int g, int *buf, int cap, struct dp_loglik_seq *seqs, int **ids) {
    static const int middle[N_GROUPS] = {70, 5, 40, 90, 3, 63, 64, 300, 12};
    static const int shared[N_GROUPS] = {0, 20, 75, 10, 95, 0, 30, 66, 2};
    int n = 0;
    buf[n++] = 1; /* BOS */
    for (int i = 0; i < 50; i++) buf[n++] = 3 + (i * 7) % 400;
    /* a part this group shares with the previous one */
    for (int i = 0; i < shared[g]; i++) buf[n++] = 5 + (i * 13) % 300;
    for (int i = 0; i < middle[g]; i++) buf[n++] = 7 + (i * 11 + g * 31) % 450;
    DP_ASSERT(n + 2 <= cap);
    for (int c = 0; c < K; c++) {
        memcpy(ids[c], buf, (size_t)n * sizeof *buf);
        int len = n;
        ids[c][len++] = 100 + c + g;
        if (c == 1) ids[c][len++] = 200 + g;
        seqs[c] = (struct dp_loglik_seq){ids[c], len, n};
    }
    return n;
}

static void run_groups(struct dp_loglik *l, int from, int to, int dry_before, double sums[N_GROUPS][K]) {
    int buf[1024], *ids[K], store[K][1024];
    for (int c = 0; c < K; c++) ids[c] = store[c];
    for (int g = from; g < to; g++) {
        struct dp_loglik_seq seqs[K];
        build_group(g, buf, 1000, seqs, ids);
        if (g < dry_before) dp_loglik_dry(l, true);
        else if (g == dry_before) CHECK(dp_loglik_prime(l) == DP_OK);
        double s[K];
        CHECK(dp_loglik_group(l, seqs, K, s) == DP_OK);
        if (g >= dry_before)
            for (int c = 0; c < K; c++) sums[g][c] = s[c];
    }
}

static void test_prime(struct dp_model *m, struct dp_pool *pool) {
    struct dp_mask mask;
    dp_mask_all(m, &mask);
    /* the context leaves room for prime's padded batches (the MPI build adds it) */
    int n_ctx = 512;
    double ref[N_GROUPS][K], got[N_GROUPS][K];
    struct dp_loglik *l;
    CHECK(dp_loglik_new(m, &mask, NULL, pool, n_ctx, true, &l) == DP_OK);
    run_groups(l, 0, N_GROUPS, 0, ref);
    int64_t evaluated = dp_loglik_stats(l)->tokens_evaluated;
    dp_loglik_free(l);
    for (int g0 = 1; g0 < N_GROUPS; g0++) {
        int64_t before = 0;
        /* what one run evaluates for groups 0..g0-1 */
        CHECK(dp_loglik_new(m, &mask, NULL, pool, n_ctx, true, &l) == DP_OK);
        double scratch[N_GROUPS][K];
        run_groups(l, 0, g0, 0, scratch);
        before = dp_loglik_stats(l)->tokens_evaluated;
        dp_loglik_free(l);
        memset(got, 0, sizeof got);
        CHECK(dp_loglik_new(m, &mask, NULL, pool, n_ctx, true, &l) == DP_OK);
        run_groups(l, 0, N_GROUPS, g0, got);
        CHECK_MSG(!memcmp(got[g0], ref[g0], sizeof(double) * K * (N_GROUPS - g0)),
                  "starting at group %d: the scores differ from one run's (first %.17g vs %.17g)", g0, got[g0][0],
                  ref[g0][0]);
        CHECK_MSG(dp_loglik_stats(l)->tokens_evaluated == evaluated - before,
                  "starting at group %d: %lld tokens evaluated, one run's share %lld", g0,
                  (long long)dp_loglik_stats(l)->tokens_evaluated, (long long)(evaluated - before));
        dp_loglik_free(l);
    }
}

int main(void) {
    test_split();
    test_single_rank();
    struct dp_model *m;
    if (dp_model_open(test_shared("models/stories260K/stories260K.gguf"), NULL, &m) == DP_OK) {
        struct dp_pool *pool = dp_pool_new(2);
        test_prime(m, pool);
        dp_pool_free(pool);
        dp_model_close(m);
    } else {
        CHECK_MSG(0, "%s", dp_last_error());
    }
    return TEST_END();
}
