/*
 * json_write: the streaming JSON writer (see json_write.h), beside the
 * reader (json.c). It writes straight to a FILE: a stack of open containers
 * says which closer comes next and whether a comma is due; strings are
 * escaped as JSON requires (control bytes as \u00XX, other bytes as they
 * are, so UTF-8 passes through); non-finite numbers are written as null and
 * finite ones with 10 significant digits (readers of sweeps rely on that;
 * DP_JSON_DIGITS=17 writes every double exactly, for tests that compare
 * runs bit for bit, such as tests/mpi.sh).
 */
#include "json_write.h"

#include "base.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

void dp_json_init(struct dp_json *j, FILE *f) {
    memset(j, 0, sizeof *j);
    j->f = f;
    j->first[0] = true;
}

void dp_json_write_string(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20 || c == 0x7f) fprintf(f, "\\u%04x", c);
            else fputc(c, f);
        }
    }
    fputc('"', f);
}

static void json_key(struct dp_json *j, const char *key) {
    if (!j->first[j->depth]) fputc(',', j->f);
    j->first[j->depth] = false;
    if (key) {
        dp_json_write_string(j->f, key, strlen(key));
        fputc(':', j->f);
    }
}

void dp_json_begin_obj(struct dp_json *j, const char *key) {
    json_key(j, key);
    fputc('{', j->f);
    DP_ASSERT(j->depth + 1 < 64);
    j->closers[j->depth] = '}';
    j->first[++j->depth] = true;
}

void dp_json_begin_arr(struct dp_json *j, const char *key) {
    json_key(j, key);
    fputc('[', j->f);
    DP_ASSERT(j->depth + 1 < 64);
    j->closers[j->depth] = ']';
    j->first[++j->depth] = true;
}

void dp_json_end(struct dp_json *j) {
    DP_ASSERT(j->depth > 0);
    j->depth--;
    fputc(j->closers[j->depth], j->f);
    if (j->depth == 0) fputc('\n', j->f);
}

/* 10, or DP_JSON_DIGITS (1..17) when set */
static int num_digits(void) {
    static atomic_int digits; /* 0: not read yet; every thread computes the same value */
    int d = atomic_load_explicit(&digits, memory_order_relaxed);
    if (!d) {
        const char *e = getenv("DP_JSON_DIGITS");
        d = e ? atoi(e) : 10;
        if (d < 1 || d > 17) d = 10;
        atomic_store_explicit(&digits, d, memory_order_relaxed);
    }
    return d;
}

void dp_json_num(struct dp_json *j, const char *key, double v) {
    json_key(j, key);
    if (isfinite(v)) fprintf(j->f, "%.*g", num_digits(), v);
    else fputs("null", j->f);
}

void dp_json_int(struct dp_json *j, const char *key, int64_t v) {
    json_key(j, key);
    fprintf(j->f, "%lld", (long long)v);
}

void dp_json_bool(struct dp_json *j, const char *key, bool v) {
    json_key(j, key);
    fputs(v ? "true" : "false", j->f);
}

void dp_json_null(struct dp_json *j, const char *key) {
    json_key(j, key);
    fputs("null", j->f);
}

void dp_json_str(struct dp_json *j, const char *key, const char *s) {
    json_key(j, key);
    dp_json_write_string(j->f, s, strlen(s));
}

void dp_json_strn(struct dp_json *j, const char *key, const char *s, size_t n) {
    json_key(j, key);
    dp_json_write_string(j->f, s, n);
}
