/*
 * generate: prompt, then new tokens one at a time with the KV cache. Greedy
 * (argmax, first index on ties) at temperature 0, the default; otherwise
 * sampling from softmax(logits / T) with a seeded generator, so the same
 * command prints the same text. Stops after -n new tokens or at EOS.
 *
 * With --draft PLAN|UNITS the tokens come from self-speculative decoding
 * (src/spec.h): the model less the draft's units proposes --draft-len K
 * tokens (or a K chosen each round from the acceptance seen so far and the
 * draft's share of the weight bytes, --draft-len auto), the model of
 * -m/--drop/--plan verifies them in one batch. Greedy text is exactly plain
 * greedy text; sampled text has the verifier's distribution (another
 * stream of random draws than plain sampling, so other text for a seed).
 * Afterwards the same prompt is decoded plainly (unless --no-baseline) to
 * report tokens/s against it and, greedy, that the texts are identical.
 */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int pick(const float *logits, int V, double temp, uint64_t *rng) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temp <= 0) return best;
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((logits[i] - logits[best]) / temp);
    double r = (double)(splitmix(rng) >> 11) / 9007199254740992.0 * sum, acc = 0;
    for (int i = 0; i < V; i++) {
        acc += exp((logits[i] - logits[best]) / temp);
        if (acc > r) return i;
    }
    return best;
}

/* Output text built token by token (printed as it comes unless --json). */
struct text_out {
    const struct dp_tokenizer *t;
    bool print;
    int prev;
    char *buf;
    size_t len, cap;
    int *ids;          /* the generated ids (n_new) */
    int n_ids;
    bool nomem;
};

static bool emit_token(void *ctx, int id) {
    struct text_out *o = ctx;
    size_t need = dp_detokenize_token(o->t, id, o->prev, NULL, 0);
    if (o->len + need + 1 > o->cap) {
        size_t cap = 2 * (o->len + need + 64);
        char *p = realloc(o->buf, cap);
        if (!p) return !(o->nomem = true);
        o->buf = p;
        o->cap = cap;
    }
    o->len += dp_detokenize_token(o->t, id, o->prev, o->buf + o->len, o->cap - o->len);
    o->buf[o->len] = 0;
    if (o->print) {
        fwrite(o->buf, 1, o->len, stdout);
        fflush(stdout);
        o->len = 0;
    }
    o->prev = id;
    if (o->ids) o->ids[o->n_ids++] = id;
    return true;
}

static bool emit_id(void *ctx, int id) {
    struct text_out *o = ctx;
    o->ids[o->n_ids++] = id;
    return true;
}

static double tok_s(const struct dp_spec_stats *s) {
    double t = s->t_draft + s->t_verify;
    return t > 0 ? s->n_generated / t : 0;
}

