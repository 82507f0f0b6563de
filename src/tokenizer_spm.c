/*
 * tokenizer_spm: SentencePiece ("llama") merging of one text fragment, as
 * llama.cpp's llm_tokenizer_spm_session: spaces become U+2581, the text is
 * split into UTF-8 characters, and the adjacent pair whose concatenation is
 * the highest-scoring token is merged, repeatedly (ties: leftmost, by a
 * heap); pieces that are not tokens fall back to <0xXX> byte tokens.
 */
#include "tokenizer_impl.h"

/* SentencePiece: add the bigram (l, r) if its text is a token. */
static void spm_try(const struct dp_tokenizer *t, struct work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    uint32_t size = w->sym[l].len + w->sym[r].len;
    int id = dp_tokenizer_vocab_find(t, w->text + w->sym[l].start, size);
    if (id < 0) return;
    heap_push(w, (struct bigram){-(double)t->score[id], l, r, id, size});
}

/* SentencePiece over the symbols [a, b) (llm_tokenizer_spm_session). */
static void spm_region(const struct dp_tokenizer *t, struct work *w, int32_t a, int32_t b) {
    for (int32_t i = a; i < b; i++) {
        w->sym[i].prev = i > a ? i - 1 : -1;
        w->sym[i].next = i + 1 < b ? i + 1 : -1;
    }
    w->n_heap = 0;
    for (int32_t i = a + 1; i < b; i++) spm_try(t, w, i - 1, i);
    while (w->n_heap && !w->nomem) {
        struct bigram g = heap_pop(w);
        struct symbol *L = &w->sym[g.left], *R = &w->sym[g.right];
        if (!L->len || !R->len || L->len + R->len != g.size) continue;
        L->len += R->len;
        R->len = 0;
        L->next = R->next;
        if (R->next >= 0) w->sym[R->next].prev = g.left;
        spm_try(t, w, L->prev, g.left);
        spm_try(t, w, g.left, L->next);
    }
    for (int32_t i = a; i != -1; i = w->sym[i].next) {
        const struct symbol *y = &w->sym[i];
        int id = dp_tokenizer_vocab_find(t, w->text + y->start, y->len);
        if (id >= 0) {
            put(w, id);
            continue;
        }
        for (uint32_t k = 0; k < y->len; k++) put(w, t->byte_token[(uint8_t)w->text[y->start + k]]);
    }
}

/*
 * SentencePiece over one raw fragment: escape, split into UTF-8 characters,
 * merge. Merging is local, so when no token can join a character to a
 * following U+2581 (t->spm_local), each word "U+2581..." is merged on its
 * own: the same result as merging the whole fragment at once (no bigram
 * ever crosses such a boundary), with small heaps instead of one huge one.
 */
void dp_tokenizer_spm_fragment(const struct dp_tokenizer *t, const char *s, size_t len, bool prefix, struct work *w) {
    size_t n = 0;
    if (!grow((void **)&w->text, &w->text_cap, 3 * len + 3, 1)) {
        w->nomem = true;
        return;
    }
    if (prefix) {
        memcpy(w->text, SPACE_MARK, 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ') {
            memcpy(w->text + n, SPACE_MARK, 3);
            n += 3;
        } else {
            w->text[n++] = s[i];
        }
    }
    if (!grow((void **)&w->sym, &w->sym_cap, n, sizeof *w->sym)) {
        w->nomem = true;
        return;
    }
    int32_t n_sym = 0;
    for (size_t off = 0; off < n; n_sym++) {
        size_t l = dp_unicode_seq_len((uint8_t)w->text[off]);
        if (l > n - off) l = n - off;
        w->sym[n_sym] = (struct symbol){(uint32_t)off, (uint32_t)l, -1, -1, -1};
        off += l;
    }
    int32_t a = 0;
    for (int32_t i = 1; i <= n_sym && !w->nomem; i++) {
        if (i < n_sym) {
            const char *p = w->text + w->sym[i].start;
            bool word = t->spm_local && w->sym[i].len == 3 && !memcmp(p, SPACE_MARK, 3) &&
                        !(w->sym[i].start >= 3 && !memcmp(p - 3, SPACE_MARK, 3));
            if (!word) continue;
        }
        spm_region(t, w, a, i);
        a = i;
    }
}
