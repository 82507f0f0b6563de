/*
 * test_tokenizer: llama.cpp's tokenizer test vectors (../shared/tokenizers:
 * every X.gguf.inp/.out pair, ids from the models' reference tokenizers, run
 * as llama.cpp's test-tokenizer-0 runs them: special tokens parsed, no BOS),
 * decoding back to the input, the stories260K tokenizer from GGUF and from
 * llama2.c's tok512.bin, generation-style printing, invalid UTF-8, and the
 * failure paths (unsupported model and pre-tokenizer, broken files).
 */
#include <dirent.h>
#include <stdint.h>
#include <unistd.h>

#include "harness.h"
#include "tokenizer.h"
#include "unicode.h"

static const char *const vocabs[] = {"llama-spm", "phi-3",  "gpt-2",  "deepseek-coder", "deepseek-llm", "llama-bpe",
                                     "qwen2",     "gemma3", "falcon", "mpt", "refact", "starcoder"};

/*
 * Every vector file in ../shared/tokenizers is tested: an X.gguf.inp whose
 * vocabulary is not in the list above, or whose X.gguf is missing, fails.
 * vectors-without-vocab/ holds vectors whose vocabulary the project lacks
 * (command-r): each is named on stdout as untested, and fails as soon as
 * its vocabulary appears there without being added to the list.
 */
static void test_vector_files(void) {
    const char *dirs[2] = {"tokenizers", "tokenizers/vectors-without-vocab"};
    int n_top = 0;
    for (int d = 0; d < 2; d++) {
        DIR *dir = opendir(test_shared(dirs[d]));
        CHECK_MSG(dir != NULL || d == 1, "%s: cannot open", test_shared(dirs[d]));
        for (struct dirent *e; dir && (e = readdir(dir));) {
            size_t len = strlen(e->d_name);
            const char *pre = "ggml-vocab-", *suf = ".gguf.inp";
            if (len <= strlen(pre) + strlen(suf) || strncmp(e->d_name, pre, strlen(pre)) ||
                strcmp(e->d_name + len - strlen(suf), suf))
                continue;
            char name[256], rel[600];
            snprintf(name, sizeof name, "%.*s", (int)(len - strlen(pre) - strlen(suf)), e->d_name + strlen(pre));
            bool listed = false;
            for (size_t v = 0; v < sizeof vocabs / sizeof vocabs[0]; v++) listed |= !strcmp(vocabs[v], name);
            snprintf(rel, sizeof rel, "%s/ggml-vocab-%s.gguf", dirs[d], name);
            bool have = access(test_shared(rel), R_OK) == 0;
            if (d == 0) {
                n_top++;
                CHECK_MSG(listed && have, "%s: vectors %s, vocabulary %s", name, listed ? "tested" : "not tested",
                          have ? "present" : "missing");
            } else if (!have) {
                printf("%-15s untested: no vocabulary (%s)\n", name, dirs[d]);
            } else {
                CHECK_MSG(listed, "%s: vocabulary arrived in %s but is not tested", name, dirs[d]);
            }
        }
        if (dir) closedir(dir);
    }
    CHECK_MSG(n_top == (int)(sizeof vocabs / sizeof vocabs[0]), "%d vector files, %d vocabularies tested", n_top,
              (int)(sizeof vocabs / sizeof vocabs[0]));
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    fclose(f);
    b[n] = 0;
    *len = (size_t)n;
    return b;
}

static struct dp_tokenizer *open_vocab(const char *path, struct dp_gguf **g) {
    struct dp_tokenizer *t = NULL;
    if (dp_gguf_open(path, g)) {
        fprintf(stderr, "%s\n", dp_last_error());
        return NULL;
    }
    if (dp_tokenizer_from_gguf(*g, &t)) fprintf(stderr, "%s\n", dp_last_error());
    return t;
}

/* Tokenize into a heap array (with the two-call protocol when cap is too small). */
static int *tokenize(const struct dp_tokenizer *t, const char *s, size_t len, unsigned flags, int *n) {
    int small[4];
    if (dp_tokenize(t, s, len, flags, small, 4, n)) return NULL;
    int *ids = malloc(((size_t)*n + 1) * sizeof *ids);
    int n2;
    if (dp_tokenize(t, s, len, flags, ids, *n, &n2) || n2 != *n) {
        free(ids);
        return NULL;
    }
    return ids;
}

static char *detokenize(const struct dp_tokenizer *t, const int *ids, int n, size_t *len) {
    *len = dp_detokenize(t, ids, n, NULL, 0);
    char *s = malloc(*len + 1);
    size_t again = dp_detokenize(t, ids, n, s, *len + 1);
    if (again != *len) CHECK_EQ_INT(again, *len); /* counted only when it fails: thousands of calls */
    return s;
}

