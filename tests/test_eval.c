/*
 * test_eval: the evaluation suite's pieces against expectations written by
 * hand from METHODS.md section 6 and RFC 4180: CSV edge cases, MMLU prompts
 * byte for byte (fields with commas, quotes and newlines; the real
 * abstract_algebra files), the task readers, the standard-error and
 * McNemar formulas, prefix-cached scoring against evaluation from scratch
 * (equal predictions, sums equal to float rounding; and against one plain
 * forward pass per sequence), MMLU predictions against the argmax of
 * log-likelihoods from plain forward passes, and the KL divergence
 * of a model with itself, directly and through llama.cpp's base-logits file.
 */
#include "harness.h"

#include "csv.h"
#include "eval.h"
#include "kld.h"
#include "loglik.h"
#include "mc.h"
#include "mmlu.h"
#include "stats.h"
#include "tasks.h"

#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "%s/%s", tmpdir, name);
    return b;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static bool field_is(const struct dp_csv *c, int row, int field, const char *want) {
    return row < c->n_rows && field < c->rows[row].n_fields && c->rows[row].lens[field] == strlen(want) &&
           !memcmp(c->rows[row].fields[field], want, strlen(want));
}

static void test_csv(void) {
    struct dp_csv *c;
    const char *text = "a,\"b,c\",\"say \"\"hi\"\"\"\r\n"
                       "\"multi\nline\",,x\"y\n"
                       "\n"
                       "last,\"\",end";
    CHECK(dp_csv_parse(text, strlen(text), "t.csv", &c) == DP_OK);
    if (c) {
        CHECK_EQ_INT(c->n_rows, 3);
        CHECK_EQ_INT(c->rows[0].n_fields, 3);
        CHECK(field_is(c, 0, 0, "a"));
        CHECK(field_is(c, 0, 1, "b,c"));
        CHECK(field_is(c, 0, 2, "say \"hi\""));
        CHECK(field_is(c, 1, 0, "multi\nline"));
        CHECK(field_is(c, 1, 1, ""));
        CHECK(field_is(c, 1, 2, "x\"y")); /* a quote inside an unquoted field is a character */
        CHECK_EQ_INT(c->rows[1].line, 2);
        CHECK_EQ_INT(c->rows[2].line, 5); /* the quoted newline and the empty line count */
        CHECK(field_is(c, 2, 1, ""));
        CHECK(field_is(c, 2, 2, "end"));
        dp_csv_free(c);
    }
    /* a trailing line break adds no record; a lone field line is one field */
    CHECK(dp_csv_parse("x\n", 2, "t.csv", &c) == DP_OK);
    if (c) {
        CHECK_EQ_INT(c->n_rows, 1);
        CHECK_EQ_INT(c->rows[0].n_fields, 1);
        dp_csv_free(c);
    }
    CHECK(dp_csv_parse("", 0, "t.csv", &c) == DP_OK && c && c->n_rows == 0);
    dp_csv_free(c);
    /* errors name the file and line */
    CHECK(dp_csv_parse("a,b\n\"open,c\n", 11, "bad.csv", &c) == DP_ERR_FORMAT && !c);
    CHECK_MSG(strstr(dp_last_error(), "bad.csv:2") != NULL, "%s", dp_last_error());
    CHECK(dp_csv_parse("a\n\"q\"x,b\n", 9, "bad.csv", &c) == DP_ERR_FORMAT);
    CHECK_MSG(strstr(dp_last_error(), "bad.csv:2") != NULL, "%s", dp_last_error());
}

/* A small deterministic generator for the mutation tests. */
static unsigned long long rng_state = 88172645463325252ULL;
static unsigned rnd(unsigned n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state % n);
}

/*
 * Mutated CSV texts (truncations, byte flips, inserted quotes, commas and
 * line breaks) parse or fail with DP_ERR_FORMAT, never crash, and a parsed
 * result is consistent: every field lies inside its buffer and no record is
 * empty of fields.
 */
