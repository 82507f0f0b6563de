/*
 * test_gguf: the GGUF reader and writer (src/gguf.c).
 *
 * Reading is checked against files made outside the project (stories260K and
 * the synthetic llama.cpp files under ../shared). Writing is checked by round
 * trips: a file holding every metadata type and tensors of several types and
 * shapes is written, read back and compared field by field, then copied pair
 * by pair into a second file that must be byte-identical. The failure paths
 * get most of the lines: every prefix of a small file, every single-bit flip
 * of its header and a list of hand-made hostile images must each be refused
 * with one line naming the file (or, for bit flips, parse into something that
 * stays inside the buffer). Hostile images are parsed from heap copies of
 * exactly their size, so under AddressSanitizer any over-read is caught.
 *
 * Images are built here with a little byte writer (struct img) that knows the
 * GGUF layout but checks nothing, so it can say things the real writer never
 * would.
 *
 * The fuzz target is included and replayed over tests/fuzz/corpus. With
 * `--write-corpus DIR` the program writes that seed corpus instead of testing.
 */
#include "gguf.h"
#include "harness.h"

#include "fuzz/fuzz_gguf.c"

#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a byte writer for hand-made images ------------------------------------ */

struct img {
    uint8_t *p;
    size_t n, cap;
};

static void img_put(struct img *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) abort();
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void img_le(struct img *b, uint64_t v, int n) {
    uint8_t t[8];
    for (int i = 0; i < n; i++) t[i] = (uint8_t)(v >> (8 * i));
    img_put(b, t, (size_t)n);
}
static void img_u32(struct img *b, uint64_t v) { img_le(b, v, 4); }
static void img_u64(struct img *b, uint64_t v) { img_le(b, v, 8); }
static void img_str(struct img *b, const char *s) {
    img_u64(b, strlen(s));
    img_put(b, s, strlen(s));
}
static void img_hdr(struct img *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    img_put(b, "GGUF", 4);
    img_u32(b, version);
    img_u64(b, n_tensors);
    img_u64(b, n_kv);
}
/* A key followed by its type tag; the caller appends the value. */
static void img_key(struct img *b, const char *key, uint32_t type) {
    img_str(b, key);
    img_u32(b, type);
}
static void img_kv_u32(struct img *b, const char *key, uint32_t v) {
    img_key(b, key, DP_GGUF_U32);
    img_u32(b, v);
}

struct tinfo {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[5];
    uint32_t type;
    uint64_t offset;
};

/* Tensor infos, padding to `align`, then `data_nbytes` bytes of data (i*7+1). */
static void img_tensors(struct img *b, const struct tinfo *t, int n, size_t align,
                        size_t data_nbytes) {
    for (int k = 0; k < n; k++) {
        img_str(b, t[k].name);
        img_u32(b, t[k].n_dims);
        for (uint32_t d = 0; d < t[k].n_dims; d++) img_u64(b, t[k].ne[d]);
        img_u32(b, t[k].type);
        img_u64(b, t[k].offset);
    }
    while (b->n % align) img_put(b, "", 1);
    for (size_t i = 0; i < data_nbytes; i++) img_put(b, &(uint8_t){(uint8_t)(i * 7 + 1)}, 1);
}

/* A heap copy of exactly n bytes (so ASan sees any read past the end). */
static uint8_t *exact_copy(const uint8_t *p, size_t n) {
    uint8_t *c = malloc(n ? n : 1);
    if (!c) abort();
    if (n) memcpy(c, p, n);
    return c;
}

static bool one_line_naming(const char *name) {
    const char *e = dp_last_error();
    return strstr(e, name) && !strchr(e, '\n') && !strchr(e, '\r');
}

/* Parse bytes that must be refused with one line naming `name` and containing `want`. */
static void expect_refused_bytes(const uint8_t *p, size_t n, const char *name, const char *want) {
    uint8_t *c = exact_copy(p, n);
    struct dp_gguf *g = (struct dp_gguf *)1;
    dp_status st = dp_gguf_parse(c, n, name, &g);
    CHECK_MSG(st == DP_ERR_FORMAT, "%s: status %d (want refusal containing '%s')", name, st, want);
    CHECK_MSG(g == NULL, "%s: *out not cleared", name);
    if (st == DP_OK) dp_gguf_close(g);
    CHECK_MSG(one_line_naming(name), "%s: message '%s' does not name the file", name, dp_last_error());
    CHECK_MSG(strstr(dp_last_error(), want), "%s: message '%s' lacks '%s'", name, dp_last_error(), want);
    free(c);
}

static void expect_refused(struct img *b, const char *name, const char *want) {
    expect_refused_bytes(b->p, b->n, name, want);
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* Parse a hand-made image that must be accepted; *copy must outlive the result. */
static struct dp_gguf *expect_parsed(struct img *b, const char *name, uint8_t **copy) {
    *copy = exact_copy(b->p, b->n);
    struct dp_gguf *g = NULL;
    dp_status st = dp_gguf_parse(*copy, b->n, name, &g);
    CHECK_MSG(st == DP_OK, "%s: %s", name, dp_last_error());
    free(b->p);
    memset(b, 0, sizeof *b);
    return g;
}

/* All tensor data and strings of a parsed image lie inside [p, p+n). */
static bool inside(const struct dp_gguf *g, const uint8_t *p, size_t n) {
    for (uint64_t k = 0; k < g->n_tensors; k++) {
        const struct dp_gguf_tensor *t = &g->tensors[k];
        if (t->data < p || t->nbytes > n || t->data > p + (n - t->nbytes)) return false;
    }
    for (uint64_t k = 0; k < g->n_kv; k++) {
        const struct dp_gguf_value *v = &g->kv[k].val;
        if (v->raw_end > n || v->raw_begin >= v->raw_end) return false;
        if (v->type == DP_GGUF_STRING &&
            (v->s.data < (const char *)p || v->s.data + v->s.len > (const char *)p + n))
            return false;
    }
    return true;
}

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", tmpdir, name);
    return b;
}

/* Number of entries in dir whose name contains ".tmp." */
static int count_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

/* ---- files made outside the project ----------------------------------------- */

static int64_t get_int(const struct dp_gguf *g, const char *key) {
    int64_t v = -12345;
    dp_status st = dp_gguf_get_int(g, key, true, &v);
    CHECK_MSG(st == DP_OK, "%s", dp_last_error());
    return v;
}

