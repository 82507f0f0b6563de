/*
 * api_recover: recoveries and sessions through the public header.
 *
 * A public struct dp_recovery is the internal one of src/recover.h (the
 * header only names it): fitting turns dp_recovery_params into the
 * fitter's options and a calibration corpus, loading and saving are
 * recover.c's own functions, declared again in the header. A session made
 * with a recovery gets the recovery's replacement hooks attached
 * (dp_session_set_hooks), so every dp_session_forward applies them, as a
 * LoRA adapter set on a llama.cpp context. Also the helpers the other
 * api_*.c files share (src/api.h).
 */
#include "api.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

dp_status dp_api_chunks(const struct dp_model *m, const struct dp_corpus_spec *c, int def_ctx, int def_max,
                        const char *what, struct dp_chunks **out) {
    *out = NULL;
    if (!c->path) return dp_fail(DP_ERR_ARG, "%s: no corpus given", what);
    int lo = 0, hi = -1;
    if (c->docs && *c->docs && dp_parse_range(c->docs, &lo, &hi)) return dp_fail(DP_ERR_ARG, "%s: %s", what, dp_last_error());
    int ctx = c->ctx > 0 ? c->ctx : def_ctx, max_seqs = c->max_seqs > 0 ? c->max_seqs : def_max;
    struct dp_corpus *corpus;
    dp_status st = dp_corpus_read(c->path, &corpus);
    if (st) return st;
    st = dp_chunks_paper(dp_model_tokenizer(m), corpus, lo, hi, ctx, max_seqs, out);
    dp_corpus_free(corpus);
    return st;
}

void dp_api_log_line(void *ctx, const char *line) {
    const struct dp_api_log *l = ctx;
    if (l && l->fn) l->fn(line, l->user);
}

dp_status dp_api_recover_opts(const struct dp_recovery_params *p, struct dp_api_log *log, struct dp_recover_opts *o) {
    dp_recover_opts_default(o);
    if (!p) return DP_OK;
    o->sequential = p->sequential;
    o->ridge = p->ridge;
    o->objective = p->objective_kl ? DP_OBJECTIVE_KL : DP_OBJECTIVE_CE;
    o->steps = p->steps;
    o->lr = p->lr;
    o->batch = p->batch;
    o->seed = p->seed;
    o->init_mean = p->init_mean;
    o->progress = p->progress;
    o->progress_user = p->progress_user;
    log->fn = p->log;
    log->user = p->log_user;
    o->log = p->log ? dp_api_log_line : NULL;
    o->log_ctx = log;
    return DP_OK;
}

dp_status dp_api_units(const char *list, char (*units)[16], int cap, int *n) {
    *n = 0;
    for (const char *s = list; s && *s;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len) {
            if (*n >= cap) return dp_fail(DP_ERR_ARG, "more than %d units in '%.40s...'", cap, list);
            if (len >= 16) return dp_fail(DP_ERR_ARG, "'%.*s' is not a unit (b<i>, a<i> or f<i>)", (int)len, s);
            snprintf(units[*n], 16, "%.*s", (int)len, s);
            struct dp_mask probe = {.n_layers = DP_MAX_LAYERS};
            if (dp_mask_drop(&probe, units[*n])) return DP_ERR_ARG;
            (*n)++;
        }
        s = e ? e + 1 : s + len;
    }
    return DP_OK;
}

struct dp_recovery_params dp_recovery_default_params(void) {
    struct dp_recover_opts o;
    dp_recover_opts_default(&o);
    struct dp_recovery_params p = {.kind = "mean", .ridge = o.ridge, .steps = o.steps, .lr = o.lr, .batch = o.batch,
                                   .seed = o.seed};
    return p;
}

