/*
 * unicode: code points, categories, GPT-2's byte map and the pre-tokenizers.
 *
 * llama.cpp splits text for byte-level BPE with a cascade of regexes per
 * pre-tokenizer type (llm_tokenizer_bpe in llama-vocab.cpp). Each regex
 * refines the word boundaries of the previous one: inside every current
 * word, its matches become words and so do the gaps between them. Two of the
 * regexes (GPT-2's and Llama 3's) run through hand-written splitters in
 * llama.cpp; the others through std::regex on a "collapsed" text where every
 * non-ASCII code point stands for its category (so \p{L} means "letter by the
 * Unicode tables", \s means White_Space), or through std::wregex on the code
 * points with non-ASCII white space replaced by U+000B. This file gives each
 * regex a small matcher with the same ECMAScript leftmost-first semantics, so
 * no regex engine is needed:
 *
 *   stage      regex (llama.cpp)                         used by
 *   GPT2       's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
 *   LLAMA3     (?:'[sS]|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *              (QWEN2: the same with \p{N} single digits)
 *   RUN c      c+        ONE c     c        SRUN c    \s?c+     LRUN c   " ?c+"
 *   DIGIT3     [0-9][0-9][0-9]                           TRAIL      \s+$
 *
 * The tables are Unicode 15.1 as llama.cpp's are (see
 * tools/gen_unicode_tables.py for how they are made and checked).
 */
#include "unicode.h"

#include <stdbool.h>

#include "unicode_tables.h"

static inline unsigned uflags(uint32_t cp) {
    if (cp >= 0x110000) return DP_UCAT_UNDEFINED;
    return dp_ucd_stage2[dp_ucd_stage1[cp >> 8]][cp & 255];
}

unsigned dp_unicode_flags(uint32_t cp) { return uflags(cp); }

size_t dp_unicode_seq_len(uint8_t lead) {
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[lead >> 4];
}

size_t dp_unicode_decode(const char *s, size_t n, uint32_t *cps) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0, k = 0;
    while (i < n) {
        uint8_t b = u[i];
        size_t need = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3
                    : (b & 0xF8) == 0xF0 ? 4 : 0;
        bool ok = need > 0 && i + need <= n;
        for (size_t j = 1; ok && j < need; j++) ok = (u[i + j] & 0xC0) == 0x80;
        if (!ok) { /* a stray continuation, a bad lead byte or a cut sequence */
            cps[k++] = 0xFFFD;
            i++;
            continue;
        }
        uint32_t cp = need == 1 ? b : need == 2 ? b & 0x1Fu : need == 3 ? b & 0x0Fu : b & 0x07u;
        for (size_t j = 1; j < need; j++) cp = (cp << 6) | (u[i + j] & 0x3Fu);
        cps[k++] = cp;
        i += need;
    }
    return k;
}

size_t dp_unicode_encode(uint32_t cp, char *out) {
    uint8_t *o = (uint8_t *)out;
    if (cp > 0x10FFFF) cp = 0xFFFD;
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/*
 * GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves;
 * the other 68 (0x00-0x20, 0x7F-0xA0, 0xAD) get U+0100.. in byte order.
 */
uint32_t dp_unicode_byte_to_cp(uint8_t b) {
    if (b <= 0x20) return 0x100 + b;
    if (b >= 0x7F && b <= 0xA0) return 0x100 + 33 + (b - 0x7F);
    if (b == 0xAD) return 0x100 + 67;
    return b;
}

int dp_unicode_cp_to_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp >= 0x100 && cp <= 0x100 + 32) return (int)(cp - 0x100);
    if (cp >= 0x100 + 33 && cp <= 0x100 + 66) return (int)(cp - 0x100 - 33 + 0x7F);
    if (cp == 0x100 + 67) return 0xAD;
    return -1;
}

/* ---- character classes of the regexes ---------------------------------- */

/*
 * Code point ranges of the classes that llama.cpp's DeepSeek regexes spell
 * out literally (from the models' tokenizer.json). The letter class is the
 * cased letters (Lu, Ll, Lt) of an older Unicode version.
 */
struct range { uint32_t lo, hi; };