static void test_stories260k(void) {
    const char *path = test_shared("models/stories260K/stories260K.gguf");
    struct dp_gguf *g;
    dp_status st = dp_gguf_open(path, &g);
    CHECK_MSG(st == DP_OK, "%s", dp_last_error());
    if (st) return;
    CHECK_EQ_INT(g->version, 3);
    CHECK_EQ_INT(g->n_kv, 19);
    CHECK_EQ_INT(g->n_tensors, 48);
    CHECK_EQ_INT(g->alignment, 32);
    CHECK_EQ_INT(g->data_offset % 32, 0);
    CHECK(!strcmp(g->path, path));
    CHECK_EQ_INT(get_int(g, "llama.block_count"), 5);
    CHECK_EQ_INT(get_int(g, "llama.embedding_length"), 64);
    CHECK_EQ_INT(get_int(g, "llama.feed_forward_length"), 172);
    CHECK_EQ_INT(get_int(g, "llama.attention.head_count"), 8);
    CHECK_EQ_INT(get_int(g, "llama.attention.head_count_kv"), 4);
    CHECK_EQ_INT(get_int(g, "llama.rope.dimension_count"), 8);
    CHECK_EQ_INT(get_int(g, "llama.context_length"), 2048);
    CHECK_EQ_INT(get_int(g, "tokenizer.ggml.bos_token_id"), 1);
    double eps = 0;
    CHECK(dp_gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", true, &eps) == DP_OK);
    CHECK_CLOSE(eps, 1e-5, 0, 1e-6);
    char arch[16];
    CHECK(dp_gguf_get_str(g, "general.architecture", true, arch, sizeof arch) == DP_OK);
    CHECK(!strcmp(arch, "llama"));

    const struct dp_gguf_kv *tok = dp_gguf_find_kv(g, "tokenizer.ggml.tokens");
    CHECK(tok && tok->val.type == DP_GGUF_ARRAY && tok->val.elem_type == DP_GGUF_STRING);
    if (tok) {
        CHECK_EQ_INT(tok->val.n, 512);
        CHECK(tok->val.strs[1].len == 3 && !memcmp(tok->val.strs[1].data, "<s>", 3));
        CHECK(tok->val.strs[2].len == 4 && !memcmp(tok->val.strs[2].data, "</s>", 4));
    }
    const struct dp_gguf_kv *scores = dp_gguf_find_kv(g, "tokenizer.ggml.scores");
    CHECK(scores && scores->val.elem_type == DP_GGUF_F32 && scores->val.n == 512);
    const struct dp_gguf_kv *tt = dp_gguf_find_kv(g, "tokenizer.ggml.token_type");
    CHECK(tt && tt->val.elem_type == DP_GGUF_I32 && tt->val.n == 512);

    const struct dp_gguf_tensor *emb = dp_gguf_find_tensor(g, "token_embd.weight");
    CHECK(emb != NULL);
    if (emb) {
        CHECK_EQ_INT(emb->type, DP_TYPE_F32);
        CHECK_EQ_INT(emb->n_dims, 2);
        CHECK_EQ_INT(emb->ne[0], 64);
        CHECK_EQ_INT(emb->ne[1], 512);
        CHECK_EQ_INT(emb->ne[2], 1);
        CHECK_EQ_INT(emb->nbytes, 64 * 512 * 4);
        CHECK(emb->data == g->map.data + g->data_offset + emb->offset);
    }
    const struct dp_gguf_tensor *down = dp_gguf_find_tensor(g, "blk.4.ffn_down.weight");
    CHECK(down && down->ne[0] == 172 && down->ne[1] == 64);
    const struct dp_gguf_tensor *norm = dp_gguf_find_tensor(g, "output_norm.weight");
    CHECK(norm && norm->n_dims == 1 && norm->ne[0] == 64 && norm->ne[1] == 1);
    CHECK(dp_gguf_find_tensor(g, "blk.5.ffn_down.weight") == NULL);
    CHECK(dp_gguf_find_kv(g, "no.such.key") == NULL);
    CHECK(inside(g, g->map.data, g->map.size));
    dp_gguf_close(g);
}

/* Each synthetic file parses, holds 21 tensors and the types its name promises. */
static void test_synthetic(void) {
    static const struct {
        const char *file;
        uint32_t type, also;
    } files[] = {
        {"synth-llama-f32.gguf", DP_TYPE_F32, DP_TYPE_F32},
        {"synth-llama-q8_0.gguf", DP_TYPE_Q8_0, DP_TYPE_F32},
        {"synth-llama-q4_0.gguf", DP_TYPE_Q4_0, DP_TYPE_F32},
        {"synth-llama-q6_k.gguf", DP_TYPE_Q6_K, DP_TYPE_F32},
        {"synth-llama-q4_k_m.gguf", DP_TYPE_Q4_K, DP_TYPE_Q6_K},
        {"synth-qwen2-f32.gguf", DP_TYPE_F32, DP_TYPE_F32},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "models/synthetic/%s", files[i].file);
        struct dp_gguf *g;
        dp_status st = dp_gguf_open(test_shared(rel), &g);
        CHECK_MSG(st == DP_OK, "%s", dp_last_error());
        if (st) continue;
        CHECK_EQ_INT(g->version, 3);
        CHECK_EQ_INT(g->n_tensors, strstr(files[i].file, "qwen2") ? 27 : 21);
        int n_type = 0, n_also = 0;
        bool sizes_ok = true;
        for (uint64_t k = 0; k < g->n_tensors; k++) {
            const struct dp_gguf_tensor *t = &g->tensors[k];
            n_type += t->type == files[i].type;
            n_also += t->type == files[i].also;
            int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
            if (t->nbytes != dp_type_row_bytes(t->type, t->ne[0]) * (size_t)rows) sizes_ok = false;
        }
        CHECK_MSG(n_type > 0 && n_also > 0, "%s: %d tensors of %s, %d of %s", files[i].file, n_type,
                  dp_type_name(files[i].type), n_also, dp_type_name(files[i].also));
        CHECK_MSG(sizes_ok, "%s: a tensor's size disagrees with its type and shape", files[i].file);
        CHECK(inside(g, g->map.data, g->map.size));
        int64_t n_embd = 0;
        const char *arch = strstr(files[i].file, "qwen2") ? "qwen2.embedding_length" : "llama.embedding_length";
        CHECK(dp_gguf_get_int(g, arch, true, &n_embd) == DP_OK && n_embd == 256);
        dp_gguf_close(g);
    }
}

/* ---- hand-made images used by several tests ---------------------------------- */

/*
 * A v3 image without tensors holding the metadata types the writer has no
 * setter for: u8, i8, u16, i16, i64, f64 and an array of arrays
 * [[1, -2, 3] (i32), [] (u8), [["a"], ["bc", ""]] (arrays of strings)].
 */
static void build_source_image(struct img *b) {
    img_hdr(b, 3, 0, 7);
    img_key(b, "src.u8", DP_GGUF_U8);
    img_le(b, 200, 1);
    img_key(b, "src.i8", DP_GGUF_I8);
    img_le(b, (uint8_t)-100, 1);
    img_key(b, "src.u16", DP_GGUF_U16);
    img_le(b, 60000, 2);
    img_key(b, "src.i16", DP_GGUF_I16);
    img_le(b, (uint16_t)-30000, 2);
    img_key(b, "src.i64", DP_GGUF_I64);
    img_u64(b, (uint64_t)-((INT64_C(1) << 40) + 5));
    img_key(b, "src.f64", DP_GGUF_F64);
    double d = 0.1;
    uint64_t bits;
    memcpy(&bits, &d, 8);
    img_u64(b, bits);
    img_key(b, "src.nested", DP_GGUF_ARRAY);
    img_u32(b, DP_GGUF_ARRAY);
    img_u64(b, 3);
    img_u32(b, DP_GGUF_I32); /* [1, -2, 3] */
    img_u64(b, 3);
    img_u32(b, 1);
    img_u32(b, (uint32_t)-2);
    img_u32(b, 3);
    img_u32(b, DP_GGUF_U8); /* [] */
    img_u64(b, 0);
    img_u32(b, DP_GGUF_ARRAY); /* [["a"], ["bc", ""]] */
    img_u64(b, 2);
    img_u32(b, DP_GGUF_STRING);
    img_u64(b, 1);
    img_str(b, "a");
    img_u32(b, DP_GGUF_STRING);
    img_u64(b, 2);
    img_str(b, "bc");
    img_str(b, "");
}

static bool str_is(struct dp_gguf_str s, const char *want) {
    return s.len == strlen(want) && !memcmp(s.data, want, s.len);
}

/* The nested value of build_source_image, wherever it was copied. */
static void check_nested(const struct dp_gguf_value *v) {
    CHECK(v->type == DP_GGUF_ARRAY && v->elem_type == DP_GGUF_ARRAY && v->n == 3);
    if (v->n != 3 || !v->items) return;
    const struct dp_gguf_value *a = &v->items[0], *e = &v->items[1], *s = &v->items[2];
    CHECK(a->elem_type == DP_GGUF_I32 && a->n == 3);
    if (a->n == 3) {
        CHECK_EQ_INT(dp_gguf_arr_i64(a, 0), 1);
        CHECK_EQ_INT(dp_gguf_arr_i64(a, 1), -2);
        CHECK_EQ_INT(dp_gguf_arr_i64(a, 2), 3);
    }
    CHECK(e->elem_type == DP_GGUF_U8 && e->n == 0);
    CHECK(s->elem_type == DP_GGUF_ARRAY && s->n == 2);
    if (s->n == 2 && s->items) {
        CHECK(s->items[0].elem_type == DP_GGUF_STRING && s->items[0].n == 1 &&
              str_is(s->items[0].strs[0], "a"));
        CHECK(s->items[1].elem_type == DP_GGUF_STRING && s->items[1].n == 2 &&
              str_is(s->items[1].strs[0], "bc") && str_is(s->items[1].strs[1], ""));
    }
}

/* ---- writer round trip -------------------------------------------------------- */

static const uint8_t arr_u8[] = {0, 1, 255};
static const int8_t arr_i8[] = {-128, 0, 127};
static const uint16_t arr_u16[] = {0, 65535, 1234};
static const int16_t arr_i16[] = {-32768, 32767, -1};
static const uint32_t arr_u32[] = {0, 4294967295u, 7};
static const int32_t arr_i32[] = {INT32_MIN, INT32_MAX, -7};
static const float arr_f32[] = {-1.5f, 0.0f, 3.25f};
static const uint8_t arr_bool[] = {1, 0, 1};
static const uint64_t arr_u64[] = {0, UINT64_MAX, UINT64_C(1) << 40};
static const int64_t arr_i64[] = {INT64_MIN, INT64_MAX, -42};
static const double arr_f64[] = {-0.1, 1e300, 2.5};

static const struct {
    uint32_t type;
    const void *data;
    const char *key;
} arrays[] = {
    {DP_GGUF_U8, arr_u8, "t.arr.u8"},    {DP_GGUF_I8, arr_i8, "t.arr.i8"},
    {DP_GGUF_U16, arr_u16, "t.arr.u16"}, {DP_GGUF_I16, arr_i16, "t.arr.i16"},
    {DP_GGUF_U32, arr_u32, "t.arr.u32"}, {DP_GGUF_I32, arr_i32, "t.arr.i32"},
    {DP_GGUF_F32, arr_f32, "t.arr.f32"}, {DP_GGUF_BOOL, arr_bool, "t.arr.bool"},
    {DP_GGUF_U64, arr_u64, "t.arr.u64"}, {DP_GGUF_I64, arr_i64, "t.arr.i64"},
    {DP_GGUF_F64, arr_f64, "t.arr.f64"},
};
#define N_ARRAYS (sizeof arrays / sizeof arrays[0])

