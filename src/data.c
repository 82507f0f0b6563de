/*
 * data: corpus reading, paper chunking and a small JSON string extractor
 * (see data.h). The JSON reader is a strict recursive-descent scanner over
 * one object: it validates the whole value and decodes \u escapes (with
 * surrogate pairs) to UTF-8, enough for JSONL corpora and task files.
 */
#include "data.h"

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
                char *s;
                size_t sl;
                st = dp_json_get_string(line, n, "text", &s, &sl);
                if (st) st = dp_fail(DP_ERR_FORMAT, "%s:%d: not a JSON object", path, line_no);
                else if (!s) st = dp_fail(DP_ERR_FORMAT, "%s:%d: no string field \"text\"", path, line_no);
                else {
                    ok = add_doc(c, s, sl, &cap);
                    free(s);
                }
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

/* ---- JSON ---- */

struct jr {
    const char *p, *end;
    int depth;
};

static void ws(struct jr *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int hex4(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parse a string at j->p ('"'); when out is non-NULL, decode it there (room: raw length). */
static bool jstring(struct jr *j, char *out, size_t *out_len) {
    if (j->p >= j->end || *j->p != '"') return false;
    j->p++;
    size_t n = 0;
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p++;
        if (c < 0x20) return false;
        if (c != '\\') {
            if (out) out[n] = (char)c;
            n++;
            continue;
        }
        if (j->p >= j->end) return false;
        char e = *j->p++;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            if (out) out[n] = map[simple - "\"\\/bfnrt"];
            n++;
        } else if (e == 'u') {
            if (j->end - j->p < 4) return false;
            int cp = hex4(j->p);
            if (cp < 0) return false;
            j->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u') {
                int lo = hex4(j->p + 2);
                if (lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    j->p += 6;
                }
            }
            if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;
            char tmp[4];
            size_t k = put_utf8(tmp, (unsigned)cp);
            if (out) memcpy(out + n, tmp, k);
            n += k;
        } else {
            return false;
        }
    }
    if (j->p >= j->end) return false;
    j->p++;
    if (out_len) *out_len = n;
    return true;
}

static bool jvalue(struct jr *j);

static bool jcontainer(struct jr *j, char close, bool obj) {
    if (++j->depth > 64) return false;
    j->p++;
    ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return true;
    }
    for (;;) {
        ws(j);
        if (obj) {
            if (!jstring(j, NULL, NULL)) return false;
            ws(j);
            if (j->p >= j->end || *j->p++ != ':') return false;
            ws(j);
        }
        if (!jvalue(j)) return false;
        ws(j);
        if (j->p >= j->end) return false;
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p++ != close) return false;
        j->depth--;
        return true;
    }
}

static bool jvalue(struct jr *j) {
    if (j->p >= j->end) return false;
    char c = *j->p;
    if (c == '"') return jstring(j, NULL, NULL);
    if (c == '{') return jcontainer(j, '}', true);
    if (c == '[') return jcontainer(j, ']', false);
    const char *words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t l = strlen(words[i]);
        if ((size_t)(j->end - j->p) >= l && !memcmp(j->p, words[i], l)) {
            j->p += l;
            return true;
        }
    }
    const char *s = j->p;
    if (j->p < j->end && *j->p == '-') j->p++;
    while (j->p < j->end && (isdigit((unsigned char)*j->p) || strchr(".eE+-", *j->p))) j->p++;
    return j->p > s && isdigit((unsigned char)j->p[-1]);
}

dp_status dp_json_get_string(const char *json, size_t len, const char *key, char **out, size_t *out_len) {
    *out = NULL;
    struct jr j = {json, json + len, 0};
    ws(&j);
    if (j.p >= j.end || *j.p != '{') return DP_ERR_FORMAT;
    j.p++;
    j.depth = 1;
    ws(&j);
    if (j.p < j.end && *j.p == '}') return DP_OK;
    size_t klen = strlen(key);
    for (;;) {
        ws(&j);
        struct jr probe = j;
        size_t kn = 0;
        char kbuf[256];
        bool match = false;
        if (!jstring(&probe, NULL, NULL)) return DP_ERR_FORMAT;
        if ((size_t)(probe.p - j.p) < sizeof kbuf) { /* decoded keys are never longer than raw ones */
            jstring(&j, kbuf, &kn);
            match = kn == klen && !memcmp(kbuf, key, klen);
        } else {
            j = probe;
        }
        ws(&j);
        if (j.p >= j.end || *j.p++ != ':') return DP_ERR_FORMAT;
        ws(&j);
        if (match && !*out && j.p < j.end && *j.p == '"') {
            probe = j;
            if (!jstring(&probe, NULL, NULL)) return DP_ERR_FORMAT;
            char *s = dp_malloc((size_t)(probe.p - j.p) + 1);
            if (!s) return DP_ERR_NOMEM;
            size_t n;
            jstring(&j, s, &n);
            s[n] = 0;
            *out = s;
            if (out_len) *out_len = n;
        } else if (!jvalue(&j)) {
            free(*out);
            *out = NULL;
            return DP_ERR_FORMAT;
        }
        ws(&j);
        if (j.p >= j.end) break;
        if (*j.p == ',') {
            j.p++;
            continue;
        }
        if (*j.p++ == '}') {
            ws(&j);
            if (j.p == j.end) return DP_OK;
        }
        break;
    }
    free(*out);
    *out = NULL;
    return DP_ERR_FORMAT;
}
