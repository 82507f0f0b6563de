/*
 * test_quantize: dp_quantize_row against llama-quantize's own bytes. Every
 * file of ../shared/models/quants (and the quantized llama files of
 * ../shared/models/synthetic) was made by llama-quantize without an
 * importance matrix from ../shared/models/synthetic/synth-llama-f32.gguf:
 * quantizing that file's F32 tensors row by row must give the same bytes,
 * block for block, for every tensor in a type dp_quantize_row writes, in the
 * --pure files and in the preset mixes alike. A tensor in a type it does not
 * write is a counted, printed skip, never a pass. Also the error paths.
 */
#include "harness.h"
#include "gguf.h"
#include "quantize.h"

#include <dirent.h>

/* The files the quants README lists: a missing one is a failure. */
static const char *const quant_files[] = {
    "synth-llama-iq4_nl.gguf", "synth-llama-iq4_xs.gguf",  "synth-llama-q2_k-mix.gguf",
    "synth-llama-q2_k.gguf",   "synth-llama-q3_k.gguf",    "synth-llama-q3_k_m.gguf",
    "synth-llama-q4_1.gguf",   "synth-llama-q4_k.gguf",    "synth-llama-q4_k_m.gguf",
    "synth-llama-q4_k_s.gguf", "synth-llama-q5_0.gguf",    "synth-llama-q5_1.gguf",
    "synth-llama-q5_k.gguf",   "synth-llama-q5_k_m.gguf",  "synth-llama-q6_k.gguf",
};
static const char *const synth_files[] = {
    "synth-llama-q8_0.gguf", "synth-llama-q4_0.gguf", "synth-llama-q6_k.gguf", "synth-llama-q4_k_m.gguf",
};

static int n_skipped;
static long long blocks_total[DP_TYPE_COUNT], diff_total[DP_TYPE_COUNT];

/*
 * Requantize every tensor of `path` whose type dp_quantize_row writes from
 * the F32 twin and count differing blocks per type; print one line per type.
 */
static void compare_file(const struct dp_gguf *f32, const char *path) {
    struct dp_gguf *q;
    if (dp_gguf_open(path, &q)) {
        CHECK_MSG(0, "%s", dp_last_error());
        return;
    }
    long long blocks[DP_TYPE_COUNT] = {0}, diff[DP_TYPE_COUNT] = {0};
    int tensors[DP_TYPE_COUNT] = {0}, skipped[DP_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < q->n_tensors; i++) {
        const struct dp_gguf_tensor *tq = &q->tensors[i];
        const struct dp_gguf_tensor *tf = dp_gguf_find_tensor(f32, tq->name);
        CHECK_MSG(tf && tf->type == DP_TYPE_F32 && tf->ne[0] == tq->ne[0] && tf->ne[1] == tq->ne[1],
                  "%s: tensor %s has no F32 twin of its shape", path, tq->name);
        if (!tf || tf->ne[0] != tq->ne[0] || tf->ne[1] != tq->ne[1] || tq->type >= DP_TYPE_COUNT) continue;
        if (!dp_quantize_supported(tq->type)) {
            skipped[tq->type]++;
            continue;
        }
        const struct dp_type_traits *t = dp_type_traits(tq->type);
        int64_t n_in = tq->ne[0], n_rows = tq->nbytes / dp_type_row_bytes(tq->type, n_in);
        size_t row = dp_type_row_bytes(tq->type, n_in);
        uint8_t *buf = malloc(row);
        tensors[tq->type]++;
        dp_status st = DP_OK;
        for (int64_t r = 0; r < n_rows; r++) {
            if ((st = dp_quantize_row(tq->type, (const float *)tf->data + r * n_in, buf, n_in))) break;
            for (int64_t b = 0; b < n_in / t->block_size; b++) {
                const uint8_t *mine = buf + b * t->block_bytes, *theirs = tq->data + r * row + b * t->block_bytes;
                bool same = st == DP_OK && !memcmp(mine, theirs, t->block_bytes);
                if (!same && diff[tq->type] == 0)
                    fprintf(stderr, "  first difference: %s row %lld block %lld\n", tq->name, (long long)r,
                            (long long)b);
                blocks[tq->type]++;
                diff[tq->type] += !same;
            }
        }
        CHECK_MSG(st == DP_OK, "%s: %s: %s", path, tq->name, dp_last_error());
        free(buf);
    }
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    for (int ty = 0; ty < DP_TYPE_COUNT; ty++) {
        if (tensors[ty]) {
            printf("%-28s %-7s %2d tensors %7lld blocks, %lld differ\n", base, dp_type_name((uint32_t)ty),
                   tensors[ty], blocks[ty], diff[ty]);
            CHECK_MSG(diff[ty] == 0, "%s: %lld of %lld %s blocks differ from llama-quantize", base, diff[ty],
                      blocks[ty], dp_type_name((uint32_t)ty));
            blocks_total[ty] += blocks[ty];
            diff_total[ty] += diff[ty];
        }
        if (skipped[ty]) {
            printf("%-28s %-7s %2d tensors SKIPPED (no quantizer for this type)\n", base,
                   dp_type_name((uint32_t)ty), skipped[ty]);
            n_skipped += skipped[ty];
        }
    }
    dp_gguf_close(q);
}

