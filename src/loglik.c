/*
 * loglik: continuation log-likelihoods with a prefix-cached session (see
 * loglik.h).
 *
 * The session's KV cache always holds the tokens of `cached` (positions
 * 0..n_cached-1). feed() runs a token array whose logits are wanted from row
 * r0 on: it keeps the cached prefix the array shares (but never past r0,
 * whose logits must be computed), rewinds the session there and runs the
 * rest, the rows before r0 without logits.
 *
 * A group of k sequences with common prefix P and earliest scored token
 * s0+1 runs the shared prefix with logits from row s = min(s0, P-1) (kept in
 * `shared`), then each sequence's tokens P..n-2 with logits (in `own`). The
 * log-probability of token t is read from row t-1: from `shared` when t-1 <
 * P, else from `own`.
 */
#include "loglik.h"

#include "dist.h"
#include "eval.h"
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

struct dp_loglik {
    const struct dp_model *m;
    const struct dp_hooks *hooks;
    struct dp_pool *pool;
    struct dp_session *s;
    int n_ctx;
    bool prefix_cache;
    int *cached;              /* (n_ctx) ids in the KV cache */
    uint8_t *gemm;            /* (n_ctx) row computed in a batch of >= DP_GEMM_MIN_TOK rows (the gemm order) */
    int n_cached;
    bool dry;                 /* dp_loglik_dry: track the cache's ids and orders, compute nothing */
    float *shared, *own;      /* logits rows (cap_shared, cap_own) x n_vocab */
    int cap_shared, cap_own;
    struct dp_loglik_stats stats;
};

