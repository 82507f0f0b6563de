/*
 * api_sweep: sweeps and budget plans through the public header.
 *
 * dp_sweep_evaluate is the orchestration `depthprune sweep` used to do
 * itself: load and check the scores files against the model, resolve the
 * metric, scheme and recovery lists, read the corpora (calibration,
 * perplexity by either protocol, MMLU), collect the warnings (overlapping
 * corpora, oracle metrics), then run the grid of src/sweep.c. The result is
 * the internal struct dp_sweep, read through accessors. dp_budget_units is
 * the same for a one-run plan to a budget (`prune --target-kv ...`).
 */
#include "api.h"
#include "base.h"
#include "identity.h"
#include "metrics.h"
#include "mmlu.h"
#include "prune.h"
#include "report.h"
#include "sha256.h"
#include "sweep.h"

_Static_assert(DP_SWEEP_MAX_SHOTS == DP_MMLU_MAX_SHOTS, "the header's shot bound is mmlu.h's");

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Split a comma list into at most cap pieces of buf (modified in place). */
static int split(char *buf, const char **out, int cap) {
    int n = 0;
    for (char *p = buf; p && *p && n < cap;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = 0;
        if (*p) out[n++] = p;
        p = comma ? comma + 1 : NULL;
    }
    return n;
}

static void logf_line(const struct dp_api_log *l, const char *fmt, ...) DP_PRINTF(2, 3);
static void logf_line(const struct dp_api_log *l, const char *fmt, ...) {
    if (!l->fn) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    l->fn(line, l->user);
}

dp_status dp_file_sha256(const char *path, char *hex) {
    char *text;
    size_t len;
    dp_status st = dp_read_file(path, &text, &len);
    if (st) return st;
    dp_sha256_hex(text, len, hex);
    free(text);
    return DP_OK;
}

int64_t dp_sweep_rescore_bytes(const struct dp_model *m, int ctx) {
    int64_t snap = 0, lg = 0;
    dp_metrics_memory(m, ctx, &snap, &lg);
    return snap + lg;
}

/* Load the scores files of a comma list and check them against m (warnings about files without a hash). */
static dp_status load_scores(const struct dp_model *m, const char *list, bool allow_twin, int scheme,
                             const struct dp_api_log *log, struct dp_influences *sc) {
    memset(sc, 0, sizeof *sc);
    if (!list) return dp_fail(DP_ERR_ARG, "no scores file given");
    char buf[4096];
    const char *files[16];
    snprintf(buf, sizeof buf, "%s", list);
    int n = split(buf, files, 16);
    dp_status st = DP_OK;
    for (int i = 0; i < n && !st; i++) st = dp_influences_load(files[i], sc);
    struct dp_identity id;
    int n_unchecked = 0;
    dp_identity_of(m, &id);
    if (!st) st = dp_influences_check(sc, &id, scheme, allow_twin, &n_unchecked);
    /* hand-written files (no "depthprune_scores") are the user's own numbers: no warning */
    for (int i = 0; !st && n_unchecked && i < sc->n_files; i++)
        if (!sc->origin[i].id.hash[0] && sc->origin[i].version == 1)
            logf_line(log, "warning: %s has no model hash (written before version 2): checked by its unit names%s only",
                      sc->files[i], sc->origin[i].id.n_blocks ? " and block count" : "");
    if (st) dp_influences_free(sc);
    return st;
}

/* A warning when two corpus selections overlap (dp_corpus_overlap). */
static void overlap_warning(const char *a, const char *docs_a, const char *what_a, const char *b, const char *docs_b,
                            const char *what_b, char warnings[][512], int *n) {
    int lo_a = 0, hi_a = -1, lo_b = 0, hi_b = -1;
    if ((docs_a && *docs_a && dp_parse_range(docs_a, &lo_a, &hi_a)) || (docs_b && *docs_b && dp_parse_range(docs_b, &lo_b, &hi_b)))
        return;
    if (*n >= 8 || !dp_corpus_overlap(a, lo_a, hi_a, b, lo_b, hi_b)) return;
    snprintf(warnings[(*n)++], 512,
             "%s (%s, documents %s) and %s (%s, documents %s) overlap: the evaluation is not on held-out text", what_a,
             a, docs_a && *docs_a ? docs_a : "all", what_b, b, docs_b && *docs_b ? docs_b : "all");
}

