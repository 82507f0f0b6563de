/*
 * recovery: the recovery object and how it is applied, below both its
 * fitting (recover.h) and the training tape (backward.h).
 *
 * A recovery holds, for each removed unit u, a replacement added to the
 * residual stream in u's place:
 *   constant (rank 0):  delta = c                    (c: dim)
 *   low rank (rank R):  delta = B (A n_u(x)) + c     (A: R x dim, B: dim x R)
 * where n_u(x) is u's own RMSNorm of its input x including its weight
 * vector. A removed block b<i> is one unit whose replacement stands for both
 * of its sublayers: it is applied at the block's FFN slot (unit 2i+1) with
 * the norm of the block's attention sublayer on the block's input.
 */
#ifndef DP_RECOVERY_H
#define DP_RECOVERY_H

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
    int host;               /* linear kinds: the unit (2*layer or 2*layer+1) whose update m the map reads; else -1 */
    float *hbuf;            /* linear kinds, host >= 0: (DP_RECOVERY_MAX_ROWS, dim) m of the current batch (hooks) */
};

/* host of a span at the start of the model: the map reads the embedding row and folds into token_embd */
#define DP_RECOVERY_HOST_EMBD (-2)

/* Rows of one forward batch the linear hooks can hold (model.c's batch is at most 256 tokens). */
#define DP_RECOVERY_MAX_ROWS 256

struct dp_recovery {
    char kind[64];
    int dim;
    int n;
    struct dp_unit_recovery *units;
    float norm_eps;         /* of the model (set by load and fit) */
};

/* Free r and its units (NULL is fine). */
void dp_recovery_free(struct dp_recovery *r);

/* The unit index (2*layer or 2*layer+1) where u's replacement is applied. */
int dp_recovery_slot(const struct dp_unit_recovery *u);
/*
 * The update of unit u (of r) for n input rows x (n, dim) into delta
 * (n, dim). z (n, dim) and az (n, rank) receive n_u(x) and A n_u(x) when not
 * NULL. The hooks and the training tape share this arithmetic.
 */
void dp_recovery_unit_delta(const struct dp_recovery *r, const struct dp_unit_recovery *u, const float *x, int n,
                            float *delta, float *z, float *az);

/*
 * Hooks that apply r's replacements in a forward pass of model m (the
 * `replace` callback of struct dp_hooks). The hooks point at r and m: keep
 * both alive while they are used.
 */
void dp_recovery_hooks(const struct dp_recovery *r, const struct dp_model *m, struct dp_hooks *out);
/* The `replace` callback those hooks use, ctx a struct dp_recovery: true when `unit` is one of its slots. */
bool dp_recovery_replace(void *ctx, int unit, const float *x, float *delta, int n, int dim, int pos0);
/* delta (n, dim) = B (A m) for the host update m (n, dim) of a linear unit u of r (src/recover_linear.c). */
void dp_recovery_linear_delta(const struct dp_recovery *r, const struct dp_unit_recovery *u, const float *m, int n,
                              float *delta);

#endif
