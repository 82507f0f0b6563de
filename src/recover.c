/*
 * recover: performance recovery of removed units (METHODS.md section 7; the
 * contract and the file format are in recover.h, the recovery object and
 * how it is applied in recovery.h).
 *
 * Three ways to get a replacement, all ending in the same struct:
 *
 *  - mean: one forward pass of the model with the units kept, an observer
 *    summing each unit's update y - x over every calibration token (double
 *    sums); c = sum / count.
 *  - lowrank:R (closed form): the same pass also sums the cross products of
 *    z = n_u(x) (the unit's own RMSNorm of its input) and the update t, on
 *    values shifted by the first token's (the shift cancels in the centred
 *    statistics and keeps the sums small). Then, in double precision with
 *    LAPACKE over OpenBLAS pinned to one thread:
 *        Czz = centred Z^T Z,  Czt = centred Z^T T
 *        W   = (Czz + lambda tr(Czz)/d I)^-1 Czt          (ridge, dposv)
 *        V   = top-R eigenvectors of W^T Czz W             (the principal
 *              directions of the centred fitted values, dsyevr)
 *        A   = (W V)^T,  B = V,  c = mean(t) - B A mean(z)
 *    R = 0 takes c = mean(t) through the same code as `mean`, bit for bit.
 *    The explained variance 1 - SSE/SST of the rank-R map is computed from
 *    the same statistics.
 *  - bias-trained / lowrank-trained:R: Adam on (c) or (c, A, B) of every
 *    removed unit at once, everything else frozen, on next-token CE or KL to
 *    the full model, with gradients from the tape of backward.c. Each step
 *    takes `batch` calibration sequences in a seeded shuffled order; the
 *    residual stream entering the lowest recovered unit comes from a pass of
 *    the model below it (for KL, of the full model, which also gives the
 *    teacher logits).
 *
 * "The full model" for statistics is the given mask with the recovered units
 * put back. With sequential statistics, unit k of the removal order is
 * fitted on the model with units 0..k-1 removed and replaced by their fitted
 * recoveries.
 */
#include "dist.h"
#include "recover.h"

#include "backward.h"
#include "eval.h"
#include "rng.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#ifndef DP_NO_LAPACKE
#include <cblas.h>
#include <lapacke.h>
/* OpenBLAS's own call (declared in its cblas.h, not in the reference one). */
void openblas_set_num_threads(int n);
#endif

/* ---- kinds, units, allocation ---- */

void dp_recover_opts_default(struct dp_recover_opts *o) {
    memset(o, 0, sizeof *o);
    o->ridge = 1e-4;
    o->objective = DP_OBJECTIVE_CE;
    o->steps = 200;
    o->lr = 1e-2;
    o->batch = 8;
    o->seed = 1;
}

static bool parse_rank(const char *s, int *rank) {
    if (!*s) return false;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        v = v * 10 + (*p - '0');
        if (v > 1 << 20) return false;
    }
    *rank = (int)v;
    return true;
}

dp_status dp_recover_parse_kind(const char *kind, enum dp_recover_method *method, int *rank) {
    *rank = 0;
    if (!strcmp(kind, "none")) *method = DP_RECOVER_NONE;
    else if (!strcmp(kind, "mean")) *method = DP_RECOVER_MEAN;
    else if (!strcmp(kind, "bias-trained")) *method = DP_RECOVER_BIAS_TRAINED;
    else if (!strncmp(kind, "lowrank:", 8) && parse_rank(kind + 8, rank)) *method = DP_RECOVER_LOWRANK;
    else if (!strncmp(kind, "lowrank-trained:", 16) && parse_rank(kind + 16, rank)) *method = DP_RECOVER_LOWRANK_TRAINED;
    else if (!strcmp(kind, "linear")) *method = DP_RECOVER_LINEAR;
    else if (!strcmp(kind, "linear-cos")) *method = DP_RECOVER_LINEAR_COS;
    else if (!strncmp(kind, "linear:", 7) && parse_rank(kind + 7, rank) && *rank > 0) *method = DP_RECOVER_LINEAR;
    else if (!strncmp(kind, "linear-cos:", 11) && parse_rank(kind + 11, rank) && *rank > 0)
        *method = DP_RECOVER_LINEAR_COS;
    else
        return dp_fail(DP_ERR_ARG, "recovery '%s' is not one of none, mean, lowrank:R, bias-trained, lowrank-trained:R, "
                       "linear[:R], linear-cos[:R]", kind);
    return DP_OK;
}

/* The unit whose input is the replacement's input x. */
static int input_slot(const struct dp_unit_recovery *u) { return 2 * u->layer + (u->kind == 'f' ? 1 : 0); }

/* Parse a unit name of a model with n_layers blocks. */
static dp_status parse_unit(const char *s, int n_layers, char *kind, int *layer) {
    char *end;
    if ((s[0] != 'b' && s[0] != 'a' && s[0] != 'f') || s[1] < '0' || s[1] > '9')
        return dp_fail(DP_ERR_ARG, "'%s' is not a unit (b<i>, a<i> or f<i>)", s);
    long v = strtol(s + 1, &end, 10);
    if (*end || strlen(s) >= 16) return dp_fail(DP_ERR_ARG, "'%s' is not a unit (b<i>, a<i> or f<i>)", s);
    if (v >= n_layers) return dp_fail(DP_ERR_ARG, "unit %s does not exist (the model has %d blocks)", s, n_layers);
    *kind = s[0];
    *layer = (int)v;
    return DP_OK;
}

/* Allocate c (and A, B when rank > 0) zeroed, and dequantize the norm weight. */
static dp_status unit_alloc(const struct dp_model *m, struct dp_unit_recovery *u, int rank) {
    int dim = m->cfg.n_embd;
    const struct dp_layer *L = &m->layers[u->layer];
    const struct dp_weight *nw = u->kind == 'f' ? &L->ffn_norm : &L->attn_norm;
    if (!nw->data) return dp_fail(DP_ERR_ARG, "unit %s: the model has no such sublayer to recover", u->unit);
    u->rank = rank;
    u->host = -1;
    u->explained_var = NAN;
    u->c = dp_calloc((size_t)dim, sizeof(float));
    u->norm = dp_malloc((size_t)dim * sizeof(float));
    if (rank > 0) {
        u->A = dp_calloc((size_t)rank * dim, sizeof(float));
        u->B = dp_calloc((size_t)rank * dim, sizeof(float));
    }
    if (!u->c || !u->norm || (rank > 0 && (!u->A || !u->B))) return DP_ERR_NOMEM;
    dp_dequant_row(nw->type, nw->data, u->norm, dim);
    return DP_OK;
}

