/*
 * fuzz_plan: the libFuzzer target for the plan reader (src/plan.h).
 *
 * Each input is a plan file read by dp_plan_load. When it loads, its units
 * must be valid and distinct, its recovery kind known, and applying it to
 * a mask of its own block count (or of 8 blocks) must remove exactly its
 * units or fail; saving it and loading it again must give the same plan.
 * A refused input must name its file.
 *
 *   make fuzz; build-fuzz/fuzz_plan -max_total_time=60 build-fuzz/corpus-plan tests/fuzz/plan
 */
#include "fuzz_util.h"
#include "plan.h"
#include "recover.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[256], again[256];
    fuzz_path(path, sizeof path, "plan.json");
    fuzz_path(again, sizeof again, "again.json");
    fuzz_write(path, data, size);
    static struct dp_plan p, q;
    if (dp_plan_load(path, &p)) {
        fuzz_check_error(path);
        return 0;
    }
    if (p.n_units < 0 || p.n_units > DP_PLAN_MAX_UNITS || p.version < 1 || p.version > 2) abort();
    if (p.recover_kind[0]) {
        enum dp_recover_method method;
        int rank;
        if (dp_recover_parse_kind(p.recover_kind, &method, &rank) || method == DP_RECOVER_NONE || !p.recover_file[0])
            abort();
    }
    struct dp_mask mask = {.n_layers = p.n_blocks ? p.n_blocks : 8};
    for (int i = 0; i < mask.n_layers; i++) mask.attn[i] = mask.ffn[i] = true;
    if (dp_plan_apply(&p, &mask) == DP_OK) {
        int removed = 0, want = 0;
        for (int i = 0; i < mask.n_layers; i++) removed += !mask.attn[i] + !mask.ffn[i];
        for (int i = 0; i < p.n_units; i++) want += p.units[i][0] == 'b' ? 2 : 1;
        if (removed != want) abort();
    }
    /* the recovery path is resolved on load and may not exist: keep the round trip to the rest */
    memset(p.recover_kind, 0, sizeof p.recover_kind);
    memset(p.recover_file, 0, sizeof p.recover_file);
    if (dp_plan_save(&p, again)) {
        fuzz_check_error(again);
        return 0;
    }
    if (dp_plan_load(again, &q)) abort();
    /* version 2 needs the whole identity; a plan without it is written as version 1 */
    p.version = p.n_blocks && p.model_hash[0] && p.model_shape[0] ? 2 : 1;
    if (memcmp(&p, &q, sizeof p)) abort();
    return 0;
}
