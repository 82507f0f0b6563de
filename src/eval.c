/*
 * eval: perplexity (see eval.h). One session per evaluation, reset between
 * chunks; logits of a whole chunk are computed in one batch. Progress is
 * reported (and cancellation checked) after each chunk, on the calling
 * thread.
 */
#include "eval.h"

#include "dist.h"
#include "profile.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double dp_log_softmax_at(const float *logits, int n_vocab, int target) {
    double t0 = dp_profile_begin();
    float mx = logits[0];
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - mx);
    double r = (double)logits[target] - mx - log(sum);
    dp_profile_end(t0, DP_PROF_LOSS, 3.0 * n_vocab, 0);
    return r;
}

struct dp_eval_params dp_eval_default_params(void) {
    struct dp_eval_params p = {0};
    return p;
}

dp_status dp_eval_ppl_paper(const struct dp_model *m, const struct dp_mask *mask, const struct dp_hooks *hooks,
                            struct dp_pool *pool, const struct dp_chunks *ch, struct dp_ppl *out) {
    return dp_eval_ppl_paper_with(m, mask, hooks, pool, ch, NULL, out);
}

dp_status dp_eval_ppl_llamacpp(const struct dp_model *m, const struct dp_mask *mask, const struct dp_hooks *hooks,
                               struct dp_pool *pool, const int *ids, int n_ids, int ctx, struct dp_ppl *out) {
    return dp_eval_ppl_llamacpp_with(m, mask, hooks, pool, ids, n_ids, ctx, NULL, out);
}

dp_status dp_eval_ppl_paper_with(const struct dp_model *m, const struct dp_mask *mask, const struct dp_hooks *hooks,
                                 struct dp_pool *pool, const struct dp_chunks *ch, const struct dp_eval_params *p,
                                 struct dp_ppl *out) {
    memset(out, 0, sizeof *out);
    struct dp_eval_params ep = p ? *p : dp_eval_default_params();
    int V = m->cfg.n_vocab, ctx = ch->ctx;
    struct dp_session *s;
    dp_status st = dp_session_new(m, mask, ctx, &s);
    if (st) return st;
    float *logits = dp_malloc((size_t)ctx * V * sizeof *logits);
    if (!logits) {
        dp_session_free(s);
        return DP_ERR_NOMEM;
    }
    /* per-sequence cross-entropies, this rank's share computed here (dist.h), then summed in order */
    int64_t bounds[DP_DIST_MAX_BOUNDS], lo, hi;
    dp_dist_bounds(ch->n_seqs, NULL, bounds);
    dp_dist_mine(bounds, &lo, &hi);
    double *ce_seq = dp_calloc((size_t)ch->n_seqs + 1, sizeof *ce_seq);
    if (!ce_seq) st = DP_ERR_NOMEM;
    for (int64_t q = lo; q < hi && !st; q++) {
        const int *ids = ch->ids + (size_t)q * ctx;
        dp_session_reset(s);
        st = dp_session_forward_hooked(s, pool, ids, ctx, logits, DP_LOGITS_ALL, hooks);
        if (st) break;
        double ce = 0;
        for (int t = 0; t + 1 < ctx; t++) ce -= dp_log_softmax_at(logits + (size_t)t * V, V, ids[t + 1]);
        ce_seq[q] = ce;
        if (!dp_progress_step(ep.progress, ep.progress_user, "perplexity", dp_dist_progress(bounds, q + 1), ch->n_seqs))
            st = DP_ERR_CANCELLED;
    }
    free(logits);
    dp_session_free(s);
    if (st) {
        free(ce_seq);
        return st;
    }
    dp_dist_allgather(ce_seq, 1, bounds);
    double total = 0, seq_sum = 0;
    for (int q = 0; q < ch->n_seqs; q++) {
        total += ce_seq[q];
        seq_sum += exp(ce_seq[q] / (ctx - 1));
    }
    free(ce_seq);
    out->n_seqs = ch->n_seqs;
    out->n_tokens = (int64_t)ch->n_seqs * (ctx - 1);
    out->nll = total / (double)out->n_tokens;
    out->ppl = exp(out->nll);
    out->ppl_seq = seq_sum / ch->n_seqs;
    return DP_OK;
}