static const struct range ds_letters[] = {
    {0x41, 0x5A}, {0x61, 0x7A}, {0xB5, 0xB5}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x1BA},
    {0x1BC, 0x1BF}, {0x1C4, 0x293}, {0x295, 0x2AF}, {0x370, 0x373}, {0x376, 0x377},
    {0x37B, 0x37D}, {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C},
    {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481}, {0x48A, 0x52F}, {0x531, 0x556},
    {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF},
    {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D},
    {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B},
    {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE},
    {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC},
    {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210A, 0x2113},
    {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128},
    {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149},
    {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE},
    {0x2CF2, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F}, {0xA771, 0xA787},
    {0xA78B, 0xA78E}, {0xAB70, 0xABBF}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A},
    {0xFF41, 0xFF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};
/* [!-/:-~！-／：-～‘-‟　-。] */
static const struct range ds_puncts[] = {
    {0x21, 0x2F}, {0x3A, 0x7E}, {0x2018, 0x201F}, {0x3000, 0x3002}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E},
};
/* [一-龥ࠀ-一가-퟿] */
static const struct range ds_cjk[] = {{0x800, 0x9FA5}, {0xAC00, 0xD7FF}};

static bool in_ranges(const struct range *r, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid].lo) hi = mid;
        else if (cp > r[mid].hi) lo = mid + 1;
        else return true;
    }
    return false;
}

enum cls {
    C_PUNCT_SYM,    /* [\p{P}\$\+<=>\^~\|] */
    C_PUNCT_SYM_BT, /* [\p{P}\$\+<=>\^~\|`] */
    C_NUMBER,       /* \p{N} */
    C_LETTER,       /* \p{L} */
    C_PUNCT,        /* \p{P} */
    C_NEWLINE,      /* [\r\n] */
    C_DS_LETTER,
    C_DS_PUNCT,
    C_DS_CJK,
    C_PORO,         /* [^(\s|.,!?…。，、।۔،)] */
};

#define DP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static bool in_class(enum cls c, uint32_t cp) {
    unsigned f = uflags(cp), cat = f & DP_UCAT_MASK;
    /* std::wregex sees non-ASCII white space as U+000B, never as itself */
    bool wspace = cp > 0x7F && (f & DP_UFLAG_SPACE);
    switch (c) {
    case C_PUNCT_SYM_BT:
        if (cp == '`') return true;
        /* fall through */
    case C_PUNCT_SYM:
        return cat == DP_UCAT_PUNCT || cp == '$' || cp == '+' || cp == '<' || cp == '=' ||
               cp == '>' || cp == '^' || cp == '~' || cp == '|';
    case C_NUMBER: return cat == DP_UCAT_NUMBER;
    case C_LETTER: return cat == DP_UCAT_LETTER;
    case C_PUNCT: return cat == DP_UCAT_PUNCT;
    case C_NEWLINE: return cp == '\r' || cp == '\n';
    case C_DS_LETTER: return !wspace && in_ranges(ds_letters, DP_ARRAY_LEN(ds_letters), cp);
    case C_DS_PUNCT: return !wspace && in_ranges(ds_puncts, DP_ARRAY_LEN(ds_puncts), cp);
    case C_DS_CJK: return !wspace && in_ranges(ds_cjk, DP_ARRAY_LEN(ds_cjk), cp);
    case C_PORO:
        return !(f & DP_UFLAG_SPACE) && cp != '(' && cp != '|' && cp != '.' && cp != ',' &&
               cp != '!' && cp != '?' && cp != 0x2026 && cp != 0x3002 && cp != 0xFF0C &&
               cp != 0x3001 && cp != 0x0964 && cp != 0x06D4 && cp != 0x060C && cp != ')';
    }
    return false;
}

/* ---- stages ------------------------------------------------------------- */

enum stage_kind { S_END, S_GPT2, S_LLAMA3, S_RUN, S_ONE, S_SRUN, S_LRUN, S_DIGIT3, S_TRAIL };

struct stage {
    uint8_t kind, cls, arg; /* arg: S_LLAMA3's longest digit group */
};