dp_status dp_recovery_new(const struct dp_model *m, const char *kind, const char *const *units, int n, int rank,
                          struct dp_recovery **out) {
    *out = NULL;
    int dim = m->cfg.n_embd;
    if (n < 1) return dp_fail(DP_ERR_ARG, "a recovery needs at least one unit");
    if (rank < 0 || rank > dim) return dp_fail(DP_ERR_ARG, "rank %d is out of range (0..%d)", rank, dim);
    struct dp_recovery *r = dp_calloc(1, sizeof *r);
    if (!r) return DP_ERR_NOMEM;
    snprintf(r->kind, sizeof r->kind, "%s", kind);
    r->dim = dim;
    r->norm_eps = m->cfg.norm_eps;
    r->units = dp_calloc((size_t)n, sizeof *r->units);
    if (!r->units) {
        free(r);
        return DP_ERR_NOMEM;
    }
    r->n = n;
    dp_status st = DP_OK;
    for (int i = 0; i < n && !st; i++) {
        struct dp_unit_recovery *u = &r->units[i];
        st = parse_unit(units[i], m->cfg.n_layers, &u->kind, &u->layer);
        if (!st) snprintf(u->unit, sizeof u->unit, "%s", units[i]);
        for (int j = 0; j < i && !st; j++) {
            const struct dp_unit_recovery *v = &r->units[j];
            if (v->layer == u->layer && (v->kind == u->kind || v->kind == 'b' || u->kind == 'b'))
                st = dp_fail(DP_ERR_ARG, "units %s and %s overlap", v->unit, u->unit);
        }
        if (!st) st = unit_alloc(m, u, rank);
    }
    if (st) {
        dp_recovery_free(r);
        return st;
    }
    *out = r;
    return DP_OK;
}

/* ---- the file ---- */

dp_status dp_recovery_save(const struct dp_recovery *r, const char *path) {
    struct dp_gguf_writer *w = dp_gguf_writer_new();
    if (!w) return dp_fail(DP_ERR_NOMEM, "out of memory");
    const char **names = dp_malloc((size_t)r->n * sizeof *names);
    float *ev = dp_malloc((size_t)r->n * sizeof *ev);
    int32_t *hosts = dp_malloc((size_t)r->n * sizeof *hosts);
    dp_status st = names && ev && hosts ? DP_OK : DP_ERR_NOMEM;
    dp_gguf_set_str(w, "general.architecture", "depthprune-recovery");
    dp_gguf_set_str(w, "depthprune.recover.kind", r->kind);
    for (int i = 0; i < r->n && !st; i++) {
        const struct dp_unit_recovery *u = &r->units[i];
        names[i] = u->unit;
        ev[i] = (float)u->explained_var;
        hosts[i] = u->host;
        char name[64];
        int64_t ne_c[1] = {r->dim}, ne_a[2] = {r->dim, u->rank}, ne_b[2] = {u->rank, r->dim};
        size_t nb = (size_t)r->dim * sizeof(float);
        snprintf(name, sizeof name, "recover.%s.c", u->unit);
        st = dp_gguf_add_tensor(w, name, DP_TYPE_F32, 1, ne_c, u->c, nb);
        if (!st && u->rank > 0) {
            snprintf(name, sizeof name, "recover.%s.A", u->unit);
            st = dp_gguf_add_tensor(w, name, DP_TYPE_F32, 2, ne_a, u->A, nb * u->rank);
            snprintf(name, sizeof name, "recover.%s.B", u->unit);
            if (!st) st = dp_gguf_add_tensor(w, name, DP_TYPE_F32, 2, ne_b, u->B, nb * u->rank);
        }
    }
    if (!st) {
        dp_gguf_set_arr_str(w, "depthprune.recover.units", names, (uint64_t)r->n);
        dp_gguf_set_arr(w, "depthprune.recover.explained_variance", DP_GGUF_F32, ev, (uint64_t)r->n);
        if (dp_recovery_is_linear(r)) dp_gguf_set_arr(w, "depthprune.recover.hosts", DP_GGUF_I32, hosts, (uint64_t)r->n);
        st = dp_gguf_writer_write(w, path);
    }
    free(names);
    free(ev);
    free(hosts);
    dp_gguf_writer_free(w);
    return st;
}

