/*
 * export: writing a pruned model as GGUF (see export.h for the encodings).
 *
 * The work is in two steps. First a plan: the source blocks are walked in
 * order and each becomes zero, one or two output blocks, every output block
 * described by where its tensors come from (its source block), what fills
 * its attention slot (the original, nothing, or a zero linear attention)
 * and its FFN slot (the original, a zero placeholder, or a low-rank map),
 * and a constant to add into its ffn_down.bias. Constants of removed units
 * accumulate into the last FFN already planned, or into the embedding when
 * there is none: since removed units are identities, a constant added
 * anywhere between two surviving sublayers lands in the same residual
 * stream. Second the writing: metadata pairs are copied (keys of the source
 * arch renamed when the arch changes, per-layer arrays filtered through the
 * plan's source blocks), untouched tensors referenced in the source mapping,
 * new tensors built in buffers that live until the writer is done.
 */
#include "export.h"

#include "quantize.h"
#include "sha256.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum attn_slot { ATTN_ORIG, ATTN_NONE, ATTN_ZERO_LINEAR };
enum ffn_slot { FFN_ORIG, FFN_ZERO, FFN_LOWRANK };

#define ZERO_FFN_WIDTH 32   /* EXPORT.md: never 0; a multiple of 32 keeps Q8_0/Q4_0 possible */

struct out_block {
    int src;                            /* source block of tensors and per-layer metadata */
    enum attn_slot attn;
    enum ffn_slot ffn;
    const struct dp_unit_recovery *lr;  /* FFN_LOWRANK: the map */
    const char *norm;                   /* FFN_LOWRANK: "attn_norm" or "ffn_norm" of block src */
    float *bias;                        /* (dim) constant for ffn_down.bias, or NULL */
    const struct dp_unit_recovery *fold_attn, *fold_ffn;  /* linear maps T folded into attn_output / ffn_down */
    char what[64];                      /* provenance: "b3", "b3 -attn", "a3 lowrank:8" */
};

struct plan {
    const struct dp_model *m;
    int dim, n;
    struct out_block *b;                /* n output blocks (capacity 2 * n_layers) */
    float *embd_bias;                   /* (dim) constant for every token_embd row, or NULL */
    const struct dp_unit_recovery *embd_fold;  /* linear map folded into every token_embd row, or NULL */
    bool deci;                          /* output needs arch deci */
};

static void plan_free(struct plan *p) {
    for (int i = 0; p->b && i < p->n; i++) free(p->b[i].bias);
    free(p->b);
    free(p->embd_bias);
}

/* Add c (dim) into *acc, allocating it zero-filled first. */
static dp_status accumulate(float **acc, const float *c, int dim) {
    if (!*acc && !(*acc = dp_calloc((size_t)dim, sizeof **acc))) return DP_ERR_NOMEM;
    for (int i = 0; i < dim; i++) (*acc)[i] += c[i];
    return DP_OK;
}

/* A constant added to the residual stream after everything planned so far. */
static dp_status add_constant(struct plan *p, const float *c) {
    return accumulate(p->n ? &p->b[p->n - 1].bias : &p->embd_bias, c, p->dim);
}

static struct out_block *emit(struct plan *p, int src, enum attn_slot a, enum ffn_slot f, const char *what) {
    struct out_block *b = &p->b[p->n++];
    memset(b, 0, sizeof *b);
    b->src = src;
    b->attn = a;
    b->ffn = f;
    snprintf(b->what, sizeof b->what, "%s", what);
    if (a != ATTN_ORIG || f != FFN_ORIG) p->deci = true;
    return b;
}

/* The replacement of unit kind/layer in rec, or NULL. */
static const struct dp_unit_recovery *find_rec(const struct dp_recovery *rec, char kind, int layer) {
    for (int i = 0; rec && i < rec->n; i++)
        if (rec->units[i].kind == kind && rec->units[i].layer == layer) return &rec->units[i];
    return NULL;
}

/*
 * A removed unit whose FFN slot is free to use: a constant goes into the
 * stream, a low-rank map becomes an attention-free block of its own.
 */
static dp_status replace_unit(struct plan *p, int k, const struct dp_unit_recovery *u, const char *norm) {
    if (!u) return DP_OK;
    if (u->rank == 0) return add_constant(p, u->c);
    char what[64];
    snprintf(what, sizeof what, "%s lowrank:%d", u->unit, u->rank);
    struct out_block *b = emit(p, k, ATTN_NONE, FFN_LOWRANK, what);
    b->lr = u;
    b->norm = norm;
    return accumulate(&b->bias, u->c, p->dim);
}

static dp_status check_rec(const struct dp_model *m, const struct dp_recovery *rec) {
    for (int i = 0; rec && i < rec->n; i++) {
        const struct dp_unit_recovery *u = &rec->units[i];
        if (rec->dim != m->cfg.n_embd || u->layer < 0 || u->layer >= m->cfg.n_layers || !u->c || u->rank < 0 ||
            (u->rank && (!u->A || !u->B)) || (u->kind != 'a' && u->kind != 'f' && u->kind != 'b'))
            return dp_fail(DP_ERR_ARG, "recovery '%s': unit %s does not fit %s", rec->kind, u->unit, m->path);
    }
    return DP_OK;
}

/*
 * Linear kinds: each map T = I + B A goes into the output matrix of its host,
 * which must survive as an original sublayer of some output block.
 */
