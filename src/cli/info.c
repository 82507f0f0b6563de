/*
 * info: what a model is: architecture, shape, parameters and bytes per
 * tensor type, KV cache per token, and the effect of --drop on them.
 */
#include "cli.h"

#include "types.h"

#include <string.h>

int cmd_info(int argc, char **argv) {
    struct cli_common c = {0};
    const struct cli_opt opts[] = {CLI_COMMON_OPTS(c), CLI_END};
    const char *pos[1];
    int n_pos, rc = cli_parse("info", argc, argv, opts, pos, 0, &n_pos);
    if (rc) return rc == 2 && !c.model ? cli_usage("info", "-m MODEL [--drop UNITS] [--json]", opts) : rc;
    struct cli_model cm;
    if ((rc = cli_open("info", &c, &cm))) return rc;
    const struct dp_config *cf = dp_model_config(cm.m);
    struct dp_model_stats full, now;
    dp_model_stats(cm.m, NULL, &full);
    dp_model_stats(cm.m, &cm.mask, &now);
    char removed[4096];
    dp_mask_format(&cm.mask, removed, sizeof removed);
    if (c.json) {
        struct dp_json j;
        dp_json_init(&j, stdout);
        dp_json_begin_obj(&j, NULL);
        dp_json_str(&j, "path", dp_model_path(cm.m));
        dp_json_str(&j, "format", dp_model_format(cm.m));
        dp_json_str(&j, "arch", cf->arch);
        dp_json_int(&j, "n_blocks", cf->n_layers);
        dp_json_int(&j, "n_embd", cf->n_embd);
        dp_json_int(&j, "n_head", cf->n_head);
        dp_json_int(&j, "n_head_kv", cf->n_head_kv);
        dp_json_int(&j, "head_dim", cf->head_dim);
        dp_json_int(&j, "n_ff", cf->n_ff);
        dp_json_int(&j, "n_vocab", cf->n_vocab);
        dp_json_int(&j, "n_ctx_train", cf->n_ctx_train);
        dp_json_int(&j, "n_rot", cf->n_rot);
        dp_json_num(&j, "rope_base", cf->rope_base);
        dp_json_num(&j, "norm_eps", cf->norm_eps);
        dp_json_bool(&j, "tied_output", cf->tied_output);
        dp_json_int(&j, "n_params", now.n_params);
        dp_json_int(&j, "n_bytes", now.n_bytes);
        dp_json_int(&j, "kv_bytes_per_token", now.kv_bytes_per_token);
        dp_json_int(&j, "n_params_full", full.n_params);
        dp_json_int(&j, "kv_bytes_per_token_full", full.kv_bytes_per_token);
        dp_json_begin_arr(&j, "removed");
        for (const char *p = removed; *p;) {
            const char *e = strchr(p, ',');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            dp_json_strn(&j, NULL, p, n);
            p += n + (e ? 1 : 0);
        }
        dp_json_end(&j);
        dp_json_begin_obj(&j, "types");
        for (int t = 0; t < 64; t++)
            if (now.type_params[t]) {
                dp_json_begin_obj(&j, dp_type_name((uint32_t)t));
                dp_json_int(&j, "params", now.type_params[t]);
                dp_json_int(&j, "bytes", now.type_bytes[t]);
                dp_json_end(&j);
            }
        dp_json_end(&j);
        dp_json_end(&j);
        fputc('\n', stdout);
    } else {
        printf("model        %s (%s)\n", dp_model_path(cm.m), dp_model_format(cm.m));
        printf("arch         %s: %d blocks, dim %d, FFN %d, %d heads / %d KV heads of %d, vocab %d, ctx %d\n", cf->arch,
               cf->n_layers, cf->n_embd, cf->n_ff, cf->n_head, cf->n_head_kv, cf->head_dim, cf->n_vocab,
               cf->n_ctx_train);
        printf("rope         %s pairs, %d dims, base %g; rms eps %g; output %s\n", cf->rope_neox ? "neox" : "adjacent",
               cf->n_rot, cf->rope_base, cf->norm_eps, cf->tied_output ? "tied to the embedding" : "separate");
        printf("parameters   %lld (%.1f MiB)", (long long)now.n_params, now.n_bytes / 1048576.0);
        if (removed[0]) printf(" of %lld (%.1f%% removed)", (long long)full.n_params,
                               100.0 * (full.n_params - now.n_params) / full.n_params);
        printf("\nKV cache     %lld bytes per token (f32)", (long long)now.kv_bytes_per_token);
        if (removed[0] && full.kv_bytes_per_token)
            printf(" of %lld (%.1f%% kept)", (long long)full.kv_bytes_per_token,
                   100.0 * now.kv_bytes_per_token / full.kv_bytes_per_token);
        printf("\nremoved      %s\n", removed[0] ? removed : "none");
        printf("types       ");
        for (int t = 0; t < 64; t++)
            if (now.type_params[t]) printf(" %s: %lld params", dp_type_name((uint32_t)t), (long long)now.type_params[t]);
        printf("\n");
    }
    cli_close(&cm);
    return 0;
}
