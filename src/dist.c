/*
 * dist: ranks, shares and collectives (see dist.h). With DP_MPI (make MPI=1)
 * over MPI_COMM_WORLD, else a single rank.
 *
 * MPI is used from the thread that called dp_dist_init only
 * (MPI_THREAD_FUNNELED): pool workers never shard. The collectives are
 * blocking; a rank that stops calling them (an error, a crash) is handled by
 * the job's end: dp_dist_finish aborts the job on a failed rank, and
 * mpirun ends every rank when one dies.
 */
#include "dist.h"

#include "pool.h"
#include "sha256.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef DP_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1;
#ifdef DP_MPI
static double g_t0, g_cpu0, g_wait; /* DP_DIST_STATS: wall and CPU time since dp_dist_init, time in collectives */
#endif
static bool g_started;
static pthread_t g_main;
static int64_t g_sent, g_received, g_collectives;
static FILE *g_err; /* rank > 0: the stderr the job shows */

FILE *dp_dist_errors(void) { return g_err ? g_err : stderr; }

int dp_dist_rank(void) { return g_rank; }
int dp_dist_size(void) { return g_size; }

bool dp_dist_mpi(void) {
#ifdef DP_MPI
    return true;
#else
    return false;
#endif
}

dp_status dp_dist_init(int *argc, char ***argv) {
    if (g_started) return DP_OK;
    g_started = true;
    g_main = pthread_self();
#ifdef DP_MPI
    g_t0 = dp_now();
    g_cpu0 = dp_cpu_now();
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return dp_fail(DP_ERR_IO, "MPI_Init_thread failed");
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (g_size > DP_DIST_MAX_RANKS) return dp_fail(DP_ERR_ARG, "%d ranks: at most %d are supported", g_size, DP_DIST_MAX_RANKS);
    /*
     * rank 0 alone writes results and reports: the others' stdout and stderr
     * go nowhere, their errors to dp_dist_errors (the original stderr)
     */
    if (g_rank > 0) {
        int fd = dup(2);
        g_err = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!g_err || !freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
            return dp_fail(DP_ERR_IO, "rank %d: cannot silence stdout and stderr", g_rank);
        setvbuf(g_err, NULL, _IOLBF, 0);
    }
#else
    (void)argc;
    (void)argv;
#endif
    return DP_OK;
}

int dp_dist_finish(int rc) {
    if (!g_started) return rc;
    g_started = false;
#ifdef DP_MPI
    fflush(stdout);
    fflush(stderr);
    if (rc != 0 && g_size > 1) {
        /* the others may be waiting in a collective for this rank: end the whole job now */
        fprintf(dp_dist_errors(), "depthprune: rank %d of %d failed (exit status %d, message above); stopping every rank\n",
                g_rank, g_size, rc);
        fflush(dp_dist_errors());
        /*
         * When every rank fails at once (an interrupted run, bad input), rank 0
         * may still be writing (a checkpoint, its message): the others give it
         * two seconds to abort the job itself before they do.
         */
        if (g_rank > 0) {
            struct timespec ts = {2, 0};
            nanosleep(&ts, NULL);
        }
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
    if (getenv("DP_DIST_STATS") && g_size > 1) /* the communication volume of the run, per rank */
        fprintf(dp_dist_errors(),
                "depthprune: rank %d: %lld collectives, %lld bytes sent, %lld bytes received; %.2f s wall, %.2f s CPU, "
                "%.2f s in collectives\n",
                g_rank, (long long)g_collectives, (long long)g_sent, (long long)g_received, dp_now() - g_t0,
                dp_cpu_now() - g_cpu0, g_wait);
    MPI_Finalize();
#endif
    return rc;
}

bool dp_dist_active(void) {
    return g_size > 1 && g_started && pthread_equal(pthread_self(), g_main) && !dp_pool_inside();
}

void dp_dist_split(int64_t n, const double *cost, int R, int64_t *bounds) {
    bounds[0] = 0;
    bounds[R] = n;
    if (!cost) {
        for (int r = 1; r < R; r++) {
            int64_t lo, hi;
            dp_pool_split(n, r, R, &lo, &hi);
            bounds[r] = lo;
        }
        return;
    }
    double total = 0;
    for (int64_t i = 0; i < n; i++) total += cost[i] > 0 ? cost[i] : 0;
    /* rank r starts at the first item whose midpoint lies past r/R of the total cost */
    double acc = 0;
    int64_t i = 0;
    for (int r = 1; r < R; r++) {
        double target = total * r / R;
        while (i < n && acc + 0.5 * (cost[i] > 0 ? cost[i] : 0) < target) {
            acc += cost[i] > 0 ? cost[i] : 0;
            i++;
        }
        bounds[r] = i;
    }
}

int dp_dist_bounds(int64_t n, const double *cost, int64_t *bounds) {
    if (!dp_dist_active()) {
        bounds[0] = 0;
        bounds[1] = n;
        return 1;
    }
    dp_dist_split(n, cost, g_size, bounds);
    return g_size;
}

void dp_dist_mine(const int64_t *bounds, int64_t *lo, int64_t *hi) {
    int r = dp_dist_active() ? g_rank : 0;
    *lo = bounds[r];
    *hi = bounds[r + 1];
}

int64_t dp_dist_progress(const int64_t *bounds, int64_t upto) {
    if (!dp_dist_active()) return upto;
    int64_t lo, hi, n = bounds[g_size];
    dp_dist_mine(bounds, &lo, &hi);
    if (hi <= lo) return n;
    return (upto - lo) * n / (hi - lo);
}

void dp_dist_traffic(int64_t *sent, int64_t *received, int64_t *collectives) {
    *sent = g_sent;
    *received = g_received;
    *collectives = g_collectives;
}

#ifdef DP_MPI

/* Counts and displacements in doubles fit an int: a share above 2^31 doubles (16 GiB) is refused. */
static int as_int(int64_t v) {
    DP_ASSERT(v >= 0 && v <= 0x7fffffff);
    return (int)v;
}

void dp_dist_allgather(double *buf, size_t width, const int64_t *bounds) {
    if (!dp_dist_active() || !width) return;
    int R = g_size;
    int *counts = dp_malloc((size_t)R * sizeof *counts), *displs = dp_malloc((size_t)R * sizeof *displs);
    DP_ASSERT(counts && displs);
    for (int r = 0; r < R; r++) {
        counts[r] = as_int((bounds[r + 1] - bounds[r]) * (int64_t)width);
        displs[r] = as_int(bounds[r] * (int64_t)width);
    }
    double t = dp_now();
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_DOUBLE, MPI_COMM_WORLD);
    g_wait += dp_now() - t;
    g_sent += (int64_t)counts[g_rank] * 8;
    g_received += ((bounds[R] - bounds[0]) * (int64_t)width - counts[g_rank]) * 8;
    g_collectives++;
    free(counts);
    free(displs);
}

