/*
 * ppl: perplexity of a model (under --drop) on a corpus, by the paper
 * protocol (default) or llama.cpp's (METHODS.md section 6; src/eval.h).
 */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int ppl_llamacpp(struct cli_model *cm, const char *file, int ctx, struct dp_ppl *r) {
    int *ids = NULL, n = 0;
    dp_status st = dp_corpus_tokens(dp_model_tokenizer(cm->m), file, &ids, &n);
    struct dp_eval_params ep = dp_eval_default_params();
    ep.progress = cli_progress_lines;
    if (!st) st = dp_eval_ppl_llamacpp_with(cm->m, &cm->mask, cm->hooks, cm->pool, ids, n, ctx, &ep, r);
    free(ids);
    /* messages name the corpus */
    if (!st) return 0;
    if (st == DP_ERR_NOMEM) return cli_error("ppl", 1, "out of memory");
    if (strstr(dp_last_error(), file)) return cli_error("ppl", 1, "%s", dp_last_error());
    return cli_error("ppl", 1, "%s: %.511s", file, dp_last_error());
}

int cmd_ppl(int argc, char **argv) {
    struct cli_common c = {0};
    const char *file = NULL, *ctx_s = NULL, *protocol = "paper", *docs = NULL, *max_seqs_s = NULL;
    const struct cli_opt opts[] = {
        CLI_COMMON_OPTS(c),
        {"-f", "--file", false, &file, "corpus (text with <|endoftext|> separators, or .jsonl)"},
        {"--ctx", NULL, false, &ctx_s, "context (default: 2048 capped at the model's for paper, 512 for llamacpp)"},
        {"--protocol", NULL, false, &protocol, "paper (default) or llamacpp"},
        {"--docs", NULL, false, &docs, "documents A:B (paper protocol)"},
        {"--max-seqs", NULL, false, &max_seqs_s, "at most N chunks (paper protocol)"},
        CLI_END};
    const char *pos[1];
    int n_pos, rc = cli_parse("ppl", argc, argv, opts, pos, 0, &n_pos);
    const char *syn = "-m MODEL -f CORPUS [--ctx N] [--protocol paper|llamacpp] [--docs A:B] [--max-seqs N] [--drop UNITS | --plan FILE] [--recover KIND --calib CORPUS]";
    if (rc) return rc == 2 && !c.model ? cli_usage("ppl", syn, opts) : rc;
    bool paper = !strcmp(protocol, "paper");
    if (!paper && strcmp(protocol, "llamacpp"))
        return cli_error("ppl", 2, "--protocol must be paper or llamacpp, not '%s'", protocol);
    if (!file) return cli_error("ppl", 2, "missing -f CORPUS");
    long ctx = 0, max_seqs = 0;
    int lo = 0, hi = -1;
    if ((ctx_s && !cli_int("ppl", "--ctx", ctx_s, 4, 1 << 20, &ctx)) ||
        (max_seqs_s && !cli_int("ppl", "--max-seqs", max_seqs_s, 1, 1L << 30, &max_seqs)))
        return 2;
    if (docs && dp_parse_range(docs, &lo, &hi)) return cli_error("ppl", 2, "--docs: %s", dp_last_error());
    if (!paper && (docs || max_seqs_s))
        return cli_error("ppl", 2, "--docs and --max-seqs apply to the paper protocol only");
    c.ctx = ctx_s; /* the calibration corpus of --recover defaults to these settings */
    c.docs = docs;
    c.max_seqs = max_seqs_s;
    struct cli_io io = {0};
    cli_io_common(&io, &c);
    cli_io_in(&io, "-f", file);
    if ((rc = cli_io_check("ppl", &io))) return rc;
    struct cli_model cm;
    if ((rc = cli_open("ppl", &c, &cm))) return rc;
    const struct dp_config *cf = dp_model_config(cm.m);
    if (!ctx) ctx = paper ? (cf->n_ctx_train < 2048 ? cf->n_ctx_train : 2048) : 512;
    if (ctx > cf->n_ctx_train) fprintf(stderr, "depthprune ppl: warning: --ctx %ld exceeds the model's trained context %d\n", ctx, cf->n_ctx_train);
    if ((rc = cli_check_sessions("ppl", &cm, &cm.mask, 1, ctx, ctx, 0, "--ctx"))) {
        cli_close(&cm);
        return rc;
    }
    struct dp_ppl r;
    struct dp_chunks *ch = NULL;
    struct dp_corpus *corpus = NULL;
    double t0 = dp_now();
    if (paper) {
        dp_status st = dp_corpus_read(file, &corpus);
        if (!st) st = dp_chunks_paper(dp_model_tokenizer(cm.m), corpus, lo, hi, (int)ctx, (int)max_seqs, &ch);
        struct dp_eval_params ep = dp_eval_default_params();
        ep.progress = cli_progress_lines;
        if (!st) st = dp_eval_ppl_paper_with(cm.m, &cm.mask, cm.hooks, cm.pool, ch, &ep, &r);
        if (st) rc = cli_error("ppl", 1, "%s", dp_last_error());
    } else {
        rc = ppl_llamacpp(&cm, file, (int)ctx, &r);
    }
    double secs = dp_now() - t0;
    if (!rc) {
        char removed[4096];
        dp_mask_format(&cm.mask, removed, sizeof removed);
        if (c.json) {
            struct dp_json j;
            dp_json_init(&j, stdout);
            dp_json_begin_obj(&j, NULL);
            dp_json_str(&j, "protocol", protocol);
            dp_json_int(&j, "ctx", ctx);
            dp_json_num(&j, "ppl", r.ppl);
            if (paper) dp_json_num(&j, "ppl_seq", r.ppl_seq);
            else dp_json_num(&j, "ppl_pm", r.ppl_pm);
            dp_json_num(&j, "nll", r.nll);
            dp_json_int(&j, "n_tokens", r.n_tokens);
            dp_json_int(&j, "n_seqs", r.n_seqs);
            if (ch) dp_json_int(&j, "n_docs", ch->n_docs);
            dp_json_str(&j, "removed", removed);
            if (cm.recover_kind) dp_json_str(&j, "recover", cm.recover_kind);
            else dp_json_null(&j, "recover");
            dp_json_num(&j, "seconds", secs);
            dp_json_end(&j);
            fputc('\n', stdout);
        } else if (paper) {
            printf("ppl %.4f  ppl_seq %.4f  nll %.6f  (paper protocol, ctx %ld, %d sequences from %d documents, %lld predictions%s%s)\n",
                   r.ppl, r.ppl_seq, r.nll, ctx, r.n_seqs, ch->n_docs, (long long)r.n_tokens, removed[0] ? ", removed " : "", removed);
        } else {
            printf("ppl %.4f +/- %.5f  nll %.6f  (llamacpp protocol, ctx %ld, %d chunks, %lld predictions%s%s)\n", r.ppl,
                   r.ppl_pm, r.nll, ctx, r.n_seqs, (long long)r.n_tokens, removed[0] ? ", removed " : "", removed);
        }
    }
    dp_chunks_free(ch);
    dp_corpus_free(corpus);
    cli_close(&cm);
    return rc;
}
