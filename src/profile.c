/*
 * profile: per-op counters and the machine's peaks (see profile.h and
 * depthprune.h).
 *
 * Counters are atomics in nanoseconds and whole FLOPs/bytes, so threads add
 * to them without locks. A thread-local depth makes only the outermost op
 * count. The peak loops are independent chains of the instructions the
 * kernels use (ten accumulators, more than the FMA latency times its
 * throughput needs), run on `threads` threads started together; their
 * sums are kept live so the compiler cannot drop them.
 */
#include "profile.h"

#include "kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

atomic_int dp_profile_on;

static atomic_llong prof_ns[DP_PROF_N], prof_flops[DP_PROF_N], prof_bytes[DP_PROF_N], prof_calls[DP_PROF_N];
static atomic_llong prof_tokens, prof_token_sublayers;
static double prof_t0;
static _Thread_local int prof_depth;

static const char *const op_names[DP_PROF_N] = {
    "gemm (exact, >=64 tok)", "dot (exact, 16-63 tok)", "dot (exact, <16 tok)", "q8 (>=129 tok)",
    "q8 (16-128 tok)", "q8 (<16 tok)", "attention", "head", "norms", "rope", "glu", "embed", "loss",
};

const char *dp_profile_op_name(int op) { return op >= 0 && op < DP_PROF_N ? op_names[op] : NULL; }

double dp_profile_begin(void) {
    if (!atomic_load_explicit(&dp_profile_on, memory_order_relaxed)) return 0;
    if (prof_depth++) return 0;
    return dp_now();
}

void dp_profile_end(double t0, int op, double flops, double bytes) {
    if (!atomic_load_explicit(&dp_profile_on, memory_order_relaxed)) return;
    if (prof_depth > 0) prof_depth--;
    if (t0 == 0 || prof_depth) return;
    DP_ASSERT(op >= 0 && op < DP_PROF_N);
    atomic_fetch_add_explicit(&prof_ns[op], (long long)((dp_now() - t0) * 1e9), memory_order_relaxed);
    atomic_fetch_add_explicit(&prof_flops[op], (long long)flops, memory_order_relaxed);
    atomic_fetch_add_explicit(&prof_bytes[op], (long long)bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&prof_calls[op], 1, memory_order_relaxed);
}

void dp_profile_tokens(int64_t n, int64_t token_sublayers) {
    if (!atomic_load_explicit(&dp_profile_on, memory_order_relaxed)) return;
    atomic_fetch_add_explicit(&prof_tokens, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&prof_token_sublayers, token_sublayers, memory_order_relaxed);
}

void dp_profile_start(void) {
    for (int i = 0; i < DP_PROF_N; i++) {
        atomic_store(&prof_ns[i], 0);
        atomic_store(&prof_flops[i], 0);
        atomic_store(&prof_bytes[i], 0);
        atomic_store(&prof_calls[i], 0);
    }
    atomic_store(&prof_tokens, 0);
    atomic_store(&prof_token_sublayers, 0);
    prof_t0 = dp_now();
    atomic_store(&dp_profile_on, 1);
}

void dp_profile_stop(struct dp_profile *out) {
    atomic_store(&dp_profile_on, 0);
    memset(out, 0, sizeof *out);
    out->wall = dp_now() - prof_t0;
    for (int i = 0; i < DP_PROF_N; i++) {
        out->seconds[i] = (double)atomic_load(&prof_ns[i]) * 1e-9;
        out->flops[i] = (double)atomic_load(&prof_flops[i]);
        out->bytes[i] = (double)atomic_load(&prof_bytes[i]);
        out->calls[i] = atomic_load(&prof_calls[i]);
    }
    out->tokens = atomic_load(&prof_tokens);
    out->token_sublayers = atomic_load(&prof_token_sublayers);
}

/* ---- peaks ---- */

enum { SET_SCALAR, SET_AVX2, SET_AVX512, SET_AVX512_VNNI };

/* The instructions of the kernel set in use (for q8: the set dp_matmul's q8 products run with). */
static int kernel_set(enum dp_peak_kind kind) {
    const struct dp_kernel_ops *k = kind == DP_PEAK_INT8 ? dp_kernels_q8(DP_TYPE_Q8_0) : dp_kernels();
    if (!k || !strcmp(k->name, "scalar")) return SET_SCALAR;
    if (!strcmp(k->name, "avx2")) return SET_AVX2;
#if defined(__x86_64__)
    if (kind == DP_PEAK_INT8 && __builtin_cpu_supports("avx512vnni")) return SET_AVX512_VNNI;
#endif
    return SET_AVX512;
}

