/*
 * export: a pruned model (the mapped original, a unit mask, an optional
 * recovery) written as a smaller GGUF file that depthprune and llama.cpp
 * load, in the encodings ../shared/docs/EXPORT.md records as exact.
 *
 *  - A removed block is deleted; later blocks are renumbered, block_count
 *    set and every per-layer metadata array (an `<arch>.` array of
 *    block_count entries) filtered the same way.
 *  - The constant of a removed unit (a `mean` recovery, or the c of a
 *    low-rank one) goes into the ffn_down.bias of the last FFN that runs
 *    before the unit (created zero-filled when absent; for a removed FFN that
 *    is its own zero placeholder), or into every row of token_embd when no
 *    FFN runs before it, with an explicit output.weight (a copy of the
 *    original embedding) when the head was tied.
 *  - Sublayer removal switches the file to arch `deci` (llama, mistral
 *    sources): per-layer INT32 arrays head_count, head_count_kv,
 *    feed_forward_length; a removed attention leaves an attention-free
 *    block (0 heads, attention tensors deleted, no KV cache), except in
 *    block 0, which gets linear attention with a zero weight; a removed FFN
 *    leaves a zero FFN of width 32 whose ffn_down.bias holds the constant.
 *  - A low-rank replacement x + B A n(x) + c sits in an FFN slot of width R
 *    (rounded up to 32 for quantized output): ffn_norm = n's weight,
 *    ffn_gate = 0 with ffn_gate.bias = 1 (so the gate is silu(1)),
 *    ffn_up = A, ffn_down = B / silu(1), ffn_down.bias = c. A replaced
 *    attention gets an extra attention-free block before its own, holding
 *    the map; a replaced FFN or block uses its own slot.
 *
 * Everything else is copied byte for byte (metadata pairs and tensors,
 * quantized ones keeping type and bytes). New or modified matrices are
 * written in opts->out_type, or with DP_EXPORT_SOURCE_TYPES (the CLI's
 * default) in the type of their counterpart in the source: token_embd
 * with a folded constant in token_embd's type; the zero FFN, low-rank map
 * or zero linear attention of output block i in the types of the source
 * block's ffn_gate / ffn_up / ffn_down / attn_output (the same kind in
 * another block when it has none, F32 when no block has one). So a Q4_K_M
 * model stays a Q4_K_M-sized file. A row that is not a whole number of
 * blocks of that type (a ffn_down of width 32 or R) takes llama-quantize's
 * fallback (dp_quantize_fallback: Q4_K -> Q5_0, Q6_K -> Q8_0, ...), a
 * source type the quantizer cannot write takes Q8_0. Vectors: a modified
 * ffn_down.bias keeps its type, new ones (biases, norm weights) are F32, as
 * llama.cpp's converters and llama-quantize keep 1-D tensors. Provenance
 * goes into `depthprune.*` keys (depthprune.out_type: the type asked for,
 * or "source"), which loading never reads. Output is atomic (temporary
 * file, then rename) and never replaces the model's own file.
 */
#ifndef DP_EXPORT_H
#define DP_EXPORT_H

#include "model.h"
#include "recover.h"

/* opts->out_type: each new or modified matrix in the type of its counterpart in the source */
#define DP_EXPORT_SOURCE_TYPES 0xffffffffu

struct dp_export_opts {
    uint32_t out_type;          /* DP_EXPORT_SOURCE_TYPES, or a type dp_quantize_row writes
                                   (F32 is 0: a zeroed struct or NULL opts writes F32) */
    /* provenance (NULL when unknown or not applicable) */
    const char *removed;        /* removed units in removal order ("b2,a4"); NULL: from the mask */
    const char *metric, *scheme, *calib, *plan;
};

/* What was written. */
struct dp_export_info {
    char arch[32];              /* of the output: the source's, or "deci" */
    int n_blocks;               /* output blocks */
    char sha256[65];            /* of the source file */
    bool lossless;              /* every new or modified tensor reads back exactly as computed */
    int n_fallback;             /* new or modified matrices in a fallback type (rows not whole blocks) */
};

/*
 * Write model m pruned by `mask` (units removed where attn[i]/ffn[i] are
 * false), with the replacements of `rec` (may be NULL; a replacement counts
 * only for a removed unit, as in the forward pass's hooks) to `path`.
 * Needs a GGUF source. Fails with one message (bad type, shapes that an
 * encoding cannot hold, nothing left, path == the source, I/O), leaving no
 * output file behind.
 */
dp_status dp_export(const struct dp_model *m, const struct dp_mask *mask, const struct dp_recovery *rec,
                    const struct dp_export_opts *opts, const char *path, struct dp_export_info *info);

#endif