/* The whole text of the llamacpp protocol (one trailing newline stripped, as llama.cpp does). */
static dp_status read_ids(const struct dp_model *m, const char *file, int **ids, int *n) {
    char *text;
    size_t len;
    *ids = NULL;
    dp_status st = dp_read_file(file, &text, &len);
    if (st) return st;
    if (len && text[len - 1] == '\n') len--;
    int cap = (int)(len < 1 << 28 ? len : 1 << 28) + 16;
    *ids = malloc((size_t)cap * sizeof **ids);
    st = *ids ? dp_tokenize(dp_model_tokenizer(m), text, len, DP_TOKENIZE_BOS, *ids, cap, n) : DP_ERR_NOMEM;
    free(text);
    if (!st && *n > cap) st = dp_fail(DP_ERR_FORMAT, "%s: more tokens than bytes", file);
    return st;
}

struct dp_sweep_params dp_sweep_default_params(void) {
    struct dp_sweep_params p = {.oneshot = true, .recover_params = dp_recovery_default_params(), .mmlu_shots = 5,
                                .max_mmlu_drop = NAN};
    return p;
}

/* Everything a sweep run needs that the params name by file or list. */
struct inputs {
    struct dp_influences sc;
    const char *metrics[64], *recovers[16];
    enum dp_scheme schemes[DP_N_SCHEMES];
    int n_metrics, n_schemes, n_recovers;
    char metric_buf[1024], scheme_buf[256], recover_buf[512];
    struct dp_unit base[2 * DP_MAX_LAYERS];
    int n_base;
    struct dp_mask protect;
    struct dp_budget budget;
    struct dp_chunks *calib, *pplc;
    int *ids, n_ids;
    struct dp_mmlu_data *mmlu;
    struct dp_sweep_mmlu mc;
    char warnings[8][512];
    const char *warning_ptrs[8];
    int n_warnings;
    struct dp_recover_opts ropts;
    struct dp_api_log rlog, log;
    struct dp_sweep_arg args[32];
    char arg_vals[32][1024];
    int n_args;
    int ctx;
};

static void inputs_free(struct inputs *in) {
    dp_mmlu_data_free(in->mmlu);
    dp_chunks_free(in->calib);
    dp_chunks_free(in->pplc);
    free(in->ids);
    dp_influences_free(&in->sc);
    free(in);
}

static dp_status parse_lists(const struct dp_sweep_params *p, struct inputs *in) {
    if (p->metrics && strcmp(p->metrics, "all")) {
        snprintf(in->metric_buf, sizeof in->metric_buf, "%s", p->metrics);
        in->n_metrics = split(in->metric_buf, in->metrics, 64);
    } else {
        in->n_metrics = dp_influences_metrics(&in->sc, in->metrics, 64);
    }
    for (int i = 0; i < in->n_metrics; i++) {
        bool known = false;
        for (int k = 0; k < in->sc.n && !known; k++) known = !strcmp(in->sc.s[k].metric, in->metrics[i]);
        if (!known) return dp_fail(DP_ERR_ARG, "metric: the scores files hold no %s scores", in->metrics[i]);
    }
    if (p->schemes && strcmp(p->schemes, "all")) {
        const char *names[8];
        snprintf(in->scheme_buf, sizeof in->scheme_buf, "%s", p->schemes);
        int n = split(in->scheme_buf, names, 8);
        for (int i = 0; i < n; i++)
            if (dp_scheme_parse(names[i], &in->schemes[in->n_schemes++])) return DP_ERR_ARG;
    } else {
        for (int i = 0; i < DP_N_SCHEMES; i++) in->schemes[in->n_schemes++] = (enum dp_scheme)i;
    }
    snprintf(in->recover_buf, sizeof in->recover_buf, "%s", p->recover ? p->recover : "none");
    in->n_recovers = split(in->recover_buf, in->recovers, 16);
    for (int i = 0; i < in->n_recovers; i++) {
        enum dp_recover_method method;
        int rank;
        if (dp_recover_parse_kind(in->recovers[i], &method, &rank)) return DP_ERR_ARG;
    }
    return DP_OK;
}

