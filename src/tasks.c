/*
 * tasks: readers for MMLU and the multiple-choice benchmarks (see tasks.h).
 * Every malformed input fails with one message naming the file and line.
 */
#include "tasks.h"

#include "csv.h"
#include "json.h"

#include <ctype.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

/* ---- MMLU ---- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The subject names of DIR/test (files <name>_test.csv), sorted; *n of them in a heap array. */
static dp_status list_subjects(const char *dir, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/test", dir);
    DIR *d = opendir(path);
    if (!d) return dp_fail(DP_ERR_IO, "%s: cannot open the MMLU test folder", path);
    char **names = NULL;
    int cap = 0;
    dp_status st = DP_OK;
    for (struct dirent *e; (e = readdir(d)) && !st;) {
        size_t len = strlen(e->d_name), suf = strlen("_test.csv");
        if (len <= suf || strcmp(e->d_name + len - suf, "_test.csv")) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(names, (size_t)cap * sizeof *p);
            if (!p) {
                st = dp_fail(DP_ERR_NOMEM, "out of memory listing %s", path);
                break;
            }
            names = p;
        }
        names[*n] = malloc(len - suf + 1);
        if (!names[*n]) {
            st = dp_fail(DP_ERR_NOMEM, "out of memory listing %s", path);
            break;
        }
        memcpy(names[*n], e->d_name, len - suf);
        names[(*n)++][len - suf] = 0;
    }
    closedir(d);
    if (!st && *n == 0) st = dp_fail(DP_ERR_FORMAT, "%s: no <subject>_test.csv files", path);
    if (st) {
        for (int i = 0; i < *n; i++) free(names[i]);
        free(names);
        *n = 0;
        return st;
    }
    qsort(names, (size_t)*n, sizeof *names, cmp_str);
    *out = names;
    return DP_OK;
}

/* Rows of one CSV file as MMLU questions (at most limit when limit > 0). */
static dp_status mmlu_rows(const char *path, int limit, struct dp_csv **csv, struct dp_mmlu_row **rows, int *n) {
    *rows = NULL;
    *n = 0;
    dp_status st = dp_csv_read(path, csv);
    if (st) return st;
    int count = (*csv)->n_rows;
    if (limit > 0 && limit < count) count = limit;
    if (count == 0) return dp_fail(DP_ERR_FORMAT, "%s: no questions", path);
    *rows = dp_calloc((size_t)count, sizeof **rows);
    if (!*rows) return DP_ERR_NOMEM;
    for (int i = 0; i < count; i++) {
        const struct dp_csv_row *r = &(*csv)->rows[i];
        if (r->n_fields != 6)
            return dp_fail(DP_ERR_FORMAT, "%s:%d: %d fields, expected 6 (question,A,B,C,D,answer)", path, r->line,
                           r->n_fields);
        const char *a = r->fields[5];
        if (r->lens[5] != 1 || a[0] < 'A' || a[0] > 'D')
            return dp_fail(DP_ERR_FORMAT, "%s:%d: answer '%.20s' is not one of A, B, C, D", path, r->line, a);
        struct dp_mmlu_row *q = &(*rows)[i];
        q->question = r->fields[0];
        for (int c = 0; c < 4; c++) q->choices[c] = r->fields[1 + c];
        q->answer = a[0] - 'A';
        q->line = r->line;
    }
    *n = count;
    return DP_OK;
}

/* Is `name` in the comma list? */
static bool in_list(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !memcmp(p, name, n)) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

