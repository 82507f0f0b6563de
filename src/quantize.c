/*
 * quantize: f32 rows to GGUF weight types, rounding exactly as llama.cpp's
 * reference quantizers do without an importance matrix (the bytes equal
 * llama-quantize's), for the tensors an export creates or modifies and for
 * synthetic models.
 */
#include "quantize.h"

#include <math.h>
#include <string.h>

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