dp_status dp_dist_allgather_bytes(const void *mine, size_t n_mine, void **all, size_t *sizes) {
    *all = NULL;
    if (!dp_dist_active()) {
        sizes[0] = n_mine;
        *all = dp_malloc(n_mine ? n_mine : 1);
        if (!*all) return dp_fail(DP_ERR_NOMEM, "out of memory for %zu bytes", n_mine);
        if (n_mine) memcpy(*all, mine, n_mine);
        return DP_OK;
    }
    int R = g_size;
    int64_t me = (int64_t)n_mine, *n = dp_malloc((size_t)R * sizeof *n);
    int *counts = dp_malloc((size_t)R * sizeof *counts), *displs = dp_malloc((size_t)R * sizeof *displs);
    DP_ASSERT(n && counts && displs);
    double t = dp_now();
    MPI_Allgather(&me, 1, MPI_INT64_T, n, 1, MPI_INT64_T, MPI_COMM_WORLD);
    int64_t total = 0;
    for (int r = 0; r < R; r++) {
        sizes[r] = (size_t)n[r];
        counts[r] = as_int(n[r]);
        displs[r] = as_int(total);
        total += n[r];
    }
    char *buf = dp_malloc((size_t)total + 1);
    if (!buf) return dp_fail(DP_ERR_NOMEM, "rank %d: out of memory for %lld gathered bytes", g_rank, (long long)total);
    MPI_Allgatherv(mine, counts[g_rank], MPI_BYTE, buf, counts, displs, MPI_BYTE, MPI_COMM_WORLD);
    g_wait += dp_now() - t;
    g_sent += me + 8;
    g_received += total - me + 8 * (R - 1);
    g_collectives += 2;
    free(n);
    free(counts);
    free(displs);
    *all = buf;
    return DP_OK;
}

void dp_dist_sum_i64(int64_t *v, int n) {
    if (!dp_dist_active() || n <= 0) return;
    double t = dp_now();
    MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    g_wait += dp_now() - t;
    g_sent += (int64_t)n * 8;
    g_received += (int64_t)n * 8;
    g_collectives++;
}

static void bcast(void *p, int64_t n) {
    char *c = p;
    while (n > 0) {
        int k = n > (1 << 30) ? 1 << 30 : (int)n;
        double t = dp_now();
        MPI_Bcast(c, k, MPI_BYTE, 0, MPI_COMM_WORLD);
        g_wait += dp_now() - t;
        if (g_rank == 0) g_sent += k;
        else g_received += k;
        c += k;
        n -= k;
    }
    g_collectives++;
}

