/*
 * mc: scoring of multiple-choice items (see mc.h) through the prefix-cached
 * scorer of loglik.h. Token buffers live across items.
 */
#include "mc.h"

#include "dist.h"

#include <stdlib.h>
#include <string.h>

void dp_mc_result_free(struct dp_mc_result *r) {
    if (!r) return;
    free(r->correct);
    free(r->correct_norm);
    free(r);
}

struct run {
    const struct dp_tokenizer *tok;
    const struct dp_mc_opts *o;
    struct dp_loglik *ll;
    char *text;
    size_t text_cap;
    int *ctx, ctx_cap, n_ctx;                   /* context ids of the last context tokenized */
    const char *ctx_of;                         /* ... and its text */
    int *ids[DP_MC_MAX_CHOICES], cap[DP_MC_MAX_CHOICES], n[DP_MC_MAX_CHOICES];
};

static dp_status join(struct run *w, const char *a, const char *b, size_t *len) {
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb + 1 > w->text_cap) {
        char *p = realloc(w->text, (la + lb + 1) * 2);
        if (!p) return dp_fail(DP_ERR_NOMEM, "out of memory for a task text");
        w->text = p;
        w->text_cap = (la + lb + 1) * 2;
    }
    memcpy(w->text, a, la);
    memcpy(w->text + la, b, lb + 1);
    *len = la + lb;
    return DP_OK;
}

/* Score one item: its best choice by sum (*pred) and by mean (*pred_norm). */
static dp_status item(struct run *w, enum dp_task task, const struct dp_mc_item *it, int index, bool *truncated,
                      int *pred, int *pred_norm) {
    int k = it->n_choices;
    struct dp_loglik_seq seqs[DP_MC_MAX_CHOICES];
    dp_status st;
    for (int c = 0; c < k; c++) {
        size_t len = 0;
        if ((st = join(w, it->context[c], it->cont[c], &len))) return st;
        if ((st = dp_loglik_tokenize(w->tok, w->text, len, &w->ids[c], &w->cap[c], &w->n[c]))) return st;
        int start = 0;
        if (task != DP_TASK_HELLASWAG) {
            if (!w->ctx_of || strcmp(w->ctx_of, it->context[c])) {
                st = dp_loglik_tokenize(w->tok, it->context[c], strlen(it->context[c]), &w->ctx, &w->ctx_cap, &w->n_ctx);
                if (st) return st;
                w->ctx_of = it->context[c];
            }
            start = dp_loglik_lcp(w->ctx, w->n_ctx, w->ids[c], w->n[c]);
            if (start < 1) start = 1;
        }
        seqs[c] = (struct dp_loglik_seq){w->ids[c], w->n[c], start};
    }
    w->ctx_of = NULL; /* the text pointer may be reused by the next item */
    if (task == DP_TASK_HELLASWAG) {
        int p = dp_loglik_common_prefix(seqs, k);
        for (int c = 0; c < k; c++) seqs[c].start = p < 1 ? 1 : p;
    }
    int longest = 0, min_start = seqs[0].start;
    for (int c = 0; c < k; c++) {
        if (seqs[c].n > longest) longest = seqs[c].n;
        if (seqs[c].start < min_start) min_start = seqs[c].start;
    }
    *truncated = longest > w->o->ctx_limit;
    if (*truncated) {
        int drop = longest - w->o->ctx_limit;
        if (min_start - drop < 1)
            return dp_fail(DP_ERR_ARG, "%s item %d: its continuations do not fit a context limit of %d tokens",
                           dp_task_name(task), index, w->o->ctx_limit);
        for (int c = 0; c < k; c++) {
            memmove(w->ids[c] + 1, w->ids[c] + 1 + drop, (size_t)(w->n[c] - 1 - drop) * sizeof(int));
            seqs[c].n -= drop;
            seqs[c].start -= drop;
        }
    }
    double sum[DP_MC_MAX_CHOICES], mean[DP_MC_MAX_CHOICES];
    if ((st = dp_loglik_group(w->ll, seqs, k, sum))) return st;
    *pred = *pred_norm = 0;
    for (int c = 0; c < k; c++) {
        int count = seqs[c].n - seqs[c].start;
        mean[c] = count > 0 ? sum[c] / count : 0;
        if (sum[c] > sum[*pred]) *pred = c;
        if (mean[c] > mean[*pred_norm]) *pred_norm = c;
    }
    return DP_OK;
}

