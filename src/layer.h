/*
 * layer: the arithmetic of one transformer layer, shared by the forward pass
 * (model.c) and the training tape (backward.c), so both compute the same
 * bits: RMSNorm, biases, RoPE (with llama3 frequency factors and per-layer
 * bases), the attention sublayer (q/k norms, sliding window, soft-capping,
 * post-norm), the gated FFN (SiLU or tanh-GELU, post-norm) and the output
 * head (final soft-capping).
 *
 * The callers own every buffer; these functions allocate nothing. A
 * sublayer's output is the update it adds to the residual stream, post-norm
 * included (Gemma's post-norms belong to their sublayer).
 */
#ifndef DP_LAYER_H
#define DP_LAYER_H

#include "model.h"

/* out = x / rms(x) * w, row by row; w is f32 (dim). out may be x. */
void dp_layer_rmsnorm(float *out, const float *x, const float *w, int n, int dim, float eps);

/* The same with the weight in its file type, dequantized into wbuf (dim). */
void dp_layer_rmsnorm_w(float *out, const float *x, const struct dp_weight *w, int n, int dim, float eps,
                        float *wbuf);

/* y (n, width) += b on every row when the bias is present (wbuf: width floats). */
void dp_layer_add_bias(float *y, const struct dp_weight *b, int n, int width, float *wbuf);

/*
 * Rotate the first n_rot dims of each head of rows (n, n_heads*hd) at
 * positions pos0.. as llama.cpp's CPU rope does (the same float recurrence,
 * theta divided by the layer's frequency factor); sign -1 applies the
 * inverse rotation (for gradients).
 */
void dp_layer_rope(float *v, int n, int n_heads, const struct dp_model *m, int layer, int pos0, float sign);

/*
 * Buffers of one attention call. Keys and values are cached head-major,
 * (n_head_kv, rows, hd), or (n_head_kv, hd, rows) columns for small heads
 * without soft-capping; position p lives in row p (ring == 0) or, for a
 * sliding window kept in a ring of `ring` positions, in rows p % ring and
 * p % ring + ring (rows == 2 * ring), so a window is always contiguous.
 */
struct dp_attn_io {
    float *xn;                  /* (n, dim) normed input */
    float *q;                   /* (n - from, qd) queries after norms and RoPE */
    float *k, *v;               /* (n, kvd) keys after norms and RoPE, values */
    float *k_cache, *v_cache;   /* see above */
    int rows, ring;
    float *att;                 /* (n - from, qd) attention output */
    float *scores;              /* (n_threads, scores_ld) */
    int scores_ld, scores_threads;
    float *delta;               /* (n - from, dim) the sublayer's update */
    float *wbuf;                /* (dim + qd + kvd + n_ff) */
};

/* Whether layer l keeps its keys as columns in the cache (the small-head kernel layout). */
bool dp_layer_kv_columns(const struct dp_model *m, int l);

/*
 * The attention sublayer of layer l for rows x (n, dim) at positions
 * pos..pos+n-1: keys and values of all n rows go to the cache; the update is
 * computed for rows from..n-1 only. act: the activation mode of its products
 * (as for dp_layer_ffn and dp_layer_head).
 */
void dp_layer_attention(const struct dp_model *m, int l, struct dp_pool *pool, enum dp_act act, const float *x, int n,
                        int from, int pos, const struct dp_attn_io *io);
/*
 * The same for n_seg sequences of n rows each (x: (n_seg * n, dim)), all at
 * positions pos.., in one weight pass: io[s] holds sequence s's caches (and
 * scores); the row buffers of io[0] hold all n_seg * n rows. Every row gets
 * the bits of its sequence run alone. from must be 0 when n_seg > 1.
 */
void dp_layer_attention_seg(const struct dp_model *m, int l, struct dp_pool *pool, enum dp_act act, const float *x,
                            int n_seg, int n, int from, int pos, const struct dp_attn_io *io);

/*
 * The FFN sublayer of layer l for rows x (n, dim): xn the normed input,
 * gate and up (n, n_ff) the two projections before the activation, h (n,
 * n_ff) the activated product (may be gate), delta (n, dim) the update.
 */
void dp_layer_ffn(const struct dp_model *m, int l, struct dp_pool *pool, enum dp_act act, const float *x, int n,
                  float *xn, float *gate, float *up, float *h, float *delta, float *wbuf);
/* The same for n rows made of segments of seg rows (products in the order of seg rows). */
void dp_layer_ffn_seg(const struct dp_model *m, int l, struct dp_pool *pool, enum dp_act act, const float *x, int n,
                      int seg, float *xn, float *gate, float *up, float *h, float *delta, float *wbuf);

/* The gated activation of the model's FFN, elementwise: h = act(gate) * up (GELU through llama.cpp's FP16 table in the q8 mode). */
void dp_layer_glu(const struct dp_model *m, enum dp_act act, const float *gate, const float *up, float *h, size_t n);

/* Token embeddings of ids (n) into x (n, dim), scaled as the family says. */
void dp_layer_embed(const struct dp_model *m, const int *ids, int n, float *x);

/* Logits (n, n_vocab) of rows x (n, dim): output norm into xn, output matrix, final soft-cap. */
void dp_layer_head(const struct dp_model *m, struct dp_pool *pool, enum dp_act act, const float *x, int n, float *xn,
                   float *logits, float *wbuf);
/* The same for n rows made of segments of seg rows. */
void dp_layer_head_seg(const struct dp_model *m, struct dp_pool *pool, enum dp_act act, const float *x, int n, int seg,
                       float *xn, float *logits, float *wbuf);

#endif