/* Every *.gguf in dir must be in the list, every listed file must be there: the folder is read as a whole. */
static void check_listing(const char *dir, const char *const *names, int n) {
    DIR *d = opendir(dir);
    CHECK_MSG(d != NULL, "cannot read %s", dir);
    if (!d) return;
    int found = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".gguf")) continue;
        bool listed = false;
        for (int i = 0; i < n; i++) listed |= !strcmp(names[i], e->d_name);
        CHECK_MSG(listed, "%s/%s is not in this test's list: add it", dir, e->d_name);
        found += listed;
    }
    closedir(d);
    CHECK_MSG(found == n, "%s: %d of the %d expected files present", dir, found, n);
}

static void error_paths(void) {
    float x[512] = {0};
    uint8_t row[1024];
    /* whole rows of zeros are fine in every type (no division by zero, no NaN scale) */
    const uint32_t all[] = {DP_TYPE_Q4_0, DP_TYPE_Q4_1, DP_TYPE_Q5_0, DP_TYPE_Q5_1, DP_TYPE_Q8_0, DP_TYPE_Q2_K,
                            DP_TYPE_Q3_K, DP_TYPE_Q4_K, DP_TYPE_Q5_K, DP_TYPE_Q6_K, DP_TYPE_IQ4_NL, DP_TYPE_IQ4_XS};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        const struct dp_type_traits *t = dp_type_traits(all[i]);
        CHECK_MSG(dp_quantize_supported(all[i]), "%s", t->name);
        CHECK_EQ_INT(dp_quantize_row(all[i], x, row, 256), DP_OK);
        /* n not a multiple of the block size */
        CHECK_EQ_INT(dp_quantize_row(all[i], x, row, t->block_size + 1), DP_ERR_ARG);
        CHECK_EQ_INT(dp_quantize_row(all[i], x, row, t->block_size == 256 ? 128 : 48), DP_ERR_ARG);
        CHECK(strstr(dp_last_error(), t->name) != NULL);
    }
    const uint32_t none[] = {DP_TYPE_Q8_1, DP_TYPE_Q8_K, DP_TYPE_IQ2_XXS, DP_TYPE_IQ3_S, DP_TYPE_IQ1_M,
                             DP_TYPE_TQ1_0, DP_TYPE_I8, 4, 5, 99};
    for (size_t i = 0; i < sizeof none / sizeof *none; i++) {
        CHECK(!dp_quantize_supported(none[i]));
        CHECK_EQ_INT(dp_quantize_row(none[i], x, row, 256), DP_ERR_UNSUPPORTED);
    }
}

/*
 * The per-tensor types of llama-quantize's preset mixes (dp_quantize_mix_type)
 * against the types in its own mixed files; 1-D tensors stay F32.
 */
static void mix_types(const char *rel, int mix) {
    struct dp_gguf *g;
    if (dp_gguf_open(test_shared(rel), &g)) {
        CHECK_MSG(0, "%s", dp_last_error());
        return;
    }
    int64_t n_layers = 0, heads = 0, kv = 0;
    dp_gguf_get_int(g, "llama.block_count", true, &n_layers);
    dp_gguf_get_int(g, "llama.attention.head_count", true, &heads);
    dp_gguf_get_int(g, "llama.attention.head_count_kv", true, &kv);
    bool has_output = dp_gguf_find_tensor(g, "output.weight") != NULL;
    int wrong = 0, n = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct dp_gguf_tensor *t = &g->tensors[i];
        int layer = -1;
        sscanf(t->name, "blk.%d.", &layer);
        uint32_t want = t->n_dims < 2 ? DP_TYPE_F32
                        : dp_quantize_mix_type(mix, t->name, layer, (int)n_layers, (int)(heads / kv), t->ne[0], has_output);
        n++;
        if (want != t->type) {
            wrong++;
            fprintf(stderr, "%s: %s is %s, the %s rule says %s\n", rel, t->name, dp_type_name(t->type),
                    dp_quantize_mix_name(mix), dp_type_name(want));
        }
    }
    printf("%-36s %s: %d tensors, %d of another type than the rule\n", rel, dp_quantize_mix_name(mix), n, wrong);
    CHECK(n == 21 && wrong == 0);
    dp_gguf_close(g);
}

