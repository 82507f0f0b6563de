/*
 * tokenize: text to token ids, printed on one line. -f reads the file's
 * bytes exactly as they are (nothing stripped or added).
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

int cmd_tokenize(int argc, char **argv) {
    struct cli_common c = {0};
    const char *prompt = NULL, *file = NULL, *no_bos = NULL, *no_special = NULL, *pieces = NULL;
    const struct cli_opt opts[] = {
        CLI_COMMON_OPTS(c),
        {"-p", "--prompt", false, &prompt, "text to tokenize"},
        {"-f", "--file", false, &file, "file whose bytes are tokenized exactly"},
        {"--no-bos", NULL, true, &no_bos, "do not add BOS"},
        {"--no-parse-special", NULL, true, &no_special, "treat special token texts as plain text"},
        {"--pieces", NULL, true, &pieces, "print id:piece pairs"},
        CLI_END};
    const char *pos[1];
    int n_pos, rc = cli_parse("tokenize", argc, argv, opts, pos, 0, &n_pos);
    const char *syn = "-m MODEL (-p TEXT | -f FILE) [--no-bos] [--no-parse-special] [--pieces] [--json]";
    if (rc) return rc == 2 && !c.model ? cli_usage("tokenize", syn, opts) : rc;
    if (!prompt == !file) return cli_error("tokenize", 2, "give exactly one of -p TEXT and -f FILE");
    struct cli_io io = {0};
    cli_io_common(&io, &c);
    cli_io_in(&io, "-f", file);
    if ((rc = cli_io_check("tokenize", &io))) return rc;
    char *text = NULL;
    size_t len;
    if (file && dp_read_file(file, &text, &len)) return cli_error("tokenize", 1, "%s", dp_last_error());
    if (prompt) len = strlen(prompt);
    /*
     * A GGUF file needs only its tokenizer metadata (vocabulary-only files
     * work); a llama2.c checkpoint is opened as a model with its --vocab.
     */
    struct cli_model cm = {0};
    struct dp_tokenizer *own = NULL;
    bool is_gguf = false;
    const struct dp_tokenizer *t;
    if (!c.model) {
        free(text);
        return cli_error("tokenize", 2, "missing -m MODEL");
    }
    if (!c.vocab && (dp_tokenizer_open(c.model, &is_gguf, &own) == DP_OK || is_gguf)) {
        if (!own) {
            free(text);
            return cli_error("tokenize", 1, "%s", dp_last_error());
        }
        t = own;
    } else {
        if ((rc = cli_open("tokenize", &c, &cm))) {
            free(text);
            return rc;
        }
        t = dp_model_tokenizer(cm.m);
    }
    unsigned flags = (no_bos ? 0 : DP_TOKENIZE_BOS) | (no_special ? 0 : DP_TOKENIZE_SPECIAL);
    int n = 0, cap = (int)(len < 1 << 28 ? len : 1 << 28) + 16;
    int *ids = malloc((size_t)cap * sizeof *ids);
    dp_status st = ids ? dp_tokenize(t, text ? text : prompt, len, flags, ids, cap, &n) : DP_ERR_NOMEM;
    if (!st && n > cap) {
        cap = n;
        int *p = realloc(ids, (size_t)cap * sizeof *ids);
        st = p ? dp_tokenize(t, text ? text : prompt, len, flags, (ids = p), cap, &n) : DP_ERR_NOMEM;
    }
    if (st) rc = cli_error("tokenize", 1, "%s", st == DP_ERR_NOMEM ? "out of memory" : dp_last_error());
    else if (c.json) {
        struct dp_json j;
        dp_json_init(&j, stdout);
        dp_json_begin_obj(&j, NULL);
        dp_json_int(&j, "n_tokens", n);
        dp_json_begin_arr(&j, "ids");
        for (int i = 0; i < n; i++) dp_json_int(&j, NULL, ids[i]);
        dp_json_end(&j);
        dp_json_begin_arr(&j, "pieces");
        for (int i = 0; i < n; i++) dp_json_str(&j, NULL, dp_tokenizer_piece(t, ids[i]));
        dp_json_end(&j);
        dp_json_end(&j);
        fputc('\n', stdout);
    } else {
        for (int i = 0; i < n; i++) {
            if (pieces) printf("%s%d:'%s'", i ? " " : "", ids[i], dp_tokenizer_piece(t, ids[i]));
            else printf("%s%d", i ? " " : "", ids[i]);
        }
        printf("\n");
    }
    free(ids);
    free(text);
    dp_tokenizer_free(own);
    cli_close(&cm);
    return rc;
}
