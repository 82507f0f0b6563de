/*
 * rng: the project's one random-number generator, splitmix64 streams.
 *
 * Every random choice of a metric comes from a stream named by (seed, tag,
 * index), drawn outside the forward passes, so results never depend on the
 * number of threads. Sampling (spec.c) and trained recovery (recover.c)
 * draw from the plain splitmix64 sequence of their seed (dp_rng_raw), the
 * MMLU oracle (metrics_mmlu.c) from states it mixes itself with dp_mix64:
 * each keeps the stream it had before the copies were merged here.
 * Header-only: a handful of static inline functions.
 */
#ifndef DP_RNG_H
#define DP_RNG_H

#include <math.h>
#include <stdint.h>

static inline uint64_t dp_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

struct dp_rng {
    uint64_t s;
};

/* The stream `index` of family `tag` under `seed`. */
static inline struct dp_rng dp_rng_seeded(uint64_t seed, uint64_t tag, uint64_t index) {
    struct dp_rng r = {dp_mix64(seed + 0x9E3779B97F4A7C15ull * (1 + dp_mix64(tag + 0x632BE59BD9B4E019ull * (1 + index))))};
    return r;
}

/* The stream whose state starts at `state` (splitmix64 of a seed as it is). */
static inline struct dp_rng dp_rng_raw(uint64_t state) {
    struct dp_rng r = {state};
    return r;
}

static inline uint64_t dp_rng_next(struct dp_rng *r) { return dp_mix64(r->s += 0x9E3779B97F4A7C15ull); }

/* Uniform in [0, n) without modulo bias (n > 0). */
static inline uint64_t dp_rng_below(struct dp_rng *r, uint64_t n) {
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = dp_rng_next(r);
        if (x >= threshold) return x % n;
    }
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double dp_rng_unit(struct dp_rng *r) { return (double)(dp_rng_next(r) >> 11) * 0x1.0p-53; }

/* Standard normal by Box-Muller (two uniform draws, the cosine branch). */
static inline double dp_rng_normal(struct dp_rng *r) {
    double u1 = dp_rng_unit(r), u2 = dp_rng_unit(r);
    return sqrt(-2.0 * log(u1 > 0 ? u1 : 0x1.0p-53)) * cos(6.283185307179586 * u2);
}

/* Streams of the random metrics. */
enum { DP_RNG_BANZHAF = 1, DP_RNG_SHAPLEY = 2, DP_RNG_STRATIFIED = 3, DP_RNG_KERNEL = 4, DP_RNG_LEVERAGE = 5, DP_RNG_HYBRID = 6 };

#endif
