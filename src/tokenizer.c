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

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "unicode.h"

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

/* ---- hashing ------------------------------------------------------------- */

/* FNV-1a over the concatenation a||b. */
static uint64_t hash2(const char *a, size_t na, const char *b, size_t nb) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < na; i++) h = (h ^ (uint8_t)a[i]) * 0x100000001b3ull;
    for (size_t i = 0; i < nb; i++) h = (h ^ (uint8_t)b[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static uint64_t hash_pair(uint32_t a, uint32_t b) {
    uint64_t x = ((uint64_t)a << 32 | b) * 0x9e3779b97f4a7c15ull;
    return x ^ (x >> 31);
}

static uint32_t table_size(size_t n) {
    uint32_t s = 16;
    while (s < 2 * n) s *= 2;
    return s;
}

static const char *tok_text(const struct dp_tokenizer *t, int id) { return t->text + t->text_off[id]; }
static size_t tok_len(const struct dp_tokenizer *t, int id) {
    return t->text_off[id + 1] - t->text_off[id] - 1;
}

/* The id of the token whose text is a||b, or -1. */
static int find2(const struct dp_tokenizer *t, const char *a, size_t na, const char *b, size_t nb) {
    for (uint32_t i = (uint32_t)hash2(a, na, b, nb) & t->map_mask;; i = (i + 1) & t->map_mask) {
        int id = t->map[i];
        if (id < 0) return -1;
        const char *s = tok_text(t, id);
        if (tok_len(t, id) == na + nb && !memcmp(s, a, na) && !memcmp(s + na, b, nb)) return id;
    }
}

static int find(const struct dp_tokenizer *t, const char *s, size_t n) { return find2(t, s, n, "", 0); }

/* ---- building ------------------------------------------------------------ */

static dp_status build_map(struct dp_tokenizer *t) {
    t->map_mask = table_size((size_t)t->n_vocab) - 1;
    t->map = dp_malloc(((size_t)t->map_mask + 1) * sizeof *t->map);
    if (!t->map) return DP_ERR_NOMEM;
    memset(t->map, 0xff, ((size_t)t->map_mask + 1) * sizeof *t->map);
    for (int id = 0; id < t->n_vocab; id++) {
        const char *s = tok_text(t, id);
        size_t n = tok_len(t, id);
        if (find(t, s, n) >= 0) continue; /* a duplicate text keeps its first id */
        uint32_t i = (uint32_t)hash2(s, n, "", 0) & t->map_mask;
        while (t->map[i] >= 0) i = (i + 1) & t->map_mask;
        t->map[i] = id;
    }
    return DP_OK;
}

/* Token texts llama.cpp treats as control tokens whatever their type says (EOT, EOG, FIM). */
static const char *const control_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<end_of_utterance>", "<|eom_id|>",
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>",
    "<PRE>", "\xe2\x96\x81<PRE>",
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>",
    "<SUF>", "\xe2\x96\x81<SUF>",
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>",
    "<MID>", "\xe2\x96\x81<MID>",
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>",
    "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>",
};

struct len_id {
    size_t len;
    int id;
};

/* Longest text first (llama.cpp's order); equal lengths by id, which llama.cpp leaves open. */
static int cmp_len_id(const void *a, const void *b) {
    const struct len_id *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : 1;
}

static dp_status build_specials(struct dp_tokenizer *t) {
    for (size_t k = 0; k < sizeof control_texts / sizeof control_texts[0]; k++) {
        int id = find(t, control_texts[k], strlen(control_texts[k]));
        if (id >= 0) t->attr[id] |= ATTR_CONTROL;
    }
    struct len_id *order = dp_malloc((size_t)t->n_vocab * sizeof *order);
    t->special = dp_malloc((size_t)t->n_vocab * sizeof *t->special);
    if (!order || !t->special) {
        free(order);
        return DP_ERR_NOMEM;
    }
    for (int id = 0; id < t->n_vocab; id++)
        if (t->attr[id] & ATTR_SPECIAL) order[t->n_special++] = (struct len_id){tok_len(t, id), id};
    qsort(order, (size_t)t->n_special, sizeof *order, cmp_len_id);
    for (int k = 0; k < t->n_special; k++) t->special[k] = order[k].id;
    free(order);
    t->special_k = dp_malloc(((size_t)t->n_special + 1) * sizeof *t->special_k);
    if (!t->special_k) return DP_ERR_NOMEM;
    int32_t n = 0;
    for (int b = 0; b < 256; b++) {
        t->special_by_byte[b] = n;
        for (int k = 0; k < t->n_special; k++)
            if ((uint8_t)tok_text(t, t->special[k])[0] == b) t->special_k[n++] = k;
    }
    t->special_by_byte[256] = n;
    return DP_OK;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The byte of a "<0xXX>" token text, or -1. */
static int byte_of_text(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static void build_byte_tables(struct dp_tokenizer *t) {
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char c = (char)b, name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        int id = find(t, name, 6);
        if (id < 0) id = find(t, &c, 1);
        t->byte_token[b] = id >= 0 ? id : t->unk;
        t->raw_byte[b] = find(t, &c, 1);
        char u[4];
        t->bytechar_len[b] = (uint8_t)dp_unicode_encode(dp_unicode_byte_to_cp((uint8_t)b), u);
        memcpy(t->bytechar[b], u, t->bytechar_len[b]);
        t->bpe_byte[b] = find(t, t->bytechar[b], t->bytechar_len[b]);
    }
}

/* Append n bytes to a growing buffer. */
static bool buf_add(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < *len + n) nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb) return false;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    return true;
}