dp_status dp_dist_same(const char *what, const char *digest) {
    if (!dp_dist_active()) return DP_OK;
    char mine[128] = {0}, first[128] = {0};
    snprintf(mine, sizeof mine, "%s", digest);
    memcpy(first, mine, sizeof first);
    bcast(first, sizeof first);
    if (strcmp(first, mine))
        return dp_fail(DP_ERR_ARG, "rank %d: %s differs from rank 0's (%.16s... here, %.16s... on rank 0)", g_rank, what,
                       mine, first);
    return DP_OK;
}

#else

void dp_dist_allgather(double *buf, size_t width, const int64_t *bounds) {
    (void)buf;
    (void)width;
    (void)bounds;
}

void dp_dist_sum_i64(int64_t *v, int n) {
    (void)v;
    (void)n;
}

dp_status dp_dist_allgather_bytes(const void *mine, size_t n_mine, void **all, size_t *sizes) {
    sizes[0] = n_mine;
    *all = dp_malloc(n_mine ? n_mine : 1);
    if (!*all) return dp_fail(DP_ERR_NOMEM, "out of memory for %zu bytes", n_mine);
    if (n_mine) memcpy(*all, mine, n_mine);
    return DP_OK;
}

dp_status dp_dist_same(const char *what, const char *digest) {
    (void)what;
    (void)digest;
    return DP_OK;
}

#endif

/* size + SHA-256 of the file (of its first and last 4 MiB when larger than 64 MiB); "absent" when it cannot be read */
static void file_digest(const char *path, char *out, size_t cap) {
    snprintf(out, cap, "absent");
    FILE *f = fopen(path, "rb");
    if (!f) return;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return;
    }
    const int64_t big = (int64_t)64 << 20, part = (int64_t)4 << 20;
    int64_t size = (int64_t)sb.st_size;
    struct dp_sha256 h;
    dp_sha256_init(&h);
    char buf[65536];
    bool ok = true;
    for (int pass = 0; pass < (size > big ? 2 : 1) && ok; pass++) {
        int64_t from = size > big && pass ? size - part : 0, n = size > big ? part : size;
        ok = fseeko(f, (off_t)from, SEEK_SET) == 0;
        while (ok && n > 0) {
            size_t k = fread(buf, 1, n < (int64_t)sizeof buf ? (size_t)n : sizeof buf, f);
            if (!k) ok = false;
            dp_sha256_update(&h, buf, k);
            n -= (int64_t)k;
        }
    }
    fclose(f);
    if (!ok) return;
    uint8_t d[32];
    dp_sha256_final(&h, d);
    int w = snprintf(out, cap, "%lld ", (long long)size);
    for (int i = 0; i < 32 && w + 2 < (int)cap; i++, w += 2) snprintf(out + w, cap - (size_t)w, "%02x", d[i]);
}

dp_status dp_dist_same_file(const char *what, const char *path) {
    if (!dp_dist_active()) return DP_OK;
    char digest[128], label[1200];
    file_digest(path, digest, sizeof digest);
    snprintf(label, sizeof label, "%s %s (size and SHA-256)", what, path);
    return dp_dist_same(label, digest);
}

dp_status dp_dist_read_file(const char *path, char **out, size_t *len, bool *exists) {
    *out = NULL;
    *len = 0;
    *exists = false;
    if (!dp_dist_active()) {
        struct stat sb;
        if (stat(path, &sb) != 0) return DP_OK;
        *exists = true;
        return dp_read_file(path, out, len);
    }
#ifdef DP_MPI
    /* rank 0 reads; then (status, exists, length, message) and the bytes go to every rank */
    int64_t hdr[3] = {0, 0, 0};
    char msg[1024] = {0};
    char *buf = NULL;
    size_t n = 0;
    if (g_rank == 0) {
        struct stat sb;
        if (stat(path, &sb) == 0) {
            hdr[1] = 1;
            dp_status st = dp_read_file(path, &buf, &n);
            hdr[0] = st;
            if (st) snprintf(msg, sizeof msg, "%s", dp_last_error());
            hdr[2] = (int64_t)n;
        }
    }
    bcast(hdr, sizeof hdr);
    bcast(msg, sizeof msg);
    if (hdr[0]) {
        free(buf);
        return dp_fail((dp_status)hdr[0], "%s", msg);
    }
    *exists = hdr[1] != 0;
    if (!*exists) return DP_OK;
    if (g_rank > 0) {
        buf = dp_malloc((size_t)hdr[2] + 1);
        if (!buf) return dp_fail(DP_ERR_NOMEM, "rank %d: out of memory for %s (%lld bytes)", g_rank, path, (long long)hdr[2]);
    }
    bcast(buf, hdr[2]);
    buf[hdr[2]] = 0;
    *out = buf;
    *len = (size_t)hdr[2];
    return DP_OK;
#else
    return DP_OK;
#endif
}
