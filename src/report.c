/*
 * report: the pages: CSV, the SVG figures and the HTML page (see report.h).
 *
 * The figures are drawn with the SVG kit of report_svg.h (axes, charts,
 * legends, escaped text). Colours come from its colour-blind-safe palette,
 * one per metric, the same in every chart of a figure; the mode is the dash
 * pattern and the recovery the marker shape, so a line can be identified
 * in print as well.
 */
#include "report.h"

#include "json.h"
#include "report_svg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- sweep figures ---- */

struct names {
    int n;
    const char *v[64];
};

static int name_index(struct names *t, const char *s) {
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->v[i], s)) return i;
    if (t->n < 64) t->v[t->n++] = s;
    return t->n - 1;
}

/* Whether two runs removed the same units at every step (their lines coincide). */
static bool same_steps(const struct dp_sweep_run *a, const struct dp_sweep_run *b) {
    if (a->n_steps != b->n_steps || a->iterative != b->iterative || strcmp(a->recover, b->recover)) return false;
    for (int k = 0; k < a->n_steps; k++) {
        const struct dp_sweep_step *x = &a->steps[k], *y = &b->steps[k];
        if (x->n_removed != y->n_removed) return false;
        for (int i = 0; i < x->n_removed; i++)
            if (x->removed[i].kind != y->removed[i].kind || x->removed[i].layer != y->removed[i].layer) return false;
    }
    return true;
}

/* "metric (oracle), iterative, recover mean", noting an earlier run of the list whose line it hides under. */
static void run_label(const struct dp_sweep *s, int r, bool show_recover, char *buf, size_t cap) {
    const struct dp_sweep_run *run = &s->runs[r];
    int twin = -1;
    for (int k = 0; k < r && twin < 0; k++)
        if (s->runs[k].scheme == run->scheme && same_steps(&s->runs[k], run)) twin = k;
    snprintf(buf, cap, "%s%s%s%s%s%s%s", run->metric, run->oracle ? " (oracle)" : "", run->iterative ? ", iterative" : "",
             show_recover ? ", recover " : "", show_recover ? run->recover : "", twin >= 0 ? " = " : "",
             twin >= 0 ? s->runs[twin].metric : "");
}

struct sweep_data {
    int n_runs;
    double *x;        /* (n_runs, max_steps) units removed */
    double *ppl, *acc, *params, *kv;
    int max_steps;
};

static bool sweep_data(const struct dp_sweep *s, struct sweep_data *d) {
    memset(d, 0, sizeof *d);
    d->n_runs = s->n_runs;
    for (int r = 0; r < s->n_runs; r++)
        if (s->runs[r].n_steps > d->max_steps) d->max_steps = s->runs[r].n_steps;
    size_t n = (size_t)(d->n_runs ? d->n_runs : 1) * (size_t)(d->max_steps ? d->max_steps : 1);
    d->x = malloc(5 * n * sizeof *d->x);
    if (!d->x) return false;
    d->ppl = d->x + n;
    d->acc = d->x + 2 * n;
    d->params = d->x + 3 * n;
    d->kv = d->x + 4 * n;
    for (int r = 0; r < s->n_runs; r++)
        for (int k = 0; k < s->runs[r].n_steps; k++) {
            const struct dp_sweep_step *st = &s->runs[r].steps[k];
            size_t i = (size_t)r * d->max_steps + k;
            d->x[i] = st->n_removed;
            d->ppl[i] = st->ppl;
            d->acc[i] = st->mmlu_n ? st->mmlu_acc : NAN;
            d->params[i] = s->params_full ? 100.0 * (1 - (double)st->n_params / (double)s->params_full) : NAN;
            d->kv[i] = s->kv_full ? 100.0 * (1 - (double)st->kv_bytes_per_token / (double)s->kv_full) : NAN;
        }
    return true;
}