dp_status dp_mmlu_read(const char *dir, const char *subjects, int limit, struct dp_mmlu_data **out) {
    *out = NULL;
    char **names;
    int n_names;
    dp_status st = list_subjects(dir, &names, &n_names);
    if (st) return st;
    /* every requested subject must exist */
    if (subjects) {
        for (const char *p = subjects; *p && !st;) {
            const char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            bool found = false;
            for (int i = 0; i < n_names && !found; i++) found = strlen(names[i]) == len && !memcmp(names[i], p, len);
            if (!found)
                st = dp_fail(DP_ERR_ARG, "unknown MMLU subject '%.*s' (no %s/test/%.*s_test.csv)", (int)len, p, dir,
                             (int)len, p);
            p = e ? e + 1 : p + len;
        }
    }
    struct dp_mmlu_data *d = st ? NULL : dp_calloc(1, sizeof *d);
    if (!st && !d) st = DP_ERR_NOMEM;
    if (!st) {
        d->subjects = dp_calloc((size_t)n_names, sizeof *d->subjects);
        if (!d->subjects) st = DP_ERR_NOMEM;
    }
    for (int i = 0; i < n_names && !st; i++) {
        if (subjects && !in_list(subjects, names[i])) continue;
        struct dp_mmlu_subject *s = &d->subjects[d->n_subjects++];
        s->name = names[i];
        names[i] = NULL;
        char path[4096];
        snprintf(path, sizeof path, "%s/dev/%s_dev.csv", dir, s->name);
        st = mmlu_rows(path, 0, &s->dev_csv, &s->dev, &s->n_dev);
        if (st) break;
        snprintf(path, sizeof path, "%s/test/%s_test.csv", dir, s->name);
        st = mmlu_rows(path, limit, &s->test_csv, &s->test, &s->n_test);
        d->n_test += s->n_test;
    }
    if (!st && d->n_subjects == 0) st = dp_fail(DP_ERR_ARG, "no MMLU subject selected");
    for (int i = 0; i < n_names; i++) free(names[i]);
    free(names);
    if (st) {
        dp_mmlu_data_free(d);
        return st;
    }
    *out = d;
    return DP_OK;
}

void dp_mmlu_data_free(struct dp_mmlu_data *d) {
    if (!d) return;
    for (int i = 0; i < d->n_subjects; i++) {
        struct dp_mmlu_subject *s = &d->subjects[i];
        free(s->name);
        free(s->dev);
        free(s->test);
        dp_csv_free(s->dev_csv);
        dp_csv_free(s->test_csv);
    }
    free(d->subjects);
    free(d);
}

/* ---- multiple-choice tasks ---- */

static const char *const task_names[] = {"hellaswag", "arc", "piqa", "winogrande", "boolq"};

dp_status dp_task_parse(const char *name, enum dp_task *out) {
    for (int i = 0; i < 5; i++)
        if (!strcmp(name, task_names[i])) {
            *out = (enum dp_task)i;
            return DP_OK;
        }
    return dp_fail(DP_ERR_ARG, "unknown task '%s' (hellaswag, arc, piqa, winogrande or boolq)", name);
}

const char *dp_task_name(enum dp_task t) { return task_names[t]; }

/* Concatenate up to four strings into a heap string (NULL on no memory). */
static char *cat4(const char *a, const char *b, const char *c, const char *d) {
    size_t la = strlen(a), lb = b ? strlen(b) : 0, lc = c ? strlen(c) : 0, ld = d ? strlen(d) : 0;
    char *s = malloc(la + lb + lc + ld + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    if (b) memcpy(s + la, b, lb);
    if (c) memcpy(s + la + lb, c, lc);
    if (d) memcpy(s + la + lb + lc, d, ld);
    s[la + lb + lc + ld] = 0;
    return s;
}

static void item_free(struct dp_mc_item *it) {
    for (int c = 0; c < it->n_choices; c++) {
        free(it->context[c]);
        free(it->cont[c]);
    }
}

void dp_mc_set_free(struct dp_mc_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n_items; i++) item_free(&s->items[i]);
    free(s->items);
    free(s);
}

/* Set choice c of it to (context, " " + text); false on no memory. */
static bool set_choice(struct dp_mc_item *it, int c, const char *context, const char *space, const char *text) {
    it->context[c] = cat4(context, NULL, NULL, NULL);
    it->cont[c] = cat4(space, text, NULL, NULL);
    if (c >= it->n_choices) it->n_choices = c + 1;
    return it->context[c] && it->cont[c];
}

