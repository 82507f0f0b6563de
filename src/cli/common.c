/*
 * common: option parsing and model opening shared by the subcommands.
 *
 * cli_open also turns --drop/--plan into a plan (units in removal order) and
 * --recover into replacement hooks: it fits the recovery on --calib (or loads
 * the recovery file a plan names, without refitting) and, with --save-plan,
 * writes the plan and its recovery file. Every command that passes cm.hooks
 * to its forward passes gets recovered units for free. The recovery itself
 * (fit, load, save) is in common_recover.c; this file uses the public header
 * only.
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

/* The progress printer's state (see "progress" below). */
static int progress_enabled = -1;
static double progress_last;
static char progress_stage[64];
static double progress_t0;    /* several ranks: when the stage began (for the ETA) */
static int64_t progress_done; /* and its count then */
static bool progress_open;

int cli_error(const char *cmd, int code, const char *fmt, ...) {
    char raw[2048], line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    if (progress_open) cli_progress_end(); /* a step that failed leaves its progress line open */
    /* arguments and file bytes quoted in the message are escaped (dp_escape) */
    dp_escape(raw, strlen(raw), line, sizeof line);
    /* several ranks: name the one that failed, unless the message already does */
    if (dp_dist_size() > 1 && strncmp(raw, "rank ", 5))
        fprintf(dp_dist_errors(), "depthprune %s: rank %d: %s\n", cmd, dp_dist_rank(), line);
    else
        fprintf(dp_dist_errors(), "depthprune %s: %s\n", cmd, line);
    return code;
}

int cli_usage(const char *cmd, const char *synopsis, const struct cli_opt *opts) {
    fprintf(stderr, "usage: depthprune %s %s\n", cmd, synopsis);
    int w = 0;
    for (const struct cli_opt *o = opts; o->name; o++) {
        int n = (int)strlen(o->name) + (o->alias ? 2 + (int)strlen(o->alias) : 0);
        if (n > w) w = n;
    }
    for (const struct cli_opt *o = opts; o->name; o++) {
        char col[96];
        snprintf(col, sizeof col, "%s%s%s", o->name, o->alias ? ", " : "", o->alias ? o->alias : "");
        fprintf(stderr, "  %-*s  %s\n", w, col, o->help ? o->help : "");
    }
    return 2;
}

int cli_parse(const char *cmd, int argc, char **argv, const struct cli_opt *opts, const char **pos, int max_pos,
              int *n_pos) {
    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !a[1]) {
            if (*n_pos >= max_pos) return cli_error(cmd, 2, "unexpected argument '%s'", a);
            pos[(*n_pos)++] = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq && a[1] == '-' ? (size_t)(eq - a) : strlen(a);
        /* Every entry of that name gets the value (a command may share a common option, e.g. --seed). */
        const char *value = NULL;
        bool found = false, took_next = false;
        for (const struct cli_opt *o = opts; o->name; o++) {
            if (!((strlen(o->name) == len && !strncmp(o->name, a, len)) ||
                  (o->alias && strlen(o->alias) == len && !strncmp(o->alias, a, len))))
                continue;
            if (!found) {
                if (o->flag) value = "1";
                else if (eq && a[1] == '-') value = eq + 1;
                else {
                    if (i + 1 >= argc) return cli_error(cmd, 2, "option %s needs a value", o->name);
                    value = argv[i + 1];
                    took_next = true;
                }
                found = true;
            }
            *o->value = value;
        }
        if (!found) {
            if (!strcmp(a, "-h") || !strcmp(a, "--help")) return 2;
            return cli_error(cmd, 2, "unknown option '%s' (see depthprune %s --help)", a, cmd);
        }
        if (took_next) i++;
    }
    return 0;
}

bool cli_int(const char *cmd, const char *opt, const char *value, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (!*value || *end || errno || v < lo || v > hi) {
        cli_error(cmd, 2, "%s must be an integer in [%ld, %ld], not '%s'", opt, lo, hi, value);
        return false;
    }
    *out = v;
    return true;
}

bool cli_double(const char *cmd, const char *opt, const char *value, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (!*value || *end || errno || !(v >= lo && v <= hi)) {
        cli_error(cmd, 2, "%s must be a number in [%g, %g], not '%s'", opt, lo, hi, value);
        return false;
    }
    *out = v;
    return true;
}

/* ---- progress ---- */