struct dp_mc_opts dp_mc_default_opts(const struct dp_model *m) {
    int ctx = dp_model_config(m)->n_ctx_train;
    struct dp_mc_opts o = {.ctx_limit = ctx < 2048 ? ctx : 2048, .prefix_cache = true};
    return o;
}

dp_status dp_mc_eval(const struct dp_model *m, const struct dp_mask *mask, const struct dp_hooks *hooks,
                     struct dp_pool *pool, const struct dp_mc_set *set, const struct dp_mc_opts *opts,
                     struct dp_mc_result **out) {
    *out = NULL;
    if (opts->ctx_limit < 8) return dp_fail(DP_ERR_ARG, "context limit %d is too small", opts->ctx_limit);
    struct dp_mc_result *r = dp_calloc(1, sizeof *r);
    if (!r) return DP_ERR_NOMEM;
    r->correct = dp_calloc((size_t)set->n_items + 1, sizeof *r->correct);
    r->correct_norm = dp_calloc((size_t)set->n_items + 1, sizeof *r->correct_norm);
    struct run w = {.tok = dp_model_tokenizer(m), .o = opts};
    dp_status st = r->correct && r->correct_norm ? DP_OK : DP_ERR_NOMEM;
    if (!st) st = dp_loglik_new(m, mask, hooks, pool, opts->ctx_limit, opts->prefix_cache, &w.ll);
    /*
     * With ranks (dist.h) each runs a block of items of about equal text,
     * after feeding the items before it dry (loglik.h), so that its prefix
     * cache and counts are a single process's. Per item: pred, pred_norm, cut.
     */
    int n = set->n_items;
    int64_t bounds[DP_DIST_MAX_BOUNDS], lo = 0, hi = n;
    double *res = st ? NULL : dp_calloc((size_t)n * 3 + 1, sizeof *res), *cost = NULL;
    if (!st && !res) st = DP_ERR_NOMEM;
    if (!st && dp_dist_active()) {
        cost = dp_malloc(((size_t)n + 1) * sizeof *cost);
        if (!cost) st = DP_ERR_NOMEM;
        for (int i = 0; !st && i < n; i++) {
            cost[i] = 0;
            for (int c = 0; c < set->items[i].n_choices; c++)
                cost[i] += (double)(strlen(set->items[i].context[c]) + strlen(set->items[i].cont[c]));
        }
    }
    if (!st) {
        dp_dist_bounds(n, cost, bounds);
        dp_dist_mine(bounds, &lo, &hi);
    }
    free(cost);
    for (int i = opts->prefix_cache ? 0 : (int)lo; i < hi && !st; i++) {
        const struct dp_mc_item *it = &set->items[i];
        if (i == lo) st = dp_loglik_prime(w.ll);
        else if (i < lo) dp_loglik_dry(w.ll, true);
        bool trunc = false;
        int pred = -1, pred_norm = -1;
        if (!st) st = item(&w, set->task, it, i, &trunc, &pred, &pred_norm);
        if (st || i < lo) continue;
        res[3 * i] = pred;
        res[3 * i + 1] = pred_norm;
        res[3 * i + 2] = trunc;
        if (!dp_progress_step(opts->progress, opts->progress_user, dp_task_name(set->task), dp_dist_progress(bounds, i + 1),
                              n))
            st = DP_ERR_CANCELLED;
    }
    if (!st) {
        dp_dist_allgather(res, 3, bounds);
        dp_loglik_stats_sum(w.ll);
    }
    for (int i = 0; i < n && !st; i++) {
        const struct dp_mc_item *it = &set->items[i];
        r->correct[i] = (int)res[3 * i] == it->label;
        r->correct_norm[i] = (int)res[3 * i + 1] == it->label;
        r->n_correct += r->correct[i];
        r->n_correct_norm += r->correct_norm[i];
        r->n_truncated += res[3 * i + 2] != 0;
        r->n++;
    }
    free(res);
    if (w.ll) {
        r->tokens_evaluated = dp_loglik_stats(w.ll)->tokens_evaluated;
        r->tokens_naive = dp_loglik_stats(w.ll)->tokens_naive;
    }
    dp_loglik_free(w.ll);
    free(w.text);
    free(w.ctx);
    for (int c = 0; c < DP_MC_MAX_CHOICES; c++) free(w.ids[c]);
    if (st) {
        dp_mc_result_free(r);
        return st;
    }
    *out = r;
    return DP_OK;
}
