/*
 * score_report: JSON, CSV and table outputs of scores (see score_report.h).
 *
 * Everything here formats a finished struct dp_scores; nothing is computed
 * but ratios. The JSON is the contract with sweep/prune; the table is for
 * people and may change.
 */
#include "score_report.h"
#include "shapley.h"

#include <math.h>
#include <string.h>

static const char *family_name(int metric) {
    switch (metric) {
    case DP_METRIC_COSINE: case DP_METRIC_REL_L1: case DP_METRIC_REL_L2: case DP_METRIC_ANGULAR: return "static";
    case DP_METRIC_LOO_LOSS: case DP_METRIC_LOO_LOGIT: return "loo";
    case DP_METRIC_BANZHAF_LOSS: case DP_METRIC_BANZHAF_LOGIT: return "banzhaf";
    case DP_METRIC_SHAPLEY_LOSS: case DP_METRIC_SHAPLEY_LOGIT: return "shapley";
    default: return "mmlu";
    }
}

static bool is_oracle(int metric) { return metric == DP_METRIC_MMLU_SHAPLEY || metric == DP_METRIC_MMLU_SHAPLEY_ITER; }

static const char *ORACLE_NOTE = "oracle: measured on the MMLU test questions themselves, an upper bound for what a "
                                 "calibration metric could know, not a calibration metric";

static void span_name(const struct dp_span *sp, char *buf, size_t cap) {
    if (sp->first_block == sp->last_block) snprintf(buf, cap, "b%d", sp->first_block);
    else snprintf(buf, cap, "b%d..b%d", sp->first_block, sp->last_block);
}

static int shapley_slot(int metric) {
    return metric == DP_METRIC_SHAPLEY_LOGIT ? 1 : metric == DP_METRIC_SHAPLEY_LOSS ? 0 : -1;
}

