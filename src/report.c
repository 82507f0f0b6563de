/*
 * report: CSV, SVG and HTML (see report.h).
 *
 * The SVG is built from three pieces: an axis (linear or log, with "nice"
 * ticks at 1, 2 and 5 times a power of ten), a chart (frame, grid, ticks,
 * axis labels, title, then polylines or bars clipped to the plot area) and a
 * legend. Coordinates are printed with two decimals; every piece of text
 * goes through xml_text, so file names with '&' or '<' cannot break the
 * document. Colours come from a colour-blind-safe palette (Tableau 10), one
 * per metric, the same in every chart of a figure; the mode is the dash
 * pattern and the recovery the marker shape, so a line can be identified
 * in print as well.
 */
#include "report.h"

#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1",
                                "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#bab0ac"};
#define N_PALETTE (int)(sizeof palette / sizeof *palette)

static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default:
            /* control characters are not allowed in XML 1.0 */
            if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t') fputc(' ', f);
            else fputc(*s, f);
        }
    }
}

/* A text element; anchor "start", "middle" or "end"; rotate in degrees (0: none). */
static void svg_text(FILE *f, double x, double y, const char *anchor, int size, const char *weight, double rotate,
                     const char *text) {
    fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"%s\" font-size=\"%d\"", x, y, anchor, size);
    if (weight) fprintf(f, " font-weight=\"%s\"", weight);
    if (rotate != 0) fprintf(f, " transform=\"rotate(%.0f %.2f %.2f)\"", rotate, x, y);
    fputs(">", f);
    xml_text(f, text);
    fputs("</text>\n", f);
}

static void svg_begin(FILE *f, double w, double h, bool standalone, const char *title) {
    if (standalone) fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" font-family=\"Helvetica, Arial, sans-serif\">\n",
            w, h, w, h);
    fputs("<title>", f);
    xml_text(f, title);
    fputs("</title>\n", f);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", w, h);
}

/* ---- axes ---- */

struct axis {
    double lo, hi;
    bool log;
    int n_ticks;
    double ticks[64];
};

