/*
 * bench_spec: the costs behind self-speculative decoding's speed-up on the
 * file at hand: a draft step (one decode step of the model less some
 * units) and a verification of k+1 tokens (one batched pass of the full
 * model), both relative to one decode step of the full model, each the
 * median of timed passes after a warm-up (dp_spec_time_step), repeated and
 * reported as the median of the rounds' ratios.
 *
 *   make build/bench/bench_spec
 *   build/bench/bench_spec MODEL DRAFT_UNITS[;UNITS...] [THREADS] [POS] [K_MAX]
 */
#include "spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUNDS 5
#define REPS 9

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL DRAFT_UNITS[;UNITS...] [THREADS] [POS] [K_MAX]\n", argv[0]);
        return 2;
    }
    int threads = argc > 3 ? atoi(argv[3]) : 2, pos = argc > 4 ? atoi(argv[4]) : 128, k_max = argc > 5 ? atoi(argv[5]) : 8;
    struct dp_model *m;
    if (dp_model_open(argv[1], NULL, &m)) {
        fprintf(stderr, "%s\n", dp_last_error());
        return 1;
    }
    struct dp_pool *pool = dp_pool_new(threads);
    struct dp_mask full;
    dp_mask_all(m, &full);
    double step[ROUNDS], r[ROUNDS];
    for (int i = 0; i < ROUNDS; i++)
        if (dp_spec_time_step(m, pool, &full, NULL, pos, 1, REPS, &step[i])) return fprintf(stderr, "%s\n", dp_last_error()), 1;
    double t1 = median(step, ROUNDS);
    printf("model %s, %d threads, %d cached positions: decode step %.3f ms (median)\n", argv[1], threads, pos, 1e3 * t1);
    for (int k = 1; k <= k_max; k++) {
        for (int i = 0; i < ROUNDS; i++) {
            double a, b;
            dp_spec_time_step(m, pool, &full, NULL, pos, 1, REPS, &a);
            dp_spec_time_step(m, pool, &full, NULL, pos, k + 1, REPS, &b);
            r[i] = b / a;
        }
        printf("verify %2d tokens: %.3f decode steps\n", k + 1, median(r, ROUNDS));
    }
    char *list = strdup(argv[2]);
    for (char *u = strtok(list, ";"); u; u = strtok(NULL, ";")) {
        struct dp_mask dm = full;
        if (dp_mask_drop(&dm, u)) return fprintf(stderr, "%s\n", dp_last_error()), 1;
        for (int i = 0; i < ROUNDS; i++) {
            double a, b;
            dp_spec_time_step(m, pool, &full, NULL, pos, 1, REPS, &a);
            dp_spec_time_step(m, pool, &dm, NULL, pos, 1, REPS, &b);
            r[i] = b / a;
        }
        printf("draft -%s: step %.3f decode steps (weight bytes %.3f)\n", u, median(r, ROUNDS),
               (double)dp_spec_step_bytes(m, &dm) / (double)dp_spec_step_bytes(m, &full));
    }
    free(list);
    dp_pool_free(pool);
    dp_model_close(m);
    return 0;
}
