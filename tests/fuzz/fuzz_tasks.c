/*
 * fuzz_tasks: the libFuzzer target for the multiple-choice task readers
 * (HellaSwag's line format and the ARC, PIQA, WinoGrande, BoolQ JSONL).
 *
 * The first byte picks the task (its low 3 bits mod 5) and bit 3 a limit of 2 items; the
 * rest is the task file. For PIQA, bytes before the first 0x01 are the
 * labels file and the bytes after it the JSONL. When a file reads, every
 * item must have 2..DP_MC_MAX_CHOICES choices, a label among them and
 * NUL-terminated texts; a refused input must name its file.
 *
 *   make fuzz; build-fuzz/fuzz_tasks -max_total_time=60 build-fuzz/corpus-tasks tests/fuzz/tasks
 */
#include "fuzz_util.h"
#include "tasks.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint8_t fuzz_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    enum dp_task task = (enum dp_task)((data[0] & 7) % 5);
    int limit = data[0] & 8 ? 2 : 0;
    data++;
    size--;
    char path[256], labels[256];
    fuzz_path(path, sizeof path, "task.jsonl");
    fuzz_path(labels, sizeof labels, "task-labels.lst");
    if (task == DP_TASK_PIQA) {
        const uint8_t *sep = memchr(data, 1, size);
        size_t nl = sep ? (size_t)(sep - data) : 0;
        fuzz_write(labels, data, nl);
        if (sep) {
            data += nl + 1;
            size -= nl + 1;
        }
    }
    fuzz_write(path, data, size);
    struct dp_mc_set *s;
    if (dp_mc_read(task, path, NULL, limit, &s)) {
        fuzz_check_error(fuzz_tmpdir());
        return 0;
    }
    if (s->n_items < 1 || (limit && s->n_items > limit)) abort();
    for (int i = 0; i < s->n_items; i++) {
        const struct dp_mc_item *it = &s->items[i];
        if (it->n_choices < 2 || it->n_choices > DP_MC_MAX_CHOICES || it->label < 0 || it->label >= it->n_choices)
            abort();
        for (int c = 0; c < it->n_choices; c++)
            fuzz_sink ^= (uint8_t)(strlen(it->context[c]) + strlen(it->cont[c]));
    }
    dp_mc_set_free(s);
    return 0;
}
