/*
 * types: GGUF tensor type geometry and half-precision conversions.
 */
#include "types.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct dp_type_traits traits[DP_TYPE_COUNT] = {
    [DP_TYPE_F32] = {"F32", 1, 4},         [DP_TYPE_F16] = {"F16", 1, 2},
    [DP_TYPE_Q4_0] = {"Q4_0", 32, 18},     [DP_TYPE_Q4_1] = {"Q4_1", 32, 20},
    [DP_TYPE_Q5_0] = {"Q5_0", 32, 22},     [DP_TYPE_Q5_1] = {"Q5_1", 32, 24},
    [DP_TYPE_Q8_0] = {"Q8_0", 32, 34},     [DP_TYPE_Q8_1] = {"Q8_1", 32, 36},
    [DP_TYPE_Q2_K] = {"Q2_K", 256, 84},    [DP_TYPE_Q3_K] = {"Q3_K", 256, 110},
    [DP_TYPE_Q4_K] = {"Q4_K", 256, 144},   [DP_TYPE_Q5_K] = {"Q5_K", 256, 176},
    [DP_TYPE_Q6_K] = {"Q6_K", 256, 210},   [DP_TYPE_Q8_K] = {"Q8_K", 256, 292},
    [DP_TYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66}, [DP_TYPE_IQ2_XS] = {"IQ2_XS", 256, 74},
    [DP_TYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98}, [DP_TYPE_IQ1_S] = {"IQ1_S", 256, 50},
    [DP_TYPE_IQ4_NL] = {"IQ4_NL", 32, 18}, [DP_TYPE_IQ3_S] = {"IQ3_S", 256, 110},
    [DP_TYPE_IQ2_S] = {"IQ2_S", 256, 82},  [DP_TYPE_IQ4_XS] = {"IQ4_XS", 256, 136},
    [DP_TYPE_I8] = {"I8", 1, 1},           [DP_TYPE_I16] = {"I16", 1, 2},
    [DP_TYPE_I32] = {"I32", 1, 4},         [DP_TYPE_I64] = {"I64", 1, 8},
    [DP_TYPE_F64] = {"F64", 1, 8},         [DP_TYPE_IQ1_M] = {"IQ1_M", 256, 56},
    [DP_TYPE_BF16] = {"BF16", 1, 2},       [DP_TYPE_TQ1_0] = {"TQ1_0", 256, 54},
    [DP_TYPE_TQ2_0] = {"TQ2_0", 256, 66},
};

const struct dp_type_traits *dp_type_traits(uint32_t type) {
    if (type >= DP_TYPE_COUNT || !traits[type].name) return NULL;
    return &traits[type];
}

const char *dp_type_name(uint32_t type) {
    static _Thread_local char buf[32];
    const struct dp_type_traits *t = dp_type_traits(type);
    if (t) return t->name;
    snprintf(buf, sizeof buf, "type%u", type);
    return buf;
}

int dp_type_from_name(const char *name) {
    for (int i = 0; i < DP_TYPE_COUNT; i++)
        if (traits[i].name && strcasecmp(traits[i].name, name) == 0) return i;
    return -1;
}

size_t dp_type_row_bytes(uint32_t type, int64_t n) {
    const struct dp_type_traits *t = dp_type_traits(type);
    return (size_t)(n / t->block_size) * t->block_bytes;
}

float dp_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t dp_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff);
    uint32_t man = x & 0x7fffff;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    int32_t e = exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* may carry into exponent: fine */
    return (uint16_t)(sign | half);
}

float dp_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t dp_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 64); /* quiet NaN */
    return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}
