/*
 * stats: the error bars of the evaluation suite (METHODS.md section 6).
 *
 * An accuracy p = k/n over n questions has standard error sqrt(p(1-p)/n)
 * (the binomial formula the research uses; in the unit of p). Two models
 * answering the same questions are compared by the paired difference of
 * their per-question scores d_i = a_i - b_i in {-1, 0, 1}: mean
 * D = acc_a - acc_b with standard error sqrt((mean(d^2) - D^2)/n) (the same
 * plug-in variance as the single accuracy), and McNemar's exact test on
 * the discordant questions: with b = #(a right, b wrong) and c = #(a wrong,
 * b right), the two-sided p-value is min(1, 2 P[X <= min(b,c)]) for
 * X ~ Binomial(b + c, 1/2), and 1 when b + c = 0.
 */
#ifndef DP_STATS_H
#define DP_STATS_H

#include "base.h"

/* sqrt(p(1-p)/n) for p = k/n; 0 when n == 0. */
double dp_stats_acc_stderr(int64_t k, int64_t n);

/* Two-sided exact McNemar p-value for discordant counts b and c. */
double dp_stats_mcnemar_exact(int64_t b, int64_t c);

/* Paired comparison of per-question correctness a[i], b[i] (i < n). */
void dp_stats_paired(const bool *a, const bool *b, int64_t n, struct dp_paired *out);

/*
 * Write p as a JSON object under `key`: accuracy_a, accuracy_b, diff,
 * diff_stderr (percent), a_only, b_only, n, mcnemar_p.
 */
void dp_stats_paired_json(struct dp_json *j, const char *key, const struct dp_paired *p);

#endif