const char *dp_peak_name(enum dp_peak_kind kind) {
    int s = kernel_set(kind);
    switch (kind) {
    case DP_PEAK_FMA: return s == SET_SCALAR ? "scalar fmaf" : s == SET_AVX2 ? "avx2 vfmadd ymm" : "avx512 vfmadd zmm";
    case DP_PEAK_INT8:
        return s == SET_SCALAR ? "none (scalar q8)" : s == SET_AVX512_VNNI ? "avx512 vpdpbusd zmm"
                                                                            : "avx2 vpmaddubsw+vpmaddwd+vpaddd ymm";
    case DP_PEAK_READ: return "memory read";
    }
    return "?";
}

#define PEAK_CHAINS 10
/*
 * The loops spell their ten chains out (REP10) so the accumulators stay in
 * registers; an array of vectors would go through memory at -O2.
 */
#define REP10(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9)

/* Scalar FMA chains (no vector set): 2 FLOPs per fmaf. */
static double loop_fma_scalar(int64_t iters) {
    float x = 1.0000001f, y = 0.9999999f;
#define DECL(c) float a##c = (float)c;
#define STEP(c) a##c = fmaf(a##c, x, y);
#define SUM(c) + a##c
    REP10(DECL)
    for (int64_t i = 0; i < iters; i++) { REP10(STEP) }
    return 0 REP10(SUM);
#undef DECL
#undef STEP
#undef SUM
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static double loop_fma_avx2(int64_t iters) {
    __m256 x = _mm256_set1_ps(1.0000001f), y = _mm256_set1_ps(0.9999999f);
#define DECL(c) __m256 a##c = _mm256_set1_ps((float)c);
#define STEP(c) a##c = _mm256_fmadd_ps(a##c, x, y);
#define SUM(c) s = _mm256_add_ps(s, a##c);
    REP10(DECL)
    for (int64_t i = 0; i < iters; i++) { REP10(STEP) }
    __m256 s = _mm256_setzero_ps();
    REP10(SUM)
    return _mm256_cvtss_f32(s);
#undef DECL
#undef STEP
#undef SUM
}

/* One 32-byte block of the AVX2 q8 kernels: u8 x s8 pairs to s16, pairs of s16 to s32, accumulate. */
__attribute__((target("avx2,fma"))) static double loop_int8_avx2(int64_t iters) {
    __m256i u = _mm256_set1_epi8(3), q = _mm256_set1_epi8(-2), one = _mm256_set1_epi16(1);
#define DECL(c) __m256i a##c = _mm256_set1_epi32(c), u##c = _mm256_set1_epi8(c + 1);
#define STEP(c) a##c = _mm256_add_epi32(a##c, _mm256_madd_epi16(_mm256_maddubs_epi16(u##c, q), one));
#define SUM(c) s = _mm256_add_epi32(s, a##c);
    REP10(DECL)
    for (int64_t i = 0; i < iters; i++) {
        REP10(STEP)
        __asm__ volatile("" : "+x"(u0), "+x"(u1), "+x"(u2), "+x"(u3), "+x"(u4)); /* no hoisting of the products */
        __asm__ volatile("" : "+x"(u5), "+x"(u6), "+x"(u7), "+x"(u8), "+x"(u9));
    }
    __m256i s = _mm256_setzero_si256();
    REP10(SUM)
    (void)u;
    return (double)_mm256_extract_epi32(s, 0);
#undef DECL
#undef STEP
#undef SUM
}

__attribute__((target("avx512f,fma"))) static double loop_fma_avx512(int64_t iters) {
    __m512 x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(0.9999999f);
#define DECL(c) __m512 a##c = _mm512_set1_ps((float)c);
#define STEP(c) a##c = _mm512_fmadd_ps(a##c, x, y);
#define SUM(c) s = _mm512_add_ps(s, a##c);
    REP10(DECL)
    for (int64_t i = 0; i < iters; i++) { REP10(STEP) }
    __m512 s = _mm512_setzero_ps();
    REP10(SUM)
    return _mm512_reduce_add_ps(s);
#undef DECL
#undef STEP
#undef SUM
}

__attribute__((target("avx512f,avx512vnni"))) static double loop_int8_vnni(int64_t iters) {
    __m512i u = _mm512_set1_epi8(3), q = _mm512_set1_epi8(-2);
#define DECL(c) __m512i a##c = _mm512_set1_epi32(c);
#define STEP(c) a##c = _mm512_dpbusd_epi32(a##c, u, q);
#define SUM(c) s = _mm512_add_epi32(s, a##c);
    REP10(DECL)
    for (int64_t i = 0; i < iters; i++) { REP10(STEP) }
    __m512i s = _mm512_setzero_si512();
    REP10(SUM)
    return (double)_mm512_reduce_add_epi32(s);
#undef DECL
#undef STEP
#undef SUM
}
#endif

/* Read n bytes of buf with 8-byte loads in 8 independent sums. */
static double loop_read(const uint64_t *buf, size_t n_words, int64_t reps) {
    uint64_t s[8] = {0};
    for (int64_t r = 0; r < reps; r++)
        for (size_t i = 0; i + 8 <= n_words; i += 8)
            for (int c = 0; c < 8; c++) s[c] += buf[i + c];
    uint64_t t = 0;
    for (int c = 0; c < 8; c++) t += s[c];
    return (double)t;
}

struct peak_job {
    enum dp_peak_kind kind;
    int set;
    int64_t iters;
    const uint64_t *buf;
    size_t n_words;
    pthread_barrier_t *bar;
    double sink;
};

static double run_loop(const struct peak_job *j) {
    if (j->kind == DP_PEAK_READ) return loop_read(j->buf, j->n_words, j->iters);
#if defined(__x86_64__)
    if (j->kind == DP_PEAK_FMA && j->set == SET_AVX2) return loop_fma_avx2(j->iters);
    if (j->kind == DP_PEAK_FMA && j->set >= SET_AVX512) return loop_fma_avx512(j->iters);
    if (j->kind == DP_PEAK_INT8 && j->set == SET_AVX2) return loop_int8_avx2(j->iters);
    if (j->kind == DP_PEAK_INT8 && j->set == SET_AVX512) return loop_int8_avx2(j->iters); /* AVX-512 without VNNI: q8 uses AVX2 */
    if (j->kind == DP_PEAK_INT8 && j->set == SET_AVX512_VNNI) return loop_int8_vnni(j->iters);
#endif
    return loop_fma_scalar(j->iters);
}

static void *peak_thread(void *arg) {
    struct peak_job *j = arg;
    pthread_barrier_wait(j->bar);
    j->sink = run_loop(j);
    return NULL;
}

/* Operations (FLOPs, int8 ops or bytes) of one iteration of the loop. */
static double ops_per_iter(const struct peak_job *j) {
    if (j->kind == DP_PEAK_READ) return (double)(j->n_words / 8 * 8) * 8;
    int lanes = j->set == SET_SCALAR ? 1 : j->set == SET_AVX2 ? 8 : 16;
    if (j->kind == DP_PEAK_INT8 && j->set == SET_AVX512) lanes = 8;  /* runs the AVX2 loop */
    /* FMA: 2 per f32 lane; int8: 4 multiply-adds (x2) per 32-bit lane */
    return (double)PEAK_CHAINS * lanes * (j->kind == DP_PEAK_FMA ? 2 : 8);
}

/* Run the loop of `iters` on `threads` threads; wall seconds. */
static double run_threads(struct peak_job *proto, int threads) {
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)threads);
    struct peak_job *jobs = dp_calloc((size_t)threads, sizeof *jobs);
    pthread_t *th = dp_calloc((size_t)threads, sizeof *th);
    if (!jobs || !th) {
        free(jobs);
        free(th);
        pthread_barrier_destroy(&bar);
        return 0;
    }
    for (int i = 0; i < threads; i++) {
        jobs[i] = *proto;
        jobs[i].bar = &bar;
    }
    int started = 1;
    for (int i = 1; i < threads; i++)
        if (pthread_create(&th[i], NULL, peak_thread, &jobs[i]) == 0) started++;
    if (started < threads) { /* cannot happen short of resource exhaustion: measure nothing */
        pthread_barrier_destroy(&bar);
        free(jobs);
        free(th);
        return 0;
    }
    double t0 = dp_now();
    peak_thread(&jobs[0]);
    for (int i = 1; i < threads; i++) pthread_join(th[i], NULL);
    double t = dp_now() - t0;
    for (int i = 0; i < threads; i++) proto->sink += jobs[i].sink;
    pthread_barrier_destroy(&bar);
    free(jobs);
    free(th);
    return t;
}

