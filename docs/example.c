/*
 * example: score, plan and evaluate stories260K through include/depthprune.h
 * alone. Build: make build/docs/example; run: build/docs/example MODEL TEXT.
 */
#include "depthprune.h"

#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what) { fprintf(stderr, "example: %s: %s\n", what, dp_last_error()); return 1; }

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: example MODEL TEXT\n"); return 2; }
    struct dp_model *m;
    if (dp_model_open(argv[1], NULL, &m)) return fail("open");
    struct dp_pool *pool = dp_pool_new(2);
    struct dp_mask all, pruned;
    dp_mask_all(m, &all);
    /* score: leave-one-out loss of every block on 4 sequences of 64 tokens */
    struct dp_score_params sp;
    dp_score_default_params(&sp);
    sp.want[DP_METRIC_LOO_LOSS] = true;
    sp.corpus = argv[2];
    sp.ctx = 64;
    sp.max_seqs = 4;
    struct dp_score_result *scores;
    if (dp_score_run(m, &all, pool, &sp, &scores)) return fail("score");
    /* plan: the two least important blocks */
    static struct dp_plan plan;
    if (dp_plan_from_scores(scores, DP_METRIC_LOO_LOSS, 2, &plan)) return fail("plan");
    pruned = all;
    if (dp_plan_apply(&plan, &pruned)) return fail("apply");
    /* evaluate: perplexity by llama.cpp's protocol, before and after */
    int *ids, n;
    struct dp_ppl before, after;
    if (dp_corpus_tokens(dp_model_tokenizer(m), argv[2], &ids, &n)) return fail("tokens");
    if (dp_eval_ppl_llamacpp(m, &all, NULL, pool, ids, n, 128, &before) ||
        dp_eval_ppl_llamacpp(m, &pruned, NULL, pool, ids, n, 128, &after))
        return fail("ppl");
    printf("removed %s,%s: ppl %.4f -> %.4f\n", plan.units[0], plan.units[1], before.ppl, after.ppl);
    free(ids);
    dp_score_result_free(scores);
    dp_pool_free(pool);
    dp_model_close(m);
    return 0;
}
