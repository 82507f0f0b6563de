/*
 * types: the table of GGUF tensor types. Every type ggml defines is listed
 * with its block geometry, so a file in any type is validated byte for byte;
 * the compute side (row dequantization, dot products) is filled in per type
 * by kernels.c and says clearly when a type has no kernels yet.
 */
#ifndef DP_TYPES_H
#define DP_TYPES_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

enum dp_type {
    DP_TYPE_F32 = 0, DP_TYPE_F16 = 1, DP_TYPE_Q4_0 = 2, DP_TYPE_Q4_1 = 3,
    DP_TYPE_Q5_0 = 6, DP_TYPE_Q5_1 = 7, DP_TYPE_Q8_0 = 8, DP_TYPE_Q8_1 = 9,
    DP_TYPE_Q2_K = 10, DP_TYPE_Q3_K = 11, DP_TYPE_Q4_K = 12, DP_TYPE_Q5_K = 13,
    DP_TYPE_Q6_K = 14, DP_TYPE_Q8_K = 15, DP_TYPE_IQ2_XXS = 16, DP_TYPE_IQ2_XS = 17,
    DP_TYPE_IQ3_XXS = 18, DP_TYPE_IQ1_S = 19, DP_TYPE_IQ4_NL = 20, DP_TYPE_IQ3_S = 21,
    DP_TYPE_IQ2_S = 22, DP_TYPE_IQ4_XS = 23, DP_TYPE_I8 = 24, DP_TYPE_I16 = 25,
    DP_TYPE_I32 = 26, DP_TYPE_I64 = 27, DP_TYPE_F64 = 28, DP_TYPE_IQ1_M = 29,
    DP_TYPE_BF16 = 30, DP_TYPE_TQ1_0 = 34, DP_TYPE_TQ2_0 = 35,
    DP_TYPE_COUNT = 36
};

struct dp_type_traits {
    const char *name;     /* NULL for numbers ggml does not define */
    int block_size;       /* elements per block */
    size_t block_bytes;   /* bytes per block */
};

/* Traits of a type, or NULL if `type` is not a defined ggml type. */
const struct dp_type_traits *dp_type_traits(uint32_t type);
/* Name of a type ("Q8_0"), or "type<N>" for an unknown one (static buffer per thread). */
const char *dp_type_name(uint32_t type);
/* Type from its name (case-insensitive), or -1. */
int dp_type_from_name(const char *name);
/* Bytes of a row of n elements (n must be a multiple of the block size). */
size_t dp_type_row_bytes(uint32_t type, int64_t n);

/* IEEE half and bfloat16 conversions (round to nearest even). */
float dp_f16_to_f32(uint16_t h);
uint16_t dp_f32_to_f16(float f);
float dp_bf16_to_f32(uint16_t h);
uint16_t dp_f32_to_bf16(float f);

#endif
