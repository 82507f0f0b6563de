/*
 * base: what every module needs and nothing more: the error message of the
 * last failure (thread-local), checked size arithmetic, whole-file mapping,
 * atomic output files and the call of a caller's progress callback (the JSON
 * writer it still includes is json_write.h).
 */
#ifndef DP_BASE_H
#define DP_BASE_H

#include "depthprune.h"
#include <stdarg.h>
#include <stdio.h>

#if defined(__GNUC__)
#define DP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DP_PRINTF(a, b)
#endif

/*
 * Record a one-line message for dp_last_error() and return `status`. The
 * message is escaped by dp_escape, so bytes from an input file (a field, a
 * token, a key) never reach a terminal raw.
 */
dp_status dp_fail(dp_status status, const char *fmt, ...) DP_PRINTF(2, 3);

/*
 * Copy n bytes of s to buf (cap > 0 bytes, always NUL-terminated) for a
 * message: valid UTF-8 is kept, control bytes (newlines included) and bytes
 * that are not part of valid UTF-8 become \xNN. Cut with "..." when buf is
 * too small. Text without such bytes is unchanged, so escaping twice is
 * harmless. Returns buf.
 */
char *dp_escape(const char *s, size_t n, char *buf, size_t cap);

/* An always-on invariant check for internal bugs (never for bad input). */
#define DP_ASSERT(x)                                                                   \
    do {                                                                               \
        if (!(x)) dp_assert_fail(__FILE__, __LINE__, #x);                              \
    } while (0)
_Noreturn void dp_assert_fail(const char *file, int line, const char *expr);

/* Checked arithmetic: false on overflow. */
bool dp_mul_overflow(uint64_t a, uint64_t b, uint64_t *out);
bool dp_add_overflow(uint64_t a, uint64_t b, uint64_t *out);

/* malloc/calloc that record DP_ERR_NOMEM with a message on failure. */
void *dp_malloc(size_t n);
void *dp_calloc(size_t n, size_t size);

/*
 * Open a file for reading, refusing what is not a regular file (a FIFO, a
 * device, a folder) at once instead of blocking on it or reading forever:
 * the check is made on the open descriptor (opened non-blocking, then made
 * blocking again). *fd is the caller's to close; *size its size in bytes.
 */
dp_status dp_open_read(const char *path, int *fd, uint64_t *size);
/* What path is when it exists and is not a regular file ("a FIFO", "a folder", ...), else NULL. */
const char *dp_file_kind(const char *path);

/* A read-only mapping of a whole file (a regular file: dp_open_read). */
struct dp_map {
    const uint8_t *data;
    size_t size;
    char *path;
};
dp_status dp_map_open(const char *path, struct dp_map *out);
void dp_map_close(struct dp_map *map);

/* Read a whole regular file (dp_open_read) into a NUL-terminated heap buffer (*len excludes the NUL). */
dp_status dp_read_file(const char *path, char **out, size_t *len);

/*
 * Atomic output: dp_out_open creates "<path>.tmp.<pid>" for writing;
 * dp_out_commit closes and renames it onto path; dp_out_abort removes it.
 */
dp_status dp_out_open(const char *path, struct dp_out *out);
dp_status dp_out_commit(struct dp_out *out);
void dp_out_abort(struct dp_out *out);

/*
 * The longest CSV field, JSONL line or task-file line accepted (1 MiB): a
 * longer one is refused naming the file and line, instead of being parsed,
 * tokenized and then truncated at great cost.
 */
#define DP_MAX_LINE ((size_t)1 << 20)

/* Monotonic time in seconds. */
double dp_now(void);
/* CPU time of the whole process (every thread) in seconds. */
double dp_cpu_now(void);
/* Peak resident set size of this process in MiB. */
double dp_peak_rss_mb(void);

/*
 * Report progress through a caller's callback (fn NULL: nothing). Returns
 * true to go on; false when the callback asked to cancel, after setting
 * dp_last_error() to "<stage>: cancelled" (the caller then returns
 * DP_ERR_CANCELLED). Call it only from the thread that called the step.
 */
bool dp_progress_step(dp_progress_fn fn, void *user, const char *stage, int64_t done, int64_t total);

/* The JSON writer lives in json_write.h; included here for code that includes only base.h. */
#include "json_write.h"

#endif