void dp_score_report_json(FILE *f, const struct dp_scores *s, const struct dp_score_info *info) {
    struct dp_json j;
    dp_json_init(&j, f);
    dp_json_begin_obj(&j, NULL);
    dp_json_int(&j, "depthprune_scores", 2);
    dp_json_str(&j, "model", info->model ? info->model : "");
    dp_json_int(&j, "n_blocks", info->n_blocks);
    if (info->model_hash) dp_json_str(&j, "model_hash", info->model_hash);
    if (info->model_shape) dp_json_str(&j, "model_shape", info->model_shape);
    dp_json_str(&j, "unit", s->kind == DP_UNITS_BLOCK ? "block" : "sublayer");
    dp_json_str(&j, "removed", info->removed ? info->removed : "");
    dp_json_begin_arr(&j, "metrics");
    for (int k = 0; k < DP_N_METRICS; k++)
        if (s->has[k]) dp_json_str(&j, NULL, dp_metric_name(k));
    dp_json_end(&j);

    dp_json_begin_obj(&j, "data");
    dp_json_str(&j, "file", info->file ? info->file : "");
    if (info->docs) dp_json_str(&j, "docs", info->docs);
    else dp_json_null(&j, "docs");
    dp_json_int(&j, "documents", info->n_docs);
    dp_json_int(&j, "sequences", s->n_seqs);
    dp_json_int(&j, "tokens", (int64_t)s->n_seqs * s->ctx);
    dp_json_int(&j, "ctx", s->ctx);
    dp_json_end(&j);

    dp_json_begin_arr(&j, "units");
    for (int k = 0; k < DP_N_METRICS; k++) {
        if (!s->has[k]) continue;
        if (k == DP_METRIC_ANGULAR) {
            for (int i = 0; i < s->n_spans; i++) {
                char name[40];
                span_name(&s->spans[i], name, sizeof name);
                dp_json_begin_obj(&j, NULL);
                dp_json_str(&j, "unit", name);
                dp_json_str(&j, "metric", dp_metric_name(k));
                dp_json_num(&j, "influence", s->spans[i].distance);
                dp_json_int(&j, "span", s->spans[i].n);
                dp_json_end(&j);
            }
            continue;
        }
        for (int i = 0; i < s->n_units; i++) {
            dp_json_begin_obj(&j, NULL);
            dp_json_str(&j, "unit", s->names[i]);
            dp_json_str(&j, "metric", dp_metric_name(k));
            dp_json_num(&j, "influence", s->influence[k][i]);
            if (s->std_err[k]) dp_json_num(&j, "stderr", s->std_err[k][i]);
            if (s->value[k]) dp_json_num(&j, k == DP_METRIC_MMLU_SHAPLEY_ITER ? "estimate" : "d", s->value[k][i]);
            if (is_oracle(k)) dp_json_bool(&j, "oracle", true);
            dp_json_end(&j);
        }
    }
    dp_json_end(&j);

    dp_json_begin_obj(&j, "order");
    for (int k = 0; k < DP_N_METRICS; k++) {
        if (!s->has[k]) continue;
        dp_json_begin_arr(&j, dp_metric_name(k));
        if (k == DP_METRIC_ANGULAR) {
            for (int b = 0; b < s->n_best; b++) {
                char name[40];
                span_name(&s->spans[s->best[b]], name, sizeof name);
                dp_json_str(&j, NULL, name);
            }
        } else {
            for (int i = 0; i < s->n_units; i++) dp_json_str(&j, NULL, s->names[s->order[k][i]]);
        }
        dp_json_end(&j);
    }
    dp_json_end(&j);

    if (s->has[DP_METRIC_SHAPLEY_LOSS] || s->has[DP_METRIC_SHAPLEY_LOGIT]) {
        dp_json_begin_obj(&j, "shapley");
        for (int k = DP_METRIC_SHAPLEY_LOSS; k <= DP_METRIC_SHAPLEY_LOGIT; k++) {
            if (!s->has[k]) continue;
            int v = shapley_slot(k);
            dp_json_begin_obj(&j, dp_metric_name(k));
            dp_json_int(&j, "pairs", s->shapley[v].pairs);
            dp_json_int(&j, "permutations", s->shapley[v].estimator == DP_SHAPLEY_PERMUTATION ? 2 * (int64_t)s->shapley[v].pairs : 0);
            dp_json_bool(&j, "converged", s->shapley[v].converged);
            dp_json_bool(&j, "exact", s->shapley[v].exact);
            dp_json_num(&j, "tol", info->tol);
            dp_json_num(&j, "v_all", s->shapley[v].v_all);
            dp_json_num(&j, "v_none", s->shapley[v].v_none);
            dp_json_int(&j, "coalitions", s->shapley[v].coalitions);
            dp_json_str(&j, "estimator", s->shapley[v].exact ? "exact" : dp_shapley_estimator_name(s->shapley[v].estimator));
            dp_json_int(&j, "samples", s->shapley[v].samples);
            dp_json_end(&j);
        }
        dp_json_end(&j);
    }
    if (s->has[DP_METRIC_BANZHAF_LOSS] || s->has[DP_METRIC_BANZHAF_LOGIT]) {
        dp_json_begin_obj(&j, "banzhaf");
        dp_json_int(&j, "subsets_per_sequence", s->banzhaf_subsets);
        dp_json_int(&j, "subset_size", s->n_units / 2);
        dp_json_end(&j);
    }
    if (s->has[DP_METRIC_MMLU_SHAPLEY] || s->has[DP_METRIC_MMLU_SHAPLEY_ITER]) {
        dp_json_begin_obj(&j, "mmlu");
        dp_json_str(&j, "note", ORACLE_NOTE);
        dp_json_str(&j, "dir", info->mmlu_dir ? info->mmlu_dir : "");
        dp_json_int(&j, "questions", s->mmlu.questions);
        dp_json_int(&j, "subjects", s->mmlu.subjects);
        if (info->mmlu_limit > 0) dp_json_int(&j, "limit", info->mmlu_limit);
        else dp_json_null(&j, "limit");
        dp_json_int(&j, "draws_per_question", s->mmlu.draws);
        dp_json_int(&j, "units_kept", s->mmlu.keep);
        dp_json_int(&j, "iterations", s->mmlu.iterations);
        dp_json_num(&j, "base_accuracy", s->mmlu.base_accuracy);
        dp_json_int(&j, "subnetwork_evaluations", s->mmlu.distinct);
        dp_json_int(&j, "questions_evaluated", s->mmlu.questions_evaluated);
        dp_json_int(&j, "tokens_evaluated", s->mmlu.tokens_evaluated);
        dp_json_int(&j, "tokens_naive", s->mmlu.tokens_naive);
        dp_json_num(&j, "seconds", s->mmlu.seconds);
        dp_json_num(&j, "cpu_seconds", s->mmlu.cpu_seconds);
        dp_json_end(&j);
    }
    dp_json_num(&j, "base_ce", s->base_ce);

    dp_json_begin_obj(&j, "cost");
    dp_json_int(&j, "unit_evals", s->unit_evals);
    dp_json_int(&j, "naive_unit_evals", s->naive_unit_evals);
    dp_json_num(&j, "saving", s->naive_unit_evals ? 1.0 - (double)s->unit_evals / (double)s->naive_unit_evals : 0.0);
    dp_json_begin_obj(&j, "per_metric");
    for (int k = 0; k < DP_N_METRICS; k++) {
        if (!s->has[k]) continue;
        const struct dp_cost *c = &s->cost[k];
        dp_json_begin_obj(&j, dp_metric_name(k));
        dp_json_str(&j, "family", family_name(k));
        dp_json_int(&j, "unit_evals", c->unit_evals);
        dp_json_int(&j, "naive_unit_evals", c->naive_unit_evals);
        dp_json_int(&j, "passes", c->passes);
        dp_json_num(&j, "seconds", c->seconds);
        dp_json_num(&j, "cpu_seconds", c->cpu_seconds);
        dp_json_end(&j);
    }
    dp_json_end(&j);
    dp_json_end(&j);

    dp_json_begin_obj(&j, "memory");
    dp_json_int(&j, "snapshot_bytes", s->snapshot_bytes);
    dp_json_int(&j, "logits_bytes", s->logits_bytes);
    dp_json_int(&j, "workers", s->workers);
    dp_json_end(&j);
    dp_json_int(&j, "seed", (int64_t)info->seed);
    dp_json_int(&j, "threads", info->n_threads);
    dp_json_num(&j, "seconds", info->seconds);
    dp_json_bool(&j, "resumed", s->resumed);
    dp_json_end(&j);
}

