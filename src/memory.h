/*
 * memory: sizes planned before allocating. What a session (KV cache and
 * batch scratch, src/model.c dp_session_new) will take, what the machine can
 * give (MemAvailable of /proc/meminfo), and the check that refuses a run
 * with one line, before any work, when the plan does not fit: a context of
 * a million positions is refused at once instead of grinding through
 * overcommitted memory.
 */
#ifndef DP_MEMORY_H
#define DP_MEMORY_H

#include "model.h"

/*
 * Bytes dp_session_new(m, mask, n_ctx) allocates: the f32 KV cache of every
 * kept attention sublayer plus the batch scratch. mask NULL: every unit.
 * Keep in step with dp_session_new (tests/test_memory.c measures both).
 */
int64_t dp_session_bytes(const struct dp_model *m, const struct dp_mask *mask, int n_ctx);

/* The KV cache part of it. */
int64_t dp_kv_cache_bytes(const struct dp_model *m, const struct dp_mask *mask, int n_ctx);

/* Bytes of f32 logits for n positions of the model's vocabulary. */
int64_t dp_logits_bytes(const struct dp_model *m, int64_t n);

/*
 * Memory this machine can give without swapping, in bytes: DP_MEM_AVAILABLE
 * when set (a size such as 512M, for tests), else MemAvailable of
 * /proc/meminfo; -1 when unknown (no check is made then).
 */
int64_t dp_mem_available(void);
/* MemAvailable of a /proc/meminfo text, in bytes; -1 when absent. */
int64_t dp_meminfo_available(const char *text);

/* A size such as 4096, 512K, 1.5M, 8G or 1T (binary multiples); false when not one. */
bool dp_parse_bytes(const char *s, int64_t *out);

/* "64.0 GiB", "512.0 MiB", "12.0 KiB" */
void dp_format_bytes(int64_t bytes, char *buf, size_t cap);

/*
 * Fail (DP_ERR_NOMEM) when `need` bytes exceed max_mem (when > 0) or the
 * available memory: "WHAT needs 64.0 GiB, more than the 12.3 GiB available:
 * lower FLAG" (FLAG NULL: no advice).
 */
dp_status dp_mem_check(int64_t need, int64_t max_mem, const char *what, const char *flag);

#endif
