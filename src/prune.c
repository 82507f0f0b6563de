/*
 * prune: units, schemes, scores files and one-shot orders (see prune.h).
 *
 * Everything here is bookkeeping over small arrays (at most 2 * 512 units),
 * so the code favours plainness: linear searches, an insertion sort that is
 * stable by construction, one allocation per loaded file.
 */
#include "prune.h"

#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *scheme_names[DP_N_SCHEMES] = {"block", "attn", "ffn", "both"};

const char *dp_scheme_name(enum dp_scheme s) {
    DP_ASSERT((int)s >= 0 && (int)s < DP_N_SCHEMES);
    return scheme_names[s];
}

dp_status dp_scheme_parse(const char *name, enum dp_scheme *out) {
    for (int i = 0; i < DP_N_SCHEMES; i++)
        if (!strcmp(name, scheme_names[i])) {
            *out = (enum dp_scheme)i;
            return DP_OK;
        }
    return dp_fail(DP_ERR_ARG, "unknown scheme '%s' (block, attn, ffn or both)", name);
}

dp_status dp_unit_parse(const char *s, struct dp_unit *out) {
    if (s[0] != 'b' && s[0] != 'a' && s[0] != 'f')
        return dp_fail(DP_ERR_ARG, "unit '%s': units are b<i>, a<i> or f<i>", s);
    char *end;
    errno = 0;
    long i = strtol(s + 1, &end, 10);
    if (end == s + 1 || *end || errno || i < 0 || i >= DP_MAX_LAYERS || s[1] == '+' || s[1] == '-' || s[1] == ' ')
        return dp_fail(DP_ERR_ARG, "unit '%s': units are b<i>, a<i> or f<i>", s);
    out->kind = s[0];
    out->layer = (int)i;
    return DP_OK;
}

void dp_unit_name(struct dp_unit u, char *buf) {
    snprintf(buf, 16, "%c%d", u.kind, u.layer);
}

int dp_unit_index(struct dp_unit u, enum dp_scheme s) {
    return s == DP_SCHEME_BOTH ? 2 * u.layer + (u.kind == 'f') : u.layer;
}

bool dp_unit_in_scheme(struct dp_unit u, enum dp_scheme s) {
    switch (s) {
    case DP_SCHEME_BLOCK: return u.kind == 'b';
    case DP_SCHEME_ATTN: return u.kind == 'a';
    case DP_SCHEME_FFN: return u.kind == 'f';
    case DP_SCHEME_BOTH: return u.kind == 'a' || u.kind == 'f';
    }
    return false;
}

int dp_scheme_units(enum dp_scheme s, int n_layers, struct dp_unit *out) {
    int n = 0;
    for (int l = 0; l < n_layers; l++) {
        if (s == DP_SCHEME_BLOCK) out[n++] = (struct dp_unit){'b', l};
        if (s == DP_SCHEME_ATTN || s == DP_SCHEME_BOTH) out[n++] = (struct dp_unit){'a', l};
        if (s == DP_SCHEME_FFN || s == DP_SCHEME_BOTH) out[n++] = (struct dp_unit){'f', l};
    }
    return n;
}

void dp_unit_remove(struct dp_mask *mask, struct dp_unit u) {
    DP_ASSERT(u.layer >= 0 && u.layer < mask->n_layers);
    if (u.kind != 'f') mask->attn[u.layer] = false;
    if (u.kind != 'a') mask->ffn[u.layer] = false;
}

bool dp_unit_touches(const struct dp_mask *protect, struct dp_unit u) {
    if (!protect || u.layer < 0 || u.layer >= protect->n_layers) return false;
    return (u.kind != 'f' && protect->attn[u.layer]) || (u.kind != 'a' && protect->ffn[u.layer]);
}

