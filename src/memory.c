/*
 * memory: planned sizes and the machine's available memory (see memory.h).
 *
 * dp_session_bytes mirrors dp_session_new's allocations term by term; the
 * few pointer arrays and the struct itself are left out (they are a
 * rounding error next to the KV cache and the scratch).
 */
#include "memory.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_BATCH 256   /* MAX_BATCH of model.c */
#define SESSION_THREADS 256 /* scores_threads of dp_session_new */

int64_t dp_kv_cache_bytes(const struct dp_model *m, const struct dp_mask *mask, int n_ctx) {
    const struct dp_config *c = &m->cfg;
    int64_t kv = 0;
    for (int l = 0; l < c->n_layers; l++) {
        if ((mask && !mask->attn[l]) || !m->layers[l].has_attn || !m->layers[l].shape.n_head_kv) continue;
        kv += 2 * (int64_t)n_ctx * m->layers[l].shape.n_head_kv * c->head_dim;
    }
    return kv * (int64_t)sizeof(float);
}

int64_t dp_session_bytes(const struct dp_model *m, const struct dp_mask *mask, int n_ctx) {
    const struct dp_config *c = &m->cfg;
    int64_t hd = c->head_dim;
    int64_t B = SESSION_BATCH, dim = c->n_embd, qd = (int64_t)m->max_head * hd, kvd = (int64_t)m->max_head_kv * hd;
    int64_t scratch = B * (4 * dim + 2 * qd + 2 * kvd + 2 * (int64_t)m->max_ff) + SESSION_THREADS * (int64_t)n_ctx +
                      dim + qd + kvd + m->max_ff;
    return dp_kv_cache_bytes(m, mask, n_ctx) + scratch * (int64_t)sizeof(float);
}

int64_t dp_logits_bytes(const struct dp_model *m, int64_t n) { return n * m->cfg.n_vocab * (int64_t)sizeof(float); }

bool dp_parse_bytes(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1024.0, end++;
    else if (*end == 'M' || *end == 'm') mul = 1048576.0, end++;
    else if (*end == 'G' || *end == 'g') mul = 1073741824.0, end++;
    else if (*end == 'T' || *end == 't') mul = 1099511627776.0, end++;
    if (end == s || *end || errno || !(v > 0) || v * mul > 9e18) return false;
    *out = (int64_t)(v * mul);
    return true;
}

int64_t dp_meminfo_available(const char *text) {
    const char *p = strstr(text, "MemAvailable:");
    if (!p || (p != text && p[-1] != '\n')) return -1;
    char *end;
    errno = 0;
    long long kb = strtoll(p + strlen("MemAvailable:"), &end, 10);
    if (errno || end == p + strlen("MemAvailable:") || kb < 0) return -1;
    while (*end == ' ') end++;
    if (strncmp(end, "kB", 2)) return -1;
    return (int64_t)kb * 1024;
}

int64_t dp_mem_available(void) {
    const char *env = getenv("DP_MEM_AVAILABLE");
    int64_t v;
    if (env && *env) return dp_parse_bytes(env, &v) ? v : -1;
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return dp_meminfo_available(buf);
}

void dp_format_bytes(int64_t b, char *buf, size_t cap) {
    double v = (double)b;
    if (v >= 1073741824.0) snprintf(buf, cap, "%.1f GiB", v / 1073741824.0);
    else if (v >= 1048576.0) snprintf(buf, cap, "%.1f MiB", v / 1048576.0);
    else snprintf(buf, cap, "%.1f KiB", v / 1024.0);
}

dp_status dp_mem_check(int64_t need, int64_t max_mem, const char *what, const char *flag) {
    int64_t avail = dp_mem_available();
    bool over_max = max_mem > 0 && need > max_mem, over_avail = avail >= 0 && need > avail;
    if (!over_max && !over_avail) return DP_OK;
    char n[32], lim[32];
    dp_format_bytes(need, n, sizeof n);
    dp_format_bytes(over_max ? max_mem : avail, lim, sizeof lim);
    return dp_fail(DP_ERR_NOMEM, "%s needs %s, more than %s%s%s%s%s", what, n, over_max ? "--max-mem " : "the ", lim,
                   over_max ? "" : " available", flag ? ": lower " : "", flag ? flag : "");
}
