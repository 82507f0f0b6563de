/*
 * backward: gradients through the frozen upper part of a llama model, for
 * trained recoveries (METHODS.md section 7).
 *
 * A tape runs one sequence (positions 0..n-1) from a start unit to the
 * logits, keeping what the backward pass needs: each kept sublayer's input,
 * normed input, queries and keys after RoPE, values, FFN gate and up
 * activations; each recovered unit's normed input z and A z. The weights stay
 * frozen (and in their file type); only the recovery's parameters (c, A, B of
 * every unit) receive gradients. Attention probabilities are recomputed in
 * the backward pass rather than stored, so memory grows with n, not n^2.
 *
 * The forward arithmetic is the forward pass's own (layer.c: the same
 * functions for norms, biases, RoPE, attention and FFN), so tape logits
 * equal the hooked forward pass's bit for bit. A family op whose gradient is
 * not written (soft-capping, GELU, q/k norms, post-norms, sliding windows)
 * makes dp_tape_new fail with a line naming it. Products with transposed weights (dY W) dequantize W into a
 * transposed f32 scratch and use dp_matmul, so every result is the same for
 * any pool size.
 */
#ifndef DP_BACKWARD_H
#define DP_BACKWARD_H

#include "recovery.h"

struct dp_tape;

/*
 * A tape for sequences of up to n_max tokens of model m under mask, running
 * from unit start_unit with the replacements of r (which it reads at every
 * forward pass, so training may change r's numbers in place; its units and
 * ranks must not change). Every unit of r must be removed in mask and lie at
 * or above start_unit.
 */
dp_status dp_tape_new(const struct dp_model *m, const struct dp_mask *mask, const struct dp_recovery *r,
                      int start_unit, int n_max, struct dp_tape **out);
void dp_tape_free(struct dp_tape *t);

/*
 * Forward pass of n tokens (n <= n_max) starting from x0 ((n, dim), the
 * residual stream entering start_unit); writes logits (n, n_vocab).
 */
void dp_tape_forward(struct dp_tape *t, struct dp_pool *pool, const float *x0, int n, float *logits);

/*
 * Backward pass of the last forward: given dL/dlogits (n, n_vocab), adds
 * dL/dc, dL/dA and dL/dB of every unit of the tape's recovery into the
 * matching arrays of g (a recovery with the same units and ranks).
 */
void dp_tape_backward(struct dp_tape *t, struct dp_pool *pool, const float *dlogits, struct dp_recovery *g);

#endif