dp_status dp_units_protect(const char *list, int n_layers, struct dp_mask *out) {
    memset(out, 0, sizeof *out);
    out->n_layers = n_layers;
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char buf[32];
        if (len == 0 || len >= sizeof buf) return dp_fail(DP_ERR_ARG, "unit list '%s': empty or overlong unit", list);
        memcpy(buf, p, len);
        buf[len] = 0;
        struct dp_unit u;
        if (dp_unit_parse(buf, &u)) return dp_fail(DP_ERR_ARG, "unit list '%s': units are b<i>, a<i> or f<i>", list);
        if (u.layer >= n_layers)
            return dp_fail(DP_ERR_ARG, "unit list '%s': %s does not exist (the model has %d blocks)", list, buf,
                           n_layers);
        if (u.kind != 'f') out->attn[u.layer] = true;
        if (u.kind != 'a') out->ffn[u.layer] = true;
        if (!comma) break;
        p = comma + 1;
        if (!*p) return dp_fail(DP_ERR_ARG, "unit list '%s' ends with a comma", list);
    }
    return DP_OK;
}

bool dp_metric_is_oracle(const char *metric) {
    return !strncmp(metric, "mmlu_shapley", 12);
}

bool dp_metric_is_span(const char *metric) {
    return !strcmp(metric, "angular");
}

/* ---- scores files ---- */

static dp_status push_score(struct dp_influences *acc, const struct dp_influence *sc) {
    if (acc->n == acc->cap) {
        int cap = acc->cap ? 2 * acc->cap : 64;
        struct dp_influence *s = realloc(acc->s, (size_t)cap * sizeof *s);
        if (!s) return dp_fail(DP_ERR_NOMEM, "out of memory");
        acc->s = s;
        acc->cap = cap;
    }
    acc->s[acc->n++] = *sc;
    return DP_OK;
}

/* A span "b<l>..b<m>" with l <= m, or one block "b<l>". */
static bool parse_span(const char *s, int *lo, int *hi) {
    const char *dots = strstr(s, "..");
    struct dp_unit one;
    if (!dots && !dp_unit_parse(s, &one) && one.kind == 'b') {
        *lo = *hi = one.layer;
        return true;
    }
    if (!dots || s[0] != 'b' || dots[2] != 'b') return false;
    char a[16], b[16];
    size_t la = (size_t)(dots - s);
    if (la >= sizeof a || strlen(dots + 2) >= sizeof b) return false;
    memcpy(a, s, la);
    a[la] = 0;
    strcpy(b, dots + 2);
    struct dp_unit ua, ub;
    if (dp_unit_parse(a, &ua) || dp_unit_parse(b, &ub) || ub.layer < ua.layer) return false;
    *lo = ua.layer;
    *hi = ub.layer;
    return true;
}

/* A short description of the calibration data a scores file records ("" when it records none). */
static char *calib_of(const struct dp_jv *root) {
    const struct dp_jv *d = dp_json_get(root, "data");
    char buf[2048] = "";
    if (d && d->type == DP_JOBJ) {
        const char *file = dp_json_get_str(d, "file", dp_json_get_str(d, "path", dp_json_get_str(d, "corpus", "")));
        const struct dp_jv *docs = dp_json_get(d, "docs");
        char range[64] = "";
        if (docs && docs->type == DP_JSTR) snprintf(range, sizeof range, "%s", docs->str);
        else if (docs && docs->type == DP_JARR && docs->n == 2 && docs->items[0].type == DP_JNUM &&
                 docs->items[1].type == DP_JNUM)
            snprintf(range, sizeof range, "%.0f:%.0f", docs->items[0].num, docs->items[1].num);
        if (*file) snprintf(buf, sizeof buf, "%s%s%s", file, *range ? " docs " : "", range);
    }
    return strdup(buf);
}

