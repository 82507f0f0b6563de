/*
 * test_json: the JSON writer (src/json_write.c) and reader (src/json.c) side
 * by side. The writer's output is compared byte for byte with documents
 * written out here by hand from RFC 8259 and the writer's contract (commas,
 * nesting, escapes, %.10g numbers, null for non-finite ones); every
 * document it writes must parse back to the same values.
 */
#include "harness.h"

#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* What the writer calls in `fill` put into a string (caller frees). */
static char *written(void (*fill)(struct dp_json *j)) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    struct dp_json j;
    dp_json_init(&j, f);
    fill(&j);
    fclose(f);
    return buf;
}

static void fill_nested(struct dp_json *j) {
    dp_json_begin_obj(j, NULL);
    dp_json_num(j, "third", 1.0 / 3.0);
    dp_json_num(j, "big", 123456789012.5);
    dp_json_num(j, "nan", NAN);
    dp_json_num(j, "inf", -INFINITY);
    dp_json_int(j, "n", -9007199254740993LL);
    dp_json_bool(j, "yes", true);
    dp_json_null(j, "none");
    dp_json_begin_arr(j, "list");
    dp_json_int(j, NULL, 1);
    dp_json_begin_obj(j, NULL);
    dp_json_end(j);
    dp_json_begin_arr(j, NULL);
    dp_json_end(j);
    dp_json_str(j, NULL, "a\"b\\c\n\t\r");
    dp_json_end(j);
    dp_json_strn(j, "ctl", "\x01\x7f\xc3\xa9\0z", 6);
    dp_json_end(j);
}

static const char nested_doc[] =
    "{\"third\":0.3333333333,\"big\":1.23456789e+11,\"nan\":null,\"inf\":null,\"n\":-9007199254740993,"
    "\"yes\":true,\"none\":null,\"list\":[1,{},[],\"a\\\"b\\\\c\\n\\t\\r\"],"
    "\"ctl\":\"\\u0001\\u007f\xc3\xa9\\u0000z\"}\n";

static void test_writer(void) {
    char *s = written(fill_nested);
    CHECK(s != NULL);
    if (!s) return;
    CHECK_MSG(!strcmp(s, nested_doc), "wrote   %s\nwanted  %s", s, nested_doc);
    struct dp_jv *v = NULL;
    CHECK(dp_json_parse(s, strlen(s), "written", &v) == DP_OK);
    if (v) {
        CHECK_CLOSE(dp_json_get_num(v, "third", 0), 0.3333333333, 0, 0);
        CHECK_CLOSE(dp_json_get_num(v, "big", 0), 123456789000.0, 0, 0); /* 10 significant digits */
        CHECK(dp_json_get(v, "nan") && dp_json_get(v, "nan")->type == DP_JNULL);
        const struct dp_jv *l = dp_json_get(v, "list");
        CHECK(l && l->type == DP_JARR && l->n == 4);
        if (l && l->n == 4) {
            CHECK(l->items[1].type == DP_JOBJ && l->items[1].n == 0);
            CHECK(l->items[2].type == DP_JARR && l->items[2].n == 0);
            CHECK(l->items[3].type == DP_JSTR && !strcmp(l->items[3].str, "a\"b\\c\n\t\r"));
        }
        const struct dp_jv *c = dp_json_get(v, "ctl");
        CHECK(c && c->type == DP_JSTR && c->len == 6 && !memcmp(c->str, "\x01\x7f\xc3\xa9\0z", 6));
    }
    dp_json_free(v);
    free(s);
}

static void fill_top_array(struct dp_json *j) {
    dp_json_begin_arr(j, NULL);
    dp_json_num(j, NULL, 0.1);
    dp_json_num(j, NULL, 1e-300);
    dp_json_num(j, NULL, -2.5e20);
    dp_json_end(j);
}

static void test_numbers(void) {
    char *s = written(fill_top_array);
    CHECK(s && !strcmp(s, "[0.1,1e-300,-2.5e+20]\n"));
    if (s && strcmp(s, "[0.1,1e-300,-2.5e+20]\n")) fprintf(stderr, "wrote %s", s);
    free(s);
}

int main(void) {
    test_writer();
    test_numbers();
    return TEST_END();
}
