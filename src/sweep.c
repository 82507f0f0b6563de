/*
 * sweep: runs of (metric, scheme, mode, recovery), their steps and the JSON
 * file that makes a sweep resumable (see sweep.h; budgets are budget.c).
 *
 * The engine is a loop over runs and, inside a run, over the number of units
 * removed. Every step builds the mask of its removed units, fits the run's
 * recovery for them (src/recover.h) and evaluates perplexity and MMLU,
 * unless an earlier step of any run evaluated the same thing: evaluations
 * are memoised under a key naming the recovery and the removed set (the set
 * in removal order when a sequential recovery makes order matter). A
 * resumed sweep seeds that memo and the iterative paths from the file, so
 * it redoes nothing and, because values are stored rounded to the digits
 * the file keeps, continues exactly as the uninterrupted sweep would.
 *
 * Iterative runs re-score the units left after each removal with the metric
 * library (src/metrics.h) on the calibration chunks, under the pruned and
 * recovered model; the first unit comes from the scores file.
 *
 * The speedup objective measures every step, as it is evaluated, as a draft
 * of the full model (src/spec.h): one teacher-forced pass of the full model
 * over the calibration chunks at the start gives the reference argmax (and,
 * timed, the step costs), then each step costs one pass under its mask and
 * recovery, memoised with the rest of its evaluation. Costs and acceptance
 * come from dp_spec_measure, the same function prune --draft scores its
 * plans with.
 */
#include "sweep.h"

#include "dist.h"

#include "eval.h"
#include "json.h"
#include "metrics.h"
#include "mmlu.h"
#include "stats.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Values keep the 10 significant digits the JSON writer prints, so a resumed sweep equals a fresh one. */
static double r10(double v) {
    if (!isfinite(v)) return v;
    char buf[64];
    snprintf(buf, sizeof buf, "%.10g", v);
    return strtod(buf, NULL);
}

/* "b2,a4" of n units into buf (truncated to cap). */
static void units_text(const struct dp_unit *u, int n, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < n && len + 20 < cap; i++) {
        char name[16];
        dp_unit_name(u[i], name);
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? "," : "", name);
    }
}

/* ---- the sweep object ---- */

/* Steps own their removed-unit arrays; runs own their steps. */
static void step_free(struct dp_sweep_step *s) {
    free(s->removed);
    s->removed = NULL;
}

void dp_sweep_free(struct dp_sweep *s) {
    if (!s) return;
    for (int r = 0; r < s->n_runs; r++) {
        for (int k = 0; k < s->runs[r].n_steps; k++) step_free(&s->runs[r].steps[k]);
        free(s->runs[r].steps);
    }
    for (int i = 0; i < s->n_args; i++) free(s->args[i].value);
    for (int i = 0; i < s->n_warnings; i++) free(s->warnings[i]);
    free(s->args);
    free(s->warnings);
    free(s->runs);
    free(s->model);
    free(s);
}

/* Append a copy of step st (its removed units copied) to a run. */
static dp_status push_step(struct dp_sweep_run *run, const struct dp_sweep_step *st) {
    if (run->n_steps == run->cap) {
        int cap = run->cap ? 2 * run->cap : 16;
        struct dp_sweep_step *s = realloc(run->steps, (size_t)cap * sizeof *s);
        if (!s) return dp_fail(DP_ERR_NOMEM, "out of memory");
        run->steps = s;
        run->cap = cap;
    }
    struct dp_sweep_step *d = &run->steps[run->n_steps];
    *d = *st;
    d->removed = malloc((size_t)(st->n_removed ? st->n_removed : 1) * sizeof *d->removed);
    if (!d->removed) return dp_fail(DP_ERR_NOMEM, "out of memory");
    if (st->n_removed) memcpy(d->removed, st->removed, (size_t)st->n_removed * sizeof *d->removed);
    run->n_steps++;
    return DP_OK;
}

static dp_status push_warning(struct dp_sweep *s, const char *w) {
    char **ws = realloc(s->warnings, (size_t)(s->n_warnings + 1) * sizeof *ws);
    if (!ws) return dp_fail(DP_ERR_NOMEM, "out of memory");
    s->warnings = ws;
    if (!(ws[s->n_warnings] = strdup(w))) return dp_fail(DP_ERR_NOMEM, "out of memory");
    s->n_warnings++;
    return DP_OK;
}

/* ---- writing ---- */

static void write_units(struct dp_json *j, const char *key, const struct dp_unit *u, int n) {
    dp_json_begin_arr(j, key);
    for (int i = 0; i < n; i++) {
        char name[16];
        dp_unit_name(u[i], name);
        dp_json_str(j, NULL, name);
    }
    dp_json_end(j);
}

/* One step in the DESIGN.md layout: NaN perplexity becomes null, MMLU null when not evaluated; draft fields with `draft`. */
static void write_step(struct dp_json *j, const struct dp_sweep_step *s, bool draft) {
    dp_json_begin_obj(j, NULL);
    write_units(j, "removed", s->removed, s->n_removed);
    dp_json_num(j, "ppl", s->ppl);
    dp_json_num(j, "ppl_seq", s->ppl_seq);
    if (s->mmlu_n > 0) {
        dp_json_begin_obj(j, "mmlu");
        dp_json_num(j, "accuracy", s->mmlu_acc);
        dp_json_num(j, "stderr", s->mmlu_stderr);
        dp_json_int(j, "n", s->mmlu_n);
        dp_json_end(j);
    } else {
        dp_json_null(j, "mmlu");
    }
    dp_json_int(j, "kv_bytes_per_token", s->kv_bytes_per_token);
    dp_json_int(j, "n_params", s->n_params);
    if (draft) {
        dp_json_num(j, "draft_accept", s->draft_accept);
        dp_json_num(j, "c_bytes", s->draft_c_bytes);
        dp_json_num(j, "c_draft", s->draft_c_draft);
        dp_json_int(j, "draft_len", s->draft_len);
        dp_json_num(j, "tokens_per_verify", s->draft_tokens_per_verify);
        dp_json_num(j, "speedup", s->draft_speedup);
    }
    dp_json_end(j);
}

static void write_budget(struct dp_json *j, const char *key, const struct dp_budget *b) {
    dp_json_begin_obj(j, key);
    if (b->target_kv > 0) dp_json_num(j, "target_kv", b->target_kv);
    if (b->target_params > 0) dp_json_num(j, "target_params", b->target_params);
    if (b->max_ppl_ratio > 0) dp_json_num(j, "max_ppl_ratio", b->max_ppl_ratio);
    if (!isnan(b->max_mmlu_drop)) dp_json_num(j, "max_mmlu_drop", b->max_mmlu_drop);
    dp_json_end(j);
}