/*
 * The text each token renders to (llama.cpp's token_to_piece with
 * special=true): special tokens as written, SentencePiece pieces with U+2581
 * as a space, byte tokens as their byte, byte-level BPE pieces as the bytes
 * their code points stand for; unused and undefined tokens as nothing.
 */
static dp_status build_pieces(struct dp_tokenizer *t) {
    char *buf = NULL;
    size_t len = 0, cap = 0;
    bool ok = true;
    t->piece_off = dp_malloc(((size_t)t->n_vocab + 1) * sizeof *t->piece_off);
    if (!t->piece_off) return DP_ERR_NOMEM;
    for (int id = 0; id < t->n_vocab && ok; id++) {
        t->piece_off[id] = (uint32_t)len;
        const char *s = tok_text(t, id);
        size_t n = tok_len(t, id);
        unsigned a = t->attr[id];
        if (a & ATTR_SPECIAL) {
            ok = buf_add(&buf, &len, &cap, s, n);
        } else if (a & ATTR_NORMAL && t->kind == KIND_SPM) {
            for (size_t i = 0; i < n && ok; i++) {
                if (i + 3 <= n && !memcmp(s + i, SPACE_MARK, 3)) {
                    ok = buf_add(&buf, &len, &cap, " ", 1);
                    i += 2;
                } else {
                    ok = buf_add(&buf, &len, &cap, s + i, 1);
                }
            }
        } else if (a & ATTR_NORMAL) {
            uint32_t cps[64];
            for (size_t i = 0; i < n && ok;) { /* decode in slices; a slice never splits a character */
                size_t m = n - i < 64 ? n - i : 64;
                while (m < n - i && m > 0 && ((uint8_t)s[i + m] & 0xC0) == 0x80) m--;
                if (m == 0) m = 1;
                size_t k = dp_unicode_decode(s + i, m, cps);
                for (size_t j = 0; j < k && ok; j++) {
                    int byte = dp_unicode_cp_to_byte(cps[j]);
                    char c = (char)byte, u[4];
                    if (byte >= 0) ok = buf_add(&buf, &len, &cap, &c, 1);
                    else ok = buf_add(&buf, &len, &cap, u, dp_unicode_encode(cps[j], u));
                }
                i += m;
            }
        } else if (a & ATTR_BYTE) {
            int byte = byte_of_text(s, n);
            char c = (char)byte;
            if (byte >= 0) ok = buf_add(&buf, &len, &cap, &c, 1);
        }
        if (len > UINT32_MAX - 1) ok = false;
    }
    if (!ok || !buf_add(&buf, &len, &cap, "", 1)) {
        free(buf);
        return dp_fail(DP_ERR_NOMEM, "out of memory building token pieces");
    }
    t->piece_off[t->n_vocab] = (uint32_t)len - 1;
    t->piece = buf;
    return DP_OK;
}

