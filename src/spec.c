/*
 * spec: self-speculative decoding and the draft metrics (see spec.h).
 *
 * A round, with the verifier at position P (tokens 0..P-1 cached) and the
 * pending token t (the verifier's choice, emitted but not yet fed):
 *
 *   1. the draft feeds what it lacks of the history plus t (one batch),
 *      then its own proposals one at a time: d_1 .. d_K (K forward calls);
 *   2. the verifier feeds [t, d_1 .. d_K] in one batch with all logits:
 *      rows v_0 .. v_K, v_i the distribution after d_i (d_0 = t);
 *   3. d_{i+1} is checked against v_i for i = 0, 1, ...; the first rejection
 *      replaces d_{i+1} by the verifier's token, and when all K pass, v_K
 *      gives a bonus token: either way the new pending token;
 *   4. the verifier is rewound to P + 1 + accepted; the draft to the same
 *      position when it rejected, else it lacks only d_K (fed next round).
 *
 * K is never more than the tokens still wanted minus one, so no position
 * beyond n_prompt + n_new is ever used and a round never overshoots -n.
 * With K = 0 (no draft) a round is one plain decode step.
 *
 * Random draws come from a seeded splitmix64 stream (rng.h) in a fixed order (per
 * drafted token: its draw from q; per checked token: u, then w; then the
 * bonus token's draw), so a seed reproduces the text for any thread count.
 */
#include "spec.h"

#include "prune.h"
#include "rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the rule and the cost model ---- */

int dp_spec_rule(const double *p, const double *q, int n, int d, double u, double w, bool *accepted) {
    DP_ASSERT(d >= 0 && d < n);
    if (q[d] > 0 && u * q[d] < p[d]) { /* u < p/q, without dividing */
        *accepted = true;
        return d;
    }
    *accepted = false;
    double z = 0;
    for (int i = 0; i < n; i++) z += p[i] > q[i] ? p[i] - q[i] : 0;
    double r = w * (z > 0 ? z : 1), acc = 0;
    int last = 0;
    for (int i = 0; i < n; i++) {
        double e = z > 0 ? (p[i] > q[i] ? p[i] - q[i] : 0) : p[i];
        if (e <= 0) continue;
        acc += e;
        last = i;
        if (acc > r) return i;
    }
    return last;
}

double dp_spec_tokens_per_verify(double a, int K) {
    if (a >= 1) return K + 1;
    if (a <= 0) return 1;
    return (1 - pow(a, K + 1)) / (1 - a);
}

double dp_spec_speedup(double a, int K, double c_draft, const double *c_verify) {
    double cost = K * c_draft + (c_verify ? c_verify[K] : 1);
    return cost > 0 ? dp_spec_tokens_per_verify(a, K) / cost : 0;
}

int dp_spec_best_len(double a, int k_max, double c_draft, const double *c_verify, double *speedup) {
    int best = 1;
    double bs = dp_spec_speedup(a, 1, c_draft, c_verify);
    for (int k = 2; k <= k_max; k++) {
        double s = dp_spec_speedup(a, k, c_draft, c_verify);
        if (s > bs) bs = s, best = k;
    }
    if (speedup) *speedup = bs;
    return best;
}

double dp_spec_accept_rate(const struct dp_spec_stats *s) {
    int64_t n = s->n_accepted + s->n_rejected;
    return n ? (double)s->n_accepted / (double)n : 0;
}

/* ---- sampling ---- */

/* argmax, first index on ties (as generate picks greedily) */
static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* p = softmax(logits / temp) in double */
static void softmax_t(const float *logits, int n, double temp, double *p) {
    int b = argmax(logits, n);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (p[i] = exp((logits[i] - logits[b]) / temp));
    for (int i = 0; i < n; i++) p[i] /= sum;
}

static int draw(const double *p, int n, double u) {
    double acc = 0;
    int last = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] <= 0) continue;
        acc += p[i];
        last = i;
        if (acc > u) return i;
    }
    return last;
}

/* ---- generation ---- */

struct spec_run {
    struct dp_session *v, *d;
    struct dp_pool *pool;
    const struct dp_spec_opts *o;
    int V;
    int *hist;            /* (n_prompt + n_new) every token fed or pending */
    float *vlog;          /* (DP_SPEC_MAX_LEN + 1, V) verifier logits of a round */
    float *dlog;          /* (V) the draft's last logits */
    double *q;            /* sampling: (DP_SPEC_MAX_LEN, V) the draft's distribution of each proposal */
    double *p;            /* sampling: (V) */
    struct dp_rng rng;
};