static void write_run(struct dp_json *j, const struct dp_sweep_run *r, bool draft) {
    dp_json_begin_obj(j, NULL);
    dp_json_str(j, "metric", r->metric);
    dp_json_str(j, "scheme", dp_scheme_name(r->scheme));
    dp_json_bool(j, "iterative", r->iterative);
    dp_json_str(j, "recover", r->recover);
    dp_json_bool(j, "oracle", r->oracle);
    if (r->note[0]) dp_json_str(j, "note", r->note);
    dp_json_begin_arr(j, "steps");
    for (int k = 0; k < r->n_steps; k++) write_step(j, &r->steps[k], draft);
    dp_json_end(j);
    if (r->has_budget && r->budget.step < r->n_steps) {
        const struct dp_budget_result *b = &r->budget;
        dp_json_begin_obj(j, "budget");
        dp_json_int(j, "step", b->step);
        write_units(j, "removed", r->steps[b->step].removed, r->steps[b->step].n_removed);
        dp_json_str(j, "bound", b->bound);
        dp_json_bool(j, "met", b->met);
        dp_json_str(j, "why", b->why);
        dp_json_end(j);
    }
    if (draft && r->draft_best >= 0 && r->draft_best < r->n_steps) {
        const struct dp_sweep_step *b = &r->steps[r->draft_best];
        dp_json_begin_obj(j, "draft_best");
        dp_json_int(j, "step", r->draft_best);
        write_units(j, "removed", b->removed, b->n_removed);
        dp_json_num(j, "draft_accept", b->draft_accept);
        dp_json_int(j, "draft_len", b->draft_len);
        dp_json_num(j, "speedup", b->draft_speedup);
        dp_json_end(j);
    }
    dp_json_end(j);
}

dp_status dp_sweep_save(const struct dp_sweep *s, const char *path) {
    struct dp_out o;
    dp_status st = dp_out_open(path, &o);
    if (st) return st;
    struct dp_json j;
    dp_json_init(&j, o.f);
    dp_json_begin_obj(&j, NULL);
    dp_json_int(&j, "depthprune_sweep", 1);
    dp_json_str(&j, "model", s->model ? s->model : "");
    dp_json_int(&j, "n_blocks", s->n_blocks);
    dp_json_begin_obj(&j, "full");
    dp_json_int(&j, "kv_bytes_per_token", s->kv_full);
    dp_json_int(&j, "n_params", s->params_full);
    dp_json_end(&j);
    dp_json_begin_obj(&j, "args");
    for (int i = 0; i < s->n_args; i++) dp_json_str(&j, s->args[i].key, s->args[i].value);
    dp_json_end(&j);
    if (s->has_budget) write_budget(&j, "budget", &s->budget);
    else dp_json_null(&j, "budget");
    dp_json_begin_arr(&j, "warnings");
    for (int i = 0; i < s->n_warnings; i++) dp_json_str(&j, NULL, s->warnings[i]);
    dp_json_end(&j);
    dp_json_begin_arr(&j, "runs");
    for (int r = 0; r < s->n_runs; r++) write_run(&j, &s->runs[r], s->has_draft);
    dp_json_end(&j);
    if (s->has_draft) {
        dp_json_begin_obj(&j, "draft");
        dp_json_str(&j, "cost", s->draft_timed ? "time" : "bytes");
        dp_json_int(&j, "k_max", s->draft_k_max);
        dp_json_begin_arr(&j, "c_verify");
        for (int k = 0; k <= s->draft_k_max; k++) dp_json_num(&j, NULL, s->draft_c_verify[k]);
        dp_json_end(&j);
        dp_json_int(&j, "n_seqs", s->draft_n_seqs);
        dp_json_int(&j, "ctx", s->draft_ctx);
        dp_json_end(&j);
    }
    dp_json_end(&j);
    fputc('\n', o.f);
    return dp_out_commit(&o);
}

/* The step of a run with the largest expected speed-up as a draft (the first on ties; -1 when none measured). */
static void update_draft_best(struct dp_sweep_run *run) {
    run->draft_best = -1;
    for (int k = 0; k < run->n_steps; k++) {
        double v = run->steps[k].draft_speedup;
        if (isfinite(v) && (run->draft_best < 0 || v > run->steps[run->draft_best].draft_speedup)) run->draft_best = k;
    }
}

/* ---- reading ---- */

static double num_or_nan(const struct dp_jv *v, const char *key) {
    const struct dp_jv *x = dp_json_get(v, key);
    return x && x->type == DP_JNUM ? x->num : NAN;
}

static dp_status load_units(const struct dp_jv *arr, const char *path, const char *what, struct dp_unit *out,
                            int *n) {
    if (!arr || arr->type != DP_JARR || arr->n > 2 * DP_MAX_LAYERS)
        return dp_fail(DP_ERR_FORMAT, "%s: %s: \"removed\" must be a list of units", path, what);
    for (int i = 0; i < arr->n; i++)
        if (arr->items[i].type != DP_JSTR || dp_unit_parse(arr->items[i].str, &out[i]))
            return dp_fail(DP_ERR_FORMAT, "%s: %s: \"removed\"[%d] is not a unit", path, what, i);
    *n = arr->n;
    return DP_OK;
}

