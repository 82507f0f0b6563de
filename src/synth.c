/*
 * synth: a synthetic llama-shaped GGUF model with seeded random weights, in
 * any weight type the quantizer writes, or one of llama-quantize's preset
 * mixes (Q4_K_M, Q2_K_MIX, ...: per-tensor types by llama-quantize's rules),
 * for tests and benchmarks (`depthprune synth`, dp_synth_write in the
 * header). The same seed gives the same f32 weights before quantization, so
 * a quantized model is exactly what llama-quantize (no importance matrix;
 * --pure for a plain type) makes of its F32 twin. A matrix whose rows are
 * not whole blocks of its type takes llama-quantize's fallback type (Q4_K ->
 * Q5_0, ...), with a note through the log callback. The vocabulary is a
 * generated SentencePiece one (control tokens, 256 byte tokens, then letter
 * pieces) unless vocab_from copies the tokenizer of another GGUF file.
 */
#include "base.h"
#include "gguf.h"
#include "kernels.h"
#include "quantize.h"
#include "types.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct family;

struct synth {
    long dim, ff, heads, kv_heads, layers, vocab, ctx, seed;
    int type, mix;                 /* a plain type, or a preset mix (DP_MIX_NONE) */
    bool tied, bias, rope_freqs;
    const struct family *fam;
    long head_dim, window;         /* head size; sliding window (families that declare one) */
    double rope_base, softcap[2];  /* RoPE base; gemma2's attention and final soft-caps */
    struct dp_gguf_writer *w;
    void **bufs;
    int n_bufs;
    uint64_t rng;
    dp_log_fn log;
    void *log_user;
    dp_progress_fn progress;
    void *progress_user;
};

static uint64_t next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/*
 * The type of matrix `name` (block `layer`, -1 outside blocks) with rows of
 * n_in: the plain type or the mix's, then the fallback when a row is not
 * whole blocks of it (noted on stderr).
 */
static int matrix_type(const struct synth *s, const char *name, int layer, int64_t n_in) {
    /* n_in 0 asks the mix for its type before any fallback */
    uint32_t want = s->mix == DP_MIX_NONE ? (uint32_t)s->type
                    : dp_quantize_mix_type(s->mix, name, layer, (int)s->layers, (int)(s->heads / s->kv_heads), 0, !s->tied);
    uint32_t t = dp_quantize_fallback(want, n_in);
    if (t != want && s->log) {
        char line[256];
        snprintf(line, sizeof line, "%s: rows of %lld are not whole %s blocks; %s instead (llama-quantize's fallback)",
                 name, (long long)n_in, dp_type_name(want), dp_type_name(t));
        s->log(line, s->log_user);
    }
    return (int)t;
}

/*
 * A tensor of n_out rows of n_in uniform values in [-scale, scale] (or all
 * `fill` when scale is 0): a matrix (type < 0: the model's type for it) or
 * an F32 vector.
 */
static dp_status tensor(struct synth *s, const char *name, int64_t n_in, int64_t n_out, float scale, float fill,
                        int type) {
    if (type < 0) {
        int layer = -1;
        sscanf(name, "blk.%d.", &layer);
        type = matrix_type(s, name, layer, n_in);
    }
    size_t n = (size_t)(n_in * n_out);
    float *x = malloc(n * sizeof *x);
    size_t nbytes = dp_type_row_bytes((uint32_t)type, n_in) * (size_t)n_out;
    void *q = type == DP_TYPE_F32 ? (void *)x : malloc(nbytes);
    void **bufs = realloc(s->bufs, (size_t)(s->n_bufs + 1) * sizeof *bufs);
    if (!x || !q || !bufs) {
        free(x);
        if (q != x) free(q);
        if (bufs) s->bufs = bufs;
        return dp_fail(DP_ERR_NOMEM, "out of memory for tensor '%s'", name);
    }
    s->bufs = bufs;
    for (size_t i = 0; i < n; i++)
        x[i] = scale ? (float)(((double)(next(&s->rng) >> 11) / 9007199254740992.0 * 2 - 1) * scale) : fill;
    dp_status st = DP_OK;
    if (q != x) {
        for (int64_t r = 0; r < n_out && !st; r++)
            st = dp_quantize_row((uint32_t)type, x + r * n_in, (uint8_t *)q + (size_t)r * dp_type_row_bytes((uint32_t)type, n_in), n_in);
        free(x);
    }
    s->bufs[s->n_bufs++] = q;
    if (st) return st;
    int64_t ne[2] = {n_in, n_out};
    return dp_gguf_add_tensor(s->w, name, (uint32_t)type, n_out == 1 ? 1 : 2, ne, q, nbytes);
}