void dp_report_sweep_svg(const struct dp_sweep *s, FILE *f, bool standalone) {
    struct sweep_data d;
    bool any_acc = false, any_ppl = false, many_rec = false;
    struct names schemes = {0}, metrics = {0}, recovers = {0};
    for (int r = 0; r < s->n_runs; r++) {
        name_index(&schemes, dp_scheme_name(s->runs[r].scheme));
        name_index(&metrics, s->runs[r].metric);
        name_index(&recovers, s->runs[r].recover);
        for (int k = 0; k < s->runs[r].n_steps; k++) {
            any_acc |= s->runs[r].steps[k].mmlu_n > 0;
            any_ppl |= isfinite(s->runs[r].steps[k].ppl);
        }
    }
    many_rec = recovers.n > 1 || (recovers.n == 1 && strcmp(recovers.v[0], "none"));
    int cols = any_acc + any_ppl;
    double pw = 440, ph = 300, lw = 270, top = 56;
    double W = (cols ? cols : 1) * pw + lw, H = top + (schemes.n ? schemes.n : 1) * ph + 10;
    char title[1200];
    snprintf(title, sizeof title, "depthprune sweep of %s", s->model ? s->model : "");
    dp_report_svg_begin(f, W, H, standalone, title);
    dp_report_svg_text(f, 16, 24, "start", 16, "bold", 0, title);
    snprintf(title, sizeof title,
             "%s against units removed, one chart per scheme; solid: one-shot, dashed: iterative%s",
             any_acc && any_ppl ? "MMLU accuracy and perplexity (log scale)" : any_acc ? "MMLU accuracy" : "perplexity (log scale)",
             many_rec ? "; marker: recovery" : "");
    dp_report_svg_text(f, 16, 44, "start", 12, NULL, 0, title);
    if (!sweep_data(s, &d) || !cols) {
        dp_report_svg_text(f, 16, top + 20, "start", 12, NULL, 0, d.x ? "no perplexity or MMLU was evaluated" : "out of memory");
        free(d.x);
        fputs("</svg>\n", f);
        return;
    }
    for (int si = 0; si < schemes.n; si++) {
        struct series ser[128];
        int n = 0;
        double xmax = 1, plo = INFINITY, phi = 0, alo = INFINITY, ahi = -INFINITY;
        for (int r = 0; r < s->n_runs && n < 128; r++) {
            const struct dp_sweep_run *run = &s->runs[r];
            if (strcmp(dp_scheme_name(run->scheme), schemes.v[si]) || run->n_steps == 0) continue;
            struct series *se = &ser[n++];
            run_label(s, r, many_rec, se->label, sizeof se->label);
            se->color = name_index(&metrics, run->metric);
            se->dashed = run->iterative;
            se->marker = many_rec ? name_index(&recovers, run->recover) : 0;
            se->n = run->n_steps;
            se->run = r;
            se->x = d.x + (size_t)r * d.max_steps;
            se->y = NULL;
            for (int k = 0; k < run->n_steps; k++) {
                size_t i = (size_t)r * d.max_steps + k;
                if (d.x[i] > xmax) xmax = d.x[i];
                if (isfinite(d.ppl[i]) && d.ppl[i] > 0) {
                    if (d.ppl[i] < plo) plo = d.ppl[i];
                    if (d.ppl[i] > phi) phi = d.ppl[i];
                }
                if (isfinite(d.acc[i])) {
                    if (d.acc[i] < alo) alo = d.acc[i];
                    if (d.acc[i] > ahi) ahi = d.acc[i];
                }
            }
        }
        double y0 = top + si * ph;
        struct axis ax;
        dp_report_svg_axis_linear(&ax, 0, xmax, true);
        char t[128], xl[128];
        snprintf(xl, sizeof xl, "%s removed", !strcmp(schemes.v[si], "block") ? "blocks" : !strcmp(schemes.v[si], "attn") ? "attention sublayers" : !strcmp(schemes.v[si], "ffn") ? "FFN sublayers" : "sublayers (attention or FFN)");
        int col = 0;
        if (any_acc) {
            struct frame fr;
            dp_report_svg_frame(&fr, col++ * pw, y0, pw, ph);
            struct axis ay;
            if (!isfinite(alo)) alo = 0, ahi = 100;
            dp_report_svg_axis_linear(&ay, fmin(alo, 25) - 1, ahi + 1, false);
            snprintf(t, sizeof t, "scheme %s: MMLU accuracy", schemes.v[si]);
            dp_report_svg_axes(f, &fr, &ax, &ay, t, xl, "MMLU accuracy (%)");
            double cy = dp_report_svg_y(&fr, &ay, 25);
            fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#888888\" stroke-width=\"1\" stroke-dasharray=\"2 3\"/>\n",
                    fr.px, cy, fr.px + fr.pw, cy);
            for (int i = 0; i < n; i++) ser[i].y = d.acc + (size_t)ser[i].run * d.max_steps;
            dp_report_svg_lines(f, &fr, &ax, &ay, ser, n);
            fputs("</g>\n", f);
            dp_report_svg_text(f, fr.px + fr.pw - 4, cy - 4, "end", 10, NULL, 0, "chance (25%)");
        }
        if (any_ppl) {
            struct frame fr;
            dp_report_svg_frame(&fr, col++ * pw, y0, pw, ph);
            struct axis ay;
            if (!isfinite(plo)) plo = 1, phi = 10;
            dp_report_svg_axis_log(&ay, plo, phi);
            snprintf(t, sizeof t, "scheme %s: perplexity", schemes.v[si]);
            dp_report_svg_axes(f, &fr, &ax, &ay, t, xl, "perplexity (log scale)");
            for (int i = 0; i < n; i++) ser[i].y = d.ppl + (size_t)ser[i].run * d.max_steps;
            dp_report_svg_lines(f, &fr, &ax, &ay, ser, n);
            fputs("</g>\n", f);
        }
        snprintf(t, sizeof t, "scheme %s", schemes.v[si]);
        dp_report_svg_legend(f, cols * pw + 6, y0 + 24, ph - 40, ser, n, t);
    }
    free(d.x);
    fputs("</svg>\n", f);
}