/* runs[index] of a sweep file into r (fails naming the file and the run). */
static dp_status load_run(const struct dp_jv *v, const char *path, int index, struct dp_sweep_run *r) {
    char what[64];
    snprintf(what, sizeof what, "runs[%d]", index);
    memset(r, 0, sizeof *r);
    const char *metric = dp_json_get_str(v, "metric", NULL), *scheme = dp_json_get_str(v, "scheme", NULL);
    const char *recover = dp_json_get_str(v, "recover", "none");
    const struct dp_jv *it = dp_json_get(v, "iterative"), *steps = dp_json_get(v, "steps");
    enum dp_scheme sc;
    if (!metric || !scheme || dp_scheme_parse(scheme, &sc) || !it || it->type != DP_JBOOL || !steps ||
        steps->type != DP_JARR || strlen(metric) >= sizeof r->metric || strlen(recover) >= sizeof r->recover)
        return dp_fail(DP_ERR_FORMAT, "%s: %s needs \"metric\", \"scheme\", \"iterative\" and \"steps\"", path, what);
    strcpy(r->metric, metric);
    strcpy(r->recover, recover);
    r->scheme = sc;
    r->iterative = it->b;
    const struct dp_jv *oracle = dp_json_get(v, "oracle");
    r->oracle = oracle && oracle->type == DP_JBOOL ? oracle->b : dp_metric_is_oracle(metric);
    snprintf(r->note, sizeof r->note, "%s", dp_json_get_str(v, "note", ""));
    struct dp_unit units[2 * DP_MAX_LAYERS];
    for (int k = 0; k < steps->n; k++) {
        const struct dp_jv *s = &steps->items[k];
        struct dp_sweep_step step;
        memset(&step, 0, sizeof step);
        snprintf(what, sizeof what, "runs[%d].steps[%d]", index, k);
        dp_status st = load_units(dp_json_get(s, "removed"), path, what, units, &step.n_removed);
        if (st) return st;
        step.removed = units;
        step.ppl = num_or_nan(s, "ppl");
        step.ppl_seq = num_or_nan(s, "ppl_seq");
        const struct dp_jv *mm = dp_json_get(s, "mmlu");
        step.mmlu_acc = step.mmlu_stderr = NAN;
        if (mm && mm->type == DP_JOBJ) {
            step.mmlu_acc = num_or_nan(mm, "accuracy");
            step.mmlu_stderr = num_or_nan(mm, "stderr");
            step.mmlu_n = (int)dp_json_get_num(mm, "n", 0);
        }
        step.kv_bytes_per_token = (int64_t)dp_json_get_num(s, "kv_bytes_per_token", 0);
        step.n_params = (int64_t)dp_json_get_num(s, "n_params", 0);
        step.draft_accept = num_or_nan(s, "draft_accept");
        step.draft_c_bytes = num_or_nan(s, "c_bytes");
        step.draft_c_draft = num_or_nan(s, "c_draft");
        step.draft_len = (int)dp_json_get_num(s, "draft_len", 0);
        step.draft_tokens_per_verify = num_or_nan(s, "tokens_per_verify");
        step.draft_speedup = num_or_nan(s, "speedup");
        if ((st = push_step(r, &step))) return st;
    }
    update_draft_best(r);
    const struct dp_jv *b = dp_json_get(v, "budget");
    if (b && b->type == DP_JOBJ) {
        r->has_budget = true;
        r->budget.step = (int)dp_json_get_num(b, "step", 0);
        if (r->budget.step < 0 || r->budget.step >= r->n_steps)
            return dp_fail(DP_ERR_FORMAT, "%s: runs[%d]: the budget's step is not a step of the run", path, index);
        const struct dp_jv *met = dp_json_get(b, "met");
        r->budget.met = met && met->type == DP_JBOOL && met->b;
        r->budget.decided = true;
        snprintf(r->budget.bound, sizeof r->budget.bound, "%s", dp_json_get_str(b, "bound", ""));
        snprintf(r->budget.why, sizeof r->budget.why, "%s", dp_json_get_str(b, "why", ""));
    }
    return DP_OK;
}

static dp_status load_tree(const struct dp_jv *root, const char *path, struct dp_sweep *s) {
    const struct dp_jv *ver = dp_json_get(root, "depthprune_sweep"), *runs = dp_json_get(root, "runs");
    if (!ver || ver->type != DP_JNUM || !runs || runs->type != DP_JARR)
        return dp_fail(DP_ERR_FORMAT, "%s: not a depthprune sweep (no \"depthprune_sweep\" version or \"runs\")", path);
    if (ver->num != 1) return dp_fail(DP_ERR_UNSUPPORTED, "%s: sweep version %g is not supported (1 is)", path, ver->num);
    if (!(s->model = strdup(dp_json_get_str(root, "model", "")))) return dp_fail(DP_ERR_NOMEM, "out of memory");
    s->n_blocks = (int)dp_json_get_num(root, "n_blocks", 0);
    const struct dp_jv *full = dp_json_get(root, "full");
    s->kv_full = (int64_t)dp_json_get_num(full, "kv_bytes_per_token", 0);
    s->params_full = (int64_t)dp_json_get_num(full, "n_params", 0);
    const struct dp_jv *args = dp_json_get(root, "args");
    if (args && args->type == DP_JOBJ && args->n > 0) {
        if (!(s->args = calloc((size_t)args->n, sizeof *s->args))) return dp_fail(DP_ERR_NOMEM, "out of memory");
        for (int i = 0; i < args->n; i++) {
            if (args->items[i].type != DP_JSTR || strlen(args->keys[i]) >= sizeof s->args[i].key)
                return dp_fail(DP_ERR_FORMAT, "%s: \"args\".%s must be a string", path, args->keys[i]);
            strcpy(s->args[i].key, args->keys[i]);
            if (!(s->args[i].value = strdup(args->items[i].str))) return dp_fail(DP_ERR_NOMEM, "out of memory");
            s->n_args++;
        }
    }
    dp_budget_none(&s->budget);
    const struct dp_jv *b = dp_json_get(root, "budget");
    if (b && b->type == DP_JOBJ) {
        s->has_budget = true;
        s->budget.target_kv = dp_json_get_num(b, "target_kv", 0);
        s->budget.target_params = dp_json_get_num(b, "target_params", 0);
        s->budget.max_ppl_ratio = dp_json_get_num(b, "max_ppl_ratio", 0);
        s->budget.max_mmlu_drop = num_or_nan(b, "max_mmlu_drop");
    }
    const struct dp_jv *d = dp_json_get(root, "draft");
    if (d && d->type == DP_JOBJ) {
        const struct dp_jv *cv = dp_json_get(d, "c_verify");
        s->has_draft = true;
        s->draft_timed = !strcmp(dp_json_get_str(d, "cost", "bytes"), "time");
        s->draft_k_max = (int)dp_json_get_num(d, "k_max", 0);
        s->draft_n_seqs = (int)dp_json_get_num(d, "n_seqs", 0);
        s->draft_ctx = (int)dp_json_get_num(d, "ctx", 0);
        if (s->draft_k_max < 1 || s->draft_k_max > DP_SPEC_MAX_LEN || !cv || cv->type != DP_JARR ||
            cv->n != s->draft_k_max + 1)
            return dp_fail(DP_ERR_FORMAT, "%s: \"draft\" needs \"k_max\" in 1..%d and k_max + 1 \"c_verify\" costs", path,
                           DP_SPEC_MAX_LEN);
        for (int k = 0; k < cv->n; k++) s->draft_c_verify[k] = cv->items[k].type == DP_JNUM ? cv->items[k].num : NAN;
    }
    const struct dp_jv *w = dp_json_get(root, "warnings");
    for (int i = 0; w && w->type == DP_JARR && i < w->n; i++)
        if (w->items[i].type == DP_JSTR && push_warning(s, w->items[i].str)) return DP_ERR_NOMEM;
    if (runs->n && !(s->runs = calloc((size_t)runs->n, sizeof *s->runs))) return dp_fail(DP_ERR_NOMEM, "out of memory");
    for (int r = 0; r < runs->n; r++) {
        dp_status st = load_run(&runs->items[r], path, r, &s->runs[r]);
        s->n_runs++;
        if (st) return st;
    }
    return DP_OK;
}

/* A sweep from the JSON text of path (len bytes). */
static dp_status load_text(const char *text, size_t len, const char *path, struct dp_sweep **out) {
    *out = NULL;
    struct dp_jv *root;
    dp_status st = dp_json_parse(text, len, path, &root);
    if (st) return st;
    struct dp_sweep *s = calloc(1, sizeof *s);
    if (!s) st = dp_fail(DP_ERR_NOMEM, "out of memory");
    else st = load_tree(root, path, s);
    dp_json_free(root);
    if (st) {
        dp_sweep_free(s);
        return st;
    }
    *out = s;
    return DP_OK;
}