/* Corpora, MMLU questions and warnings. */
static dp_status read_inputs(const struct dp_model *m, const struct dp_sweep_params *p, struct inputs *in) {
    const struct dp_config *cf = dp_model_config(m);
    int cap_ctx = cf->n_ctx_train < 2048 ? cf->n_ctx_train : 2048;
    in->ctx = p->ppl.ctx > 0 ? p->ppl.ctx : p->ppl_llamacpp ? 512 : cap_ctx;
    int calib_ctx = p->calib.ctx > 0 ? p->calib.ctx : p->ppl_llamacpp ? cap_ctx : in->ctx;
    int calib_max = p->calib.max_seqs > 0 ? p->calib.max_seqs : p->ppl_llamacpp ? 0 : p->ppl.max_seqs;
    dp_status st = DP_OK;
    if (p->calib.path) st = dp_api_chunks(m, &p->calib, calib_ctx, calib_max, "calibration corpus", &in->calib);
    if (!st && p->ppl.path && !p->ppl_llamacpp) st = dp_api_chunks(m, &p->ppl, in->ctx, 0, "perplexity corpus", &in->pplc);
    if (!st && p->ppl.path && p->ppl_llamacpp) st = read_ids(m, p->ppl.path, &in->ids, &in->n_ids);
    if (!st && p->mmlu_dir) st = dp_mmlu_read(p->mmlu_dir, p->mmlu_subjects, p->mmlu_limit, &in->mmlu);
    in->mc.data = in->mmlu;
    in->mc.shots = p->mmlu_shots;
    in->mc.ctx_limit = p->mmlu_ctx > 0 ? p->mmlu_ctx : cap_ctx;
    in->mc.progress = p->progress;
    in->mc.progress_user = p->progress_user;
    if (st) return st;
    const char *ppl_docs = p->ppl_llamacpp ? NULL : p->ppl.docs;
    if (p->ppl.path && p->calib.path)
        overlap_warning(p->calib.path, p->calib.docs, "the calibration corpus (--calib)", p->ppl.path, ppl_docs,
                        "the perplexity corpus (--ppl)", in->warnings, &in->n_warnings);
    for (int i = 0; p->ppl.path && i < in->sc.n_files; i++) {
        char file[2048];
        snprintf(file, sizeof file, "%s", in->sc.calib[i]);
        char *docs = strstr(file, " docs ");
        if (docs) {
            *docs = 0;
            docs += 6;
        }
        char what[2200];
        snprintf(what, sizeof what, "the calibration data of %s", in->sc.files[i]);
        if (file[0]) overlap_warning(file, docs, what, p->ppl.path, ppl_docs, "the perplexity corpus (--ppl)", in->warnings,
                                     &in->n_warnings);
    }
    for (int i = 0; i < in->n_metrics && p->mmlu_dir; i++)
        if (dp_metric_is_oracle(in->metrics[i]) && in->n_warnings < 8)
            snprintf(in->warnings[in->n_warnings++], 512,
                     "%s is an oracle: it was measured on MMLU test questions, the data that evaluates the pruned models",
                     in->metrics[i]);
    for (int i = 0; i < in->n_warnings; i++) {
        in->warning_ptrs[i] = in->warnings[i];
        logf_line(&in->log, "warning: %s", in->warnings[i]);
    }
    return DP_OK;
}

static void arg(struct inputs *in, const char *key, const char *value) {
    if (in->n_args >= 32) return;
    snprintf(in->args[in->n_args].key, sizeof in->args[in->n_args].key, "%s", key);
    snprintf(in->arg_vals[in->n_args], sizeof in->arg_vals[in->n_args], "%s", value ? value : "");
    in->args[in->n_args].value = in->arg_vals[in->n_args];
    in->n_args++;
}

