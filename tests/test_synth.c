/*
 * test_synth: `depthprune synth --type` in every type the quantizer writes
 * and in llama-quantize's preset mixes. synth's random weights are not the
 * ones of ../shared/models/synthetic/synth-llama-f32.gguf (llama.cpp's tools
 * made that file), so the check is in two halves: the per-tensor types of a
 * synthesized mix equal those llama-quantize chose in ../shared/models/quants
 * for the same shape (the reference from outside), and every tensor's bytes
 * equal dp_quantize_row of the F32 twin of the same seed (the quantizer
 * itself is held to llama-quantize's bytes by test_quantize). Rows that are
 * not whole blocks take the fallback type with a note on stderr. The logits
 * of the F16, BF16, Q8_0 and Q4_0 twins stay within a bound set per type from
 * the measured error to the F32 twin's (the NLL of a random model would not
 * notice a wrong decoder).
 * Runs the ./depthprune binary (or $DP).
 */
#include "harness.h"
#include "gguf.h"
#include "model.h"
#include "quantize.h"

#include <unistd.h>

static char tmpdir[64];
static const char *dp_bin;

/* Run synth with `args` into tmpdir/name; stderr into tmpdir/name.err. */
static bool synth(const char *name, const char *args) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s synth -o %s/%s %s --vocab 512 2>%s/%s.err", dp_bin, tmpdir, name, args, tmpdir, name);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s", cmd);
    return rc == 0;
}

static struct dp_gguf *open_tmp(const char *name) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    struct dp_gguf *g = NULL;
    if (dp_gguf_open(p, &g)) CHECK_MSG(0, "%s", dp_last_error());
    return g;
}

/* Tensors of q whose bytes are not dp_quantize_row of f32's values in q's type (the F32 file's own 1-D tensors excepted). */
static int requant_mismatches(const struct dp_gguf *q, const struct dp_gguf *f32) {
    int bad = 0;
    for (uint64_t i = 0; i < q->n_tensors; i++) {
        const struct dp_gguf_tensor *t = &q->tensors[i], *f = dp_gguf_find_tensor(f32, t->name);
        if (!f || f->type != DP_TYPE_F32 || f->ne[0] != t->ne[0] || f->ne[1] != t->ne[1]) {
            bad++;
            continue;
        }
        size_t row = dp_type_row_bytes(t->type, t->ne[0]);
        uint8_t *buf = malloc(row);
        bool same = row * (size_t)t->ne[1] == t->nbytes;
        for (int64_t r = 0; same && r < t->ne[1]; r++)
            same = dp_quantize_row(t->type, (const float *)f->data + r * t->ne[0], buf, t->ne[0]) == DP_OK &&
                   !memcmp(buf, t->data + r * row, row);
        free(buf);
        if (!same) fprintf(stderr, "%s: bytes are not the quantization of the F32 twin\n", t->name);
        bad += !same;
    }
    return bad;
}

/* A mix: same tensor types as llama-quantize's file of that preset, bytes the quantization of the F32 twin. */
static void mix(const char *preset, const char *shared_rel, const struct dp_gguf *f32) {
    char name[64], args[128];
    snprintf(name, sizeof name, "%s.gguf", preset);
    snprintf(args, sizeof args, "--type %s --seed 5", preset);
    if (!synth(name, args)) return;
    struct dp_gguf *q = open_tmp(name), *ref = NULL;
    if (dp_gguf_open(test_shared(shared_rel), &ref)) CHECK_MSG(0, "%s", dp_last_error());
    if (q && ref) {
        int wrong = 0;
        for (uint64_t i = 0; i < ref->n_tensors; i++) {
            const struct dp_gguf_tensor *r = &ref->tensors[i], *t = dp_gguf_find_tensor(q, r->name);
            if (!t || t->type != r->type) {
                wrong++;
                fprintf(stderr, "%s: %s is %s, llama-quantize made %s\n", preset, r->name,
                        t ? dp_type_name(t->type) : "missing", dp_type_name(r->type));
            }
        }
        CHECK_MSG(wrong == 0 && q->n_tensors == ref->n_tensors, "%s: %d tensor types differ from %s", preset, wrong,
                  shared_rel);
        CHECK_MSG(requant_mismatches(q, f32) == 0, "%s", preset);
        printf("synth --type %-8s types as %s, bytes as the quantizer's\n", preset, shared_rel);
    }
    dp_gguf_close(q);
    dp_gguf_close(ref);
}

