/*
 * model: loading llama-family models (GGUF and llama2.c checkpoints), unit
 * masks, statistics and the forward pass.
 *
 * Both formats end in the same `struct dp_model`: weights are views into the
 * mapped file, so a llama2.c checkpoint and its GGUF conversion give the same
 * object and bit-identical logits. Every tensor is checked against the
 * configuration (shape and a supported type) when the model is opened, so the
 * forward pass never meets a surprise.
 *
 * The forward pass reads like the architecture: for each block, a pre-norm
 * attention sublayer and a pre-norm gated FFN, each added to the residual
 * stream, each skipped when the unit mask removes it; the arithmetic of a
 * layer lives in layer.c (shared with the training tape). RoPE follows
 * llama.cpp (pairs (2i, 2i+1) for arch llama, (i, i+n_rot/2) for NEOX-style
 * archs; angles by the same float recurrence). The KV cache holds f32 keys and
 * values for the kept attention sublayers only, a ring for sliding windows.
 *
 * Families (docs/families.md): llama (3.x rope_freqs), mistral, qwen2, qwen3,
 * phi3 (fused tensors as row views), gemma2 and gemma3, read by load_family
 * into struct dp_family and per-layer fields (window, RoPE base, norms).
 *
 * Arch `deci` (what export writes for sublayer removal, EXPORT.md) has
 * per-block head counts and FFN widths: a block with 0 heads has no
 * attention (and no cache), one with heads but 0 KV heads has linear
 * attention x + wo.(attn_norm . RMSNorm(x)), and FFNs may carry gate/up
 * biases. Such blocks load as has_attn/has_ffn false or as their shapes say.
 */
#include "model.h"

#include "layer.h"
#include "profile.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- loading: GGUF ---- */

static dp_status view(struct dp_model *m, const char *name, int64_t n_in, int64_t n_out, bool required,
                      struct dp_weight *w) {
    memset(w, 0, sizeof *w);
    const struct dp_gguf_tensor *t = dp_gguf_find_tensor(m->gguf, name);
    if (!t) {
        if (required) return dp_fail(DP_ERR_FORMAT, "%s: tensor '%s' is missing", m->path, name);
        return DP_OK;
    }
    bool vec = n_out == 1;
    if (t->ne[0] != n_in || t->ne[1] != n_out || t->ne[2] != 1 || t->ne[3] != 1 || (vec && t->n_dims > 2))
        return dp_fail(DP_ERR_FORMAT, "%s: tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                       m->path, name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                       (long long)t->ne[3], (long long)n_in, (long long)n_out);
    if (!dp_kernels_supported(t->type) || (vec && t->type != DP_TYPE_F32 && t->type != DP_TYPE_F16 &&
                                           t->type != DP_TYPE_BF16))
        return dp_fail(DP_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s, which depthprune cannot compute with yet",
                       m->path, name, dp_type_name(t->type));
    w->data = t->data;
    w->type = t->type;
    w->n_in = n_in;
    w->n_out = n_out;
    w->name = t->name;
    return DP_OK;
}

static dp_status arch_int(struct dp_model *m, const char *suffix, bool required, int64_t *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", m->cfg.arch, suffix);
    return dp_gguf_get_int(m->gguf, key, required, out);
}

static dp_status arch_float(struct dp_model *m, const char *suffix, double *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", m->cfg.arch, suffix);
    return dp_gguf_get_float(m->gguf, key, false, out);
}

static dp_status check_range(struct dp_model *m, const char *what, int64_t v, int64_t min, int64_t max) {
    if (v < min || v > max)
        return dp_fail(DP_ERR_FORMAT, "%s: %s = %lld is out of range (%lld..%lld)", m->path, what, (long long)v,
                       (long long)min, (long long)max);
    return DP_OK;
}

static dp_status check_dim(struct dp_model *m, const char *what, int64_t v, int64_t max) {
    return check_range(m, what, v, 1, max);
}

/*
 * A per-layer hyperparameter `<arch>.<suffix>`: one integer for every block,
 * or an integer array of block_count entries (deci files, where blocks
 * differ). Absent and not required: `dflt` for every block.
 */
static dp_status layer_ints(struct dp_model *m, const char *suffix, bool required, int64_t dflt, int64_t *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", m->cfg.arch, suffix);
    const struct dp_gguf_kv *kv = dp_gguf_find_kv(m->gguf, key);
    int n = m->cfg.n_layers;
    if (kv && kv->val.type == DP_GGUF_ARRAY) {
        uint32_t et = kv->val.elem_type;
        bool integer = et <= DP_GGUF_I32 || et == DP_GGUF_U64 || et == DP_GGUF_I64;
        if (!integer || kv->val.n != (uint64_t)n)
            return dp_fail(DP_ERR_FORMAT, "%s: %s must be an integer or an integer array of %d entries (block_count)",
                           m->path, key, n);
        for (int l = 0; l < n; l++) out[l] = dp_gguf_arr_i64(&kv->val, (uint64_t)l);
        return DP_OK;
    }
    int64_t v = dflt;
    dp_status st = dp_gguf_get_int(m->gguf, key, required, &v);
    for (int l = 0; l < n; l++) out[l] = v;
    return st;
}

/*
 * Per-block head counts and FFN widths. Only arch deci may have blocks
 * without attention (0 heads), linear attention (heads but 0 KV heads) or
 * without an FFN (width 0); other archs need every count >= 1.
 */
static dp_status load_layer_shapes(struct dp_model *m) {
    int64_t nh[DP_MAX_LAYERS], nkv[DP_MAX_LAYERS], nff[DP_MAX_LAYERS];
    dp_status st;
    if ((st = layer_ints(m, "attention.head_count", true, 0, nh)) ||
        (st = layer_ints(m, "attention.head_count_kv", false, -1, nkv)) ||
        (st = layer_ints(m, "feed_forward_length", true, 0, nff)))
        return st;
    int lo = strcmp(m->cfg.arch, "deci") ? 1 : 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        char what[64];
        if (nkv[l] < 0) nkv[l] = nh[l];
        snprintf(what, sizeof what, "attention.head_count[%d]", l);
        if ((st = check_range(m, what, nh[l], lo, 4096))) return st;
        snprintf(what, sizeof what, "attention.head_count_kv[%d]", l);
        if ((st = check_range(m, what, nkv[l], lo, nh[l]))) return st;
        snprintf(what, sizeof what, "feed_forward_length[%d]", l);
        if ((st = check_range(m, what, nff[l], lo, 1 << 22))) return st;
        if (nkv[l] && nh[l] % nkv[l])
            return dp_fail(DP_ERR_FORMAT, "%s: block %d: %lld heads cannot share %lld KV heads", m->path, l,
                           (long long)nh[l], (long long)nkv[l]);
        if (!nh[l] && nkv[l])
            return dp_fail(DP_ERR_FORMAT, "%s: block %d has KV heads but no heads", m->path, l);
        m->layers[l].shape = (struct dp_layer_shape){(int)nh[l], (int)nkv[l], (int)nff[l]};
    }
    return DP_OK;
}

/*
 * The family's extra arithmetic as llama.cpp's loader (May 2026) reads it:
 * gemma2 soft-caps (defaults 50 and 30), sliding window (default 4096) on
 * even layers; gemma3 window on layers l % 6 < 5 with their own RoPE base
 * (rope.freq_base_swa, default 1e4); both scale embeddings by sqrt(dim) and
 * use tanh-GELU; a 27B (46 or 62 blocks) scales scores by 1/sqrt(dim/heads).
 * mistral: a window on every layer where the file declares one. phi3's
 * window is ignored, as llama.cpp does since its SWA was disabled.
 */
