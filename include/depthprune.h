/*
 * depthprune.h: the public API of depthprune.
 *
 * depthprune makes llama-family models shallower. This header is the whole
 * contract between the library and its users (the CLI in src/cli/ is one).
 *
 * A short tour:
 *
 *     struct dp_model *m;
 *     if (dp_model_open("stories260K.gguf", NULL, &m) != DP_OK)
 *         fprintf(stderr, "%s\n", dp_last_error());
 *     struct dp_pool *pool = dp_pool_new(2);
 *     struct dp_mask mask;  dp_mask_all(m, &mask);        // every unit kept
 *     dp_mask_drop(&mask, "b2,a4");                       // or some removed
 *     struct dp_session *s;
 *     dp_session_new(m, &mask, 512, &s);                  // KV cache for 512 positions
 *     int ids[64]; int n;
 *     dp_tokenize(dp_model_tokenizer(m), "Once upon a time", 16, DP_TOKENIZE_BOS, ids, 64, &n);
 *     float *logits = malloc(n * dp_model_config(m)->n_vocab * sizeof *logits);
 *     dp_session_forward(s, pool, ids, n, logits, DP_LOGITS_ALL); // prefill
 *     ...                                                 // then decode one token at a time
 *     dp_session_free(s); dp_pool_free(pool); dp_model_close(m);
 *
 * Conventions: fallible functions return a dp_status (DP_OK = 0) and hand
 * results out through a last `**out` parameter; on failure dp_last_error()
 * holds a one-line message naming the file, tensor or line concerned. The
 * library never prints to stdout and never exits. Objects are released by
 * their _close/_free function, which accepts NULL.
 *
 * Units are named b<i> (block i), a<i> (attention sublayer i) and f<i>
 * (feed-forward sublayer i), 0-based. A pruned model is the mapped original
 * plus a unit mask; nothing is copied.
 */
#ifndef DEPTHPRUNE_H
#define DEPTHPRUNE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define DP_VERSION "0.1.0"
#define DP_MAX_LAYERS 512

enum dp_status {
    DP_OK = 0,
    DP_ERR_IO = -1,      /* a file could not be opened, read, mapped or written */
    DP_ERR_FORMAT = -2,  /* a file is malformed, truncated or unsupported */
    DP_ERR_ARG = -3,     /* a caller passed an invalid argument */
    DP_ERR_NOMEM = -4,   /* an allocation failed */
    DP_ERR_UNSUPPORTED = -5, /* valid input that this version cannot handle */
    DP_ERR_CANCELLED = -6,   /* a progress callback asked the operation to stop */
};
typedef int dp_status;

/* The message of the last failure on this thread (never NULL). */
const char *dp_last_error(void);

/* ---- progress and cancellation ------------------------------------------- */

/*
 * Progress of a long step. The library calls it with `done` of `total` units
 * of the named stage ("score", "mmlu", ...; total 0 when unknown), always from
 * the thread that called the step, never twice at once, and at least at the
 * start and the end of each stage. Return false to cancel: the step stops at
 * its next unit boundary, releases what it allocated and returns
 * DP_ERR_CANCELLED. Every step's params carry one (NULL: silent).
 */
typedef bool (*dp_progress_fn)(const char *stage, int64_t done, int64_t total, void *user);

/* ---- thread pool ---------------------------------------------------------- */

struct dp_pool;
/* A persistent pool of n_threads workers (the caller's thread counts as one). */
struct dp_pool *dp_pool_new(int n_threads);
void dp_pool_free(struct dp_pool *pool);
int dp_pool_threads(const struct dp_pool *pool);

/* ---- model ----------------------------------------------------------------- */

struct dp_config {
    char arch[32];        /* "llama" (the GGUF general.architecture) */
    int n_layers;         /* blocks */
    int n_embd;           /* residual width (dim) */
    int n_head;           /* query heads (most over blocks; see dp_layer_shape) */
    int n_head_kv;        /* key/value heads (most over blocks) */
    int head_dim;         /* per-head width */
    int n_ff;             /* FFN hidden width (most over blocks) */
    int n_vocab;
    int n_ctx_train;      /* trained context length */
    int n_rot;            /* RoPE dimension count */
    bool rope_neox;       /* rotate (i, i+n_rot/2) pairs instead of (2i, 2i+1) */
    float rope_base;      /* RoPE frequency base */
    float norm_eps;       /* RMSNorm epsilon */
    bool tied_output;     /* the output head is the token embedding */
};

/* Per-layer shape (heads and FFN width may differ per layer in some files). */
struct dp_layer_shape {
    int n_head, n_head_kv, n_ff;
};

struct dp_tokenizer;
struct dp_model;

/*
 * Open a model: a GGUF file, or a llama2.c checkpoint (.bin) whose tokenizer
 * comes from `vocab_path` (tok512.bin format; NULL for GGUF files). The
 * weights stay mapped; the model owns the mapping.
 */
dp_status dp_model_open(const char *path, const char *vocab_path, struct dp_model **out);
void dp_model_close(struct dp_model *m);
const struct dp_config *dp_model_config(const struct dp_model *m);
struct dp_layer_shape dp_model_layer_shape(const struct dp_model *m, int layer);
const struct dp_tokenizer *dp_model_tokenizer(const struct dp_model *m);
/* The file format ("gguf" or "llama2c") and the path it was opened from. */
const char *dp_model_format(const struct dp_model *m);
const char *dp_model_path(const struct dp_model *m);