/* One vocabulary's vectors: the .inp strings are separated by "\n__ggml_vocab_test__\n". */
static void test_vectors(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "tokenizers/ggml-vocab-%s.gguf", name);
    struct dp_gguf *g = NULL;
    struct dp_tokenizer *t = open_vocab(test_shared(path), &g);
    CHECK_MSG(t != NULL, "%s: no tokenizer", name);
    if (!t) {
        dp_gguf_close(g);
        return;
    }
    bool spm = !strcmp(dp_tokenizer_model(t), "llama");
    size_t n_inp, n_out;
    char inp_rel[600], out_rel[600];
    snprintf(inp_rel, sizeof inp_rel, "%s.inp", path);
    snprintf(out_rel, sizeof out_rel, "%s.out", path);
    char *inp = read_all(test_shared(inp_rel), &n_inp), *out = read_all(test_shared(out_rel), &n_out);
    CHECK(inp && out);
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t sep_len = strlen(sep), pos = 0;
    char *line = out;
    int n_tests = 0, n_tok_ok = 0, n_dec_ok = 0;
    while (inp && out && pos < n_inp) {
        const char *next = strstr(inp + pos, sep);
        size_t len = next ? (size_t)(next - (inp + pos)) : n_inp - pos;
        const char *s = inp + pos;
        pos = next ? (size_t)(next - inp) + sep_len : n_inp;

        char *eol = strchr(line, '\n');
        if (!eol) eol = line + strlen(line);
        int want[4096], n_want = 0;
        for (char *p = line; p < eol && n_want < 4096;) {
            char *endp;
            long v = strtol(p, &endp, 10);
            if (endp == p) break;
            want[n_want++] = (int)v;
            p = endp;
        }
        line = *eol ? eol + 1 : eol;
        n_tests++;

        int n_got;
        int *got = tokenize(t, s, len, DP_TOKENIZE_SPECIAL, &n_got);
        bool same = got && n_got == n_want && !memcmp(got, want, (size_t)n_want * sizeof *want);
        n_tok_ok += same;
        CHECK_MSG(same, "%s: test %d (%.40s%s): %d ids, want %d", name, n_tests, s, len > 40 ? "..." : "",
                  got ? n_got : -1, n_want);
        if (!same && got) {
            fprintf(stderr, "  got :");
            for (int i = 0; i < n_got && i < 40; i++) fprintf(stderr, " %d", got[i]);
            fprintf(stderr, "\n  want:");
            for (int i = 0; i < n_want && i < 40; i++) fprintf(stderr, " %d", want[i]);
            fprintf(stderr, "\n");
        }
        free(got);

        /* decoding the expected ids gives the input back (SentencePiece: its added space removed) */
        size_t dlen;
        char *dec = detokenize(t, want, n_want, &dlen);
        bool back = dlen == len && !memcmp(dec, s, len);
        if (spm && !back && len > 0 && s[0] == ' ') /* tolerated: SentencePiece's leading space */
            back = dlen + 1 == len && !memcmp(dec, s + 1, dlen);
        n_dec_ok += back;
        CHECK_MSG(back, "%s: test %d decodes to \"%.*s\"", name, n_tests, (int)dlen, dec);
        free(dec);
    }
    CHECK_MSG(n_tests == 46, "%s: %d test strings", name, n_tests);
    printf("%-15s %2d/%d tokenize, %2d/%d detokenize\n", name, n_tok_ok, n_tests, n_dec_ok, n_tests);
    free(inp);
    free(out);
    dp_tokenizer_free(t);
    dp_gguf_close(g);
}

