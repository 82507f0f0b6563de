/*
 * metrics: static observers and the leave-one-out, Banzhaf and Shapley
 * estimators (see metrics.h for the design).
 *
 * The run is split into four families of passes, run in this order and each
 * over all calibration sequences: static (one observed pass of the base model),
 * leave-one-out, Banzhaf, Shapley. Every number the results are made of is an
 * accumulator in `run.acc` (doubles, summed in sequence order) or an entry of
 * the Shapley coalition cache, so a checkpoint is a byte image of those and a
 * resumed run computes exactly what an uninterrupted one would.
 *
 * Players and sublayers: a model of L blocks has 2L sublayers ("model units")
 * numbered 2l (attention) and 2l+1 (FFN), as the forward-pass hooks number
 * them. A coalition is a bit set over the players; `kept` flags over model
 * units are what a pass runs.
 */
#include "metrics.h"

#include "eval.h"
#include "rng.h"
#include "shapley.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *const metric_names[DP_N_METRICS] = {
    "cosine", "rel_l1", "rel_l2", "angular", "loo_loss", "loo_logit", "banzhaf_loss", "banzhaf_logit",
    "shapley_loss", "shapley_logit", "mmlu_shapley", "mmlu_shapley_iterative",
};

const char *dp_metric_name(int metric) { return metric >= 0 && metric < DP_N_METRICS ? metric_names[metric] : NULL; }

int dp_metric_parse(const char *s, size_t n) {
    for (int i = 0; i < DP_N_METRICS; i++)
        if (strlen(metric_names[i]) == n && !memcmp(metric_names[i], s, n)) return i;
    return -1;
}

bool dp_metric_random(int metric) {
    return metric == DP_METRIC_BANZHAF_LOSS || metric == DP_METRIC_BANZHAF_LOGIT ||
           metric == DP_METRIC_SHAPLEY_LOSS || metric == DP_METRIC_SHAPLEY_LOGIT || metric == DP_METRIC_MMLU_SHAPLEY ||
           metric == DP_METRIC_MMLU_SHAPLEY_ITER;
}

void dp_score_opts_default(struct dp_score_opts *o) {
    memset(o, 0, sizeof *o);
    o->kind = DP_UNITS_BLOCK;
    o->banzhaf_subsets = 10;
    o->shapley_perms = 200;
    o->shapley_min_pairs = 8;
    o->shapley_tol = 0.01;
    o->shapley_estimator = DP_SHAPLEY_DEFAULT;
    o->seed = 1;
    o->checkpoint_every = 60;
    dp_mmlu_shapley_opts_default(&o->mmlu_opts);
}

void dp_metrics_memory(const struct dp_model *m, int ctx, int64_t *snapshot_bytes, int64_t *logits_bytes) {
    const struct dp_config *c = &m->cfg;
    *snapshot_bytes = (int64_t)2 * c->n_layers * ctx * c->n_embd * (int64_t)sizeof(float);
    *logits_bytes = (int64_t)2 * ctx * c->n_vocab * (int64_t)sizeof(float);
}

/* ---- families, players ---- */

enum { FAM_STATIC, FAM_LOO, FAM_BANZHAF, FAM_SHAPLEY, N_FAM, FAM_DONE = N_FAM };

static int family_of(int metric) {
    switch (metric) {
    case DP_METRIC_COSINE: case DP_METRIC_REL_L1: case DP_METRIC_REL_L2: case DP_METRIC_ANGULAR: return FAM_STATIC;
    case DP_METRIC_LOO_LOSS: case DP_METRIC_LOO_LOGIT: return FAM_LOO;
    case DP_METRIC_BANZHAF_LOSS: case DP_METRIC_BANZHAF_LOGIT: return FAM_BANZHAF;
    case DP_METRIC_SHAPLEY_LOSS: case DP_METRIC_SHAPLEY_LOGIT: return FAM_SHAPLEY;
    default: return -1;
    }
}

struct game {
    int L, n_mu;          /* blocks, sublayers */
    int n;                /* players */
    int nw;               /* 64-bit words of a coalition */
    uint8_t *base;        /* (n_mu) sublayers the base mask keeps */
    int *player_of;       /* (n_mu) player of a kept sublayer, -1 for removed ones */
    int *block_of;        /* (n) block of each player */
    int n_present;        /* blocks with a kept sublayer */
    int *present;         /* (n_present) their indices */
};

static bool bit_get(const uint64_t *set, int i) { return (set[i >> 6] >> (i & 63)) & 1; }
static void bit_set(uint64_t *set, int i) { set[i >> 6] |= 1ull << (i & 63); }

static void coalition_kept(const struct game *g, const uint64_t *set, uint8_t *kept) {
    for (int u = 0; u < g->n_mu; u++) kept[u] = g->base[u] && g->player_of[u] >= 0 && bit_get(set, g->player_of[u]);
}

static void kept_mask(const struct game *g, const uint8_t *kept, struct dp_mask *mask) {
    memset(mask, 0, sizeof *mask);
    mask->n_layers = g->L;
    for (int l = 0; l < g->L; l++) {
        mask->attn[l] = kept[2 * l];
        mask->ffn[l] = kept[2 * l + 1];
    }
}

/* ---- the Shapley coalition cache: bit set -> summed values ---- */

struct cache {
    int nw;
    int64_t n, cap_e;         /* entries */
    uint64_t *keys;           /* (cap_e, nw) */
    double *ce, *dist;        /* (cap_e) means when done, running sums while pending */
    uint8_t *done;            /* (cap_e) */
    int64_t cap;              /* slots, a power of two */
    int64_t *slot;            /* (cap) entry index or -1 */
};

static uint64_t key_hash(const uint64_t *k, int nw) {
    uint64_t h = 0x84222325CBF29CE4ull;
    for (int i = 0; i < nw; i++) h = dp_mix64(h ^ k[i]);
    return h;
}

static int64_t cache_find(const struct cache *c, const uint64_t *key) {
    if (!c->cap) return -1;
    for (int64_t i = (int64_t)(key_hash(key, c->nw) & (uint64_t)(c->cap - 1));; i = (i + 1) & (c->cap - 1)) {
        int64_t e = c->slot[i];
        if (e < 0) return -1;
        if (!memcmp(c->keys + e * c->nw, key, (size_t)c->nw * 8)) return e;
    }
}

static dp_status cache_rehash(struct cache *c, int64_t cap) {
    int64_t *slot = dp_malloc((size_t)cap * sizeof *slot);
    if (!slot) return DP_ERR_NOMEM;
    for (int64_t i = 0; i < cap; i++) slot[i] = -1;
    for (int64_t e = 0; e < c->n; e++) {
        int64_t i = (int64_t)(key_hash(c->keys + e * c->nw, c->nw) & (uint64_t)(cap - 1));
        while (slot[i] >= 0) i = (i + 1) & (cap - 1);
        slot[i] = e;
    }
    free(c->slot);
    c->slot = slot;
    c->cap = cap;
    return DP_OK;
}

/* Add a new entry (not done, sums zero); its index in *e. */
static dp_status cache_add(struct cache *c, const uint64_t *key, int64_t *e) {
    if (c->n == c->cap_e) {
        int64_t cap = c->cap_e ? 2 * c->cap_e : 256;
        uint64_t *k = realloc(c->keys, (size_t)cap * c->nw * 8);
        if (k) c->keys = k;
        double *a = realloc(c->ce, (size_t)cap * sizeof *a);
        if (a) c->ce = a;
        double *b = realloc(c->dist, (size_t)cap * sizeof *b);
        if (b) c->dist = b;
        uint8_t *d = realloc(c->done, (size_t)cap);
        if (d) c->done = d;
        if (!k || !a || !b || !d) return dp_fail(DP_ERR_NOMEM, "out of memory for %lld coalitions", (long long)cap);
        c->cap_e = cap;
    }
    if (2 * (c->n + 1) > c->cap) {
        dp_status st = cache_rehash(c, c->cap ? 2 * c->cap : 1024);
        if (st) return st;
    }
    int64_t idx = c->n++;
    memcpy(c->keys + idx * c->nw, key, (size_t)c->nw * 8);
    c->ce[idx] = c->dist[idx] = 0;
    c->done[idx] = 0;
    int64_t i = (int64_t)(key_hash(key, c->nw) & (uint64_t)(c->cap - 1));
    while (c->slot[i] >= 0) i = (i + 1) & (c->cap - 1);
    c->slot[i] = idx;
    *e = idx;
    return DP_OK;
}

static void cache_free(struct cache *c) {
    free(c->keys);
    free(c->ce);
    free(c->dist);
    free(c->done);
    free(c->slot);
    memset(c, 0, sizeof *c);
}

