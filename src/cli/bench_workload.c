/*
 * bench --workload: a whole job timed the way a user meets it, with the
 * per-op profile of the library (dp_profile_*) and the machine's measured
 * peaks, so one sees the wall time, the tokens per second and which op ate
 * the time at what fraction of what peak.
 *
 *   depthprune bench --workload score [--peak-seconds S] [--out FILE] [--json] -- ARGS...
 *
 * runs `depthprune score ARGS...` in this process (mmlu, sweep, ppl, mc and
 * compare likewise), its stdout into FILE (written to a temporary name and
 * renamed) or discarded, and then prints the report. The peaks are measured
 * just before the job on as many threads as the job's -t (default: all
 * cores): f32 FMA and int8 multiply-adds with the instructions of the kernel
 * set in use, and memory read bandwidth. Fractions of peak: exact-mode
 * products, the head and attention against the FMA peak; q8 products of 16
 * tokens and more against the int8 peak; products of fewer than 16 tokens
 * (decode) as weight bytes per second against the read bandwidth.
 */
#include "cli.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
} workloads[] = {
    {"score", cmd_score}, {"mmlu", cmd_mmlu}, {"sweep", cmd_sweep}, {"ppl", cmd_ppl}, {"mc", cmd_mc},
    {"compare", cmd_compare},
};

/* The value of option -t/--threads (or --act) among the job's arguments, or NULL. */
static const char *job_opt(int argc, char **argv, const char *shrt, const char *lng) {
    const char *v = NULL;
    size_t ll = strlen(lng);
    for (int i = 1; i < argc; i++) {
        if ((shrt && !strcmp(argv[i], shrt)) || !strcmp(argv[i], lng)) v = i + 1 < argc ? argv[i + 1] : NULL;
        else if (!strncmp(argv[i], lng, ll) && argv[i][ll] == '=') v = argv[i] + ll + 1;
    }
    return v;
}

/* Which peak an op is held against: 0 FMA, 1 int8, 2 read bandwidth, -1 none. */
static int peak_of(int op, bool q8) {
    switch (op) {
    case DP_PROF_GEMM: case DP_PROF_DOT_SHORT: case DP_PROF_ATTENTION: return 0;
    case DP_PROF_HEAD: return q8 ? 1 : 0;
    case DP_PROF_Q8_LONG: case DP_PROF_Q8_SHORT: return 1;
    case DP_PROF_DOT_DECODE: case DP_PROF_Q8_DECODE: return 2;
    default: return -1;
    }
}

