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
 * Contents (sections in this order): status and errors; progress and
 * cancellation; thread pool; model (open with params, activation mode);
 * units and masks; forward pass; utilities for programs (time, files, JSON
 * writer); memory planning; model metadata and statistics; replacements of
 * removed units; corpus; plans; score; evaluate (ppl, KL, MMLU, multiple
 * choice, paired statistics); generation; bench; tokenizer; corpus options
 * of the steps; recovery (fit, load, save, hooks); sessions with params
 * (recovery attached, activation mode); sweeps; budgets; export; synthetic
 * models; speculative drafts. docs/example.c scores, plans, recovers,
 * evaluates and exports through this header alone.
 *
 * Thread safety: a model, corpus, chunks, plan and score result are
 * read-only once made and may be shared; a session, a pool and a JSON writer
 * belong to one thread at a time. Progress callbacks run on the calling
 * thread.
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
#include <stdio.h>

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
 * of the named stage ("perplexity", "mmlu", "score", ...; total 0 when
 * unknown) after each unit of work, done rising within the stage to total
 * (a few coarse stages, "score" and "export", also report 0 before they
 * start). Units are the step's own (chunks, questions, items, sequences,
 * training steps); each params' comment names its stages. A step may run
 * several stages in turn, and a stage may run again (score: "score" 0 of 1,
 * then each metric family's stage, then "score" 1 of 1). The callback is
 * called from the thread that called the step, never from the pool's
 * workers and never twice at once; `stage` is valid only during the call;
 * `user` is passed through untouched and stays the caller's. Return false
 * to cancel: the step stops at that unit boundary, releases what it
 * allocated, hands out no result, commits no atomic output (a sweep keeps
 * the steps it wrote, score its last checkpoint) and returns
 * DP_ERR_CANCELLED with dp_last_error() "STAGE: cancelled". Every long
 * step's params carry one with its user pointer (NULL: silent); the library
 * itself never prints progress.
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

/*
 * Activation mode of the matrix products. DP_ACT_EXACT: f32 activations times
 * exactly dequantized weights. DP_ACT_Q8: the activations are first rounded
 * the way llama.cpp rounds them for each weight type (Q8_0 blocks for
 * Q8_0/Q4_0/Q5_0/IQ4_NL, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants and IQ4_XS)
 * and the products summed in integers (faster; error bound in
 * docs/performance.md); F32/F16/BF16 weights stay exact, and Gemma's GELU
 * uses llama.cpp's FP16 table. DP_ACT_DEFAULT: for a model, exact; for a
 * session, the mode of its model. The mode belongs to a model or a session,
 * never to the process: two sessions may compute in different modes at once.
 */
enum dp_act { DP_ACT_DEFAULT = 0, DP_ACT_EXACT = 1, DP_ACT_Q8 = 2 };
/* "exact", "q8" or "default"; and the inverse of the first two (DP_ERR_ARG for another name). */
const char *dp_kernels_act_name(enum dp_act mode);
dp_status dp_kernels_act_parse(const char *name, enum dp_act *out);

/* How a model is opened (dp_model_open_with). */
struct dp_model_params {
    const char *vocab_path;  /* tokenizer of a llama2.c checkpoint (tok512.bin); NULL for GGUF files */
    enum dp_act act;         /* activation mode of every session of the model (default: exact) */
};
struct dp_model_params dp_model_default_params(void);
/* dp_model_open with params; dp_model_open(path, vocab, out) is this with act exact. */
dp_status dp_model_open_with(const char *path, const struct dp_model_params *p, struct dp_model **out);
/* The model's activation mode (DP_ACT_EXACT or DP_ACT_Q8). */
enum dp_act dp_model_act(const struct dp_model *m);
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

/* The activation mode the session computes in (its params' act, else its model's). */
enum dp_act dp_session_act(const struct dp_session *s);

/* ---- utilities for programs ---------------------------------------------- */

/*
 * Small services the library uses itself and offers its programs, so that a
 * program needs nothing but this header: time, memory, files written
 * atomically, a JSON writer. All are thread-safe except where noted.
 */

/* Monotonic time in seconds. */
double dp_now(void);
/* Peak resident set size of this process in MiB. */
double dp_peak_rss_mb(void);
/*
 * Read a whole regular file (a FIFO or device is refused at once) into a
 * NUL-terminated heap buffer the caller frees; *len excludes the NUL.
 */
dp_status dp_read_file(const char *path, char **out, size_t *len);
/* What path is when it exists and is not a regular file ("a FIFO", "a folder", ...), else NULL. */
const char *dp_file_kind(const char *path);
/*
 * Copy n bytes of s to buf (cap > 0 bytes, always NUL-terminated) for a
 * message: valid UTF-8 is kept, control bytes and invalid UTF-8 become \xNN;
 * cut with "..." when buf is too small. Returns buf.
 */
char *dp_escape(const char *s, size_t n, char *buf, size_t cap);
/* Parse "A:B" (either side may be empty) into [lo, hi); hi = -1 for the end. DP_ERR_ARG otherwise. */
dp_status dp_parse_range(const char *s, int *lo, int *hi);
/* A size such as 4096, 512K, 1.5M, 8G or 1T (binary multiples); false when not one. */
bool dp_parse_bytes(const char *s, int64_t *out);
/* "64.0 GiB", "512.0 MiB", "12.0 KiB" into buf. */
void dp_format_bytes(int64_t bytes, char *buf, size_t cap);

/*
 * Atomic output: dp_out_open creates "<path>.tmp.<pid>" for writing (f);
 * dp_out_commit closes and renames it onto path; dp_out_abort removes it.
 * Either of the two releases what dp_out_open allocated.
 */
struct dp_out {
    FILE *f;
    char *path, *tmp;
};
dp_status dp_out_open(const char *path, struct dp_out *out);
dp_status dp_out_commit(struct dp_out *out);
void dp_out_abort(struct dp_out *out);

/*
 * A minimal streaming JSON writer: nesting and commas are tracked for you.
 *   struct dp_json j; dp_json_init(&j, stdout);
 *   dp_json_begin_obj(&j, NULL); dp_json_num(&j, "ppl", 4.06); dp_json_end(&j);
 * Keys are NULL inside arrays; numbers that are not finite are written as
 * null. One writer per thread.
 */
struct dp_json {
    FILE *f;
    int depth;
    bool first[64];
    char closers[64];
};
void dp_json_init(struct dp_json *j, FILE *f);
void dp_json_begin_obj(struct dp_json *j, const char *key);
void dp_json_begin_arr(struct dp_json *j, const char *key);
void dp_json_end(struct dp_json *j);
void dp_json_num(struct dp_json *j, const char *key, double v);
void dp_json_int(struct dp_json *j, const char *key, int64_t v);
void dp_json_bool(struct dp_json *j, const char *key, bool v);
void dp_json_null(struct dp_json *j, const char *key);
void dp_json_str(struct dp_json *j, const char *key, const char *s);
void dp_json_strn(struct dp_json *j, const char *key, const char *s, size_t n);

/* ---- several processes (MPI) ---------------------------------------------- */

/*
 * The MPI build (make MPI=1, ./depthprune-mpi) runs one program as several
 * ranks (mpirun -np N): the library's loops over independent items
 * (sequences, chunks, questions) give each rank a share and gather the
 * results in item order, so every number equals a single process's, bit for
 * bit. In the plain build there is one rank and these are no-ops.
 *
 * dp_dist_init, first thing in main: starts MPI (rank > 0: stdout and
 * stderr go to /dev/null; rank 0 alone writes results, and atomic outputs
 * of other ranks are discarded). dp_dist_finish(rc), last: returns rc; a rank that ends
 * with rc != 0 aborts the whole job (every rank stops within seconds) after
 * saying so on stderr. dp_dist_mpi: built with MPI.
 * dp_dist_same: every rank passes a digest (a text of at most 127 bytes) of
 * something that must be the same everywhere (the model file); a rank whose
 * digest differs from rank 0's fails, naming itself and `what`.
 * dp_dist_traffic: the bytes this rank sent and received in collectives and
 * how many there were. dp_dist_errors: where a rank writes its errors (rank 0:
 * stderr; the others' stderr is /dev/null, so that warnings, logs and
 * progress appear once, and errors go to the stream mpirun shows).
 */
dp_status dp_dist_init(int *argc, char ***argv);
int dp_dist_finish(int rc);
int dp_dist_rank(void);
int dp_dist_size(void);
bool dp_dist_mpi(void);
dp_status dp_dist_same(const char *what, const char *digest);
/* dp_dist_same for a file's size and SHA-256 (of its first and last 4 MiB when above 64 MiB); "absent" when unreadable. */
dp_status dp_dist_same_file(const char *what, const char *path);
void dp_dist_traffic(int64_t *sent, int64_t *received, int64_t *collectives);
FILE *dp_dist_errors(void);

/* ---- memory planning ------------------------------------------------------ */

/*
 * Sizes known before allocating, so a program can refuse a run that cannot
 * fit with one line instead of swapping. mask NULL: every unit kept.
 */
/* Bytes dp_session_new(m, mask, n_ctx) allocates (KV cache and batch scratch). */
int64_t dp_session_bytes(const struct dp_model *m, const struct dp_mask *mask, int n_ctx);
/* The KV cache part of it. */
int64_t dp_kv_cache_bytes(const struct dp_model *m, const struct dp_mask *mask, int n_ctx);
/* Bytes of f32 logits for n positions of the model's vocabulary. */
int64_t dp_logits_bytes(const struct dp_model *m, int64_t n);
/*
 * DP_ERR_NOMEM when `need` bytes exceed max_mem (when > 0) or the memory
 * this machine can give (DP_MEM_AVAILABLE, else /proc/meminfo), with the
 * message "WHAT needs 64.0 GiB, more than the 12.3 GiB available: lower
 * FLAG" (FLAG NULL: no advice).
 */
dp_status dp_mem_check(int64_t need, int64_t max_mem, const char *what, const char *flag);

/* ---- model metadata and statistics ---------------------------------------- */

/*
 * A GGUF metadata value as text: strings as they are, string arrays joined by
 * ",". Writes at most cap bytes (NUL-terminated when cap > 0) and returns the
 * length the text needs, or -1 when the key is absent, of another type, or
 * the model is not a GGUF file.
 */
int dp_model_meta_str(const struct dp_model *m, const char *key, char *buf, size_t cap);
/* Whether the key is present (any type; false for files that are not GGUF). */
bool dp_model_meta_has(const struct dp_model *m, const char *key);
/* An integer metadata value; false (and *out untouched) when absent or not an integer. */
bool dp_model_meta_int(const struct dp_model *m, const char *key, int64_t *out);
/* The GGUF name of a tensor type ("F32", "Q4_K", ...; "?" when unknown): the index of dp_model_stats's arrays. */
const char *dp_type_name(uint32_t type);

/* ---- replacements of removed units ---------------------------------------- */

/*
 * The forward pass's extension points (observers, replacements of removed
 * units) are opaque here: programs get them from a recovery and pass them on
 * to the evaluation steps below (NULL: removed units are identities).
 */
struct dp_hooks;
/* dp_session_forward with hooks (may be NULL). */
dp_status dp_session_forward_hooked(struct dp_session *s, struct dp_pool *pool, const int *tokens,
                                    int n, float *logits, enum dp_logits_mode mode,
                                    const struct dp_hooks *hooks);

/* ---- corpus ----------------------------------------------------------------- */

/*
 * A corpus is a list of documents: a text file whose documents are separated
 * by lines reading exactly `<|endoftext|>`, or a JSONL file (name ending in
 * .jsonl) with a "text" field per line; documents are stripped, empty ones
 * skipped. Two protocols turn text into tokens:
 *  - paper: every document tokenized with BOS, concatenated, cut into chunks
 *    of exactly ctx tokens (the remainder dropped): dp_chunks_paper;
 *  - llamacpp: the whole file tokenized once with BOS: dp_corpus_tokens.
 * A corpus and chunks are immutable once made: safe to share between threads.
 */
struct dp_corpus;
dp_status dp_corpus_read(const char *path, struct dp_corpus **out);
void dp_corpus_free(struct dp_corpus *c);

/* Token chunks: n_seqs sequences of ctx ids, row-major. */
struct dp_chunks {
    int n_seqs, ctx;
    int *ids;              /* (n_seqs, ctx) */
    int n_docs;            /* documents tokenized */
    int64_t n_tokens;      /* ids before the remainder was dropped (with max_seqs: at most max_seqs*ctx) */
};
/*
 * The paper chunking of documents [doc_lo, doc_hi) (doc_hi < 0: to the end),
 * keeping at most max_seqs chunks (<= 0: all; only the documents needed are
 * tokenized). Fails when not even one chunk of ctx tokens results, naming
 * the corpus. The caller owns *out (dp_chunks_free).
 */
dp_status dp_chunks_paper(const struct dp_tokenizer *t, const struct dp_corpus *c, int doc_lo, int doc_hi, int ctx,
                          int max_seqs, struct dp_chunks **out);
void dp_chunks_free(struct dp_chunks *ch);
/*
 * The llamacpp protocol's tokens: the whole file at path read and tokenized
 * once with BOS (*ids a heap array the caller frees, *n_ids its length).
 * Messages name the file.
 */
dp_status dp_corpus_tokens(const struct dp_tokenizer *t, const char *path, int **ids, int *n_ids);

/* ---- plans ------------------------------------------------------------------ */

/*
 * A plan: removed units in removal order, with the model it was made for and
 * its recovery, saved as JSON (version 2). dp_identity names a model by block
 * count, a hash of its tensors and a hash of its shape, so a plan or scores
 * file is never applied to another model by mistake.
 */
struct dp_identity {
    int n_blocks;        /* 0: unknown */
    char hash[65];       /* model_hash, "" when unknown */
    char shape[65];      /* model_shape, "" when unknown */
};
/* The identity of a loaded model (cannot fail: reads a few pages per tensor). */
void dp_identity_of(const struct dp_model *m, struct dp_identity *out);
/*
 * Check that `claim` (read from `path`) describes `model`: DP_ERR_ARG with a
 * message naming path when it does not; a twin (same shape, other weights)
 * passes with allow_twin. *unchecked: the claim had no hash.
 */
dp_status dp_identity_check(const struct dp_identity *claim, const struct dp_identity *model, const char *path,
                            bool allow_twin, bool *unchecked);

#define DP_PLAN_MAX_UNITS (2 * DP_MAX_LAYERS)
struct dp_plan {
    int version;                          /* "depthprune_plan" as read (saving writes 2) */
    int n_blocks;                         /* of the model the plan was made for (0: unknown) */
    char model_hash[65], model_shape[65]; /* dp_identity; "" when unknown */
    int n_units;
    char units[DP_PLAN_MAX_UNITS][16];    /* "b2", "a4", ... in removal order */
    char metric[64], scheme[16];
    char model[1024];                     /* source model path as given */
    char recover_kind[64];                /* "" when none */
    char recover_file[1024];              /* resolved path, "" when none */
};
/* Read a plan file into *out (the caller's struct); messages name the file and key. */
dp_status dp_plan_load(const char *path, struct dp_plan *out);
/* Write a plan atomically; recover_file is stored relative to the plan's folder when inside it.
 * Written as version 2 when the identity is complete, else 1. */
dp_status dp_plan_save(const struct dp_plan *p, const char *path);
/* The identity a plan claims (for dp_identity_check), and recording that of the model it is made for. */
void dp_plan_identity(const struct dp_plan *p, struct dp_identity *out);
void dp_plan_set_identity(struct dp_plan *p, const struct dp_identity *id);
/* Remove the plan's units from mask (DP_ERR_ARG for a unit the model lacks). */
dp_status dp_plan_apply(const struct dp_plan *p, struct dp_mask *mask);
/* Append a unit ("b2") to the removal order (DP_ERR_ARG for a bad or repeated name). */
dp_status dp_plan_push(struct dp_plan *p, const char *unit);

/* ---- score: how much each unit matters -------------------------------------- */

enum dp_metric {
    DP_METRIC_COSINE,
    DP_METRIC_REL_L1,
    DP_METRIC_REL_L2,
    DP_METRIC_ANGULAR,
    DP_METRIC_LOO_LOSS,
    DP_METRIC_LOO_LOGIT,
    DP_METRIC_BANZHAF_LOSS,
    DP_METRIC_BANZHAF_LOGIT,
    DP_METRIC_SHAPLEY_LOSS,
    DP_METRIC_SHAPLEY_LOGIT,
    DP_METRIC_MMLU_SHAPLEY,        /* an oracle measured on MMLU test questions */
    DP_METRIC_MMLU_SHAPLEY_ITER,   /* the same, iterated: "influence" is the removal step */
    DP_N_METRICS
};
/* "cosine", "loo_loss", ... (NULL when out of range). */
const char *dp_metric_name(int metric);
/* The metric named by the n bytes of s, or -1. */
int dp_metric_parse(const char *s, size_t n);
/* Whether the metric is a random estimate (it has standard errors). */
bool dp_metric_random(int metric);
/* The Shapley estimator named ("auto", "hybrid", "stratified", "kernel", "leverage", "permutation"), or -1. */
int dp_shapley_estimator_parse(const char *name);

enum dp_unit_kind { DP_UNITS_BLOCK = 0, DP_UNITS_SUBLAYER = 1 };
enum dp_score_parallel {
    DP_SCORE_PAR_AUTO,     /* sequences for models of width <= 1024, else matrix products */
    DP_SCORE_PAR_SEQS,     /* one sequence per thread, single-threaded passes */
    DP_SCORE_PAR_MATMUL,   /* one sequence at a time, passes on the pool */
};

/*
 * What dp_score_run does. The units scored are the blocks (or sublayers)
 * that `mask` keeps. Calibration metrics read the corpus `corpus` (paper
 * chunks of ctx tokens of documents [doc_lo, doc_hi), at most max_seqs);
 * mmlu_shapley reads the MMLU folder `mmlu_dir`. Strings are borrowed for
 * the call.
 */
struct dp_score_params {
    enum dp_unit_kind kind;
    bool want[DP_N_METRICS];   /* metrics to compute */
    const char *corpus;        /* calibration corpus (NULL when only mmlu_shapley is asked for) */
    const char *docs;          /* the document range as given ("A:B"; NULL: all), for the scores file */
    int doc_lo, doc_hi;        /* documents [doc_lo, doc_hi) (doc_hi -1: to the end) */
    int ctx;                   /* tokens per sequence (default 0: 2048 capped at the model's context) */
    int max_seqs;              /* at most this many sequences (0: all) */
    int span;                  /* angular: only spans of this many blocks (0: every n) */
    int banzhaf_subsets;       /* random subsets per sequence (default 10) */
    int shapley_samples;       /* at most this many permutations, or samples * (n + 1) coalitions (default 200) */
    int shapley_min_pairs;     /* no early stop before this many pairs (default 8) */
    double shapley_tol;        /* stop when every standard error is below (0: never early; default 0.01) */
    bool shapley_exact;        /* exact values by enumerating every coalition (at most 24 units) */
    int shapley_estimator;     /* dp_shapley_estimator_parse (default: auto) */
    uint64_t seed;             /* default 1 */
    bool no_reuse;             /* run every pass from the embedding (a check of prefix reuse) */
    int64_t max_mem;           /* fail when snapshots and logits need more bytes (0: no limit) */
    const char *checkpoint;    /* checkpoint file (resumed when it matches), or NULL */
    double checkpoint_every;   /* seconds between checkpoints (default 60; 0: at every sequence) */
    int64_t stop_after_passes; /* tests: fail with DP_ERR_IO after this many passes (0: never) */
    enum dp_score_parallel parallel;
    int seq_batch;             /* leave-one-out with passes split over the pool: sequences per weight pass
                                  (1..16, default 1); the results are the same bits for any value */
    const char *mmlu_dir;      /* mmlu_shapley: the MMLU folder (dev/, test/) */
    int mmlu_limit;            /* questions per subject (0: all) */
    int mmlu_draws;            /* random subnetworks per question (default 10) */
    int mmlu_shots;            /* few-shot examples (default 5) */
    int mmlu_ctx_limit;        /* prompt tokens (default 0: 2048 capped at the model's context) */
    const struct dp_hooks *hooks; /* replacements of removed units, or NULL */
    int n_threads;             /* recorded in the scores file (0: the pool's) */
    dp_progress_fn progress;   /* "score" 0 and 1 of 1 around the families' stages (sequences done of all):
                                  "static metrics", "leave-one-out", "banzhaf", "shapley coalitions" (once per
                                  round); mmlu_shapley: "mmlu" (questions), then "mmlu" per subnetwork or
                                  "mmlu_shapley" (subjects) when subnetworks run in parallel; NULL: silent */
    void *progress_user;
};
void dp_score_default_params(struct dp_score_params *p);
/*
 * Bytes the adaptive metrics need beyond the model and one session per
 * worker: residual-stream snapshots and two logit buffers for ctx tokens.
 */
void dp_metrics_memory(const struct dp_model *m, int ctx, int64_t *snapshot_bytes, int64_t *logits_bytes);

/* Scores with their provenance (model, data, seed, time): opaque. */
struct dp_score_result;
/*
 * Score the units of mask. The caller owns *out (dp_score_result_free).
 * Errors: bad parameters (DP_ERR_ARG), unreadable corpus or MMLU data,
 * memory above max_mem, a checkpoint that cannot be read, cancellation.
 */
dp_status dp_score_run(const struct dp_model *m, const struct dp_mask *mask, struct dp_pool *pool,
                       const struct dp_score_params *p, struct dp_score_result **out);
void dp_score_result_free(struct dp_score_result *r);
/* Units scored ("b3" / "a3" / "f3"), in model order. */
int dp_score_n_units(const struct dp_score_result *r);
const char *dp_score_unit(const struct dp_score_result *r, int i);
/* Whether metric was computed; unit i's influence and standard error (NaN when none). */
bool dp_score_has(const struct dp_score_result *r, int metric);
double dp_score_influence(const struct dp_score_result *r, int metric, int i);
double dp_score_stderr(const struct dp_score_result *r, int metric, int i);
/* The k-th unit (index) in ascending influence, ties by index (-1 when out of range). */
int dp_score_order(const struct dp_score_result *r, int metric, int k);
/* Sublayer evaluations spent and what passes from the embedding would have cost. */
void dp_score_cost(const struct dp_score_result *r, int64_t *unit_evals, int64_t *naive_unit_evals);
/*
 * The outputs: the scores file (JSON, read back by sweep and prune), the CSV
 * (one row per unit) and a table with bars for people.
 */
void dp_score_write_json(FILE *f, const struct dp_score_result *r);
void dp_score_write_csv(FILE *f, const struct dp_score_result *r);
void dp_score_write_table(FILE *f, const struct dp_score_result *r);
/*
 * A plan of the `count` lowest-influence units of metric (the first count of
 * its order), for the model scored.
 */
dp_status dp_plan_from_scores(const struct dp_score_result *r, int metric, int count, struct dp_plan *out);

/* ---- evaluate ------------------------------------------------------------- */

/*
 * Every evaluation runs a model under a mask with optional replacements
 * (hooks) on the pool, never changes the model and may run concurrently with
 * other evaluations of the same model on other pools.
 */

/*
 * Perplexity. paper: chunks (above), every one of the ctx-1 predictions of
 * each scored; ppl = exp(mean CE), ppl_seq = mean over chunks of exp(chunk CE).
 * llamacpp: floor(n/ctx) chunks of the whole text, each chunk's first token
 * replaced by BOS, positions ctx/2 .. ctx-2 scored, with llama-perplexity's
 * +/- (ppl_pm). Natural logs.
 */
struct dp_ppl {
    double ppl, ppl_seq, nll, ppl_pm;
    int64_t n_tokens;   /* predictions scored */
    int n_seqs;
};
dp_status dp_eval_ppl_paper(const struct dp_model *m, const struct dp_mask *mask, const struct dp_hooks *hooks,
                            struct dp_pool *pool, const struct dp_chunks *ch, struct dp_ppl *out);
/* ids: the whole text's tokens, BOS first (dp_corpus_tokens); at least 2*ctx of them. */
dp_status dp_eval_ppl_llamacpp(const struct dp_model *m, const struct dp_mask *mask, const struct dp_hooks *hooks,
                               struct dp_pool *pool, const int *ids, int n_ids, int ctx, struct dp_ppl *out);

/*
 * What the perplexity and KL evaluations take beyond their arguments: the
 * dp_..._with variants below take one (NULL: the defaults); the plain
 * functions are those variants with the defaults (silent).
 */
struct dp_eval_params {
    dp_progress_fn progress;   /* stages "perplexity", "kl divergence": chunks done of all */
    void *progress_user;
};
struct dp_eval_params dp_eval_default_params(void);
/* dp_eval_ppl_paper and dp_eval_ppl_llamacpp with params p; DP_ERR_CANCELLED when p->progress asked to stop. */
dp_status dp_eval_ppl_paper_with(const struct dp_model *m, const struct dp_mask *mask, const struct dp_hooks *hooks,
                                 struct dp_pool *pool, const struct dp_chunks *ch, const struct dp_eval_params *p,
                                 struct dp_ppl *out);
dp_status dp_eval_ppl_llamacpp_with(const struct dp_model *m, const struct dp_mask *mask, const struct dp_hooks *hooks,
                                    struct dp_pool *pool, const int *ids, int n_ids, int ctx,
                                    const struct dp_eval_params *p, struct dp_ppl *out);

/*
 * KL divergence of a candidate's next-token distributions from a base's on
 * the llamacpp protocol's positions (nats), top-1 agreement (fractions) and
 * both perplexities; also against a llama.cpp --kl-divergence-base file.
 */
struct dp_kld_model {
    const struct dp_model *m;
    const struct dp_mask *mask;
    const struct dp_hooks *hooks;
};
struct dp_kld_result {
    int ctx, n_chunks;
    int64_t n;                          /* scored positions */
    double kld_mean, kld_stderr, kld_median, kld_p99, kld_max;
    double top1, top1_stderr;           /* fractions */
    double nll_base, nll, ppl_base, ppl, ppl_ratio;
};
/* cand NULL: the base alone (only ppl_base set). save_base: write the base's log-probabilities there (llama.cpp's format). */
dp_status dp_kld_eval(const struct dp_kld_model *base, const struct dp_kld_model *cand, struct dp_pool *pool,
                      const int *ids, int n_ids, int ctx, const char *save_base, struct dp_kld_result *out);
/* Against the base log-probabilities of a llama.cpp file (tokens and ctx from the file). */
dp_status dp_kld_eval_file(const char *base_path, const struct dp_kld_model *cand, struct dp_pool *pool,
                           struct dp_kld_result *out);
/* The same with params p (NULL: the defaults); DP_ERR_CANCELLED when p->progress asked to stop (save_base is not written). */
dp_status dp_kld_eval_with(const struct dp_kld_model *base, const struct dp_kld_model *cand, struct dp_pool *pool,
                           const int *ids, int n_ids, int ctx, const char *save_base, const struct dp_eval_params *p,
                           struct dp_kld_result *out);
dp_status dp_kld_eval_file_with(const char *base_path, const struct dp_kld_model *cand, struct dp_pool *pool,
                                const struct dp_eval_params *p, struct dp_kld_result *out);

/*
 * MMLU: k-shot prompts from the dev rows, the answer letter with the highest
 * logit among A-D; questions of a subject share their few-shot prefix.
 */
struct dp_mmlu_data;
/* Read dir/dev and dir/test (subjects: a comma list or NULL for all; limit > 0: questions per subject). */
dp_status dp_mmlu_read(const char *dir, const char *subjects, int limit, struct dp_mmlu_data **out);
void dp_mmlu_data_free(struct dp_mmlu_data *d);
int dp_mmlu_data_n_subjects(const struct dp_mmlu_data *d);
const char *dp_mmlu_data_subject(const struct dp_mmlu_data *d, int i);

#define DP_MMLU_MAX_SHOTS 16
struct dp_mmlu_opts {
    int shots;           /* k, at most DP_MMLU_MAX_SHOTS (capped at the dev rows) */
    int ctx_limit;       /* tokens a prompt may hold (BOS included) */
    bool prefix_cache;   /* false: every question from an empty cache (for checks) */
    FILE *dump;          /* JSON lines {"subject","index","shots","prompt","label"} or NULL */
    dp_progress_fn progress;   /* stage "mmlu": questions done of all; NULL: silent */
    void *progress_user;
};
/* The research's protocol for model m: 5 shots, ctx_limit min(2048, m's trained context), prefix cache on. */
struct dp_mmlu_opts dp_mmlu_default_opts(const struct dp_model *m);
struct dp_mmlu_subject_result {
    int n, n_correct;
};
struct dp_mmlu_result {
    int n, n_correct;
    int n_truncated;                          /* prompts cut on the left even with 0 shots */
    int shots_used[DP_MMLU_MAX_SHOTS + 1];    /* questions per number of shots kept */
    int64_t tokens_evaluated, tokens_naive;
    int n_subjects;
    struct dp_mmlu_subject_result *subjects;  /* per subject of the data, in order */
    bool *correct;                            /* (n) per question, subject by subject */
    int *pred;                                /* (n) chosen letter 0..3 */
};
/* The caller owns *out (dp_mmlu_result_free). DP_ERR_CANCELLED when opts->progress asked to stop. */
dp_status dp_mmlu_eval(const struct dp_model *m, const struct dp_mask *mask, const struct dp_hooks *hooks,
                       struct dp_pool *pool, const struct dp_mmlu_data *data, const struct dp_mmlu_opts *opts,
                       struct dp_mmlu_result **out);
void dp_mmlu_result_free(struct dp_mmlu_result *r);

/* Multiple-choice tasks: the choice of the highest summed log-likelihood (acc) and per byte (acc_norm). */
enum dp_task { DP_TASK_HELLASWAG, DP_TASK_ARC, DP_TASK_PIQA, DP_TASK_WINOGRANDE, DP_TASK_BOOLQ };
/* "hellaswag" ... "boolq" -> task; DP_ERR_ARG naming the choices otherwise. */
dp_status dp_task_parse(const char *name, enum dp_task *out);
const char *dp_task_name(enum dp_task t);
struct dp_mc_set;
/* Read a task file (labels: PIQA's labels file or NULL for the default); limit > 0 keeps the first items. */
dp_status dp_mc_read(enum dp_task task, const char *path, const char *labels, int limit, struct dp_mc_set **out);
void dp_mc_set_free(struct dp_mc_set *s);
struct dp_mc_opts {
    int ctx_limit;       /* tokens a context and continuation may hold */
    bool prefix_cache;   /* false: every choice from an empty cache (for checks) */
    dp_progress_fn progress;   /* stage: the task's name ("piqa"), items done of all; NULL: silent */
    void *progress_user;
};
/* For model m: ctx_limit min(2048, m's trained context), prefix cache on, silent. */
struct dp_mc_opts dp_mc_default_opts(const struct dp_model *m);
struct dp_mc_result {
    int n, n_correct, n_correct_norm, n_truncated;
    int64_t tokens_evaluated, tokens_naive;
    bool *correct, *correct_norm;     /* (n) per item */
};
/* The caller owns *out (dp_mc_result_free). DP_ERR_CANCELLED when opts->progress asked to stop. */
dp_status dp_mc_eval(const struct dp_model *m, const struct dp_mask *mask, const struct dp_hooks *hooks,
                     struct dp_pool *pool, const struct dp_mc_set *set, const struct dp_mc_opts *opts,
                     struct dp_mc_result **out);
void dp_mc_result_free(struct dp_mc_result *r);

/* Statistics of accuracies: the binomial standard error (fraction) of k right of n. */
double dp_stats_acc_stderr(int64_t k, int64_t n);
/* Two models on the same n items: discordant counts, difference with its standard error, McNemar's exact p. */
struct dp_paired {
    int64_t n;
    int64_t a_only, b_only;     /* discordant: a right & b wrong, a wrong & b right */
    int64_t both, neither;
    double acc_a, acc_b;        /* fractions */
    double diff, diff_stderr;   /* acc_a - acc_b and its standard error (fractions) */
    double mcnemar_p;
};
void dp_stats_paired(const bool *a, const bool *b, int64_t n, struct dp_paired *out);
/* The paired statistics as a JSON object member `key`. */
void dp_stats_paired_json(struct dp_json *j, const char *key, const struct dp_paired *p);

/* ---- generation -------------------------------------------------------------- */

/*
 * Decoding, plain or speculative: a draft (a pruned mask of the same model)
 * proposes tokens that the verifier accepts or rejects so that the output
 * follows the verifier's distribution exactly.
 */
#define DP_SPEC_MAX_LEN 32   /* the largest draft length */
struct dp_spec_opts {
    int draft_len;        /* K drafted tokens per verification, 1..DP_SPEC_MAX_LEN; 0: auto */
    int max_draft_len;    /* auto: the largest K considered (0: 8) */
    double draft_cost;    /* auto: cost of a draft step relative to a decode step of the verifier (0: 0.5) */
    double temp;          /* 0: greedy */
    uint64_t seed;        /* sampling */
    int eos;              /* stop at this token (not emitted); -1: never */
    const struct dp_hooks *verify_hooks, *draft_hooks;  /* replacements of removed units, or NULL */
};
/* Greedy, auto draft length, no end token (eos -1), seed 1, no hooks. */
struct dp_spec_opts dp_spec_default_opts(void);
struct dp_spec_stats {
    int64_t n_generated;   /* tokens emitted */
    int64_t n_verify;      /* verifier passes after the prompt (plain decoding: one per token) */
    int64_t n_drafted;     /* tokens the draft proposed */
    int64_t n_accepted;    /* of them accepted */
    int64_t n_rejected;    /* rounds that ended on a rejection */
    double t_prefill;      /* seconds: both prompts */
    double t_draft, t_verify; /* seconds after the prompt */
};
/* Accepted of drafted (0 when none drafted). */
double dp_spec_accept_rate(const struct dp_spec_stats *s);
/* Called with each token generated; return false to stop. */
typedef bool (*dp_spec_emit_fn)(void *ctx, int token);
/*
 * Generate n_new tokens after the prompt with the verifier session (and the
 * draft session, or NULL for plain decoding), both empty on entry.
 */
dp_status dp_spec_generate(struct dp_session *verify, struct dp_session *draft, struct dp_pool *pool,
                           const int *prompt, int n_prompt, int n_new, const struct dp_spec_opts *o,
                           dp_spec_emit_fn emit, void *emit_ctx, struct dp_spec_stats *stats);
/* Weight bytes one decode step reads under mask (the draft's cost relative to the verifier's). */
int64_t dp_spec_step_bytes(const struct dp_model *m, const struct dp_mask *mask);

/* ---- bench -------------------------------------------------------------------- */

/*
 * Prefill and decode speed as llama-bench measures them: prefill of
 * n_prefill tokens from an empty cache computing the last token's logits;
 * decode of n_decode tokens one at a time from an empty cache; each repeated
 * reps times, the median reported. Tokens are fixed pseudo-random ids.
 */
struct dp_bench_params {
    int n_prefill;             /* default 512; 0 skips */
    int n_decode;              /* default 64; 0 skips */
    int reps;                  /* default 3 */
    dp_progress_fn progress;   /* stage "bench", after each repetition */
    void *progress_user;
};
void dp_bench_default_params(struct dp_bench_params *p);
struct dp_bench_result {
    double prefill_tok_s, decode_tok_s;   /* medians (0 when skipped) */
    double gflops;                        /* prefill: the FLOPs actually done per second, 1e9 */
    double decode_gflops;
    double gbps;                          /* decode: weight bytes read per second, 1e9 */
    double peak_rss_mb;                   /* of the process, after the run */
};
/* Runs on the pool; fails on memory or cancellation. */
dp_status dp_bench_run(const struct dp_model *m, const struct dp_mask *mask, struct dp_pool *pool,
                       const struct dp_bench_params *p, struct dp_bench_result *out);
/* The kernel set picked at start-up ("scalar", "avx2", "avx512"). */
const char *dp_kernels_name(void);

/*
 * Per-op profile of whatever runs between dp_profile_start and
 * dp_profile_stop (bench --workload): the wall time, FLOPs and weight bytes
 * of each op, summed over its calls. Matrix products are split by regime:
 * the exact mode's gemm order (DP_GEMM_MIN_TOK tokens or more) and dot order
 * (short batches, decode), and the q8 mode by batch size. An op called inside
 * another (the head's product) is charged to the outer one. Profiling
 * changes no result; while off it costs one atomic load per op.
 */
enum dp_profile_op {
    DP_PROF_GEMM,          /* exact mode, >= 64 tokens (gemm order) */
    DP_PROF_DOT_SHORT,     /* exact mode, 16..63 tokens (dot order) */
    DP_PROF_DOT_DECODE,    /* exact mode, < 16 tokens (dot order) */
    DP_PROF_Q8_LONG,       /* q8 mode, >= 129 tokens */
    DP_PROF_Q8_SHORT,      /* q8 mode, 16..128 tokens */
    DP_PROF_Q8_DECODE,     /* q8 mode, < 16 tokens */
    DP_PROF_ATTENTION,     /* scores, softmax and weighted values (not the projections) */
    DP_PROF_HEAD,          /* output norm + output matrix + soft-cap */
    DP_PROF_NORM,          /* RMSNorms of the sublayers */
    DP_PROF_ROPE,
    DP_PROF_GLU,           /* the gated activation */
    DP_PROF_EMBED,
    DP_PROF_LOSS,          /* log-softmax, cross-entropy and logit distances of the scorers */
    DP_PROF_N
};
struct dp_profile {
    double seconds[DP_PROF_N];   /* thread-seconds (ops run by several threads at once add up) */
    double flops[DP_PROF_N];     /* multiply-adds count 2 */
    double bytes[DP_PROF_N];     /* weight bytes read (matrix products) */
    int64_t calls[DP_PROF_N];
    int64_t tokens;              /* tokens fed through the forward pass (a pass from sublayer k counts its tokens) */
    int64_t token_sublayers;     /* tokens times the sublayers actually run for them */
    double wall;                 /* seconds from dp_profile_start to dp_profile_stop */
};
/* Zero the counters and start profiling (process-wide). */
void dp_profile_start(void);
/* Stop and read the counters into *out. */
void dp_profile_stop(struct dp_profile *out);
/* A short name of an op ("gemm", "q8 short", "attention", ...), NULL out of range. */
const char *dp_profile_op_name(int op);

/*
 * Peaks of this machine measured by small loops (`seconds` long, on
 * `threads` threads at once), in 1e9 per second:
 *  DP_PEAK_FMA     f32 FMA FLOPs with the widest vectors of the kernel set in use
 *                  (8 lanes AVX2, 16 AVX-512; 1 scalar);
 *  DP_PEAK_INT8    int8 multiply-adds x2 with the instructions the q8 kernels use
 *                  (AVX2 vpmaddubsw + vpmaddwd + vpaddd; AVX-512 VNNI vpdpbusd);
 *                  0 when the set has no q8 kernels;
 *  DP_PEAK_READ    memory read bandwidth, GB/s (a 256 MiB buffer).
 */
enum dp_peak_kind { DP_PEAK_FMA, DP_PEAK_INT8, DP_PEAK_READ };
double dp_peak_measure(enum dp_peak_kind kind, int threads, double seconds);
/* Which instructions DP_PEAK_INT8 / DP_PEAK_FMA use under the kernel set in use ("avx2 vpmaddubsw", ...). */
const char *dp_peak_name(enum dp_peak_kind kind);

/* ---- tokenizer ------------------------------------------------------------- */

/*
 * The tokenizer of a GGUF file alone (vocabulary-only files work). When path
 * is not a readable GGUF file, *is_gguf is false and DP_ERR_FORMAT returned
 * (a program may then open it as a llama2.c model). The caller owns *out
 * (dp_tokenizer_free); the tokenizers of models belong to their models.
 */
dp_status dp_tokenizer_open(const char *path, bool *is_gguf, struct dp_tokenizer **out);
void dp_tokenizer_free(struct dp_tokenizer *t);
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

/* ==== recovery, sweeps, budgets, export, synth, drafts (issue 14, part 2) ==== */
/*
 * Functions in this part (src/api_recover.c, src/api_sweep.c,
 * src/api_export.c, src/synth.c, src/api_spec.c) are safe to call from
 * several threads at once on distinct objects; a model may be shared
 * read-only, a pool must not be used by two calls at once. Every step's
 * params carry a progress callback (dp_progress_fn above; NULL: silent) and,
 * where a step has lines for people, a log callback (NULL: silent). Params
 * are plain structs: start from dp_X_default_params() and set what differs.
 */

/* Log lines for people (no newline), e.g. "recovery mean of 2 units fitted ...". */
typedef void (*dp_log_fn)(const char *line, void *user);

/* ---- corpus options shared by the steps below ----------------------------- */

/*
 * A corpus as a step reads it (the paper protocol): a text file of
 * documents, documents A:B of it, cut into sequences of ctx tokens (BOS
 * first), at most max_seqs (0: all).
 */
struct dp_corpus_spec {
    const char *path;     /* NULL: no corpus */
    const char *docs;     /* "A:B" (either side may be empty), NULL: all */
    int ctx;              /* tokens per sequence (0: the step's default) */
    int max_seqs;
};

/* ---- recovery --------------------------------------------------------------- */

/*
 * A recovery: for each removed unit, a replacement added to the residual
 * stream in its place (a constant, or a low-rank map of the unit's normed
 * input plus a constant), as in llama.cpp's LoRA adapters an object of its
 * own that is attached to sessions (dp_session_params.recovery) and folded
 * into exported files (dp_export_params.recovery). Kinds: "mean",
 * "lowrank:R" (closed form), "bias-trained", "lowrank-trained:R" (Adam on
 * the calibration loss), "linear[:R]", "linear-cos[:R]" (a map folded into
 * the kept weight before each removed span: docs/recovery.md). A recovery is immutable once made and may be used
 * by many sessions and threads at once.
 */
struct dp_recovery;

struct dp_recovery_params {
    const char *kind;             /* "mean", "lowrank:R", "bias-trained", "lowrank-trained:R", "linear[:R]", ... */
    const char *units;            /* removed units to fit, in removal order: "b2,a4" */
    const struct dp_mask *mask;   /* the pruned model: must remove every unit of `units` (NULL: every unit
                                     kept but those) */
    struct dp_corpus_spec calib;  /* calibration corpus (ctx 0: min(2048, the model's context)) */
    const struct dp_chunks *chunks; /* calibration chunks made by the caller (used instead of calib; borrowed) */
    bool sequential;              /* statistics on the model pruned (and recovered) so far, in removal order */
    double ridge;                 /* lowrank: ridge lambda (default 1e-4) */
    bool objective_kl;            /* trained kinds: KL to the full model instead of next-token cross-entropy */
    int steps;                    /* trained kinds: Adam steps (default 200) */
    double lr;                    /* trained kinds: learning rate (default 1e-2) */
    int batch;                    /* trained kinds: sequences per step (default 8) */
    uint64_t seed;                /* trained kinds: batch sampling and initialisation (default 1) */
    bool init_mean;               /* trained kinds start from the mean update instead of zero */
    dp_progress_fn progress;      /* stages "recovery statistics" (sequences), "training recovery" (steps);
                                     linear kinds: "linear map statistics", "fitting linear-cos" */
    void *progress_user;
    dp_log_fn log;                /* per-step training lines */
    void *log_user;
};
struct dp_recovery_params dp_recovery_default_params(void);

/*
 * Fit a recovery of p->kind for p->units of model m on p->calib.
 * Deterministic for any pool size. On success *out is a new recovery owned
 * by the caller (dp_recovery_free). Errors: DP_ERR_ARG for a bad kind, unit
 * list or mask (the message names them), DP_ERR_IO/FORMAT for the corpus
 * (naming the file), DP_ERR_UNSUPPORTED for lowrank:R without LAPACKE,
 * DP_ERR_CANCELLED when p->progress asked to stop (nothing leaks).
 */
dp_status dp_recovery_fit_with(const struct dp_model *m, struct dp_pool *pool, const struct dp_recovery_params *p,
                               struct dp_recovery **out);
/*
 * Read a recovery file (GGUF, as dp_recovery_save writes) for model m: its
 * units and shapes are checked against m. *out is owned by the caller.
 */
dp_status dp_recovery_load(const char *path, const struct dp_model *m, struct dp_recovery **out);
/* Write r to path atomically (GGUF; F32 tensors recover.<unit>.c/.A/.B). */
dp_status dp_recovery_save(const struct dp_recovery *r, const char *path);
void dp_recovery_free(struct dp_recovery *r);
/* The kind ("mean", "lowrank:4", ...), the number of units, unit i's name ("b2"; NULL out of range). */
const char *dp_recovery_kind(const struct dp_recovery *r);
int dp_recovery_n_units(const struct dp_recovery *r);
const char *dp_recovery_unit(const struct dp_recovery *r, int i);
/* Closed-form low-rank fits: the fraction of unit i's update variance explained (NAN otherwise). */
double dp_recovery_explained_var(const struct dp_recovery *r, int i);
/*
 * Check a recovery kind's spelling (DP_ERR_ARG with the list of kinds
 * otherwise); *is_none (may be NULL) tells whether it is "none".
 */
dp_status dp_recovery_kind_parse(const char *kind, bool *is_none);
/*
 * The hooks that apply r to m's forward passes, for the evaluation steps that
 * take a `hooks` argument (dp_eval_*, dp_kld_*, dp_mmlu_eval, ...). r must
 * outlive them. *out is freed with dp_hooks_free.
 */
dp_status dp_recovery_hooks_new(const struct dp_recovery *r, const struct dp_model *m, struct dp_hooks **out);
void dp_hooks_free(struct dp_hooks *h);

/* ---- sessions with params ---------------------------------------------------- */

/*
 * How a session is made (dp_session_new_with). A recovery attached here
 * replaces its removed units in every dp_session_forward of the session,
 * like a LoRA adapter set on a llama.cpp context; it must outlive the
 * session and be fitted or loaded for the same model.
 */
struct dp_session_params {
    int n_ctx;                              /* KV cache positions (default 512) */
    const struct dp_mask *mask;             /* NULL: every unit kept */
    const struct dp_recovery *recovery;     /* NULL: removed units are identities */
    enum dp_act act;                        /* DP_ACT_DEFAULT: the model's mode */
};
struct dp_session_params dp_session_default_params(void);
/*
 * A session as dp_session_new makes one, with p's recovery attached.
 * Errors: DP_ERR_ARG for n_ctx out of range, an act that is not a dp_act,
 * or a recovery whose width is not the model's. *out is freed with dp_session_free.
 */
dp_status dp_session_new_with(const struct dp_model *m, const struct dp_session_params *p, struct dp_session **out);

/* ---- sweeps ------------------------------------------------------------------- */

/*
 * A sweep: the model after removing 0, 1, 2, ... units for every (metric,
 * scheme, mode, recovery) asked, each step with perplexity, MMLU, KV bytes
 * and parameter count; written as JSON after every step (out_path), and
 * continued from that file when rerun with the same arguments. Units come
 * from scores files (`depthprune score` output). With `draft` (the speedup
 * objective) each step is also scored as a draft of the full model for
 * self-speculative decoding, as dp_draft_search scores its plans: argmax
 * agreement with the full model on calib, the best draft length and the
 * expected speed-up; each run marks its step of the largest speed-up.
 */
struct dp_sweep;

struct dp_sweep_params {
    const char *model_name;         /* recorded in the output (NULL: the model's path) */
    const char *scores;             /* scores files, comma list (block and sublayer files) */
    bool allow_twin;                /* accept scores of a model of the same shape with other weights */
    const char *metrics;            /* comma list (NULL or "all": every metric of the scores) */
    const char *schemes;            /* "block", "attn", "ffn", "both", comma list (NULL or "all": all four) */
    int max_units;                  /* at most this many removed (0: all) */
    bool oneshot;                   /* one-shot runs (default true) */
    bool iterative;                 /* iterative runs: re-score on calib after every removal */
    const char *recover;            /* recovery kinds, comma list (NULL: "none") */
    struct dp_recovery_params recover_params;   /* fit settings (kind, units, mask and calib ignored) */
    struct dp_corpus_spec calib;    /* iterative re-scoring and recovery fits (ctx 0: as ppl, max_seqs 0: as ppl) */
    struct dp_corpus_spec ppl;      /* perplexity corpus (ctx 0: min(2048, model) or 512 for llamacpp) */
    bool ppl_llamacpp;              /* llama.cpp's protocol (whole text, second halves of ctx windows) */
    const char *mmlu_dir;           /* MMLU folder (dev/, test/), NULL: none */
    const char *mmlu_subjects;      /* comma list, NULL: all */
    int mmlu_limit, mmlu_shots, mmlu_ctx;   /* 0: all questions; shots default 5; ctx 0: min(2048, model) */
    double target_kv, target_params;        /* budget targets (fractions, 0: none) */
    double max_ppl_ratio, max_mmlu_drop;    /* budget limits (0 / NAN: none) */
    const char *protect;            /* units never removed ("b0,a4"), NULL: none */
    const char *base;               /* units removed in every step (NULL: none) */
    const char *out_path;           /* JSON rewritten after every step; resumed from (NULL: none) */
    bool draft;                     /* the speedup objective: every step as a draft, measured on calib */
    int draft_k_max;                /* draft lengths 1..draft_k_max (0: 8; at most DP_DRAFT_MAX_LEN) */
    bool draft_timed;               /* draft costs from timed passes (default false: weight bytes, deterministic) */
    /* What the steps depend on, recorded under "args" and compared on resume (NULL: key/value pairs
     * built from these params). */
    const char *const *arg_keys, *const *arg_values;
    int n_args;
    dp_progress_fn progress;        /* stage "sweep": steps evaluated (total 0); inside, the stages of each
                                       step's perplexity, MMLU and re-scoring (fits: recover_params.progress) */
    void *progress_user;
    dp_log_fn log;                  /* warnings and one line per evaluated step */
    void *log_user;
};
struct dp_sweep_params dp_sweep_default_params(void);

/*
 * Run a sweep on model m. On success *out holds every run (dp_sweep_free).
 * Errors name the option concerned: DP_ERR_ARG for a bad list, a metric the
 * scores lack, a budget limit without its evaluation, iterative runs or
 * fitted recoveries without calib; DP_ERR_IO/FORMAT naming a file (scores
 * of another model, an output file of another sweep); DP_ERR_CANCELLED
 * (the steps done are written).
 */
dp_status dp_sweep_evaluate(const struct dp_model *m, struct dp_pool *pool, const struct dp_sweep_params *p,
                            struct dp_sweep **out);
void dp_sweep_free(struct dp_sweep *s);

/* One run of a sweep; strings point into the sweep. */
struct dp_sweep_run_info {
    const char *metric, *scheme, *recover;
    bool iterative, oracle, span;   /* span: a block-span metric (angular) */
    const char *note;               /* why it stopped early ("" when none) */
    int n_steps;                    /* step k removes k units more than the base */
    bool has_budget, budget_met;
    int budget_step;
    const char *budget_bound, *budget_why;
    int draft_best_step;            /* the step of the largest expected speed-up (first on ties), -1: not measured */
};
/* One step of a run: the removed units and what was measured (NAN / 0 when not evaluated). */
struct dp_sweep_step_info {
    int n_removed;
    double ppl, ppl_seq;
    double mmlu_acc, mmlu_stderr;   /* percent */
    int mmlu_n;
    int64_t kv_bytes_per_token, n_params;
    /* as a draft of the full model (the speedup objective; NAN and 0 otherwise), as struct dp_draft_plan */
    double draft_accept, c_bytes, c_draft;
    int draft_len;
    double tokens_per_verify, speedup;
};
int dp_sweep_n_runs(const struct dp_sweep *s);
/* DP_ERR_ARG when run or step is out of range. */
dp_status dp_sweep_get_run(const struct dp_sweep *s, int run, struct dp_sweep_run_info *out);
dp_status dp_sweep_get_step(const struct dp_sweep *s, int run, int step, struct dp_sweep_step_info *out);
/* Name of removed unit i of a step ("b2"; 16 bytes suffice), "" when out of range. */
void dp_sweep_step_unit(const struct dp_sweep *s, int run, int step, int i, char *buf);
int dp_sweep_n_warnings(const struct dp_sweep *s);
const char *dp_sweep_warning(const struct dp_sweep *s, int i);
/* The metrics of scores files (comma list), in first-seen order, as a comma list in buf (cap bytes). */
dp_status dp_sweep_scores_metrics(const char *scores, char *buf, size_t cap);
/* Whether a metric was measured on the MMLU test questions (mmlu_shapley...): it needs no calibration data. */
bool dp_sweep_metric_oracle(const char *metric);
/* Whether kind is a recovery kind ("none" included); DP_ERR_ARG naming it otherwise. */
dp_status dp_recovery_check_kind(const char *kind);
/* The most few-shot examples an MMLU prompt takes. */
#define DP_SWEEP_MAX_SHOTS 16
/* Bytes an iterative sweep's re-scoring needs besides its session, for sequences of ctx tokens. */
int64_t dp_sweep_rescore_bytes(const struct dp_model *m, int ctx);
/* The file dp_sweep_save_plans writes for a run: DIR/METRIC_SCHEME_MODE_RECOVER.json, ':' as '-'. */
void dp_sweep_plan_path(const char *dir, const char *metric, const char *scheme, bool iterative, const char *recover,
                        char *path, size_t cap);
/* The SHA-256 of a file's bytes as 64 hex digits (hex: 65 bytes), e.g. to name the inputs of a sweep. */
dp_status dp_file_sha256(const char *path, char *hex);
/* The sweep as CSV (one row per step) and as an SVG figure, written atomically. */
dp_status dp_sweep_write_csv(const struct dp_sweep *s, const char *path);
dp_status dp_sweep_write_svg(const struct dp_sweep *s, const char *path);
/*
 * One plan file per run in folder dir (created): dir/METRIC_SCHEME_MODE_RECOVER.json (':' as '-'),
 * the budget's step or the run's last, with its recovery fitted by p's settings (p as given to
 * dp_sweep_evaluate) beside it as .recover.gguf.
 */
dp_status dp_sweep_save_plans(const struct dp_sweep *s, const struct dp_model *m, struct dp_pool *pool,
                              const struct dp_sweep_params *p, const char *dir);

/*
 * One self-contained HTML page (figures inline, no external assets) from
 * scores files and sweep files, in the order given. Fails naming a file that
 * is neither; written atomically.
 */
dp_status dp_report_html(const char *const *files, int n_files, const char *path);

/* ---- budgets --------------------------------------------------------------------- */

/*
 * The units of a plan to a budget (prune --target-kv ...): one metric's
 * one-shot order under one scheme, evaluated step by step only as far as
 * the limits need (perplexity by the paper protocol on p->ppl, MMLU on
 * p->mmlu_dir).
 */
struct dp_budget_params {
    const char *scores;             /* one scores file */
    bool allow_twin;
    const char *metric, *scheme;    /* scheme NULL: "block" */
    double target_kv, target_params, max_ppl_ratio, max_mmlu_drop;  /* as in dp_sweep_params */
    const char *protect;
    struct dp_corpus_spec ppl;
    const char *mmlu_dir;
    int mmlu_limit;
    dp_progress_fn progress;        /* the stages of the steps' perplexity and MMLU */
    void *progress_user;
    dp_log_fn log;                  /* warnings (scores without a model hash) */
    void *log_user;
};
struct dp_budget_params dp_budget_default_params(void);
/* What bound a budget plan. */
struct dp_budget_info {
    int step;                       /* units removed */
    bool met;                       /* every target met */
    char bound[64];                 /* "target-kv", "max-ppl-ratio", ..., "units" */
    char why[512];                  /* one sentence for people */
};
/*
 * Choose the units: written to units (a comma list, cap bytes) with what
 * bound them in *info. Fails when a target cannot be met (the message names
 * it and the best reached), when the budget removes nothing, and as
 * dp_sweep_evaluate.
 */
dp_status dp_budget_units(const struct dp_model *m, struct dp_pool *pool, const struct dp_budget_params *p,
                          char *units, size_t cap, struct dp_budget_info *info);

/*
 * The first `count` units of a metric's one-shot order under a scheme
 * ("block", "attn", "ffn", "both"; for a span metric such as angular, the
 * best span of count blocks) from a scores file checked against m, as a
 * comma list in units (cap bytes). Fails naming the file when the order is
 * shorter than count or a unit does not exist in m. log (NULL: silent) gets
 * a warning for a scores file without a model hash.
 */
dp_status dp_prune_units_from_scores(const struct dp_model *m, const char *scores, bool allow_twin, const char *metric,
                                     const char *scheme, int count, char *units, size_t cap, dp_log_fn log,
                                     void *log_user);

/* ---- export ------------------------------------------------------------------------ */

/*
 * Write a pruned model, file to file (like llama_model_quantize): the GGUF
 * source less the removed units, with a recovery folded into its tensors,
 * as a smaller GGUF that depthprune and llama.cpp load (docs/EXPORT.md for
 * the encodings).
 */
struct dp_export_params {
    const char *units;                  /* removed units ("b2,a4"), in removal order */
    const struct dp_mask *mask;         /* or a mask (units NULL; provenance then lists its units) */
    const struct dp_recovery *recovery; /* folded in, NULL: none */
    const char *out_type;               /* type of new or modified matrices: "F32", "Q8_0", ...; NULL: each
                                           its source counterpart's */
    bool verify;                        /* reload and compare logits with the in-memory pruned model (default true) */
    const char *metric, *scheme, *calib, *plan;   /* provenance (NULL: unknown) */
    dp_progress_fn progress;            /* stage "export": 0 (start), 1 (written), 2 (verified) of 2 */
    void *progress_user;
};
struct dp_export_params dp_export_default_params(void);
struct dp_export_result {
    char arch[32];                      /* of the output: the source's, or "deci" */
    int n_blocks;                       /* output blocks */
    char sha256[65];                    /* of the source file */
    bool lossless;                      /* every new or modified tensor reads back exactly */
    int n_fallback;                     /* matrices written in a fallback type (rows not whole blocks) */
    bool verified;
    double verify_max_abs_diff;         /* largest |logit difference| over the verification tokens */
};
/*
 * Export src (a GGUF model file) pruned by p to dst. Output is atomic: the
 * file is written under a temporary name, verified, then renamed. With
 * p->verify a lossless export whose logits differ by more than float
 * rounding fails (DP_ERR_FORMAT) and writes nothing. Errors name the file:
 * a bad type or unit list (DP_ERR_ARG), dst == src, shapes an encoding
 * cannot hold, I/O. *out may be NULL.
 */
dp_status dp_export_file(const char *src, const char *dst, const struct dp_export_params *p, struct dp_pool *pool,
                         struct dp_export_result *out);
/* Whether the exporter (and dp_synth_write) writes tensors of the named type ("Q4_K"). */
bool dp_export_type_supported(const char *type);

/* ---- synthetic models ---------------------------------------------------------------- */

/*
 * A synthetic llama-shaped GGUF with seeded random weights in any type the
 * quantizer writes, or a llama-quantize preset mix ("Q4_K_M", ...). The
 * same seed gives the same f32 weights before quantization. The family
 * (arch) sets the file's arch string, metadata keys and block tensors the
 * way llama.cpp's converters lay them out (docs/families.md): "llama",
 * "mistral" (arch llama with a sliding window), "qwen2" (q/k/v biases),
 * "qwen3" (q/k norms), "phi3" (fused qkv and gate/up), "gemma2" (post-norms,
 * soft-caps; always tied), "gemma3" (q/k norms, post-norms, local RoPE base;
 * always tied). Zero fields take the defaults noted.
 */
struct dp_synth_params {
    const char *arch;                   /* family: "llama" (default) or one above */
    const char *type;                   /* "F32" (default), a type of dp_export_type_supported, or a mix */
    int dim, ff, heads, kv_heads, layers, vocab, ctx;   /* 256, 768, 8, heads/2, 2, 512, 2048 */
    uint64_t seed;                      /* default 1 */
    int head_dim;                       /* head size (0: dim/heads; another writes key_length/value_length) */
    int window;                         /* sliding window of mistral, phi3, gemma2/3 (0: 4096; phi3: ctx) */
    double rope_base;                   /* RoPE frequency base (0: the family's, 1e4 or 1e6) */
    bool rope_freqs;                    /* llama only: rope_freqs.weight with Llama 3.1's scaling (factor 8) */
    double softcap[2];                  /* gemma2: attention and final logit soft-caps (default 50, 30) */
    bool tied;                          /* no output matrix (always for gemma2/3) */
    bool bias;                          /* q/k/v biases (always for qwen2) */
    const char *vocab_from;             /* copy the tokenizer of this GGUF (NULL: generated SentencePiece) */
    dp_log_fn log;                      /* notes (fallback types) */
    void *log_user;
    dp_progress_fn progress;            /* stage "synth": blocks written of layers */
    void *progress_user;
};
struct dp_synth_params dp_synth_default_params(void);
/* The GGUF arch string a family writes ("mistral" -> "llama"); NULL for an unknown family. */
const char *dp_synth_family_arch(const char *family);
/* Whether name is a type or mix synth writes; and its canonical name (NULL when not). */
const char *dp_synth_type_name(const char *name);
/*
 * Write the model to path. Errors: DP_ERR_ARG for bad shapes, type or
 * family, rope_freqs outside llama, non-positive gemma2 soft-caps; I/O
 * naming the file; DP_ERR_CANCELLED from the progress callback.
 */
dp_status dp_synth_write(const char *path, const struct dp_synth_params *p);

/* ---- speculative drafts ---------------------------------------------------------------- */

/*
 * Search draft plans for self-speculative decoding: per scheme, units are
 * removed greedily keeping the best expected speed-up, from teacher-forced
 * agreement with the full model on p->calib and costs timed on this machine
 * (or from weight bytes). Agreement is deterministic; timings vary.
 */
struct dp_draft_params {
    const char *schemes;                /* comma list or "all" (default) */
    int max_removed;                    /* plans of 1..max_removed units per scheme (default 4) */
    int k_max;                          /* draft lengths 1..k_max (default 8, at most DP_DRAFT_MAX_LEN) */
    bool timed;                         /* costs from timed passes (default true), else weight bytes */
    struct dp_corpus_spec calib;        /* ctx 0: min(256, model), max_seqs 0: 16 */
    dp_progress_fn progress;
    void *progress_user;
};
#define DP_DRAFT_MAX_LEN 32
struct dp_draft_params dp_draft_default_params(void);
struct dp_draft_plan {
    char scheme[16];
    int n_removed;
    char units[256];                    /* comma list, removal order */
    double agree;                       /* agreement with the full model */
    double c_bytes, c_draft;            /* draft step cost over a full step: by bytes; as used */
    int best_len;
    double tokens_per_verify, speedup;  /* expected at best_len */
};
struct dp_drafts {
    int n_plans, best;                  /* best: the largest speedup */
    struct dp_draft_plan plans[256];
    int k_max;
    double c_verify[DP_DRAFT_MAX_LEN + 1];  /* cost of verifying k+1 tokens, in decode steps */
    int n_seqs, ctx;                    /* of the calibration sequences */
};
/* Fill *out (caller's memory). Errors: no calib, bad schemes, corpus errors, DP_ERR_CANCELLED. */
dp_status dp_draft_search(const struct dp_model *m, struct dp_pool *pool, const struct dp_draft_params *p,
                          struct dp_drafts *out);

#endif