static void test_csv_mutations(void) {
    const char *seed = "a,\"b,c\",\"say \"\"hi\"\"\"\r\n\"multi\nline\",,x\"y\n\nlast,\"\",end\n";
    size_t n0 = strlen(seed);
    char buf[256];
    int ok = 0, failed = 0, bad = 0;
    for (int it = 0; it < 5000; it++) {
        memcpy(buf, seed, n0);
        size_t n = n0;
        for (int k = 1 + (int)rnd(4); k > 0; k--) {
            unsigned op = rnd(4), at = rnd((unsigned)n + 1);
            static const char special[] = "\",\r\n\0x";
            if (op == 0) n = at; /* truncate */
            else if (op == 1 && at < n) buf[at] = special[rnd(sizeof special - 1)];
            else if (op == 2 && n + 1 < sizeof buf) {
                memmove(buf + at + 1, buf + at, n - at);
                buf[at] = special[rnd(sizeof special - 1)];
                n++;
            } else if (at < n) buf[at] = (char)rnd(256);
        }
        struct dp_csv *c;
        dp_status st = dp_csv_parse(buf, n, "m.csv", &c);
        if (st == DP_OK) {
            ok++;
            for (int r = 0; r < c->n_rows; r++) {
                if (c->rows[r].n_fields < 1 || c->rows[r].line < 1) bad++;
                for (int f = 0; f < c->rows[r].n_fields; f++)
                    if (c->rows[r].lens[f] > n || c->rows[r].fields[f][c->rows[r].lens[f]] != 0) bad++;
            }
            dp_csv_free(c);
        } else if (st == DP_ERR_FORMAT && !c && strstr(dp_last_error(), "m.csv:")) {
            failed++;
        } else {
            bad++;
        }
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(ok > 100 && failed > 100);
}

static void test_mmlu_prompts(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/mmlu", tmpdir);
    mkdir(dir, 0755);
    mkdir(tmp_path("mmlu/dev"), 0755);
    mkdir(tmp_path("mmlu/test"), 0755);
    write_file(tmp_path("mmlu/dev/foo_bar_dev.csv"),
               "\"What is 1,2?\",\"a, b\",\"He said \"\"hi\"\"\",\"line1\nline2\",plain,B\n"
               "Second?,x,y,z,w,D\n");
    write_file(tmp_path("mmlu/test/foo_bar_test.csv"),
               "\"Q with \"\"quotes\"\", commas\nand a newline\",1,2,3,4,C\r\n"
               "Plain question,e,f,g,h,A\r\n");
    struct dp_mmlu_data *d;
    CHECK(dp_mmlu_read(dir, NULL, 0, &d) == DP_OK);
    if (!d) return;
    CHECK_EQ_INT(d->n_subjects, 1);
    CHECK_EQ_INT(d->n_test, 2);
    CHECK_EQ_INT(d->subjects[0].test[0].answer, 2);
    const char *want2 =
        "The following are multiple choice questions (with answers) about  foo bar.\n\n"
        "What is 1,2?\nA. a, b\nB. He said \"hi\"\nC. line1\nline2\nD. plain\nAnswer: B\n\n"
        "Second?\nA. x\nB. y\nC. z\nD. w\nAnswer: D\n\n"
        "Q with \"quotes\", commas\nand a newline\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:";
    const char *want0 = "The following are multiple choice questions (with answers) about  foo bar.\n\n"
                        "Plain question\nA. e\nB. f\nC. g\nD. h\nAnswer:";
    char *p;
    size_t len;
    CHECK(dp_mmlu_prompt(&d->subjects[0], 0, 2, &p, &len) == DP_OK);
    CHECK_MSG(p && len == strlen(want2) && !strcmp(p, want2), "got [%s]", p ? p : "");
    free(p);
    CHECK(dp_mmlu_prompt(&d->subjects[0], 1, 0, &p, &len) == DP_OK);
    CHECK_MSG(p && !strcmp(p, want0), "got [%s]", p ? p : "");
    free(p);
    CHECK(dp_mmlu_prompt(&d->subjects[0], 0, 3, &p, &len) == DP_ERR_ARG); /* only 2 dev rows */
    dp_mmlu_data_free(d);

    /* malformed rows name file and line */
    write_file(tmp_path("mmlu/test/foo_bar_test.csv"), "ok,1,2,3,4,A\nshort,1,2,3,B\n");
    CHECK(dp_mmlu_read(dir, NULL, 0, &d) == DP_ERR_FORMAT);
    CHECK_MSG(strstr(dp_last_error(), "foo_bar_test.csv:2") != NULL, "%s", dp_last_error());
    write_file(tmp_path("mmlu/test/foo_bar_test.csv"), "ok,1,2,3,4,E\n");
    CHECK(dp_mmlu_read(dir, NULL, 0, &d) == DP_ERR_FORMAT);
    CHECK(dp_mmlu_read(dir, "nope", 0, &d) == DP_ERR_ARG);
    CHECK_MSG(strstr(dp_last_error(), "nope") != NULL, "%s", dp_last_error());

    /* the real files: the first abstract_algebra test question with 2 shots */
    char real[1024];
    snprintf(real, sizeof real, "%s", test_shared("data/mmlu"));
    if (dp_mmlu_read(real, "abstract_algebra", 1, &d) == DP_OK) {
        const char *want =
            "The following are multiple choice questions (with answers) about  abstract algebra.\n\n"
            "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\n"
            "Statement 1 | If aH is an element of a factor group, then |aH| divides |a|. Statement 2 | If H and K "
            "are subgroups of G then HK is a subgroup of G.\nA. True, True\nB. False, False\nC. True, False\n"
            "D. False, True\nAnswer: B\n\n"
            "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\n"
            "A. 0\nB. 4\nC. 2\nD. 6\nAnswer:";
        CHECK_EQ_INT(d->n_test, 1);
        CHECK_EQ_INT(d->subjects[0].n_dev, 5);
        CHECK(dp_mmlu_prompt(&d->subjects[0], 0, 2, &p, &len) == DP_OK);
        CHECK_MSG(p && !strcmp(p, want), "got [%s]", p ? p : "");
        free(p);
        dp_mmlu_data_free(d);
    } else {
        CHECK_MSG(0, "%s", dp_last_error());
    }
}

static void test_tasks(void) {
    struct dp_mc_set *s;
    write_file(tmp_path("hs.txt"), "Ctx: a man\n2\nruns.\nsits.\njumps.\nsleeps.\nCtx two\n0\na\nb\nc\nd\n");
    CHECK(dp_mc_read(DP_TASK_HELLASWAG, tmp_path("hs.txt"), NULL, 0, &s) == DP_OK);
    if (s) {
        CHECK_EQ_INT(s->n_items, 2);
        CHECK_EQ_INT(s->items[0].label, 2);
        CHECK(!strcmp(s->items[0].context[3], "Ctx: a man") && !strcmp(s->items[0].cont[3], " sleeps."));
        CHECK_EQ_INT(s->items[1].line, 7);
        dp_mc_set_free(s);
    }
    CHECK(dp_mc_read(DP_TASK_HELLASWAG, tmp_path("hs.txt"), NULL, 1, &s) == DP_OK && s && s->n_items == 1);
    dp_mc_set_free(s);
    write_file(tmp_path("hs_bad.txt"), "Ctx\n7\na\nb\nc\nd\n");
    CHECK(dp_mc_read(DP_TASK_HELLASWAG, tmp_path("hs_bad.txt"), NULL, 0, &s) == DP_ERR_FORMAT);
    CHECK_MSG(strstr(dp_last_error(), "hs_bad.txt:2") != NULL, "%s", dp_last_error());

    write_file(tmp_path("arc.jsonl"),
               "{\"question\":{\"stem\":\"Why?\",\"choices\":[{\"text\":\"x\",\"label\":\"1\"},{\"text\":\"y\",\"label\":\"2\"},"
               "{\"text\":\"z\",\"label\":\"3\"}]},\"answerKey\":\"3\"}\n");
    CHECK(dp_mc_read(DP_TASK_ARC, tmp_path("arc.jsonl"), NULL, 0, &s) == DP_OK);
    if (s) {
        CHECK_EQ_INT(s->items[0].n_choices, 3);
        CHECK_EQ_INT(s->items[0].label, 2);
        CHECK(!strcmp(s->items[0].context[0], "Question: Why?\nAnswer:") && !strcmp(s->items[0].cont[1], " y"));
        dp_mc_set_free(s);
    }
    write_file(tmp_path("wg.jsonl"), "{\"sentence\": \"Sarah beat Maria so _ won the cup.\", \"option1\": \"Sarah\", "
                                     "\"option2\": \"Maria\", \"answer\": \"1\"}\n");
    CHECK(dp_mc_read(DP_TASK_WINOGRANDE, tmp_path("wg.jsonl"), NULL, 0, &s) == DP_OK);
    if (s) {
        CHECK(!strcmp(s->items[0].context[1], "Sarah beat Maria so Maria"));
        CHECK(!strcmp(s->items[0].cont[0], " won the cup.") && !strcmp(s->items[0].cont[1], " won the cup."));
        CHECK_EQ_INT(s->items[0].label, 0);
        dp_mc_set_free(s);
    }
    write_file(tmp_path("bq.jsonl"), "{\"question\": \"is it\", \"passage\": \"P.\", \"idx\": 0, \"label\": \"true\"}\n"
                                     "{\"question\": \"is it\", \"passage\": \"P.\", \"label\": \"maybe\"}\n");
    CHECK(dp_mc_read(DP_TASK_BOOLQ, tmp_path("bq.jsonl"), NULL, 1, &s) == DP_OK);
    if (s) {
        CHECK(!strcmp(s->items[0].context[0], "P.\nQuestion: is it?\nAnswer:") && !strcmp(s->items[0].cont[1], " yes"));
        CHECK_EQ_INT(s->items[0].label, 1);
        dp_mc_set_free(s);
    }
    CHECK(dp_mc_read(DP_TASK_BOOLQ, tmp_path("bq.jsonl"), NULL, 0, &s) == DP_ERR_FORMAT);
    CHECK_MSG(strstr(dp_last_error(), "bq.jsonl:2") != NULL, "%s", dp_last_error());
    write_file(tmp_path("pq.jsonl"), "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n{\"goal\": \"h\", \"sol1\": \"c\", \"sol2\": \"d\"}\n");
    write_file(tmp_path("pq-labels.lst"), "1\n0\n");
    CHECK(dp_mc_read(DP_TASK_PIQA, tmp_path("pq.jsonl"), NULL, 0, &s) == DP_OK);
    if (s) {
        CHECK(s->n_items == 2 && s->items[0].label == 1 && s->items[1].label == 0);
        dp_mc_set_free(s);
    }
    write_file(tmp_path("pq-labels.lst"), "1\n");
    CHECK(dp_mc_read(DP_TASK_PIQA, tmp_path("pq.jsonl"), NULL, 0, &s) == DP_ERR_FORMAT);
}

static void test_stats(void) {
    CHECK_CLOSE(dp_stats_acc_stderr(25, 100), sqrt(0.25 * 0.75 / 100), 1e-15, 0);
    CHECK_CLOSE(dp_stats_acc_stderr(0, 10), 0, 1e-15, 0);
    CHECK_CLOSE(dp_stats_acc_stderr(1, 0), 0, 1e-15, 0);
    /* b=10, c=2: 2 * (C(12,0)+C(12,1)+C(12,2)) / 2^12 = 158/4096 */
    CHECK_CLOSE(dp_stats_mcnemar_exact(10, 2), 158.0 / 4096, 1e-12, 1e-9);
    CHECK_CLOSE(dp_stats_mcnemar_exact(2, 10), 158.0 / 4096, 1e-12, 1e-9);
    CHECK_CLOSE(dp_stats_mcnemar_exact(5, 5), 1, 0, 0);
    CHECK_CLOSE(dp_stats_mcnemar_exact(0, 0), 1, 0, 0);
    CHECK_CLOSE(dp_stats_mcnemar_exact(0, 1), 1, 0, 0);
    CHECK_CLOSE(dp_stats_mcnemar_exact(0, 20), 2.0 / 1048576, 1e-15, 1e-9);
    CHECK_CLOSE(dp_stats_mcnemar_exact(3000, 3100), 0.20494954465156165, 0, 1e-9); /* exact, by big integers */
    bool a[6] = {1, 1, 1, 0, 0, 1}, b[6] = {1, 0, 0, 0, 1, 1};
    struct dp_paired p;
    dp_stats_paired(a, b, 6, &p);
    CHECK(p.both == 2 && p.a_only == 2 && p.b_only == 1 && p.neither == 1);
    CHECK_CLOSE(p.diff, 1.0 / 6, 1e-15, 0);
    /* d = 0,1,1,0,-1,0: mean 1/6, mean d^2 = 1/2, var = 1/2 - 1/36 */
    CHECK_CLOSE(p.diff_stderr, sqrt((0.5 - 1.0 / 36) / 6), 1e-15, 0);
    CHECK_CLOSE(p.mcnemar_p, 1, 0, 0);
}

/* Sum of log-probabilities of ids[start..n) from one plain forward pass. */
static double plain_loglik(struct dp_model *m, struct dp_pool *pool, const int *ids, int n, int start) {
    struct dp_mask mask;
    dp_mask_all(m, &mask);
    struct dp_session *s;
    if (dp_session_new(m, &mask, n, &s)) return NAN;
    int V = m->cfg.n_vocab;
    float *lg = malloc((size_t)n * V * sizeof *lg);
    double sum = NAN;
    if (!dp_session_forward(s, pool, ids, n, lg, DP_LOGITS_ALL)) {
        sum = 0;
        for (int t = start; t < n; t++) sum += dp_log_softmax_at(lg + (size_t)(t - 1) * V, V, ids[t]);
    }
    free(lg);
    dp_session_free(s);
    return sum;
}

static void test_prefix_cache(struct dp_model *m, struct dp_pool *pool) {
    const struct dp_tokenizer *t = dp_model_tokenizer(m);
    /* long enough (over 100 tokens) that batches of both matrix-product orders (dot, gemm) occur */
#define STORY "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. " \
              "One day, she saw a big, red ball. She wanted to play with it, but it was too high. "
    const char *ctx[2] = {STORY "Lily loved to play", STORY "Then a little boy named Tom came. He"};
    const char *conts[4] = {" outside in the park.", " with her toys", " in the sun all day long", " ball."};
    int *ids[8] = {0}, cap[8] = {0}, n[8];
    struct dp_loglik_seq seqs[8];
    int *cids = NULL, ccap = 0, nc;
    for (int g = 0; g < 2; g++) {
        CHECK(dp_loglik_tokenize(t, ctx[g], strlen(ctx[g]), &cids, &ccap, &nc) == DP_OK);
        for (int c = 0; c < 4; c++) {
            char text[1024];
            snprintf(text, sizeof text, "%s%s", ctx[g], conts[c]);
            int i = 4 * g + c;
            CHECK(dp_loglik_tokenize(t, text, strlen(text), &ids[i], &cap[i], &n[i]) == DP_OK);
            seqs[i] = (struct dp_loglik_seq){ids[i], n[i], dp_loglik_lcp(cids, nc, ids[i], n[i])};
        }
    }
    struct dp_mask mask;
    dp_mask_all(m, &mask);
    double sums[2][8];
    int64_t evaluated[2], naive[2];
    for (int mode = 0; mode < 2; mode++) {
        struct dp_loglik *l;
        CHECK(dp_loglik_new(m, &mask, NULL, pool, 256, mode == 0, &l) == DP_OK);
        if (!l) return;
        CHECK(dp_loglik_group(l, seqs, 4, sums[mode]) == DP_OK);
        CHECK(dp_loglik_group(l, seqs + 4, 4, sums[mode] + 4) == DP_OK);
        evaluated[mode] = dp_loglik_stats(l)->tokens_evaluated;
        naive[mode] = dp_loglik_stats(l)->tokens_naive;
        dp_loglik_free(l);
    }
    /*
     * The kernels pick the order of a matrix product's sums by batch size
     * (src/kernels.c), so splitting a sequence into other batches may move
     * the last bits; nothing more.
     */
    int exact = 0;
    double worst = 0;
    for (int i = 0; i < 8; i++) {
        double ref = plain_loglik(m, pool, ids[i], n[i], seqs[i].start);
        CHECK_CLOSE(sums[0][i], sums[1][i], 1e-4, 0);
        CHECK_CLOSE(sums[0][i], ref, 1e-4, 0);
        exact += sums[0][i] == ref && sums[1][i] == ref;
        if (fabs(sums[0][i] - ref) > worst) worst = fabs(sums[0][i] - ref);
        if (fabs(sums[1][i] - ref) > worst) worst = fabs(sums[1][i] - ref);
    }
    fprintf(stderr, "prefix cache: %d of 8 sums bit-identical to a plain forward pass (largest difference %.3g); "
                    "evaluated %lld (cached) %lld (from scratch), naive %lld\n",
            exact, worst, (long long)evaluated[0], (long long)evaluated[1], (long long)naive[0]);
    CHECK(evaluated[0] < evaluated[1]);
    CHECK(evaluated[1] <= naive[1] && naive[0] == naive[1]);
    /* a sequence longer than the context, a bad start */
    struct dp_loglik *l;
    CHECK(dp_loglik_new(m, &mask, NULL, pool, 8, true, &l) == DP_OK);
    double s;
    CHECK(dp_loglik_group(l, seqs, 1, &s) == DP_ERR_ARG);
    struct dp_loglik_seq bad = {ids[0], 4, 0};
    CHECK(dp_loglik_group(l, &bad, 1, &s) == DP_ERR_ARG);
    dp_loglik_free(l);
    for (int i = 0; i < 8; i++) free(ids[i]);
    free(cids);
}

static void test_mmlu_eval(struct dp_model *m, struct dp_pool *pool) {
    struct dp_mmlu_data *d;
    if (dp_mmlu_read(test_shared("data/mmlu"), "abstract_algebra,marketing", 3, &d)) {
        CHECK_MSG(0, "%s", dp_last_error());
        return;
    }
    struct dp_mask mask;
    dp_mask_all(m, &mask);
    struct dp_mmlu_opts o = {2, 2048, true, NULL, NULL, NULL};
    struct dp_mmlu_result *a = NULL, *b = NULL, *c = NULL;
    CHECK(dp_mmlu_eval(m, &mask, NULL, pool, d, &o, &a) == DP_OK);
    o.prefix_cache = false;
    CHECK(dp_mmlu_eval(m, &mask, NULL, pool, d, &o, &b) == DP_OK);
    o.prefix_cache = true;
    o.ctx_limit = 64; /* forces dropped shots and left truncation */
    CHECK(dp_mmlu_eval(m, &mask, NULL, pool, d, &o, &c) == DP_OK);
    if (a && b && c) {
        CHECK_EQ_INT(a->n, 6);
        CHECK(!memcmp(a->pred, b->pred, 6 * sizeof *a->pred));
        CHECK_EQ_INT(a->n_correct, b->n_correct);
        CHECK(a->tokens_evaluated < b->tokens_evaluated);
        CHECK_EQ_INT(b->tokens_evaluated, b->tokens_naive);
        CHECK_EQ_INT(a->tokens_naive, b->tokens_naive);
        CHECK_EQ_INT(a->shots_used[2], 6);
        CHECK_EQ_INT(a->n_truncated, 0);
        CHECK_EQ_INT(c->shots_used[0], 6);
        CHECK(c->n_truncated > 0);
        CHECK_EQ_INT(a->subjects[0].n + a->subjects[1].n, 6);
        /* each prediction is the argmax (first on ties) of the four continuations' log-likelihoods, each
           computed here by one plain forward pass of prompt + " X" (2 shots fit: no truncation) */
        const struct dp_tokenizer *t = dp_model_tokenizer(m);
        int k = 0, clear = 0;
        for (int si = 0; si < d->n_subjects; si++)
            for (int q = 0; q < d->subjects[si].n_test; q++, k++) {
                char *prompt = NULL, text[8192];
                size_t len = 0;
                int ids[2048], pids[2048], n = 0, np = 0, best = 0;
                double ll[4];
                CHECK(dp_mmlu_prompt(&d->subjects[si], q, 2, &prompt, &len) == DP_OK && len + 3 < sizeof text);
                if (!prompt || len + 3 >= sizeof text) continue;
                CHECK(dp_tokenize(t, prompt, len, DP_TOKENIZE_BOS, pids, 2048, &np) == DP_OK);
                for (int x = 0; x < 4; x++) {
                    snprintf(text, sizeof text, "%s %c", prompt, 'A' + x);
                    CHECK(dp_tokenize(t, text, len + 2, DP_TOKENIZE_BOS, ids, 2048, &n) == DP_OK);
                    int start = 0;
                    while (start < n && start < np && ids[start] == pids[start]) start++;
                    ll[x] = plain_loglik(m, pool, ids, n, start);
                    if (ll[x] > ll[best]) best = x;
                }
                /* cached and plain sums differ by float rounding (~1e-5): a closer runner-up is not decided here */
                double gap = INFINITY;
                for (int x = 0; x < 4; x++)
                    if (x != best && ll[best] - ll[x] < gap) gap = ll[best] - ll[x];
                free(prompt);
                if (gap < 1e-3) continue;
                clear++;
                CHECK_MSG(a->pred[k] == best, "MMLU question %d: predicted %c, argmax of %.4f %.4f %.4f %.4f is %c", k,
                          'A' + a->pred[k], ll[0], ll[1], ll[2], ll[3], 'A' + best);
                CHECK(a->correct[k] == (best == d->subjects[si].test[q].answer));
            }
        CHECK_MSG(clear >= 5, "only %d of 6 MMLU questions have a clear argmax", clear);
    }
    dp_mmlu_result_free(a);
    dp_mmlu_result_free(b);
    dp_mmlu_result_free(c);
    dp_mmlu_data_free(d);
}

static void test_kld_self(struct dp_model *m, struct dp_pool *pool) {
    char *text;
    size_t len;
    if (dp_read_file(test_shared("reference/tiny_text.txt"), &text, &len)) {
        CHECK_MSG(0, "%s", dp_last_error());
        return;
    }
    int cap = (int)len + 16, n;
    int *ids = malloc((size_t)cap * sizeof *ids);
    CHECK(dp_tokenize(dp_model_tokenizer(m), text, len, DP_TOKENIZE_BOS, ids, cap, &n) == DP_OK);
    struct dp_mask full;
    dp_mask_all(m, &full);
    struct dp_kld_model base = {m, &full, NULL};
    struct dp_kld_result r, rf;
    CHECK(dp_kld_eval(&base, &base, pool, ids, n, 64, tmp_path("base.kld"), &r) == DP_OK);
    CHECK_CLOSE(r.kld_mean, 0, 1e-9, 0);
    CHECK_CLOSE(r.top1, 1, 0, 0);
    CHECK_CLOSE(r.ppl_ratio, 1, 1e-12, 0);
    /* through llama.cpp's 16-bit file: the same model differs only by the rounding of the file */
    CHECK(dp_kld_eval_file(tmp_path("base.kld"), &base, pool, &rf) == DP_OK);
    CHECK_EQ_INT(rf.n, r.n);
    CHECK_CLOSE(rf.kld_mean, 0, 1e-5, 0);
    CHECK(rf.top1 > 0.99);
    CHECK_CLOSE(rf.ppl_base, r.ppl_base, 0, 1e-4);
    CHECK_CLOSE(rf.ppl, r.ppl, 0, 1e-12);
    /* flipped header bytes (ctx, vocabulary, chunk count) fail cleanly; so do bad tokens */
    char *raw;
    size_t raw_len;
    if (dp_read_file(tmp_path("base.kld"), &raw, &raw_len) == DP_OK) {
        int clean = 0;
        for (int i = 8; i < 24; i++) {
            if (i == 20) continue; /* the low byte of the first token: still a token, and replaced by BOS */
            char *mut = malloc(raw_len);
            memcpy(mut, raw, raw_len);
            mut[i] ^= (char)(i < 20 ? 0x40 : 0x7f);
            FILE *g = fopen(tmp_path("mut.kld"), "wb");
            if (g) {
                fwrite(mut, 1, raw_len, g);
                fclose(g);
            }
            free(mut);
            dp_status st = dp_kld_eval_file(tmp_path("mut.kld"), &base, pool, &rf);
            clean += st == DP_ERR_FORMAT || st == DP_ERR_ARG;
        }
        CHECK_EQ_INT(clean, 15);
        free(raw);
    }
    /* a truncated or foreign file fails cleanly */
    FILE *f = fopen(tmp_path("base.kld"), "r+b");
    if (f) {
        CHECK(ftruncate(fileno(f), 1000) == 0);
        fclose(f);
    }
    CHECK(dp_kld_eval_file(tmp_path("base.kld"), &base, pool, &rf) == DP_ERR_FORMAT);
    CHECK(dp_kld_eval_file(test_shared("reference/tiny_text.txt"), &base, pool, &rf) == DP_ERR_FORMAT);
    CHECK(dp_kld_eval(&base, &base, pool, ids, 100, 64, NULL, &r) == DP_ERR_ARG); /* fewer than 2*ctx tokens */
    free(ids);
    free(text);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dp_test_eval.%d", (int)getpid());
    mkdir(tmpdir, 0755);
    test_csv();
    test_csv_mutations();
    test_mmlu_prompts();
    test_tasks();
    test_stats();
    struct dp_model *m;
    if (dp_model_open(test_shared("models/stories260K/stories260K.gguf"), NULL, &m) == DP_OK) {
        struct dp_pool *pool = dp_pool_new(2);
        test_prefix_cache(m, pool);
        test_mmlu_eval(m, pool);
        test_kld_self(m, pool);
        dp_pool_free(pool);
        dp_model_close(m);
    } else {
        CHECK_MSG(0, "%s", dp_last_error());
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return TEST_END();
}