#define MAX_STAGES 7
static const struct stage pretok_stages[DP_PRETOK_COUNT][MAX_STAGES] = {
    [DP_PRETOK_DEFAULT] = {{S_RUN, C_PUNCT_SYM, 0}, {S_GPT2, 0, 0}, {S_RUN, C_NUMBER, 0}, {S_DIGIT3, 0, 0}},
    [DP_PRETOK_GPT2] = {{S_GPT2, 0, 0}},
    [DP_PRETOK_LLAMA3] = {{S_LLAMA3, 0, 3}},
    [DP_PRETOK_QWEN2] = {{S_LLAMA3, 0, 1}},
    [DP_PRETOK_DEEPSEEK_LLM] = {{S_ONE, C_NEWLINE, 0}, {S_SRUN, C_DS_LETTER, 0}, {S_SRUN, C_DS_PUNCT, 0},
                                {S_TRAIL, 0, 0}, {S_RUN, C_DS_CJK, 0}, {S_RUN, C_NUMBER, 0}},
    [DP_PRETOK_DEEPSEEK_CODER] = {{S_ONE, C_NEWLINE, 0}, {S_SRUN, C_LETTER, 0}, {S_SRUN, C_PUNCT, 0},
                                  {S_RUN, C_DS_CJK, 0}, {S_ONE, C_NUMBER, 0}},
    [DP_PRETOK_FALCON] = {{S_RUN, C_PUNCT_SYM_BT, 0}, {S_GPT2, 0, 0}, {S_DIGIT3, 0, 0}},
    [DP_PRETOK_STARCODER] = {{S_ONE, C_NUMBER, 0}, {S_GPT2, 0, 0}},
    [DP_PRETOK_PORO] = {{S_LRUN, C_PORO, 0}},
};

/* Word ends being collected for one stage. */
struct emitter {
    uint32_t *ends;
    size_t n;
    size_t last; /* end of the last word emitted */
};

static void emit(struct emitter *em, size_t end) {
    if (end > em->last) {
        em->ends[em->n++] = (uint32_t)end;
        em->last = end;
    }
}

/* Flags of cps[i] inside a word [.., e), or -1 outside it (llama.cpp's empty flags). */
static inline int fl(const uint32_t *cps, size_t i, size_t e) {
    return i < e ? (int)uflags(cps[i]) : -1;
}
static inline bool is_l(int f) { return f >= 0 && (f & DP_UCAT_MASK) == DP_UCAT_LETTER; }
static inline bool is_n(int f) { return f >= 0 && (f & DP_UCAT_MASK) == DP_UCAT_NUMBER; }
static inline bool is_s(int f) { return f >= 0 && (f & DP_UFLAG_SPACE); }
/* [^\s\p{L}\p{N}] */
static inline bool is_other(int f) { return f >= 0 && !is_s(f) && !is_l(f) && !is_n(f); }

static inline uint32_t lower_ascii(uint32_t cp) { return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp; }

/*
 * 's|'t|'re|'ve|'m|'ll|'d at pos (case-insensitive for Llama 3): its length or 0.
 */