/* The next token from logits (greedy or sampled); with q non-NULL the distribution is kept there. */
static int choose(struct spec_run *r, const float *logits, double *q) {
    if (r->o->temp <= 0) return argmax(logits, r->V);
    double *p = q ? q : r->p;
    softmax_t(logits, r->V, r->o->temp, p);
    return draw(p, r->V, dp_rng_unit(&r->rng));
}

/*
 * One round with the verifier at n_hist - 1 (hist[n_hist-1] pending) and K
 * proposals; writes the tokens it yields to out and returns their count.
 */
static dp_status round_k(struct spec_run *r, int n_hist, int K, struct dp_spec_stats *st, int *out, int *n_out) {
    const struct dp_spec_opts *o = r->o;
    int P = n_hist - 1, V = r->V;
    int *prop = r->hist + n_hist; /* proposals d_1..d_K follow the pending token in hist */
    dp_status s = DP_OK;
    double t0 = dp_now();
    if (K > 0) {
        int dpos = dp_session_pos(r->d);
        s = dp_session_forward_hooked(r->d, r->pool, r->hist + dpos, n_hist - dpos, r->dlog, DP_LOGITS_LAST,
                                      o->draft_hooks);
        for (int i = 0; !s && i < K; i++) {
            prop[i] = choose(r, r->dlog, r->q ? r->q + (size_t)i * V : NULL);
            if (i + 1 < K)
                s = dp_session_forward_hooked(r->d, r->pool, &prop[i], 1, r->dlog, DP_LOGITS_LAST, o->draft_hooks);
        }
    }
    double t1 = dp_now();
    st->t_draft += t1 - t0;
    if (!s) s = dp_session_forward_hooked(r->v, r->pool, r->hist + P, K + 1, r->vlog, DP_LOGITS_ALL, o->verify_hooks);
    if (s) return s;
    st->n_verify++;
    st->n_drafted += K;
    int acc = 0, next = -1;
    for (; acc < K; acc++) {
        const float *vl = r->vlog + (size_t)acc * V;
        if (o->temp <= 0) {
            next = argmax(vl, V);
            if (next != prop[acc]) break;
        } else {
            softmax_t(vl, V, o->temp, r->p);
            bool ok;
            double u = dp_rng_unit(&r->rng), w = dp_rng_unit(&r->rng);
            next = dp_spec_rule(r->p, r->q + (size_t)acc * V, V, prop[acc], u, w, &ok);
            if (!ok) break;
        }
        out[acc] = prop[acc];
    }
    if (acc == K) next = choose(r, r->vlog + (size_t)K * V, NULL);
    else st->n_rejected++;
    st->n_accepted += acc;
    out[acc] = next;
    *n_out = acc + 1;
    dp_session_rewind(r->v, P + 1 + acc);
    if (K > 0 && acc < K) dp_session_rewind(r->d, P + 1 + acc);
    st->t_verify += dp_now() - t1;
    return DP_OK;
}

static int auto_len(const struct dp_spec_opts *o, const struct dp_spec_stats *st) {
    int k_max = o->max_draft_len > 0 ? o->max_draft_len : 8;
    if (k_max > DP_SPEC_MAX_LEN) k_max = DP_SPEC_MAX_LEN;
    double a = (st->n_accepted + 1.0) / (st->n_accepted + st->n_rejected + 2.0); /* prior: one of each */
    return dp_spec_best_len(a, k_max, o->draft_cost > 0 ? o->draft_cost : 0.5, NULL, NULL);
}

struct dp_spec_opts dp_spec_default_opts(void) {
    struct dp_spec_opts o = {.seed = 1, .eos = -1};
    return o;
}

