/*
 * plan: a pruning plan as saved and reloaded by every command (--plan FILE).
 *
 * A plan is the list of removed units in removal order, with where it came
 * from (metric, scheme, scores file) and an optional recovery file (a GGUF
 * written by src/recover.c holding the replacement of each removed unit).
 * On disk it is JSON:
 *
 *   {"depthprune_plan": 2, "model": "stories260K.gguf", "n_blocks": 5,
 *    "model_hash": "...", "model_shape": "...",
 *    "removed": ["b2", "a4"], "metric": "loo_loss", "scheme": "block",
 *    "recover": {"kind": "mean", "file": "plan.recover.gguf"}}   (or null)
 *
 * A relative recovery path is relative to the plan file's folder. Version 2
 * requires n_blocks, model_hash and model_shape (src/identity.h), checked
 * against the model on use; version 1 plans (older) have none and are read
 * with only their block count checked. recover.kind must be a recovery kind
 * (src/recover.h) other than "none".
 */
#ifndef DP_PLAN_H
#define DP_PLAN_H

#include "base.h"
#include "identity.h"

/* (the public structures of this module are in include/depthprune.h) */

dp_status dp_plan_load(const char *path, struct dp_plan *out);
/*
 * Write atomically; recover_file is stored relative to the plan's folder when
 * inside it. Written as version 2 when the identity is complete, else 1.
 */
dp_status dp_plan_save(const struct dp_plan *p, const char *path);
/* The model identity the plan claims (for dp_identity_check). */
void dp_plan_identity(const struct dp_plan *p, struct dp_identity *out);
/* Record the identity of the model the plan is made for (n_blocks, hash, shape). */
void dp_plan_set_identity(struct dp_plan *p, const struct dp_identity *id);
/* Remove the plan's units from mask (fails naming the plan when a unit does not exist). */
dp_status dp_plan_apply(const struct dp_plan *p, struct dp_mask *mask);
/* Append a unit ("b3") to the plan. */
dp_status dp_plan_push(struct dp_plan *p, const char *unit);

#endif