static size_t contraction(const uint32_t *c, size_t pos, size_t e, bool fold) {
    if (c[pos] != '\'' || pos + 1 >= e) return 0;
    uint32_t a = fold ? lower_ascii(c[pos + 1]) : c[pos + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 >= e) return 0;
    uint32_t b = fold ? lower_ascii(c[pos + 2]) : c[pos + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

/* Trailing white space: \s+(?!\S) leaves the last space of a run before a non-space. */
static size_t space_run(const uint32_t *c, size_t pos, size_t e) {
    size_t k = 0;
    while (is_s(fl(c, pos + k, e))) k++;
    if (k > 1 && pos + k < e) return k - 1;
    return k;
}

static void split_gpt2(const uint32_t *c, size_t b, size_t e, struct emitter *em) {
    size_t pos = b;
    while (pos < e) {
        size_t k = contraction(c, pos, e, false);
        if (k) {
            emit(em, pos += k);
            continue;
        }
        bool sp = c[pos] == ' ';
        int f2 = sp ? fl(c, pos + 1, e) : fl(c, pos, e);
        if (is_l(f2) || is_n(f2) || is_other(f2)) { /* " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+" */
            bool (*same)(int) = is_l(f2) ? is_l : is_n(f2) ? is_n : is_other;
            pos += sp;
            while (same(fl(c, pos, e))) pos++;
            emit(em, pos);
            continue;
        }
        k = space_run(c, pos, e);
        emit(em, pos += k ? k : 1);
    }
}

static void split_llama3(const uint32_t *c, size_t b, size_t e, size_t max_digits,
                         struct emitter *em) {
    size_t pos = b;
    while (pos < e) {
        uint32_t cp = c[pos];
        int f = fl(c, pos, e);
        size_t k = contraction(c, pos, e, true);
        if (k) {
            emit(em, pos += k);
            continue;
        }
        /* [^\r\n\p{L}\p{N}]?\p{L}+ */
        if (!(cp == '\r' || cp == '\n' || is_n(f)) && (is_l(f) || is_l(fl(c, pos + 1, e)))) {
            pos++;
            while (is_l(fl(c, pos, e))) pos++;
            emit(em, pos);
            continue;
        }
        /* \p{N}{1,max_digits} */
        if (is_n(f)) {
            size_t ini = pos;
            while (is_n(fl(c, pos, e))) {
                if (++pos - ini >= max_digits) {
                    emit(em, pos);
                    ini = pos;
                }
            }
            emit(em, pos);
            continue;
        }
        /* " ?[^\s\p{L}\p{N}]+[\r\n]*" (a lone space at the end of a word lands here too) */
        int f2 = cp == ' ' ? fl(c, pos + 1, e) : f;
        if (!(is_s(f2) || is_l(f2) || is_n(f2))) {
            pos += cp == ' ';
            while (is_other(fl(c, pos, e))) pos++;
            while (pos < e && (c[pos] == '\r' || c[pos] == '\n')) pos++;
            emit(em, pos);
            continue;
        }
        /* \s*[\r\n]+ up to the last line break of the run, else \s+(?!\S), else \s+ */
        size_t last_nl = 0;
        k = 0;
        while (is_s(fl(c, pos + k, e))) {
            if (c[pos + k] == '\r' || c[pos + k] == '\n') last_nl = pos + k + 1;
            k++;
        }
        if (last_nl) {
            emit(em, pos = last_nl);
            continue;
        }
        k = space_run(c, pos, e);
        emit(em, pos += k ? k : 1);
    }
}

/* Length of the match of a search-style stage at pos (0: none). */
static size_t match_at(const struct stage *st, const uint32_t *c, size_t pos, size_t e) {
    enum cls cl = (enum cls)st->cls;
    size_t k = 0;
    switch (st->kind) {
    case S_RUN:
        while (pos + k < e && in_class(cl, c[pos + k])) k++;
        return k;
    case S_ONE:
        return in_class(cl, c[pos]) ? 1 : 0;
    case S_SRUN: /* \s?X+ : the optional space is taken only if X follows */
    case S_LRUN: /* " ?X+" */
        if (pos + 1 < e && (st->kind == S_SRUN ? is_s(fl(c, pos, e)) : c[pos] == ' ') &&
            in_class(cl, c[pos + 1]))
            k = 1;
        while (pos + k < e && in_class(cl, c[pos + k])) k++;
        return k;
    case S_DIGIT3:
        for (k = 0; k < 3; k++)
            if (pos + k >= e || c[pos + k] < '0' || c[pos + k] > '9') return 0;
        return 3;
    }
    return 0;
}

static void split_search(const struct stage *st, const uint32_t *c, size_t b, size_t e,
                         struct emitter *em) {
    if (st->kind == S_TRAIL) { /* \s+$ matches the white space that ends the word */
        size_t t = e;
        while (t > b && is_s(fl(c, t - 1, e))) t--;
        emit(em, t);
        emit(em, e);
        return;
    }
    size_t pos = b;
    while (pos < e) {
        size_t k = match_at(st, c, pos, e);
        if (!k) {
            pos++;
            continue;
        }
        emit(em, pos); /* the gap before the match, if any */
        emit(em, pos += k);
    }
    emit(em, e);
}

size_t dp_unicode_split(enum dp_pretok kind, const uint32_t *cps, size_t n, uint32_t *ends,
                        uint32_t *tmp) {
    if (n == 0) return 0;
    uint32_t *in = tmp, *out = ends;
    size_t n_in = 1;
    in[0] = (uint32_t)n;
    for (const struct stage *st = pretok_stages[kind]; st < pretok_stages[kind] + MAX_STAGES &&
                                                       st->kind != S_END; st++) {
        struct emitter em = {out, 0, 0};
        size_t b = 0;
        for (size_t w = 0; w < n_in; w++) {
            size_t e = in[w];
            em.last = b;
            if (st->kind == S_GPT2) split_gpt2(cps, b, e, &em);
            else if (st->kind == S_LLAMA3) split_llama3(cps, b, e, st->arg, &em);
            else split_search(st, cps, b, e, &em);
            b = e;
        }
        uint32_t *t = in;
        in = out;
        out = t;
        n_in = em.n;
    }
    if (in != ends)
        for (size_t w = 0; w < n_in; w++) ends[w] = in[w];
    return n_in;
}