dp_status dp_sweep_load(const char *path, struct dp_sweep **out) {
    *out = NULL;
    char *text;
    size_t len;
    dp_status st = dp_read_file(path, &text, &len);
    if (st) return st;
    st = load_text(text, len, path, out);
    free(text);
    return st;
}

dp_status dp_sweep_plan(const struct dp_sweep *s, int run, int step, struct dp_plan *out) {
    memset(out, 0, sizeof *out);
    if (run < 0 || run >= s->n_runs || step < 0 || step >= s->runs[run].n_steps)
        return dp_fail(DP_ERR_ARG, "the sweep has no run %d step %d", run, step);
    const struct dp_sweep_run *r = &s->runs[run];
    out->n_blocks = s->n_blocks;
    snprintf(out->metric, sizeof out->metric, "%.48s%s", r->metric, r->iterative ? " (iterative)" : "");
    snprintf(out->scheme, sizeof out->scheme, "%s", dp_scheme_name(r->scheme));
    snprintf(out->model, sizeof out->model, "%s", s->model ? s->model : "");
    for (int i = 0; i < r->steps[step].n_removed; i++) {
        char name[16];
        dp_unit_name(r->steps[step].removed[i], name);
        dp_status st = dp_plan_push(out, name);
        if (st) return st;
    }
    return DP_OK;
}

dp_status dp_sweep_mmlu_eval(void *ctx, const struct dp_model *m, const struct dp_mask *mask,
                             const struct dp_hooks *hooks, struct dp_pool *pool, double *acc, double *se, int *n) {
    const struct dp_sweep_mmlu *mc = ctx;
    struct dp_mmlu_opts o = {mc->shots, mc->ctx_limit, true, NULL, mc->progress, mc->progress_user};
    struct dp_mmlu_result *r;
    dp_status st = dp_mmlu_eval(m, mask, hooks, pool, mc->data, &o, &r);
    if (st) return st;
    *n = r->n;
    *acc = r->n ? 100.0 * r->n_correct / r->n : NAN;
    *se = 100.0 * dp_stats_acc_stderr(r->n_correct, r->n);
    dp_mmlu_result_free(r);
    return DP_OK;
}

/* ---- the engine ---- */

struct memo {
    char *key;
    struct dp_sweep_step res;   /* the evaluation's results (its units and model statistics are not used) */
};

struct engine {
    const struct dp_sweep_config *cfg;
    struct dp_sweep *sw;
    int n_memo, cap_memo;
    struct memo *memo;
    int n_evals;          /* evaluations computed (not memoised) */
    struct dp_unit *tmp;  /* (2 * DP_MAX_LAYERS) */
    struct dp_mask base;  /* the model with the base plan's units removed (cfg->base) */
    bool draft;           /* the speedup objective: steps measured against y */
    struct dp_spec_yardstick y;
};

/* A progress line for people (through cfg->log). */
static void say(struct engine *e, const char *fmt, ...) DP_PRINTF(2, 3);
static void say(struct engine *e, const char *fmt, ...) {
    if (!e->cfg->log) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    e->cfg->log(e->cfg->log_ctx, line);
}

static bool sequential(const struct engine *e) {
    return e->cfg->recover_opts && e->cfg->recover_opts->sequential;
}

/* The memo key of an evaluation: the recovery and the removed set (in order when order matters). */
static char *memo_key(const struct engine *e, const char *recover, const struct dp_unit *u, int n, int n_layers) {
    size_t cap = 64 + (size_t)n * 16;
    char *key = malloc(cap);
    if (!key) return NULL;
    bool none = !strcmp(recover, "none") || n == 0;
    if (none) {
        struct dp_mask mask;
        memset(&mask, 0, sizeof mask);
        mask.n_layers = n_layers;
        for (int l = 0; l < n_layers; l++) mask.attn[l] = mask.ffn[l] = true;
        for (int i = 0; i < n; i++) dp_unit_remove(&mask, u[i]);
        char *p = key + snprintf(key, cap, "none|");
        dp_mask_format(&mask, p, cap - (size_t)(p - key));
        return key;
    }
    struct dp_unit sorted[2 * DP_MAX_LAYERS];
    memcpy(sorted, u, (size_t)n * sizeof *u);
    if (!sequential(e))
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && (sorted[j - 1].layer > sorted[j].layer ||
                                      (sorted[j - 1].layer == sorted[j].layer && sorted[j - 1].kind > sorted[j].kind));
                 j--) {
                struct dp_unit t = sorted[j];
                sorted[j] = sorted[j - 1];
                sorted[j - 1] = t;
            }
    size_t len = (size_t)snprintf(key, cap, "%s|", recover);
    units_text(sorted, n, key + len, cap - len);
    return key;
}

static struct memo *memo_find(struct engine *e, const char *key) {
    for (int i = 0; i < e->n_memo; i++)
        if (!strcmp(e->memo[i].key, key)) return &e->memo[i];
    return NULL;
}

/* Takes ownership of key. */
static dp_status memo_add(struct engine *e, char *key, const struct dp_sweep_step *s) {
    if (e->n_memo == e->cap_memo) {
        int cap = e->cap_memo ? 2 * e->cap_memo : 64;
        struct memo *m = realloc(e->memo, (size_t)cap * sizeof *m);
        if (!m) {
            free(key);
            return dp_fail(DP_ERR_NOMEM, "out of memory");
        }
        e->memo = m;
        e->cap_memo = cap;
    }
    e->memo[e->n_memo++] = (struct memo){key, *s};
    return DP_OK;
}

/* Whether every sublayer of u is already removed by the base plan (orders skip such units). */
static bool in_base(const struct engine *e, struct dp_unit u) {
    bool a = !e->base.attn[u.layer], f = !e->base.ffn[u.layer];
    return u.kind == 'b' ? a && f : u.kind == 'a' ? a : f;
}

/* The mask of the model with units u[0..n) removed. */
static void mask_of(const struct dp_model *m, const struct dp_unit *u, int n, struct dp_mask *mask) {
    dp_mask_all(m, mask);
    for (int i = 0; i < n; i++) dp_unit_remove(mask, u[i]);
}

/* Fit the recovery of a step's units (NULL for "none" or nothing removed). */
static dp_status fit_recovery(struct engine *e, const char *recover, const struct dp_unit *u, int n,
                              const struct dp_mask *mask, struct dp_recovery **rec) {
    *rec = NULL;
    if (!strcmp(recover, "none") || n == 0) return DP_OK;
    char names[2 * DP_MAX_LAYERS][16];
    const char *ptrs[2 * DP_MAX_LAYERS];
    for (int i = 0; i < n; i++) {
        dp_unit_name(u[i], names[i]);
        ptrs[i] = names[i];
    }
    const struct dp_sweep_config *c = e->cfg;
    return dp_recovery_fit(c->model, mask, ptrs, n, recover, c->calib, c->recover_opts, c->pool, rec);
}

