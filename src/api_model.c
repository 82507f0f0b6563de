/*
 * api_model: the public header's accessors over internal structures that a
 * program must not reach into: GGUF metadata of a model, the kernel set's
 * name, the llamacpp protocol's tokens of a file, MMLU subjects, the
 * tokenizer of a GGUF file without its weights. Each is a
 * few lines over the module that owns the data; nothing here computes.
 */
#include "model.h"
#include "tasks.h"

#include <stdlib.h>
#include <string.h>

bool dp_model_meta_has(const struct dp_model *m, const char *key) {
    return m->gguf && dp_gguf_find_kv(m->gguf, key) != NULL;
}

/* Append n bytes of s to buf (cap bytes, NUL kept) at *len, counting what does not fit. */
static void put(char *buf, size_t cap, size_t *len, const char *s, size_t n) {
    if (*len + 1 < cap) {
        size_t k = cap - 1 - *len < n ? cap - 1 - *len : n;
        memcpy(buf + *len, s, k);
        buf[*len + k] = 0;
    }
    *len += n;
}

int dp_model_meta_str(const struct dp_model *m, const char *key, char *buf, size_t cap) {
    const struct dp_gguf_kv *kv = m->gguf ? dp_gguf_find_kv(m->gguf, key) : NULL;
    if (!kv) return -1;
    const struct dp_gguf_value *v = &kv->val;
    size_t len = 0;
    if (cap) buf[0] = 0;
    if (v->type == DP_GGUF_STRING) put(buf, cap, &len, v->s.data, v->s.len);
    else if (v->type == DP_GGUF_ARRAY && v->elem_type == DP_GGUF_STRING)
        for (uint64_t i = 0; i < v->n; i++) {
            if (i) put(buf, cap, &len, ",", 1);
            put(buf, cap, &len, v->strs[i].data, v->strs[i].len);
        }
    else return -1;
    return len > (size_t)0x7fffffff ? 0x7fffffff : (int)len;
}

bool dp_model_meta_int(const struct dp_model *m, const char *key, int64_t *out) {
    if (!dp_model_meta_has(m, key)) return false;
    int64_t v;
    if (dp_gguf_get_int(m->gguf, key, true, &v)) return false;
    *out = v;
    return true;
}

const char *dp_kernels_name(void) { return dp_kernels()->name; }

dp_status dp_corpus_tokens(const struct dp_tokenizer *t, const char *path, int **ids, int *n_ids) {
    char *text;
    size_t len;
    *ids = NULL;
    *n_ids = 0;
    dp_status st = dp_read_file(path, &text, &len);
    if (st) return st;
    if (len && text[len - 1] == '\n') len--; /* llama.cpp strips one trailing newline */
    int cap = (int)(len < 1 << 28 ? len : 1 << 28) + 16;
    *ids = dp_malloc((size_t)cap * sizeof **ids);
    st = *ids ? dp_tokenize(t, text, len, DP_TOKENIZE_BOS, *ids, cap, n_ids) : DP_ERR_NOMEM;
    if (!st && *n_ids > cap) st = dp_fail(DP_ERR_FORMAT, "%s: more tokens than bytes", path);
    free(text);
    if (st) {
        free(*ids);
        *ids = NULL;
        *n_ids = 0;
    }
    return st;
}

int dp_mmlu_data_n_subjects(const struct dp_mmlu_data *d) { return d->n_subjects; }

const char *dp_mmlu_data_subject(const struct dp_mmlu_data *d, int i) {
    return i >= 0 && i < d->n_subjects ? d->subjects[i].name : NULL;
}

dp_status dp_tokenizer_open(const char *path, bool *is_gguf, struct dp_tokenizer **out) {
    struct dp_gguf *g = NULL;
    *out = NULL;
    *is_gguf = dp_gguf_open(path, &g) == DP_OK;
    if (!*is_gguf) return DP_ERR_FORMAT;
    dp_status st = dp_tokenizer_from_gguf(g, out); /* the tokenizer copies what it keeps */
    dp_gguf_close(g);
    return st;
}