int dp_loglik_lcp(const int *a, int na, const int *b, int nb) {
    int n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

int dp_loglik_common_prefix(const struct dp_loglik_seq *seqs, int k) {
    if (k < 1) return 0;
    int p = seqs[0].n;
    for (int i = 1; i < k; i++) p = dp_loglik_lcp(seqs[0].ids, p, seqs[i].ids, seqs[i].n);
    return p;
}

dp_status dp_loglik_new(const struct dp_model *m, const struct dp_mask *mask, const struct dp_hooks *hooks,
                        struct dp_pool *pool, int n_ctx, bool prefix_cache, struct dp_loglik **out) {
    *out = NULL;
    if (n_ctx < 2) return dp_fail(DP_ERR_ARG, "a context of %d tokens is too small to score continuations", n_ctx);
    struct dp_loglik *l = dp_calloc(1, sizeof *l);
    if (!l) return DP_ERR_NOMEM;
    l->m = m;
    l->hooks = hooks;
    l->pool = pool;
    l->n_ctx = n_ctx;
    l->prefix_cache = prefix_cache;
    l->cached = dp_malloc((size_t)n_ctx * sizeof *l->cached);
    l->gemm = dp_malloc((size_t)n_ctx);
    /* with ranks, room beyond n_ctx for dp_loglik_prime's padded batches */
    int room = dp_dist_active() ? DP_GEMM_MIN_TOK : 0;
    dp_status st = l->cached && l->gemm ? dp_session_new(m, mask, n_ctx + room, &l->s) : DP_ERR_NOMEM;
    if (st) {
        dp_loglik_free(l);
        return st;
    }
    *out = l;
    return DP_OK;
}

void dp_loglik_free(struct dp_loglik *l) {
    if (!l) return;
    dp_session_free(l->s);
    free(l->cached);
    free(l->gemm);
    free(l->shared);
    free(l->own);
    free(l);
}

const struct dp_loglik_stats *dp_loglik_stats(const struct dp_loglik *l) { return &l->stats; }

dp_status dp_loglik_tokenize(const struct dp_tokenizer *t, const char *text, size_t len, int **buf, int *cap, int *n) {
    if (!*buf || (size_t)*cap < len + 16) { /* a first guess: rarely more tokens than bytes */
        int want = len + 16 < (size_t)1 << 30 ? (int)len + 16 : 1 << 30;
        int *p = realloc(*buf, (size_t)want * sizeof *p);
        if (!p) return dp_fail(DP_ERR_NOMEM, "out of memory for %d token ids", want);
        *buf = p;
        *cap = want;
    }
    for (;;) {
        dp_status st = dp_tokenize(t, text, len, DP_TOKENIZE_BOS, *buf, *cap, n);
        if (st || *n <= *cap) return st;
        int want = *n + *n / 2 + 16;
        int *p = realloc(*buf, (size_t)want * sizeof *p);
        if (!p) return dp_fail(DP_ERR_NOMEM, "out of memory for %d token ids", want);
        *buf = p;
        *cap = want;
    }
}

/* Make room for `rows` logits rows in *buf (capacity *cap rows). */
static dp_status reserve_rows(float **buf, int *cap, int rows, int n_vocab) {
    if (rows <= *cap) return DP_OK;
    int want = rows > 2 * *cap ? rows : 2 * *cap;
    float *p = realloc(*buf, (size_t)want * n_vocab * sizeof *p);
    if (!p) return dp_fail(DP_ERR_NOMEM, "out of memory for %d rows of logits", want);
    *buf = p;
    *cap = want;
    return DP_OK;
}

/*
 * The order the products of rows [a, b) are computed in when one forward
 * pass runs them: that of the size of the batch each falls into (batches of
 * DP_SESSION_MAX_BATCH from a, the last one shorter; kernels.h).
 */
static void mark_orders(uint8_t *gemm, int a, int b) {
    for (int c = a; c < b; c += DP_SESSION_MAX_BATCH) {
        int len = b - c < DP_SESSION_MAX_BATCH ? b - c : DP_SESSION_MAX_BATCH;
        memset(gemm + c, len >= DP_GEMM_MIN_TOK, (size_t)len);
    }
}

/* Run ids[0..n) through the cached session; logits of rows r0..n-1 into rows (n - r0 rows). */
static dp_status feed(struct dp_loglik *l, const int *ids, int n, int r0, float *rows) {
    DP_ASSERT(r0 >= 0 && r0 < n && n <= l->n_ctx);
    int keep = dp_loglik_lcp(l->cached, l->n_cached, ids, n);
    if (keep > r0) keep = r0;
    mark_orders(l->gemm, keep, r0);
    mark_orders(l->gemm, r0, n);
    if (l->dry) {
        memcpy(l->cached + keep, ids + keep, (size_t)(n - keep) * sizeof *ids);
        l->n_cached = n;
        return DP_OK;
    }
    dp_session_rewind(l->s, keep);
    l->n_cached = keep;
    dp_status st = DP_OK;
    if (r0 > keep) st = dp_session_forward_hooked(l->s, l->pool, ids + keep, r0 - keep, NULL, DP_LOGITS_NONE, l->hooks);
    if (!st) st = dp_session_forward_hooked(l->s, l->pool, ids + r0, n - r0, rows, DP_LOGITS_ALL, l->hooks);
    if (st) {
        /* the cache content is unknown after a failure: forget it */
        dp_session_reset(l->s);
        l->n_cached = 0;
        return st;
    }
    memcpy(l->cached + keep, ids + keep, (size_t)(n - keep) * sizeof *ids);
    l->n_cached = n;
    l->stats.tokens_evaluated += n - keep;
    return DP_OK;
}

dp_status dp_loglik_group(struct dp_loglik *l, const struct dp_loglik_seq *seqs, int k, double *sum) {
    int V = l->m->cfg.n_vocab;
    if (k < 1) return dp_fail(DP_ERR_ARG, "a group of %d sequences", k);
    int min_start = seqs[0].start;
    for (int i = 0; i < k; i++) {
        if (seqs[i].n > l->n_ctx)
            return dp_fail(DP_ERR_ARG, "a sequence of %d tokens does not fit the context of %d", seqs[i].n, l->n_ctx);
        if (seqs[i].start < 1 || seqs[i].start > seqs[i].n)
            return dp_fail(DP_ERR_ARG, "scored tokens start at %d in a sequence of %d", seqs[i].start, seqs[i].n);
        if (seqs[i].start < min_start) min_start = seqs[i].start;
        sum[i] = 0;
    }
    if (!l->prefix_cache) {
        dp_session_reset(l->s);
        l->n_cached = 0;
    }
    int P = dp_loglik_common_prefix(seqs, k);
    int s = min_start - 1 < P - 1 ? min_start - 1 : P - 1;
    dp_status st = DP_OK;
    int64_t naive = 0;
    if (P > 0) {
        st = reserve_rows(&l->shared, &l->cap_shared, P - s, V);
        if (!st) st = feed(l, seqs[0].ids, P, s, l->shared);
        naive += P;
    }
    if (l->dry) { /* the cache as the group leaves it; no scores, no counts */
        if (P > 0) feed(l, seqs[0].ids, P, s, NULL);
        for (int i = 0; i < k; i++) {
            int r0 = seqs[i].start - 1 > P ? seqs[i].start - 1 : P;
            if (seqs[i].n - 1 > r0) feed(l, seqs[i].ids, seqs[i].n - 1, r0, NULL);
        }
        return DP_OK;
    }
    for (int i = 0; i < k && !st; i++) {
        const struct dp_loglik_seq *q = &seqs[i];
        int r0 = q->start - 1 > P ? q->start - 1 : P;
        if (q->n - 1 > P) naive += q->n - 1 - P;
        if (q->n - 1 > r0) {
            st = reserve_rows(&l->own, &l->cap_own, q->n - 1 - r0, V);
            if (!st) st = feed(l, q->ids, q->n - 1, r0, l->own);
            if (st) break;
        }
        for (int t = q->start; t < q->n; t++) {
            int row = t - 1;
            const float *lg = row < P ? l->shared + (size_t)(row - s) * V : l->own + (size_t)(row - r0) * V;
            DP_ASSERT(row < P ? row >= s : row >= r0);
            sum[i] += dp_log_softmax_at(lg, V, q->ids[t]);
        }
    }
    if (st) return st;
    l->stats.tokens_naive += naive;
    l->stats.groups++;
    return DP_OK;
}

void dp_loglik_dry(struct dp_loglik *l, bool dry) { l->dry = dry; }

/*
 * Rebuild the KV cache of `cached` so that every row is computed in the
 * order it was computed in the run that left it there: the dot order in
 * batches of fewer than DP_GEMM_MIN_TOK rows, the gemm order in batches of
 * at least that many. A row depends only on the rows before it (causal
 * attention), so a short gemm run is computed in a batch padded past its
 * end (with the following ids, or repeats of its last one) that is then
 * rewound: a product's order depends on the batch size alone, never on the
 * other rows of the batch.
 */
dp_status dp_loglik_prime(struct dp_loglik *l) {
    l->dry = false;
    dp_session_reset(l->s);
    int n = l->n_cached;
    l->n_cached = 0;
    if (!l->prefix_cache || n == 0) return DP_OK;
    int pad_n = n + DP_GEMM_MIN_TOK;
    int *pad = dp_malloc((size_t)pad_n * sizeof *pad);
    if (!pad) return dp_fail(DP_ERR_NOMEM, "out of memory for %d token ids", pad_n);
    memcpy(pad, l->cached, (size_t)n * sizeof *pad);
    for (int i = n; i < pad_n; i++) pad[i] = l->cached[n - 1];
    dp_status st = DP_OK;
    for (int a = 0; a < n && !st;) {
        int b = a;
        while (b < n && l->gemm[b] == l->gemm[a]) b++;
        if (!l->gemm[a]) { /* dot order: batches below the threshold */
            for (int c = a; c < b && !st; c += DP_GEMM_MIN_TOK - 1) {
                int len = b - c < DP_GEMM_MIN_TOK - 1 ? b - c : DP_GEMM_MIN_TOK - 1;
                st = dp_session_forward_hooked(l->s, l->pool, pad + c, len, NULL, DP_LOGITS_NONE, l->hooks);
            }
        } else { /* gemm order: batches of at least the threshold, one forward batch each */
            for (int c = a; c < b && !st; c += DP_SESSION_MAX_BATCH) {
                int len = b - c < DP_SESSION_MAX_BATCH ? b - c : DP_SESSION_MAX_BATCH;
                int run = len < DP_GEMM_MIN_TOK ? DP_GEMM_MIN_TOK : len;
                st = dp_session_forward_hooked(l->s, l->pool, pad + c, run, NULL, DP_LOGITS_NONE, l->hooks);
                if (!st && run > len) dp_session_rewind(l->s, c + len);
            }
        }
        a = b;
    }
    free(pad);
    if (st) {
        dp_session_reset(l->s);
        return st;
    }
    l->n_cached = n;
    return DP_OK;
}

void dp_loglik_stats_sum(struct dp_loglik *l) {
    int64_t v[3] = {l->stats.tokens_evaluated, l->stats.tokens_naive, l->stats.groups};
    dp_dist_sum_i64(v, 3);
    l->stats.tokens_evaluated = v[0];
    l->stats.tokens_naive = v[1];
    l->stats.groups = v[2];
}