/* Evaluate the model with units u[0..n) removed under a recovery into step (memoised). */
static dp_status eval_step(struct engine *e, const char *recover, const struct dp_unit *u, int n,
                           struct dp_sweep_step *step, bool *computed) {
    const struct dp_sweep_config *c = e->cfg;
    memset(step, 0, sizeof *step);
    step->n_removed = n;
    step->removed = (struct dp_unit *)u;
    struct dp_mask mask;
    mask_of(c->model, u, n, &mask);
    struct dp_model_stats ms;
    dp_model_stats(c->model, &mask, &ms);
    step->kv_bytes_per_token = ms.kv_bytes_per_token;
    step->n_params = ms.n_params;
    step->ppl = step->ppl_seq = step->mmlu_acc = step->mmlu_stderr = NAN;
    step->draft_accept = step->draft_c_bytes = step->draft_c_draft = step->draft_tokens_per_verify = NAN;
    step->draft_speedup = NAN;
    char *key = memo_key(e, recover, u, n, c->model->cfg.n_layers);
    if (!key) return dp_fail(DP_ERR_NOMEM, "out of memory");
    const struct memo *hit = memo_find(e, key);
    *computed = !hit;
    if (hit) {
        free(key);
        struct dp_sweep_step here = *step; /* this step's units and model statistics */
        *step = hit->res;
        step->n_removed = here.n_removed;
        step->removed = here.removed;
        step->kv_bytes_per_token = here.kv_bytes_per_token;
        step->n_params = here.n_params;
        return DP_OK;
    }
    struct dp_recovery *rec = NULL;
    dp_status st = fit_recovery(e, recover, u, n, &mask, &rec);
    struct dp_hooks hooks;
    memset(&hooks, 0, sizeof hooks);
    if (rec) dp_recovery_hooks(rec, c->model, &hooks);
    const struct dp_hooks *hk = rec ? &hooks : NULL;
    struct dp_ppl r;
    struct dp_eval_params ep = {c->progress, c->progress_user};
    if (!st && c->ppl_chunks) st = dp_eval_ppl_paper_with(c->model, &mask, hk, c->pool, c->ppl_chunks, &ep, &r);
    else if (!st && c->ppl_ids)
        st = dp_eval_ppl_llamacpp_with(c->model, &mask, hk, c->pool, c->ppl_ids, c->n_ppl_ids, c->ppl_ctx, &ep, &r);
    if (!st && (c->ppl_chunks || c->ppl_ids)) {
        step->ppl = r10(r.ppl);
        step->ppl_seq = c->ppl_chunks ? r10(r.ppl_seq) : NAN;
    }
    if (!st && c->mmlu) {
        double acc, se;
        int nq;
        st = c->mmlu(c->mmlu_ctx, c->model, &mask, hk, c->pool, &acc, &se, &nq);
        if (!st) {
            step->mmlu_acc = r10(acc);
            step->mmlu_stderr = r10(se);
            step->mmlu_n = nq;
        }
    }
    if (!st && e->draft) {
        struct dp_spec_plan d;
        st = dp_spec_measure(&e->y, c->model, c->pool, &mask, hk, &d);
        if (!st) {
            step->draft_accept = r10(d.agree);
            step->draft_c_bytes = r10(d.c_bytes);
            step->draft_c_draft = r10(d.c_draft);
            step->draft_len = d.best_len;
            step->draft_tokens_per_verify = r10(d.tokens_per_verify);
            step->draft_speedup = r10(d.speedup);
        }
    }
    dp_recovery_free(rec);
    if (st) {
        free(key);
        return st;
    }
    e->n_evals++;
    return memo_add(e, key, step);
}

/* Re-score the units the pruned model keeps and return the lowest of the scheme (*found false when none is left). */
static dp_status rescore(struct engine *e, const struct dp_sweep_run *run, const struct dp_unit *removed, int n,
                         struct dp_unit *next, bool *found) {
    const struct dp_sweep_config *c = e->cfg;
    *found = false;
    int metric = dp_metric_parse(run->metric, strlen(run->metric));
    bool oracle = metric == DP_METRIC_MMLU_SHAPLEY;
    if (metric < 0 || metric == DP_METRIC_MMLU_SHAPLEY_ITER || (oracle && !c->oracle))
        return dp_fail(DP_ERR_UNSUPPORTED, "metric %s cannot be re-scored by sweep", run->metric);
    struct dp_mask mask;
    mask_of(c->model, removed, n, &mask);
    struct dp_recovery *rec = NULL;
    dp_status st = fit_recovery(e, run->recover, removed, n, &mask, &rec);
    if (st) return st;
    struct dp_hooks hooks;
    memset(&hooks, 0, sizeof hooks);
    if (rec) dp_recovery_hooks(rec, c->model, &hooks);
    struct dp_score_opts opts;
    dp_score_opts_default(&opts);
    opts.kind = run->scheme == DP_SCHEME_BLOCK ? DP_UNITS_BLOCK : DP_UNITS_SUBLAYER;
    opts.want[metric] = true;
    if (metric == DP_METRIC_ANGULAR) opts.span = 1;
    opts.progress = c->progress;
    opts.progress_user = c->progress_user;
    if (oracle) {
        opts.mmlu = c->oracle->data;
        opts.mmlu_opts.shots = c->oracle->shots;
        opts.mmlu_opts.ctx_limit = c->oracle->ctx_limit;
    }
    struct dp_scores *sc = NULL;
    st = dp_metrics_score(c->model, &mask, rec ? &hooks : NULL, c->pool, oracle ? NULL : c->calib, &opts, &sc);
    dp_recovery_free(rec);
    if (st) return st;
    if (metric == DP_METRIC_ANGULAR) {
        double best = INFINITY;
        for (int i = 0; i < sc->n_spans; i++) {
            const struct dp_span *sp = &sc->spans[i];
            struct dp_unit u = {'b', sp->first_block};
            if (sp->n != 1 || dp_unit_touches(c->protect, u)) continue;
            if (!*found || sp->distance < best) {
                best = sp->distance;
                *next = u;
                *found = true;
            }
        }
    } else {
        double best = 0;
        int best_index = 0;
        for (int i = 0; i < sc->n_units; i++) {
            struct dp_unit u;
            if (dp_unit_parse(sc->names[i], &u) || !dp_unit_in_scheme(u, run->scheme) || dp_unit_touches(c->protect, u) ||
                in_base(e, u))
                continue;
            double v = sc->influence[metric][i];
            int index = dp_unit_index(u, run->scheme);
            if (isnan(v)) continue;
            if (!*found || v < best || (v == best && index < best_index)) {
                best = v;
                best_index = index;
                *next = u;
                *found = true;
            }
        }
    }
    dp_scores_free(sc);
    return DP_OK;
}

static const char *mode_name(bool iterative) {
    return iterative ? "iterative" : "one-shot";
}

