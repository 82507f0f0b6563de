/*
 * plan: reading and writing pruning plans (see plan.h for the format).
 *
 * A plan is small and read once, so loading parses the whole file with the
 * JSON reader and checks every field it uses: the version, the unit names
 * (b<i>, a<i>, f<i>; no unit removed twice), the model identity (block
 * count, hash, shape: required from version 2 on), and the recovery object
 * (a known kind and a file). Unknown keys are ignored so later versions can add
 * fields. Saving writes the same shape through the streaming JSON writer to a
 * temporary file renamed into place.
 *
 * The recovery file is kept as a path: relative paths in the file are
 * relative to the plan's folder, and in memory the path is resolved (joined
 * with that folder), so callers can open it directly.
 */
#include "plan.h"

#include "json.h"
#include "recover.h"

#include <stdlib.h>
#include <string.h>

/* Parse "b12" into kind and index; false when it is not a unit name. */
static bool parse_unit(const char *s, char *kind, int *index) {
    if (s[0] != 'b' && s[0] != 'a' && s[0] != 'f') return false;
    if (s[1] < '0' || s[1] > '9' || (s[1] == '0' && s[2])) return false;
    long v = 0;
    for (const char *p = s + 1; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        v = v * 10 + (*p - '0');
        if (v >= DP_MAX_LAYERS) return false;
    }
    *kind = s[0];
    *index = (int)v;
    return true;
}

/* Length of the folder part of path, including its last slash (0 when none). */
static size_t dir_len(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? (size_t)(slash - path) + 1 : 0;
}

/* Whether adding unit (kind, index) to the first n units of p removes something twice. */
static bool overlaps(const struct dp_plan *p, int n, char kind, int index) {
    for (int i = 0; i < n; i++) {
        char k;
        int j;
        if (!parse_unit(p->units[i], &k, &j) || j != index) continue;
        if (k == kind || k == 'b' || kind == 'b') return true;
    }
    return false;
}

dp_status dp_plan_push(struct dp_plan *p, const char *unit) {
    char kind;
    int index;
    if (strlen(unit) >= sizeof p->units[0] || !parse_unit(unit, &kind, &index))
        return dp_fail(DP_ERR_ARG, "'%s' is not a unit (b<i>, a<i> or f<i>)", unit);
    if (p->n_blocks > 0 && index >= p->n_blocks)
        return dp_fail(DP_ERR_ARG, "unit %s does not exist (the model has %d blocks)", unit, p->n_blocks);
    if (p->n_units >= DP_PLAN_MAX_UNITS) return dp_fail(DP_ERR_ARG, "a plan holds at most %d units", DP_PLAN_MAX_UNITS);
    if (overlaps(p, p->n_units, kind, index)) return dp_fail(DP_ERR_ARG, "unit %s is removed twice", unit);
    snprintf(p->units[p->n_units++], sizeof p->units[0], "%s", unit);
    return DP_OK;
}

/* Copy a string member into buf (cap bytes); fails when present but not a string or too long. */
static dp_status get_str(const struct dp_jv *root, const char *key, const char *path, char *buf, size_t cap) {
    const struct dp_jv *v = dp_json_get(root, key);
    buf[0] = 0;
    if (!v || v->type == DP_JNULL) return DP_OK;
    if (v->type != DP_JSTR) return dp_fail(DP_ERR_FORMAT, "%s: \"%s\" must be a string", path, key);
    if (v->len >= cap || strlen(v->str) != v->len)
        return dp_fail(DP_ERR_FORMAT, "%s: \"%s\" is too long or holds a NUL", path, key);
    memcpy(buf, v->str, v->len + 1);
    return DP_OK;
}

static dp_status load_recover(const struct dp_jv *root, const char *path, struct dp_plan *p) {
    const struct dp_jv *r = dp_json_get(root, "recover");
    if (!r || r->type == DP_JNULL) return DP_OK;
    if (r->type != DP_JOBJ) return dp_fail(DP_ERR_FORMAT, "%s: \"recover\" must be an object or null", path);
    char file[1024];
    dp_status st;
    if ((st = get_str(r, "kind", path, p->recover_kind, sizeof p->recover_kind)) ||
        (st = get_str(r, "file", path, file, sizeof file)))
        return st;
    if (!p->recover_kind[0] || !file[0])
        return dp_fail(DP_ERR_FORMAT, "%s: \"recover\" needs a \"kind\" and a \"file\"", path);
    enum dp_recover_method method;
    int rank;
    if (dp_recover_parse_kind(p->recover_kind, &method, &rank) || method == DP_RECOVER_NONE)
        return dp_fail(DP_ERR_FORMAT,
                       "%s: recover.kind '%s' is not a recovery (mean, lowrank:R, bias-trained, lowrank-trained:R)",
                       path, p->recover_kind);
    size_t d = file[0] == '/' ? 0 : dir_len(path);
    if (d + strlen(file) >= sizeof p->recover_file)
        return dp_fail(DP_ERR_FORMAT, "%s: the recovery file's path is too long", path);
    memcpy(p->recover_file, path, d);
    strcpy(p->recover_file + d, file);
    return DP_OK;
}

