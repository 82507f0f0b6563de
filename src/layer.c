/*
 * layer: one layer's arithmetic, for the forward pass and the training tape
 * (see layer.h). The recipe per family follows llama.cpp's graphs:
 *
 *   attention  xn = rmsnorm(x) w;  q, k, v = xn W^T + b;  q, k = rmsnorm_head(q, k) (qwen3, gemma3);
 *              rope(q, k);  s = q.k * attn_scale;  s = cap tanh(s / cap) (gemma2);
 *              mask keys with pos_q - pos_k >= window (sliding layers);  o = softmax(s) v;
 *              delta = o Wo^T + bo;  delta = rmsnorm(delta) w_post (gemma2/3)
 *   FFN        xn = rmsnorm(x) w;  h = act(xn Wg^T + bg) * (xn Wu^T + bu);  delta = h Wd^T + bd;
 *              delta = rmsnorm(delta) w_post (gemma2/3); act = SiLU or tanh-GELU (gemma)
 *
 * Without soft-capping, attention is one call of the kernels' attend per
 * query and head (the same bits for every kernel set); with it, a scalar
 * loop of this file. llama.cpp's CPU GELU looks its result up in an FP16
 * table; the llama.cpp-like q8 activation mode does the same (so its logits
 * match llama.cpp's), the exact mode computes tanh-GELU in float.
 */
#include "layer.h"

#include "profile.h"
#include "types.h"

#include <math.h>
#include <string.h>

void dp_layer_rmsnorm(float *out, const float *x, const float *w, int n, int dim, float eps) {
    for (int t = 0; t < n; t++) {
        const float *xr = x + (size_t)t * dim;
        float *o = out + (size_t)t * dim;
        double ss = 0;
        for (int i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        float scale = 1.0f / sqrtf((float)(ss / dim) + eps);
        for (int i = 0; i < dim; i++) o[i] = xr[i] * scale * w[i];
    }
}

void dp_layer_rmsnorm_w(float *out, const float *x, const struct dp_weight *w, int n, int dim, float eps,
                        float *wbuf) {
    double t0 = dp_profile_begin();
    dp_dequant_row(w->type, w->data, wbuf, dim);
    dp_layer_rmsnorm(out, x, wbuf, n, dim, eps);
    dp_profile_end(t0, DP_PROF_NORM, 4.0 * n * dim, 0);
}

void dp_layer_add_bias(float *y, const struct dp_weight *b, int n, int width, float *wbuf) {
    if (!b->data) return;
    dp_dequant_row(b->type, b->data, wbuf, width);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < width; i++) y[(size_t)t * width + i] += wbuf[i];
}

void dp_layer_rope(float *v, int n, int n_heads, const struct dp_model *m, int layer, int pos0, float sign) {
    double t0 = dp_profile_begin();
    const struct dp_config *c = &m->cfg;
    const float *ff = m->rope_factors;
    float theta_scale = powf(m->layers[layer].rope_base, -2.0f / (float)c->n_rot);
    for (int t = 0; t < n; t++) {
        for (int h = 0; h < n_heads; h++) {
            float *r = v + ((size_t)t * n_heads + h) * c->head_dim;
            float theta = (float)(pos0 + t);
            for (int i = 0; i < c->n_rot; i += 2) {
                float th = ff ? theta / ff[i / 2] : theta;
                float cs = cosf(th), sn = sign * sinf(th);
                int a = c->rope_neox ? i / 2 : i, b = c->rope_neox ? i / 2 + c->n_rot / 2 : i + 1;
                float x0 = r[a], x1 = r[b];
                r[a] = x0 * cs - x1 * sn;
                r[b] = x0 * sn + x1 * cs;
                theta *= theta_scale;
            }
        }
    }
    dp_profile_end(t0, DP_PROF_ROPE, 6.0 * n * n_heads * c->n_rot / 2, 0);
}

bool dp_layer_kv_columns(const struct dp_model *m, int l) {
    (void)l;
    return m->cfg.head_dim <= DP_ATTEND_SMALL_HD && !(m->family.attn_softcap > 0);
}

/* The row of position p in a cache (see struct dp_attn_io). */
static int64_t cache_row(const struct dp_attn_io *io, int64_t p) { return io->ring ? p % io->ring : p; }

/* Append n rows (n, n_kv*hd) at positions pos.. to a head-major cache, twice in a ring. */
static void cache_store(const struct dp_attn_io *io, float *cache, const float *rows, int n, int n_kv, int hd,
                        int pos, bool columns) {
    for (int t = 0; t < n; t++)
        for (int h = 0; h < n_kv; h++) {
            const float *r = rows + ((size_t)t * n_kv + h) * hd;
            float *head = cache + (size_t)h * io->rows * hd;
            int64_t row = cache_row(io, pos + t);
            for (int copy = 0; copy < (io->ring ? 2 : 1); copy++, row += io->ring) {
                if (columns)
                    for (int i = 0; i < hd; i++) head[(size_t)i * io->rows + row] = r[i];
                else
                    memcpy(head + (size_t)row * hd, r, (size_t)hd * sizeof(float));
            }
        }
}

