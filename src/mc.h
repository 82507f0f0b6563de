/*
 * mc: zero-shot multiple-choice tasks (HellaSwag, ARC, PIQA, WinoGrande,
 * BoolQ; texts as in tasks.h), METHODS.md section 6.
 *
 * Every choice c is the text context_c + cont_c, tokenized whole with BOS.
 * Its scored tokens are those after its longest common token prefix with
 * the context's own tokens, except for HellaSwag, which follows llama.cpp's
 * `llama-perplexity --hellaswag`: there the scored tokens of every ending are
 * those after the longest prefix common to all four sequences. Two scores:
 * the sum of the scored tokens' log-probabilities (acc) and their mean
 * (acc_norm; llama.cpp's HellaSwag figure). Argmax, first on ties.
 *
 * A group longer than ctx_limit tokens loses the same number of tokens right
 * after BOS in every choice (its shared context is cut on the left) and
 * counts as truncated.
 */
#ifndef DP_MC_H
#define DP_MC_H

#include "loglik.h"
#include "tasks.h"

/* (the public structures of this module are in include/depthprune.h) */

dp_status dp_mc_eval(const struct dp_model *m, const struct dp_mask *mask, const struct dp_hooks *hooks,
                     struct dp_pool *pool, const struct dp_mc_set *set, const struct dp_mc_opts *opts,
                     struct dp_mc_result **out);
void dp_mc_result_free(struct dp_mc_result *r);

#endif
