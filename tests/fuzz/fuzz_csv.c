/*
 * fuzz_csv: the libFuzzer target for the CSV reader and the MMLU reader on
 * top of it.
 *
 * Each input is parsed by dp_csv_parse as a whole file; when it parses,
 * every field must lie inside the reader's buffer with the length it
 * claims, and line numbers must not decrease. The same bytes are then
 * written as the dev and the test file of one MMLU subject and read by
 * dp_mmlu_read (first byte: the test-row limit), and every few-shot prompt
 * of every question is built. A refused input must name its file.
 *
 *   make fuzz; build-fuzz/fuzz_csv -max_total_time=60 build-fuzz/corpus-csv tests/fuzz/csv
 */
#include "csv.h"
#include "fuzz_util.h"
#include "mmlu.h"
#include "tasks.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint8_t fuzz_sink;

static void check_csv(const struct dp_csv *c) {
    int prev = 0;
    for (int i = 0; i < c->n_rows; i++) {
        const struct dp_csv_row *r = &c->rows[i];
        if (r->n_fields < 1 || r->line < prev || r->line < 1) abort();
        prev = r->line;
        for (int f = 0; f < r->n_fields; f++) {
            if (r->fields[f][r->lens[f]] != 0) abort();
            if (r->lens[f]) fuzz_sink ^= (uint8_t)(r->fields[f][0] ^ r->fields[f][r->lens[f] - 1]);
        }
    }
}

static void mmlu(const uint8_t *data, size_t size) {
    char dir[256], dev[300], test[300];
    fuzz_path(dir, sizeof dir, "mmlu");
    snprintf(dev, sizeof dev, "%s/dev/s_dev.csv", dir);
    snprintf(test, sizeof test, "%s/test/s_test.csv", dir);
    mkdir(dir, 0700);
    fuzz_write(dev, data, size);
    fuzz_write(test, data, size);
    int limit = size ? data[0] % 8 : 0;
    struct dp_mmlu_data *d;
    if (dp_mmlu_read(dir, NULL, limit, &d)) {
        fuzz_check_error(dir);
        return;
    }
    if (d->n_subjects != 1) abort();
    const struct dp_mmlu_subject *s = &d->subjects[0];
    if (s->n_test < 1 || (limit && s->n_test > limit)) abort();
    for (int q = 0; q < s->n_test; q++) {
        if (s->test[q].answer < 0 || s->test[q].answer > 3) abort();
        for (int k = 0; k <= 5 && k <= s->n_dev; k += 5) {
            char *p;
            size_t len;
            if (dp_mmlu_prompt(s, q, k, &p, &len)) continue;
            if (strlen(p) > len) abort();
            fuzz_sink ^= (uint8_t)len;
            free(p);
        }
    }
    dp_mmlu_data_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct dp_csv *c;
    if (dp_csv_parse((const char *)data, size, "fuzz.csv", &c) == DP_OK) {
        check_csv(c);
        dp_csv_free(c);
    } else {
        fuzz_check_error("fuzz.csv");
    }
    mmlu(data, size);
    return 0;
}
