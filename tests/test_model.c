/*
 * test_model: the forward pass against logits computed outside the project
 * (../shared/reference/logits_*.bin, double precision, tolerance 1e-4 per
 * logit), the llama2.c checkpoint against the GGUF (bit-identical), batch
 * against incremental decode, and thread counts against each other.
 */
#include "harness.h"
#include "model.h"

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

int main(void) {
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

    free(lg); free(lg_d); free(lb); free(lb_d); free(l2); free(l3); free(li); free(l_af);
    free(full); free(drop2);
    dp_model_close(g);
    dp_model_close(b);
    return TEST_END();
}