/* Mean log perplexity of a run over its first n steps (the best run of a scheme has the lowest). */
static double mean_log_ppl(const struct dp_sweep_run *r, int n) {
    double s = 0;
    int k = 0;
    for (int i = 0; i < n && i < r->n_steps; i++)
        if (isfinite(r->steps[i].ppl) && r->steps[i].ppl > 0) {
            s += log(r->steps[i].ppl);
            k++;
        }
    return k ? s / k : INFINITY;
}

/* The best one-shot run of a scheme without recovery (or any run when there is none), -1 if none. */
static int best_run(const struct dp_sweep *s, enum dp_scheme scheme) {
    int best = -1;
    double bv = INFINITY;
    for (int pass = 0; pass < 2 && best < 0; pass++)
        for (int r = 0; r < s->n_runs; r++) {
            const struct dp_sweep_run *run = &s->runs[r];
            if (run->scheme != scheme || run->n_steps < 2 || run->oracle) continue;
            if (pass == 0 && (run->iterative || strcmp(run->recover, "none"))) continue;
            double v = mean_log_ppl(run, run->n_steps);
            if (v < bv || best < 0) {
                bv = v;
                best = r;
            }
        }
    return best;
}

bool dp_report_tradeoff_svg(const struct dp_sweep *s, FILE *f, bool standalone) {
    struct sweep_data d;
    if (!sweep_data(s, &d)) return false;
    struct series ser[DP_N_SCHEMES];
    int n = 0;
    double plo = INFINITY, phi = 0;
    for (int sc = 0; sc < DP_N_SCHEMES; sc++) {
        int r = best_run(s, (enum dp_scheme)sc);
        if (r < 0) continue;
        const struct dp_sweep_run *run = &s->runs[r];
        struct series *se = &ser[n++];
        snprintf(se->label, sizeof se->label, "%s (best: %s%s)", dp_scheme_name(run->scheme), run->metric,
                 run->iterative ? ", iterative" : "");
        se->color = sc;
        se->dashed = false;
        se->marker = sc;
        se->n = run->n_steps;
        se->run = r;
        for (int k = 0; k < run->n_steps; k++) {
            double p = d.ppl[(size_t)r * d.max_steps + k];
            if (isfinite(p) && p > 0) {
                if (p < plo) plo = p;
                if (p > phi) phi = p;
            }
        }
        se->x = d.params + (size_t)r * d.max_steps;
        se->y = d.ppl + (size_t)r * d.max_steps;
    }
    if (n == 0 || !isfinite(plo)) {
        free(d.x);
        return false;
    }
    double pw = 440, ph = 300, lw = 270, top = 56;
    dp_report_svg_begin(f, 2 * pw + lw, top + ph + 10, standalone, "depthprune: perplexity against savings, per scheme");
    dp_report_svg_text(f, 16, 24, "start", 16, "bold", 0, "Perplexity against savings, per scheme");
    dp_report_svg_text(f, 16, 44, "start", 12, NULL, 0,
                       "each scheme's best run (lowest mean log perplexity, one-shot without recovery where there is one)");
    struct axis ay;
    dp_report_svg_axis_log(&ay, plo, phi);
    for (int panel = 0; panel < 2; panel++) {
        struct frame fr;
        dp_report_svg_frame(&fr, panel * pw, top, pw, ph);
        double xmax = 1;
        for (int i = 0; i < n; i++) {
            ser[i].x = (panel ? d.kv : d.params) + (size_t)ser[i].run * d.max_steps;
            for (int k = 0; k < ser[i].n; k++)
                if (isfinite(ser[i].x[k]) && ser[i].x[k] > xmax) xmax = ser[i].x[k];
        }
        struct axis ax;
        dp_report_svg_axis_linear(&ax, 0, xmax, false);
        dp_report_svg_axes(f, &fr, &ax, &ay, panel ? "perplexity against KV cache saved" : "perplexity against parameters saved",
                           panel ? "KV cache removed (% of bytes per token)" : "parameters removed (% of all, embeddings included)",
                   "perplexity (log scale)");
        dp_report_svg_lines(f, &fr, &ax, &ay, ser, n);
        fputs("</g>\n", f);
    }
    dp_report_svg_legend(f, 2 * pw + 6, top + 24, ph - 40, ser, n, "scheme");
    fputs("</svg>\n", f);
    free(d.x);
    return true;
}

