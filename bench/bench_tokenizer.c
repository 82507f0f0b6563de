/*
 * bench_tokenizer: tokenizing throughput (MB of input text per second).
 *
 *   build/bench/bench_tokenizer [VOCAB.gguf [TEXT [REPS]]]
 *
 * Defaults: the GPT-2 vocabulary and WikiText-2's test set from ../shared
 * (or $DP_SHARED), tokenized whole in one call (as llama-perplexity does),
 * best of 5 runs. Also reports the detokenizing speed and checks that the
 * text comes back byte for byte. Speeds are given by wall-clock time and by
 * the process's CPU time (the honest figure on a busy machine).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer.h"

static const char *shared(const char *rel, char *buf, size_t cap) {
    const char *root = getenv("DP_SHARED");
    snprintf(buf, cap, "%s/%s", root ? root : "../shared", rel);
    return buf;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    char vb[1024], tb[1024];
    const char *vocab = argc > 1 ? argv[1] : shared("tokenizers/ggml-vocab-gpt-2.gguf", vb, sizeof vb);
    const char *text_path = argc > 2 ? argv[2] : shared("data/wikitext-2/wiki.test.raw", tb, sizeof tb);
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    if (reps < 1) reps = 1;

    struct dp_gguf *g;
    struct dp_tokenizer *t;
    char *text;
    size_t len;
    double t0 = dp_now();
    if (dp_gguf_open(vocab, &g) || dp_tokenizer_from_gguf(g, &t) || dp_read_file(text_path, &text, &len)) {
        fprintf(stderr, "bench_tokenizer: %s\n", dp_last_error());
        return 1;
    }
    double t_load = dp_now() - t0;

    int n = 0;
    if (dp_tokenize(t, text, len, DP_TOKENIZE_BOS, NULL, 0, &n)) {
        fprintf(stderr, "bench_tokenizer: %s\n", dp_last_error());
        return 1;
    }
    int *ids = malloc((size_t)n * sizeof *ids);
    double best = 1e30, best_cpu = 1e30;
    for (int r = 0; r < reps; r++) {
        int n2;
        double s = dp_now(), c = cpu_now();
        dp_tokenize(t, text, len, DP_TOKENIZE_BOS, ids, n, &n2);
        double e = dp_now() - s, ec = cpu_now() - c;
        if (e < best) best = e;
        if (ec < best_cpu) best_cpu = ec;
    }

    char *back = malloc(len + 1);
    double s = dp_now();
    size_t blen = dp_detokenize(t, ids, n, back, len + 1);
    double t_detok = dp_now() - s;
    int same = blen == len && !memcmp(back, text, len);

    double mb = (double)len / 1e6;
    printf("vocabulary  %s (%d tokens, %s), loaded in %.3f s\n", vocab, dp_tokenizer_n_vocab(t),
           dp_tokenizer_model(t), t_load);
    printf("text        %s: %.2f MB -> %d tokens (%.2f bytes/token)\n", text_path, mb, n, (double)len / n);
    printf("tokenize    %.3f s  %.2f MB/s  (best of %d; CPU time %.3f s: %.2f MB/s)\n", best, mb / best, reps,
           best_cpu, mb / best_cpu);
    printf("detokenize  %.3f s  %.2f MB/s  round trip %s\n", t_detok, mb / t_detok, same ? "exact" : "DIFFERS");
    free(back);
    free(ids);
    free(text);
    dp_tokenizer_free(t);
    dp_gguf_close(g);
    return 0;
}