/* ---- the evaluator: passes of one sequence with prefix reuse ---- */

struct evaluator {
    const struct dp_model *m;
    struct dp_pool *pool;
    const struct dp_hooks *user;
    const struct game *g;
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
struct hookctx {
    const struct dp_hooks *user;
    void (*observe)(void *ctx, int unit, const float *x, const float *y, int n, int dim, int pos0);
    void *ctx;
};

static bool hk_replace(void *ctx, int unit, const float *x, float *delta, int n, int dim, int pos0) {
    const struct hookctx *h = ctx;
    return h->user && h->user->replace && h->user->replace(h->user->ctx, unit, x, delta, n, dim, pos0);
}

static void hk_observe(void *ctx, int unit, const float *x, const float *y, int n, int dim, int pos0) {
    const struct hookctx *h = ctx;
    h->observe(h->ctx, unit, x, y, n, dim, pos0);
}

/* Observer of adaptive passes: keep the stream entering every sublayer after the start one. */
static void snap(void *ctx, int unit, const float *x, const float *y, int n, int dim, int pos0) {
    struct evaluator *ev = ctx;
    (void)y;
    if (unit > ev->start || ev->start == 0)
        memcpy(ev->stack + ((size_t)unit * ev->ctx + pos0) * dim, x, (size_t)n * dim * sizeof *x);
}

static int count_kept(const uint8_t *kept, int from, int to) {
    int k = 0;
    for (int u = from; u < to; u++) k += kept[u];
    return k;
}

/*
 * One pass of the current sequence under `kept`, from sublayer `start`
 * (0: the embedding; else from stack[start]), logits of every position.
 */
static dp_status run_pass(struct evaluator *ev, const uint8_t *kept, int start, float *logits) {
    const struct game *g = ev->g;
    struct dp_mask mask;
    kept_mask(g, kept, &mask);
    struct dp_session *s;
    dp_status st = dp_session_new(ev->m, &mask, ev->ctx, &s);
    if (st) return st;
    ev->start = start;
    struct hookctx hc = {ev->user, snap, ev};
    struct dp_hooks h = {.ctx = &hc, .observe = ev->reuse ? hk_observe : NULL, .replace = hk_replace,
                         .start_unit = start, .start_x = start ? ev->stack + (size_t)start * ev->ctx * ev->dim : NULL};
    st = dp_session_forward_hooked(s, ev->pool, ev->ids, ev->ctx, logits, DP_LOGITS_ALL, &h);
    dp_session_free(s);
    ev->cost.passes++;
    ev->cost.unit_evals += count_kept(kept, start, g->n_mu);
    ev->cost.naive_unit_evals += count_kept(kept, 0, g->n_mu);
    return st;
}

/* Mean next-token cross-entropy over the ctx-1 predictions. */
static double mean_ce(const float *logits, const int *ids, int ctx, int V) {
    double s = 0;
    for (int t = 0; t + 1 < ctx; t++) s -= dp_log_softmax_at(logits + (size_t)t * V, V, ids[t + 1]);
    return s / (ctx - 1);
}

/* Mean over positions 0..ctx-2 of the L2 distance between two logit rows. */
static double mean_dist(const float *a, const float *b, int ctx, int V) {
    double s = 0;
    for (int t = 0; t + 1 < ctx; t++) {
        double d2 = 0;
        const float *x = a + (size_t)t * V, *y = b + (size_t)t * V;
        for (int i = 0; i < V; i++) {
            double d = (double)x[i] - (double)y[i];
            d2 += d * d;
        }
        s += sqrt(d2);
    }
    return s / (ctx - 1);
}

/* The base model on sequence `seq`: its logits, CE, and (with reuse) every sublayer's input. */
static dp_status ev_full(struct evaluator *ev, const int *ids) {
    ev->ids = ids;
    dp_status st = run_pass(ev, ev->g->base, 0, ev->full);
    if (st) return st;
    memcpy(ev->path, ev->g->base, (size_t)ev->g->n_mu);
    ev->full_ce = ev->path_ce = mean_ce(ev->full, ids, ev->ctx, ev->V);
    ev->path_dist = 0;
    return DP_OK;
}

/* One coalition on the current sequence, starting where it departs from the previous pass. */
static dp_status ev_coalition(struct evaluator *ev, const uint8_t *kept, double *ce, double *dist) {
    const struct game *g = ev->g;
    if (!memcmp(kept, g->base, (size_t)g->n_mu)) {
        *ce = ev->full_ce;
        *dist = 0;
        return DP_OK;
    }
    int k = 0;
    while (k < g->n_mu && kept[k] == ev->path[k]) k++;
    if (k == g->n_mu) {
        *ce = ev->path_ce;
        *dist = ev->path_dist;
        return DP_OK;
    }
    dp_status st = run_pass(ev, kept, ev->reuse ? k : 0, ev->logits);
    if (st) return st;
    memcpy(ev->path, kept, (size_t)g->n_mu);
    *ce = ev->path_ce = mean_ce(ev->logits, ev->ids, ev->ctx, ev->V);
    *dist = ev->path_dist = mean_dist(ev->full, ev->logits, ev->ctx, ev->V);
    return DP_OK;
}

/*
 * Sort coalition indices so that kept flags (rows of `kept`, n_mu bytes) are
 * in descending lexicographic order: every coalition follows the one sharing
 * its longest prefix. A stable bottom-up merge sort.
 */
static dp_status sort_coalitions(const uint8_t *kept, int n_mu, int64_t C, int64_t *order) {
    int64_t *tmp = dp_malloc((size_t)(C ? C : 1) * sizeof *tmp);
    if (!tmp) return DP_ERR_NOMEM;
    for (int64_t i = 0; i < C; i++) order[i] = i;
    for (int64_t w = 1; w < C; w *= 2) {
        for (int64_t lo = 0; lo < C; lo += 2 * w) {
            int64_t mid = lo + w < C ? lo + w : C, hi = lo + 2 * w < C ? lo + 2 * w : C, a = lo, b = mid, o = lo;
            while (a < mid && b < hi)
                tmp[o++] = memcmp(kept + order[b] * n_mu, kept + order[a] * n_mu, (size_t)n_mu) > 0 ? order[b++] : order[a++];
            while (a < mid) tmp[o++] = order[a++];
            while (b < hi) tmp[o++] = order[b++];
        }
        memcpy(order, tmp, (size_t)C * sizeof *order);
    }
    free(tmp);
    return DP_OK;
}

/* Evaluate C coalitions on the current sequence in `order`. */
static dp_status ev_list(struct evaluator *ev, const uint8_t *kept, const int64_t *order, int64_t C, double *ce,
                         double *dist) {
    for (int64_t j = 0; j < C; j++) {
        int64_t c = order[j];
        dp_status st = ev_coalition(ev, kept + c * ev->g->n_mu, &ce[c], &dist[c]);
        if (st) return st;
    }
    return DP_OK;
}

/* ---- static metrics: one observed pass of the base model ---- */

struct static_obs {
    int L, n_mu, dim, ctx;
    double *cos, *l1, *l2;   /* (n_mu + L) sums over the positions of the current sequence */
    float *block_in;         /* (ctx, dim) the stream entering the current block */
    float *h_last;           /* (L + 1, dim) the stream entering each block at the last position; [L] leaves the last */
};

static void tok_stats(const float *x, const float *y, int dim, double *c, double *r1, double *r2) {
    double xy = 0, xx = 0, yy = 0, d1 = 0, x1 = 0, d2 = 0;
    for (int i = 0; i < dim; i++) {
        double a = x[i], b = y[i], d = b - a;
        xy += a * b;
        xx += a * a;
        yy += b * b;
        d1 += fabs(d);
        x1 += fabs(a);
        d2 += d * d;
    }
    *c = xx > 0 && yy > 0 ? xy / sqrt(xx * yy) : (xx == yy ? 1.0 : 0.0);
    *r1 = x1 > 0 ? d1 / x1 : (d1 > 0 ? INFINITY : 0.0);
    *r2 = xx > 0 ? sqrt(d2) / sqrt(xx) : (d2 > 0 ? INFINITY : 0.0);
}

static void static_observe(void *ctx, int unit, const float *x, const float *y, int n, int dim, int pos0) {
    struct static_obs *so = ctx;
    int l = unit / 2, blk = so->n_mu + l;
    bool last = pos0 + n == so->ctx;
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * dim, *yt = y + (size_t)t * dim;
        double c, r1, r2;
        tok_stats(xt, yt, dim, &c, &r1, &r2);
        so->cos[unit] += c;
        so->l1[unit] += r1;
        so->l2[unit] += r2;
        if (unit & 1) {
            tok_stats(so->block_in + (size_t)(pos0 + t) * dim, yt, dim, &c, &r1, &r2);
            so->cos[blk] += c;
            so->l1[blk] += r1;
            so->l2[blk] += r2;
        }
    }
    if (!(unit & 1)) {
        memcpy(so->block_in + (size_t)pos0 * dim, x, (size_t)n * dim * sizeof *x);
        if (last) memcpy(so->h_last + (size_t)l * dim, x + (size_t)(n - 1) * dim, (size_t)dim * sizeof *x);
    } else if (last && l == so->L - 1) {
        memcpy(so->h_last + (size_t)so->L * dim, y + (size_t)(n - 1) * dim, (size_t)dim * sizeof *y);
    }
}