/* Copy an F32 tensor of shape [ne0, ne1] into dst (ne0*ne1 floats). */
static dp_status read_tensor(const struct dp_gguf *g, const char *name, int64_t ne0, int64_t ne1, float *dst) {
    const struct dp_gguf_tensor *t = dp_gguf_find_tensor(g, name);
    if (!t) return dp_fail(DP_ERR_FORMAT, "%s: tensor '%s' is missing", g->path, name);
    if (t->type != DP_TYPE_F32 || t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
        return dp_fail(DP_ERR_FORMAT, "%s: tensor '%s' must be F32 of shape [%lld, %lld]", g->path, name,
                       (long long)ne0, (long long)ne1);
    memcpy(dst, t->data, (size_t)(ne0 * ne1) * sizeof(float));
    return DP_OK;
}

/*
 * Linear kinds: the host of each unit (depthprune.recover.hosts): a unit
 * before the span it carries, or -1 for the span's other units (rank 0).
 */
static dp_status load_hosts(const struct dp_gguf *g, const struct dp_model *m, struct dp_recovery *r) {
    const struct dp_gguf_kv *kv = dp_gguf_find_kv(g, "depthprune.recover.hosts");
    if (!kv || kv->val.type != DP_GGUF_ARRAY || kv->val.elem_type != DP_GGUF_I32 || kv->val.n != (uint64_t)r->n)
        return dp_fail(DP_ERR_FORMAT, "%s: a %s recovery needs 'depthprune.recover.hosts', %d INT32 unit numbers",
                       g->path, r->kind, r->n);
    for (int i = 0; i < r->n; i++) {
        struct dp_unit_recovery *u = &r->units[i];
        int64_t h = (int64_t)dp_gguf_arr_f64(&kv->val, (uint64_t)i);
        bool ok = h == -1 ? u->rank == 0
                          : (h == DP_RECOVERY_HOST_EMBD || (h >= 0 && h < 2 * (int64_t)u->layer + (u->kind == 'f'))) &&
                                u->rank > 0;
        if (!ok)
            return dp_fail(DP_ERR_FORMAT, "%s: unit %s has host %lld (a unit before it, with rank > 0, or -1 with rank 0)",
                           g->path, u->unit, (long long)h);
        u->host = (int)h;
        if (h >= 0 && !(u->hbuf = dp_malloc((size_t)DP_RECOVERY_MAX_ROWS * m->cfg.n_embd * sizeof(float))))
            return DP_ERR_NOMEM;
    }
    return DP_OK;
}

static dp_status load_units(const struct dp_gguf *g, const struct dp_model *m, char kind[64], struct dp_recovery **out) {
    const struct dp_gguf_kv *kv = dp_gguf_find_kv(g, "depthprune.recover.units");
    if (!kv || kv->val.type != DP_GGUF_ARRAY || kv->val.elem_type != DP_GGUF_STRING || kv->val.n < 1 ||
        kv->val.n > 2 * DP_MAX_LAYERS)
        return dp_fail(DP_ERR_FORMAT, "%s: 'depthprune.recover.units' must be a list of unit names", g->path);
    int n = (int)kv->val.n;
    char (*names)[16] = dp_calloc((size_t)n, sizeof *names);
    const char **ptrs = dp_calloc((size_t)n, sizeof *ptrs);
    int *ranks = dp_calloc((size_t)n, sizeof *ranks);
    dp_status st = names && ptrs && ranks ? DP_OK : DP_ERR_NOMEM;
    for (int i = 0; i < n && !st; i++) {
        const struct dp_gguf_str *s = &kv->val.strs[i];
        if (s->len < 2 || s->len >= sizeof names[i] || memchr(s->data, 0, s->len))
            st = dp_fail(DP_ERR_FORMAT, "%s: unit name %d is not a unit", g->path, i);
        else {
            memcpy(names[i], s->data, s->len);
            ptrs[i] = names[i];
            char name[64];
            snprintf(name, sizeof name, "recover.%s.A", names[i]);
            const struct dp_gguf_tensor *A = dp_gguf_find_tensor(g, name);
            ranks[i] = A ? (int)A->ne[1] : 0;
        }
    }
    struct dp_recovery *r = NULL;
    if (!st) {
        /* allocate with rank 0, then give each unit its own rank */
        st = dp_recovery_new(m, kind, ptrs, n, 0, &r);
        if (st) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", dp_last_error());
            st = dp_fail(st, "%s: %s", g->path, msg);
        }
    }
    int dim = m->cfg.n_embd;
    for (int i = 0; i < n && !st; i++) {
        struct dp_unit_recovery *u = &r->units[i];
        char name[64];
        if (ranks[i] < 0 || ranks[i] > dim) {
            st = dp_fail(DP_ERR_FORMAT, "%s: unit %s has rank %d (the model's width is %d)", g->path, u->unit,
                         ranks[i], dim);
            break;
        }
        u->rank = ranks[i];
        if (u->rank > 0) {
            u->A = dp_malloc((size_t)u->rank * dim * sizeof(float));
            u->B = dp_malloc((size_t)u->rank * dim * sizeof(float));
            if (!u->A || !u->B) st = DP_ERR_NOMEM;
            snprintf(name, sizeof name, "recover.%s.A", u->unit);
            if (!st) st = read_tensor(g, name, dim, u->rank, u->A);
            snprintf(name, sizeof name, "recover.%s.B", u->unit);
            if (!st) st = read_tensor(g, name, u->rank, dim, u->B);
        }
        snprintf(name, sizeof name, "recover.%s.c", u->unit);
        if (!st) st = read_tensor(g, name, dim, 1, u->c);
    }
    const struct dp_gguf_kv *ev = dp_gguf_find_kv(g, "depthprune.recover.explained_variance");
    if (!st && ev && ev->val.type == DP_GGUF_ARRAY && ev->val.elem_type == DP_GGUF_F32 && ev->val.n == (uint64_t)n)
        for (int i = 0; i < n; i++) r->units[i].explained_var = dp_gguf_arr_f64(&ev->val, (uint64_t)i);
    if (!st && dp_recovery_is_linear(r)) st = load_hosts(g, m, r);
    free(names);
    free(ptrs);
    free(ranks);
    if (st) {
        dp_recovery_free(r);
        return st;
    }
    *out = r;
    return DP_OK;
}

dp_status dp_recovery_load(const char *path, const struct dp_model *m, struct dp_recovery **out) {
    *out = NULL;
    struct dp_gguf *g;
    dp_status st = dp_gguf_open(path, &g);
    if (st) return st;
    char kind[64];
    enum dp_recover_method method;
    int rank;
    st = dp_gguf_get_str(g, "depthprune.recover.kind", true, kind, sizeof kind);
    if (!st && dp_recover_parse_kind(kind, &method, &rank))
        st = dp_fail(DP_ERR_FORMAT, "%s: unknown recovery kind '%s'", path, kind);
    if (!st) st = load_units(g, m, kind, out);
    dp_gguf_close(g);
    return st;
}

/* ---- statistics ---- */

/* Sums for one unit over calibration tokens. */
struct ustats {
    const struct dp_unit_recovery *u;
    int in_slot, out_slot;
    bool cross;                  /* lowrank: cross products too */
    int64_t count;
    double *sum_t, *sum_z;       /* (dim) unshifted sums */
    double *zz, *zt;             /* (dim, dim) sums of shifted products */
    double *tt;                  /* (dim) sums of shifted squares of t */
    float *z0, *t0;              /* (dim) the shift: the first token's z and t */
    bool have0;
    float *xin;                  /* (cap, dim) saved input (block units) */
};

struct stats_pass {
    const struct dp_recovery *r;      /* replacements active in the pass (sequential), or NULL */
    struct ustats *s;
    int n_s, dim, cap;
    float eps;
    struct dp_pool *pool;
    double *zs, *ts;                  /* (cap, dim) shifted rows of the current batch */
    float *z;                         /* (cap, dim) */
    float *replay;                    /* (2, cap, dim) with ranks: a logged call's x and y */
};

struct cross_job {
    struct stats_pass *p;
    struct ustats *s;
    int n;
};

