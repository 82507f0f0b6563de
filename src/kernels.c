/*
 * kernels: the scalar reference kernels, the dispatch table and the threaded
 * matrix product (see kernels.h for the two summation orders).
 *
 * The scalar set is written to be read: every product is a plain loop of
 * fmaf in the documented order, on rows dequantized by the plain per-type
 * decoders below. The SIMD sets must give the same bits.
 *
 * dp_matmul picks the order from n_tok alone. Below DP_GEMM_MIN_TOK tokens
 * (decode, short batches) the output rows are split into fixed contiguous
 * shares of whole 16-row blocks, and vecdot streams each block of quantized
 * rows past every token while it is in cache. From DP_GEMM_MIN_TOK tokens on
 * (prefill) there are two pool passes: the tokens are packed k-major in
 * blocks of `nr` (pass 1, shared by all threads), then each thread takes its
 * share of whole panels of `mr` rows, packs four panels DP_GEMM_KC columns
 * at a time and runs the micro-kernel over every token block, carrying
 * partial sums in Y from one column block to the next (a stored f32 partial
 * sum is exact, so the chain of fused multiply-adds is the same as without
 * blocking).
 *
 * In the q8 mode (quantized weights only; the mode is the caller's act) dp_matmul rounds the
 * activations once (rows split across threads) and then splits the output
 * rows into the same 16-row shares for every n_tok; the set's vecdot_q8
 * computes the q8 order from integer block sums, so decode and prefill give
 * the same bits.
 */
#include "kernels.h"

#include "kernels_attend.h"
#include "profile.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---- scalar reference ---- */

