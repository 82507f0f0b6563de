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
 * A removed block b<i> is one unit whose replacement stands for both of its
 * sublayers: it is applied at the block's FFN slot (unit 2i+1) with the norm
 * n_u of the block's attention sublayer on the block's input (the input of
 * unit 2i), the forward pass seeing nothing at unit 2i.
 */
#ifndef DP_RECOVER_H
#define DP_RECOVER_H

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
};

struct dp_recovery {
    char kind[64];
    int dim;
    int n;
    struct dp_unit_recovery *units;
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

#endif