static const char *const arr_strs[] = {"", "a", "<s>", "h\xc3\xa9llo w\xc3\xb6rld", "tab\there"};

/* The keys in file order (general.alignment, when set, comes first). */
static const char *const scalar_keys[] = {
    "t.dup", "t.u32", "t.i32", "t.u64", "t.f32", "t.true", "t.false", "t.str", "t.empty",
    "t.u8", "t.i8", "t.u16", "t.i16", "t.i64", "t.f64", "t.nested",
};
#define N_SCALAR_KEYS (sizeof scalar_keys / sizeof scalar_keys[0])

struct ttensor {
    const char *name;
    uint32_t type;
    int n_dims;
    int64_t ne[4];
    size_t nbytes;
    uint8_t data[256];
};

static struct ttensor ttensors[] = {
    {"f32.1d", DP_TYPE_F32, 1, {7}, 28, {0}},
    {"f32.2d", DP_TYPE_F32, 2, {3, 5}, 60, {0}},
    {"f16.3d", DP_TYPE_F16, 3, {4, 2, 3}, 48, {0}},
    {"bf16.4d", DP_TYPE_BF16, 4, {2, 3, 2, 2}, 48, {0}},
    {"q8_0", DP_TYPE_Q8_0, 2, {64, 3}, 6 * 34, {0}},
    {"q4_0", DP_TYPE_Q4_0, 3, {32, 1, 2}, 2 * 18, {0}},
};
#define N_TTENSORS (sizeof ttensors / sizeof ttensors[0])

static struct dp_gguf_writer *build_full_writer(uint32_t alignment, const struct dp_gguf *src) {
    struct dp_gguf_writer *w = dp_gguf_writer_new();
    if (alignment) dp_gguf_set_u32(w, "general.alignment", alignment);
    dp_gguf_set_u32(w, "t.dup", 1);
    dp_gguf_set_u32(w, "t.u32", 4000000000u);
    dp_gguf_set_i32(w, "t.i32", -123456);
    dp_gguf_set_u64(w, "t.u64", UINT64_C(0xFEDCBA9876543210));
    dp_gguf_set_f32(w, "t.f32", 1.5e-5f);
    dp_gguf_set_bool(w, "t.true", true);
    dp_gguf_set_bool(w, "t.false", false);
    dp_gguf_set_u32(w, "t.gone", 5);
    dp_gguf_set_str(w, "t.str", "h\xc3\xa9llo w\xc3\xb6rld");
    dp_gguf_set_str(w, "t.empty", "");
    static const char *const from[] = {"src.u8", "src.i8", "src.u16", "src.i16", "src.i64",
                                       "src.f64", "src.nested"};
    for (size_t i = 0; i < sizeof from / sizeof from[0]; i++) {
        const struct dp_gguf_kv *kv = dp_gguf_find_kv(src, from[i]);
        CHECK_MSG(kv != NULL, "%s missing from the source image", from[i]);
        if (kv) dp_gguf_copy_kv(w, src, kv, scalar_keys[9 + i]);
    }
    dp_gguf_remove_kv(w, "t.gone");
    dp_gguf_remove_kv(w, "t.never.set");
    dp_gguf_set_str(w, "t.dup", "second"); /* keeps its first position */
    for (size_t i = 0; i < N_ARRAYS; i++) dp_gguf_set_arr(w, arrays[i].key, arrays[i].type, arrays[i].data, 3);
    dp_gguf_set_arr(w, "t.arr.empty", DP_GGUF_U32, NULL, 0);
    dp_gguf_set_arr_str(w, "t.arr.str", arr_strs, sizeof arr_strs / sizeof arr_strs[0]);
    for (size_t i = 0; i < N_TTENSORS; i++) {
        struct ttensor *t = &ttensors[i];
        dp_status st = dp_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
        CHECK_MSG(st == DP_OK, "%s", dp_last_error());
    }
    return w;
}

/* `set_alignment` is the general.alignment written, 0 for none. */
static void check_full_file(const char *path, uint32_t set_alignment) {
    struct dp_gguf *g;
    dp_status st = dp_gguf_open(path, &g);
    CHECK_MSG(st == DP_OK, "%s", dp_last_error());
    if (st) return;
    size_t first = set_alignment ? 1 : 0, alignment = set_alignment ? set_alignment : 32;
    CHECK_EQ_INT(g->version, 3);
    CHECK_EQ_INT(g->n_kv, first + N_SCALAR_KEYS + N_ARRAYS + 2);
    CHECK_EQ_INT(g->n_tensors, N_TTENSORS);
    CHECK_EQ_INT(g->alignment, alignment);
    CHECK_EQ_INT(g->data_offset % alignment, 0);
    if (g->n_kv != first + N_SCALAR_KEYS + N_ARRAYS + 2) {
        dp_gguf_close(g);
        return;
    }
    if (first) CHECK(!strcmp(g->kv[0].key, "general.alignment") && g->kv[0].val.v.u == alignment);
    for (size_t i = 0; i < N_SCALAR_KEYS; i++)
        CHECK_MSG(!strcmp(g->kv[first + i].key, scalar_keys[i]), "kv %zu is '%s', want '%s'",
                  first + i, g->kv[first + i].key, scalar_keys[i]);
    const struct dp_gguf_kv *kv;
#define VAL(key) ((kv = dp_gguf_find_kv(g, key)) ? &kv->val : &(struct dp_gguf_value){.type = 99})
    CHECK(VAL("t.dup")->type == DP_GGUF_STRING && str_is(VAL("t.dup")->s, "second"));
    CHECK(VAL("t.u32")->type == DP_GGUF_U32 && VAL("t.u32")->v.u == 4000000000u);
    CHECK(VAL("t.i32")->type == DP_GGUF_I32 && VAL("t.i32")->v.i == -123456);
    CHECK(VAL("t.u64")->type == DP_GGUF_U64 && VAL("t.u64")->v.u == UINT64_C(0xFEDCBA9876543210));
    CHECK(VAL("t.f32")->type == DP_GGUF_F32 && VAL("t.f32")->v.f == (double)1.5e-5f);
    CHECK(VAL("t.true")->type == DP_GGUF_BOOL && VAL("t.true")->v.b);
    CHECK(VAL("t.false")->type == DP_GGUF_BOOL && !VAL("t.false")->v.b);
    CHECK(VAL("t.str")->type == DP_GGUF_STRING && str_is(VAL("t.str")->s, "h\xc3\xa9llo w\xc3\xb6rld"));
    CHECK(VAL("t.empty")->type == DP_GGUF_STRING && VAL("t.empty")->s.len == 0);
    CHECK(VAL("t.u8")->type == DP_GGUF_U8 && VAL("t.u8")->v.u == 200);
    CHECK(VAL("t.i8")->type == DP_GGUF_I8 && VAL("t.i8")->v.i == -100);
    CHECK(VAL("t.u16")->type == DP_GGUF_U16 && VAL("t.u16")->v.u == 60000);
    CHECK(VAL("t.i16")->type == DP_GGUF_I16 && VAL("t.i16")->v.i == -30000);
    CHECK(VAL("t.i64")->type == DP_GGUF_I64 && VAL("t.i64")->v.i == -((INT64_C(1) << 40) + 5));
    CHECK(VAL("t.f64")->type == DP_GGUF_F64 && VAL("t.f64")->v.f == 0.1);
    check_nested(VAL("t.nested"));
    CHECK(dp_gguf_find_kv(g, "t.gone") == NULL);
    for (size_t i = 0; i < N_ARRAYS; i++) {
        const struct dp_gguf_value *v = VAL(arrays[i].key);
        size_t esz = dp_gguf_vtype_size(arrays[i].type);
        CHECK_MSG(v->type == DP_GGUF_ARRAY && v->elem_type == arrays[i].type && v->n == 3 &&
                      !memcmp(v->raw, arrays[i].data, 3 * esz),
                  "%s differs", arrays[i].key);
    }
    CHECK_EQ_INT(dp_gguf_arr_i64(VAL("t.arr.i8"), 0), -128);
    CHECK_EQ_INT(dp_gguf_arr_i64(VAL("t.arr.u16"), 1), 65535);
    CHECK_EQ_INT(dp_gguf_arr_i64(VAL("t.arr.i16"), 0), -32768);
    CHECK_EQ_INT(dp_gguf_arr_i64(VAL("t.arr.u32"), 1), 4294967295u);
    CHECK_EQ_INT(dp_gguf_arr_i64(VAL("t.arr.i32"), 0), INT32_MIN);
    CHECK_EQ_INT(dp_gguf_arr_i64(VAL("t.arr.i64"), 1), INT64_MAX);
    CHECK_EQ_INT(dp_gguf_arr_i64(VAL("t.arr.bool"), 1), 0);
    CHECK(dp_gguf_arr_f64(VAL("t.arr.f32"), 2) == 3.25);
    CHECK(dp_gguf_arr_f64(VAL("t.arr.f64"), 0) == -0.1);
    CHECK(dp_gguf_arr_f64(VAL("t.arr.u64"), 2) == 1099511627776.0);
    CHECK(VAL("t.arr.empty")->elem_type == DP_GGUF_U32 && VAL("t.arr.empty")->n == 0);
    const struct dp_gguf_value *sv = VAL("t.arr.str");
    size_t n_strs = sizeof arr_strs / sizeof arr_strs[0];
    CHECK(sv->elem_type == DP_GGUF_STRING && sv->n == n_strs);
    if (sv->n == n_strs)
        for (size_t i = 0; i < n_strs; i++) CHECK_MSG(str_is(sv->strs[i], arr_strs[i]), "string %zu", i);
#undef VAL
    for (size_t i = 0; i < N_TTENSORS; i++) {
        const struct ttensor *want = &ttensors[i];
        const struct dp_gguf_tensor *t = dp_gguf_find_tensor(g, want->name);
        CHECK_MSG(t != NULL, "tensor %s missing", want->name);
        if (!t) continue;
        CHECK(t == &g->tensors[i]);
        CHECK_EQ_INT(t->type, want->type);
        CHECK_EQ_INT(t->n_dims, want->n_dims);
        for (int d = 0; d < 4; d++) CHECK_EQ_INT(t->ne[d], d < want->n_dims ? want->ne[d] : 1);
        CHECK_EQ_INT(t->nbytes, want->nbytes);
        CHECK_EQ_INT(t->offset % alignment, 0);
        CHECK(t->data == g->map.data + g->data_offset + t->offset);
        CHECK_MSG(!memcmp(t->data, want->data, want->nbytes), "tensor %s data differs", want->name);
    }
    /* the last tensor's data ends the file: no trailing padding */
    const struct dp_gguf_tensor *last = &g->tensors[N_TTENSORS - 1];
    CHECK(last->data + last->nbytes == g->map.data + g->map.size);
    dp_gguf_close(g);
}