/* Merges "A B" -> (A, B) rank tables. */
static dp_status build_merges(struct dp_tokenizer *t, const struct dp_gguf_str *m, uint64_t n,
                              const char *file) {
    if (n > INT32_MAX) return dp_fail(DP_ERR_FORMAT, "%s: tokenizer.ggml.merges is too long", file);
    t->merges_mask = table_size((size_t)n) - 1;
    t->merges = dp_malloc(((size_t)t->merges_mask + 1) * sizeof *t->merges);
    if (!t->merges) return DP_ERR_NOMEM;
    for (size_t i = 0; i <= t->merges_mask; i++) t->merges[i].rank = -1;
    size_t n_s = 0, text_len = 0, text_cap = 0;
    for (uint64_t r = 0; r < n; r++) {
        const char *s = m[r].data;
        size_t len = (size_t)m[r].len;
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp) continue; /* llama.cpp: an empty pair, never matched */
        size_t nl = (size_t)(sp - s), nr = len - nl - 1;
        int l = find(t, s, nl), rr = find(t, sp + 1, nr), res = find2(t, s, nl, sp + 1, nr);
        if (l >= 0 && rr >= 0) {
            uint32_t i = (uint32_t)hash_pair((uint32_t)l, (uint32_t)rr) & t->merges_mask;
            while (t->merges[i].rank >= 0 && !(t->merges[i].left == l && t->merges[i].right == rr))
                i = (i + 1) & t->merges_mask;
            if (t->merges[i].rank < 0) /* the first of duplicate merges wins */
                t->merges[i] = (struct merge_slot){l, rr, (int32_t)r, res};
            continue;
        }
        if (!t->smerges) {
            t->smerges = dp_malloc((size_t)n * sizeof *t->smerges);
            if (!t->smerges) return DP_ERR_NOMEM;
        }
        struct smerge *sm = &t->smerges[n_s++];
        *sm = (struct smerge){(uint32_t)text_len, (uint32_t)nl, (uint32_t)(text_len + nl), (uint32_t)nr,
                              (int32_t)r, res};
        if (!buf_add(&t->smerge_text, &text_len, &text_cap, s, nl) ||
            !buf_add(&t->smerge_text, &text_len, &text_cap, sp + 1, nr) || text_len > UINT32_MAX)
            return dp_fail(DP_ERR_NOMEM, "out of memory reading merges");
    }
    if (n_s) {
        t->smap_mask = table_size(n_s) - 1;
        t->smap = dp_malloc(((size_t)t->smap_mask + 1) * sizeof *t->smap);
        if (!t->smap) return DP_ERR_NOMEM;
        memset(t->smap, 0xff, ((size_t)t->smap_mask + 1) * sizeof *t->smap);
        for (size_t k = 0; k < n_s; k++) {
            const struct smerge *sm = &t->smerges[k];
            const char *a = t->smerge_text + sm->left_off, *b = t->smerge_text + sm->right_off;
            uint32_t i = (uint32_t)hash2(a, sm->left_len, b, sm->right_len) & t->smap_mask;
            bool dup = false;
            for (; t->smap[i] >= 0; i = (i + 1) & t->smap_mask) {
                const struct smerge *o = &t->smerges[t->smap[i]];
                if (o->left_len == sm->left_len && o->right_len == sm->right_len &&
                    !memcmp(t->smerge_text + o->left_off, a, sm->left_len) &&
                    !memcmp(t->smerge_text + o->right_off, b, sm->right_len))
                    dup = true;
            }
            if (!dup) t->smap[i] = (int32_t)k;
        }
    }
    return DP_OK;
}

