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
 */
#include "kernels.h"

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

static float dot_scalar(const float *a, const float *b, int64_t n) {
    float l[16] = {0};
    for (int64_t i = 0; i < n; i++) l[i & 15] = fmaf(a[i], b[i], l[i & 15]);
    return dp_kernels_reduce16(l);
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

static const dp_dequant_fn scalar_dequant[DP_TYPE_COUNT] = {
    [DP_TYPE_F32] = dequant_f32, [DP_TYPE_F16] = dequant_f16, [DP_TYPE_BF16] = dequant_bf16,
    [DP_TYPE_Q8_0] = dequant_q8_0, [DP_TYPE_Q4_0] = dequant_q4_0,
};

/* Start of element k0 of a row (k0 a multiple of the block size). */
static const uint8_t *row_at(uint32_t type, const void *row, int64_t k0) {
    const struct dp_type_traits *tr = dp_type_traits(type);
    return (const uint8_t *)row + (size_t)(k0 / tr->block_size) * tr->block_bytes;
}

/* The dot order on rows dequantized 32 elements at a time, VEC_TOK tokens per pass. */
#define VEC_TOK 8
static void vecdot_ref(uint32_t type, const void *W, size_t row_bytes, int n_rows, const float *X, int64_t ldx,
                       int n_tok, int64_t n, float *Y, int64_t ldy) {
    float w[32];
    for (int r = 0; r < n_rows; r++) {
        const uint8_t *row = (const uint8_t *)W + (size_t)r * row_bytes;
        for (int t0 = 0; t0 < n_tok; t0 += VEC_TOK) {
            int nt = n_tok - t0 < VEC_TOK ? n_tok - t0 : VEC_TOK;
            const float *x = X + t0 * ldx;
            float l[VEC_TOK][16] = {{0}};
            for (int64_t k0 = 0; k0 < n; k0 += 32) {
                int len = n - k0 < 32 ? (int)(n - k0) : 32;
                scalar_dequant[type](row_at(type, row, k0), w, len);
                for (int t = 0; t < nt; t++)
                    for (int j = 0; j < len; j++) l[t][j & 15] = fmaf(w[j], x[t * ldx + k0 + j], l[t][j & 15]);
            }
            for (int t = 0; t < nt; t++) Y[(t0 + t) * ldy + r] = dp_kernels_reduce16(l[t]);
        }
    }
}

/* Panel packing on rows dequantized 32 elements at a time. */
static void pack_ref(uint32_t type, const void *W, size_t row_bytes, int n_rows, int mr, int64_t k0, int64_t kc,
                     float *P) {
    float w[32];
    for (int i = 0; i < mr; i++) {
        const uint8_t *row = (const uint8_t *)W + (size_t)i * row_bytes;
        for (int64_t c = 0; c < kc; c += 32) {
            int len = kc - c < 32 ? (int)(kc - c) : 32;
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
    .dequant = {
        [DP_TYPE_F32] = dequant_f32, [DP_TYPE_F16] = dequant_f16, [DP_TYPE_BF16] = dequant_bf16,
        [DP_TYPE_Q8_0] = dequant_q8_0, [DP_TYPE_Q4_0] = dequant_q4_0,
    },
    .vecdot = {
        [DP_TYPE_F32] = vecdot_ref_f32, [DP_TYPE_F16] = vecdot_ref_f16, [DP_TYPE_BF16] = vecdot_ref_bf16,
        [DP_TYPE_Q8_0] = vecdot_ref_q8_0, [DP_TYPE_Q4_0] = vecdot_ref_q4_0,
    },
    .pack = {
        [DP_TYPE_F32] = pack_ref_f32, [DP_TYPE_F16] = pack_ref_f16, [DP_TYPE_BF16] = pack_ref_bf16,
        [DP_TYPE_Q8_0] = pack_ref_q8_0, [DP_TYPE_Q4_0] = pack_ref_q4_0,
    },
    .gemm = gemm_scalar,
    .mr = SCALAR_MR, .nr = SCALAR_NR, .nr_step = 1,
};

/* ---- dispatch ---- */

static _Atomic(const struct dp_kernel_ops *) current;

const struct dp_kernel_ops *dp_kernels_scalar(void) { return &scalar_ops; }

const struct dp_kernel_ops *dp_kernels_best(void) {
    const char *force = getenv("DP_SCALAR");
    if (force && *force && strcmp(force, "0")) return &scalar_ops;
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

bool dp_kernels_supported(uint32_t type) { return type < DP_TYPE_COUNT && scalar_dequant[type]; }

void dp_dequant_row(uint32_t type, const void *row, float *out, int64_t n) {
    const struct dp_kernel_ops *k = dp_kernels();
    DP_ASSERT(dp_kernels_supported(type));
    (k->dequant[type] ? k->dequant[type] : scalar_dequant[type])(row, out, n);
}

/* ---- quantization (llama.cpp's reference rounding) ---- */

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

dp_status dp_quantize_row(uint32_t type, const float *x, void *row, int64_t n) {
    uint8_t *p = row;
    switch (type) {
    case DP_TYPE_F32: memcpy(row, x, (size_t)n * sizeof *x); return DP_OK;
    case DP_TYPE_F16:
        for (int64_t i = 0; i < n; i++) put16(p + 2 * i, dp_f32_to_f16(x[i]));
        return DP_OK;
    case DP_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) put16(p + 2 * i, dp_f32_to_bf16(x[i]));
        return DP_OK;
    case DP_TYPE_Q8_0:
        if (n % 32) break;
        for (int64_t b = 0; b < n / 32; b++, p += 34) {
            const float *v = x + b * 32;
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(v[j]));
            float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
            put16(p, dp_f32_to_f16(d));
            for (int j = 0; j < 32; j++) p[2 + j] = (uint8_t)(int8_t)roundf(v[j] * id);
        }
        return DP_OK;
    case DP_TYPE_Q4_0:
        if (n % 32) break;
        for (int64_t b = 0; b < n / 32; b++, p += 18) {
            const float *v = x + b * 32;
            float amax = 0, max = 0;
            for (int j = 0; j < 32; j++)
                if (fabsf(v[j]) > amax) {
                    amax = fabsf(v[j]);
                    max = v[j];
                }
            float d = max / -8.0f, id = d ? 1.0f / d : 0.0f;
            put16(p, dp_f32_to_f16(d));
            for (int j = 0; j < 16; j++) {
                int q0 = (int)(int8_t)(v[j] * id + 8.5f), q1 = (int)(int8_t)(v[j + 16] * id + 8.5f);
                q0 = q0 > 15 ? 15 : q0;
                q1 = q1 > 15 ? 15 : q1;
                p[2 + j] = (uint8_t)(q0 | q1 << 4);
            }
        }
        return DP_OK;
    default:
        return dp_fail(DP_ERR_UNSUPPORTED, "quantization to %s is not supported", dp_type_name(type));
    }
    return dp_fail(DP_ERR_ARG, "cannot quantize %lld values to %s: not a multiple of 32", (long long)n,
                   dp_type_name(type));
}

/* ---- threaded matrix product ---- */

/*
 * Per-thread scratch buffers, grown on demand (64-byte aligned) and freed
 * when the thread ends: the packed tokens (owned by the thread that calls
 * dp_matmul, read by all) and the weight panels of each worker.
 */
enum { SCRATCH_XP, SCRATCH_PANELS, SCRATCH_SLOTS };
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

static void decode_worker(void *ctx, int ith, int nth) {
    const struct matmul_job *j = ctx;
    int64_t lo, hi;
    dp_pool_split((j->n_out + VEC_UNIT - 1) / VEC_UNIT, ith, nth, &lo, &hi);
    lo *= VEC_UNIT;
    hi = hi * VEC_UNIT < j->n_out ? hi * VEC_UNIT : j->n_out;
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

void dp_matmul(struct dp_pool *pool, const void *W, uint32_t type, int64_t n_in, int64_t n_out,
               const float *X, int n_tok, float *Y) {
    DP_ASSERT(dp_kernels_supported(type));
    const struct dp_kernel_ops *k = dp_kernels();
    struct matmul_job j = {k, W, type, n_in, n_out, dp_type_row_bytes(type, n_in), X, n_tok, Y, NULL, 0};
    if (n_tok < DP_GEMM_MIN_TOK) {
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
