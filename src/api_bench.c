/*
 * api_bench: prefill and decode speed of a model under a mask, measured as
 * llama-bench measures them (the `bench` command prints it).
 *
 * Prefill: n_prefill fixed pseudo-random tokens from an empty cache with the
 * last token's logits only; decode: n_decode tokens one at a time from an
 * empty cache; each repeated reps times after one short warm-up pass, the
 * median kept. GFLOP/s count the work actually done: a prefill with
 * last-token logits runs the last block's queries, attention, output
 * projection and FFN for the last token only (src/model.c skips them for the
 * other rows, as llama.cpp does), and the head once. Decode GB/s count the
 * weight bytes of the kept matrices read per token (a tied embedding is read
 * as the head; the embedding row lookup is not counted).
 */
#include "model.h"

#include <stdlib.h>
#include <string.h>

void dp_bench_default_params(struct dp_bench_params *p) {
    memset(p, 0, sizeof *p);
    p->n_prefill = 512;
    p->n_decode = 64;
    p->reps = 3;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Weight parameters and bytes touched per token by the kept matrices (embedding row excluded). */
static void per_token(const struct dp_model *m, const struct dp_mask *mask, double *params, double *bytes) {
    struct dp_model_stats s;
    dp_model_stats(m, mask, &s);
    double emb = (double)m->tok_embd.n_in * m->tok_embd.n_out;
    double emb_b = (double)dp_type_row_bytes(m->tok_embd.type, m->tok_embd.n_in) * m->tok_embd.n_out;
    *params = (double)s.n_params - (m->cfg.tied_output ? 0 : emb);
    *bytes = (double)s.n_bytes - (m->cfg.tied_output ? 0 : emb_b); /* a tied embedding is read as the head */
}

/* Multiply-adds the last block does per token beyond its keys and values (run for the last token only). */
static double last_block_tail(const struct dp_model *m, const struct dp_mask *mask) {
    int l = m->cfg.n_layers - 1;
    const struct dp_layer *L = &m->layers[l];
    double p = 0;
    if (mask->attn[l] && L->has_attn) p += (double)L->wq.n_in * L->wq.n_out + (double)L->wo.n_in * L->wo.n_out;
    if (mask->ffn[l] && L->has_ffn)
        p += (double)L->w_gate.n_in * L->w_gate.n_out + (double)L->w_up.n_in * L->w_up.n_out +
             (double)L->w_down.n_in * L->w_down.n_out;
    return p;
}

/* Attention FLOPs of a batch of n tokens at positions p0..p0+n-1 (QK and AV). */
static double attn_flops(const struct dp_model *m, const struct dp_mask *mask, int p0, int n) {
    double f = 0;
    for (int l = 0; l < m->cfg.n_layers; l++)
        if (mask->attn[l] && m->layers[l].has_attn)
            for (int t = 0; t < n; t++) f += 4.0 * m->layers[l].shape.n_head * m->cfg.head_dim * (p0 + t + 1);
    return f;
}

/* The rates of the median times tp (prefill) and td (decode). */
static void rates(const struct dp_model *m, const struct dp_mask *mask, const struct dp_bench_params *p, double tp,
                  double td, struct dp_bench_result *out) {
    double n_pre = p->n_prefill, n_dec = p->n_decode;
    double params, bytes;
    per_token(m, mask, &params, &bytes);
    double head = (double)m->output.n_in * m->output.n_out,
           head_b = (double)dp_type_row_bytes(m->output.type, m->output.n_in) * m->output.n_out;
    double layer_params = params - head, layer_bytes = bytes - head_b;
    double tail = last_block_tail(m, mask);
    int last = m->cfg.n_layers - 1;
    struct dp_mask no_last = *mask;
    no_last.attn[last] = false;
    double pre_flops = p->n_prefill ? 2.0 * (layer_params - tail) * n_pre + 2.0 * (tail + head) +
                                          attn_flops(m, &no_last, 0, p->n_prefill) +
                                          (attn_flops(m, mask, p->n_prefill - 1, 1) -
                                           attn_flops(m, &no_last, p->n_prefill - 1, 1))
                                    : 0;
    double dec_flops = 2.0 * params * n_dec + attn_flops(m, mask, 0, p->n_decode);
    out->prefill_tok_s = p->n_prefill && tp > 0 ? n_pre / tp : 0;
    out->decode_tok_s = p->n_decode && td > 0 ? n_dec / td : 0;
    out->gflops = p->n_prefill && tp > 0 ? pre_flops / tp * 1e-9 : 0;
    out->decode_gflops = p->n_decode && td > 0 ? dec_flops / td * 1e-9 : 0;
    out->gbps = p->n_decode && td > 0 ? (layer_bytes + head_b) * n_dec / td * 1e-9 : 0;
    out->peak_rss_mb = dp_peak_rss_mb();
}

dp_status dp_bench_run(const struct dp_model *m, const struct dp_mask *mask, struct dp_pool *pool,
                       const struct dp_bench_params *p, struct dp_bench_result *out) {
    memset(out, 0, sizeof *out);
    if (p->n_prefill < 0 || p->n_decode < 0 || p->reps < 1)
        return dp_fail(DP_ERR_ARG, "bench: n_prefill and n_decode must be >= 0 and reps >= 1");
    int V = m->cfg.n_vocab, n_ctx = p->n_prefill > p->n_decode ? p->n_prefill : p->n_decode;
    if (n_ctx < 1) n_ctx = 1;
    int *ids = malloc((size_t)n_ctx * sizeof *ids);
    float *logits = malloc((size_t)V * sizeof *logits);
    double *t_pre = calloc((size_t)p->reps, sizeof *t_pre), *t_dec = calloc((size_t)p->reps, sizeof *t_dec);
    struct dp_session *s = NULL;
    dp_status st = ids && logits && t_pre && t_dec ? dp_session_new(m, mask, n_ctx, &s)
                                                  : dp_fail(DP_ERR_NOMEM, "bench: out of memory");
    uint64_t r = 12345;
    for (int i = 0; ids && i < n_ctx; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int)((r >> 33) % (uint64_t)V);
    }
    if (!st) /* warm-up */
        st = dp_session_forward(s, pool, ids, p->n_prefill ? (p->n_prefill < 16 ? p->n_prefill : 16) : 1, logits,
                                DP_LOGITS_LAST);
    for (int k = 0; k < p->reps && !st; k++) {
        if (p->n_prefill) {
            dp_session_reset(s);
            double t0 = dp_now();
            st = dp_session_forward(s, pool, ids, p->n_prefill, logits, DP_LOGITS_LAST);
            t_pre[k] = dp_now() - t0;
        }
        if (p->n_decode && !st) {
            dp_session_reset(s);
            double t0 = dp_now();
            for (int i = 0; i < p->n_decode && !st; i++)
                st = dp_session_forward(s, pool, ids + i, 1, logits, DP_LOGITS_LAST);
            t_dec[k] = dp_now() - t0;
        }
        if (!st && !dp_progress_step(p->progress, p->progress_user, "bench", k + 1, p->reps)) st = DP_ERR_CANCELLED;
    }
    if (!st) {
        qsort(t_pre, (size_t)p->reps, sizeof *t_pre, cmp_double);
        qsort(t_dec, (size_t)p->reps, sizeof *t_dec, cmp_double);
        rates(m, mask, p, t_pre[p->reps / 2], t_dec[p->reps / 2], out);
    }
    dp_session_free(s);
    free(ids);
    free(logits);
    free(t_pre);
    free(t_dec);
    return st;
}
