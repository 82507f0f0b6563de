/*
 * replay: runs a fuzz target's LLVMFuzzerTestOneInput on files, without
 * libFuzzer, so every compiler's `make test` replays the seed corpora and
 * the regression inputs (tests/cli_fuzz.sh). Linked with one tests/fuzz/
 * fuzz_*.c; arguments are files or folders (every file inside, in name
 * order). A failing input aborts, as under the fuzzer; otherwise the last
 * line is "N passed, 0 failed".
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return 1;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            uint8_t *b = realloc(buf, cap *= 2);
            if (!b) free(buf);
            buf = b;
        }
    }
    fclose(f);
    if (!buf) return 1;
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    int passed = 0, failed = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            char *names[4096];
            int n = 0;
            for (struct dirent *e; d && (e = readdir(d)) && n < 4096;)
                if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
            if (d) closedir(d);
            qsort(names, (size_t)n, sizeof *names, cmp_name);
            for (int k = 0; k < n; k++) {
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", argv[i], names[k]);
                if (replay_file(path)) failed++;
                else passed++;
                free(names[k]);
            }
        } else if (replay_file(argv[i])) {
            failed++;
        } else {
            passed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