static dp_status load_family(struct dp_model *m) {
    struct dp_config *c = &m->cfg;
    struct dp_family *f = &m->family;
    bool g2 = !strcmp(c->arch, "gemma2"), g3 = !strcmp(c->arch, "gemma3");
    int64_t window = 0;
    dp_status st;
    if (!strcmp(c->arch, "mistral") || g2 || g3) {
        window = g2 ? 4096 : 0;
        if ((st = arch_int(m, "attention.sliding_window", g3, &window))) return st;
        if ((st = check_range(m, "attention.sliding_window", window, 0, 1 << 24))) return st;
    }
    if (!strcmp(c->arch, "phi3") && dp_gguf_find_tensor(m->gguf, "rope_factors_long.weight"))
        return dp_fail(DP_ERR_UNSUPPORTED, "%s: phi3 with long-context RoPE factors (rope_factors_long.weight) "
                       "is not supported", m->path);
    if (!g2 && !g3) {
        for (int l = 0; l < c->n_layers; l++) m->layers[l].window = (int)window;
        return DP_OK;
    }
    double base_swa = 10000.0, soft_attn = 50.0, soft_final = 30.0;
    if (g3 && (st = arch_float(m, "rope.freq_base_swa", &base_swa))) return st;
    if (g2 && ((st = arch_float(m, "attn_logit_softcapping", &soft_attn)) ||
               (st = arch_float(m, "final_logit_softcapping", &soft_final))))
        return st;
    if (!(base_swa > 0) || !(soft_attn > 0) || !(soft_final > 0))
        return dp_fail(DP_ERR_FORMAT, "%s: invalid %s soft-capping or rope.freq_base_swa", m->path, c->arch);
    for (int l = 0; l < c->n_layers; l++) {
        bool swa = g2 ? l % 2 == 0 : l % 6 < 5;
        m->layers[l].window = swa ? (int)window : 0;
        if (g3 && swa) m->layers[l].rope_base = (float)base_swa;
    }
    f->act = DP_FFN_GELU_TANH;
    f->embd_scale = sqrtf((float)c->n_embd);
    if (g2) {
        f->attn_softcap = (float)soft_attn;
        f->final_softcap = (float)soft_final;
    }
    if (c->n_layers == (g2 ? 46 : 62)) f->attn_scale = 1.0f / sqrtf((float)(c->n_embd / c->n_head));
    return DP_OK;
}

static dp_status load_gguf_config(struct dp_model *m) {
    struct dp_config *c = &m->cfg;
    dp_status st = dp_gguf_get_str(m->gguf, "general.architecture", true, c->arch, sizeof c->arch);
    if (st) return st;
    static const char *const archs[] = {"llama", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "deci"};
    bool known = false;
    for (size_t i = 0; i < sizeof archs / sizeof *archs; i++) known |= !strcmp(c->arch, archs[i]);
    if (!known)
        return dp_fail(DP_ERR_UNSUPPORTED,
                       "%s: architecture '%s' is not supported (llama, mistral, qwen2, qwen3, phi3, gemma2, gemma3, deci are)",
                       m->path, c->arch);
    int64_t n_layers = 0, n_embd = 0, n_ctx = 2048, head_dim = -1, n_rot = -1;
    if ((st = arch_int(m, "block_count", true, &n_layers)) || (st = arch_int(m, "embedding_length", true, &n_embd)) ||
        (st = arch_int(m, "context_length", false, &n_ctx)) ||
        (st = arch_int(m, "attention.key_length", false, &head_dim)) ||
        (st = arch_int(m, "rope.dimension_count", false, &n_rot)))
        return st;
    if ((st = check_dim(m, "block_count", n_layers, DP_MAX_LAYERS)) || (st = check_dim(m, "embedding_length", n_embd, 1 << 20)) ||
        (st = check_dim(m, "context_length", n_ctx, 1 << 24)))
        return st;
    c->n_layers = (int)n_layers;
    m->layers = dp_calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return DP_ERR_NOMEM;
    if ((st = load_layer_shapes(m))) return st;
    /* the config shows the largest counts; head_dim comes from the first block with attention */
    int first_attn = -1;
    for (int l = 0; l < c->n_layers; l++) {
        struct dp_layer_shape s = m->layers[l].shape;
        if (first_attn < 0 && s.n_head) first_attn = l;
        if (s.n_head > c->n_head) c->n_head = s.n_head;
        if (s.n_head_kv > c->n_head_kv) c->n_head_kv = s.n_head_kv;
        if (s.n_ff > c->n_ff) c->n_ff = s.n_ff;
    }
    if (first_attn < 0) return dp_fail(DP_ERR_FORMAT, "%s: no block has attention heads", m->path);
    int64_t n_head = m->layers[first_attn].shape.n_head;
    if (head_dim < 0) {
        if (n_embd % n_head)
            return dp_fail(DP_ERR_FORMAT, "%s: embedding_length %lld is not a multiple of head_count %lld", m->path,
                           (long long)n_embd, (long long)n_head);
        head_dim = n_embd / n_head;
    }
    if ((st = check_dim(m, "attention.key_length", head_dim, 1 << 14))) return st;
    if (n_rot < 0) n_rot = head_dim;
    if (n_rot < 0 || n_rot > head_dim || n_rot % 2)
        return dp_fail(DP_ERR_FORMAT, "%s: rope.dimension_count %lld is invalid for head size %lld", m->path,
                       (long long)n_rot, (long long)head_dim);
    double base = 10000.0, eps = 1e-5;
    if ((st = arch_float(m, "rope.freq_base", &base)) || (st = arch_float(m, "attention.layer_norm_rms_epsilon", &eps)))
        return st;
    if (!(base > 0) || !(eps > 0) || eps > 1)
        return dp_fail(DP_ERR_FORMAT, "%s: invalid rope.freq_base or layer_norm_rms_epsilon", m->path);
    c->n_embd = (int)n_embd;
    c->head_dim = (int)head_dim;
    c->n_ctx_train = (int)n_ctx;
    c->n_rot = (int)n_rot;
    c->rope_neox = !strcmp(c->arch, "qwen2") || !strcmp(c->arch, "qwen3") || !strcmp(c->arch, "phi3") ||
                   !strcmp(c->arch, "gemma2") || !strcmp(c->arch, "gemma3");
    c->rope_base = (float)base;
    c->norm_eps = (float)eps;
    return load_family(m);
}

/*
 * A tensor of the wrong shape is reported by view(); this adds the metadata
 * key the expected shape came from, so the message says which of the two to
 * believe: "(from qwen2.attention.head_count_kv = 2 x head size 32)".
 */
static dp_status with_key(struct dp_model *m, dp_status st, const char *tensor, const char *fmt, ...) DP_PRINTF(4, 5);
static dp_status with_key(struct dp_model *m, dp_status st, const char *tensor, const char *fmt, ...) {
    if (st != DP_ERR_FORMAT || !dp_gguf_find_tensor(m->gguf, tensor)) return st;
    char msg[512], why[256];
    snprintf(msg, sizeof msg, "%s", dp_last_error());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return dp_fail(st, "%s (from %s)", msg, why);
}