/* Append an item to the set (grows the array). */
static dp_status push_item(struct dp_mc_set *s, int *cap, struct dp_mc_item *it) {
    if (s->n_items == *cap) {
        int want = *cap ? 2 * *cap : 256;
        struct dp_mc_item *p = realloc(s->items, (size_t)want * sizeof *p);
        if (!p) {
            item_free(it);
            return dp_fail(DP_ERR_NOMEM, "out of memory reading task items");
        }
        s->items = p;
        *cap = want;
    }
    s->items[s->n_items++] = *it;
    return DP_OK;
}

static dp_status line_too_long(const char *path, int line) {
    return dp_fail(DP_ERR_FORMAT, "%s:%d: a line longer than %zu MiB (the limit for a task line)", path, line,
                   DP_MAX_LINE >> 20);
}

/* HellaSwag in llama.cpp's format: 6 lines per task. */
static dp_status read_hellaswag(const char *path, char *text, size_t len, int limit, struct dp_mc_set *s) {
    int cap = 0, line_no = 0;
    char *lines[6];
    int n_lines = 0, first_line = 1;
    size_t pos = 0;
    while (pos < len && (limit <= 0 || s->n_items < limit)) {
        char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        char *line = text + pos;
        size_t n = end - pos;
        if (n && line[n - 1] == '\r') n--;
        line[n] = 0;
        line_no++;
        if (n > DP_MAX_LINE) return line_too_long(path, line_no);
        pos = nl ? end + 1 : len;
        if (n_lines == 0) first_line = line_no;
        lines[n_lines++] = line;
        if (n_lines < 6) continue;
        n_lines = 0;
        char *e;
        long label = strtol(lines[1], &e, 10);
        if (!lines[1][0] || *e || label < 0 || label > 3)
            return dp_fail(DP_ERR_FORMAT, "%s:%d: gold ending '%.20s' is not 0-3 (expected 6 lines per task)", path,
                           first_line + 1, lines[1]);
        struct dp_mc_item it = {0};
        it.label = (int)label;
        it.line = first_line;
        for (int c = 0; c < 4; c++)
            if (!set_choice(&it, c, lines[0], " ", lines[2 + c])) {
                item_free(&it);
                return dp_fail(DP_ERR_NOMEM, "out of memory reading %s", path);
            }
        dp_status st = push_item(s, &cap, &it);
        if (st) return st;
    }
    if (n_lines != 0 && (limit <= 0 || s->n_items < limit))
        return dp_fail(DP_ERR_FORMAT, "%s:%d: incomplete task (%d of 6 lines)", path, first_line, n_lines);
    return DP_OK;
}