static void csv_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, ",%.10g", v);
    else fputs(",", f);
}

void dp_score_report_csv(FILE *f, const struct dp_scores *s) {
    fputs("unit", f);
    for (int k = 0; k < DP_N_METRICS; k++) {
        if (!s->has[k]) continue;
        fprintf(f, ",%s", dp_metric_name(k));
        if (s->std_err[k]) fprintf(f, ",%s_stderr", dp_metric_name(k));
        if (s->value[k]) fprintf(f, ",%s_%s", dp_metric_name(k), k == DP_METRIC_MMLU_SHAPLEY_ITER ? "estimate" : "d");
    }
    fputc('\n', f);
    for (int i = 0; i < s->n_units; i++) {
        fputs(s->names[i], f);
        for (int k = 0; k < DP_N_METRICS; k++) {
            if (!s->has[k]) continue;
            csv_num(f, s->influence[k][i]);
            if (s->std_err[k]) csv_num(f, s->std_err[k][i]);
            if (s->value[k]) csv_num(f, s->value[k][i]);
        }
        fputc('\n', f);
    }
}

static const char *describe(int metric) {
    switch (metric) {
    case DP_METRIC_COSINE: return "1 - mean cos(input, output)";
    case DP_METRIC_REL_L1: return "mean |y-x|_1 / |x|_1";
    case DP_METRIC_REL_L2: return "mean |y-x|_2 / |x|_2";
    case DP_METRIC_ANGULAR: return "arccos(cos(h_in, h_out))/pi at the last position, one block";
    case DP_METRIC_LOO_LOSS: return "leave-one-out: CE without the unit minus the others' mean (nats)";
    case DP_METRIC_LOO_LOGIT: return "leave-one-out: logit distance without the unit minus the others' mean";
    case DP_METRIC_BANZHAF_LOSS: return "Banzhaf: mean CE of random halves lacking minus containing the unit";
    case DP_METRIC_BANZHAF_LOGIT: return "Banzhaf: mean logit distance lacking minus containing the unit";
    case DP_METRIC_SHAPLEY_LOSS: return "Shapley value, v(S) = -CE(S) (nats)";
    case DP_METRIC_SHAPLEY_LOGIT: return "Shapley value, v(S) = -logit distance of S to the full model";
    case DP_METRIC_MMLU_SHAPLEY:
        return "ORACLE on the MMLU test set: accuracy of random subnetworks with the unit minus without (percent/100)";
    case DP_METRIC_MMLU_SHAPLEY_ITER:
        return "ORACLE on the MMLU test set, iterated: removal step (estimate at removal in brackets)";
    default: return "";
    }
}