static double angle(const float *a, const float *b, int dim) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < dim; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    double c = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb ? 1.0 : 0.0);
    if (c > 1) c = 1;
    if (c < -1) c = -1;
    return acos(c) / M_PI;
}

/* ---- the run ---- */

/*
 * A worker evaluates whole sequences with its own evaluator and scratch.
 * With several workers (small models, where one pass is too small to split
 * well), each pool thread runs one sequence per round with single-threaded
 * passes; with one worker, the passes use the pool. Per-sequence results are
 * reduced in sequence order either way, so the bits never depend on it.
 */
struct worker {
    struct evaluator ev;
    struct dp_session *session;   /* static family: a session of the base model */
    struct static_obs so;
    uint8_t *kept;                /* banzhaf: (k, n_mu) this sequence's subsets */
    int64_t *order;               /* banzhaf: (k) */
    int *perm;                    /* (n) */
    uint64_t *set;                /* (nw) */
    dp_status st;
    char err[512];
};

struct run {
    const struct dp_model *m;
    const struct dp_score_opts *o;
    const struct dp_chunks *ch;
    const struct dp_hooks *hooks;
    struct dp_pool *pool;
    struct game g;
    struct dp_scores *res;
    char *key;
    int n_workers;
    struct worker *w;
    /* the coalition list of the family being run (shared, read-only in workers) */
    const uint8_t *list_kept;        /* (list_n, n_mu) */
    const int64_t *list_order;       /* (list_n) evaluation order */
    const int64_t *list_entry;       /* shapley: (list_n) cache entries */
    int64_t list_n;
    /* checkpointed state */
    int stage, next_seq;
    size_t n_acc;
    double *acc;
    double *st_cos, *st_l1, *st_l2;  /* (n_mu + L) sums over sequences of per-sequence means */
    double *st_ang;                  /* (n_spans_all) sums over sequences of span distances */
    double *loo_ce, *loo_dist;       /* (n) sums over sequences */
    double *bz;                      /* (2 values, 2 sides, 3 stats, n): sum, squares, count */
    double *base_sum;                /* (N_FAM) sums over sequences of the base model's CE */
    struct dp_cost fam[N_FAM];
    struct cache cache;
    /* not checkpointed */
    int n_spans_all;
    double t_ckpt;
};

static int n_spans_of(int np) { return np * (np + 1) / 2; }

/* Index of the span of n present blocks starting at present block j (spans ordered by n, then j). */
static int span_index(int np, int n, int j) {
    int idx = 0;
    for (int k = 1; k < n; k++) idx += np - k + 1;
    return idx + j;
}

static int64_t total_passes(const struct run *r) {
    int64_t p = 0;
    for (int f = 0; f < N_FAM; f++) p += r->fam[f].passes;
    return p;
}

/* ---- checkpoints ---- */

static const char ckpt_magic[8] = {'D', 'P', 'S', 'C', 'O', 'R', 'E', '2'};

static void put(FILE *f, const void *p, size_t n) {
    if (n) fwrite(p, 1, n, f);
}

static dp_status ckpt_write(struct run *r) {
    if (!r->o->checkpoint) return DP_OK;
    struct dp_out out;
    dp_status st = dp_out_open(r->o->checkpoint, &out);
    if (st) return st;
    FILE *f = out.f;
    uint64_t klen = strlen(r->key), nacc = r->n_acc, ne = (uint64_t)r->cache.n;
    int32_t hdr[2] = {r->stage, r->next_seq};
    put(f, ckpt_magic, 8);
    put(f, &klen, 8);
    put(f, r->key, klen);
    put(f, hdr, sizeof hdr);
    put(f, &nacc, 8);
    put(f, r->acc, nacc * sizeof *r->acc);
    for (int i = 0; i < N_FAM; i++) {
        int64_t c[3] = {r->fam[i].unit_evals, r->fam[i].naive_unit_evals, r->fam[i].passes};
        put(f, c, sizeof c);
        put(f, &r->fam[i].seconds, sizeof(double));
        put(f, &r->fam[i].cpu_seconds, sizeof(double));
    }
    put(f, &ne, 8);
    put(f, r->cache.keys, ne * r->cache.nw * 8);
    put(f, r->cache.ce, ne * sizeof(double));
    put(f, r->cache.dist, ne * sizeof(double));
    put(f, r->cache.done, ne);
    put(f, ckpt_magic, 8);
    r->t_ckpt = dp_now();
    return dp_out_commit(&out);
}

struct cursor {
    const char *p, *end;
};

static bool take(struct cursor *c, void *dst, size_t n) {
    if ((size_t)(c->end - c->p) < n) return false;
    if (n) memcpy(dst, c->p, n);
    c->p += n;
    return true;
}

static bool skip(struct cursor *c, size_t n) {
    if ((size_t)(c->end - c->p) < n) return false;
    c->p += n;
    return true;
}

/*
 * Restore state from the checkpoint when it exists and its key matches; a
 * file with another key is ignored (and later overwritten).
 */
static dp_status ckpt_read(struct run *r) {
    const char *path = r->o->checkpoint;
    if (!path) return DP_OK;
    struct stat sb;
    if (stat(path, &sb) != 0) return DP_OK; /* no checkpoint yet (dp_read_file refuses a FIFO or a device) */
    char *buf;
    size_t len;
    dp_status st = dp_read_file(path, &buf, &len);
    if (st) return st;
    struct cursor c = {buf, buf + len};
    char magic[8];
    uint64_t klen = 0, nacc = 0, ne = 0;
    int32_t hdr[2] = {0, 0};
    bool ok = take(&c, magic, 8) && !memcmp(magic, ckpt_magic, 8) && take(&c, &klen, 8);
    if (ok && (klen != strlen(r->key) || (size_t)(c.end - c.p) < klen || memcmp(c.p, r->key, klen))) {
        free(buf); /* another run's checkpoint */
        return DP_OK;
    }
    ok = ok && skip(&c, klen) && take(&c, hdr, sizeof hdr) && take(&c, &nacc, 8) && nacc == r->n_acc &&
         take(&c, r->acc, nacc * sizeof *r->acc);
    for (int i = 0; ok && i < N_FAM; i++) {
        int64_t v[3];
        ok = take(&c, v, sizeof v) && take(&c, &r->fam[i].seconds, sizeof(double)) &&
             take(&c, &r->fam[i].cpu_seconds, sizeof(double));
        r->fam[i].unit_evals = v[0];
        r->fam[i].naive_unit_evals = v[1];
        r->fam[i].passes = v[2];
    }
    ok = ok && take(&c, &ne, 8) && ne < (1ull << 40) && ne * (r->cache.nw * 8 + 17) <= (uint64_t)(c.end - c.p);
    uint64_t *keys = NULL;
    if (ok) keys = dp_malloc((size_t)(ne ? ne : 1) * r->cache.nw * 8);
    ok = ok && keys && take(&c, keys, ne * r->cache.nw * 8);
    const char *ce = c.p, *dist = c.p + ne * 8, *done = c.p + ne * 16;
    ok = ok && skip(&c, ne * 17) && take(&c, magic, 8) && !memcmp(magic, ckpt_magic, 8) && c.p == c.end;
    ok = ok && hdr[0] >= 0 && hdr[0] <= FAM_DONE && hdr[1] >= 0 && hdr[1] <= r->ch->n_seqs;
    for (uint64_t e = 0; ok && e < ne; e++) {
        int64_t idx;
        st = cache_add(&r->cache, keys + e * r->cache.nw, &idx);
        if (st) break;
        memcpy(&r->cache.ce[idx], ce + e * 8, 8);
        memcpy(&r->cache.dist[idx], dist + e * 8, 8);
        r->cache.done[idx] = done[e] != 0;
    }
    free(keys);
    free(buf);
    if (st) return st;
    if (!ok) return dp_fail(DP_ERR_FORMAT, "%s: damaged checkpoint; remove it to start afresh", path);
    r->stage = hdr[0];
    r->next_seq = hdr[1];
    r->res->resumed = true;
    return DP_OK;
}

