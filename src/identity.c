/*
 * identity: model fingerprints and their check (see identity.h).
 *
 * Both digests stream a canonical text through SHA-256: one line per
 * configuration field, then one line per tensor present ("name n_in n_out",
 * the hash adding the type), in forward-pass order: token embedding, output
 * norm, output head (when not tied), then each block's tensors in the order
 * of struct dp_layer. The hash then takes up to 4 KiB from the start and
 * from the end of each tensor, in the same order. The text is fixed by this
 * file; changing it changes every fingerprint, so it is versioned with the
 * plan and scores formats.
 */
#include "identity.h"

#include "json.h"
#include "model.h"
#include "sha256.h"
#include "types.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SAMPLE_BYTES 4096

static void put_line(struct dp_sha256 *s, const char *fmt, ...) DP_PRINTF(2, 3);
static void put_line(struct dp_sha256 *s, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) dp_sha256_update(s, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Slot k of the forward pass's tensors (0 <= k < n_slots(m)); NULL when absent or tied. */
static int n_slots(const struct dp_model *m) { return 3 + 16 * m->cfg.n_layers; }

static const struct dp_weight *slot(const struct dp_model *m, int k) {
    const struct dp_weight *w;
    if (k < 3) {
        w = k == 0 ? &m->tok_embd : k == 1 ? &m->output_norm : &m->output;
        if (k == 2 && m->output.data == m->tok_embd.data) return NULL;
    } else {
        const struct dp_layer *L = &m->layers[(k - 3) / 16];
        const struct dp_weight *all[16] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->bq, &L->bk, &L->bv,
                                           &L->bo, &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down, &L->b_down,
                                           &L->b_gate, &L->b_up};
        w = all[(k - 3) % 16];
    }
    return w->data ? w : NULL;
}

static void put_text(struct dp_sha256 *s, const struct dp_model *m, bool types) {
    const struct dp_config *c = &m->cfg;
    put_line(s, "depthprune model identity 1\narch %s\nblocks %d\nembd %d\nvocab %d\nhead_dim %d\n", c->arch,
             c->n_layers, c->n_embd, c->n_vocab, c->head_dim);
    for (int i = 0; i < c->n_layers; i++) {
        struct dp_layer_shape sh = m->layers[i].shape;
        put_line(s, "block %d heads %d kv %d ff %d\n", i, sh.n_head, sh.n_head_kv, sh.n_ff);
    }
    for (int k = 0; k < n_slots(m); k++) {
        const struct dp_weight *w = slot(m, k);
        if (!w) continue;
        put_line(s, "%s %lld %lld", w->name ? w->name : "?", (long long)w->n_in, (long long)w->n_out);
        if (types) put_line(s, " %s", dp_type_name(w->type));
        put_line(s, "\n");
    }
}

static void to_hex(const uint8_t d[32], char out[65]) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[64] = 0;
}

void dp_identity_of(const struct dp_model *m, struct dp_identity *out) {
    memset(out, 0, sizeof *out);
    out->n_blocks = m->cfg.n_layers;
    struct dp_sha256 s;
    uint8_t d[32];
    dp_sha256_init(&s);
    put_text(&s, m, false);
    dp_sha256_final(&s, d);
    to_hex(d, out->shape);
    dp_sha256_init(&s);
    put_text(&s, m, true);
    for (int k = 0; k < n_slots(m); k++) {
        const struct dp_weight *w = slot(m, k);
        if (!w) continue;
        size_t nb = dp_type_row_bytes(w->type, w->n_in) * (size_t)w->n_out;
        const uint8_t *p = w->data;
        size_t head = nb < SAMPLE_BYTES ? nb : SAMPLE_BYTES;
        dp_sha256_update(&s, p, head);
        if (nb > head) {
            size_t tail = nb - head < SAMPLE_BYTES ? nb - head : SAMPLE_BYTES;
            dp_sha256_update(&s, p + nb - tail, tail);
        }
    }
    dp_sha256_final(&s, d);
    to_hex(d, out->hash);
}

static bool is_digest(const char *s, size_t len) {
    if (len != 64) return false;
    for (size_t i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

static dp_status read_digest(const struct dp_jv *root, const char *key, const char *path, char out[65]) {
    const struct dp_jv *v = dp_json_get(root, key);
    out[0] = 0;
    if (!v || v->type == DP_JNULL) return DP_OK;
    if (v->type != DP_JSTR || !is_digest(v->str, v->len))
        return dp_fail(DP_ERR_FORMAT, "%s: \"%s\" must be 64 lowercase hex digits (a SHA-256)", path, key);
    memcpy(out, v->str, 65);
    return DP_OK;
}

dp_status dp_identity_read(const struct dp_jv *root, const char *path, bool required, struct dp_identity *out) {
    memset(out, 0, sizeof *out);
    const struct dp_jv *nb = dp_json_get(root, "n_blocks");
    if (nb && nb->type != DP_JNULL) {
        if (nb->type != DP_JNUM || !(nb->num >= 0 && nb->num <= DP_MAX_LAYERS) || nb->num != (int)nb->num)
            return dp_fail(DP_ERR_FORMAT, "%s: \"n_blocks\" must be an integer in [0, %d]", path, DP_MAX_LAYERS);
        out->n_blocks = (int)nb->num;
    }
    dp_status st;
    if ((st = read_digest(root, "model_hash", path, out->hash)) || (st = read_digest(root, "model_shape", path, out->shape)))
        return st;
    if (required) {
        const char *missing = !out->n_blocks ? "n_blocks" : !out->hash[0] ? "model_hash" : !out->shape[0] ? "model_shape" : NULL;
        if (missing) return dp_fail(DP_ERR_FORMAT, "%s: \"%s\" is missing (this format version requires it)", path, missing);
    }
    return DP_OK;
}

dp_status dp_identity_check(const struct dp_identity *claim, const struct dp_identity *model, const char *path,
                            bool allow_twin, bool *unchecked) {
    *unchecked = !claim->hash[0];
    if (claim->n_blocks && claim->n_blocks != model->n_blocks)
        return dp_fail(DP_ERR_ARG, "%s: \"n_blocks\" is %d but the model has %d blocks: made for another model", path,
                       claim->n_blocks, model->n_blocks);
    if (claim->shape[0] && strcmp(claim->shape, model->shape))
        return dp_fail(DP_ERR_ARG,
                       "%s: \"model_shape\" is %.16s... but the model's is %.16s...: made for a model of another "
                       "architecture or shape",
                       path, claim->shape, model->shape);
    if (claim->hash[0] && strcmp(claim->hash, model->hash) && !allow_twin)
        return dp_fail(DP_ERR_ARG,
                       "%s: \"model_hash\" is %.16s... but the model's is %.16s...: same shapes, other weights "
                       "(a quantized or fine-tuned twin? --allow-twin accepts it)",
                       path, claim->hash, model->hash);
    return DP_OK;
}