/* The args of a sweep: the caller's, or its lists and corpora. */
static void build_args(const struct dp_model *m, const struct dp_sweep_params *p, struct inputs *in) {
    if (p->arg_keys) {
        for (int i = 0; i < p->n_args; i++) arg(in, p->arg_keys[i], p->arg_values[i]);
        return;
    }
    char buf[1024];
    arg(in, "model", p->model_name ? p->model_name : dp_model_path(m));
    arg(in, "scores", p->scores);
    arg(in, "metric", p->metrics ? p->metrics : "all");
    arg(in, "scheme", p->schemes ? p->schemes : "all");
    snprintf(buf, sizeof buf, "%d", p->max_units);
    arg(in, "max", p->max_units ? buf : "all");
    arg(in, "mode", p->iterative ? (p->oneshot ? "one-shot,iterative" : "iterative") : "one-shot");
    arg(in, "recover", p->recover ? p->recover : "none");
    const struct dp_recovery_params *r = &p->recover_params;
    snprintf(buf, sizeof buf, "%s docs %s ctx %d max-seqs %d stats %s ridge %g objective %s steps %d lr %g batch %d seed %llu init %s",
             p->calib.path ? p->calib.path : "", p->calib.docs ? p->calib.docs : "all", p->calib.ctx, p->calib.max_seqs,
             r->sequential ? "sequential" : "full", r->ridge, r->objective_kl ? "kl" : "ce", r->steps, r->lr, r->batch,
             (unsigned long long)r->seed, r->init_mean ? "mean" : "zero");
    arg(in, "calib", p->calib.path ? buf : "");
    snprintf(buf, sizeof buf, "%s protocol %s docs %s ctx %d max-seqs %d", p->ppl.path ? p->ppl.path : "",
             p->ppl_llamacpp ? "llamacpp" : "paper", p->ppl.docs ? p->ppl.docs : "all", p->ppl.ctx, p->ppl.max_seqs);
    arg(in, "ppl", p->ppl.path ? buf : "");
    snprintf(buf, sizeof buf, "%s limit %d shots %d subjects %s ctx-limit %d", p->mmlu_dir ? p->mmlu_dir : "",
             p->mmlu_limit, p->mmlu_shots, p->mmlu_subjects ? p->mmlu_subjects : "all", p->mmlu_ctx);
    arg(in, "mmlu", p->mmlu_dir ? buf : "");
    arg(in, "protect", p->protect ? p->protect : "");
    if (p->base && *p->base) arg(in, "base", p->base);
    if (p->draft) {
        snprintf(buf, sizeof buf, "speedup cost %s k-max %d", p->draft_timed ? "time" : "bytes",
                 p->draft_k_max ? p->draft_k_max : 8);
        arg(in, "draft", buf);
    }
}

/* Budget, protected units, base plan. */
static dp_status parse_units(const struct dp_model *m, const struct dp_sweep_params *p, struct inputs *in) {
    int n_layers = dp_model_config(m)->n_layers;
    dp_budget_none(&in->budget);
    in->budget.target_kv = p->target_kv;
    in->budget.target_params = p->target_params;
    in->budget.max_ppl_ratio = p->max_ppl_ratio;
    in->budget.max_mmlu_drop = p->max_mmlu_drop;
    if (p->max_ppl_ratio > 0 && !p->ppl.path) return dp_fail(DP_ERR_ARG, "a perplexity limit needs a perplexity corpus");
    if (!isnan(p->max_mmlu_drop) && !p->mmlu_dir) return dp_fail(DP_ERR_ARG, "an MMLU limit needs an MMLU folder");
    char units[2 * DP_MAX_LAYERS][16];
    int n = 0;
    if (p->base && dp_api_units(p->base, units, 2 * DP_MAX_LAYERS, &n)) return dp_fail(DP_ERR_ARG, "base plan: %s", dp_last_error());
    for (int i = 0; i < n; i++)
        if (dp_unit_parse(units[i], &in->base[in->n_base++])) return dp_fail(DP_ERR_ARG, "base plan: %s", dp_last_error());
    if (p->protect && dp_units_protect(p->protect, n_layers, &in->protect))
        return dp_fail(DP_ERR_ARG, "protect: %s", dp_last_error());
    return DP_OK;
}