/* After each round of sequences: a checkpoint when due, and the test interruption. */
static dp_status seq_done(struct run *r) {
    int64_t passes = total_passes(r);
    bool stop = r->o->stop_after_passes > 0 && passes >= r->o->stop_after_passes;
    if (r->o->checkpoint && (stop || dp_now() - r->t_ckpt >= r->o->checkpoint_every)) {
        dp_status st = ckpt_write(r);
        if (st) return st;
    }
    if (stop) return dp_fail(DP_ERR_IO, "stopped after %lld passes (test interruption)", (long long)passes);
    return DP_OK;
}

/* CPU time of the whole process (every thread), in seconds. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A family is complete: the next one starts at sequence 0. */
static dp_status family_done(struct run *r, int fam, double t0, double c0) {
    r->fam[fam].seconds += dp_now() - t0;
    r->fam[fam].cpu_seconds += cpu_now() - c0;
    r->stage = fam + 1;
    r->next_seq = 0;
    return r->o->checkpoint ? ckpt_write(r) : DP_OK;
}

/* ---- sequences, in rounds of one per worker ---- */

/* Evaluate sequence q into out (a fixed number of doubles per family). */
typedef dp_status (*seq_fn)(struct run *r, struct worker *w, int q, double *out);
/* Add sequence q's results into the run's accumulators (called in sequence order). */
typedef void (*reduce_fn)(struct run *r, int q, const double *out);

struct seq_job {
    struct run *r;
    seq_fn fn;
    int q0, nq;
    size_t width;
    double *buf;
};

static void seq_worker(void *ctx, int ith, int nth) {
    struct seq_job *j = ctx;
    (void)nth;
    if (ith >= j->nq) return;
    struct worker *w = &j->r->w[ith];
    w->st = j->fn(j->r, w, j->q0 + ith, j->buf + (size_t)ith * j->width);
    if (w->st) snprintf(w->err, sizeof w->err, "%s", dp_last_error());
}

static dp_status for_sequences(struct run *r, int fam, size_t width, seq_fn fn, reduce_fn reduce, const char *what) {
    int P = r->n_workers, N = r->ch->n_seqs;
    double *buf = dp_malloc((size_t)P * (width ? width : 1) * sizeof *buf);
    dp_status st = buf ? DP_OK : DP_ERR_NOMEM;
    for (int q0 = r->next_seq; !st && q0 < N; q0 += P) {
        struct seq_job job = {r, fn, q0, N - q0 < P ? N - q0 : P, width, buf};
        if (P == 1) seq_worker(&job, 0, 1);
        else dp_pool_run(r->pool, seq_worker, &job);
        for (int i = 0; i < P; i++) {
            struct dp_cost *c = &r->w[i].ev.cost;
            r->fam[fam].passes += c->passes;
            r->fam[fam].unit_evals += c->unit_evals;
            r->fam[fam].naive_unit_evals += c->naive_unit_evals;
            memset(c, 0, sizeof *c);
            if (!st && i < job.nq && r->w[i].st) st = dp_fail(r->w[i].st, "%s", r->w[i].err);
        }
        if (st) break;
        for (int i = 0; i < job.nq; i++) reduce(r, q0 + i, buf + (size_t)i * width);
        r->next_seq = q0 + job.nq;
        dp_progress(what, r->next_seq, N);
        st = seq_done(r);
    }
    dp_progress_end();
    free(buf);
    return st;
}

static const int *seq_ids(const struct run *r, int q) { return r->ch->ids + (size_t)q * r->ch->ctx; }

/* ---- static metrics ---- */

static dp_status static_seq(struct run *r, struct worker *w, int q, double *out) {
    const struct game *g = &r->g;
    struct static_obs *so = &w->so;
    int ctx = r->ch->ctx, dim = so->dim, n_su = g->n_mu + g->L, np = g->n_present;
    memset(so->cos, 0, (size_t)n_su * 3 * sizeof(double));
    struct hookctx hc = {r->hooks, static_observe, so};
    struct dp_hooks h = {.ctx = &hc, .observe = hk_observe, .replace = hk_replace};
    dp_session_reset(w->session);
    dp_status st = dp_session_forward_hooked(w->session, w->ev.pool, seq_ids(r, q), ctx, NULL, DP_LOGITS_NONE, &h);
    if (st) return st;
    int kept = count_kept(g->base, 0, g->n_mu);
    w->ev.cost.passes++;
    w->ev.cost.unit_evals += kept;
    w->ev.cost.naive_unit_evals += kept;
    for (int u = 0; u < 3 * n_su; u++) out[u] = so->cos[u] / ctx; /* cos, l1, l2 are consecutive */
    /* spans of n present blocks: from the stream entering the first to the one leaving the last */
    for (int n = 1; n <= np; n++)
        for (int j = 0; j + n <= np; j++)
            out[3 * n_su + span_index(np, n, j)] = angle(so->h_last + (size_t)g->present[j] * dim,
                                                         so->h_last + (size_t)(g->present[j + n - 1] + 1) * dim, dim);
    return DP_OK;
}

static void static_reduce(struct run *r, int q, const double *out) {
    (void)q;
    size_t n = 3 * (size_t)(r->g.n_mu + r->g.L) + (size_t)r->n_spans_all;
    for (size_t i = 0; i < n; i++) r->st_cos[i] += out[i]; /* st_cos, st_l1, st_l2, st_ang are consecutive */
}

static dp_status run_static(struct run *r) {
    const struct game *g = &r->g;
    struct dp_mask mask;
    kept_mask(g, g->base, &mask);
    dp_status st = DP_OK;
    for (int i = 0; !st && i < r->n_workers; i++) st = dp_session_new(r->m, &mask, r->ch->ctx, &r->w[i].session);
    double t0 = dp_now(), c0 = cpu_now();
    if (!st)
        st = for_sequences(r, FAM_STATIC, 3 * (size_t)(g->n_mu + g->L) + (size_t)r->n_spans_all, static_seq,
                           static_reduce, "static metrics");
    for (int i = 0; i < r->n_workers; i++) {
        dp_session_free(r->w[i].session);
        r->w[i].session = NULL;
    }
    return st ? st : family_done(r, FAM_STATIC, t0, c0);
}

/* ---- leave-one-out ---- */

static dp_status loo_seq(struct run *r, struct worker *w, int q, double *out) {
    int64_t n = r->list_n;
    dp_status st = ev_full(&w->ev, seq_ids(r, q));
    if (!st) st = ev_list(&w->ev, r->list_kept, r->list_order, n, out, out + n);
    out[2 * n] = w->ev.full_ce;
    return st;
}

static void loo_reduce(struct run *r, int q, const double *out) {
    (void)q;
    int n = r->g.n;
    for (int i = 0; i < 2 * n; i++) r->loo_ce[i] += out[i]; /* loo_ce, loo_dist are consecutive */
    r->base_sum[FAM_LOO] += out[2 * n];
}

static dp_status run_loo(struct run *r) {
    const struct game *g = &r->g;
    int n = g->n;
    uint8_t *kept = dp_malloc((size_t)n * g->n_mu);
    int64_t *order = dp_malloc((size_t)n * sizeof *order);
    uint64_t *set = dp_calloc((size_t)g->nw, 8);
    dp_status st = kept && order && set ? DP_OK : DP_ERR_NOMEM;
    for (int i = 0; !st && i < n; i++) {
        memset(set, 0, (size_t)g->nw * 8);
        for (int j = 0; j < n; j++)
            if (j != i) bit_set(set, j);
        coalition_kept(g, set, kept + (size_t)i * g->n_mu);
    }
    if (!st) st = sort_coalitions(kept, g->n_mu, n, order);
    r->list_kept = kept;
    r->list_order = order;
    r->list_n = n;
    double t0 = dp_now(), c0 = cpu_now();
    if (!st) st = for_sequences(r, FAM_LOO, 2 * (size_t)n + 1, loo_seq, loo_reduce, "leave-one-out");
    free(kept);
    free(order);
    free(set);
    return st ? st : family_done(r, FAM_LOO, t0, c0);
}

/* ---- Banzhaf ---- */

static double *bz_stat(struct run *r, int value, int lacking, int stat) {
    return r->bz + ((size_t)((value * 2 + lacking) * 3 + stat)) * r->g.n;
}

