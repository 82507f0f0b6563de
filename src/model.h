/*
 * model (internal side): the loaded weights as typed views into the mapped
 * file, and the forward pass with its extension points.
 *
 * A model is a configuration plus one `struct dp_weight` per tensor, each a
 * pointer into the mapping with its type and shape; nothing is copied. The
 * forward pass (model.c) runs a batch of tokens layer by layer under a unit
 * mask. Later modules hook into it through `struct dp_hooks`: an observer
 * sees each sublayer's input and output residual stream, and a replacement
 * stands in for a removed sublayer (a constant or low-rank update).
 */
#ifndef DP_MODEL_H
#define DP_MODEL_H

#include "gguf.h"
#include "kernels.h"
#include "tokenizer.h"

/* A forward pass runs its tokens in batches of at most this many (the last one shorter). */
#define DP_SESSION_MAX_BATCH 256

/* A matrix or vector in the mapping: n_out rows of n_in elements in `type`. */
struct dp_weight {
    const void *data;     /* NULL when the tensor is absent */
    uint32_t type;
    int64_t n_in, n_out;
    const char *name;     /* for messages (static or owned by the model) */
};

struct dp_layer {
    struct dp_weight attn_norm;         /* (dim) */
    struct dp_weight wq, wk, wv, wo;    /* (n_head*hd, dim) (n_kv*hd, dim) x2, (dim, n_head*hd) */
    struct dp_weight bq, bk, bv, bo;    /* optional biases */
    struct dp_weight ffn_norm;          /* (dim) */
    struct dp_weight w_gate, w_up;      /* (n_ff, dim) */
    struct dp_weight w_down, b_down;    /* (dim, n_ff), optional bias (dim) */
    struct dp_weight b_gate, b_up;      /* optional biases (n_ff) (deci files written by export) */
    struct dp_weight q_norm, k_norm;    /* optional per-head RMSNorm (hd) before RoPE (qwen3, gemma3) */
    struct dp_weight attn_post_norm;    /* optional (dim): RMSNorm of the attention output (gemma2/3) */
    struct dp_weight ffn_post_norm;     /* optional (dim): RMSNorm of the FFN output (gemma2/3) */
    int window;                         /* sliding window (keys with pos_q - pos_k < window), 0: none */
    float rope_base;                    /* this layer's RoPE frequency base (gemma3: local or global) */
    struct dp_layer_shape shape;        /* n_head_kv == 0 < n_head: linear attention x + wo.attn_norm(x) */
    bool has_attn, has_ffn;             /* present in the file (deci files may lack them) */
};

/*
 * What a family computes beyond the llama recipe, as llama.cpp reads it from
 * the GGUF metadata (docs/families.md).
 */
enum dp_ffn_act { DP_FFN_SILU, DP_FFN_GELU_TANH };
struct dp_family {
    enum dp_ffn_act act;                /* gate activation: SwiGLU or tanh-GELU (gemma) */
    float embd_scale;                   /* embeddings times this (gemma: sqrt(dim)); 1 otherwise */
    float attn_scale;                   /* scores q.k times this: 1/sqrt(hd) unless the family says */
    float attn_softcap;                 /* scores -> cap * tanh(score / cap); 0: none (gemma2) */
    float final_softcap;                /* logits likewise (gemma2); 0: none */
};

struct dp_model {
    char format[8];                     /* "gguf" or "llama2c" */
    char *path;
    struct dp_gguf *gguf;               /* GGUF files */
    struct dp_map map;                  /* llama2.c checkpoints */
    struct dp_config cfg;
    struct dp_tokenizer *tok;
    struct dp_weight tok_embd;          /* (vocab, dim) */
    struct dp_weight output_norm;       /* (dim) */
    struct dp_weight output;            /* (vocab, dim); == tok_embd when tied */
    struct dp_layer *layers;            /* n_layers */
    int max_head, max_head_kv, max_ff;  /* over layers: scratch sizes */
    float *rope_factors;                /* (n_rot/2) rope_freqs.weight (llama3 scaling), owned; NULL: none */
    struct dp_family family;
    enum dp_act act;                    /* DP_ACT_EXACT or DP_ACT_Q8: sessions' default activation mode */
};

/*
 * Extension points of the forward pass (all optional; zero-initialise).
 * Units are numbered 2*layer for attention and 2*layer+1 for the FFN.
 */
struct dp_hooks {
    void *ctx;
    /*
     * Observer: x is the unit's input residual (n x dim), y its output, for
     * tokens at positions pos0..pos0+n-1; called for removed units too (y == x
     * unless a replacement applied).
     */
    void (*observe)(void *ctx, int unit, const float *x, const float *y, int n, int dim, int pos0);
    /*
     * Replacement of a removed unit: given its input residual x (n x dim),
     * write the update to add into delta (n x dim) and return true; return
     * false to leave the unit an identity.
     */
    bool (*replace)(void *ctx, int unit, const float *x, float *delta, int n, int dim, int pos0);
    /*
     * Start the pass at unit start_unit with the residual stream start_x
     * ((tokens of this call) x dim, the input of that unit) instead of the
     * embedding: units before it are not run (their KV caches are not
     * filled), which is exact when the caller reuses the stream of a pass
     * that was identical up to there. start_unit 0 with start_x NULL is the
     * normal pass.
     */
    int start_unit;
    const float *start_x;
};

/* Move the session back to position pos (<= the current one): later cache entries are overwritten. */
void dp_session_rewind(struct dp_session *s, int pos);
/* The model and the context size of a session. */
const struct dp_model *dp_session_model(const struct dp_session *s);
int dp_session_n_ctx(const struct dp_session *s);
/* The mask a session runs under. */
const struct dp_mask *dp_session_mask(const struct dp_session *s);

/*
 * Hooks dp_session_forward applies in every pass of s (copied; NULL: none),
 * e.g. a recovery's (dp_session_new_with). dp_session_forward_hooked uses
 * only the hooks it is given.
 */
void dp_session_set_hooks(struct dp_session *s, const struct dp_hooks *hooks);
/* Compute in mode act (DP_ACT_DEFAULT: the model's) from the next forward on. */
void dp_session_set_act(struct dp_session *s, enum dp_act act);
/* Run a batch like dp_session_forward, with hooks (may be NULL). */
dp_status dp_session_forward_hooked(struct dp_session *s, struct dp_pool *pool, const int *tokens,
                                    int n, float *logits, enum dp_logits_mode mode,
                                    const struct dp_hooks *hooks);

/*
 * Several sequences in one weight pass: n_seg sessions (one model, mask,
 * activation mode and position, at most DP_MULTI_MAX) each run n tokens of
 * their own (tokens[s], or hooks[s]->start_x from unit hooks[s]->start_unit,
 * the same unit for all) into logits[s] (n, n_vocab: every position).
 * Products serve all sequences at once in the order of one sequence's
 * batches, attention and the caches stay per sequence, hooks[s] (may be
 * NULL) sees sequence s only: every sequence gets exactly the bits of
 * dp_session_forward_hooked on it alone (DP_LOGITS_ALL). Fails on
 * mismatched sessions or a full context.
 */
#define DP_MULTI_MAX 16
dp_status dp_session_forward_multi(struct dp_session *const *ss, int n_seg, struct dp_pool *pool,
                                   const int *const *tokens, int n, float *const *logits,
                                   const struct dp_hooks *const *hooks);

#endif
