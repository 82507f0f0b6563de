/*
 * bench: prefill and decode speed of a model (under --drop), as llama-bench
 * measures them: prefill of N tokens from an empty cache computing the last
 * token's logits only; decode of N tokens one at a time from an empty cache.
 * Each is repeated --reps times and the median reported, with the achieved
 * GFLOP/s (prefill) and weight GB/s (decode) and the peak resident memory.
 * The activation mode (--act) is reported with the kernels. With
 * --workload, a whole command is timed instead (bench_workload.c).
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

int cmd_bench(int argc, char **argv) {
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--workload") || !strncmp(argv[i], "--workload=", 11)) return cli_bench_workload(argc, argv);
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
    if (rc) return rc == 2 && !c.model ? cli_usage("bench", "-m MODEL [--prefill N] [--decode N] [--reps R] [-t T] [--json]\n       | --workload score|mmlu|sweep|ppl|mc|compare [--peak-seconds S] [--out FILE] [--json] -- ARGS...", opts) : rc;
    long n_pre = 512, n_dec = 64, reps = 3;
    if ((pre_s && !cli_int("bench", "--prefill", pre_s, 0, 1 << 20, &n_pre)) ||
        (dec_s && !cli_int("bench", "--decode", dec_s, 0, 1 << 20, &n_dec)) ||
        (reps_s && !cli_int("bench", "--reps", reps_s, 1, 1000, &reps)))
        return 2;
    struct cli_model cm;
    if ((rc = cli_open("bench", &c, &cm))) return rc;
    const struct dp_model *m = cm.m;
    int n_ctx = (int)(n_pre > n_dec ? n_pre : n_dec);
    if (n_ctx < 1) n_ctx = 1;
    if ((rc = cli_check_sessions("bench", &cm, &cm.mask, 1, n_ctx, 1, 0, "--prefill or --decode"))) {
        cli_close(&cm);
        return rc;
    }
    struct dp_bench_params bp;
    dp_bench_default_params(&bp);
    bp.n_prefill = (int)n_pre;
    bp.n_decode = (int)n_dec;
    bp.reps = (int)reps;
    bp.progress = cli_progress;
    struct dp_bench_result br;
    dp_status st = dp_bench_run(m, &cm.mask, cm.pool, &bp, &br);
    cli_progress_end();
    if (st) rc = cli_error("bench", 1, "%s", st == DP_ERR_NOMEM ? "out of memory" : dp_last_error());
    else {
        double pre_tok_s = br.prefill_tok_s, dec_tok_s = br.decode_tok_s, gflops = br.gflops,
               dec_gflops = br.decode_gflops, gbps = br.gbps, rss = br.peak_rss_mb;
        if (c.json) {
            struct dp_json j;
            dp_json_init(&j, stdout);
            dp_json_begin_obj(&j, NULL);
            dp_json_str(&j, "model", dp_model_path(m));
            dp_json_str(&j, "kernels", dp_kernels_name());
            dp_json_str(&j, "act", dp_kernels_act_name(dp_model_act(cm.m)));
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
            printf("model    %s (%s kernels, act %s, %d threads, median of %ld)\n", dp_model_path(m), dp_kernels_name(),
                   dp_kernels_act_name(dp_model_act(cm.m)), cm.n_threads, reps);
            if (n_pre) printf("prefill  %ld tokens: %.1f tokens/s, %.1f GFLOP/s\n", n_pre, pre_tok_s, gflops);
            if (n_dec) printf("decode   %ld tokens: %.1f tokens/s, %.1f GB/s of weights\n", n_dec, dec_tok_s, gbps);
            printf("memory   peak RSS %.1f MiB\n", rss);
        }
    }
    cli_close(&cm);
    return rc;
}