/* Parameter and weight statistics of a model under a mask. */
struct dp_model_stats {
    int64_t n_params;              /* all tensors, embeddings included */
    int64_t n_bytes;               /* bytes of all tensor data */
    int64_t kv_bytes_per_token;    /* the project's f32 KV cache */
    int64_t type_params[64];       /* parameters per GGUF tensor type */
    int64_t type_bytes[64];        /* bytes per GGUF tensor type */
};
struct dp_mask;
void dp_model_stats(const struct dp_model *m, const struct dp_mask *mask, struct dp_model_stats *out);

/* ---- units and masks ------------------------------------------------------- */

struct dp_mask {
    int n_layers;
    bool attn[DP_MAX_LAYERS];  /* attention sublayer i kept */
    bool ffn[DP_MAX_LAYERS];   /* feed-forward sublayer i kept */
};

/* Every unit kept. */
void dp_mask_all(const struct dp_model *m, struct dp_mask *mask);
/* Remove the units of a comma list such as "b2,a4,f0" from `mask`. */
dp_status dp_mask_drop(struct dp_mask *mask, const char *units);
/* Write the removed units as a comma list ("b2,a4"; "" when none). */
void dp_mask_format(const struct dp_mask *mask, char *buf, size_t cap);

/* ---- forward pass ---------------------------------------------------------- */

enum dp_logits_mode {
    DP_LOGITS_NONE = 0,  /* compute no logits (the KV cache is still filled) */
    DP_LOGITS_LAST = 1,  /* logits of the last token of the batch only */
    DP_LOGITS_ALL = 2,   /* logits of every token of the batch */
};

struct dp_session;
/*
 * A session evaluates one sequence with a KV cache of n_ctx positions for the
 * kept attention sublayers of `mask` (a removed attention sublayer has no cache).
 */
dp_status dp_session_new(const struct dp_model *m, const struct dp_mask *mask, int n_ctx,
                         struct dp_session **out);
void dp_session_free(struct dp_session *s);
/* Forget the sequence: the next token is at position 0. */
void dp_session_reset(struct dp_session *s);
/* Number of positions already in the cache. */
int dp_session_pos(const struct dp_session *s);
/*
 * Run n tokens at the next positions. logits receives n (ALL) or 1 (LAST)
 * rows of n_vocab floats. Fails if the cache would overflow.
 */
dp_status dp_session_forward(struct dp_session *s, struct dp_pool *pool, const int *tokens, int n,
                             float *logits, enum dp_logits_mode mode);

/*
 * Activation mode of every matrix product (global, for the whole process; set
 * it before starting work). DP_ACT_EXACT (the default): f32 activations times
 * exactly dequantized weights. DP_ACT_Q8: for Q8_0 and Q4_0 weights the
 * activations are first rounded to 8-bit blocks as llama.cpp does (faster;
 * error bound in docs/performance.md); other weight types stay exact.
 */
enum dp_act { DP_ACT_EXACT = 0, DP_ACT_Q8 = 1 };
void dp_kernels_set_act(enum dp_act mode);
enum dp_act dp_kernels_act(void);
/* "exact" or "q8"; and the inverse (DP_ERR_ARG for another name). */
const char *dp_kernels_act_name(enum dp_act mode);
dp_status dp_kernels_act_parse(const char *name, enum dp_act *out);

/* ---- tokenizer ------------------------------------------------------------- */

int dp_tokenizer_n_vocab(const struct dp_tokenizer *t);
int dp_tokenizer_bos(const struct dp_tokenizer *t);
int dp_tokenizer_eos(const struct dp_tokenizer *t);
/* The piece of a token as stored in the vocabulary (NULL if out of range). */
const char *dp_tokenizer_piece(const struct dp_tokenizer *t, int id);
/* Flags of dp_tokenize. */
enum {
    DP_TOKENIZE_BOS = 1,      /* prepend BOS when the vocabulary wants it (SentencePiece: always) */
    DP_TOKENIZE_SPECIAL = 2,  /* recognise special/control token texts such as "<s>" in the input */
};
/*
 * Tokenize `len` bytes of `text` (any bytes; invalid UTF-8 is handled). Writes
 * at most cap ids and stores the total count in *n_out (which may exceed cap:
 * call again with a larger buffer).
 */
dp_status dp_tokenize(const struct dp_tokenizer *t, const char *text, size_t len, unsigned flags,
                      int *ids, int cap, int *n_out);
/*
 * The text of token `id` as generation prints it, given the previous token
 * (SentencePiece drops the leading space of the first piece after BOS).
 * Appends at most cap bytes to buf; returns the bytes the text needs.
 */
size_t dp_detokenize_token(const struct dp_tokenizer *t, int id, int prev_id, char *buf, size_t cap);
/*
 * Decode a whole id sequence back to text (special tokens rendered as their
 * text, BOS/EOS omitted). Writes at most cap bytes, NUL-terminated when room;
 * returns the length the text needs.
 */
size_t dp_detokenize(const struct dp_tokenizer *t, const int *ids, int n, char *buf, size_t cap);

#endif
