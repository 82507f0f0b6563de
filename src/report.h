/*
 * report: what people look at: CSV rows, SVG figures and one HTML page.
 *
 * Figures are written by hand as SVG 1.1 (valid XML, every text escaped):
 *   - a sweep figure: one row per scheme, with MMLU accuracy (%, when
 *     measured; chance level marked) and perplexity (log scale) against the
 *     number of units removed, one line per metric (solid one-shot, dashed
 *     iterative; marker shape per recovery), a legend per row; oracle
 *     metrics (mmlu_shapley) are labelled "(oracle)";
 *   - a trade-off figure: perplexity against the fraction of parameters kept,
 *     one line per scheme (its best one-shot run), to compare schemes at
 *     equal savings;
 *   - a scores figure: for each (scores file, metric) a bar chart of every
 *     unit's influence (with standard-error whiskers for random estimates).
 * The HTML page embeds the figures inline and holds tables of the runs,
 * steps, budgets, orders and warnings; it loads nothing from outside.
 */
#ifndef DP_REPORT_H
#define DP_REPORT_H

#include "prune.h"
#include "sweep.h"

#include <stdio.h>

/* Write the CSV of a sweep (header + one row per step) to path, atomically. */
dp_status dp_report_sweep_csv(const struct dp_sweep *s, const char *path);

/*
 * SVG figures to f. standalone: a whole document (XML declaration and
 * namespace) rather than an element to embed in HTML.
 */
void dp_report_sweep_svg(const struct dp_sweep *s, FILE *f, bool standalone);
/* Perplexity against parameters kept, one line per scheme; false (nothing written) when there is no perplexity. */
bool dp_report_tradeoff_svg(const struct dp_sweep *s, FILE *f, bool standalone);
void dp_report_scores_svg(const struct dp_influences *sc, FILE *f, bool standalone);

/* Write a sweep's SVG figure to path, atomically. */
dp_status dp_report_sweep_svg_file(const struct dp_sweep *s, const char *path);

/*
 * The HTML report of score files and sweep files (either may be empty) to
 * path, atomically. Files are read here; a file of neither kind fails,
 * naming it.
 */
dp_status dp_report_html(const char *const *files, int n_files, const char *path);

/* Whether a JSON file is a sweep (true) or something else (false); fails when unreadable. */
dp_status dp_report_is_sweep(const char *path, bool *is_sweep);

#endif