/* Soft-capped attention of one query over n_keys key rows (scalar; scores in sc). */
static void attend_softcap(const float *q, const float *K, const float *V, int n_keys, int hd, float scale, float cap,
                           float *sc, float *o) {
    float mx = -INFINITY;
    for (int p = 0; p < n_keys; p++) {
        const float *k = K + (size_t)p * hd;
        float d = 0;
        for (int i = 0; i < hd; i++) d += q[i] * k[i];
        sc[p] = cap * tanhf(d * scale / cap);
        if (sc[p] > mx) mx = sc[p];
    }
    double sum = 0;
    for (int p = 0; p < n_keys; p++) {
        sc[p] = expf(sc[p] - mx);
        sum += sc[p];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < hd; i++) o[i] = 0;
    for (int p = 0; p < n_keys; p++) {
        const float *v = V + (size_t)p * hd;
        float w = sc[p] * inv;
        for (int i = 0; i < hd; i++) o[i] += w * v[i];
    }
}

struct attn_job {
    const struct dp_model *m;
    const struct dp_attn_io *io;
    int layer, n, pos0;
};

/* (token, head) pairs split across threads; one row of scores per thread. */
static void attn_worker(void *ctx, int ith, int nth) {
    const struct attn_job *j = ctx;
    const struct dp_attn_io *io = j->io;
    const struct dp_model *m = j->m;
    const struct dp_layer *L = &m->layers[j->layer];
    struct dp_layer_shape sh = L->shape;
    int hd = m->cfg.head_dim, group = sh.n_head / sh.n_head_kv;
    float scale = m->family.attn_scale, cap = m->family.attn_softcap;
    bool columns = dp_layer_kv_columns(m, j->layer);
    const struct dp_kernel_ops *ops = dp_kernels();
    DP_ASSERT(ith < io->scores_threads);
    float *sc = io->scores + (size_t)ith * io->scores_ld;
    int64_t lo, hi;
    dp_pool_split((int64_t)j->n * sh.n_head, ith, nth, &lo, &hi);
    for (int64_t w = lo; w < hi; w++) {
        int h = (int)(w / j->n), t = (int)(w % j->n), kvh = h / group; /* head-major: a head's keys stay in cache */
        int64_t p = j->pos0 + t, first = L->window && p >= L->window ? p - L->window + 1 : 0;
        int n_keys = (int)(p - first + 1);
        int64_t row = cache_row(io, first);
        const float *q = io->q + ((size_t)t * sh.n_head + h) * hd;
        const float *K = io->k_cache + (size_t)kvh * io->rows * hd;  /* (rows, hd) or (hd, rows) */
        const float *V = io->v_cache + (size_t)kvh * io->rows * hd + (size_t)row * hd;
        float *o = io->att + ((size_t)t * sh.n_head + h) * hd;
        if (cap > 0) attend_softcap(q, K + (size_t)row * hd, V, n_keys, hd, scale, cap, sc, o);
        else ops->attend(q, columns ? K + row : K + (size_t)row * hd, io->rows, V, n_keys, hd, scale, sc, o);
    }
}

/* Per-head RMSNorm of rows (n, n_heads*hd) in place, when the layer has the weight. */
static void head_norm(float *v, const struct dp_weight *w, int n, int n_heads, int hd, float eps, float *wbuf) {
    if (!w->data) return;
    dp_layer_rmsnorm_w(v, v, w, n * n_heads, hd, eps, wbuf);
}

/* delta = rmsnorm(delta) w when the layer has a post-norm. */
static void post_norm(float *delta, const struct dp_weight *w, int n, int dim, float eps, float *wbuf) {
    if (!w->data) return;
    dp_layer_rmsnorm_w(delta, delta, w, n, dim, eps, wbuf);
}

/* FLOPs of the scores and weighted values of nq queries at positions p0.. (2 per multiply-add, windows honoured). */
static double attn_flops(const struct dp_layer *L, int hd, int nq, int p0) {
    double keys = 0;
    for (int t = 0; t < nq; t++) {
        int64_t p = p0 + t;
        keys += L->window && p >= L->window ? L->window : (double)(p + 1);
    }
    return 4.0 * L->shape.n_head * hd * keys;
}

void dp_layer_attention(const struct dp_model *m, int l, struct dp_pool *pool, enum dp_act act, const float *x, int n,
                        int from, int pos, const struct dp_attn_io *io) {
    dp_layer_attention_seg(m, l, pool, act, x, 1, n, from, pos, io);
}

