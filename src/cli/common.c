/*
 * common: option parsing and model opening shared by the subcommands.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_error(const char *cmd, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "depthprune %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

int cli_usage(const char *cmd, const char *synopsis, const struct cli_opt *opts) {
    fprintf(stderr, "usage: depthprune %s %s\n", cmd, synopsis);
    for (const struct cli_opt *o = opts; o->name; o++)
        fprintf(stderr, "  %-12s %-12s %s\n", o->name, o->alias ? o->alias : "", o->help ? o->help : "");
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
        const struct cli_opt *o = opts;
        for (; o->name; o++)
            if ((strlen(o->name) == len && !strncmp(o->name, a, len)) ||
                (o->alias && strlen(o->alias) == len && !strncmp(o->alias, a, len)))
                break;
        if (!o->name) {
            if (!strcmp(a, "-h") || !strcmp(a, "--help")) return 2;
            return cli_error(cmd, 2, "unknown option '%s' (see depthprune %s --help)", a, cmd);
        }
        if (o->flag) {
            *o->value = "1";
        } else if (eq && a[1] == '-') {
            *o->value = eq + 1;
        } else {
            if (i + 1 >= argc) return cli_error(cmd, 2, "option %s needs a value", o->name);
            *o->value = argv[++i];
        }
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

int cli_open(const char *cmd, const struct cli_common *c, struct cli_model *out) {
    memset(out, 0, sizeof *out);
    if (!c->model) return cli_error(cmd, 2, "missing -m MODEL");
    long threads = sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1) threads = 1;
    if (c->threads && !cli_int(cmd, "-t", c->threads, 1, 256, &threads)) return 2;
    if (dp_model_open(c->model, c->vocab, &out->m)) return cli_error(cmd, 1, "%s", dp_last_error());
    dp_mask_all(out->m, &out->mask);
    if (c->drop && dp_mask_drop(&out->mask, c->drop)) {
        cli_close(out);
        return cli_error(cmd, 2, "--drop: %s", dp_last_error());
    }
    out->n_threads = (int)threads;
    out->pool = dp_pool_new((int)threads);
    if (!out->pool) {
        cli_close(out);
        return cli_error(cmd, 1, "cannot start %ld threads", threads);
    }
    return 0;
}

void cli_close(struct cli_model *cm) {
    dp_pool_free(cm->pool);
    dp_model_close(cm->m);
    cm->pool = NULL;
    cm->m = NULL;
}