/* The version, identity and unit kind of a scores file (see prune.h). */
static dp_status read_origin(const struct dp_jv *root, const char *path, struct dp_scores_origin *o) {
    memset(o, 0, sizeof *o);
    const struct dp_jv *v = dp_json_get(root, "depthprune_scores");
    if (v && (v->type != DP_JNUM || (v->num != 1 && v->num != 2)))
        return dp_fail(DP_ERR_UNSUPPORTED, "%s: \"depthprune_scores\" is %s%g%s: this depthprune reads versions 1 and 2",
                       path, v->type == DP_JNUM ? "" : "not a number (", v->type == DP_JNUM ? v->num : 0,
                       v->type == DP_JNUM ? "" : ")");
    o->version = v ? (int)v->num : 0;
    dp_status st = dp_identity_read(root, path, o->version >= 2, &o->id);
    if (st) return st;
    const struct dp_jv *u = dp_json_get(root, "unit");
    if (u && u->type != DP_JNULL) {
        if (u->type != DP_JSTR || (strcmp(u->str, "block") && strcmp(u->str, "sublayer")))
            return dp_fail(DP_ERR_FORMAT, "%s: \"unit\" must be \"block\" or \"sublayer\"", path);
        snprintf(o->unit, sizeof o->unit, "%s", u->str);
    } else if (o->version >= 2) {
        return dp_fail(DP_ERR_FORMAT, "%s: \"unit\" is missing (this format version requires it)", path);
    }
    return DP_OK;
}

/* Whether a unit or span `name` agrees with the file's declared kind and block count. */
static dp_status check_entry(const struct dp_scores_origin *o, const char *path, int i, const char *name) {
    struct dp_unit u;
    int lo, hi;
    if (dp_unit_parse(name, &u)) {
        (void)parse_span(name, &lo, &hi);
        u.kind = 'b';
        u.layer = hi;
    }
    if (o->unit[0] && (u.kind == 'b') != !strcmp(o->unit, "block"))
        return dp_fail(DP_ERR_FORMAT, "%s: units[%d] is %s but \"unit\" is \"%s\"", path, i, name, o->unit);
    if (o->id.n_blocks && u.layer >= o->id.n_blocks)
        return dp_fail(DP_ERR_FORMAT, "%s: units[%d] is %s but \"n_blocks\" is %d", path, i, name, o->id.n_blocks);
    return DP_OK;
}

dp_status dp_influences_load(const char *path, struct dp_influences *acc) {
    struct dp_jv *root;
    dp_status st = dp_json_parse_file(path, &root);
    if (st) return st;
    const struct dp_jv *units = dp_json_get(root, "units");
    if (root->type != DP_JOBJ || !units || units->type != DP_JARR) {
        dp_json_free(root);
        return dp_fail(DP_ERR_FORMAT, "%s: not a scores file (no \"units\" list; write one with depthprune score)", path);
    }
    struct dp_scores_origin origin;
    if ((st = read_origin(root, path, &origin))) {
        dp_json_free(root);
        return st;
    }
    int n0 = acc->n;
    for (int i = 0; i < units->n && !st; i++) {
        const struct dp_jv *u = &units->items[i];
        const struct dp_jv *inf = dp_json_get(u, "influence");
        const char *name = dp_json_get_str(u, "unit", NULL), *metric = dp_json_get_str(u, "metric", NULL);
        if (!name || !metric || !inf || (inf->type != DP_JNUM && inf->type != DP_JNULL)) {
            st = dp_fail(DP_ERR_FORMAT, "%s: units[%d] needs \"unit\", \"metric\" and a numeric \"influence\"", path, i);
            break;
        }
        struct dp_influence sc;
        memset(&sc, 0, sizeof sc);
        struct dp_unit uu;
        int lo, hi;
        if (strlen(name) >= sizeof sc.unit || strlen(metric) >= sizeof sc.metric ||
            (dp_unit_parse(name, &uu) && !parse_span(name, &lo, &hi))) {
            st = dp_fail(DP_ERR_FORMAT, "%s: units[%d]: bad unit '%.40s' or metric '%.70s'", path, i, name, metric);
            break;
        }
        if ((st = check_entry(&origin, path, i, name))) break;
        strcpy(sc.unit, name);
        strcpy(sc.metric, metric);
        sc.influence = inf->type == DP_JNUM ? inf->num : NAN;
        const struct dp_jv *se = dp_json_get(u, "stderr");
        sc.stderr_ = se && se->type == DP_JNUM ? se->num : NAN;
        sc.file = acc->n_files;
        st = push_score(acc, &sc);
    }
    char **files = st ? NULL : realloc(acc->files, (size_t)(acc->n_files + 1) * sizeof *files);
    char **calib = files ? realloc(acc->calib, (size_t)(acc->n_files + 1) * sizeof *calib) : NULL;
    struct dp_scores_origin *orig = calib ? realloc(acc->origin, (size_t)(acc->n_files + 1) * sizeof *orig) : NULL;
    if (files) acc->files = files;
    if (calib) acc->calib = calib;
    if (orig) acc->origin = orig;
    if (!st && (!files || !calib || !orig)) st = dp_fail(DP_ERR_NOMEM, "out of memory");
    if (!st) {
        acc->origin[acc->n_files] = origin;
        acc->files[acc->n_files] = strdup(path);
        acc->calib[acc->n_files] = calib_of(root);
        acc->n_files++;
        if (!acc->files[acc->n_files - 1] || !acc->calib[acc->n_files - 1]) st = dp_fail(DP_ERR_NOMEM, "out of memory");
    }
    if (st) acc->n = n0;
    dp_json_free(root);
    return st;
}