/* Strip leading and trailing whitespace in place. */
static char *strip(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

/* One JSON line of a jsonl task into an item. */
static dp_status json_item(enum dp_task task, const struct dp_jv *v, const char *where, int piqa_label,
                           struct dp_mc_item *it) {
    char *ctx = NULL;
    dp_status st = DP_OK;
    if (task == DP_TASK_ARC) {
        const struct dp_jv *q = dp_json_get(v, "question");
        const char *stem = dp_json_get_str(q, "stem", NULL), *key = dp_json_get_str(v, "answerKey", NULL);
        const struct dp_jv *ch = dp_json_get(q, "choices");
        if (!stem || !key || !ch || ch->type != DP_JARR || ch->n < 2 || ch->n > DP_MC_MAX_CHOICES)
            return dp_fail(DP_ERR_FORMAT, "%s: expected question.stem, question.choices (2-%d) and answerKey", where,
                           DP_MC_MAX_CHOICES);
        if (!(ctx = cat4("Question: ", stem, "\nAnswer:", NULL))) return DP_ERR_NOMEM;
        it->label = -1;
        for (int c = 0; c < ch->n && !st; c++) {
            const char *t = dp_json_get_str(&ch->items[c], "text", NULL), *l = dp_json_get_str(&ch->items[c], "label", NULL);
            if (!t || !l) st = dp_fail(DP_ERR_FORMAT, "%s: choice %d lacks text or label", where, c);
            else if (!set_choice(it, c, ctx, " ", t)) st = DP_ERR_NOMEM;
            else if (!strcmp(l, key)) it->label = c;
        }
        if (!st && it->label < 0) st = dp_fail(DP_ERR_FORMAT, "%s: answerKey '%s' names no choice", where, key);
    } else if (task == DP_TASK_PIQA) {
        const char *goal = dp_json_get_str(v, "goal", NULL), *s1 = dp_json_get_str(v, "sol1", NULL),
                   *s2 = dp_json_get_str(v, "sol2", NULL);
        if (!goal || !s1 || !s2) return dp_fail(DP_ERR_FORMAT, "%s: expected goal, sol1 and sol2", where);
        if (!(ctx = cat4("Question: ", goal, "\nAnswer:", NULL))) return DP_ERR_NOMEM;
        if (!set_choice(it, 0, ctx, " ", s1) || !set_choice(it, 1, ctx, " ", s2)) st = DP_ERR_NOMEM;
        it->label = piqa_label;
    } else if (task == DP_TASK_WINOGRANDE) {
        const char *sent = dp_json_get_str(v, "sentence", NULL), *o1 = dp_json_get_str(v, "option1", NULL),
                   *o2 = dp_json_get_str(v, "option2", NULL), *ans = dp_json_get_str(v, "answer", NULL);
        if (!sent || !o1 || !o2 || !ans) return dp_fail(DP_ERR_FORMAT, "%s: expected sentence, option1, option2, answer", where);
        const char *blank = strchr(sent, '_');
        if (!blank) return dp_fail(DP_ERR_FORMAT, "%s: the sentence has no '_'", where);
        if (strcmp(ans, "1") && strcmp(ans, "2")) return dp_fail(DP_ERR_FORMAT, "%s: answer '%.10s' is not 1 or 2", where, ans);
        char *rest = cat4(blank + 1, NULL, NULL, NULL);
        char *head = malloc((size_t)(blank - sent) + 1);
        if (!rest || !head) st = DP_ERR_NOMEM;
        if (!st) {
            memcpy(head, sent, (size_t)(blank - sent));
            head[blank - sent] = 0;
            const char *opts[2] = {o1, o2};
            for (int c = 0; c < 2 && !st; c++) {
                it->context[c] = cat4(head, opts[c], NULL, NULL);
                it->cont[c] = cat4(" ", strip(rest), NULL, NULL);
                it->n_choices = c + 1;
                if (!it->context[c] || !it->cont[c]) st = DP_ERR_NOMEM;
            }
        }
        free(rest);
        free(head);
        it->label = ans[0] - '1';
    } else { /* BoolQ */
        const char *passage = dp_json_get_str(v, "passage", NULL), *question = dp_json_get_str(v, "question", NULL);
        const char *label = dp_json_get_str(v, "label", NULL);
        const struct dp_jv *answer = dp_json_get(v, "answer");
        int y = -1;
        if (label) y = !strcmp(label, "true") ? 1 : !strcmp(label, "false") ? 0 : -1;
        else if (answer && answer->type == DP_JBOOL) y = answer->b;
        if (!passage || !question || y < 0)
            return dp_fail(DP_ERR_FORMAT, "%s: expected passage, question and label \"true\"/\"false\" (or boolean answer)", where);
        if (!(ctx = cat4(passage, "\nQuestion: ", question, "?\nAnswer:"))) return DP_ERR_NOMEM;
        if (!set_choice(it, 0, ctx, " ", "no") || !set_choice(it, 1, ctx, " ", "yes")) st = DP_ERR_NOMEM;
        it->label = y;
    }
    free(ctx);
    if (st == DP_ERR_NOMEM) st = dp_fail(DP_ERR_NOMEM, "%s: out of memory", where);
    return st;
}

/* PIQA's labels file: one 0/1 per line. */
static dp_status read_labels(const char *path, int **out, int *n) {
    char *text;
    size_t len;
    *out = NULL;
    *n = 0;
    dp_status st = dp_read_file(path, &text, &len);
    if (st) return st;
    int cap = 0, line = 0;
    for (char *p = text; *p && !st;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        line++;
        char *s = strip(p);
        if (*s) {
            if ((strcmp(s, "0") && strcmp(s, "1")))
                st = dp_fail(DP_ERR_FORMAT, "%s:%d: label '%.10s' is not 0 or 1", path, line, s);
            else {
                if (*n == cap) {
                    cap = cap ? 2 * cap : 1024;
                    int *q = realloc(*out, (size_t)cap * sizeof *q);
                    if (!q) st = dp_fail(DP_ERR_NOMEM, "out of memory reading %s", path);
                    else *out = q;
                }
                if (!st) (*out)[(*n)++] = s[0] - '0';
            }
        }
        if (!nl) break;
        p = nl + 1;
    }
    free(text);
    if (st) {
        free(*out);
        *out = NULL;
    }
    return st;
}

static dp_status read_jsonl(enum dp_task task, const char *path, char *text, size_t len, const char *labels_path,
                            int limit, struct dp_mc_set *s) {
    int *labels = NULL, n_labels = 0, cap = 0;
    char lpath[4096];
    dp_status st = DP_OK;
    if (task == DP_TASK_PIQA) {
        if (!labels_path) {
            size_t n = strlen(path);
            size_t stem = n > 6 && !strcmp(path + n - 6, ".jsonl") ? n - 6 : n;
            snprintf(lpath, sizeof lpath, "%.*s-labels.lst", (int)stem, path);
            labels_path = lpath;
        }
        st = read_labels(labels_path, &labels, &n_labels);
        if (st) return st;
    }
    int line_no = 0;
    for (size_t pos = 0; pos < len && !st && (limit <= 0 || s->n_items < limit);) {
        char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        line_no++;
        char *line = text + pos;
        size_t n = end - pos;
        pos = nl ? end + 1 : len;
        if (n > DP_MAX_LINE) {
            st = line_too_long(path, line_no);
            break;
        }
        bool blank = true;
        for (size_t i = 0; i < n && blank; i++) blank = isspace((unsigned char)line[i]);
        if (blank) continue;
        char where[4200];
        snprintf(where, sizeof where, "%s:%d", path, line_no);
        struct dp_jv *v;
        st = dp_json_parse(line, n, where, &v);
        if (st) break;
        if (v->type != DP_JOBJ) st = dp_fail(DP_ERR_FORMAT, "%s: not a JSON object", where);
        if (!st && task == DP_TASK_PIQA && s->n_items >= n_labels)
            st = dp_fail(DP_ERR_FORMAT, "%s: more items than labels in %s (%d)", where, labels_path, n_labels);
        struct dp_mc_item it = {0};
        it.line = line_no;
        if (!st) st = json_item(task, v, where, labels ? labels[s->n_items] : 0, &it);
        dp_json_free(v);
        if (st) item_free(&it);
        else st = push_item(s, &cap, &it);
    }
    if (!st && task == DP_TASK_PIQA && limit <= 0 && s->n_items != n_labels)
        st = dp_fail(DP_ERR_FORMAT, "%s: %d items but %d labels in %s", path, s->n_items, n_labels, labels_path);
    free(labels);
    return st;
}

dp_status dp_mc_read(enum dp_task task, const char *path, const char *labels, int limit, struct dp_mc_set **out) {
    *out = NULL;
    char *text;
    size_t len;
    dp_status st = dp_read_file(path, &text, &len);
    if (st) return st;
    struct dp_mc_set *s = dp_calloc(1, sizeof *s);
    if (!s) {
        free(text);
        return DP_ERR_NOMEM;
    }
    s->task = task;
    st = task == DP_TASK_HELLASWAG ? read_hellaswag(path, text, len, limit, s)
                                   : read_jsonl(task, path, text, len, labels, limit, s);
    free(text);
    if (!st && s->n_items == 0) st = dp_fail(DP_ERR_FORMAT, "%s: no items", path);
    if (st) {
        dp_mc_set_free(s);
        return st;
    }
    *out = s;
    return DP_OK;
}
