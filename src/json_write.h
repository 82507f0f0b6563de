/*
 * json_write: a minimal streaming JSON writer, the twin of the reader in
 * json.h (which includes this header). Output goes straight to a FILE;
 * nesting (at most 63 levels, an always-on assert) and commas are tracked
 * for you. Numbers are printed with %.10g, non-finite ones as null.
 */
#ifndef DP_JSON_WRITE_H
#define DP_JSON_WRITE_H

#include "depthprune.h"
#include <stdio.h>

/*
 * The writer is public: struct dp_json and dp_json_init/_begin_obj/_begin_arr/
 * _end/_num/_int/_bool/_null/_str/_strn are declared in include/depthprune.h
 * (section "utilities"). Only what the library alone uses is declared here.
 */
/* Write a JSON string literal (quoted, escaped) of n bytes to f. */
void dp_json_write_string(FILE *f, const char *s, size_t n);

#endif
