/*
 * fuzz_tokenizer: the libFuzzer target for the tokenizer on arbitrary text.
 *
 * The vocabulary is read once from stories260K's GGUF (DP_SHARED, default
 * ../shared, models/stories260K/stories260K.gguf; DP_FUZZ_VOCAB names
 * another GGUF, e.g. a byte-level BPE one under ../shared/tokenizers). The
 * first input byte picks the flags (BOS, special tokens); the rest is the
 * text. Tokenizing must succeed, give ids of the vocabulary, and give the
 * same ids with a buffer too small (the count) and large enough; decoding
 * the ids must report a length that the decoded text then has.
 *
 *   make fuzz; build-fuzz/fuzz_tokenizer -max_total_time=60 build-fuzz/corpus-tokenizer tests/fuzz/tokenizer
 */
#include "depthprune.h"
#include "gguf.h"
#include "tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dp_tokenizer *vocab(void) {
    static struct dp_tokenizer *t;
    static struct dp_gguf *g;
    if (t) return t;
    char path[1024];
    const char *env = getenv("DP_FUZZ_VOCAB"), *root = getenv("DP_SHARED");
    if (env) snprintf(path, sizeof path, "%s", env);
    else snprintf(path, sizeof path, "%s/models/stories260K/stories260K.gguf", root ? root : "../shared");
    if (dp_gguf_open(path, &g) || dp_tokenizer_from_gguf(g, &t)) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", dp_last_error());
        abort();
    }
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const struct dp_tokenizer *t = vocab();
    if (size < 1) return 0;
    unsigned flags = data[0] & (DP_TOKENIZE_BOS | DP_TOKENIZE_SPECIAL);
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int first[4], n = 0, n2 = 0;
    if (dp_tokenize(t, text, len, flags, first, 4, &n) != DP_OK) abort();
    if (n < 0 || (size_t)n > 4 * len + 2) abort();
    int *ids = malloc(((size_t)n + 1) * sizeof *ids);
    if (!ids) abort();
    if (dp_tokenize(t, text, len, flags, ids, n + 1, &n2) != DP_OK || n2 != n) abort();
    if (memcmp(ids, first, (size_t)(n < 4 ? n : 4) * sizeof *ids)) abort();
    int nv = dp_tokenizer_n_vocab(t);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= nv) abort();
    size_t need = dp_detokenize(t, ids, n, NULL, 0);
    char *buf = malloc(need + 1);
    if (!buf) abort();
    if (dp_detokenize(t, ids, n, buf, need + 1) != need || buf[need] != 0) abort();
    free(buf);
    free(ids);
    return 0;
}
