/*
 * common_recover: the recovery part of cli_open, through the public header's
 * recovery step: --recover fitted on --calib (dp_recovery_fit_with on chunks
 * read here, after the memory check) or a plan's recovery file loaded (every
 * unit it replaces must be removed by the plan), the recovery saved beside a
 * plan, and the draft model of generate --draft.
 */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The recovery file --save-plan FILE writes: FILE's stem + ".recover.gguf". */
void cli_recover_path(const char *plan_path, char *buf, size_t cap) {
    size_t n = strlen(plan_path);
    if (n > 5 && !strcmp(plan_path + n - 5, ".json")) n -= 5;
    snprintf(buf, cap, "%.*s.recover.gguf", (int)n, plan_path);
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

static int parse_recover_opts(const char *cmd, const struct cli_common *c, struct dp_recovery_params *o) {
    *o = dp_recovery_default_params();
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
        if (!strcmp(c->objective, "kl")) o->objective_kl = true;
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
    o->log = cli_log_line;
    o->log_user = (void *)cmd;
    o->progress = cli_progress_lines;
    return 0;
}

/* Fit --recover on the plan's units. */
static int fit_recovery(const char *cmd, const struct cli_common *c, struct cli_model *out) {
    struct dp_recovery_params o;
    int rc = parse_recover_opts(cmd, c, &o);
    if (rc) return rc;
    if (!c->calib) return cli_error(cmd, 2, "--recover %s needs --calib CORPUS", c->recover);
    if (out->plan->n_units == 0) return cli_error(cmd, 2, "--recover %s needs removed units (--drop or --plan)", c->recover);
    struct dp_chunks *ch = NULL;
    if ((rc = open_calib(cmd, c, out, &ch))) return rc;
    char units[DP_PLAN_MAX_UNITS * 17] = "";
    size_t len = 0;
    for (int i = 0; i < out->plan->n_units; i++)
        len += (size_t)snprintf(units + len, sizeof units - len, "%s%s", i ? "," : "", out->plan->units[i]);
    o.kind = c->recover;
    o.units = units;
    o.mask = &out->mask;
    o.chunks = ch;
    double t0 = dp_now();
    dp_status st = dp_recovery_fit_with(out->m, out->pool, &o, &out->recovery);
    if (!st)
        fprintf(stderr, "depthprune %s: recovery %s of %d unit%s fitted on %d sequences of %d tokens in %.1f s\n", cmd,
                c->recover, out->plan->n_units, out->plan->n_units == 1 ? "" : "s", ch->n_seqs, ch->ctx,
                dp_now() - t0);
    dp_chunks_free(ch);
    if (st) return cli_error(cmd, st == DP_ERR_ARG || st == DP_ERR_UNSUPPORTED ? 2 : 1, "%s", dp_last_error());
    for (int i = 0; i < dp_recovery_n_units(out->recovery); i++)
        if (!isnan(dp_recovery_explained_var(out->recovery, i)))
            fprintf(stderr, "depthprune %s: %s: %s explains %.4f of the update's variance\n", cmd,
                    dp_recovery_unit(out->recovery, i), c->recover, dp_recovery_explained_var(out->recovery, i));
    return 0;
}

/* The recovery file of a plan: every unit it replaces must be removed by the plan. */
static int load_recovery(const char *cmd, const char *plan_path, struct cli_model *out) {
    const struct dp_plan *p = out->plan;
    if (dp_recovery_load(p->recover_file, out->m, &out->recovery)) return cli_error(cmd, 1, "%s", dp_last_error());
    const char *kind = dp_recovery_kind(out->recovery);
    if (strcmp(kind, p->recover_kind))
        return cli_error(cmd, 1, "%s: recover.kind is '%s' but its file %s holds a '%s' recovery", plan_path,
                         p->recover_kind, p->recover_file, kind);
    for (int i = 0; i < dp_recovery_n_units(out->recovery); i++) {
        const char *unit = dp_recovery_unit(out->recovery, i);
        bool found = false;
        for (int j = 0; j < p->n_units && !found; j++) found = !strcmp(p->units[j], unit);
        if (!found)
            return cli_error(cmd, 1, "%s: unit %s is not removed by the plan %s", p->recover_file, unit, p->recover_file);
    }
    return 0;
}

/* The hooks applying a loaded or fitted recovery; 0 or the exit code after the message. */
static int recovery_hooks(const char *cmd, const struct dp_recovery *r, const struct dp_model *m,
                          const struct dp_hooks **hooks, struct dp_hooks **store) {
    if (dp_recovery_hooks_new(r, m, store)) return cli_error(cmd, 1, "%s", dp_last_error());
    *hooks = *store;
    return 0;
}

int cli_recovery_open(const char *cmd, const struct cli_common *c, struct cli_model *out) {
    bool tuning = c->calib || c->calib_docs || c->calib_ctx || c->calib_max_seqs || c->recover_stats ||
                  c->recover_init || c->ridge || c->objective || c->steps || c->lr || c->batch;
    if (c->own_recover) return 0;
    bool none = true;
    int rc;
    if (c->recover && dp_recovery_kind_parse(c->recover, &none)) return cli_error(cmd, 2, "--recover: %s", dp_last_error());
    if (none && tuning) return cli_error(cmd, 2, "--calib and the recovery options need --recover KIND");
    if (!none) {
        if ((rc = fit_recovery(cmd, c, out))) return rc;
    } else if (!c->recover && out->plan->recover_file[0]) {
        if ((rc = load_recovery(cmd, c->plan, out))) return rc;
    }
    if (out->recovery) {
        if ((rc = recovery_hooks(cmd, out->recovery, out->m, &out->hooks, &out->hooks_store))) return rc;
        out->recover_kind = dp_recovery_kind(out->recovery);
    }
    return 0;
}

int cli_recovery_save(const char *cmd, const char *path, struct cli_model *out) {
    struct dp_plan *p = out->plan;
    if (!out->recovery) return 0;
    if (strlen(path) + 14 >= sizeof p->recover_file) return cli_error(cmd, 2, "--save-plan: path too long");
    cli_recover_path(path, p->recover_file, sizeof p->recover_file);
    snprintf(p->recover_kind, sizeof p->recover_kind, "%s", dp_recovery_kind(out->recovery));
    if (dp_recovery_save(out->recovery, p->recover_file)) return cli_error(cmd, 1, "%s", dp_last_error());
    return 0;
}

void cli_recovery_close(struct cli_model *cm) {
    dp_recovery_free(cm->recovery);
    dp_hooks_free(cm->hooks_store);
    cm->recovery = NULL;
    cm->hooks_store = NULL;
    cm->hooks = NULL;
    cm->recover_kind = NULL;
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
        if (out->recovery && (rc = recovery_hooks(cmd, out->recovery, m, &out->hooks, &out->hooks_store))) return rc;
    }
    dp_mask_format(&out->mask, out->units, sizeof out->units);
    if (!out->units[0]) return cli_error(cmd, 2, "--draft %s removes no unit: the draft would be the full model", spec);
    return 0;
}

void cli_draft_close(struct cli_draft *d) {
    dp_recovery_free(d->recovery);
    dp_hooks_free(d->hooks_store);
    d->recovery = NULL;
    d->hooks_store = NULL;
    d->hooks = NULL;
}