/* out: CE (k), logit distance (k), base CE, membership (k, n) as 0/1. */
static dp_status banzhaf_seq(struct run *r, struct worker *w, int q, double *out) {
    const struct game *g = &r->g;
    int n = g->n, k = r->o->banzhaf_subsets, half = n / 2;
    double *in = out + 2 * k + 1;
    /* k subsets of floor(n/2) players, uniform without replacement: a partial Fisher-Yates shuffle */
    struct dp_rng rng = dp_rng_seeded(r->o->seed, DP_RNG_BANZHAF, (uint64_t)q);
    for (int j = 0; j < k; j++) {
        for (int i = 0; i < n; i++) w->perm[i] = i;
        memset(w->set, 0, (size_t)g->nw * 8);
        for (int i = 0; i < n; i++) in[(size_t)j * n + i] = 0;
        for (int i = 0; i < half; i++) {
            int s = i + (int)dp_rng_below(&rng, (uint64_t)(n - i)), tmp = w->perm[i];
            w->perm[i] = w->perm[s];
            w->perm[s] = tmp;
            bit_set(w->set, w->perm[i]);
            in[(size_t)j * n + w->perm[i]] = 1;
        }
        coalition_kept(g, w->set, w->kept + (size_t)j * g->n_mu);
    }
    dp_status st = sort_coalitions(w->kept, g->n_mu, k, w->order);
    if (!st) st = ev_full(&w->ev, seq_ids(r, q));
    if (!st) st = ev_list(&w->ev, w->kept, w->order, k, out, out + k);
    out[2 * k] = w->ev.full_ce;
    return st;
}

static void banzhaf_reduce(struct run *r, int q, const double *out) {
    (void)q;
    int n = r->g.n, k = r->o->banzhaf_subsets;
    const double *in = out + 2 * k + 1;
    for (int j = 0; j < k; j++)
        for (int v = 0; v < 2; v++) {
            double x = out[(size_t)v * k + j];
            for (int i = 0; i < n; i++) {
                int lacking = in[(size_t)j * n + i] == 0;
                bz_stat(r, v, lacking, 0)[i] += x;
                bz_stat(r, v, lacking, 1)[i] += x * x;
                bz_stat(r, v, lacking, 2)[i] += 1;
            }
        }
    r->base_sum[FAM_BANZHAF] += out[2 * k];
}

static dp_status run_banzhaf(struct run *r) {
    int n = r->g.n, k = r->o->banzhaf_subsets;
    double t0 = dp_now(), c0 = cpu_now();
    dp_status st = for_sequences(r, FAM_BANZHAF, 2 * (size_t)k + 1 + (size_t)k * n, banzhaf_seq, banzhaf_reduce,
                                 "banzhaf");
    return st ? st : family_done(r, FAM_BANZHAF, t0, c0);
}

/* ---- Shapley ---- */

static dp_status pending_seq(struct run *r, struct worker *w, int q, double *out) {
    dp_status st = ev_full(&w->ev, seq_ids(r, q));
    if (!st) st = ev_list(&w->ev, r->list_kept, r->list_order, r->list_n, out, out + r->list_n);
    return st;
}

static void pending_reduce(struct run *r, int q, const double *out) {
    (void)q;
    for (int64_t j = 0; j < r->list_n; j++) {
        r->cache.ce[r->list_entry[j]] += out[j];
        r->cache.dist[r->list_entry[j]] += out[r->list_n + j];
    }
}

/*
 * Evaluate the pending cache entries (listed in `pend`) over every sequence,
 * from r->next_seq (a resumed batch) on; then they are done and hold means.
 */
static dp_status eval_pending(struct run *r, const int64_t *pend, int64_t C) {
    const struct game *g = &r->g;
    struct cache *c = &r->cache;
    uint8_t *kept = dp_malloc((size_t)C * g->n_mu);
    int64_t *order = dp_malloc((size_t)C * sizeof *order);
    dp_status st = kept && order ? DP_OK : DP_ERR_NOMEM;
    for (int64_t j = 0; !st && j < C; j++) coalition_kept(g, c->keys + pend[j] * c->nw, kept + j * g->n_mu);
    if (!st) st = sort_coalitions(kept, g->n_mu, C, order);
    r->list_kept = kept;
    r->list_order = order;
    r->list_entry = pend;
    r->list_n = C;
    if (!st) st = for_sequences(r, FAM_SHAPLEY, 2 * (size_t)C, pending_seq, pending_reduce, "shapley coalitions");
    if (!st) {
        for (int64_t j = 0; j < C; j++) {
            c->ce[pend[j]] /= r->ch->n_seqs;
            c->dist[pend[j]] /= r->ch->n_seqs;
            c->done[pend[j]] = 1;
        }
        r->next_seq = 0;
    }
    free(kept);
    free(order);
    return st;
}

/*
 * Collect the coalitions of `sets` (C bit sets) that the cache lacks, as
 * pending entries (deduplicated); then evaluate them. A resumed batch is
 * recognised by its pending entries being exactly the cache's unfinished
 * ones, whose partial sums then continue from r->next_seq.
 */
static dp_status need(struct run *r, const uint64_t *sets, int64_t C) {
    struct cache *c = &r->cache;
    int64_t unfinished = 0, np = 0;
    for (int64_t e = 0; e < c->n; e++) unfinished += !c->done[e];
    int64_t *pend = dp_malloc((size_t)(C ? C : 1) * sizeof *pend);
    uint8_t *listed = dp_calloc((size_t)(c->n + C + 1), 1); /* by entry: already in pend */
    dp_status st = pend && listed ? DP_OK : DP_ERR_NOMEM;
    bool resumed = true;
    for (int64_t j = 0; !st && j < C; j++) {
        const uint64_t *key = sets + j * c->nw;
        int64_t e = cache_find(c, key);
        if (e >= 0 && (c->done[e] || listed[e])) continue;
        if (e < 0) {
            resumed = false;
            st = cache_add(c, key, &e);
            if (st) break;
        }
        listed[e] = 1;
        pend[np++] = e;
    }
    if (!st && np) {
        if (!resumed || np != unfinished) { /* a fresh batch: sums from zero */
            for (int64_t j = 0; j < np; j++) c->ce[pend[j]] = c->dist[pend[j]] = 0;
            r->next_seq = 0;
        }
        st = eval_pending(r, pend, np);
    }
    free(pend);
    free(listed);
    return st;
}

/* D(S) of a coalition known to be in the cache: value 0 = CE, 1 = logit distance. */
static double cached_d(const struct cache *c, const uint64_t *key, int value) {
    int64_t e = cache_find(c, key);
    DP_ASSERT(e >= 0 && c->done[e]);
    return value ? c->dist[e] : c->ce[e];
}

static dp_status shapley_exact(struct run *r) {
    const struct game *g = &r->g;
    int n = g->n;
    int64_t C = (int64_t)1 << n;
    uint64_t *sets = dp_calloc((size_t)C, (size_t)g->nw * 8);
    if (!sets) return DP_ERR_NOMEM;
    for (int64_t s = 0; s < C; s++) sets[s * g->nw] = (uint64_t)s;
    dp_status st = need(r, sets, C);
    /* phi_i = sum over S without i of |S|! (n-|S|-1)! / n! * (D(S) - D(S+i)) */
    double *w = dp_malloc((size_t)n * sizeof *w);
    for (int v = 0; !st && v < 2; v++) {
        int metric = v ? DP_METRIC_SHAPLEY_LOGIT : DP_METRIC_SHAPLEY_LOSS;
        if (!r->o->want[metric]) continue;
        if (!w) {
            st = DP_ERR_NOMEM;
            break;
        }
        for (int s = 0; s < n; s++) { /* 1 / (n * C(n-1, s)) */
            double binom = 1;
            for (int k = 1; k <= s; k++) binom = binom * (n - s + k - 1) / k;
            w[s] = 1.0 / (n * binom);
        }
        double *phi = r->res->influence[metric];
        for (int i = 0; i < n; i++) {
            double sum = 0;
            for (int64_t s = 0; s < C; s++) {
                if ((s >> i) & 1) continue;
                uint64_t with = (uint64_t)s | (1ull << i);
                int size = 0;
                for (uint64_t b = (uint64_t)s; b; b &= b - 1) size++;
                sum += w[size] *
                       (cached_d(&r->cache, (const uint64_t *)&sets[s * g->nw], v) - cached_d(&r->cache, &with, v));
            }
            phi[i] = sum;
            r->res->std_err[metric][i] = 0;
        }
        r->res->shapley[v].exact = true;
        r->res->shapley[v].converged = true;
        if (r->o->shapley_table) {
            double *t = dp_malloc((size_t)C * sizeof *t);
            if (!t) {
                st = DP_ERR_NOMEM;
                break;
            }
            for (int64_t c = 0; c < C; c++) t[c] = cached_d(&r->cache, (const uint64_t *)&sets[c * g->nw], v);
            r->res->shapley[v].table = t;
        }
    }
    free(w);
    free(sets);
    return st;
}