/*
 * The recipe of the attention sublayer over n_seg segments of n rows (one
 * sequence each, all at positions pos..): norms, biases and products run on
 * all rows at once (row by row, products in the order of n rows), RoPE, the
 * cache and the scores per segment, so every row has the bits of its
 * segment run alone.
 */
void dp_layer_attention_seg(const struct dp_model *m, int l, struct dp_pool *pool, enum dp_act act, const float *x,
                            int n_seg, int n, int from, int pos, const struct dp_attn_io *io) {
    const struct dp_config *c = &m->cfg;
    const struct dp_layer *L = &m->layers[l];
    int dim = c->n_embd, hd = c->head_dim, nq = n - from, rows = n_seg * n, qrows = n_seg * nq;
    int qd = L->shape.n_head * hd, kvd = L->shape.n_head_kv * hd;
    DP_ASSERT(n_seg == 1 || from == 0);
    float *wbuf = io[0].wbuf;
    const float *xq = io[0].xn + (size_t)from * dim;                        /* normed rows with outputs */
    dp_layer_rmsnorm_w(io[0].xn, x, &L->attn_norm, rows, dim, c->norm_eps, wbuf);
    if (!kvd) { /* linear attention (deci): no keys, no values, no cache */
        if (nq) dp_matmul_seg(pool, act, L->wo.data, L->wo.type, dim, dim, xq, qrows, io[0].delta, nq); /* delta (nq, dim) */
        return;
    }
    dp_matmul_seg(pool, act, L->wk.data, L->wk.type, dim, kvd, io[0].xn, rows, io[0].k, n);    /* k (n, kvd) */
    dp_matmul_seg(pool, act, L->wv.data, L->wv.type, dim, kvd, io[0].xn, rows, io[0].v, n);    /* v (n, kvd) */
    dp_layer_add_bias(io[0].k, &L->bk, rows, kvd, wbuf);
    dp_layer_add_bias(io[0].v, &L->bv, rows, kvd, wbuf);
    head_norm(io[0].k, &L->k_norm, rows, L->shape.n_head_kv, hd, c->norm_eps, wbuf);
    bool columns = dp_layer_kv_columns(m, l);
    for (int sg = 0; sg < n_seg; sg++) {
        float *k = io[0].k + (size_t)sg * n * kvd;
        dp_layer_rope(k, n, L->shape.n_head_kv, m, l, pos, 1.0f);
        cache_store(&io[sg], io[sg].k_cache, k, n, L->shape.n_head_kv, hd, pos, columns);
        cache_store(&io[sg], io[sg].v_cache, io[0].v + (size_t)sg * n * kvd, n, L->shape.n_head_kv, hd, pos, false);
    }
    if (!nq) return;
    dp_matmul_seg(pool, act, L->wq.data, L->wq.type, dim, qd, xq, qrows, io[0].q, nq);        /* q (nq, qd) */
    dp_layer_add_bias(io[0].q, &L->bq, qrows, qd, wbuf);
    head_norm(io[0].q, &L->q_norm, qrows, L->shape.n_head, hd, c->norm_eps, wbuf);
    for (int sg = 0; sg < n_seg; sg++) {
        dp_layer_rope(io[0].q + (size_t)sg * nq * qd, nq, L->shape.n_head, m, l, pos + from, 1.0f);
        struct dp_attn_io seg = io[sg];
        seg.q = io[0].q + (size_t)sg * nq * qd;
        seg.att = io[0].att + (size_t)sg * nq * qd;
        struct attn_job job = {m, &seg, l, nq, pos + from};
        double work = (double)nq * qd * (pos + from + nq); /* a small job stays on the caller: same bits */
        double t0 = dp_profile_begin();
        dp_pool_run(work < DP_MATMUL_MIN_PARALLEL ? NULL : pool, attn_worker, &job);   /* att (nq, qd) */
        dp_profile_end(t0, DP_PROF_ATTENTION, attn_flops(L, hd, nq, pos + from), 0);
    }
    dp_matmul_seg(pool, act, L->wo.data, L->wo.type, qd, dim, io[0].att, qrows, io[0].delta, nq); /* delta (nq, dim) */
    dp_layer_add_bias(io[0].delta, &L->bo, qrows, dim, wbuf);
    post_norm(io[0].delta, &L->attn_post_norm, qrows, dim, c->norm_eps, wbuf);
}

/*
 * tanh-GELU as ggml writes it; `table` rounds input and output through FP16
 * as llama.cpp's CPU lookup table does (0 below -10, x above 10).
 */
