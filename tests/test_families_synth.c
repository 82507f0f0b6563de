/*
 * test_families_synth: `depthprune synth --arch A` writes each family as
 * llama.cpp's loader expects it. The reference is outside the project: the
 * fixtures of ../shared/models/families (written from llama.cpp's May 2026
 * source, see their README). synth is run with each fixture's shape and
 * tokenizer; then every metadata pair of the fixture (tokenizer.* and the
 * general.* bookkeeping aside) must be in the synthesized file with the same
 * type and value, no arch key may be extra, the tensor names, shapes and
 * types must be the same (token_embd aside: the fixtures store large
 * vocabularies' embeddings in F16), and Llama 3.1's rope_freqs.weight must
 * hold the fixture's factors. Runs the ./depthprune binary (or $DP).
 */
#include "harness.h"
#include "gguf.h"

#include <unistd.h>

static char tmpdir[64];
static const char *dp_bin;

struct fam_case {
    const char *fixture, *args;
};

static const struct fam_case cases[] = {
    {"synth-gemma2", "--arch gemma2 --dim 64 --layers 4 --heads 4 --kv-heads 2 --head-dim 32 --ff 256 --ctx 8192 "
                     "--window 32 --softcap 5,8"},
    {"synth-gemma3", "--arch gemma3 --dim 64 --layers 6 --heads 4 --kv-heads 2 --head-dim 32 --ff 256 --ctx 32768 "
                     "--window 32"},
    {"synth-llama3-tied", "--arch llama --rope-freqs --tied --rope-base 500000 --dim 64 --layers 4 --heads 2 "
                          "--kv-heads 1 --ff 192 --ctx 131072"},
    {"synth-phi3", "--arch phi3 --dim 64 --layers 4 --heads 2 --kv-heads 1 --ff 192 --ctx 4096 --window 2047"},
    {"synth-qwen2-tied", "--arch qwen2 --tied --dim 64 --layers 4 --heads 2 --kv-heads 1 --ff 160 --ctx 32768"},
    {"synth-qwen3", "--arch qwen3 --tied --dim 64 --layers 4 --heads 4 --kv-heads 2 --head-dim 32 --ff 192 "
                    "--ctx 40960"},
};

static bool skip_key(const char *k) {
    return !strncmp(k, "tokenizer.", 10) || !strcmp(k, "general.name") || !strcmp(k, "general.type") ||
           !strcmp(k, "general.file_type") || !strcmp(k, "general.quantization_version");
}

static bool same_value(const struct dp_gguf_value *a, const struct dp_gguf_value *b) {
    if (a->type != b->type) return false;
    switch (a->type) {
    case DP_GGUF_STRING: return a->s.len == b->s.len && !memcmp(a->s.data, b->s.data, a->s.len);
    case DP_GGUF_ARRAY:
        return a->elem_type == b->elem_type && a->n == b->n && a->raw && b->raw &&
               !memcmp(a->raw, b->raw, a->n * dp_gguf_vtype_size(a->elem_type));
    case DP_GGUF_F32: return (float)a->v.f == (float)b->v.f;
    case DP_GGUF_BOOL: return a->v.b == b->v.b;
    default: return a->v.u == b->v.u;
    }
}

