/*
 * unicode: code points as llama.cpp's tokenizer sees them.
 *
 * Three things live here because byte-level BPE needs them and nothing else
 * does: a UTF-8 decoder that never fails (it decodes the way llama.cpp's
 * unicode_cpts_from_utf8 does: lax about overlong forms and surrogates, one
 * U+FFFD per byte it cannot use), per-code-point category flags (Unicode 15.1,
 * the version of llama.cpp's tables, generated into unicode_tables.h by
 * tools/gen_unicode_tables.py), GPT-2's byte-to-code-point map, and the
 * pre-tokenizers: the regex cascades llama.cpp applies per
 * `tokenizer.ggml.pre`, written as hand-made matchers that give the same
 * splits as its custom splitters and its std::regex fallbacks.
 */
#ifndef DP_UNICODE_H
#define DP_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Category class of a code point (bits 0-2 of its flags). */
enum dp_ucat {
    DP_UCAT_UNDEFINED = 0, /* unassigned (Cn), and anything past U+10FFFF */
    DP_UCAT_NUMBER = 1,    /* \p{N} */
    DP_UCAT_LETTER = 2,    /* \p{L} */
    DP_UCAT_SEPARATOR = 3, /* \p{Z} */
    DP_UCAT_MARK = 4,      /* \p{M} */
    DP_UCAT_PUNCT = 5,     /* \p{P} */
    DP_UCAT_SYMBOL = 6,    /* \p{S} */
    DP_UCAT_CONTROL = 7,   /* Cc, Cf, Cs, Co */
};
#define DP_UCAT_MASK 0x07
#define DP_UFLAG_SPACE 0x08 /* White_Space: what \s matches in llama.cpp's splits */

/* Category class | DP_UFLAG_SPACE of code point cp. */
unsigned dp_unicode_flags(uint32_t cp);

/* Length of the UTF-8 sequence a lead byte announces (1 for continuation bytes). */
size_t dp_unicode_seq_len(uint8_t lead);

/*
 * Decode the n bytes of s into code points (cps has room for n); returns how
 * many. Invalid sequences give U+FFFD and consume one byte; overlong forms,
 * surrogates and values up to 0x1FFFFF decode as written (as in llama.cpp).
 */
size_t dp_unicode_decode(const char *s, size_t n, uint32_t *cps);

/* Encode cp as UTF-8 into out (4 bytes); returns the length. cp > 0x10FFFF encodes U+FFFD. */
size_t dp_unicode_encode(uint32_t cp, char *out);

/* GPT-2's byte-level map: the code point that stands for byte b in BPE pieces. */
uint32_t dp_unicode_byte_to_cp(uint8_t b);
/* The byte code point cp stands for, or -1 if it stands for none. */
int dp_unicode_cp_to_byte(uint32_t cp);

/* Pre-tokenizer families (llama.cpp's LLAMA_VOCAB_PRE_TYPE_* that share a regex cascade). */
enum dp_pretok {
    DP_PRETOK_DEFAULT,        /* no or "default" tokenizer.ggml.pre, gpt-neox */
    DP_PRETOK_GPT2,           /* gpt-2, mpt, olmo, ... */
    DP_PRETOK_LLAMA3,         /* llama3, llama-bpe, dbrx, smaug-bpe, ... */
    DP_PRETOK_QWEN2,          /* qwen2, stablelm2, ... (llama3 with single digits) */
    DP_PRETOK_DEEPSEEK_LLM,
    DP_PRETOK_DEEPSEEK_CODER,
    DP_PRETOK_FALCON,
    DP_PRETOK_STARCODER,      /* starcoder, refact, command-r, smollm, ... */
    DP_PRETOK_PORO,           /* poro-chat, bloom, gpt3-finnish */
    DP_PRETOK_COUNT,
};

/*
 * Split the n code points cps into words as pre-tokenizer `kind` does.
 * Writes the end offset of each word to ends and returns the word count;
 * ends and tmp each have room for n entries (n words at most). The words
 * cover all of cps, in order, none empty.
 */
size_t dp_unicode_split(enum dp_pretok kind, const uint32_t *cps, size_t n, uint32_t *ends,
                        uint32_t *tmp);

#endif
