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

/* The plan's structure and calls (load, save, identity, apply, push) are public: include/depthprune.h. */

#endif
