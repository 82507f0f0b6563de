/*
 * json: recursive-descent parser building a tree (see json.h). Every node and
 * string is allocated from one arena attached to the root, so freeing is one
 * call and a failed parse leaks nothing.
 */
#include "json.h"

#include <stdlib.h>
#include <string.h>

struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    max_align_t data[];
};

struct parser {
    const char *p, *end, *start, *name;
    struct arena_block *blocks;
    int depth;
    bool oom;
};

static void *alloc(struct parser *ps, size_t n) {
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    struct arena_block *b = ps->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        b = malloc(sizeof *b + cap);
        if (!b) {
            ps->oom = true;
            return NULL;
        }
        b->next = ps->blocks;
        b->used = 0;
        b->cap = cap;
        ps->blocks = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

static dp_status bad(struct parser *ps, const char *what) {
    if (ps->oom) return dp_fail(DP_ERR_NOMEM, "%s: out of memory parsing JSON", ps->name);
    return dp_fail(DP_ERR_FORMAT, "%s: invalid JSON at byte %ld: %s", ps->name, (long)(ps->p - ps->start), what);
}

static void skip_ws(struct parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static int hexval(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t utf8(char *o, unsigned cp) {
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

static dp_status parse_string(struct parser *ps, char **out, size_t *out_len) {
    ps->p++; /* opening quote */
    const char *s = ps->p;
    while (ps->p < ps->end && *ps->p != '"') ps->p += *ps->p == '\\' && ps->p + 1 < ps->end ? 2 : 1;
    if (ps->p >= ps->end) return bad(ps, "unterminated string");
    char *o = alloc(ps, (size_t)(ps->p - s) + 1);
    if (!o) return bad(ps, "");
    size_t n = 0;
    for (const char *q = s; q < ps->p;) {
        unsigned char c = (unsigned char)*q++;
        if (c < 0x20) return bad(ps, "control character in string");
        if (c != '\\') {
            o[n++] = (char)c;
            continue;
        }
        char e = *q++;
        switch (e) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            if (ps->p - q < 4) return bad(ps, "short \\u escape");
            int cp = hexval(q);
            if (cp < 0) return bad(ps, "bad \\u escape");
            q += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && ps->p - q >= 6 && q[0] == '\\' && q[1] == 'u') {
                int lo = hexval(q + 2);
                if (lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    q += 6;
                }
            }
            if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;
            n += utf8(o + n, (unsigned)cp);
            break;
        }
        default: return bad(ps, "bad escape");
        }
    }
    o[n] = 0;
    ps->p++; /* closing quote */
    *out = o;
    *out_len = n;
    return DP_OK;
}

static dp_status parse_value(struct parser *ps, struct dp_jv *v);

static dp_status parse_container(struct parser *ps, struct dp_jv *v, bool obj) {
    if (++ps->depth > 128) return bad(ps, "nested too deeply");
    ps->p++;
    v->type = obj ? DP_JOBJ : DP_JARR;
    int cap = 0;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == (obj ? '}' : ']')) {
        ps->p++;
        ps->depth--;
        return DP_OK;
    }
    for (;;) {
        skip_ws(ps);
        char *key = NULL;
        size_t klen;
        if (obj) {
            if (ps->p >= ps->end || *ps->p != '"') return bad(ps, "expected a key");
            dp_status st = parse_string(ps, &key, &klen);
            if (st) return st;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') return bad(ps, "expected ':'");
            ps->p++;
        }
        if (v->n == cap) {
            int nc = cap ? 2 * cap : 8;
            struct dp_jv *items = alloc(ps, (size_t)nc * sizeof *items);
            char **keys = obj ? alloc(ps, (size_t)nc * sizeof *keys) : NULL;
            if (!items || (obj && !keys)) return bad(ps, "");
            if (v->n) {
                memcpy(items, v->items, (size_t)v->n * sizeof *items);
                if (obj) memcpy(keys, v->keys, (size_t)v->n * sizeof *keys);
            }
            v->items = items;
            v->keys = keys;
            cap = nc;
        }
        if (obj) v->keys[v->n] = key;
        dp_status st = parse_value(ps, &v->items[v->n]);
        if (st) return st;
        v->n++;
        skip_ws(ps);
        if (ps->p >= ps->end) return bad(ps, "unexpected end");
        char c = *ps->p++;
        if (c == ',') continue;
        if (c == (obj ? '}' : ']')) break;
        return bad(ps, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    ps->depth--;
    return DP_OK;
}

static dp_status parse_value(struct parser *ps, struct dp_jv *v) {
    memset(v, 0, sizeof *v);
    skip_ws(ps);
    if (ps->p >= ps->end) return bad(ps, "unexpected end");
    char c = *ps->p;
    if (c == '{' || c == '[') return parse_container(ps, v, c == '{');
    if (c == '"') {
        v->type = DP_JSTR;
        return parse_string(ps, &v->str, &v->len);
    }
    static const char *words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t l = strlen(words[i]);
        if ((size_t)(ps->end - ps->p) >= l && !memcmp(ps->p, words[i], l)) {
            ps->p += l;
            v->type = i == 2 ? DP_JNULL : DP_JBOOL;
            v->b = i == 0;
            return DP_OK;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        char buf[64];
        size_t n = 0;
        while (ps->p + n < ps->end && n < sizeof buf - 1 && strchr("0123456789+-.eE", ps->p[n])) n++;
        memcpy(buf, ps->p, n);
        buf[n] = 0;
        char *e;
        v->num = strtod(buf, &e);
        if (e != buf + n || n == 0) return bad(ps, "bad number");
        v->type = DP_JNUM;
        ps->p += n;
        return DP_OK;
    }
    return bad(ps, "unexpected character");
}

/* The root node is the first allocation of the arena's last block. */
struct root {
    struct dp_jv v;
    struct arena_block *blocks;
};

dp_status dp_json_parse(const char *text, size_t len, const char *name, struct dp_jv **out) {
    *out = NULL;
    struct parser ps = {text, text + len, text, name, NULL, 0, false};
    struct root *r = malloc(sizeof *r);
    if (!r) return dp_fail(DP_ERR_NOMEM, "%s: out of memory", name);
    dp_status st = parse_value(&ps, &r->v);
    if (!st) {
        skip_ws(&ps);
        if (ps.p != ps.end) st = bad(&ps, "trailing characters");
    }
    r->blocks = ps.blocks;
    if (st) {
        dp_json_free(&r->v);
        return st;
    }
    *out = &r->v;
    return DP_OK;
}

dp_status dp_json_parse_file(const char *path, struct dp_jv **out) {
    *out = NULL;
    char *text;
    size_t len;
    dp_status st = dp_read_file(path, &text, &len);
    if (st) return st;
    st = dp_json_parse(text, len, path, out);
    free(text);
    return st;
}

void dp_json_free(struct dp_jv *v) {
    if (!v) return;
    struct root *r = (struct root *)v; /* v is the first member */
    for (struct arena_block *b = r->blocks, *nx; b; b = nx) {
        nx = b->next;
        free(b);
    }
    free(r);
}

const struct dp_jv *dp_json_get(const struct dp_jv *v, const char *key) {
    if (!v || v->type != DP_JOBJ) return NULL;
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->keys[i], key)) return &v->items[i];
    return NULL;
}

const char *dp_json_get_str(const struct dp_jv *v, const char *key, const char *def) {
    const struct dp_jv *m = dp_json_get(v, key);
    return m && m->type == DP_JSTR ? m->str : def;
}

double dp_json_get_num(const struct dp_jv *v, const char *key, double def) {
    const struct dp_jv *m = dp_json_get(v, key);
    return m && m->type == DP_JNUM ? m->num : def;
}
