/*
 * test_rng: the one generator (src/rng.h). dp_rng_raw(seed) must be the plain
 * splitmix64 sequence of its seed, which trained recovery and sampling draw
 * from: its first outputs from state 0 are the published ones of Vigna's
 * reference splitmix64.c (0xe220a8397b1dcdaf, ...). The uniform, bounded and
 * normal draws are held to values worked out from those outputs outside the
 * project (a few lines of Python: 53 high bits times 2^-53, rejection below
 * 2^64 mod n, Box-Muller's cosine branch).
 */
#include "harness.h"

#include "rng.h"

#include <math.h>

static void test_raw_stream(void) {
    static const uint64_t ref[4] = {0xe220a8397b1dcdafull, 0x6e789e6aa1b965f4ull, 0x06c45d188009454full,
                                    0xf88bb8a8724c81ecull};
    struct dp_rng r = dp_rng_raw(0);
    for (int i = 0; i < 4; i++) {
        uint64_t x = dp_rng_next(&r);
        CHECK_MSG(x == ref[i], "output %d: %016llx, splitmix64 gives %016llx", i, (unsigned long long)x,
                  (unsigned long long)ref[i]);
    }
}

static void test_draws(void) {
    struct dp_rng r = dp_rng_raw(0);
    CHECK_CLOSE(dp_rng_unit(&r), (double)(0xe220a8397b1dcdafull >> 11) * 0x1.0p-53, 0, 0);
    r = dp_rng_raw(0);
    /* u1 = 0.8833108082136426, u2 = 0.43152799704850997: sqrt(-2 ln u1) cos(2 pi u2) */
    CHECK_CLOSE(dp_rng_normal(&r), -0.4527577402174582, 0, 1e-14);
    r = dp_rng_raw(1);
    static const int below10[5] = {5, 9, 0, 5, 1};
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(dp_rng_below(&r, 10), below10[i]);
}

int main(void) {
    test_raw_stream();
    test_draws();
    return TEST_END();
}