/* The coalition cache as the estimators' oracle (shapley.h). */
static dp_status oracle_need(void *ctx, const uint64_t *sets, int64_t C) { return need(ctx, sets, C); }

static double oracle_d(void *ctx, const uint64_t *set, int value) {
    const struct run *r = ctx;
    return cached_d(&r->cache, set, value);
}

static dp_status shapley_sampled(struct run *r) {
    const struct dp_score_opts *o = r->o;
    struct dp_shapley_game game = {r->g.n, r->g.nw, r, oracle_need, oracle_d};
    int est = o->shapley_estimator == DP_SHAPLEY_AUTO ? DP_SHAPLEY_STRATIFIED : o->shapley_estimator;
    struct dp_shapley_opts so = {.estimator = est, .samples = o->shapley_perms,
                                 .min_pairs = o->shapley_min_pairs, .tol = o->shapley_tol, .seed = o->seed,
                                 .all_perms = o->shapley_all_perms};
    struct dp_shapley_result sr;
    memset(&sr, 0, sizeof sr);
    for (int v = 0; v < 2; v++) {
        int metric = v ? DP_METRIC_SHAPLEY_LOGIT : DP_METRIC_SHAPLEY_LOSS;
        so.want[v] = o->want[metric];
        sr.phi[v] = r->res->influence[metric];
        sr.se[v] = r->res->std_err[metric];
    }
    dp_status st = dp_shapley_estimate(&game, &so, &sr);
    for (int v = 0; !st && v < 2; v++) {
        r->res->shapley[v].pairs = sr.pairs[v];
        r->res->shapley[v].samples = sr.samples[v];
        r->res->shapley[v].estimator = est;
        r->res->shapley[v].converged = sr.converged[v];
    }
    return st;
}

static dp_status run_shapley(struct run *r) {
    double t0 = dp_now(), c0 = cpu_now();
    /* auto: enumerating every coalition is cheaper than a sampling budget that would ask as many */
    int n = r->g.n;
    bool exact = r->o->shapley_exact || (r->o->shapley_estimator == DP_SHAPLEY_AUTO && n <= 24 &&
                                         ((int64_t)1 << n) <= (int64_t)r->o->shapley_perms * (n + 1));
    dp_status st = exact ? shapley_exact(r) : shapley_sampled(r);
    if (st) return st;
    /* v(all) and v(none) */
    uint64_t *set = dp_calloc((size_t)r->g.nw, 8);
    if (!set) return DP_ERR_NOMEM;
    for (int v = 0; v < 2; v++) {
        r->res->shapley[v].v_none = -cached_d(&r->cache, set, v);
        for (int i = 0; i < r->g.n; i++) bit_set(set, i);
        r->res->shapley[v].v_all = -cached_d(&r->cache, set, v);
        memset(set, 0, (size_t)r->g.nw * 8);
        r->res->shapley[v].coalitions = r->cache.n;
    }
    free(set);
    if (r->stage > FAM_SHAPLEY) return DP_OK; /* everything came from the checkpoint */
    return family_done(r, FAM_SHAPLEY, t0, c0);
}

/* ---- results ---- */

static void make_order(const double *v, int n, int *order) {
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 1; i < n; i++) { /* insertion sort: stable, NaN last */
        int x = order[i], j = i;
        while (j > 0) {
            double a = v[order[j - 1]], b = v[x];
            bool after = isnan(b) ? false : (isnan(a) || a > b);
            if (!after) break;
            order[j] = order[j - 1];
            j--;
        }
        order[j] = x;
    }
}

static dp_status finish(struct run *r) {
    const struct game *g = &r->g;
    struct dp_scores *res = r->res;
    int n = g->n, N = r->ch->n_seqs;
    for (int p = 0; p < n; p++) {
        int b = g->block_of[p];
        int u = r->o->kind == DP_UNITS_BLOCK ? g->n_mu + b : 0;
        if (r->o->kind == DP_UNITS_SUBLAYER)
            for (int k = 0; k < g->n_mu; k++)
                if (g->player_of[k] == p) u = k;
        if (res->has[DP_METRIC_COSINE]) res->influence[DP_METRIC_COSINE][p] = 1 - r->st_cos[u] / N;
        if (res->has[DP_METRIC_REL_L1]) res->influence[DP_METRIC_REL_L1][p] = r->st_l1[u] / N;
        if (res->has[DP_METRIC_REL_L2]) res->influence[DP_METRIC_REL_L2][p] = r->st_l2[u] / N;
        if (res->has[DP_METRIC_ANGULAR]) res->influence[DP_METRIC_ANGULAR][p] = r->st_ang[span_index(g->n_present, 1, p)] / N;
    }
    if (res->has[DP_METRIC_ANGULAR]) {
        int np = g->n_present, k = 0;
        for (int sn = 1; sn <= np; sn++) {
            if (r->o->span && sn != r->o->span) continue;
            int best = -1;
            for (int j = 0; j + sn <= np; j++) {
                struct dp_span *s = &res->spans[k];
                s->first_block = g->present[j];
                s->last_block = g->present[j + sn - 1];
                s->n = sn;
                s->distance = r->st_ang[span_index(np, sn, j)] / N;
                if (best < 0 || s->distance < res->spans[best].distance) best = k;
                k++;
            }
            res->best[res->n_best++] = best;
        }
        res->n_spans = k;
    }
    for (int v = 0; v < 2; v++) {
        int metric = v ? DP_METRIC_LOO_LOGIT : DP_METRIC_LOO_LOSS;
        if (!res->has[metric]) continue;
        const double *sum = v ? r->loo_dist : r->loo_ce;
        double total = 0;
        for (int i = 0; i < n; i++) total += sum[i] / N;
        for (int i = 0; i < n; i++) {
            double d = sum[i] / N;
            res->value[metric][i] = d;
            res->influence[metric][i] = n > 1 ? d - (total - d) / (n - 1) : d;
        }
    }
    for (int v = 0; v < 2; v++) {
        int metric = v ? DP_METRIC_BANZHAF_LOGIT : DP_METRIC_BANZHAF_LOSS;
        if (!res->has[metric]) continue;
        for (int i = 0; i < n; i++) {
            double mean[2], var[2], cnt[2];
            for (int side = 0; side < 2; side++) {
                double s = bz_stat(r, v, side, 0)[i], q = bz_stat(r, v, side, 1)[i];
                cnt[side] = bz_stat(r, v, side, 2)[i];
                mean[side] = cnt[side] > 0 ? s / cnt[side] : NAN;
                var[side] = cnt[side] > 1 ? (q - cnt[side] * mean[side] * mean[side]) / (cnt[side] - 1) : NAN;
                if (var[side] < 0) var[side] = 0;
            }
            res->influence[metric][i] = mean[1] - mean[0];
            res->std_err[metric][i] = sqrt(var[0] / cnt[0] + var[1] / cnt[1]);
        }
    }
    for (int f = FAM_LOO; f <= FAM_BANZHAF && isnan(res->base_ce); f++)
        if (r->fam[f].passes) res->base_ce = r->base_sum[f] / N;
    if (isnan(res->base_ce) && res->shapley[0].coalitions) res->base_ce = -res->shapley[0].v_all;
    for (int k = 0; k < DP_N_METRICS; k++) {
        if (!res->has[k]) continue;
        make_order(res->influence[k], n, res->order[k]);
        int f = family_of(k);
        if (f >= 0) res->cost[k] = r->fam[f];
        else res->cost[k] = (struct dp_cost){0, 0, res->mmlu.questions_evaluated, res->mmlu.seconds, res->mmlu.cpu_seconds};
    }
    for (int f = 0; f < N_FAM; f++) {
        res->unit_evals += r->fam[f].unit_evals;
        res->naive_unit_evals += r->fam[f].naive_unit_evals;
    }
    return DP_OK;
}

void dp_scores_free(struct dp_scores *s) {
    if (!s) return;
    for (int k = 0; k < DP_N_METRICS; k++) {
        free(s->influence[k]);
        free(s->std_err[k]);
        free(s->value[k]);
        free(s->order[k]);
    }
    for (int v = 0; v < 2; v++) free(s->shapley[v].table);
    free(s->names);
    free(s->spans);
    free(s->best);
    free(s);
}

