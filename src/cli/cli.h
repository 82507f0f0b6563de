/*
 * cli: what the subcommands share: a table-driven option parser, number
 * parsing with range checks, model opening with the common flags (-m,
 * --vocab, --drop, -t) and the error/exit convention (one line on stderr,
 * exit 1 for failures, 2 for usage errors).
 */
#ifndef DP_CLI_H
#define DP_CLI_H

#include "depthprune.h"

#include <stdio.h>

#if defined(__GNUC__)
#define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CLI_PRINTF(a, b)
#endif

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
int cli_error(const char *cmd, int code, const char *fmt, ...) CLI_PRINTF(3, 4);

/*
 * The progress printer every command installs in its steps' params (the
 * library prints none of its own): a line "\rSTAGE: done/total (P%)" on
 * stderr, at most every 0.2 s per stage and at the end, when DP_PROGRESS=1
 * or (DP_PROGRESS unset) stderr is a terminal; never cancels.
 * cli_progress_end ends the line (cli_error ends an open one first).
 * cli_progress_mode, before the first report: force (--progress) turns it
 * on; json (--json) turns it off unless DP_PROGRESS is set.
 */
bool cli_progress(const char *stage, int64_t done, int64_t total, void *user);
void cli_progress_end(void);
void cli_progress_mode(bool json, bool force);

/* Number parsing: false (with a message printed) when value is not a number in [lo, hi]. */
bool cli_int(const char *cmd, const char *opt, const char *value, long lo, long hi, long *out);
bool cli_double(const char *cmd, const char *opt, const char *value, double lo, double hi, double *out);

/* The options every model command shares. */
struct cli_common {
    const char *model, *vocab, *drop, *threads, *json;
    const char *act; /* --act: activation mode of the matrix products (handled by cli_open) */
    const char *max_mem; /* --max-mem: the memory a run may plan for (handled by cli_open, checked by cli_check_mem) */
    /* plans and recoveries (handled by cli_open) */
    const char *plan, *allow_twin, *save_plan, *recover, *calib, *calib_docs, *calib_ctx, *calib_max_seqs, *recover_stats,
        *recover_init, *ridge, *objective, *steps, *lr, *batch, *seed;
    /*
     * Set by a command before cli_open: its evaluated corpus's --ctx, --docs
     * and --max-seqs (the calibration defaults, DESIGN.md), or NULL.
     */
    const char *ctx, *docs, *max_seqs;
    /* Set by a command that fits recoveries itself (e.g. a comma list of kinds): cli_open then ignores --recover. */
    bool own_recover;
};
#define CLI_COMMON_OPTS(c)                                                                         \
    {"-m", "--model", false, &(c).model, "model file (GGUF or llama2.c .bin)"},                    \
    {"--vocab", NULL, false, &(c).vocab, "tokenizer of a llama2.c checkpoint (tok512.bin)"},      \
    {"--drop", NULL, false, &(c).drop, "units to remove, e.g. b2,a4,f0"},                         \
    {"-t", "--threads", false, &(c).threads, "threads (default: all cores)"},                      \
    {"--act", NULL, false, &(c).act, "exact (default) or q8: activations rounded as llama.cpp does per weight type"}, \
    {"--json", NULL, true, &(c).json, "one JSON object on stdout"},                                \
    {"--max-mem", NULL, false, &(c).max_mem, "refuse a run planned to need more memory (e.g. 8G; default: what is available)"}, \
    CLI_RECOVER_OPTS(c)
