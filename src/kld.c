/*
 * kld: KL divergence and top-1 agreement against a base model or a
 * llama.cpp base-logits file (see kld.h).
 *
 * Each chunk runs through one session per model: the first half without
 * logits, then positions ctx/2 .. ctx-2 with logits (the last token is only
 * predicted, never run). Per-position values go into one array, sorted at
 * the end for the median and percentiles.
 */
#include "kld.h"

#include "dist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct acc {
    double *kld;      /* (capacity) per-position KL */
    int64_t n, same;
    double sum, sum2, nll_b, nll_q;
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* llama.cpp's percentile: linear interpolation between sorted neighbours. */
static double percentile(const double *v, int64_t n, double f) {
    double p = f * (double)(n - 1);
    int64_t i = (int64_t)p;
    if (i >= n - 1) return v[n - 1];
    return (1 - (p - (double)i)) * v[i] + (p - (double)i) * v[i + 1];
}

static void finish(struct acc *a, struct dp_kld_result *out, bool have_cand) {
    double n = (double)a->n;
    out->n = a->n;
    out->nll_base = a->nll_b / n;
    out->ppl_base = exp(out->nll_base);
    if (!have_cand) return;
    out->nll = a->nll_q / n;
    out->ppl = exp(out->nll);
    out->ppl_ratio = out->ppl / out->ppl_base;
    out->kld_mean = a->sum / n;
    double var = a->sum2 / n - out->kld_mean * out->kld_mean;
    out->kld_stderr = var > 0 && a->n > 1 ? sqrt(var / (n - 1)) : 0;
    out->top1 = (double)a->same / n;
    out->top1_stderr = a->n > 1 ? sqrt(out->top1 * (1 - out->top1) / (n - 1)) : 0;
    qsort(a->kld, (size_t)a->n, sizeof *a->kld, cmp_double);
    out->kld_median = a->n % 2 ? a->kld[a->n / 2] : 0.5 * (a->kld[a->n / 2 - 1] + a->kld[a->n / 2]);
    out->kld_p99 = percentile(a->kld, a->n, 0.99);
    out->kld_max = a->kld[a->n - 1];
}

/* log-sum-exp of a row (double) and its argmax (first index on ties). */
static double row_lse(const float *l, int V, int *argmax) {
    int im = 0;
    for (int i = 1; i < V; i++)
        if (l[i] > l[im]) im = i;
    double s = 0;
    for (int i = 0; i < V; i++) s += exp((double)l[i] - l[im]);
    *argmax = im;
    return (double)l[im] + log(s);
}

/*
 * The statistics of one position, v[4]: KL divergence, base NLL, candidate
 * NLL, top-1 agreement (0/1); computed per position (on any rank, dist.h)
 * and added in position order (acc_add).
 */
enum { POS_KL, POS_NLL_B, POS_NLL_Q, POS_SAME, POS_N };

static void acc_add(struct acc *a, const double *v, bool have_cand) {
    a->nll_b += v[POS_NLL_B];
    if (!have_cand) {
        a->n++;
        return;
    }
    a->nll_q += v[POS_NLL_Q];
    a->kld[a->n++] = v[POS_KL];
    a->sum += v[POS_KL];
    a->sum2 += v[POS_KL] * v[POS_KL];
    a->same += v[POS_SAME] != 0;
}

/* Exact statistics of one position: base row b, candidate row q (or NULL), target tok. */
static void position_exact(const float *b, const float *q, int V, int tok, double *v) {
    int ib, iq;
    double lb = row_lse(b, V, &ib);
    v[POS_NLL_B] = lb - b[tok];
    v[POS_KL] = v[POS_NLL_Q] = v[POS_SAME] = 0;
    if (!q) return;
    double lq = row_lse(q, V, &iq), kl = 0;
    for (int i = 0; i < V; i++) {
        double pb = (double)b[i] - lb;
        kl += exp(pb) * (pb - ((double)q[i] - lq));
    }
    if (kl < 0) kl = 0; /* rounding of a zero divergence */
    v[POS_NLL_Q] = lq - q[tok];
    v[POS_KL] = kl;
    v[POS_SAME] = ib == iq;
}