static double nice_step(double span, int target) {
    double raw = span / target, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/* A linear axis over [lo, hi] widened to nice ticks. integer: ticks at whole numbers. */
static void axis_linear(struct axis *a, double lo, double hi, bool integer) {
    memset(a, 0, sizeof *a);
    if (!(hi > lo)) {
        double pad = fabs(lo) > 0 ? fabs(lo) * 0.1 : 1;
        lo -= pad;
        hi += pad;
    }
    double step = nice_step(hi - lo, 5);
    if (integer && step < 1) step = 1;
    a->lo = floor(lo / step + 1e-9) * step;
    a->hi = ceil(hi / step - 1e-9) * step;
    for (double t = a->lo; t <= a->hi + step * 1e-6 && a->n_ticks < 64; t += step) a->ticks[a->n_ticks++] = fabs(t) < step * 1e-9 ? 0 : t;
}

/* A log axis over [lo, hi] (both > 0) widened to 1-2-5 ticks, or whole decades when it spans many. */
static void axis_log(struct axis *a, double lo, double hi) {
    memset(a, 0, sizeof *a);
    a->log = true;
    if (!(lo > 0)) lo = 1;
    if (!(hi > lo)) hi = lo * 2;
    double d0 = floor(log10(lo)), d1 = ceil(log10(hi));
    static const double mant[] = {1, 2, 5};
    bool fine = d1 - d0 <= 3;
    /* lower bound: the largest tick <= lo; upper: the smallest tick >= hi */
    double tlo = pow(10, d0), thi = pow(10, d1);
    if (fine) {
        for (int i = 0; i < 3; i++)
            if (mant[i] * pow(10, d0) <= lo) tlo = mant[i] * pow(10, d0);
        for (int i = 2; i >= 0; i--)
            if (mant[i] * pow(10, d1 - 1) >= hi) thi = mant[i] * pow(10, d1 - 1);
    }
    a->lo = tlo;
    a->hi = thi;
    double every = d1 - d0 > 7 ? ceil((d1 - d0) / 7) : 1; /* at most about 8 decade labels */
    for (double d = d0; d <= d1 && a->n_ticks < 64; d += every)
        for (int i = 0; i < (fine ? 3 : 1); i++) {
            double t = mant[i] * pow(10, d);
            if (t >= tlo * (1 - 1e-9) && t <= thi * (1 + 1e-9)) a->ticks[a->n_ticks++] = t;
        }
}

/* Position of v in [0, 1] along the axis. */
static double axis_frac(const struct axis *a, double v) {
    if (a->log) return (log(v) - log(a->lo)) / (log(a->hi) - log(a->lo));
    return (v - a->lo) / (a->hi - a->lo);
}

static void tick_label(double v, char *buf, size_t cap) {
    if (v != 0 && (fabs(v) >= 1e5 || fabs(v) < 1e-3)) snprintf(buf, cap, "%.0e", v);
    else snprintf(buf, cap, "%g", v);
}

/* ---- charts ---- */

struct series {
    char label[400];
    int color;        /* palette index */
    bool dashed;
    int marker;       /* 0 circle, 1 square, 2 triangle, 3 diamond */
    int n;
    int run;          /* index of the run it shows */
    const double *x, *y;
};

struct frame {
    double x, y, w, h;          /* the whole panel */
    double px, py, pw, ph;      /* the plot area */
};

static void frame_of(struct frame *fr, double x, double y, double w, double h) {
    fr->x = x;
    fr->y = y;
    fr->w = w;
    fr->h = h;
    fr->px = x + 62;
    fr->py = y + 30;
    fr->pw = w - 62 - 14;
    fr->ph = h - 30 - 46;
}

static double fx(const struct frame *fr, const struct axis *a, double v) {
    return fr->px + axis_frac(a, v) * fr->pw;
}

static double fy(const struct frame *fr, const struct axis *a, double v) {
    return fr->py + fr->ph - axis_frac(a, v) * fr->ph;
}

static int clip_id;

/* Frame, grid, ticks, labels and title; opens a clipped group for the data (close with "</g>"). */
static void chart_axes(FILE *f, const struct frame *fr, const struct axis *ax, const struct axis *ay, const char *title,
                       const char *xlabel, const char *ylabel) {
    svg_text(f, fr->px + fr->pw / 2, fr->y + 18, "middle", 13, "bold", 0, title);
    fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#fafafa\" stroke=\"#444444\" stroke-width=\"1\"/>\n",
            fr->px, fr->py, fr->pw, fr->ph);
    char buf[32];
    for (int i = 0; i < ax->n_ticks; i++) {
        double x = fx(fr, ax, ax->ticks[i]);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#e0e0e0\" stroke-width=\"1\"/>\n", x, fr->py, x,
                fr->py + fr->ph);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#444444\" stroke-width=\"1\"/>\n", x,
                fr->py + fr->ph, x, fr->py + fr->ph + 4);
        tick_label(ax->ticks[i], buf, sizeof buf);
        svg_text(f, x, fr->py + fr->ph + 17, "middle", 11, NULL, 0, buf);
    }
    for (int i = 0; i < ay->n_ticks; i++) {
        double y = fy(fr, ay, ay->ticks[i]);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#e0e0e0\" stroke-width=\"1\"/>\n", fr->px, y,
                fr->px + fr->pw, y);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#444444\" stroke-width=\"1\"/>\n", fr->px - 4,
                y, fr->px, y);
        tick_label(ay->ticks[i], buf, sizeof buf);
        svg_text(f, fr->px - 7, y + 4, "end", 11, NULL, 0, buf);
    }
    svg_text(f, fr->px + fr->pw / 2, fr->py + fr->ph + 36, "middle", 12, NULL, 0, xlabel);
    svg_text(f, fr->x + 14, fr->py + fr->ph / 2, "middle", 12, NULL, -90, ylabel);
    int id = ++clip_id;
    fprintf(f, "<clipPath id=\"dpclip%d\"><rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/></clipPath>\n", id,
            fr->px - 5, fr->py - 5, fr->pw + 10, fr->ph + 10);
    fprintf(f, "<g clip-path=\"url(#dpclip%d)\">\n", id);
}

static void marker(FILE *f, double x, double y, int shape, const char *color) {
    switch (shape & 3) {
    case 0: fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"%s\"/>\n", x, y, color); break;
    case 1: fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"6\" height=\"6\" fill=\"%s\"/>\n", x - 3, y - 3, color); break;
    case 2:
        fprintf(f, "<polygon points=\"%.2f,%.2f %.2f,%.2f %.2f,%.2f\" fill=\"%s\"/>\n", x, y - 4, x - 3.5, y + 2.5, x + 3.5,
                y + 2.5, color);
        break;
    default:
        fprintf(f, "<polygon points=\"%.2f,%.2f %.2f,%.2f %.2f,%.2f %.2f,%.2f\" fill=\"%s\"/>\n", x, y - 4, x + 4, y, x, y + 4,
                x - 4, y, color);
    }
}

static bool usable(const struct axis *a, double v) {
    return isfinite(v) && (!a->log || v > 0);
}