static dp_status plan_folds(struct plan *p, const struct dp_mask *mask, const struct dp_recovery *rec) {
    for (int i = 0; i < rec->n; i++) {
        const struct dp_unit_recovery *u = &rec->units[i];
        int h = u->host, l = h / 2;
        bool removed = (u->kind == 'f' || !mask->attn[u->layer]) && (u->kind == 'a' || !mask->ffn[u->layer]);
        if ((h < 0 && h != DP_RECOVERY_HOST_EMBD) || u->rank == 0 || !removed) continue;
        if (h == DP_RECOVERY_HOST_EMBD) {
            if (p->embd_fold)
                return dp_fail(DP_ERR_ARG, "recovery '%s': units %s and %s both fold into token_embd", rec->kind,
                               p->embd_fold->unit, u->unit);
            p->embd_fold = u;
            continue;
        }
        struct out_block *b = NULL;
        for (int k = 0; k < p->n && !b; k++)
            if (p->b[k].src == l && (h & 1 ? p->b[k].ffn == FFN_ORIG : p->b[k].attn == ATTN_ORIG)) b = &p->b[k];
        if (!b)
            return dp_fail(DP_ERR_ARG, "recovery '%s': unit %s folds into %c%d, which the pruning removes", rec->kind,
                           u->unit, h & 1 ? 'f' : 'a', l);
        const struct dp_unit_recovery **slot = h & 1 ? &b->fold_ffn : &b->fold_attn;
        if (*slot)
            return dp_fail(DP_ERR_ARG, "recovery '%s': units %s and %s fold into the same sublayer", rec->kind,
                           (*slot)->unit, u->unit);
        *slot = u;
        size_t len = strlen(b->what);
        snprintf(b->what + len, sizeof b->what - len, " %c%d*%s", h & 1 ? 'f' : 'a', l, u->unit);
    }
    return DP_OK;
}

static dp_status make_plan(const struct dp_model *m, const struct dp_mask *mask, const struct dp_recovery *rec_in,
                           struct plan *p) {
    const struct dp_config *c = &m->cfg;
    /* linear kinds add no constants and no maps of their own: they are folded afterwards */
    const struct dp_recovery *rec = dp_recovery_is_linear(rec_in) ? NULL : rec_in;
    memset(p, 0, sizeof *p);
    p->m = m;
    p->dim = c->n_embd;
    p->deci = !strcmp(c->arch, "deci");
    p->b = dp_calloc(2 * (size_t)c->n_layers, sizeof *p->b);
    if (!p->b) return DP_ERR_NOMEM;
    dp_status st = check_rec(m, rec_in);
    for (int k = 0; k < c->n_layers && !st; k++) {
        const struct dp_layer *L = &m->layers[k];
        bool ka = mask->attn[k] && L->has_attn, kf = mask->ffn[k] && L->has_ffn;
        /* replacements of units that exist in the file and are removed */
        const struct dp_unit_recovery *ra = L->has_attn && !ka ? find_rec(rec, 'a', k) : NULL;
        const struct dp_unit_recovery *rf = L->has_ffn && !kf ? find_rec(rec, 'f', k) : NULL;
        const struct dp_unit_recovery *rb = !ka && !kf ? find_rec(rec, 'b', k) : NULL;
        char name[64];
        if (!ka && !kf) {
            if (rb) st = replace_unit(p, k, rb, "attn_norm");
            else if (!(st = replace_unit(p, k, ra, "attn_norm"))) st = replace_unit(p, k, rf, "ffn_norm");
        } else if (!ka) {
            st = replace_unit(p, k, ra, "attn_norm");
            snprintf(name, sizeof name, "b%d -attn", k);
            emit(p, k, ATTN_NONE, FFN_ORIG, name);
        } else if (!kf) {
            bool lr = rf && rf->rank > 0;
            snprintf(name, sizeof name, lr ? "b%d f%d lowrank:%d" : "b%d -ffn", k, k, lr ? rf->rank : 0);
            struct out_block *b = emit(p, k, ATTN_ORIG, lr ? FFN_LOWRANK : FFN_ZERO, name);
            if (lr) {
                b->lr = rf;
                b->norm = "ffn_norm";
            }
            if (rf) st = accumulate(&b->bias, rf->c, p->dim);
        } else {
            snprintf(name, sizeof name, "b%d", k);
            emit(p, k, ATTN_ORIG, FFN_ORIG, name);
        }
    }
    if (st) return st;
    if (p->n == 0) return dp_fail(DP_ERR_ARG, "%s: the pruning removes every block; nothing to export", m->path);
    if (rec != rec_in && (st = plan_folds(p, mask, rec_in))) return st;
    if (p->n > DP_MAX_LAYERS)
        return dp_fail(DP_ERR_UNSUPPORTED, "%s: the export needs %d blocks, more than %d", m->path, p->n, DP_MAX_LAYERS);
    if (p->b[0].attn == ATTN_NONE) {
        /* llama.cpp cannot start with an attention-free block: zero linear attention instead */
        if ((int64_t)c->n_head * c->head_dim != c->n_embd)
            return dp_fail(DP_ERR_UNSUPPORTED, "%s: block 0 without attention needs head_count * head size == %d",
                           m->path, c->n_embd);
        p->b[0].attn = ATTN_ZERO_LINEAR;
    }
    return DP_OK;
}

/* ---- writing ---- */

struct ctx {
    const struct dp_model *m;
    const struct dp_gguf *g;
    const struct plan *p;
    struct dp_gguf_writer *w;
    uint32_t out_type;                  /* opts->out_type: a type or DP_EXPORT_SOURCE_TYPES */
    uint32_t vec_type;                  /* new vectors: F32 */
    void **bufs;                        /* new tensor data, freed after writing */
    int n_bufs, cap_bufs;
    bool lossless;                      /* every new tensor so far in F32 */
    int n_fallback;                     /* matrices written in a fallback type */
    bool permute_qk;                    /* NEOX source into deci: Q/K rows into (2i, 2i+1) pairs */
};

static void *keep(struct ctx *x, void *buf) {
    if (!buf) return NULL;
    if (x->n_bufs == x->cap_bufs) {
        int cap = x->cap_bufs ? 2 * x->cap_bufs : 64;
        void **b = realloc(x->bufs, (size_t)cap * sizeof *b);
        if (!b) {
            free(buf);
            dp_fail(DP_ERR_NOMEM, "out of memory");
            return NULL;
        }
        x->bufs = b;
        x->cap_bufs = cap;
    }
    x->bufs[x->n_bufs++] = buf;
    return buf;
}