/* The merge of the texts a and b (parts not both tokens): rank, or -1. */
static int32_t find_smerge(const struct dp_tokenizer *t, const char *a, size_t na, const char *b,
                           size_t nb, int32_t *result) {
    if (!t->smap) return -1;
    for (uint32_t i = (uint32_t)hash2(a, na, b, nb) & t->smap_mask;; i = (i + 1) & t->smap_mask) {
        if (t->smap[i] < 0) return -1;
        const struct smerge *o = &t->smerges[t->smap[i]];
        if (o->left_len == na && o->right_len == nb && !memcmp(t->smerge_text + o->left_off, a, na) &&
            !memcmp(t->smerge_text + o->right_off, b, nb)) {
            *result = o->result;
            return o->rank;
        }
    }
}

static const struct merge_slot *find_merge(const struct dp_tokenizer *t, int l, int r) {
    for (uint32_t i = (uint32_t)hash_pair((uint32_t)l, (uint32_t)r) & t->merges_mask;;
         i = (i + 1) & t->merges_mask) {
        const struct merge_slot *s = &t->merges[i];
        if (s->rank < 0) return NULL;
        if (s->left == l && s->right == r) return s;
    }
}

void dp_tokenizer_free(struct dp_tokenizer *t) {
    if (!t) return;
    free(t->text);
    free(t->text_off);
    free(t->score);
    free(t->attr);
    free(t->map);
    free(t->special);
    free(t->special_k);
    free(t->merges);
    free(t->smerges);
    free(t->smap);
    free(t->smerge_text);
    free(t->piece);
    free(t->piece_off);
    free(t);
}

/*
 * A new tokenizer of n tokens with room for `text_bytes` bytes of token text
 * (NULs included); the loader fills text, text_off, score and attr.
 */
static struct dp_tokenizer *tokenizer_new(int n, size_t text_bytes) {
    struct dp_tokenizer *t = dp_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->n_vocab = n;
    t->text = dp_malloc(text_bytes);
    t->text_off = dp_malloc(((size_t)n + 1) * sizeof *t->text_off);
    t->score = dp_calloc((size_t)n, sizeof *t->score);
    t->attr = dp_calloc((size_t)n, sizeof *t->attr);
    t->bos = t->eos = t->unk = -1;
    if (!t->text || !t->text_off || !t->score || !t->attr) {
        dp_tokenizer_free(t);
        return NULL;
    }
    return t;
}

/* Whether no token has a U+2581 inside that follows anything but another U+2581. */
static bool spaces_only_lead(const struct dp_tokenizer *t) {
    for (int id = 0; id < t->n_vocab; id++) {
        const char *s = tok_text(t, id), *p = s;
        size_t n = tok_len(t, id);
        while ((p = memmem(p + 1, n - (size_t)(p + 1 - s), SPACE_MARK, 3)))
            if (p - s < 3 || memcmp(p - 3, SPACE_MARK, 3)) return false;
    }
    return true;
}

/* What every loader does once texts, scores and attributes are in place. */
static dp_status tokenizer_finish(struct dp_tokenizer *t) {
    dp_status st;
    if ((st = build_map(t)) || (st = build_specials(t))) return st;
    build_byte_tables(t);
    t->spm_local = t->kind == KIND_SPM && spaces_only_lead(t);
    return DP_OK;
}

/* ---- loading from GGUF --------------------------------------------------- */

