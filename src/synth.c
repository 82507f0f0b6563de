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

struct synth {
    long dim, ff, heads, kv_heads, layers, vocab, ctx, seed;
    int type, mix;                 /* a plain type, or a preset mix (DP_MIX_NONE) */
    bool tied, bias;
    const char *arch;
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

static dp_status build(struct synth *s, const char *vocab_from) {
    char key[96];
    dp_gguf_set_str(s->w, "general.architecture", s->arch);
    dp_gguf_set_str(s->w, "general.name", "depthprune-synth");
#define ARCH_U32(k, v) (snprintf(key, sizeof key, "%s." k, s->arch), dp_gguf_set_u32(s->w, key, (uint32_t)(v)))
    ARCH_U32("context_length", s->ctx);
    ARCH_U32("embedding_length", s->dim);
    ARCH_U32("feed_forward_length", s->ff);
    ARCH_U32("attention.head_count", s->heads);
    ARCH_U32("attention.head_count_kv", s->kv_heads);
    ARCH_U32("block_count", s->layers);
    ARCH_U32("rope.dimension_count", s->dim / s->heads);
#undef ARCH_U32
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", s->arch);
    dp_gguf_set_f32(s->w, key, 1e-5f);
    snprintf(key, sizeof key, "%s.rope.freq_base", s->arch);
    dp_gguf_set_f32(s->w, key, strcmp(s->arch, "qwen2") ? 10000.0f : 1000000.0f);
    dp_status st = vocab_meta(s, vocab_from);
    if (st) return st;
    long hd = s->dim / s->heads, kvd = s->kv_heads * hd;
    float sd = 1.0f / sqrtf((float)s->dim), sf = 1.0f / sqrtf((float)s->ff);
    if ((st = tensor(s, "token_embd.weight", s->dim, s->vocab, 1.0f, 0, MAT)) ||
        (st = tensor(s, "output_norm.weight", s->dim, 1, 0, 1.0f, DP_TYPE_F32)))
        return st;
    if (!s->tied && (st = tensor(s, "output.weight", s->dim, s->vocab, sd, 0, MAT))) return st;
    for (long l = 0; l < s->layers; l++) {
        char n[64];
#define T(sfx, nin, nout, sc, fill, ty) (snprintf(n, sizeof n, "blk.%ld." sfx, l), tensor(s, n, nin, nout, sc, fill, ty))
        if ((st = T("attn_norm.weight", s->dim, 1, 0, 1.0f, DP_TYPE_F32)) ||
            (st = T("attn_q.weight", s->dim, s->dim, sd * 4, 0, MAT)) ||
            (st = T("attn_k.weight", s->dim, kvd, sd * 4, 0, MAT)) ||
            (st = T("attn_v.weight", s->dim, kvd, sd, 0, MAT)) ||
            (st = T("attn_output.weight", s->dim, s->dim, sd, 0, MAT)) ||
            (s->bias && ((st = T("attn_q.bias", s->dim, 1, 0.1f, 0, DP_TYPE_F32)) ||
                         (st = T("attn_k.bias", kvd, 1, 0.1f, 0, DP_TYPE_F32)) ||
                         (st = T("attn_v.bias", kvd, 1, 0.1f, 0, DP_TYPE_F32)))) ||
            (st = T("ffn_norm.weight", s->dim, 1, 0, 1.0f, DP_TYPE_F32)) ||
            (st = T("ffn_gate.weight", s->dim, s->ff, sd * 2, 0, MAT)) ||
            (st = T("ffn_up.weight", s->dim, s->ff, sd * 2, 0, MAT)) ||
            (st = T("ffn_down.weight", s->ff, s->dim, sf, 0, MAT)))
            return st;
#undef T
        if (!dp_progress_step(s->progress, s->progress_user, "synth", l + 1, s->layers)) return DP_ERR_CANCELLED;
    }
    return DP_OK;
}

struct dp_synth_params dp_synth_default_params(void) {
    struct dp_synth_params p = {.arch = "llama", .type = "F32", .dim = 256, .ff = 768, .heads = 8, .layers = 2,
                                .vocab = 512, .ctx = 2048, .seed = 1};
    return p;
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
    struct synth s = {p->dim, p->ff, p->heads, p->kv_heads, p->layers, p->vocab, p->ctx, (long)p->seed, 0, DP_MIX_NONE,
                      p->tied, p->bias || !strcmp(arch, "qwen2"), arch, NULL, NULL, 0, 0, p->log, p->log_user,
                      p->progress, p->progress_user};
    if (!s.kv_heads) s.kv_heads = s.heads > 1 ? s.heads / 2 : 1;
    s.type = dp_type_from_name(type_s);
    s.mix = dp_quantize_mix_from_name(type_s);
    if (!dp_synth_type_name(type_s)) return dp_fail(DP_ERR_ARG, "synth: '%s' is not a weight type or mix synth writes", type_s);
    if (strcmp(arch, "llama") && strcmp(arch, "qwen2")) return dp_fail(DP_ERR_ARG, "synth: arch must be llama or qwen2");
    if (s.dim < 1 || s.ff < 1 || s.heads < 1 || s.kv_heads < 1 || s.layers < 1 || s.layers > DP_MAX_LAYERS || s.ctx < 1 ||
        s.vocab < 1 || s.dim % s.heads || s.heads % s.kv_heads || (s.dim / s.heads) % 2)
        return dp_fail(DP_ERR_ARG, "synth: dim must split into heads of even size, shared by kv_heads (and every size >= 1)");
    s.rng = (uint64_t)s.seed * 0x2545F4914F6CDD1Dull + 1;
    s.w = dp_gguf_writer_new();
    dp_status st = s.w ? build(&s, p->vocab_from) : dp_fail(DP_ERR_NOMEM, "out of memory");
    if (!st) st = dp_gguf_writer_write(s.w, path);
    for (int i = 0; i < s.n_bufs; i++) free(s.bufs[i]);
    free(s.bufs);
    dp_gguf_writer_free(s.w);
    return st;
}