static dp_status load_tree(const struct dp_jv *root, const char *path, struct dp_plan *p) {
    if (root->type != DP_JOBJ) return dp_fail(DP_ERR_FORMAT, "%s: a plan is a JSON object", path);
    const struct dp_jv *ver = dp_json_get(root, "depthprune_plan");
    if (!ver || ver->type != DP_JNUM)
        return dp_fail(DP_ERR_FORMAT, "%s: not a depthprune plan (no \"depthprune_plan\" version)", path);
    if (ver->num != 1 && ver->num != 2)
        return dp_fail(DP_ERR_UNSUPPORTED, "%s: \"depthprune_plan\" is %g: this depthprune reads versions 1 and 2", path,
                       ver->num);
    p->version = (int)ver->num;
    struct dp_identity id;
    dp_status st = dp_identity_read(root, path, p->version >= 2, &id);
    if (st) return st;
    dp_plan_set_identity(p, &id);
    const struct dp_jv *units = dp_json_get(root, "removed");
    if (!units || units->type != DP_JARR) return dp_fail(DP_ERR_FORMAT, "%s: \"removed\" must be a list of units", path);
    for (int i = 0; i < units->n; i++) {
        const struct dp_jv *u = &units->items[i];
        if (u->type != DP_JSTR) return dp_fail(DP_ERR_FORMAT, "%s: \"removed\"[%d] is not a string", path, i);
        if (strlen(u->str) != u->len || dp_plan_push(p, u->str)) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", dp_last_error());
            return dp_fail(DP_ERR_FORMAT, "%s: %s", path, msg);
        }
    }
    if ((st = get_str(root, "metric", path, p->metric, sizeof p->metric)) ||
        (st = get_str(root, "scheme", path, p->scheme, sizeof p->scheme)) ||
        (st = get_str(root, "model", path, p->model, sizeof p->model)))
        return st;
    return load_recover(root, path, p);
}

dp_status dp_plan_load(const char *path, struct dp_plan *out) {
    memset(out, 0, sizeof *out);
    struct dp_jv *root;
    dp_status st = dp_json_parse_file(path, &root);
    if (st) return st;
    st = load_tree(root, path, out);
    dp_json_free(root);
    if (st) memset(out, 0, sizeof *out);
    return st;
}

dp_status dp_plan_save(const struct dp_plan *p, const char *path) {
    struct dp_out o;
    dp_status st = dp_out_open(path, &o);
    if (st) return st;
    struct dp_json j;
    dp_json_init(&j, o.f);
    dp_json_begin_obj(&j, NULL);
    /* version 2 promises the model's identity; a plan without it (read from version 1) stays version 1 */
    dp_json_int(&j, "depthprune_plan", p->n_blocks > 0 && p->model_hash[0] && p->model_shape[0] ? 2 : 1);
    if (p->model[0]) dp_json_str(&j, "model", p->model);
    if (p->n_blocks > 0) dp_json_int(&j, "n_blocks", p->n_blocks);
    if (p->model_hash[0]) dp_json_str(&j, "model_hash", p->model_hash);
    if (p->model_shape[0]) dp_json_str(&j, "model_shape", p->model_shape);
    dp_json_begin_arr(&j, "removed");
    for (int i = 0; i < p->n_units; i++) dp_json_str(&j, NULL, p->units[i]);
    dp_json_end(&j);
    if (p->metric[0]) dp_json_str(&j, "metric", p->metric);
    if (p->scheme[0]) dp_json_str(&j, "scheme", p->scheme);
    if (p->recover_kind[0] && p->recover_file[0]) {
        /* Relative to the plan's folder when the file lies inside it, else absolute. */
        const char *file = p->recover_file;
        char *abs = NULL;
        size_t d = dir_len(path);
        if (file[0] != '/' && d == 0) {
            /* plan in the current folder: a relative path is already relative to it */
        } else if (!strncmp(file, path, d) && file[d] && !strchr(file + d, '/')) {
            file += d;
        } else if (file[0] != '/') {
            abs = realpath(file, NULL);
            if (!abs) {
                dp_out_abort(&o);
                return dp_fail(DP_ERR_IO, "%s: cannot resolve the recovery file %s", path, p->recover_file);
            }
            file = abs;
        }
        dp_json_begin_obj(&j, "recover");
        dp_json_str(&j, "kind", p->recover_kind);
        dp_json_str(&j, "file", file);
        dp_json_end(&j);
        free(abs);
    } else {
        dp_json_null(&j, "recover");
    }
    dp_json_end(&j);
    fputc('\n', o.f);
    return dp_out_commit(&o);
}

void dp_plan_identity(const struct dp_plan *p, struct dp_identity *out) {
    memset(out, 0, sizeof *out);
    out->n_blocks = p->n_blocks;
    memcpy(out->hash, p->model_hash, sizeof out->hash);
    memcpy(out->shape, p->model_shape, sizeof out->shape);
}

void dp_plan_set_identity(struct dp_plan *p, const struct dp_identity *id) {
    p->n_blocks = id->n_blocks;
    memcpy(p->model_hash, id->hash, sizeof p->model_hash);
    memcpy(p->model_shape, id->shape, sizeof p->model_shape);
}

dp_status dp_plan_apply(const struct dp_plan *p, struct dp_mask *mask) {
    if (p->n_blocks > 0 && p->n_blocks != mask->n_layers)
        return dp_fail(DP_ERR_ARG, "the plan was made for a model of %d blocks; this one has %d", p->n_blocks,
                       mask->n_layers);
    struct dp_mask tmp = *mask;
    for (int i = 0; i < p->n_units; i++) {
        char kind;
        int index;
        if (!parse_unit(p->units[i], &kind, &index)) return dp_fail(DP_ERR_ARG, "'%s' is not a unit", p->units[i]);
        if (index >= tmp.n_layers)
            return dp_fail(DP_ERR_ARG, "unit %s of the plan does not exist (the model has %d blocks)", p->units[i],
                           tmp.n_layers);
        if (kind != 'f') tmp.attn[index] = false;
        if (kind != 'a') tmp.ffn[index] = false;
    }
    *mask = tmp;
    return DP_OK;
}