/*
 * Add a new tensor of n_out rows of n_in f32 values (x, borrowed) in `type`:
 * a vector when n_out is 1.
 */
static dp_status add_new(struct ctx *x, const char *name, uint32_t type, const float *v, int64_t n_in, int64_t n_out) {
    const struct dp_type_traits *tt = dp_type_traits(type);
    if (n_in % tt->block_size)
        return dp_fail(DP_ERR_UNSUPPORTED, "tensor '%s': rows of %lld cannot be stored as %s (blocks of %d)", name,
                       (long long)n_in, tt->name, tt->block_size);
    size_t row = dp_type_row_bytes(type, n_in), nbytes = row * (size_t)n_out;
    uint8_t *q = keep(x, dp_malloc(nbytes));
    float *back = type == DP_TYPE_F32 ? NULL : keep(x, dp_malloc((size_t)n_in * sizeof *back));
    if (!q || (type != DP_TYPE_F32 && !back)) return DP_ERR_NOMEM;
    for (int64_t r = 0; r < n_out; r++) {
        dp_status st = dp_quantize_row(type, v + r * n_in, q + (size_t)r * row, n_in);
        if (st) return st;
        /* lossless while every value reads back as computed (zero placeholders do in any type) */
        if (back && x->lossless) {
            dp_dequant_row(type, q + (size_t)r * row, back, n_in);
            for (int64_t k = 0; k < n_in && x->lossless; k++) x->lossless = back[k] == v[r * n_in + k];
        }
    }
    int64_t ne[2] = {n_in, n_out};
    return dp_gguf_add_tensor(x->w, name, type, n_out == 1 ? 1 : 2, ne, q, nbytes);
}

/* A zero-filled f32 buffer of n values kept until the end, or NULL. */
static float *zeros(struct ctx *x, size_t n) { return keep(x, dp_calloc(n, sizeof(float))); }

/* Copy a source tensor byte for byte under a new name. */
static dp_status copy_tensor(struct ctx *x, const struct dp_gguf_tensor *t, const char *name) {
    return dp_gguf_add_tensor(x->w, name, t->type, (int)t->n_dims, t->ne, t->data, t->nbytes);
}

/*
 * The row of a NEOX-paired Q or K projection that lands in row r once the
 * pairs (i, i + n_rot/2) of each head become deci's pairs (2i, 2i+1): row 2i
 * takes row i, row 2i+1 takes row i + n_rot/2, rows past n_rot stay. Both
 * rotations turn their pair by the same angle theta_i, and q.k is a sum over
 * rows that one permutation applied to q and k leaves unchanged, so the
 * attention is the same function (up to float summation order).
 */
static int64_t neox_source_row(int64_t r, int hd, int n_rot) {
    int64_t h = r / hd, j = r % hd;
    if (j >= n_rot) return r;
    return h * hd + (j % 2 ? j / 2 + n_rot / 2 : j / 2);
}

/* Copy Q/K weight or bias t with its rows permuted by neox_source_row (rows: ne[1], or elements of a vector). */
static dp_status copy_permuted(struct ctx *x, const struct dp_gguf_tensor *t, const char *name) {
    const struct dp_config *c = &x->m->cfg;
    bool vec = t->n_dims == 1;
    int64_t n_rows = vec ? t->ne[0] : t->ne[1];
    if (vec && dp_type_traits(t->type)->block_size != 1)
        return dp_fail(DP_ERR_UNSUPPORTED, "%s: tensor '%s' in %s cannot be permuted element by element", x->m->path,
                       t->name, dp_type_name(t->type));
    if (n_rows % c->head_dim)
        return dp_fail(DP_ERR_FORMAT, "%s: tensor '%s' has %lld rows, not whole heads of %d", x->m->path, t->name,
                       (long long)n_rows, c->head_dim);
    size_t row = t->nbytes / (size_t)n_rows;
    uint8_t *q = keep(x, dp_malloc(t->nbytes));
    if (!q) return DP_ERR_NOMEM;
    for (int64_t r = 0; r < n_rows; r++)
        memcpy(q + (size_t)r * row, t->data + (size_t)neox_source_row(r, c->head_dim, c->n_rot) * row, row);
    return dp_gguf_add_tensor(x->w, name, t->type, (int)t->n_dims, t->ne, q, t->nbytes);
}

static bool is_qk(const char *rest) {
    return !strcmp(rest, "attn_q.weight") || !strcmp(rest, "attn_k.weight") || !strcmp(rest, "attn_q.bias") ||
           !strcmp(rest, "attn_k.bias");
}

/* Source tensor "blk.<src>.<sfx>" or NULL. */
static const struct dp_gguf_tensor *src_tensor(struct ctx *x, int src, const char *sfx) {
    char name[DP_GGUF_MAX_NAME + 1];
    snprintf(name, sizeof name, "blk.%d.%s", src, sfx);
    return dp_gguf_find_tensor(x->g, name);
}

/* The block number and suffix of a tensor name "blk.N.rest", or -1. */
static int block_of(const char *name, const char **rest) {
    if (strncmp(name, "blk.", 4)) return -1;
    char *end;
    long n = strtol(name + 4, &end, 10);
    if (end == name + 4 || *end != '.' || n < 0 || n >= DP_MAX_LAYERS) return -1;
    *rest = end + 1;
    return (int)n;
}

/* The type of source tensor blk.<src>.<sfx>, else of the first block that has one, else F32. */
static uint32_t source_type(struct ctx *x, int src, const char *sfx) {
    const struct dp_gguf_tensor *t = src_tensor(x, src, sfx);
    for (int k = 0; !t && k < x->m->cfg.n_layers; k++) t = src_tensor(x, k, sfx);
    return t ? t->type : DP_TYPE_F32;
}

/*
 * The type asked for a new or modified matrix whose counterpart in the
 * source has type `orig`: out_type, or orig itself for
 * DP_EXPORT_SOURCE_TYPES; Q8_0 for a type the quantizer cannot write.
 */
