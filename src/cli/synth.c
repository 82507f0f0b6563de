/*
 * synth: a synthetic llama-shaped GGUF model with seeded random weights, in
 * any weight type the quantizer writes, or one of llama-quantize's preset
 * mixes (Q4_K_M, Q2_K_MIX, ...), for tests and benchmarks: the flags of
 * dp_synth_params (the writer is src/synth.c, dp_synth_write). A matrix
 * whose rows are not whole blocks of its type takes llama-quantize's
 * fallback type, with a note on stderr. A client of the public header alone.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int cmd_synth(int argc, char **argv) {
    const char *out = NULL, *json = NULL, *v[9] = {0}, *type_s = "F32", *arch = "llama", *tied = NULL, *bias = NULL,
               *vocab_from = NULL;
    const struct cli_opt opts[] = {
        {"-o", "--output", false, &out, "output GGUF file"},
        {"--type", NULL, false, &type_s, "weight type: F32 (default), F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, "
                                         "Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, or a llama-quantize mix: Q2_K_MIX, Q3_K_S, "
                                         "Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M"},
        {"--arch", NULL, false, &arch, "llama (default) or qwen2 (NEOX RoPE, q/k/v biases)"},
        {"--dim", NULL, false, &v[0], "embedding width (default 256)"},
        {"--ff", NULL, false, &v[1], "FFN width (default 768)"},
        {"--heads", NULL, false, &v[2], "query heads (default 8)"},
        {"--kv-heads", NULL, false, &v[3], "KV heads (default = heads/2)"},
        {"--layers", NULL, false, &v[4], "blocks (default 2)"},
        {"--vocab", NULL, false, &v[5], "vocabulary size (default 512)"},
        {"--ctx", NULL, false, &v[6], "context length (default 2048)"},
        {"--seed", NULL, false, &v[7], "random seed (default 1)"},
        {"--tied", NULL, true, &tied, "no output matrix: the embedding is the head"},
        {"--bias", NULL, true, &bias, "add q/k/v bias tensors"},
        {"--vocab-from", NULL, false, &vocab_from, "copy the tokenizer of this GGUF file"},
        {"--json", NULL, true, &json, "print a JSON summary"},
        CLI_END};
    const char *pos[1];
    int n_pos, rc = cli_parse("synth", argc, argv, opts, pos, 0, &n_pos);
    if (rc || !out) return rc && rc != 2 ? rc : cli_usage("synth", "-o OUT.gguf [--type T] [--dim N] [--ff N] [--heads N] ...", opts);
    struct dp_synth_params s = dp_synth_default_params();
    long val[8] = {s.dim, s.ff, s.heads, 0, s.layers, s.vocab, s.ctx, (long)s.seed};
    const char *names[] = {"--dim", "--ff", "--heads", "--kv-heads", "--layers", "--vocab", "--ctx", "--seed"};
    long his[] = {1 << 16, 1 << 18, 1024, 1024, DP_MAX_LAYERS, 1 << 22, 1 << 22, 0x7fffffffL};
    for (int i = 0; i < 8; i++)
        if (v[i] && !cli_int("synth", names[i], v[i], i == 7 ? 0 : 1, his[i], &val[i])) return 2;
    if (!val[3]) val[3] = val[2] > 1 ? val[2] / 2 : 1;
    s.dim = (int)val[0], s.ff = (int)val[1], s.heads = (int)val[2], s.kv_heads = (int)val[3], s.layers = (int)val[4];
    s.vocab = (int)val[5], s.ctx = (int)val[6], s.seed = (uint64_t)val[7];
    const char *tname = dp_synth_type_name(type_s);
    if (!tname)
        return cli_error("synth", 2, "--type must be F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, "
                                     "Q5_K, Q6_K, IQ4_NL, IQ4_XS or a mix (Q2_K_MIX, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, "
                                     "Q4_K_M, Q5_K_S, Q5_K_M), not '%s'", type_s);
    if (strcmp(arch, "llama") && strcmp(arch, "qwen2")) return cli_error("synth", 2, "--arch must be llama or qwen2");
    if (s.dim % s.heads || s.heads % s.kv_heads || (s.dim / s.heads) % 2)
        return cli_error("synth", 2, "--dim must split into --heads heads of even size, shared by --kv-heads");
    struct cli_io io = {0};
    cli_io_in(&io, "--vocab-from", vocab_from);
    cli_io_out(&io, "-o", out);
    if ((rc = cli_io_check("synth", &io))) return rc;
    s.arch = arch;
    s.type = type_s;
    s.tied = tied != NULL;
    s.bias = bias != NULL;
    s.vocab_from = vocab_from;
    s.log = cli_log_line;
    s.log_user = (void *)"synth";
    s.progress = cli_progress_lines;
    double t0 = now();
    if (dp_synth_write(out, &s)) rc = cli_error("synth", 1, "%s", dp_last_error());
    else if (json)
        printf("{\"path\": \"%s\", \"type\": \"%s\", \"seconds\": %.3f}\n", out, tname, now() - t0);
    else
        fprintf(stderr, "wrote %s (%s, %d blocks, dim %d, FFN %d, vocab %d) in %.1f s\n", out, tname, s.layers,
                s.dim, s.ff, s.vocab, now() - t0);
    return rc;
}