void dp_influences_free(struct dp_influences *s) {
    if (!s) return;
    for (int i = 0; i < s->n_files; i++) {
        free(s->files[i]);
        free(s->calib[i]);
    }
    free(s->files);
    free(s->calib);
    free(s->origin);
    free(s->s);
    memset(s, 0, sizeof *s);
}

dp_status dp_influences_check(const struct dp_influences *s, const struct dp_identity *model, int scheme,
                              bool allow_twin, int *n_unchecked) {
    *n_unchecked = 0;
    const char *want = scheme == DP_SCHEME_BLOCK ? "block" : "sublayer";
    int n_declared = 0, n_suits = 0, first_other = -1;
    for (int i = 0; i < s->n_files; i++) {
        bool unchecked;
        dp_status st = dp_identity_check(&s->origin[i].id, model, s->files[i], allow_twin, &unchecked);
        if (st) return st;
        *n_unchecked += unchecked;
        if (!s->origin[i].unit[0]) continue;
        n_declared++;
        if (!strcmp(s->origin[i].unit, want)) n_suits++;
        else if (first_other < 0) first_other = i;
    }
    if (scheme >= 0 && n_declared == s->n_files && s->n_files && !n_suits)
        return dp_fail(DP_ERR_ARG, "%s: \"unit\" is \"%s\" but scheme %s needs %s scores (depthprune score --unit %s)",
                       s->files[first_other], s->origin[first_other].unit, dp_scheme_name((enum dp_scheme)scheme),
                       want, want);
    return DP_OK;
}

int dp_influences_metrics(const struct dp_influences *s, const char **out, int cap) {
    int n = 0;
    for (int i = 0; i < s->n; i++) {
        bool seen = false;
        for (int k = 0; k < i && !seen; k++) seen = !strcmp(s->s[k].metric, s->s[i].metric);
        if (seen) continue;
        if (n < cap) out[n] = s->s[i].metric;
        n++;
    }
    return n < cap ? n : cap;
}

/* The last score of (metric, unit) loaded (later files override earlier ones), or NULL. */
static const struct dp_influence *find_score(const struct dp_influences *s, const char *metric, const char *unit) {
    for (int i = s->n - 1; i >= 0; i--)
        if (!strcmp(s->s[i].metric, metric) && !strcmp(s->s[i].unit, unit)) return &s->s[i];
    return NULL;
}