dp_status dp_report_sweep_svg_file(const struct dp_sweep *s, const char *path) {
    struct dp_out o;
    dp_status st = dp_out_open(path, &o);
    if (st) return st;
    dp_report_sweep_svg(s, o.f, true);
    return dp_out_commit(&o);
}

/* ---- scores figure ---- */

static char kind_of(const char *unit) {
    return strstr(unit, "..") ? 's' : unit[0];
}

void dp_report_scores_svg(const struct dp_influences *sc, FILE *f, bool standalone) {
    /* one chart per (file, metric) */
    int n_charts = 0;
    int chart_file[256];
    const char *chart_metric[256];
    for (int i = 0; i < sc->n && n_charts < 256; i++) {
        bool seen = false;
        for (int c = 0; c < n_charts && !seen; c++)
            seen = chart_file[c] == sc->s[i].file && !strcmp(chart_metric[c], sc->s[i].metric);
        if (!seen) {
            chart_file[n_charts] = sc->s[i].file;
            chart_metric[n_charts++] = sc->s[i].metric;
        }
    }
    double pw = 440, ph = 270, top = 56;
    int cols = 2, rows = (n_charts + cols - 1) / cols;
    dp_report_svg_begin(f, cols * pw, top + (rows ? rows : 1) * ph + 10, standalone, "depthprune: influence of every unit");
    dp_report_svg_text(f, 16, 24, "start", 16, "bold", 0, "Influence of every unit, per metric");
    dp_report_svg_text(f, 16, 44, "start", 12, NULL, 0,
                       "larger = more important; one-shot pruning removes the smallest first; whiskers: one standard error");
    static const char *kinds[3] = {"block", "attention sublayer", "FFN sublayer"};
    static const int colors[3] = {0, 1, 3};
    for (int i = 0; i < 3; i++) {
        double x = cols * pw - 400 + i * 130;
        fprintf(f, "<rect x=\"%.2f\" y=\"14\" width=\"10\" height=\"10\" fill=\"%s\"/>\n", x, dp_report_svg_color(colors[i]));
        dp_report_svg_text(f, x + 14, 23, "start", 11, NULL, 0, kinds[i]);
    }
    for (int c = 0; c < n_charts; c++) {
        struct frame fr;
        dp_report_svg_frame(&fr, (c % cols) * pw, top + (c / cols) * ph, pw, ph);
        int idx[1024], n = 0;
        double lo = 0, hi = 0;
        for (int i = 0; i < sc->n && n < 1024; i++) {
            const struct dp_influence *e = &sc->s[i];
            if (e->file != chart_file[c] || strcmp(e->metric, chart_metric[c]) || !isfinite(e->influence)) continue;
            idx[n++] = i;
            double se = isfinite(e->stderr_) ? e->stderr_ : 0;
            if (e->influence - se < lo) lo = e->influence - se;
            if (e->influence + se > hi) hi = e->influence + se;
        }
        struct axis ax, ay;
        dp_report_svg_axis_linear(&ax, 0, n > 0 ? n : 1, true);
        ax.n_ticks = 0;
        dp_report_svg_axis_linear(&ay, lo, hi, false);
        char t[256];
        snprintf(t, sizeof t, "%s%s", chart_metric[c], dp_metric_is_oracle(chart_metric[c]) ? " (oracle: measured on MMLU test questions)" : "");
        dp_report_svg_axes(f, &fr, &ax, &ay, t, n && kind_of(sc->s[idx[0]].unit) == 'b' ? "block" : n && kind_of(sc->s[idx[0]].unit) == 's' ? "span of blocks" : "sublayer",
                           "influence");
        double bw = fr.pw / (n ? n : 1), zero = dp_report_svg_y(&fr, &ay, 0);
        for (int k = 0; k < n; k++) {
            const struct dp_influence *e = &sc->s[idx[k]];
            char kind = kind_of(e->unit);
            const char *color = kind == 'a' ? dp_report_svg_color(1) : kind == 'f' ? dp_report_svg_color(3) : dp_report_svg_color(0);
            double x = fr.px + k * bw, y = dp_report_svg_y(&fr, &ay, e->influence);
            fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"/>\n", x + bw * 0.15,
                    fmin(y, zero), bw * 0.7, fabs(zero - y), color);
            if (isfinite(e->stderr_) && e->stderr_ > 0) {
                double y1 = dp_report_svg_y(&fr, &ay, e->influence - e->stderr_), y2 = dp_report_svg_y(&fr, &ay, e->influence + e->stderr_);
                fprintf(f, "<path d=\"M%.2f %.2f L%.2f %.2f M%.2f %.2f L%.2f %.2f M%.2f %.2f L%.2f %.2f\" stroke=\"#222222\" stroke-width=\"1\" fill=\"none\"/>\n",
                        x + bw / 2, y1, x + bw / 2, y2, x + bw * 0.35, y1, x + bw * 0.65, y1, x + bw * 0.35, y2, x + bw * 0.65, y2);
            }
        }
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#444444\" stroke-width=\"1\"/>\n", fr.px, zero,
                fr.px + fr.pw, zero);
        fputs("</g>\n", f);
        int every = n > 32 ? (n + 31) / 32 : 1;
        size_t longest = 0;
        for (int k = 0; k < n; k++)
            if (strlen(sc->s[idx[k]].unit) > longest) longest = strlen(sc->s[idx[k]].unit);
        bool slant = longest * 7.0 > bw * every; /* labels wider than their bars: slanted */
        for (int k = 0; k < n; k += every)
            dp_report_svg_text(f, fr.px + (k + 0.5) * bw + (slant ? 3 : 0), fr.py + fr.ph + (slant ? 10 : 14), slant ? "end" : "middle",
                               n > 12 ? 9 : 11, NULL, slant ? -35 : 0, sc->s[idx[k]].unit);
    }
    fputs("</svg>\n", f);
}