/*
 * Logits of the quantized twin `name` against the F32 twin's: relative rms
 * error rms(l - l_f32) / rms(l_f32 - its row mean) over 32 tokens, the
 * weights' rounding carried through two blocks (the NLL of a random model is
 * near log(vocab) whatever the weights, so it would hide a wrong decoder).
 */
static double logits_error(const char *name, const float *ref, const int *ids, int n) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    struct dp_model *m = NULL;
    if (dp_model_open(p, NULL, &m)) {
        CHECK_MSG(0, "%s", dp_last_error());
        return INFINITY;
    }
    int V = dp_model_config(m)->n_vocab;
    float *lg = malloc((size_t)n * V * sizeof *lg);
    struct dp_session *s = NULL;
    double num = 0, den = 0;
    if (!dp_session_new(m, NULL, n, &s) && !dp_session_forward(s, NULL, ids, n, lg, DP_LOGITS_ALL)) {
        for (int t = 0; t < n; t++) {
            double mean = 0;
            for (int v = 0; v < V; v++) mean += ref[(size_t)t * V + v] / V;
            for (int v = 0; v < V; v++) {
                double d = (double)lg[(size_t)t * V + v] - ref[(size_t)t * V + v], c = ref[(size_t)t * V + v] - mean;
                num += d * d;
                den += c * c;
            }
        }
    } else {
        CHECK_MSG(0, "%s: %s", name, dp_last_error());
        num = INFINITY;
        den = 1;
    }
    dp_session_free(s);
    dp_model_close(m);
    free(lg);
    return sqrt(num / den);
}

/* The F32 twin's logits (n, vocab) for ids, or NULL. */
static float *f32_logits(const char *name, const int *ids, int n) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    struct dp_model *m = NULL;
    if (dp_model_open(p, NULL, &m)) return NULL;
    float *lg = malloc((size_t)n * dp_model_config(m)->n_vocab * sizeof *lg);
    struct dp_session *s = NULL;
    if (dp_session_new(m, NULL, n, &s) || dp_session_forward(s, NULL, ids, n, lg, DP_LOGITS_ALL)) {
        free(lg);
        lg = NULL;
    }
    dp_session_free(s);
    dp_model_close(m);
    return lg;
}