float dp_kernels_reduce16(const float l[16]) {
    float s8[8], s4[4];
    for (int j = 0; j < 8; j++) s8[j] = l[j] + l[j + 8];
    for (int j = 0; j < 4; j++) s4[j] = s8[j] + s8[j + 4];
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

static void axpy_scalar(float a, const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = fmaf(a, x[i], y[i]);
}

static float dot_scalar(const float *a, const float *b, int64_t n) {
    float l[16] = {0};
    for (int64_t i = 0; i < n; i++) l[i & 15] = fmaf(a[i], b[i], l[i & 15]);
    return dp_kernels_reduce16(l);
}

static void attend_scalar(const float *q, const float *K, int64_t ldk, const float *V, int n_keys, int hd, float scale,
                          float *sc, float *o) {
    if (hd > DP_ATTEND_SMALL_HD) {
        attend_large(dot_scalar, axpy_scalar, attend_softmax_ref, q, K, V, n_keys, hd, scale, sc, o);
        return;
    }
    attend_small_scores_ref(q, K, ldk, n_keys, hd, scale, sc);
    attend_softmax_ref(sc, n_keys);
    attend_small_values_ref(sc, V, n_keys, hd, o);
}

static void dequant_f32(const void *row, float *out, int64_t n) {
    memcpy(out, row, (size_t)n * sizeof *out);
}

static void dequant_f16(const void *row, float *out, int64_t n) {
    const uint8_t *p = row;
    for (int64_t i = 0; i < n; i++) out[i] = dp_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
}

static void dequant_bf16(const void *row, float *out, int64_t n) {
    const uint8_t *p = row;
    for (int64_t i = 0; i < n; i++) out[i] = dp_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
}

/* Q8_0 block: f16 scale d, 32 int8 q; x = d*q (exact in f32: 11 x 8 significant bits). */
static void dequant_q8_0(const void *row, float *out, int64_t n) {
    const uint8_t *p = row;
    for (int64_t b = 0; b < n / 32; b++, p += 34) {
        float d = dp_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
        for (int j = 0; j < 32; j++) out[b * 32 + j] = d * (float)(int8_t)p[2 + j];
    }
}

/* Q4_0 block: f16 scale d, 16 bytes; low nibbles are elements 0..15, high 16..31; x = d*(q-8). */
static void dequant_q4_0(const void *row, float *out, int64_t n) {
    const uint8_t *p = row;
    for (int64_t b = 0; b < n / 32; b++, p += 18) {
        float d = dp_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
        for (int j = 0; j < 16; j++) {
            out[b * 32 + j] = d * (float)((p[2 + j] & 0xF) - 8);
            out[b * 32 + j + 16] = d * (float)((p[2 + j] >> 4) - 8);
        }
    }
}

/* The decoders of every type depthprune computes with (quants.c holds all but the first five). */
#define SCALAR_DEQUANT                                                                                    \
    [DP_TYPE_F32] = dequant_f32, [DP_TYPE_F16] = dequant_f16, [DP_TYPE_BF16] = dequant_bf16,             \
    [DP_TYPE_Q8_0] = dequant_q8_0, [DP_TYPE_Q4_0] = dequant_q4_0, [DP_TYPE_Q4_1] = dp_quants_dequant_q4_1, \
    [DP_TYPE_Q5_0] = dp_quants_dequant_q5_0, [DP_TYPE_Q5_1] = dp_quants_dequant_q5_1,                     \
    [DP_TYPE_Q2_K] = dp_quants_dequant_q2_k, [DP_TYPE_Q3_K] = dp_quants_dequant_q3_k,                     \
    [DP_TYPE_Q4_K] = dp_quants_dequant_q4_k, [DP_TYPE_Q5_K] = dp_quants_dequant_q5_k,                     \
    [DP_TYPE_Q6_K] = dp_quants_dequant_q6_k, [DP_TYPE_IQ4_NL] = dp_quants_dequant_iq4_nl,                 \
    [DP_TYPE_IQ4_XS] = dp_quants_dequant_iq4_xs

static const dp_dequant_fn scalar_dequant[DP_TYPE_COUNT] = {SCALAR_DEQUANT};

/* Start of element k0 of a row (k0 a multiple of the block size). */
static const uint8_t *row_at(uint32_t type, const void *row, int64_t k0) {
    const struct dp_type_traits *tr = dp_type_traits(type);
    return (const uint8_t *)row + (size_t)(k0 / tr->block_size) * tr->block_bytes;
}

/* Elements decoded at a time by the reference: one block of a quantized type, 32 of a float type. */
static int decode_len(uint32_t type) {
    int bs = dp_type_traits(type)->block_size;
    return bs > 1 ? bs : 32;
}

/* The dot order on rows dequantized a block (or 32 elements) at a time, VEC_TOK tokens per pass. */
#define VEC_TOK 8
static void vecdot_ref(uint32_t type, const void *W, size_t row_bytes, int n_rows, const float *X, int64_t ldx,
                       int n_tok, int64_t n, float *Y, int64_t ldy) {
    float w[256];
    int step = decode_len(type);
    for (int r = 0; r < n_rows; r++) {
        const uint8_t *row = (const uint8_t *)W + (size_t)r * row_bytes;
        for (int t0 = 0; t0 < n_tok; t0 += VEC_TOK) {
            int nt = n_tok - t0 < VEC_TOK ? n_tok - t0 : VEC_TOK;
            const float *x = X + t0 * ldx;
            float l[VEC_TOK][16] = {{0}};
            for (int64_t k0 = 0; k0 < n; k0 += step) {
                int len = n - k0 < step ? (int)(n - k0) : step;
                scalar_dequant[type](row_at(type, row, k0), w, len);
                for (int t = 0; t < nt; t++)
                    for (int j = 0; j < len; j++) l[t][j & 15] = fmaf(w[j], x[t * ldx + k0 + j], l[t][j & 15]);
            }
            for (int t = 0; t < nt; t++) Y[(t0 + t) * ldy + r] = dp_kernels_reduce16(l[t]);
        }
    }
}

/* Panel packing on rows dequantized a block (or 32 elements) at a time. */
static void pack_ref(uint32_t type, const void *W, size_t row_bytes, int n_rows, int mr, int64_t k0, int64_t kc,
                     float *P) {
    float w[256];
    int step = decode_len(type);
    for (int i = 0; i < mr; i++) {
        const uint8_t *row = (const uint8_t *)W + (size_t)i * row_bytes;
        for (int64_t c = 0; c < kc; c += step) {
            int len = kc - c < step ? (int)(kc - c) : step;
            if (i < n_rows) scalar_dequant[type](row_at(type, row, k0 + c), w, len);
            for (int j = 0; j < len; j++) P[(c + j) * mr + i] = i < n_rows ? w[j] : 0.0f;
        }
    }
}

#define SCALAR_TYPED(T, NAME)                                                                            \
    static void vecdot_ref_##NAME(const void *W, size_t rb, int nr, const float *X, int64_t ldx, int nt, \
                                  int64_t n, float *Y, int64_t ldy) {                                    \
        vecdot_ref(T, W, rb, nr, X, ldx, nt, n, Y, ldy);                                                 \
    }                                                                                                    \
    static void pack_ref_##NAME(const void *W, size_t rb, int nr, int mr, int64_t k0, int64_t kc, float *P) { \
        pack_ref(T, W, rb, nr, mr, k0, kc, P);                                                           \
    }