/* Every blk.N.* tensor must belong to a block the metadata declares. */
static dp_status check_block_tensors(struct dp_model *m) {
    for (uint64_t k = 0; k < m->gguf->n_tensors; k++) {
        const char *name = m->gguf->tensors[k].name;
        if (strncmp(name, "blk.", 4) || name[4] < '0' || name[4] > '9') continue;
        char *end;
        errno = 0;
        long b = strtol(name + 4, &end, 10);
        if (errno || *end != '.' || b >= m->cfg.n_layers)
            return dp_fail(DP_ERR_FORMAT, "%s: tensor '%s' lies beyond %s.block_count = %d", m->path, name, m->cfg.arch,
                           m->cfg.n_layers);
    }
    return DP_OK;
}

/*
 * A fused tensor blk.<l>.<sfx> of (n_in, a + b + c) rows split into row
 * views: parts[0] the first a rows, parts[1] the next b, parts[2] the last c
 * (c == 0: two parts). Nothing is copied.
 */
static dp_status fused(struct dp_model *m, int l, const char *sfx, int64_t n_in, int64_t a, int64_t b, int64_t c,
                       struct dp_weight **parts) {
    char name[64];
    snprintf(name, sizeof name, "blk.%d.%s", l, sfx);
    struct dp_weight all;
    dp_status st = view(m, name, n_in, a + b + c, true, &all);
    if (st) return with_key(m, st, name, "%s.attention.head_count, head_count_kv and feed_forward_length", m->cfg.arch);
    size_t rb = dp_type_row_bytes(all.type, n_in);
    int64_t rows[3] = {a, b, c}, row0 = 0;
    for (int i = 0; i < (c ? 3 : 2); i++) {
        *parts[i] = all;
        parts[i]->data = (const uint8_t *)all.data + (size_t)row0 * rb;
        parts[i]->n_out = rows[i];
        row0 += rows[i];
    }
    return DP_OK;
}

static float *dequant_vec_owned(const struct dp_weight *w, int n) {
    float *v = dp_malloc((size_t)n * sizeof *v);
    if (v) dp_dequant_row(w->type, w->data, v, n);
    return v;
}

static dp_status load_gguf_weights(struct dp_model *m) {
    struct dp_config *c = &m->cfg;
    dp_status st;
    if ((st = check_block_tensors(m))) return st;
    if ((st = view(m, "token_embd.weight", c->n_embd, c->n_vocab, true, &m->tok_embd)) ||
        (st = view(m, "output_norm.weight", c->n_embd, 1, true, &m->output_norm)) ||
        (st = view(m, "output.weight", c->n_embd, c->n_vocab, false, &m->output)))
        return st;
    /* llama3 RoPE scaling: theta of pair i divided by rope_freqs[i] (llama.cpp reads it whenever present) */
    struct dp_weight rf;
    if ((st = view(m, "rope_freqs.weight", c->n_rot / 2, 1, false, &rf))) return st;
    if (rf.data) {
        if (!(m->rope_factors = dequant_vec_owned(&rf, c->n_rot / 2))) return DP_ERR_NOMEM;
        for (int i = 0; i < c->n_rot / 2; i++)
            if (!(m->rope_factors[i] > 0) || !isfinite(m->rope_factors[i]))
                return dp_fail(DP_ERR_FORMAT, "%s: rope_freqs.weight[%d] = %g is not a positive frequency factor",
                               m->path, i, m->rope_factors[i]);
    }
    c->tied_output = m->output.data == NULL;
    if (c->tied_output) m->output = m->tok_embd;
    for (int l = 0; l < c->n_layers; l++) {
        struct dp_layer *L = &m->layers[l];
        struct dp_layer_shape sh = L->shape;
        int64_t q = (int64_t)sh.n_head * c->head_dim, kv = (int64_t)sh.n_head_kv * c->head_dim, d = c->n_embd;
        char n[16][64];
        bool phi3 = !strcmp(c->arch, "phi3"), qk_norm = !strcmp(c->arch, "qwen3") || !strcmp(c->arch, "gemma3");
        bool post = !strcmp(c->arch, "gemma2") || !strcmp(c->arch, "gemma3");
        char qkv_name[64];
        snprintf(qkv_name, sizeof qkv_name, "blk.%d.attn_qkv.weight", l);
        bool fused_qkv = phi3 && dp_gguf_find_tensor(m->gguf, qkv_name);
        struct dp_weight *ws3[3] = {&L->wq, &L->wk, &L->wv}, *ws2[2] = {&L->w_gate, &L->w_up};
        const char *sfx[16] = {"attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight",
                               "attn_output.weight", "attn_q.bias", "attn_k.bias", "attn_v.bias",
                               "attn_output.bias", "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight",
                               "ffn_down.weight", "ffn_down.bias", "ffn_gate.bias", "ffn_up.bias"};
        for (int i = 0; i < 16; i++) snprintf(n[i], sizeof n[i], "blk.%d.%s", l, sfx[i]);
        L->has_attn = sh.n_head > 0;
        L->has_ffn = sh.n_ff > 0;
        if (L->has_attn && !sh.n_head_kv) {
            /* linear attention (deci): x + W (attn_norm . RMSNorm(x)), W square, no bias */
            if (q != d)
                return dp_fail(DP_ERR_FORMAT, "%s: block %d: linear attention needs head_count * head size == %lld",
                               m->path, l, (long long)d);
            if ((st = view(m, n[0], d, 1, true, &L->attn_norm)) || (st = view(m, n[4], d, d, true, &L->wo))) return st;
        } else if (L->has_attn && fused_qkv) {
            if ((st = view(m, n[0], d, 1, true, &L->attn_norm)) || (st = fused(m, l, "attn_qkv.weight", d, q, kv, kv, ws3)) ||
                (st = view(m, n[4], q, d, true, &L->wo)))
                return st;
        } else if (L->has_attn) {
            /* qwen2 has q/k/v biases (llama.cpp requires them): a file without them is damaged */
            bool qkv_bias = !strcmp(c->arch, "qwen2");
            const char *hc = "attention.head_count", *hkv = "attention.head_count_kv";
            if ((st = view(m, n[0], d, 1, true, &L->attn_norm))) return st;
            for (int i = 1; i <= 7; i++) {
                if (i == 4) continue;
                bool is_kv = i == 2 || i == 3 || i == 6 || i == 7;
                struct dp_weight *w = i == 1 ? &L->wq : i == 2 ? &L->wk : i == 3 ? &L->wv
                                    : i == 5 ? &L->bq : i == 6 ? &L->bk : &L->bv;
                st = view(m, n[i], i < 4 ? d : is_kv ? kv : q, i < 4 ? (is_kv ? kv : q) : 1, i < 4 || qkv_bias, w);
                if ((st = with_key(m, st, n[i], "%s.%s = %d x head size %d", c->arch, is_kv ? hkv : hc,
                                   is_kv ? sh.n_head_kv : sh.n_head, c->head_dim)))
                    return st;
            }
            if ((st = with_key(m, view(m, n[4], q, d, true, &L->wo), n[4], "%s.%s = %d x head size %d, %s.embedding_length = %lld",
                               c->arch, hc, sh.n_head, c->head_dim, c->arch, (long long)d)) ||
                (st = view(m, n[8], d, 1, false, &L->bo)))
                return st;
        }
        if (L->has_attn && L->shape.n_head_kv && (qk_norm || post)) {
            char nm[3][64];
            snprintf(nm[0], sizeof nm[0], "blk.%d.attn_q_norm.weight", l);
            snprintf(nm[1], sizeof nm[1], "blk.%d.attn_k_norm.weight", l);
            snprintf(nm[2], sizeof nm[2], "blk.%d.post_attention_norm.weight", l);
            if ((st = view(m, nm[0], c->head_dim, 1, qk_norm, &L->q_norm)) ||
                (st = view(m, nm[1], c->head_dim, 1, qk_norm, &L->k_norm)) ||
                (st = view(m, nm[2], d, 1, post, &L->attn_post_norm)))
                return st;
        }
        if (L->has_ffn && post) {
            char nm[64];
            snprintf(nm, sizeof nm, "blk.%d.post_ffw_norm.weight", l);
            if ((st = view(m, nm, d, 1, true, &L->ffn_post_norm))) return st;
        }
        const char *ffk = "feed_forward_length";
        if (L->has_ffn && phi3) {
            /* phi3: ffn_up holds the gate rows, then the up rows (llama.cpp's fused SwiGLU) */
            if ((st = view(m, n[9], d, 1, true, &L->ffn_norm)) ||
                (st = fused(m, l, "ffn_up.weight", d, sh.n_ff, sh.n_ff, 0, ws2)) ||
                (st = with_key(m, view(m, n[12], sh.n_ff, d, true, &L->w_down), n[12], "%s.%s = %d", c->arch, ffk, sh.n_ff)))
                return st;
        } else if (L->has_ffn &&
            ((st = view(m, n[9], d, 1, true, &L->ffn_norm)) ||
             (st = with_key(m, view(m, n[10], d, sh.n_ff, true, &L->w_gate), n[10], "%s.%s = %d", c->arch, ffk, sh.n_ff)) ||
             (st = with_key(m, view(m, n[11], d, sh.n_ff, true, &L->w_up), n[11], "%s.%s = %d", c->arch, ffk, sh.n_ff)) ||
             (st = with_key(m, view(m, n[12], sh.n_ff, d, true, &L->w_down), n[12], "%s.%s = %d", c->arch, ffk, sh.n_ff)) ||
             (st = view(m, n[13], d, 1, false, &L->b_down)) || (st = view(m, n[14], sh.n_ff, 1, false, &L->b_gate)) ||
             (st = view(m, n[15], sh.n_ff, 1, false, &L->b_up))))
            return st;
    }
    return DP_OK;
}

