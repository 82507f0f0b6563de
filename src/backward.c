/*
 * backward: the tape (forward with saved activations) and its backward pass
 * through frozen llama blocks (see backward.h).
 *
 * The recipe per unit, forward (x: residual entering the unit, n tokens):
 *
 *   attention  xn = rmsnorm(x) * w;  q, k, v = xn Wq^T + bq, ...;  rope(q, k);
 *              o = softmax(q k^T / sqrt(hd), causal) v;  y = x + o Wo^T + bo
 *   FFN        xn = rmsnorm(x) * w;  a = xn Wg^T;  u = xn Wu^T;
 *              y = x + (silu(a) * u) Wd^T + bd
 *   recovered  z = rmsnorm(x) * w_u;  y = x + B (A z) + c
 *   removed    y = x
 *   head       logits = (rmsnorm(x) * w_out) Wout^T
 *
 * and backward in reverse order, g = dL/dy becoming dL/dx = g + J^T g:
 *
 *   rmsnorm    with s = 1/sqrt(mean(x^2) + eps):
 *              dx_i = s w_i dy_i - x_i s^3 / dim * sum_j dy_j w_j x_j
 *   attention  do = g Wo; per head and query t, with P the recomputed
 *              probabilities: dP_p = do . v_p, dS_p = P_p (dP_p - sum P dP),
 *              dq_t = scale sum dS_p k_p, dk_p += scale dS_p q_t,
 *              dv_p += P_p do; RoPE undone by the inverse rotation
 *   SwiGLU     dh = g Wd; du = dh silu(a); da = dh u silu'(a),
 *              silu'(a) = sig(a) (1 + a (1 - sig(a)))
 *   recovered  dc += sum_t g_t; dB += g (A z)^T; d(Az) = g B; dA += d(Az)^T z;
 *              dz = d(Az) A
 *
 * Attention's backward splits work by KV head, so the keys and values a
 * thread accumulates into are its own; every other reduction runs in a fixed
 * order on one thread or through dp_matmul. Results do not depend on the
 * number of threads.
 */
#include "backward.h"

#include "layer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 256

enum unit_kind { U_IDENT, U_ATTN, U_FFN, U_REPL };

struct tape_unit {
    enum unit_kind kind;
    int layer;
    int rec;              /* U_REPL: index into the recovery's units */
    float *norm;          /* (dim) norm weight (U_ATTN, U_FFN) */
    float *x;             /* (n_max, dim) input residual */
    float *xn;            /* (n_max, dim) normed input, z for U_REPL */
    float *q, *k, *v;     /* (n_max, qd), (n_max, kvd) x2: after RoPE (q, k) */
    float *a, *u;         /* (n_max, ff) gate pre-activation and up */
    float *az;            /* (n_max, rank) A z */
};

struct dp_tape {
    const struct dp_model *m;
    const struct dp_recovery *r;
    int start, n_max, n;
    int n_units;                /* 2 * n_layers - start */
    struct tape_unit *units;    /* unit start + i */
    float *out_norm;            /* (dim) */
    float *xf, *xnf;            /* (n_max, dim) residual before the head, and normed */
    float *cur, *delta;         /* (n_max, dim) */
    float *att;                 /* (n_max, max qd) */
    float *h;                   /* (n_max, max ff) */
    float *g, *dxn, *tmp;       /* (n_max, dim) */
    float *dq, *datt;           /* (n_max, max qd) */
    float *dk, *dv;             /* (n_max, max kvd) */
    float *dh, *da, *du;        /* (n_max, max ff) */
    float *daz;                 /* (n_max, max rank) */
    float *wt;                  /* transposed weight scratch (largest matrix) */
    float *wrow;                /* (largest n_in) */
    float *bias;                /* (largest row) */
    float *scores;              /* (MAX_THREADS, 2 * n_max) */
    float *k_cache, *v_cache;   /* (max kvd, n_max) head-major keys and values of the unit running */
};

/* ---- building ---- */

/*
 * What the backward pass lacks for the kept units from start_unit on and
 * the head, or NULL: the family ops whose gradients are not written yet.
 */