static uint32_t wanted_type(const struct ctx *x, uint32_t orig) {
    uint32_t t = x->out_type == DP_EXPORT_SOURCE_TYPES ? orig : x->out_type;
    return dp_quantize_supported(t) ? t : DP_TYPE_Q8_0;
}

/* A new matrix of n_out rows of n_in in `want`, or in its fallback when a row is not whole blocks of it. */
static dp_status add_matrix(struct ctx *x, const char *name, uint32_t want, const float *v, int64_t n_in,
                            int64_t n_out) {
    uint32_t t = dp_quantize_fallback(want, n_in);
    x->n_fallback += t != want;
    return add_new(x, name, t, v, n_in, n_out);
}

/* The FFN matrix types of output block b (gate, up, down), before any fallback. */
static void ffn_types(struct ctx *x, const struct out_block *b, uint32_t t[3]) {
    t[0] = wanted_type(x, source_type(x, b->src, "ffn_gate.weight"));
    t[1] = wanted_type(x, source_type(x, b->src, "ffn_up.weight"));
    t[2] = wanted_type(x, source_type(x, b->src, "ffn_down.weight"));
}

/* Width of the FFN slot of a low-rank map: its rank, rounded up to 32 when any of its matrices is quantized. */
static int64_t lowrank_width(struct ctx *x, const struct out_block *b) {
    uint32_t t[3];
    ffn_types(x, b, t);
    bool quant = false;
    for (int k = 0; k < 3; k++) quant |= dp_type_traits(t[k])->block_size > 1;
    return quant ? (b->lr->rank + 31) / 32 * 32 : b->lr->rank;
}

/* ffn_down.bias of an output block: the source's (if kept, in its type) plus the constant. */
static dp_status write_down_bias(struct ctx *x, int i, const struct out_block *b, bool from_src) {
    int dim = x->p->dim;
    const struct dp_weight *bd = &x->m->layers[b->src].b_down;
    if (!b->bias) return DP_OK;
    float *v = zeros(x, (size_t)dim);
    if (!v) return DP_ERR_NOMEM;
    if (from_src && bd->data) dp_dequant_row(bd->type, bd->data, v, dim);
    for (int k = 0; k < dim; k++) v[k] += b->bias[k];
    uint32_t type = x->vec_type;
    if (from_src && bd->data && dp_quantize_supported(bd->type)) type = dp_quantize_fallback(bd->type, dim);
    char name[64];
    snprintf(name, sizeof name, "blk.%d.ffn_down.bias", i);
    return add_new(x, name, type, v, dim, 1);
}

/* The low-rank map in output block i's FFN slot (see export.h). */
static dp_status write_lowrank(struct ctx *x, int i, const struct out_block *b) {
    const struct dp_unit_recovery *u = b->lr;
    int64_t dim = x->p->dim, r = u->rank;
    int64_t rp = lowrank_width(x, b);   /* ffn_down rows are rp wide */
    uint32_t t[3];
    ffn_types(x, b, t);
    char name[64], sfx[32];
    snprintf(sfx, sizeof sfx, "%s.weight", b->norm);
    const struct dp_gguf_tensor *norm = src_tensor(x, b->src, sfx);
    if (!norm) return dp_fail(DP_ERR_FORMAT, "%s: blk.%d.%s is missing", x->m->path, b->src, sfx);
    float *gate = zeros(x, (size_t)(rp * dim)), *gbias = zeros(x, (size_t)rp), *up = zeros(x, (size_t)(rp * dim)),
          *down = zeros(x, (size_t)(dim * rp));
    if (!gate || !gbias || !up || !down) return DP_ERR_NOMEM;
    /* the forward pass's silu(1), so that down * silu(1) gives back B to float rounding */
    float silu1 = 1.0f / (1.0f + expf(-1.0f));
    for (int64_t k = 0; k < r; k++) gbias[k] = 1.0f;
    memcpy(up, u->A, (size_t)(r * dim) * sizeof(float));            /* (r, dim): row k = A_k */
    for (int64_t o = 0; o < dim; o++)
        for (int64_t k = 0; k < r; k++) down[o * rp + k] = u->B[o * r + k] / silu1; /* (dim, rp) */
    dp_status st;
    snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", i);
    if ((st = copy_tensor(x, norm, name))) return st;
    snprintf(name, sizeof name, "blk.%d.ffn_gate.weight", i);
    if ((st = add_matrix(x, name, t[0], gate, dim, rp))) return st;
    snprintf(name, sizeof name, "blk.%d.ffn_gate.bias", i);
    if ((st = add_new(x, name, x->vec_type, gbias, rp, 1))) return st;
    snprintf(name, sizeof name, "blk.%d.ffn_up.weight", i);
    if ((st = add_matrix(x, name, t[1], up, dim, rp))) return st;
    snprintf(name, sizeof name, "blk.%d.ffn_down.weight", i);
    if ((st = add_matrix(x, name, t[2], down, rp, dim))) return st;
    return write_down_bias(x, i, b, false);
}

/* The zero FFN placeholder of width 32 in output block i. */
static dp_status write_zero_ffn(struct ctx *x, int i, const struct out_block *b) {
    int64_t dim = x->p->dim, w = ZERO_FFN_WIDTH;
    uint32_t t[3];
    ffn_types(x, b, t);
    char name[64];
    float *z = zeros(x, (size_t)(w * dim)), *ones = zeros(x, (size_t)dim);
    if (!z || !ones) return DP_ERR_NOMEM;
    for (int64_t k = 0; k < dim; k++) ones[k] = 1.0f;
    dp_status st;
    snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", i);
    if ((st = add_new(x, name, x->vec_type, ones, dim, 1))) return st;
    snprintf(name, sizeof name, "blk.%d.ffn_gate.weight", i);
    if ((st = add_matrix(x, name, t[0], z, dim, w))) return st;
    snprintf(name, sizeof name, "blk.%d.ffn_up.weight", i);
    if ((st = add_matrix(x, name, t[1], z, dim, w))) return st;
    snprintf(name, sizeof name, "blk.%d.ffn_down.weight", i);
    if ((st = add_matrix(x, name, t[2], z, w, dim))) return st;
    return write_down_bias(x, i, b, false);
}

