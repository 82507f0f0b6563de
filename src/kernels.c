/*
 * kernels: scalar reference kernels, the dispatch table and the threaded
 * matrix product (see kernels.h).
 *
 * The matrix product works on tiles: a thread takes its share of output
 * rows, dequantizes DP_TILE_ROWS of them into a private f32 buffer and
 * multiplies that tile with a block of tokens, so each weight byte is read
 * once per token block rather than once per token. Tiling never changes what
 * an output element is: always one dot product over the whole row.
 */
#include "kernels.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define TILE_ROWS 16
#define TILE_TOKENS 64

/* ---- scalar reference ---- */

/* Eight interleaved partial sums, added pairwise: the order the SIMD twins use. */
static float dot_scalar(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
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

/* Q8_0 block: f16 scale d, 32 int8 q; x = d*q. */
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

static const struct dp_kernel_ops scalar_ops = {
    .name = "scalar",
    .dot = dot_scalar,
    .dequant = {
        [DP_TYPE_F32] = dequant_f32, [DP_TYPE_F16] = dequant_f16, [DP_TYPE_BF16] = dequant_bf16,
        [DP_TYPE_Q8_0] = dequant_q8_0, [DP_TYPE_Q4_0] = dequant_q4_0,
    },
    .gemm_f32 = NULL,
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

bool dp_kernels_supported(uint32_t type) { return type < DP_TYPE_COUNT && scalar_ops.dequant[type]; }

void dp_dequant_row(uint32_t type, const void *row, float *out, int64_t n) {
    const struct dp_kernel_ops *k = dp_kernels();
    DP_ASSERT(type < DP_TYPE_COUNT && scalar_ops.dequant[type]);
    (k->dequant[type] ? k->dequant[type] : scalar_ops.dequant[type])(row, out, n);
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

struct matmul_job {
    const struct dp_kernel_ops *k;
    const uint8_t *W;
    uint32_t type;
    int64_t n_in, n_out;
    size_t row_bytes;
    const float *X;
    int n_tok;
    float *Y;
};

/* Per-thread scratch for a dequantized tile, grown on demand (never shrunk). */
static _Thread_local float *tile_buf;
static _Thread_local size_t tile_cap;

static float *tile_scratch(size_t n) {
    if (n > tile_cap) {
        free(tile_buf);
        tile_buf = malloc(n * sizeof *tile_buf);
        DP_ASSERT(tile_buf);
        tile_cap = n;
    }
    return tile_buf;
}

static void matmul_worker(void *ctx, int ith, int nth) {
    const struct matmul_job *j = ctx;
    int64_t lo, hi;
    dp_pool_split(j->n_out, ith, nth, &lo, &hi);
    if (lo >= hi) return;
    bool f32 = j->type == DP_TYPE_F32;
    dp_dequant_fn deq = j->k->dequant[j->type] ? j->k->dequant[j->type] : scalar_ops.dequant[j->type];
    float *tile = f32 ? NULL : tile_scratch((size_t)(TILE_ROWS * j->n_in));
    for (int64_t r0 = lo; r0 < hi; r0 += TILE_ROWS) {
        int nr = (int)(hi - r0 < TILE_ROWS ? hi - r0 : TILE_ROWS);
        const float *Wt;
        if (f32) {
            Wt = (const float *)(j->W + (size_t)r0 * j->row_bytes);
        } else {
            for (int r = 0; r < nr; r++) deq(j->W + (size_t)(r0 + r) * j->row_bytes, tile + r * j->n_in, j->n_in);
            Wt = tile;
        }
        for (int t0 = 0; t0 < j->n_tok; t0 += TILE_TOKENS) {
            int nt = j->n_tok - t0 < TILE_TOKENS ? j->n_tok - t0 : TILE_TOKENS;
            const float *X = j->X + (size_t)t0 * j->n_in;
            float *Y = j->Y + (size_t)t0 * j->n_out + r0;
            if (j->k->gemm_f32) {
                j->k->gemm_f32(Wt, nr, X, j->n_in, nt, j->n_in, Y, j->n_out);
            } else {
                for (int t = 0; t < nt; t++)
                    for (int r = 0; r < nr; r++)
                        Y[(size_t)t * j->n_out + r] = j->k->dot(Wt + (size_t)r * j->n_in, X + (size_t)t * j->n_in, j->n_in);
            }
        }
    }
}

void dp_matmul(struct dp_pool *pool, const void *W, uint32_t type, int64_t n_in, int64_t n_out,
               const float *X, int n_tok, float *Y) {
    DP_ASSERT(dp_kernels_supported(type));
    struct matmul_job j = {dp_kernels(), W, type, n_in, n_out, dp_type_row_bytes(type, n_in), X, n_tok, Y};
    dp_pool_run(pool, matmul_worker, &j);
}