static const char *tape_missing(const struct dp_model *m, const struct dp_mask *mask, int start_unit) {
    if (m->family.final_softcap > 0) return "final logit soft-capping";
    for (int unit = start_unit; unit < 2 * m->cfg.n_layers; unit++) {
        int l = unit / 2;
        const struct dp_layer *L = &m->layers[l];
        if (unit & 1) {
            if (!mask->ffn[l] || !L->has_ffn) continue;
            if (m->family.act != DP_FFN_SILU) return "tanh-GELU FFN";
            if (L->ffn_post_norm.data) return "FFN post-norm";
        } else {
            if (!mask->attn[l] || !L->has_attn) continue;
            if (m->family.attn_softcap > 0) return "attention soft-capping";
            if (L->q_norm.data || L->k_norm.data) return "q/k norms";
            if (L->attn_post_norm.data) return "attention post-norm";
            if (L->window) return "sliding-window attention";
            if (!L->shape.n_head_kv) return "linear attention";
        }
    }
    return NULL;
}

static float *dequant_vec(const struct dp_weight *w, int n) {
    float *v = dp_malloc((size_t)n * sizeof *v);
    if (v) dp_dequant_row(w->type, w->data, v, n);
    return v;
}

static int64_t mat_size(const struct dp_weight *w) { return w->data ? w->n_in * w->n_out : 0; }

dp_status dp_tape_new(const struct dp_model *m, const struct dp_mask *mask, const struct dp_recovery *r,
                      int start_unit, int n_max, struct dp_tape **out) {
    *out = NULL;
    const struct dp_config *c = &m->cfg;
    int L = c->n_layers, dim = c->n_embd;
    if (start_unit < 0 || start_unit >= 2 * L || n_max < 1)
        return dp_fail(DP_ERR_ARG, "tape: start unit %d or length %d out of range", start_unit, n_max);
    const char *missing = tape_missing(m, mask, start_unit);
    if (missing)
        return dp_fail(DP_ERR_UNSUPPORTED, "%s: trained recoveries need the gradient of %s (arch %s), which is not written yet",
                       m->path, missing, m->cfg.arch);
    struct dp_tape *t = dp_calloc(1, sizeof *t);
    if (!t) return DP_ERR_NOMEM;
    t->m = m;
    t->r = r;
    t->start = start_unit;
    t->n_max = n_max;
    t->n_units = 2 * L - start_unit;
    t->units = dp_calloc((size_t)t->n_units, sizeof *t->units);
    bool ok = t->units != NULL;
    size_t N = (size_t)n_max, qd = (size_t)m->max_head * c->head_dim, kvd = (size_t)m->max_head_kv * c->head_dim;
    size_t ff = (size_t)m->max_ff;
    int max_rank = 0;
    int64_t big = mat_size(&m->output), big_in = dim > m->max_ff ? dim : m->max_ff;
    if ((int64_t)qd > big_in) big_in = (int64_t)qd;
    for (int i = 0; ok && i < t->n_units; i++) {
        struct tape_unit *tu = &t->units[i];
        int unit = start_unit + i, l = unit / 2;
        const struct dp_layer *ly = &m->layers[l];
        bool attn = !(unit & 1);
        bool kept = attn ? mask->attn[l] && ly->has_attn : mask->ffn[l] && ly->has_ffn;
        tu->layer = l;
        tu->kind = U_IDENT;
        tu->rec = -1;
        for (int j = 0; r && j < r->n; j++)
            if (dp_recovery_slot(&r->units[j]) == unit) tu->rec = j;
        if (kept && tu->rec >= 0) {
            dp_tape_free(t);
            return dp_fail(DP_ERR_ARG, "tape: unit %s of the recovery is not removed", r->units[tu->rec].unit);
        }
        if (kept) tu->kind = attn ? U_ATTN : U_FFN;
        else if (tu->rec >= 0) tu->kind = U_REPL;
        if (tu->kind == U_IDENT) continue;
        ok = (tu->x = dp_malloc(N * dim * sizeof(float))) && (tu->xn = dp_malloc(N * dim * sizeof(float)));
        if (ok && tu->kind == U_ATTN) {
            size_t lq = (size_t)ly->shape.n_head * c->head_dim, lkv = (size_t)ly->shape.n_head_kv * c->head_dim;
            ok = (tu->norm = dequant_vec(&ly->attn_norm, dim)) && (tu->q = dp_malloc(N * lq * sizeof(float))) &&
                 (tu->k = dp_malloc(N * lkv * sizeof(float))) && (tu->v = dp_malloc(N * lkv * sizeof(float)));
            const struct dp_weight *ws[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo};
            for (int w = 0; w < 4; w++)
                if (mat_size(ws[w]) > big) big = mat_size(ws[w]);
        } else if (ok && tu->kind == U_FFN) {
            size_t lf = (size_t)ly->shape.n_ff;
            ok = (tu->norm = dequant_vec(&ly->ffn_norm, dim)) && (tu->a = dp_malloc(N * lf * sizeof(float))) &&
                 (tu->u = dp_malloc(N * lf * sizeof(float)));
            const struct dp_weight *ws[] = {&ly->w_gate, &ly->w_up, &ly->w_down};
            for (int w = 0; w < 3; w++)
                if (mat_size(ws[w]) > big) big = mat_size(ws[w]);
        } else if (ok) {
            int rank = r->units[tu->rec].rank;
            if (rank > max_rank) max_rank = rank;
            if (rank > 0) ok = (tu->az = dp_malloc(N * rank * sizeof(float))) != NULL;
        }
    }
    for (int j = 0; r && j < r->n; j++)
        if (dp_recovery_slot(&r->units[j]) < start_unit) {
            dp_tape_free(t);
            return dp_fail(DP_ERR_ARG, "tape: unit %s lies below the start unit", r->units[j].unit);
        }
    float **bufs[] = {&t->xf, &t->xnf, &t->cur, &t->delta, &t->att, &t->h, &t->g, &t->dxn, &t->tmp, &t->dq,
                      &t->datt, &t->dk, &t->dv, &t->dh, &t->da, &t->du, &t->daz, &t->wt, &t->wrow, &t->bias,
                      &t->scores};
    size_t sizes[] = {N * dim, N * dim, N * dim, N * dim, N * qd, N * ff, N * dim, N * dim, N * dim, N * qd,
                      N * qd, N * kvd, N * kvd, N * ff, N * ff, N * ff, N * (size_t)(max_rank + 1), (size_t)big,
                      (size_t)big_in, (size_t)big_in + qd + kvd, (size_t)MAX_THREADS * 2 * N};
    for (size_t i = 0; ok && i < sizeof bufs / sizeof *bufs; i++) ok = (*bufs[i] = dp_malloc(sizes[i] * sizeof(float)));
    if (ok) ok = (t->out_norm = dequant_vec(&m->output_norm, dim)) != NULL;
    if (ok) ok = (t->k_cache = dp_malloc(N * kvd * sizeof(float))) && (t->v_cache = dp_malloc(N * kvd * sizeof(float)));
    if (!ok) {
        dp_tape_free(t);
        return dp_fail(DP_ERR_NOMEM, "out of memory for a training tape of %d tokens", n_max);
    }
    *out = t;
    return DP_OK;
}

