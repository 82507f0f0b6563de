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

/*
 * The type a row of n_in values gets when `type` asks for it, as
 * llama-quantize falls back when a row is not a whole number of blocks:
 * Q2_K, Q3_K, IQ4_XS -> IQ4_NL; Q4_K -> Q5_0; Q5_K -> Q5_1; Q6_K -> Q8_0;
 * then, and for any other type, F16 when the row still does not fit.
 * `type` itself when it fits.
 */
uint32_t dp_quantize_fallback(uint32_t type, int64_t n_in);

/*
 * llama-quantize's preset mixes (its ftypes) for llama-family models:
 * Q2_K_MIX (llama-quantize's "Q2_K" preset; "Q2_K" alone names the pure
 * type), Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M.
 */
enum dp_quant_mix {
    DP_MIX_NONE = -1, DP_MIX_Q2_K, DP_MIX_Q3_K_S, DP_MIX_Q3_K_M, DP_MIX_Q3_K_L, DP_MIX_Q4_K_S,
    DP_MIX_Q4_K_M, DP_MIX_Q5_K_S, DP_MIX_Q5_K_M, DP_MIX_COUNT
};
/* The mix of a name ("Q4_K_M", case-insensitive), or DP_MIX_NONE. */
int dp_quantize_mix_from_name(const char *name);
/* The name of a mix ("Q2_K_MIX", "Q4_K_M"). */
const char *dp_quantize_mix_name(int mix);
/*
 * The type llama-quantize (without --pure or an importance matrix) gives a
 * 2-D weight tensor under `mix`, as its llama_tensor_get_type does for a
 * dense llama-family model: `name` is the GGUF tensor name, `layer` its
 * block (-1 outside blocks), n_layers the block count, n_gqa = heads / KV
 * heads, n_in its row length, has_output whether the file has an
 * output.weight (otherwise token_embd is the head and is typed as one).
 * Includes the fallback for rows that are not whole blocks (output: Q8_0).
 * Not modelled: the 70B and expert rules, falcon.
 */
uint32_t dp_quantize_mix_type(int mix, const char *name, int layer, int n_layers, int n_gqa, int64_t n_in,
                              bool has_output);

#endif
