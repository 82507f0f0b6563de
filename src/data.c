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
            if (n > DP_MAX_LINE)
                st = dp_fail(DP_ERR_FORMAT, "%s:%d: a line longer than %zu MiB (the limit for a JSONL line)", path,
                             line_no, DP_MAX_LINE >> 20);
            else if (!blank) {
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

/* The ids of len bytes of text (BOS first) appended at (*ids)[*n], the buffer grown as needed. */
static dp_status append_tokens(const struct dp_tokenizer *t, const char *text, size_t len, int **ids, size_t *cap,
                               size_t *n, const char *path) {
    for (;;) {
        int k;
        size_t room = *cap - *n;
        dp_status st = dp_tokenize(t, text, len, DP_TOKENIZE_BOS, *ids + *n, (int)(room < INT32_MAX ? room : INT32_MAX), &k);
        if (st) return st;
        if (*n + (size_t)k <= *cap) {
            *n += (size_t)k;
            return DP_OK;
        }
        size_t c = 2 * (*n + (size_t)k);
        int *p = realloc(*ids, c * sizeof *p);
        if (!p) return dp_fail(DP_ERR_NOMEM, "%s: out of memory tokenizing", path);
        *ids = p;
        *cap = c;
    }
}

/* Prefixes shorter than this are not worth the second tokenization: the document is tokenized whole. */
#define PREFIX_MIN ((size_t)1 << 16)
/* Tokens beyond those wanted that the first prefix must give, so the comparison is not at its cut. */
#define PREFIX_MARGIN 64

/*
 * The first `need` ids of a document (all of them when need is 0) appended
 * at (*ids)[*n]. A long document of which only a head is wanted (--max-seqs)
 * is not tokenized whole: prefixes of doubling length are tokenized until two
 * successive ones agree on the wanted ids (cutting the text changes only the
 * ids next to the cut), so the work is bounded by what is needed, not by the
 * document's length, and the ids are those of the whole document.
 */
static dp_status doc_tokens(const struct dp_tokenizer *t, const char *text, size_t len, size_t need, int **ids,
                            size_t *cap, size_t *n, const char *path) {
    size_t p = need * 8 > PREFIX_MIN ? need * 8 : PREFIX_MIN;
    if (!need || len <= 2 * p) return append_tokens(t, text, len, ids, cap, n, path);
    int *prev = NULL, *cur = NULL;
    size_t k_prev = 0;
    dp_status st = DP_OK;
    for (; !st && p < len; p *= 2) {
        size_t k = 0, c = p + 16;
        cur = malloc(c * sizeof *cur);
        st = cur ? append_tokens(t, text, p, &cur, &c, &k, path) : dp_fail(DP_ERR_NOMEM, "%s: out of memory tokenizing", path);
        if (!st && prev && k_prev >= need + PREFIX_MARGIN && k >= need && !memcmp(prev, cur, need * sizeof *cur)) {
            while (!st && *n + need > *cap) {
                int *q = realloc(*ids, 2 * (*n + need) * sizeof *q);
                if (q) *ids = q, *cap = 2 * (*n + need);
                else st = dp_fail(DP_ERR_NOMEM, "%s: out of memory tokenizing", path);
            }
            if (!st) memcpy(*ids + *n, cur, need * sizeof *cur), *n += need;
            free(prev);
            free(cur);
            return st;
        }
        free(prev);
        prev = cur;
        k_prev = k;
        cur = NULL;
    }
    free(prev);
    free(cur);
    return st ? st : append_tokens(t, text, len, ids, cap, n, path);
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
        size_t want = max_seqs > 0 ? (size_t)max_seqs * ctx : 0;
        if (want && n >= want) break;
        dp_status st = doc_tokens(t, c->docs[d], c->lens[d], want ? want - n : 0, &ids, &cap, &n, c->path);
        if (st) {
            free(ids);
            return st;
        }
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
