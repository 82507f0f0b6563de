/*
 * test_data: the paper chunking with a chunk limit tokenizes only what the
 * limit needs, and gives the ids of the whole text all the same.
 *
 * The reference is the tokenization of each whole document (dp_tokenize on
 * it, BOS first), concatenated: the chunks of dp_chunks_paper with
 * max_seqs must be its first max_seqs*ctx ids, for wikitext-2's test file
 * (one 1.3 MB document of real text, cut at many places by the limits
 * tried), for a corpus of a short and a long document, and for a 4 MB
 * single-line document; and for the single line, the ids tokenized
 * (n_tokens) stay within the limit instead of the millions of the whole line.
 */
#include "harness.h"

#include "data.h"
#include "model.h"

#include <unistd.h>

static struct dp_model *model;
static char tmp[256];

/* The whole-document ids of every document of c, concatenated; *n of them. */
static int *reference(const struct dp_corpus *c, size_t *n) {
    size_t cap = 1 << 20;
    int *ids = malloc(cap * sizeof *ids);
    *n = 0;
    for (int d = 0; ids && d < c->n_docs; d++) {
        int k;
        if (dp_tokenize(dp_model_tokenizer(model), c->docs[d], c->lens[d], DP_TOKENIZE_BOS, ids + *n, (int)(cap - *n),
                        &k))
            return NULL;
        if (*n + (size_t)k > cap) {
            cap = 2 * (*n + (size_t)k);
            ids = realloc(ids, cap * sizeof *ids);
            d--;
            continue;
        }
        *n += (size_t)k;
    }
    return ids;
}

/* The chunks of every (max_seqs, ctx) tried against the reference. */
static void check_corpus(const char *path, const int *ctxs, int n_ctx, const int *limits, int n_limits) {
    struct dp_corpus *c;
    if (dp_corpus_read(path, &c)) {
        CHECK_MSG(0, "%s", dp_last_error());
        return;
    }
    size_t n_ref;
    int *ref = reference(c, &n_ref);
    CHECK(ref != NULL);
    for (int i = 0; ref && i < n_ctx; i++)
        for (int j = 0; j < n_limits; j++) {
            struct dp_chunks *ch;
            if (dp_chunks_paper(dp_model_tokenizer(model), c, 0, -1, ctxs[i], limits[j], &ch)) {
                CHECK_MSG(0, "%s", dp_last_error());
                continue;
            }
            size_t want = (size_t)limits[j] * ctxs[i];
            CHECK_EQ_INT(ch->n_seqs, limits[j]);
            size_t bad = want;
            for (size_t k = 0; k < want && bad == want; k++)
                if (ch->ids[k] != ref[k]) bad = k;
            CHECK_MSG(bad == want, "%s ctx %d max_seqs %d: id %zu is %d, %d when tokenized whole", path, ctxs[i],
                      limits[j], bad, ch->ids[bad], ref[bad]);
            dp_chunks_free(ch);
        }
    free(ref);
    dp_corpus_free(c);
}

static void write_file(const char *path, const char *head, const char *body, size_t body_len, int reps) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fputs(head, f);
    for (int r = 0; r < reps; r++) fwrite(body, 1, body_len, f);
    fclose(f);
}

int main(void) {
    const char *shared = getenv("DP_SHARED") ? getenv("DP_SHARED") : "../shared";
    char path[1024], wiki[1024];
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.gguf", shared);
    snprintf(wiki, sizeof wiki, "%s/data/wikitext-2/wiki.test.raw", shared);
    if (dp_model_open(path, NULL, &model)) {
        fprintf(stderr, "%s\n", dp_last_error());
        return 1;
    }
    snprintf(tmp, sizeof tmp, "/tmp/test_data.XXXXXX");
    if (!mkdtemp(tmp)) return 1;

    const int ctxs[] = {128, 2048}, limits[] = {1, 2, 3, 5, 8, 13};
    check_corpus(wiki, ctxs, 2, limits, 6);

    /* a short document, then a long one: the limit falls inside the second */
    char *text;
    size_t len;
    if (dp_read_file(wiki, &text, &len)) return 1;
    char two[512];
    snprintf(two, sizeof two, "%s/two.txt", tmp);
    write_file(two, "A short first document.\n<|endoftext|>\n", text, len, 1);
    const int ctx64[] = {64};
    check_corpus(two, ctx64, 1, limits, 6);

    /* one 4 MB line: replace the line breaks of wikitext by spaces */
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n') text[i] = ' ';
    char line[512];
    snprintf(line, sizeof line, "%s/line.txt", tmp);
    write_file(line, "", text, len, 3);
    const int four[] = {4};
    check_corpus(line, ctxs, 1, four, 1);
    struct dp_corpus *c;
    struct dp_chunks *ch;
    if (!dp_corpus_read(line, &c)) {
        CHECK(dp_chunks_paper(dp_model_tokenizer(model), c, 0, -1, 128, 4, &ch) == DP_OK);
        CHECK_MSG(ch && ch->n_tokens == 4 * 128, "%lld ids tokenized for 4 chunks of 128", ch ? (long long)ch->n_tokens : -1LL);
        dp_chunks_free(ch);
        dp_corpus_free(c);
    }
    free(text);
    unlink(two);
    unlink(line);
    rmdir(tmp);
    dp_model_close(model);
    return TEST_END();
}