dp_status dp_eval_ppl_llamacpp_with(const struct dp_model *m, const struct dp_mask *mask, const struct dp_hooks *hooks,
                                    struct dp_pool *pool, const int *ids, int n_ids, int ctx,
                                    const struct dp_eval_params *p, struct dp_ppl *out) {
    memset(out, 0, sizeof *out);
    struct dp_eval_params ep = p ? *p : dp_eval_default_params();
    if (ctx < 4) return dp_fail(DP_ERR_ARG, "context %d is too small for the llamacpp protocol", ctx);
    if (n_ids < 2 * ctx)
        return dp_fail(DP_ERR_ARG, "the text has %d tokens; the llamacpp protocol needs at least 2*ctx = %d", n_ids,
                       2 * ctx);
    int V = m->cfg.n_vocab, n_chunks = n_ids / ctx, first = ctx / 2;
    struct dp_session *s;
    dp_status st = dp_session_new(m, mask, ctx, &s);
    if (st) return st;
    float *logits = dp_malloc((size_t)ctx * V * sizeof *logits);
    int *chunk = dp_malloc((size_t)ctx * sizeof *chunk);
    if (!logits || !chunk) st = DP_ERR_NOMEM;
    /* per-position NLLs of every chunk (n_chunks x n_pos), this rank's chunks here (dist.h), then summed in order */
    int n_pos = ctx - 1 - first;
    int64_t bounds[DP_DIST_MAX_BOUNDS], lo, hi;
    dp_dist_bounds(n_chunks, NULL, bounds);
    dp_dist_mine(bounds, &lo, &hi);
    double *v_pos = st ? NULL : dp_calloc((size_t)n_chunks * n_pos + 1, sizeof *v_pos);
    if (!st && !v_pos) st = DP_ERR_NOMEM;
    for (int64_t c = lo; c < hi && !st; c++) {
        memcpy(chunk, ids + (size_t)c * ctx, (size_t)ctx * sizeof *chunk);
        if (dp_tokenizer_adds_bos(m->tok)) chunk[0] = dp_tokenizer_bos(m->tok); /* as llama-perplexity: only when the vocabulary adds BOS */
        dp_session_reset(s);
        st = dp_session_forward_hooked(s, pool, chunk, ctx, logits, DP_LOGITS_ALL, hooks);
        for (int t = first; t < ctx - 1 && !st; t++)
            v_pos[(size_t)c * n_pos + (t - first)] = -dp_log_softmax_at(logits + (size_t)t * V, V, chunk[t + 1]);
        if (!st && !dp_progress_step(ep.progress, ep.progress_user, "perplexity", dp_dist_progress(bounds, c + 1), n_chunks))
            st = DP_ERR_CANCELLED;
    }
    free(logits);
    free(chunk);
    dp_session_free(s);
    if (st) {
        free(v_pos);
        return st;
    }
    dp_dist_allgather(v_pos, (size_t)n_pos, bounds);
    double nll = 0, nll2 = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < (int64_t)n_chunks * n_pos; i++) {
        double v = v_pos[i];
        nll += v;
        nll2 += v * v;
        count++;
    }
    free(v_pos);
    out->n_seqs = n_chunks;
    out->n_tokens = count;
    out->nll = nll / count;
    out->ppl = exp(out->nll);
    double var = nll2 / count - out->nll * out->nll;
    out->ppl_pm = var > 0 && count > 1 ? sqrt(var / (count - 1)) * out->ppl : 0;
    out->ppl_seq = NAN;
    return DP_OK;
}
