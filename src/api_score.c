/*
 * api_score: the score step of the public header in one call: read the
 * calibration corpus (paper chunks) and the MMLU questions the metrics need,
 * score the units of a mask (src/metrics.c), and keep the scores with their
 * provenance (model identity, data, seed, threads, time) so that the scores
 * file, CSV and table (src/score_report.c) can be written from the result
 * alone. Also the plan of the lowest-influence units of a metric.
 */
#include "data.h"
#include "identity.h"
#include "metrics.h"
#include "plan.h"
#include "score_report.h"
#include "shapley.h"
#include "tasks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct dp_score_result {
    struct dp_scores *s;
    struct dp_score_info info;
    struct dp_identity id;
    char *model, *file, *docs, *mmlu_dir;
    char removed[4096];
};

void dp_score_default_params(struct dp_score_params *p) {
    struct dp_score_opts o;
    dp_score_opts_default(&o);
    memset(p, 0, sizeof *p);
    p->kind = o.kind;
    p->doc_hi = -1;
    p->span = o.span;
    p->banzhaf_subsets = o.banzhaf_subsets;
    p->shapley_samples = o.shapley_perms;
    p->shapley_min_pairs = o.shapley_min_pairs;
    p->shapley_tol = o.shapley_tol;
    p->shapley_estimator = o.shapley_estimator;
    p->seed = o.seed;
    p->checkpoint_every = o.checkpoint_every;
    p->parallel = o.parallel;
    p->mmlu_draws = o.mmlu_opts.draws;
    p->mmlu_shots = o.mmlu_opts.shots;
}

