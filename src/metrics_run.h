/*
 * metrics_run: the state of one scoring run, shared by the files of the
 * metrics module only (metrics.c: the run, its options and results;
 * metrics_static.c, metrics_loo.c, metrics_banzhaf.c, metrics_shapley.c: one
 * family of passes each; metrics_checkpoint.c: the checkpoint file).
 *
 * The run is split into four families of passes, run in this order and each
 * over all calibration sequences: static (one observed pass of the base model),
 * leave-one-out, Banzhaf, Shapley. Every number the results are made of is an
 * accumulator in `run.acc` (doubles, summed in sequence order) or an entry of
 * the Shapley coalition cache, so a checkpoint is a byte image of those and a
 * resumed run computes exactly what an uninterrupted one would.
 */
#ifndef DP_METRICS_RUN_H
#define DP_METRICS_RUN_H

#include "coalition.h"

enum { FAM_STATIC, FAM_LOO, FAM_BANZHAF, FAM_SHAPLEY, N_FAM, FAM_DONE = N_FAM };

/* Scratch of the static observer (metrics_static.c) of one worker. */
struct static_obs {
    int L, n_mu, dim, ctx;
    double *cos, *l1, *l2;   /* (n_mu + L) sums over the positions of the current sequence */
    float *block_in;         /* (ctx, dim) the stream entering the current block */
    float *h_last;           /* (L + 1, dim) the stream entering each block at the last position; [L] leaves the last */
};

/*
 * A worker evaluates whole sequences with its own evaluator and scratch.
 * With several workers (small models, where one pass is too small to split
 * well), each pool thread runs one sequence per round with single-threaded
 * passes; with one worker, the passes use the pool. Per-sequence results are
 * reduced in sequence order either way, so the bits never depend on it.
 */
struct worker {
    struct dp_evaluator ev;
    struct dp_session *session;   /* static family: a session of the base model */
    struct static_obs so;
    uint8_t *kept;                /* banzhaf: (k, n_mu) this sequence's subsets */
    int64_t *order;               /* banzhaf: (k) */
    int *perm;                    /* (n) */
    uint64_t *set;                /* (nw) */
    dp_status st;
    char err[512];
};

struct run {
    const struct dp_model *m;
    const struct dp_score_opts *o;
    const struct dp_chunks *ch;
    const struct dp_hooks *hooks;
    struct dp_pool *pool;
    struct dp_game g;
    struct dp_scores *res;
    char *key;
    int n_workers;
    int n_batch;                     /* sequences per weight pass of the one worker (>1: w holds n_batch evaluators) */
    struct worker *w;                /* (max(n_workers, n_batch)) */
    /* the coalition list of the family being run (shared, read-only in workers) */
    const uint8_t *list_kept;        /* (list_n, n_mu) */
    const int64_t *list_order;       /* (list_n) evaluation order */
    const int64_t *list_entry;       /* shapley: (list_n) cache entries */
    int64_t list_n;
    /* checkpointed state */
    int stage, next_seq;
    size_t n_acc;
    double *acc;
    double *st_cos, *st_l1, *st_l2;  /* (n_mu + L) sums over sequences of per-sequence means */
    double *st_ang;                  /* (n_spans_all) sums over sequences of span distances */
    double *loo_ce, *loo_dist;       /* (n) sums over sequences */
    double *bz;                      /* (2 values, 2 sides, 3 stats, n): sum, squares, count */
    double *base_sum;                /* (N_FAM) sums over sequences of the base model's CE */
    struct dp_cost fam[N_FAM];
    struct dp_coalition_cache cache;
    /* not checkpointed */
    int n_spans_all;
    double t_ckpt;
};

static inline int n_spans_of(int np) { return np * (np + 1) / 2; }

/* Index of the span of n present blocks starting at present block j (spans ordered by n, then j). */
static inline int span_index(int np, int n, int j) {
    int idx = 0;
    for (int k = 1; k < n; k++) idx += np - k + 1;
    return idx + j;
}

/* The Banzhaf accumulator of (value 0 CE / 1 distance, lacking 0/1, stat 0 sum / 1 squares / 2 count). */
static inline double *bz_stat(struct run *r, int value, int lacking, int stat) {
    return r->bz + ((size_t)((value * 2 + lacking) * 3 + stat)) * r->g.n;
}

static inline const int *seq_ids(const struct run *r, int q) { return r->ch->ids + (size_t)q * r->ch->ctx; }

/* ---- sequences, in rounds of one per worker (metrics.c) ---- */

/* Evaluate sequence q into out (a fixed number of doubles per family). */
typedef dp_status (*seq_fn)(struct run *r, struct worker *w, int q, double *out);
/* Add sequence q's results into the run's accumulators (called in sequence order). */
typedef void (*reduce_fn)(struct run *r, int q, const double *out);
/* Evaluate sequences q0..q0+nq-1 together on workers 0..nq-1 (nq <= n_batch), sequence i's results into outs[i]. */
typedef dp_status (*batch_fn)(struct run *r, int q0, int nq, double *const *outs);

/*
 * Every sequence from r->next_seq on, `width` doubles each, in rounds of one
 * per worker; costs go to family `fam`, progress is reported as `what`, and
 * a checkpoint is written when due (dp_metrics_checkpoint_round).
 */
dp_status dp_metrics_for_sequences(struct run *r, int fam, size_t width, seq_fn fn, reduce_fn reduce, const char *what);
/*
 * The same with n_batch sequences per round evaluated by `batch` (when
 * n_batch > 1; else as dp_metrics_for_sequences with fn).
 */
dp_status dp_metrics_for_batches(struct run *r, int fam, size_t width, seq_fn fn, batch_fn batch, reduce_fn reduce,
                                 const char *what);

/* A family is complete (it started at wall time t0, CPU time c0): the next one starts at sequence 0. */
dp_status dp_metrics_family_done(struct run *r, int fam, double t0, double c0);

/* ---- the families ---- */

dp_status dp_metrics_static_run(struct run *r);   /* metrics_static.c */
dp_status dp_metrics_loo_run(struct run *r);      /* metrics_loo.c */
dp_status dp_metrics_banzhaf_run(struct run *r);  /* metrics_banzhaf.c */
dp_status dp_metrics_shapley_run(struct run *r);  /* metrics_shapley.c */

/* ---- checkpoints (metrics_checkpoint.c) ---- */

/* Write the checkpoint (a no-op without o->checkpoint), atomically. */
dp_status dp_metrics_checkpoint_write(struct run *r);
/*
 * Restore state from the checkpoint when it exists and its key matches; a
 * file with another key is ignored (and later overwritten). A damaged file
 * fails naming it.
 */
dp_status dp_metrics_checkpoint_read(struct run *r);
/* After each round of sequences: a checkpoint when due, and the test interruption. */
dp_status dp_metrics_checkpoint_round(struct run *r);

#endif
