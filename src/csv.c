/*
 * csv: an RFC 4180 reader (see csv.h). Two passes over the text: the first
 * validates and counts records and fields, the second copies the field bytes
 * (quotes undone) into one buffer, so a parse makes four allocations in all.
 */
#include "csv.h"

#include <stdlib.h>
#include <string.h>

static dp_status field_too_long(const char *name, int line) {
    return dp_fail(DP_ERR_FORMAT, "%s:%d: a field longer than %zu MiB (the limit for a CSV field)", name, line,
                   DP_MAX_LINE >> 20);
}

/*
 * Scan the text. With c == NULL only count; otherwise fill c's arrays (sized
 * by the counting pass). Returns a status; counts in *n_rows, *n_fields.
 */
static dp_status scan(const char *s, size_t len, const char *name, struct dp_csv *c, int *n_rows, size_t *n_fields) {
    size_t i = 0, nf = 0, out = 0;
    int nr = 0, line = 1;
    while (i < len) {
        /* an empty line holds no record */
        if (s[i] == '\n' || (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')) {
            i += s[i] == '\r' ? 2 : 1;
            line++;
            continue;
        }
        int rec_line = line;
        size_t first_field = nf;
        for (;;) { /* one field */
            size_t start = out;
            if (i < len && s[i] == '"') {
                int quote_line = line;
                i++;
                for (;;) {
                    if (i >= len)
                        return dp_fail(DP_ERR_FORMAT, "%s:%d: quoted field never closed", name, quote_line);
                    if (s[i] == '"') {
                        if (i + 1 < len && s[i + 1] == '"') {
                            if (c) c->buf[out] = '"';
                            out++;
                            i += 2;
                            continue;
                        }
                        i++;
                        break;
                    }
                    if (s[i] == '\n') line++;
                    if (out - start >= DP_MAX_LINE) return field_too_long(name, quote_line);
                    if (c) c->buf[out] = s[i];
                    out++;
                    i++;
                }
                if (i < len && s[i] != ',' && s[i] != '\n' && !(s[i] == '\r' && i + 1 < len && s[i + 1] == '\n'))
                    return dp_fail(DP_ERR_FORMAT, "%s:%d: unexpected character after a closing quote", name, line);
            } else {
                while (i < len && s[i] != ',' && s[i] != '\n' && !(s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')) {
                    if (out - start >= DP_MAX_LINE) return field_too_long(name, line);
                    if (c) c->buf[out] = s[i];
                    out++;
                    i++;
                }
            }
            if (c) {
                c->buf[out] = 0;
                c->fields[nf] = c->buf + start;
                c->lens[nf] = out - start;
            }
            out++;
            nf++;
            if (i < len && s[i] == ',') {
                i++;
                continue;
            }
            break;
        }
        if (c) {
            struct dp_csv_row *r = &c->rows[nr];
            r->n_fields = (int)(nf - first_field);
            r->fields = c->fields + first_field;
            r->lens = c->lens + first_field;
            r->line = rec_line;
        }
        nr++;
        if (nr == 1 << 30 || nf - first_field > 1u << 30)
            return dp_fail(DP_ERR_FORMAT, "%s:%d: too many records or fields", name, rec_line);
        if (i < len) { /* the line break */
            i += s[i] == '\r' ? 2 : 1;
            line++;
        }
    }
    *n_rows = nr;
    *n_fields = nf;
    return DP_OK;
}

dp_status dp_csv_parse(const char *text, size_t len, const char *name, struct dp_csv **out) {
    *out = NULL;
    int n_rows;
    size_t n_fields;
    dp_status st = scan(text, len, name, NULL, &n_rows, &n_fields);
    if (st) return st;
    struct dp_csv *c = dp_calloc(1, sizeof *c);
    if (!c) return DP_ERR_NOMEM;
    /* field bytes never exceed the text; plus one NUL per field */
    c->buf = malloc(len + n_fields + 1);
    c->fields = malloc((n_fields + 1) * sizeof *c->fields);
    c->lens = malloc((n_fields + 1) * sizeof *c->lens);
    c->rows = malloc(((size_t)n_rows + 1) * sizeof *c->rows);
    if (!c->buf || !c->fields || !c->lens || !c->rows) {
        dp_csv_free(c);
        return dp_fail(DP_ERR_NOMEM, "%s: out of memory reading CSV", name);
    }
    st = scan(text, len, name, c, &n_rows, &n_fields);
    DP_ASSERT(st == DP_OK);
    c->n_rows = n_rows;
    *out = c;
    return DP_OK;
}

dp_status dp_csv_read(const char *path, struct dp_csv **out) {
    *out = NULL;
    char *text;
    size_t len;
    dp_status st = dp_read_file(path, &text, &len);
    if (st) return st;
    st = dp_csv_parse(text, len, path, out);
    free(text);
    return st;
}

void dp_csv_free(struct dp_csv *c) {
    if (!c) return;
    free(c->buf);
    free(c->fields);
    free(c->lens);
    free(c->rows);
    free(c);
}