/* zz[i][:] += sum_t zs[t][i] zs[t][:], zt likewise, rows i split over threads (fixed order in t). */
static void cross_worker(void *ctx, int ith, int nth) {
    const struct cross_job *j = ctx;
    int dim = j->p->dim;
    int64_t lo, hi;
    dp_pool_split(dim, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        double *zz = j->s->zz + i * dim, *zt = j->s->zt + i * dim;
        for (int t = 0; t < j->n; t++) {
            double a = j->p->zs[(size_t)t * dim + i];
            const double *zr = j->p->zs + (size_t)t * dim, *tr = j->p->ts + (size_t)t * dim;
            for (int k = 0; k < dim; k++) {
                zz[k] += a * zr[k];
                zt[k] += a * tr[k];
            }
        }
    }
}

static void accumulate(struct stats_pass *p, struct ustats *s, const float *x, const float *y, int n) {
    int dim = p->dim;
    for (int t = 0; t < n; t++)
        for (int i = 0; i < dim; i++) s->sum_t[i] += (double)y[(size_t)t * dim + i] - x[(size_t)t * dim + i];
    s->count += n;
    if (!s->cross) return;
    for (int t = 0; t < n; t++) {
        const float *xr = x + (size_t)t * dim, *yr = y + (size_t)t * dim;
        float *zr = p->z + (size_t)t * dim;
        double ss = 0;
        for (int i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        float scale = 1.0f / sqrtf((float)(ss / dim) + p->eps); /* z = n_u(x), model.c's arithmetic */
        for (int i = 0; i < dim; i++) zr[i] = xr[i] * scale * s->u->norm[i];
        if (!s->have0) {
            memcpy(s->z0, zr, (size_t)dim * sizeof *zr);
            for (int i = 0; i < dim; i++) s->t0[i] = yr[i] - xr[i];
            s->have0 = true;
        }
        for (int i = 0; i < dim; i++) {
            double zt = zr[i], tv = (double)yr[i] - xr[i];
            s->sum_z[i] += zt;
            p->zs[(size_t)t * dim + i] = zt - s->z0[i];
            p->ts[(size_t)t * dim + i] = tv - s->t0[i];
            s->tt[i] += p->ts[(size_t)t * dim + i] * p->ts[(size_t)t * dim + i];
        }
    }
    struct cross_job job = {p, s, n};
    dp_pool_run(p->pool, cross_worker, &job);
}

static void stats_observe(void *ctx, int unit, const float *x, const float *y, int n, int dim, int pos0) {
    struct stats_pass *p = ctx;
    (void)pos0;
    DP_ASSERT(dim == p->dim && n <= p->cap);
    for (int i = 0; i < p->n_s; i++) {
        struct ustats *s = &p->s[i];
        if (unit == s->in_slot && s->in_slot != s->out_slot) memcpy(s->xin, x, (size_t)n * dim * sizeof *x);
        if (unit == s->out_slot) accumulate(p, s, s->in_slot == s->out_slot ? x : s->xin, y, n);
    }
}

static bool stats_replace(void *ctx, int unit, const float *x, float *delta, int n, int dim, int pos0) {
    struct stats_pass *p = ctx;
    return p->r && dp_recovery_replace((void *)p->r, unit, x, delta, n, dim, pos0);
}

static void ustats_free(struct ustats *s) {
    free(s->sum_t);
    free(s->sum_z);
    free(s->zz);
    free(s->zt);
    free(s->tt);
    free(s->z0);
    free(s->t0);
    free(s->xin);
    memset(s, 0, sizeof *s);
}

static dp_status ustats_init(struct ustats *s, const struct dp_unit_recovery *u, int dim, int cap, bool cross) {
    memset(s, 0, sizeof *s);
    s->u = u;
    s->in_slot = input_slot(u);
    s->out_slot = dp_recovery_slot(u);
    s->cross = cross;
    size_t d = (size_t)dim;
    bool ok = (s->sum_t = dp_calloc(d, sizeof(double))) != NULL;
    if (ok && s->in_slot != s->out_slot) ok = (s->xin = dp_malloc((size_t)cap * d * sizeof(float))) != NULL;
    if (ok && cross)
        ok = (s->sum_z = dp_calloc(d, sizeof(double))) && (s->zz = dp_calloc(d * d, sizeof(double))) &&
             (s->zt = dp_calloc(d * d, sizeof(double))) && (s->tt = dp_calloc(d, sizeof(double))) &&
             (s->z0 = dp_calloc(d, sizeof(float))) && (s->t0 = dp_calloc(d, sizeof(float)));
    if (!ok) {
        ustats_free(s);
        return dp_fail(DP_ERR_NOMEM, "out of memory for the statistics of unit %s", u->unit);
    }
    return DP_OK;
}

/*
 * With ranks (dist.h) a pass runs in rounds of one sequence per rank: each
 * rank's forward pass logs what the observer is shown (unit, rows, x, y),
 * the logs are gathered, and every rank replays them into its statistics in
 * sequence order: the same sums, in the same order, as one process.
 */
struct obs_log {
    struct stats_pass *p;
    char *buf;
    size_t n, cap;
    bool oom;
};

struct obs_head {
    int32_t unit, n, pos0, pad;
};

static void log_put(struct obs_log *l, const void *src, size_t n) {
    if (l->oom) return;
    if (l->n + n > l->cap) {
        size_t want = (l->n + n) * 2;
        char *b = realloc(l->buf, want);
        if (!b) {
            l->oom = true;
            return;
        }
        l->buf = b;
        l->cap = want;
    }
    memcpy(l->buf + l->n, src, n);
    l->n += n;
}

static void log_observe(void *ctx, int unit, const float *x, const float *y, int n, int dim, int pos0) {
    struct obs_log *l = ctx;
    bool used = false;
    for (int i = 0; i < l->p->n_s; i++) used |= unit == l->p->s[i].in_slot || unit == l->p->s[i].out_slot;
    if (!used) return;
    struct obs_head h = {unit, n, pos0, 0};
    log_put(l, &h, sizeof h);
    log_put(l, x, (size_t)n * dim * sizeof *x);
    log_put(l, y, (size_t)n * dim * sizeof *y);
}

static bool log_replace(void *ctx, int unit, const float *x, float *delta, int n, int dim, int pos0) {
    struct obs_log *l = ctx;
    return stats_replace(l->p, unit, x, delta, n, dim, pos0);
}

/* Replay a gathered log of n bytes into the statistics (stats_observe, in the logged order). */
static void log_replay(struct stats_pass *p, const char *b, size_t n) {
    size_t at = 0;
    while (at < n) {
        struct obs_head h;
        memcpy(&h, b + at, sizeof h);
        at += sizeof h;
        size_t rows = (size_t)h.n * p->dim * sizeof(float);
        DP_ASSERT(at + 2 * rows <= n && h.n <= p->cap);
        /* the log's rows may be unaligned for float: copy them out */
        float *x = p->replay, *y = p->replay + (size_t)h.n * p->dim;
        memcpy(x, b + at, rows);
        memcpy(y, b + at + rows, rows);
        at += 2 * rows;
        stats_observe(p, h.unit, x, y, h.n, p->dim, h.pos0);
    }
}

/* Every sequence, one per rank per round (dist.h), logged and replayed in sequence order. */
static dp_status stats_sharded(struct stats_pass *p, struct dp_session *sess, const struct dp_chunks *calib,
                               const struct dp_recover_opts *o, struct dp_pool *pool) {
    int R = dp_dist_size(), me = dp_dist_rank();
    struct obs_log l = {.p = p};
    struct dp_hooks h = {.ctx = &l, .observe = log_observe, .replace = log_replace};
    size_t *sizes = dp_malloc((size_t)R * sizeof *sizes);
    p->replay = dp_malloc((size_t)2 * p->cap * p->dim * sizeof(float));
    dp_status st = sizes && p->replay ? DP_OK : DP_ERR_NOMEM;
    for (int q0 = 0; q0 < calib->n_seqs && !st; q0 += R) {
        l.n = 0;
        if (q0 + me < calib->n_seqs) {
            dp_session_reset(sess);
            st = dp_session_forward_hooked(sess, pool, calib->ids + (size_t)(q0 + me) * calib->ctx, calib->ctx, NULL,
                                           DP_LOGITS_NONE, &h);
            if (!st && l.oom) st = dp_fail(DP_ERR_NOMEM, "rank %d: out of memory for the recovery statistics' log", me);
        }
        void *all = NULL;
        if (!st) st = dp_dist_allgather_bytes(l.buf, l.n, &all, sizes);
        size_t at = 0;
        for (int r = 0; r < R && !st; r++) {
            log_replay(p, (const char *)all + at, sizes[r]);
            at += sizes[r];
        }
        free(all);
        int done = q0 + R < calib->n_seqs ? q0 + R : calib->n_seqs;
        if (!st && !dp_progress_step(o->progress, o->progress_user, "recovery statistics", done, calib->n_seqs))
            st = DP_ERR_CANCELLED;
    }
    free(l.buf);
    free(sizes);
    free(p->replay);
    p->replay = NULL;
    return st;
}

/*
 * One pass over the calibration chunks under `mask` with replacements `active`
 * (or none), gathering the statistics of units[0..n) of r.
 */
static dp_status stats_run(const struct dp_model *m, const struct dp_mask *mask, const struct dp_recovery *active,
                           struct dp_unit_recovery *units, int n, bool cross, const struct dp_chunks *calib,
                           const struct dp_recover_opts *o, struct dp_pool *pool, struct ustats *s) {
    int dim = m->cfg.n_embd, cap = calib->ctx;
    struct stats_pass p = {.r = active, .s = s, .n_s = n, .dim = dim, .cap = cap, .eps = m->cfg.norm_eps,
                           .pool = pool};
    dp_status st = DP_OK;
    for (int i = 0; i < n && !st; i++) st = ustats_init(&s[i], &units[i], dim, cap, cross);
    if (!st && cross) {
        p.zs = dp_malloc((size_t)cap * dim * sizeof(double));
        p.ts = dp_malloc((size_t)cap * dim * sizeof(double));
        p.z = dp_malloc((size_t)cap * dim * sizeof(float));
        if (!p.zs || !p.ts || !p.z) st = DP_ERR_NOMEM;
    }
    struct dp_session *sess = NULL;
    if (!st) st = dp_session_new(m, mask, calib->ctx, &sess);
    struct dp_hooks h = {.ctx = &p, .observe = stats_observe, .replace = stats_replace};
    if (!st && dp_dist_active()) st = stats_sharded(&p, sess, calib, o, pool);
    for (int q = 0; !dp_dist_active() && q < calib->n_seqs && !st; q++) {
        dp_session_reset(sess);
        st = dp_session_forward_hooked(sess, pool, calib->ids + (size_t)q * calib->ctx, calib->ctx, NULL,
                                       DP_LOGITS_NONE, &h);
        if (!st && !dp_progress_step(o->progress, o->progress_user, "recovery statistics", q + 1, calib->n_seqs))
            st = DP_ERR_CANCELLED;
    }
    dp_session_free(sess);
    free(p.zs);
    free(p.ts);
    free(p.z);
    return st;
}

/* ---- closed-form fits ---- */

static void fit_mean(const struct ustats *s, struct dp_unit_recovery *u, int dim) {
    for (int i = 0; i < dim; i++) u->c[i] = (float)(s->sum_t[i] / (double)s->count);
}

#ifdef DP_NO_LAPACKE
static dp_status fit_lowrank(const struct ustats *s, struct dp_unit_recovery *u, int dim, double ridge) {
    (void)s;
    (void)dim;
    (void)ridge;
    return dp_fail(DP_ERR_UNSUPPORTED,
                   "unit %s: lowrank:%d needs LAPACKE, which this build lacks (install liblapacke-dev "
                   "libopenblas-dev, e.g. with tools/setup.sh, and rebuild)", u->unit, u->rank);
}
#else
/* X = A^T B or A B (row-major d x d), one OpenBLAS thread. */
static void gemm(bool ta, const double *a, const double *b, double *c, int d) {
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, CblasNoTrans, d, d, d, 1.0, a, d, b, d, 0.0, c, d);
}