dp_status dp_sweep_evaluate(const struct dp_model *m, struct dp_pool *pool, const struct dp_sweep_params *p,
                            struct dp_sweep **out) {
    *out = NULL;
    if (!m || !pool || !p) return dp_fail(DP_ERR_ARG, "sweep: model, pool and params are required");
    struct inputs *in = calloc(1, sizeof *in);
    if (!in) return dp_fail(DP_ERR_NOMEM, "out of memory");
    in->log.fn = p->log;
    in->log.user = p->log_user;
    dp_status st = load_scores(m, p->scores, p->allow_twin, -1, &in->log, &in->sc);
    if (!st) st = parse_lists(p, in);
    if (!st) st = parse_units(m, p, in);
    bool fitted = false, calib_needed = false;
    for (int i = 0; i < in->n_recovers; i++) fitted |= strcmp(in->recovers[i], "none") != 0;
    for (int i = 0; i < in->n_metrics; i++) calib_needed |= !dp_metric_is_oracle(in->metrics[i]);
    if (!st && fitted && !p->calib.path) st = dp_fail(DP_ERR_ARG, "recovery %s is fitted on calibration data: give a calibration corpus", p->recover);
    if (!st && p->iterative && calib_needed && !p->calib.path)
        st = dp_fail(DP_ERR_ARG, "iterative runs re-score on calibration data: give a calibration corpus");
    if (!st && p->draft && !p->calib.path)
        st = dp_fail(DP_ERR_ARG, "the speedup objective measures drafts on calibration data: give a calibration corpus");
    if (!st) st = read_inputs(m, p, in);
    if (!st) st = dp_api_recover_opts(&p->recover_params, &in->rlog, &in->ropts);
    if (!st) {
        build_args(m, p, in);
        struct dp_sweep_config cfg = {
            .model = m, .pool = pool, .model_name = p->model_name ? p->model_name : dp_model_path(m), .scores = &in->sc,
            .metrics = in->metrics, .n_metrics = in->n_metrics, .schemes = in->schemes, .n_schemes = in->n_schemes,
            .oneshot = p->oneshot, .iterative = p->iterative, .max_units = p->max_units,
            .calib = in->calib, .ppl_chunks = in->pplc, .ppl_ids = in->ids, .n_ppl_ids = in->n_ids, .ppl_ctx = in->ctx,
            .mmlu = in->mmlu ? dp_sweep_mmlu_eval : NULL, .mmlu_ctx = &in->mc, .oracle = in->mmlu ? &in->mc : NULL,
            .recover = in->recovers, .n_recover = in->n_recovers, .recover_opts = &in->ropts,
            .protect = p->protect ? &in->protect : NULL, .base = in->base, .n_base = in->n_base, .budget = in->budget,
            .args = in->args, .n_args = in->n_args, .out_path = p->out_path,
            .draft = p->draft, .draft_timed = p->draft_timed, .draft_k_max = p->draft_k_max ? p->draft_k_max : 8,
            .warnings = in->warning_ptrs, .n_warnings = in->n_warnings,
            .log = p->log ? dp_api_log_line : NULL, .log_ctx = &in->log,
            .progress = p->progress, .progress_user = p->progress_user};
        st = dp_sweep_run(&cfg, out);
    }
    inputs_free(in);
    return st;
}

/* ---- reading a sweep ---- */

int dp_sweep_n_runs(const struct dp_sweep *s) { return s ? s->n_runs : 0; }

dp_status dp_sweep_get_run(const struct dp_sweep *s, int r, struct dp_sweep_run_info *out) {
    if (!s || r < 0 || r >= s->n_runs) return dp_fail(DP_ERR_ARG, "sweep: no run %d", r);
    const struct dp_sweep_run *run = &s->runs[r];
    *out = (struct dp_sweep_run_info){
        .metric = run->metric, .scheme = dp_scheme_name(run->scheme), .recover = run->recover,
        .iterative = run->iterative, .oracle = run->oracle, .span = dp_metric_is_span(run->metric), .note = run->note,
        .n_steps = run->n_steps, .has_budget = run->has_budget, .budget_met = run->budget.met,
        .budget_step = run->budget.step, .budget_bound = run->budget.bound, .budget_why = run->budget.why,
        .draft_best_step = run->draft_best};
    return DP_OK;
}