static dp_status vocab_meta(struct synth *s, const char *from) {
    if (from) {
        struct dp_gguf *g;
        dp_status st = dp_gguf_open(from, &g);
        if (st) return st;
        const struct dp_gguf_kv *tok = dp_gguf_find_kv(g, "tokenizer.ggml.tokens");
        if (!tok || tok->val.type != DP_GGUF_ARRAY) {
            dp_gguf_close(g);
            return dp_fail(DP_ERR_FORMAT, "%s: no tokenizer.ggml.tokens to copy", from);
        }
        s->vocab = (long)tok->val.n;
        for (uint64_t i = 0; i < g->n_kv; i++)
            if (!strncmp(g->kv[i].key, "tokenizer.", 10)) dp_gguf_copy_kv(s->w, g, &g->kv[i], NULL);
        dp_gguf_close(g);
        return DP_OK;
    }
    if (s->vocab < 259 + 26) return dp_fail(DP_ERR_ARG, "--vocab must be at least 285 for the generated vocabulary");
    char **toks = calloc((size_t)s->vocab, sizeof *toks);
    float *scores = malloc((size_t)s->vocab * sizeof *scores);
    int32_t *types = malloc((size_t)s->vocab * sizeof *types);
    dp_status st = toks && scores && types ? DP_OK : dp_fail(DP_ERR_NOMEM, "out of memory for the vocabulary");
    for (long i = 0; i < s->vocab && !st; i++) {
        char buf[32];
        if (i < 3) snprintf(buf, sizeof buf, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
        else if (i < 259) snprintf(buf, sizeof buf, "<0x%02X>", (unsigned)(i - 3));
        else {
            /* letter strings a..z, aa..zz, ...; every other one with the U+2581 space mark */
            long k = (i - 259) / 2;
            int n = 0;
            char rev[16];
            do {
                rev[n++] = (char)('a' + k % 26);
                k = k / 26 - 1;
            } while (k >= 0 && n < 15);
            int p = 0;
            if ((i - 259) % 2) p += snprintf(buf, sizeof buf, "\xe2\x96\x81");
            while (n) buf[p++] = rev[--n];
            buf[p] = 0;
        }
        toks[i] = strdup(buf);
        if (!toks[i]) st = dp_fail(DP_ERR_NOMEM, "out of memory for the vocabulary");
        scores[i] = i < 259 ? 0.0f : -(float)(i - 259);
        types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
    }
    if (!st) {
        dp_gguf_set_str(s->w, "tokenizer.ggml.model", "llama");
        dp_gguf_set_arr_str(s->w, "tokenizer.ggml.tokens", (const char *const *)toks, (uint64_t)s->vocab);
        dp_gguf_set_arr(s->w, "tokenizer.ggml.scores", DP_GGUF_F32, scores, (uint64_t)s->vocab);
        dp_gguf_set_arr(s->w, "tokenizer.ggml.token_type", DP_GGUF_I32, types, (uint64_t)s->vocab);
        dp_gguf_set_u32(s->w, "tokenizer.ggml.unknown_token_id", 0);
        dp_gguf_set_u32(s->w, "tokenizer.ggml.bos_token_id", 1);
        dp_gguf_set_u32(s->w, "tokenizer.ggml.eos_token_id", 2);
    }
    for (long i = 0; toks && i < s->vocab; i++) free(toks[i]);
    free(toks);
    free(scores);
    free(types);
    return st;
}

#define MAT (-1) /* tensor(): a weight matrix, in the model's type for it */

/*
 * The families synth writes, as llama.cpp's converters lay them out (the
 * fixtures of ../shared/models/families are the reference): the arch string
 * of the file, the metadata keys it carries and the tensors of a block.
 */
struct family {
    const char *name, *arch;
    double rope_base, eps;
    bool bias;          /* attn_q/k/v.bias (qwen2) */
    bool qk_norm;       /* attn_q_norm/attn_k_norm (qwen3, gemma3) */
    bool post_norms;    /* post_attention_norm, post_ffw_norm; always tied (gemma2, gemma3) */
    bool fused;         /* attn_qkv, ffn_up = gate rows then up rows (phi3) */
    bool rope_dim_key;  /* writes rope.dimension_count */
    bool head_len_keys; /* writes attention.key_length/value_length */
    bool window;        /* writes attention.sliding_window */
    bool softcap;       /* attn_logit_softcapping, final_logit_softcapping (gemma2) */
    bool swa_base;      /* rope.freq_base_swa (gemma3) */
};

static const struct family families[] = {
    /* name     arch      base   eps   bias   qknorm post   fused  ropek  hlen   window softcap swab */
    {"llama",   "llama",  1e4,   1e-5, false, false, false, false, true,  false, false, false, false},
    {"mistral", "llama",  1e4,   1e-5, false, false, false, false, true,  false, true,  false, false},
    {"qwen2",   "qwen2",  1e6,   1e-6, true,  false, false, false, false,  false, false, false, false},
    {"qwen3",   "qwen3",  1e6,   1e-6, false, true,  false, false, false, true,  false, false, false},
    {"phi3",    "phi3",   1e4,   1e-5, false, false, false, true,  true,  false, true,  false, false},
    {"gemma2",  "gemma2", 1e4,   1e-6, false, false, true,  false, false, true,  true,  true,  false},
    {"gemma3",  "gemma3", 1e6,   1e-6, false, true,  true,  false, false, true,  true,  false, true},
};

static const struct family *family_find(const char *name) {
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (!strcmp(families[i].name, name)) return &families[i];
    return NULL;
}

/*
 * llama.cpp's llama3 RoPE frequency factors (its converter's rule for Llama
 * 3.1: factor 8, low-frequency factor 1, high 4, original context 8192): a
 * wavelength shorter than ctx/high keeps factor 1, longer than ctx/low takes
 * `factor`, in between a smooth blend. hd/2 values.
 */
static void llama3_rope_factors(double base, long hd, float *out) {
    const double factor = 8, lo = 1, hi = 4, ctx = 8192, pi = 3.14159265358979323846;
    for (long i = 0; i < hd / 2; i++) {
        double freq = 1.0 / pow(base, (double)(2 * i) / (double)hd), wavelen = 2 * pi / freq;
        if (wavelen < ctx / hi) out[i] = 1.0f;
        else if (wavelen > ctx / lo) out[i] = (float)factor;
        else {
            double smooth = (ctx / wavelen - lo) / (hi - lo);
            out[i] = (float)(1.0 / ((1 - smooth) / factor + smooth));
        }
    }
}

static dp_status build(struct synth *s, const char *vocab_from) {
    const struct family *fam = s->fam;
    char key[96];
    long hd = s->head_dim, qd = s->heads * hd, kvd = s->kv_heads * hd;
    dp_gguf_set_str(s->w, "general.architecture", fam->arch);
    dp_gguf_set_str(s->w, "general.name", "depthprune-synth");
#define ARCH_KEY(k) (snprintf(key, sizeof key, "%s." k, fam->arch), key)
#define ARCH_U32(k, v) dp_gguf_set_u32(s->w, ARCH_KEY(k), (uint32_t)(v))
    ARCH_U32("context_length", s->ctx);
    ARCH_U32("embedding_length", s->dim);
    ARCH_U32("feed_forward_length", s->ff);
    ARCH_U32("attention.head_count", s->heads);
    ARCH_U32("attention.head_count_kv", s->kv_heads);
    ARCH_U32("block_count", s->layers);
    if (fam->rope_dim_key) ARCH_U32("rope.dimension_count", hd);
    if (fam->head_len_keys || hd * s->heads != s->dim) {
        ARCH_U32("attention.key_length", hd);
        ARCH_U32("attention.value_length", hd);
    }
    if (fam->window) ARCH_U32("attention.sliding_window", s->window);
    if (!strcmp(fam->name, "phi3")) ARCH_U32("rope.scaling.original_context_length", s->ctx);
    dp_gguf_set_f32(s->w, ARCH_KEY("attention.layer_norm_rms_epsilon"), (float)fam->eps);
    dp_gguf_set_f32(s->w, ARCH_KEY("rope.freq_base"), (float)s->rope_base);
    if (fam->swa_base) dp_gguf_set_f32(s->w, ARCH_KEY("rope.freq_base_swa"), 10000.0f);
    if (fam->softcap) {
        dp_gguf_set_f32(s->w, ARCH_KEY("attn_logit_softcapping"), (float)s->softcap[0]);
        dp_gguf_set_f32(s->w, ARCH_KEY("final_logit_softcapping"), (float)s->softcap[1]);
    }
    dp_status st = vocab_meta(s, vocab_from);
    if (st) return st;
    if (s->rope_freqs) ARCH_U32("vocab_size", s->vocab);
#undef ARCH_U32
#undef ARCH_KEY
    float sd = 1.0f / sqrtf((float)s->dim), sf = 1.0f / sqrtf((float)s->ff), sq = 1.0f / sqrtf((float)qd);
    if ((st = tensor(s, "token_embd.weight", s->dim, s->vocab, 1.0f, 0, MAT)) ||
        (st = tensor(s, "output_norm.weight", s->dim, 1, 0, 1.0f, DP_TYPE_F32)))
        return st;
    if (!s->tied && (st = tensor(s, "output.weight", s->dim, s->vocab, sd, 0, MAT))) return st;
    if (s->rope_freqs) {
        float *f = malloc((size_t)(hd / 2) * sizeof *f);
        void **bufs = f ? realloc(s->bufs, (size_t)(s->n_bufs + 1) * sizeof *bufs) : NULL;
        if (!bufs) {
            free(f);
            return dp_fail(DP_ERR_NOMEM, "out of memory for rope_freqs.weight");
        }
        s->bufs = bufs;
        s->bufs[s->n_bufs++] = f;
        llama3_rope_factors(s->rope_base, hd, f);
        int64_t ne[1] = {hd / 2};
        if ((st = dp_gguf_add_tensor(s->w, "rope_freqs.weight", DP_TYPE_F32, 1, ne, f, (size_t)(hd / 2) * sizeof *f)))
            return st;
    }
    for (long l = 0; l < s->layers; l++) {
        char n[64];
#define T(sfx, nin, nout, sc, fill, ty) (snprintf(n, sizeof n, "blk.%ld." sfx, l), tensor(s, n, nin, nout, sc, fill, ty))
        if ((st = T("attn_norm.weight", s->dim, 1, 0, 1.0f, DP_TYPE_F32))) return st;
        if (fam->fused) {
            /* q, k, v rows in one matrix */
            if ((st = T("attn_qkv.weight", s->dim, qd + 2 * kvd, sd * 4, 0, MAT))) return st;
        } else if ((st = T("attn_q.weight", s->dim, qd, sd * 4, 0, MAT)) ||
                   (st = T("attn_k.weight", s->dim, kvd, sd * 4, 0, MAT)) ||
                   (st = T("attn_v.weight", s->dim, kvd, sd, 0, MAT))) {
            return st;
        }
        if (fam->qk_norm && ((st = T("attn_q_norm.weight", hd, 1, 0, 1.0f, DP_TYPE_F32)) ||
                             (st = T("attn_k_norm.weight", hd, 1, 0, 1.0f, DP_TYPE_F32))))
            return st;
        if ((st = T("attn_output.weight", qd, s->dim, qd == s->dim ? sd : sq, 0, MAT)) ||
            (s->bias && ((st = T("attn_q.bias", qd, 1, 0.1f, 0, DP_TYPE_F32)) ||
                         (st = T("attn_k.bias", kvd, 1, 0.1f, 0, DP_TYPE_F32)) ||
                         (st = T("attn_v.bias", kvd, 1, 0.1f, 0, DP_TYPE_F32)))) ||
            (fam->post_norms && (st = T("post_attention_norm.weight", s->dim, 1, 0, 1.0f, DP_TYPE_F32))) ||
            (st = T("ffn_norm.weight", s->dim, 1, 0, 1.0f, DP_TYPE_F32)))
            return st;
        if (fam->fused) {
            /* gate rows, then up rows */
            if ((st = T("ffn_up.weight", s->dim, 2 * s->ff, sd * 2, 0, MAT))) return st;
        } else if ((st = T("ffn_gate.weight", s->dim, s->ff, sd * 2, 0, MAT)) ||
                   (st = T("ffn_up.weight", s->dim, s->ff, sd * 2, 0, MAT))) {
            return st;
        }
        if ((st = T("ffn_down.weight", s->ff, s->dim, sf, 0, MAT)) ||
            (fam->post_norms && (st = T("post_ffw_norm.weight", s->dim, 1, 0, 1.0f, DP_TYPE_F32))))
            return st;
#undef T
        if (!dp_progress_step(s->progress, s->progress_user, "synth", l + 1, s->layers)) return DP_ERR_CANCELLED;
    }
    return DP_OK;
}

struct dp_synth_params dp_synth_default_params(void) {
    struct dp_synth_params p = {.arch = "llama", .type = "F32", .dim = 256, .ff = 768, .heads = 8, .layers = 2,
                                .vocab = 512, .ctx = 2048, .seed = 1, .softcap = {50, 30}};
    return p;
}

const char *dp_synth_family_arch(const char *family) {
    const struct family *f = family ? family_find(family) : NULL;
    return f ? f->arch : NULL;
}

const char *dp_synth_type_name(const char *name) {
    if (!name) return NULL;
    int mix = dp_quantize_mix_from_name(name);
    if (mix != DP_MIX_NONE) return dp_quantize_mix_name(mix);
    int type = dp_type_from_name(name);
    return type >= 0 && dp_quantize_supported((uint32_t)type) ? dp_type_name((uint32_t)type) : NULL;
}

dp_status dp_synth_write(const char *path, const struct dp_synth_params *p) {
    if (!path || !p) return dp_fail(DP_ERR_ARG, "synth: path and params are required");
    const char *arch = p->arch ? p->arch : "llama", *type_s = p->type ? p->type : "F32";
    struct synth s = {.dim = p->dim, .ff = p->ff, .heads = p->heads, .kv_heads = p->kv_heads, .layers = p->layers,
                      .vocab = p->vocab, .ctx = p->ctx, .seed = (long)p->seed, .mix = DP_MIX_NONE,
                      .rope_freqs = p->rope_freqs, .head_dim = p->head_dim, .window = p->window,
                      .rope_base = p->rope_base, .softcap = {p->softcap[0], p->softcap[1]}, .log = p->log,
                      .log_user = p->log_user, .progress = p->progress, .progress_user = p->progress_user};
    if (!s.kv_heads) s.kv_heads = s.heads > 1 ? s.heads / 2 : 1;
    s.type = dp_type_from_name(type_s);
    s.mix = dp_quantize_mix_from_name(type_s);
    if (!dp_synth_type_name(type_s)) return dp_fail(DP_ERR_ARG, "synth: '%s' is not a weight type or mix synth writes", type_s);
    if (!(s.fam = family_find(arch)))
        return dp_fail(DP_ERR_ARG, "synth: arch must be llama, mistral, qwen2, qwen3, phi3, gemma2 or gemma3, not '%s'", arch);
    if (!s.head_dim && s.heads > 0) s.head_dim = s.dim / s.heads;
    if (s.dim < 1 || s.ff < 1 || s.heads < 1 || s.kv_heads < 1 || s.layers < 1 || s.layers > DP_MAX_LAYERS || s.ctx < 1 ||
        s.vocab < 1 || s.head_dim < 1 || s.window < 0 || (!p->head_dim && s.dim % s.heads) || s.heads % s.kv_heads ||
        s.head_dim % 2)
        return dp_fail(DP_ERR_ARG, "synth: dim must split into heads of even size (or give head_dim), shared by kv_heads "
                                   "(and every size >= 1)");
    if (s.rope_freqs && strcmp(arch, "llama"))
        return dp_fail(DP_ERR_ARG, "synth: rope_freqs is for arch llama (Llama 3.1 RoPE scaling)");
    if (s.fam->softcap && !(s.softcap[0] > 0 && s.softcap[1] > 0))
        return dp_fail(DP_ERR_ARG, "synth: gemma2's soft-caps must be positive, not %g,%g", s.softcap[0], s.softcap[1]);
    if (s.rope_base < 0) return dp_fail(DP_ERR_ARG, "synth: rope_base must be positive (0: the family's), not %g", s.rope_base);
    if (!s.rope_base) s.rope_base = s.fam->rope_base;
    if (!s.window) s.window = !strcmp(arch, "phi3") ? s.ctx : 4096;
    s.tied = p->tied || s.fam->post_norms;
    s.bias = p->bias || s.fam->bias;
    s.rng = (uint64_t)s.seed * 0x2545F4914F6CDD1Dull + 1;
    s.w = dp_gguf_writer_new();
    dp_status st = s.w ? build(&s, p->vocab_from) : dp_fail(DP_ERR_NOMEM, "out of memory");
    if (!st) st = dp_gguf_writer_write(s.w, path);
    for (int i = 0; i < s.n_bufs; i++) free(s.bufs[i]);
    free(s.bufs);
    dp_gguf_writer_free(s.w);
    return st;
}