/* Zero linear attention in output block i: x + 0 . (attn_norm . RMSNorm(x)). */
static dp_status write_zero_linear(struct ctx *x, int i, int src) {
    int64_t dim = x->p->dim;
    char name[64];
    float *z = zeros(x, (size_t)(dim * dim)), *ones = zeros(x, (size_t)dim);
    if (!z || !ones) return DP_ERR_NOMEM;
    for (int64_t k = 0; k < dim; k++) ones[k] = 1.0f;
    dp_status st;
    snprintf(name, sizeof name, "blk.%d.attn_norm.weight", i);
    if ((st = add_new(x, name, x->vec_type, ones, dim, 1))) return st;
    snprintf(name, sizeof name, "blk.%d.attn_output.weight", i);
    return add_matrix(x, name, wanted_type(x, source_type(x, src, "attn_output.weight")), z, dim, dim);
}

/*
 * Source matrix T (n_out rows of n_in) with the linear map of u folded in,
 * W' = (I + B A) W computed in double from the dequantized rows, written as
 * `name` in the source's type (or out_type).
 */
static dp_status write_folded(struct ctx *x, const struct dp_gguf_tensor *T, const char *name,
                              const struct dp_unit_recovery *u, bool rows) {
    int64_t n_in = T->ne[0], n_out = T->ne[1], R = u->rank, dim = x->p->dim;
    if (T->n_dims != 2 || (rows ? n_in : n_out) != dim)
        return dp_fail(DP_ERR_FORMAT, "%s: %s does not have %lld %s", x->m->path, T->name, (long long)dim,
                       rows ? "columns" : "rows");
    float *w = keep(x, dp_malloc((size_t)(n_out * n_in) * sizeof(float)));
    double *aw = dp_malloc((size_t)(R * n_in) * sizeof(double));
    if (!w || !aw) {
        free(aw);
        return DP_ERR_NOMEM;
    }
    size_t row = dp_type_row_bytes(T->type, n_in);
    for (int64_t o = 0; o < n_out; o++) dp_dequant_row(T->type, T->data + (size_t)o * row, w + o * n_in, n_in);
    if (rows) { /* token_embd: every row e (dim) becomes e + B A e */
        free(aw);
        double az[512], *a = R <= 512 ? az : dp_malloc((size_t)R * sizeof *a);
        if (!a) return DP_ERR_NOMEM;
        for (int64_t v = 0; v < n_out; v++) {
            float *e = w + v * dim;
            for (int64_t k = 0; k < R; k++) {
                double s = 0;
                for (int64_t i = 0; i < dim; i++) s += (double)u->A[k * dim + i] * e[i];
                a[k] = s;
            }
            for (int64_t j = 0; j < dim; j++) {
                double s = e[j];
                for (int64_t k = 0; k < R; k++) s += (double)u->B[j * R + k] * a[k];
                e[j] = (float)s;
            }
        }
        if (a != az) free(a);
        return add_matrix(x, name, wanted_type(x, T->type), w, n_in, n_out);
    }
    for (int64_t k = 0; k < R; k++) { /* aw = A W */
        double *ar = aw + k * n_in;
        memset(ar, 0, (size_t)n_in * sizeof *ar);
        for (int64_t j = 0; j < dim; j++) {
            double a = u->A[k * dim + j];
            const float *wr = w + j * n_in;
            for (int64_t i = 0; i < n_in; i++) ar[i] += a * wr[i];
        }
    }
    for (int64_t o = 0; o < n_out; o++) { /* w += B aw, row by row (each row only reads aw) */
        float *wr = w + o * n_in;
        for (int64_t i = 0; i < n_in; i++) {
            double v = wr[i];
            for (int64_t k = 0; k < R; k++) v += (double)u->B[o * R + k] * aw[k * n_in + i];
            wr[i] = (float)v;
        }
    }
    free(aw);
    return add_matrix(x, name, wanted_type(x, T->type), w, n_in, n_out);
}

/* Output block i: original tensors of its source block renamed, then the new ones. */
static dp_status write_block(struct ctx *x, int i) {
    const struct out_block *b = &x->p->b[i];
    dp_status st = DP_OK;
    for (uint64_t t = 0; t < x->g->n_tensors && !st; t++) {
        const struct dp_gguf_tensor *T = &x->g->tensors[t];
        const char *rest = NULL;
        if (block_of(T->name, &rest) != b->src) continue;
        bool attn = !strncmp(rest, "attn_", 5), ffn = !strncmp(rest, "ffn_", 4);
        bool take = attn ? b->attn == ATTN_ORIG : ffn ? b->ffn == FFN_ORIG : (b->attn == ATTN_ORIG || b->ffn == FFN_ORIG);
        if (!take || (b->bias && !strcmp(rest, "ffn_down.bias"))) continue;
        char name[DP_GGUF_MAX_NAME + 8];
        snprintf(name, sizeof name, "blk.%d.%s", i, rest);
        const struct dp_unit_recovery *fold = !strcmp(rest, "ffn_down.weight")      ? b->fold_ffn
                                              : !strcmp(rest, "attn_output.weight") ? b->fold_attn
                                                                                    : NULL;
        st = fold                             ? write_folded(x, T, name, fold, false)
             : x->permute_qk && is_qk(rest) ? copy_permuted(x, T, name)
                                            : copy_tensor(x, T, name);
    }
    if (st) return st;
    if (b->attn == ATTN_ZERO_LINEAR && (st = write_zero_linear(x, i, b->src))) return st;
    switch (b->ffn) {
    case FFN_ORIG: return write_down_bias(x, i, b, true);
    case FFN_ZERO: return write_zero_ffn(x, i, b);
    case FFN_LOWRANK: return write_lowrank(x, i, b);
    }
    return DP_OK;
}