dp_status dp_sweep_get_step(const struct dp_sweep *s, int r, int k, struct dp_sweep_step_info *out) {
    if (!s || r < 0 || r >= s->n_runs || k < 0 || k >= s->runs[r].n_steps)
        return dp_fail(DP_ERR_ARG, "sweep: no step %d of run %d", k, r);
    const struct dp_sweep_step *st = &s->runs[r].steps[k];
    *out = (struct dp_sweep_step_info){.n_removed = st->n_removed, .ppl = st->ppl, .ppl_seq = st->ppl_seq,
                                       .mmlu_acc = st->mmlu_acc, .mmlu_stderr = st->mmlu_stderr, .mmlu_n = st->mmlu_n,
                                       .kv_bytes_per_token = st->kv_bytes_per_token, .n_params = st->n_params,
                                       .draft_accept = st->draft_accept, .c_bytes = st->draft_c_bytes,
                                       .c_draft = st->draft_c_draft, .draft_len = st->draft_len,
                                       .tokens_per_verify = st->draft_tokens_per_verify, .speedup = st->draft_speedup};
    return DP_OK;
}

void dp_sweep_step_unit(const struct dp_sweep *s, int r, int k, int i, char *buf) {
    buf[0] = 0;
    if (!s || r < 0 || r >= s->n_runs || k < 0 || k >= s->runs[r].n_steps || i < 0 || i >= s->runs[r].steps[k].n_removed)
        return;
    dp_unit_name(s->runs[r].steps[k].removed[i], buf);
}

int dp_sweep_n_warnings(const struct dp_sweep *s) { return s ? s->n_warnings : 0; }
const char *dp_sweep_warning(const struct dp_sweep *s, int i) {
    return s && i >= 0 && i < s->n_warnings ? s->warnings[i] : NULL;
}

dp_status dp_sweep_write_csv(const struct dp_sweep *s, const char *path) { return dp_report_sweep_csv(s, path); }
dp_status dp_sweep_write_svg(const struct dp_sweep *s, const char *path) { return dp_report_sweep_svg_file(s, path); }

/* The plan file of one run under dir: DIR/METRIC_SCHEME_MODE_RECOVER.json, ':' as '-' in the name. */
void dp_sweep_plan_path(const char *dir, const char *metric, const char *scheme, bool iterative, const char *recover,
                        char *path, size_t cap) {
    snprintf(path, cap, "%s/%s_%s_%s_%s.json", dir, metric, scheme, iterative ? "iterative" : "oneshot", recover);
    for (char *c = path + strlen(dir) + 1; *c; c++)
        if (*c == ':') *c = '-';
}

dp_status dp_sweep_save_plans(const struct dp_sweep *s, const struct dp_model *m, struct dp_pool *pool,
                              const struct dp_sweep_params *p, const char *dir) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return dp_fail(DP_ERR_IO, "%s: cannot create the folder: %s", dir, strerror(errno));
    struct dp_identity id;
    dp_identity_of(m, &id);
    struct dp_chunks *calib = NULL;
    struct dp_recover_opts ropts;
    struct dp_api_log rlog;
    dp_status st = dp_api_recover_opts(&p->recover_params, &rlog, &ropts);
    for (int r = 0; !st && r < s->n_runs; r++) {
        const struct dp_sweep_run *run = &s->runs[r];
        if (run->n_steps == 0) continue;
        int step = run->has_budget ? run->budget.step : run->n_steps - 1;
        struct dp_plan plan;
        if ((st = dp_sweep_plan(s, r, step, &plan))) break;
        dp_plan_set_identity(&plan, &id);
        char path[2048];
        dp_sweep_plan_path(dir, run->metric, dp_scheme_name(run->scheme), run->iterative, run->recover, path, sizeof path);
        if (strcmp(run->recover, "none") && plan.n_units > 0) {
            if (!calib) {
                const struct dp_config *cf = dp_model_config(m);
                int cap_ctx = cf->n_ctx_train < 2048 ? cf->n_ctx_train : 2048;
                int ctx = p->calib.ctx > 0 ? p->calib.ctx : p->ppl.ctx > 0 && !p->ppl_llamacpp ? p->ppl.ctx : cap_ctx;
                int max = p->calib.max_seqs > 0 ? p->calib.max_seqs : p->ppl_llamacpp ? 0 : p->ppl.max_seqs;
                if ((st = dp_api_chunks(m, &p->calib, ctx, max, "calibration corpus", &calib))) break;
            }
            struct dp_mask mask;
            dp_mask_all(m, &mask);
            const char *units[DP_PLAN_MAX_UNITS];
            for (int i = 0; i < plan.n_units; i++) units[i] = plan.units[i];
            struct dp_recovery *rec = NULL;
            if ((st = dp_plan_apply(&plan, &mask)) ||
                (st = dp_recovery_fit(m, &mask, units, plan.n_units, run->recover, calib, &ropts, pool, &rec)))
                break;
            snprintf(plan.recover_kind, sizeof plan.recover_kind, "%s", run->recover);
            snprintf(plan.recover_file, sizeof plan.recover_file, "%.*s.recover.gguf", (int)(strlen(path) - 5), path);
            st = dp_recovery_save(rec, plan.recover_file);
            dp_recovery_free(rec);
            if (st) break;
        }
        st = dp_plan_save(&plan, path);
    }
    dp_chunks_free(calib);
    return st;
}