static dp_status setup_game(const struct dp_model *m, const struct dp_mask *base, enum dp_unit_kind kind,
                            struct game *g) {
    int L = m->cfg.n_layers;
    g->L = L;
    g->n_mu = 2 * L;
    g->base = dp_calloc((size_t)g->n_mu, 1);
    g->player_of = dp_malloc((size_t)g->n_mu * sizeof *g->player_of);
    g->block_of = dp_malloc((size_t)g->n_mu * sizeof *g->block_of);
    g->present = dp_malloc((size_t)L * sizeof *g->present);
    if (!g->base || !g->player_of || !g->block_of || !g->present) return DP_ERR_NOMEM;
    if (base->n_layers != L)
        return dp_fail(DP_ERR_ARG, "the mask has %d blocks, the model %d", base->n_layers, L);
    for (int l = 0; l < L; l++) {
        g->base[2 * l] = base->attn[l] && m->layers[l].has_attn;
        g->base[2 * l + 1] = base->ffn[l] && m->layers[l].has_ffn;
        if (g->base[2 * l] || g->base[2 * l + 1]) g->present[g->n_present++] = l;
    }
    g->n = 0;
    for (int u = 0; u < g->n_mu; u++) {
        g->player_of[u] = -1;
        if (!g->base[u]) continue;
        if (kind == DP_UNITS_SUBLAYER || !(u & 1) || !g->base[u - 1]) g->block_of[g->n++] = u / 2;
        g->player_of[u] = g->n - 1;
    }
    if (g->n == 0) return dp_fail(DP_ERR_ARG, "the mask removes every unit: nothing to score");
    g->nw = (g->n + 63) / 64;
    return DP_OK;
}

static void free_game(struct game *g) {
    free(g->base);
    free(g->player_of);
    free(g->block_of);
    free(g->present);
}

static dp_status check_opts(const struct dp_model *m, const struct game *g, const struct dp_chunks *ch,
                            const struct dp_score_opts *o) {
    bool any = false;
    for (int k = 0; k < DP_N_METRICS; k++) any |= o->want[k];
    if (!any) return dp_fail(DP_ERR_ARG, "no metric asked for");
    if ((o->want[DP_METRIC_MMLU_SHAPLEY] || o->want[DP_METRIC_MMLU_SHAPLEY_ITER]) && !o->mmlu)
        return dp_fail(DP_ERR_ARG, "mmlu_shapley needs MMLU questions (--mmlu DIR)");
    bool calib = false;
    for (int k = 0; k < DP_N_METRICS; k++) calib |= o->want[k] && family_of(k) >= 0;
    if (!calib) return DP_OK;
    if (!ch || ch->n_seqs < 1) return dp_fail(DP_ERR_ARG, "no calibration sequences");
    if (o->want[DP_METRIC_ANGULAR] && o->kind != DP_UNITS_BLOCK)
        return dp_fail(DP_ERR_ARG, "angular scores spans of blocks: use block units");
    if (o->span < 0 || o->span > g->n_present)
        return dp_fail(DP_ERR_ARG, "span %d is out of range (1..%d blocks)", o->span, g->n_present);
    if (ch->ctx < 2) return dp_fail(DP_ERR_ARG, "context %d is too small", ch->ctx);
    bool banzhaf = o->want[DP_METRIC_BANZHAF_LOSS] || o->want[DP_METRIC_BANZHAF_LOGIT];
    bool shapley = o->want[DP_METRIC_SHAPLEY_LOSS] || o->want[DP_METRIC_SHAPLEY_LOGIT];
    if (banzhaf && (o->banzhaf_subsets < 1 || o->banzhaf_subsets > 1 << 20))
        return dp_fail(DP_ERR_ARG, "banzhaf subsets per sequence must be in [1, 1048576]");
    if (banzhaf && g->n < 2) return dp_fail(DP_ERR_ARG, "banzhaf needs at least 2 units");
    if (shapley && o->shapley_exact && g->n > 24)
        return dp_fail(DP_ERR_ARG, "exact Shapley values enumerate 2^n coalitions: at most 24 units, not %d", g->n);
    if (shapley && o->shapley_all_perms && g->n > 9)
        return dp_fail(DP_ERR_ARG, "every permutation of %d units is too many (at most 9)", g->n);
    if (shapley && (o->shapley_estimator < 0 || o->shapley_estimator > DP_SHAPLEY_AUTO))
        return dp_fail(DP_ERR_ARG, "unknown Shapley estimator %d", o->shapley_estimator);
    if (shapley && o->shapley_all_perms && o->shapley_estimator != DP_SHAPLEY_PERMUTATION)
        return dp_fail(DP_ERR_ARG, "every permutation once is the permutation estimator's check");
    if (shapley && !o->shapley_exact && !o->shapley_all_perms && (o->shapley_perms < 2 || o->shapley_min_pairs < 2))
        return dp_fail(DP_ERR_ARG, "shapley needs at least 2 permutations and a minimum of 2 pairs");
    (void)m;
    return DP_OK;
}

static dp_status alloc_results(struct run *r) {
    const struct game *g = &r->g;
    struct dp_scores *res = r->res;
    int n = g->n;
    res->kind = r->o->kind;
    res->n_units = n;
    res->ctx = r->ch->ctx;
    res->n_seqs = r->ch->n_seqs;
    res->base_ce = NAN;
    res->banzhaf_subsets = r->o->banzhaf_subsets;
    res->names = dp_calloc((size_t)n, sizeof *res->names);
    if (!res->names) return DP_ERR_NOMEM;
    for (int u = 0; u < g->n_mu; u++) {
        int p = g->player_of[u];
        if (p < 0) continue;
        if (r->o->kind == DP_UNITS_BLOCK) snprintf(res->names[p], sizeof res->names[p], "b%d", u / 2);
        else snprintf(res->names[p], sizeof res->names[p], "%c%d", u & 1 ? 'f' : 'a', u / 2);
    }
    for (int k = 0; k < DP_N_METRICS; k++) {
        if (!r->o->want[k]) continue;
        res->has[k] = true;
        res->influence[k] = dp_calloc((size_t)n, sizeof(double));
        res->order[k] = dp_calloc((size_t)n, sizeof(int));
        if (dp_metric_random(k)) res->std_err[k] = dp_calloc((size_t)n, sizeof(double));
        bool value = k == DP_METRIC_LOO_LOSS || k == DP_METRIC_LOO_LOGIT || k == DP_METRIC_MMLU_SHAPLEY_ITER;
        if (value) res->value[k] = dp_calloc((size_t)n, sizeof(double));
        if (!res->influence[k] || !res->order[k] || (dp_metric_random(k) && !res->std_err[k]) || (value && !res->value[k]))
            return DP_ERR_NOMEM;
    }
    if (r->o->want[DP_METRIC_ANGULAR]) {
        res->spans = dp_calloc((size_t)r->n_spans_all, sizeof *res->spans);
        res->best = dp_calloc((size_t)g->n_present, sizeof *res->best);
        if (!res->spans || !res->best) return DP_ERR_NOMEM;
    }
    return DP_OK;
}

/* A formatted heap string (NULL when out of memory). */
static char *aprintf(const char *fmt, ...) DP_PRINTF(1, 2);
static char *aprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *buf = len >= 0 ? dp_malloc((size_t)len + 1) : NULL;
    if (!buf) return NULL;
    va_start(ap, fmt);
    vsnprintf(buf, (size_t)len + 1, fmt, ap);
    va_end(ap);
    return buf;
}

/* The checkpoint key: the caller's, plus everything that shapes the accumulators. */
static dp_status make_key(struct run *r, const struct dp_mask *base) {
    const struct dp_score_opts *o = r->o;
    uint64_t h = 0x84222325CBF29CE4ull;
    for (int64_t i = 0; i < (int64_t)r->ch->n_seqs * r->ch->ctx; i++) h = dp_mix64(h ^ (uint64_t)r->ch->ids[i]);
    char removed[4096], want[DP_N_METRICS + 1];
    dp_mask_format(base, removed, sizeof removed);
    for (int k = 0; k < DP_N_METRICS; k++) want[k] = o->want[k] ? '1' : '0';
    want[DP_N_METRICS] = 0;
    r->key = aprintf("%s|model=%s|removed=%s|kind=%d|seqs=%d|ctx=%d|ids=%016llx|want=%s|span=%d|subsets=%d|"
                     "perms=%d|minpairs=%d|tol=%.17g|exact=%d|allperms=%d|seed=%llu|noreuse=%d|estimator=%d",
                     o->checkpoint_key ? o->checkpoint_key : "", dp_model_path(r->m), removed, (int)o->kind,
                     r->ch->n_seqs, r->ch->ctx, (unsigned long long)h, want, o->span, o->banzhaf_subsets,
                     o->shapley_perms, o->shapley_min_pairs, o->shapley_tol, o->shapley_exact, o->shapley_all_perms,
                     (unsigned long long)o->seed, o->no_reuse, o->shapley_estimator);
    return r->key ? DP_OK : DP_ERR_NOMEM;
}