bool dp_influences_cover(const struct dp_influences *s, const char *metric, enum dp_scheme scheme, int n_layers) {
    if (dp_metric_is_span(metric)) {
        if (scheme != DP_SCHEME_BLOCK) return false;
        for (int i = 0; i < s->n; i++)
            if (!strcmp(s->s[i].metric, metric)) return true;
        return false;
    }
    struct dp_unit us[2 * DP_MAX_LAYERS];
    int n = dp_scheme_units(scheme, n_layers, us);
    for (int i = 0; i < n; i++) {
        char name[16];
        dp_unit_name(us[i], name);
        if (!find_score(s, metric, name)) return false;
    }
    return true;
}

void dp_prune_rank(const double *influence, int n, int *order) {
    /* insertion sort: stable, and n is at most 1024 */
    for (int i = 0; i < n; i++) {
        int j = i;
        double v = influence[i];
        while (j > 0) {
            double w = influence[order[j - 1]];
            bool greater = isnan(v) ? false : (isnan(w) || w > v);
            if (!greater) break;
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
}

dp_status dp_prune_order(const struct dp_influences *s, const char *metric, enum dp_scheme scheme, int n_layers,
                         const struct dp_mask *protect, struct dp_unit *out, int *n_out) {
    *n_out = 0;
    if (dp_metric_is_span(metric))
        return dp_fail(DP_ERR_ARG, "metric %s scores block spans, not units: it has no unit order", metric);
    struct dp_unit us[2 * DP_MAX_LAYERS];
    double inf[2 * DP_MAX_LAYERS] = {0};
    int order[2 * DP_MAX_LAYERS];
    int n = dp_scheme_units(scheme, n_layers, us), m = 0;
    for (int i = 0; i < n; i++) {
        char name[16];
        dp_unit_name(us[i], name);
        const struct dp_influence *sc = find_score(s, metric, name);
        if (!sc)
            return dp_fail(DP_ERR_ARG, "scores lack %s for metric %s (scheme %s needs %s scores: depthprune score --unit %s)",
                           name, metric, dp_scheme_name(scheme), scheme == DP_SCHEME_BLOCK ? "block" : "sublayer",
                           scheme == DP_SCHEME_BLOCK ? "block" : "sublayer");
        if (isnan(sc->influence))
            return dp_fail(DP_ERR_ARG, "metric %s has no influence value for %s", metric, name);
        if (dp_unit_touches(protect, us[i])) continue;
        us[m] = us[i];
        inf[m++] = sc->influence;
    }
    dp_prune_rank(inf, m, order);
    for (int k = 0; k < m; k++) out[k] = us[order[k]];
    *n_out = m;
    return DP_OK;
}

dp_status dp_prune_span(const struct dp_influences *s, const char *metric, int n, const struct dp_mask *protect,
                        struct dp_unit *out, bool *found) {
    *found = false;
    const struct dp_influence *best = NULL;
    int best_lo = 0;
    for (int i = 0; i < s->n; i++) {
        int lo, hi;
        const struct dp_influence *sc = &s->s[i];
        if (strcmp(sc->metric, metric) || !parse_span(sc->unit, &lo, &hi) || hi - lo + 1 != n || isnan(sc->influence))
            continue;
        bool blocked = false;
        for (int l = lo; l <= hi && !blocked; l++) blocked = dp_unit_touches(protect, (struct dp_unit){'b', l});
        if (blocked) continue;
        if (!best || sc->influence < best->influence || (sc->influence == best->influence && lo < best_lo)) {
            best = sc;
            best_lo = lo;
        }
    }
    if (!best) return DP_OK;
    for (int k = 0; k < n; k++) out[k] = (struct dp_unit){'b', best_lo + k};
    *found = true;
    return DP_OK;
}