/* Copy every pair and tensor of `path` into a new writer; the result must be byte-identical. */
static void check_copy_identical(const char *path, const char *copy_path) {
    struct dp_gguf *g;
    if (dp_gguf_open(path, &g) != DP_OK) return;
    struct dp_gguf_writer *w = dp_gguf_writer_new();
    for (uint64_t k = 0; k < g->n_kv; k++) dp_gguf_copy_kv(w, g, &g->kv[k], NULL);
    for (uint64_t k = 0; k < g->n_tensors; k++) {
        const struct dp_gguf_tensor *t = &g->tensors[k];
        CHECK(dp_gguf_add_tensor(w, t->name, t->type, (int)t->n_dims, t->ne, t->data, t->nbytes) == DP_OK);
    }
    dp_status st = dp_gguf_writer_write(w, copy_path);
    CHECK_MSG(st == DP_OK, "%s", dp_last_error());
    dp_gguf_writer_free(w);
    char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK(dp_read_file(path, &a, &na) == DP_OK && dp_read_file(copy_path, &b, &nb) == DP_OK);
    CHECK_MSG(a && b && na == nb && !memcmp(a, b, na), "%s and %s differ (%zu vs %zu bytes)", path,
              copy_path, na, nb);
    free(a);
    free(b);
    dp_gguf_close(g);
}

static void test_roundtrip(void) {
    for (size_t i = 0; i < N_TTENSORS; i++)
        for (size_t j = 0; j < sizeof ttensors[i].data; j++)
            ttensors[i].data[j] = (uint8_t)(j * 31 + i * 17 + 5);
    struct img b = {0};
    build_source_image(&b);
    uint8_t *src_bytes;
    struct dp_gguf *src = expect_parsed(&b, "source.gguf", &src_bytes);
    if (!src) return;
    CHECK_EQ_INT(src->n_kv, 7);
    check_nested(&dp_gguf_find_kv(src, "src.nested")->val);

    static const uint32_t aligns[] = {0, 64, 32, 1};
    for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
        char name[64], copy[64];
        snprintf(name, sizeof name, "full-%u.gguf", aligns[a]);
        snprintf(copy, sizeof copy, "copy-%u.gguf", aligns[a]);
        struct dp_gguf_writer *w = build_full_writer(aligns[a], src);
        dp_status st = dp_gguf_writer_write(w, tmp_path(name));
        CHECK_MSG(st == DP_OK, "%s", dp_last_error());
        dp_gguf_writer_free(w);
        check_full_file(tmp_path(name), aligns[a]);
        check_copy_identical(tmp_path(name), tmp_path(copy));
    }
    dp_gguf_close(src);
    free(src_bytes);
    CHECK_EQ_INT(count_tmp_files(tmpdir), 0);
}

/* An empty writer gives a header-only file (padded to the alignment, as ggml does) that reads back. */
static void test_empty_file(void) {
    struct dp_gguf_writer *w = dp_gguf_writer_new();
    CHECK(dp_gguf_writer_write(w, tmp_path("empty.gguf")) == DP_OK);
    dp_gguf_writer_free(w);
    dp_gguf_writer_free(NULL);
    dp_gguf_close(NULL);
    struct dp_gguf *g;
    CHECK(dp_gguf_open(tmp_path("empty.gguf"), &g) == DP_OK);
    if (g) {
        CHECK_EQ_INT(g->n_kv, 0);
        CHECK_EQ_INT(g->n_tensors, 0);
        CHECK_EQ_INT(g->map.size, 32);
        dp_gguf_close(g);
    }
}

/* ---- writer failures ---------------------------------------------------------- */

static void test_writer_errors(void) {
    struct dp_gguf_writer *w = dp_gguf_writer_new();
    static uint8_t data[4096];
    const int64_t ne2[2] = {32, 2}, ne1[1] = {33}, ne0[1] = {0}, neg[1] = {-32};
    char long_name[65];
    memset(long_name, 'x', 64);
    long_name[64] = 0;
    CHECK(dp_gguf_add_tensor(w, "", DP_TYPE_F32, 1, ne1, data, 33 * 4) == DP_ERR_ARG);
    CHECK(dp_gguf_add_tensor(w, long_name, DP_TYPE_F32, 1, ne1, data, 33 * 4) == DP_ERR_ARG);
    CHECK(strstr(dp_last_error(), "xxxxxxxx") != NULL);
    long_name[63] = 0; /* 63 bytes is allowed */
    CHECK(dp_gguf_add_tensor(w, long_name, DP_TYPE_F32, 1, ne1, data, 33 * 4) == DP_OK);
    CHECK(dp_gguf_add_tensor(w, long_name, DP_TYPE_F32, 1, ne1, data, 33 * 4) == DP_ERR_ARG);
    CHECK(strstr(dp_last_error(), "duplicate") != NULL);
    CHECK(dp_gguf_add_tensor(w, "t", 99, 1, ne1, data, 33 * 4) == DP_ERR_ARG);
    CHECK(dp_gguf_add_tensor(w, "t", 4, 1, ne1, data, 33 * 4) == DP_ERR_ARG);
    CHECK(dp_gguf_add_tensor(w, "t", DP_TYPE_F32, 0, ne1, data, 33 * 4) == DP_ERR_ARG);
    CHECK(dp_gguf_add_tensor(w, "t", DP_TYPE_F32, 5, ne2, data, 33 * 4) == DP_ERR_ARG);
    CHECK(dp_gguf_add_tensor(w, "t", DP_TYPE_F32, 1, ne0, data, 0) == DP_ERR_ARG);
    CHECK(dp_gguf_add_tensor(w, "t", DP_TYPE_F32, 1, neg, data, 128) == DP_ERR_ARG);
    CHECK(dp_gguf_add_tensor(w, "t", DP_TYPE_F32, 1, ne1, data, 33 * 4 - 1) == DP_ERR_ARG);
    CHECK(dp_gguf_add_tensor(w, "t", DP_TYPE_Q8_0, 1, ne1, data, 34) == DP_ERR_ARG);
    CHECK(strstr(dp_last_error(), "Q8_0") != NULL);
    CHECK(dp_gguf_add_tensor(w, "t", DP_TYPE_Q8_0, 2, ne2, data, 68) == DP_OK);

    /* a bad general.alignment is refused before anything is created */
    static const uint32_t bad_align[] = {0, 3, 48, 8192};
    for (size_t i = 0; i < sizeof bad_align / sizeof bad_align[0]; i++) {
        dp_gguf_set_u32(w, "general.alignment", bad_align[i]);
        CHECK_MSG(dp_gguf_writer_write(w, tmp_path("badalign.gguf")) == DP_ERR_ARG,
                  "alignment %u accepted", bad_align[i]);
        CHECK(one_line_naming("badalign.gguf"));
    }
    /* general.alignment of another type than u32 would make a file the reader refuses */
    dp_gguf_set_u64(w, "general.alignment", 64);
    CHECK(dp_gguf_writer_write(w, tmp_path("badalign.gguf")) == DP_ERR_ARG);
    CHECK(one_line_naming("badalign.gguf"));
    dp_gguf_set_u32(w, "general.alignment", 64);
    /* so would an empty key */
    dp_gguf_set_u32(w, "", 1);
    CHECK(dp_gguf_writer_write(w, tmp_path("badalign.gguf")) == DP_ERR_ARG);
    CHECK(one_line_naming("badalign.gguf"));
    dp_gguf_remove_kv(w, "");
    struct stat sb;
    CHECK(stat(tmp_path("badalign.gguf"), &sb) != 0);

    /* a missing directory: nothing is created */
    CHECK(dp_gguf_writer_write(w, tmp_path("missing/x.gguf")) == DP_ERR_IO);
    CHECK(one_line_naming("missing/x.gguf"));
    CHECK(stat(tmp_path("missing"), &sb) != 0);
    /* the target is a directory: the temporary file is written, the rename fails, it is removed */
    CHECK(mkdir(tmp_path("adir"), 0755) == 0);
    CHECK(dp_gguf_writer_write(w, tmp_path("adir")) == DP_ERR_IO);
    CHECK(one_line_naming("adir"));
    CHECK_EQ_INT(count_tmp_files(tmpdir), 0);
    CHECK(rmdir(tmp_path("adir")) == 0);
    /* an unwritable directory (meaningless for root, who may write anywhere) */
    if (geteuid() != 0) {
        CHECK(mkdir(tmp_path("ro"), 0555) == 0);
        CHECK(dp_gguf_writer_write(w, tmp_path("ro/x.gguf")) == DP_ERR_IO);
        CHECK(one_line_naming("ro/x.gguf"));
        CHECK_EQ_INT(count_tmp_files(tmp_path("ro")), 0);
        CHECK(rmdir(tmp_path("ro")) == 0);
    }
    /* and the writer still works */
    CHECK(dp_gguf_writer_write(w, tmp_path("after-errors.gguf")) == DP_OK);
    struct dp_gguf *g;
    CHECK(dp_gguf_open(tmp_path("after-errors.gguf"), &g) == DP_OK);
    if (g) {
        CHECK_EQ_INT(g->n_tensors, 2);
        CHECK_EQ_INT(g->alignment, 64);
        dp_gguf_close(g);
    }
    dp_gguf_writer_free(w);
    CHECK_EQ_INT(count_tmp_files(tmpdir), 0);
}

