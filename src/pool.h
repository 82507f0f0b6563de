/*
 * pool: a persistent thread pool with a fixed work split.
 *
 * dp_pool_run calls fn(ctx, ith, nth) once on each of the pool's nth threads
 * (the caller is thread 0) and returns when all are done. Work is divided by
 * the callee from ith/nth into fixed contiguous shares, so which thread
 * computes a value never changes what is computed: results are identical for
 * any thread count as long as each output is produced by one thread with a
 * fixed reduction order. Workers spin briefly between jobs (decode issues
 * thousands of small jobs per second) and then sleep.
 */
#ifndef DP_POOL_H
#define DP_POOL_H

#include "base.h"

typedef void (*dp_pool_fn)(void *ctx, int ith, int nth);
/* Run fn on every thread of the pool (pool may be NULL: run on the caller alone). */
void dp_pool_run(struct dp_pool *pool, dp_pool_fn fn, void *ctx);
/* True on a pool worker, and on a caller while it runs its share of a job (dist.h shards only outside). */
bool dp_pool_inside(void);
/* The share [*lo, *hi) of n items for thread ith of nth (contiguous, sizes differ by at most 1). */
void dp_pool_split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi);

#endif
