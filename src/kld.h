/*
 * kld: how far a pruned (or otherwise changed) model's predictions are from
 * the base model's, on the same tokens (METHODS.md section 6).
 *
 * The tokens and the scoring follow llama.cpp's perplexity protocol
 * (eval.h): floor(n/ctx) chunks, each chunk's first token replaced by BOS,
 * positions ctx/2 .. ctx-2 scored. At each scored position, with p the base
 * model's next-token distribution and q the candidate's:
 *
 *   KL(p || q) = sum_i p_i (log p_i - log q_i)      (nats, in double)
 *
 * reported as mean (with its standard error), median, 99th percentile and
 * maximum over positions; top-1 agreement is the fraction of positions
 * where both argmaxes (first index on ties) coincide; ppl_base, ppl and
 * their ratio are exp(mean NLL) of each model on the same predictions.
 *
 * llama.cpp's base-logits file (`llama-perplexity --kl-divergence-base`) is
 * written and read as llama.cpp does: "_logits_", u32 ctx, i32 n_vocab,
 * i32 n_chunk, the n_chunk*ctx token ids (as tokenized, before the BOS
 * replacement), then for each scored position n_vocab log-probabilities in
 * 16 bits: a float scale and a float minimum log-probability (two u16 pairs)
 * followed by round((logit - min_logit)/scale) per token (padded to an even
 * count), where min_logit is clamped to max_logit - 16. Against such a file
 * the statistics are computed as llama.cpp computes them: from the 16-bit
 * base log-probabilities, summing only terms whose base log-probability
 * exceeds -16, the base argmax taken on the 16-bit values.
 */
#ifndef DP_KLD_H
#define DP_KLD_H

#include "model.h"

/* (the public structures of this module are in include/depthprune.h) */

/*
 * Compare cand with base on ids (the whole text's tokens, BOS first). cand
 * may be NULL to evaluate the base alone (then only ppl_base is set). When
 * save_base is non-NULL, the base's log-probabilities are written there in
 * llama.cpp's format (atomically).
 */
dp_status dp_kld_eval(const struct dp_kld_model *base, const struct dp_kld_model *cand, struct dp_pool *pool,
                      const int *ids, int n_ids, int ctx, const char *save_base, struct dp_kld_result *out);

/* Compare cand with the base log-probabilities of a llama.cpp file (tokens and ctx from the file). */
dp_status dp_kld_eval_file(const char *base_path, const struct dp_kld_model *cand, struct dp_pool *pool,
                           struct dp_kld_result *out);

#endif
