/*
 * data: corpus reading and paper chunking (see data.h). JSONL lines are
 * parsed by src/json.c.
 */
#include "data.h"

#include "json.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* ---- corpus ---- */

static bool add_doc(struct dp_corpus *c, const char *s, size_t n, int *cap) {
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (!n) return true;
    if (c->n_docs == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        char **d = realloc(c->docs, (size_t)*cap * sizeof *d);
        size_t *l = realloc(c->lens, (size_t)*cap * sizeof *l);
        if (d) c->docs = d;
        if (l) c->lens = l;
        if (!d || !l) return false;
    }
    char *doc = malloc(n + 1);
    if (!doc) return false;
    memcpy(doc, s, n);
    doc[n] = 0;
    c->docs[c->n_docs] = doc;
    c->lens[c->n_docs++] = n;
    return true;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

dp_status dp_corpus_read(const char *path, struct dp_corpus **out) {
    *out = NULL;
    char *text;
    size_t len;
    dp_status st = dp_read_file(path, &text, &len);
    if (st) return st;
    struct dp_corpus *c = dp_calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path))) {
        free(text);
        free(c);
        return dp_fail(DP_ERR_NOMEM, "%s: out of memory", path);
    }
    int cap = 0;
    bool ok = true, jsonl = ends_with(path, ".jsonl");
    size_t doc_start = 0;
    int line_no = 0;
    for (size_t pos = 0; pos <= len && ok && !st;) {
        const char *nl = pos < len ? memchr(text + pos, '\n', len - pos) : NULL;
        size_t end = nl ? (size_t)(nl - text) : len;
        line_no++;
        if (jsonl) {
            size_t n = end - pos;
            const char *line = text + pos;
            bool blank = true;
            for (size_t i = 0; i < n; i++) blank = blank && isspace((unsigned char)line[i]);
            if (!blank) {
                char where[1100];
                snprintf(where, sizeof where, "%s:%d", path, line_no);
                struct dp_jv *obj;
                st = dp_json_parse(line, n, where, &obj);
                const struct dp_jv *tx = st ? NULL : dp_json_get(obj, "text");
                if (!st && (!tx || tx->type != DP_JSTR))
                    st = dp_fail(DP_ERR_FORMAT, "%s: no string field \"text\"", where);
                if (!st) ok = add_doc(c, tx->str, tx->len, &cap);
                dp_json_free(obj);
            }
        } else {
            size_t n = end - pos;
            if (n && text[pos + n - 1] == '\r') n--;
            if (n == 13 && !memcmp(text + pos, "<|endoftext|>", 13)) {
                ok = add_doc(c, text + doc_start, pos - doc_start, &cap);
                doc_start = nl ? end + 1 : len;
            }
        }
        if (!nl) break;
        pos = end + 1;
    }
    if (!jsonl && ok && !st) ok = add_doc(c, text + doc_start, len - doc_start, &cap);
    free(text);
    if (!ok && !st) st = dp_fail(DP_ERR_NOMEM, "%s: out of memory", path);
    if (!st && c->n_docs == 0) st = dp_fail(DP_ERR_FORMAT, "%s: the corpus holds no non-empty document", path);
    if (st) {
        dp_corpus_free(c);
        return st;
    }
    *out = c;
    return DP_OK;
}

void dp_corpus_free(struct dp_corpus *c) {
    if (!c) return;
    for (int i = 0; i < c->n_docs; i++) free(c->docs[i]);
    free(c->docs);
    free(c->lens);
    free(c->path);
    free(c);
}

dp_status dp_parse_range(const char *s, int *lo, int *hi) {
    const char *colon = strchr(s, ':');
    char *end;
    if (!colon) return dp_fail(DP_ERR_ARG, "range '%s': expected A:B", s);
    *lo = 0;
    *hi = -1;
    if (colon != s) {
        long v = strtol(s, &end, 10);
        if (end != colon || v < 0 || v > 1 << 30) return dp_fail(DP_ERR_ARG, "range '%s': bad start", s);
        *lo = (int)v;
    }
    if (colon[1]) {
        long v = strtol(colon + 1, &end, 10);
        if (*end || v < 0 || v > 1 << 30) return dp_fail(DP_ERR_ARG, "range '%s': bad end", s);
        *hi = (int)v;
        if (*hi < *lo) return dp_fail(DP_ERR_ARG, "range '%s' is empty", s);
    }
    return DP_OK;
}

dp_status dp_chunks_paper(const struct dp_tokenizer *t, const struct dp_corpus *c, int doc_lo, int doc_hi, int ctx,
                          int max_seqs, struct dp_chunks **out) {
    *out = NULL;
    if (ctx < 2) return dp_fail(DP_ERR_ARG, "context %d is too small", ctx);
    if (doc_hi < 0 || doc_hi > c->n_docs) doc_hi = c->n_docs;
    if (doc_lo >= doc_hi)
        return dp_fail(DP_ERR_ARG, "%s: documents %d:%d select nothing (the corpus has %d)", c->path, doc_lo, doc_hi,
                       c->n_docs);
    size_t cap = 1 << 16, n = 0;
    int *ids = dp_malloc(cap * sizeof *ids);
    if (!ids) return DP_ERR_NOMEM;
    int docs = 0;
    for (int d = doc_lo; d < doc_hi; d++) {
        if (max_seqs > 0 && n >= (size_t)max_seqs * ctx) break;
        int k;
        dp_status st;
        for (;;) {
            st = dp_tokenize(t, c->docs[d], c->lens[d], DP_TOKENIZE_BOS, ids + n, (int)(cap - n < INT32_MAX ? cap - n : INT32_MAX), &k);
            if (st || n + (size_t)k <= cap) break;
            cap = 2 * (n + (size_t)k);
            int *p = realloc(ids, cap * sizeof *p);
            if (!p) {
                free(ids);
                return dp_fail(DP_ERR_NOMEM, "%s: out of memory tokenizing", c->path);
            }
            ids = p;
        }
        if (st) {
            free(ids);
            return st;
        }
        n += (size_t)k;
        docs++;
    }
    size_t n_seqs = n / (size_t)ctx;
    if (max_seqs > 0 && n_seqs > (size_t)max_seqs) n_seqs = (size_t)max_seqs;
    if (n_seqs == 0) {
        free(ids);
        return dp_fail(DP_ERR_ARG, "%s: documents %d:%d give %zu tokens, fewer than one chunk of %d", c->path, doc_lo,
                       doc_hi, n, ctx);
    }
    struct dp_chunks *ch = dp_calloc(1, sizeof *ch);
    if (!ch) {
        free(ids);
        return DP_ERR_NOMEM;
    }
    ch->n_seqs = (int)n_seqs;
    ch->ctx = ctx;
    ch->ids = ids;
    ch->n_docs = docs;
    ch->n_tokens = (int64_t)n;
    *out = ch;
    return DP_OK;
}

void dp_chunks_free(struct dp_chunks *ch) {
    if (!ch) return;
    free(ch->ids);
    free(ch);
}
