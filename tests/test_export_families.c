/*
 * test_export_families: export's per-family rules (docs/families.md,
 * "Export") on a synthetic llama model whose configured arch is switched to
 * each family, so the rules are checked without the families' forward pass:
 *  - gemma2: block removal only when every kept block keeps its
 *    sliding-window role by position (llama.cpp's pattern: even blocks
 *    local), no sublayer removal, no recovery constant; the 46-block (27B)
 *    shape with dim/heads != head size refused (llama.cpp scales its queries
 *    by block count);
 *  - gemma3 without a sliding window key: no pattern to keep;
 *  - qwen3, phi3: block removal only, no constant;
 *  - llama: sublayer removal becomes deci.
 * Refusals are one line naming the file and the reason; nothing is left
 * behind. The numerical side (qwen2's Q/K permutation into deci, reloads)
 * is in tests/cli_families_export.sh. Runs ./depthprune synth (or $DP).
 */
#include "harness.h"
#include "export.h"

#include <unistd.h>

static char tmpdir[64];

static struct dp_model *synth(const char *name, const char *args) {
    char cmd[1024], path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    snprintf(cmd, sizeof cmd, "%s synth -o %s %s --vocab 300 2>/dev/null", getenv("DP") ? getenv("DP") : "./depthprune",
             path, args);
    CHECK_MSG(system(cmd) == 0, "%s", cmd);
    struct dp_model *m = NULL;
    if (dp_model_open(path, NULL, &m)) CHECK_MSG(0, "%s", dp_last_error());
    return m;
}

/*
 * Export m as arch `arch` with `drop` removed (and a constant recovery of
 * unit `const_unit` when not NULL); the status, with `want` in the message
 * of a refusal. The output file is removed.
 */
static dp_status try_export(struct dp_model *m, const char *arch, const char *drop, const char *const_unit,
                            const char *want) {
    char saved[32], out[256];
    snprintf(saved, sizeof saved, "%s", m->cfg.arch);
    snprintf(m->cfg.arch, sizeof m->cfg.arch, "%s", arch);
    struct dp_mask mask;
    dp_mask_all(m, &mask);
    CHECK_EQ_INT(dp_mask_drop(&mask, drop), DP_OK);
    float c[512] = {0.5f};
    struct dp_unit_recovery u = {.rank = 0, .c = c};
    struct dp_recovery rec = {.kind = "mean", .dim = m->cfg.n_embd, .n = 1, .units = &u};
    if (const_unit) {
        snprintf(u.unit, sizeof u.unit, "%s", const_unit);
        u.kind = const_unit[0];
        u.layer = atoi(const_unit + 1);
    }
    snprintf(out, sizeof out, "%s/out.gguf", tmpdir);
    struct dp_export_info info;
    dp_status st = dp_export(m, &mask, const_unit ? &rec : NULL, NULL, out, &info);
    if (st) {
        const char *e = dp_last_error();
        CHECK_MSG(want && strstr(e, want) && strstr(e, m->path) && !strchr(e, '\n'), "%s %s: %s", arch, drop, e);
        CHECK_MSG(access(out, F_OK) != 0, "%s %s: refused but wrote %s", arch, drop, out);
    } else {
        CHECK_MSG(!want, "%s %s: exported, want a refusal naming '%s'", arch, drop, want ? want : "");
        CHECK_MSG(!strcmp(info.arch, strcmp(arch, "llama") || !strchr(drop, 'a') ? arch : "deci"), "%s %s: arch %s",
                  arch, drop, info.arch);
        unlink(out);
    }
    snprintf(m->cfg.arch, sizeof m->cfg.arch, "%s", saved);
    return st;
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dp_test_expfam_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    struct dp_model *m = synth("six.gguf", "--dim 64 --ff 64 --heads 2 --kv-heads 1 --layers 6");
    if (m) {
        /* gemma2: position parity decides sliding-window attention */
        CHECK_EQ_INT(try_export(m, "gemma2", "b1", NULL, "sliding-window"), DP_ERR_UNSUPPORTED);
        CHECK_EQ_INT(try_export(m, "gemma2", "b0", NULL, "sliding-window"), DP_ERR_UNSUPPORTED);
        CHECK_EQ_INT(try_export(m, "gemma2", "b5", NULL, NULL), DP_OK);
        CHECK_EQ_INT(try_export(m, "gemma2", "b1,b2", NULL, NULL), DP_OK);
        CHECK_EQ_INT(try_export(m, "gemma2", "b0,b1,b4,b5", NULL, NULL), DP_OK);
        CHECK_EQ_INT(try_export(m, "gemma2", "a1", NULL, "post-norms"), DP_ERR_UNSUPPORTED);
        CHECK_EQ_INT(try_export(m, "gemma2", "b1,b2", "b1", "sqrt(dim)"), DP_ERR_UNSUPPORTED);
        /* gemma3 without attention.sliding_window: every block global, nothing to keep */
        CHECK_EQ_INT(try_export(m, "gemma3", "b1", NULL, NULL), DP_OK);
        CHECK_EQ_INT(try_export(m, "gemma3", "f2", NULL, "post-norms"), DP_ERR_UNSUPPORTED);
        /* qwen3, phi3: whole blocks only, no constant */
        CHECK_EQ_INT(try_export(m, "qwen3", "b2", NULL, NULL), DP_OK);
        CHECK_EQ_INT(try_export(m, "qwen3", "a2", NULL, "q/k norms"), DP_ERR_UNSUPPORTED);
        CHECK_EQ_INT(try_export(m, "qwen3", "b2", "b2", "ffn_down.bias"), DP_ERR_UNSUPPORTED);
        CHECK_EQ_INT(try_export(m, "phi3", "b3", NULL, NULL), DP_OK);
        CHECK_EQ_INT(try_export(m, "phi3", "f3", NULL, "fused"), DP_ERR_UNSUPPORTED);
        /* llama: sublayers through deci */
        CHECK_EQ_INT(try_export(m, "llama", "a3", NULL, NULL), DP_OK);
    }
    dp_model_close(m);
    /* Gemma 2 27B's shape (46 blocks, dim/heads 16 != head size 32): llama.cpp's query scale depends on the count */
    m = synth("g27.gguf", "--dim 64 --ff 32 --heads 4 --kv-heads 2 --head-dim 32 --layers 46");
    if (m) {
        CHECK_EQ_INT(try_export(m, "gemma2", "b44,b45", NULL, "27B"), DP_ERR_UNSUPPORTED);
        CHECK_EQ_INT(try_export(m, "qwen3", "b44,b45", NULL, NULL), DP_OK);
    }
    dp_model_close(m);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -f %s/six.gguf %s/g27.gguf", tmpdir, tmpdir);
    CHECK(system(cmd) == 0);
    CHECK_MSG(rmdir(tmpdir) == 0, "%s: files left behind", tmpdir);
    return TEST_END();
}
