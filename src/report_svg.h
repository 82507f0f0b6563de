/*
 * report_svg: the SVG kit of the figures (report.c), internal to the report
 * module. A figure opens with dp_report_svg_begin, lays out panels with
 * dp_report_svg_frame, draws each with dp_report_svg_axes (which opens a
 * clipped group: close it with "</g>"), dp_report_svg_lines or its own
 * marks, and a dp_report_svg_legend; every text goes through
 * dp_report_svg_xml. Nothing here allocates or fails: output errors are the
 * caller's FILE's (checked when the file is committed).
 */
#ifndef DP_REPORT_SVG_H
#define DP_REPORT_SVG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* An axis: [lo, hi], linear or log, and its ticks. */
struct axis {
    double lo, hi;
    bool log;
    int n_ticks;
    double ticks[64];
};

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

/* Colour i of the palette (Tableau 10, colour-blind safe; i taken modulo its 10 colours). */
const char *dp_report_svg_color(int i);
/* Text escaped for XML (control characters but newline and tab become spaces). */
void dp_report_svg_xml(FILE *f, const char *s);
/* A text element; anchor "start", "middle" or "end"; weight NULL for normal; rotate in degrees (0: none). */
void dp_report_svg_text(FILE *f, double x, double y, const char *anchor, int size, const char *weight, double rotate,
                        const char *text);
/* The <svg> element (w x h, white background); standalone adds the XML declaration. */
void dp_report_svg_begin(FILE *f, double w, double h, bool standalone, const char *title);

/* A linear axis over [lo, hi] widened to nice ticks. integer: ticks at whole numbers. */
void dp_report_svg_axis_linear(struct axis *a, double lo, double hi, bool integer);
/* A log axis over [lo, hi] (both > 0) widened to 1-2-5 ticks, or whole decades when it spans many. */
void dp_report_svg_axis_log(struct axis *a, double lo, double hi);

/* A panel at (x, y) of w x h and its plot area (margins for ticks, labels and title). */
void dp_report_svg_frame(struct frame *fr, double x, double y, double w, double h);
/* The position of value v along an axis, in the plot area of fr. */
double dp_report_svg_x(const struct frame *fr, const struct axis *a, double v);
double dp_report_svg_y(const struct frame *fr, const struct axis *a, double v);
/* Frame, grid, ticks, labels and title; opens a clipped group for the data (close with "</g>"). */
void dp_report_svg_axes(FILE *f, const struct frame *fr, const struct axis *ax, const struct axis *ay, const char *title,
                        const char *xlabel, const char *ylabel);
/* A marker: shape 0 circle, 1 square, 2 triangle, 3 diamond. */
void dp_report_svg_marker(FILE *f, double x, double y, int shape, const char *color);
/* The lines of n series (with markers); points that are missing (NaN, or <= 0 on a log axis) break a line. */
void dp_report_svg_lines(FILE *f, const struct frame *fr, const struct axis *ax, const struct axis *ay,
                         const struct series *s, int n);
/* A legend of n series in a column at (x, y), h high, under a bold title. */
void dp_report_svg_legend(FILE *f, double x, double y, double h, const struct series *s, int n, const char *title);

#endif