static dp_status fit_lowrank(const struct ustats *s, struct dp_unit_recovery *u, int dim, double ridge) {
    int R = u->rank, d = dim;
    double N = (double)s->count;
    size_t dd = (size_t)d * d;
    double *czz = malloc(dd * sizeof *czz), *w = malloc(dd * sizeof *w), *f = malloc(dd * sizeof *f),
           *p = malloc(dd * sizeof *p), *v = malloc((size_t)d * R * sizeof *v), *ev = malloc((size_t)d * sizeof *ev),
           *mz = malloc((size_t)d * sizeof *mz), *mt = malloc((size_t)d * sizeof *mt);
    lapack_int *sup = malloc((size_t)2 * d * sizeof *sup);
    dp_status st = DP_OK;
    if (!czz || !w || !f || !p || !v || !ev || !mz || !mt || !sup) {
        st = dp_fail(DP_ERR_NOMEM, "out of memory fitting unit %s", u->unit);
        goto done;
    }
    openblas_set_num_threads(1); /* same bits for any thread count of ours */
    /* centred statistics on the shifted values: mean of shifted = mean - shift */
    for (int i = 0; i < d; i++) {
        mz[i] = s->sum_z[i] / N - s->z0[i];
        mt[i] = s->sum_t[i] / N - s->t0[i];
    }
    double tr = 0, sst = 0;
    for (int i = 0; i < d; i++) {
        for (int j = 0; j < d; j++) {
            czz[(size_t)i * d + j] = s->zz[(size_t)i * d + j] - N * mz[i] * mz[j];
            w[(size_t)i * d + j] = s->zt[(size_t)i * d + j] - N * mz[i] * mt[j]; /* Czt, solved in place */
        }
        tr += czz[(size_t)i * d + i];
        sst += s->tt[i] - N * mt[i] * mt[i];
    }
    /* (Czz + lambda tr/d I) W = Czt */
    memcpy(f, czz, dd * sizeof *f);
    for (int i = 0; i < d; i++) f[(size_t)i * d + i] += ridge * tr / d;
    if (!(tr > 0)) {
        memset(w, 0, dd * sizeof *w); /* inputs never vary: only the mean is fitted */
    } else {
        lapack_int info = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', d, d, f, d, w, d);
        if (info != 0) {
            st = dp_fail(DP_ERR_ARG, "unit %s: the ridge system is singular (LAPACK dposv info %d); raise --ridge",
                         u->unit, (int)info);
            goto done;
        }
    }
    /* F = W^T Czz W: covariance of the centred fitted values; its top-R eigenvectors V */
    gemm(false, czz, w, p, d);
    gemm(true, w, p, f, d);
    lapack_int found = 0;
    lapack_int info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'V', 'I', 'U', d, f, d, 0.0, 0.0, d - R + 1, d, 0.0, &found,
                                     ev, v, R, sup);
    if (info != 0 || found != R) {
        st = dp_fail(DP_ERR_ARG, "unit %s: eigen-decomposition failed (LAPACK dsyevr info %d)", u->unit, (int)info);
        goto done;
    }
    /* eigenvalues come ascending: store directions largest first. A = (W V)^T, B = V */
    double kept = 0;
    for (int k = 0; k < R; k++) {
        int src = R - 1 - k;
        kept += ev[src];
        for (int j = 0; j < d; j++) u->B[(size_t)j * R + k] = (float)v[(size_t)j * R + src];
        for (int i = 0; i < d; i++) {
            double a = 0;
            for (int j = 0; j < d; j++) a += w[(size_t)i * d + j] * v[(size_t)j * R + src];
            u->A[(size_t)k * d + i] = (float)a;
        }
    }
    /* c = mean(t) - B A mean(z), with the float A and B the hooks use */
    for (int k = 0; k < R; k++) {
        double a = 0;
        for (int i = 0; i < d; i++) a += (double)u->A[(size_t)k * d + i] * (s->sum_z[i] / N);
        ev[k] = a;
    }
    for (int j = 0; j < d; j++) {
        double c = s->sum_t[j] / N;
        for (int k = 0; k < R; k++) c -= (double)u->B[(size_t)j * R + k] * ev[k];
        u->c[j] = (float)c;
    }
    /* explained variance: SSE = SST - 2 tr(W_R^T Czt) + tr(W_R^T Czz W_R), W_R = W V V^T */
    double cross = 0;
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double wr = 0;
            for (int k = 0; k < R; k++) wr += (double)u->A[(size_t)k * d + i] * u->B[(size_t)j * R + k];
            cross += wr * (s->zt[(size_t)i * d + j] - N * mz[i] * mt[j]);
        }
    u->explained_var = sst > 0 ? 1.0 - (sst - 2 * cross + kept) / sst : NAN;