/* ---- budgets ---- */

struct dp_budget_params dp_budget_default_params(void) {
    struct dp_budget_params p = {.scheme = "block", .max_mmlu_drop = NAN};
    return p;
}

dp_status dp_budget_units(const struct dp_model *m, struct dp_pool *pool, const struct dp_budget_params *p,
                          char *list, size_t cap, struct dp_budget_info *info) {
    memset(info, 0, sizeof *info);
    if (cap) list[0] = 0;
    if (!m || !pool || !p || !p->metric) return dp_fail(DP_ERR_ARG, "budget: model, pool, params and metric are required");
    enum dp_scheme scheme;
    dp_status st = dp_scheme_parse(p->scheme ? p->scheme : "block", &scheme);
    if (st) return st;
    struct dp_budget budget;
    dp_budget_none(&budget);
    budget.target_kv = p->target_kv;
    budget.target_params = p->target_params;
    budget.max_ppl_ratio = p->max_ppl_ratio;
    budget.max_mmlu_drop = p->max_mmlu_drop;
    if (p->max_ppl_ratio > 0 && !p->ppl.path) return dp_fail(DP_ERR_ARG, "a perplexity limit needs a perplexity corpus");
    if (!isnan(p->max_mmlu_drop) && !p->mmlu_dir) return dp_fail(DP_ERR_ARG, "an MMLU limit needs an MMLU folder");
    const struct dp_config *cf = dp_model_config(m);
    int cap_ctx = cf->n_ctx_train < 2048 ? cf->n_ctx_train : 2048;
    struct dp_influences sc;
    struct dp_api_log l = {p->log, p->log_user};
    struct dp_chunks *pplc = NULL;
    struct dp_mmlu_data *mmlu = NULL;
    struct dp_mask protect;
    struct dp_plan plan;
    memset(&plan, 0, sizeof plan);
    struct dp_sweep_mmlu mc = {NULL, 5, cap_ctx, p->progress, p->progress_user};
    struct dp_budget_result res;
    memset(&res, 0, sizeof res);
    if ((st = load_scores(m, p->scores, p->allow_twin, (int)scheme, &l, &sc))) return st;
    if (p->protect && dp_units_protect(p->protect, cf->n_layers, &protect)) st = dp_fail(DP_ERR_ARG, "protect: %s", dp_last_error());
    if (!st && p->ppl.path) st = dp_api_chunks(m, &p->ppl, cap_ctx, 0, "perplexity corpus", &pplc);
    if (!st && p->mmlu_dir) st = dp_mmlu_read(p->mmlu_dir, NULL, p->mmlu_limit, &mmlu);
    mc.data = mmlu;
    if (!st) {
        const char *metrics[1] = {p->metric};
        int ctx = p->ppl.ctx > 0 ? p->ppl.ctx : cap_ctx;
        struct dp_sweep_config cfg = {
            .model = m, .pool = pool, .model_name = dp_model_path(m), .scores = &sc, .metrics = metrics, .n_metrics = 1,
            .schemes = &scheme, .n_schemes = 1, .oneshot = true, .ppl_chunks = pplc, .ppl_ctx = ctx,
            .mmlu = mmlu ? dp_sweep_mmlu_eval : NULL, .mmlu_ctx = &mc, .protect = p->protect ? &protect : NULL,
            .budget = budget, .progress = p->progress, .progress_user = p->progress_user};
        st = dp_budget_plan(&cfg, &plan, &res);
    }
    info->step = res.step;
    info->met = res.met;
    snprintf(info->bound, sizeof info->bound, "%s", res.bound);
    snprintf(info->why, sizeof info->why, "%s", res.why);
    size_t len = 0;
    for (int i = 0; !st && i < plan.n_units; i++) {
        int w = snprintf(list + len, cap - len, "%s%s", len ? "," : "", plan.units[i]);
        if (w > 0) len += (size_t)w;
        if (len >= cap) st = dp_fail(DP_ERR_ARG, "%s: too many units", p->scores);
    }
    if (!st && !plan.n_units) st = dp_fail(DP_ERR_ARG, "the budget removes nothing: %s", res.why);
    dp_mmlu_data_free(mmlu);
    dp_chunks_free(pplc);
    dp_influences_free(&sc);
    return st;
}

