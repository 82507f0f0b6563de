/*
 * spec: self-speculative decoding with a pruned plan as the draft model.
 *
 * The draft is the model under a plan's unit mask (the same mapped weights,
 * its own session and KV cache, which holds only its kept attention
 * sublayers); the verifier is the full model (or another mask). Each round
 * the draft proposes K tokens one at a time, the verifier scores all K+1
 * positions in one batched forward pass, and the longest agreeing prefix is
 * kept plus one token of the verifier's own; both caches are rewound to the
 * accepted prefix (dp_session_rewind). The output is exactly the
 * verifier's:
 *
 *  - greedy (temperature 0): a drafted token is accepted when it is the
 *    verifier's argmax (first index on ties, as `generate` picks), so the
 *    text equals plain greedy decoding token for token. This needs the
 *    batched verification to give the same logits, bit for bit, as one
 *    token at a time: the kernels fix one summation order for every batch
 *    of fewer than DP_GEMM_MIN_TOK tokens (and the q8 mode one order for
 *    all), attention is computed per query, so K+1 <= DP_SPEC_MAX_LEN + 1
 *    < DP_GEMM_MIN_TOK keeps verification in the decode order;
 *  - sampling (temperature T): the drafted token d ~ q is accepted with
 *    probability min(1, p(d)/q(d)), otherwise the token is drawn from
 *    norm(max(0, p - q)) (Leviathan et al. 2023, Chen et al. 2023), so every
 *    emitted token is distributed as the verifier's p = softmax(logits/T).
 *
 * Without generating, a plan's quality as a draft is measured by
 * teacher-forced agreement: over calibration text, the fraction of positions
 * where the draft's argmax equals the full model's. Under the i.i.d.
 * acceptance model with rate a, a round with K drafted tokens yields
 * (1 - a^(K+1)) / (1 - a) tokens on average (accepted drafts plus the
 * verifier's own), and the expected speed-up over plain decoding is that
 * divided by K * c_draft + c_verify(K), costs relative to one plain decode
 * step.
 */
#ifndef DP_SPEC_H
#define DP_SPEC_H

#include "data.h"
#include "model.h"

/* DP_SPEC_MAX_LEN (depthprune.h): a verification batch of K+1 tokens stays in the kernels' decode order. */
_Static_assert(DP_SPEC_MAX_LEN + 1 < DP_GEMM_MIN_TOK, "verification batches must use the decode order");

/* (the public structures of this module are in include/depthprune.h) */

/* The per-token acceptance rate of the i.i.d. model: accepted / (accepted + rejections); 0 when nothing was drafted. */
double dp_spec_accept_rate(const struct dp_spec_stats *s);

/*
 * Called with each emitted token in order; return false to stop. The
 * tokens are final (never withdrawn).
 */

/*
 * Generate up to n_new tokens after the prompt with the verifier session
 * (at position 0, room for n_prompt + n_new positions) and the draft session
 * (same model and context, another mask), or plain decoding with the
 * verifier alone when draft is NULL. Stops at o->eos or when emit returns
 * false. Fills *stats. Fails on bad arguments (lengths, vocabulary, a
 * session too small) with a message.
 */
dp_status dp_spec_generate(struct dp_session *verify, struct dp_session *draft, struct dp_pool *pool,
                           const int *prompt, int n_prompt, int n_new, const struct dp_spec_opts *o,
                           dp_spec_emit_fn emit, void *ctx, struct dp_spec_stats *stats);

/*
 * The speculative sampling rule for one drafted token d: p and q are the
 * verifier's and the draft's distributions over n tokens (each summing to
 * 1), u and w uniform draws in [0, 1). Returns d with *accepted = true when
 * u < p[d] / q[d]; otherwise *accepted = false and the token of w under the
 * residual norm(max(0, p - q)) (p itself when the residual is empty).
 */
int dp_spec_rule(const double *p, const double *q, int n, int d, double u, double w, bool *accepted);

/* Expected tokens per verification, (1 - a^(K+1)) / (1 - a) (K + 1 at a = 1). */
double dp_spec_tokens_per_verify(double a, int K);
/*
 * Expected speed-up over plain decoding: tokens per verification over
 * K * c_draft + c_verify[K], costs relative to one decode step of the
 * verifier (c_verify[k]: a batch of k+1 tokens; NULL: 1 for every k).
 */
double dp_spec_speedup(double a, int K, double c_draft, const double *c_verify);
/* The K in 1..k_max with the best expected speed-up (ties: the smaller K); *speedup receives it (may be NULL). */
int dp_spec_best_len(double a, int k_max, double c_draft, const double *c_verify, double *speedup);

/*
 * Weight bytes one decode step reads under `mask`: the kept sublayers and
 * the output matrix (the embedding contributes one row, not counted). The
 * ratio of two masks' values is the memory-bound cost of a draft step.
 */
int64_t dp_spec_step_bytes(const struct dp_model *m, const struct dp_mask *mask);

/*
 * Teacher-forced reference: the argmax of the model under `mask` (hooks may
 * be NULL) at every position of every chunk, into ref (n_seqs * ctx ints).
 */
dp_status dp_spec_reference(const struct dp_model *m, struct dp_pool *pool, const struct dp_mask *mask,
                            const struct dp_hooks *hooks, const struct dp_chunks *ch, int *ref);
/*
 * Teacher-forced agreement of the model under a draft mask with ref: the
 * fraction of the n_seqs * ctx positions where its argmax equals ref's,
 * into *rate (and the counts into *n_agree, *n when not NULL).
 */