/*
 * The library prints nothing: every step gets this printer as its progress
 * callback. progress_enabled -1: not decided yet (DP_PROGRESS, else whether
 * stderr is a terminal); progress_last: the time of the last line;
 * progress_stage: the stage it showed; progress_open: a line printed and not
 * yet ended. A new stage always prints its first report, as does the first
 * report after a line ended.
 */
void cli_progress_mode(bool json, bool force) {
    if (force) progress_enabled = 1;
    else if (json && !getenv("DP_PROGRESS")) progress_enabled = 0;
}

bool cli_progress(const char *stage, int64_t done, int64_t total, void *user) {
    (void)user;
    if (progress_enabled < 0) {
        const char *e = getenv("DP_PROGRESS");
        progress_enabled = e ? atoi(e) != 0 : isatty(2);
    }
    if (strncmp(stage, progress_stage, sizeof progress_stage - 1)) {
        snprintf(progress_stage, sizeof progress_stage, "%s", stage);
        progress_last = 0;
        progress_t0 = 0;
    }
    if (dp_dist_rank() > 0) return true; /* rank 0 alone reports */
    double t = dp_now();
    if (done < progress_done || !progress_t0) {
        progress_t0 = t;
        progress_done = done;
    }
    if (progress_enabled && (done == total || t - progress_last >= 0.2)) {
        progress_last = t;
        progress_open = true;
        if (total > 0 && dp_dist_size() > 1) {
            /* several ranks: with the time left, from the rate since the stage began */
            double rate = done > progress_done ? (double)(done - progress_done) / (t - progress_t0) : 0;
            char eta[32] = "";
            if (rate > 0 && done < total) snprintf(eta, sizeof eta, ", ETA %.0f s", (double)(total - done) / rate);
            fprintf(stderr, "\r%s: %lld/%lld (%.0f%%%s, %d ranks)   ", stage, (long long)done, (long long)total,
                    100.0 * (double)done / (double)total, eta, dp_dist_size());
        } else if (total > 0)
            fprintf(stderr, "\r%s: %lld/%lld (%.0f%%)   ", stage, (long long)done, (long long)total,
                    100.0 * (double)done / (double)total);
        else
            fprintf(stderr, "\r%s: %lld   ", stage, (long long)done);
    }
    return true;
}

void cli_progress_end(void) {
    if (progress_enabled > 0) fputc('\n', stderr);
    progress_last = 0;
    progress_open = false;
}

/* ---- inputs and outputs ---- */

static void io_add(struct cli_io *io, const char *opt, const char *path, bool out, bool dir) {
    if (!path || !*path) return;
    if (io->n == io->cap) {
        int cap = io->cap ? 2 * io->cap : 16;
        struct cli_io_file *f = realloc(io->f, (size_t)cap * sizeof *f);
        if (!f) {
            io->nomem = true;
            return;
        }
        io->f = f;
        io->cap = cap;
    }
    struct cli_io_file *e = &io->f[io->n];
    snprintf(e->opt, sizeof e->opt, "%s", opt ? opt : "");
    e->path = strdup(path);
    e->out = out;
    e->dir = dir;
    if (!e->path) io->nomem = true;
    else io->n++;
}

void cli_io_in(struct cli_io *io, const char *opt, const char *path) { io_add(io, opt, path, false, false); }
void cli_io_in_dir(struct cli_io *io, const char *opt, const char *dir) { io_add(io, opt, dir, false, true); }
void cli_io_out(struct cli_io *io, const char *opt, const char *path) { io_add(io, opt, path, true, false); }

void cli_io_in_list(struct cli_io *io, const char *opt, const char *list) {
    for (const char *s = list; s && *s;) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        char path[4096];
        if (n > 0 && n < sizeof path) {
            memcpy(path, s, n);
            path[n] = 0;
            cli_io_in(io, opt, path);
        }
        s = e ? e + 1 : s + n;
    }
}

void cli_io_common(struct cli_io *io, const struct cli_common *c) {
    cli_io_in(io, "-m", c->model);
    cli_io_in(io, "--vocab", c->vocab);
    cli_io_in(io, "--plan", c->plan);
    cli_io_in(io, "--calib", c->calib);
    bool recovery = c->recover && strcmp(c->recover, "none");
    if (c->plan) {
        struct dp_plan *p = calloc(1, sizeof *p);
        if (p && !dp_plan_load(c->plan, p) && p->recover_file[0]) {
            cli_io_in(io, "--plan's recovery", p->recover_file);
            recovery = true;
        }
        free(p);
    }
    cli_io_out(io, "--save-plan", c->save_plan);
    if (c->save_plan && recovery) {
        char rec[4200];
        cli_recover_path(c->save_plan, rec, sizeof rec);
        cli_io_out(io, "--save-plan's recovery", rec);
    }
}

