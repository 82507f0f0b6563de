/*
 * quantize: f32 rows to GGUF weight types with llama.cpp's reference rounding.
 */
#ifndef DP_QUANTIZE_H
#define DP_QUANTIZE_H

#include "base.h"
#include "types.h"

/*
 * Quantize n f32 values (a whole number of blocks of `type`) into a row of
 * `type`, byte for byte as llama.cpp's reference quantizer without an
 * importance matrix. Fails (DP_ERR_UNSUPPORTED) for a type it cannot write
 * and (DP_ERR_ARG) when n is not a multiple of the block size.
 */
dp_status dp_quantize_row(uint32_t type, const float *x, void *row, int64_t n);

/*
 * Whether dp_quantize_row writes `type`: F32, F16, BF16, Q4_0, Q4_1, Q5_0,
 * Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS.
 */
bool dp_quantize_supported(uint32_t type);

#endif