static dp_status open_gguf(struct dp_model *m) {
    dp_status st = dp_gguf_open(m->path, &m->gguf);
    if (st) return st;
    strcpy(m->format, "gguf");
    if ((st = load_gguf_config(m))) return st;
    if ((st = dp_tokenizer_from_gguf(m->gguf, &m->tok))) return st;
    const struct dp_gguf_tensor *emb = dp_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!emb) return dp_fail(DP_ERR_FORMAT, "%s: tensor 'token_embd.weight' is missing", m->path);
    m->cfg.n_vocab = (int)emb->ne[1];
    if (m->cfg.n_vocab != dp_tokenizer_n_vocab(m->tok))
        return dp_fail(DP_ERR_FORMAT, "%s: token_embd has %d rows but the vocabulary has %d tokens", m->path,
                       m->cfg.n_vocab, dp_tokenizer_n_vocab(m->tok));
    return load_gguf_weights(m);
}

/* ---- loading: llama2.c checkpoints ---- */

/*
 * Layout (llama2.c run.c, legacy version 0): seven int32 (dim, hidden_dim,
 * n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size
 * means an unshared classifier), then f32 arrays: token embedding (vocab,
 * dim), rms_att (L, dim), wq (L, dim, dim), wk, wv (L, kv_dim, dim), wo
 * (L, dim, dim), rms_ffn (L, dim), w1 (L, hidden, dim), w2 (L, dim, hidden),
 * w3 (L, hidden, dim), rms_final (dim), freq_cis_real and _imag
 * (seq_len, head_size/2) each, then wcls (vocab, dim) when unshared.
 */
static dp_status open_llama2c(struct dp_model *m, const char *vocab_path) {
    dp_status st = dp_map_open(m->path, &m->map);
    if (st) return st;
    strcpy(m->format, "llama2c");
    if (m->map.size < 28) return dp_fail(DP_ERR_FORMAT, "%s: too short for a llama2.c checkpoint header", m->path);
    int32_t h[7];
    memcpy(h, m->map.data, sizeof h);
    bool shared = h[5] > 0;
    int64_t dim = h[0], hidden = h[1], L = h[2], nh = h[3], nkv = h[4], vocab = h[5] < 0 ? -(int64_t)h[5] : h[5],
            seq = h[6];
    struct dp_config *c = &m->cfg;
    strcpy(c->arch, "llama");
    if ((st = check_dim(m, "dim", dim, 1 << 16)) || (st = check_dim(m, "hidden_dim", hidden, 1 << 18)) ||
        (st = check_dim(m, "n_layers", L, DP_MAX_LAYERS)) || (st = check_dim(m, "n_heads", nh, 1024)) ||
        (st = check_dim(m, "n_kv_heads", nkv, nh)) || (st = check_dim(m, "vocab_size", vocab, 1 << 22)) ||
        (st = check_dim(m, "seq_len", seq, 1 << 20)))
        return st;
    if (dim % nh || nh % nkv || (dim / nh) % 2)
        return dp_fail(DP_ERR_FORMAT, "%s: dim %lld, %lld heads and %lld KV heads do not fit together", m->path,
                       (long long)dim, (long long)nh, (long long)nkv);
    int64_t hd = dim / nh, kvd = nkv * hd;
    int64_t floats = vocab * dim + L * (dim + dim * dim + 2 * kvd * dim + dim * dim + dim + 3 * hidden * dim) + dim +
                     seq * hd + (shared ? 0 : vocab * dim);
    if ((uint64_t)m->map.size != 28 + (uint64_t)floats * 4)
        return dp_fail(DP_ERR_FORMAT, "%s: size %zu does not match the header (expected %llu bytes)", m->path,
                       m->map.size, (unsigned long long)(28 + (uint64_t)floats * 4));
    *c = (struct dp_config){.n_layers = (int)L, .n_embd = (int)dim, .n_head = (int)nh, .n_head_kv = (int)nkv,
                            .head_dim = (int)hd, .n_ff = (int)hidden, .n_vocab = (int)vocab, .n_ctx_train = (int)seq,
                            .n_rot = (int)hd, .rope_neox = false, .rope_base = 10000.0f, .norm_eps = 1e-5f,
                            .tied_output = shared};
    strcpy(c->arch, "llama");
    if (!vocab_path)
        return dp_fail(DP_ERR_ARG, "%s: a llama2.c checkpoint needs its tokenizer file (--vocab tok512.bin)", m->path);
    if ((st = dp_tokenizer_from_llama2c(vocab_path, c->n_vocab, &m->tok))) return st;
    m->layers = dp_calloc((size_t)L, sizeof *m->layers);
    if (!m->layers) return DP_ERR_NOMEM;
    const float *p = (const float *)(m->map.data + 28);
#define TAKE(w, nin, nout, nm) (w = (struct dp_weight){p, DP_TYPE_F32, (nin), (nout), (nm)}, p += (nin) * (nout))
    TAKE(m->tok_embd, dim, vocab, "token_embedding_table");
    for (int l = 0; l < L; l++) TAKE(m->layers[l].attn_norm, dim, 1, "rms_att_weight");
    for (int l = 0; l < L; l++) TAKE(m->layers[l].wq, dim, dim, "wq");
    for (int l = 0; l < L; l++) TAKE(m->layers[l].wk, dim, kvd, "wk");
    for (int l = 0; l < L; l++) TAKE(m->layers[l].wv, dim, kvd, "wv");
    for (int l = 0; l < L; l++) TAKE(m->layers[l].wo, dim, dim, "wo");
    for (int l = 0; l < L; l++) TAKE(m->layers[l].ffn_norm, dim, 1, "rms_ffn_weight");
    for (int l = 0; l < L; l++) TAKE(m->layers[l].w_gate, dim, hidden, "w1");
    for (int l = 0; l < L; l++) TAKE(m->layers[l].w_down, hidden, dim, "w2");
    for (int l = 0; l < L; l++) TAKE(m->layers[l].w_up, dim, hidden, "w3");
    TAKE(m->output_norm, dim, 1, "rms_final_weight");
    p += seq * hd; /* freq_cis_real and _imag: RoPE is computed, not read */
    if (shared) m->output = m->tok_embd;
    else TAKE(m->output, dim, vocab, "wcls");
#undef TAKE
    for (int l = 0; l < L; l++) {
        m->layers[l].shape = (struct dp_layer_shape){c->n_head, c->n_head_kv, c->n_ff};
        m->layers[l].has_attn = m->layers[l].has_ffn = true;
    }
    return DP_OK;
}

