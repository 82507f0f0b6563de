/*
 * json_write: a minimal streaming JSON writer, the twin of the reader in
 * json.h (which includes this header). Output goes straight to a FILE;
 * nesting (at most 63 levels, an always-on assert) and commas are tracked
 * for you. Numbers are printed with %.10g, non-finite ones as null.
 */
#ifndef DP_JSON_WRITE_H
#define DP_JSON_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * A minimal streaming JSON writer: nesting and commas are tracked for you.
 *   dp_json_begin_obj(j, NULL); dp_json_num(j, "ppl", 4.06); dp_json_end(j);
 * Keys are NULL inside arrays.
 */
struct dp_json {
    FILE *f;
    int depth;
    bool first[64];
    char closers[64];
};
void dp_json_init(struct dp_json *j, FILE *f);
void dp_json_begin_obj(struct dp_json *j, const char *key);
void dp_json_begin_arr(struct dp_json *j, const char *key);
void dp_json_end(struct dp_json *j);
void dp_json_num(struct dp_json *j, const char *key, double v);
void dp_json_int(struct dp_json *j, const char *key, int64_t v);
void dp_json_bool(struct dp_json *j, const char *key, bool v);
void dp_json_null(struct dp_json *j, const char *key);
void dp_json_str(struct dp_json *j, const char *key, const char *s);
void dp_json_strn(struct dp_json *j, const char *key, const char *s, size_t n);
/* Write a JSON string literal (quoted, escaped) of n bytes to f. */
void dp_json_write_string(FILE *f, const char *s, size_t n);

#endif