/* llama.cpp's 16-bit log-probabilities of one row (nv = 2*((V+1)/2) + 4 values). */
static void quantize_row(const float *l, int V, uint16_t *out) {
    float mx = l[0], mn = l[0];
    for (int i = 1; i < V; i++) {
        if (l[i] > mx) mx = l[i];
        if (l[i] < mn) mn = l[i];
    }
    if (mn < mx - 16) mn = mx - 16;
    double sum = 0;
    for (int i = 0; i < V; i++) sum += expf(l[i] - mx);
    float log_sum = (float)log(sum), min_log_prob = mn - mx - log_sum, scale = (mx - mn) / 65535.f;
    memcpy(out, &scale, sizeof scale);
    memcpy(out + 2, &min_log_prob, sizeof min_log_prob);
    uint16_t *q = out + 4;
    memset(q, 0, (size_t)(2 * ((V + 1) / 2)) * sizeof *q);
    if (scale != 0) {
        float inv = 1 / scale;
        for (int i = 0; i < V; i++) q[i] = l[i] > mn ? (uint16_t)lrintf(inv * (l[i] - mn)) : 0;
    }
}

/* Statistics of one position against a 16-bit base row, as llama.cpp computes them (v as position_exact's). */
static void position_q16(const uint16_t *row, const float *q, int V, int tok, double *v) {
    float scale, min_log_prob;
    memcpy(&scale, row, sizeof scale);
    memcpy(&min_log_prob, row + 2, sizeof min_log_prob);
    const uint16_t *b = row + 4;
    int iq;
    double lq = row_lse(q, V, &iq), kl = 0, best = 0;
    int ib = 0;
    for (int i = 0; i < V; i++) {
        double pb = (double)(scale * b[i] + min_log_prob);
        if (i == 0 || pb > best) {
            best = pb;
            ib = i;
        }
        if (pb > -16) kl += exp(pb) * (pb - ((double)q[i] - lq));
    }
    v[POS_NLL_B] = -(double)(scale * b[tok] + min_log_prob);
    v[POS_NLL_Q] = lq - q[tok];
    v[POS_KL] = kl;
    v[POS_SAME] = ib == iq;
}

/* Run one chunk (first token already BOS) and return logits of positions first..ctx-2 in rows. */
static dp_status chunk_rows(struct dp_session *s, struct dp_pool *pool, const struct dp_hooks *h, const int *chunk,
                            int ctx, float *rows) {
    int first = ctx / 2;
    dp_session_reset(s);
    dp_status st = dp_session_forward_hooked(s, pool, chunk, first, NULL, DP_LOGITS_NONE, h);
    if (!st) st = dp_session_forward_hooked(s, pool, chunk + first, ctx - 1 - first, rows, DP_LOGITS_ALL, h);
    return st;
}

static dp_status check_ctx(int ctx, int64_t n_ids) {
    if (ctx < 4) return dp_fail(DP_ERR_ARG, "context %d is too small for the llamacpp protocol", ctx);
    if (n_ids < 2 * (int64_t)ctx)
        return dp_fail(DP_ERR_ARG, "the text has %lld tokens; the llamacpp protocol needs at least 2*ctx = %d",
                       (long long)n_ids, 2 * ctx);
    return DP_OK;
}

dp_status dp_kld_eval(const struct dp_kld_model *base, const struct dp_kld_model *cand, struct dp_pool *pool,
                      const int *ids, int n_ids, int ctx, const char *save_base, struct dp_kld_result *out) {
    return dp_kld_eval_with(base, cand, pool, ids, n_ids, ctx, save_base, NULL, out);
}

dp_status dp_kld_eval_file(const char *base_path, const struct dp_kld_model *cand, struct dp_pool *pool,
                           struct dp_kld_result *out) {
    return dp_kld_eval_file_with(base_path, cand, pool, NULL, out);
}