/* Whether the open regular file fd starts with GGUF's magic. */
static bool is_gguf(int fd) {
    char magic[4] = {0};
    return pread(fd, magic, 4, 0) == 4 && !memcmp(magic, "GGUF", 4);
}

struct dp_model_params dp_model_default_params(void) {
    struct dp_model_params p = {.vocab_path = NULL, .act = DP_ACT_EXACT};
    return p;
}

enum dp_act dp_model_act(const struct dp_model *m) { return m->act; }

dp_status dp_model_open_with(const char *path, const struct dp_model_params *p, struct dp_model **out) {
    *out = NULL;
    if (!p) return dp_fail(DP_ERR_ARG, "%s: model params are required", path);
    if (p->act != DP_ACT_DEFAULT && p->act != DP_ACT_EXACT && p->act != DP_ACT_Q8)
        return dp_fail(DP_ERR_ARG, "%s: activation mode %d is not one of exact, q8", path, (int)p->act);
    dp_status st = dp_model_open(path, p->vocab_path, out);
    if (!st) (*out)->act = p->act == DP_ACT_Q8 ? DP_ACT_Q8 : DP_ACT_EXACT;
    return st;
}

dp_status dp_model_open(const char *path, const char *vocab_path, struct dp_model **out) {
    *out = NULL;
    struct dp_model *m = dp_calloc(1, sizeof *m);
    if (!m) return DP_ERR_NOMEM;
    m->act = DP_ACT_EXACT;
    m->path = strdup(path);
    if (!m->path) {
        free(m);
        return dp_fail(DP_ERR_NOMEM, "out of memory");
    }
    /* a regular file only (dp_open_read refuses a FIFO or a device at once instead of blocking) */
    int fd;
    uint64_t size;
    dp_status st = dp_open_read(path, &fd, &size);
    if (!st) {
        bool gguf = is_gguf(fd);
        close(fd);
        st = gguf ? open_gguf(m) : open_llama2c(m, vocab_path);
    }
    if (!st) {
        /* what a family did not set is the llama recipe */
        struct dp_family *f = &m->family;
        if (f->embd_scale == 0) f->embd_scale = 1.0f;
        if (f->attn_scale == 0) f->attn_scale = 1.0f / sqrtf((float)m->cfg.head_dim);
        m->max_head = m->max_head_kv = m->max_ff = 0;
        for (int l = 0; l < m->cfg.n_layers; l++) {
            if (m->layers[l].rope_base == 0) m->layers[l].rope_base = m->cfg.rope_base;
            struct dp_layer_shape s = m->layers[l].shape;
            if (s.n_head > m->max_head) m->max_head = s.n_head;
            if (s.n_head_kv > m->max_head_kv) m->max_head_kv = s.n_head_kv;
            if (s.n_ff > m->max_ff) m->max_ff = s.n_ff;
        }
    }
    if (st) {
        dp_model_close(m);
        return st;
    }
    *out = m;
    return DP_OK;
}

void dp_model_close(struct dp_model *m) {
    if (!m) return;
    dp_tokenizer_free(m->tok);
    dp_gguf_close(m->gguf);
    dp_map_close(&m->map);
    free(m->layers);
    free(m->rope_factors);
    free(m->path);
    free(m);
}

const struct dp_config *dp_model_config(const struct dp_model *m) { return &m->cfg; }
struct dp_layer_shape dp_model_layer_shape(const struct dp_model *m, int layer) {
    DP_ASSERT(layer >= 0 && layer < m->cfg.n_layers);
    return m->layers[layer].shape;
}
const struct dp_tokenizer *dp_model_tokenizer(const struct dp_model *m) { return m->tok; }
const char *dp_model_format(const struct dp_model *m) { return m->format; }
const char *dp_model_path(const struct dp_model *m) { return m->path; }

/* ---- masks and statistics ---- */

/*
 * A sublayer a file lacks (deci) is not "removed": the mask keeps it and
 * every user of the mask also checks has_attn/has_ffn, so --drop lists and
 * dp_mask_format name only what the user removed from this file.
 */
void dp_mask_all(const struct dp_model *m, struct dp_mask *mask) {
    memset(mask, 0, sizeof *mask);
    mask->n_layers = m->cfg.n_layers;
    for (int l = 0; l < m->cfg.n_layers; l++) mask->attn[l] = mask->ffn[l] = true;
}

dp_status dp_mask_drop(struct dp_mask *out, const char *units) {
    struct dp_mask tmp = *out, *mask = &tmp; /* applied only when the whole list is valid */
    const char *p = units;
    while (*p) {
        char kind = *p++;
        char *end;
        if (kind != 'b' && kind != 'a' && kind != 'f')
            return dp_fail(DP_ERR_ARG, "unit list '%s': units are b<i>, a<i> or f<i>", units);
        long i = strtol(p, &end, 10);
        if (end == p || (*end && *end != ','))
            return dp_fail(DP_ERR_ARG, "unit list '%s': units are b<i>, a<i> or f<i>", units);
        if (i < 0 || i >= mask->n_layers)
            return dp_fail(DP_ERR_ARG, "unit list '%s': %c%ld does not exist (the model has %d blocks)", units, kind,
                           i, mask->n_layers);
        if (kind != 'f') mask->attn[i] = false;
        if (kind != 'a') mask->ffn[i] = false;
        p = *end ? end + 1 : end;
        if (*end && !*p) return dp_fail(DP_ERR_ARG, "unit list '%s' ends with a comma", units);
    }
    *out = tmp;
    return DP_OK;
}

void dp_mask_format(const struct dp_mask *mask, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = 0;
    for (int l = 0; l < mask->n_layers; l++) {
        char u[24];
        if (!mask->attn[l] && !mask->ffn[l]) snprintf(u, sizeof u, "b%d", l);
        else if (!mask->attn[l]) snprintf(u, sizeof u, "a%d", l);
        else if (!mask->ffn[l]) snprintf(u, sizeof u, "f%d", l);
        else continue;
        int w = snprintf(buf + n, cap > n ? cap - n : 0, "%s%s", n ? "," : "", u);
        if (w > 0) n += (size_t)w;
        if (n >= cap) {
            buf[cap - 1] = 0;
            return;
        }
    }
}

