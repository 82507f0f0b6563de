/*
 * tokenizer_bpe: byte-level BPE ("gpt2") of one text fragment, as llama.cpp's
 * llm_tokenizer_bpe_session: the pre-tokenizer named by tokenizer.ggml.pre
 * splits the code points into words (unicode.c); each word's bytes are
 * mapped to GPT-2's printable code points and merged by the rank of
 * tokenizer.ggml.merges (lowest rank first, ties leftmost, by a heap).
 */
#include "tokenizer_impl.h"

/* BPE: add the bigram (l, r) if a merge joins their texts. */
static void bpe_try(const struct dp_tokenizer *t, struct work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const struct symbol *L = &w->sym[l], *R = &w->sym[r];
    int32_t rank, result = -1;
    if (L->id >= 0 && R->id >= 0) {
        const struct merge_slot *m = dp_tokenizer_vocab_merge(t, L->id, R->id);
        if (!m) return;
        rank = m->rank;
        result = m->result;
    } else {
        rank = dp_tokenizer_vocab_smerge(t, w->text + L->start, L->len, w->text + R->start, R->len, &result);
        if (rank < 0) return;
    }
    heap_push(w, (struct bigram){(double)rank, l, r, result, L->len + R->len});
}

/* BPE over one pre-tokenized word: code points cps[0..n) (llm_tokenizer_bpe_session). */
static void bpe_word(const struct dp_tokenizer *t, const uint32_t *cps, size_t n, struct work *w) {
    /* each code point is at most 4 bytes, each byte at most 2 bytes of byte-level text */
    if (!grow((void **)&w->text, &w->text_cap, 8 * n, 1) ||
        !grow((void **)&w->sym, &w->sym_cap, 4 * n, sizeof *w->sym)) {
        w->nomem = true;
        return;
    }
    size_t len = 0;
    int32_t n_sym = 0;
    for (size_t i = 0; i < n; i++) {
        char u[4];
        size_t k = dp_unicode_encode(cps[i], u);
        for (size_t j = 0; j < k; j++) {
            uint8_t b = (uint8_t)u[j];
            w->sym[n_sym] = (struct symbol){(uint32_t)len, t->bytechar_len[b], n_sym - 1, n_sym + 1,
                                            t->bpe_byte[b]};
            memcpy(w->text + len, t->bytechar[b], t->bytechar_len[b]);
            len += t->bytechar_len[b];
            n_sym++;
        }
    }
    w->sym[n_sym - 1].next = -1;
    if (t->ignore_merges) {
        int id = dp_tokenizer_vocab_find(t, w->text, len);
        if (id >= 0) {
            put(w, id);
            return;
        }
    }
    w->n_heap = 0;
    for (int32_t i = 1; i < n_sym; i++) bpe_try(t, w, i - 1, i);
    while (w->n_heap && !w->nomem) {
        struct bigram b = heap_pop(w);
        struct symbol *L = &w->sym[b.left], *R = &w->sym[b.right];
        if (!L->len || !R->len || L->len + R->len != b.size) continue;
        L->len += R->len;
        L->id = b.result;
        R->len = 0;
        L->next = R->next;
        if (R->next >= 0) w->sym[R->next].prev = b.left;
        bpe_try(t, w, L->prev, b.left);
        bpe_try(t, w, b.left, L->next);
    }
    for (int32_t i = 0; i != -1; i = w->sym[i].next) {
        const struct symbol *y = &w->sym[i];
        if (y->id >= 0) {
            put(w, y->id);
            continue;
        }
        /* not a token: llama.cpp emits the tokens of its single bytes, where there are any */
        for (uint32_t k = 0; k < y->len; k++) put(w, t->raw_byte[(uint8_t)w->text[y->start + k]]);
    }
}

void dp_tokenizer_bpe_fragment(const struct dp_tokenizer *t, const char *s, size_t len, struct work *w) {
    if (!grow((void **)&w->cps, &w->cps_cap, 3 * len, sizeof *w->cps)) {
        w->nomem = true;
        return;
    }
    uint32_t *ends = w->cps + len, *tmp = w->cps + 2 * len;
    size_t n = dp_unicode_decode(s, len, w->cps);
    size_t n_words = dp_unicode_split(t->pretok, w->cps, n, ends, tmp);
    size_t b = 0;
    for (size_t k = 0; k < n_words && !w->nomem; k++) {
        bpe_word(t, w->cps + b, ends[k] - b, w);
        b = ends[k];
    }
}
