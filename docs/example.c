/*
 * example: the whole workflow through include/depthprune.h alone: score the blocks of a model,
 * plan the removal of the two least important, fit a folded linear recovery on other text,
 * evaluate, export. Build: make build/docs/example; run: build/docs/example MODEL TEXT CALIB OUT.gguf
 * (tests/cli_example.sh runs it on stories260K).
 */
#include "depthprune.h"

#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what) { fprintf(stderr, "example: %s: %s\n", what, dp_last_error()); return 1; }

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: example MODEL TEXT CALIB OUT.gguf\n"); return 2; }
    struct dp_model *m;
    if (dp_model_open(argv[1], NULL, &m)) return fail("open");
    struct dp_pool *pool = dp_pool_new(2);
    struct dp_mask all, pruned;
    dp_mask_all(m, &all);
    struct dp_score_params sp;                       /* score: leave-one-out loss of every block */
    dp_score_default_params(&sp);
    sp.want[DP_METRIC_LOO_LOSS] = true, sp.corpus = argv[2], sp.ctx = 64, sp.max_seqs = 4;
    struct dp_score_result *scores;
    if (dp_score_run(m, &all, pool, &sp, &scores)) return fail("score");
    static struct dp_plan plan;                      /* plan: the two least important blocks */
    if (dp_plan_from_scores(scores, DP_METRIC_LOO_LOSS, 2, &plan)) return fail("plan");
    pruned = all;
    if (dp_plan_apply(&plan, &pruned)) return fail("apply");
    char units[64];
    dp_mask_format(&pruned, units, sizeof units);
    struct dp_recovery_params rp = dp_recovery_default_params();   /* recover: a map folded into a kept weight */
    rp.kind = "linear", rp.units = units, rp.mask = &pruned;
    rp.calib = (struct dp_corpus_spec){.path = argv[3], .docs = "0:200", .ctx = 64};
    struct dp_recovery *rec;
    struct dp_hooks *hooks;
    if (dp_recovery_fit_with(m, pool, &rp, &rec) || dp_recovery_hooks_new(rec, m, &hooks)) return fail("recover");
    int *ids, n;                                     /* evaluate: perplexity by llama.cpp's protocol */
    struct dp_ppl full, cut, recovered;
    if (dp_corpus_tokens(dp_model_tokenizer(m), argv[2], &ids, &n)) return fail("tokens");
    if (dp_eval_ppl_llamacpp(m, &all, NULL, pool, ids, n, 128, &full) ||
        dp_eval_ppl_llamacpp(m, &pruned, NULL, pool, ids, n, 128, &cut) ||
        dp_eval_ppl_llamacpp(m, &pruned, hooks, pool, ids, n, 128, &recovered))
        return fail("ppl");
    printf("removed %s: ppl %.4f -> %.4f, recovered %.4f\n", units, full.ppl, cut.ppl, recovered.ppl);
    struct dp_export_params ep = dp_export_default_params();   /* export: a smaller GGUF, reloaded and checked */
    ep.units = units, ep.recovery = rec;
    struct dp_export_result res;
    if (dp_export_file(argv[1], argv[4], &ep, pool, &res)) return fail("export");
    printf("wrote %s: %d blocks, max |logit difference| %.3g\n", argv[4], res.n_blocks, res.verify_max_abs_diff);
    free(ids), dp_hooks_free(hooks), dp_recovery_free(rec), dp_score_result_free(scores);
    dp_pool_free(pool), dp_model_close(m);
    return 0;
}