static void count(struct dp_model_stats *s, const struct dp_weight *w) {
    if (!w->data) return;
    int64_t n = w->n_in * w->n_out;
    size_t b = dp_type_row_bytes(w->type, w->n_in) * (size_t)w->n_out;
    s->n_params += n;
    s->n_bytes += (int64_t)b;
    s->type_params[w->type] += n;
    s->type_bytes[w->type] += (int64_t)b;
}

void dp_model_stats(const struct dp_model *m, const struct dp_mask *mask, struct dp_model_stats *out) {
    memset(out, 0, sizeof *out);
    count(out, &m->tok_embd);
    count(out, &m->output_norm);
    if (!m->cfg.tied_output) count(out, &m->output);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const struct dp_layer *L = &m->layers[l];
        bool a = L->has_attn && (!mask || mask->attn[l]), f = L->has_ffn && (!mask || mask->ffn[l]);
        if (a) {
            const struct dp_weight *ws[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->bq, &L->bk, &L->bv, &L->bo};
            for (size_t i = 0; i < sizeof ws / sizeof *ws; i++) count(out, ws[i]);
            out->kv_bytes_per_token += 2 * (int64_t)L->shape.n_head_kv * m->cfg.head_dim * (int64_t)sizeof(float);
        }
        if (f) {
            const struct dp_weight *ws[] = {&L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down, &L->b_down, &L->b_gate,
                                            &L->b_up};
            for (size_t i = 0; i < sizeof ws / sizeof *ws; i++) count(out, ws[i]);
        }
    }
}

/* ---- sessions ---- */

#define MAX_BATCH DP_SESSION_MAX_BATCH

struct dp_session {
    const struct dp_model *m;
    struct dp_mask mask;
    int n_ctx, pos;
    int pos_hi;                   /* the furthest position written since the last reset */
    float **k_cache, **v_cache;   /* per layer: (n_head_kv, kv_rows, head_dim), NULL when removed */
    int *kv_rows, *kv_ring;       /* per layer: cache rows; ring size of a sliding window, 0: linear */
    /* scratch for a batch of up to MAX_BATCH tokens */
    float *x;                     /* (B, dim) residual stream */
    float *x_in;                  /* (B, dim) sublayer input copy for observers */
    float *xb;                    /* (B, dim) normed input */
    float *q;                     /* (B, n_head*hd) */
    float *k, *v;                 /* (B, n_kv*hd) */
    float *att;                   /* (B, n_head*hd) attention output */
    float *gate, *up;             /* (B, n_ff) */
    float *delta;                 /* (B, dim) sublayer output */
    float *wvec;                  /* (max(dim, qd, n_ff)) a dequantized norm or bias vector */
    float *scores;                /* (n_threads_max, n_ctx) */
    int scores_threads;
    struct dp_hooks hooks;        /* attached replacements (dp_session_set_hooks) */
    bool has_hooks;
    enum dp_act act;              /* DP_ACT_EXACT or DP_ACT_Q8 */
};

void dp_session_set_act(struct dp_session *s, enum dp_act act) {
    s->act = act == DP_ACT_DEFAULT ? s->m->act : act;
}

enum dp_act dp_session_act(const struct dp_session *s) { return s->act; }

void dp_session_set_hooks(struct dp_session *s, const struct dp_hooks *hooks) {
    s->has_hooks = hooks != NULL;
    if (hooks) s->hooks = *hooks;
}

dp_status dp_session_new(const struct dp_model *m, const struct dp_mask *mask, int n_ctx, struct dp_session **out) {
    *out = NULL;
    const struct dp_config *c = &m->cfg;
    if (n_ctx < 1 || n_ctx > (1 << 24)) return dp_fail(DP_ERR_ARG, "context size %d is out of range", n_ctx);
    struct dp_session *s = dp_calloc(1, sizeof *s);
    if (!s) return DP_ERR_NOMEM;
    s->m = m;
    if (mask) s->mask = *mask;
    else dp_mask_all(m, &s->mask);
    s->n_ctx = n_ctx;
    s->act = m->act;
    s->k_cache = dp_calloc((size_t)c->n_layers, sizeof *s->k_cache);
    s->v_cache = dp_calloc((size_t)c->n_layers, sizeof *s->v_cache);
    s->kv_rows = dp_calloc((size_t)c->n_layers, sizeof *s->kv_rows);
    s->kv_ring = dp_calloc((size_t)c->n_layers, sizeof *s->kv_ring);
    bool ok = s->k_cache && s->v_cache && s->kv_rows && s->kv_ring;
    for (int l = 0; ok && l < c->n_layers; l++) {
        if (!s->mask.attn[l] || !m->layers[l].has_attn || !m->layers[l].shape.n_head_kv) continue;
        /*
         * A sliding window of W keys needs the last W - 1 positions before a
         * batch plus the batch: a ring of W + MAX_BATCH positions, stored
         * twice so every window is contiguous (layer.h). Memory stays linear
         * in the window, not the context.
         */
        int W = m->layers[l].window, ring = W + MAX_BATCH;
        s->kv_ring[l] = W && 2 * ring < n_ctx ? ring : 0;
        s->kv_rows[l] = s->kv_ring[l] ? 2 * ring : n_ctx;
        size_t n = (size_t)s->kv_rows[l] * m->layers[l].shape.n_head_kv * c->head_dim;
        s->k_cache[l] = dp_malloc(n * sizeof(float));
        s->v_cache[l] = dp_malloc(n * sizeof(float));
        ok = s->k_cache[l] && s->v_cache[l];
    }
    size_t B = MAX_BATCH, qd = (size_t)m->max_head * c->head_dim, kvd = (size_t)m->max_head_kv * c->head_dim;
    s->scores_threads = 256;
    float **bufs[] = {&s->x, &s->x_in, &s->xb, &s->q, &s->k, &s->v, &s->att, &s->gate, &s->up, &s->delta, &s->scores, &s->wvec};
    size_t sizes[] = {B * c->n_embd, B * c->n_embd, B * c->n_embd, B * qd, B * kvd, B * kvd, B * qd,
                      B * m->max_ff, B * m->max_ff, B * c->n_embd, (size_t)s->scores_threads * n_ctx,
                      (size_t)c->n_embd + qd + kvd + m->max_ff};
    for (size_t i = 0; ok && i < sizeof bufs / sizeof *bufs; i++) ok = (*bufs[i] = dp_malloc(sizes[i] * sizeof(float)));
    if (!ok) {
        dp_session_free(s);
        return dp_fail(DP_ERR_NOMEM, "out of memory for a session of %d positions", n_ctx);
    }
    *out = s;
    return DP_OK;
}

void dp_session_free(struct dp_session *s) {
    if (!s) return;
    for (int l = 0; s->k_cache && l < s->m->cfg.n_layers; l++) {
        free(s->k_cache[l]);
        free(s->v_cache[l]);
    }
    free(s->k_cache);
    free(s->v_cache);
    free(s->kv_rows);
    free(s->kv_ring);
    float *bufs[] = {s->x, s->x_in, s->xb, s->q, s->k, s->v, s->att, s->gate, s->up, s->delta, s->scores, s->wvec};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(s);
}

