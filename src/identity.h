/*
 * identity: which model a plan or a scores file was made for, and the check
 * that it is the model it is used with (README "Model identity").
 *
 * A model has two fingerprints, both SHA-256 digests as 64 hex digits:
 *
 *   model_shape  of a canonical text naming the architecture, the block
 *                count, the residual width, the vocabulary size, each
 *                block's head counts and FFN width, the head width, and
 *                every tensor the forward pass uses with its dimensions, in
 *                forward-pass order. Types are left out: an F32 model and
 *                its quantized twin have the same shape.
 *   model_hash   of the same text with each tensor's type added, followed by
 *                the first and last 4 KiB of each tensor's bytes. It tells
 *                apart files with other weights (a fine-tune, a quantized
 *                twin) without reading gigabytes: a few pages per tensor.
 *
 * Both are computed from the loaded views, so they do not depend on GGUF
 * metadata that the forward pass ignores (general.name, ...).
 *
 * The check, in this order: the block count, then the shape (never
 * overridable: the units would mean other things), then the hash; a hash
 * mismatch between two models of one shape is refused unless the caller
 * allows twins (--allow-twin: scores of the F32 original applied to its
 * quantized file). A file without fingerprints (written by hand or by an
 * older depthprune) is checked by its block count only, and the caller is
 * told so it can warn.
 */
#ifndef DP_IDENTITY_H
#define DP_IDENTITY_H

#include "base.h"

struct dp_model;
struct dp_jv;

/* The identity of a loaded model (cannot fail: reads a few pages per tensor). */
void dp_identity_of(const struct dp_model *m, struct dp_identity *out);

/*
 * Read "n_blocks", "model_hash" and "model_shape" of a plan or scores object
 * `root` (file `path`, for messages). Absent keys leave the fields empty;
 * present ones must be well formed (an integer in [1, DP_MAX_LAYERS], 64
 * lowercase hex digits). With `required`, all three must be present.
 */
dp_status dp_identity_read(const struct dp_jv *root, const char *path, bool required, struct dp_identity *out);

/*
 * Check the identity `claim` of file `path` against the model's `model`.
 * Fails with one line naming the file, the key, the expected (the model's)
 * and the found value. *unchecked is set when the claim has no hash, so the
 * weights could not be compared (the caller warns).
 */
dp_status dp_identity_check(const struct dp_identity *claim, const struct dp_identity *model, const char *path,
                            bool allow_twin, bool *unchecked);

#endif