void dp_tape_free(struct dp_tape *t) {
    if (!t) return;
    for (int i = 0; t->units && i < t->n_units; i++) {
        struct tape_unit *u = &t->units[i];
        float *p[] = {u->norm, u->x, u->xn, u->q, u->k, u->v, u->a, u->u, u->az};
        for (size_t j = 0; j < sizeof p / sizeof *p; j++) free(p[j]);
    }
    free(t->units);
    free(t->k_cache);
    free(t->v_cache);
    float *p[] = {t->out_norm, t->xf, t->xnf, t->cur, t->delta, t->att, t->h, t->g, t->dxn, t->tmp, t->dq, t->datt,
                  t->dk, t->dv, t->dh, t->da, t->du, t->daz, t->wt, t->wrow, t->bias, t->scores};
    for (size_t j = 0; j < sizeof p / sizeof *p; j++) free(p[j]);
    free(t);
}

/* ---- pieces ---- */

/* dx += d(rmsnorm(x) * w)/dx^T dy. */
static void rmsnorm_bwd(float *dx, const float *x, const float *w, const float *dy, int n, int dim, float eps) {
    for (int t = 0; t < n; t++) {
        const float *xr = x + (size_t)t * dim, *gr = dy + (size_t)t * dim;
        float *o = dx + (size_t)t * dim;
        double ss = 0, dot = 0;
        for (int i = 0; i < dim; i++) {
            ss += (double)xr[i] * xr[i];
            dot += (double)gr[i] * w[i] * xr[i];
        }
        double s = 1.0 / sqrt(ss / dim + eps), k = s * s * s * dot / dim;
        for (int i = 0; i < dim; i++) o[i] += (float)(s * w[i] * gr[i] - xr[i] * k);
    }
}