/* ---- plans from scores ---- */

dp_status dp_prune_units_from_scores(const struct dp_model *m, const char *path, bool allow_twin, const char *metric,
                                     const char *scheme_s, int count, char *list, size_t cap, dp_log_fn log,
                                     void *log_user) {
    if (cap) list[0] = 0;
    enum dp_scheme scheme;
    dp_status st = dp_scheme_parse(scheme_s ? scheme_s : "block", &scheme);
    if (st) return st;
    int n_layers = dp_model_config(m)->n_layers, n = 0;
    struct dp_influences sc;
    struct dp_api_log l = {log, log_user};
    if ((st = load_scores(m, path, allow_twin, (int)scheme, &l, &sc))) return st;
    struct dp_unit *order = calloc(2 * DP_MAX_LAYERS, sizeof *order);
    if (!order) st = dp_fail(DP_ERR_NOMEM, "out of memory");
    if (!st && dp_metric_is_span(metric)) {
        bool found = false;
        st = dp_prune_span(&sc, metric, count, NULL, order, &found);
        if (!st && !found) st = dp_fail(DP_ERR_ARG, "%s: no span of %d blocks scored by %s", path, count, metric);
        n = count;
    } else if (!st) {
        st = dp_prune_order(&sc, metric, scheme, n_layers, NULL, order, &n);
        if (!st && count > n) st = dp_fail(DP_ERR_ARG, "%s: --count %d but the %s order has only %d units", path, count, metric, n);
        n = count;
    }
    dp_influences_free(&sc);
    size_t len = 0;
    for (int i = 0; !st && i < n; i++) {
        char u[16];
        dp_unit_name(order[i], u);
        if (order[i].layer >= n_layers) st = dp_fail(DP_ERR_ARG, "%s: unit %s does not exist in %s", path, u, dp_model_path(m));
        int w = snprintf(list + len, cap - len, "%s%s", len ? "," : "", u);
        if (w > 0) len += (size_t)w;
        if (len >= cap) st = dp_fail(DP_ERR_ARG, "%s: too many units", path);
    }
    free(order);
    return st;
}

dp_status dp_sweep_scores_metrics(const char *list, char *buf, size_t cap) {
    if (cap) buf[0] = 0;
    struct dp_influences sc;
    memset(&sc, 0, sizeof sc);
    char files_buf[4096];
    const char *files[16];
    snprintf(files_buf, sizeof files_buf, "%s", list ? list : "");
    int n = split(files_buf, files, 16);
    dp_status st = DP_OK;
    for (int i = 0; i < n && !st; i++) st = dp_influences_load(files[i], &sc);
    const char *metrics[64];
    int n_metrics = st ? 0 : dp_influences_metrics(&sc, metrics, 64);
    size_t len = 0;
    for (int i = 0; i < n_metrics && len < cap; i++) {
        int w = snprintf(buf + len, cap - len, "%s%s", i ? "," : "", metrics[i]);
        if (w > 0) len += (size_t)w;
    }
    if (!st && len >= cap && cap) st = dp_fail(DP_ERR_ARG, "%s: too many metrics", list);
    dp_influences_free(&sc);
    return st;
}

bool dp_sweep_metric_oracle(const char *metric) { return dp_metric_is_oracle(metric); }

dp_status dp_recovery_check_kind(const char *kind) {
    enum dp_recover_method method;
    int rank;
    return dp_recover_parse_kind(kind, &method, &rank);
}
