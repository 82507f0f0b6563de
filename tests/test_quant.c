/*
 * test_quant: weight types against llama.cpp's own files. The synthetic
 * models in ../shared/models/synthetic were quantized by llama-quantize from
 * the same F32 weights: requantizing the F32 tensors with dp_quantize_row must
 * give the same bytes, and the quantized models must give logits close to
 * their F32 twin (within the rounding of the weights).
 */
#include "harness.h"
#include "model.h"

#include <unistd.h>

static void same_bytes(const struct dp_gguf *f32, const struct dp_gguf *q, uint32_t type) {
    int checked = 0, equal = 0;
    for (uint64_t i = 0; i < q->n_tensors; i++) {
        const struct dp_gguf_tensor *tq = &q->tensors[i];
        if (tq->type != type) continue;
        const struct dp_gguf_tensor *tf = dp_gguf_find_tensor(f32, tq->name);
        CHECK_MSG(tf != NULL, "%s missing in the F32 file", tq->name);
        if (!tf) continue;
        size_t row = dp_type_row_bytes(type, tq->ne[0]);
        uint8_t *buf = malloc(row);
        bool same = true;
        for (int64_t r = 0; r < tq->ne[1] && same; r++) {
            same = dp_quantize_row(type, (const float *)tf->data + r * tf->ne[0], buf, tf->ne[0]) == DP_OK &&
                   !memcmp(buf, tq->data + r * row, row);
            if (!same) fprintf(stderr, "%s row %lld differs from llama-quantize\n", tq->name, (long long)r);
        }
        free(buf);
        checked++;
        equal += same;
    }
    CHECK_MSG(checked > 0 && equal == checked, "%s: %d of %d tensors identical", dp_type_name(type), equal, checked);
}

static float *logits_of(const char *rel, const int *ids, int n) {
    struct dp_model *m;
    if (dp_model_open(rel[0] == '/' ? rel : test_shared(rel), NULL, &m)) {
        fprintf(stderr, "%s\n", dp_last_error());
        return NULL;
    }
    struct dp_session *s;
    float *lg = malloc((size_t)n * 512 * sizeof *lg);
    dp_status st = dp_session_new(m, NULL, n, &s);
    if (!st) st = dp_session_forward(s, NULL, ids, n, lg, DP_LOGITS_ALL);
    dp_session_free(s);
    dp_model_close(m);
    if (st) {
        free(lg);
        return NULL;
    }
    return lg;
}

/* Largest |a-b| relative to the largest |b|. */
static double rel_err(const float *a, const float *b, int n) {
    double d = 0, mx = 0;
    for (int i = 0; i < n; i++) {
        if (fabs(a[i] - b[i]) > d) d = fabs(a[i] - b[i]);
        if (fabs(b[i]) > mx) mx = fabs(b[i]);
    }
    return d / mx;
}

/* Write an F32 copy of a GGUF file whose quantized tensors are dequantized. */
static bool dequantized_copy(const char *rel, const char *out) {
    struct dp_gguf *g;
    if (dp_gguf_open(test_shared(rel), &g)) return false;
    struct dp_gguf_writer *w = dp_gguf_writer_new();
    for (uint64_t i = 0; i < g->n_kv; i++) dp_gguf_copy_kv(w, g, &g->kv[i], NULL);
    float **bufs = calloc(g->n_tensors, sizeof *bufs);
    bool ok = true;
    for (uint64_t i = 0; i < g->n_tensors && ok; i++) {
        const struct dp_gguf_tensor *t = &g->tensors[i];
        int64_t n = t->ne[0] * t->ne[1];
        bufs[i] = malloc((size_t)n * sizeof(float));
        size_t row = dp_type_row_bytes(t->type, t->ne[0]);
        for (int64_t r = 0; r < t->ne[1]; r++) dp_dequant_row(t->type, t->data + r * row, bufs[i] + r * t->ne[0], t->ne[0]);
        ok = dp_gguf_add_tensor(w, t->name, DP_TYPE_F32, (int)t->n_dims, t->ne, bufs[i], (size_t)n * sizeof(float)) == DP_OK;
    }
    ok = ok && dp_gguf_writer_write(w, out) == DP_OK;
    for (uint64_t i = 0; i < g->n_tensors; i++) free(bufs[i]);
    free(bufs);
    dp_gguf_writer_free(w);
    dp_gguf_close(g);
    return ok;
}

int main(void) {
    struct dp_gguf *f32, *q8, *q4;
    CHECK(dp_gguf_open(test_shared("models/synthetic/synth-llama-f32.gguf"), &f32) == DP_OK);
    CHECK(dp_gguf_open(test_shared("models/synthetic/synth-llama-q8_0.gguf"), &q8) == DP_OK);
    CHECK(dp_gguf_open(test_shared("models/synthetic/synth-llama-q4_0.gguf"), &q4) == DP_OK);
    if (!f32 || !q8 || !q4) return TEST_END();
    same_bytes(f32, q8, DP_TYPE_Q8_0);
    same_bytes(f32, q4, DP_TYPE_Q4_0);
    dp_gguf_close(f32);
    dp_gguf_close(q8);
    dp_gguf_close(q4);

    int ids[32];
    for (int i = 0; i < 32; i++) ids[i] = (i * 37 + 11) % 512;
    ids[0] = 1;
    float *lf = logits_of("models/synthetic/synth-llama-f32.gguf", ids, 32);
    float *l8 = logits_of("models/synthetic/synth-llama-q8_0.gguf", ids, 32);
    float *l4 = logits_of("models/synthetic/synth-llama-q4_0.gguf", ids, 32);
    CHECK(lf && l8 && l4);
    if (lf && l8 && l4) {
        double e8 = rel_err(l8, lf, 32 * 512), e4 = rel_err(l4, lf, 32 * 512);
        printf("max logit error relative to the largest logit: Q8_0 %.2e, Q4_0 %.2e\n", e8, e4);
        CHECK(e4 > e8); /* coarser weights, larger error: the quantized files are really used */
    }
    /* exactness: a quantized model equals its dequantized F32 copy up to summation order */
    const char *types[] = {"q8_0", "q4_0"};
    for (int k = 0; k < 2; k++) {
        char rel[128], tmp[128];
        snprintf(rel, sizeof rel, "models/synthetic/synth-llama-%s.gguf", types[k]);
        snprintf(tmp, sizeof tmp, "/tmp/dp_test_quant_%d_%s.gguf", (int)getpid(), types[k]);
        CHECK(dequantized_copy(rel, tmp));
        float *lq = logits_of(rel, ids, 32), *ld = logits_of(tmp, ids, 32);
        CHECK(lq && ld && CHECK_CLOSE_ARR(lq, ld, 32 * 512, 1e-4, 1e-5));
        free(lq);
        free(ld);
        remove(tmp);
    }
    float *lq = logits_of("models/synthetic/synth-qwen2-f32.gguf", ids, 32);
    CHECK_MSG(lq != NULL, "qwen2 model runs");
    if (lq) {
        bool finite = true;
        for (int i = 0; i < 32 * 512; i++) finite = finite && isfinite(lq[i]);
        CHECK(finite);
    }
    /* a K-quant file opens since issue 13 (its numbers: test_quants) */
    struct dp_model *m = NULL;
    CHECK(dp_model_open(test_shared("models/synthetic/synth-llama-q6_k.gguf"), NULL, &m) == DP_OK);
    dp_model_close(m);
    free(lf);
    free(l8);
    free(l4);
    free(lq);
    return TEST_END();
}
