/*
 * tokenizer (internal side): building a tokenizer from a GGUF file's
 * `tokenizer.ggml.*` metadata (SentencePiece "llama" and byte-level BPE
 * "gpt2" models) or from a llama2.c tok512.bin file. The public calls
 * (dp_tokenize, dp_detokenize...) are declared in depthprune.h.
 */
#ifndef DP_TOKENIZER_H
#define DP_TOKENIZER_H

#include "gguf.h"

/* Build from GGUF metadata; a model or pre-tokenizer that is not supported fails naming it. */
dp_status dp_tokenizer_from_gguf(const struct dp_gguf *g, struct dp_tokenizer **out);
/* Build a SentencePiece tokenizer from a llama2.c tokenizer file of n_vocab entries. */
dp_status dp_tokenizer_from_llama2c(const char *path, int n_vocab, struct dp_tokenizer **out);
void dp_tokenizer_free(struct dp_tokenizer *t);
/* "llama" (SentencePiece) or "gpt2" (byte-level BPE). */
const char *dp_tokenizer_model(const struct dp_tokenizer *t);
/* Whether the vocabulary adds BOS (tokenizer.ggml.add_bos_token, or the model's default). */
bool dp_tokenizer_adds_bos(const struct dp_tokenizer *t);

#endif