static float gelu(float x, bool table) {
    if (table) {
        if (x <= -10.0f) return 0.0f;
        if (x >= 10.0f) return x;
        x = dp_f16_to_f32(dp_f32_to_f16(x));
    }
    float y = 0.5f * x * (1.0f + tanhf(0.79788456080286535587989211986876f * x * (1.0f + 0.044715f * x * x)));
    return table ? dp_f16_to_f32(dp_f32_to_f16(y)) : y;
}

void dp_layer_glu(const struct dp_model *m, enum dp_act act, const float *gate, const float *up, float *h, size_t n) {
    double t0 = dp_profile_begin();
    if (m->family.act == DP_FFN_GELU_TANH) {
        bool table = act == DP_ACT_Q8;
        for (size_t i = 0; i < n; i++) h[i] = gelu(gate[i], table) * up[i];
    } else {
        for (size_t i = 0; i < n; i++) {
            float g = gate[i];
            h[i] = g / (1.0f + expf(-g)) * up[i];                            /* SwiGLU */
        }
    }
    dp_profile_end(t0, DP_PROF_GLU, 4.0 * (double)n, 0);
}

void dp_layer_ffn(const struct dp_model *m, int l, struct dp_pool *pool, enum dp_act act, const float *x, int n,
                  float *xn, float *gate, float *up, float *h, float *delta, float *wbuf) {
    dp_layer_ffn_seg(m, l, pool, act, x, n, n, xn, gate, up, h, delta, wbuf);
}

void dp_layer_ffn_seg(const struct dp_model *m, int l, struct dp_pool *pool, enum dp_act act, const float *x, int n,
                      int seg, float *xn, float *gate, float *up, float *h, float *delta, float *wbuf) {
    const struct dp_config *c = &m->cfg;
    const struct dp_layer *L = &m->layers[l];
    int dim = c->n_embd, ff = L->shape.n_ff;
    dp_layer_rmsnorm_w(xn, x, &L->ffn_norm, n, dim, c->norm_eps, wbuf);
    dp_matmul_seg(pool, act, L->w_gate.data, L->w_gate.type, dim, ff, xn, n, gate, seg); /* (n, ff) */
    dp_matmul_seg(pool, act, L->w_up.data, L->w_up.type, dim, ff, xn, n, up, seg);       /* (n, ff) */
    dp_layer_add_bias(gate, &L->b_gate, n, ff, wbuf);
    dp_layer_add_bias(up, &L->b_up, n, ff, wbuf);
    dp_layer_glu(m, act, gate, up, h, (size_t)n * ff);
    dp_matmul_seg(pool, act, L->w_down.data, L->w_down.type, ff, dim, h, n, delta, seg); /* (n, dim) */
    dp_layer_add_bias(delta, &L->b_down, n, dim, wbuf);
    post_norm(delta, &L->ffn_post_norm, n, dim, c->norm_eps, wbuf);
}

void dp_layer_embed(const struct dp_model *m, const int *ids, int n, float *x) {
    double t0 = dp_profile_begin();
    int dim = m->cfg.n_embd;
    size_t erow = dp_type_row_bytes(m->tok_embd.type, dim);
    for (int t = 0; t < n; t++) {
        float *r = x + (size_t)t * dim;
        dp_dequant_row(m->tok_embd.type, (const uint8_t *)m->tok_embd.data + (size_t)ids[t] * erow, r, dim);
        if (m->family.embd_scale != 1.0f)
            for (int i = 0; i < dim; i++) r[i] *= m->family.embd_scale;
    }
    dp_profile_end(t0, DP_PROF_EMBED, 0, (double)n * erow);
}

void dp_layer_head(const struct dp_model *m, struct dp_pool *pool, enum dp_act act, const float *x, int n, float *xn,
                   float *logits, float *wbuf) {
    dp_layer_head_seg(m, pool, act, x, n, n, xn, logits, wbuf);
}

void dp_layer_head_seg(const struct dp_model *m, struct dp_pool *pool, enum dp_act act, const float *x, int n, int seg,
                       float *xn, float *logits, float *wbuf) {
    const struct dp_config *c = &m->cfg;
    double t0 = dp_profile_begin();
    dp_layer_rmsnorm_w(xn, x, &m->output_norm, n, c->n_embd, c->norm_eps, wbuf);
    dp_matmul_seg(pool, act, m->output.data, m->output.type, c->n_embd, c->n_vocab, xn, n, logits, seg);
    float cap = m->family.final_softcap;
    if (cap > 0)
        for (size_t i = 0; i < (size_t)n * c->n_vocab; i++) logits[i] = cap * tanhf(logits[i] / cap);
    dp_profile_end(t0, DP_PROF_HEAD, 2.0 * c->n_embd * (double)c->n_vocab * n,
                   (double)dp_type_row_bytes(m->output.type, c->n_embd) * c->n_vocab);
}
