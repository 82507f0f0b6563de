/*
 * prune: units, schemes, scores files and pruning orders (METHODS.md section 5).
 *
 * A unit is a block b<i>, an attention sublayer a<i> or a feed-forward
 * sublayer f<i>. A scheme says which units compete for removal:
 *   block  b0..b(L-1)
 *   attn   a0..a(L-1)
 *   ffn    f0..f(L-1)
 *   both   a0,f0,a1,f1,... ranked together
 * A unit's index inside its scheme is its layer for block/attn/ffn and
 * 2*layer (+1 for f) for both, the numbering of the forward pass's hooks;
 * ties between equal influences go to the lower index.
 *
 * Scores come from the JSON files `score` writes: a list `units` of
 * {"unit","metric","influence","stderr"?}, with "depthprune_scores" (the
 * format version: 2 carries the model's identity, 1 is older, absent means
 * hand-written), "n_blocks", "model_hash", "model_shape" (identity.h) and
 * "unit" ("block" or "sublayer"), each checked when present: the units
 * listed must be of the declared kind and exist in n_blocks blocks. Several files can be loaded into
 * one struct dp_influences (block scores from one, sublayer scores from another).
 * The one-shot order of a metric under a scheme sorts the scheme's units by
 * ascending influence (stable, ties by index) and leaves protected units out.
 *
 * `angular` scores spans of n contiguous blocks (METHODS.md section 3): its
 * units are named "b<l>..b<l+n-1>" and its plan for n removed blocks is the
 * best span of length n, not a prefix of one order (dp_prune_span).
 */
#ifndef DP_PRUNE_H
#define DP_PRUNE_H

#include "base.h"
#include "identity.h"

enum dp_scheme { DP_SCHEME_BLOCK, DP_SCHEME_ATTN, DP_SCHEME_FFN, DP_SCHEME_BOTH };
#define DP_N_SCHEMES 4

/* "block", "attn", "ffn", "both". */
const char *dp_scheme_name(enum dp_scheme s);
dp_status dp_scheme_parse(const char *name, enum dp_scheme *out);

struct dp_unit {
    char kind;   /* 'b', 'a' or 'f' */
    int layer;
};

/* Parse "b2" / "a4" / "f0" (no range check). */
dp_status dp_unit_parse(const char *s, struct dp_unit *out);
/* "b2"; buf holds at least 16 bytes. */
void dp_unit_name(struct dp_unit u, char *buf);
/* Index of a unit inside a scheme's numbering (see above). */
int dp_unit_index(struct dp_unit u, enum dp_scheme s);
/* Whether unit u belongs to scheme s. */
bool dp_unit_in_scheme(struct dp_unit u, enum dp_scheme s);
/* The scheme's units in index order; returns their count (<= 2 * n_layers). */
int dp_scheme_units(enum dp_scheme s, int n_layers, struct dp_unit *out);
/* Remove u from mask (a block removes both sublayers). */
void dp_unit_remove(struct dp_mask *mask, struct dp_unit u);
/*
 * Protected units are held in a mask whose attn[i]/ffn[i] are true for the
 * protected sublayers (a protected block protects both). dp_unit_touches
 * says whether removing u would remove a protected sublayer.
 */
bool dp_unit_touches(const struct dp_mask *protect, struct dp_unit u);
/* Parse a comma list of units ("b2,a4") into a protect mask of an n_layers model (range checked). */
dp_status dp_units_protect(const char *list, int n_layers, struct dp_mask *out);

/* Whether a metric is an oracle measured on the evaluation data itself (mmlu_shapley). */
bool dp_metric_is_oracle(const char *metric);
/* Whether a metric scores block spans (angular) instead of units. */
bool dp_metric_is_span(const char *metric);

struct dp_influence {
    char unit[32];        /* "b2", "a4", or a span "b1..b2" */
    char metric[64];
    double influence;
    double stderr_;       /* NAN when the estimator is not random */
    int file;             /* index into files */
};

/* What a scores file says about where it came from (empty fields: not said). */
struct dp_scores_origin {
    int version;          /* "depthprune_scores": 0 (hand-written), 1 or 2 */
    char unit[16];        /* "block", "sublayer" or "" */
    struct dp_identity id;
};

struct dp_influences {
    int n, cap;
    struct dp_influence *s;
    int n_files;
    char **files;         /* paths loaded, in order */
    char **calib;         /* per file: calibration description "FILE docs A:B" ("" when unknown) */
    struct dp_scores_origin *origin;  /* per file */
};

/* Append the scores of one file (checks the layout; fails naming the file). */
dp_status dp_influences_load(const char *path, struct dp_influences *acc);
void dp_influences_free(struct dp_influences *s);
/*
 * Check every loaded file against the model the scores are applied to
 * (identity.h; allow_twin accepts other weights of the same shape) and,
 * when scheme >= 0, that some file's declared unit kind suits the scheme
 * (block scores for "block", sublayer scores for the others). Fails with one
 * line naming the file and the key; *n_unchecked counts files without a
 * model hash (the caller warns).
 */
dp_status dp_influences_check(const struct dp_influences *s, const struct dp_identity *model, int scheme,
                              bool allow_twin, int *n_unchecked);
/* Metrics present, in first-seen order; returns their count (at most cap written). */
int dp_influences_metrics(const struct dp_influences *s, const char **out, int cap);
/* Whether a metric has scores for every unit of a scheme on an n_layers model. */
bool dp_influences_cover(const struct dp_influences *s, const char *metric, enum dp_scheme scheme, int n_layers);

/*
 * Rank n influences: order[k] is the index of the k-th smallest (stable:
 * equal influences keep index order). NaN sorts last.
 */
void dp_prune_rank(const double *influence, int n, int *order);

/*
 * One-shot order of a metric under a scheme: the scheme's units by ascending
 * influence, ties by index, leaving out units that touch `protect` (NULL:
 * none). out holds 2 * n_layers units; *n_out receives the count. Fails
 * when the scores lack a unit of the scheme, naming the metric and unit.
 */
dp_status dp_prune_order(const struct dp_influences *s, const char *metric, enum dp_scheme scheme, int n_layers,
                         const struct dp_mask *protect, struct dp_unit *out, int *n_out);

/*
 * The best span of n blocks of a span metric (angular): the span of length n
 * with the smallest influence (ties: lowest start) whose blocks avoid
 * `protect`. *found is false when no such span was scored.
 */
dp_status dp_prune_span(const struct dp_influences *s, const char *metric, int n, const struct dp_mask *protect,
                        struct dp_unit *out, bool *found);

#endif
