/*
 * test_model: the forward pass against logits computed outside the project
 * (../shared/reference/logits_*.bin, double precision, tolerance 1e-4 per
 * logit), the llama2.c checkpoint against the GGUF (bit-identical), batch
 * against incremental decode, and thread counts against each other; GGUF
 * metadata that disagrees with the tensors (block_count, head counts, FFN
 * width, qwen2's q/k/v biases) is refused naming the key and the tensor.
 */
#include "harness.h"
#include "model.h"

#include <unistd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const int ids[16] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426};

static float *read_ref(const char *rel) {
    FILE *f = fopen(test_shared(rel), "rb");
    if (!f) return NULL;
    float *r = malloc(16 * 512 * sizeof *r);
    size_t n = fread(r, sizeof *r, 16 * 512, f);
    fclose(f);
    if (n != 16 * 512) {
        free(r);
        return NULL;
    }
    return r;
}

static float *run(struct dp_model *m, const char *drop, int n_threads, bool incremental) {
    struct dp_mask mask;
    dp_mask_all(m, &mask);
    if (drop && dp_mask_drop(&mask, drop)) return NULL;
    struct dp_session *s;
    if (dp_session_new(m, &mask, 64, &s)) return NULL;
    struct dp_pool *pool = dp_pool_new(n_threads);
    float *lg = malloc(16 * 512 * sizeof *lg);
    dp_status st = DP_OK;
    if (incremental) {
        st = dp_session_forward(s, pool, ids, 5, lg, DP_LOGITS_ALL);
        for (int t = 5; t < 16 && !st; t++) st = dp_session_forward(s, pool, ids + t, 1, lg + t * 512, DP_LOGITS_LAST);
    } else {
        st = dp_session_forward(s, pool, ids, 16, lg, DP_LOGITS_ALL);
    }
    dp_pool_free(pool);
    dp_session_free(s);
    if (st) {
        free(lg);
        return NULL;
    }
    return lg;
}

/* Observer that keeps the input residual of one unit. */
struct snap {
    int unit;
    float *x;
};
static void keep_input(void *ctx, int unit, const float *x, const float *y, int n, int dim, int pos0) {
    struct snap *sn = ctx;
    (void)y;
    if (unit == sn->unit) memcpy(sn->x + (size_t)pos0 * dim, x, (size_t)n * dim * sizeof *x);
}

/* A replacement adding a constant update c to the removed unit. */
static bool add_const(void *ctx, int unit, const float *x, float *delta, int n, int dim, int pos0) {
    (void)x; (void)pos0;
    const float *c = ctx;
    if (unit != 5) return false;
    for (int t = 0; t < n; t++) memcpy(delta + (size_t)t * dim, c, (size_t)dim * sizeof *c);
    return true;
}

/* Prefix reuse: a pass started at unit 4 from the full model's stream equals a whole pass. */
static void test_hooks(struct dp_model *m, const float *lg_d) {
    struct dp_mask full, drop;
    dp_mask_all(m, &full);
    drop = full;
    dp_mask_drop(&drop, "b2");
    struct snap sn = {4, calloc(16 * 64, sizeof(float))};
    struct dp_hooks h = {.ctx = &sn, .observe = keep_input};
    struct dp_session *s;
    float *lg = malloc(16 * 512 * sizeof *lg), *lg2 = malloc(16 * 512 * sizeof *lg);
    CHECK(dp_session_new(m, &full, 64, &s) == DP_OK);
    CHECK(dp_session_forward_hooked(s, NULL, ids, 16, lg, DP_LOGITS_ALL, &h) == DP_OK);
    dp_session_free(s);
    struct dp_hooks start = {.start_unit = 4, .start_x = sn.x};
    CHECK(dp_session_new(m, &drop, 64, &s) == DP_OK);
    CHECK(dp_session_forward_hooked(s, NULL, NULL, 16, lg, DP_LOGITS_ALL, &start) == DP_OK);
    CHECK(!memcmp(lg, lg_d, 16 * 512 * sizeof *lg));
    /* a replacement of f2 by a zero constant is the same as removing it */
    float zero[64] = {0};
    struct dp_hooks rep = {.ctx = zero, .replace = add_const};
    struct dp_mask nof2 = full;
    dp_mask_drop(&nof2, "f2");
    dp_session_reset(s);
    dp_session_free(s);
    CHECK(dp_session_new(m, &nof2, 64, &s) == DP_OK);
    CHECK(dp_session_forward_hooked(s, NULL, ids, 16, lg, DP_LOGITS_ALL, &rep) == DP_OK);
    dp_session_reset(s);
    CHECK(dp_session_forward(s, NULL, ids, 16, lg2, DP_LOGITS_ALL) == DP_OK);
    CHECK(!memcmp(lg, lg2, 16 * 512 * sizeof *lg));
    /* rewinding and replaying the tail gives the same logits */
    dp_session_rewind(s, 10);
    CHECK(dp_session_forward(s, NULL, ids + 10, 6, lg, DP_LOGITS_ALL) == DP_OK);
    CHECK_CLOSE_ARR(lg, lg2 + 10 * 512, 6 * 512, 1e-5, 0);
    dp_session_free(s);
    free(sn.x);
    free(lg);
    free(lg2);
}

