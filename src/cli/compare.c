/*
 * compare: KL divergence, top-1 agreement and perplexity ratio of a
 * candidate (the base model under --drop, or another model file) against
 * the base model on the same tokens, chunked as llama-perplexity does
 * (src/kld.h). Writes and reads llama.cpp's base-logits files so results can
 * be exchanged with `llama-perplexity --kl-divergence`.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#define SYNOPSIS                                                                                            \
    "-m BASE (--drop UNITS | --candidate MODEL2) -f TEXT [--ctx 512] [--save-base FILE] [--json]\n"         \
    "       depthprune compare -m MODEL [--drop UNITS] --kld-base FILE   (base log-probabilities from llama.cpp's file)"

static void print_result(const struct dp_kld_result *r, bool json, bool have_cand, const char *what) {
    if (json) {
        struct dp_json j;
        dp_json_init(&j, stdout);
        dp_json_begin_obj(&j, NULL);
        dp_json_str(&j, "candidate", what);
        dp_json_int(&j, "ctx", r->ctx);
        dp_json_int(&j, "n_chunks", r->n_chunks);
        dp_json_int(&j, "n_tokens", r->n);
        dp_json_num(&j, "ppl_base", r->ppl_base);
        if (have_cand) {
            dp_json_num(&j, "ppl", r->ppl);
            dp_json_num(&j, "ppl_ratio", r->ppl_ratio);
            dp_json_num(&j, "kld_mean", r->kld_mean);
            dp_json_num(&j, "kld_stderr", r->kld_stderr);
            dp_json_num(&j, "kld_median", r->kld_median);
            dp_json_num(&j, "kld_p99", r->kld_p99);
            dp_json_num(&j, "kld_max", r->kld_max);
            dp_json_num(&j, "top1_agree", 100 * r->top1);
            dp_json_num(&j, "top1_stderr", 100 * r->top1_stderr);
        }
        dp_json_end(&j);
        return;
    }
    if (!have_cand) {
        printf("base ppl %.4f (ctx %d, %d chunks, %lld predictions)\n", r->ppl_base, r->ctx, r->n_chunks,
               (long long)r->n);
        return;
    }
    printf("candidate %s: ctx %d, %d chunks, %lld predictions\n", what, r->ctx, r->n_chunks, (long long)r->n);
    printf("ppl base %.4f  candidate %.4f  ratio %.4f\n", r->ppl_base, r->ppl, r->ppl_ratio);
    printf("KL divergence mean %.6f +/- %.6f  median %.6f  p99 %.6f  max %.6f\n", r->kld_mean, r->kld_stderr,
           r->kld_median, r->kld_p99, r->kld_max);
    printf("same top-1 token %.2f%% +/- %.2f\n", 100 * r->top1, 100 * r->top1_stderr);
}

int cmd_compare(int argc, char **argv) {
    struct cli_common c = {0};
    const char *file = NULL, *ctx_s = NULL, *candidate = NULL, *kld_base = NULL, *save_base = NULL, *progress = NULL;
    const struct cli_opt opts[] = {
        CLI_COMMON_OPTS(c),
        {"--candidate", NULL, false, &candidate, "a second model file with the same vocabulary"},
        {"-f", "--file", false, &file, "text (tokenized whole, as llama-perplexity reads it)"},
        {"--ctx", NULL, false, &ctx_s, "chunk size (default 512)"},
        {"--kld-base", NULL, false, &kld_base, "read the base log-probabilities from llama.cpp's file instead"},
        {"--save-base", NULL, false, &save_base, "write the base log-probabilities in llama.cpp's format"},
        {"--progress", NULL, true, &progress, "progress on stderr even with --json"},
        CLI_END};
    const char *pos[1];
    int n_pos, rc = cli_parse("compare", argc, argv, opts, pos, 0, &n_pos);
    if (rc) return rc == 2 && !c.model ? cli_usage("compare", SYNOPSIS, opts) : rc;
    if (candidate && c.drop) return cli_error("compare", 2, "give --drop or --candidate, not both");
    if (kld_base && (file || ctx_s || save_base || candidate))
        return cli_error("compare", 2, "--kld-base takes tokens and ctx from the file: no -f, --ctx, --save-base or --candidate");
    if (!kld_base && !file) return cli_error("compare", 2, "missing -f TEXT");
    if (!kld_base && !candidate && !c.drop && !save_base)
        return cli_error("compare", 2, "nothing to compare: give --drop UNITS or --candidate MODEL (or --save-base FILE)");
    long ctx = 512;
    if (ctx_s && !cli_int("compare", "--ctx", ctx_s, 4, 1 << 20, &ctx)) return 2;
    c.ctx = ctx_s; /* the calibration default of --recover */
    cli_progress_mode(c.json != NULL, progress != NULL);
    struct cli_io io = {0};
    cli_io_common(&io, &c);
    cli_io_in(&io, "-f", file);
    cli_io_in(&io, "--candidate", candidate);
    cli_io_in(&io, "--kld-base", kld_base);
    cli_io_out(&io, "--save-base", save_base);
    if ((rc = cli_io_check("compare", &io))) return rc;
    struct cli_model cm;
    if ((rc = cli_open("compare", &c, &cm))) return rc;
    if ((rc = cli_check_sessions("compare", &cm, NULL, candidate || c.drop ? 2 : 1, ctx, ctx, 0, "--ctx"))) {
        cli_close(&cm);
        return rc;
    }
    struct dp_model *m2 = NULL;
    struct dp_mask full, mask2;
    dp_mask_all(cm.m, &full);
    struct dp_kld_model base = {cm.m, &full, NULL}, cand = {cm.m, &cm.mask, cm.hooks};
    char what[4096];
    dp_mask_format(&cm.mask, what, sizeof what);
    if (!what[0]) snprintf(what, sizeof what, "%s", "(nothing removed)");
    struct dp_kld_result r;
    int *ids = NULL, n = 0;
    dp_status st = DP_OK;
    if (candidate) {
        struct dp_model_params mp = dp_model_default_params();
        mp.vocab_path = c.vocab;
        mp.act = dp_model_act(cm.m); /* the candidate computes in the base's --act mode */
        st = dp_model_open_with(candidate, &mp, &m2);
        if (!st) {
            dp_mask_all(m2, &mask2);
            cand = (struct dp_kld_model){m2, &mask2, NULL};
            snprintf(what, sizeof what, "%s", candidate);
        }
    }
    bool have_cand = candidate || c.drop || kld_base, on_text = false;
    struct dp_eval_params ep = dp_eval_default_params();
    ep.progress = cli_progress_lines;
    if (!st && kld_base) {
        st = dp_kld_eval_file_with(kld_base, &cand, cm.pool, &ep, &r);
    } else if (!st) {
        on_text = true;
        st = dp_corpus_tokens(dp_model_tokenizer(cm.m), file, &ids, &n); /* as llama-perplexity reads it */
        if (!st) st = dp_kld_eval_with(&base, have_cand ? &cand : NULL, cm.pool, ids, n, (int)ctx, save_base, &ep, &r);
    }
    /* messages name the text file */
    if (st && on_text && st != DP_ERR_NOMEM && !strstr(dp_last_error(), file))
        rc = cli_error("compare", 1, "%s: %.899s", file, dp_last_error());
    else if (st) rc = cli_error("compare", 1, "%s", dp_last_error());
    else print_result(&r, c.json != NULL, have_cand, what);
    free(ids);
    dp_model_close(m2);
    cli_close(&cm);
    return rc;
}
