/*
 * bench: prefill and decode speed of a model (under --drop), as llama-bench
 * measures them: prefill of N tokens from an empty cache computing the last
 * token's logits only; decode of N tokens one at a time from an empty cache.
 * Each is repeated --reps times and the median reported, with the achieved
 * GFLOP/s (prefill) and weight GB/s (decode) and the peak resident memory.
 * The activation mode (--act) is reported with the kernels.
 */
#include "cli.h"

#include "model.h"

#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Weight parameters and bytes touched per token by the kept matrices (embedding row excluded). */
static void per_token(const struct dp_model *m, const struct dp_mask *mask, double *params, double *bytes) {
    struct dp_model_stats s;
    dp_model_stats(m, mask, &s);
    double emb = (double)m->tok_embd.n_in * m->tok_embd.n_out;
    double emb_b = (double)dp_type_row_bytes(m->tok_embd.type, m->tok_embd.n_in) * m->tok_embd.n_out;
    *params = (double)s.n_params - (m->cfg.tied_output ? 0 : emb);
    *bytes = (double)s.n_bytes - (m->cfg.tied_output ? 0 : emb_b); /* a tied embedding is read as the head */
}

/*
 * Multiply-adds the last block does per token beyond its keys and values,
 * which a prefill with last-token logits spends on the last token only
 * (src/model.c skips them for the other rows, as llama.cpp skips the last
 * FFN and head).
 */
static double last_block_tail(const struct dp_model *m, const struct dp_mask *mask) {
    int l = m->cfg.n_layers - 1;
    const struct dp_layer *L = &m->layers[l];
    double p = 0;
    if (mask->attn[l] && L->has_attn) p += (double)L->wq.n_in * L->wq.n_out + (double)L->wo.n_in * L->wo.n_out;
    if (mask->ffn[l] && L->has_ffn)
        p += (double)L->w_gate.n_in * L->w_gate.n_out + (double)L->w_up.n_in * L->w_up.n_out +
             (double)L->w_down.n_in * L->w_down.n_out;
    return p;
}

/* Attention FLOPs of a batch of n tokens at positions p0..p0+n-1 (QK and AV). */
static double attn_flops(const struct dp_model *m, const struct dp_mask *mask, int p0, int n) {
    double f = 0;
    for (int l = 0; l < m->cfg.n_layers; l++)
        if (mask->attn[l] && m->layers[l].has_attn)
            for (int t = 0; t < n; t++) f += 4.0 * m->layers[l].shape.n_head * m->cfg.head_dim * (p0 + t + 1);
    return f;
}