void dp_session_reset(struct dp_session *s) { s->pos = s->pos_hi = 0; }
void dp_session_rewind(struct dp_session *s, int pos) {
    DP_ASSERT(pos >= 0 && pos <= s->pos);
    s->pos = pos;
}
const struct dp_mask *dp_session_mask(const struct dp_session *s) { return &s->mask; }
const struct dp_model *dp_session_model(const struct dp_session *s) { return s->m; }
int dp_session_n_ctx(const struct dp_session *s) { return s->n_ctx; }
int dp_session_pos(const struct dp_session *s) { return s->pos; }

/* ---- the forward pass ---- */

/*
 * Residual add of a sublayer's output (or of a removed unit's replacement),
 * with the observer seeing input and output.
 */
static void residual_rows(float *x, float *x_in, float *delta, int dim, int unit, bool kept, int n, int pos0,
                          const struct dp_hooks *hooks) {
    size_t len = (size_t)n * dim;
    if (hooks && hooks->observe) memcpy(x_in, x, len * sizeof(float));
    if (!kept && hooks && hooks->replace) kept = hooks->replace(hooks->ctx, unit, x, delta, n, dim, pos0);
    if (kept)
        for (size_t i = 0; i < len; i++) x[i] += delta[i];
    if (hooks && hooks->observe) hooks->observe(hooks->ctx, unit, x_in, x, n, dim, pos0);
}

static void residual(struct dp_session *s, int unit, bool kept, int n, int pos0, const struct dp_hooks *hooks) {
    residual_rows(s->x, s->x_in, s->delta, s->m->cfg.n_embd, unit, kept, n, pos0, hooks);
}

static dp_status forward_batch(struct dp_session *s, struct dp_pool *pool, const int *tokens, const float *start_x,
                               int n, float *logits, enum dp_logits_mode mode, const struct dp_hooks *hooks,
                               bool last_batch) {
    const struct dp_model *m = s->m;
    const struct dp_config *c = &m->cfg;
    int dim = c->n_embd;
    float *nb = s->wvec;
    int start = hooks ? hooks->start_unit : 0;
    if (start_x) {
        memcpy(s->x, start_x, (size_t)n * dim * sizeof(float));
    } else {
        dp_layer_embed(m, tokens, n, s->x);
    }
    /*
     * Rows whose last-layer outputs are needed: all when observed or for all
     * logits; the last one for last-token logits; none when no logits come
     * from this batch (its keys and values are still cached).
     */
    bool observed = hooks && hooks->observe;
    int keep_from = observed || mode == DP_LOGITS_ALL ? 0 : mode == DP_LOGITS_LAST && last_batch ? n - 1 : n;
    int rows = n, row0 = 0; /* rows of s->x still computed: positions s->pos+row0 .. */
    if (atomic_load_explicit(&dp_profile_on, memory_order_relaxed)) {
        int64_t run = 0;
        for (int l = start / 2; l < c->n_layers; l++)
            run += (2 * l >= start && s->mask.attn[l] && m->layers[l].has_attn) + (s->mask.ffn[l] && m->layers[l].has_ffn);
        dp_profile_tokens(n, run * n);
    }
    for (int l = start / 2; l < c->n_layers; l++) {
        bool a = s->mask.attn[l] && m->layers[l].has_attn, f = s->mask.ffn[l] && m->layers[l].has_ffn;
        int from = l == c->n_layers - 1 ? keep_from : 0;
        if (2 * l >= start && a) {
            struct dp_attn_io io = {s->xb, s->q, s->k, s->v, s->k_cache[l], s->v_cache[l], s->kv_rows[l],
                                    s->kv_ring[l], s->att, s->scores, s->n_ctx, s->scores_threads, s->delta, nb};
            dp_layer_attention(m, l, pool, s->act, s->x, n, from, s->pos, &io);
        }
        if (from > 0) {
            if (from < n) memmove(s->x, s->x + (size_t)from * dim, (size_t)(n - from) * dim * sizeof(float));
            rows = n - from;
            row0 = from;
        }
        if (!rows) break;
        if (2 * l >= start) residual(s, 2 * l, a, rows, s->pos + row0, hooks);
        if (f) dp_layer_ffn(m, l, pool, s->act, s->x, rows, s->xb, s->gate, s->up, s->gate, s->delta, nb);
        residual(s, 2 * l + 1, f, rows, s->pos + row0, hooks);
    }
    if (mode == DP_LOGITS_ALL || (mode == DP_LOGITS_LAST && last_batch)) {
        int first = mode == DP_LOGITS_ALL ? 0 : rows - 1, n_out = rows - first;
        dp_layer_head(m, pool, s->act, s->x + (size_t)first * dim, n_out, s->xb, logits, nb);
    }
    s->pos += n;
    if (s->pos > s->pos_hi) s->pos_hi = s->pos;
    return DP_OK;
}

dp_status dp_session_forward_hooked(struct dp_session *s, struct dp_pool *pool, const int *tokens, int n,
                                    float *logits, enum dp_logits_mode mode, const struct dp_hooks *hooks) {
    const struct dp_config *c = &s->m->cfg;
    if (n < 1) return dp_fail(DP_ERR_ARG, "forward pass of %d tokens", n);
    int start = hooks ? hooks->start_unit : 0;
    if (start < 0 || start > 2 * c->n_layers || (start > 0) != (hooks && hooks->start_x != NULL))
        return dp_fail(DP_ERR_ARG, "start unit %d needs a residual stream", start);
    if (n > s->n_ctx - s->pos)
        return dp_fail(DP_ERR_ARG, "%d tokens do not fit: %d of %d context positions are used", n, s->pos, s->n_ctx);
    for (int l = 0; l < c->n_layers; l++)
        if (s->kv_ring[l] && s->pos_hi - s->pos > MAX_BATCH)
            return dp_fail(DP_ERR_ARG, "the session went back %d positions; block %d's sliding-window cache keeps %d",
                           s->pos_hi - s->pos, l, MAX_BATCH);
    for (int t = 0; !start && t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= c->n_vocab)
            return dp_fail(DP_ERR_ARG, "token id %d is outside the vocabulary (%d tokens)", tokens[t], c->n_vocab);
    for (int done = 0; done < n;) {
        int b = n - done < MAX_BATCH ? n - done : MAX_BATCH;
        float *lg = mode == DP_LOGITS_ALL ? logits + (size_t)done * c->n_vocab : logits;
        const float *sx = start ? hooks->start_x + (size_t)done * c->n_embd : NULL;
        dp_status st = forward_batch(s, pool, tokens ? tokens + done : NULL, sx, b, lg, mode, hooks, done + b == n);
        if (st) return st;
        done += b;
    }
    return DP_OK;
}

dp_status dp_session_forward(struct dp_session *s, struct dp_pool *pool, const int *tokens, int n, float *logits,
                             enum dp_logits_mode mode) {
    return dp_session_forward_hooked(s, pool, tokens, n, logits, mode, s->has_hooks ? &s->hooks : NULL);
}

/* ---- several sequences in one weight pass ---- */

/* Row buffers of a batch of n_seg sequences of up to MAX_BATCH tokens. */
struct multi_scratch {
    float *x, *x_in, *xb, *q, *k, *v, *att, *gate, *up, *delta, *logits;
};

