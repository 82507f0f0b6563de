/*
 * api_export: export file to file through the public header (like
 * llama_model_quantize): open the source, build the mask of the removed
 * units, write the pruned model (src/export.c) under a temporary name,
 * reload it and compare its logits on a short fixed token sequence with the
 * in-memory pruned model's (mask plus recovery hooks), and only then give it
 * its final name. When every new or modified tensor reads back exactly, the
 * logits must agree to float rounding or nothing is written.
 */
#include "api.h"
#include "export.h"
#include "quantize.h"
#include "types.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VERIFY_TOKENS 32

struct dp_export_params dp_export_default_params(void) {
    struct dp_export_params p = {.verify = true};
    return p;
}

bool dp_export_type_supported(const char *type) {
    int t = type ? dp_type_from_name(type) : -1;
    return t >= 0 && dp_quantize_supported((uint32_t)t);
}

/* Logits of VERIFY_TOKENS tokens (BOS, then a fixed walk through the vocabulary). */
static dp_status verify_logits(const struct dp_model *m, const struct dp_mask *mask, const struct dp_recovery *rec,
                               struct dp_pool *pool, float *out) {
    const struct dp_config *c = dp_model_config(m);
    int n = VERIFY_TOKENS < c->n_ctx_train ? VERIFY_TOKENS : c->n_ctx_train, ids[VERIFY_TOKENS];
    ids[0] = dp_tokenizer_bos(dp_model_tokenizer(m));
    if (ids[0] < 0 || ids[0] >= c->n_vocab) ids[0] = 0;
    for (int i = 1; i < n; i++) ids[i] = (int)(((int64_t)i * 7919 + 17) % c->n_vocab);
    struct dp_session_params sp = dp_session_default_params();
    sp.n_ctx = n;
    sp.mask = mask;
    sp.recovery = rec;
    struct dp_session *s;
    dp_status st = dp_session_new_with(m, &sp, &s);
    if (!st) st = dp_session_forward(s, pool, ids, n, out, DP_LOGITS_ALL);
    dp_session_free(s);
    return st;
}

/* The largest |logit difference| between the pruned model and the written one (and the largest |logit|). */
static dp_status verify(const struct dp_model *m, const struct dp_mask *mask, const struct dp_recovery *rec,
                        const struct dp_model *e, struct dp_pool *pool, double *diff, double *scale) {
    const struct dp_config *c = dp_model_config(m);
    size_t n = (size_t)VERIFY_TOKENS * c->n_vocab;
    float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    dp_status st = want && got ? DP_OK : dp_fail(DP_ERR_NOMEM, "out of memory");
    if (!st) st = verify_logits(m, mask, rec, pool, want);
    if (!st) st = verify_logits(e, NULL, NULL, pool, got);
    int rows = VERIFY_TOKENS < c->n_ctx_train ? VERIFY_TOKENS : c->n_ctx_train;
    *diff = *scale = 0;
    for (size_t i = 0; !st && i < (size_t)rows * c->n_vocab; i++) {
        *diff = fmax(*diff, fabs((double)got[i] - want[i]));
        *scale = fmax(*scale, fabs(want[i]));
    }
    free(want);
    free(got);
    return st;
}

dp_status dp_export_file(const char *src, const char *dst, const struct dp_export_params *p, struct dp_pool *pool,
                         struct dp_export_result *out) {
    struct dp_export_result res;
    memset(&res, 0, sizeof res);
    if (out) *out = res;
    if (!src || !dst || !p || !pool) return dp_fail(DP_ERR_ARG, "export: source, output, params and pool are required");
    int type = p->out_type ? dp_type_from_name(p->out_type) : -1;
    if (p->out_type && !dp_export_type_supported(p->out_type))
        return dp_fail(DP_ERR_ARG, "export: '%s' is not a type the exporter writes", p->out_type);
    struct dp_model *m = NULL, *e = NULL;
    dp_status st = dp_model_open(src, NULL, &m);
    if (st) return st;
    struct dp_mask mask;
    if (p->mask) mask = *p->mask;
    else {
        dp_mask_all(m, &mask);
        st = dp_mask_drop(&mask, p->units ? p->units : "");
    }
    if (!st && p->recovery && p->recovery->dim != dp_model_config(m)->n_embd)
        st = dp_fail(DP_ERR_ARG, "export: the recovery (%s) does not fit %s (width %d, not %d)", p->recovery->kind, src,
                     p->recovery->dim, dp_model_config(m)->n_embd);
    size_t tlen = strlen(dst) + 48;
    char *tmp = malloc(tlen);
    if (!st && !tmp) st = dp_fail(DP_ERR_NOMEM, "out of memory");
    if (tmp) snprintf(tmp, tlen, "%s.unverified-%ld", dst, (long)getpid());
    struct dp_export_opts o = {.out_type = p->out_type ? (uint32_t)type : DP_EXPORT_SOURCE_TYPES, .removed = p->units,
                               .metric = p->metric, .scheme = p->scheme, .calib = p->calib, .plan = p->plan};
    struct dp_export_info info;
    bool written = false;
    if (!st && !dp_progress_step(p->progress, p->progress_user, "export", 0, 2)) st = DP_ERR_CANCELLED;
    if (!st && dp_dist_rank() > 0) { /* several ranks (dist.h): rank 0 alone writes and verifies the file */
        free(tmp);
        dp_model_close(m);
        if (out) *out = res;
        return DP_OK;
    }
    if (!st) st = dp_export(m, &mask, p->recovery, &o, tmp, &info);
    written = !st;
    if (!st && !dp_progress_step(p->progress, p->progress_user, "export", 1, 2)) st = DP_ERR_CANCELLED;
    if (!st) st = dp_model_open(tmp, NULL, &e);
    if (!st) {
        snprintf(res.arch, sizeof res.arch, "%s", info.arch);
        res.n_blocks = info.n_blocks;
        memcpy(res.sha256, info.sha256, sizeof res.sha256);
        res.lossless = info.lossless;
        res.n_fallback = info.n_fallback;
    }
    if (!st && p->verify) {
        double diff = 0, scale = 0;
        dp_status vst = verify(m, &mask, p->recovery, e, pool, &diff, &scale);
        if (vst) {
            char why[512];
            snprintf(why, sizeof why, "%s", dp_last_error());
            st = dp_fail(vst, "verifying %s: %s", dst, why);
        }
        /* float rounding only: folded constants and B / silu(1) reassociate sums */
        else if (info.lossless && !(diff <= 1e-4 * fmax(1.0, scale)))
            st = dp_fail(DP_ERR_FORMAT, "%s would not reproduce the pruned model (max |logit difference| %.3g); not written",
                         dst, diff);
        res.verified = !st;
        res.verify_max_abs_diff = diff;
    }
    dp_model_close(e);
    if (!st && !dp_progress_step(p->progress, p->progress_user, "export", 2, 2)) st = DP_ERR_CANCELLED;
    if (!st && rename(tmp, dst)) st = dp_fail(DP_ERR_IO, "%s: cannot rename the verified file into place", dst);
    else if (!st) written = false;
    if (written) unlink(tmp);
    free(tmp);
    dp_model_close(m);
    if (!st && out) *out = res;
    return st;
}