static void io_free(struct cli_io *io) {
    for (int i = 0; i < io->n; i++) free(io->f[i].path);
    free(io->f);
    memset(io, 0, sizeof *io);
}

/* "-m m.gguf", or "m.gguf" for a positional argument. */
static void io_name(const struct cli_io_file *f, const char *path, char *buf, size_t cap) {
    snprintf(buf, cap, "%s%s%s", f->opt, f->opt[0] ? " " : "", path);
}

/* The file under dir (up to depth levels down) that is the file `out`, or false. */
static bool dir_holds(const char *dir, const struct stat *out, int depth, char *found, size_t cap) {
    DIR *d = opendir(dir);
    if (!d) return false;
    bool hit = false;
    for (struct dirent *e; !hit && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char path[4096];
        struct stat s;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path || stat(path, &s) != 0) continue;
        if (S_ISREG(s.st_mode) && s.st_dev == out->st_dev && s.st_ino == out->st_ino) {
            snprintf(found, cap, "%s", path);
            hit = true;
        } else if (S_ISDIR(s.st_mode) && depth > 1) {
            hit = dir_holds(path, out, depth - 1, found, cap);
        }
    }
    closedir(d);
    return hit;
}

int cli_io_check(const char *cmd, struct cli_io *io) {
    int rc = io->nomem ? cli_error(cmd, 1, "out of memory") : 0;
    for (int i = 0; !rc && i < io->n; i++) {
        const struct cli_io_file *in = &io->f[i];
        const char *kind = in->out || in->dir ? NULL : dp_file_kind(in->path);
        char a[4200];
        io_name(in, in->path, a, sizeof a);
        if (kind) rc = cli_error(cmd, 1, "%s: not a regular file (%s)", a, kind);
        /* several ranks: every input the same on every machine before any work */
        else if (!in->out && !in->dir && dp_dist_size() > 1 && dp_dist_same_file(in->opt[0] ? in->opt : "the input", in->path))
            rc = cli_error(cmd, 1, "%s", dp_last_error());
    }
    for (int o = 0; !rc && o < io->n; o++) {
        const struct cli_io_file *out = &io->f[o];
        struct stat so;
        if (!out->out || stat(out->path, &so) != 0) continue; /* a new file cannot be an input */
        for (int i = 0; !rc && i < io->n; i++) {
            const struct cli_io_file *in = &io->f[i];
            struct stat si;
            char found[4096], a[4200], b[4200];
            if (in->out || stat(in->path, &si) != 0) continue;
            bool same = si.st_dev == so.st_dev && si.st_ino == so.st_ino;
            if (in->dir && S_ISDIR(si.st_mode)) {
                if (!dir_holds(in->path, &so, 2, found, sizeof found)) continue;
                io_name(out, out->path, a, sizeof a);
                rc = cli_error(cmd, 2, "%s is %s, an input of %s %s: refusing to overwrite an input", a, found, in->opt,
                               in->path);
            } else if (same) {
                io_name(out, out->path, a, sizeof a);
                io_name(in, in->path, b, sizeof b);
                rc = cli_error(cmd, 2, "%s is the same file as the input %s: refusing to overwrite an input", a, b);
            }
        }
    }
    io_free(io);
    return rc;
}

/* ---- plans and recoveries ---- */