dp_status dp_kld_eval_with(const struct dp_kld_model *base, const struct dp_kld_model *cand, struct dp_pool *pool,
                           const int *ids, int n_ids, int ctx, const char *save_base, const struct dp_eval_params *p,
                           struct dp_kld_result *out) {
    memset(out, 0, sizeof *out);
    struct dp_eval_params ep = p ? *p : dp_eval_default_params();
    dp_status st = check_ctx(ctx, n_ids);
    if (st) return st;
    int V = base->m->cfg.n_vocab;
    if (cand && cand->m->cfg.n_vocab != V)
        return dp_fail(DP_ERR_ARG, "the candidate has %d tokens in its vocabulary, the base %d", cand->m->cfg.n_vocab, V);
    int n_chunks = n_ids / ctx, first = ctx / 2, rows = ctx - 1 - first, nv = 2 * ((V + 1) / 2) + 4;
    struct dp_session *sb = NULL, *sq = NULL;
    struct acc a = {0};
    float *lb = dp_malloc((size_t)rows * V * sizeof *lb), *lq = cand ? dp_malloc((size_t)rows * V * sizeof *lq) : NULL;
    int *chunk = dp_malloc((size_t)ctx * sizeof *chunk);
    uint16_t *q16 = save_base ? dp_malloc((size_t)rows * nv * sizeof *q16) : NULL;
    a.kld = cand ? dp_malloc((size_t)n_chunks * rows * sizeof *a.kld) : NULL;
    if (!lb || !chunk || (cand && (!lq || !a.kld)) || (save_base && !q16)) st = DP_ERR_NOMEM;
    if (!st) st = dp_session_new(base->m, base->mask, ctx, &sb);
    if (!st && cand) st = dp_session_new(cand->m, cand->mask, ctx, &sq);
    struct dp_out f = {0};
    if (!st && save_base && !(st = dp_out_open(save_base, &f))) {
        uint32_t uctx = (uint32_t)ctx;
        int32_t hdr[2] = {V, n_chunks};
        fwrite("_logits_", 1, 8, f.f);
        fwrite(&uctx, sizeof uctx, 1, f.f);
        fwrite(hdr, sizeof *hdr, 2, f.f);
        fwrite(ids, sizeof *ids, (size_t)n_chunks * ctx, f.f);
    }
    /*
     * Per-position statistics of every chunk, this rank's chunks here (dist.h;
     * with --save-base every rank runs every chunk: rank 0 writes them all),
     * then added in position order.
     */
    int64_t bounds[DP_DIST_MAX_BOUNDS] = {0, n_chunks}, lo = 0, hi = n_chunks;
    if (!save_base) {
        dp_dist_bounds(n_chunks, NULL, bounds);
        dp_dist_mine(bounds, &lo, &hi);
    }
    double *v = st ? NULL : dp_malloc(((size_t)n_chunks * rows * POS_N + 1) * sizeof *v);
    if (!st && !v) st = DP_ERR_NOMEM;
    for (int64_t c = lo; c < hi && !st; c++) {
        memcpy(chunk, ids + (size_t)c * ctx, (size_t)ctx * sizeof *chunk);
        chunk[0] = dp_tokenizer_bos(dp_model_tokenizer(base->m));
        st = chunk_rows(sb, pool, base->hooks, chunk, ctx, lb);
        if (!st && cand) st = chunk_rows(sq, pool, cand->hooks, chunk, ctx, lq);
        for (int r = 0; r < rows && !st; r++) {
            const float *b = lb + (size_t)r * V;
            position_exact(b, cand ? lq + (size_t)r * V : NULL, V, chunk[first + r + 1],
                           v + ((size_t)c * rows + r) * POS_N);
            if (save_base) quantize_row(b, V, q16 + (size_t)r * nv);
        }
        if (!st && save_base && fwrite(q16, sizeof *q16, (size_t)rows * nv, f.f) != (size_t)rows * nv)
            st = dp_fail(DP_ERR_IO, "%s: write failed", save_base);
        if (!st && !dp_progress_step(ep.progress, ep.progress_user, "kl divergence",
                                     save_base ? c + 1 : dp_dist_progress(bounds, c + 1), n_chunks))
            st = DP_ERR_CANCELLED;
    }
    if (!st && !save_base) dp_dist_allgather(v, (size_t)rows * POS_N, bounds);
    for (int64_t i = 0; !st && i < (int64_t)n_chunks * rows; i++) acc_add(&a, v + (size_t)i * POS_N, cand != NULL);
    free(v);
    if (save_base && f.f) {
        if (st) dp_out_abort(&f);
        else st = dp_out_commit(&f);
    }
    if (!st) {
        out->ctx = ctx;
        out->n_chunks = n_chunks;
        finish(&a, out, cand != NULL);
    }
    dp_session_free(sb);
    dp_session_free(sq);
    free(lb);
    free(lq);
    free(chunk);
    free(q16);
    free(a.kld);
    if (st == DP_ERR_NOMEM && !strstr(dp_last_error(), "memory")) st = dp_fail(st, "out of memory comparing models");
    return st;
}