/* generate --draft: speculative decoding, then the plain baseline. */
static int generate_spec(const struct cli_common *c, struct cli_model *cm, const char *draft_s, const char *len_s,
                         bool baseline, const int *ids, int n_prompt, long n_new, double temp, long seed) {
    long k = 0;
    if (len_s && strcmp(len_s, "auto") && !cli_int("generate", "--draft-len", len_s, 1, DP_SPEC_MAX_LEN, &k)) return 2;
    if (!len_s) k = 4;
    struct cli_draft d;
    int rc = cli_draft_open("generate", cm->m, draft_s, &d);
    const struct dp_tokenizer *t = dp_model_tokenizer(cm->m);
    int n_ctx = n_prompt + (int)n_new;
    struct dp_session *vs = NULL, *ds = NULL;
    struct text_out out = {.t = t, .print = !c->json, .prev = -1};
    struct text_out base = {0};
    out.ids = malloc(((size_t)n_new + 1) * sizeof *out.ids);
    base.ids = malloc(((size_t)n_new + 1) * sizeof *base.ids);
    double c_draft = (double)dp_spec_step_bytes(cm->m, &d.mask) / (double)dp_spec_step_bytes(cm->m, &cm->mask);
    struct dp_spec_opts o = dp_spec_default_opts();
    o.draft_len = (int)k, o.draft_cost = c_draft, o.temp = temp, o.seed = (uint64_t)seed;
    o.eos = dp_tokenizer_eos(t), o.verify_hooks = cm->hooks, o.draft_hooks = d.hooks;
    struct dp_spec_stats st, bst = {0};
    dp_status s = rc ? DP_OK : !out.ids || !base.ids ? DP_ERR_NOMEM : DP_OK;
    if (!rc && !s) s = dp_session_new(cm->m, &cm->mask, n_ctx, &vs);
    if (!rc && !s) s = dp_session_new(cm->m, &d.mask, n_ctx, &ds);
    if (!rc && !s) {
        /* the prompt as text first, as plain generate prints it */
        int *gen = out.ids;
        out.ids = NULL;
        for (int i = 0; i < n_prompt; i++) emit_token(&out, ids[i]);
        out.ids = gen;
        s = dp_spec_generate(vs, ds, cm->pool, ids, n_prompt, (int)n_new, &o, emit_token, &out, &st);
    }
    if (!rc && !s && out.nomem) s = DP_ERR_NOMEM;
    if (!rc && !s && baseline) {
        dp_session_reset(vs);
        struct dp_spec_opts bo = o;
        bo.draft_len = 1;
        base.t = t;
        s = dp_spec_generate(vs, NULL, cm->pool, ids, n_prompt, (int)n_new, &bo, emit_id, &base, &bst);
    }
    bool same = baseline && base.n_ids == out.n_ids && !memcmp(base.ids, out.ids, (size_t)out.n_ids * sizeof *out.ids);
    double rate = 0, tpv = 0, sp = 0;
    if (!rc && !s) {
        rate = dp_spec_accept_rate(&st);
        tpv = st.n_verify ? (double)(st.n_accepted + st.n_verify) / (double)st.n_verify : 0;
        sp = baseline && tok_s(&bst) > 0 ? tok_s(&st) / tok_s(&bst) : 0;
    }
    if (rc) {
    } else if (s) rc = cli_error("generate", 1, "%s", s == DP_ERR_NOMEM ? "out of memory" : dp_last_error());
    else if (c->json) {
        struct dp_json j;
        dp_json_init(&j, stdout);
        dp_json_begin_obj(&j, NULL);
        dp_json_strn(&j, "text", out.buf ? out.buf : "", out.len);
        dp_json_int(&j, "n_prompt", n_prompt);
        dp_json_int(&j, "n_generated", st.n_generated);
        dp_json_str(&j, "draft", d.units);
        if (k) dp_json_int(&j, "draft_len", k);
        else dp_json_str(&j, "draft_len", "auto");
        dp_json_num(&j, "draft_cost_bytes", c_draft);
        dp_json_int(&j, "n_verify", st.n_verify);
        dp_json_int(&j, "n_drafted", st.n_drafted);
        dp_json_int(&j, "n_accepted", st.n_accepted);
        dp_json_num(&j, "accept_rate", rate);
        dp_json_num(&j, "draft_accepted_frac", st.n_drafted ? (double)st.n_accepted / (double)st.n_drafted : 0);
        dp_json_num(&j, "tokens_per_verify", tpv);
        dp_json_num(&j, "decode_tok_s", tok_s(&st));
        dp_json_num(&j, "draft_s", st.t_draft);
        dp_json_num(&j, "verify_s", st.t_verify);
        if (baseline) {
            dp_json_num(&j, "plain_decode_tok_s", tok_s(&bst));
            dp_json_num(&j, "speedup", sp);
            if (temp <= 0) dp_json_bool(&j, "identical", same);
        }
        dp_json_end(&j);
        fputc('\n', stdout);
    } else {
        printf("\n");
        fflush(stdout);
        fprintf(stderr, "%d prompt tokens, %lld generated; draft -%s, K=%s: %lld verifications, %lld of %lld drafted accepted, "
                        "acceptance rate %.3f, %.2f tokens per verification, %.1f tokens/s",
                n_prompt, (long long)st.n_generated, d.units, k ? len_s ? len_s : "4" : "auto", (long long)st.n_verify,
                (long long)st.n_accepted, (long long)st.n_drafted, rate, tpv, tok_s(&st));
        if (baseline)
            fprintf(stderr, " vs %.1f plain (x%.2f)%s", tok_s(&bst), sp,
                    temp > 0 ? "" : same ? ", identical to plain greedy" : ", DIFFERENT from plain greedy");
        fprintf(stderr, "\n");
    }
    if (!rc && temp <= 0 && baseline && !same) rc = cli_error("generate", 1, "speculative and plain greedy texts differ");
    dp_session_free(vs);
    dp_session_free(ds);
    free(out.buf);
    free(out.ids);
    free(base.ids);
    cli_draft_close(&d);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    struct cli_common c = {0};
    const char *prompt = NULL, *n_s = NULL, *temp_s = NULL, *seed_s = NULL, *draft_s = NULL, *len_s = NULL,
               *nobase_s = NULL;
    const struct cli_opt opts[] = {
        CLI_COMMON_OPTS(c),
        {"-p", "--prompt", false, &prompt, "prompt text"},
        {"-n", "--n-predict", false, &n_s, "new tokens (default 64)"},
        {"--temp", NULL, false, &temp_s, "temperature (default 0: greedy)"},
        {"--seed", NULL, false, &seed_s, "sampling seed (default 1)"},
        {"--draft", NULL, false, &draft_s, "speculative decoding: the model less these units (or a plan file) drafts"},
        {"--draft-len", NULL, false, &len_s, "tokens drafted per verification, 1..32 or auto (default 4)"},
        {"--no-baseline", NULL, true, &nobase_s, "with --draft: skip the plain decoding run that is compared"},
        CLI_END};
    const char *pos[1];
    int n_pos, rc = cli_parse("generate", argc, argv, opts, pos, 0, &n_pos);
    const char *syn = "-m MODEL -p TEXT [-n N] [--temp T] [--seed S] [--drop UNITS] "
                      "[--draft PLAN|UNITS [--draft-len K|auto]] [--json]";
    if (rc) return rc == 2 && !c.model ? cli_usage("generate", syn, opts) : rc;
    long n_new = 64, seed = 1;
    double temp = 0;
    if ((n_s && !cli_int("generate", "-n", n_s, 0, 1 << 20, &n_new)) ||
        (temp_s && !cli_double("generate", "--temp", temp_s, 0, 100, &temp)) ||
        (seed_s && !cli_int("generate", "--seed", seed_s, 0, 0x7fffffffL, &seed)))
        return 2;
    if (!prompt) return cli_error("generate", 2, "missing -p TEXT");
    if ((len_s || nobase_s) && !draft_s) return cli_error("generate", 2, "--draft-len and --no-baseline need --draft");
    struct cli_model cm;
    if ((rc = cli_open("generate", &c, &cm))) return rc;
    const struct dp_tokenizer *t = dp_model_tokenizer(cm.m);
    const struct dp_config *cf = dp_model_config(cm.m);
    size_t plen = strlen(prompt);
    int cap = (int)plen + 8, n_prompt = 0;
    int *ids = malloc((size_t)cap * sizeof *ids);
    float *logits = malloc((size_t)cf->n_vocab * sizeof *logits);
    struct dp_session *s = NULL;
    char *out = NULL;
    size_t out_len = 0, out_cap = 0;
    dp_status st = ids && logits ? dp_tokenize(t, prompt, plen, DP_TOKENIZE_BOS, ids, cap, &n_prompt) : DP_ERR_NOMEM;
    int n_ctx = n_prompt + (int)n_new;
    char err[256] = ""; /* this command's own refusals (else the library's message) */
    if (!st && n_ctx > cf->n_ctx_train) {
        snprintf(err, sizeof err, "%d prompt tokens + %ld new exceed the model's context of %d", n_prompt, n_new,
                 cf->n_ctx_train);
        st = DP_ERR_ARG;
    }
    if (!st && n_prompt == 0) {
        snprintf(err, sizeof err, "the prompt gives no tokens");
        st = DP_ERR_ARG;
    }
    if (!st && cli_check_sessions("generate", &cm, &cm.mask, 1, n_ctx, 1, 0, "-n")) {
        free(ids);
        free(logits);
        cli_close(&cm);
        return 1;
    }
    if (!st && draft_s) {
        rc = generate_spec(&c, &cm, draft_s, len_s, !nobase_s, ids, n_prompt, n_new, temp, seed);
        free(ids);
        free(logits);
        cli_close(&cm);
        return rc;
    }
    if (!st) st = dp_session_new(cm.m, &cm.mask, n_ctx, &s);
    double t0 = dp_now(), t_prefill = 0;
    if (!st) st = dp_session_forward_hooked(s, cm.pool, ids, n_prompt, logits, DP_LOGITS_LAST, cm.hooks);
    t_prefill = dp_now() - t0;
    /* the prompt as text, then each new token's text */
    int prev = -1, n_gen = 0;
    uint64_t rng = (uint64_t)seed;
    for (int i = 0; !st && i <= n_prompt + n_new; i++) {
        int id;
        if (i < n_prompt) id = ids[i];
        else if (i == n_prompt + n_new) break;
        else {
            id = pick(logits, cf->n_vocab, temp, &rng);
            if (id == dp_tokenizer_eos(t)) break;
            n_gen++;
        }
        size_t need = dp_detokenize_token(t, id, prev, NULL, 0);
        if (out_len + need + 1 > out_cap) {
            out_cap = 2 * (out_len + need + 64);
            char *p = realloc(out, out_cap);
            if (!p) {
                st = DP_ERR_NOMEM;
                break;
            }
            out = p;
        }
        out_len += dp_detokenize_token(t, id, prev, out + out_len, out_cap - out_len);
        out[out_len] = 0;
        if (!c.json && i >= n_prompt - 1) {
            fwrite(out, 1, out_len, stdout);
            fflush(stdout);
            out_len = 0;
        }
        prev = id;
        if (i >= n_prompt && i + 1 < n_prompt + n_new) st = dp_session_forward_hooked(s, cm.pool, &id, 1, logits, DP_LOGITS_LAST, cm.hooks);
    }
    double t_total = dp_now() - t0;
    if (st) rc = cli_error("generate", 1, "%s", st == DP_ERR_NOMEM ? "out of memory" : err[0] ? err : dp_last_error());
    else if (c.json) {
        struct dp_json j;
        dp_json_init(&j, stdout);
        dp_json_begin_obj(&j, NULL);
        dp_json_strn(&j, "text", out ? out : "", out_len);
        dp_json_int(&j, "n_prompt", n_prompt);
        dp_json_int(&j, "n_generated", n_gen);
        dp_json_num(&j, "prefill_tok_s", t_prefill > 0 ? n_prompt / t_prefill : 0);
        dp_json_num(&j, "decode_tok_s", t_total > t_prefill && n_gen ? n_gen / (t_total - t_prefill) : 0);
        dp_json_end(&j);
        fputc('\n', stdout);
    } else {
        printf("\n");
        fflush(stdout);
        fprintf(stderr, "%d prompt tokens, %d generated, %.1f tokens/s\n", n_prompt, n_gen,
                t_total > t_prefill && n_gen ? n_gen / (t_total - t_prefill) : 0.0);
    }
    dp_session_free(s);
    free(ids);
    free(logits);
    free(out);
    cli_close(&cm);
    return rc;
}
