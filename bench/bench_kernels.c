/*
 * bench_kernels: speed of dp_matmul on 7B-like shapes, per weight type,
 * thread count and kernel set.
 *
 *   build/bench/bench_kernels [-t 1,2] [--tok 1,512] [--in 4096] [--out 4096,14336]
 *                             [--types F32,F16,BF16,Q8_0,Q4_0] [--sets simd,avx2,avx512,scalar]
 *                             [--act exact,q8] [--min-time SECONDS] [--scalar-tok N] [--hot] [--cpu-time]
 *   build/bench/bench_kernels --peak [-t 1,2]
 *
 * Each row is the best of repeated calls lasting at least --min-time in all
 * (the first call warms up and is not counted). GFLOP/s counts
 * 2 n_in n_out n_tok; GB/s counts the weight bytes read once per call, the
 * figure that bounds decode. Several copies of the weights (256 MiB or more
 * in all) are used in turn so that decode reads from memory, not from the
 * last-level cache; --hot uses one copy, which stays in cache when small
 * enough (the compute-bound rate). On a shared machine, --cpu-time times
 * single-threaded rows by the process's CPU time, which leaves out the time
 * other processes hold the core. The scalar reference (--sets simd,scalar)
 * is slow: its rows for token counts in the gemm order use --scalar-tok
 * tokens (default DP_GEMM_MIN_TOK, the fewest that take the gemm order).
 * --act q8 times the q8 activation mode (kernels.h; Q8_0 and Q4_0 weights
 * only, rounding of the activations included).
 *
 * --peak measures what the machine allows instead: f32 FMA throughput (16
 * independent chains of 512-bit FMAs per thread), int8 dot-product
 * throughput (the same with vpdpbusd, where AVX-512 VNNI is present; the
 * rate that bounds the q8 mode) and read bandwidth (a sum over 1 GiB with
 * 512-bit loads), each thread on its own share.
 */
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool cpu_clock;

/* Wall time, or with --cpu-time the process's CPU time. */
static double now(void) {
    struct timespec t;
    clock_gettime(cpu_clock ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Comma-separated integers into v (at most cap); returns the count. */
static int parse_list(const char *s, long *v, int cap) {
    int n = 0;
    while (*s && n < cap) {
        char *end;
        v[n++] = strtol(s, &end, 10);
        s = *end == ',' ? end + 1 : end;
        if (end == s && *s) break;
    }
    return n;
}

static uint64_t rng = 88172645463325252ull;
static float rndf(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((int32_t)(rng >> 16) % 65536) / 65536.0f;
}

/* ---- --peak: the machine's f32 FMA rate and read bandwidth (x86-64 with AVX-512 only) ---- */

#if defined(__x86_64__)
#include <immintrin.h>

struct peak_job {
    long iters;
    const float *buf;
    size_t n;
    float sink[64];
};

__attribute__((target("avx512f"))) static void fma_worker(void *ctx, int ith, int nth) {
    struct peak_job *j = ctx;
    (void)nth;
    __m512 a[16], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps((float)(i + ith));
    for (long it = 0; it < j->iters; it++)
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
    __m512 s = a[0];
    for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, a[i]);
    j->sink[ith] = _mm512_reduce_add_ps(s);
}

/* int8 dot products: 16 independent chains of vpdpbusd (64 multiply-adds, 128 integer ops each). */
__attribute__((target("avx512f,avx512vnni"))) static void vnni_worker(void *ctx, int ith, int nth) {
    struct peak_job *j = ctx;
    (void)nth;
    __m512i a[16], w = _mm512_set1_epi8(3), x = _mm512_set1_epi8(-2);
    for (int i = 0; i < 16; i++) a[i] = _mm512_set1_epi32(i + ith);
    for (long it = 0; it < j->iters; it++)
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) a[i] = _mm512_dpbusd_epi32(a[i], w, x);
    __m512i s = a[0];
    for (int i = 1; i < 16; i++) s = _mm512_add_epi32(s, a[i]);
    j->sink[ith] = (float)_mm512_reduce_add_epi32(s);
}

__attribute__((target("avx512f"))) static void read_worker(void *ctx, int ith, int nth) {
    struct peak_job *j = ctx;
    int64_t lo, hi;
    dp_pool_split((int64_t)(j->n / 64), ith, nth, &lo, &hi);
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t i = lo * 64; i < hi * 64; i += 64) {
        s0 = _mm512_add_ps(s0, _mm512_load_ps(j->buf + i));
        s1 = _mm512_add_ps(s1, _mm512_load_ps(j->buf + i + 16));
        s2 = _mm512_add_ps(s2, _mm512_load_ps(j->buf + i + 32));
        s3 = _mm512_add_ps(s3, _mm512_load_ps(j->buf + i + 48));
    }
    j->sink[ith] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