/* The plan of --plan, or one made from --drop (removal order as listed). */
static int open_plan(const char *cmd, const struct cli_common *c, struct cli_model *out) {
    out->plan = calloc(1, sizeof *out->plan);
    if (!out->plan) return cli_error(cmd, 1, "out of memory");
    struct dp_plan *p = out->plan;
    struct dp_identity id;
    dp_identity_of(out->m, &id);
    if (c->plan) {
        struct dp_identity claim;
        bool unchecked;
        if (dp_plan_load(c->plan, p)) return cli_error(cmd, 1, "%s", dp_last_error());
        dp_plan_identity(p, &claim);
        if (dp_identity_check(&claim, &id, c->plan, c->allow_twin != NULL, &unchecked))
            return cli_error(cmd, 2, "%s", dp_last_error());
        if (dp_plan_apply(p, &out->mask)) return cli_error(cmd, 2, "--plan %s: %s", c->plan, dp_last_error());
        if (unchecked)
            fprintf(stderr, "depthprune %s: warning: %s has no model hash (a version 1 plan): checked by its block "
                            "count and unit names only\n", cmd, c->plan);
        return 0;
    }
    dp_plan_set_identity(p, &id);
    snprintf(p->model, sizeof p->model, "%s", c->model);
    for (const char *s = c->drop; s && *s;) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        char unit[32];
        snprintf(unit, sizeof unit, "%.*s", (int)(n < sizeof unit ? n : sizeof unit - 1), s);
        if (dp_plan_push(p, unit)) return cli_error(cmd, 2, "--drop: %s", dp_last_error());
        s = e ? e + 1 : s + n;
    }
    return 0;
}

int cli_read_chunks(const char *cmd, const struct dp_model *m, const char *file, const char *docs, long ctx,
                    long max_seqs, const char *docs_opt, const char *what, struct dp_chunks **out) {
    int lo = 0, hi = -1;
    if (docs && dp_parse_range(docs, &lo, &hi)) return cli_error(cmd, 2, "%s: %s", docs_opt, dp_last_error());
    struct dp_corpus *corpus;
    if (dp_corpus_read(file, &corpus)) return cli_error(cmd, 1, "%s", dp_last_error());
    dp_status st = dp_chunks_paper(dp_model_tokenizer(m), corpus, lo, hi, (int)ctx, (int)max_seqs, out);
    dp_corpus_free(corpus);
    return st ? cli_error(cmd, 1, "%s: %s", what, dp_last_error()) : 0;
}

/* --save-plan FILE: the plan, and its recovery as FILE's stem + ".recover.gguf". */
static int save_plan(const char *cmd, const char *path, struct cli_model *out) {
    struct dp_plan *p = out->plan;
    struct dp_identity id;
    dp_identity_of(out->m, &id);
    dp_plan_set_identity(p, &id); /* the plan now describes its use on this model */
    p->recover_kind[0] = p->recover_file[0] = 0;
    int rc = cli_recovery_save(cmd, path, out);
    if (rc) return rc;
    if (dp_plan_save(p, path)) return cli_error(cmd, 1, "%s", dp_last_error());
    return 0;
}

int cli_open(const char *cmd, const struct cli_common *c, struct cli_model *out) {
    memset(out, 0, sizeof *out);
    if (!c->model) return cli_error(cmd, 2, "missing -m MODEL");
    if (c->plan && c->drop) return cli_error(cmd, 2, "--plan and --drop cannot be combined");
    struct cli_io io = {0};
    cli_io_common(&io, c);
    int rc = cli_io_check(cmd, &io);
    if (rc) return rc;
    long threads = sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1) threads = 1;
    if (c->threads && !cli_int(cmd, "-t", c->threads, 1, 256, &threads)) return 2;
    int64_t max_mem = 0;
    if (c->max_mem && !dp_parse_bytes(c->max_mem, &max_mem))
        return cli_error(cmd, 2, "--max-mem must be a size such as 512M or 8G, not '%s'", c->max_mem);
    struct dp_model_params mp = dp_model_default_params();
    mp.vocab_path = c->vocab;
    if (c->act && dp_kernels_act_parse(c->act, &mp.act)) return cli_error(cmd, 2, "--act: %s", dp_last_error());
    if (dp_model_open_with(c->model, &mp, &out->m)) return cli_error(cmd, 1, "%s", dp_last_error());
    if (dp_dist_size() > 1) { /* every rank maps its own copy: the same file everywhere, before any work */
        struct dp_identity id;
        dp_identity_of(out->m, &id);
        struct stat sb;
        char digest[128], what[1200];
        snprintf(digest, sizeof digest, "%s %lld", id.hash, stat(c->model, &sb) ? -1LL : (long long)sb.st_size);
        snprintf(what, sizeof what, "the model file %s (model hash and size)", c->model);
        if (dp_dist_same(what, digest)) {
            dp_model_close(out->m);
            out->m = NULL;
            return cli_error(cmd, 1, "%s", dp_last_error());
        }
    }
    dp_mask_all(out->m, &out->mask);
    if (c->drop && dp_mask_drop(&out->mask, c->drop)) {
        cli_close(out);
        return cli_error(cmd, 2, "--drop: %s", dp_last_error());
    }
    out->n_threads = (int)threads;
    out->max_mem = max_mem;
    out->pool = dp_pool_new((int)threads);
    if (!out->pool) {
        cli_close(out);
        return cli_error(cmd, 1, "cannot start %ld threads", threads);
    }
    rc = open_plan(cmd, c, out);
    if (!rc) rc = cli_recovery_open(cmd, c, out);
    if (!rc && c->save_plan) rc = save_plan(cmd, c->save_plan, out);
    if (rc) cli_close(out);
    return rc;
}

