/*
 * report_svg: the SVG kit the figures of report.c are drawn with (see
 * report_svg.h): text, axes, charts and legends, written by hand as SVG 1.1.
 *
 * The SVG is built from three pieces: an axis (linear or log, with "nice"
 * ticks at 1, 2 and 5 times a power of ten), a chart (frame, grid, ticks,
 * axis labels, title, then polylines or bars clipped to the plot area) and a
 * legend. Coordinates are printed with two decimals; every piece of text
 * goes through dp_report_svg_xml, so file names with '&' or '<' cannot break
 * the document. Colours come from a colour-blind-safe palette (Tableau 10).
 */
#include "report_svg.h"

#include <math.h>
#include <string.h>

static const char *palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1",
                                "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#bab0ac"};
#define N_PALETTE (int)(sizeof palette / sizeof *palette)

const char *dp_report_svg_color(int i) { return palette[i % N_PALETTE]; }

void dp_report_svg_xml(FILE *f, const char *s) {
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
void dp_report_svg_text(FILE *f, double x, double y, const char *anchor, int size, const char *weight, double rotate,
                        const char *text) {
    fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"%s\" font-size=\"%d\"", x, y, anchor, size);
    if (weight) fprintf(f, " font-weight=\"%s\"", weight);
    if (rotate != 0) fprintf(f, " transform=\"rotate(%.0f %.2f %.2f)\"", rotate, x, y);
    fputs(">", f);
    dp_report_svg_xml(f, text);
    fputs("</text>\n", f);
}

void dp_report_svg_begin(FILE *f, double w, double h, bool standalone, const char *title) {
    if (standalone) fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" font-family=\"Helvetica, Arial, sans-serif\">\n",
            w, h, w, h);
    fputs("<title>", f);
    dp_report_svg_xml(f, title);
    fputs("</title>\n", f);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", w, h);
}

/* ---- axes ---- */

static double nice_step(double span, int target) {
    double raw = span / target, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/* A linear axis over [lo, hi] widened to nice ticks. integer: ticks at whole numbers. */
void dp_report_svg_axis_linear(struct axis *a, double lo, double hi, bool integer) {
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
void dp_report_svg_axis_log(struct axis *a, double lo, double hi) {
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

void dp_report_svg_frame(struct frame *fr, double x, double y, double w, double h) {
    fr->x = x;
    fr->y = y;
    fr->w = w;
    fr->h = h;
    fr->px = x + 62;
    fr->py = y + 30;
    fr->pw = w - 62 - 14;
    fr->ph = h - 30 - 46;
}

double dp_report_svg_x(const struct frame *fr, const struct axis *a, double v) {
    return fr->px + axis_frac(a, v) * fr->pw;
}

double dp_report_svg_y(const struct frame *fr, const struct axis *a, double v) {
    return fr->py + fr->ph - axis_frac(a, v) * fr->ph;
}

static int clip_id;

/* Frame, grid, ticks, labels and title; opens a clipped group for the data (close with "</g>"). */
void dp_report_svg_axes(FILE *f, const struct frame *fr, const struct axis *ax, const struct axis *ay, const char *title,
                        const char *xlabel, const char *ylabel) {
    dp_report_svg_text(f, fr->px + fr->pw / 2, fr->y + 18, "middle", 13, "bold", 0, title);
    fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#fafafa\" stroke=\"#444444\" stroke-width=\"1\"/>\n",
            fr->px, fr->py, fr->pw, fr->ph);
    char buf[32];
    for (int i = 0; i < ax->n_ticks; i++) {
        double x = dp_report_svg_x(fr, ax, ax->ticks[i]);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#e0e0e0\" stroke-width=\"1\"/>\n", x, fr->py, x,
                fr->py + fr->ph);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#444444\" stroke-width=\"1\"/>\n", x,
                fr->py + fr->ph, x, fr->py + fr->ph + 4);
        tick_label(ax->ticks[i], buf, sizeof buf);
        dp_report_svg_text(f, x, fr->py + fr->ph + 17, "middle", 11, NULL, 0, buf);
    }
    for (int i = 0; i < ay->n_ticks; i++) {
        double y = dp_report_svg_y(fr, ay, ay->ticks[i]);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#e0e0e0\" stroke-width=\"1\"/>\n", fr->px, y,
                fr->px + fr->pw, y);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#444444\" stroke-width=\"1\"/>\n", fr->px - 4,
                y, fr->px, y);
        tick_label(ay->ticks[i], buf, sizeof buf);
        dp_report_svg_text(f, fr->px - 7, y + 4, "end", 11, NULL, 0, buf);
    }
    dp_report_svg_text(f, fr->px + fr->pw / 2, fr->py + fr->ph + 36, "middle", 12, NULL, 0, xlabel);
    dp_report_svg_text(f, fr->x + 14, fr->py + fr->ph / 2, "middle", 12, NULL, -90, ylabel);
    int id = ++clip_id;
    fprintf(f, "<clipPath id=\"dpclip%d\"><rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/></clipPath>\n", id,
            fr->px - 5, fr->py - 5, fr->pw + 10, fr->ph + 10);
    fprintf(f, "<g clip-path=\"url(#dpclip%d)\">\n", id);
}

void dp_report_svg_marker(FILE *f, double x, double y, int shape, const char *color) {
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
void dp_report_svg_lines(FILE *f, const struct frame *fr, const struct axis *ax, const struct axis *ay,
                         const struct series *s, int n) {
    for (int i = 0; i < n; i++) {
        const char *color = dp_report_svg_color(s[i].color);
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
            fprintf(f, "%.2f %.2f", dp_report_svg_x(fr, ax, s[i].x[k]), dp_report_svg_y(fr, ay, s[i].y[k]));
            open = true;
        }
        if (open) fputs("\"/>\n", f);
        for (int k = 0; k < s[i].n; k++)
            if (usable(ax, s[i].x[k]) && usable(ay, s[i].y[k]))
                dp_report_svg_marker(f, dp_report_svg_x(fr, ax, s[i].x[k]), dp_report_svg_y(fr, ay, s[i].y[k]),
                                     s[i].marker, color);
    }
}

void dp_report_svg_legend(FILE *f, double x, double y, double h, const struct series *s, int n, const char *title) {
    dp_report_svg_text(f, x, y + 14, "start", 12, "bold", 0, title);
    double dy = n ? (h - 26) / n : 18;
    if (dy > 18) dy = 18;
    int size = dy < 12 ? 9 : 11;
    for (int i = 0; i < n; i++) {
        double yy = y + 30 + i * dy;
        const char *color = dp_report_svg_color(s[i].color);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" stroke-width=\"1.8\"%s/>\n", x, yy,
                x + 26, yy, color, s[i].dashed ? " stroke-dasharray=\"6 4\"" : "");
        dp_report_svg_marker(f, x + 13, yy, s[i].marker, color);
        dp_report_svg_text(f, x + 32, yy + 4, "start", size, NULL, 0, s[i].label);
    }
}