dp_status dp_spec_agreement(const struct dp_model *m, struct dp_pool *pool, const struct dp_mask *mask,
                            const struct dp_hooks *hooks, const struct dp_chunks *ch, const int *ref, double *rate,
                            int64_t *n_agree, int64_t *n);

/*
 * Wall time of one forward pass of n_tok tokens after pos0 cached positions
 * under `mask` (the median of reps timed passes after one warm-up), into
 * *seconds. Timing is the only thing here that varies between runs.
 */
dp_status dp_spec_time_step(const struct dp_model *m, struct dp_pool *pool, const struct dp_mask *mask,
                            const struct dp_hooks *hooks, int pos0, int n_tok, int reps, double *seconds);

/* ---- measuring a draft against the full model ---- */

/*
 * What a draft is measured against (prune --draft, sweep --objective
 * speedup): the full model's teacher-forced argmax on the chunks, the
 * weight bytes of its decode step and, when timed, the time of that step
 * and the costs of verifying k+1 tokens.
 */
struct dp_spec_yardstick {
    const struct dp_chunks *ch;           /* borrowed: the calibration sequences */
    int *ref;                             /* (n_seqs * ctx) the full model's argmax */
    int k_max;                            /* draft lengths 1..k_max */
    bool timed;                           /* costs from timed passes (else weight bytes, verification 1) */
    int time_pos, time_reps;              /* timing: cached positions before the timed pass, passes per median */
    double full_bytes;                    /* dp_spec_step_bytes of the full model */
    double t_full;                        /* timed: seconds of one decode step of the full model */
    double c_verify[DP_SPEC_MAX_LEN + 1]; /* verifying k+1 tokens over one decode step (all 1 untimed) */
};

/* Timed passes per median of a cost (prune --draft, sweep --cost time). */
#define DP_SPEC_TIME_REPS 15
/* The cached positions before a timed pass for model m: 128, or half the context when that is shorter. */
int dp_spec_time_pos(const struct dp_model *m);

/*
 * Fill *y for model m on ch (borrowed; must outlive y): the reference pass
 * and, with `timed`, the full model's timings. Fails on bad lengths or
 * when out of memory (y holds nothing to free then). Free with
 * dp_spec_yardstick_free.
 */
dp_status dp_spec_yardstick_init(struct dp_spec_yardstick *y, const struct dp_model *m, struct dp_pool *pool,
                                 const struct dp_chunks *ch, int k_max, bool timed, int time_pos, int time_reps);
void dp_spec_yardstick_free(struct dp_spec_yardstick *y);

/*
 * A draft's expected gain: the draft is model m under `mask` (and hooks,
 * may be NULL) with teacher-forced agreement `agree` with y's reference.
 * Fills out's agree, c_bytes, c_draft (timed, or c_bytes), best_len,
 * tokens_per_verify and speedup (at best_len, with y's c_verify); the
 * other fields are left as they are. Only timing can fail.
 */
struct dp_spec_plan;
dp_status dp_spec_cost(const struct dp_spec_yardstick *y, const struct dp_model *m, struct dp_pool *pool,
                       const struct dp_mask *mask, const struct dp_hooks *hooks, double agree, struct dp_spec_plan *out);
/* dp_spec_agreement on y's chunks and reference, then dp_spec_cost. */
dp_status dp_spec_measure(const struct dp_spec_yardstick *y, const struct dp_model *m, struct dp_pool *pool,
                          const struct dp_mask *mask, const struct dp_hooks *hooks, struct dp_spec_plan *out);

/* ---- choosing a draft: prune --draft ---- */

/* One draft plan of the search with its expected speed-up. */
struct dp_spec_plan {
    int scheme;                 /* enum dp_scheme (src/prune.h) */
    int n_removed;
    char units[256];            /* removed units, in removal order, as a comma list */
    double agree;               /* teacher-forced argmax agreement with the full model */
    double c_bytes;             /* weight bytes of a draft step / of a full step */
    double c_draft;             /* cost of a draft step used for the speed-up (timed, or c_bytes) */
    int best_len;               /* the draft length with the best expected speed-up */
    double tokens_per_verify;   /* expected, at best_len */
    double speedup;             /* expected, at best_len */
};

struct dp_spec_search_opts {
    unsigned schemes;           /* bit (1 << enum dp_scheme) per scheme searched */
    int max_removed;            /* plans of 1..max_removed units per scheme */
    int k_max;                  /* draft lengths 1..k_max (<= DP_SPEC_MAX_LEN) */
    bool timed;                 /* costs from timed forward passes (else c_bytes, verification 1) */
    int time_pos, time_reps;    /* timing: cached positions before the timed pass, passes per median */
};

/*
 * Search draft plans: per scheme, units are removed greedily, each step the
 * unit whose removal keeps the best expected speed-up (agreement with the
 * full model on ch, memory-bound cost c_bytes); every plan of 1..max_removed
 * units is reported (cap entries at most, *n_out of them). c_verify
 * receives k_max + 1 costs of verifying k+1 tokens relative to one decode
 * step (timed, else all 1); with `timed` each reported plan's c_draft is its
 * timed decode step over the full model's, and its best length and
 * speed-up use the timed costs. The agreement is deterministic; only
 * timings vary between runs.
 */
dp_status dp_spec_search(const struct dp_model *m, struct dp_pool *pool, const struct dp_chunks *ch,
                         const struct dp_spec_search_opts *o, double *c_verify, struct dp_spec_plan *out, int cap,
                         int *n_out);

#endif