static int peak(const long *threads, int n_threads) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) {
        fprintf(stderr, "bench_kernels: --peak needs AVX-512\n");
        return 2;
    }
    struct peak_job j = {.iters = 50000000, .n = (size_t)1 << 28};
    float *buf = aligned_alloc(64, j.n * sizeof *buf);
    for (size_t i = 0; i < j.n; i++) buf[i] = (float)(i & 1023);
    j.buf = buf;
    bool vnni = __builtin_cpu_supports("avx512vnni");
    printf("| threads | f32 FMA GFLOP/s | int8 VNNI GIOP/s | read GB/s |\n|---|---|---|---|\n");
    for (int it = 0; it < n_threads; it++) {
        struct dp_pool *pool = dp_pool_new((int)threads[it]);
        double best_f = 1e30, best_r = 1e30, best_v = 1e30;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now();
            dp_pool_run(pool, fma_worker, &j);
            double t1 = now();
            dp_pool_run(pool, read_worker, &j);
            double t2 = now();
            if (vnni) dp_pool_run(pool, vnni_worker, &j);
            double t3 = now();
            best_f = t1 - t0 < best_f ? t1 - t0 : best_f;
            best_r = t2 - t1 < best_r ? t2 - t1 : best_r;
            best_v = t3 - t2 < best_v ? t3 - t2 : best_v;
        }
        double ops = 16.0 * (double)j.iters * (double)threads[it];
        printf("| %ld | %.1f | %.1f | %.1f |\n", threads[it], ops * 32 / best_f * 1e-9, vnni ? ops * 128 / best_v * 1e-9 : 0.0,
               (double)(j.n * sizeof *buf) / best_r * 1e-9);
        dp_pool_free(pool);
    }
    free(buf);
    return 0;
}
#else
static int peak(const long *threads, int n_threads) {
    (void)threads, (void)n_threads;
    fprintf(stderr, "bench_kernels: --peak needs AVX-512 (x86-64)\n");
    return 2;
}
#endif