/* ---- CSV ---- */

static void csv_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, ",%.10g", v);
    else fputs(",", f);
}

dp_status dp_report_sweep_csv(const struct dp_sweep *s, const char *path) {
    struct dp_out o;
    dp_status st = dp_out_open(path, &o);
    if (st) return st;
    FILE *f = o.f;
    fputs("metric,scheme,mode,recover,oracle,n_removed,removed,ppl,ppl_seq,mmlu_accuracy,mmlu_stderr,mmlu_n,"
          "kv_bytes_per_token,kv_fraction,n_params,params_fraction,budget_step",
          f);
    /* the speedup objective's columns come last, and only with it */
    fputs(s->has_draft ? ",draft_accept,c_bytes,c_draft,draft_len,tokens_per_verify,speedup,draft_best\n" : "\n", f);
    for (int r = 0; r < s->n_runs; r++) {
        const struct dp_sweep_run *run = &s->runs[r];
        for (int k = 0; k < run->n_steps; k++) {
            const struct dp_sweep_step *st2 = &run->steps[k];
            fprintf(f, "%s,%s,%s,%s,%d,%d,", run->metric, dp_scheme_name(run->scheme),
                    run->iterative ? "iterative" : "one-shot", run->recover, run->oracle, st2->n_removed);
            for (int i = 0; i < st2->n_removed; i++) {
                char name[16];
                dp_unit_name(st2->removed[i], name);
                fprintf(f, "%s%s", i ? " " : "", name);
            }
            csv_num(f, st2->ppl);
            csv_num(f, st2->ppl_seq);
            csv_num(f, st2->mmlu_n ? st2->mmlu_acc : NAN);
            csv_num(f, st2->mmlu_n ? st2->mmlu_stderr : NAN);
            fprintf(f, ",%d,%lld", st2->mmlu_n, (long long)st2->kv_bytes_per_token);
            csv_num(f, s->kv_full ? (double)st2->kv_bytes_per_token / (double)s->kv_full : NAN);
            fprintf(f, ",%lld", (long long)st2->n_params);
            csv_num(f, s->params_full ? (double)st2->n_params / (double)s->params_full : NAN);
            fprintf(f, ",%d", run->has_budget && run->budget.step == k ? 1 : 0);
            if (s->has_draft) {
                csv_num(f, st2->draft_accept);
                csv_num(f, st2->draft_c_bytes);
                csv_num(f, st2->draft_c_draft);
                fprintf(f, ",%d", st2->draft_len);
                csv_num(f, st2->draft_tokens_per_verify);
                csv_num(f, st2->draft_speedup);
                fprintf(f, ",%d", run->draft_best == k ? 1 : 0);
            }
            fputc('\n', f);
        }
    }
    return dp_out_commit(&o);
}

