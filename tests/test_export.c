/*
 * test_export: every export reloads with the outputs of the in-memory pruned
 * model (mask + recovery hooks), for each removal kind and encoding of
 * EXPORT.md; untouched tensors and metadata are byte-identical; per-layer
 * arrays are filtered; provenance keys do not matter to loading; bad input
 * fails cleanly without leaving a file. Also SHA-256 against FIPS 180-4.
 *
 * Recoveries are built in memory with random constants and maps, so the
 * folding is tested independently of how recoveries are fitted.
 */
#include "harness.h"

#include "export.h"
#include "gguf.h"
#include "quantize.h"
#include "recover.h"
#include "sha256.h"

#include <unistd.h>

#define N_TOK 40

static char tmpdir[256];
static int ids[N_TOK];

static uint64_t rng = 12345;
static float frand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2 - 1);
}

static const char *tmp(const char *name) {
    static char buf[8][512];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", tmpdir, name);
    return b;
}

static void test_sha256(void) {
    char h[65];
    dp_sha256_hex("abc", 3, h);
    CHECK(!strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    dp_sha256_hex("", 0, h);
    CHECK(!strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    const char *m2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    dp_sha256_hex(m2, strlen(m2), h);
    CHECK(!strcmp(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    /* one million 'a', fed in uneven pieces */
    struct dp_sha256 s;
    char a[1000];
    memset(a, 'a', sizeof a);
    dp_sha256_init(&s);
    for (int fed = 0; fed < 1000000;) {
        int n = 1 + (fed * 7) % 997;
        if (n > 1000000 - fed) n = 1000000 - fed;
        dp_sha256_update(&s, a, (size_t)n);
        fed += n;
    }
    uint8_t d[32];
    dp_sha256_final(&s, d);
    for (int i = 0; i < 32; i++) snprintf(h + 2 * i, 3, "%02x", d[i]);
    CHECK(!strcmp(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
}

/* ---- in-memory recoveries and their hooks (the contract of recover.h) ---- */

struct rec_hook {
    const struct dp_recovery *r;
    const struct dp_model *m;
};

static void rmsnorm_row(const float *x, const struct dp_weight *w, int dim, float eps, float *out) {
    float wb[1024];
    dp_dequant_row(w->type, w->data, wb, dim);
    double ss = 0;
    for (int i = 0; i < dim; i++) ss += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(ss / dim) + eps);
    for (int i = 0; i < dim; i++) out[i] = x[i] * scale * wb[i];
}

static bool replace(void *ctx, int unit, const float *x, float *delta, int n, int dim, int pos0) {
    (void)pos0;
    const struct rec_hook *h = ctx;
    int layer = unit / 2;
    const struct dp_unit_recovery *u = NULL;
    for (int i = 0; i < h->r->n; i++) {
        const struct dp_unit_recovery *v = &h->r->units[i];
        if (v->layer == layer && ((unit % 2 == 0 && v->kind == 'a') || (unit % 2 == 1 && v->kind != 'a'))) u = v;
    }
    if (!u) return false;
    const struct dp_layer *L = &h->m->layers[layer];
    const struct dp_weight *nw = u->kind == 'f' ? &L->ffn_norm : &L->attn_norm;
    for (int t = 0; t < n; t++) {
        float z[1024], az[64];
        rmsnorm_row(x + (size_t)t * dim, nw, dim, h->m->cfg.norm_eps, z);
        for (int k = 0; k < u->rank; k++) {
            double s = 0;
            for (int i = 0; i < dim; i++) s += (double)u->A[k * dim + i] * z[i];
            az[k] = (float)s;
        }
        for (int i = 0; i < dim; i++) {
            double s = u->c[i];
            for (int k = 0; k < u->rank; k++) s += (double)u->B[i * u->rank + k] * az[k];
            delta[(size_t)t * dim + i] = (float)s;
        }
    }
    return true;
}

/* A recovery of random constants (scale 0.3) and rank-`rank` maps for the units of `list`. */
static struct dp_recovery *make_rec(const char *list, int rank, int dim) {
    struct dp_recovery *r = calloc(1, sizeof *r);
    r->units = calloc(32, sizeof *r->units);
    r->dim = dim;
    snprintf(r->kind, sizeof r->kind, rank ? "lowrank:%d" : "mean", rank);
    for (const char *p = list; *p;) {
        struct dp_unit_recovery *u = &r->units[r->n++];
        u->kind = *p;
        u->layer = (int)strtol(p + 1, NULL, 10);
        snprintf(u->unit, sizeof u->unit, "%c%d", u->kind, u->layer);
        u->rank = rank;
        u->c = malloc((size_t)dim * sizeof(float));
        for (int i = 0; i < dim; i++) u->c[i] = 0.3f * frand();
        if (rank) {
            u->A = malloc((size_t)rank * dim * sizeof(float));
            u->B = malloc((size_t)rank * dim * sizeof(float));
            for (int i = 0; i < rank * dim; i++) u->A[i] = 0.2f * frand(), u->B[i] = 0.2f * frand();
        }
        const char *e = strchr(p, ',');
        p = e ? e + 1 : p + strlen(p);
    }
    return r;
}

static void free_rec(struct dp_recovery *r) {
    for (int i = 0; r && i < r->n; i++) {
        free(r->units[i].c);
        free(r->units[i].A);
        free(r->units[i].B);
    }
    if (r) free(r->units);
    free(r);
}

/* Logits (N_TOK x vocab) of m under mask and recovery (either may be NULL). */
static float *logits_of(const struct dp_model *m, const struct dp_mask *mask, const struct dp_recovery *rec,
                        struct dp_pool *pool) {
    struct dp_session *s;
    int nv = dp_model_config(m)->n_vocab;
    float *lg = malloc((size_t)N_TOK * nv * sizeof *lg);
    if (dp_session_new(m, mask, N_TOK, &s)) {
        fprintf(stderr, "session: %s\n", dp_last_error());
        return lg;
    }
    struct rec_hook h = {rec, m};
    struct dp_hooks hooks = {.ctx = &h, .replace = replace};
    if (dp_session_forward_hooked(s, pool, ids, N_TOK, lg, DP_LOGITS_ALL, rec ? &hooks : NULL))
        fprintf(stderr, "forward: %s\n", dp_last_error());
    dp_session_free(s);
    return lg;
}

static int64_t kv_int(const struct dp_gguf *g, const char *key) {
    int64_t v = -1;
    dp_gguf_get_int(g, key, false, &v);
    return v;
}

/* Whether tensor `a` of ga and `b` of gb have the same type, shape and bytes. */
static bool same_tensor(const struct dp_gguf *ga, const char *a, const struct dp_gguf *gb, const char *b) {
    const struct dp_gguf_tensor *ta = dp_gguf_find_tensor(ga, a), *tb = dp_gguf_find_tensor(gb, b);
    return ta && tb && ta->type == tb->type && ta->nbytes == tb->nbytes && !memcmp(ta->ne, tb->ne, sizeof ta->ne) &&
           !memcmp(ta->data, tb->data, ta->nbytes);
}

/* Rewrite a GGUF without its depthprune.* keys. */
static int strip_provenance(const char *in, const char *out) {
    struct dp_gguf *g;
    if (dp_gguf_open(in, &g)) return -1;
    struct dp_gguf_writer *w = dp_gguf_writer_new();
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (strncmp(g->kv[i].key, "depthprune.", 11)) dp_gguf_copy_kv(w, g, &g->kv[i], NULL);
    int rc = 0;
    for (uint64_t i = 0; i < g->n_tensors && !rc; i++) {
        const struct dp_gguf_tensor *t = &g->tensors[i];
        rc = dp_gguf_add_tensor(w, t->name, t->type, (int)t->n_dims, t->ne, t->data, t->nbytes);
    }
    if (!rc) rc = dp_gguf_writer_write(w, out);
    dp_gguf_writer_free(w);
    dp_gguf_close(g);
    return rc;
}

/*
 * Export m under `drop` with an optional recovery (rank < 0: none) and check
 * the reloaded file against the in-memory model: bit-identical when
 * `exact`, else within tol (relative to the largest logit).
 */
static struct dp_model *roundtrip(const struct dp_model *m, struct dp_pool *pool, const char *drop, int rank,
                                  uint32_t out_type, bool exact, double tol, const char *want_arch, int want_blocks,
                                  const char *out) {
    struct dp_mask mask;
    dp_mask_all(m, &mask);
    CHECK(dp_mask_drop(&mask, drop) == DP_OK);
    const struct dp_config *c = dp_model_config(m);
    struct dp_recovery *rec = rank >= 0 ? make_rec(drop, rank, c->n_embd) : NULL;
    float *want = logits_of(m, &mask, rec, pool);
    struct dp_export_opts o = {.out_type = out_type, .metric = "test"};
    struct dp_export_info info;
    dp_status st = dp_export(m, &mask, rec, &o, out, &info);
    CHECK_MSG(st == DP_OK, "export %s: %s", drop, dp_last_error());
    struct dp_model *e = NULL;
    if (!st && dp_model_open(out, NULL, &e)) fprintf(stderr, "reload %s: %s\n", drop, dp_last_error());
    CHECK_MSG(e != NULL, "reload of the export of %s", drop);
    if (!e) {
        free(want);
        free_rec(rec);
        return NULL;
    }
    CHECK_MSG(!strcmp(dp_model_config(e)->arch, want_arch), "%s: arch %s, expected %s", drop,
              dp_model_config(e)->arch, want_arch);
    CHECK_EQ_INT(dp_model_config(e)->n_layers, want_blocks);
    CHECK_EQ_INT(info.n_blocks, want_blocks);
    float *got = logits_of(e, NULL, NULL, pool);
    long n = (long)N_TOK * c->n_vocab;
    if (exact) {
        CHECK_MSG(!memcmp(got, want, (size_t)n * sizeof *got), "%s: logits are not bit-identical", drop);
    } else {
        double mx = 0;
        for (long i = 0; i < n; i++) mx = fmax(mx, fabs(want[i]));
        if (!CHECK_CLOSE_ARR(got, want, n, tol * mx, 0)) fprintf(stderr, "  (case %s, rank %d)\n", drop, rank);
    }
    /* loading ignores the provenance keys */
    char stripped[600];
    snprintf(stripped, sizeof stripped, "%s.stripped", out);
    struct dp_model *s2 = NULL;
    CHECK(strip_provenance(out, stripped) == 0 && dp_model_open(stripped, NULL, &s2) == DP_OK);
    if (s2) {
        float *g2 = logits_of(s2, NULL, NULL, pool);
        CHECK(!memcmp(g2, got, (size_t)n * sizeof *got));
        free(g2);
        dp_model_close(s2);
    }
    unlink(stripped);
    free(got);
    free(want);
    free_rec(rec);
    return e;
}

static const struct dp_gguf *gguf_of(const struct dp_model *m) { return m->gguf; }

/* A copy of a model file without output.weight (a tied head). */
static int make_tied(const char *in, const char *out) {
    struct dp_gguf *g;
    if (dp_gguf_open(in, &g)) return -1;
    struct dp_gguf_writer *w = dp_gguf_writer_new();
    for (uint64_t i = 0; i < g->n_kv; i++) dp_gguf_copy_kv(w, g, &g->kv[i], NULL);
    int rc = 0;
    for (uint64_t i = 0; i < g->n_tensors && !rc; i++) {
        const struct dp_gguf_tensor *t = &g->tensors[i];
        if (strcmp(t->name, "output.weight"))
            rc = dp_gguf_add_tensor(w, t->name, t->type, (int)t->n_dims, t->ne, t->data, t->nbytes);
    }
    if (!rc) rc = dp_gguf_writer_write(w, out);
    dp_gguf_writer_free(w);
    dp_gguf_close(g);
    return rc;
}

/*
 * A copy of a model file whose per-layer hyperparameters are INT32 arrays
 * (as llama.cpp writes them), plus an array llama.test.per_layer = 10, 11, ...
 */
static int make_arrays(const char *in, const char *out) {
    struct dp_gguf *g;
    if (dp_gguf_open(in, &g)) return -1;
    struct dp_gguf_writer *w = dp_gguf_writer_new();
    int64_t n_layers = 0;
    dp_gguf_get_int(g, "llama.block_count", true, &n_layers);
    const char *keys[] = {"llama.attention.head_count", "llama.attention.head_count_kv", "llama.feed_forward_length"};
    for (uint64_t i = 0; i < g->n_kv; i++) {
        int k = 0;
        while (k < 3 && strcmp(g->kv[i].key, keys[k])) k++;
        if (k == 3) {
            dp_gguf_copy_kv(w, g, &g->kv[i], NULL);
            continue;
        }
        int32_t v[16];
        for (int l = 0; l < n_layers; l++) v[l] = (int32_t)g->kv[i].val.v.u;
        dp_gguf_set_arr(w, keys[k], DP_GGUF_I32, v, (uint64_t)n_layers);
    }
    int32_t pl[16];
    for (int l = 0; l < n_layers; l++) pl[l] = 10 + l;
    dp_gguf_set_arr(w, "llama.test.per_layer", DP_GGUF_I32, pl, (uint64_t)n_layers);
    int rc = 0;
    for (uint64_t i = 0; i < g->n_tensors && !rc; i++) {
        const struct dp_gguf_tensor *t = &g->tensors[i];
        rc = dp_gguf_add_tensor(w, t->name, t->type, (int)t->n_dims, t->ne, t->data, t->nbytes);
    }
    if (!rc) rc = dp_gguf_writer_write(w, out);
    dp_gguf_writer_free(w);
    dp_gguf_close(g);
    return rc;
}

static void test_arrays(struct dp_pool *pool) {
    struct dp_model *a = NULL;
    CHECK(make_arrays(test_shared("models/stories260K/stories260K.gguf"), tmp("arrays.gguf")) == 0 &&
          dp_model_open(tmp("arrays.gguf"), NULL, &a) == DP_OK);
    if (!a) return;
    /* every array of block_count entries is filtered through the surviving blocks */
    struct dp_model *e = roundtrip(a, pool, "b1,b3", -1, DP_TYPE_F32, true, 0, "llama", 3, tmp("arrays-b13.gguf"));
    if (e) {
        const struct dp_gguf_kv *pl = dp_gguf_find_kv(gguf_of(e), "llama.test.per_layer");
        const struct dp_gguf_kv *ff = dp_gguf_find_kv(gguf_of(e), "llama.feed_forward_length");
        CHECK(pl && pl->val.elem_type == DP_GGUF_I32 && pl->val.n == 3 && dp_gguf_arr_i64(&pl->val, 0) == 10 &&
              dp_gguf_arr_i64(&pl->val, 1) == 12 && dp_gguf_arr_i64(&pl->val, 2) == 14);
        CHECK(ff && ff->val.type == DP_GGUF_ARRAY && ff->val.elem_type == DP_GGUF_I32 && ff->val.n == 3 &&
              dp_gguf_arr_i64(&ff->val, 2) == 172);
        dp_model_close(e);
    }
    /* into deci: llama's arrays renamed and filtered, an inserted block repeats its block's entries */
    e = roundtrip(a, pool, "a2,f4", 4, DP_TYPE_F32, false, 1e-5, "deci", 6, tmp("arrays-deci.gguf"));
    if (e) {
        const struct dp_gguf_kv *pl = dp_gguf_find_kv(gguf_of(e), "deci.test.per_layer");
        CHECK(pl && pl->val.n == 6 && dp_gguf_arr_i64(&pl->val, 2) == 12 && dp_gguf_arr_i64(&pl->val, 3) == 12 &&
              dp_gguf_arr_i64(&pl->val, 5) == 14);
        CHECK(dp_gguf_find_kv(gguf_of(e), "llama.test.per_layer") == NULL);
        const struct dp_gguf_kv *ff = dp_gguf_find_kv(gguf_of(e), "deci.feed_forward_length");
        CHECK(ff && ff->val.n == 6 && dp_gguf_arr_i64(&ff->val, 2) == 4 && dp_gguf_arr_i64(&ff->val, 3) == 172 &&
              dp_gguf_arr_i64(&ff->val, 5) == 4);
        dp_model_close(e);
    }
    dp_model_close(a);
}

static void test_stories(struct dp_pool *pool) {
    struct dp_model *m;
    if (dp_model_open(test_shared("models/stories260K/stories260K.gguf"), NULL, &m)) {
        fprintf(stderr, "%s\n", dp_last_error());
        CHECK(0);
        return;
    }
    const struct dp_gguf *src = gguf_of(m);
    int n;
    dp_tokenize(dp_model_tokenizer(m), "Once upon a time, there was a little girl named Lily. She loved to play",
                72, DP_TOKENIZE_BOS, ids, N_TOK, &n);
    for (int i = n; i < N_TOK; i++) ids[i] = (i * 37 + 11) % 512;

    /* whole block: llama, bit-identical, tensors byte for byte, renumbered */
    struct dp_model *e = roundtrip(m, pool, "b1", -1, DP_TYPE_F32, true, 0, "llama", 4, tmp("b1.gguf"));
    if (e) {
        const struct dp_gguf *g = gguf_of(e);
        CHECK_EQ_INT(kv_int(g, "llama.block_count"), 4);
        CHECK(dp_gguf_find_kv(g, "llama.block_count")->val.type == dp_gguf_find_kv(src, "llama.block_count")->val.type);
        int map[4] = {0, 2, 3, 4};
        const char *sfx[] = {"attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight",
                             "attn_output.weight", "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight",
                             "ffn_down.weight"};
        bool all = true;
        for (int b = 0; b < 4; b++)
            for (int k = 0; k < 9; k++) {
                char a[64], s[64];
                snprintf(a, sizeof a, "blk.%d.%s", b, sfx[k]);
                snprintf(s, sizeof s, "blk.%d.%s", map[b], sfx[k]);
                all = all && same_tensor(g, a, src, s);
            }
        CHECK_MSG(all, "block tensors are byte copies of their source blocks");
        CHECK(same_tensor(g, "token_embd.weight", src, "token_embd.weight"));
        CHECK(same_tensor(g, "output.weight", src, "output.weight"));
        CHECK_EQ_INT(g->n_tensors, src->n_tensors - 9);
        /* every other metadata pair byte for byte */
        bool meta = true;
        for (uint64_t i = 0; i < src->n_kv; i++) {
            const struct dp_gguf_kv *a = &src->kv[i], *b = dp_gguf_find_kv(g, a->key);
            if (!strcmp(a->key, "llama.block_count")) continue;
            meta = meta && b && a->val.type == b->val.type &&
                   a->val.raw_end - a->val.raw_begin == b->val.raw_end - b->val.raw_begin &&
                   !memcmp(src->data + a->val.raw_begin, g->data + b->val.raw_begin, a->val.raw_end - a->val.raw_begin);
        }
        CHECK_MSG(meta, "metadata copied byte for byte");
        char sha[65], buf[128];
        dp_sha256_hex(src->data, src->size, sha);
        CHECK(dp_gguf_get_str(g, "depthprune.source.sha256", true, buf, sizeof buf) == DP_OK && !strcmp(buf, sha));
        CHECK(dp_gguf_get_str(g, "depthprune.source.file", true, buf, sizeof buf) == DP_OK &&
              !strcmp(buf, "stories260K.gguf"));
        const struct dp_gguf_kv *rm = dp_gguf_find_kv(g, "depthprune.removed");
        CHECK(rm && rm->val.n == 1 && rm->val.strs[0].len == 2 && !memcmp(rm->val.strs[0].data, "b1", 2));
        dp_model_close(e);
    }
    /* mean folding: previous block's ffn_down.bias; block 0: token_embd */
    e = roundtrip(m, pool, "b2", 0, DP_TYPE_F32, false, 1e-5, "llama", 4, tmp("b2mean.gguf"));
    if (e) {
        CHECK(dp_gguf_find_tensor(gguf_of(e), "blk.1.ffn_down.bias") != NULL);
        CHECK(same_tensor(gguf_of(e), "blk.1.ffn_down.weight", src, "blk.1.ffn_down.weight"));
        dp_model_close(e);
    }
    dp_model_close(roundtrip(m, pool, "b4", 0, DP_TYPE_F32, false, 1e-5, "llama", 4, tmp("b4mean.gguf")));
    dp_model_close(roundtrip(m, pool, "b0,b1", 0, DP_TYPE_F32, false, 1e-5, "llama", 3, tmp("b01mean.gguf")));
    /* sublayers: deci, attention-free blocks, zero FFN */
    e = roundtrip(m, pool, "a1,a3", -1, DP_TYPE_F32, true, 0, "deci", 5, tmp("a13.gguf"));
    if (e) {
        const struct dp_gguf_kv *hc = dp_gguf_find_kv(gguf_of(e), "deci.attention.head_count");
        CHECK(hc && hc->val.type == DP_GGUF_ARRAY && hc->val.elem_type == DP_GGUF_I32 && hc->val.n == 5);
        if (hc) CHECK(dp_gguf_arr_i64(&hc->val, 1) == 0 && dp_gguf_arr_i64(&hc->val, 2) == 8);
        CHECK(dp_gguf_find_tensor(gguf_of(e), "blk.1.attn_q.weight") == NULL);
        struct dp_model_stats s0, s1;
        dp_model_stats(m, NULL, &s0);
        dp_model_stats(e, NULL, &s1);
        CHECK_EQ_INT(s1.kv_bytes_per_token, s0.kv_bytes_per_token * 3 / 5);
        /* attention the file lacks is not a removed unit */
        struct dp_mask all;
        char fmt[64];
        dp_mask_all(e, &all);
        dp_mask_format(&all, fmt, sizeof fmt);
        CHECK_MSG(!strcmp(fmt, ""), "mask of a deci file names '%s' removed", fmt);
        /* a deci export prunes again: f0 of the exported model, in memory and exported */
        struct dp_model *e2 = roundtrip(e, pool, "f0", 0, DP_TYPE_F32, false, 1e-5, "deci", 5, tmp("a13f0.gguf"));
        dp_model_close(e2);
        dp_model_close(roundtrip(e, pool, "b1,a2", -1, DP_TYPE_F32, true, 0, "deci", 4, tmp("a13b1a2.gguf")));
        dp_model_close(e);
    }
    dp_model_close(roundtrip(m, pool, "f2", -1, DP_TYPE_F32, true, 0, "deci", 5, tmp("f2.gguf")));
    e = roundtrip(m, pool, "a0,f4", 0, DP_TYPE_F32, false, 1e-5, "deci", 5, tmp("a0f4mean.gguf"));
    if (e) {
        const struct dp_gguf_kv *hkv = dp_gguf_find_kv(gguf_of(e), "deci.attention.head_count_kv");
        const struct dp_gguf_kv *ff = dp_gguf_find_kv(gguf_of(e), "deci.feed_forward_length");
        CHECK(hkv && dp_gguf_arr_i64(&hkv->val, 0) == 0 && ff && dp_gguf_arr_i64(&ff->val, 4) == 32);
        CHECK(dp_gguf_find_tensor(gguf_of(e), "blk.0.attn_output.weight") != NULL);
        dp_model_close(e);
    }
    /* mixed, and a unit removed in two halves with separate replacements */
    dp_model_close(roundtrip(m, pool, "b1,a2,f3", 0, DP_TYPE_F32, false, 1e-5, "deci", 4, tmp("mixed.gguf")));
    dp_model_close(roundtrip(m, pool, "a2,f2", 0, DP_TYPE_F32, false, 1e-5, "llama", 4, tmp("a2f2.gguf")));
    /* low-rank: in a block's slot (b, f), in an inserted block (a), at block 0 */
    dp_model_close(roundtrip(m, pool, "b2", 4, DP_TYPE_F32, false, 1e-5, "deci", 5, tmp("b2lr.gguf")));
    dp_model_close(roundtrip(m, pool, "f1", 8, DP_TYPE_F32, false, 1e-5, "deci", 5, tmp("f1lr.gguf")));
    dp_model_close(roundtrip(m, pool, "a3", 4, DP_TYPE_F32, false, 1e-5, "deci", 6, tmp("a3lr.gguf")));
    dp_model_close(roundtrip(m, pool, "a0,b2,f4", 2, DP_TYPE_F32, false, 1e-5, "deci", 6, tmp("lrmix.gguf")));
    /* modified tensors in other types: exact ones stay close, quantized ones within rounding */
    dp_model_close(roundtrip(m, pool, "a0,b2,f4", 4, DP_TYPE_F16, false, 2e-3, "deci", 6, tmp("f16.gguf")));
    dp_model_close(roundtrip(m, pool, "a0,b2,f4", 4, DP_TYPE_Q8_0, false, 2e-2, "deci", 6, tmp("q8.gguf")));
    /* Q4_0: too coarse for a logits check; the embedding rows must be Q4_0 roundings of e + c */
    struct dp_mask q4m;
    dp_mask_all(m, &q4m);
    dp_mask_drop(&q4m, "b0");
    struct dp_recovery *q4r = make_rec("b0", 0, 64);
    struct dp_export_opts q4o = {.out_type = DP_TYPE_Q4_0};
    struct dp_model *q4 = NULL;
    CHECK(dp_export(m, &q4m, q4r, &q4o, tmp("q4.gguf"), NULL) == DP_OK && dp_model_open(tmp("q4.gguf"), NULL, &q4) == 0);
    if (q4) {
        const struct dp_gguf_tensor *te = dp_gguf_find_tensor(gguf_of(q4), "token_embd.weight");
        const struct dp_gguf_tensor *ts = dp_gguf_find_tensor(src, "token_embd.weight");
        bool ok = te && te->type == DP_TYPE_Q4_0;
        for (int r = 0; ok && r < 512; r++) {
            float a[64], b[64];
            dp_dequant_row(DP_TYPE_Q4_0, te->data + (size_t)r * dp_type_row_bytes(DP_TYPE_Q4_0, 64), a, 64);
            memcpy(b, ts->data + (size_t)r * 64 * 4, sizeof b);
            for (int blk = 0; blk < 2; blk++) {
                float mx = 0;
                for (int i = 0; i < 32; i++) mx = fmaxf(mx, fabsf(b[32 * blk + i] + q4r->units[0].c[32 * blk + i]));
                for (int i = 0; i < 32; i++)
                    ok = ok && fabsf(a[32 * blk + i] - (b[32 * blk + i] + q4r->units[0].c[32 * blk + i])) <= mx / 8 + 1e-6f;
            }
        }
        CHECK_MSG(ok, "Q4_0 embedding rows are roundings of e + c");
        CHECK(same_tensor(gguf_of(q4), "output.weight", src, "output.weight"));
        dp_model_close(q4);
    }
    free_rec(q4r);

    /* tied head: block 0's constant goes into token_embd, the head stays the original embedding */
    if (make_tied(test_shared("models/stories260K/stories260K.gguf"), tmp("tied.gguf")) == 0) {
        struct dp_model *t;
        CHECK(dp_model_open(tmp("tied.gguf"), NULL, &t) == DP_OK && dp_model_config(t)->tied_output);
        e = roundtrip(t, pool, "b0", 0, DP_TYPE_F32, false, 1e-5, "llama", 4, tmp("tied-b0.gguf"));
        if (e) {
            CHECK(!dp_model_config(e)->tied_output);
            CHECK(same_tensor(gguf_of(e), "output.weight", gguf_of(t), "token_embd.weight"));
            dp_model_close(e);
        }
        dp_model_close(roundtrip(t, pool, "b1", 0, DP_TYPE_F32, false, 1e-5, "llama", 4, tmp("tied-b1.gguf")));
        dp_model_close(t);
    }

    /* bad input: one message, no file left behind */
    struct dp_mask mask;
    dp_mask_all(m, &mask);
    dp_mask_drop(&mask, "b0,b1,b2,b3,b4");
    CHECK(dp_export(m, &mask, NULL, NULL, tmp("none.gguf"), NULL) == DP_ERR_ARG && access(tmp("none.gguf"), F_OK));
    dp_mask_all(m, &mask);
    CHECK(dp_export(m, &mask, NULL, NULL, dp_model_path(m), NULL) == DP_ERR_ARG &&
          strstr(dp_last_error(), "overwrite"));
    struct dp_export_opts bad = {.out_type = DP_TYPE_IQ2_XXS};
    CHECK(dp_export(m, &mask, NULL, &bad, tmp("x.gguf"), NULL) == DP_ERR_ARG && access(tmp("x.gguf"), F_OK));
    CHECK(dp_export(m, &mask, NULL, NULL, "/nonexistent-dir/x.gguf", NULL) == DP_ERR_IO);
    dp_model_close(m);
}

/* Sum of the tensor bytes of a file. */
static size_t tensor_bytes(const struct dp_gguf *g) {
    size_t n = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) n += g->tensors[i].nbytes;
    return n;
}

/* Whether token_embd of `e` is, row by row, dp_quantize_row(type) of src's embedding plus c. */
static bool embd_is_requantized(const struct dp_gguf *e, const struct dp_gguf *src, const float *c, uint32_t type) {
    const struct dp_gguf_tensor *te = dp_gguf_find_tensor(e, "token_embd.weight");
    const struct dp_gguf_tensor *ts = dp_gguf_find_tensor(src, "token_embd.weight");
    if (!te || !ts || te->type != type) return false;
    int64_t dim = ts->ne[0];
    size_t rs = dp_type_row_bytes(ts->type, dim), re = dp_type_row_bytes(type, dim);
    float v[1024];
    uint8_t q[2048];
    for (int64_t r = 0; r < ts->ne[1]; r++) {
        dp_dequant_row(ts->type, ts->data + r * rs, v, dim);
        for (int64_t k = 0; k < dim; k++) v[k] += c[k];
        if (dp_quantize_row(type, v, q, dim) || memcmp(q, te->data + r * re, re)) return false;
    }
    return true;
}

/*
 * Exports of K-quant files (llama-quantize's Q4_K_M of the synthetic llama)
 * keep their types: kept tensors are byte copies, a modified token_embd is
 * requantized in Q4_K, new matrices take the type of their source block's
 * counterpart (or llama-quantize's fallback for rows of 32), so the file
 * stays Q4_K_M-sized; and every type the quantizer writes works as
 * --out-type on the F32 twin.
 */
static void test_kquants(struct dp_pool *pool) {
    struct dp_model *m;
    if (dp_model_open(test_shared("models/quants/synth-llama-q4_k_m.gguf"), NULL, &m)) {
        fprintf(stderr, "%s\n", dp_last_error());
        CHECK(0);
        return;
    }
    const struct dp_gguf *src = gguf_of(m);
    const uint32_t S = DP_EXPORT_SOURCE_TYPES;
    /* a whole block: every kept tensor byte for byte, the file shrinks by exactly that block */
    struct dp_model *e = roundtrip(m, pool, "b1", -1, S, true, 0, "llama", 1, tmp("km-b1.gguf"));
    if (e) {
        const struct dp_gguf *g = gguf_of(e);
        bool all = true;
        size_t blk1 = 0;
        for (uint64_t i = 0; i < src->n_tensors; i++) {
            const char *n = src->tensors[i].name;
            if (!strncmp(n, "blk.1.", 6)) blk1 += src->tensors[i].nbytes;
            else all = all && same_tensor(g, n, src, n);
        }
        CHECK_MSG(all, "Q4_K_M export: kept tensors are byte copies");
        CHECK_EQ_INT(tensor_bytes(g), tensor_bytes(src) - blk1);
        char buf[32];
        CHECK(dp_gguf_get_str(g, "depthprune.out_type", true, buf, sizeof buf) == DP_OK && !strcmp(buf, "source"));
        dp_model_close(e);
    }
    /* a zero FFN: gate/up in blk.1's Q4_K, the 32-wide ffn_down in the fallback of blk.1's Q6_K (Q8_0); exact */
    struct dp_mask mask;
    struct dp_export_opts o = {.out_type = S};
    struct dp_export_info info;
    e = roundtrip(m, pool, "f1", -1, S, true, 0, "deci", 2, tmp("km-f1.gguf"));
    if (e) {
        const struct dp_gguf *g = gguf_of(e);
        const struct dp_gguf_tensor *gt = dp_gguf_find_tensor(g, "blk.1.ffn_gate.weight"),
                                    *dt = dp_gguf_find_tensor(g, "blk.1.ffn_down.weight");
        CHECK(gt && gt->type == DP_TYPE_Q4_K && gt->ne[1] == 32);
        CHECK(dt && dt->type == DP_TYPE_Q8_0 && dt->ne[0] == 32);
        dp_model_close(e);
    }
    dp_mask_all(m, &mask);
    dp_mask_drop(&mask, "f1");
    CHECK(dp_export(m, &mask, NULL, &o, tmp("km-f1b.gguf"), &info) == DP_OK && info.lossless && info.n_fallback == 1);
    /* block 0 with a mean: token_embd requantized in Q4_K from its decoded rows plus the constant */
    struct dp_recovery *r0 = make_rec("b0", 0, 256);
    dp_mask_all(m, &mask);
    dp_mask_drop(&mask, "b0");
    CHECK(dp_export(m, &mask, r0, &o, tmp("km-b0.gguf"), &info) == DP_OK && !info.lossless);
    struct dp_gguf *g0 = NULL;
    CHECK(dp_gguf_open(tmp("km-b0.gguf"), &g0) == DP_OK);
    if (g0) {
        CHECK_MSG(embd_is_requantized(g0, src, r0->units[0].c, DP_TYPE_Q4_K), "Q4_K_M b0 mean: token_embd");
        CHECK(same_tensor(g0, "output.weight", src, "output.weight"));
        dp_gguf_close(g0);
    }
    free_rec(r0);
    /*
     * Requantizing the embedding (and Q4_K / Q8_0 low-rank maps) moves the logits by about 5% of the
     * largest: a fraction of the file's own Q4_K rounding, which moves them by 40% from its F32 twin's
     * (random weights amplify every rounding). Bound: 15%.
     */
    dp_model_close(roundtrip(m, pool, "b0", 0, S, false, 0.15, "llama", 1, tmp("km-b0r.gguf")));
    dp_model_close(roundtrip(m, pool, "a0,f1", 4, S, false, 0.15, "deci", 3, tmp("km-lr.gguf")));
    dp_model_close(m);

    /* every type the quantizer writes, as --out-type, on the F32 twin */
    if (dp_model_open(test_shared("models/synthetic/synth-llama-f32.gguf"), NULL, &m)) {
        fprintf(stderr, "%s\n", dp_last_error());
        CHECK(0);
        return;
    }
    src = gguf_of(m);
    const uint32_t types[] = {DP_TYPE_F16, DP_TYPE_BF16, DP_TYPE_Q8_0, DP_TYPE_Q4_0, DP_TYPE_Q4_1, DP_TYPE_Q5_0,
                              DP_TYPE_Q5_1, DP_TYPE_Q2_K, DP_TYPE_Q3_K, DP_TYPE_Q4_K, DP_TYPE_Q5_K, DP_TYPE_Q6_K,
                              DP_TYPE_IQ4_NL, DP_TYPE_IQ4_XS};
    struct dp_recovery *rec = make_rec("b0", 0, 256);
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        uint32_t t = types[i];
        struct dp_export_opts ot = {.out_type = t};
        dp_mask_all(m, &mask);
        dp_mask_drop(&mask, "b0,f1");
        struct dp_model *x = NULL;
        dp_status st = dp_export(m, &mask, rec, &ot, tmp("t.gguf"), &info);
        CHECK_MSG(st == DP_OK && dp_model_open(tmp("t.gguf"), NULL, &x) == DP_OK, "out type %s: %s", dp_type_name(t),
                  dp_last_error());
        if (!x) continue;
        const struct dp_gguf *g = gguf_of(x);
        CHECK_MSG(embd_is_requantized(g, src, rec->units[0].c, t), "out type %s: token_embd", dp_type_name(t));
        const struct dp_gguf_tensor *dt = dp_gguf_find_tensor(g, "blk.0.ffn_down.weight");
        CHECK_MSG(dt && dt->type == dp_quantize_fallback(t, 32) && info.n_fallback == (dt->type != t),
                  "out type %s: zero ffn_down in %s", dp_type_name(t), dt ? dp_type_name(dt->type) : "-");
        char buf[32];
        CHECK(dp_gguf_get_str(g, "depthprune.out_type", true, buf, sizeof buf) == DP_OK && !strcmp(buf, dp_type_name(t)));
        float *lg = logits_of(x, NULL, NULL, pool);
        bool finite = true;
        for (long k = 0; k < (long)N_TOK * 512; k++) finite = finite && isfinite(lg[k]);
        CHECK_MSG(finite, "out type %s: logits of the reload are finite", dp_type_name(t));
        free(lg);
        dp_model_close(x);
    }
    free_rec(rec);
    dp_model_close(m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dp_test_export.XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_sha256();
    struct dp_pool *pool = dp_pool_new(2);
    test_stories(pool);
    test_arrays(pool);
    test_kquants(pool);
    dp_pool_free(pool);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return TEST_END();
}
