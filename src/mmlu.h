/*
 * mmlu: 5-shot MMLU by the research's protocol (METHODS.md section 6).
 *
 * Prompt of test question q of subject s with k shots:
 *
 *   "The following are multiple choice questions (with answers) about" + " "
 *   + s's name with every "_"-separated word prefixed by a space + ".\n\n"
 *   then for each of the first k dev rows:
 *     question + "\nA. " + A + "\nB. " + B + "\nC. " + C + "\nD. " + D
 *     + "\nAnswer:" + " " + gold letter + "\n\n"
 *   then the test row the same way, ending at "\nAnswer:".
 *
 * The prompt is tokenized whole with BOS. While it is longer than ctx_limit
 * tokens the last shot is dropped; when even 0 shots do not fit, BOS and the
 * last ctx_limit-1 tokens are kept and the question counts as truncated.
 * Each choice X is scored by the log-likelihood of its continuation " X":
 * the tokens of prompt + " X" after their longest common prefix with the
 * prompt's tokens (one token such as "▁A" for Llama 2 and Mistral, so the
 * four logits of one forward pass decide; "▁" + "A" for stories260K, whose
 * log-probabilities are summed). Argmax, first on ties. Accuracy is
 * micro-averaged over all questions.
 *
 * Questions run through loglik.h, so a subject's header and shots are
 * evaluated once and every question continues from their KV cache.
 */
#ifndef DP_MMLU_H
#define DP_MMLU_H

#include "loglik.h"
#include "tasks.h"

#include <stdio.h>

/* (the public structures of this module are in include/depthprune.h) */

/* The prompt text of test row q of subject s with k shots (heap string, *len bytes). */
dp_status dp_mmlu_prompt(const struct dp_mmlu_subject *s, int q, int k, char **out, size_t *len);

/* Evaluate every test row of `data` under mask (+ hooks, may be NULL). */
dp_status dp_mmlu_eval(const struct dp_model *m, const struct dp_mask *mask, const struct dp_hooks *hooks,
                       struct dp_pool *pool, const struct dp_mmlu_data *data, const struct dp_mmlu_opts *opts,
                       struct dp_mmlu_result **out);
void dp_mmlu_result_free(struct dp_mmlu_result *r);

#endif