/* ---- HTML ---- */

static const char *css =
    "body{font-family:Helvetica,Arial,sans-serif;margin:24px auto;max-width:1240px;color:#222;line-height:1.4}"
    "h1{font-size:24px}h2{font-size:19px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:36px}"
    "h3{font-size:16px}table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}"
    "th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".warn{background:#fff4e0;border-left:4px solid #f28e2b;padding:6px 10px;margin:6px 0}"
    ".oracle{background:#fdecec;border-left:4px solid #e15759;padding:6px 10px;margin:6px 0}"
    "figure{margin:12px 0;overflow-x:auto}figcaption{font-size:13px;color:#555}"
    "code{background:#f4f4f4;padding:0 3px}details{margin:8px 0}";

static void html_text(FILE *f, const char *s) {
    dp_report_svg_xml(f, s);
}

/* A number cell with `digits` digits after the point (negative: that many significant digits). */
static void html_num(FILE *f, double v, int digits) {
    fputs("<td class=\"n\">", f);
    if (!isfinite(v)) fputs("&#8211;", f);
    else if (digits < 0) fprintf(f, "%.*g", -digits, v);
    else fprintf(f, "%.*f", digits, v);
    fputs("</td>", f);
}

static void html_units(FILE *f, const struct dp_sweep_step *st) {
    fputs("<td>", f);
    for (int i = 0; i < st->n_removed; i++) {
        char name[16];
        dp_unit_name(st->removed[i], name);
        fprintf(f, "%s%s", i ? " " : "", name);
    }
    if (!st->n_removed) fputs("(none)", f);
    fputs("</td>", f);
}

static void html_sweep(FILE *f, const struct dp_sweep *s, const char *path) {
    fputs("<h2>Sweep: ", f);
    html_text(f, path);
    fputs("</h2>\n<p>Model <code>", f);
    html_text(f, s->model ? s->model : "");
    fprintf(f, "</code>: %d blocks, %lld parameters, %lld bytes of KV cache per token (f32).</p>\n", s->n_blocks,
            (long long)s->params_full, (long long)s->kv_full);
    for (int i = 0; i < s->n_warnings; i++) {
        fputs("<div class=\"warn\">Warning: ", f);
        html_text(f, s->warnings[i]);
        fputs("</div>\n", f);
    }
    bool oracle = false;
    for (int r = 0; r < s->n_runs; r++) oracle |= s->runs[r].oracle;
    if (oracle)
        fputs("<div class=\"oracle\">Runs marked <b>(oracle)</b> use <code>mmlu_shapley</code>, which is measured on the "
              "MMLU test questions themselves: an upper bound on what an importance metric can achieve, not a "
              "method that generalises.</div>\n",
              f);
    if (s->n_args) {
        fputs("<details><summary>Arguments</summary><table>\n", f);
        for (int i = 0; i < s->n_args; i++) {
            fputs("<tr><th>", f);
            html_text(f, s->args[i].key);
            fputs("</th><td>", f);
            html_text(f, s->args[i].value);
            fputs("</td></tr>\n", f);
        }
        fputs("</table></details>\n", f);
    }
    fputs("<figure>\n", f);
    dp_report_sweep_svg(s, f, false);
    fputs("<figcaption>Each line is one run: a metric's order applied to one scheme. Solid lines remove units in the "
          "one-shot order; dashed lines re-score after every removal.</figcaption></figure>\n",
          f);
    fputs("<figure>\n", f);
    if (dp_report_tradeoff_svg(s, f, false))
        fputs("<figcaption>The schemes compared at equal savings: parameters (left) and KV cache (right) removed. "
              "Removing FFN sublayers saves no KV cache.</figcaption>",
              f);
    fputs("</figure>\n", f);
    fputs("<h3>Runs</h3>\n<table><tr><th>metric</th><th>scheme</th><th>mode</th><th>recovery</th><th>steps</th>"
          "<th>order</th><th>ppl, none removed</th><th>ppl, last step</th><th>MMLU %, none removed</th>"
          "<th>MMLU %, last step</th>",
          f);
    if (s->has_budget) fputs("<th>budget step</th><th>bound</th>", f);
    fputs("</tr>\n", f);
    for (int r = 0; r < s->n_runs; r++) {
        const struct dp_sweep_run *run = &s->runs[r];
        fputs("<tr><td>", f);
        html_text(f, run->metric);
        if (run->oracle) fputs(" <b>(oracle)</b>", f);
        fprintf(f, "</td><td>%s</td><td>%s</td><td>", dp_scheme_name(run->scheme), run->iterative ? "iterative" : "one-shot");
        html_text(f, run->recover);
        fprintf(f, "</td><td class=\"n\">%d</td>", run->n_steps);
        if (run->n_steps && dp_metric_is_span(run->metric) && !run->iterative) {
            fputs("<td>best span of n blocks:", f);
            for (int k = 1; k < run->n_steps; k++) {
                const struct dp_sweep_step *st = &run->steps[k];
                if (st->n_removed == 1) fprintf(f, " b%d", st->removed[0].layer);
                else fprintf(f, " b%d..b%d", st->removed[0].layer, st->removed[st->n_removed - 1].layer);
            }
            fputs("</td>", f);
        } else if (run->n_steps) {
            html_units(f, &run->steps[run->n_steps - 1]);
        } else {
            fputs("<td></td>", f);
        }
        const struct dp_sweep_step *a = run->n_steps ? &run->steps[0] : NULL, *b = run->n_steps ? &run->steps[run->n_steps - 1] : NULL;
        html_num(f, a ? a->ppl : NAN, -4);
        html_num(f, b ? b->ppl : NAN, -4);
        html_num(f, a && a->mmlu_n ? a->mmlu_acc : NAN, 2);
        html_num(f, b && b->mmlu_n ? b->mmlu_acc : NAN, 2);
        if (s->has_budget) {
            if (run->has_budget) {
                fprintf(f, "<td class=\"n\">%d</td><td>", run->budget.step);
                html_text(f, run->budget.bound);
                fprintf(f, "%s: ", run->budget.met ? "" : " (not met)");
                html_text(f, run->budget.why);
                fputs("</td>", f);
            } else {
                fputs("<td></td><td></td>", f);
            }
        }
        fputs("</tr>\n", f);
        if (run->note[0]) {
            fputs("<tr><td colspan=\"12\">note: ", f);
            html_text(f, run->note);
            fputs("</td></tr>\n", f);
        }
    }
    fputs("</table>\n<details><summary>Every step</summary>\n<table><tr><th>metric</th><th>scheme</th><th>mode</th>"
          "<th>recovery</th><th>removed (in order)</th><th>ppl</th><th>ppl_seq</th><th>MMLU %</th><th>&#177;</th>"
          "<th>KV bytes/token</th><th>parameters</th></tr>\n",
          f);
    for (int r = 0; r < s->n_runs; r++) {
        const struct dp_sweep_run *run = &s->runs[r];
        for (int k = 0; k < run->n_steps; k++) {
            const struct dp_sweep_step *st = &run->steps[k];
            fputs("<tr><td>", f);
            html_text(f, run->metric);
            fprintf(f, "</td><td>%s</td><td>%s</td><td>", dp_scheme_name(run->scheme), run->iterative ? "iterative" : "one-shot");
            html_text(f, run->recover);
            fputs("</td>", f);
            html_units(f, st);
            html_num(f, st->ppl, 4);
            html_num(f, st->ppl_seq, 4);
            html_num(f, st->mmlu_n ? st->mmlu_acc : NAN, 2);
            html_num(f, st->mmlu_n ? st->mmlu_stderr : NAN, 2);
            fprintf(f, "<td class=\"n\">%lld</td><td class=\"n\">%lld</td></tr>\n", (long long)st->kv_bytes_per_token,
                    (long long)st->n_params);
        }
    }
    fputs("</table></details>\n", f);
}

static void html_scores(FILE *f, const struct dp_influences *sc, const char *path) {
    fputs("<h2>Scores: ", f);
    html_text(f, path);
    fputs("</h2>\n", f);
    if (sc->n_files && sc->calib[0][0]) {
        fputs("<p>Calibration data: <code>", f);
        html_text(f, sc->calib[0]);
        fputs("</code></p>\n", f);
    }
    const char *metrics[64];
    int nm = dp_influences_metrics(sc, metrics, 64);
    for (int i = 0; i < nm; i++)
        if (dp_metric_is_oracle(metrics[i]))
            fputs("<div class=\"oracle\"><code>mmlu_shapley</code> is an <b>oracle</b>: it is measured on the MMLU test "
                  "questions that evaluate the pruned model.</div>\n",
                  f);
    fputs("<figure>\n", f);
    dp_report_scores_svg(sc, f, false);
    fputs("</figure>\n<h3>Orders (first removed first: ascending influence, ties by index)</h3>\n<table><tr><th>metric</th>"
          "<th>units</th><th>order</th></tr>\n",
          f);
    for (int i = 0; i < nm; i++) {
        static const enum dp_scheme kinds[2] = {DP_SCHEME_BLOCK, DP_SCHEME_BOTH};
        int L = 0;
        for (int k = 0; k < sc->n; k++) {
            struct dp_unit u;
            if (!dp_unit_parse(sc->s[k].unit, &u) && u.layer + 1 > L) L = u.layer + 1;
        }
        for (int k = 0; k < 2; k++) {
            if (dp_metric_is_span(metrics[i]) && k == 0) {
                fputs("<tr><td>", f);
                html_text(f, metrics[i]);
                fputs("</td><td>spans</td><td>best span of n blocks:", f);
                for (int n = 1; n <= L; n++) {
                    struct dp_unit span[DP_MAX_LAYERS];
                    bool found;
                    if (dp_prune_span(sc, metrics[i], n, NULL, span, &found) || !found) continue;
                    if (n == 1) fprintf(f, " b%d", span[0].layer);
                    else fprintf(f, " b%d..b%d", span[0].layer, span[n - 1].layer);
                }
                fputs("</td></tr>\n", f);
                continue;
            }
            if (!dp_influences_cover(sc, metrics[i], kinds[k], L)) continue;
            struct dp_unit order[2 * DP_MAX_LAYERS];
            int n;
            if (dp_prune_order(sc, metrics[i], kinds[k], L, NULL, order, &n)) continue;
            fputs("<tr><td>", f);
            html_text(f, metrics[i]);
            fprintf(f, "%s</td><td>%s</td><td>", dp_metric_is_oracle(metrics[i]) ? " <b>(oracle)</b>" : "",
                    k ? "sublayers" : "blocks");
            for (int j = 0; j < n; j++) {
                char name[16];
                dp_unit_name(order[j], name);
                fprintf(f, "%s%s", j ? " " : "", name);
            }
            fputs("</td></tr>\n", f);
        }
    }
    fputs("</table>\n", f);
}

dp_status dp_report_is_sweep(const char *path, bool *is_sweep) {
    struct dp_jv *root;
    dp_status st = dp_json_parse_file(path, &root);
    if (st) return st;
    *is_sweep = dp_json_get(root, "depthprune_sweep") != NULL;
    dp_json_free(root);
    return DP_OK;
}

dp_status dp_report_html(const char *const *files, int n_files, const char *path) {
    struct dp_out o;
    dp_status st = dp_out_open(path, &o);
    if (st) return st;
    FILE *f = o.f;
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>depthprune report</title>\n"
               "<style>%s</style>\n</head>\n<body>\n<h1>depthprune report</h1>\n<p>Written by depthprune %s from:</p>\n<ul>\n",
            css, DP_VERSION);
    for (int i = 0; i < n_files; i++) {
        fputs("<li><code>", f);
        html_text(f, files[i]);
        fputs("</code></li>\n", f);
    }
    fputs("</ul>\n", f);
    for (int i = 0; i < n_files && !st; i++) {
        bool is_sweep;
        if ((st = dp_report_is_sweep(files[i], &is_sweep))) break;
        if (is_sweep) {
            struct dp_sweep *s;
            if ((st = dp_sweep_load(files[i], &s))) break;
            html_sweep(f, s, files[i]);
            dp_sweep_free(s);
        } else {
            struct dp_influences sc;
            memset(&sc, 0, sizeof sc);
            st = dp_influences_load(files[i], &sc);
            if (!st) html_scores(f, &sc, files[i]);
            dp_influences_free(&sc);
        }
    }
    fputs("</body>\n</html>\n", f);
    if (st) {
        dp_out_abort(&o);
        return st;
    }
    return dp_out_commit(&o);
}