/* The internal options of params p for model m. */
static void to_opts(const struct dp_model *m, const struct dp_score_params *p, struct dp_score_opts *o) {
    const struct dp_config *cf = dp_model_config(m);
    int def_ctx = cf->n_ctx_train < 2048 ? cf->n_ctx_train : 2048;
    dp_score_opts_default(o);
    o->kind = p->kind;
    memcpy(o->want, p->want, sizeof o->want);
    o->span = p->span;
    o->banzhaf_subsets = p->banzhaf_subsets;
    o->shapley_perms = p->shapley_samples;
    o->shapley_min_pairs = p->shapley_min_pairs;
    o->shapley_tol = p->shapley_tol;
    o->shapley_exact = p->shapley_exact;
    o->shapley_estimator = p->shapley_estimator;
    o->seed = p->seed;
    o->no_reuse = p->no_reuse;
    o->max_mem = p->max_mem;
    o->checkpoint = p->checkpoint;
    o->checkpoint_every = p->checkpoint_every;
    o->stop_after_passes = p->stop_after_passes;
    o->parallel = p->parallel;
    o->seq_batch = p->seq_batch;
    o->mmlu_opts.seed = p->seed;
    o->mmlu_opts.draws = p->mmlu_draws;
    o->mmlu_opts.shots = p->mmlu_shots;
    o->mmlu_opts.ctx_limit = p->mmlu_ctx_limit ? p->mmlu_ctx_limit : def_ctx;
    o->progress = p->progress;
    o->progress_user = p->progress_user;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

dp_status dp_score_run(const struct dp_model *m, const struct dp_mask *mask, struct dp_pool *pool,
                       const struct dp_score_params *p, struct dp_score_result **out) {
    *out = NULL;
    struct dp_score_opts o;
    to_opts(m, p, &o);
    const struct dp_config *cf = dp_model_config(m);
    int ctx = p->ctx ? p->ctx : cf->n_ctx_train < 2048 ? cf->n_ctx_train : 2048;
    bool oracle = o.want[DP_METRIC_MMLU_SHAPLEY] || o.want[DP_METRIC_MMLU_SHAPLEY_ITER], calib = false;
    for (int k = 0; k < DP_N_METRICS; k++)
        calib |= o.want[k] && k != DP_METRIC_MMLU_SHAPLEY && k != DP_METRIC_MMLU_SHAPLEY_ITER;
    if (calib && !p->corpus) return dp_fail(DP_ERR_ARG, "score: the calibration metrics need a corpus");
    if (oracle && !p->mmlu_dir) return dp_fail(DP_ERR_ARG, "score: mmlu_shapley needs the MMLU folder");
    struct dp_score_result *r = calloc(1, sizeof *r);
    if (!r) return dp_fail(DP_ERR_NOMEM, "score: out of memory");
    struct dp_corpus *corpus = NULL;
    struct dp_chunks *ch = NULL;
    struct dp_mmlu_data *mdata = NULL;
    double t0 = dp_now();
    dp_status st = DP_OK;
    /* stage "score": 0 of 1 before any work, 1 of 1 when the scores are in */
    if (!dp_progress_step(p->progress, p->progress_user, "score", 0, 1)) st = DP_ERR_CANCELLED;
    if (!st && calib) st = dp_corpus_read(p->corpus, &corpus);
    if (!st && calib) st = dp_chunks_paper(dp_model_tokenizer(m), corpus, p->doc_lo, p->doc_hi, ctx, p->max_seqs, &ch);
    if (!st && oracle) st = dp_mmlu_read(p->mmlu_dir, NULL, p->mmlu_limit, &mdata);
    o.mmlu = mdata;
    if (!st) st = dp_metrics_score(m, mask, p->hooks, pool, ch, &o, &r->s);
    if (!st && !dp_progress_step(p->progress, p->progress_user, "score", 1, 1)) st = DP_ERR_CANCELLED;
    double secs = dp_now() - t0;
    if (!st) {
        r->model = dup_or_null(dp_model_path(m));
        r->file = dup_or_null(p->corpus);
        r->docs = dup_or_null(p->docs);
        r->mmlu_dir = dup_or_null(p->mmlu_dir);
        if ((!r->model && dp_model_path(m)) || (!r->file && p->corpus) || (!r->docs && p->docs) ||
            (!r->mmlu_dir && p->mmlu_dir))
            st = dp_fail(DP_ERR_NOMEM, "score: out of memory");
    }
    if (!st) {
        dp_mask_format(mask, r->removed, sizeof r->removed);
        dp_identity_of(m, &r->id);
        r->info = (struct dp_score_info){.model = r->model, .n_blocks = cf->n_layers, .model_hash = r->id.hash,
                                         .model_shape = r->id.shape, .removed = r->removed, .file = r->file,
                                         .docs = r->docs, .n_docs = ch ? ch->n_docs : 0, .seed = o.seed,
                                         .tol = o.shapley_tol,
                                         .n_threads = p->n_threads ? p->n_threads : dp_pool_threads(pool),
                                         .seconds = secs, .mmlu_dir = r->mmlu_dir, .mmlu_limit = p->mmlu_limit};
    }
    dp_mmlu_data_free(mdata);
    dp_chunks_free(ch);
    dp_corpus_free(corpus);
    if (st) {
        dp_score_result_free(r);
        return st;
    }
    *out = r;
    return DP_OK;
}

void dp_score_result_free(struct dp_score_result *r) {
    if (!r) return;
    dp_scores_free(r->s);
    free(r->model);
    free(r->file);
    free(r->docs);
    free(r->mmlu_dir);
    free(r);
}

int dp_score_n_units(const struct dp_score_result *r) { return r->s->n_units; }

const char *dp_score_unit(const struct dp_score_result *r, int i) {
    return i >= 0 && i < r->s->n_units ? r->s->names[i] : NULL;
}

bool dp_score_has(const struct dp_score_result *r, int metric) {
    return metric >= 0 && metric < DP_N_METRICS && r->s->has[metric];
}

static double at(const struct dp_score_result *r, const double *v, int i) {
    return v && i >= 0 && i < r->s->n_units ? v[i] : (double)NAN;
}

double dp_score_influence(const struct dp_score_result *r, int metric, int i) {
    return dp_score_has(r, metric) ? at(r, r->s->influence[metric], i) : (double)NAN;
}

double dp_score_stderr(const struct dp_score_result *r, int metric, int i) {
    return dp_score_has(r, metric) ? at(r, r->s->std_err[metric], i) : (double)NAN;
}

int dp_score_order(const struct dp_score_result *r, int metric, int k) {
    if (!dp_score_has(r, metric) || !r->s->order[metric] || k < 0 || k >= r->s->n_units) return -1;
    return r->s->order[metric][k];
}

void dp_score_cost(const struct dp_score_result *r, int64_t *unit_evals, int64_t *naive_unit_evals) {
    *unit_evals = r->s->unit_evals;
    *naive_unit_evals = r->s->naive_unit_evals;
}

void dp_score_write_json(FILE *f, const struct dp_score_result *r) { dp_score_report_json(f, r->s, &r->info); }
void dp_score_write_csv(FILE *f, const struct dp_score_result *r) { dp_score_report_csv(f, r->s); }
void dp_score_write_table(FILE *f, const struct dp_score_result *r) { dp_score_report_table(f, r->s, &r->info); }

dp_status dp_plan_from_scores(const struct dp_score_result *r, int metric, int count, struct dp_plan *out) {
    memset(out, 0, sizeof *out);
    if (!dp_score_has(r, metric) || !r->s->order[metric])
        return dp_fail(DP_ERR_ARG, "plan: metric %s was not scored", dp_metric_name(metric) ? dp_metric_name(metric) : "?");
    if (metric == DP_METRIC_ANGULAR)
        return dp_fail(DP_ERR_ARG, "plan: angular scores spans of blocks, not single units");
    if (count < 0 || count > r->s->n_units)
        return dp_fail(DP_ERR_ARG, "plan: %d units asked of the %d scored", count, r->s->n_units);
    dp_plan_set_identity(out, &r->id);
    snprintf(out->model, sizeof out->model, "%s", r->model ? r->model : "");
    snprintf(out->metric, sizeof out->metric, "%s", dp_metric_name(metric));
    snprintf(out->scheme, sizeof out->scheme, "%s", r->s->kind == DP_UNITS_BLOCK ? "block" : "both");
    for (int k = 0; k < count; k++) {
        dp_status st = dp_plan_push(out, r->s->names[r->s->order[metric][k]]);
        if (st) return st;
    }
    return DP_OK;
}
