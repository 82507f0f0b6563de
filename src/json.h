/*
 * json: a small strict JSON reader producing a value tree, for plan files,
 * score files and task data (JSONL). Strings are decoded to UTF-8 (\u
 * escapes with surrogate pairs); numbers are doubles. Nesting is limited to
 * 128 levels. The tree is one allocation arena owned by the root. The
 * writer is json_write.h.
 */
#ifndef DP_JSON_H
#define DP_JSON_H

#include "base.h"
#include "json_write.h"

enum dp_jtype { DP_JNULL, DP_JBOOL, DP_JNUM, DP_JSTR, DP_JARR, DP_JOBJ };

struct dp_jv {
    enum dp_jtype type;
    bool b;
    double num;
    char *str;              /* DP_JSTR: NUL-terminated (may contain NULs: len) */
    size_t len;
    int n;                  /* DP_JARR/DP_JOBJ: element count */
    struct dp_jv *items;    /* elements (arrays and objects) */
    char **keys;            /* DP_JOBJ: keys of items */
};

/*
 * Parse len bytes of text holding exactly one JSON value (surrounding
 * whitespace allowed). `name` (file or file:line) is used in the message.
 */
dp_status dp_json_parse(const char *text, size_t len, const char *name, struct dp_jv **out);
/* Read a whole file and parse it as one JSON value (messages name the file). */
dp_status dp_json_parse_file(const char *path, struct dp_jv **out);
void dp_json_free(struct dp_jv *v);

/* Object member by key (NULL when absent or v is not an object). */
const struct dp_jv *dp_json_get(const struct dp_jv *v, const char *key);
/* Typed member access with defaults. */
const char *dp_json_get_str(const struct dp_jv *v, const char *key, const char *def);
double dp_json_get_num(const struct dp_jv *v, const char *key, double def);

#endif