int main(int argc, char **argv) {
    long threads[8] = {1, 2}, toks[8] = {1, 512}, outs[8] = {4096, 14336}, n_in = 4096;
    int n_threads = 2, n_toks = 2, n_outs = 2, scalar_tok = DP_GEMM_MIN_TOK;
    const char *type_list = "F32,F16,BF16,Q8_0,Q4_0", *set_list = "simd", *act_list = "exact";
    double min_time = 0.5;
    bool hot = false, want_peak = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--hot")) {
            hot = true;
            continue;
        }
        if (!strcmp(a, "--cpu-time")) {
            cpu_clock = true;
            continue;
        }
        if (!strcmp(a, "--peak")) {
            want_peak = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "bench_kernels: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "-t")) n_threads = parse_list(v, threads, 8);
        else if (!strcmp(a, "--tok")) n_toks = parse_list(v, toks, 8);
        else if (!strcmp(a, "--out")) n_outs = parse_list(v, outs, 8);
        else if (!strcmp(a, "--in")) n_in = strtol(v, NULL, 10);
        else if (!strcmp(a, "--types")) type_list = v;
        else if (!strcmp(a, "--sets")) set_list = v;
        else if (!strcmp(a, "--act")) act_list = v;
        else if (!strcmp(a, "--min-time")) min_time = strtod(v, NULL);
        else if (!strcmp(a, "--scalar-tok")) scalar_tok = atoi(v);
        else {
            fprintf(stderr, "bench_kernels: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (want_peak) return peak(threads, n_threads);
    if (n_in <= 0 || n_in % 32) {
        fprintf(stderr, "bench_kernels: --in must be a positive multiple of 32\n");
        return 2;
    }
    long max_tok = scalar_tok;
    for (int i = 0; i < n_toks; i++) max_tok = toks[i] > max_tok ? toks[i] : max_tok;
    float *X = malloc((size_t)max_tok * (size_t)n_in * sizeof *X), *Y = NULL;
    for (long i = 0; i < max_tok * n_in; i++) X[i] = rndf();
    const struct dp_kernel_ops *simd = dp_kernels_best();
    if (getenv("DP_SCALAR")) fprintf(stderr, "note: DP_SCALAR is set, so 'simd' is the scalar set\n");
    printf("kernels: simd = %s; n_in = %ld; best of >= %.2f s per row%s\n\n", simd->name, n_in, min_time,
           cpu_clock ? " (CPU time)" : "");
    printf("| type | n_out | tok | threads | kernels | act | ms/call | GFLOP/s | weight GB/s |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    fflush(stdout);

    char types_buf[256];
    snprintf(types_buf, sizeof types_buf, "%s", type_list);
    for (char *save = NULL, *tn = strtok_r(types_buf, ",", &save); tn; tn = strtok_r(NULL, ",", &save)) {
        int type = dp_type_from_name(tn);
        if (type < 0 || !dp_kernels_supported((uint32_t)type)) {
            fprintf(stderr, "bench_kernels: no kernels for type %s\n", tn);
            return 2;
        }
        for (int io = 0; io < n_outs; io++) {
            long n_out = outs[io];
            size_t rb = dp_type_row_bytes((uint32_t)type, n_in), bytes = rb * (size_t)n_out;
            int copies = hot ? 1 : (int)((256u << 20) / bytes) + 1;
            uint8_t *W = malloc(bytes * (size_t)copies);
            float *row = malloc((size_t)n_in * sizeof *row);
            for (long r = 0; r < n_out; r++) {
                for (long k = 0; k < n_in; k++) row[k] = rndf();
                dp_quantize_row((uint32_t)type, row, W + (size_t)r * rb, n_in);
            }
            for (int c = 1; c < copies; c++) memcpy(W + (size_t)c * bytes, W, bytes);
            free(row);
            free(Y);
            Y = malloc((size_t)max_tok * (size_t)n_out * sizeof *Y);
            for (int it = 0; it < n_toks; it++)
                for (int ith = 0; ith < n_threads; ith++) {
                    struct dp_pool *pool = dp_pool_new((int)threads[ith]);
                    char sets_buf[64];
                    snprintf(sets_buf, sizeof sets_buf, "%s", set_list);
                    for (char *s2 = NULL, *sn = strtok_r(sets_buf, ",", &s2); sn; sn = strtok_r(NULL, ",", &s2)) {
                        bool scalar = !strcmp(sn, "scalar");
                        const struct dp_kernel_ops *ops = scalar                ? dp_kernels_scalar()
                                                          : !strcmp(sn, "avx2")   ? dp_kernels_avx2()
                                                          : !strcmp(sn, "avx512") ? dp_kernels_avx512()
                                                                                  : simd;
                        if (!ops) {
                            fprintf(stderr, "bench_kernels: no %s kernels on this machine\n", sn);
                            continue;
                        }
                        char acts_buf[64];
                        snprintf(acts_buf, sizeof acts_buf, "%s", act_list);
                        for (char *s3 = NULL, *an = strtok_r(acts_buf, ",", &s3); an; an = strtok_r(NULL, ",", &s3)) {
                            enum dp_act act;
                            if (dp_kernels_act_parse(an, &act)) {
                                fprintf(stderr, "bench_kernels: %s\n", dp_last_error());
                                return 2;
                        }
                        if (act == DP_ACT_Q8 && dp_quants_act_kind((uint32_t)type) == DP_ACT_KIND_NONE) continue;
                        int nt = (int)toks[it];
                        if (scalar && nt >= DP_GEMM_MIN_TOK) nt = scalar_tok;
                        dp_kernels_use(ops);
                        double best = 1e30, total = 0;
                        for (int rep = 0; total < min_time || rep < 2; rep++) {
                            const uint8_t *w = W + (size_t)(rep % copies) * bytes;
                            double t0 = now();
                            dp_matmul(pool, act, w, (uint32_t)type, n_in, n_out, X, nt, Y);
                            double dt = now() - t0;
                            total += dt;
                            if (rep > 0 && dt < best) best = dt; /* the first call warms up */
                        }
                        double flop = 2.0 * (double)n_in * (double)n_out * nt;
                        printf("| %s | %ld | %d | %ld | %s | %s | %.3f | %.1f | %.1f |\n", tn, n_out, nt, threads[ith],
                               ops->name, an, best * 1e3, flop / best * 1e-9,
                               (double)bytes / best * 1e-9);
                        fflush(stdout);
                        }
                    }
                    dp_pool_free(pool);
                }
            free(W);
        }
    }
    dp_kernels_use(NULL);
    free(X);
    free(Y);
    return 0;
}
