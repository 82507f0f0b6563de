/*
 * fuzz_gguf: the libFuzzer target for the GGUF reader.
 *
 * Each input is handed to dp_gguf_parse as a whole file. A refused input is
 * fine; a crash, a leak or a sanitizer report is not. When an input parses,
 * the result must describe only bytes of the input: every tensor's data and
 * every string and array is checked to lie inside it (abort otherwise, so the
 * fuzzer reports it even without AddressSanitizer), the first and last byte of
 * each is read, every array element is decoded and the typed getters are run.
 *
 *   make fuzz
 *   mkdir -p build-fuzz/corpus
 *   build-fuzz/fuzz_gguf -max_total_time=60 build-fuzz/corpus tests/fuzz/corpus
 *
 * (New inputs go to the first directory, so the seed corpus under
 * tests/fuzz/corpus stays small.) tests/test_gguf.c includes this file and
 * replays every file of tests/fuzz/corpus through LLVMFuzzerTestOneInput on
 * each `make test`; the seeds there are written by
 * `build/tests/test_gguf --write-corpus tests/fuzz/corpus`.
 */
#include "gguf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint8_t fuzz_sink;

/* Abort unless [p, p+n) lies inside [lo, lo+size); read its first and last byte. */
static void fuzz_touch(const void *p, uint64_t n, const uint8_t *lo, size_t size) {
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)lo;
    if (n == 0) return;
    if (a < b || a - b > size || n > size - (a - b)) abort();
    fuzz_sink ^= ((const uint8_t *)p)[0];
    fuzz_sink ^= ((const uint8_t *)p)[n - 1];
}

static void fuzz_value(const struct dp_gguf_value *v, const uint8_t *lo, size_t size) {
    if (v->raw_begin > v->raw_end || v->raw_end > size) abort();
    if (v->type == DP_GGUF_STRING) fuzz_touch(v->s.data, v->s.len, lo, size);
    if (v->type != DP_GGUF_ARRAY) return;
    size_t esz = dp_gguf_vtype_size(v->elem_type);
    if (esz) {
        if (v->n > size / esz) abort();
        fuzz_touch(v->raw, v->n * esz, lo, size);
        double sum = 0;
        for (uint64_t i = 0; i < v->n; i++)
            sum += dp_gguf_arr_f64(v, i) + (double)dp_gguf_arr_i64(v, i);
        fuzz_sink ^= (uint8_t)(sum != sum);
    } else if (v->elem_type == DP_GGUF_STRING) {
        for (uint64_t i = 0; i < v->n; i++) fuzz_touch(v->strs[i].data, v->strs[i].len, lo, size);
    } else {
        for (uint64_t i = 0; i < v->n; i++) fuzz_value(&v->items[i], lo, size);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct dp_gguf *g;
    if (dp_gguf_parse(data, size, "fuzz.gguf", &g) != DP_OK) {
        if (g || !strstr(dp_last_error(), "fuzz.gguf")) abort();
        return 0;
    }
    for (uint64_t k = 0; k < g->n_kv; k++) {
        fuzz_sink ^= (uint8_t)strlen(g->kv[k].key);
        if (dp_gguf_find_kv(g, g->kv[k].key) != &g->kv[k]) abort();
        fuzz_value(&g->kv[k].val, data, size);
    }
    for (uint64_t k = 0; k < g->n_tensors; k++) {
        const struct dp_gguf_tensor *t = &g->tensors[k];
        if (t->nbytes == 0 || t->offset % g->alignment) abort();
        fuzz_touch(t->data, t->nbytes, data, size);
        if (dp_gguf_find_tensor(g, t->name) != t) abort();
    }
    int64_t i = 0;
    double f = 0;
    bool b = false;
    char s[16];
    (void)dp_gguf_get_int(g, "general.alignment", false, &i);
    (void)dp_gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", false, &f);
    (void)dp_gguf_get_bool(g, "general.flag", false, &b);
    (void)dp_gguf_get_str(g, "general.architecture", false, s, sizeof s);
    dp_gguf_close(g);
    return 0;
}
