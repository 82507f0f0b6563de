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
    const char *out = NULL, *json = NULL, *v[11] = {0}, *type_s = "F32", *arch = "llama", *tied = NULL, *bias = NULL,
               *vocab_from = NULL, *rope_freqs = NULL, *base_s = NULL, *softcap_s = NULL;
    const struct cli_opt opts[] = {
        {"-o", "--output", false, &out, "output GGUF file"},
        {"--type", NULL, false, &type_s, "weight type: F32 (default), F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, "
                                         "Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, or a llama-quantize mix: Q2_K_MIX, Q3_K_S, "
                                         "Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M"},
        {"--arch", NULL, false, &arch, "family: llama (default), mistral (arch llama with a sliding window), qwen2 "
                                       "(NEOX RoPE, q/k/v biases), qwen3 (q/k norms), phi3 (fused qkv and gate/up), "
                                       "gemma2 (post-norms, soft-caps, sliding window on even layers), gemma3 (q/k "
                                       "norms, local/global RoPE bases, 5 local layers in 6); see docs/families.md"},
        {"--dim", NULL, false, &v[0], "embedding width (default 256)"},
        {"--ff", NULL, false, &v[1], "FFN width (default 768)"},
        {"--heads", NULL, false, &v[2], "query heads (default 8)"},
        {"--kv-heads", NULL, false, &v[3], "KV heads (default = heads/2)"},
        {"--layers", NULL, false, &v[4], "blocks (default 2)"},
        {"--vocab", NULL, false, &v[5], "vocabulary size (default 512)"},
        {"--ctx", NULL, false, &v[6], "context length (default 2048)"},
        {"--seed", NULL, false, &v[7], "random seed (default 1)"},
        {"--head-dim", NULL, false, &v[8], "head size (default dim/heads; other values write key_length/value_length)"},
        {"--window", NULL, false, &v[9], "sliding window of mistral, phi3, gemma2, gemma3 (default 4096; phi3: ctx)"},
        {"--rope-base", NULL, false, &base_s, "RoPE frequency base (default: the family's, 1e4 or 1e6)"},
        {"--rope-freqs", NULL, true, &rope_freqs, "llama: add rope_freqs.weight with Llama 3.1's RoPE scaling (factor 8)"},
        {"--softcap", NULL, false, &softcap_s, "gemma2: attention and final logit soft-caps A,F (default 50,30)"},
        {"--tied", NULL, true, &tied, "no output matrix: the embedding is the head (gemma2/3 always)"},
        {"--bias", NULL, true, &bias, "add q/k/v bias tensors"},
        {"--vocab-from", NULL, false, &vocab_from, "copy the tokenizer of this GGUF file"},
        {"--json", NULL, true, &json, "print a JSON summary"},
        CLI_END};
    const char *pos[1];
    int n_pos, rc = cli_parse("synth", argc, argv, opts, pos, 0, &n_pos);
    if (rc || !out) return rc && rc != 2 ? rc : cli_usage("synth", "-o OUT.gguf [--arch A] [--type T] [--dim N] [--ff N] [--heads N] ...", opts);
    struct dp_synth_params s = dp_synth_default_params();
    long val[10] = {s.dim, s.ff, s.heads, 0, s.layers, s.vocab, s.ctx, (long)s.seed, 0, 0};
    const char *names[] = {"--dim", "--ff", "--heads", "--kv-heads", "--layers", "--vocab", "--ctx", "--seed",
                           "--head-dim", "--window"};
    long his[] = {1 << 16, 1 << 18, 1024, 1024, DP_MAX_LAYERS, 1 << 22, 1 << 22, 0x7fffffffL, 1 << 12, 1 << 22};
    for (int i = 0; i < 10; i++)
        if (v[i] && !cli_int("synth", names[i], v[i], i == 7 ? 0 : 1, his[i], &val[i])) return 2;
    if (!val[3]) val[3] = val[2] > 1 ? val[2] / 2 : 1;
    s.dim = (int)val[0], s.ff = (int)val[1], s.heads = (int)val[2], s.kv_heads = (int)val[3], s.layers = (int)val[4];
    s.vocab = (int)val[5], s.ctx = (int)val[6], s.seed = (uint64_t)val[7], s.head_dim = (int)val[8];
    s.window = (int)val[9];
    const char *tname = dp_synth_type_name(type_s), *file_arch = dp_synth_family_arch(arch);
    if (!tname)
        return cli_error("synth", 2, "--type must be F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, "
                                     "Q5_K, Q6_K, IQ4_NL, IQ4_XS or a mix (Q2_K_MIX, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, "
                                     "Q4_K_M, Q5_K_S, Q5_K_M), not '%s'", type_s);
    if (!file_arch)
        return cli_error("synth", 2, "--arch must be llama, mistral, qwen2, qwen3, phi3, gemma2 or gemma3, not '%s'", arch);
    int hd = s.head_dim ? s.head_dim : s.dim / s.heads;
    if ((!s.head_dim && s.dim % s.heads) || s.heads % s.kv_heads || hd % 2)
        return cli_error("synth", 2, "--dim must split into --heads heads of even size (or give --head-dim), shared by "
                                     "--kv-heads");
    if (rope_freqs && strcmp(arch, "llama"))
        return cli_error("synth", 2, "--rope-freqs is for --arch llama (Llama 3.1 RoPE scaling)");
    /* gemma2 is the one family with soft-caps */
    if (softcap_s && (sscanf(softcap_s, "%lf,%lf", &s.softcap[0], &s.softcap[1]) != 2 || !(s.softcap[0] > 0) ||
                      !(s.softcap[1] > 0) || strcmp(arch, "gemma2")))
        return cli_error("synth", 2, "--softcap takes two positive numbers A,F and is for --arch gemma2, not '%s'",
                         softcap_s);
    if (base_s && !cli_double("synth", "--rope-base", base_s, 1, 1e9, &s.rope_base)) return 2;
    struct cli_io io = {0};
    cli_io_in(&io, "--vocab-from", vocab_from);
    cli_io_out(&io, "-o", out);
    if ((rc = cli_io_check("synth", &io))) return rc;
    s.arch = arch;
    s.type = type_s;
    s.tied = tied != NULL;
    s.bias = bias != NULL;
    s.rope_freqs = rope_freqs != NULL;
    s.vocab_from = vocab_from;
    s.log = cli_log_line;
    s.log_user = (void *)"synth";
    s.progress = cli_progress_lines;
    double t0 = now();
    if (dp_synth_write(out, &s)) rc = cli_error("synth", 1, "%s", dp_last_error());
    else if (json)
        printf("{\"path\": \"%s\", \"arch\": \"%s\", \"type\": \"%s\", \"seconds\": %.3f}\n", out, file_arch, tname,
               now() - t0);
    else
        fprintf(stderr, "wrote %s (%s %s, %d blocks, dim %d, FFN %d, vocab %d) in %.1f s\n", out, arch, tname, s.layers,
                s.dim, s.ff, s.vocab, now() - t0);
    return rc;
}