/* token_embd (with the constant in every row when there is one) and the explicit head it may need. */
static dp_status write_embedding(struct ctx *x) {
    const struct dp_gguf_tensor *E = dp_gguf_find_tensor(x->g, "token_embd.weight");
    DP_ASSERT(E);
    if (x->p->embd_fold) {
        dp_status st = write_folded(x, E, "token_embd.weight", x->p->embd_fold, true);
        if (!st && !dp_gguf_find_tensor(x->g, "output.weight")) st = copy_tensor(x, E, "output.weight");
        return st;
    }
    if (!x->p->embd_bias) return copy_tensor(x, E, E->name);
    int64_t dim = x->p->dim, n_vocab = x->m->cfg.n_vocab;
    float *v = keep(x, dp_malloc((size_t)(dim * n_vocab) * sizeof(float)));
    if (!v) return DP_ERR_NOMEM;
    size_t row = dp_type_row_bytes(E->type, dim);
    for (int64_t r = 0; r < n_vocab; r++) {
        float *o = v + r * dim;
        dp_dequant_row(E->type, E->data + (size_t)r * row, o, dim);
        for (int64_t k = 0; k < dim; k++) o[k] += x->p->embd_bias[k];
    }
    dp_status st = add_matrix(x, "token_embd.weight", wanted_type(x, E->type), v, dim, n_vocab);
    /* a tied head must keep the original embedding */
    if (!st && !dp_gguf_find_tensor(x->g, "output.weight")) st = copy_tensor(x, E, "output.weight");
    return st;
}

/* Integer metadata in the type the source used for it (llama.cpp checks types). */
static void set_int_typed(struct dp_gguf_writer *w, const char *key, uint32_t type, int64_t v) {
    switch (type) {
    case DP_GGUF_I32: dp_gguf_set_i32(w, key, (int32_t)v); break;
    case DP_GGUF_U64: dp_gguf_set_u64(w, key, (uint64_t)v); break;
    default: dp_gguf_set_u32(w, key, (uint32_t)v); break;
    }
}

/*
 * Metadata: every pair of the source in order (depthprune.* provenance of an
 * earlier export excepted), keys of the source arch renamed to the output
 * arch, per-layer arrays filtered; then block_count and, for deci, the
 * per-layer head counts and FFN widths.
 */
static dp_status write_metadata(struct ctx *x, const char *arch) {
    const struct dp_gguf *g = x->g;
    const struct plan *p = x->p;
    const struct dp_config *c = &x->m->cfg;
    size_t la = strlen(c->arch);
    int n = p->n;
    uint8_t *tmp = keep(x, dp_malloc((size_t)n * 8));
    if (!tmp) return DP_ERR_NOMEM;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const struct dp_gguf_kv *kv = &g->kv[i];
        if (!strncmp(kv->key, "depthprune.", 11)) continue;
        bool own = !strncmp(kv->key, c->arch, la) && kv->key[la] == '.';
        char key[256];
        snprintf(key, sizeof key, "%s%s", own ? arch : "", own ? kv->key + la : kv->key);
        if (strlen(kv->key) + 16 >= sizeof key)
            return dp_fail(DP_ERR_UNSUPPORTED, "%s: metadata key '%.40s...' is too long", x->m->path, kv->key);
        size_t esz = kv->val.type == DP_GGUF_ARRAY ? dp_gguf_vtype_size(kv->val.elem_type) : 0;
        /* rope.dimension_sections (4 entries) is the one <arch>. array known not to be per layer */
        bool per_layer = esz && kv->val.n == (uint64_t)c->n_layers && !strstr(kv->key, ".rope.dimension_sections");
        if (own && per_layer) {
            for (int b = 0; b < n; b++) memcpy(tmp + (size_t)b * esz, kv->val.raw + (size_t)p->b[b].src * esz, esz);
            dp_gguf_set_arr(x->w, key, kv->val.elem_type, tmp, (uint64_t)n);
        } else {
            dp_gguf_copy_kv(x->w, g, kv, key);
        }
    }
    dp_gguf_set_str(x->w, "general.architecture", arch);
    char key[128];
    const struct dp_gguf_kv *bc = dp_gguf_find_kv(g, (snprintf(key, sizeof key, "%s.block_count", c->arch), key));
    snprintf(key, sizeof key, "%s.block_count", arch);
    set_int_typed(x->w, key, bc ? bc->val.type : DP_GGUF_U32, n);
    if (strcmp(arch, "deci")) return DP_OK;
    int32_t *nh = (int32_t *)(void *)tmp, *nkv = keep(x, dp_malloc((size_t)n * 4)), *nff = keep(x, dp_malloc((size_t)n * 4));
    if (!nkv || !nff) return DP_ERR_NOMEM;
    for (int b = 0; b < n; b++) {
        const struct out_block *o = &p->b[b];
        struct dp_layer_shape s = x->m->layers[o->src].shape;
        nh[b] = o->attn == ATTN_ORIG ? s.n_head : o->attn == ATTN_ZERO_LINEAR ? c->n_head : 0;
        nkv[b] = o->attn == ATTN_ORIG ? s.n_head_kv : 0;
        nff[b] = o->ffn == FFN_ORIG ? s.n_ff : o->ffn == FFN_ZERO ? ZERO_FFN_WIDTH : (int32_t)lowrank_width(x, o);
    }
    dp_gguf_set_arr(x->w, "deci.attention.head_count", DP_GGUF_I32, nh, (uint64_t)n);
    dp_gguf_set_arr(x->w, "deci.attention.head_count_kv", DP_GGUF_I32, nkv, (uint64_t)n);
    dp_gguf_set_arr(x->w, "deci.feed_forward_length", DP_GGUF_I32, nff, (uint64_t)n);
    return DP_OK;
}