static const struct {
    const char *name;
    enum dp_pretok kind;
    bool ignore_merges, add_bos;
} pre_names[] = {
    {"default", DP_PRETOK_DEFAULT, false, false},
    {"llama3", DP_PRETOK_LLAMA3, true, true},
    {"llama-v3", DP_PRETOK_LLAMA3, true, true},
    {"llama-bpe", DP_PRETOK_LLAMA3, true, true},
    {"falcon3", DP_PRETOK_LLAMA3, true, true},
    {"falcon-h1", DP_PRETOK_LLAMA3, true, true},
    {"pixtral", DP_PRETOK_LLAMA3, true, true},
    {"midm-2.0", DP_PRETOK_LLAMA3, true, true},
    {"lfm2", DP_PRETOK_LLAMA3, true, true},
    {"dbrx", DP_PRETOK_LLAMA3, false, false},
    {"smaug-bpe", DP_PRETOK_LLAMA3, false, false},
    {"deepseek-llm", DP_PRETOK_DEEPSEEK_LLM, false, false},
    {"deepseek-coder", DP_PRETOK_DEEPSEEK_CODER, false, false},
    {"falcon", DP_PRETOK_FALCON, false, false},
    {"gpt-2", DP_PRETOK_GPT2, false, false},
    {"phi-2", DP_PRETOK_GPT2, false, false},
    {"mpt", DP_PRETOK_GPT2, false, false},
    {"olmo", DP_PRETOK_GPT2, false, false},
    {"jais", DP_PRETOK_GPT2, false, false},
    {"trillion", DP_PRETOK_GPT2, false, false},
    {"gigachat", DP_PRETOK_GPT2, false, false},
    {"a.x-4.0", DP_PRETOK_GPT2, false, false},
    {"mellum", DP_PRETOK_GPT2, false, false},
    {"exaone4", DP_PRETOK_GPT2, false, false},
    {"starcoder", DP_PRETOK_STARCODER, false, false},
    {"refact", DP_PRETOK_STARCODER, false, false},
    {"command-r", DP_PRETOK_STARCODER, false, false},
    {"smollm", DP_PRETOK_STARCODER, false, false},
    {"codeshell", DP_PRETOK_STARCODER, false, false},
    {"exaone", DP_PRETOK_STARCODER, false, false},
    {"minerva-7b", DP_PRETOK_STARCODER, false, false},
    {"qwen2", DP_PRETOK_QWEN2, false, false},
    {"deepseek-r1-qwen", DP_PRETOK_QWEN2, false, false},
    {"megrez", DP_PRETOK_QWEN2, false, false},
    {"stablelm2", DP_PRETOK_QWEN2, false, false},
    {"hunyuan", DP_PRETOK_QWEN2, false, false},
    {"poro-chat", DP_PRETOK_PORO, false, false},
    {"bloom", DP_PRETOK_PORO, false, false},
    {"gpt3-finnish", DP_PRETOK_PORO, false, false},
};

/* An array of `elem` of at least n entries under key, or NULL (absent); fails on a wrong type. */
static dp_status get_array(const struct dp_gguf *g, const char *key, uint32_t elem, uint32_t elem2,
                           uint64_t n, bool required, const struct dp_gguf_value **out) {
    const struct dp_gguf_kv *kv = dp_gguf_find_kv(g, key);
    *out = NULL;
    if (!kv) return required ? dp_fail(DP_ERR_FORMAT, "%s: no %s in the metadata", g->path, key) : DP_OK;
    if (kv->val.type != DP_GGUF_ARRAY || (kv->val.elem_type != elem && kv->val.elem_type != elem2))
        return dp_fail(DP_ERR_FORMAT, "%s: %s is not an array of %s", g->path, key,
                       dp_gguf_vtype_name(elem));
    if (kv->val.n < n)
        return dp_fail(DP_ERR_FORMAT, "%s: %s has %llu entries for %llu tokens", g->path, key,
                       (unsigned long long)kv->val.n, (unsigned long long)n);
    *out = &kv->val;
    return DP_OK;
}

/* A special token id from metadata: kept only when it names a token. */
static dp_status get_token_id(const struct dp_gguf *g, const char *key, int n, int *id) {
    if (*id >= n) *id = -1;
    int64_t v = -1;
    dp_status st = dp_gguf_get_int(g, key, false, &v);
    if (st) return st;
    if (v >= 0 && v < n) *id = (int)v;
    return DP_OK;
}