static void bar(FILE *f, double v, double scale, int width) {
    int w = scale > 0 && isfinite(v) ? (int)lround(fabs(v) / scale * width) : 0;
    for (int i = 0; i < w; i++) fputc(v < 0 ? '-' : '#', f);
}

static void print_cost(FILE *f, const struct dp_cost *c) {
    fprintf(f, "  cost: %lld passes, %lld sublayer evaluations", (long long)c->passes, (long long)c->unit_evals);
    if (c->naive_unit_evals != c->unit_evals)
        fprintf(f, " (without prefix reuse %lld: %.1f%% saved)", (long long)c->naive_unit_evals,
                100.0 * (1.0 - (double)c->unit_evals / (double)c->naive_unit_evals));
    fprintf(f, ", %.2f s (%.2f s CPU)\n", c->seconds, c->cpu_seconds);
}

void dp_score_report_table(FILE *f, const struct dp_scores *s, const struct dp_score_info *info) {
    fprintf(f, "%s: %d %s units%s%s", info->model, s->n_units, s->kind == DP_UNITS_BLOCK ? "block" : "sublayer",
            info->removed && *info->removed ? ", already removed " : "", info->removed ? info->removed : "");
    if (s->n_seqs)
        fprintf(f, "; %d sequences x %d tokens from %d documents of %s%s%s", s->n_seqs, s->ctx, info->n_docs,
                info->file ? info->file : "", info->docs ? " docs " : "", info->docs ? info->docs : "");
    fputc('\n', f);
    if (isfinite(s->base_ce)) fprintf(f, "base model: mean CE %.4f (ppl %.3f)\n", s->base_ce, exp(s->base_ce));
    if (isfinite(s->base_ce))
        fprintf(f, "memory: %.2f MiB of residual-stream snapshots + %.2f MiB of logits per worker, %d worker%s\n",
                s->snapshot_bytes / 1048576.0, s->logits_bytes / 1048576.0, s->workers, s->workers == 1 ? "" : "s");
    for (int k = 0; k < DP_N_METRICS; k++) {
        if (!s->has[k]) continue;
        fprintf(f, "\n%s: %s\n", dp_metric_name(k), describe(k));
        double scale = 0;
        for (int i = 0; i < s->n_units; i++)
            if (isfinite(s->influence[k][i]) && fabs(s->influence[k][i]) > scale) scale = fabs(s->influence[k][i]);
        for (int i = 0; i < s->n_units; i++) {
            fprintf(f, "  %-5s %11.5f", s->names[i], s->influence[k][i]);
            if (s->std_err[k]) fprintf(f, " +/- %-9.5f", s->std_err[k][i]);
            if (k == DP_METRIC_MMLU_SHAPLEY_ITER) fprintf(f, " [%8.5f]", s->value[k][i]);
            fputs("  ", f);
            bar(f, s->influence[k][i], scale, 40);
            fputc('\n', f);
        }
        fputs("  order (least important first):", f);
        for (int i = 0; i < s->n_units; i++) fprintf(f, " %s", s->names[s->order[k][i]]);
        fputc('\n', f);
        if (k == DP_METRIC_ANGULAR) {
            fputs("  best span of n blocks:", f);
            for (int b = 0; b < s->n_best; b++) {
                char name[40];
                span_name(&s->spans[s->best[b]], name, sizeof name);
                fprintf(f, " n=%d %s (%.4f)%s", s->spans[s->best[b]].n, name, s->spans[s->best[b]].distance,
                        b + 1 < s->n_best ? "," : "");
            }
            fputc('\n', f);
        }
        int v = shapley_slot(k);
        if (v >= 0) {
            if (s->shapley[v].exact)
                fprintf(f, "  exact: all %lld coalitions", (long long)s->shapley[v].coalitions);
            else if (s->shapley[v].estimator == DP_SHAPLEY_PERMUTATION)
                fprintf(f, "  permutation: %d antithetic pairs (%d permutations), %s", s->shapley[v].pairs,
                        2 * s->shapley[v].pairs, s->shapley[v].converged ? "every stderr below the tolerance" : "not converged");
            else
                fprintf(f, "  %s: %lld samples, %s", dp_shapley_estimator_name(s->shapley[v].estimator),
                        (long long)s->shapley[v].samples,
                        s->shapley[v].converged ? "every stderr below the tolerance" : "not converged");
            fprintf(f, "; v(all) - v(none) = %.5f = sum of values\n", s->shapley[v].v_all - s->shapley[v].v_none);
        }
        if (k == DP_METRIC_BANZHAF_LOSS || k == DP_METRIC_BANZHAF_LOGIT)
            fprintf(f, "  %d random subsets of %d units per sequence\n", s->banzhaf_subsets, s->n_units / 2);
        if (is_oracle(k)) {
            fprintf(f, "  %s\n", ORACLE_NOTE);
            fprintf(f, "  %d questions of %d subjects, %d subnetworks per question; base model accuracy %.2f%%\n",
                    s->mmlu.questions, s->mmlu.subjects, s->mmlu.draws, s->mmlu.base_accuracy);
            fprintf(f, "  cost: %lld (subject, subnetwork) evaluations, %lld tokens (%lld without prefix caching), "
                    "%.2f s (%.2f s CPU)\n", (long long)s->mmlu.distinct, (long long)s->mmlu.tokens_evaluated,
                    (long long)s->mmlu.tokens_naive, s->mmlu.seconds, s->mmlu.cpu_seconds);
            continue;
        }
        bool shared_before = false;
        for (int q = 0; q < k; q++) shared_before |= s->has[q] && !strcmp(family_name(q), family_name(k));
        if (!shared_before) print_cost(f, &s->cost[k]);
        else fprintf(f, "  cost: shared with the metrics above\n");
    }
    if (!s->n_seqs) {
        fprintf(f, "\n%.2f s with %d threads\n", info->seconds, info->n_threads);
        return;
    }
    fprintf(f, "\ntotal: %lld sublayer evaluations", (long long)s->unit_evals);
    if (s->naive_unit_evals != s->unit_evals)
        fprintf(f, " (%lld without prefix reuse, %.1f%% saved)", (long long)s->naive_unit_evals,
                100.0 * (1.0 - (double)s->unit_evals / (double)s->naive_unit_evals));
    fprintf(f, ", %.2f s with %d threads%s\n", info->seconds, info->n_threads, s->resumed ? " (resumed from a checkpoint)" : "");
}