SCALAR_TYPED(DP_TYPE_F32, f32)
SCALAR_TYPED(DP_TYPE_F16, f16)
SCALAR_TYPED(DP_TYPE_BF16, bf16)
SCALAR_TYPED(DP_TYPE_Q8_0, q8_0)
SCALAR_TYPED(DP_TYPE_Q4_0, q4_0)
SCALAR_TYPED(DP_TYPE_Q4_1, q4_1)
SCALAR_TYPED(DP_TYPE_Q5_0, q5_0)
SCALAR_TYPED(DP_TYPE_Q5_1, q5_1)
SCALAR_TYPED(DP_TYPE_Q2_K, q2_k)
SCALAR_TYPED(DP_TYPE_Q3_K, q3_k)
SCALAR_TYPED(DP_TYPE_Q4_K, q4_k)
SCALAR_TYPED(DP_TYPE_Q5_K, q5_k)
SCALAR_TYPED(DP_TYPE_Q6_K, q6_k)
SCALAR_TYPED(DP_TYPE_IQ4_NL, iq4_nl)
SCALAR_TYPED(DP_TYPE_IQ4_XS, iq4_xs)

/* ---- scalar reference of the q8 mode ---- */

/*
 * One block of 32 activations to Q8_0 as llama.cpp's quantize_row_q8_0_ref:
 * d = amax/127, id = 1/d (0 when d is 0), q = roundf(x*id); *d_out is d
 * rounded to f16. A non-finite value makes d NaN and q 0.
 */
static void quant_act_block(const float *x, int32_t off, int8_t *q, float *d_out, int32_t *bias) {
    float amax = 0;
    bool finite = true;
    for (int j = 0; j < 32; j++) {
        float a = fabsf(x[j]);
        if (!(a <= FLT_MAX)) finite = false;
        else if (a > amax) amax = a;
    }
    float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    int32_t sum = 0;
    for (int j = 0; j < 32; j++) {
        q[j] = finite ? (int8_t)roundf(x[j] * id) : 0;
        sum += q[j];
    }
    *d_out = finite ? dp_f16_to_f32(dp_f32_to_f16(d)) : NAN;
    *bias = -off * sum;
}

static void quant_act_scalar(const float *x, int64_t n, int32_t off, int8_t *q, float *d, int32_t *bias) {
    for (int64_t b = 0; b < n / 32; b++) quant_act_block(x + b * 32, off, q + b * 32, d + b, bias + b);
}

/* The q8 order, one output at a time, through the type's block dot (quants.c). */
static void vecdot_q8_ref(uint32_t type, const void *W, size_t row_bytes, int n_rows, const struct dp_act_q8 *A,
                          int n_tok, float *Y, int64_t ldy) {
    dp_quants_q8_block_fn f = dp_quants_q8_block(type);
    const struct dp_type_traits *tr = dp_type_traits(type);
    int64_t bs = tr->block_size, nb = A->n_in / bs, n16 = A->n_in / 16;
    for (int r = 0; r < n_rows; r++) {
        const uint8_t *row = (const uint8_t *)W + (size_t)r * row_bytes;
        for (int t = 0; t < n_tok; t++) {
            const int8_t *qx = A->q + (size_t)t * (size_t)A->n_in;
            float y = 0.0f;
            for (int64_t b = 0; b < nb; b++)
                y = f(row + (size_t)b * tr->block_bytes, qx + b * bs, A->d[t * nb + b], A->s ? A->s[t * nb + b] : 0.0f,
                      A->sum16 ? A->sum16 + t * n16 + b * (bs / 16) : NULL, y);
            Y[t * ldy + r] = y;
        }
    }
}

#define SCALAR_Q8(T, NAME)                                                                                  \
    static void vecdot_q8_ref_##NAME(const void *W, size_t rb, int nr, const struct dp_act_q8 *A, int nt, \
                                     float *Y, int64_t ldy) {                                               \
        vecdot_q8_ref(T, W, rb, nr, A, nt, Y, ldy);                                                         \
    }
SCALAR_Q8(DP_TYPE_Q8_0, q8_0)
SCALAR_Q8(DP_TYPE_Q4_0, q4_0)
SCALAR_Q8(DP_TYPE_Q5_0, q5_0)
SCALAR_Q8(DP_TYPE_IQ4_NL, iq4_nl)
SCALAR_Q8(DP_TYPE_Q4_1, q4_1)
SCALAR_Q8(DP_TYPE_Q5_1, q5_1)
SCALAR_Q8(DP_TYPE_Q2_K, q2_k)
SCALAR_Q8(DP_TYPE_Q3_K, q3_k)
SCALAR_Q8(DP_TYPE_Q4_K, q4_k)
SCALAR_Q8(DP_TYPE_Q5_K, q5_k)
SCALAR_Q8(DP_TYPE_Q6_K, q6_k)
SCALAR_Q8(DP_TYPE_IQ4_XS, iq4_xs)