done:
    free(czz);
    free(w);
    free(f);
    free(p);
    free(v);
    free(ev);
    free(mz);
    free(mt);
    free(sup);
    return st;
}
#endif

/* Fit units[0..n) from their statistics s[0..n). */
static dp_status fit_closed(struct dp_unit_recovery *units, const struct ustats *s, int n, int dim, double ridge) {
    for (int i = 0; i < n; i++) {
        struct dp_unit_recovery *u = &units[i];
        if (s[i].count == 0) return dp_fail(DP_ERR_ARG, "unit %s saw no calibration token", u->unit);
        fit_mean(&s[i], u, dim);
        if (u->rank > 0 && s[i].cross) {
            dp_status st = fit_lowrank(&s[i], u, dim, ridge);
            if (st) return st;
        } else if (s[i].cross) {
            u->explained_var = 0;
        }
    }
    return DP_OK;
}

/* Statistics and closed-form fit of every unit of r (mean or lowrank). */
static dp_status fit_stats(const struct dp_model *m, const struct dp_mask *mask, struct dp_recovery *r, bool cross,
                           const struct dp_chunks *calib, const struct dp_recover_opts *o, struct dp_pool *pool) {
    int dim = m->cfg.n_embd;
    struct dp_mask base = *mask;                /* the units of r put back */
    for (int i = 0; i < r->n; i++) {
        const struct dp_unit_recovery *u = &r->units[i];
        if (u->kind != 'f') base.attn[u->layer] = m->layers[u->layer].has_attn;
        if (u->kind != 'a') base.ffn[u->layer] = m->layers[u->layer].has_ffn;
    }
    struct ustats *s = dp_calloc((size_t)r->n, sizeof *s);
    if (!s) return DP_ERR_NOMEM;
    dp_status st = DP_OK;
    if (!o->sequential) {
        st = stats_run(m, &base, NULL, r->units, r->n, cross, calib, o, pool, s);
        if (!st) st = fit_closed(r->units, s, r->n, dim, o->ridge);
        for (int i = 0; i < r->n; i++) ustats_free(&s[i]);
    } else {
        struct dp_mask cur = base;
        for (int k = 0; k < r->n && !st; k++) {
            struct dp_recovery active = *r;     /* units 0..k-1, already fitted */
            active.n = k;
            st = stats_run(m, &cur, k ? &active : NULL, &r->units[k], 1, cross, calib, o, pool, &s[k]);
            if (!st) st = fit_closed(&r->units[k], &s[k], 1, dim, o->ridge);
            ustats_free(&s[k]);
            const struct dp_unit_recovery *u = &r->units[k];
            if (u->kind != 'f') cur.attn[u->layer] = false;
            if (u->kind != 'a') cur.ffn[u->layer] = false;
        }
    }
    free(s);
    return st;
}