/* ---- typed getters -------------------------------------------------------- */

static void test_getters(void) {
    const char *path = tmp_path("full-0.gguf");
    struct dp_gguf *g;
    if (dp_gguf_open(path, &g) != DP_OK) {
        CHECK_MSG(0, "%s", dp_last_error());
        return;
    }
    int64_t i = 0;
    CHECK(dp_gguf_get_int(g, "t.u32", true, &i) == DP_OK && i == 4000000000);
    CHECK(dp_gguf_get_int(g, "t.i32", true, &i) == DP_OK && i == -123456);
    CHECK(dp_gguf_get_int(g, "t.u8", true, &i) == DP_OK && i == 200);
    CHECK(dp_gguf_get_int(g, "t.i8", true, &i) == DP_OK && i == -100);
    CHECK(dp_gguf_get_int(g, "t.u16", true, &i) == DP_OK && i == 60000);
    CHECK(dp_gguf_get_int(g, "t.i16", true, &i) == DP_OK && i == -30000);
    CHECK(dp_gguf_get_int(g, "t.i64", true, &i) == DP_OK && i == -((INT64_C(1) << 40) + 5));
    i = 77;
    CHECK(dp_gguf_get_int(g, "t.u64", true, &i) == DP_ERR_FORMAT && i == 77);
    CHECK(one_line_naming(path) && strstr(dp_last_error(), "t.u64") && strstr(dp_last_error(), "range"));
    static const char *const not_int[] = {"t.f32", "t.f64", "t.str", "t.true", "t.arr.u32", "t.nested"};
    for (size_t k = 0; k < sizeof not_int / sizeof not_int[0]; k++) {
        CHECK_MSG(dp_gguf_get_int(g, not_int[k], true, &i) == DP_ERR_FORMAT && i == 77, "%s", not_int[k]);
        CHECK_MSG(one_line_naming(path) && strstr(dp_last_error(), not_int[k]), "%s", dp_last_error());
    }

    double f = 0;
    CHECK(dp_gguf_get_float(g, "t.f32", true, &f) == DP_OK && f == (double)1.5e-5f);
    CHECK(dp_gguf_get_float(g, "t.f64", true, &f) == DP_OK && f == 0.1);
    CHECK(dp_gguf_get_float(g, "t.i32", true, &f) == DP_OK && f == -123456.0);
    CHECK(dp_gguf_get_float(g, "t.u64", true, &f) == DP_OK && f == (double)UINT64_C(0xFEDCBA9876543210));
    f = 7;
    CHECK(dp_gguf_get_float(g, "t.str", true, &f) == DP_ERR_FORMAT && f == 7);
    CHECK(dp_gguf_get_float(g, "t.true", true, &f) == DP_ERR_FORMAT && f == 7);
    CHECK(dp_gguf_get_float(g, "t.arr.f32", true, &f) == DP_ERR_FORMAT && f == 7);
    CHECK(one_line_naming(path) && strstr(dp_last_error(), "t.arr.f32"));

    bool b = false;
    CHECK(dp_gguf_get_bool(g, "t.true", true, &b) == DP_OK && b);
    CHECK(dp_gguf_get_bool(g, "t.false", true, &b) == DP_OK && !b);
    b = true;
    CHECK(dp_gguf_get_bool(g, "t.u8", true, &b) == DP_ERR_FORMAT && b);
    CHECK(one_line_naming(path) && strstr(dp_last_error(), "t.u8"));

    char s[64] = "untouched";
    CHECK(dp_gguf_get_str(g, "t.str", true, s, sizeof s) == DP_OK && !strcmp(s, "h\xc3\xa9llo w\xc3\xb6rld"));
    CHECK(dp_gguf_get_str(g, "t.str", true, s, 4) == DP_OK && !strcmp(s, "h\xc3\xa9"));
    CHECK(dp_gguf_get_str(g, "t.str", true, s, 1) == DP_OK && s[0] == 0);
    CHECK(dp_gguf_get_str(g, "t.empty", true, s, sizeof s) == DP_OK && s[0] == 0);
    strcpy(s, "untouched");
    CHECK(dp_gguf_get_str(g, "t.u32", true, s, sizeof s) == DP_ERR_FORMAT && !strcmp(s, "untouched"));
    CHECK(dp_gguf_get_str(g, "t.arr.str", true, s, sizeof s) == DP_ERR_FORMAT);
    CHECK(one_line_naming(path) && strstr(dp_last_error(), "t.arr.str"));

    /* missing keys: required fails naming file and key; optional leaves *out alone */
    i = 5;
    f = 5;
    b = true;
    CHECK(dp_gguf_get_int(g, "no.such.key", true, &i) == DP_ERR_FORMAT && i == 5);
    CHECK(one_line_naming(path) && strstr(dp_last_error(), "no.such.key"));
    CHECK(dp_gguf_get_float(g, "no.such.float", true, &f) == DP_ERR_FORMAT && f == 5);
    CHECK(one_line_naming(path) && strstr(dp_last_error(), "no.such.float"));
    CHECK(dp_gguf_get_bool(g, "no.such.bool", true, &b) == DP_ERR_FORMAT && b);
    CHECK(one_line_naming(path) && strstr(dp_last_error(), "no.such.bool"));
    CHECK(dp_gguf_get_str(g, "no.such.str", true, s, sizeof s) == DP_ERR_FORMAT && !strcmp(s, "untouched"));
    CHECK(one_line_naming(path) && strstr(dp_last_error(), "no.such.str"));
    CHECK(dp_gguf_get_int(g, "no.such.key", false, &i) == DP_OK && i == 5);
    CHECK(dp_gguf_get_float(g, "no.such.key", false, &f) == DP_OK && f == 5);
    CHECK(dp_gguf_get_bool(g, "no.such.key", false, &b) == DP_OK && b);
    CHECK(dp_gguf_get_str(g, "no.such.key", false, s, sizeof s) == DP_OK && !strcmp(s, "untouched"));
    /* an optional key that is present with the wrong type still fails */
    CHECK(dp_gguf_get_bool(g, "t.str", false, &b) == DP_ERR_FORMAT);

    CHECK(!strcmp(dp_gguf_vtype_name(DP_GGUF_F64), "f64"));
    CHECK(!strcmp(dp_gguf_vtype_name(13), "unknown"));
    CHECK_EQ_INT(dp_gguf_vtype_size(DP_GGUF_STRING), 0);
    CHECK_EQ_INT(dp_gguf_vtype_size(DP_GGUF_I16), 2);
    dp_gguf_close(g);
}

/* ---- GGUF v2 ------------------------------------------------------------------ */