/* dX (n, n_in) = dY (n, n_out) W, W (n_out, n_in) in its file type, through a transposed f32 copy. */
static void matmul_t(struct dp_tape *t, struct dp_pool *pool, const struct dp_weight *w, const float *dY, int n,
                     float *dX) {
    int64_t n_in = w->n_in, n_out = w->n_out;
    size_t rb = dp_type_row_bytes(w->type, n_in);
    for (int64_t r = 0; r < n_out; r++) {
        dp_dequant_row(w->type, (const uint8_t *)w->data + (size_t)r * rb, t->wrow, n_in);
        for (int64_t k = 0; k < n_in; k++) t->wt[k * n_out + r] = t->wrow[k];
    }
    dp_matmul(pool, DP_ACT_EXACT, t->wt, DP_TYPE_F32, n_out, n_in, dY, n, dX);
}

struct attn_job {
    struct dp_tape *t;
    const struct tape_unit *u;
    int n;
};

/* Probabilities of query t of head h over keys 0..t into p (model.c's arithmetic); returns nothing. */
static void attn_probs(const struct dp_tape *tp, const struct tape_unit *u, int t, int h, float *p) {
    const struct dp_config *c = &tp->m->cfg;
    struct dp_layer_shape sh = tp->m->layers[u->layer].shape;
    int hd = c->head_dim, kvh = h / (sh.n_head / sh.n_head_kv);
    size_t kv_stride = (size_t)sh.n_head_kv * hd;
    float scale = tp->m->family.attn_scale, mx = -INFINITY;
    const float *q = u->q + ((size_t)t * sh.n_head + h) * hd;
    for (int j = 0; j <= t; j++) {
        const float *k = u->k + j * kv_stride + (size_t)kvh * hd;
        float d = 0;
        for (int i = 0; i < hd; i++) d += q[i] * k[i];
        p[j] = d * scale;
        if (p[j] > mx) mx = p[j];
    }
    double sum = 0;
    for (int j = 0; j <= t; j++) {
        p[j] = expf(p[j] - mx);
        sum += p[j];
    }
    float inv = (float)(1.0 / sum);
    for (int j = 0; j <= t; j++) p[j] *= inv;
}

/* Gradients of q, k, v from datt, one KV head (with its query heads) per share. */
static void attn_bwd_worker(void *ctx, int ith, int nth) {
    const struct attn_job *j = ctx;
    struct dp_tape *tp = j->t;
    const struct tape_unit *u = j->u;
    struct dp_layer_shape sh = tp->m->layers[u->layer].shape;
    int hd = tp->m->cfg.head_dim, group = sh.n_head / sh.n_head_kv, n = j->n;
    size_t kv_stride = (size_t)sh.n_head_kv * hd, q_stride = (size_t)sh.n_head * hd;
    float scale = tp->m->family.attn_scale;
    DP_ASSERT(ith < MAX_THREADS);
    float *p = tp->scores + (size_t)ith * 2 * tp->n_max, *dp = p + tp->n_max;
    int64_t lo, hi;
    dp_pool_split(sh.n_head_kv, ith, nth, &lo, &hi);
    for (int kvh = (int)lo; kvh < hi; kvh++) {
        for (int t = 0; t < n; t++) {
            memset(tp->dk + t * kv_stride + (size_t)kvh * hd, 0, (size_t)hd * sizeof(float));
            memset(tp->dv + t * kv_stride + (size_t)kvh * hd, 0, (size_t)hd * sizeof(float));
        }
        for (int h = kvh * group; h < (kvh + 1) * group; h++) {
            for (int t = 0; t < n; t++) {
                attn_probs(tp, u, t, h, p);
                const float *dout = tp->datt + t * q_stride + (size_t)h * hd;
                const float *q = u->q + t * q_stride + (size_t)h * hd;
                float *dq = tp->dq + t * q_stride + (size_t)h * hd;
                double sum = 0;
                for (int s = 0; s <= t; s++) {
                    const float *v = u->v + s * kv_stride + (size_t)kvh * hd;
                    float d = 0;
                    for (int i = 0; i < hd; i++) d += dout[i] * v[i];
                    dp[s] = d;
                    sum += (double)p[s] * d;
                }
                for (int i = 0; i < hd; i++) dq[i] = 0;
                for (int s = 0; s <= t; s++) {
                    float ds = p[s] * (dp[s] - (float)sum) * scale;
                    const float *k = u->k + s * kv_stride + (size_t)kvh * hd;
                    float *dk = tp->dk + s * kv_stride + (size_t)kvh * hd;
                    float *dv = tp->dv + s * kv_stride + (size_t)kvh * hd;
                    for (int i = 0; i < hd; i++) {
                        dq[i] += ds * k[i];
                        dk[i] += ds * q[i];
                        dv[i] += p[s] * dout[i];
                    }
                }
            }
        }
    }
}

