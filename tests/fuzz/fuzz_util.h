/*
 * fuzz_util: what the file-reading fuzz targets share. The readers under
 * test take paths (as the CLI gives them), so each input is written to a
 * file in a private temporary folder made once per process and removed at
 * exit; the folder name is in every error message, which the targets check.
 * DP_FUZZ_VERBOSE=1 prints each refusal (to see which seeds are accepted).
 */
#ifndef DP_FUZZ_UTIL_H
#define DP_FUZZ_UTIL_H

#include "base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_dir[64];

static void fuzz_cleanup(void) {
    char cmd[128];
    if (!fuzz_dir[0]) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: cannot remove %s\n", fuzz_dir);
}

/* The private folder (made on first use); aborts when it cannot be made. */
static const char *fuzz_tmpdir(void) {
    if (!fuzz_dir[0]) {
        /* memory-backed when the system has it: a file per execution is the cost of these targets */
        snprintf(fuzz_dir, sizeof fuzz_dir, "/dev/shm/dp_fuzz_XXXXXX");
        if (!mkdtemp(fuzz_dir)) {
            snprintf(fuzz_dir, sizeof fuzz_dir, "/tmp/dp_fuzz_XXXXXX");
            if (!mkdtemp(fuzz_dir)) abort();
        }
        atexit(fuzz_cleanup);
    }
    return fuzz_dir;
}

/* fuzz_tmpdir()/rel into buf. */
static const char *fuzz_path(char *buf, size_t cap, const char *rel) {
    snprintf(buf, cap, "%s/%s", fuzz_tmpdir(), rel);
    return buf;
}

/* Write n bytes to path (creating its folder); aborts on failure. */
static void fuzz_write(const char *path, const void *data, size_t n) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = 0;
        mkdir(dir, 0700);
    }
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) abort();
}

/*
 * A refused input must leave a message naming `name`. (Messages may still
 * quote input bytes raw, line breaks included; escaping them is issue 15's
 * other half, so this does not check for one line.)
 */
static void fuzz_check_error(const char *name) {
    const char *e = dp_last_error();
    if (getenv("DP_FUZZ_VERBOSE")) fprintf(stderr, "refused: %s\n", e ? e : "(no message)");
    if (!e || !strstr(e, name)) abort();
}

#endif
