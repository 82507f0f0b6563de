/*
 * tokenizer: SentencePiece ("llama") and byte-level BPE ("gpt2") vocabularies,
 * tokenizing and detokenizing exactly as llama.cpp's llama_vocab does.
 *
 * A tokenizer is built once from GGUF metadata (tokenizer.ggml.*) or from a
 * llama2.c tokenizer file and is read-only afterwards, so one tokenizer may
 * serve many threads; each call allocates its own scratch memory.
 *
 * Tokenizing follows llama.cpp step by step:
 *
 *  1. Special tokens (tokenizer_st_partition). Tokens of type control,
 *     user-defined or unknown, longest text first, are cut out of the text
 *     wherever they occur; control and unknown ones only with
 *     DP_TOKENIZE_SPECIAL, user-defined ones always. Tokens marked
 *     lstrip/rstrip (Phi-3's) swallow the white space beside them.
 *  2. SentencePiece, per remaining text fragment: a space is prepended to a
 *     fragment at the start or after a special token (add_space_prefix),
 *     spaces become U+2581, the text is split into UTF-8 characters and the
 *     adjacent pair whose concatenation is the highest-scoring token is
 *     merged, repeatedly (ties: leftmost). Pieces that are not tokens fall
 *     back to <0xXX> byte tokens.
 *  3. Byte-level BPE, per fragment: the pre-tokenizer named by
 *     tokenizer.ggml.pre splits the code points into words (unicode.c); each
 *     word's bytes are mapped to GPT-2's printable code points and merged by
 *     the rank of tokenizer.ggml.merges (lowest rank first, ties leftmost).
 *
 * Files: this one cuts out special tokens and runs the steps (tokenize,
 * detokenize, queries); tokenizer_vocab.c loads vocabularies and holds the
 * lookups, tokenizer_spm.c and tokenizer_bpe.c merge fragments (steps 2
 * and 3); tokenizer_impl.h is the struct they share.
 *
 * Lookups are open-addressing hash tables: token text -> id, and
 * (left id, right id) -> merge rank for BPE. Merges whose parts are not
 * tokens (legal, if odd) go to a second table keyed by the two texts.
 *
 * Deliberate differences from llama.cpp, all on inputs where it throws or
 * has no defined answer: a byte with no byte token becomes <unk> (or is
 * dropped if there is none) instead of an exception; a code point above
 * U+10FFFF is encoded as U+FFFD; a duplicate token text keeps its first id;
 * "control-looking" token texts (<|endoftext|>, <|im_end|>, FIM markers...)
 * are all marked control, not only the first of each kind llama.cpp meets.
 */
#include "tokenizer.h"

#include "tokenizer_impl.h"

#include <limits.h>

/* ---- queries -------------------------------------------------------------- */

int dp_tokenizer_n_vocab(const struct dp_tokenizer *t) { return t->n_vocab; }
int dp_tokenizer_bos(const struct dp_tokenizer *t) { return t->bos; }
int dp_tokenizer_eos(const struct dp_tokenizer *t) { return t->eos; }
bool dp_tokenizer_adds_bos(const struct dp_tokenizer *t) { return t->add_bos; }
const char *dp_tokenizer_model(const struct dp_tokenizer *t) { return t->kind == KIND_SPM ? "llama" : "gpt2"; }

const char *dp_tokenizer_piece(const struct dp_tokenizer *t, int id) {
    return id >= 0 && id < t->n_vocab ? tok_text(t, id) : NULL;
}

/* ---- tokenizing ------------------------------------------------------------ */

static bool c_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static void push_frag(struct work *w, size_t *n, struct frag f) {
    if (!grow((void **)&w->frags2, &w->frags2_cap, *n + 1, sizeof *w->frags2)) {
        w->nomem = true;
        return;
    }
    w->frags2[(*n)++] = f;
}

/*
 * llama.cpp's tokenizer_st_partition over the fragment list: for each special
 * token in turn, every occurrence in every raw fragment is cut out. One scan
 * of the text first finds the special tokens that occur in it at all, so
 * that vocabularies with thousands of them (DeepSeek's) search only for those.
 */
static void partition(const struct dp_tokenizer *t, const char *text, size_t text_len, bool parse_special,
                      struct work *w) {
    uint8_t *present = calloc((size_t)t->n_special + 1, 1);
    if (!present) {
        w->nomem = true;
        return;
    }
    for (size_t i = 0; i < text_len; i++) {
        uint8_t b = (uint8_t)text[i];
        for (int32_t j = t->special_by_byte[b]; j < t->special_by_byte[b + 1]; j++) {
            int k = t->special_k[j], id = t->special[k];
            size_t sl = tok_len(t, id);
            if (!present[k] && sl <= text_len - i && !memcmp(text + i, tok_text(t, id), sl)) present[k] = 1;
        }
    }
    for (int k = 0; k < t->n_special && !w->nomem; k++) {
        int id = t->special[k];
        unsigned a = t->attr[id];
        if (!present[k] || (!parse_special && (a & (ATTR_CONTROL | ATTR_UNKNOWN)))) continue;
        const char *s = tok_text(t, id);
        size_t sl = tok_len(t, id), n2 = 0;
        for (size_t f = 0; f < w->n_frags && !w->nomem; f++) {
            struct frag fr = w->frags[f];
            if (fr.id >= 0) {
                push_frag(w, &n2, fr);
                continue;
            }
            size_t base = fr.off, len = fr.len;
            while (len > 0) {
                const char *m = memmem(text + base, len, s, sl);
                if (!m) {
                    push_frag(w, &n2, (struct frag){base, len, -1});
                    break;
                }
                size_t at = (size_t)(m - text), left = at - base;
                if (a & ATTR_LSTRIP)
                    while (left > 0 && c_space(text[base + left - 1])) left--;
                if (left > 0) push_frag(w, &n2, (struct frag){base, left, -1});
                push_frag(w, &n2, (struct frag){at, sl, id});
                size_t right = at + sl, rlen = base + len - right;
                if (a & ATTR_RSTRIP)
                    while (rlen > 0 && c_space(text[right])) right++, rlen--;
                base = right;
                len = rlen;
            }
        }
        struct frag *x = w->frags;
        size_t xc = w->frags_cap;
        w->frags = w->frags2;
        w->frags_cap = w->frags2_cap;
        w->frags2 = x;
        w->frags2_cap = xc;
        w->n_frags = n2;
    }
    free(present);
}