#define SCALAR_MR 8
#define SCALAR_NR 4

static void gemm_scalar(const float *P, const float *Xp, int nr_b, int64_t kc, int n_tok, int n_rows, float *Y,
                        int64_t ldy, bool acc) {
    for (int t = 0; t < n_tok; t++)
        for (int i = 0; i < n_rows; i++) {
            float s = acc ? Y[t * ldy + i] : 0.0f;
            for (int64_t k = 0; k < kc; k++) s = fmaf(P[k * SCALAR_MR + i], Xp[k * nr_b + t], s);
            Y[t * ldy + i] = s;
        }
}

static const struct dp_kernel_ops scalar_ops = {
    .name = "scalar",
    .dot = dot_scalar,
    .axpy = axpy_scalar,
    .attend = attend_scalar,
    .dequant = {SCALAR_DEQUANT},
#define SCALAR_ALL(P)                                                                                          \
    {[DP_TYPE_F32] = P##f32, [DP_TYPE_F16] = P##f16, [DP_TYPE_BF16] = P##bf16, [DP_TYPE_Q8_0] = P##q8_0,       \
     [DP_TYPE_Q4_0] = P##q4_0, [DP_TYPE_Q4_1] = P##q4_1, [DP_TYPE_Q5_0] = P##q5_0, [DP_TYPE_Q5_1] = P##q5_1,  \
     [DP_TYPE_Q2_K] = P##q2_k, [DP_TYPE_Q3_K] = P##q3_k, [DP_TYPE_Q4_K] = P##q4_k, [DP_TYPE_Q5_K] = P##q5_k,  \
     [DP_TYPE_Q6_K] = P##q6_k, [DP_TYPE_IQ4_NL] = P##iq4_nl, [DP_TYPE_IQ4_XS] = P##iq4_xs}
    .vecdot = SCALAR_ALL(vecdot_ref_),
    .pack = SCALAR_ALL(pack_ref_),
    .gemm = gemm_scalar,
    .mr = SCALAR_MR, .nr = SCALAR_NR, .nr_step = 1,
    .quant_act = quant_act_scalar,
    .vecdot_q8 = {[DP_TYPE_Q8_0] = vecdot_q8_ref_q8_0, [DP_TYPE_Q4_0] = vecdot_q8_ref_q4_0,
                  [DP_TYPE_Q5_0] = vecdot_q8_ref_q5_0, [DP_TYPE_IQ4_NL] = vecdot_q8_ref_iq4_nl,
                  [DP_TYPE_Q4_1] = vecdot_q8_ref_q4_1, [DP_TYPE_Q5_1] = vecdot_q8_ref_q5_1,
                  [DP_TYPE_Q2_K] = vecdot_q8_ref_q2_k, [DP_TYPE_Q3_K] = vecdot_q8_ref_q3_k,
                  [DP_TYPE_Q4_K] = vecdot_q8_ref_q4_k, [DP_TYPE_Q5_K] = vecdot_q8_ref_q5_k,
                  [DP_TYPE_Q6_K] = vecdot_q8_ref_q6_k, [DP_TYPE_IQ4_XS] = vecdot_q8_ref_iq4_xs},
};

/* ---- dispatch ---- */

static _Atomic(const struct dp_kernel_ops *) current;

const struct dp_kernel_ops *dp_kernels_scalar(void) { return &scalar_ops; }

/*
 * The SIMD sets are x86-64 code (kernels_avx2.c, kernels_avx512.c, built
 * there only); elsewhere there are none and every path takes the scalar set.
 */
#if !defined(__x86_64__)
const struct dp_kernel_ops *dp_kernels_avx2(void) { return NULL; }
const struct dp_kernel_ops *dp_kernels_avx512(void) { return NULL; }
#endif

/*
 * The environment picks the set: DP_SCALAR=1 (any value but "" and "0") the
 * scalar one; else DP_KERNELS=scalar|avx2|avx512 that set when the CPU has
 * it (to run the AVX2 set on an AVX-512 machine); else the widest present
 * (off x86-64: always the scalar one).
 */
const struct dp_kernel_ops *dp_kernels_best(void) {
    const char *force = getenv("DP_SCALAR");
    if (force && *force && strcmp(force, "0")) return &scalar_ops;
    const char *name = getenv("DP_KERNELS");
    if (name && !strcmp(name, "scalar")) return &scalar_ops;
    if (name && !strcmp(name, "avx2") && dp_kernels_avx2()) return dp_kernels_avx2();
    const struct dp_kernel_ops *k = dp_kernels_avx512();
    if (!k) k = dp_kernels_avx2();
    return k ? k : &scalar_ops;
}

void dp_kernels_use(const struct dp_kernel_ops *ops) { atomic_store(&current, ops ? ops : dp_kernels_best()); }

const struct dp_kernel_ops *dp_kernels(void) {
    const struct dp_kernel_ops *k = atomic_load(&current);
    if (!k) {
        k = dp_kernels_best();
        atomic_store(&current, k);
    }
    return k;
}

const char *dp_kernels_act_name(enum dp_act mode) {
    return mode == DP_ACT_Q8 ? "q8" : mode == DP_ACT_EXACT ? "exact" : "default";
}

dp_status dp_kernels_act_parse(const char *name, enum dp_act *out) {
    if (!strcmp(name, "exact")) *out = DP_ACT_EXACT;
    else if (!strcmp(name, "q8")) *out = DP_ACT_Q8;
    else return dp_fail(DP_ERR_ARG, "activation mode must be exact or q8, not '%s'", name);
    return DP_OK;
}

/* Whether set k computes the q8 order of `type` (a Q8_0-rounded type also needs the set's rounding). */
static bool has_q8(const struct dp_kernel_ops *k, uint32_t type) {
    return k && k->vecdot_q8[type] && (dp_quants_act_kind(type) != DP_ACT_KIND_Q8_0 || k->quant_act);
}

const struct dp_kernel_ops *dp_kernels_q8(uint32_t type) {
    const struct dp_kernel_ops *k = dp_kernels();
    DP_ASSERT(dp_quants_act_kind(type) != DP_ACT_KIND_NONE);
    if (has_q8(k, type)) return k;
    const struct dp_kernel_ops *avx2 = k != &scalar_ops ? dp_kernels_avx2() : NULL;
    return has_q8(avx2, type) ? avx2 : &scalar_ops;
}

bool dp_kernels_supported(uint32_t type) { return type < DP_TYPE_COUNT && scalar_dequant[type]; }

void dp_dequant_row(uint32_t type, const void *row, float *out, int64_t n) {
    const struct dp_kernel_ops *k = dp_kernels();
    DP_ASSERT(dp_kernels_supported(type));
    (k->dequant[type] ? k->dequant[type] : scalar_dequant[type])(row, out, n);
}

/* ---- threaded matrix product ---- */

/*
 * Per-thread scratch buffers, grown on demand (64-byte aligned) and freed
 * when the thread ends: the packed tokens (owned by the thread that calls
 * dp_matmul, read by all) and the weight panels of each worker.
 */
enum { SCRATCH_XP, SCRATCH_PANELS, SCRATCH_ACT, SCRATCH_SLOTS };
struct scratch_set {
    float *buf[SCRATCH_SLOTS];
    size_t cap[SCRATCH_SLOTS];
};
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static _Thread_local struct scratch_set *scratch_mine;

static void scratch_free(void *p) {
    struct scratch_set *s = p;
    for (int i = 0; i < SCRATCH_SLOTS; i++) free(s->buf[i]);
    free(s);
}
static void scratch_key_init(void) { DP_ASSERT(pthread_key_create(&scratch_key, scratch_free) == 0); }

static float *scratch(int slot, size_t n) {
    if (!scratch_mine) {
        pthread_once(&scratch_once, scratch_key_init);
        scratch_mine = calloc(1, sizeof *scratch_mine);
        DP_ASSERT(scratch_mine);
        pthread_setspecific(scratch_key, scratch_mine);
    }
    struct scratch_set *s = scratch_mine;
    if (n > s->cap[slot]) {
        free(s->buf[slot]);
        s->buf[slot] = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
        DP_ASSERT(s->buf[slot]);
        s->cap[slot] = n;
    }
    return s->buf[slot];
}

struct matmul_job {
    const struct dp_kernel_ops *k;
    const uint8_t *W;
    uint32_t type;
    int64_t n_in, n_out;
    size_t row_bytes;
    const float *X;
    int n_tok;
    float *Y;
    float *Xp;       /* gemm: tokens packed k-major in blocks of k->nr (the last block narrower) */
    int64_t n_kpack; /* gemm: column chunks per token block in the packing pass */
};

/* Rows per unit of the decode split: shares start on a multiple of it. */
#define VEC_UNIT 16
/* Columns per unit of the token-packing pass. */
#define XPACK_COLS 256

/* Thread ith's share of n_out rows: whole VEC_UNIT-row blocks, the same split for every n_tok. */
static void row_share(int64_t n_out, int ith, int nth, int64_t *lo, int64_t *hi) {
    dp_pool_split((n_out + VEC_UNIT - 1) / VEC_UNIT, ith, nth, lo, hi);
    *lo *= VEC_UNIT;
    *hi = *hi * VEC_UNIT < n_out ? *hi * VEC_UNIT : n_out;
}

static void decode_worker(void *ctx, int ith, int nth) {
    const struct matmul_job *j = ctx;
    int64_t lo, hi;
    row_share(j->n_out, ith, nth, &lo, &hi);
    dp_vecdot_fn f = j->k->vecdot[j->type] ? j->k->vecdot[j->type] : scalar_ops.vecdot[j->type];
    /* a block of rows at a time, so that it stays in cache while every token passes over it */
    for (int64_t r0 = lo; r0 < hi; r0 += VEC_UNIT) {
        int nr = hi - r0 < VEC_UNIT ? (int)(hi - r0) : VEC_UNIT;
        f(j->W + (size_t)r0 * j->row_bytes, j->row_bytes, nr, j->X, j->n_in, j->n_tok, j->n_in, j->Y + r0, j->n_out);
    }
}

/* Token block b: first token, tokens, packed width, offset in Xp. */
static void token_block(const struct matmul_job *j, int64_t b, int *t0, int *nt, int *w, size_t *off) {
    int nr = j->k->nr, step = j->k->nr_step;
    *t0 = (int)b * nr;
    *nt = j->n_tok - *t0 < nr ? j->n_tok - *t0 : nr;
    *w = (*nt + step - 1) / step * step;
    *off = (size_t)*t0 * (size_t)j->n_in;
}

static void xpack_worker(void *ctx, int ith, int nth) {
    const struct matmul_job *j = ctx;
    int64_t n_blocks = (j->n_tok + j->k->nr - 1) / j->k->nr, lo, hi;
    dp_pool_split(n_blocks * j->n_kpack, ith, nth, &lo, &hi);
    for (int64_t u = lo; u < hi; u++) {
        int t0, nt, w;
        size_t off;
        token_block(j, u / j->n_kpack, &t0, &nt, &w, &off);
        int64_t k0 = u % j->n_kpack * XPACK_COLS, k1 = k0 + XPACK_COLS < j->n_in ? k0 + XPACK_COLS : j->n_in;
        float *dst = j->Xp + off;
        for (int64_t k = k0; k < k1; k++)
            for (int t = 0; t < w; t++) dst[k * w + t] = t < nt ? j->X[(size_t)(t0 + t) * j->n_in + k] : 0.0f;
    }
}

/*
 * Per-thread weight panels: GEMM_GROUP panels of DP_GEMM_KC columns by up to
 * DP_GEMM_MR_MAX rows (256 KiB, meant for L2). Each packed token block is
 * used against every panel of the group while it is in L1, which divides the
 * traffic of packed tokens from L3 by GEMM_GROUP.
 */
#define GEMM_GROUP 4
#define PANEL_FLOATS (DP_GEMM_KC * DP_GEMM_MR_MAX)

static void gemm_worker(void *ctx, int ith, int nth) {
    const struct matmul_job *j = ctx;
    const struct dp_kernel_ops *k = j->k;
    int mr = k->mr;
    int64_t lo, hi, n_blocks = (j->n_tok + k->nr - 1) / k->nr;
    dp_pool_split((j->n_out + mr - 1) / mr, ith, nth, &lo, &hi);
    dp_pack_fn pack = k->pack[j->type] ? k->pack[j->type] : scalar_ops.pack[j->type];
    float *panels = lo < hi ? scratch(SCRATCH_PANELS, GEMM_GROUP * PANEL_FLOATS) : NULL;
    for (int64_t p0 = lo; p0 < hi; p0 += GEMM_GROUP) {
        int n_panels = hi - p0 < GEMM_GROUP ? (int)(hi - p0) : GEMM_GROUP;
        for (int64_t k0 = 0; k0 < j->n_in; k0 += DP_GEMM_KC) {
            int64_t kc = j->n_in - k0 < DP_GEMM_KC ? j->n_in - k0 : DP_GEMM_KC;
            for (int g = 0; g < n_panels; g++) {
                int64_t r0 = (p0 + g) * mr;
                int n_rows = j->n_out - r0 < mr ? (int)(j->n_out - r0) : mr;
                pack(j->W + (size_t)r0 * j->row_bytes, j->row_bytes, n_rows, mr, k0, kc, panels + g * PANEL_FLOATS);
            }
            for (int64_t b = 0; b < n_blocks; b++) {
                int t0, nt, w;
                size_t off;
                token_block(j, b, &t0, &nt, &w, &off);
                for (int g = 0; g < n_panels; g++) {
                    int64_t r0 = (p0 + g) * mr;
                    int n_rows = j->n_out - r0 < mr ? (int)(j->n_out - r0) : mr;
                    k->gemm(panels + g * PANEL_FLOATS, j->Xp + off + (size_t)k0 * w, w, kc, nt, n_rows,
                            j->Y + (size_t)t0 * j->n_out + r0, j->n_out, k0 > 0);
                }
            }
        }
    }
}

/*
 * The q8 mode. The activations are rounded once per call (rows split
 * across threads), then the output rows are split into fixed shares of
 * whole 16-row blocks, and vecdot_q8 runs each block over all tokens (in
 * chunks of Q8_TOK_CHUNK so that the rounded activations a block meets stay
 * in the caches). One order for every n_tok.
 */
#define Q8_TOK_CHUNK 256

struct q8_job {
    struct matmul_job m; /* the product (Xp and n_kpack unused; k is the set of dp_kernels_q8) */
    enum dp_act_kind kind;
    int8_t *q;
    float *d, *s;
    int32_t *bias, *sum16;
};

/* The unsigned offset of a Q8_0-rounded type's codes for the SIMD sets: u = qw + off >= 0. */
static int32_t q8_offset(uint32_t type) {
    switch (type) {
    case DP_TYPE_Q4_0: return 8;
    case DP_TYPE_Q5_0: return 16;
    default: return 128; /* Q8_0, IQ4_NL */
    }
}

static void q8_quant_worker(void *ctx, int ith, int nth) {
    const struct q8_job *j = ctx;
    const struct matmul_job *m = &j->m;
    int64_t lo, hi, n = m->n_in, nb = n / dp_quants_act_block(j->kind);
    dp_pool_split(m->n_tok, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        const float *x = m->X + t * n;
        int8_t *q = j->q + t * n;
        if (j->kind == DP_ACT_KIND_Q8_0) m->k->quant_act(x, n, q8_offset(m->type), q, j->d + t * nb, j->bias + t * nb);
        else if (j->kind == DP_ACT_KIND_Q8_1) dp_quants_act_q8_1(x, n, q, j->d + t * nb, j->s + t * nb);
        else dp_quants_act_q8_k(x, n, q, j->d + t * nb, j->sum16 + t * (n / 16));
    }
}

static void q8_worker(void *ctx, int ith, int nth) {
    const struct q8_job *j = ctx;
    const struct matmul_job *m = &j->m;
    int64_t lo, hi, nb = m->n_in / dp_quants_act_block(j->kind), n16 = m->n_in / 16;
    row_share(m->n_out, ith, nth, &lo, &hi);
    dp_vecdot_q8_fn f = m->k->vecdot_q8[m->type];
    for (int64_t r0 = lo; r0 < hi; r0 += VEC_UNIT) {
        int nr = hi - r0 < VEC_UNIT ? (int)(hi - r0) : VEC_UNIT;
        for (int t0 = 0; t0 < m->n_tok; t0 += Q8_TOK_CHUNK) {
            int nt = m->n_tok - t0 < Q8_TOK_CHUNK ? m->n_tok - t0 : Q8_TOK_CHUNK;
            struct dp_act_q8 a = {j->q + (size_t)t0 * m->n_in, j->d + t0 * nb,
                                  j->kind == DP_ACT_KIND_Q8_0 ? j->bias + t0 * nb : NULL,
                                  m->n_in,
                                  j->kind == DP_ACT_KIND_Q8_1 ? j->s + t0 * nb : NULL,
                                  j->kind == DP_ACT_KIND_Q8_K ? j->sum16 + t0 * n16 : NULL};
            f(m->W + (size_t)r0 * m->row_bytes, m->row_bytes, nr, &a, nt, m->Y + (size_t)t0 * m->n_out + r0, m->n_out);
        }
    }
}

static void matmul_q8(struct dp_pool *pool, const void *W, uint32_t type, int64_t n_in, int64_t n_out, const float *X,
                      int n_tok, float *Y) {
    enum dp_act_kind kind = dp_quants_act_kind(type);
    DP_ASSERT(n_in % dp_quants_act_block(kind) == 0);
    /* one buffer: d, s, bias (n_in/32 per token each, enough for every kind), sum16, then q on a 64-byte boundary */
    size_t n32 = (size_t)n_tok * ((size_t)n_in / 32), n16 = 2 * n32;
    size_t q_at = ((3 * n32 + n16) * sizeof(float) + 63) / 64 * 64;
    float *buf = scratch(SCRATCH_ACT, (q_at + (size_t)n_tok * (size_t)n_in + 3) / sizeof(float));
    struct q8_job j = {{dp_kernels_q8(type), W, type, n_in, n_out, dp_type_row_bytes(type, n_in), X, n_tok, Y, NULL, 0},
                       kind, (int8_t *)((uint8_t *)buf + q_at), buf, buf + n32, (int32_t *)(buf + 2 * n32),
                       (int32_t *)(buf + 3 * n32)};
    if (n_tok >= 8) dp_pool_run(pool, q8_quant_worker, &j);
    else q8_quant_worker(&j, 0, 1);
    dp_pool_run(pool, q8_worker, &j);
}

static void matmul(struct dp_pool *pool, enum dp_act act, const void *W, uint32_t type, int64_t n_in, int64_t n_out,
                   const float *X, int n_tok, float *Y, int seg_tok);

/* The profile's regime of a product (see enum dp_profile_op): the exact mode's by its order. */
static int matmul_regime(enum dp_act act, uint32_t type, int n_tok, int seg_tok) {
    if (act == DP_ACT_Q8 && dp_quants_act_kind(type) != DP_ACT_KIND_NONE)
        return n_tok >= 129 ? DP_PROF_Q8_LONG : n_tok >= 16 ? DP_PROF_Q8_SHORT : DP_PROF_Q8_DECODE;
    return seg_tok >= DP_GEMM_MIN_TOK ? DP_PROF_GEMM : n_tok >= 16 ? DP_PROF_DOT_SHORT : DP_PROF_DOT_DECODE;
}

void dp_matmul_seg(struct dp_pool *pool, enum dp_act act, const void *W, uint32_t type, int64_t n_in, int64_t n_out,
                   const float *X, int n_tok, float *Y, int seg_tok) {
    double t0 = dp_profile_begin();
    matmul(pool, act, W, type, n_in, n_out, X, n_tok, Y, seg_tok);
    dp_profile_end(t0, matmul_regime(act, type, n_tok, seg_tok), 2.0 * (double)n_in * (double)n_out * n_tok,
                   (double)dp_type_row_bytes(type, n_in) * (double)n_out);
}

void dp_matmul(struct dp_pool *pool, enum dp_act act, const void *W, uint32_t type, int64_t n_in, int64_t n_out,
               const float *X, int n_tok, float *Y) {
    dp_matmul_seg(pool, act, W, type, n_in, n_out, X, n_tok, Y, n_tok);
}

static void matmul(struct dp_pool *pool, enum dp_act act, const void *W, uint32_t type, int64_t n_in, int64_t n_out,
                   const float *X, int n_tok, float *Y, int seg_tok) {
    DP_ASSERT(dp_kernels_supported(type));
    /* a tiny product costs less than waking a thread: the caller runs it (same bits for any split) */
    if ((double)n_in * (double)n_out * n_tok < DP_MATMUL_MIN_PARALLEL) pool = NULL;
    if (act == DP_ACT_Q8 && dp_quants_act_kind(type) != DP_ACT_KIND_NONE) {
        matmul_q8(pool, W, type, n_in, n_out, X, n_tok, Y);
        return;
    }
    const struct dp_kernel_ops *k = dp_kernels();
    struct matmul_job j = {k, W, type, n_in, n_out, dp_type_row_bytes(type, n_in), X, n_tok, Y, NULL, 0};
    if (seg_tok < DP_GEMM_MIN_TOK) { /* the order of seg_tok rows, whatever n_tok is */
        dp_pool_run(pool, decode_worker, &j);
        return;
    }
    DP_ASSERT(k->mr <= DP_GEMM_MR_MAX && k->nr <= DP_GEMM_NR_MAX);
    size_t padded = ((size_t)n_tok + (size_t)k->nr_step - 1) / (size_t)k->nr_step * (size_t)k->nr_step;
    j.Xp = scratch(SCRATCH_XP, padded * (size_t)n_in);
    j.n_kpack = (n_in + XPACK_COLS - 1) / XPACK_COLS;
    dp_pool_run(pool, xpack_worker, &j);
    dp_pool_run(pool, gemm_worker, &j);
}
