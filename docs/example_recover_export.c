/*
 * example_recover_export: the recovery and export part of the example
 * program, through include/depthprune.h alone (tests/test_api_workflow.c
 * builds and runs it). Remove block 2 of a model, fit a mean recovery of it
 * on a calibration corpus, run the recovered model in a session, and write
 * the pruned model with the recovery folded in. Returns 0 on success.
 */
#include "depthprune.h"

#include <stdio.h>
#include <stdlib.h>

static int example_recover_export(const char *model_path, const char *calib_path, const char *out_path) {
    struct dp_model *m;
    if (dp_model_open(model_path, NULL, &m)) return fprintf(stderr, "%s\n", dp_last_error()), 1;
    struct dp_pool *pool = dp_pool_new(2);
    struct dp_recovery_params rp = dp_recovery_default_params();
    rp.kind = "mean";                          /* or "lowrank:4", "bias-trained", ... */
    rp.units = "b2";                           /* the removed units, in removal order */
    rp.calib = (struct dp_corpus_spec){.path = calib_path, .ctx = 64, .max_seqs = 8};
    struct dp_recovery *rec = NULL;
    struct dp_session *s = NULL;
    struct dp_mask mask;
    dp_mask_all(m, &mask);
    dp_status st = dp_mask_drop(&mask, rp.units);
    if (!st) st = dp_recovery_fit_with(m, pool, &rp, &rec);
    struct dp_session_params sp = dp_session_default_params();
    sp.n_ctx = 64, sp.mask = &mask, sp.recovery = rec;   /* like a LoRA adapter on a context */
    if (!st) st = dp_session_new_with(m, &sp, &s);       /* dp_session_forward(s, ...) now recovers b2 */
    struct dp_export_params ep = dp_export_default_params();
    ep.units = rp.units, ep.recovery = rec;              /* verified against the session's logits */
    struct dp_export_result res;
    if (!st) st = dp_export_file(model_path, out_path, &ep, pool, &res);
    if (st) fprintf(stderr, "%s\n", dp_last_error());
    else printf("wrote %s: %d blocks, max |logit difference| %.3g\n", out_path, res.n_blocks, res.verify_max_abs_diff);
    dp_session_free(s);
    dp_recovery_free(rec);
    dp_pool_free(pool);
    dp_model_close(m);
    return st ? 1 : 0;
}