double dp_peak_measure(enum dp_peak_kind kind, int threads, double seconds) {
    if (threads < 1) threads = 1;
    struct peak_job j = {kind, kernel_set(kind), 1000, NULL, 0, NULL, 0};
    if (kind == DP_PEAK_INT8 && j.set == SET_SCALAR) return 0;
    uint64_t *buf = NULL;
    if (kind == DP_PEAK_READ) {
        j.n_words = ((size_t)256 << 20) / 8;
        buf = dp_malloc(j.n_words * 8);
        if (!buf) return 0;
        for (size_t i = 0; i < j.n_words; i++) buf[i] = i; /* touched: the pages are mapped */
        j.buf = buf;
        j.iters = 1;
    }
    /* grow iterations until a run lasts a tenth of `seconds`, then take the best of the rest */
    double t = run_threads(&j, threads);
    while (t > 0 && t < seconds / 10 && j.iters < ((int64_t)1 << 40)) {
        j.iters *= 4;
        t = run_threads(&j, threads);
    }
    double best = 0, spent = 0;
    while (t > 0 && spent < seconds) {
        t = run_threads(&j, threads);
        spent += t;
        double rate = ops_per_iter(&j) * (double)j.iters * threads / t * 1e-9;
        if (rate > best) best = rate;
    }
    free(buf);
    static volatile double sink;
    sink = j.sink;
    (void)sink;
    return best;
}
