/*
 * tokenizer_impl: the insides of a tokenizer, shared by its files only:
 *   tokenizer.c        the interface: special tokens, tokenize, detokenize, queries
 *   tokenizer_vocab.c  vocabulary loading (GGUF metadata, llama2.c files) and lookups
 *   tokenizer_spm.c    SentencePiece merging of one text fragment
 *   tokenizer_bpe.c    byte-level BPE merging of one text fragment
 * The design is in tokenizer.c's opening comment.
 */
#ifndef DP_TOKENIZER_IMPL_H
#define DP_TOKENIZER_IMPL_H

#include "tokenizer.h"
#include "unicode.h"

#include <stdlib.h>
#include <string.h>

#define SPACE_MARK "\xe2\x96\x81" /* U+2581, SentencePiece's space */

/* Token attributes (llama_token_attr). */
enum {
    ATTR_UNKNOWN = 1 << 0,
    ATTR_UNUSED = 1 << 1,
    ATTR_NORMAL = 1 << 2,
    ATTR_CONTROL = 1 << 3,
    ATTR_USER_DEFINED = 1 << 4,
    ATTR_BYTE = 1 << 5,
    ATTR_LSTRIP = 1 << 7,
    ATTR_RSTRIP = 1 << 8,
};
#define ATTR_SPECIAL (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED)

enum kind { KIND_SPM, KIND_BPE };

/* (left, right) -> rank of a merge whose two parts are tokens; rank < 0: empty slot. */
struct merge_slot {
    int32_t left, right, rank, result;
};

/* A merge with a part that is not a token: its texts live in smerge_text. */
struct smerge {
    uint32_t left_off, left_len, right_off, right_len;
    int32_t rank, result;
};

struct dp_tokenizer {
    enum kind kind;
    enum dp_pretok pretok;
    int n_vocab;
    char *text;          /* token texts, each NUL-terminated */
    uint32_t *text_off;  /* (n_vocab + 1) offsets into text */
    float *score;        /* (n_vocab) */
    uint16_t *attr;      /* (n_vocab) ATTR_* */
    int32_t *map;        /* text -> id hash table, -1 empty */
    uint32_t map_mask;
    int bos, eos, unk;   /* -1 when absent */
    bool add_bos, add_eos, add_space_prefix, ignore_merges;
    bool spm_local;      /* SPM: no token joins "x" and a following U+2581 (see spm_fragment) */
    int *special;        /* ids of control/user-defined/unknown tokens, longest first */
    int n_special;
    int32_t special_by_byte[257]; /* specials (as indices k of special[k]) grouped by first byte: */
    int32_t *special_k;           /* special_k[special_by_byte[b] .. special_by_byte[b + 1]) */
    int byte_token[256]; /* SPM: <0xXX> (or the byte itself) for byte fallback */
    int bpe_byte[256];   /* BPE: token of the byte-level character of each byte */
    int raw_byte[256];   /* BPE: token whose text is the single raw byte */
    char bytechar[256][2];
    uint8_t bytechar_len[256];
    struct merge_slot *merges;
    uint32_t merges_mask;
    struct smerge *smerges;
    int32_t *smap;       /* string-merge hash table: index into smerges, -1 empty */
    uint32_t smap_mask;
    char *smerge_text;
    char *piece;         /* rendered text of each token (special tokens as written) */
    uint32_t *piece_off; /* (n_vocab + 1) */
};

static inline const char *tok_text(const struct dp_tokenizer *t, int id) { return t->text + t->text_off[id]; }
static inline size_t tok_len(const struct dp_tokenizer *t, int id) {
    return t->text_off[id + 1] - t->text_off[id] - 1;
}


/* The id of the token whose text is s (n bytes), or -1. */
int dp_tokenizer_vocab_find(const struct dp_tokenizer *t, const char *s, size_t n);
/* The merge of tokens l and r, or NULL. */
const struct merge_slot *dp_tokenizer_vocab_merge(const struct dp_tokenizer *t, int l, int r);
/* The merge of the texts a and b (parts not both tokens): its rank (result in *result), or -1. */
int32_t dp_tokenizer_vocab_smerge(const struct dp_tokenizer *t, const char *a, size_t na, const char *b, size_t nb,
                                  int32_t *result);

/* ---- per-call working memory ---- */

/* A piece of the input: raw text (id < 0) or a special token cut out of it. */
struct frag {
    size_t off, len;
    int id;
};

struct symbol {
    uint32_t start, len; /* bytes of the working text */
    int32_t prev, next;
    int32_t id;          /* BPE: token of the text, -1 if none */
};

/* A candidate merge; the heap pops the smallest key, then the leftmost. */
struct bigram {
    double key; /* SPM: -score, BPE: rank */
    int32_t left, right, result;
    uint32_t size;
};

/* Per-call working memory, grown as needed. */
struct work {
    int *ids;
    int cap;
    int64_t n;
    struct frag *frags, *frags2;
    size_t n_frags, frags_cap, frags2_cap;
    char *text;
    size_t text_cap;
    uint32_t *cps; /* code points, word ends and scratch: 3 x the fragment length */
    size_t cps_cap;
    struct symbol *sym;
    size_t sym_cap;
    struct bigram *heap;
    size_t n_heap, heap_cap;
    bool nomem;
};


static inline bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *np = realloc(*p, nc * elem);
    if (!np) return false;
    *p = np;
    *cap = nc;
    return true;
}

static inline void put(struct work *w, int id) {
    if (id < 0) return;
    if (w->n < w->cap) w->ids[w->n] = id;
    w->n++;
}

static inline bool before(const struct bigram *a, const struct bigram *b) {
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

static inline void heap_push(struct work *w, struct bigram b) {
    if (!grow((void **)&w->heap, &w->heap_cap, w->n_heap + 1, sizeof *w->heap)) {
        w->nomem = true;
        return;
    }
    size_t i = w->n_heap++;
    while (i > 0 && before(&b, &w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = b;
}

static inline struct bigram heap_pop(struct work *w) {
    struct bigram top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}


/* SentencePiece over one raw fragment (a space prefixed when `prefix`): ids through put(). */
void dp_tokenizer_spm_fragment(const struct dp_tokenizer *t, const char *s, size_t len, bool prefix, struct work *w);
/* Byte-level BPE over one raw fragment: pre-tokenized words, each merged; ids through put(). */
void dp_tokenizer_bpe_fragment(const struct dp_tokenizer *t, const char *s, size_t len, struct work *w);

#endif
