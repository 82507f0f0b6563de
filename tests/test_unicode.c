/*
 * test_unicode: category flags at the edges that matter (ASCII, white space,
 * Unicode 15.0 and 15.1 additions), the lax UTF-8 decoder on bad input,
 * GPT-2's byte map, and every pre-tokenizer on two mixed texts. The expected
 * splits come from the regexes themselves (Python's backtracking re with the
 * classes spelled out, mirroring llama.cpp's std::regex/std::wregex use).
 */
#include <stdint.h>

#include "harness.h"
#include "unicode.h"

static void test_flags(void) {
    static const struct {
        uint32_t cp;
        unsigned flags;
    } cases[] = {
        {'a', DP_UCAT_LETTER}, {'Z', DP_UCAT_LETTER}, {'7', DP_UCAT_NUMBER}, {'!', DP_UCAT_PUNCT},
        {'$', DP_UCAT_SYMBOL}, {'`', DP_UCAT_SYMBOL}, {'_', DP_UCAT_PUNCT}, {' ', DP_UCAT_SEPARATOR | DP_UFLAG_SPACE},
        {'\n', DP_UCAT_CONTROL | DP_UFLAG_SPACE}, {0x0B, DP_UCAT_CONTROL | DP_UFLAG_SPACE},
        {0x1C, DP_UCAT_CONTROL}, /* not White_Space (Python's isspace says otherwise) */
        {0x85, DP_UCAT_CONTROL | DP_UFLAG_SPACE}, {0xA0, DP_UCAT_SEPARATOR | DP_UFLAG_SPACE},
        {0x2028, DP_UCAT_SEPARATOR | DP_UFLAG_SPACE}, {0x3000, DP_UCAT_SEPARATOR | DP_UFLAG_SPACE},
        {0x200B, DP_UCAT_CONTROL}, {0xAD, DP_UCAT_CONTROL}, {0xB2, DP_UCAT_NUMBER}, {0xB5, DP_UCAT_LETTER},
        {0x300, DP_UCAT_MARK}, {0x4E00, DP_UCAT_LETTER}, {0x378, DP_UCAT_UNDEFINED},
        {0xD800, DP_UCAT_CONTROL}, {0xE000, DP_UCAT_CONTROL}, {0xFFFD, DP_UCAT_SYMBOL},
        {0x1F600, DP_UCAT_SYMBOL}, {0x0CF3, DP_UCAT_MARK} /* 15.0 */, {0x31EF, DP_UCAT_SYMBOL} /* 15.1 */,
        {0x2EBF0, DP_UCAT_LETTER} /* 15.1 */, {0x2EE5E, DP_UCAT_UNDEFINED}, {0x1C89, DP_UCAT_UNDEFINED} /* 16.0 */,
        {0x10FFFF, DP_UCAT_UNDEFINED}, {0x110000, DP_UCAT_UNDEFINED}, {0x1FFFFF, DP_UCAT_UNDEFINED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned f = dp_unicode_flags(cases[i].cp);
        CHECK_MSG(f == cases[i].flags, "U+%04X: flags %u, want %u", (unsigned)cases[i].cp, f, cases[i].flags);
    }
}

static void test_utf8(void) {
    static const struct {
        const char *s;
        size_t n;
        uint32_t cps[6];
        size_t n_cps;
    } cases[] = {
        {"a\xc3\xa9", 3, {'a', 0xE9}, 2},
        {"\x80", 1, {0xFFFD}, 1},                          /* stray continuation */
        {"\xc3", 1, {0xFFFD}, 1},                          /* cut */
        {"\xe2\x82x", 3, {0xFFFD, 0xFFFD, 'x'}, 3},        /* bad third byte: one U+FFFD per byte */
        {"\xc0\x80", 2, {0}, 1},                           /* overlong, decoded as written */
        {"\xed\xa0\x80", 3, {0xD800}, 1},                  /* surrogate */
        {"\xf7\xbf\xbf\xbf", 4, {0x1FFFFF}, 1},            /* past U+10FFFF */
        {"\xf8\x88\x80\x80\x80", 5, {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}, 5},
        {"\xf0\x9f\xa6\x99", 4, {0x1F999}, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t got[8];
        size_t n = dp_unicode_decode(cases[i].s, cases[i].n, got);
        CHECK_MSG(n == cases[i].n_cps && !memcmp(got, cases[i].cps, n * sizeof *got), "case %zu: %zu code points", i, n);
    }
    char buf[4];
    CHECK_EQ_INT(dp_unicode_encode(0x1FFFFF, buf), 3);
    CHECK(!memcmp(buf, "\xef\xbf\xbd", 3));
    int round_trip = 1;
    for (uint32_t cp = 0; cp < 0x110000; cp += 7) {
        uint32_t back;
        size_t n = dp_unicode_encode(cp, buf);
        round_trip &= dp_unicode_decode(buf, n, &back) == 1 && back == cp;
    }
    CHECK(round_trip);
    CHECK_EQ_INT(dp_unicode_seq_len(0x41), 1);
    CHECK_EQ_INT(dp_unicode_seq_len(0x9F), 1);
    CHECK_EQ_INT(dp_unicode_seq_len(0xC3), 2);
    CHECK_EQ_INT(dp_unicode_seq_len(0xE2), 3);
    CHECK_EQ_INT(dp_unicode_seq_len(0xF8), 4);
}

static void test_byte_map(void) {
    uint8_t seen[512] = {0};
    int ok = 1;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = dp_unicode_byte_to_cp((uint8_t)b);
        ok &= cp < 512 && !seen[cp] && dp_unicode_cp_to_byte(cp) == b;
        if (cp < 512) seen[cp] = 1;
    }
    CHECK(ok);
    CHECK_EQ_INT(dp_unicode_byte_to_cp(' '), 0x120);  /* "Ġ" */
    CHECK_EQ_INT(dp_unicode_byte_to_cp('\n'), 0x10A); /* "Ċ" */
    CHECK_EQ_INT(dp_unicode_byte_to_cp(0xAD), 0x143);
    CHECK_EQ_INT(dp_unicode_byte_to_cp('a'), 'a');
    CHECK_EQ_INT(dp_unicode_cp_to_byte(0x144), -1);
    CHECK_EQ_INT(dp_unicode_cp_to_byte(0x20), -1);
}

static const char *const texts[] = {
    "Hello world's 12345 ,,, \xc3\xa9t\xc3\xa9  \n\n x\xe3\x80\x80y 3.14 abc\xe2\x80\xa6" "def",
    "I'VE  been\t\ttold 'RE 1234567 <|x|> $50+5=\xc2\xa0\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97 "
    "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7 !!\r\n  ",
};

/* text, pre-tokenizer, words joined by '/' */
static const struct {
    int text, kind;
    const char *words;
} splits[] = {
    {0, 0, "Hello/ world/'/s/ /123/45/ /,,,/ \xc3\xa9t\xc3\xa9/  \x0a\x0a/ x/\xe3\x80\x80/y/ /3/./14/ abc/\xe2\x80\xa6/def"},
    {0, 1, "Hello/ world/'s/ 12345/ ,,,/ \xc3\xa9t\xc3\xa9/  \x0a\x0a/ x/\xe3\x80\x80/y/ 3/./14/ abc/\xe2\x80\xa6/def"},
    {0, 2, "Hello/ world/'s/ /123/45/ ,,,/ \xc3\xa9t\xc3\xa9/  \x0a\x0a/ x/\xe3\x80\x80y/ /3/./14/ abc/\xe2\x80\xa6""def"},
    {0, 3, "Hello/ world/'s/ /1/2/3/4/5/ ,,,/ \xc3\xa9t\xc3\xa9/  \x0a\x0a/ x/\xe3\x80\x80y/ /3/./1/4/ abc/\xe2\x80\xa6""def"},
    {0, 4, "Hello/ world/'/s/ /12345/ ,,,/ \xc3\xa9/t/\xc3\xa9/  /\x0a/\x0a/ x/\xe3\x80\x80y/ /3/./14/ abc/\xe2\x80\xa6/def"},
    {0, 5, "Hello/ world/'/s/ /1/2/3/4/5/ ,,,/ \xc3\xa9t\xc3\xa9/  /\x0a/\x0a/ x/\xe3\x80\x80y/ /3/./1/4/ abc/\xe2\x80\xa6/def"},
    {0, 6, "Hello/ world/'/s/ /123/45/ /,,,/ \xc3\xa9t\xc3\xa9/  \x0a\x0a/ x/\xe3\x80\x80/y/ 3/./14/ abc/\xe2\x80\xa6/def"},
    {0, 7, "Hello/ world/'s/ /1/2/3/4/5/ ,,,/ \xc3\xa9t\xc3\xa9/  \x0a\x0a/ x/\xe3\x80\x80/y/ /3/./1/4/ abc/\xe2\x80\xa6/def"},
    {0, 8, "Hello/ world's/ 12345/ ,,,/ \xc3\xa9t\xc3\xa9/  \x0a\x0a/ x/\xe3\x80\x80/y/ 3/./14/ abc/\xe2\x80\xa6/def"},
    {1, 0, "I/'/VE/ / been/\x09/\x09/told/ /'/RE/ /123/456/7/ /<|/x/|>/ /$/50/+/5/=/\xc2\xa0/\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97/ \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7/ /!!/\x0d\x0a  "},
    {1, 1, "I/'/VE/ / been/\x09/\x09/told/ '/RE/ 1234567/ <|/x/|>/ $/50/+/5/=/\xc2\xa0/\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97/ \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7/ !!/\x0d\x0a  "},
    {1, 2, "I/'VE/ / been/\x09/\x09told/ '/RE/ /123/456/7/ <|/x/|>/ $/50/+/5/=/\xc2\xa0\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97/ \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7/ !!\x0d\x0a/  "},
    {1, 3, "I/'VE/ / been/\x09/\x09told/ '/RE/ /1/2/3/4/5/6/7/ <|/x/|>/ $/5/0/+/5/=/\xc2\xa0\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97/ \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7/ !!\x0d\x0a/  "},
    {1, 4, "I/'/VE/ / been/\x09/\x09told/ '/RE/ /1234567/ <|/x/|>/ $/50/+/5/=/\xc2\xa0/\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97/ \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7/ !!/\x0d/\x0a/  "},
    {1, 5, "I/'/VE/ / been/\x09/\x09told/ '/RE/ /1/2/3/4/5/6/7/ <|/x/|> $/5/0/+/5/=/\xc2\xa0/\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97/ \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7/ !!/\x0d/\x0a/  "},
    {1, 6, "I/'/VE/ / been/\x09/\x09/told/ /'/RE/ /123/456/7/ /<|/x/|>/ /$/50/+/5/=/\xc2\xa0/\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97/ \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7/ /!!/\x0d\x0a  "},
    {1, 7, "I/'/VE/ / been/\x09/\x09/told/ '/RE/ /1/2/3/4/5/6/7/ <|/x/|>/ $/5/0/+/5/=/\xc2\xa0/\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97/ \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7/ !!/\x0d\x0a  "},
    {1, 8, "I'VE/ / been/\x09\x09/told/ 'RE/ 1234567/ </|/x/|/>/ $50+5=/\xc2\xa0/\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97/ \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7/ !!\x0d\x0a  "},
};

static void test_splits(void) {
    for (size_t i = 0; i < sizeof splits / sizeof splits[0]; i++) {
        const char *s = texts[splits[i].text];
        size_t len = strlen(s);
        uint32_t cps[256], ends[256], tmp[256];
        size_t n = dp_unicode_decode(s, len, cps);
        size_t nw = dp_unicode_split((enum dp_pretok)splits[i].kind, cps, n, ends, tmp);
        char got[1024];
        size_t g = 0, b = 0;
        for (size_t w = 0; w < nw; w++) {
            if (w) got[g++] = '/';
            for (size_t k = b; k < ends[w]; k++) g += dp_unicode_encode(cps[k], got + g);
            b = ends[w];
        }
        got[g] = 0;
        CHECK_MSG(b == n && !strcmp(got, splits[i].words), "text %d, pre-tokenizer %d:\n  got  %s\n  want %s",
                  splits[i].text, splits[i].kind, got, splits[i].words);
    }
    uint32_t none[1], e[1], t[1];
    CHECK_EQ_INT(dp_unicode_split(DP_PRETOK_GPT2, none, 0, e, t), 0);
}

int main(void) {
    test_flags();
    test_utf8();
    test_byte_map();
    test_splits();
    return TEST_END();
}