/* The removed units that exist in the file, as "b2,a4". */
static void removed_units(const struct dp_model *m, const struct dp_mask *mask, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        bool ra = m->layers[l].has_attn && !mask->attn[l], rf = m->layers[l].has_ffn && !mask->ffn[l];
        bool whole = (ra || !m->layers[l].has_attn) && (rf || !m->layers[l].has_ffn) && (ra || rf);
        char u[40] = "";
        if (whole) snprintf(u, sizeof u, "b%d", l);
        else if (ra) snprintf(u, sizeof u, "a%d", l);
        else if (rf) snprintf(u, sizeof u, "f%d", l);
        if (!u[0]) continue;
        int w = snprintf(buf + len, cap - len, "%s%s", len ? "," : "", u);
        if (w < 0 || (size_t)w >= cap - len) return;
        len += (size_t)w;
    }
}

/* Split a comma list into the writer as an array of strings. */
static dp_status set_list(struct ctx *x, const char *key, const char *list) {
    char *copy = keep(x, strdup(list));
    const char **items = keep(x, dp_malloc((strlen(list) / 2 + 2) * sizeof *items));
    if (!copy || !items) return DP_ERR_NOMEM;
    uint64_t n = 0;
    for (char *s = copy, *e; *s; s = e ? e + 1 : s + strlen(s)) {
        e = strchr(s, ',');
        if (e) *e = 0;
        if (*s) items[n++] = s;
        if (!e) break;
    }
    dp_gguf_set_arr_str(x->w, key, items, n);
    return DP_OK;
}

static dp_status write_provenance(struct ctx *x, const struct dp_mask *mask, const struct dp_recovery *rec,
                                  const struct dp_export_opts *o, const char *sha) {
    const struct dp_model *m = x->m;
    struct dp_model_stats s;
    dp_model_stats(m, NULL, &s);
    const char *base = strrchr(m->path, '/');
    char removed[4096];
    removed_units(m, mask, removed, sizeof removed);
    dp_gguf_set_str(x->w, "depthprune.version", DP_VERSION);
    dp_gguf_set_str(x->w, "depthprune.source.file", base ? base + 1 : m->path);
    dp_gguf_set_str(x->w, "depthprune.source.sha256", sha);
    dp_gguf_set_str(x->w, "depthprune.source.arch", m->cfg.arch);
    dp_gguf_set_u32(x->w, "depthprune.source.block_count", (uint32_t)m->cfg.n_layers);
    dp_gguf_set_u64(x->w, "depthprune.source.n_params", (uint64_t)s.n_params);
    dp_gguf_set_u64(x->w, "depthprune.source.kv_bytes_per_token", (uint64_t)s.kv_bytes_per_token);
    dp_status st = set_list(x, "depthprune.removed", o->removed ? o->removed : removed);
    if (st) return st;
    dp_gguf_set_str(x->w, "depthprune.recover", rec ? rec->kind : "none");
    if (o->metric) dp_gguf_set_str(x->w, "depthprune.metric", o->metric);
    if (o->scheme) dp_gguf_set_str(x->w, "depthprune.scheme", o->scheme);
    if (o->calib) dp_gguf_set_str(x->w, "depthprune.calib", o->calib);
    if (o->plan) dp_gguf_set_str(x->w, "depthprune.plan", o->plan);
    dp_gguf_set_str(x->w, "depthprune.out_type",
                    x->out_type == DP_EXPORT_SOURCE_TYPES ? "source" : dp_type_name(x->out_type));
    const char **what = keep(x, dp_malloc((size_t)x->p->n * sizeof *what));
    if (!what) return DP_ERR_NOMEM;
    for (int i = 0; i < x->p->n; i++) what[i] = x->p->b[i].what;
    dp_gguf_set_arr_str(x->w, "depthprune.blocks", what, (uint64_t)x->p->n);
    return DP_OK;
}

/* ---- families (docs/families.md, "Export") ---- */

static bool plan_has_constants(const struct plan *p) {
    bool any = p->embd_bias != NULL;
    for (int i = 0; i < p->n; i++) any |= p->b[i].bias != NULL;
    return any;
}

/*
 * Whether llama.cpp runs block i of a Gemma file with sliding-window
 * attention: it decides by position, not by metadata (gemma2: even blocks;
 * gemma3: five local blocks then one global, and local ones take the RoPE
 * base rope.freq_base_swa). -1 when the arch has no such pattern.
 */
static int gemma_local(const struct dp_model *m, int i) {
    if (!strcmp(m->cfg.arch, "gemma2")) return i % 2 == 0;
    if (!strcmp(m->cfg.arch, "gemma3")) {
        int64_t w = 0;
        if (dp_gguf_get_int(m->gguf, "gemma3.attention.sliding_window", false, &w) || w <= 0) return -1;
        return i % 6 < 5;
    }
    return -1;
}

/*
 * The output arch for plan p, or a one-line refusal naming why llama.cpp
 * could not run the result as the in-memory pruned model:
 *  - llama, mistral, deci: the arch is kept for block removal, else deci;
 *  - qwen2: kept for block removal (with or without a constant folded into
 *    token_embd), else deci with Q/K rows permuted into deci's RoPE pairs
 *    (*permute_qk) and the q/k/v biases kept;
 *  - qwen3, phi3: block removal only (deci has no q/k norms; phi3's fused
 *    tensors and NEOX pairs are not converted), no constant (their graphs
 *    have no ffn_down.bias; the tied qwen3 head forbids a token_embd fold
 *    only through that), gemma2, gemma3: block removal only, no recovery
 *    (post-norms, soft-caps and GELU have no deci form; the embedding is
 *    scaled by sqrt(dim), so a constant cannot go into token_embd), every
 *    kept block in a position of the same sliding-window role, and not for
 *    the 27B shape whose query scale llama.cpp picks by block count.
 */