/* The lines of a chart; points that are missing (NaN) break a line. */
static void chart_lines(FILE *f, const struct frame *fr, const struct axis *ax, const struct axis *ay,
                        const struct series *s, int n) {
    for (int i = 0; i < n; i++) {
        const char *color = palette[s[i].color % N_PALETTE];
        bool open = false;
        for (int k = 0; k < s[i].n; k++) {
            if (!usable(ax, s[i].x[k]) || !usable(ay, s[i].y[k])) {
                if (open) fputs("\"/>\n", f);
                open = false;
                continue;
            }
            if (!open)
                fprintf(f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\"%s d=\"M", color,
                        s[i].dashed ? " stroke-dasharray=\"6 4\"" : "");
            else fputs(" L", f);
            fprintf(f, "%.2f %.2f", fx(fr, ax, s[i].x[k]), fy(fr, ay, s[i].y[k]));
            open = true;
        }
        if (open) fputs("\"/>\n", f);
        for (int k = 0; k < s[i].n; k++)
            if (usable(ax, s[i].x[k]) && usable(ay, s[i].y[k]))
                marker(f, fx(fr, ax, s[i].x[k]), fy(fr, ay, s[i].y[k]), s[i].marker, color);
    }
}

static void legend(FILE *f, double x, double y, double h, const struct series *s, int n, const char *title) {
    svg_text(f, x, y + 14, "start", 12, "bold", 0, title);
    double dy = n ? (h - 26) / n : 18;
    if (dy > 18) dy = 18;
    int size = dy < 12 ? 9 : 11;
    for (int i = 0; i < n; i++) {
        double yy = y + 30 + i * dy;
        const char *color = palette[s[i].color % N_PALETTE];
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" stroke-width=\"1.8\"%s/>\n", x, yy,
                x + 26, yy, color, s[i].dashed ? " stroke-dasharray=\"6 4\"" : "");
        marker(f, x + 13, yy, s[i].marker, color);
        svg_text(f, x + 32, yy + 4, "start", size, NULL, 0, s[i].label);
    }
}

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
    svg_begin(f, W, H, standalone, title);
    svg_text(f, 16, 24, "start", 16, "bold", 0, title);
    snprintf(title, sizeof title,
             "%s against units removed, one chart per scheme; solid: one-shot, dashed: iterative%s",
             any_acc && any_ppl ? "MMLU accuracy and perplexity (log scale)" : any_acc ? "MMLU accuracy" : "perplexity (log scale)",
             many_rec ? "; marker: recovery" : "");
    svg_text(f, 16, 44, "start", 12, NULL, 0, title);
    if (!sweep_data(s, &d) || !cols) {
        svg_text(f, 16, top + 20, "start", 12, NULL, 0, d.x ? "no perplexity or MMLU was evaluated" : "out of memory");
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
        axis_linear(&ax, 0, xmax, true);
        char t[128], xl[128];
        snprintf(xl, sizeof xl, "%s removed", !strcmp(schemes.v[si], "block") ? "blocks" : !strcmp(schemes.v[si], "attn") ? "attention sublayers" : !strcmp(schemes.v[si], "ffn") ? "FFN sublayers" : "sublayers (attention or FFN)");
        int col = 0;
        if (any_acc) {
            struct frame fr;
            frame_of(&fr, col++ * pw, y0, pw, ph);
            struct axis ay;
            if (!isfinite(alo)) alo = 0, ahi = 100;
            axis_linear(&ay, fmin(alo, 25) - 1, ahi + 1, false);
            snprintf(t, sizeof t, "scheme %s: MMLU accuracy", schemes.v[si]);
            chart_axes(f, &fr, &ax, &ay, t, xl, "MMLU accuracy (%)");
            double cy = fy(&fr, &ay, 25);
            fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#888888\" stroke-width=\"1\" stroke-dasharray=\"2 3\"/>\n",
                    fr.px, cy, fr.px + fr.pw, cy);
            for (int i = 0; i < n; i++) ser[i].y = d.acc + (size_t)ser[i].run * d.max_steps;
            chart_lines(f, &fr, &ax, &ay, ser, n);
            fputs("</g>\n", f);
            svg_text(f, fr.px + fr.pw - 4, cy - 4, "end", 10, NULL, 0, "chance (25%)");
        }
        if (any_ppl) {
            struct frame fr;
            frame_of(&fr, col++ * pw, y0, pw, ph);
            struct axis ay;
            if (!isfinite(plo)) plo = 1, phi = 10;
            axis_log(&ay, plo, phi);
            snprintf(t, sizeof t, "scheme %s: perplexity", schemes.v[si]);
            chart_axes(f, &fr, &ax, &ay, t, xl, "perplexity (log scale)");
            for (int i = 0; i < n; i++) ser[i].y = d.ppl + (size_t)ser[i].run * d.max_steps;
            chart_lines(f, &fr, &ax, &ay, ser, n);
            fputs("</g>\n", f);
        }
        snprintf(t, sizeof t, "scheme %s", schemes.v[si]);
        legend(f, cols * pw + 6, y0 + 24, ph - 40, ser, n, t);
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
    svg_begin(f, 2 * pw + lw, top + ph + 10, standalone, "depthprune: perplexity against savings, per scheme");
    svg_text(f, 16, 24, "start", 16, "bold", 0, "Perplexity against savings, per scheme");
    svg_text(f, 16, 44, "start", 12, NULL, 0,
             "each scheme's best run (lowest mean log perplexity, one-shot without recovery where there is one)");
    struct axis ay;
    axis_log(&ay, plo, phi);
    for (int panel = 0; panel < 2; panel++) {
        struct frame fr;
        frame_of(&fr, panel * pw, top, pw, ph);
        double xmax = 1;
        for (int i = 0; i < n; i++) {
            ser[i].x = (panel ? d.kv : d.params) + (size_t)ser[i].run * d.max_steps;
            for (int k = 0; k < ser[i].n; k++)
                if (isfinite(ser[i].x[k]) && ser[i].x[k] > xmax) xmax = ser[i].x[k];
        }
        struct axis ax;
        axis_linear(&ax, 0, xmax, false);
        chart_axes(f, &fr, &ax, &ay, panel ? "perplexity against KV cache saved" : "perplexity against parameters saved",
                   panel ? "KV cache removed (% of bytes per token)" : "parameters removed (% of all, embeddings included)",
                   "perplexity (log scale)");
        chart_lines(f, &fr, &ax, &ay, ser, n);
        fputs("</g>\n", f);
    }
    legend(f, 2 * pw + 6, top + 24, ph - 40, ser, n, "scheme");
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
    svg_begin(f, cols * pw, top + (rows ? rows : 1) * ph + 10, standalone, "depthprune: influence of every unit");
    svg_text(f, 16, 24, "start", 16, "bold", 0, "Influence of every unit, per metric");
    svg_text(f, 16, 44, "start", 12, NULL, 0,
             "larger = more important; one-shot pruning removes the smallest first; whiskers: one standard error");
    static const char *kinds[3] = {"block", "attention sublayer", "FFN sublayer"};
    static const int colors[3] = {0, 1, 3};
    for (int i = 0; i < 3; i++) {
        double x = cols * pw - 400 + i * 130;
        fprintf(f, "<rect x=\"%.2f\" y=\"14\" width=\"10\" height=\"10\" fill=\"%s\"/>\n", x, palette[colors[i]]);
        svg_text(f, x + 14, 23, "start", 11, NULL, 0, kinds[i]);
    }
    for (int c = 0; c < n_charts; c++) {
        struct frame fr;
        frame_of(&fr, (c % cols) * pw, top + (c / cols) * ph, pw, ph);
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
        axis_linear(&ax, 0, n > 0 ? n : 1, true);
        ax.n_ticks = 0;
        axis_linear(&ay, lo, hi, false);
        char t[256];
        snprintf(t, sizeof t, "%s%s", chart_metric[c], dp_metric_is_oracle(chart_metric[c]) ? " (oracle: measured on MMLU test questions)" : "");
        chart_axes(f, &fr, &ax, &ay, t, n && kind_of(sc->s[idx[0]].unit) == 'b' ? "block" : n && kind_of(sc->s[idx[0]].unit) == 's' ? "span of blocks" : "sublayer",
                   "influence");
        double bw = fr.pw / (n ? n : 1), zero = fy(&fr, &ay, 0);
        for (int k = 0; k < n; k++) {
            const struct dp_influence *e = &sc->s[idx[k]];
            char kind = kind_of(e->unit);
            const char *color = kind == 'a' ? palette[1] : kind == 'f' ? palette[3] : palette[0];
            double x = fr.px + k * bw, y = fy(&fr, &ay, e->influence);
            fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"/>\n", x + bw * 0.15,
                    fmin(y, zero), bw * 0.7, fabs(zero - y), color);
            if (isfinite(e->stderr_) && e->stderr_ > 0) {
                double y1 = fy(&fr, &ay, e->influence - e->stderr_), y2 = fy(&fr, &ay, e->influence + e->stderr_);
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
            svg_text(f, fr.px + (k + 0.5) * bw + (slant ? 3 : 0), fr.py + fr.ph + (slant ? 10 : 14), slant ? "end" : "middle",
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
          "kv_bytes_per_token,kv_fraction,n_params,params_fraction,budget_step\n",
          f);
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
            fprintf(f, ",%d\n", run->has_budget && run->budget.step == k ? 1 : 0);
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
    xml_text(f, s);
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