int cli_check_mem(const char *cmd, const struct cli_model *cm, int64_t need, const char *what, const char *flag) {
    return dp_mem_check(need, cm->max_mem, what, flag) ? cli_error(cmd, 1, "%s", dp_last_error()) : 0;
}

int cli_check_sessions(const char *cmd, const struct cli_model *cm, const struct dp_mask *mask, int n_sessions,
                       long n_ctx, long n_logits, int64_t extra, const char *flag) {
    int64_t need = n_sessions * (dp_session_bytes(cm->m, mask, (int)n_ctx) + dp_logits_bytes(cm->m, n_logits)) + extra;
    char what[200], n[40] = "a session", kv[32];
    if (n_sessions > 1) snprintf(n, sizeof n, "running %d sessions", n_sessions);
    dp_format_bytes(dp_kv_cache_bytes(cm->m, mask, (int)n_ctx), kv, sizeof kv);
    snprintf(what, sizeof what, "%s of %ld positions (KV cache %s%s, with scratch and logits)", n, n_ctx, kv,
             n_sessions > 1 ? " each" : "");
    return cli_check_mem(cmd, cm, need, what, flag);
}

void cli_close(struct cli_model *cm) {
    cli_recovery_close(cm);
    free(cm->plan);
    dp_pool_free(cm->pool);
    dp_model_close(cm->m);
    cm->plan = NULL;
    cm->pool = NULL;
    cm->m = NULL;
}

/* ---- helpers of the header-only commands (sweep, prune, synth, report) ---- */

bool cli_progress_lines(const char *stage, int64_t done, int64_t total, void *user) {
    cli_progress(stage, done, total, user);
    if (total > 0 && done >= total) cli_progress_end();
    return true;
}

void cli_log_line(const char *line, void *user) { fprintf(stderr, "depthprune %s: %s\n", (const char *)user, line); }

int cli_plan_units(const struct cli_model *cm, char *buf, size_t cap) {
    size_t len = 0;
    if (cap) buf[0] = 0;
    for (int i = 0; i < cm->plan->n_units && len < cap; i++) {
        int w = snprintf(buf + len, cap - len, "%s%s", i ? "," : "", cm->plan->units[i]);
        if (w > 0) len += (size_t)w;
    }
    return cm->plan->n_units;
}

const char *cli_plan_metric(const struct cli_model *cm) { return cm->plan->metric; }
const char *cli_plan_scheme(const struct cli_model *cm) { return cm->plan->scheme; }

struct cli_json {
    struct dp_json j;
};

struct cli_json *cli_json_new(FILE *f) {
    struct cli_json *j = malloc(sizeof *j);
    if (j) dp_json_init(&j->j, f);
    return j;
}
void cli_json_free(struct cli_json *j) { free(j); }
void cli_json_begin_obj(struct cli_json *j, const char *key) { dp_json_begin_obj(&j->j, key); }
void cli_json_begin_arr(struct cli_json *j, const char *key) { dp_json_begin_arr(&j->j, key); }
void cli_json_end(struct cli_json *j) { dp_json_end(&j->j); }
void cli_json_num(struct cli_json *j, const char *key, double v) { dp_json_num(&j->j, key, v); }
void cli_json_int(struct cli_json *j, const char *key, int64_t v) { dp_json_int(&j->j, key, v); }
void cli_json_bool(struct cli_json *j, const char *key, bool v) { dp_json_bool(&j->j, key, v); }
void cli_json_null(struct cli_json *j, const char *key) { dp_json_null(&j->j, key); }
void cli_json_str(struct cli_json *j, const char *key, const char *s) { dp_json_str(&j->j, key, s); }