static dp_status save(struct engine *e) {
    return e->cfg->out_path ? dp_sweep_save(e->sw, e->cfg->out_path) : DP_OK;
}

/* Re-plan a run's budget from its steps so far (a no-op without a budget). */
static dp_status update_budget(struct engine *e, struct dp_sweep_run *run) {
    if (!e->sw->has_budget || run->n_steps == 0) return DP_OK;
    run->has_budget = true;
    return dp_budget_choose(&e->sw->budget, run, e->sw->kv_full, e->sw->params_full, &run->budget);
}

/* Add step (units u[0..n)) to a run: evaluate, log, update the budget, save. */
static dp_status add_step(struct engine *e, struct dp_sweep_run *run, const struct dp_unit *u, int n, int run_index) {
    double t0 = dp_now();
    struct dp_sweep_step step;
    bool computed;
    dp_status st = eval_step(e, run->recover, u, n, &step, &computed);
    if (!st) st = push_step(run, &step);
    if (!st) st = update_budget(e, run);
    if (st) return st;
    update_draft_best(run);
    char removed[256], mm[64] = "", dr[128] = "";
    units_text(u, n, removed, sizeof removed);
    if (step.mmlu_n) snprintf(mm, sizeof mm, "  mmlu %.2f%%", step.mmlu_acc);
    if (e->draft)
        snprintf(dr, sizeof dr, "  draft_accept %.4f draft_len %d speedup %.3f%s", step.draft_accept, step.draft_len,
                 step.draft_speedup, run->draft_best == run->n_steps - 1 ? " (best so far)" : "");
    say(e, "[run %d/%d] %s %s %s %s: %d removed%s%s:  ppl %.4g%s%s  (%s, %.2f s)", run_index + 1, e->sw->n_runs,
          run->metric, dp_scheme_name(run->scheme), mode_name(run->iterative), run->recover, n, n ? " " : "", removed,
          step.ppl, mm, dr, computed ? "evaluated" : "known", dp_now() - t0);
    st = save(e);
    int64_t done = 0;
    for (int r = 0; r < e->sw->n_runs; r++) done += e->sw->runs[r].n_steps;
    if (!st && !dp_progress_step(e->cfg->progress, e->cfg->progress_user, "sweep", done, 0)) st = DP_ERR_CANCELLED;
    return st;
}

/* Steps of a run: how many units it may remove at most. */
static int run_limit(const struct engine *e, const struct dp_sweep_run *run) {
    int L = e->cfg->model->cfg.n_layers;
    int n = run->scheme == DP_SCHEME_BOTH ? 2 * L : L;
    if (e->cfg->max_units > 0 && e->cfg->max_units < n) n = e->cfg->max_units;
    return n;
}

/* Whether a run may stop: stop_at_budget and no later step can change the budget's choice. */
static bool budget_decided(const struct engine *e, const struct dp_sweep_run *run) {
    return e->cfg->stop_at_budget && run->has_budget && run->budget.decided;
}

/* A one-shot run: the prefixes of the metric's order (or its best spans), up to the run's limit. */
static dp_status run_oneshot(struct engine *e, struct dp_sweep_run *run, int run_index) {
    const struct dp_sweep_config *c = e->cfg;
    int L = c->model->cfg.n_layers, limit = run_limit(e, run);
    if (dp_metric_is_span(run->metric)) {
        /* step n: the best span of n blocks */
        dp_status st = DP_OK;
        for (int n = run->n_steps; n <= limit && !st && !budget_decided(e, run); n++) {
            bool found = true;
            if (n > 0) st = dp_prune_span(c->scores, run->metric, n, c->protect, e->tmp, &found);
            if (st) return st;
            if (!found) {
                snprintf(run->note, sizeof run->note, "no span of %d blocks was scored (or all touch protected units)", n);
                return save(e);
            }
            st = add_step(e, run, e->tmp, n, run_index);
        }
        return st;
    }
    int n_order, nb = c->n_base, m = 0;
    struct dp_unit order[2 * DP_MAX_LAYERS];
    dp_status st = dp_prune_order(c->scores, run->metric, run->scheme, L, c->protect, order, &n_order);
    if (st) return st;
    if (nb) memcpy(e->tmp, c->base, (size_t)nb * sizeof *e->tmp);
    for (int i = 0; i < n_order; i++)
        if (!in_base(e, order[i])) e->tmp[nb + m++] = order[i];
    if (m < limit) limit = m;
    for (int k = run->n_steps; k <= limit && !st && !budget_decided(e, run); k++)
        st = add_step(e, run, e->tmp, nb + k, run_index);
    return st;
}

/*
 * An iterative run: the first unit from the scores, then the lowest of a
 * re-scoring of the pruned model; continues a path read back from the file.
 */
static dp_status run_iterative(struct engine *e, struct dp_sweep_run *run, int run_index) {
    const struct dp_sweep_config *c = e->cfg;
    int L = c->model->cfg.n_layers, nb = c->n_base, limit = nb + run_limit(e, run);
    dp_status st = DP_OK;
    int n = nb;
    if (run->n_steps > 0) {
        const struct dp_sweep_step *last = &run->steps[run->n_steps - 1];
        n = last->n_removed;
        memcpy(e->tmp, last->removed, (size_t)n * sizeof *e->tmp);
    } else {
        if (nb) memcpy(e->tmp, c->base, (size_t)nb * sizeof *e->tmp);
        st = add_step(e, run, e->tmp, nb, run_index);
    }
    while (!st && n < limit && !budget_decided(e, run)) {
        bool found = false;
        if (n == nb && dp_metric_is_span(run->metric)) {
            st = dp_prune_span(c->scores, run->metric, 1, c->protect, e->tmp, &found);
        } else if (n == nb) {
            int n_order;
            struct dp_unit order[2 * DP_MAX_LAYERS];
            st = dp_prune_order(c->scores, run->metric, run->scheme, L, c->protect, order, &n_order);
            for (int i = 0; !st && i < n_order && !found; i++)
                if (!in_base(e, order[i])) {
                    e->tmp[n] = order[i];
                    found = true;
                }
        } else {
            say(e, "[run %d/%d] %s %s iterative %s: re-scoring %s units with %d removed", run_index + 1, e->sw->n_runs,
                  run->metric, dp_scheme_name(run->scheme), run->recover,
                  run->scheme == DP_SCHEME_BLOCK ? "block" : "sublayer", n);
            st = rescore(e, run, e->tmp, n, &e->tmp[n], &found);
        }
        if (st) return st;
        if (!found) break;
        n++;
        st = add_step(e, run, e->tmp, n, run_index);
    }
    return st;
}

/* ---- configuration, runs and resume ---- */