dp_status dp_spec_generate(struct dp_session *verify, struct dp_session *draft, struct dp_pool *pool,
                           const int *prompt, int n_prompt, int n_new, const struct dp_spec_opts *o,
                           dp_spec_emit_fn emit, void *ctx, struct dp_spec_stats *stats) {
    memset(stats, 0, sizeof *stats);
    const struct dp_model *m = dp_session_model(verify);
    if (n_prompt < 1 || n_new < 0) return dp_fail(DP_ERR_ARG, "speculative decoding of %d prompt tokens", n_prompt);
    if (o->draft_len < 0 || o->draft_len > DP_SPEC_MAX_LEN)
        return dp_fail(DP_ERR_ARG, "draft length %d is outside 1..%d", o->draft_len, DP_SPEC_MAX_LEN);
    if (draft && dp_session_model(draft) != m) return dp_fail(DP_ERR_ARG, "the draft session runs another model");
    if (dp_session_pos(verify) || (draft && dp_session_pos(draft)))
        return dp_fail(DP_ERR_ARG, "speculative decoding needs fresh sessions");
    if (dp_session_n_ctx(verify) < n_prompt + n_new || (draft && dp_session_n_ctx(draft) < n_prompt + n_new))
        return dp_fail(DP_ERR_ARG, "%d prompt + %d new tokens do not fit the sessions' context", n_prompt, n_new);
    if (n_new == 0) return DP_OK;
    struct spec_run r = {.v = verify, .d = draft, .pool = pool, .o = o, .V = m->cfg.n_vocab, .rng = dp_rng_raw(o->seed)};
    size_t V = (size_t)r.V;
    r.hist = dp_malloc((size_t)(n_prompt + n_new + DP_SPEC_MAX_LEN + 1) * sizeof *r.hist);
    r.vlog = dp_malloc((DP_SPEC_MAX_LEN + 1) * V * sizeof *r.vlog);
    r.dlog = dp_malloc(V * sizeof *r.dlog);
    bool sampling = o->temp > 0;
    if (sampling) {
        r.q = dp_malloc(DP_SPEC_MAX_LEN * V * sizeof *r.q);
        r.p = dp_malloc(V * sizeof *r.p);
    }
    dp_status s = DP_OK;
    if (!r.hist || !r.vlog || !r.dlog || (sampling && (!r.q || !r.p))) s = dp_fail(DP_ERR_NOMEM, "out of memory");
    if (!s) memcpy(r.hist, prompt, (size_t)n_prompt * sizeof *prompt);
    double t0 = dp_now();
    if (!s) s = dp_session_forward_hooked(verify, pool, prompt, n_prompt, r.vlog, DP_LOGITS_LAST, o->verify_hooks);
    if (!s && draft) s = dp_session_forward_hooked(draft, pool, prompt, n_prompt, NULL, DP_LOGITS_NONE, o->draft_hooks);
    stats->t_prefill = dp_now() - t0;
    int n_hist = n_prompt, out[DP_SPEC_MAX_LEN + 1], n_out = 1;
    if (!s) out[0] = choose(&r, r.vlog, NULL);
    bool done = s != DP_OK;
    while (!done) {
        for (int i = 0; i < n_out && !done; i++) {
            if (out[i] == o->eos || !emit(ctx, out[i])) {
                done = true;
                break;
            }
            r.hist[n_hist++] = out[i];
            done = ++stats->n_generated == n_new;
        }
        if (done) break;
        int left = n_new - (int)stats->n_generated;
        int K = !draft ? 0 : o->draft_len ? o->draft_len : auto_len(o, stats);
        if (K > left - 1) K = left - 1;
        s = round_k(&r, n_hist, K, stats, out, &n_out);
        done = s != DP_OK;
    }
    free(r.hist);
    free(r.vlog);
    free(r.dlog);
    free(r.q);
    free(r.p);
    return s;
}

/* ---- teacher-forced agreement and costs ---- */

int64_t dp_spec_step_bytes(const struct dp_model *m, const struct dp_mask *mask) {
    struct dp_model_stats st;
    dp_model_stats(m, mask, &st);
    int64_t b = st.n_bytes;
    if (!m->cfg.tied_output && m->tok_embd.data)
        b -= (int64_t)(dp_type_row_bytes(m->tok_embd.type, m->tok_embd.n_in) * (size_t)m->tok_embd.n_out);
    return b;
}

static dp_status argmax_pass(const struct dp_model *m, struct dp_pool *pool, const struct dp_mask *mask,
                             const struct dp_hooks *hooks, const struct dp_chunks *ch, const int *ref, int *out,
                             int64_t *n_agree) {
    int V = m->cfg.n_vocab;
    struct dp_session *s = NULL;
    float *logits = dp_malloc((size_t)ch->ctx * V * sizeof *logits);
    dp_status st = logits ? dp_session_new(m, mask, ch->ctx, &s) : dp_fail(DP_ERR_NOMEM, "out of memory");
    *n_agree = 0;
    for (int q = 0; !st && q < ch->n_seqs; q++) {
        dp_session_reset(s);
        const int *ids = ch->ids + (size_t)q * ch->ctx;
        st = dp_session_forward_hooked(s, pool, ids, ch->ctx, logits, DP_LOGITS_ALL, hooks);
        for (int t = 0; !st && t < ch->ctx; t++) {
            int a = argmax(logits + (size_t)t * V, V);
            if (out) out[(size_t)q * ch->ctx + t] = a;
            if (ref) *n_agree += a == ref[(size_t)q * ch->ctx + t];
        }
    }
    dp_session_free(s);
    free(logits);
    return st;
}