static dp_status family_rules(const struct dp_model *m, const struct plan *p, const char **arch, bool *permute_qk) {
    const char *a = m->cfg.arch;
    bool blocks_only = !p->deci, constants = plan_has_constants(p);
    *arch = a;
    *permute_qk = false;
    if (!strcmp(a, "llama") || !strcmp(a, "mistral") || !strcmp(a, "deci")) {
        if (p->deci) *arch = "deci";
        return DP_OK;
    }
    if (!strcmp(a, "qwen2")) {
        bool down_bias = false;
        for (int i = 0; i < p->n; i++) down_bias |= p->b[i].bias != NULL;
        if (p->deci || down_bias) {
            *arch = "deci";
            *permute_qk = m->cfg.rope_neox;
        }
        return DP_OK;
    }
    bool gemma = !strncmp(a, "gemma", 5);
    if (!blocks_only)
        return dp_fail(DP_ERR_UNSUPPORTED, "%s: arch %s exports block removal only: %s", m->path, a,
                       !strcmp(a, "qwen3") ? "llama.cpp's deci graph has no per-head q/k norms"
                       : !strcmp(a, "phi3") ? "its fused attn_qkv / ffn_up and NEOX RoPE are not converted to deci"
                       : gemma ? "llama.cpp's deci graph has no post-norms, soft-caps or GELU"
                               : "no llama.cpp graph holds its sublayer removal");
    if (constants)
        return dp_fail(DP_ERR_UNSUPPORTED, "%s: arch %s cannot hold a recovery's constant: %s", m->path, a,
                       gemma ? "the embedding is scaled by sqrt(dim) and the graph has no ffn_down.bias"
                             : "llama.cpp's graph has no ffn_down.bias (use --recover none)");
    if (!gemma) return DP_OK;
    for (int i = 0; i < p->n; i++) {
        int was = gemma_local(m, p->b[i].src), now = gemma_local(m, i);
        if (was != now)
            return dp_fail(DP_ERR_UNSUPPORTED, "%s: %s block %d would land at position %d and turn from %s to %s "
                           "attention (llama.cpp sets the sliding-window pattern by position); remove blocks so that "
                           "each kept block keeps its role (e.g. %s)", m->path, a, p->b[i].src, i,
                           was ? "sliding-window" : "global", now ? "sliding-window" : "global",
                           !strcmp(a, "gemma2") ? "pairs of neighbours" : "runs of 6");
    }
    int64_t big = !strcmp(a, "gemma2") ? 46 : 62;
    if (m->cfg.n_layers == big && m->cfg.n_embd / m->cfg.n_head != m->cfg.head_dim)
        return dp_fail(DP_ERR_UNSUPPORTED, "%s: llama.cpp scales queries of a %lld-block %s (27B) by 1/sqrt(dim/heads) "
                       "and of any other block count by 1/sqrt(head size); a pruned copy would change", m->path,
                       (long long)big, a);
    return DP_OK;
}

static bool same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

dp_status dp_export(const struct dp_model *m, const struct dp_mask *mask, const struct dp_recovery *rec,
                    const struct dp_export_opts *opts, const char *path, struct dp_export_info *info) {
    static const struct dp_export_opts none;
    const struct dp_export_opts *o = opts ? opts : &none;
    if (!m->gguf)
        return dp_fail(DP_ERR_UNSUPPORTED, "%s: export needs a GGUF source (this is a %s checkpoint)", m->path,
                       m->format);
    uint32_t t = o->out_type;
    if (t != DP_EXPORT_SOURCE_TYPES && !dp_quantize_supported(t))
        return dp_fail(DP_ERR_ARG, "output type %s cannot be written (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, "
                       "Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS can)", dp_type_name(t));
    if (mask->n_layers != m->cfg.n_layers)
        return dp_fail(DP_ERR_ARG, "%s: the mask is for %d blocks, the model has %d", m->path, mask->n_layers,
                       m->cfg.n_layers);
    if (same_file(path, m->path)) return dp_fail(DP_ERR_ARG, "%s: refusing to overwrite the model being pruned", path);
    struct plan p;
    const char *arch = m->cfg.arch;
    bool permute_qk = false;
    dp_status st = make_plan(m, mask, rec, &p);
    if (!st) st = family_rules(m, &p, &arch, &permute_qk);
    bool down_bias = !strcmp(arch, "llama") || !strcmp(arch, "mistral") || !strcmp(arch, "deci");
    for (int i = 0; !st && !down_bias && i < p.n; i++)
        if (p.b[i].bias)
            st = dp_fail(DP_ERR_UNSUPPORTED, "%s: llama.cpp's %s graph has no ffn_down.bias to fold a constant into",
                         m->path, arch);
    struct ctx x = {m, m->gguf, &p, NULL, t, DP_TYPE_F32, NULL, 0, 0, true, 0, permute_qk};
    char sha[65];
    if (!st) {
        dp_sha256_hex(m->gguf->data, m->gguf->size, sha);
        if (!(x.w = dp_gguf_writer_new())) st = DP_ERR_NOMEM;
    }
    if (!st) st = write_metadata(&x, arch);
    if (!st) st = write_provenance(&x, mask, rec, o, sha);
    for (uint64_t i = 0; !st && i < m->gguf->n_tensors; i++) {
        const struct dp_gguf_tensor *T = &m->gguf->tensors[i];
        const char *rest = NULL;
        if (block_of(T->name, &rest) >= 0) continue;
        st = !strcmp(T->name, "token_embd.weight") ? write_embedding(&x) : copy_tensor(&x, T, T->name);
    }
    for (int i = 0; !st && i < p.n; i++) st = write_block(&x, i);
    if (!st) st = dp_gguf_writer_write(x.w, path);
    if (!st && info) {
        memset(info, 0, sizeof *info);
        snprintf(info->arch, sizeof info->arch, "%s", arch);
        info->n_blocks = p.n;
        info->lossless = x.lossless;
        info->n_fallback = x.n_fallback;
        memcpy(info->sha256, sha, sizeof sha);
    }
    dp_gguf_writer_free(x.w);
    for (int i = 0; i < x.n_bufs; i++) free(x.bufs[i]);
    free(x.bufs);
    plan_free(&p);
    return st;
}
