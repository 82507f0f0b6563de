/*
 * stats: standard errors and McNemar's exact test (see stats.h). The
 * binomial tail is summed in log space with lgamma, so it stays exact to
 * double precision for any realistic number of questions.
 */
#include "stats.h"

#include <math.h>

double dp_stats_acc_stderr(int64_t k, int64_t n) {
    if (n <= 0) return 0;
    double p = (double)k / (double)n;
    return sqrt(p * (1 - p) / (double)n);
}

double dp_stats_mcnemar_exact(int64_t b, int64_t c) {
    int64_t n = b + c, k = b < c ? b : c;
    if (n == 0) return 1;
    /* P[X <= k] = sum_{i<=k} C(n,i) / 2^n, terms from lgamma, smallest first */
    double lc = lgamma((double)n + 1), tail = 0;
    for (int64_t i = 0; i <= k; i++)
        tail += exp(lc - lgamma((double)i + 1) - lgamma((double)(n - i) + 1) - (double)n * log(2.0));
    double p = 2 * tail;
    return p > 1 ? 1 : p;
}

void dp_stats_paired(const bool *a, const bool *b, int64_t n, struct dp_paired *out) {
    *out = (struct dp_paired){0};
    out->n = n;
    for (int64_t i = 0; i < n; i++) {
        if (a[i] && b[i]) out->both++;
        else if (a[i]) out->a_only++;
        else if (b[i]) out->b_only++;
        else out->neither++;
    }
    if (n == 0) {
        out->mcnemar_p = 1;
        return;
    }
    double dn = (double)n;
    out->acc_a = (double)(out->both + out->a_only) / dn;
    out->acc_b = (double)(out->both + out->b_only) / dn;
    out->diff = (double)(out->a_only - out->b_only) / dn;
    double msq = (double)(out->a_only + out->b_only) / dn, var = msq - out->diff * out->diff;
    out->diff_stderr = var > 0 ? sqrt(var / dn) : 0;
    out->mcnemar_p = dp_stats_mcnemar_exact(out->a_only, out->b_only);
}

void dp_stats_paired_json(struct dp_json *j, const char *key, const struct dp_paired *p) {
    dp_json_begin_obj(j, key);
    dp_json_num(j, "accuracy_a", 100 * p->acc_a);
    dp_json_num(j, "accuracy_b", 100 * p->acc_b);
    dp_json_num(j, "diff", 100 * p->diff);
    dp_json_num(j, "diff_stderr", 100 * p->diff_stderr);
    dp_json_int(j, "a_only", p->a_only);
    dp_json_int(j, "b_only", p->b_only);
    dp_json_int(j, "n", p->n);
    dp_json_num(j, "mcnemar_p", p->mcnemar_p);
    dp_json_end(j);
}