/* Configurations that cannot run fail before anything is evaluated. */
static dp_status check_config(const struct dp_sweep_config *c) {
    if (!c->model || !c->pool || !c->scores || c->n_metrics < 1 || c->n_schemes < 1 || (!c->oneshot && !c->iterative))
        return dp_fail(DP_ERR_ARG, "a sweep needs a model, scores, a metric, a scheme and a mode");
    bool calib_needed = false;
    for (int i = 0; i < c->n_metrics; i++) calib_needed |= !dp_metric_is_oracle(c->metrics[i]);
    if (c->iterative && calib_needed && !c->calib)
        return dp_fail(DP_ERR_ARG, "iterative sweeps re-score on calibration data: give --calib CORPUS");
    for (int i = 0; i < c->n_recover; i++) {
        enum dp_recover_method method;
        int rank;
        if (dp_recover_parse_kind(c->recover[i], &method, &rank)) return DP_ERR_ARG;
        if (method != DP_RECOVER_NONE && !c->calib)
            return dp_fail(DP_ERR_ARG, "recovery %s is fitted on calibration data: give --calib CORPUS", c->recover[i]);
    }
    if (c->draft && !c->calib)
        return dp_fail(DP_ERR_ARG, "the speedup objective measures drafts on calibration data: give --calib CORPUS");
    if (c->draft && (c->draft_k_max < 1 || c->draft_k_max > DP_SPEC_MAX_LEN))
        return dp_fail(DP_ERR_ARG, "draft lengths 1..%d: %d is outside", DP_SPEC_MAX_LEN, c->draft_k_max);
    if (c->budget.max_ppl_ratio > 0 && !c->ppl_chunks && !c->ppl_ids)
        return dp_fail(DP_ERR_ARG, "--max-ppl-ratio needs perplexity: give --ppl CORPUS");
    if (!isnan(c->budget.max_mmlu_drop) && !c->mmlu)
        return dp_fail(DP_ERR_ARG, "--max-mmlu-drop needs MMLU: give --mmlu DIR");
    if (c->budget.max_ppl_ratio != 0 && c->budget.max_ppl_ratio < 1)
        return dp_fail(DP_ERR_ARG, "--max-ppl-ratio must be at least 1");
    if (c->budget.target_kv < 0 || c->budget.target_kv > 1 || c->budget.target_params < 0 || c->budget.target_params > 1)
        return dp_fail(DP_ERR_ARG, "--target-kv and --target-params are fractions in (0, 1]");
    for (int i = 0; i < c->n_metrics && c->n_base; i++)
        if (dp_metric_is_span(c->metrics[i]))
            return dp_fail(DP_ERR_ARG, "%s removes spans of blocks of the unpruned model: it cannot start from a base plan",
                           c->metrics[i]);
    if (c->n_base > 2 * c->model->cfg.n_layers) return dp_fail(DP_ERR_ARG, "the base plan has too many units");
    for (int i = 0; i < c->n_base; i++) {
        if (c->base[i].layer < 0 || c->base[i].layer >= c->model->cfg.n_layers)
            return dp_fail(DP_ERR_ARG, "the base plan removes a unit the model does not have");
        if (dp_unit_touches(c->protect, c->base[i])) {
            char u[16];
            dp_unit_name(c->base[i], u);
            return dp_fail(DP_ERR_ARG, "the base plan removes %s, which --protect keeps", u);
        }
    }
    return DP_OK;
}

/* Build the list of runs (empty steps); runs that cannot be made are left out with a warning. */
static dp_status plan_runs(struct engine *e) {
    const struct dp_sweep_config *c = e->cfg;
    struct dp_sweep *s = e->sw;
    int L = c->model->cfg.n_layers;
    static const char *none[] = {"none"};
    const char *const *rec = c->recover ? c->recover : none;
    int n_rec = c->recover ? c->n_recover : 1;
    int max_runs = 2 * c->n_schemes * c->n_metrics * n_rec;
    if (!(s->runs = calloc((size_t)max_runs, sizeof *s->runs))) return dp_fail(DP_ERR_NOMEM, "out of memory");
    for (int mode = 0; mode < 2; mode++) {
        if ((mode == 0 && !c->oneshot) || (mode == 1 && !c->iterative)) continue;
        for (int si = 0; si < c->n_schemes; si++)
            for (int mi = 0; mi < c->n_metrics; mi++) {
                const char *metric = c->metrics[mi];
                enum dp_scheme scheme = c->schemes[si];
                char w[512] = "";
                if (!dp_influences_cover(c->scores, metric, scheme, L)) {
                    if (dp_metric_is_span(metric) && scheme != DP_SCHEME_BLOCK) continue; /* block spans only */
                    if (mode == 0 || !c->oneshot)
                        snprintf(w, sizeof w, "no run of %s under scheme %s: the scores lack %s units for it", metric,
                                 dp_scheme_name(scheme), scheme == DP_SCHEME_BLOCK ? "block" : "sublayer");
                } else if (mode == 1 && dp_metric_is_oracle(metric) && (strcmp(metric, "mmlu_shapley") || !c->oracle)) {
                    snprintf(w, sizeof w, "no iterative run of %s: %s", metric,
                             strcmp(metric, "mmlu_shapley") ? "it is already iterated (a one-shot run follows its order)"
                                                            : "re-scoring the oracle needs MMLU questions (--mmlu DIR)");
                } else {
                    for (int ri = 0; ri < n_rec; ri++) {
                        struct dp_sweep_run *r = &s->runs[s->n_runs++];
                        snprintf(r->metric, sizeof r->metric, "%s", metric);
                        snprintf(r->recover, sizeof r->recover, "%s", rec[ri]);
                        r->scheme = scheme;
                        r->iterative = mode == 1;
                        r->oracle = dp_metric_is_oracle(metric);
                        r->draft_best = -1;
                    }
                    continue;
                }
                if (w[0]) {
                    dp_status st = push_warning(s, w);
                    if (st) return st;
                }
            }
    }
    if (s->n_runs == 0)
        return dp_fail(DP_ERR_ARG, "no run is possible: the scores cover none of the metrics and schemes asked");
    return DP_OK;
}

/* The speedup objective: the full model's reference argmax on the calibration chunks (and timings). */
static dp_status draft_start(struct engine *e) {
    const struct dp_sweep_config *c = e->cfg;
    struct dp_sweep *s = e->sw;
    say(e, "drafts: the full model's argmax on %d x %d calibration tokens%s", c->calib->n_seqs, c->calib->ctx,
        c->draft_timed ? ", timing its decode steps" : "");
    dp_status st = dp_spec_yardstick_init(&e->y, c->model, c->pool, c->calib, c->draft_k_max, c->draft_timed,
                                          dp_spec_time_pos(c->model), DP_SPEC_TIME_REPS);
    if (st) return st;
    e->draft = true;
    s->has_draft = true;
    s->draft_timed = c->draft_timed;
    s->draft_k_max = c->draft_k_max;
    s->draft_n_seqs = c->calib->n_seqs;
    s->draft_ctx = c->calib->ctx;
    for (int k = 0; k <= c->draft_k_max; k++) s->draft_c_verify[k] = r10(e->y.c_verify[k]);
    return DP_OK;
}