static bool want_family(const struct dp_score_opts *o, int fam) {
    for (int k = 0; k < DP_N_METRICS; k++)
        if (o->want[k] && family_of(k) == fam) return true;
    return false;
}

/* Per-worker bytes: evaluator buffers for adaptive metrics, observer scratch for static ones. */
static int64_t worker_bytes(const struct run *r, bool adaptive) {
    const struct dp_config *c = &r->m->cfg;
    int64_t b = adaptive ? r->res->snapshot_bytes + r->res->logits_bytes : 0;
    if (want_family(r->o, FAM_STATIC)) b += ((int64_t)r->ch->ctx + r->g.L + 1) * c->n_embd * (int64_t)sizeof(float);
    return b;
}

static dp_status setup_workers(struct run *r, bool adaptive) {
    const struct dp_config *c = &r->m->cfg;
    const struct game *g = &r->g;
    int threads = r->pool ? dp_pool_threads(r->pool) : 1, P = 1;
    int64_t wb = worker_bytes(r, adaptive);
    bool seqs = r->o->parallel == DP_SCORE_PAR_SEQS || (r->o->parallel == DP_SCORE_PAR_AUTO && c->n_embd <= 1024);
    if (seqs && threads > 1) {
        P = threads;
        if (r->o->max_mem > 0 && wb > 0 && (int64_t)P * wb > r->o->max_mem) P = (int)(r->o->max_mem / wb);
        if (P < 1) P = 1;
    }
    r->n_workers = P;
    r->res->workers = P;
    r->w = dp_calloc((size_t)P, sizeof *r->w);
    if (!r->w) return DP_ERR_NOMEM;
    int n_su = g->n_mu + g->L, k = r->o->banzhaf_subsets;
    for (int i = 0; i < P; i++) {
        struct worker *w = &r->w[i];
        w->ev = (struct evaluator){.m = r->m, .pool = P == 1 ? r->pool : NULL, .user = r->hooks, .g = g,
                                   .ctx = r->ch->ctx, .dim = c->n_embd, .V = c->n_vocab, .reuse = !r->o->no_reuse};
        w->perm = dp_malloc((size_t)g->n * sizeof *w->perm);
        w->set = dp_malloc((size_t)g->nw * 8);
        if (!w->perm || !w->set) return DP_ERR_NOMEM;
        if (adaptive) {
            w->ev.stack = dp_malloc((size_t)r->res->snapshot_bytes);
            w->ev.full = dp_malloc((size_t)r->res->logits_bytes);
            w->ev.path = dp_malloc((size_t)g->n_mu);
            if (!w->ev.stack || !w->ev.full || !w->ev.path) return DP_ERR_NOMEM;
            w->ev.logits = w->ev.full + (size_t)r->ch->ctx * c->n_vocab;
        }
        if (want_family(r->o, FAM_STATIC)) {
            w->so = (struct static_obs){g->L, g->n_mu, c->n_embd, r->ch->ctx, NULL, NULL, NULL, NULL, NULL};
            w->so.cos = dp_calloc((size_t)n_su * 3, sizeof(double));
            w->so.block_in = dp_malloc((size_t)r->ch->ctx * c->n_embd * sizeof(float));
            w->so.h_last = dp_calloc((size_t)(g->L + 1) * c->n_embd, sizeof(float));
            if (!w->so.cos || !w->so.block_in || !w->so.h_last) return DP_ERR_NOMEM;
            w->so.l1 = w->so.cos + n_su;
            w->so.l2 = w->so.cos + 2 * n_su;
        }
        if (want_family(r->o, FAM_BANZHAF)) {
            w->kept = dp_malloc((size_t)k * g->n_mu);
            w->order = dp_malloc((size_t)k * sizeof *w->order);
            if (!w->kept || !w->order) return DP_ERR_NOMEM;
        }
    }
    return DP_OK;
}

static void free_workers(struct run *r) {
    for (int i = 0; r->w && i < r->n_workers; i++) {
        struct worker *w = &r->w[i];
        free(w->ev.stack);
        free(w->ev.full);
        free(w->ev.path);
        free(w->so.cos);
        free(w->so.block_in);
        free(w->so.h_last);
        free(w->kept);
        free(w->order);
        free(w->perm);
        free(w->set);
        dp_session_free(w->session);
    }
    free(r->w);
}

dp_status dp_metrics_score(const struct dp_model *m, const struct dp_mask *base, const struct dp_hooks *hooks,
                           struct dp_pool *pool, const struct dp_chunks *ch, const struct dp_score_opts *opts,
                           struct dp_scores **out) {
    *out = NULL;
    static const struct dp_chunks no_chunks; /* only mmlu_shapley: no calibration text */
    struct run r;
    memset(&r, 0, sizeof r);
    r.m = m;
    r.o = opts;
    r.ch = ch ? ch : &no_chunks;
    r.hooks = hooks;
    r.pool = pool;
    r.res = dp_calloc(1, sizeof *r.res);
    dp_status st = r.res ? setup_game(m, base, opts->kind, &r.g) : DP_ERR_NOMEM;
    if (!st) st = check_opts(m, &r.g, ch, opts);
    ch = r.ch;
    bool adaptive = want_family(opts, FAM_LOO) || want_family(opts, FAM_BANZHAF) || want_family(opts, FAM_SHAPLEY);
    if (!st) {
        dp_metrics_memory(m, ch->ctx, &r.res->snapshot_bytes, &r.res->logits_bytes);
        int64_t need_bytes = adaptive ? r.res->snapshot_bytes + r.res->logits_bytes : 0;
        if (opts->max_mem > 0 && need_bytes > opts->max_mem)
            st = dp_fail(DP_ERR_NOMEM,
                         "the residual-stream snapshots (%.1f MiB) and logits (%.1f MiB) need %.1f MiB, more than "
                         "--max-mem %.1f MiB: lower --ctx",
                         r.res->snapshot_bytes / 1048576.0, r.res->logits_bytes / 1048576.0, need_bytes / 1048576.0,
                         opts->max_mem / 1048576.0);
    }
    const struct game *g = &r.g;
    int n = g->n, n_su = g->n_mu + g->L;
    if (!st) {
        r.n_spans_all = n_spans_of(g->n_present);
        r.n_acc = (size_t)3 * n_su + (size_t)r.n_spans_all + 2 * (size_t)n + 12 * (size_t)n + N_FAM;
        r.acc = dp_calloc(r.n_acc, sizeof *r.acc);
        r.cache.nw = g->nw;
        st = r.acc ? alloc_results(&r) : DP_ERR_NOMEM;
    }
    if (!st) {
        double *p = r.acc;
        r.st_cos = p, p += n_su;
        r.st_l1 = p, p += n_su;
        r.st_l2 = p, p += n_su;
        r.st_ang = p, p += r.n_spans_all;
        r.loo_ce = p, p += n;
        r.loo_dist = p, p += n;
        r.bz = p, p += 12 * (size_t)n;
        r.base_sum = p, p += N_FAM;
        DP_ASSERT((size_t)(p - r.acc) == r.n_acc);
        st = make_key(&r, base);
    }
    if (!st) st = ckpt_read(&r);
    if (!st) st = setup_workers(&r, adaptive);
    r.t_ckpt = dp_now();
    static dp_status (*const runs[N_FAM])(struct run *) = {run_static, run_loo, run_banzhaf, run_shapley};
    for (int f = 0; !st && f < N_FAM; f++) {
        if (!want_family(opts, f)) continue;
        if (f == FAM_SHAPLEY || r.stage <= f) {
            if (r.stage < f) {
                r.stage = f;
                r.next_seq = 0;
            }
            st = runs[f](&r);
        }
    }
    struct dp_mmlu_shapley_opts mo = opts->mmlu_opts;
    mo.parallel = (int)opts->parallel;
    if (!st) st = dp_metrics_mmlu_oracle(m, base, hooks, pool, opts->mmlu, &mo, r.res);
    if (!st) {
        r.stage = FAM_DONE;
        st = finish(&r);
    }
    if (!st && opts->checkpoint) st = ckpt_write(&r);
    free_workers(&r);
    free(r.acc);
    free(r.key);
    cache_free(&r.cache);
    free_game(&r.g);
    if (st) {
        dp_scores_free(r.res);
        return st;
    }
    *out = r.res;
    return DP_OK;
}