dp_status dp_kld_eval_file_with(const char *base_path, const struct dp_kld_model *cand, struct dp_pool *pool,
                                const struct dp_eval_params *p, struct dp_kld_result *out) {
    memset(out, 0, sizeof *out);
    struct dp_eval_params ep = p ? *p : dp_eval_default_params();
    struct dp_map map;
    dp_status st = dp_map_open(base_path, &map);
    if (st) return st;
    int V = cand->m->cfg.n_vocab;
    uint32_t uctx = 0;
    int32_t hdr[2] = {0, 0};
    if (map.size < 20 || memcmp(map.data, "_logits_", 8)) {
        dp_map_close(&map);
        return dp_fail(DP_ERR_FORMAT, "%s: not a llama.cpp base-logits file (no \"_logits_\" header)", base_path);
    }
    memcpy(&uctx, map.data + 8, 4);
    memcpy(hdr, map.data + 12, 8);
    int64_t ctx = uctx, n_chunks = hdr[1];
    int64_t first = ctx / 2, rows = ctx - 1 - first, nv = 2 * (((int64_t)hdr[0] + 1) / 2) + 4;
    uint64_t n_tok = 0, n_q = 0, need = 0;
    if (ctx < 4 || ctx > 1 << 24 || n_chunks < 1 || hdr[0] < 1 ||
        dp_mul_overflow((uint64_t)ctx, (uint64_t)n_chunks, &n_tok) ||
        dp_mul_overflow((uint64_t)rows * (uint64_t)nv, (uint64_t)n_chunks, &n_q) ||
        dp_add_overflow(20 + 4 * n_tok, 2 * n_q, &need) || need > map.size) {
        dp_map_close(&map);
        return dp_fail(DP_ERR_FORMAT, "%s: header (ctx %lld, vocabulary %d, %lld chunks) does not match a file of %zu bytes",
                       base_path, (long long)ctx, hdr[0], (long long)n_chunks, map.size);
    }
    if (hdr[0] != V) {
        dp_map_close(&map);
        return dp_fail(DP_ERR_ARG, "%s: computed with a vocabulary of %d tokens, the model has %d", base_path, hdr[0], V);
    }
    int *ids = dp_malloc(n_tok * sizeof *ids);
    float *lq = dp_malloc((size_t)rows * V * sizeof *lq);
    uint16_t *row = dp_malloc((size_t)nv * sizeof *row);
    struct acc a = {0};
    a.kld = dp_malloc((size_t)n_chunks * rows * sizeof *a.kld);
    struct dp_session *s = NULL;
    if (!ids || !lq || !row || !a.kld) st = dp_fail(DP_ERR_NOMEM, "out of memory comparing with %s", base_path);
    if (!st) {
        memcpy(ids, map.data + 20, n_tok * sizeof *ids);
        for (uint64_t i = 0; i < n_tok && !st; i++)
            if (ids[i] < 0 || ids[i] >= V)
                st = dp_fail(DP_ERR_FORMAT, "%s: token %llu is %d, outside the vocabulary", base_path,
                             (unsigned long long)i, ids[i]);
    }
    if (!st) st = dp_session_new(cand->m, cand->mask, (int)ctx, &s);
    const uint8_t *qdata = map.data + 20 + 4 * n_tok;
    /* per-position statistics, this rank's chunks here (dist.h), then added in position order */
    int64_t bounds[DP_DIST_MAX_BOUNDS], lo, hi;
    dp_dist_bounds(n_chunks, NULL, bounds);
    dp_dist_mine(bounds, &lo, &hi);
    double *v = st ? NULL : dp_malloc(((size_t)n_chunks * rows * POS_N + 1) * sizeof *v);
    if (!st && !v) st = dp_fail(DP_ERR_NOMEM, "out of memory comparing with %s", base_path);
    for (int64_t c = lo; c < hi && !st; c++) {
        int *chunk = ids + c * ctx;
        int keep = chunk[0];
        chunk[0] = dp_tokenizer_bos(dp_model_tokenizer(cand->m));
        st = chunk_rows(s, pool, cand->hooks, chunk, (int)ctx, lq);
        for (int64_t r = 0; r < rows && !st; r++) {
            memcpy(row, qdata + ((size_t)(c * rows + r) * nv) * 2, (size_t)nv * 2);
            position_q16(row, lq + (size_t)r * V, V, chunk[first + r + 1], v + ((size_t)c * rows + r) * POS_N);
        }
        chunk[0] = keep;
        if (!st && !dp_progress_step(ep.progress, ep.progress_user, "kl divergence", dp_dist_progress(bounds, c + 1),
                                     n_chunks))
            st = DP_ERR_CANCELLED;
    }
    if (!st) dp_dist_allgather(v, (size_t)rows * POS_N, bounds);
    for (int64_t i = 0; !st && i < n_chunks * rows; i++) acc_add(&a, v + (size_t)i * POS_N, true);
    free(v);
    if (!st) {
        out->ctx = (int)ctx;
        out->n_chunks = (int)n_chunks;
        finish(&a, out, true);
    }
    dp_session_free(s);
    free(ids);
    free(lq);
    free(row);
    free(a.kld);
    dp_map_close(&map);
    return st;
}