/* stories260K: the GGUF vocabulary and llama2.c's tok512.bin tokenize alike. */
static void test_stories(void) {
    static const int want[] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426};
    const char *text = "Once upon a time, there was a little girl named Lily.";
    struct dp_gguf *g = NULL;
    struct dp_tokenizer *tg = open_vocab(test_shared("models/stories260K/stories260K.gguf"), &g), *tl = NULL;
    dp_status st = dp_tokenizer_from_llama2c(test_shared("models/stories260K/tok512.bin"), 512, &tl);
    CHECK(tg && st == DP_OK && tl);
    if (!tg || !tl) goto done;
    CHECK_EQ_INT(dp_tokenizer_n_vocab(tl), 512);
    CHECK_EQ_INT(dp_tokenizer_bos(tl), 1);
    CHECK_EQ_INT(dp_tokenizer_eos(tl), 2);
    CHECK(!strcmp(dp_tokenizer_model(tl), "llama"));
    CHECK(dp_tokenizer_piece(tl, 512) == NULL && dp_tokenizer_piece(tl, -1) == NULL);
    int same_pieces = 1;
    for (int i = 0; i < 512; i++) same_pieces &= !strcmp(dp_tokenizer_piece(tg, i), dp_tokenizer_piece(tl, i));
    CHECK(same_pieces);

    const struct dp_tokenizer *both[2] = {tg, tl};
    for (int k = 0; k < 2; k++) {
        int n;
        int *ids = tokenize(both[k], text, strlen(text), DP_TOKENIZE_BOS, &n);
        CHECK(ids && n == 16 && !memcmp(ids, want, sizeof want));
        free(ids);
        /* generation prints the text without the space SentencePiece added */
        char out[256];
        size_t len = 0;
        for (int i = 0; i < 16; i++)
            len += dp_detokenize_token(both[k], want[i], i ? want[i - 1] : -1, out + len, sizeof out - len);
        CHECK(len == strlen(text) && !memcmp(out, text, len));
        char dec[256];
        CHECK_EQ_INT(dp_detokenize(both[k], want, 16, dec, sizeof dec), strlen(text));
        CHECK(!strcmp(dec, text));
        /* truncation: the needed length is returned, at most cap bytes written */
        char tiny[8] = "xxxxxxx";
        CHECK_EQ_INT(dp_detokenize(both[k], want, 16, tiny, 4), strlen(text));
        CHECK(!memcmp(tiny, "Once", 4) && tiny[4] == 'x');
        CHECK_EQ_INT(dp_detokenize_token(both[k], 1, -1, tiny, 8), 0); /* BOS prints nothing */
    }

    /* every line of the TinyStories sample: both give the same ids */
    size_t n_txt;
    char *txt = read_all(test_shared("data/tinystories/valid-first1000.txt"), &n_txt);
    CHECK(txt != NULL);
    int lines = 0, agree = 0;
    for (char *p = txt; txt && *p;) {
        char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int na, nb;
        int *a = tokenize(tg, p, len, DP_TOKENIZE_BOS, &na), *b = tokenize(tl, p, len, DP_TOKENIZE_BOS, &nb);
        agree += a && b && na == nb && !memcmp(a, b, (size_t)na * sizeof *a);
        lines++;
        /* SentencePiece with byte fallback is lossless */
        size_t dl;
        char *d = a ? detokenize(tg, a, na, &dl) : NULL;
        if (!(d && dl == len && !memcmp(d, p, len))) {
            CHECK_MSG(0, "tinystories line %d does not decode back", lines);
            break;
        }
        free(a);
        free(b);
        free(d);
        p = e ? e + 1 : p + len;
    }
    CHECK_MSG(lines > 1000 && agree == lines, "%d/%d lines agree", agree, lines);
    free(txt);
done:
    dp_tokenizer_free(tg);
    dp_tokenizer_free(tl);
    dp_gguf_close(g);
}

/* Special tokens: parsed only with DP_TOKENIZE_SPECIAL; a space follows them in SentencePiece. */
static void test_special(void) {
    struct dp_gguf *g = NULL;
    struct dp_tokenizer *t = open_vocab(test_shared("tokenizers/ggml-vocab-llama-spm.gguf"), &g);
    CHECK(t != NULL);
    if (t) {
        int n, *ids = tokenize(t, "<s>Hi</s>", 9, DP_TOKENIZE_SPECIAL | DP_TOKENIZE_BOS, &n);
        /* BOS, <s>, " Hi", </s> */
        CHECK(ids && n == 4 && ids[0] == 1 && ids[1] == 1 && ids[3] == 2);
        int n2, *plain = tokenize(t, "<s>Hi</s>", 9, 0, &n2);
        CHECK(plain && n2 > 4);
        for (int i = 0; plain && i < n2; i++) CHECK(plain[i] > 2);
        free(ids);
        free(plain);
        CHECK_EQ_INT(dp_tokenize(t, "", 0, DP_TOKENIZE_BOS, NULL, 0, &n), DP_OK);
        CHECK_EQ_INT(n, 1);
        CHECK_EQ_INT(dp_tokenize(t, "", 0, 0, NULL, 0, &n), DP_OK);
        CHECK_EQ_INT(n, 0);
        CHECK_EQ_INT(dp_tokenize(t, NULL, 3, 0, NULL, 0, &n), DP_ERR_ARG);
    }
    dp_tokenizer_free(t);
    dp_gguf_close(g);

    t = open_vocab(test_shared("tokenizers/ggml-vocab-gpt-2.gguf"), &g);
    CHECK(t != NULL);
    if (t) {
        const char *s = "a<|endoftext|>b";
        int n, *ids = tokenize(t, s, strlen(s), DP_TOKENIZE_SPECIAL | DP_TOKENIZE_BOS, &n);
        CHECK(ids && n == 3 && ids[1] == 50256); /* gpt-2 adds no BOS */
        size_t dl;
        char *d = ids ? detokenize(t, ids, n, &dl) : NULL;
        CHECK(d && dl == strlen(s) && !memcmp(d, s, dl));
        free(ids);
        free(d);
        /* invalid UTF-8: each bad byte is U+FFFD, nothing crashes */
        int na, nb, *a = tokenize(t, "x\xff", 2, 0, &na), *b = tokenize(t, "x\xef\xbf\xbd", 4, 0, &nb);
        CHECK(a && b && na == nb && !memcmp(a, b, (size_t)na * sizeof *a));
        free(a);
        free(b);
    }
    dp_tokenizer_free(t);
    dp_gguf_close(g);
}