static void test_v2(void) {
    struct img b = {0};
    img_hdr(&b, 2, 2, 3);
    img_kv_u32(&b, "general.alignment", 32);
    img_key(&b, "general.architecture", DP_GGUF_STRING);
    img_str(&b, "llama");
    img_key(&b, "tokenizer.ggml.tokens", DP_GGUF_ARRAY);
    img_u32(&b, DP_GGUF_STRING);
    img_u64(&b, 2);
    img_str(&b, "<unk>");
    img_str(&b, "<s>");
    const struct tinfo t[] = {{"a", 1, {4}, DP_TYPE_F32, 0}, {"b", 2, {32, 2}, DP_TYPE_Q8_0, 32}};
    img_tensors(&b, t, 2, 32, 32 + 68);
    uint8_t *bytes;
    struct dp_gguf *g = expect_parsed(&b, "v2.gguf", &bytes);
    if (g) {
        CHECK_EQ_INT(g->version, 2);
        CHECK_EQ_INT(g->n_kv, 3);
        CHECK_EQ_INT(g->n_tensors, 2);
        char arch[8];
        CHECK(dp_gguf_get_str(g, "general.architecture", true, arch, sizeof arch) == DP_OK &&
              !strcmp(arch, "llama"));
        const struct dp_gguf_kv *tok = dp_gguf_find_kv(g, "tokenizer.ggml.tokens");
        CHECK(tok && tok->val.n == 2 && str_is(tok->val.strs[1], "<s>"));
        const struct dp_gguf_tensor *tb = dp_gguf_find_tensor(g, "b");
        CHECK(tb && tb->type == DP_TYPE_Q8_0 && tb->ne[1] == 2 && tb->nbytes == 68);
        CHECK(tb && tb->data == bytes + g->data_offset + 32 && tb->data[0] == (uint8_t)(32 * 7 + 1));
        CHECK(g->tensors[0].data[3] == 3 * 7 + 1);
        CHECK(inside(g, bytes, g->data_offset + 100));
        dp_gguf_close(g);
    }
    free(bytes);
}

/* Float array elements read as int64 saturate (found by the fuzzer: NaN was undefined behaviour). */
static void test_arr_conversions(void) {
    static const float f32[] = {NAN, 1e30f, -1e30f, -2.7f, 2.7f};
    static const double f64[] = {NAN, 9.3e18, -9.3e18, -0.5, -0x1p63};
    struct img b = {0};
    img_hdr(&b, 3, 0, 2);
    img_key(&b, "f32", DP_GGUF_ARRAY);
    img_u32(&b, DP_GGUF_F32);
    img_u64(&b, 5);
    img_put(&b, f32, sizeof f32);
    img_key(&b, "f64", DP_GGUF_ARRAY);
    img_u32(&b, DP_GGUF_F64);
    img_u64(&b, 5);
    img_put(&b, f64, sizeof f64);
    uint8_t *bytes;
    struct dp_gguf *g = expect_parsed(&b, "floats.gguf", &bytes);
    if (g) {
        const struct dp_gguf_value *a = &g->kv[0].val, *d = &g->kv[1].val;
        CHECK_EQ_INT(dp_gguf_arr_i64(a, 0), 0);
        CHECK_EQ_INT(dp_gguf_arr_i64(a, 1), INT64_MAX);
        CHECK_EQ_INT(dp_gguf_arr_i64(a, 2), INT64_MIN);
        CHECK_EQ_INT(dp_gguf_arr_i64(a, 3), -2);
        CHECK_EQ_INT(dp_gguf_arr_i64(a, 4), 2);
        CHECK(isnan(dp_gguf_arr_f64(a, 0)));
        CHECK_EQ_INT(dp_gguf_arr_i64(d, 0), 0);
        CHECK_EQ_INT(dp_gguf_arr_i64(d, 1), INT64_MAX);
        CHECK_EQ_INT(dp_gguf_arr_i64(d, 2), INT64_MIN);
        CHECK_EQ_INT(dp_gguf_arr_i64(d, 3), 0);
        CHECK_EQ_INT(dp_gguf_arr_i64(d, 4), INT64_MIN);
        CHECK(dp_gguf_arr_f64(d, 1) == 9.3e18);
    }
    dp_gguf_close(g);
    free(bytes);
}

/* ---- hostile images ------------------------------------------------------------ */

static void test_hostile_header(void) {
    struct img b = {0};
    expect_refused_bytes((const uint8_t *)"", 0, "empty.gguf", "bad magic");
    expect_refused_bytes((const uint8_t *)"GGU", 3, "short.gguf", "bad magic");
    img_hdr(&b, 3, 0, 0);
    b.p[3] = 'X';
    expect_refused(&b, "magic.gguf", "bad magic");
    img_put(&b, "GGUF", 4);
    expect_refused(&b, "magic-only.gguf", "truncated");
    img_hdr(&b, 1, 0, 0);
    expect_refused(&b, "v1.gguf", "version 1");
    img_hdr(&b, 4, 0, 0);
    expect_refused(&b, "v4.gguf", "version 4");
    img_hdr(&b, 3, 0, 0);
    b.n -= 1;
    expect_refused(&b, "counts-cut.gguf", "truncated");
    img_hdr(&b, 3, UINT64_C(1) << 63, 0);
    expect_refused(&b, "ntensors.gguf", "tensor count");
    img_hdr(&b, 3, 0, UINT64_C(1) << 62);
    expect_refused(&b, "nkv.gguf", "metadata count");
    img_hdr(&b, 3, UINT64_MAX, UINT64_MAX);
    expect_refused(&b, "counts-max.gguf", "count");
    img_hdr(&b, 3, 0, 1); /* one pair promised, none there */
    expect_refused(&b, "nkv-1.gguf", "count");
}

static void test_hostile_metadata(void) {
    struct img b = {0};
    /* string lengths of 2^64-1: in a key and in a value */
    img_hdr(&b, 3, 0, 1);
    img_u64(&b, UINT64_MAX);
    img_put(&b, "key-and-some-more-bytes", 23);
    expect_refused(&b, "keylen.gguf", "truncated");
    img_hdr(&b, 3, 0, 1);
    img_key(&b, "k", DP_GGUF_STRING);
    img_u64(&b, UINT64_MAX);
    img_put(&b, "value", 5);
    expect_refused(&b, "strlen.gguf", "truncated");
    /* an array of strings whose last string runs past the end */
    img_hdr(&b, 3, 0, 1);
    img_key(&b, "k", DP_GGUF_ARRAY);
    img_u32(&b, DP_GGUF_STRING);
    img_u64(&b, 2);
    img_str(&b, "one");
    img_u64(&b, UINT64_MAX - 3);
    img_put(&b, "two", 3);
    expect_refused(&b, "arrstrlen.gguf", "truncated");
    /* array counts of 2^61 for each kind of element, and 2^64-1 (n * size overflows) */
    static const uint32_t elem[] = {DP_GGUF_U8, DP_GGUF_U64, DP_GGUF_STRING, DP_GGUF_ARRAY};
    for (size_t i = 0; i < sizeof elem / sizeof elem[0]; i++)
        for (int big = 0; big < 2; big++) {
            img_hdr(&b, 3, 0, 1);
            img_key(&b, "k", DP_GGUF_ARRAY);
            img_u32(&b, elem[i]);
            img_u64(&b, big ? UINT64_MAX : UINT64_C(1) << 61);
            img_u64(&b, 0);
            img_u64(&b, 0);
            expect_refused(&b, "arrcount.gguf", "does not fit");
        }
    /* unknown types */
    img_hdr(&b, 3, 0, 1);
    img_key(&b, "k", 13);
    img_u64(&b, 0);
    expect_refused(&b, "vtype13.gguf", "unknown value type 13");
    img_hdr(&b, 3, 0, 1);
    img_key(&b, "k", 0xFFFFFFFFu);
    img_u64(&b, 0);
    expect_refused(&b, "vtypemax.gguf", "unknown value type");
    img_hdr(&b, 3, 0, 1);
    img_key(&b, "k", DP_GGUF_ARRAY);
    img_u32(&b, 13);
    img_u64(&b, 1);
    img_u64(&b, 0);
    expect_refused(&b, "elem13.gguf", "unknown array element type 13");
    /* bool 2 */
    img_hdr(&b, 3, 0, 1);
    img_key(&b, "flag", DP_GGUF_BOOL);
    img_le(&b, 2, 1);
    img_u64(&b, 0);
    expect_refused(&b, "bool2.gguf", "bool value 2");
    /* a scalar cut short */
    img_hdr(&b, 3, 0, 1);
    img_key(&b, "k", DP_GGUF_U64);
    img_u32(&b, 0);
    expect_refused(&b, "u64cut.gguf", "truncated");
    /* duplicate, empty and NUL-carrying keys */
    img_hdr(&b, 3, 0, 2);
    img_kv_u32(&b, "general.x", 1);
    img_kv_u32(&b, "general.x", 2);
    expect_refused(&b, "dupkey.gguf", "duplicate metadata key 'general.x'");
    img_hdr(&b, 3, 0, 1);
    img_kv_u32(&b, "", 1);
    img_u64(&b, 0);
    expect_refused(&b, "emptykey.gguf", "invalid key");
    img_hdr(&b, 3, 0, 1);
    img_u64(&b, 3);
    img_put(&b, "a\0b", 3);
    img_u32(&b, DP_GGUF_U32);
    img_u32(&b, 1);
    expect_refused(&b, "nulkey.gguf", "invalid key");
    /* arrays nested 100 deep (and 9: one past the limit); 8 levels are fine */
    static const int depths[] = {100, 9, 8};
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
        img_hdr(&b, 3, 0, 1);
        img_key(&b, "deep", DP_GGUF_ARRAY);
        for (int d = 1; d < depths[i]; d++) {
            img_u32(&b, DP_GGUF_ARRAY);
            img_u64(&b, 1);
        }
        img_u32(&b, DP_GGUF_U8);
        img_u64(&b, 1);
        img_le(&b, 42, 1);
        if (depths[i] > 8) {
            expect_refused(&b, "deep.gguf", "nested");
        } else {
            uint8_t *bytes;
            struct dp_gguf *g = expect_parsed(&b, "deep8.gguf", &bytes);
            if (g) {
                const struct dp_gguf_value *v = &g->kv[0].val;
                for (int d = 1; d < 8 && v->n == 1 && v->items; d++) v = &v->items[0];
                CHECK(v->elem_type == DP_GGUF_U8 && v->n == 1 && dp_gguf_arr_i64(v, 0) == 42);
            }
            dp_gguf_close(g);
            free(bytes);
        }
    }
    /* general.alignment: 0, 3, 2^21, not a u32 */
    static const uint32_t bad_align[] = {0, 3, 96, 1u << 21};
    for (size_t i = 0; i < sizeof bad_align / sizeof bad_align[0]; i++) {
        img_hdr(&b, 3, 0, 1);
        img_kv_u32(&b, "general.alignment", bad_align[i]);
        expect_refused(&b, "align.gguf", "general.alignment");
    }
    img_hdr(&b, 3, 0, 1);
    img_key(&b, "general.alignment", DP_GGUF_U64);
    img_u64(&b, 32);
    expect_refused(&b, "align-u64.gguf", "general.alignment");
    img_hdr(&b, 3, 0, 1);
    img_key(&b, "general.alignment", DP_GGUF_STRING);
    img_str(&b, "32");
    expect_refused(&b, "align-str.gguf", "general.alignment");
}