static void multi_scratch_free(struct multi_scratch *b) {
    float *bufs[] = {b->x, b->x_in, b->xb, b->q, b->k, b->v, b->att, b->gate, b->up, b->delta, b->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
}

static dp_status multi_scratch_new(const struct dp_model *m, int n_seg, int b, struct multi_scratch *out) {
    const struct dp_config *c = &m->cfg;
    memset(out, 0, sizeof *out);
    size_t B = (size_t)n_seg * b, qd = (size_t)m->max_head * c->head_dim, kvd = (size_t)m->max_head_kv * c->head_dim;
    float **bufs[] = {&out->x, &out->x_in, &out->xb, &out->q, &out->k, &out->v, &out->att, &out->gate, &out->up,
                      &out->delta, &out->logits};
    size_t sizes[] = {B * c->n_embd, B * c->n_embd, B * c->n_embd, B * qd, B * kvd, B * kvd, B * qd,
                      B * m->max_ff, B * m->max_ff, B * c->n_embd, B * c->n_vocab};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (!(*bufs[i] = dp_malloc((sizes[i] ? sizes[i] : 1) * sizeof(float)))) {
            multi_scratch_free(out);
            return dp_fail(DP_ERR_NOMEM, "out of memory for a batch of %d sequences", n_seg);
        }
    return DP_OK;
}

/* One batch of n tokens (<= MAX_BATCH) of every sequence: the recipe of forward_batch, all logits. */
static void forward_multi_batch(struct dp_session *const *ss, int n_seg, struct dp_pool *pool,
                                const int *const *tokens, const float *const *start_x, int n, float *const *logits,
                                const struct dp_hooks *const *hooks, const struct multi_scratch *b) {
    struct dp_session *s0 = ss[0];
    const struct dp_model *m = s0->m;
    const struct dp_config *c = &m->cfg;
    int dim = c->n_embd, rows = n_seg * n, pos = s0->pos;
    int start = hooks[0] ? hooks[0]->start_unit : 0;
    for (int sg = 0; sg < n_seg; sg++) {
        float *x = b->x + (size_t)sg * n * dim;
        if (start_x[sg]) memcpy(x, start_x[sg], (size_t)n * dim * sizeof(float));
        else dp_layer_embed(m, tokens[sg], n, x);
    }
    if (atomic_load_explicit(&dp_profile_on, memory_order_relaxed)) {
        int64_t run = 0;
        for (int l = start / 2; l < c->n_layers; l++)
            run += (2 * l >= start && s0->mask.attn[l] && m->layers[l].has_attn) + (s0->mask.ffn[l] && m->layers[l].has_ffn);
        dp_profile_tokens((int64_t)rows, run * rows);
    }
    struct dp_attn_io io[DP_MULTI_MAX];
    for (int l = start / 2; l < c->n_layers; l++) {
        bool a = s0->mask.attn[l] && m->layers[l].has_attn, f = s0->mask.ffn[l] && m->layers[l].has_ffn;
        if (2 * l >= start && a) {
            for (int sg = 0; sg < n_seg; sg++) {
                struct dp_session *s = ss[sg];
                io[sg] = (struct dp_attn_io){b->xb, b->q, b->k, b->v, s->k_cache[l], s->v_cache[l], s->kv_rows[l],
                                             s->kv_ring[l], b->att, s->scores, s->n_ctx, s->scores_threads, b->delta,
                                             s0->wvec};
            }
            dp_layer_attention_seg(m, l, pool, s0->act, b->x, n_seg, n, 0, pos, io);
        }
        for (int sg = 0; sg < n_seg && 2 * l >= start; sg++) {
            size_t o = (size_t)sg * n * dim;
            residual_rows(b->x + o, b->x_in + o, b->delta + o, dim, 2 * l, a, n, pos, hooks[sg]);
        }
        if (f) dp_layer_ffn_seg(m, l, pool, s0->act, b->x, rows, n, b->xb, b->gate, b->up, b->gate, b->delta, s0->wvec);
        for (int sg = 0; sg < n_seg; sg++) {
            size_t o = (size_t)sg * n * dim;
            residual_rows(b->x + o, b->x_in + o, b->delta + o, dim, 2 * l + 1, f, n, pos, hooks[sg]);
        }
    }
    dp_layer_head_seg(m, pool, s0->act, b->x, rows, n, b->xb, b->logits, s0->wvec);
    for (int sg = 0; sg < n_seg; sg++) {
        memcpy(logits[sg], b->logits + (size_t)sg * n * c->n_vocab, (size_t)n * c->n_vocab * sizeof(float));
        ss[sg]->pos += n;
        if (ss[sg]->pos > ss[sg]->pos_hi) ss[sg]->pos_hi = ss[sg]->pos;
    }
}

dp_status dp_session_forward_multi(struct dp_session *const *ss, int n_seg, struct dp_pool *pool,
                                   const int *const *tokens, int n, float *const *logits,
                                   const struct dp_hooks *const *hooks) {
    if (n_seg < 1 || n_seg > DP_MULTI_MAX) return dp_fail(DP_ERR_ARG, "a batch of %d sequences (1..%d)", n_seg, DP_MULTI_MAX);
    const struct dp_model *m = ss[0]->m;
    const struct dp_config *c = &m->cfg;
    if (n < 1) return dp_fail(DP_ERR_ARG, "forward pass of %d tokens", n);
    int start = hooks[0] ? hooks[0]->start_unit : 0;
    for (int sg = 0; sg < n_seg; sg++) {
        const struct dp_session *s = ss[sg];
        int st_sg = hooks[sg] ? hooks[sg]->start_unit : 0;
        if (s->m != m || s->pos != ss[0]->pos || s->act != ss[0]->act || memcmp(&s->mask, &ss[0]->mask, sizeof s->mask) ||
            st_sg != start)
            return dp_fail(DP_ERR_ARG, "the sequences of a batch need one model, mask, mode, position and start unit");
        if (start < 0 || start > 2 * c->n_layers || (start > 0) != (hooks[sg] && hooks[sg]->start_x != NULL))
            return dp_fail(DP_ERR_ARG, "start unit %d needs a residual stream", start);
        if (n > s->n_ctx - s->pos)
            return dp_fail(DP_ERR_ARG, "%d tokens do not fit: %d of %d context positions are used", n, s->pos, s->n_ctx);
        for (int l = 0; l < c->n_layers; l++)
            if (s->kv_ring[l] && s->pos_hi - s->pos > MAX_BATCH)
                return dp_fail(DP_ERR_ARG, "the session went back %d positions; block %d's sliding-window cache keeps %d",
                               s->pos_hi - s->pos, l, MAX_BATCH);
        for (int t = 0; !start && t < n; t++)
            if (tokens[sg][t] < 0 || tokens[sg][t] >= c->n_vocab)
                return dp_fail(DP_ERR_ARG, "token id %d is outside the vocabulary (%d tokens)", tokens[sg][t], c->n_vocab);
    }
    struct multi_scratch b;
    dp_status st = multi_scratch_new(m, n_seg, n < MAX_BATCH ? n : MAX_BATCH, &b);
    if (st) return st;
    const int *tk[DP_MULTI_MAX];
    const float *sx[DP_MULTI_MAX];
    float *lg[DP_MULTI_MAX];
    for (int done = 0; done < n;) {
        int nb = n - done < MAX_BATCH ? n - done : MAX_BATCH; /* the batches forward_hooked cuts */
        for (int sg = 0; sg < n_seg; sg++) {
            tk[sg] = tokens[sg] ? tokens[sg] + done : NULL;
            sx[sg] = start ? hooks[sg]->start_x + (size_t)done * c->n_embd : NULL;
            lg[sg] = logits[sg] + (size_t)done * c->n_vocab;
        }
        forward_multi_batch(ss, n_seg, pool, tk, sx, nb, lg, hooks, &b);
        done += nb;
    }
    multi_scratch_free(&b);
    return DP_OK;
}