/* ---- forward ---- */

/* The attention sublayer of layer.c on the whole sequence (positions 0..n-1), keeping xn, q, k, v. */
static void attn_fwd(struct dp_tape *t, struct dp_pool *pool, struct tape_unit *u, int n) {
    struct dp_attn_io io = {u->xn, u->q, u->k, u->v, t->k_cache, t->v_cache, t->n_max, 0, t->att, t->scores,
                            2 * t->n_max, MAX_THREADS, t->delta, t->bias};
    dp_layer_attention(t->m, u->layer, pool, t->m->act, u->x, n, 0, 0, &io);
}

/* The FFN sublayer of layer.c, keeping xn, the gate pre-activation a and up u. */
static void ffn_fwd(struct dp_tape *t, struct dp_pool *pool, struct tape_unit *u, int n) {
    dp_layer_ffn(t->m, u->layer, pool, t->m->act, u->x, n, u->xn, u->a, u->u, t->h, t->delta, t->bias);
}

void dp_tape_forward(struct dp_tape *t, struct dp_pool *pool, const float *x0, int n, float *logits) {
    const struct dp_model *m = t->m;
    int dim = m->cfg.n_embd;
    DP_ASSERT(n >= 1 && n <= t->n_max);
    t->n = n;
    size_t len = (size_t)n * dim;
    memcpy(t->cur, x0, len * sizeof(float));
    for (int i = 0; i < t->n_units; i++) {
        struct tape_unit *u = &t->units[i];
        if (u->kind == U_IDENT) continue;
        memcpy(u->x, t->cur, len * sizeof(float));
        if (u->kind == U_ATTN) attn_fwd(t, pool, u, n);
        else if (u->kind == U_FFN) ffn_fwd(t, pool, u, n);
        else dp_recovery_unit_delta(t->r, &t->r->units[u->rec], u->x, n, t->delta, u->xn, u->az);
        for (size_t k = 0; k < len; k++) t->cur[k] += t->delta[k];
    }
    memcpy(t->xf, t->cur, len * sizeof(float));
    dp_layer_head(m, pool, m->act, t->xf, n, t->xnf, logits, t->bias);
}

/* ---- backward ---- */

static void attn_bwd(struct dp_tape *t, struct dp_pool *pool, const struct tape_unit *u, int n) {
    const struct dp_config *c = &t->m->cfg;
    const struct dp_layer *L = &t->m->layers[u->layer];
    int dim = c->n_embd;
    size_t len = (size_t)n * dim;
    matmul_t(t, pool, &L->wo, t->g, n, t->datt);              /* datt (n, qd) */
    struct attn_job job = {t, u, n};
    dp_pool_run(pool, attn_bwd_worker, &job);                 /* dq (n, qd), dk, dv (n, kvd) */
    dp_layer_rope(t->dq, n, L->shape.n_head, t->m, u->layer, 0, -1.0f);
    dp_layer_rope(t->dk, n, L->shape.n_head_kv, t->m, u->layer, 0, -1.0f);
    matmul_t(t, pool, &L->wq, t->dq, n, t->dxn);              /* dxn (n, dim) */
    matmul_t(t, pool, &L->wk, t->dk, n, t->tmp);
    for (size_t k = 0; k < len; k++) t->dxn[k] += t->tmp[k];
    matmul_t(t, pool, &L->wv, t->dv, n, t->tmp);
    for (size_t k = 0; k < len; k++) t->dxn[k] += t->tmp[k];
    rmsnorm_bwd(t->g, u->x, u->norm, t->dxn, n, dim, c->norm_eps);
}

