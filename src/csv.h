/*
 * csv: RFC 4180 comma-separated values, for the MMLU files.
 *
 * A record is a line of fields separated by commas; a field that starts with
 * a double quote runs to the matching closing quote and may hold commas,
 * line breaks and doubled quotes ("" stands for "); after the closing quote
 * only a comma, a line break or the end of the text may follow. Lines end in
 * CRLF or LF; the last line may lack its line break. As Python's csv module
 * (which wrote the MMLU files) does, a quote inside an unquoted field is an
 * ordinary character. Empty lines (no characters at all) are skipped; they
 * hold no record. An unterminated quoted field or a character after a
 * closing quote is an error naming the file and line.
 */
#ifndef DP_CSV_H
#define DP_CSV_H

#include "base.h"

struct dp_csv_row {
    int n_fields;
    char **fields;   /* NUL-terminated, owned by the dp_csv */
    size_t *lens;    /* bytes of each field (a field may hold a NUL) */
    int line;        /* 1-based line where the record starts */
};

struct dp_csv {
    int n_rows;
    struct dp_csv_row *rows;
    char *buf;       /* all field bytes */
    char **fields;   /* all field pointers */
    size_t *lens;
};

/* Parse len bytes; `name` (the file) is used in messages. */
dp_status dp_csv_parse(const char *text, size_t len, const char *name, struct dp_csv **out);
/* Read and parse a file. */
dp_status dp_csv_read(const char *path, struct dp_csv **out);
void dp_csv_free(struct dp_csv *c);

#endif