/* One tensor info (or two) after no metadata, with `data` bytes of data. */
static void hostile_tensors(const struct tinfo *t, int n, size_t data, const char *name,
                            const char *want) {
    struct img b = {0};
    img_hdr(&b, 3, (uint64_t)n, 0);
    img_tensors(&b, t, n, 32, data);
    expect_refused(&b, name, want);
}

static void test_hostile_tensors(void) {
    const uint64_t big = UINT64_C(1) << 32;
    char n64[65], n63[64];
    memset(n64, 'n', 64);
    n64[64] = 0;
    memset(n63, 'n', 63);
    n63[63] = 0;
    const struct {
        struct tinfo t[2];
        int n;
        size_t data;
        const char *name, *want;
    } cases[] = {
        {{{"t", 0, {0}, DP_TYPE_F32, 0}}, 1, 64, "dims0.gguf", "0 dimensions"},
        {{{"t", 5, {1, 1, 1, 1, 1}, DP_TYPE_F32, 0}}, 1, 64, "dims5.gguf", "5 dimensions"},
        {{{"t", 2, {4, 0}, DP_TYPE_F32, 0}}, 1, 64, "ne0.gguf", "invalid size 0"},
        {{{"t", 1, {UINT64_C(1) << 63}, DP_TYPE_F32, 0}}, 1, 64, "ne63.gguf", "invalid size"},
        {{{"t", 2, {big, big}, DP_TYPE_F32, 0}}, 1, 64, "neprod.gguf", "invalid size"},
        {{{"t", 4, {big, big, big, big}, DP_TYPE_F32, 0}}, 1, 64, "neprod4.gguf", "invalid size"},
        {{{"t", 2, {UINT64_C(1) << 30, UINT64_C(1) << 29}, DP_TYPE_I64, 0}}, 1, 64, "nebytes.gguf",
         "beyond the end"},
        {{{"t", 1, {32}, 99, 0}}, 1, 64, "type99.gguf", "unknown type 99"},
        {{{"t", 1, {32}, 4, 0}}, 1, 64, "type4.gguf", "unknown type 4"},
        {{{"t", 1, {32}, DP_TYPE_COUNT, 0}}, 1, 64, "typecount.gguf", "unknown type"},
        {{{"t", 2, {33, 1}, DP_TYPE_Q8_0, 0}}, 1, 64, "q8row.gguf", "not a multiple of the Q8_0 block size"},
        {{{"t", 1, {16}, DP_TYPE_Q4_K, 0}}, 1, 256, "q4krow.gguf", "block size"},
        {{{"t", 1, {4}, DP_TYPE_F32, 1}}, 1, 64, "misaligned.gguf", "alignment"},
        {{{"t", 1, {4}, DP_TYPE_F32, 16}}, 1, 64, "misaligned16.gguf", "alignment"},
        {{{"t", 1, {16}, DP_TYPE_F32, 32}}, 1, 64, "beyond.gguf", "beyond the end"},
        {{{"t", 1, {4}, DP_TYPE_F32, 4096}}, 1, 64, "beyond4k.gguf", "beyond the end"},
        {{{"t", 1, {4}, DP_TYPE_F32, UINT64_MAX - 31}}, 1, 64, "offwrap.gguf", "beyond the end"},
        {{{"t", 1, {64}, DP_TYPE_F32, 0}}, 1, 255, "short.gguf", "beyond the end"},
        {{{"a", 1, {16}, DP_TYPE_F32, 0}, {"b", 1, {8}, DP_TYPE_F32, 32}}, 2, 128, "overlap.gguf", "overlap"},
        {{{"a", 1, {8}, DP_TYPE_F32, 32}, {"b", 1, {8}, DP_TYPE_F32, 32}}, 2, 128, "same.gguf", "overlap"},
        {{{"a", 1, {8}, DP_TYPE_F32, 0}, {"a", 1, {8}, DP_TYPE_F32, 32}}, 2, 128, "dupname.gguf",
         "duplicate tensor name 'a'"},
        {{{n64, 1, {8}, DP_TYPE_F32, 0}}, 1, 64, "name64.gguf", "invalid name (length 64"},
        {{{"", 1, {8}, DP_TYPE_F32, 0}}, 1, 64, "name0.gguf", "invalid name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        hostile_tensors(cases[i].t, cases[i].n, cases[i].data, cases[i].name, cases[i].want);

    /* a tensor name carrying a NUL byte */
    struct img b = {0};
    img_hdr(&b, 3, 1, 0);
    img_u64(&b, 3);
    img_put(&b, "a\0b", 3);
    img_u32(&b, 1);
    img_u64(&b, 8);
    img_u32(&b, DP_TYPE_F32);
    img_u64(&b, 0);
    while (b.n % 32) img_put(&b, "", 1);
    for (int i = 0; i < 32; i++) img_put(&b, "", 1);
    expect_refused(&b, "nulname.gguf", "invalid name");
    /* tensors promised, but the file ends inside the header padding */
    img_hdr(&b, 3, 1, 0);
    const struct tinfo one = {"t", 1, {8}, DP_TYPE_F32, 0};
    img_tensors(&b, &one, 1, 1, 0);
    expect_refused(&b, "nodata.gguf", "truncated");
    /* a custom alignment applies to offsets: 32 is misaligned under 64 */
    img_hdr(&b, 3, 2, 1);
    img_kv_u32(&b, "general.alignment", 64);
    const struct tinfo two[] = {{"a", 1, {8}, DP_TYPE_F32, 0}, {"b", 1, {8}, DP_TYPE_F32, 32}};
    img_tensors(&b, two, 2, 64, 128);
    expect_refused(&b, "align64.gguf", "alignment 64");

    /* boundaries that must be accepted: a 63-byte name, touching tensors, 4 dims */
    const struct tinfo ok[] = {{n63, 4, {2, 1, 2, 2}, DP_TYPE_F32, 32}, {"b", 1, {8}, DP_TYPE_F32, 0}};
    img_hdr(&b, 3, 2, 0);
    img_tensors(&b, ok, 2, 32, 64);
    uint8_t *bytes;
    size_t n = b.n;
    struct dp_gguf *g = expect_parsed(&b, "boundary.gguf", &bytes);
    if (g) {
        CHECK(dp_gguf_find_tensor(g, n63) && g->tensors[0].nbytes == 32 && g->tensors[0].n_dims == 4);
        CHECK(inside(g, bytes, n));
        CHECK(g->tensors[0].data + 32 == bytes + n);
    }
    dp_gguf_close(g);
    free(bytes);
}

/* dp_gguf_open: the file's path is in every message. */
static void test_open_errors(void) {
    struct dp_gguf *g = (struct dp_gguf *)1;
    const char *missing = tmp_path("does-not-exist.gguf");
    CHECK(dp_gguf_open(missing, &g) == DP_ERR_IO && g == NULL);
    CHECK(one_line_naming(missing));
    g = (struct dp_gguf *)1;
    CHECK(dp_gguf_open(tmpdir, &g) == DP_ERR_IO && g == NULL);
    CHECK(one_line_naming(tmpdir));
    /* a real file cut in half */
    char *full = NULL;
    size_t n = 0;
    CHECK(dp_read_file(tmp_path("full-64.gguf"), &full, &n) == DP_OK);
    const char *cut = tmp_path("cut.gguf");
    FILE *f = fopen(cut, "wb");
    CHECK(f && fwrite(full, 1, n / 2, f) == n / 2);
    if (f) fclose(f);
    free(full);
    g = (struct dp_gguf *)1;
    CHECK(dp_gguf_open(cut, &g) == DP_ERR_FORMAT && g == NULL);
    CHECK_MSG(one_line_naming(cut), "%s", dp_last_error());
    remove(cut);
}

/* ---- every prefix, every header bit ------------------------------------------- */

/* A small file: a few pairs of different types including arrays and strings, 3 tensors. */
static void write_small_file(const char *path) {
    static uint8_t data[2][256];
    for (int i = 0; i < 256; i++) {
        data[0][i] = (uint8_t)(i * 13 + 1);
        data[1][i] = (uint8_t)(255 - i);
    }
    struct dp_gguf_writer *w = dp_gguf_writer_new();
    dp_gguf_set_str(w, "general.architecture", "llama");
    dp_gguf_set_u32(w, "llama.block_count", 2);
    dp_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    dp_gguf_set_bool(w, "general.flag", true);
    static const int32_t ids[] = {1, 2, 3};
    dp_gguf_set_arr(w, "tokenizer.ggml.token_type", DP_GGUF_I32, ids, 3);
    static const char *const toks[] = {"<unk>", "<s>", "</s>"};
    dp_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    const int64_t ne_a[1] = {8}, ne_b[2] = {32, 2}, ne_c[1] = {5};
    CHECK(dp_gguf_add_tensor(w, "a", DP_TYPE_F32, 1, ne_a, data[0], 32) == DP_OK);
    CHECK(dp_gguf_add_tensor(w, "blk.0.b", DP_TYPE_Q8_0, 2, ne_b, data[1], 68) == DP_OK);
    CHECK(dp_gguf_add_tensor(w, "c", DP_TYPE_F16, 1, ne_c, data[0] + 100, 10) == DP_OK);
    CHECK(dp_gguf_writer_write(w, path) == DP_OK);
    dp_gguf_writer_free(w);
}

static void test_truncation_and_bitflips(void) {
    const char *path = tmp_path("small.gguf");
    write_small_file(path);
    char *file = NULL;
    size_t size = 0;
    if (dp_read_file(path, &file, &size) != DP_OK) {
        CHECK_MSG(0, "%s", dp_last_error());
        return;
    }
    const uint8_t *full = (const uint8_t *)file;
    struct dp_gguf *g;
    CHECK(dp_gguf_parse(full, size, "small.gguf", &g) == DP_OK);
    if (!g) {
        free(file);
        return;
    }
    size_t header = g->data_offset;
    CHECK_EQ_INT(g->n_tensors, 3);
    CHECK(size < 4096);
    dp_gguf_close(g);

    /* every prefix shorter than the whole file is refused: the last tensor ends the file */
    int refused = 0;
    for (size_t len = 0; len < size; len++) {
        uint8_t *c = exact_copy(full, len);
        g = (struct dp_gguf *)1;
        dp_status st = dp_gguf_parse(c, len, "small.gguf", &g);
        bool ok = st == DP_ERR_FORMAT && g == NULL && one_line_naming("small.gguf");
        if (!ok) CHECK_MSG(0, "prefix of %zu bytes: status %d, '%s'", len, st, dp_last_error());
        refused += ok;
        if (st == DP_OK) dp_gguf_close(g);
        free(c);
    }
    CHECK_EQ_INT(refused, size);

    /* every single-bit flip of the header: parse or refuse, never escape the buffer */
    int parsed = 0, bad = 0;
    uint8_t *c = exact_copy(full, size);
    for (size_t bit = 0; bit < header * 8; bit++) {
        c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        dp_status st = dp_gguf_parse(c, size, "small.gguf", &g);
        if (st == DP_OK) {
            parsed++;
            if (!inside(g, c, size)) {
                bad++;
                CHECK_MSG(0, "bit %zu: parsed result points outside the buffer", bit);
            }
            LLVMFuzzerTestOneInput(c, size);
            dp_gguf_close(g);
        } else if (g != NULL || !one_line_naming("small.gguf")) {
            bad++;
            CHECK_MSG(0, "bit %zu: status %d, '%s'", bit, st, dp_last_error());
        }
        c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    CHECK_EQ_INT(bad, 0);
    /* some flips (in string bytes, say) leave a valid file; most do not */
    CHECK(parsed > 0 && (size_t)parsed < header * 8);
    printf("small file: %zu bytes (header %zu): %d prefixes refused; %zu header bit flips, %d parsed\n",
           size, header, refused, header * 8, parsed);
    free(c);
    free(file);
}

/* ---- fuzz corpus: write it, replay it --------------------------------------- */

static int write_corpus(const char *dir) {
    mkdir(dir, 0755);
    char path[1024];
    int rc = 0;
    snprintf(path, sizeof path, "%s/seed-small.gguf", dir);
    write_small_file(path);

    struct dp_gguf_writer *w = dp_gguf_writer_new();
    snprintf(path, sizeof path, "%s/seed-empty.gguf", dir);
    if (dp_gguf_writer_write(w, path)) rc = 1;
    dp_gguf_set_u32(w, "general.alignment", 64);
    static const uint8_t d[64];
    const int64_t ne[2] = {4, 2};
    dp_gguf_add_tensor(w, "x", DP_TYPE_F32, 2, ne, d, 32);
    dp_gguf_add_tensor(w, "y", DP_TYPE_BF16, 1, ne, d, 8);
    snprintf(path, sizeof path, "%s/seed-align64.gguf", dir);
    if (dp_gguf_writer_write(w, path)) rc = 1;
    dp_gguf_writer_free(w);

    struct img b = {0};
    build_source_image(&b);
    struct img v2 = {0};
    img_hdr(&v2, 2, 1, 1);
    img_kv_u32(&v2, "general.alignment", 32);
    const struct tinfo t = {"q", 1, {32}, DP_TYPE_Q4_0, 0};
    img_tensors(&v2, &t, 1, 32, 18);
    const struct {
        const char *name;
        struct img *img;
    } imgs[] = {{"seed-types.gguf", &b}, {"seed-v2.gguf", &v2}};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, imgs[i].name);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(imgs[i].img->p, 1, imgs[i].img->n, f) != imgs[i].img->n) rc = 1;
        if (f && fclose(f)) rc = 1;
        free(imgs[i].img->p);
    }
    if (rc) fprintf(stderr, "writing the corpus into %s failed\n", dir);
    return rc;
}