/* Continue from an earlier sweep written to the output path. */
static dp_status resume(struct engine *e) {
    const struct dp_sweep_config *c = e->cfg;
    if (!c->out_path) return DP_OK;
    /* rank 0's file on every rank (dist.h): the ranks resume alike wherever the output lives */
    char *text;
    size_t len;
    bool exists;
    dp_status st = dp_dist_read_file(c->out_path, &text, &len, &exists);
    struct dp_sweep *old = NULL;
    if (!st && !exists) return DP_OK;
    if (!st) st = load_text(text, len, c->out_path, &old);
    free(text);
    if (st) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", dp_last_error());
        return dp_fail(st, "%s exists and cannot be resumed (%s); remove it or choose another output", c->out_path, msg);
    }
    for (int i = 0; i < c->n_args || i < old->n_args; i++) {
        const char *key = i < c->n_args ? c->args[i].key : old->args[i].key;
        const char *now = i < c->n_args ? c->args[i].value : "(absent)";
        const char *then = "(absent)";
        for (int k = 0; k < old->n_args; k++)
            if (!strcmp(old->args[k].key, key)) then = old->args[k].value;
        if (strcmp(now, then) || c->n_args != old->n_args) {
            st = dp_fail(DP_ERR_ARG,
                         "%s was written by a sweep with other arguments (%s: '%.200s' there, '%.200s' now); remove it "
                         "or choose another output",
                         c->out_path, key, then, now);
            dp_sweep_free(old);
            return st;
        }
    }
    int steps = 0;
    for (int r = 0; r < old->n_runs && !st; r++) {
        struct dp_sweep_run *o = &old->runs[r];
        for (int k = 0; k < o->n_steps && !st; k++) {
            char *key = memo_key(e, o->recover, o->steps[k].removed, o->steps[k].n_removed, c->model->cfg.n_layers);
            if (!key) st = dp_fail(DP_ERR_NOMEM, "out of memory");
            else if (memo_find(e, key)) free(key);
            else st = memo_add(e, key, &o->steps[k]);
        }
        for (int n = 0; n < e->sw->n_runs && !st; n++) {
            struct dp_sweep_run *r2 = &e->sw->runs[n];
            if (strcmp(r2->metric, o->metric) || r2->scheme != o->scheme || r2->iterative != o->iterative ||
                strcmp(r2->recover, o->recover) || r2->n_steps)
                continue;
            /* iterative paths come from the file; one-shot steps are recomputed from the memo */
            for (int k = 0; k < o->n_steps && !st && r2->iterative; k++) st = push_step(r2, &o->steps[k]);
            if (!r2->iterative) steps += o->n_steps;
            else steps += r2->n_steps;
            snprintf(r2->note, sizeof r2->note, "%s", o->note);
        }
    }
    dp_sweep_free(old);
    if (!st) say(e, "resuming %s: %d steps already evaluated", c->out_path, steps);
    return st;
}

dp_status dp_sweep_run(const struct dp_sweep_config *cfg, struct dp_sweep **out) {
    *out = NULL;
    dp_status st = check_config(cfg);
    if (st) return st;
    struct engine e;
    memset(&e, 0, sizeof e);
    e.cfg = cfg;
    e.sw = calloc(1, sizeof *e.sw);
    e.tmp = malloc(2 * DP_MAX_LAYERS * sizeof *e.tmp);
    if (!e.sw || !e.tmp) {
        free(e.sw);
        free(e.tmp);
        return dp_fail(DP_ERR_NOMEM, "out of memory");
    }
    struct dp_sweep *s = e.sw;
    mask_of(cfg->model, cfg->base, cfg->n_base, &e.base);
    s->model = strdup(cfg->model_name ? cfg->model_name : dp_model_path(cfg->model));
    s->n_blocks = cfg->model->cfg.n_layers;
    struct dp_model_stats ms;
    dp_model_stats(cfg->model, NULL, &ms);
    s->kv_full = ms.kv_bytes_per_token;
    s->params_full = ms.n_params;
    s->budget = cfg->budget;
    s->has_budget = dp_budget_any(&cfg->budget);
    if (!s->model) st = dp_fail(DP_ERR_NOMEM, "out of memory");
    if (!st && cfg->n_args && !(s->args = calloc((size_t)cfg->n_args, sizeof *s->args)))
        st = dp_fail(DP_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < cfg->n_args; i++) {
        s->args[i] = cfg->args[i];
        if (!(s->args[i].value = strdup(cfg->args[i].value))) st = dp_fail(DP_ERR_NOMEM, "out of memory");
        else s->n_args++;
    }
    for (int i = 0; !st && i < cfg->n_warnings; i++) st = push_warning(s, cfg->warnings[i]);
    if (!st) st = plan_runs(&e);
    if (!st) st = resume(&e);
    if (!st && cfg->draft) st = draft_start(&e);
    for (int r = 0; r < s->n_runs && !st; r++) {
        struct dp_sweep_run *run = &s->runs[r];
        if (run->iterative) {
            st = run_iterative(&e, run, r);
        } else {
            /* one-shot steps are rebuilt from the order (and the memo when resuming) */
            run->n_steps = 0;
            st = run_oneshot(&e, run, r);
        }
        if (!st && run->n_steps) st = update_budget(&e, run);
        update_draft_best(run);
        if (!st && e.draft && run->draft_best >= 0) {
            const struct dp_sweep_step *b = &run->steps[run->draft_best];
            char removed[256];
            units_text(b->removed, b->n_removed, removed, sizeof removed);
            say(&e, "[run %d/%d] %s %s %s %s: best draft step %d (%s): draft_accept %.4f draft_len %d speedup %.3f",
                r + 1, s->n_runs, run->metric, dp_scheme_name(run->scheme), mode_name(run->iterative), run->recover,
                run->draft_best, b->n_removed ? removed : "nothing removed", b->draft_accept, b->draft_len,
                b->draft_speedup);
        }
    }
    if (!st) st = save(&e);
    if (e.draft) dp_spec_yardstick_free(&e.y);
    for (int i = 0; i < e.n_memo; i++) free(e.memo[i].key);
    free(e.memo);
    free(e.tmp);
    if (st) {
        dp_sweep_free(s);
        return st;
    }
    *out = s;
    return DP_OK;
}

bool dp_corpus_overlap(const char *path_a, int lo_a, int hi_a, const char *path_b, int lo_b, int hi_b) {
    struct stat a, b;
    if (!path_a || !path_b || stat(path_a, &a) != 0 || stat(path_b, &b) != 0) return false;
    if (a.st_dev != b.st_dev || a.st_ino != b.st_ino) return false;
    long ha = hi_a < 0 ? (long)1 << 40 : hi_a, hb = hi_b < 0 ? (long)1 << 40 : hi_b;
    return lo_a < hb && lo_b < ha;
}
