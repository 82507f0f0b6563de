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
 * the calibration loss). A recovery is immutable once made and may be used
 * by many sessions and threads at once.
 */
struct dp_recovery;

struct dp_recovery_params {
    const char *kind;             /* "mean", "lowrank:R", "bias-trained", "lowrank-trained:R" */
    const char *units;            /* removed units to fit, in removal order: "b2,a4" */
    const struct dp_mask *mask;   /* the pruned model: must remove every unit of `units` (NULL: every unit
                                     kept but those) */
    struct dp_corpus_spec calib;  /* calibration corpus (ctx 0: min(2048, the model's context)) */
    bool sequential;              /* statistics on the model pruned (and recovered) so far, in removal order */
    double ridge;                 /* lowrank: ridge lambda (default 1e-4) */
    bool objective_kl;            /* trained kinds: KL to the full model instead of next-token cross-entropy */
    int steps;                    /* trained kinds: Adam steps (default 200) */
    double lr;                    /* trained kinds: learning rate (default 1e-2) */
    int batch;                    /* trained kinds: sequences per step (default 8) */
    uint64_t seed;                /* trained kinds: batch sampling and initialisation (default 1) */
    bool init_mean;               /* trained kinds start from the mean update instead of zero */
    dp_progress_fn progress;      /* stages "recovery statistics", "training recovery" */
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
};
struct dp_session_params dp_session_default_params(void);
/*
 * A session as dp_session_new makes one, with p's recovery attached.
 * Errors: DP_ERR_ARG for n_ctx out of range or a recovery whose width is not
 * the model's. *out is freed with dp_session_free.
 */
dp_status dp_session_new_with(const struct dp_model *m, const struct dp_session_params *p, struct dp_session **out);

/* ---- sweeps ------------------------------------------------------------------- */

/*
 * A sweep: the model after removing 0, 1, 2, ... units for every (metric,
 * scheme, mode, recovery) asked, each step with perplexity, MMLU, KV bytes
 * and parameter count; written as JSON after every step (out_path), and
 * continued from that file when rerun with the same arguments. Units come
 * from scores files (`depthprune score` output).
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
    /* What the steps depend on, recorded under "args" and compared on resume (NULL: key/value pairs
     * built from these params). */
    const char *const *arg_keys, *const *arg_values;
    int n_args;
    dp_progress_fn progress;        /* stage "sweep": steps evaluated */
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
};
/* One step of a run: the removed units and what was measured (NAN / 0 when not evaluated). */
struct dp_sweep_step_info {
    int n_removed;
    double ppl, ppl_seq;
    double mmlu_acc, mmlu_stderr;   /* percent */
    int mmlu_n;
    int64_t kv_bytes_per_token, n_params;
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
    dp_progress_fn progress;
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
 * same seed gives the same f32 weights before quantization.
 */
struct dp_synth_params {
    const char *arch;                   /* "llama" (default) or "qwen2" */
    const char *type;                   /* "F32" (default), a type of dp_export_type_supported, or a mix */
    int dim, ff, heads, kv_heads, layers, vocab, ctx;   /* 256, 768, 8, heads/2, 2, 512, 2048 */
    uint64_t seed;                      /* default 1 */
    bool tied;                          /* no output matrix */
    bool bias;                          /* q/k/v biases (always for qwen2) */
    const char *vocab_from;             /* copy the tokenizer of this GGUF (NULL: generated SentencePiece) */
    dp_log_fn log;                      /* notes (fallback types) */
    void *log_user;
    dp_progress_fn progress;            /* stage "synth": blocks written of layers */
    void *progress_user;
};
struct dp_synth_params dp_synth_default_params(void);
/* Whether name is a type or mix synth writes; and its canonical name (NULL when not). */
const char *dp_synth_type_name(const char *name);
/* Write the model to path. Errors: DP_ERR_ARG for bad shapes or type, I/O naming the file. */
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