static void test_corpus_replay(const char *dir) {
    DIR *d = opendir(dir);
    CHECK_MSG(d != NULL, "cannot open %s (run from the repository root)", dir);
    if (!d) return;
    int n_files = 0, n_seeds = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *bytes = NULL;
        size_t n = 0;
        if (dp_read_file(path, &bytes, &n) != DP_OK) {
            CHECK_MSG(0, "%s", dp_last_error());
            continue;
        }
        uint8_t *c = exact_copy((const uint8_t *)bytes, n);
        LLVMFuzzerTestOneInput(c, n);
        n_files++;
        if (!strncmp(e->d_name, "seed-", 5)) {
            struct dp_gguf *g;
            dp_status st = dp_gguf_parse(c, n, e->d_name, &g);
            CHECK_MSG(st == DP_OK, "%s", dp_last_error());
            CHECK_MSG(n < 4096, "%s: %zu bytes", e->d_name, n);
            dp_gguf_close(g);
            n_seeds++;
        }
        free(c);
        free(bytes);
    }
    closedir(d);
    CHECK_MSG(n_seeds >= 5, "%d seeds in %s", n_seeds, dir);
    printf("fuzz corpus: %d files replayed (%d seeds)\n", n_files, n_seeds);
}

/* Remove the temporary directory and the files the tests left in it. */
static void cleanup_tmpdir(void) {
    DIR *d = opendir(tmpdir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') remove(tmp_path(e->d_name));
    closedir(d);
    rmdir(tmpdir);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--write-corpus")) return write_corpus(argv[2]);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_gguf.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_stories260k();
    test_synthetic();
    test_roundtrip();
    test_empty_file();
    test_writer_errors();
    test_getters();
    test_v2();
    test_arr_conversions();
    test_hostile_header();
    test_hostile_metadata();
    test_hostile_tensors();
    test_open_errors();
    test_truncation_and_bitflips();
    test_corpus_replay("tests/fuzz/corpus");
    cleanup_tmpdir();
    return TEST_END();
}