dp_status dp_recovery_fit_with(const struct dp_model *m, struct dp_pool *pool, const struct dp_recovery_params *p,
                               struct dp_recovery **out) {
    *out = NULL;
    if (!m || !pool || !p || !p->kind) return dp_fail(DP_ERR_ARG, "recovery fit: model, pool and params->kind are required");
    enum dp_recover_method method;
    int rank;
    dp_status st = dp_recover_parse_kind(p->kind, &method, &rank);
    if (st) return st;
    if (method == DP_RECOVER_NONE) return dp_fail(DP_ERR_ARG, "recovery kind 'none' fits nothing");
    char (*u)[16] = malloc(2 * DP_MAX_LAYERS * sizeof *u);
    const char **order = malloc(2 * DP_MAX_LAYERS * sizeof *order);
    int n = 0;
    st = u && order ? dp_api_units(p->units, u, 2 * DP_MAX_LAYERS, &n) : dp_fail(DP_ERR_NOMEM, "out of memory");
    if (!st && !n) st = dp_fail(DP_ERR_ARG, "recovery %s: no units to fit (params.units is empty)", p->kind);
    struct dp_mask mask;
    if (!st && p->mask) mask = *p->mask;
    else if (!st) {
        dp_mask_all(m, &mask);
        st = dp_mask_drop(&mask, p->units);
    }
    for (int i = 0; !st && i < n; i++) order[i] = u[i];
    const struct dp_config *cf = dp_model_config(m);
    struct dp_chunks *calib = NULL;
    if (!st && !p->chunks)
        st = dp_api_chunks(m, &p->calib, cf->n_ctx_train < 2048 ? cf->n_ctx_train : 2048, 0, "calibration corpus", &calib);
    struct dp_recover_opts o;
    struct dp_api_log log;
    if (!st) st = dp_api_recover_opts(p, &log, &o);
    if (!st) st = dp_recovery_fit(m, &mask, order, n, p->kind, p->chunks ? p->chunks : calib, &o, pool, out);
    dp_chunks_free(calib);
    free(u);
    free(order);
    return st;
}

const char *dp_recovery_kind(const struct dp_recovery *r) { return r ? r->kind : NULL; }
int dp_recovery_n_units(const struct dp_recovery *r) { return r ? r->n : 0; }
const char *dp_recovery_unit(const struct dp_recovery *r, int i) {
    return r && i >= 0 && i < r->n ? r->units[i].unit : NULL;
}
double dp_recovery_explained_var(const struct dp_recovery *r, int i) {
    return r && i >= 0 && i < r->n ? r->units[i].explained_var : NAN;
}

dp_status dp_recovery_kind_parse(const char *kind, bool *is_none) {
    enum dp_recover_method method;
    int rank;
    if (!kind) return dp_fail(DP_ERR_ARG, "recovery kind: NULL");
    dp_status st = dp_recover_parse_kind(kind, &method, &rank);
    if (!st && is_none) *is_none = method == DP_RECOVER_NONE;
    return st;
}

dp_status dp_recovery_hooks_new(const struct dp_recovery *r, const struct dp_model *m, struct dp_hooks **out) {
    *out = NULL;
    if (!r || !m) return dp_fail(DP_ERR_ARG, "recovery hooks: recovery and model are required");
    if (r->dim != dp_model_config(m)->n_embd)
        return dp_fail(DP_ERR_ARG, "recovery hooks: the recovery (%s) has width %d but the model %s has %d", r->kind,
                       r->dim, dp_model_path(m), dp_model_config(m)->n_embd);
    struct dp_hooks *h = calloc(1, sizeof *h);
    if (!h) return dp_fail(DP_ERR_NOMEM, "out of memory");
    dp_recovery_hooks(r, m, h);
    *out = h;
    return DP_OK;
}

void dp_hooks_free(struct dp_hooks *h) { free(h); }

struct dp_session_params dp_session_default_params(void) {
    struct dp_session_params p = {.n_ctx = 512};
    return p;
}

dp_status dp_session_new_with(const struct dp_model *m, const struct dp_session_params *p, struct dp_session **out) {
    *out = NULL;
    if (!m || !p) return dp_fail(DP_ERR_ARG, "session: model and params are required");
    if (p->recovery && p->recovery->dim != dp_model_config(m)->n_embd)
        return dp_fail(DP_ERR_ARG, "session: the recovery (%s) has width %d but the model %s has %d", p->recovery->kind,
                       p->recovery->dim, dp_model_path(m), dp_model_config(m)->n_embd);
    struct dp_mask all;
    if (!p->mask) dp_mask_all(m, &all);
    if (p->act != DP_ACT_DEFAULT && p->act != DP_ACT_EXACT && p->act != DP_ACT_Q8)
        return dp_fail(DP_ERR_ARG, "session: activation mode %d is not one of default, exact, q8", (int)p->act);
    dp_status st = dp_session_new(m, p->mask ? p->mask : &all, p->n_ctx, out);
    if (st) return st;
    dp_session_set_act(*out, p->act);
    if (!p->recovery) return DP_OK;
    struct dp_hooks h;
    dp_recovery_hooks(p->recovery, m, &h);
    dp_session_set_hooks(*out, &h);
    return DP_OK;
}