int main(void) {
    dp_bin = getenv("DP") ? getenv("DP") : "./depthprune";
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dp_test_synth.%d", (int)getpid());
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
    if (system(cmd) != 0) return 1;
    struct dp_gguf *f32 = NULL;
    if (synth("f32.gguf", "--seed 5")) f32 = open_tmp("f32.gguf");
    int ids[32];
    for (int i = 0; i < 32; i++) ids[i] = (i * 97 + 13) % 512;
    float *ref = f32 ? f32_logits("f32.gguf", ids, 32) : NULL;
    CHECK(!f32 || ref);
    /*
     * Relative logit error bounds per type: measured (seed 5, 256 wide, 2 blocks, exact activations)
     * F16 7.5e-4, BF16 6.0e-3, Q8_0 1.42e-2, Q4_0 0.236; bound about twice that.
     */
    static const struct {
        uint32_t type;
        double bound;
    } logit_bounds[] = {{DP_TYPE_F16, 1.5e-3}, {DP_TYPE_BF16, 1.2e-2}, {DP_TYPE_Q8_0, 3e-2}, {DP_TYPE_Q4_0, 0.45}};
    if (f32) {
        mix("Q4_K_M", "models/quants/synth-llama-q4_k_m.gguf", f32);
        mix("Q4_K_S", "models/quants/synth-llama-q4_k_s.gguf", f32);
        mix("Q5_K_M", "models/quants/synth-llama-q5_k_m.gguf", f32);
        mix("Q3_K_M", "models/quants/synth-llama-q3_k_m.gguf", f32);
        mix("Q2_K_MIX", "models/quants/synth-llama-q2_k-mix.gguf", f32);
        /* plain types: every matrix in the type, norms in F32 */
        const uint32_t types[] = {DP_TYPE_F16, DP_TYPE_BF16, DP_TYPE_Q8_0, DP_TYPE_Q4_0, DP_TYPE_Q4_1, DP_TYPE_Q5_0,
                                  DP_TYPE_Q5_1, DP_TYPE_Q2_K, DP_TYPE_Q3_K, DP_TYPE_Q4_K, DP_TYPE_Q5_K, DP_TYPE_Q6_K,
                                  DP_TYPE_IQ4_NL, DP_TYPE_IQ4_XS};
        for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
            char args[64];
            snprintf(args, sizeof args, "--type %s --seed 5", dp_type_name(types[i]));
            if (!synth("t.gguf", args)) continue;
            struct dp_gguf *q = open_tmp("t.gguf");
            if (!q) continue;
            int wrong = 0;
            for (uint64_t k = 0; k < q->n_tensors; k++)
                wrong += q->tensors[k].type != (q->tensors[k].n_dims == 1 ? DP_TYPE_F32 : types[i]);
            CHECK_MSG(wrong == 0 && q->n_tensors == 21, "%s: %d tensors of another type", dp_type_name(types[i]), wrong);
            CHECK_MSG(requant_mismatches(q, f32) == 0, "%s", dp_type_name(types[i]));
            dp_gguf_close(q);
            for (size_t b = 0; ref && b < sizeof logit_bounds / sizeof *logit_bounds; b++) {
                if (logit_bounds[b].type != types[i]) continue;
                double e = logits_error("t.gguf", ref, ids, 32);
                fprintf(stderr, "%s: logits vs F32, relative rms error %.3g (bound %.3g)\n", dp_type_name(types[i]), e,
                        logit_bounds[b].bound);
                CHECK_MSG(e <= logit_bounds[b].bound, "%s: logits vs F32, relative rms error %.3g > %.3g",
                          dp_type_name(types[i]), e, logit_bounds[b].bound);
            }
        }
        dp_gguf_close(f32);
        free(ref);
    }
    /* rows of 96 cannot be Q4_K: Q5_0 instead; ffn_down rows of 200 cannot be Q5_0 either: F16; a note each */
    if (synth("fb.gguf", "--type Q4_K --dim 96 --heads 4 --ff 200")) {
        struct dp_gguf *q = open_tmp("fb.gguf");
        const struct dp_gguf_tensor *a = q ? dp_gguf_find_tensor(q, "blk.0.attn_q.weight") : NULL,
                                    *d = q ? dp_gguf_find_tensor(q, "blk.0.ffn_down.weight") : NULL;
        CHECK(a && a->type == DP_TYPE_Q5_0);
        CHECK(d && d->type == DP_TYPE_F16);
        dp_gguf_close(q);
        snprintf(cmd, sizeof cmd, "grep -c fallback %s/fb.gguf.err | grep -qx 16", tmpdir);
        CHECK_MSG(system(cmd) == 0, "one fallback note per matrix (16) on stderr");
    }
    /* bad types fail with one line */
    snprintf(cmd, sizeof cmd, "%s synth -o %s/x.gguf --type IQ2_XXS 2>%s/x.err; test $? -eq 2 && test $(wc -l <%s/x.err) -eq 1",
             dp_bin, tmpdir, tmpdir, tmpdir);
    CHECK_MSG(system(cmd) == 0, "synth --type IQ2_XXS fails with one line");
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) return 1;
    return TEST_END();
}