#define CLI_RECOVER_OPTS(c)                                                                        \
    {"--plan", NULL, false, &(c).plan, "saved plan: units in removal order (+ recovery file)"},   \
    {"--allow-twin", NULL, true, &(c).allow_twin, "accept a plan or scores made on a model of the same shape with other weights"}, \
    {"--save-plan", NULL, false, &(c).save_plan, "write the removed units (+ recovery) as a plan"}, \
    {"--recover", NULL, false, &(c).recover, "none, mean, lowrank:R, bias-trained, lowrank-trained:R"}, \
    {"--calib", NULL, false, &(c).calib, "calibration corpus of --recover"},                        \
    {"--calib-docs", NULL, false, &(c).calib_docs, "calibration documents A:B (default: as --docs)"}, \
    {"--calib-ctx", NULL, false, &(c).calib_ctx, "calibration sequence length (default: as --ctx)"}, \
    {"--calib-max-seqs", NULL, false, &(c).calib_max_seqs, "at most N calibration sequences"},      \
    {"--recover-stats", NULL, false, &(c).recover_stats, "full (default) or sequential"},           \
    {"--recover-init", NULL, false, &(c).recover_init, "trained kinds start from zero (default) or mean"}, \
    {"--ridge", NULL, false, &(c).ridge, "lowrank ridge lambda (default 1e-4)"},                   \
    {"--objective", NULL, false, &(c).objective, "trained kinds: ce (default) or kl"},            \
    {"--steps", NULL, false, &(c).steps, "trained kinds: Adam steps (default 200)"},              \
    {"--lr", NULL, false, &(c).lr, "trained kinds: learning rate (default 1e-2)"},                \
    {"--batch", NULL, false, &(c).batch, "trained kinds: sequences per step (default 8)"},        \
    {"--seed", NULL, false, &(c).seed, "seed (trained recovery; sampling where a command samples)"}

/*
 * Open the model, build the mask and the pool from the common options, and
 * the plan and recovery of --plan/--recover (fitted or loaded, saved with
 * --save-plan); prints errors.
 */
struct dp_hooks;
struct dp_plan;
struct dp_recovery;
struct cli_model {
    struct dp_model *m;
    struct dp_mask mask;
    struct dp_pool *pool;
    int n_threads;
    int64_t max_mem;                  /* --max-mem in bytes, 0 when not given */
    /*
     * Replacements of removed units (recoveries from --plan/--recover), or
     * NULL: pass to dp_session_forward_hooked (src/model.h) in every forward
     * pass of the pruned model so recovered units take effect.
     */
    const struct dp_hooks *hooks;
    struct dp_plan *plan;             /* removed units in removal order (from --plan or --drop) */
    struct dp_recovery *recovery;     /* the recovery behind hooks, or NULL */
    const char *recover_kind;         /* its kind ("mean", "lowrank:8", ...), or NULL */
    struct dp_hooks *hooks_store;     /* (owned) */
};
int cli_open(const char *cmd, const struct cli_common *c, struct cli_model *out);
/*
 * Chunks of a corpus by the paper protocol (documents `docs` A:B or all, ctx
 * tokens, at most max_seqs, 0: all). Errors name docs_opt for a bad range
 * and `what` for the chunking; returns 0 or the exit code after the message.
 */
struct dp_chunks;
int cli_read_chunks(const char *cmd, const struct dp_model *m, const char *file, const char *docs, long ctx,
                    long max_seqs, const char *docs_opt, const char *what, struct dp_chunks **out);
void cli_close(struct cli_model *cm);
/*
 * The recovery part of cli_open (src/cli/common_recover.c, a client of the
 * internal recovery API until the recovery step is in the public header):
 * fit --recover or load the plan's recovery file and install cm->hooks;
 * write the recovery beside a plan saved to plan_path (setting the plan's
 * recovery kind and file); release it.
 */
int cli_recovery_open(const char *cmd, const struct cli_common *c, struct cli_model *cm);
int cli_recovery_save(const char *cmd, const char *plan_path, struct cli_model *cm);
void cli_recovery_close(struct cli_model *cm);
/* The recovery file --save-plan FILE writes: FILE's stem + ".recover.gguf". */
void cli_recover_path(const char *plan_path, char *buf, size_t cap);
/*
 * Before allocating: refuse with one line when `need` bytes exceed --max-mem
 * or the machine's available memory (src/memory.h), naming `what` and the
 * flag that lowers it. Returns 0 or the exit code after the message.
 */
int cli_check_mem(const char *cmd, const struct cli_model *cm, int64_t need, const char *what, const char *flag);
/*
 * cli_check_mem for n_sessions sessions of n_ctx positions under mask (NULL:
 * every unit), each with f32 logits for n_logits positions, plus `extra` bytes.
 */