/* ---- trained recoveries ---- */

static void shuffle(int *perm, int n, struct dp_rng *rng) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(dp_rng_next(rng) % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* The parameter arrays of r in a fixed order: c, A, B of each unit. */
struct seg {
    float *p;
    size_t n;
};
static int param_segs(struct dp_recovery *r, struct seg *out) {
    int k = 0;
    for (int i = 0; i < r->n; i++) {
        struct dp_unit_recovery *u = &r->units[i];
        out[k++] = (struct seg){u->c, (size_t)r->dim};
        if (u->rank > 0) {
            out[k++] = (struct seg){u->A, (size_t)u->rank * r->dim};
            out[k++] = (struct seg){u->B, (size_t)u->rank * r->dim};
        }
    }
    return k;
}

struct capture {
    int unit, dim;
    float *x;    /* (ctx, dim) */
};
static void capture_observe(void *ctx, int unit, const float *x, const float *y, int n, int dim, int pos0) {
    struct capture *c = ctx;
    (void)y;
    if (unit == c->unit) memcpy(c->x + (size_t)pos0 * dim, x, (size_t)n * dim * sizeof *x);
}

/*
 * Loss of one sequence (sum over positions 0..n-2) and its gradient dL/dlogits
 * scaled by `scale` into dl (n, V). teacher: the full model's logits (KL) or
 * NULL (CE on the next tokens ids[1..n-1]).
 */
static double loss_grad(const float *logits, const float *teacher, const int *ids, int n, int V, double scale,
                        float *dl) {
    double loss = 0;
    for (int t = 0; t < n; t++) {
        const float *l = logits + (size_t)t * V;
        float *d = dl + (size_t)t * V;
        if (t == n - 1) {
            memset(d, 0, (size_t)V * sizeof *d);
            break;
        }
        double mx = l[0], sum = 0;
        for (int v = 1; v < V; v++)
            if (l[v] > mx) mx = l[v];
        for (int v = 0; v < V; v++) sum += exp(l[v] - mx);
        double lse = mx + log(sum);
        if (!teacher) {
            int y = ids[t + 1];
            loss += lse - l[y];
            for (int v = 0; v < V; v++) d[v] = (float)((exp(l[v] - lse) - (v == y)) * scale);
        } else {
            const float *f = teacher + (size_t)t * V;
            double fmx = f[0], fsum = 0;
            for (int v = 1; v < V; v++)
                if (f[v] > fmx) fmx = f[v];
            for (int v = 0; v < V; v++) fsum += exp(f[v] - fmx);
            double flse = fmx + log(fsum);
            for (int v = 0; v < V; v++) {
                double pf = exp(f[v] - flse), lpf = f[v] - flse, lp = l[v] - lse;
                loss += pf * (lpf - lp);
                d[v] = (float)((exp(lp) - pf) * scale);
            }
        }
    }
    return loss;
}

void dp_recover_log(const struct dp_recover_opts *o, const char *fmt, ...) {
    if (!o->log) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->log(o->log_ctx, line);
}

struct trainer {
    struct dp_recovery *g, *m1, *m2;
    struct dp_tape *tape;
    struct dp_session *sess;
    float *x0, *logits, *teacher, *dl;
    int *perm;
    struct seg *sp, *sg, *s1, *s2;
};

static void trainer_free(struct trainer *t) {
    dp_recovery_free(t->g);
    dp_recovery_free(t->m1);
    dp_recovery_free(t->m2);
    dp_tape_free(t->tape);
    dp_session_free(t->sess);
    free(t->x0);
    free(t->logits);
    free(t->teacher);
    free(t->dl);
    free(t->perm);
    free(t->sp);
    free(t->sg);
    free(t->s1);
    free(t->s2);
}

/* One Adam step (beta 0.9, 0.999, eps 1e-8, bias-corrected) over every parameter. */
static void adam(struct trainer *t, int n_segs, int step, double lr) {
    double b1 = 0.9, b2 = 0.999, c1 = 1 - pow(b1, step), c2 = 1 - pow(b2, step);
    for (int k = 0; k < n_segs; k++)
        for (size_t i = 0; i < t->sp[k].n; i++) {
            double g = t->sg[k].p[i];
            double m = b1 * t->s1[k].p[i] + (1 - b1) * g, v = b2 * t->s2[k].p[i] + (1 - b2) * g * g;
            t->s1[k].p[i] = (float)m;
            t->s2[k].p[i] = (float)v;
            t->sp[k].p[i] -= (float)(lr * (m / c1) / (sqrt(v / c2) + 1e-8));
        }
}

static dp_status train(const struct dp_model *m, const struct dp_mask *mask, struct dp_recovery *r,
                       const struct dp_chunks *calib, const struct dp_recover_opts *o, struct dp_pool *pool) {
    int dim = m->cfg.n_embd, V = m->cfg.n_vocab, ctx = calib->ctx, R = r->units[0].rank;
    if (ctx < 2) return dp_fail(DP_ERR_ARG, "trained recovery needs calibration sequences of at least 2 tokens");
    struct dp_mask base = *mask;
    int start = 2 * m->cfg.n_layers;
    for (int i = 0; i < r->n; i++) {
        const struct dp_unit_recovery *u = &r->units[i];
        if (u->kind != 'f') base.attn[u->layer] = m->layers[u->layer].has_attn;
        if (u->kind != 'a') base.ffn[u->layer] = m->layers[u->layer].has_ffn;
        if (input_slot(u) < start) start = input_slot(u);
    }
    /* CE needs only the stream entering `start`: the capture pass skips every unit from there on */
    struct dp_mask below = base;
    for (int u = start; u < 2 * m->cfg.n_layers; u++) {
        if (u & 1) below.ffn[u / 2] = false;
        else below.attn[u / 2] = false;
    }
    dp_status st = DP_OK;
    if (o->init_mean) st = fit_stats(m, mask, r, false, calib, o, pool);
    if (st) return st;
    struct dp_rng rng = dp_rng_raw(o->seed);
    for (int i = 0; i < r->n; i++)          /* A ~ N(0, 1/dim), B = 0: the map starts at the constant c */
        for (size_t k = 0; k < (size_t)R * dim; k++) r->units[i].A[k] = (float)(dp_rng_normal(&rng) / sqrt(dim));
    struct trainer t = {0};
    const char **un = dp_malloc((size_t)r->n * sizeof *un);
    if (!un) return DP_ERR_NOMEM;
    for (int i = 0; i < r->n; i++) un[i] = r->units[i].unit;
    if ((st = dp_recovery_new(m, r->kind, un, r->n, R, &t.g)) || (st = dp_recovery_new(m, r->kind, un, r->n, R, &t.m1)) ||
        (st = dp_recovery_new(m, r->kind, un, r->n, R, &t.m2)) || (st = dp_tape_new(m, mask, r, start, ctx, &t.tape)) ||
        (st = dp_session_new(m, o->objective == DP_OBJECTIVE_KL ? &base : &below, ctx, &t.sess))) {
        free(un);
        trainer_free(&t);
        return st;
    }
    free(un);
    size_t ns = (size_t)3 * r->n;
    t.x0 = dp_malloc((size_t)ctx * dim * sizeof(float));
    t.logits = dp_malloc((size_t)ctx * V * sizeof(float));
    t.dl = dp_malloc((size_t)ctx * V * sizeof(float));
    t.teacher = o->objective == DP_OBJECTIVE_KL ? dp_malloc((size_t)ctx * V * sizeof(float)) : NULL;
    t.perm = dp_malloc((size_t)calib->n_seqs * sizeof(int));
    t.sp = dp_malloc(ns * sizeof *t.sp);
    t.sg = dp_malloc(ns * sizeof *t.sg);
    t.s1 = dp_malloc(ns * sizeof *t.s1);
    t.s2 = dp_malloc(ns * sizeof *t.s2);
    if (!t.x0 || !t.logits || !t.dl || (o->objective == DP_OBJECTIVE_KL && !t.teacher) || !t.perm || !t.sp ||
        !t.sg || !t.s1 || !t.s2) {
        trainer_free(&t);
        return dp_fail(DP_ERR_NOMEM, "out of memory for training");
    }
    int n_segs = param_segs(r, t.sp);
    param_segs(t.g, t.sg);
    param_segs(t.m1, t.s1);
    param_segs(t.m2, t.s2);
    for (int i = 0; i < calib->n_seqs; i++) t.perm[i] = i;
    shuffle(t.perm, calib->n_seqs, &rng);
    int next = 0;
    struct capture cap = {start, dim, t.x0};
    struct dp_hooks h = {.ctx = &cap, .observe = capture_observe};
    double scale = 1.0 / ((double)o->batch * (ctx - 1)), avg = 0;
    int every = o->steps >= 10 ? o->steps / 10 : 1;
    for (int step = 1; step <= o->steps && !st; step++) {
        for (int k = 0; k < n_segs; k++) memset(t.sg[k].p, 0, t.sg[k].n * sizeof(float));
        double loss = 0;
        for (int b = 0; b < o->batch && !st; b++) {
            if (next == calib->n_seqs) {
                shuffle(t.perm, calib->n_seqs, &rng);
                next = 0;
            }
            const int *ids = calib->ids + (size_t)t.perm[next++] * ctx;
            dp_session_reset(t.sess);
            st = dp_session_forward_hooked(t.sess, pool, ids, ctx, t.teacher,
                                           t.teacher ? DP_LOGITS_ALL : DP_LOGITS_NONE, &h);
            if (st) break;
            dp_tape_forward(t.tape, pool, t.x0, ctx, t.logits);
            loss += loss_grad(t.logits, t.teacher, ids, ctx, V, scale, t.dl) * scale;
            dp_tape_backward(t.tape, pool, t.dl, t.g);
        }
        if (st) break;
        adam(&t, n_segs, step, o->lr);
        avg = step == 1 ? loss : 0.9 * avg + 0.1 * loss;
        if (step % every == 0 || step == o->steps)
            dp_recover_log(o, "%s: step %d/%d, %s %.5f (running mean %.5f)", r->kind, step, o->steps,
                     t.teacher ? "kl" : "ce", loss, avg);
        if (!dp_progress_step(o->progress, o->progress_user, "training recovery", step, o->steps)) st = DP_ERR_CANCELLED;
    }
    trainer_free(&t);
    return st;
}

/* ---- the entry point ---- */

dp_status dp_recovery_fit(const struct dp_model *m, const struct dp_mask *mask, const char *const *order, int n_order,
                          const char *kind, const struct dp_chunks *calib, const struct dp_recover_opts *opts,
                          struct dp_pool *pool, struct dp_recovery **out) {
    *out = NULL;
    enum dp_recover_method method;
    int rank;
    dp_status st = dp_recover_parse_kind(kind, &method, &rank);
    if (st || method == DP_RECOVER_NONE) return st;
    struct dp_recover_opts def;
    dp_recover_opts_default(&def);
    const struct dp_recover_opts *o = opts ? opts : &def;
    if (!calib || calib->n_seqs < 1) return dp_fail(DP_ERR_ARG, "recovery '%s' needs calibration data", kind);
    if (!(o->ridge >= 0) || o->steps < 0 || !(o->lr > 0) || o->batch < 1)
        return dp_fail(DP_ERR_ARG, "recovery options out of range (ridge >= 0, steps >= 0, lr > 0, batch >= 1)");
    struct dp_recovery *r;
    bool linear = method == DP_RECOVER_LINEAR || method == DP_RECOVER_LINEAR_COS;
    if (linear && o->sequential)
        return dp_fail(DP_ERR_UNSUPPORTED, "recovery '%s' fits every span on the full model; sequential statistics "
                       "are not supported for it", kind);
    if ((st = dp_recovery_new(m, kind, order, n_order, linear ? 0 : rank, &r))) return st;
    for (int i = 0; i < r->n && !st; i++) {
        const struct dp_unit_recovery *u = &r->units[i];
        bool removed = (u->kind == 'f' || !mask->attn[u->layer]) && (u->kind == 'a' || !mask->ffn[u->layer]);
        if (!removed) st = dp_fail(DP_ERR_ARG, "unit %s is not removed, so there is nothing to recover", u->unit);
    }
    if (!st) {
        if (method == DP_RECOVER_MEAN || method == DP_RECOVER_LOWRANK)
            st = fit_stats(m, mask, r, method == DP_RECOVER_LOWRANK, calib, o, pool);
        else if (method == DP_RECOVER_LINEAR || method == DP_RECOVER_LINEAR_COS)
            st = dp_recovery_fit_linear(m, mask, r, method, rank, calib, o, pool);
        else
            st = train(m, mask, r, calib, o, pool);
    }
    if (st) {
        dp_recovery_free(r);
        return st;
    }
    *out = r;
    return DP_OK;
}