/*
 * Phi-3 (general.name "Phi3"): special tokens swallow the white space after
 * them (llama.cpp's rstrip); MPT's runs of spaces are user-defined tokens,
 * cut out even without DP_TOKENIZE_SPECIAL.
 */
static void test_strip(void) {
    struct dp_gguf *g = NULL;
    struct dp_tokenizer *t = open_vocab(test_shared("tokenizers/ggml-vocab-phi-3.gguf"), &g);
    CHECK(t != NULL);
    if (t) {
        const char *s = "<|user|>\nHello<|end|>\n";
        int n, *ids = tokenize(t, s, strlen(s), DP_TOKENIZE_SPECIAL, &n);
        CHECK(ids && n == 3 && ids[0] == 32010 && ids[1] == 15043 && ids[2] == 32007);
        free(ids);
    }
    dp_tokenizer_free(t);
    dp_gguf_close(g);
    t = open_vocab(test_shared("tokenizers/ggml-vocab-mpt.gguf"), &g);
    CHECK(t != NULL);
    if (t) {
        int n, *ids = tokenize(t, "a       b", 9, 0, &n);
        CHECK(ids && n == 3 && ids[1] == 50271 && !strcmp(dp_tokenizer_piece(t, 50271), "       "));
        free(ids);
    }
    dp_tokenizer_free(t);
    dp_gguf_close(g);
}

/* A random code point from a mix of scripts (no surrogates, no control characters but white space). */
static uint32_t random_cp(uint64_t *x) {
    static const uint32_t base[] = {0x20, 0x20, 0x20, 0xA0, 0x400, 0x4E00, 0xAC00, 0x1F300, 0x2000, 0x0};
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    uint32_t b = base[*x % 10];
    if (!b) return "\t\n\r  "[(*x >> 8) % 5]; /* falcon's vocabulary lacks some control bytes */
    return b == 0x20 ? 0x20 + (uint32_t)(*x >> 8) % 95 : b + (uint32_t)(*x >> 8) % 200;
}

/*
 * Random bytes through every vocabulary: nothing crashes and every id is in
 * range; random valid UTF-8 decodes back to itself (invalid UTF-8 cannot: BPE
 * reads bad bytes as U+FFFD and SentencePiece may cut its U+2581 apart).
 */
static void test_garbage(void) {
    uint64_t x = 88172645463325252ull;
    char buf[4096];
    for (size_t v = 0; v < sizeof vocabs / sizeof vocabs[0]; v++) {
        char path[256];
        snprintf(path, sizeof path, "tokenizers/ggml-vocab-%s.gguf", vocabs[v]);
        struct dp_gguf *g = NULL;
        struct dp_tokenizer *t = open_vocab(test_shared(path), &g);
        if (!t) {
            CHECK(t != NULL);
            dp_gguf_close(g);
            continue;
        }
        int ok = 1, lossless = 1;
        for (int round = 0; round < 40; round++) {
            size_t len = 0, want = 1 + (size_t)(round * 97) % 1000;
            while (len < want) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                if (round % 2) {
                    buf[len++] = (char)x;
                } else {
                    uint32_t cp = random_cp(&x);
                    len += dp_unicode_encode(cp, buf + len);
                }
            }
            int n, *ids = tokenize(t, buf, len, round % 4 == 0 ? DP_TOKENIZE_SPECIAL : 0, &n);
            ok &= ids != NULL;
            for (int i = 0; ids && i < n; i++) ok &= ids[i] >= 0 && ids[i] < dp_tokenizer_n_vocab(t);
            if (round % 2 == 0 && ids) {
                size_t dl;
                char *d = detokenize(t, ids, n, &dl);
                bool same = dl == len && !memcmp(d, buf, len);
                if (!same && lossless) fprintf(stderr, "%s: round %d: %zu bytes decode to %zu\n", vocabs[v], round, len, dl);
                lossless &= same;
                free(d);
            }
            free(ids);
        }
        CHECK_MSG(ok, "%s: random bytes", vocabs[v]);
        CHECK_MSG(lossless, "%s: random text does not decode back", vocabs[v]);
        dp_tokenizer_free(t);
        dp_gguf_close(g);
    }
}