int cli_check_sessions(const char *cmd, const struct cli_model *cm, const struct dp_mask *mask, int n_sessions,
                       long n_ctx, long n_logits, int64_t extra, const char *flag);

/*
 * The files a command reads and writes, checked before any work by
 * cli_io_check: every input that exists must be a regular file (a folder for
 * cli_io_in_dir), so that a FIFO or a device never blocks a read, and no
 * output may be an input: the same device and inode, so "dir/../file",
 * symlinks and hard links are caught (an output that does not exist yet
 * cannot be one). A folder input covers every file up to two levels below
 * it (MMLU's dev/ and test/). NULL paths are ignored; paths are copied.
 */
struct cli_io_file {
    char opt[32];  /* the option naming it ("" for a positional argument) */
    char *path;    /* (owned) */
    bool out, dir;
};
struct cli_io {
    struct cli_io_file *f;
    int n, cap;
    bool nomem;
};
void cli_io_in(struct cli_io *io, const char *opt, const char *path);
/* Each file of a comma-separated list. */
void cli_io_in_list(struct cli_io *io, const char *opt, const char *list);
void cli_io_in_dir(struct cli_io *io, const char *opt, const char *dir);
void cli_io_out(struct cli_io *io, const char *opt, const char *path);
/*
 * The files of the common options: -m, --vocab, --plan (and the recovery
 * file it names), --calib; --save-plan (and the recovery file it would write).
 */
void cli_io_common(struct cli_io *io, const struct cli_common *c);
/* Check as above and free io's entries; 0, or the exit code after one message naming both files. */
int cli_io_check(const char *cmd, struct cli_io *io);

/*
 * A draft model for speculative decoding (generate --draft): the full mask
 * of m less the units of `spec`, a saved plan file (with its recovery, when
 * it names one) or a comma list of units. Prints errors; cli_draft_close
 * releases it.
 */
struct cli_draft {
    struct dp_mask mask;
    const struct dp_hooks *hooks;     /* the plan's recovery, or NULL */
    struct dp_recovery *recovery;
    struct dp_hooks *hooks_store;     /* (owned) */
    char units[1024];                 /* the removed units as a list */
};
int cli_draft_open(const char *cmd, const struct dp_model *m, const char *spec, struct cli_draft *out);
void cli_draft_close(struct cli_draft *d);

/*
 * Helpers of the header-only commands (sweep, prune, synth, report):
 * cli_progress_lines is cli_progress ending the line when a stage completes
 * (pass it as a params' progress: the evaluations, score, recovery fits);
 * cli_log_line prints "depthprune CMD: LINE" (user: the command name).
 */
bool cli_progress_lines(const char *stage, int64_t done, int64_t total, void *user);
void cli_log_line(const char *line, void *user);
/* The removed units of cm's plan as a comma list (returns their count), and its metric and scheme ("" when none). */
int cli_plan_units(const struct cli_model *cm, char *buf, size_t cap);
const char *cli_plan_metric(const struct cli_model *cm);
const char *cli_plan_scheme(const struct cli_model *cm);
/* A streaming JSON writer with the library's output format (nesting and commas tracked; keys NULL in arrays). */
struct cli_json;
struct cli_json *cli_json_new(FILE *f);
void cli_json_free(struct cli_json *j);
void cli_json_begin_obj(struct cli_json *j, const char *key);
void cli_json_begin_arr(struct cli_json *j, const char *key);
void cli_json_end(struct cli_json *j);
void cli_json_num(struct cli_json *j, const char *key, double v);
void cli_json_int(struct cli_json *j, const char *key, int64_t v);
void cli_json_bool(struct cli_json *j, const char *key, bool v);
void cli_json_null(struct cli_json *j, const char *key);
void cli_json_str(struct cli_json *j, const char *key, const char *s);

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_bench(int argc, char **argv);
/* bench --workload (bench_workload.c): time a whole command with the per-op profile. */
int cli_bench_workload(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_mmlu(int argc, char **argv);
int cmd_mc(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_report(int argc, char **argv);

#endif
