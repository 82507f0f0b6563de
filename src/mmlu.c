/*
 * mmlu: prompts and scoring of the research's MMLU protocol (see mmlu.h).
 *
 * Per question: build the prompt with k shots, tokenize it, drop shots from
 * the end while it is too long (left-truncate at 0 shots), tokenize prompt +
 * " A".." D", and score the four sequences as one group through the
 * prefix-cached scorer. Buffers for prompts and ids live across questions.
 */
#include "mmlu.h"

#include "dist.h"

#include <stdlib.h>
#include <string.h>

/* A growable string. */
struct sbuf {
    char *s;
    size_t n, cap;
    bool oom;
};

static void put(struct sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t want = (b->n + n + 1) * 2;
        char *p = realloc(b->s, want);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = want;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void puts_(struct sbuf *b, const char *s) { put(b, s, strlen(s)); }

/* question + "\nA. " + A ... + "\nAnswer:" (+ " " + gold + "\n\n" when with_answer) */
static void put_example(struct sbuf *b, const struct dp_mmlu_row *r, bool with_answer) {
    puts_(b, r->question);
    for (int c = 0; c < 4; c++) {
        char head[5] = {'\n', (char)('A' + c), '.', ' ', 0};
        puts_(b, head);
        puts_(b, r->choices[c]);
    }
    puts_(b, "\nAnswer:");
    if (with_answer) {
        char tail[5] = {' ', (char)('A' + r->answer), '\n', '\n', 0};
        puts_(b, tail);
    }
}

/* Build the prompt into b (reset first). */
static void build_prompt(struct sbuf *b, const struct dp_mmlu_subject *s, int q, int k) {
    b->n = 0;
    b->oom = false;
    puts_(b, "The following are multiple choice questions (with answers) about");
    puts_(b, " ");
    for (const char *p = s->name;;) { /* " " + word for every "_"-separated word */
        const char *e = strchr(p, '_');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        puts_(b, " ");
        put(b, p, len);
        if (!e) break;
        p = e + 1;
    }
    puts_(b, ".\n\n");
    for (int i = 0; i < k; i++) put_example(b, &s->dev[i], true);
    put_example(b, &s->test[q], false);
}

dp_status dp_mmlu_prompt(const struct dp_mmlu_subject *s, int q, int k, char **out, size_t *len) {
    *out = NULL;
    if (q < 0 || q >= s->n_test || k < 0 || k > s->n_dev)
        return dp_fail(DP_ERR_ARG, "MMLU %s: no question %d with %d shots", s->name, q, k);
    struct sbuf b = {0};
    build_prompt(&b, s, q, k);
    if (b.oom) {
        free(b.s);
        return dp_fail(DP_ERR_NOMEM, "out of memory building an MMLU prompt");
    }
    *out = b.s;
    *len = b.n;
    return DP_OK;
}

void dp_mmlu_result_free(struct dp_mmlu_result *r) {
    if (!r) return;
    free(r->subjects);
    free(r->correct);
    free(r->pred);
    free(r);
}

/* Working state of one evaluation. */
struct run {
    const struct dp_tokenizer *tok;
    const struct dp_mmlu_opts *o;
    struct dp_loglik *ll;
    struct sbuf prompt, full;
    int *pids, pcap, np;                  /* prompt ids */
    int *cids[4], ccap[4], nc[4];         /* prompt + " X" ids */
};

static void dump_prompt(FILE *f, const char *subject, int index, int shots, const struct sbuf *p, int label) {
    struct dp_json j;
    dp_json_init(&j, f);
    dp_json_begin_obj(&j, NULL);
    dp_json_str(&j, "subject", subject);
    dp_json_int(&j, "index", index);
    dp_json_int(&j, "shots", shots);
    dp_json_strn(&j, "prompt", p->s, p->n);
    char l[2] = {(char)('A' + label), 0};
    dp_json_str(&j, "label", l);
    dp_json_end(&j);
}

/* One question: fills *pred, the shots kept (*shots) and whether the prompt was cut (*cut). */
static dp_status question(struct run *w, const struct dp_mmlu_subject *s, int q, int *pred, int *shots, bool *cut) {
    int kmax = w->o->shots < s->n_dev ? w->o->shots : s->n_dev, k = kmax;
    dp_status st;
    for (;; k--) {
        build_prompt(&w->prompt, s, q, k);
        if (w->prompt.oom) return dp_fail(DP_ERR_NOMEM, "out of memory building an MMLU prompt");
        st = dp_loglik_tokenize(w->tok, w->prompt.s, w->prompt.n, &w->pids, &w->pcap, &w->np);
        if (st) return st;
        if (w->np <= w->o->ctx_limit || k == 0) break;
    }
    int drop = w->np > w->o->ctx_limit ? w->np - w->o->ctx_limit : 0;
    *shots = k;
    *cut = drop > 0;
    if (w->o->dump) dump_prompt(w->o->dump, s->name, q, k, &w->prompt, s->test[q].answer);
    struct dp_loglik_seq seqs[4];
    for (int c = 0; c < 4; c++) {
        w->full.n = 0;
        put(&w->full, w->prompt.s, w->prompt.n);
        char cont[3] = {' ', (char)('A' + c), 0};
        puts_(&w->full, cont);
        if (w->full.oom) return dp_fail(DP_ERR_NOMEM, "out of memory building an MMLU prompt");
        st = dp_loglik_tokenize(w->tok, w->full.s, w->full.n, &w->cids[c], &w->ccap[c], &w->nc[c]);
        if (st) return st;
        int start = dp_loglik_lcp(w->pids, w->np, w->cids[c], w->nc[c]);
        if (start < 1 || start == w->nc[c])
            return dp_fail(DP_ERR_FORMAT, "MMLU %s question %d: the continuation \" %c\" adds no token after the prompt",
                           s->name, q, 'A' + c);
        if (drop) { /* keep BOS, remove the `drop` tokens after it */
            if (start - drop < 1)
                return dp_fail(DP_ERR_ARG, "MMLU %s question %d: a context limit of %d tokens leaves no room", s->name,
                               q, w->o->ctx_limit);
            memmove(w->cids[c] + 1, w->cids[c] + 1 + drop, (size_t)(w->nc[c] - 1 - drop) * sizeof(int));
            w->nc[c] -= drop;
            start -= drop;
        }
        seqs[c] = (struct dp_loglik_seq){w->cids[c], w->nc[c], start};
    }
    double sum[4];
    st = dp_loglik_group(w->ll, seqs, 4, sum);
    if (st) return st;
    int best = 0;
    for (int c = 1; c < 4; c++)
        if (sum[c] > sum[best]) best = c;
    *pred = best;
    return DP_OK;
}

struct dp_mmlu_opts dp_mmlu_default_opts(const struct dp_model *m) {
    int ctx = dp_model_config(m)->n_ctx_train;
    struct dp_mmlu_opts o = {.shots = 5, .ctx_limit = ctx < 2048 ? ctx : 2048, .prefix_cache = true};
    return o;
}

/* The text of question q (and, for a subject's first, its shots): a deterministic estimate of its cost. */
static double question_bytes(const struct dp_mmlu_subject *s, int q) {
    const struct dp_mmlu_row *t = &s->test[q];
    double b = (double)strlen(t->question);
    for (int c = 0; c < 4; c++) b += (double)strlen(t->choices[c]);
    for (int i = 0; q == 0 && i < s->n_dev; i++) {
        b += (double)strlen(s->dev[i].question);
        for (int c = 0; c < 4; c++) b += (double)strlen(s->dev[i].choices[c]);
    }
    return b;
}

dp_status dp_mmlu_eval(const struct dp_model *m, const struct dp_mask *mask, const struct dp_hooks *hooks,
                       struct dp_pool *pool, const struct dp_mmlu_data *data, const struct dp_mmlu_opts *opts,
                       struct dp_mmlu_result **out) {
    *out = NULL;
    if (opts->shots < 0 || opts->shots > DP_MMLU_MAX_SHOTS)
        return dp_fail(DP_ERR_ARG, "MMLU shots must be in [0, %d], not %d", DP_MMLU_MAX_SHOTS, opts->shots);
    if (opts->ctx_limit < 8) return dp_fail(DP_ERR_ARG, "MMLU context limit %d is too small", opts->ctx_limit);
    struct dp_mmlu_result *r = dp_calloc(1, sizeof *r);
    if (!r) return DP_ERR_NOMEM;
    r->n_subjects = data->n_subjects;
    r->subjects = dp_calloc((size_t)data->n_subjects, sizeof *r->subjects);
    r->correct = dp_calloc((size_t)data->n_test + 1, sizeof *r->correct);
    r->pred = dp_calloc((size_t)data->n_test + 1, sizeof *r->pred);
    struct run w = {.tok = dp_model_tokenizer(m), .o = opts};
    /* room for the prompt plus continuation tokens beyond it */
    dp_status st = r->subjects && r->correct && r->pred ? DP_OK : DP_ERR_NOMEM;
    if (!st) st = dp_loglik_new(m, mask, hooks, pool, opts->ctx_limit + 16, opts->prefix_cache, &w.ll);
    /*
     * Questions are items 0..n_test-1, subject by subject; with ranks
     * (dist.h) each runs a block of about equal text, after feeding the
     * questions before it dry (loglik.h), so that its prefix cache and
     * counts are a single process's. Per question: letter, shots, cut.
     */
    int n = data->n_test;
    int64_t bounds[DP_DIST_MAX_BOUNDS], lo = 0, hi = n;
    double *item = dp_calloc((size_t)n * 3 + 1, sizeof *item), *cost = NULL;
    if (!st && !item) st = DP_ERR_NOMEM;
    if (!st && dp_dist_active()) {
        cost = dp_malloc(((size_t)n + 1) * sizeof *cost);
        if (!cost) st = DP_ERR_NOMEM;
        for (int si = 0, g = 0; !st && si < data->n_subjects; si++)
            for (int q = 0; q < data->subjects[si].n_test; q++) cost[g++] = question_bytes(&data->subjects[si], q);
    }
    if (!st) {
        dp_dist_bounds(n, cost, bounds);
        dp_dist_mine(bounds, &lo, &hi);
    }
    free(cost);
    /* rank 0 (the writer) also builds the prompts of the others' questions, dry, when they are dumped */
    int64_t end = opts->dump && dp_dist_rank() == 0 ? n : hi;
    for (int si = 0, g = 0; si < data->n_subjects && !st; si++) {
        const struct dp_mmlu_subject *s = &data->subjects[si];
        for (int q = 0; q < s->n_test && !st && g < end; q++, g++) {
            bool run = g >= lo && g < hi;
            if (!run && g < lo && !opts->prefix_cache && !opts->dump) continue;
            if (g == lo && run) st = dp_loglik_prime(w.ll);
            else if (!run) dp_loglik_dry(w.ll, true);
            int pred = -1, shots = 0;
            bool cut = false;
            if (!st) st = question(&w, s, q, &pred, &shots, &cut);
            if (st || !run) continue;
            item[3 * g] = pred;
            item[3 * g + 1] = shots;
            item[3 * g + 2] = cut;
            if (!dp_progress_step(opts->progress, opts->progress_user, "mmlu", dp_dist_progress(bounds, g + 1), n))
                st = DP_ERR_CANCELLED;
        }
    }
    if (!st) {
        dp_dist_allgather(item, 3, bounds);
        dp_loglik_stats_sum(w.ll);
    }
    for (int si = 0, g = 0; si < data->n_subjects && !st; si++) {
        const struct dp_mmlu_subject *s = &data->subjects[si];
        for (int q = 0; q < s->n_test; q++, g++) {
            int pred = (int)item[3 * g];
            bool ok = pred == s->test[q].answer;
            r->shots_used[(int)item[3 * g + 1]]++;
            r->n_truncated += item[3 * g + 2] != 0;
            r->pred[r->n] = pred;
            r->correct[r->n++] = ok;
            r->n_correct += ok;
            r->subjects[si].n++;
            r->subjects[si].n_correct += ok;
        }
    }
    free(item);
    if (w.ll) {
        r->tokens_evaluated = dp_loglik_stats(w.ll)->tokens_evaluated;
        r->tokens_naive = dp_loglik_stats(w.ll)->tokens_naive;
    }
    dp_loglik_free(w.ll);
    free(w.prompt.s);
    free(w.full.s);
    free(w.pids);
    for (int c = 0; c < 4; c++) free(w.cids[c]);
    if (st) {
        dp_mmlu_result_free(r);
        return st;
    }
    *out = r;
    return DP_OK;
}