/*
 * A copy of the GGUF src at path, through the project's writer: every key and
 * tensor, then `key` set to u32 `val` (when key is not NULL) and the tensor
 * `drop` left out (when not NULL).
 */
static bool rewrite(const char *src, const char *path, const char *key, uint32_t val, const char *drop) {
    struct dp_gguf *g;
    if (dp_gguf_open(src, &g)) return false;
    struct dp_gguf_writer *w = dp_gguf_writer_new();
    dp_status st = w ? DP_OK : DP_ERR_NOMEM;
    for (uint64_t k = 0; !st && k < g->n_kv; k++) dp_gguf_copy_kv(w, g, &g->kv[k], NULL);
    if (!st && key) dp_gguf_set_u32(w, key, val);
    for (uint64_t k = 0; !st && k < g->n_tensors; k++) {
        const struct dp_gguf_tensor *t = &g->tensors[k];
        if (drop && !strcmp(t->name, drop)) continue;
        st = dp_gguf_add_tensor(w, t->name, t->type, (int)t->n_dims, t->ne, t->data, t->nbytes);
    }
    if (!st) st = dp_gguf_writer_write(w, path);
    dp_gguf_writer_free(w);
    dp_gguf_close(g);
    return st == DP_OK;
}

/* Opening path fails with DP_ERR_FORMAT and one line naming the file, `a` and `b`. */
static void refused(const char *path, const char *a, const char *b) {
    struct dp_model *m = NULL;
    dp_status st = dp_model_open(path, NULL, &m);
    const char *e = dp_last_error();
    CHECK_MSG(st == DP_ERR_FORMAT && !m && strstr(e, path) && strstr(e, a) && strstr(e, b) && !strchr(e, '\n'),
              "want a refusal naming %s and %s, got status %d: %s", a, b, (int)st, st ? e : "(loaded)");
    dp_model_close(m);
}

static void metadata_vs_tensors(void) {
    const char *st = test_shared("models/stories260K/stories260K.gguf");
    const char *qw = test_shared("models/synthetic/synth-qwen2-f32.gguf");
    char path[] = "/tmp/dp_test_meta_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    struct dp_model *m = NULL;
    /* the copies themselves load */
    CHECK(rewrite(st, path, NULL, 0, NULL) && dp_model_open(path, NULL, &m) == DP_OK);
    dp_model_close(m);
    CHECK(rewrite(qw, path, NULL, 0, NULL) && dp_model_open(path, NULL, &m) == DP_OK);
    dp_model_close(m);
    /* block_count smaller than the blocks present: blk.4.* would be ignored */
    CHECK(rewrite(st, path, "llama.block_count", 4, NULL));
    refused(path, "llama.block_count", "'blk.4.");
    /* qwen2 without one of its q/k/v biases */
    const char *bias[3] = {"blk.0.attn_q.bias", "blk.1.attn_k.bias", "blk.1.attn_v.bias"};
    for (int i = 0; i < 3; i++) {
        CHECK(rewrite(qw, path, NULL, 0, bias[i]));
        refused(path, bias[i], "missing");
    }
    /* shapes that disagree with the head counts, the head size and the FFN width */
    CHECK(rewrite(st, path, "llama.attention.head_count_kv", 2, NULL));
    refused(path, "llama.attention.head_count_kv = 2", "'blk.0.attn_k.weight'");
    CHECK(rewrite(st, path, "llama.attention.key_length", 16, NULL));
    refused(path, "llama.attention.head_count = 8 x head size 16", "'blk.0.attn_q.weight'");
    CHECK(rewrite(st, path, "llama.feed_forward_length", 100, NULL));
    refused(path, "llama.feed_forward_length = 100", "'blk.0.ffn_gate.weight'");
    unlink(path);
}

