/*
 * coalition: the players of a scoring game, coalitions of them, the cache of
 * coalition values, and the evaluator that runs coalitions on one sequence
 * with prefix reuse (METHODS.md sections 3 and 4; the design is in metrics.h).
 *
 * Players and sublayers: a model of L blocks has 2L sublayers ("model units")
 * numbered 2l (attention) and 2l+1 (FFN), as the forward-pass hooks number
 * them. A coalition is a bit set over the players; `kept` flags over model
 * units (n_mu bytes) are what a pass runs.
 *
 * The evaluator keeps the residual stream entering every sublayer of the
 * last pass it ran; a coalition starts at the first sublayer where its kept
 * flags differ from that pass's, from the stream left there (bit-identical
 * to a pass from the embedding). Coalitions sorted by dp_coalition_sort each
 * follow the one sharing their longest prefix: a trie walk.
 */
#ifndef DP_COALITION_H
#define DP_COALITION_H

#include "metrics.h"

/* The players of a run: the blocks or sublayers the base mask keeps. */
struct dp_game {
    int L, n_mu;          /* blocks, sublayers */
    int n;                /* players */
    int nw;               /* 64-bit words of a coalition */
    uint8_t *base;        /* (n_mu) sublayers the base mask keeps */
    int *player_of;       /* (n_mu) player of a kept sublayer, -1 for removed ones */
    int *block_of;        /* (n) block of each player */
    int n_present;        /* blocks with a kept sublayer */
    int *present;         /* (n_present) their indices */
};

/*
 * Fill g with the players of `base` on m (blocks, or sublayers with
 * DP_UNITS_SUBLAYER). Fails when the mask does not fit the model or keeps
 * nothing; g owns its arrays either way (dp_coalition_game_free).
 */
dp_status dp_coalition_game_init(const struct dp_model *m, const struct dp_mask *base, enum dp_unit_kind kind,
                                 struct dp_game *g);
void dp_coalition_game_free(struct dp_game *g);

static inline bool dp_coalition_bit_get(const uint64_t *set, int i) { return (set[i >> 6] >> (i & 63)) & 1; }
static inline void dp_coalition_bit_set(uint64_t *set, int i) { set[i >> 6] |= 1ull << (i & 63); }

/* The kept flags (n_mu) of coalition `set`. */
void dp_coalition_kept(const struct dp_game *g, const uint64_t *set, uint8_t *kept);
/* The unit mask that keeps the sublayers flagged in kept (n_mu). */
void dp_coalition_mask(const struct dp_game *g, const uint8_t *kept, struct dp_mask *mask);
/* How many of kept[from..to) are set. */
int dp_coalition_count_kept(const uint8_t *kept, int from, int to);

/* The coalition cache: bit set -> values (summed while pending, means when done). */
struct dp_coalition_cache {
    int nw;
    int64_t n, cap_e;         /* entries */
    uint64_t *keys;           /* (cap_e, nw) */
    double *ce, *dist;        /* (cap_e) means when done, running sums while pending */
    uint8_t *done;            /* (cap_e) */
    int64_t cap;              /* slots, a power of two */
    int64_t *slot;            /* (cap) entry index or -1 */
};

/* The entry of `key` (nw words), or -1. */
int64_t dp_coalition_cache_find(const struct dp_coalition_cache *c, const uint64_t *key);
/* Add a new entry (not done, sums zero); its index in *e. */
dp_status dp_coalition_cache_add(struct dp_coalition_cache *c, const uint64_t *key, int64_t *e);
/* Free the arrays and zero c (nw included). */
void dp_coalition_cache_free(struct dp_coalition_cache *c);

/* The evaluator of one worker: passes of one sequence with prefix reuse. */
struct dp_evaluator {
    const struct dp_model *m;
    struct dp_pool *pool;
    const struct dp_hooks *user;
    const struct dp_game *g;
    int ctx, dim, V;
    bool reuse;
    const int *ids;          /* (ctx) the current sequence */
    float *stack;            /* (n_mu, ctx, dim) the stream entering each sublayer on `path` */
    float *full;             /* (ctx, V) base-model logits of the current sequence */
    float *logits;           /* (ctx, V) */
    uint8_t *path;           /* (n_mu) kept flags of the pass whose streams are in stack */
    double path_ce, path_dist, full_ce;
    int start;               /* start sublayer of the pass being run */
    struct dp_cost cost;     /* passes since the owner last collected them */
};

/* Hook context: the caller's replacements plus one observer of ours. */
struct dp_coalition_hooks {
    const struct dp_hooks *user;
    void (*observe)(void *ctx, int unit, const float *x, const float *y, int n, int dim, int pos0);
    void *ctx;
};
/* dp_hooks callbacks over a struct dp_coalition_hooks context. */
bool dp_coalition_hook_replace(void *ctx, int unit, const float *x, float *delta, int n, int dim, int pos0);
void dp_coalition_hook_observe(void *ctx, int unit, const float *x, const float *y, int n, int dim, int pos0);

/* The base model on sequence ids: its logits, CE, and (with reuse) every sublayer's input. */
dp_status dp_coalition_eval_base(struct dp_evaluator *ev, const int *ids);

/*
 * Sort coalition indices so that kept flags (rows of `kept`, n_mu bytes) are
 * in descending lexicographic order: every coalition follows the one sharing
 * its longest prefix. A stable bottom-up merge sort.
 */
dp_status dp_coalition_sort(const uint8_t *kept, int n_mu, int64_t C, int64_t *order);

/*
 * Evaluate C coalitions (rows of kept) on the current sequence in `order`:
 * mean CE into ce[c], mean logit distance to the base model into dist[c].
 */
dp_status dp_coalition_eval_list(struct dp_evaluator *ev, const uint8_t *kept, const int64_t *order, int64_t C,
                                 double *ce, double *dist);

/*
 * The same for B evaluators (at most DP_MULTI_MAX) on B sequences in
 * lockstep, one weight pass per coalition for all (dp_session_forward_multi):
 * every evaluator gets exactly the bits it gets alone. The evaluators share
 * the model, game, ctx, reuse and pool (evs[0]'s); ce[i], dist[i] are
 * evaluator i's arrays.
 */
dp_status dp_coalition_eval_base_multi(struct dp_evaluator *const *evs, int B, const int *const *ids);
dp_status dp_coalition_eval_list_multi(struct dp_evaluator *const *evs, int B, const uint8_t *kept,
                                       const int64_t *order, int64_t C, double *const *ce, double *const *dist);

#endif
