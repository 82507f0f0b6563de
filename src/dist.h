/*
 * dist: the same run over several processes (MPI ranks), one of the
 * library's loops over independent items at a time (README "Running on
 * several machines").
 *
 * Every rank runs the whole program with the same arguments and maps the
 * model file itself. A loop over N independent items (sequences, chunks,
 * questions, coalition rounds) asks for its share with dp_dist_bounds,
 * computes the per-item results of its items into their slots of one array
 * of N * width doubles, and dp_dist_allgather fills in the other ranks'
 * slots, so that every rank then holds all results in item order and runs
 * the loop's own reduction over them, unchanged: the numbers are those of a
 * single process, bit for bit, whoever computed which item. Shares are
 * contiguous blocks of about equal estimated cost (tokens), so each rank
 * walks its items in the single process's order (what prefix caches rely
 * on).
 *
 * Without the MPI build (DP_MPI undefined) there is one rank: the bounds
 * are [0, N) and the collectives return at once, so the plain build
 * computes exactly what it did before. In the MPI build a loop is sharded
 * only when it runs on the thread that started the run and outside a pool
 * job ("active"): a loop nested in another's item (the MMLU oracle inside
 * score's pool workers) runs whole on each rank, as before.
 *
 * Collectives are called by every rank in the same order (all ranks take
 * the same path through the program); a rank that fails returns its error
 * to the CLI, whose exit (dp_dist_finish) aborts the whole job with the
 * rank's message, so the others never wait for it.
 */
#ifndef DP_DIST_H
#define DP_DIST_H

#include "base.h"

/* True when loops on this thread are sharded now: several ranks, the run's main thread, not inside a pool job. */
bool dp_dist_active(void);

/* At most this many ranks (bounds arrays on the stack have DP_DIST_MAX_BOUNDS entries). */
#define DP_DIST_MAX_RANKS 4096
#define DP_DIST_MAX_BOUNDS (DP_DIST_MAX_RANKS + 1)

/*
 * The shares of n items for the ranks: bounds[r] .. bounds[r+1] is rank r's
 * (bounds has dp_dist_size() + 1 entries when active, else 2: {0, n}).
 * cost: n estimated costs (>= 0) or NULL for equal ones; a share's cost
 * sum is about total / size (a deterministic function of n and cost).
 * Returns the number of shares (the ranks when active, else 1).
 */
int dp_dist_bounds(int64_t n, const double *cost, int64_t *bounds);
/* The split itself, for R shares (bounds: R + 1 entries): what dp_dist_bounds uses with the ranks. */
void dp_dist_split(int64_t n, const double *cost, int R, int64_t *bounds);
/* This rank's share [*lo, *hi) of bounds (from dp_dist_bounds). */
void dp_dist_mine(const int64_t *bounds, int64_t *lo, int64_t *hi);

/*
 * The progress to report when this rank has finished its items before `upto`
 * (its share [lo, hi) of bounds): upto itself without ranks, else the
 * fraction of the share done, scaled to all n items (rank 0 reports for the
 * job; the ranks' shares cost about the same).
 */
int64_t dp_dist_progress(const int64_t *bounds, int64_t upto);

/*
 * buf holds n = bounds[size] items of `width` doubles; this rank's items
 * are filled in. Afterwards every rank holds every item. A no-op unless
 * active.
 */
void dp_dist_allgather(double *buf, size_t width, const int64_t *bounds);
/*
 * Every rank's n_mine bytes, concatenated in rank order, into *all (a heap
 * buffer the caller frees; sizes[r]: rank r's count, sizes has a slot per
 * rank). Inactive: a copy of mine, one size.
 */
dp_status dp_dist_allgather_bytes(const void *mine, size_t n_mine, void **all, size_t *sizes);
/* Element-wise sums of n int64 over the ranks, into v (exact; a no-op unless active). */
void dp_dist_sum_i64(int64_t *v, int n);

/*
 * Read a whole file as rank 0 sees it: rank 0 reads it (dp_read_file) and
 * sends the bytes, or its absence (*exists false, DP_OK) or its error, to
 * all ranks; without ranks it is dp_read_file after a stat. Checkpoints are
 * read this way, so a restarted run sees rank 0's file on every node.
 */
dp_status dp_dist_read_file(const char *path, char **out, size_t *len, bool *exists);

#endif