static void work_free(struct work *w) {
    free(w->frags);
    free(w->frags2);
    free(w->text);
    free(w->cps);
    free(w->sym);
    free(w->heap);
}

dp_status dp_tokenize(const struct dp_tokenizer *t, const char *text, size_t len, unsigned flags,
                      int *ids, int cap, int *n_out) {
    *n_out = 0;
    if (!t || (!text && len) || cap < 0 || (!ids && cap > 0))
        return dp_fail(DP_ERR_ARG, "dp_tokenize: invalid arguments");
    if (len > (1u << 30))
        return dp_fail(DP_ERR_ARG, "dp_tokenize: %zu bytes is more than one call takes (1 GiB)", len);
    struct work w = {.ids = ids, .cap = cap};
    if (len) {
        if (!grow((void **)&w.frags, &w.frags_cap, 1, sizeof *w.frags)) w.nomem = true;
        else {
            w.frags[0] = (struct frag){0, len, -1};
            w.n_frags = 1;
            partition(t, text, len, flags & DP_TOKENIZE_SPECIAL, &w);
        }
    }
    if ((flags & DP_TOKENIZE_BOS) && t->add_bos) put(&w, t->bos);
    bool prev_special = true; /* SentencePiece: a fragment after a special token gets a space */
    for (size_t f = 0; f < w.n_frags && !w.nomem; f++) {
        const struct frag *fr = &w.frags[f];
        if (fr->id >= 0) {
            put(&w, fr->id);
            prev_special = true;
        } else if (t->kind == KIND_SPM) {
            dp_tokenizer_spm_fragment(t, text + fr->off, fr->len, t->add_space_prefix && prev_special, &w);
            prev_special = false;
        } else {
            dp_tokenizer_bpe_fragment(t, text + fr->off, fr->len, &w);
        }
    }
    work_free(&w);
    if (w.nomem) return dp_fail(DP_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
    if (w.n > INT_MAX) return dp_fail(DP_ERR_ARG, "dp_tokenize: %zu bytes give too many tokens", len);
    *n_out = (int)w.n;
    return DP_OK;
}

/* ---- detokenizing ---------------------------------------------------------- */

static size_t copy_out(char *buf, size_t cap, size_t at, const char *s, size_t n) {
    if (at < cap) memcpy(buf + at, s, n < cap - at ? n : cap - at);
    return n;
}

/*
 * Generation's view (llama.cpp's token_to_piece with special=false): control
 * and unknown tokens print nothing; a SentencePiece piece right after BOS
 * loses its leading space, as llama2.c prints it.
 */
size_t dp_detokenize_token(const struct dp_tokenizer *t, int id, int prev_id, char *buf, size_t cap) {
    if (id < 0 || id >= t->n_vocab || (t->attr[id] & (ATTR_CONTROL | ATTR_UNKNOWN))) return 0;
    const char *s = t->piece + t->piece_off[id];
    size_t n = t->piece_off[id + 1] - t->piece_off[id];
    if (t->kind == KIND_SPM && prev_id == t->bos && prev_id >= 0 && n && s[0] == ' ') s++, n--;
    return copy_out(buf, cap, 0, s, n);
}

/*
 * The text of a whole sequence: special tokens as written, except a leading
 * BOS and a trailing EOS that the vocabulary adds itself (add_bos/add_eos),
 * which are left out; SentencePiece drops the space it prefixed to the text.
 * Byte-level BPE gives back exactly the bytes that were tokenized.
 */
size_t dp_detokenize(const struct dp_tokenizer *t, const int *ids, int n, char *buf, size_t cap) {
    int lo = 0, hi = n;
    if (n > 0 && t->add_bos && ids[0] == t->bos) lo = 1;
    if (hi > lo && t->add_eos && ids[hi - 1] == t->eos) hi--;
    size_t len = 0;
    bool strip = t->kind == KIND_SPM && t->add_space_prefix;
    for (int i = lo; i < hi; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) continue;
        const char *s = t->piece + t->piece_off[ids[i]];
        size_t m = t->piece_off[ids[i] + 1] - t->piece_off[ids[i]];
        if (strip && m && s[0] == ' ') s++, m--;
        strip = false;
        len += copy_out(buf, cap, len, s, m);
    }
    if (len < cap) buf[len] = 0;
    return len;
}