dp_status dp_spec_reference(const struct dp_model *m, struct dp_pool *pool, const struct dp_mask *mask,
                            const struct dp_hooks *hooks, const struct dp_chunks *ch, int *ref) {
    int64_t unused;
    return argmax_pass(m, pool, mask, hooks, ch, NULL, ref, &unused);
}

dp_status dp_spec_agreement(const struct dp_model *m, struct dp_pool *pool, const struct dp_mask *mask,
                            const struct dp_hooks *hooks, const struct dp_chunks *ch, const int *ref, double *rate,
                            int64_t *n_agree, int64_t *n) {
    int64_t agree = 0, total = (int64_t)ch->n_seqs * ch->ctx;
    dp_status st = argmax_pass(m, pool, mask, hooks, ch, ref, NULL, &agree);
    if (st) return st;
    *rate = total ? (double)agree / (double)total : 0;
    if (n_agree) *n_agree = agree;
    if (n) *n = total;
    return DP_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

dp_status dp_spec_time_step(const struct dp_model *m, struct dp_pool *pool, const struct dp_mask *mask,
                            const struct dp_hooks *hooks, int pos0, int n_tok, int reps, double *seconds) {
    if (pos0 < 1 || n_tok < 1 || reps < 1 || reps > 1000)
        return dp_fail(DP_ERR_ARG, "timing %d tokens after %d positions, %d times", n_tok, pos0, reps);
    int V = m->cfg.n_vocab;
    struct dp_session *s = NULL;
    int *ids = dp_malloc((size_t)(pos0 + n_tok) * sizeof *ids);
    float *logits = dp_malloc((size_t)n_tok * V * sizeof *logits);
    double *t = dp_malloc((size_t)reps * sizeof *t);
    dp_status st = ids && logits && t ? dp_session_new(m, mask, pos0 + n_tok, &s) : dp_fail(DP_ERR_NOMEM, "out of memory");
    for (int i = 0; ids && i < pos0 + n_tok; i++) ids[i] = (int)((i * 7919u + 1) % (unsigned)V);
    if (!st) st = dp_session_forward_hooked(s, pool, ids, pos0, logits, DP_LOGITS_LAST, hooks);
    for (int i = -1; !st && i < reps; i++) {
        dp_session_rewind(s, pos0);
        double t0 = dp_now();
        st = dp_session_forward_hooked(s, pool, ids + pos0, n_tok, logits, DP_LOGITS_ALL, hooks);
        if (i >= 0) t[i] = dp_now() - t0;
    }
    if (!st) {
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        *seconds = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    }
    dp_session_free(s);
    free(ids);
    free(logits);
    free(t);
    return st;
}

/* ---- measuring a draft against the full model ---- */

int dp_spec_time_pos(const struct dp_model *m) {
    int n = m->cfg.n_ctx_train;
    return n < 2 * 128 ? n / 2 : 128;
}

dp_status dp_spec_yardstick_init(struct dp_spec_yardstick *y, const struct dp_model *m, struct dp_pool *pool,
                                 const struct dp_chunks *ch, int k_max, bool timed, int time_pos, int time_reps) {
    memset(y, 0, sizeof *y);
    if (k_max < 1 || k_max > DP_SPEC_MAX_LEN) return dp_fail(DP_ERR_ARG, "draft lengths 1..%d", k_max);
    *y = (struct dp_spec_yardstick){.ch = ch, .k_max = k_max, .timed = timed, .time_pos = time_pos, .time_reps = time_reps};
    struct dp_mask full;
    dp_mask_all(m, &full);
    y->full_bytes = (double)dp_spec_step_bytes(m, &full);
    for (int k = 0; k <= k_max; k++) y->c_verify[k] = 1;
    if (!(y->ref = dp_malloc((size_t)ch->n_seqs * ch->ctx * sizeof *y->ref))) return dp_fail(DP_ERR_NOMEM, "out of memory");
    dp_status st = dp_spec_reference(m, pool, &full, NULL, ch, y->ref);
    if (!st && timed) {
        st = dp_spec_time_step(m, pool, &full, NULL, time_pos, 1, time_reps, &y->t_full);
        for (int k = 1; !st && k <= k_max; k++) {
            double t;
            st = dp_spec_time_step(m, pool, &full, NULL, time_pos, k + 1, time_reps, &t);
            y->c_verify[k] = t / y->t_full;
        }
    }
    if (st) dp_spec_yardstick_free(y);
    return st;
}

void dp_spec_yardstick_free(struct dp_spec_yardstick *y) {
    free(y->ref);
    y->ref = NULL;
}

dp_status dp_spec_cost(const struct dp_spec_yardstick *y, const struct dp_model *m, struct dp_pool *pool,
                       const struct dp_mask *mask, const struct dp_hooks *hooks, double agree, struct dp_spec_plan *out) {
    out->agree = agree;
    out->c_bytes = out->c_draft = (double)dp_spec_step_bytes(m, mask) / y->full_bytes;
    if (y->timed) {
        double t;
        dp_status st = dp_spec_time_step(m, pool, mask, hooks, y->time_pos, 1, y->time_reps, &t);
        if (st) return st;
        out->c_draft = t / y->t_full;
    }
    out->best_len = dp_spec_best_len(agree, y->k_max, out->c_draft, y->c_verify, &out->speedup);
    out->tokens_per_verify = dp_spec_tokens_per_verify(agree, out->best_len);
    return DP_OK;
}

dp_status dp_spec_measure(const struct dp_spec_yardstick *y, const struct dp_model *m, struct dp_pool *pool,
                          const struct dp_mask *mask, const struct dp_hooks *hooks, struct dp_spec_plan *out) {
    double a;
    dp_status st = dp_spec_agreement(m, pool, mask, hooks, y->ch, y->ref, &a, NULL, NULL);
    return st ? st : dp_spec_cost(y, m, pool, mask, hooks, a, out);
}

/* ---- the draft search ---- */

static dp_status plan_mask(const struct dp_model *m, const struct dp_unit *units, int n, struct dp_mask *mask) {
    dp_mask_all(m, mask);
    for (int i = 0; i < n; i++) dp_unit_remove(mask, units[i]);
    return DP_OK;
}

dp_status dp_spec_search(const struct dp_model *m, struct dp_pool *pool, const struct dp_chunks *ch,
                         const struct dp_spec_search_opts *o, double *c_verify, struct dp_spec_plan *out, int cap,
                         int *n_out) {
    *n_out = 0;
    int L = m->cfg.n_layers, k_max = o->k_max;
    if (k_max < 1 || k_max > DP_SPEC_MAX_LEN) return dp_fail(DP_ERR_ARG, "draft lengths 1..%d", k_max);
    if (o->max_removed < 1) return dp_fail(DP_ERR_ARG, "plans of 1..%d units", o->max_removed);
    struct dp_spec_yardstick y;
    dp_status st = dp_spec_yardstick_init(&y, m, pool, ch, k_max, o->timed, o->time_pos, o->time_reps);
    if (st) return st;
    memcpy(c_verify, y.c_verify, (size_t)(k_max + 1) * sizeof *c_verify);
    struct dp_unit all[2 * DP_MAX_LAYERS], chosen[2 * DP_MAX_LAYERS];
    for (int sc = 0; !st && sc < DP_N_SCHEMES; sc++) {
        if (!(o->schemes & (1u << sc))) continue;
        int n_all = dp_scheme_units((enum dp_scheme)sc, L, all);
        bool used[2 * DP_MAX_LAYERS] = {0};
        for (int n = 1; !st && n <= o->max_removed && n <= n_all - (sc == DP_SCHEME_BLOCK || sc == DP_SCHEME_BOTH); n++) {
            int best = -1;
            double best_sp = -1, best_a = 0;
            for (int u = 0; !st && u < n_all; u++) {
                if (used[u]) continue;
                chosen[n - 1] = all[u];
                struct dp_mask mask;
                plan_mask(m, chosen, n, &mask);
                double a, c = (double)dp_spec_step_bytes(m, &mask) / y.full_bytes;
                st = dp_spec_agreement(m, pool, &mask, NULL, ch, y.ref, &a, NULL, NULL);
                double sp;
                if (!st) dp_spec_best_len(a, k_max, c, NULL, &sp);
                if (!st && sp > best_sp) best = u, best_sp = sp, best_a = a;
            }
            if (st || best < 0) break;
            used[best] = true;
            chosen[n - 1] = all[best];
            if (*n_out >= cap) continue;
            struct dp_spec_plan *p = &out[(*n_out)++];
            memset(p, 0, sizeof *p);
            p->scheme = sc;
            p->n_removed = n;
            for (int i = 0; i < n; i++) {
                char name[16];
                dp_unit_name(chosen[i], name);
                size_t len = strlen(p->units);
                snprintf(p->units + len, sizeof p->units - len, "%s%s", i ? "," : "", name);
            }
            struct dp_mask mask;
            plan_mask(m, chosen, n, &mask);
            st = dp_spec_cost(&y, m, pool, &mask, NULL, best_a, p);
        }
    }
    dp_spec_yardstick_free(&y);
    return st;
}
