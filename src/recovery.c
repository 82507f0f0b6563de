/*
 * recovery: the recovery object and how it is applied (see recovery.h).
 * It sits below both the fitting (recover.c) and the training tape
 * (backward.c), which share dp_recovery_unit_delta: the hooks apply a
 * recovery in a forward pass through it, the tape in its own forward pass.
 */
#include "recovery.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int dp_recovery_slot(const struct dp_unit_recovery *u) { return 2 * u->layer + (u->kind == 'a' ? 0 : 1); }

void dp_recovery_free(struct dp_recovery *r) {
    if (!r) return;
    for (int i = 0; r->units && i < r->n; i++) {
        free(r->units[i].c);
        free(r->units[i].A);
        free(r->units[i].B);
        free(r->units[i].norm);
        free(r->units[i].hbuf);
    }
    free(r->units);
    free(r);
}

void dp_recovery_unit_delta(const struct dp_recovery *r, const struct dp_unit_recovery *u, const float *x, int n,
                            float *delta, float *z, float *az) {
    int dim = r->dim, R = u->rank;
    float local[256], *buf = NULL;
    if (R > 0 && !az) {
        buf = R <= 256 ? local : malloc((size_t)R * sizeof *buf);
        DP_ASSERT(buf != NULL);
    }
    for (int t = 0; t < n; t++) {
        const float *xr = x + (size_t)t * dim;
        float *dr = delta + (size_t)t * dim;
        if (R == 0) {
            memcpy(dr, u->c, (size_t)dim * sizeof *dr);
            if (z) memset(z + (size_t)t * dim, 0, (size_t)dim * sizeof *z);
            continue;
        }
        /* z = x / rms(x) * w, as model.c computes a norm */
        double ss = 0;
        for (int i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        float scale = 1.0f / sqrtf((float)(ss / dim) + r->norm_eps);
        float *ar = az ? az + (size_t)t * R : buf;
        for (int k = 0; k < R; k++) {
            const float *a = u->A + (size_t)k * dim;
            double s = 0;
            for (int i = 0; i < dim; i++) s += (double)a[i] * (xr[i] * scale * u->norm[i]);
            ar[k] = (float)s;
        }
        if (z)
            for (int i = 0; i < dim; i++) z[(size_t)t * dim + i] = xr[i] * scale * u->norm[i];
        for (int j = 0; j < dim; j++) {
            const float *b = u->B + (size_t)j * R;
            double s = u->c[j];
            for (int k = 0; k < R; k++) s += (double)b[k] * ar[k];
            dr[j] = (float)s;
        }
    }
    if (buf != local) free(buf);
}

bool dp_recovery_replace(void *ctx, int unit, const float *x, float *delta, int n, int dim, int pos0) {
    const struct dp_recovery *r = ctx;
    (void)pos0;
    DP_ASSERT(dim == r->dim);
    for (int i = 0; i < r->n; i++)
        if (dp_recovery_slot(&r->units[i]) == unit) {
            const struct dp_unit_recovery *u = &r->units[i];
            if (u->host >= 0) dp_recovery_linear_delta(r, u, u->hbuf, n, delta);
            else if (u->host == DP_RECOVERY_HOST_EMBD) dp_recovery_linear_delta(r, u, x, n, delta); /* x: embedding */
            else dp_recovery_unit_delta(r, u, x, n, delta, NULL, NULL);
            return true;
        }
    return false;
}

/* Linear kinds: keep each host's update m = y - x of the batch for the replacement that follows it. */
static void recovery_observe(void *ctx, int unit, const float *x, const float *y, int n, int dim, int pos0) {
    const struct dp_recovery *r = ctx;
    (void)pos0;
    DP_ASSERT(dim == r->dim && n <= DP_RECOVERY_MAX_ROWS);
    for (int i = 0; i < r->n; i++) {
        const struct dp_unit_recovery *u = &r->units[i];
        if (u->host != unit || !u->hbuf) continue;
        for (size_t k = 0; k < (size_t)n * dim; k++) u->hbuf[k] = y[k] - x[k];
    }
}

void dp_recovery_hooks(const struct dp_recovery *r, const struct dp_model *m, struct dp_hooks *out) {
    memset(out, 0, sizeof *out);
    DP_ASSERT(r->dim == m->cfg.n_embd);
    out->ctx = (void *)r;
    out->replace = dp_recovery_replace;
    for (int i = 0; i < r->n; i++)
        if (r->units[i].host >= 0) out->observe = recovery_observe;
}