static void ffn_bwd(struct dp_tape *t, struct dp_pool *pool, const struct tape_unit *u, int n) {
    const struct dp_config *c = &t->m->cfg;
    const struct dp_layer *L = &t->m->layers[u->layer];
    int dim = c->n_embd, ff = L->shape.n_ff;
    size_t len = (size_t)n * dim;
    matmul_t(t, pool, &L->w_down, t->g, n, t->dh);             /* dh (n, ff) */
    for (size_t i = 0; i < (size_t)n * ff; i++) {
        float a = u->a[i], sg = 1.0f / (1.0f + expf(-a));
        t->du[i] = t->dh[i] * a * sg;
        t->da[i] = t->dh[i] * u->u[i] * sg * (1.0f + a * (1.0f - sg));
    }
    matmul_t(t, pool, &L->w_gate, t->da, n, t->dxn);           /* dxn (n, dim) */
    matmul_t(t, pool, &L->w_up, t->du, n, t->tmp);
    for (size_t k = 0; k < len; k++) t->dxn[k] += t->tmp[k];
    rmsnorm_bwd(t->g, u->x, u->norm, t->dxn, n, dim, c->norm_eps);
}

static void repl_bwd(struct dp_tape *t, const struct tape_unit *u, int n, struct dp_unit_recovery *gu) {
    const struct dp_unit_recovery *ru = &t->r->units[u->rec];
    int dim = t->m->cfg.n_embd, R = ru->rank;
    for (int j = 0; j < dim; j++) {
        double s = 0;
        for (int k = 0; k < n; k++) s += t->g[(size_t)k * dim + j];
        gu->c[j] += (float)s;
    }
    if (R == 0) return;
    for (int k = 0; k < n; k++) {                              /* daz (n, R) = g B */
        const float *gr = t->g + (size_t)k * dim;
        for (int r = 0; r < R; r++) {
            double s = 0;
            for (int j = 0; j < dim; j++) s += (double)gr[j] * ru->B[(size_t)j * R + r];
            t->daz[(size_t)k * R + r] = (float)s;
        }
    }
    for (int j = 0; j < dim; j++)                              /* dB (dim, R) += g^T az */
        for (int r = 0; r < R; r++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += (double)t->g[(size_t)k * dim + j] * u->az[(size_t)k * R + r];
            gu->B[(size_t)j * R + r] += (float)s;
        }
    for (int r = 0; r < R; r++)                                /* dA (R, dim) += daz^T z */
        for (int i = 0; i < dim; i++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += (double)t->daz[(size_t)k * R + r] * u->xn[(size_t)k * dim + i];
            gu->A[(size_t)r * dim + i] += (float)s;
        }
    for (int k = 0; k < n; k++)                                /* dz (n, dim) = daz A */
        for (int i = 0; i < dim; i++) {
            double s = 0;
            for (int r = 0; r < R; r++) s += (double)t->daz[(size_t)k * R + r] * ru->A[(size_t)r * dim + i];
            t->dxn[(size_t)k * dim + i] = (float)s;
        }
    rmsnorm_bwd(t->g, u->x, ru->norm, t->dxn, n, dim, t->r->norm_eps);
}

void dp_tape_backward(struct dp_tape *t, struct dp_pool *pool, const float *dlogits, struct dp_recovery *g) {
    const struct dp_model *m = t->m;
    int dim = m->cfg.n_embd, n = t->n;
    DP_ASSERT(g->n == t->r->n);
    matmul_t(t, pool, &m->output, dlogits, n, t->dxn);         /* dxn (n, dim) */
    memset(t->g, 0, (size_t)n * dim * sizeof(float));
    rmsnorm_bwd(t->g, t->xf, t->out_norm, t->dxn, n, dim, m->cfg.norm_eps);
    for (int i = t->n_units - 1; i >= 0; i--) {
        const struct tape_unit *u = &t->units[i];
        if (u->kind == U_ATTN) attn_bwd(t, pool, u, n);
        else if (u->kind == U_FFN) ffn_bwd(t, pool, u, n);
        else if (u->kind == U_REPL) {
            DP_ASSERT(g->units[u->rec].rank == t->r->units[u->rec].rank);
            repl_bwd(t, u, n, &g->units[u->rec]);
        }
    }
}
