/*
 * base: error messages, checked arithmetic, file mapping, atomic output,
 * timing and the progress-callback helper (the library prints no progress
 * of its own: callers pass a dp_progress_fn). See base.h for the contracts
 * (the JSON writer that lived here is json_write.c).
 *
 * The error message is thread-local so that worker threads and the caller
 * never overwrite each other's message.
 */
#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char last_error[1024] = "no error";

const char *dp_last_error(void) { return last_error; }

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 when it is not one (RFC 3629: no overlongs, surrogates). */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t k = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (!k || k > n) return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] > 0x8f))
        return 0;
    return k;
}

char *dp_escape(const char *s, size_t n, char *buf, size_t cap) {
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = u[i] >= 0x80 ? utf8_len(u + i, n - i) : 1;
        bool raw = k > 1 || (u[i] >= 0x20 && u[i] < 0x7f);
        size_t w = raw ? k : 4;
        if (o + w + 4 > cap) { /* room for "..." and the NUL */
            if (cap >= 4) {
                memcpy(buf + (o < cap - 4 ? o : cap - 4), "...", 3);
                o = (o < cap - 4 ? o : cap - 4) + 3;
            }
            break;
        }
        if (raw) memcpy(buf + o, s + i, k);
        else snprintf(buf + o, 5, "\\x%02x", u[i]);
        o += w;
        i += raw ? k : 1;
    }
    buf[o < cap ? o : cap - 1] = 0;
    return buf;
}

dp_status dp_fail(dp_status status, const char *fmt, ...) {
    char raw[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    /* One line, always: whatever the input held, control bytes are written \xNN. */
    dp_escape(raw, strlen(raw), last_error, sizeof last_error);
    return status;
}

_Noreturn void dp_assert_fail(const char *file, int line, const char *expr) {
    fprintf(stderr, "depthprune: internal error at %s:%d: assertion '%s' failed\n", file, line, expr);
    abort();
}

bool dp_mul_overflow(uint64_t a, uint64_t b, uint64_t *out) {
    return __builtin_mul_overflow(a, b, out);
}

bool dp_add_overflow(uint64_t a, uint64_t b, uint64_t *out) {
    return __builtin_add_overflow(a, b, out);
}

void *dp_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) dp_fail(DP_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *dp_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) dp_fail(DP_ERR_NOMEM, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

static const char *mode_kind(mode_t m) {
    if (S_ISDIR(m)) return "a folder";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a plain file";
}

const char *dp_file_kind(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode)) return NULL;
    return mode_kind(st.st_mode);
}

dp_status dp_open_read(const char *path, int *fd_out, uint64_t *size) {
    *fd_out = -1;
    /* O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return dp_fail(DP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        dp_status e = dp_fail(DP_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return dp_fail(DP_ERR_IO, "%s: not a regular file (%s)", path, mode_kind(st.st_mode));
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    *fd_out = fd;
    *size = (uint64_t)st.st_size;
    return DP_OK;
}

dp_status dp_map_open(const char *path, struct dp_map *out) {
    memset(out, 0, sizeof *out);
    int fd;
    uint64_t size;
    dp_status st0 = dp_open_read(path, &fd, &size);
    if (st0) return st0;
    if (size > SIZE_MAX) {
        close(fd);
        return dp_fail(DP_ERR_IO, "%s: too large to map", path);
    }
    out->size = (size_t)size;
    if (out->size > 0) {
        void *p = mmap(NULL, out->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return dp_fail(DP_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
        }
        out->data = p;
    }
    close(fd);
    out->path = strdup(path);
    if (!out->path) {
        dp_map_close(out);
        return dp_fail(DP_ERR_NOMEM, "out of memory");
    }
    return DP_OK;
}

void dp_map_close(struct dp_map *map) {
    if (!map) return;
    if (map->data) munmap((void *)map->data, map->size);
    free(map->path);
    memset(map, 0, sizeof *map);
}

dp_status dp_read_file(const char *path, char **out, size_t *len) {
    *out = NULL;
    int fd;
    uint64_t size;
    dp_status st = dp_open_read(path, &fd, &size);
    if (st) return st;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return dp_fail(DP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n + 1 < cap) {
            if (ferror(f)) break;
            if (feof(f)) break;
            continue;
        }
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    bool err = ferror(f);
    fclose(f);
    if (!buf) return dp_fail(DP_ERR_NOMEM, "%s: out of memory reading the file", path);
    if (err) {
        free(buf);
        return dp_fail(DP_ERR_IO, "%s: read error", path);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return DP_OK;
}

dp_status dp_out_open(const char *path, struct dp_out *out) {
    memset(out, 0, sizeof *out);
    size_t n = strlen(path) + 32;
    out->path = strdup(path);
    out->tmp = malloc(n);
    if (!out->path || !out->tmp) {
        free(out->path);
        free(out->tmp);
        return dp_fail(DP_ERR_NOMEM, "out of memory");
    }
    snprintf(out->tmp, n, "%s.tmp.%d", path, (int)getpid());
    /* ranks other than 0 compute the same bytes; rank 0 alone writes them (dist.h) */
    if (dp_dist_rank() > 0) snprintf(out->tmp, n, "/dev/null");
    out->f = fopen(out->tmp, "wb");
    if (!out->f) {
        dp_status st = dp_fail(DP_ERR_IO, "%s: cannot create: %s", out->tmp, strerror(errno));
        free(out->path);
        free(out->tmp);
        memset(out, 0, sizeof *out);
        return st;
    }
    return DP_OK;
}

dp_status dp_out_commit(struct dp_out *out) {
    dp_status st = DP_OK;
    bool bad = ferror(out->f) != 0;
    if (fclose(out->f) != 0) bad = true;
    out->f = NULL;
    if (dp_dist_rank() > 0) {
        /* nothing to put in place */
    } else if (bad) {
        st = dp_fail(DP_ERR_IO, "%s: write error (disk full?)", out->tmp);
        remove(out->tmp);
    } else if (rename(out->tmp, out->path) != 0) {
        st = dp_fail(DP_ERR_IO, "%s: cannot rename into place: %s", out->path, strerror(errno));
        remove(out->tmp);
    }
    free(out->path);
    free(out->tmp);
    memset(out, 0, sizeof *out);
    return st;
}

void dp_out_abort(struct dp_out *out) {
    if (!out || !out->tmp) return;
    if (out->f) fclose(out->f);
    if (dp_dist_rank() == 0) remove(out->tmp);
    free(out->path);
    free(out->tmp);
    memset(out, 0, sizeof *out);
}

double dp_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double dp_cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double dp_peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
}

bool dp_progress_step(dp_progress_fn fn, void *user, const char *stage, int64_t done, int64_t total) {
    if (!fn || fn(stage, done, total, user)) return true;
    dp_fail(DP_ERR_CANCELLED, "%s: cancelled", stage);
    return false;
}