/* A FIFO given to the library as a model is refused at once (a read would block forever). */
static void fifo_model(void) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/dp_test_model_fifo_%d", (int)getpid());
    CHECK(mkfifo(path, 0600) == 0);
    struct dp_model *m = NULL;
    CHECK(dp_model_open(path, NULL, &m) != DP_OK && m == NULL);
    CHECK_MSG(strstr(dp_last_error(), "not a regular file") != NULL, "%s", dp_last_error());
    unlink(path);
}

int main(void) {
    fifo_model();
    struct dp_model *g = NULL, *b = NULL;
    dp_status st = dp_model_open(test_shared("models/stories260K/stories260K.gguf"), NULL, &g);
    CHECK_MSG(st == DP_OK, "%s", dp_last_error());
    st = dp_model_open(test_shared("models/stories260K/stories260K.bin"), test_shared("models/stories260K/tok512.bin"), &b);
    CHECK_MSG(st == DP_OK, "%s", dp_last_error());
    float *full = read_ref("reference/logits_full.bin"), *drop2 = read_ref("reference/logits_drop_b2.bin");
    CHECK(full && drop2);
    if (!g || !b || !full || !drop2) return TEST_END();

    const struct dp_config *c = dp_model_config(g);
    CHECK_EQ_INT(c->n_layers, 5);
    CHECK_EQ_INT(c->n_embd, 64);
    CHECK_EQ_INT(c->n_head_kv, 4);
    CHECK(!c->tied_output);
    CHECK(dp_model_config(b)->tied_output);

    float *lg = run(g, NULL, 1, false);
    CHECK(lg && CHECK_CLOSE_ARR(lg, full, 16 * 512, 1e-4, 0));
    float *lg_d = run(g, "b2", 1, false);
    CHECK(lg_d && CHECK_CLOSE_ARR(lg_d, drop2, 16 * 512, 1e-4, 0));

    /* the llama2.c checkpoint gives bit-identical logits */
    float *lb = run(b, NULL, 1, false), *lb_d = run(b, "b2", 1, false);
    CHECK(lb && !memcmp(lb, lg, 16 * 512 * sizeof *lb));
    CHECK(lb_d && !memcmp(lb_d, lg_d, 16 * 512 * sizeof *lb));

    /* any thread count gives the same bits; incremental decode agrees with the batch */
    float *l2 = run(g, NULL, 2, false), *l3 = run(g, NULL, 3, false), *li = run(g, NULL, 2, true);
    CHECK(l2 && !memcmp(l2, lg, 16 * 512 * sizeof *l2));
    CHECK(l3 && !memcmp(l3, lg, 16 * 512 * sizeof *l3));
    CHECK(li && CHECK_CLOSE_ARR(li, lg, 16 * 512, 1e-5, 0));

    /* sublayer masks: dropping a2 and f2 equals dropping b2 */
    float *l_af = run(g, "a2,f2", 1, false);
    CHECK(l_af && !memcmp(l_af, lg_d, 16 * 512 * sizeof *l_af));

    test_hooks(g, lg_d);

    /* bad unit lists */
    struct dp_mask mask;
    dp_mask_all(g, &mask);
    CHECK(dp_mask_drop(&mask, "b5") == DP_ERR_ARG);
    CHECK(dp_mask_drop(&mask, "x1") == DP_ERR_ARG);
    CHECK(dp_mask_drop(&mask, "b1,") == DP_ERR_ARG);
    CHECK(dp_mask_drop(&mask, "a1,f3") == DP_OK);
    char buf[64];
    dp_mask_format(&mask, buf, sizeof buf);
    CHECK(!strcmp(buf, "a1,f3"));

    /* KV bytes: a removed attention sublayer has no cache */
    struct dp_model_stats s0, s1;
    dp_model_stats(g, NULL, &s0);
    dp_model_stats(g, &mask, &s1);
    CHECK_EQ_INT(s0.kv_bytes_per_token, 5 * 2 * 32 * 4);
    CHECK_EQ_INT(s1.kv_bytes_per_token, 4 * 2 * 32 * 4);

    /* bad files fail with a message naming them */
    struct dp_model *bad;
    CHECK(dp_model_open("/nonexistent/x.gguf", NULL, &bad) == DP_ERR_IO && strstr(dp_last_error(), "/nonexistent/x.gguf"));
    CHECK(dp_model_open(test_shared("models/stories260K/tok512.bin"), test_shared("models/stories260K/tok512.bin"), &bad) == DP_ERR_FORMAT);

    metadata_vs_tensors();

    free(lg); free(lg_d); free(lb); free(lb_d); free(l2); free(l3); free(li); free(l_af);
    free(full); free(drop2);
    dp_model_close(g);
    dp_model_close(b);
    return TEST_END();
}
