/*
 * eval: perplexity by the two protocols of METHODS.md section 6.
 *
 * paper:    independent chunks of ctx tokens (data.h); every one of the ctx-1
 *           next-token predictions is scored; ppl = exp(mean CE over all),
 *           ppl_seq = mean over chunks of exp(mean CE of the chunk).
 * llamacpp: the whole text (one trailing newline removed) tokenized once with
 *           BOS; floor(ntok/ctx) chunks (at least 2*ctx tokens needed); each
 *           chunk's first token replaced by BOS; positions ctx/2 .. ctx-2
 *           scored; ppl = exp(mean NLL) with llama-perplexity's +/-.
 * Log-probabilities are computed from the f32 logits with a double sum.
 */
#ifndef DP_EVAL_H
#define DP_EVAL_H

#include "data.h"
#include "model.h"

/* log p(target | logits) for one row of n_vocab logits. */
double dp_log_softmax_at(const float *logits, int n_vocab, int target);

/* hooks: replacements of removed units (recoveries) or NULL. */
dp_status dp_eval_ppl_paper(const struct dp_model *m, const struct dp_mask *mask, const struct dp_hooks *hooks,
                            struct dp_pool *pool, const struct dp_chunks *ch, struct dp_ppl *out);
/* ids: the whole text's tokens (BOS first). */
dp_status dp_eval_ppl_llamacpp(const struct dp_model *m, const struct dp_mask *mask, const struct dp_hooks *hooks,
                               struct dp_pool *pool, const int *ids, int n_ids, int ctx, struct dp_ppl *out);

#endif
