/*
 * tasks: the data of the accuracy benchmarks (METHODS.md section 6), read
 * from the files in ../shared/data as shipped.
 *
 * MMLU: DIR/dev/<subject>_dev.csv and DIR/test/<subject>_test.csv, no header,
 * columns question,A,B,C,D,answer (RFC 4180, see csv.h). Subjects are the
 * test files' names, in byte order. Field text is used exactly as in the file.
 *
 * Multiple-choice tasks become items of per-choice (context, continuation)
 * texts; the evaluation scores each continuation after its context:
 *
 *   hellaswag   llama.cpp's 6-line format (context, gold 0-3, four endings):
 *               context, " " + ending (as llama-perplexity --hellaswag)
 *   arc         AI2 ARC jsonl: "Question: " + stem + "\nAnswer:", " " + choice
 *               text; the answer is the choice whose label equals answerKey
 *   piqa        PIQA jsonl + labels file (FILE with .jsonl replaced by
 *               -labels.lst unless given): "Question: " + goal + "\nAnswer:",
 *               " " + sol1 / sol2
 *   winogrande  WinoGrande jsonl: partial scoring: the sentence up to "_" with
 *               the option put in as context, the rest after "_" (stripped,
 *               with one leading space) as the continuation common to both
 *   boolq       BoolQ jsonl: passage + "\nQuestion: " + question +
 *               "?\nAnswer:", " no" / " yes" (label "true"/"false" or a
 *               boolean "answer")
 */
#ifndef DP_TASKS_H
#define DP_TASKS_H

#include "base.h"

struct dp_csv;

/* ---- MMLU ---- */

struct dp_mmlu_row {
    const char *question;
    const char *choices[4];
    int answer;      /* 0..3 (A..D) */
    int line;        /* line in the CSV file */
};

struct dp_mmlu_subject {
    char *name;                     /* e.g. "abstract_algebra" */
    int n_dev, n_test;
    struct dp_mmlu_row *dev, *test; /* test: the first `limit` rows */
    struct dp_csv *dev_csv, *test_csv;
};

struct dp_mmlu_data {
    int n_subjects;
    struct dp_mmlu_subject *subjects;
    int n_test;                     /* questions over all subjects */
};

/*
 * Read DIR/dev and DIR/test. subjects: comma list of names, or NULL for all;
 * limit > 0 keeps the first `limit` test rows of each subject. Fails on an
 * unknown subject, a missing dev file, or a malformed row (file:line).
 */
dp_status dp_mmlu_read(const char *dir, const char *subjects, int limit, struct dp_mmlu_data **out);
void dp_mmlu_data_free(struct dp_mmlu_data *d);

/* ---- multiple-choice tasks ---- */

#define DP_MC_MAX_CHOICES 8

/* "hellaswag" ... "boolq" -> task; DP_ERR_ARG naming the choices otherwise. */
dp_status dp_task_parse(const char *name, enum dp_task *out);
const char *dp_task_name(enum dp_task t);

struct dp_mc_item {
    int n_choices;
    char *context[DP_MC_MAX_CHOICES];   /* owned; may repeat the same text */
    char *cont[DP_MC_MAX_CHOICES];
    int label;
    int line;                           /* first line of the item in its file */
};

struct dp_mc_set {
    enum dp_task task;
    int n_items;
    struct dp_mc_item *items;
};

/* Read a task file (labels: PIQA's labels file or NULL for the default); limit > 0 keeps the first items. */
dp_status dp_mc_read(enum dp_task task, const char *path, const char *labels, int limit, struct dp_mc_set **out);
void dp_mc_set_free(struct dp_mc_set *s);

#endif