static void check_family(const struct fam_case *c) {
    char fix[512], out[256], cmd[2048];
    snprintf(fix, sizeof fix, "%s", test_shared("models/families/"));
    snprintf(fix + strlen(fix), sizeof fix - strlen(fix), "%s.gguf", c->fixture);
    snprintf(out, sizeof out, "%s/%s.gguf", tmpdir, c->fixture);
    snprintf(cmd, sizeof cmd, "%s synth -o %s %s --vocab-from %s 2>/dev/null", dp_bin, out, c->args, fix);
    CHECK_MSG(system(cmd) == 0, "%s", cmd);
    struct dp_gguf *ref = NULL, *got = NULL;
    if (dp_gguf_open(fix, &ref) || dp_gguf_open(out, &got)) {
        CHECK_MSG(0, "%s: %s", c->fixture, dp_last_error());
        dp_gguf_close(ref);
        return;
    }
    char arch[32] = "";
    dp_gguf_get_str(ref, "general.architecture", true, arch, sizeof arch);
    size_t la = strlen(arch);
    int bad_keys = 0, bad_tensors = 0;
    for (uint64_t i = 0; i < ref->n_kv; i++) {
        const struct dp_gguf_kv *k = &ref->kv[i];
        if (skip_key(k->key)) continue;
        const struct dp_gguf_kv *g = dp_gguf_find_kv(got, k->key);
        if (!g || !same_value(&k->val, &g->val)) {
            bad_keys++;
            fprintf(stderr, "%s: key %s %s\n", c->fixture, k->key, g ? "differs" : "missing");
        }
    }
    for (uint64_t i = 0; i < got->n_kv; i++) {
        const char *k = got->kv[i].key;
        if (!strncmp(k, arch, la) && k[la] == '.' && !dp_gguf_find_kv(ref, k)) {
            bad_keys++;
            fprintf(stderr, "%s: extra key %s\n", c->fixture, k);
        }
    }
    CHECK_MSG(bad_keys == 0, "%s: %d metadata keys differ", c->fixture, bad_keys);
    CHECK_MSG(ref->n_tensors == got->n_tensors, "%s: %llu tensors, want %llu", c->fixture,
              (unsigned long long)got->n_tensors, (unsigned long long)ref->n_tensors);
    for (uint64_t i = 0; i < ref->n_tensors; i++) {
        const struct dp_gguf_tensor *r = &ref->tensors[i], *t = dp_gguf_find_tensor(got, r->name);
        bool ok = t && t->n_dims == r->n_dims && !memcmp(t->ne, r->ne, sizeof t->ne) &&
                  (t->type == r->type || !strcmp(r->name, "token_embd.weight"));
        if (!ok) {
            bad_tensors++;
            fprintf(stderr, "%s: tensor %s %s\n", c->fixture, r->name, t ? "differs" : "missing");
        }
    }
    CHECK_MSG(bad_tensors == 0, "%s: %d tensors differ", c->fixture, bad_tensors);
    const struct dp_gguf_tensor *rf = dp_gguf_find_tensor(ref, "rope_freqs.weight");
    const struct dp_gguf_tensor *gf = dp_gguf_find_tensor(got, "rope_freqs.weight");
    if (rf && gf && rf->type == DP_TYPE_F32 && gf->type == DP_TYPE_F32 && rf->ne[0] == gf->ne[0]) {
        float a[256], b[256];
        int n = (int)(rf->ne[0] < 256 ? rf->ne[0] : 256);
        memcpy(a, gf->data, (size_t)n * sizeof *a);
        memcpy(b, rf->data, (size_t)n * sizeof *b);
        CHECK_CLOSE_ARR(a, b, n, 0, 1e-6);
    } else {
        CHECK_MSG(!rf, "%s: rope_freqs.weight missing or of another shape", c->fixture);
    }
    dp_gguf_close(ref);
    dp_gguf_close(got);
    unlink(out);
}

int main(void) {
    dp_bin = getenv("DP") ? getenv("DP") : "./depthprune";
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dp_test_fam_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_family(&cases[i]);
    /* bad arguments: one line, exit 2 */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s synth -o %s/x.gguf --arch gpt2 2>%s/err; [ $? -eq 2 ] && [ $(wc -l <%s/err) -eq 1 ]",
             dp_bin, tmpdir, tmpdir, tmpdir);
    CHECK_MSG(system(cmd) == 0, "synth --arch gpt2 fails with one line");
    snprintf(cmd, sizeof cmd, "%s synth -o %s/x.gguf --arch qwen2 --rope-freqs 2>%s/err; [ $? -eq 2 ]", dp_bin,
             tmpdir, tmpdir);
    CHECK_MSG(system(cmd) == 0, "--rope-freqs is for llama");
    snprintf(cmd, sizeof cmd, "rm -f %s/err %s/x.gguf", tmpdir, tmpdir);
    CHECK(system(cmd) == 0);
    rmdir(tmpdir);
    return TEST_END();
}
