/*
 * info: what a model is: architecture, shape, parameters and bytes per
 * tensor type, KV cache per token, and the effect of --drop on them. A file
 * written by `prune` is shown against the model it came from (its
 * depthprune.* provenance keys).
 */
#include "cli.h"

#include <string.h>

/* Provenance of an exported file: its source and removed units; false for other files. */
struct source {
    char file[256], sha256[65], recover[64], removed[4096];
    int64_t n_blocks, n_params, kv_bytes_per_token;
};
static bool export_source(const struct dp_model *m, struct source *s) {
    memset(s, 0, sizeof *s);
    if (!dp_model_meta_has(m, "depthprune.removed") ||
        dp_model_meta_str(m, "depthprune.source.file", s->file, sizeof s->file) < 0)
        return false;
    if (dp_model_meta_str(m, "depthprune.source.sha256", s->sha256, sizeof s->sha256) < 0) s->sha256[0] = 0;
    if (dp_model_meta_str(m, "depthprune.recover", s->recover, sizeof s->recover) < 0) s->recover[0] = 0;
    dp_model_meta_int(m, "depthprune.source.block_count", &s->n_blocks);
    dp_model_meta_int(m, "depthprune.source.n_params", &s->n_params);
    dp_model_meta_int(m, "depthprune.source.kv_bytes_per_token", &s->kv_bytes_per_token);
    if (dp_model_meta_str(m, "depthprune.removed", s->removed, sizeof s->removed) < 0) s->removed[0] = 0;
    return true;
}

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
    struct source src;
    bool exported = export_source(cm.m, &src);
    if (exported && !c.drop) {
        /* against the original: what the export removed, the original's size */
        snprintf(removed, sizeof removed, "%s", src.removed);
        full.n_params = src.n_params;
        full.kv_bytes_per_token = src.kv_bytes_per_token;
    }
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
        if (exported) {
            dp_json_begin_obj(&j, "source");
            dp_json_str(&j, "file", src.file);
            dp_json_str(&j, "sha256", src.sha256);
            dp_json_int(&j, "n_blocks", src.n_blocks);
            dp_json_int(&j, "n_params", src.n_params);
            dp_json_int(&j, "kv_bytes_per_token", src.kv_bytes_per_token);
            dp_json_str(&j, "removed", src.removed);
            dp_json_str(&j, "recover", src.recover);
            dp_json_end(&j);
        }
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
        if (exported)
            printf("exported     from %s (sha256 %.16s..., %lld blocks): removed %s, recovery %s\n", src.file,
                   src.sha256, (long long)src.n_blocks, src.removed[0] ? src.removed : "none", src.recover);
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