/* Phi-3 (by general.name, as llama.cpp decides): special tokens eat the white space after them. */
static dp_status apply_phi3_strip(const struct dp_gguf *g, struct dp_tokenizer *t) {
    char name[256] = "";
    dp_status st = dp_gguf_get_str(g, "general.name", false, name, sizeof name);
    if (st) return st;
    for (char *p = name; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
    if (!strstr(name, "phi-3") && !strstr(name, "phi3")) return DP_OK;
    for (int k = 0; k < t->n_special; k++) t->attr[t->special[k]] |= ATTR_RSTRIP;
    int id = find(t, "</s>", 4);
    if (id >= 0) t->attr[id] |= ATTR_RSTRIP;
    static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
    for (int k = 0; k < 3; k++)
        if ((id = find(t, keep[k], strlen(keep[k]))) >= 0) t->attr[id] &= (uint16_t)~ATTR_RSTRIP;
    return DP_OK;
}

dp_status dp_tokenizer_from_gguf(const struct dp_gguf *g, struct dp_tokenizer **out) {
    char model[64] = "", pre[64] = "";
    dp_status st;
    *out = NULL;
    if ((st = dp_gguf_get_str(g, "tokenizer.ggml.model", true, model, sizeof model)) ||
        (st = dp_gguf_get_str(g, "tokenizer.ggml.pre", false, pre, sizeof pre)))
        return st;
    enum kind kind;
    if (!strcmp(model, "llama")) kind = KIND_SPM;
    else if (!strcmp(model, "gpt2")) kind = KIND_BPE;
    else
        return dp_fail(DP_ERR_UNSUPPORTED,
                       "%s: tokenizer model '%s' is not supported (llama and gpt2 are)", g->path, model);

    int pi = 0; /* pre_names[0] is "default" */
    if (kind == KIND_BPE && pre[0]) { /* none or empty: "default", as llama.cpp (with a warning) */
        size_t n_names = sizeof pre_names / sizeof pre_names[0];
        for (pi = 0; pi < (int)n_names && strcmp(pre_names[pi].name, pre); pi++) {}
        if (pi == (int)n_names)
            return dp_fail(DP_ERR_UNSUPPORTED, "%s: pre-tokenizer '%s' (tokenizer.ggml.pre) is not supported",
                           g->path, pre);
    }

    const struct dp_gguf_value *tokens, *scores, *types, *merges = NULL;
    if ((st = get_array(g, "tokenizer.ggml.tokens", DP_GGUF_STRING, DP_GGUF_STRING, 1, true, &tokens)))
        return st;
    if (tokens->n > (1u << 24))
        return dp_fail(DP_ERR_FORMAT, "%s: %llu tokens is too many", g->path, (unsigned long long)tokens->n);
    int n = (int)tokens->n;
    if ((st = get_array(g, "tokenizer.ggml.scores", DP_GGUF_F32, DP_GGUF_I32, tokens->n, false, &scores)) ||
        (st = get_array(g, "tokenizer.ggml.token_type", DP_GGUF_I32, DP_GGUF_I32, tokens->n, false, &types)))
        return st;
    if (kind == KIND_BPE &&
        (st = get_array(g, "tokenizer.ggml.merges", DP_GGUF_STRING, DP_GGUF_STRING, 0, true, &merges)))
        return st;

    size_t text_bytes = 0;
    for (int i = 0; i < n; i++) {
        size_t len = tokens->strs[i].len ? (size_t)tokens->strs[i].len : 24; /* "[EMPTY_i]" */
        if (len > (1u << 20)) return dp_fail(DP_ERR_FORMAT, "%s: token %d is %zu bytes long", g->path, i, len);
        text_bytes += len + 1;
    }
    if (text_bytes > UINT32_MAX) return dp_fail(DP_ERR_FORMAT, "%s: token texts are too large", g->path);
    struct dp_tokenizer *t = tokenizer_new(n, text_bytes);
    if (!t) return DP_ERR_NOMEM;
    t->kind = kind;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        t->text_off[i] = (uint32_t)off;
        const struct dp_gguf_str *s = &tokens->strs[i];
        if (s->len) {
            memcpy(t->text + off, s->data, s->len);
            off += s->len;
        } else { /* llama.cpp renames empty tokens */
            off += (size_t)snprintf(t->text + off, 24, "[EMPTY_%d]", i);
        }
        t->text[off++] = 0;
        t->score[i] = scores ? (float)dp_gguf_arr_f64(scores, (uint64_t)i) : 0.0f;
        int64_t type = types ? dp_gguf_arr_i64(types, (uint64_t)i) : 1;
        static const uint16_t attr_of_type[7] = {0, ATTR_NORMAL, ATTR_UNKNOWN, ATTR_CONTROL,
                                                 ATTR_USER_DEFINED, ATTR_UNUSED, ATTR_BYTE};
        t->attr[i] = type >= 0 && type < 7 ? attr_of_type[type] : 0;
    }
    t->text_off[n] = (uint32_t)off;

    /* defaults as llama.cpp sets them per model, then the metadata */
    t->pretok = pre_names[pi].kind;
    t->ignore_merges = pre_names[pi].ignore_merges;
    if (kind == KIND_SPM) {
        t->bos = 1, t->eos = 2, t->unk = 0;
        t->add_bos = true, t->add_space_prefix = true;
    } else {
        t->bos = t->eos = 11;
        t->add_bos = pre_names[pi].add_bos;
    }
    if ((st = get_token_id(g, "tokenizer.ggml.bos_token_id", n, &t->bos)) ||
        (st = get_token_id(g, "tokenizer.ggml.eos_token_id", n, &t->eos)) ||
        (st = get_token_id(g, "tokenizer.ggml.unknown_token_id", n, &t->unk)) ||
        (st = dp_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", false, &t->add_bos)) ||
        (st = dp_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", false, &t->add_eos)) ||
        (st = dp_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", false, &t->add_space_prefix)) ||
        (st = tokenizer_finish(t)) || (st = apply_phi3_strip(g, t)) ||
        (merges && (st = build_merges(t, merges->strs, merges->n, g->path))) || (st = build_pieces(t))) {
        dp_tokenizer_free(t);
        return st;
    }
    if (t->add_bos && t->bos < 0) {
        dp_tokenizer_free(t);
        return dp_fail(DP_ERR_FORMAT, "%s: tokenizer.ggml.add_bos_token is set but there is no BOS token", g->path);
    }
    *out = t;
    return DP_OK;
}

/* ---- loading a llama2.c tokenizer ----------------------------------------- */

/*
 * tok512.bin and friends: int32 max_token_length, then per token a float
 * score, an int32 length and the bytes. llama2.c's exporter wrote spaces for
 * U+2581 and "\n<s>\n" / "\n</s>\n" for BOS and EOS; both are undone so the
 * vocabulary equals the SentencePiece model it came from.
 */
dp_status dp_tokenizer_from_llama2c(const char *path, int n_vocab, struct dp_tokenizer **out) {
    *out = NULL;
    if (n_vocab < 3 || n_vocab > (1 << 24))
        return dp_fail(DP_ERR_ARG, "%s: a vocabulary of %d tokens is not plausible", path, n_vocab);
    char *data;
    size_t size;
    dp_status st = dp_read_file(path, &data, &size);
    if (st) return st;
    const uint8_t *p = (const uint8_t *)data, *end = p + size;
    size_t text_bytes = 0;
    const uint8_t *q = p + 4;
    for (int i = 0; i < n_vocab; i++) { /* first pass: validate and size */
        int32_t len;
        if (q + 8 > end) {
            free(data);
            return dp_fail(DP_ERR_FORMAT, "%s: truncated at token %d of %d", path, i, n_vocab);
        }
        memcpy(&len, q + 4, 4);
        if (len < 0 || (size_t)len > (size_t)(end - q - 8)) {
            free(data);
            return dp_fail(DP_ERR_FORMAT, "%s: token %d has a bad length %d", path, i, (int)len);
        }
        text_bytes += 3 * (size_t)len + 24; /* a space may become 3 bytes */
        q += 8 + len;
    }
    struct dp_tokenizer *t = tokenizer_new(n_vocab, text_bytes);
    if (!t) {
        free(data);
        return DP_ERR_NOMEM;
    }
    t->kind = KIND_SPM;
    size_t off = 0;
    q = p + 4;
    for (int i = 0; i < n_vocab; i++) {
        int32_t len;
        memcpy(&t->score[i], q, 4);
        memcpy(&len, q + 4, 4);
        const char *s = (const char *)q + 8;
        q += 8 + len;
        if (i == 1 || i == 2) /* "\n<s>\n" */
            while (len > 0 && (*s == '\n' || s[len - 1] == '\n')) {
                if (*s == '\n') s++, len--;
                else len--;
            }
        t->text_off[i] = (uint32_t)off;
        if (len == 0) off += (size_t)snprintf(t->text + off, 24, "[EMPTY_%d]", i);
        for (int k = 0; k < len; k++) {
            if (s[k] == ' ') {
                memcpy(t->text + off, SPACE_MARK, 3);
                off += 3;
            } else {
                t->text[off++] = s[k];
            }
        }
        t->text[off++] = 0;
        t->attr[i] = i == 0 ? ATTR_UNKNOWN : i <= 2 ? ATTR_CONTROL
                   : byte_of_text(tok_text(t, i), off - 1 - t->text_off[i]) >= 0 ? ATTR_BYTE : ATTR_NORMAL;
    }
    t->text_off[n_vocab] = (uint32_t)off;
    free(data);
    t->bos = 1, t->eos = 2, t->unk = 0;
    t->add_bos = true, t->add_space_prefix = true;
    if ((st = tokenizer_finish(t)) || (st = build_pieces(t))) {
        dp_tokenizer_free(t);
        return st;
    }
    *out = t;
    return DP_OK;
}

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

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *np = realloc(*p, nc * elem);
    if (!np) return false;
    *p = np;
    *cap = nc;
    return true;
}

static void put(struct work *w, int id) {
    if (id < 0) return;
    if (w->n < w->cap) w->ids[w->n] = id;
    w->n++;
}

static bool before(const struct bigram *a, const struct bigram *b) {
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

static void heap_push(struct work *w, struct bigram b) {
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

static struct bigram heap_pop(struct work *w) {
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

/* SentencePiece: add the bigram (l, r) if its text is a token. */
static void spm_try(const struct dp_tokenizer *t, struct work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    uint32_t size = w->sym[l].len + w->sym[r].len;
    int id = find(t, w->text + w->sym[l].start, size);
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
        int id = find(t, w->text + y->start, y->len);
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
static void spm_fragment(const struct dp_tokenizer *t, const char *s, size_t len, bool prefix,
                         struct work *w) {
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

/* BPE: add the bigram (l, r) if a merge joins their texts. */
static void bpe_try(const struct dp_tokenizer *t, struct work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const struct symbol *L = &w->sym[l], *R = &w->sym[r];
    int32_t rank, result = -1;
    if (L->id >= 0 && R->id >= 0) {
        const struct merge_slot *m = find_merge(t, L->id, R->id);
        if (!m) return;
        rank = m->rank;
        result = m->result;
    } else {
        rank = find_smerge(t, w->text + L->start, L->len, w->text + R->start, R->len, &result);
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
        int id = find(t, w->text, len);
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

static void bpe_fragment(const struct dp_tokenizer *t, const char *s, size_t len, struct work *w) {
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
            spm_fragment(t, text + fr->off, fr->len, t->add_space_prefix && prev_special, &w);
            prev_special = false;
        } else {
            bpe_fragment(t, text + fr->off, fr->len, &w);
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
