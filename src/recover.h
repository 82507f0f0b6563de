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
 */
#ifndef DP_RECOVER_H
#define DP_RECOVER_H

#include "data.h"
#include "model.h"

struct dp_unit_recovery {
    char unit[16];          /* "b2", "a4", "f0" */
    int layer;              /* block index */
    char kind;              /* 'b', 'a' or 'f' */
    int rank;               /* 0 for a constant */
    float *c;               /* (dim) */
    float *A;               /* (rank, dim) row-major: rank rows of dim */
    float *B;               /* (dim, rank) row-major: dim rows of rank */
    double explained_var;   /* lowrank fits: fraction of the update's variance explained (NAN if n/a) */
    float *norm;            /* (dim) the unit's RMSNorm weight, dequantized (set by load and fit) */
};

struct dp_recovery {
    char kind[64];
    int dim;
    int n;
    struct dp_unit_recovery *units;
    float norm_eps;         /* of the model (set by load and fit) */
};

void dp_recovery_free(struct dp_recovery *r);
dp_status dp_recovery_load(const char *path, const struct dp_model *m, struct dp_recovery **out);
dp_status dp_recovery_save(const struct dp_recovery *r, const char *path);
/*
 * Hooks that apply r's replacements in a forward pass of model m (the
 * `replace` callback of struct dp_hooks). The hooks point at r and m: keep
 * both alive while they are used.
 */
void dp_recovery_hooks(const struct dp_recovery *r, const struct dp_model *m, struct dp_hooks *out);

/* ---- fitting (METHODS.md section 7) ---- */

enum dp_recover_method {
    DP_RECOVER_NONE,
    DP_RECOVER_MEAN,             /* "mean" */
    DP_RECOVER_LOWRANK,          /* "lowrank:R" (closed form; R = 0 is mean) */
    DP_RECOVER_BIAS_TRAINED,     /* "bias-trained" */
    DP_RECOVER_LOWRANK_TRAINED,  /* "lowrank-trained:R" */
};

enum dp_objective { DP_OBJECTIVE_CE, DP_OBJECTIVE_KL };

/* Parse a kind ("none", "mean", "lowrank:R", "bias-trained", "lowrank-trained:R"). */
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
/* The unit index (2*layer or 2*layer+1) where u's replacement is applied. */
int dp_recovery_slot(const struct dp_unit_recovery *u);
/*
 * The update of unit u (of r) for n input rows x (n, dim) into delta
 * (n, dim). z (n, dim) and az (n, rank) receive n_u(x) and A n_u(x) when not
 * NULL. The hooks and the training tape share this arithmetic.
 */
void dp_recovery_unit_delta(const struct dp_recovery *r, const struct dp_unit_recovery *u, const float *x, int n,
                            float *delta, float *z, float *az);

#endif