int cli_bench_workload(int argc, char **argv) {
    const char *work_s = NULL, *peak_s = NULL, *out_path = NULL, *json = NULL;
    const struct cli_opt opts[] = {
        {"--workload", NULL, false, &work_s, "score, mmlu, sweep, ppl, mc or compare: time that command on the arguments after --"},
        {"--peak-seconds", NULL, false, &peak_s, "seconds per peak loop (default 1; 0 skips the peaks)"},
        {"--out", NULL, false, &out_path, "the job's stdout into FILE (default: discarded)"},
        {"--json", NULL, true, &json, "one JSON object on stdout"},
        CLI_END};
    int sep = 1;
    while (sep < argc && strcmp(argv[sep], "--")) sep++;
    const char *pos[1];
    int n_pos, rc = cli_parse("bench", sep, argv, opts, pos, 0, &n_pos);
    if (rc) return rc;
    int (*fn)(int, char **) = NULL;
    for (size_t i = 0; work_s && i < sizeof workloads / sizeof *workloads; i++)
        if (!strcmp(work_s, workloads[i].name)) fn = workloads[i].fn;
    if (!fn) return cli_error("bench", 2, "--workload '%s': use score, mmlu, sweep, ppl, mc or compare", work_s ? work_s : "");
    if (sep >= argc) return cli_error("bench", 2, "--workload %s: give the job's arguments after --", work_s);
    double peak_sec = 1;
    if (peak_s && !cli_double("bench", "--peak-seconds", peak_s, 0, 60, &peak_sec)) return 2;
    /* the job's argv: its command name, then everything after -- */
    int jargc = argc - sep;
    char **jargv = malloc(((size_t)jargc + 1) * sizeof *jargv);
    if (!jargv) return cli_error("bench", 1, "out of memory");
    jargv[0] = (char *)work_s;
    for (int i = 1; i < jargc; i++) jargv[i] = argv[sep + i];
    jargv[jargc] = NULL;
    long threads = sysconf(_SC_NPROCESSORS_ONLN);
    const char *t_s = job_opt(jargc, jargv, "-t", "--threads");
    if (t_s && !cli_int("bench", "-t", t_s, 1, 256, &threads)) {
        free(jargv);
        return 2;
    }
    const char *act_s = job_opt(jargc, jargv, NULL, "--act");
    bool q8 = act_s && !strcmp(act_s, "q8");
    double peak[3] = {0, 0, 0};
    if (peak_sec > 0)
        for (int k = 0; k < 3; k++) peak[k] = dp_peak_measure((enum dp_peak_kind)k, (int)threads, peak_sec);
    /* the job's stdout: a temporary file renamed at the end, or /dev/null */
    char *tmp = NULL;
    if (out_path) {
        size_t n = strlen(out_path) + 16;
        tmp = malloc(n);
        if (!tmp) {
            free(jargv);
            return cli_error("bench", 1, "out of memory");
        }
        snprintf(tmp, n, "%s.tmp%ld", out_path, (long)getpid());
    }
    fflush(stdout);
    int saved = dup(1), fd = open(tmp ? tmp : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (saved < 0 || fd < 0 || dup2(fd, 1) < 0) {
        if (fd >= 0) close(fd);
        if (saved >= 0) close(saved);
        rc = cli_error("bench", 1, "%s: cannot open for writing", tmp ? tmp : "/dev/null");
        free(tmp);
        free(jargv);
        return rc;
    }
    close(fd);
    struct dp_profile p;
    dp_profile_start();
    int job_rc = fn(jargc, jargv);
    fflush(stdout);
    dp_profile_stop(&p);
    dup2(saved, 1);
    close(saved);
    free(jargv);
    if (tmp) {
        if (job_rc) remove(tmp);
        else if (rename(tmp, out_path)) {
            remove(tmp);
            job_rc = cli_error("bench", 1, "%s: cannot write the job's output", out_path);
        }
        free(tmp);
    }
    if (job_rc) return job_rc; /* the job said why, on stderr */
    double ops_s = 0, mm_s = 0, mm_flops = 0;
    for (int op = 0; op < DP_PROF_N; op++) {
        ops_s += p.seconds[op];
        if (op <= DP_PROF_Q8_DECODE || op == DP_PROF_HEAD) {
            mm_s += p.seconds[op];
            mm_flops += p.flops[op];
        }
    }
    double tok_s = p.tokens / p.wall, mm_peak = q8 ? peak[1] : peak[0];
    static const char *const peak_names[3] = {"fma", "int8", "read"};
    if (json) {
        struct dp_json j;
        dp_json_init(&j, stdout);
        dp_json_begin_obj(&j, NULL);
        dp_json_str(&j, "workload", work_s);
        dp_json_str(&j, "kernels", dp_kernels_name());
        dp_json_str(&j, "act", q8 ? "q8" : "exact");
        dp_json_int(&j, "threads", threads);
        dp_json_num(&j, "wall_s", p.wall);
        dp_json_int(&j, "tokens", p.tokens);
        dp_json_int(&j, "token_sublayers", p.token_sublayers);
        dp_json_num(&j, "tokens_per_s", tok_s);
        dp_json_num(&j, "token_sublayers_per_s", p.token_sublayers / p.wall);
        dp_json_num(&j, "matmul_gflops", mm_flops / p.wall * 1e-9);
        dp_json_num(&j, "matmul_fraction_of_peak", mm_peak > 0 ? mm_flops / p.wall * 1e-9 / mm_peak : 0);
        dp_json_begin_obj(&j, "peaks");
        for (int k = 0; k < 3; k++) dp_json_num(&j, peak_names[k], peak[k]);
        dp_json_str(&j, "fma_insn", dp_peak_name(DP_PEAK_FMA));
        dp_json_str(&j, "int8_insn", dp_peak_name(DP_PEAK_INT8));
        dp_json_end(&j);
        dp_json_begin_arr(&j, "ops");
        for (int op = 0; op < DP_PROF_N; op++) {
            if (!p.calls[op]) continue;
            int pk = peak_of(op, q8);
            double rate = pk == 2 ? p.bytes[op] / p.seconds[op] * 1e-9 : p.flops[op] / p.seconds[op] * 1e-9;
            dp_json_begin_obj(&j, NULL);
            dp_json_str(&j, "op", dp_profile_op_name(op));
            dp_json_int(&j, "calls", p.calls[op]);
            dp_json_num(&j, "seconds", p.seconds[op]);
            dp_json_num(&j, "flops", p.flops[op]);
            dp_json_num(&j, "bytes", p.bytes[op]);
            if (pk >= 0 && peak[pk] > 0) {
                dp_json_str(&j, "peak", peak_names[pk]);
                dp_json_num(&j, "fraction_of_peak", rate / peak[pk]);
            }
            dp_json_end(&j);
        }
        dp_json_end(&j);
        dp_json_num(&j, "other_seconds", p.wall - ops_s);
        dp_json_end(&j);
        fputc('\n', stdout);
        return 0;
    }
    printf("workload  depthprune %s ... (%s kernels, act %s, %ld threads)\n", work_s, dp_kernels_name(), q8 ? "q8" : "exact",
           threads);
    printf("wall      %.3f s\n", p.wall);
    printf("tokens    %lld fed through the model: %.1f tokens/s; %lld token-sublayers run: %.1f /s\n", (long long)p.tokens,
           tok_s, (long long)p.token_sublayers, p.token_sublayers / p.wall);
    if (peak_sec > 0)
        printf("peaks     FMA %.1f GFLOP/s (%s), int8 %.1f GOP/s (%s), read %.1f GB/s, on %ld threads\n", peak[0],
               dp_peak_name(DP_PEAK_FMA), peak[1], dp_peak_name(DP_PEAK_INT8), peak[2], threads);
    printf("matmuls   %.1f%% of the wall time, %.1f GFLOP/s over the wall = %.0f%% of the %s peak\n", 100 * mm_s / p.wall,
           mm_flops / p.wall * 1e-9, mm_peak > 0 ? 100 * mm_flops / p.wall * 1e-9 / mm_peak : 0.0, q8 ? "int8" : "FMA");
    printf("\n%-24s %9s %10s %6s %10s %8s %7s\n", "op", "calls", "seconds", "%wall", "GFLOP/s", "GB/s", "%peak");
    for (int op = 0; op < DP_PROF_N; op++) {
        if (!p.calls[op]) continue;
        int pk = peak_of(op, q8);
        double gf = p.flops[op] / p.seconds[op] * 1e-9, gb = p.bytes[op] / p.seconds[op] * 1e-9;
        double frac = pk >= 0 && peak[pk] > 0 ? (pk == 2 ? gb : gf) / peak[pk] : -1;
        char fr[16] = "-";
        if (frac >= 0) snprintf(fr, sizeof fr, "%.0f%% %s", 100 * frac, peak_names[pk]);
        printf("%-24s %9lld %10.3f %5.1f%% %10.1f %8.1f %7s\n", dp_profile_op_name(op), (long long)p.calls[op],
               p.seconds[op], 100 * p.seconds[op] / p.wall, gf, gb, fr);
    }
    printf("%-24s %9s %10.3f %5.1f%%\n", "other (wall - ops)", "", p.wall - ops_s, 100 * (p.wall - ops_s) / p.wall);
    return 0;
}
