/*
 * cli: what the subcommands share: a table-driven option parser, number
 * parsing with range checks, model opening with the common flags (-m,
 * --vocab, --drop, -t) and the error/exit convention (one line on stderr,
 * exit 1 for failures, 2 for usage errors).
 */
#ifndef DP_CLI_H
#define DP_CLI_H

#include "depthprune.h"
#include "base.h"

#include <stdio.h>

/* One option: `flag` true for options without a value (their value is "1" when given). */
struct cli_opt {
    const char *name;      /* "-m" or "--ctx" */
    const char *alias;     /* another spelling or NULL */
    bool flag;
    const char **value;    /* receives the value (NULL when absent) */
    const char *help;
};

#define CLI_END {NULL, NULL, false, NULL, NULL}

/* Parse argv[1..] (argv[0] is the subcommand) against opts; positional arguments go to pos (up to max_pos). */
int cli_parse(const char *cmd, int argc, char **argv, const struct cli_opt *opts, const char **pos, int max_pos,
              int *n_pos);
/* Print usage of a subcommand to stderr and return 2. */
int cli_usage(const char *cmd, const char *synopsis, const struct cli_opt *opts);
/* Print "depthprune CMD: message" to stderr and return code. */
int cli_error(const char *cmd, int code, const char *fmt, ...) DP_PRINTF(3, 4);

/* Number parsing: false (with a message printed) when value is not a number in [lo, hi]. */
bool cli_int(const char *cmd, const char *opt, const char *value, long lo, long hi, long *out);
bool cli_double(const char *cmd, const char *opt, const char *value, double lo, double hi, double *out);

/* The options every model command shares. */
struct cli_common {
    const char *model, *vocab, *drop, *threads, *json;
};
#define CLI_COMMON_OPTS(c)                                                                         \
    {"-m", "--model", false, &(c).model, "model file (GGUF or llama2.c .bin)"},                    \
    {"--vocab", NULL, false, &(c).vocab, "tokenizer of a llama2.c checkpoint (tok512.bin)"},      \
    {"--drop", NULL, false, &(c).drop, "units to remove, e.g. b2,a4,f0"},                         \
    {"-t", "--threads", false, &(c).threads, "threads (default: all cores)"},                      \
    {"--json", NULL, true, &(c).json, "one JSON object on stdout"}

/* Open the model, build the mask and the pool from the common options; prints errors. */
struct dp_hooks;
struct cli_model {
    struct dp_model *m;
    struct dp_mask mask;
    struct dp_pool *pool;
    int n_threads;
    /*
     * Replacements of removed units (recoveries from --plan/--recover), or
     * NULL: pass to dp_session_forward_hooked (src/model.h) in every forward
     * pass of the pruned model so recovered units take effect.
     */
    const struct dp_hooks *hooks;
};
int cli_open(const char *cmd, const struct cli_common *c, struct cli_model *out);
void cli_close(struct cli_model *cm);

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
