/*
 * common: option parsing and model opening shared by the subcommands.
 *
 * cli_open also turns --drop/--plan into a plan (units in removal order) and
 * --recover into replacement hooks: it fits the recovery on --calib (or loads
 * the recovery file a plan names, without refitting) and, with --save-plan,
 * writes the plan and its recovery file. Every command that passes cm.hooks
 * to its forward passes gets recovered units for free.
 */
#include "cli.h"

#include "data.h"
#include "memory.h"
#include "identity.h"
#include "plan.h"
#include "prune.h"
#include "recover.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_error(const char *cmd, int code, const char *fmt, ...) {
    char raw[2048], line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    /* arguments and file bytes quoted in the message are escaped (dp_escape) */
    fprintf(stderr, "depthprune %s: %s\n", cmd, dp_escape(raw, strlen(raw), line, sizeof line));
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

/* The recovery file --save-plan FILE writes: FILE's stem + ".recover.gguf" (as save_plan below). */
static void recover_path_of(const char *plan_path, char *buf, size_t cap) {
    size_t n = strlen(plan_path);
    if (n > 5 && !strcmp(plan_path + n - 5, ".json")) n -= 5;
    snprintf(buf, cap, "%.*s.recover.gguf", (int)n, plan_path);
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
        recover_path_of(c->save_plan, rec, sizeof rec);
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

static void recover_log(void *ctx, const char *line) { fprintf(stderr, "depthprune %s: %s\n", (const char *)ctx, line); }

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

/* Calibration chunks of --calib with the --calib-* settings (defaults: the command's corpus settings). */
static int open_calib(const char *cmd, const struct cli_common *c, const struct cli_model *cm, struct dp_chunks **out) {
    const struct dp_model *m = cm->m;
    const char *ctx_s = c->calib_ctx ? c->calib_ctx : c->ctx, *docs = c->calib_docs ? c->calib_docs : c->docs;
    const char *max_s = c->calib_max_seqs ? c->calib_max_seqs : c->max_seqs;
    const struct dp_config *cf = dp_model_config(m);
    long ctx = cf->n_ctx_train < 2048 ? cf->n_ctx_train : 2048, max_seqs = 0;
    if ((ctx_s && !cli_int(cmd, "--calib-ctx", ctx_s, 2, 1 << 20, &ctx)) ||
        (max_s && !cli_int(cmd, "--calib-max-seqs", max_s, 1, 1L << 30, &max_seqs)))
        return 2;
    char what[96];
    snprintf(what, sizeof what, "fitting the recovery on sequences of %ld tokens", ctx);
    int rc = cli_check_mem(cmd, cm, dp_session_bytes(m, NULL, (int)ctx) + dp_logits_bytes(m, ctx), what,
                           c->calib_ctx ? "--calib-ctx" : "--calib-ctx (or --ctx)");
    if (rc) return rc;
    return cli_read_chunks(cmd, m, c->calib, docs, ctx, max_seqs, "--calib-docs", "--calib", out);
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

static int parse_recover_opts(const char *cmd, const struct cli_common *c, struct dp_recover_opts *o) {
    dp_recover_opts_default(o);
    long v;
    if (c->recover_stats) {
        if (!strcmp(c->recover_stats, "sequential")) o->sequential = true;
        else if (strcmp(c->recover_stats, "full"))
            return cli_error(cmd, 2, "--recover-stats must be full or sequential, not '%s'", c->recover_stats);
    }
    if (c->recover_init) {
        if (!strcmp(c->recover_init, "mean")) o->init_mean = true;
        else if (strcmp(c->recover_init, "zero"))
            return cli_error(cmd, 2, "--recover-init must be zero or mean, not '%s'", c->recover_init);
    }
    if (c->objective) {
        if (!strcmp(c->objective, "kl")) o->objective = DP_OBJECTIVE_KL;
        else if (strcmp(c->objective, "ce"))
            return cli_error(cmd, 2, "--objective must be ce or kl, not '%s'", c->objective);
    }
    if (c->ridge && !cli_double(cmd, "--ridge", c->ridge, 0, 1e6, &o->ridge)) return 2;
    if (c->lr && !cli_double(cmd, "--lr", c->lr, 1e-12, 1e3, &o->lr)) return 2;
    if (c->steps) {
        if (!cli_int(cmd, "--steps", c->steps, 0, 100000000, &v)) return 2;
        o->steps = (int)v;
    }
    if (c->batch) {
        if (!cli_int(cmd, "--batch", c->batch, 1, 1000000, &v)) return 2;
        o->batch = (int)v;
    }
    if (c->seed) {
        if (!cli_int(cmd, "--seed", c->seed, 0, 0x7fffffffL, &v)) return 2;
        o->seed = (uint64_t)v;
    }
    o->log = recover_log;
    o->log_ctx = (void *)cmd;
    return 0;
}

/* Fit --recover on the plan's units. */
static int fit_recovery(const char *cmd, const struct cli_common *c, struct cli_model *out) {
    struct dp_recover_opts o;
    int rc = parse_recover_opts(cmd, c, &o);
    if (rc) return rc;
    if (!c->calib) return cli_error(cmd, 2, "--recover %s needs --calib CORPUS", c->recover);
    if (out->plan->n_units == 0) return cli_error(cmd, 2, "--recover %s needs removed units (--drop or --plan)", c->recover);
    struct dp_chunks *ch = NULL;
    if ((rc = open_calib(cmd, c, out, &ch))) return rc;
    const char *order[DP_PLAN_MAX_UNITS];
    for (int i = 0; i < out->plan->n_units; i++) order[i] = out->plan->units[i];
    double t0 = dp_now();
    dp_status st = dp_recovery_fit(out->m, &out->mask, order, out->plan->n_units, c->recover, ch, &o, out->pool,
                                   &out->recovery);
    if (!st)
        fprintf(stderr, "depthprune %s: recovery %s of %d unit%s fitted on %d sequences of %d tokens in %.1f s\n", cmd,
                c->recover, out->plan->n_units, out->plan->n_units == 1 ? "" : "s", ch->n_seqs, ch->ctx,
                dp_now() - t0);
    dp_chunks_free(ch);
    if (st) return cli_error(cmd, st == DP_ERR_ARG || st == DP_ERR_UNSUPPORTED ? 2 : 1, "%s", dp_last_error());
    for (int i = 0; out->recovery && i < out->recovery->n; i++)
        if (!isnan(out->recovery->units[i].explained_var))
            fprintf(stderr, "depthprune %s: %s: %s explains %.4f of the update's variance\n", cmd,
                    out->recovery->units[i].unit, c->recover, out->recovery->units[i].explained_var);
    return 0;
}

/* The recovery file of a plan: every unit it replaces must be removed by the plan. */
static int load_recovery(const char *cmd, const char *plan_path, struct cli_model *out) {
    const struct dp_plan *p = out->plan;
    if (dp_recovery_load(p->recover_file, out->m, &out->recovery)) return cli_error(cmd, 1, "%s", dp_last_error());
    if (strcmp(out->recovery->kind, p->recover_kind))
        return cli_error(cmd, 1, "%s: recover.kind is '%s' but its file %s holds a '%s' recovery", plan_path,
                         p->recover_kind, p->recover_file, out->recovery->kind);
    for (int i = 0; i < out->recovery->n; i++) {
        bool found = false;
        for (int j = 0; j < p->n_units && !found; j++) found = !strcmp(p->units[j], out->recovery->units[i].unit);
        if (!found)
            return cli_error(cmd, 1, "%s: unit %s is not removed by the plan %s", p->recover_file,
                             out->recovery->units[i].unit, p->recover_file);
    }
    return 0;
}

/* --save-plan FILE: the plan, and its recovery as FILE's stem + ".recover.gguf". */
static int save_plan(const char *cmd, const char *path, struct cli_model *out) {
    struct dp_plan *p = out->plan;
    struct dp_identity id;
    dp_identity_of(out->m, &id);
    dp_plan_set_identity(p, &id); /* the plan now describes its use on this model */
    p->recover_kind[0] = p->recover_file[0] = 0;
    if (out->recovery) {
        if (strlen(path) + 14 >= sizeof p->recover_file) return cli_error(cmd, 2, "--save-plan: path too long");
        recover_path_of(path, p->recover_file, sizeof p->recover_file);
        snprintf(p->recover_kind, sizeof p->recover_kind, "%s", out->recovery->kind);
        if (dp_recovery_save(out->recovery, p->recover_file)) return cli_error(cmd, 1, "%s", dp_last_error());
    }
    if (dp_plan_save(p, path)) return cli_error(cmd, 1, "%s", dp_last_error());
    return 0;
}

static int open_recovery(const char *cmd, const struct cli_common *c, struct cli_model *out) {
    bool tuning = c->calib || c->calib_docs || c->calib_ctx || c->calib_max_seqs || c->recover_stats ||
                  c->recover_init || c->ridge || c->objective || c->steps || c->lr || c->batch;
    if (c->own_recover) return 0;
    enum dp_recover_method method = DP_RECOVER_NONE;
    int rank, rc;
    if (c->recover && dp_recover_parse_kind(c->recover, &method, &rank))
        return cli_error(cmd, 2, "--recover: %s", dp_last_error());
    if (method == DP_RECOVER_NONE && tuning)
        return cli_error(cmd, 2, "--calib and the recovery options need --recover KIND");
    if (method != DP_RECOVER_NONE) {
        if ((rc = fit_recovery(cmd, c, out))) return rc;
    } else if (!c->recover && out->plan->recover_file[0]) {
        if ((rc = load_recovery(cmd, c->plan, out))) return rc;
    }
    if (out->recovery) {
        struct dp_hooks *h = calloc(1, sizeof *h);
        if (!h) return cli_error(cmd, 1, "out of memory");
        dp_recovery_hooks(out->recovery, out->m, h);
        out->hooks_store = h;
        out->hooks = h;
    }
    return 0;
}

int cli_check_scores(const char *cmd, const struct cli_common *c, const struct dp_model *m,
                     const struct dp_influences *sc, int scheme) {
    struct dp_identity id;
    int n_unchecked;
    dp_identity_of(m, &id);
    if (dp_influences_check(sc, &id, scheme, c->allow_twin != NULL, &n_unchecked))
        return cli_error(cmd, 2, "%s", dp_last_error());
    /* hand-written files (no "depthprune_scores") are the user's own numbers: no warning */
    for (int i = 0; n_unchecked && i < sc->n_files; i++)
        if (!sc->origin[i].id.hash[0] && sc->origin[i].version == 1)
            fprintf(stderr, "depthprune %s: warning: %s has no model hash (written before version 2): checked by its "
                            "unit names%s only\n", cmd, sc->files[i], sc->origin[i].id.n_blocks ? " and block count" : "");
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
    enum dp_act act = DP_ACT_EXACT;
    if (c->act && dp_kernels_act_parse(c->act, &act)) return cli_error(cmd, 2, "--act: %s", dp_last_error());
    dp_kernels_set_act(act);
    if (dp_model_open(c->model, c->vocab, &out->m)) return cli_error(cmd, 1, "%s", dp_last_error());
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
    if (!rc) rc = open_recovery(cmd, c, out);
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

int cli_draft_open(const char *cmd, const struct dp_model *m, const char *spec, struct cli_draft *out) {
    memset(out, 0, sizeof *out);
    dp_mask_all(m, &out->mask);
    struct stat sb;
    if (stat(spec, &sb) != 0) { /* not a file: a list of units */
        if (dp_mask_drop(&out->mask, spec)) return cli_error(cmd, 2, "--draft: %s", dp_last_error());
    } else {
        struct dp_plan *p = calloc(1, sizeof *p);
        if (!p) return cli_error(cmd, 1, "out of memory");
        int rc = 0;
        if (dp_plan_load(spec, p)) rc = cli_error(cmd, 1, "%s", dp_last_error());
        else if (dp_plan_apply(p, &out->mask)) rc = cli_error(cmd, 2, "--draft %s: %s", spec, dp_last_error());
        else if (p->recover_file[0] && dp_recovery_load(p->recover_file, m, &out->recovery))
            rc = cli_error(cmd, 1, "%s", dp_last_error());
        free(p);
        if (rc) return rc;
        if (out->recovery) {
            struct dp_hooks *h = calloc(1, sizeof *h);
            if (!h) return cli_error(cmd, 1, "out of memory");
            dp_recovery_hooks(out->recovery, m, h);
            out->hooks_store = h;
            out->hooks = h;
        }
    }
    dp_mask_format(&out->mask, out->units, sizeof out->units);
    if (!out->units[0]) return cli_error(cmd, 2, "--draft %s removes no unit: the draft would be the full model", spec);
    return 0;
}

void cli_draft_close(struct cli_draft *d) {
    dp_recovery_free(d->recovery);
    free(d->hooks_store);
    d->recovery = NULL;
    d->hooks_store = NULL;
    d->hooks = NULL;
}

void cli_close(struct cli_model *cm) {
    dp_recovery_free(cm->recovery);
    free(cm->hooks_store);
    free(cm->plan);
    dp_pool_free(cm->pool);
    dp_model_close(cm->m);
    cm->recovery = NULL;
    cm->hooks_store = NULL;
    cm->hooks = NULL;
    cm->plan = NULL;
    cm->pool = NULL;
    cm->m = NULL;
}

/* ---- helpers of the header-only commands (sweep, prune, synth, report) ---- */

bool cli_progress(const char *stage, int64_t done, int64_t total, void *user) {
    (void)user;
    dp_progress(stage, done, total);
    if (total > 0 && done >= total) dp_progress_end();
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