/* The fallback for rows that are not whole blocks, as llama-quant.cpp's table. */
static void fallbacks(void) {
    CHECK_EQ_INT(dp_quantize_fallback(DP_TYPE_Q4_K, 256), DP_TYPE_Q4_K);
    CHECK_EQ_INT(dp_quantize_fallback(DP_TYPE_Q4_K, 96), DP_TYPE_Q5_0);
    CHECK_EQ_INT(dp_quantize_fallback(DP_TYPE_Q5_K, 96), DP_TYPE_Q5_1);
    CHECK_EQ_INT(dp_quantize_fallback(DP_TYPE_Q6_K, 96), DP_TYPE_Q8_0);
    CHECK_EQ_INT(dp_quantize_fallback(DP_TYPE_Q2_K, 32), DP_TYPE_IQ4_NL);
    CHECK_EQ_INT(dp_quantize_fallback(DP_TYPE_Q3_K, 32), DP_TYPE_IQ4_NL);
    CHECK_EQ_INT(dp_quantize_fallback(DP_TYPE_IQ4_XS, 64), DP_TYPE_IQ4_NL);
    CHECK_EQ_INT(dp_quantize_fallback(DP_TYPE_Q4_K, 100), DP_TYPE_F16);
    CHECK_EQ_INT(dp_quantize_fallback(DP_TYPE_Q8_0, 100), DP_TYPE_F16);
    CHECK_EQ_INT(dp_quantize_fallback(DP_TYPE_F32, 7), DP_TYPE_F32);
    /* the head falls back to Q8_0, not through the table */
    CHECK_EQ_INT(dp_quantize_mix_type(DP_MIX_Q4_K_M, "output.weight", -1, 2, 2, 96, true), DP_TYPE_Q8_0);
    CHECK_EQ_INT(dp_quantize_mix_type(DP_MIX_Q4_K_M, "token_embd.weight", -1, 2, 2, 256, false), DP_TYPE_Q6_K);
    CHECK_EQ_INT(dp_quantize_mix_type(DP_MIX_Q4_K_M, "blk.0.ffn_down.weight", 0, 2, 2, 96, true), DP_TYPE_Q5_0);
    /* llama's use_more_bits on 32 layers: 0-3, 28-31 and every third from 6 */
    int more = 0;
    for (int l = 0; l < 32; l++)
        more += dp_quantize_mix_type(DP_MIX_Q4_K_M, "blk.x.attn_v.weight", l, 32, 4, 4096, true) == DP_TYPE_Q6_K;
    CHECK_EQ_INT(more, 4 + 4 + 8);
    CHECK_EQ_INT(dp_quantize_mix_from_name("q4_k_m"), DP_MIX_Q4_K_M);
    CHECK_EQ_INT(dp_quantize_mix_from_name("Q2_K_MIX"), DP_MIX_Q2_K);
    CHECK_EQ_INT(dp_quantize_mix_from_name("Q2_K"), DP_MIX_NONE);
}

int main(void) {
    error_paths();
    fallbacks();
    mix_types("models/quants/synth-llama-q4_k_m.gguf", DP_MIX_Q4_K_M);
    mix_types("models/quants/synth-llama-q4_k_s.gguf", DP_MIX_Q4_K_S);
    mix_types("models/quants/synth-llama-q5_k_m.gguf", DP_MIX_Q5_K_M);
    mix_types("models/quants/synth-llama-q3_k_m.gguf", DP_MIX_Q3_K_M);
    mix_types("models/quants/synth-llama-q2_k-mix.gguf", DP_MIX_Q2_K);
    mix_types("models/synthetic/synth-llama-q4_k_m.gguf", DP_MIX_Q4_K_M);
    struct dp_gguf *f32;
    const char *src = test_shared("models/synthetic/synth-llama-f32.gguf");
    if (dp_gguf_open(src, &f32)) {
        CHECK_MSG(0, "%s", dp_last_error());
        return TEST_END();
    }
    char path[1024];
    const char *qdir = test_shared("models/quants");
    check_listing(qdir, quant_files, (int)(sizeof quant_files / sizeof *quant_files));
    for (size_t i = 0; i < sizeof quant_files / sizeof *quant_files; i++) {
        snprintf(path, sizeof path, "%s/%s", qdir, quant_files[i]);
        compare_file(f32, path);
    }
    for (size_t i = 0; i < sizeof synth_files / sizeof *synth_files; i++) {
        snprintf(path, sizeof path, "%s", test_shared("models/synthetic"));
        snprintf(path + strlen(path), sizeof path - strlen(path), "/%s", synth_files[i]);
        compare_file(f32, path);
    }
    dp_gguf_close(f32);
    printf("all files, per type: blocks compared / differing:");
    for (int ty = 0; ty < DP_TYPE_COUNT; ty++)
        if (blocks_total[ty]) printf(" %s %lld/%lld", dp_type_name((uint32_t)ty), blocks_total[ty], diff_total[ty]);
    printf("\n%d tensors skipped (types without a quantizer)\n", n_skipped);
    return TEST_END();
}
