/*
 * data: corpora and their token chunks (METHODS.md section 2).
 *
 * A corpus is a list of documents: a text file whose documents are separated
 * by lines reading exactly `<|endoftext|>` (a file without such lines is one
 * document), or a JSONL file (name ending in .jsonl) with a "text" field per
 * line. Each document is stripped of leading and trailing whitespace; empty
 * documents are skipped. The "paper" chunking tokenizes every document with
 * BOS, concatenates the ids in order and cuts them into chunks of exactly
 * ctx tokens, dropping the remainder. With a limit on the chunks, only the
 * documents (and of a long document, only the head) that the limit needs are
 * tokenized.
 */
#ifndef DP_DATA_H
#define DP_DATA_H

#include "base.h"

struct dp_corpus {
    int n_docs;
    char **docs;      /* NUL-terminated, owned */
    size_t *lens;
    char *path;
};

dp_status dp_corpus_read(const char *path, struct dp_corpus **out);
void dp_corpus_free(struct dp_corpus *c);

/*
 * The paper chunking of documents [doc_lo, doc_hi) (doc_hi < 0: to the end),
 * keeping at most max_seqs chunks (<= 0: all). Fails when not even one chunk
 * of ctx tokens results, naming the corpus.
 */
dp_status dp_chunks_paper(const struct dp_tokenizer *t, const struct dp_corpus *c, int doc_lo, int doc_hi, int ctx,
                          int max_seqs, struct dp_chunks **out);
void dp_chunks_free(struct dp_chunks *ch);

/* Parse "A:B" (either side may be empty) into [lo, hi); hi = -1 for the end. */
dp_status dp_parse_range(const char *s, int *lo, int *hi);

#endif
