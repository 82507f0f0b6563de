/*
 * generate: prompt, then new tokens one at a time with the KV cache. Greedy
 * (argmax, first index on ties) at temperature 0, the default; otherwise
 * sampling from softmax(logits / T) with a seeded generator, so the same
 * command prints the same text. Stops after -n new tokens or at EOS.
 */
#include "cli.h"

#include "model.h"

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

int cmd_generate(int argc, char **argv) {
    struct cli_common c = {0};
    const char *prompt = NULL, *n_s = NULL, *temp_s = NULL, *seed_s = NULL;
    const struct cli_opt opts[] = {
        CLI_COMMON_OPTS(c),
        {"-p", "--prompt", false, &prompt, "prompt text"},
        {"-n", "--n-predict", false, &n_s, "new tokens (default 64)"},
        {"--temp", NULL, false, &temp_s, "temperature (default 0: greedy)"},
        {"--seed", NULL, false, &seed_s, "sampling seed (default 1)"},
        CLI_END};
    const char *pos[1];
    int n_pos, rc = cli_parse("generate", argc, argv, opts, pos, 0, &n_pos);
    const char *syn = "-m MODEL -p TEXT [-n N] [--temp T] [--seed S] [--drop UNITS] [--json]";
    if (rc) return rc == 2 && !c.model ? cli_usage("generate", syn, opts) : rc;
    long n_new = 64, seed = 1;
    double temp = 0;
    if ((n_s && !cli_int("generate", "-n", n_s, 0, 1 << 20, &n_new)) ||
        (temp_s && !cli_double("generate", "--temp", temp_s, 0, 100, &temp)) ||
        (seed_s && !cli_int("generate", "--seed", seed_s, 0, 0x7fffffffL, &seed)))
        return 2;
    if (!prompt) return cli_error("generate", 2, "missing -p TEXT");
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
    if (!st && n_ctx > cf->n_ctx_train) {
        st = dp_fail(DP_ERR_ARG, "%d prompt tokens + %ld new exceed the model's context of %d", n_prompt, n_new,
                     cf->n_ctx_train);
    }
    if (!st && n_prompt == 0) st = dp_fail(DP_ERR_ARG, "the prompt gives no tokens");
    if (!st && cli_check_sessions("generate", &cm, &cm.mask, 1, n_ctx, 1, 0, "-n")) {
        free(ids);
        free(logits);
        cli_close(&cm);
        return 1;
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
    if (st) rc = cli_error("generate", 1, "%s", st == DP_ERR_NOMEM ? "out of memory" : dp_last_error());
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