int cmd_bench(int argc, char **argv) {
    struct cli_common c = {0};
    const char *pre_s = NULL, *dec_s = NULL, *reps_s = NULL;
    const struct cli_opt opts[] = {
        CLI_COMMON_OPTS(c),
        {"--prefill", NULL, false, &pre_s, "prefill tokens (default 512; 0 skips)"},
        {"--decode", NULL, false, &dec_s, "decode tokens (default 64; 0 skips)"},
        {"--reps", NULL, false, &reps_s, "repetitions, median reported (default 3)"},
        CLI_END};
    const char *pos[1];
    int n_pos, rc = cli_parse("bench", argc, argv, opts, pos, 0, &n_pos);
    if (rc) return rc == 2 && !c.model ? cli_usage("bench", "-m MODEL [--prefill N] [--decode N] [--reps R] [-t T] [--json]", opts) : rc;
    long n_pre = 512, n_dec = 64, reps = 3;
    if ((pre_s && !cli_int("bench", "--prefill", pre_s, 0, 1 << 20, &n_pre)) ||
        (dec_s && !cli_int("bench", "--decode", dec_s, 0, 1 << 20, &n_dec)) ||
        (reps_s && !cli_int("bench", "--reps", reps_s, 1, 1000, &reps)))
        return 2;
    struct cli_model cm;
    if ((rc = cli_open("bench", &c, &cm))) return rc;
    const struct dp_model *m = cm.m;
    int V = m->cfg.n_vocab, n_ctx = (int)(n_pre > n_dec ? n_pre : n_dec);
    if (n_ctx < 1) n_ctx = 1;
    if ((rc = cli_check_sessions("bench", &cm, &cm.mask, 1, n_ctx, 1, 0, "--prefill or --decode"))) {
        cli_close(&cm);
        return rc;
    }
    int *ids = malloc((size_t)n_ctx * sizeof *ids);
    float *logits = malloc((size_t)V * sizeof *logits);
    double *t_pre = calloc((size_t)reps, sizeof *t_pre), *t_dec = calloc((size_t)reps, sizeof *t_dec);
    struct dp_session *s = NULL;
    dp_status st = ids && logits && t_pre && t_dec ? dp_session_new(m, &cm.mask, n_ctx, &s) : DP_ERR_NOMEM;
    uint64_t r = 12345;
    for (int i = 0; ids && i < n_ctx; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int)((r >> 33) % (uint64_t)V);
    }
    if (!st) st = dp_session_forward(s, cm.pool, ids, n_pre ? (int)(n_pre < 16 ? n_pre : 16) : 1, logits, DP_LOGITS_LAST); /* warm-up */
    for (int k = 0; k < reps && !st; k++) {
        if (n_pre) {
            dp_session_reset(s);
            double t0 = dp_now();
            st = dp_session_forward(s, cm.pool, ids, (int)n_pre, logits, DP_LOGITS_LAST);
            t_pre[k] = dp_now() - t0;
        }
        if (n_dec && !st) {
            dp_session_reset(s);
            double t0 = dp_now();
            for (int i = 0; i < n_dec && !st; i++) st = dp_session_forward(s, cm.pool, ids + i, 1, logits, DP_LOGITS_LAST);
            t_dec[k] = dp_now() - t0;
        }
        dp_progress("bench", k + 1, reps);
    }
    dp_progress_end();
    if (st) rc = cli_error("bench", 1, "%s", st == DP_ERR_NOMEM ? "out of memory" : dp_last_error());
    else {
        qsort(t_pre, (size_t)reps, sizeof *t_pre, cmp_double);
        qsort(t_dec, (size_t)reps, sizeof *t_dec, cmp_double);
        double tp = t_pre[reps / 2], td = t_dec[reps / 2];
        double params, bytes;
        per_token(m, &cm.mask, &params, &bytes);
        double head = (double)m->output.n_in * m->output.n_out, head_b = (double)dp_type_row_bytes(m->output.type, m->output.n_in) * m->output.n_out;
        double layer_params = params - head, layer_bytes = bytes - head_b;
        /*
         * prefill: the work actually done: every token through the layers but
         * the last block's queries, attention, output projection and FFN, which
         * run for the last token only, as does the head
         */
        double tail = last_block_tail(m, &cm.mask);
        int last = m->cfg.n_layers - 1;
        struct dp_mask no_last = cm.mask;
        no_last.attn[last] = false;
        double pre_flops = n_pre ? 2.0 * (layer_params - tail) * n_pre + 2.0 * (tail + head) +
                                       attn_flops(m, &no_last, 0, (int)n_pre) +
                                       (attn_flops(m, &cm.mask, (int)n_pre - 1, 1) - attn_flops(m, &no_last, (int)n_pre - 1, 1))
                                 : 0;
        double dec_flops = 2.0 * params * n_dec + attn_flops(m, &cm.mask, 0, (int)n_dec);
        double pre_tok_s = n_pre && tp > 0 ? n_pre / tp : 0, dec_tok_s = n_dec && td > 0 ? n_dec / td : 0;
        double gflops = n_pre && tp > 0 ? pre_flops / tp * 1e-9 : 0, dec_gflops = n_dec && td > 0 ? dec_flops / td * 1e-9 : 0;
        double gbps = n_dec && td > 0 ? (layer_bytes + head_b) * n_dec / td * 1e-9 : 0;
        double rss = dp_peak_rss_mb();
        if (c.json) {
            struct dp_json j;
            dp_json_init(&j, stdout);
            dp_json_begin_obj(&j, NULL);
            dp_json_str(&j, "model", dp_model_path(m));
            dp_json_str(&j, "kernels", dp_kernels()->name);
            dp_json_str(&j, "act", dp_kernels_act_name(dp_kernels_act()));
            dp_json_int(&j, "threads", cm.n_threads);
            dp_json_int(&j, "prefill", n_pre);
            dp_json_int(&j, "decode", n_dec);
            dp_json_int(&j, "reps", reps);
            dp_json_num(&j, "prefill_tok_s", pre_tok_s);
            dp_json_num(&j, "decode_tok_s", dec_tok_s);
            dp_json_num(&j, "gflops", gflops);
            dp_json_num(&j, "decode_gflops", dec_gflops);
            dp_json_num(&j, "gbps", gbps);
            dp_json_num(&j, "peak_rss_mb", rss);
            dp_json_end(&j);
            fputc('\n', stdout);
        } else {
            printf("model    %s (%s kernels, act %s, %d threads, median of %ld)\n", dp_model_path(m), dp_kernels()->name,
                   dp_kernels_act_name(dp_kernels_act()), cm.n_threads, reps);
            if (n_pre) printf("prefill  %ld tokens: %.1f tokens/s, %.1f GFLOP/s\n", n_pre, pre_tok_s, gflops);
            if (n_dec) printf("decode   %ld tokens: %.1f tokens/s, %.1f GB/s of weights\n", n_dec, dec_tok_s, gbps);
            printf("memory   peak RSS %.1f MiB\n", rss);
        }
    }
    dp_session_free(s);
    free(ids);
    free(logits);
    free(t_pre);
    free(t_dec);
    cli_close(&cm);
    return rc;
}
