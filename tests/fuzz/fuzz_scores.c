/*
 * fuzz_scores: the libFuzzer target for the scores reader (src/prune.h).
 *
 * Each input is a scores file read by dp_influences_load, then checked
 * against a 5-block model identity (dp_influences_check) for each scheme.
 * When it loads, every metric's one-shot order is built under every scheme
 * (or its best spans, for span metrics) on 5 blocks: an order must hold
 * distinct units of the scheme, and a span must lie inside the model.
 * A refused input must name its file.
 *
 *   make fuzz; build-fuzz/fuzz_scores -max_total_time=60 build-fuzz/corpus-scores tests/fuzz/scores
 */
#include "fuzz_util.h"
#include "prune.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_LAYERS 5

static void orders(const struct dp_influences *sc) {
    const char *metrics[16];
    int n_metrics = dp_influences_metrics(sc, metrics, 16);
    if (n_metrics > 16) n_metrics = 16;
    struct dp_unit out[2 * DP_MAX_LAYERS];
    for (int k = 0; k < n_metrics; k++) {
        if (dp_metric_is_span(metrics[k])) {
            for (int n = 1; n <= N_LAYERS; n++) {
                bool found = false;
                if (dp_prune_span(sc, metrics[k], n, NULL, out, &found) || !found) continue;
                for (int i = 0; i < n; i++)
                    if (out[i].kind != 'b' || out[i].layer < 0 || out[i].layer >= DP_MAX_LAYERS) abort();
            }
            continue;
        }
        for (int s = 0; s < DP_N_SCHEMES; s++) {
            int n = 0;
            if (dp_prune_order(sc, metrics[k], (enum dp_scheme)s, N_LAYERS, NULL, out, &n)) continue;
            if (n < 0 || n > 2 * N_LAYERS) abort();
            bool seen[2 * N_LAYERS] = {false};
            for (int i = 0; i < n; i++) {
                if (!dp_unit_in_scheme(out[i], (enum dp_scheme)s) || out[i].layer >= N_LAYERS) abort();
                int idx = dp_unit_index(out[i], (enum dp_scheme)s);
                if (idx < 0 || idx >= 2 * N_LAYERS || seen[idx]) abort();
                seen[idx] = true;
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[256];
    fuzz_path(path, sizeof path, "scores.json");
    fuzz_write(path, data, size);
    struct dp_influences sc = {0};
    if (dp_influences_load(path, &sc)) {
        /* a refused file adds nothing, but the accumulator stays the caller's to free */
        fuzz_check_error(path);
        if (sc.n || sc.n_files) abort();
        dp_influences_free(&sc);
        return 0;
    }
    if (sc.n_files != 1) abort();
    struct dp_identity id = {.n_blocks = N_LAYERS};
    memset(id.hash, 'a', 64);
    memset(id.shape, 'b', 64);
    for (int s = -1; s < DP_N_SCHEMES; s++) {
        int unchecked;
        if (dp_influences_check(&sc, &id, s, s & 1, &unchecked)) fuzz_check_error(path);
        else if (unchecked < 0 || unchecked > 1) abort();
    }
    orders(&sc);
    dp_influences_free(&sc);
    return 0;
}
