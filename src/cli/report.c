/*
 * report: one self-contained HTML page (figures inline, no external assets)
 * from score files and sweep files, in the order given (dp_report_html).
 * A client of the public header alone.
 */
#include "cli.h"

#define CMD "report"

int cmd_report(int argc, char **argv) {
    const char *out = NULL;
    const struct cli_opt opts[] = {{"-o", "--output", false, &out, "HTML file to write"}, CLI_END};
    const char *files[256];
    int n_files, rc = cli_parse(CMD, argc, argv, opts, files, 256, &n_files);
    const char *syn = "SCORES.json SWEEP.json ... -o report.html";
    if (rc) return rc == 2 && !n_files ? cli_usage(CMD, syn, opts) : rc;
    if (!n_files) return cli_error(CMD, 2, "no input files (scores or sweep JSON)");
    if (!out) return cli_error(CMD, 2, "missing -o report.html");
    struct cli_io io = {0};
    for (int i = 0; i < n_files; i++) cli_io_in(&io, "", files[i]);
    cli_io_out(&io, "-o", out);
    if ((rc = cli_io_check(CMD, &io))) return rc;
    if (dp_report_html(files, n_files, out)) return cli_error(CMD, 1, "%s", dp_last_error());
    fprintf(stderr, "depthprune report: wrote %s\n", out);
    return 0;
}
