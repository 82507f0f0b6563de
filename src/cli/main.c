/*
 * main: the depthprune command: dispatch to one subcommand per file.
 */
#include "cli.h"

#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *what;
} commands[] = {
    {"info", cmd_info, "model configuration, parameters, KV cache, removed units"},
    {"tokenize", cmd_tokenize, "text to token ids"},
    {"generate", cmd_generate, "generate text (greedy by default)"},
    {"ppl", cmd_ppl, "perplexity (paper or llamacpp protocol)"},
    {"synth", cmd_synth, "write a synthetic llama-shaped GGUF model"},
    {"bench", cmd_bench, "prefill/decode speed and memory"},
    {"prune", cmd_prune, "write the pruned model as a smaller GGUF (llama.cpp loads it)"},
    {"score", cmd_score, "importance of every block or sublayer (static, leave-one-out, Banzhaf, Shapley)"},
    {"compare", cmd_compare, "KL divergence and top-1 agreement against the base model"},
    {"mmlu", cmd_mmlu, "5-shot MMLU accuracy (the research's protocol)"},
    {"mc", cmd_mc, "multiple-choice tasks: hellaswag, arc, piqa, winogrande, boolq"},
    {"sweep", cmd_sweep, "MMLU and perplexity after removing 0, 1, 2, ... units of each order; budgets"},
    {"report", cmd_report, "one self-contained HTML page from score and sweep files"},
};

static int usage(void) {
    fprintf(stderr, "depthprune %s: depth pruning of llama-family models\nusage: depthprune COMMAND [options]\n\n",
            DP_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(stderr, "  %-10s %s\n", commands[i].name, commands[i].what);
    fprintf(stderr, "\n'depthprune COMMAND --help' lists a command's options.\n");
    return 2;
}

static int run(int argc, char **argv) {
    if (argc < 2) return usage();
    if (!strcmp(argv[1], "--version")) {
        printf("depthprune %s\n", DP_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage();
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "depthprune: unknown command '%s'\n", argv[1]);
    return usage();
}

/* The MPI build runs this on every rank (dp_dist_init); a rank that fails ends the whole job (dp_dist_finish). */
int main(int argc, char **argv) {
    if (dp_dist_init(&argc, &argv)) {
        fprintf(dp_dist_errors(), "depthprune: %s\n", dp_last_error());
        return dp_dist_finish(1);
    }
    return dp_dist_finish(run(argc, argv));
}
