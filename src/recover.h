/*
 * recover: performance recovery of removed units (METHODS.md section 7).
 *
 * A recovery holds, for each removed unit u, a replacement added to the
 * residual stream in u's place:
 *   mean:     delta = c                                  (c = m_u, dim)
 *   lowrank:  delta = B (A n_u(x)) + c                   (A: R x dim, B: dim x R)
 * where n_u(x) is u's own RMSNorm of its input x including its weight
 * vector. Trained kinds (bias-trained, lowrank-trained:R) have the same
 * shapes. R = 0 is a pure constant.
 *
 * On disk a recovery is a GGUF file (written with src/gguf.c) with keys
 *   depthprune.recover.kind (string: "mean", "lowrank:4", ...)
 *   depthprune.recover.units (array of strings, e.g. ["b2", "a4"])
 * and, per unit u, F32 tensors
 *   recover.<u>.c   [dim]            always
 *   recover.<u>.A   [dim, R]         (GGUF ne order: ne0 = dim) when R > 0
 *   recover.<u>.B   [R, dim]         (ne0 = R) when R > 0
 * and optionally depthprune.recover.explained_variance (array of F32, one
 * per unit, NaN where it does not apply).
 * A removed block b<i> is one unit whose replacement stands for both of its
 * sublayers: it is applied at the block's FFN slot (unit 2i+1) with the norm
 * n_u of the block's attention sublayer on the block's input (the input of
 * unit 2i), the forward pass seeing nothing at unit 2i.
 *
 * The recovery object and how it is applied (struct dp_recovery, the hooks,
 * the per-unit update the training tape shares) are recovery.h, below this
 * header and backward.h; this one fits, loads and saves recoveries.
 *
 * Linear kinds (linear, linear-cos; src/recover_linear.c, docs/recovery.md)
 * replace a whole span of removed units by a map T = I + B A applied to the
 * update m of the kept unit before the span (its host, unit number `host`):
 *   linear:   delta = B (A m)                         (c = 0)
 * carried by the span's first unit; the span's other units have rank 0, c = 0
 * and host -1. A span at the start of the model reads the embedding row
 * (host DP_RECOVERY_HOST_EMBD) and folds into token_embd. Their files add depthprune.recover.hosts (array of INT32, one
 * per unit). Export folds T into the host's output matrix (ffn_down or
 * attn_output), so the exported file has no new tensors.
 */
#ifndef DP_RECOVER_H
#define DP_RECOVER_H

#include "data.h"
#include "model.h"
#include "recovery.h"

dp_status dp_recovery_load(const char *path, const struct dp_model *m, struct dp_recovery **out);
dp_status dp_recovery_save(const struct dp_recovery *r, const char *path);

/* ---- fitting (METHODS.md section 7) ---- */

enum dp_recover_method {
    DP_RECOVER_NONE,
    DP_RECOVER_MEAN,             /* "mean" */
    DP_RECOVER_LOWRANK,          /* "lowrank:R" (closed form; R = 0 is mean) */
    DP_RECOVER_BIAS_TRAINED,     /* "bias-trained" */
    DP_RECOVER_LOWRANK_TRAINED,  /* "lowrank-trained:R" */
    DP_RECOVER_LINEAR,           /* "linear" or "linear:R" (least squares; rank R = 0: the rule in recover_linear.c) */
    DP_RECOVER_LINEAR_COS,       /* "linear-cos" or "linear-cos:R" (cosine objective) */
};

enum dp_objective { DP_OBJECTIVE_CE, DP_OBJECTIVE_KL };

/* Parse a kind ("none", "mean", "lowrank:R", "bias-trained", "lowrank-trained:R", "linear[:R]", "linear-cos[:R]"). */
dp_status dp_recover_parse_kind(const char *kind, enum dp_recover_method *method, int *rank);

struct dp_recover_opts {
    bool sequential;        /* statistics on the model pruned (and recovered) so far, in removal order */
    double ridge;           /* lowrank: ridge lambda, penalty lambda*tr(XtX)/d (default 1e-4) */
    enum dp_objective objective;  /* trained kinds: next-token CE or KL to the full model */
    int steps;              /* Adam steps (default 200) */
    double lr;              /* Adam learning rate (default 1e-2) */
    int batch;              /* sequences per step (default 8) */
    uint64_t seed;          /* batch sampling and initialisation (default 1) */
    bool init_mean;         /* trained kinds start from the mean update instead of zero */
    /* Optional progress/log callback (lines without newline); NULL for silence. */
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
    /* Progress and cancellation (stages "recovery statistics", "training recovery"); NULL: silent. */
    dp_progress_fn progress;
    void *progress_user;
};
void dp_recover_opts_default(struct dp_recover_opts *o);
/* One line (printf format, no newline) to o->log; nothing when o->log is NULL. */
void dp_recover_log(const struct dp_recover_opts *o, const char *fmt, ...) DP_PRINTF(2, 3);

/*
 * Fit the recovery `kind` of the units `order` (n_order names such as "b2",
 * "a4", in removal order) of model m on the calibration chunks. `mask` is the
 * pruned model's mask: every unit of `order` must be removed in it; units it
 * removes that are not in `order` stay plain identities. Statistics come
 * from the model with the units of `order` kept (the full model) unless
 * opts->sequential. opts may be NULL (defaults). Deterministic for any pool
 * size. On success *out is a new recovery owned by the caller (NULL for
 * kind "none").
 */
dp_status dp_recovery_fit(const struct dp_model *m, const struct dp_mask *mask, const char *const *order, int n_order,
                          const char *kind, const struct dp_chunks *calib, const struct dp_recover_opts *opts,
                          struct dp_pool *pool, struct dp_recovery **out);

/* Allocate an empty recovery of n units (names parsed and checked against m), ranks all `rank`, zero-filled. */
dp_status dp_recovery_new(const struct dp_model *m, const char *kind, const char *const *units, int n, int rank,
                          struct dp_recovery **out);
/* ---- linear kinds (src/recover_linear.c) ---- */

/* True when r is a linear kind (its units read their host's update; export folds them). */
bool dp_recovery_is_linear(const struct dp_recovery *r);
/*
 * Fit a linear kind (method DP_RECOVER_LINEAR or DP_RECOVER_LINEAR_COS, rank
 * R > 0 or 0 for the rule) into r, allocated by dp_recovery_new with rank 0
 * for the units of dp_recovery_fit's order, all removed in `mask`. Sets
 * host, A, B (and hbuf) of each span's first unit and explained_var.
 * Fails with one line for a span no kept weight can absorb.
 */
dp_status dp_recovery_fit_linear(const struct dp_model *m, const struct dp_mask *mask, struct dp_recovery *r,
                                 enum dp_recover_method method, int rank, const struct dp_chunks *calib,
                                 const struct dp_recover_opts *o, struct dp_pool *pool);

#endif