static char tmp_dir[] = "/tmp/dp_test_tok_XXXXXX";

/* Write a tiny vocabulary GGUF and try to load it; returns the status. */
static dp_status load_tiny(const char *model, const char *pre, bool with_tokens) {
    static const char *const toks[] = {"a", "b", "ab", "<|endoftext|>"};
    static const char *const merges[] = {"a b"};
    struct dp_gguf_writer *w = dp_gguf_writer_new();
    dp_gguf_set_str(w, "general.architecture", "llama");
    dp_gguf_set_str(w, "tokenizer.ggml.model", model);
    if (pre) dp_gguf_set_str(w, "tokenizer.ggml.pre", pre);
    if (with_tokens) dp_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 4);
    dp_gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, 1);
    char path[300];
    snprintf(path, sizeof path, "%s/tiny.gguf", tmp_dir);
    dp_status st = dp_gguf_writer_write(w, path);
    dp_gguf_writer_free(w);
    if (st) return st;
    struct dp_gguf *g = NULL;
    struct dp_tokenizer *t = NULL;
    st = dp_gguf_open(path, &g);
    if (!st) st = dp_tokenizer_from_gguf(g, &t);
    if (!st) { /* it loads: "ab" is one token, BOS 11 is out of range and dropped */
        int ids[4], n;
        CHECK_EQ_INT(dp_tokenize(t, "ab", 2, DP_TOKENIZE_BOS, ids, 4, &n), DP_OK);
        CHECK(n == 1 && ids[0] == 2);
        CHECK_EQ_INT(dp_tokenizer_bos(t), -1);
    }
    dp_tokenizer_free(t);
    dp_gguf_close(g);
    unlink(path);
    return st;
}

static void test_errors(void) {
    CHECK(mkdtemp(tmp_dir) != NULL);
    CHECK_EQ_INT(load_tiny("gpt2", "gpt-2", true), DP_OK);
    CHECK_EQ_INT(load_tiny("gpt2", NULL, true), DP_OK);
    CHECK_EQ_INT(load_tiny("gpt2", "made-up-pre", true), DP_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(dp_last_error(), "made-up-pre") && !strchr(dp_last_error(), '\n'), "%s", dp_last_error());
    CHECK_EQ_INT(load_tiny("bert", NULL, true), DP_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(dp_last_error(), "'bert'") != NULL, "%s", dp_last_error());
    CHECK(load_tiny("gpt2", "gpt-2", false) != DP_OK);
    CHECK_MSG(strstr(dp_last_error(), "tokenizer.ggml.tokens") != NULL, "%s", dp_last_error());

    /* llama2.c files: missing, truncated */
    struct dp_tokenizer *t = NULL;
    char path[300];
    snprintf(path, sizeof path, "%s/missing.bin", tmp_dir);
    CHECK_EQ_INT(dp_tokenizer_from_llama2c(path, 512, &t), DP_ERR_IO);
    size_t len;
    char *data = read_all(test_shared("models/stories260K/tok512.bin"), &len);
    snprintf(path, sizeof path, "%s/cut.bin", tmp_dir);
    FILE *f = fopen(path, "wb");
    if (f && data) {
        fwrite(data, 1, len / 2, f);
        fclose(f);
    }
    CHECK_EQ_INT(dp_tokenizer_from_llama2c(path, 512, &t), DP_ERR_FORMAT);
    CHECK_MSG(strstr(dp_last_error(), "cut.bin") != NULL, "%s", dp_last_error());
    CHECK(t == NULL);
    unlink(path);
    free(data);
    rmdir(tmp_dir);
}

int main(void) {
    test_vector_files();
    for (size_t v = 0; v < sizeof vocabs / sizeof vocabs[0]; v++) test_vectors(vocabs[v]);
    test_stories();
    test_special();
    test_strip();
    test_garbage();
    test_errors();
    return TEST_END();
}
