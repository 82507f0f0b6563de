/*
 * loglik: log-likelihoods of continuations, with prefix caching.
 *
 * Every multiple-choice evaluation (MMLU, HellaSwag, ARC, ...) asks the same
 * question: given k token sequences that share a context, what is the summed
 * log-probability of each one's continuation tokens? This module answers it
 * while evaluating as few tokens as possible:
 *
 * - Within a group (the choices of one question), the longest token prefix
 *   common to all k sequences is evaluated once; each sequence then runs only
 *   its own remaining tokens from there (its last token is never run: it is
 *   only predicted).
 * - Across groups, the session keeps the KV cache of the last sequence it
 *   ran together with its token ids; the next feed rewinds the cache to the
 *   longest prefix it shares with the new tokens (dp_session_rewind) and runs
 *   only the rest. Questions of one MMLU subject share the header and the
 *   few-shot examples, so those are evaluated once per subject, not once per
 *   question.
 *
 * Results do not depend on the caching beyond float rounding: attention and
 * norms are computed row by row, but the kernels choose the summation order
 * of a matrix product by batch size (src/kernels.c), so a sequence split
 * into other batches may differ in the last bits of its log-probabilities
 * (about 1e-5 on a sum over a few tokens). The tests check the scores
 * against evaluation from scratch (prefix_cache = false, which starts every
 * group from an empty cache and so evaluates what a naive run would).
 * tokens_naive counts what a run without cross-group caching evaluates: per
 * group, the common prefix once plus each sequence's remaining tokens.
 */
#ifndef DP_LOGLIK_H
#define DP_LOGLIK_H

#include "model.h"

struct dp_loglik_seq {
    const int *ids;   /* the whole sequence, BOS first: context then continuation */
    int n;
    int start;        /* index of the first scored token (>= 1); n - start tokens are scored */
};

struct dp_loglik_stats {
    int64_t tokens_evaluated;  /* tokens run through the model */
    int64_t tokens_naive;      /* what a run without cross-group caching would run */
    int64_t groups;
};

struct dp_loglik;

/*
 * A scorer for sequences of at most n_ctx tokens under mask (+ hooks, may be
 * NULL), with its own session. prefix_cache false: no reuse across groups.
 */
dp_status dp_loglik_new(const struct dp_model *m, const struct dp_mask *mask, const struct dp_hooks *hooks,
                        struct dp_pool *pool, int n_ctx, bool prefix_cache, struct dp_loglik **out);
void dp_loglik_free(struct dp_loglik *l);

/*
 * Score a group of k sequences: sum[i] = sum over t in [start_i, n_i) of
 * log p(ids_i[t] | ids_i[0..t)). Fails (DP_ERR_ARG) when a sequence is longer
 * than n_ctx or a start is outside [1, n].
 */
dp_status dp_loglik_group(struct dp_loglik *l, const struct dp_loglik_seq *seqs, int k, double *sum);

/* Longest token prefix common to all k sequences. */
int dp_loglik_common_prefix(const struct dp_loglik_seq *seqs, int k);

/* Length of the common prefix of two id arrays. */
int dp_loglik_lcp(const int *a, int na, const int *b, int nb);

const struct dp_loglik_stats *dp_loglik_stats(const struct dp_loglik *l);

/*
 * Sharding a run of groups over ranks (dist.h): a rank whose share starts at
 * group g feeds groups 0..g-1 dry (dp_loglik_dry true: the cache's ids and
 * the summation order of each cached row are tracked, nothing is computed,
 * scored (sums 0) or counted), then dp_loglik_prime computes the cache
 * those groups leave, row by row in the order a single process used, so
 * group g and the rest give a single process's bits and counts.
 * dp_loglik_stats_sum adds the ranks' counts (a collective).
 */
void dp_loglik_dry(struct dp_loglik *l, bool dry);
dp_status dp_loglik_prime(struct dp_loglik *l);
void dp_loglik_stats_sum(struct dp_loglik *l);

/*
 * Tokenize len bytes of text with BOS into *buf (a heap array of *cap ids,
 * grown as needed; may start NULL/0); *n receives the count.
 */
dp_status dp_loglik_tokenize(const struct dp_tokenizer *t, const char *text, size_t len, int **buf, int *cap, int *n);

#endif
