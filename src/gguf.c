/*
 * gguf: reader and writer of the GGUF container (see gguf.h).
 *
 * The reader is a cursor over the mapped bytes. Every read goes through
 * `need`, which checks that the bytes exist before they are touched, and
 * every count read from the file is checked against the bytes that remain
 * before anything is allocated for it (an element of any kind takes at least
 * one byte), so absurd counts fail before they can exhaust memory. Nested
 * arrays are limited in depth. Tensor infos are then validated as a whole:
 * names unique and at most 63 bytes, 1..4 dims each positive, known types,
 * rows a whole number of blocks, offsets aligned, data inside the file and
 * no two tensors overlapping.
 *
 * The writer keeps metadata as already-encoded bytes, so copying a pair from
 * a source file is a byte copy of its value.
 */
#include "gguf.h"

#include <stdlib.h>
#include <string.h>

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DEPTH 8

/* ---- reader ---------------------------------------------------------------- */

struct cursor {
    const uint8_t *data;
    size_t size, pos;
    const char *name;
};

static dp_status need(struct cursor *c, uint64_t n, const char *what) {
    if (n > c->size - c->pos)
        return dp_fail(DP_ERR_FORMAT, "%s: truncated GGUF file: %s at byte %zu needs %llu bytes, %zu remain",
                       c->name, what, c->pos, (unsigned long long)n, c->size - c->pos);
    return DP_OK;
}

static uint64_t rd_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static dp_status rd_u32(struct cursor *c, uint32_t *v, const char *what) {
    dp_status st = need(c, 4, what);
    if (st) return st;
    *v = (uint32_t)rd_le(c->data + c->pos, 4);
    c->pos += 4;
    return DP_OK;
}

static dp_status rd_u64(struct cursor *c, uint64_t *v, const char *what) {
    dp_status st = need(c, 8, what);
    if (st) return st;
    *v = rd_le(c->data + c->pos, 8);
    c->pos += 8;
    return DP_OK;
}

static dp_status rd_str(struct cursor *c, struct dp_gguf_str *s, const char *what) {
    uint64_t len;
    dp_status st = rd_u64(c, &len, what);
    if (st) return st;
    if ((st = need(c, len, what))) return st;
    s->data = (const char *)c->data + c->pos;
    s->len = len;
    c->pos += len;
    return DP_OK;
}

size_t dp_gguf_vtype_size(uint32_t type) {
    switch (type) {
    case DP_GGUF_U8: case DP_GGUF_I8: case DP_GGUF_BOOL: return 1;
    case DP_GGUF_U16: case DP_GGUF_I16: return 2;
    case DP_GGUF_U32: case DP_GGUF_I32: case DP_GGUF_F32: return 4;
    case DP_GGUF_U64: case DP_GGUF_I64: case DP_GGUF_F64: return 8;
    default: return 0;
    }
}

const char *dp_gguf_vtype_name(uint32_t type) {
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                  "string", "array", "u64", "i64", "f64"};
    return type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

/* Widen a scalar stored little-endian at p. */
static void scalar_load(uint32_t type, const uint8_t *p, struct dp_gguf_value *val) {
    uint64_t raw = rd_le(p, (int)dp_gguf_vtype_size(type));
    switch (type) {
    case DP_GGUF_U8: case DP_GGUF_U16: case DP_GGUF_U32: case DP_GGUF_U64:
        val->v.u = raw;
        break;
    case DP_GGUF_I8: val->v.i = (int8_t)raw; break;
    case DP_GGUF_I16: val->v.i = (int16_t)raw; break;
    case DP_GGUF_I32: val->v.i = (int32_t)raw; break;
    case DP_GGUF_I64: val->v.i = (int64_t)raw; break;
    case DP_GGUF_BOOL: val->v.b = raw != 0; break;
    case DP_GGUF_F32: {
        uint32_t u = (uint32_t)raw;
        float f;
        memcpy(&f, &u, 4);
        val->v.f = f;
        break;
    }
    case DP_GGUF_F64: {
        double d;
        memcpy(&d, &raw, 8);
        val->v.f = d;
        break;
    }
    default: DP_ASSERT(0);
    }
}

static void value_free(struct dp_gguf_value *val) {
    free(val->strs);
    if (val->items)
        for (uint64_t i = 0; i < val->n; i++) value_free(&val->items[i]);
    free(val->items);
}

static dp_status rd_value(struct cursor *c, uint32_t type, struct dp_gguf_value *val, int depth,
                          const char *key) {
    dp_status st;
    memset(val, 0, sizeof *val);
    val->type = type;
    val->raw_begin = c->pos;
    if (type == DP_GGUF_STRING) {
        if ((st = rd_str(c, &val->s, key))) return st;
    } else if (type == DP_GGUF_ARRAY) {
        if (depth >= GGUF_MAX_DEPTH)
            return dp_fail(DP_ERR_FORMAT, "%s: metadata '%s': arrays nested deeper than %d", c->name,
                           key, GGUF_MAX_DEPTH);
        if ((st = rd_u32(c, &val->elem_type, key))) return st;
        if ((st = rd_u64(c, &val->n, key))) return st;
        uint32_t et = val->elem_type;
        size_t esz = dp_gguf_vtype_size(et);
        if (esz == 0 && et != DP_GGUF_STRING && et != DP_GGUF_ARRAY)
            return dp_fail(DP_ERR_FORMAT, "%s: metadata '%s': unknown array element type %u",
                           c->name, key, et);
        /* every element takes at least one byte (strings and arrays at least 8) */
        uint64_t min_bytes;
        if (dp_mul_overflow(val->n, esz ? esz : 8, &min_bytes) || min_bytes > c->size - c->pos)
            return dp_fail(DP_ERR_FORMAT, "%s: metadata '%s': array of %llu elements does not fit in the file",
                           c->name, key, (unsigned long long)val->n);
        if (esz) {
            val->raw = c->data + c->pos;
            c->pos += val->n * esz;
        } else if (et == DP_GGUF_STRING) {
            val->strs = dp_calloc(val->n ? val->n : 1, sizeof *val->strs);
            if (!val->strs) return DP_ERR_NOMEM;
            for (uint64_t i = 0; i < val->n; i++)
                if ((st = rd_str(c, &val->strs[i], key))) return st;
        } else {
            val->items = dp_calloc(val->n ? val->n : 1, sizeof *val->items);
            if (!val->items) return DP_ERR_NOMEM;
            for (uint64_t i = 0; i < val->n; i++) {
                /* nested arrays carry their own element type and count */
                if ((st = rd_value(c, DP_GGUF_ARRAY, &val->items[i], depth + 1, key))) return st;
            }
        }
    } else {
        size_t sz = dp_gguf_vtype_size(type);
        if (sz == 0)
            return dp_fail(DP_ERR_FORMAT, "%s: metadata '%s': unknown value type %u", c->name, key, type);
        if ((st = need(c, sz, key))) return st;
        scalar_load(type, c->data + c->pos, val);
        if (type == DP_GGUF_BOOL && c->data[c->pos] > 1)
            return dp_fail(DP_ERR_FORMAT, "%s: metadata '%s': bool value %u is neither 0 nor 1",
                           c->name, key, c->data[c->pos]);
        c->pos += sz;
    }
    val->raw_end = c->pos;
    return DP_OK;
}

double dp_gguf_arr_f64(const struct dp_gguf_value *val, uint64_t i) {
    DP_ASSERT(val->raw && i < val->n);
    struct dp_gguf_value tmp;
    scalar_load(val->elem_type, val->raw + i * dp_gguf_vtype_size(val->elem_type), &tmp);
    switch (val->elem_type) {
    case DP_GGUF_F32: case DP_GGUF_F64: return tmp.v.f;
    case DP_GGUF_I8: case DP_GGUF_I16: case DP_GGUF_I32: case DP_GGUF_I64: return (double)tmp.v.i;
    case DP_GGUF_BOOL: return tmp.v.b;
    default: return (double)tmp.v.u;
    }
}

int64_t dp_gguf_arr_i64(const struct dp_gguf_value *val, uint64_t i) {
    DP_ASSERT(val->raw && i < val->n);
    struct dp_gguf_value tmp;
    scalar_load(val->elem_type, val->raw + i * dp_gguf_vtype_size(val->elem_type), &tmp);
    switch (val->elem_type) {
    case DP_GGUF_F32: case DP_GGUF_F64:
        /* saturate: converting NaN or an out-of-range float to int64 is undefined */
        if (tmp.v.f != tmp.v.f) return 0;
        if (tmp.v.f >= 0x1p63) return INT64_MAX;
        if (tmp.v.f < -0x1p63) return INT64_MIN;
        return (int64_t)tmp.v.f;
    case DP_GGUF_I8: case DP_GGUF_I16: case DP_GGUF_I32: case DP_GGUF_I64: return tmp.v.i;
    case DP_GGUF_BOOL: return tmp.v.b;
    default: return (int64_t)tmp.v.u;
    }
}

static bool valid_key(const struct dp_gguf_str *s) {
    if (s->len == 0) return false;
    for (uint64_t i = 0; i < s->len; i++)
        if (s->data[i] == 0) return false;
    return true;
}

static dp_status parse_kv(struct cursor *c, struct dp_gguf *g) {
    dp_status st;
    for (uint64_t k = 0; k < g->n_kv; k++) {
        struct dp_gguf_str key;
        char what[48];
        snprintf(what, sizeof what, "key of metadata pair %llu", (unsigned long long)k);
        if ((st = rd_str(c, &key, what))) return st;
        if (!valid_key(&key) || key.len > 65535)
            return dp_fail(DP_ERR_FORMAT, "%s: metadata pair %llu has an invalid key", c->name,
                           (unsigned long long)k);
        struct dp_gguf_kv *kv = &g->kv[k];
        kv->key = dp_malloc(key.len + 1);
        if (!kv->key) return DP_ERR_NOMEM;
        memcpy(kv->key, key.data, key.len);
        kv->key[key.len] = 0;
        for (uint64_t j = 0; j < k; j++)
            if (!strcmp(g->kv[j].key, kv->key))
                return dp_fail(DP_ERR_FORMAT, "%s: duplicate metadata key '%s'", c->name, kv->key);
        uint32_t type;
        if ((st = rd_u32(c, &type, kv->key))) return st;
        if ((st = rd_value(c, type, &kv->val, 0, kv->key))) return st;
    }
    return DP_OK;
}

static dp_status parse_tensor_infos(struct cursor *c, struct dp_gguf *g) {
    dp_status st;
    for (uint64_t k = 0; k < g->n_tensors; k++) {
        struct dp_gguf_tensor *t = &g->tensors[k];
        struct dp_gguf_str name;
        char what[48];
        snprintf(what, sizeof what, "tensor info %llu", (unsigned long long)k);
        if ((st = rd_str(c, &name, what))) return st;
        if (name.len == 0 || name.len > DP_GGUF_MAX_NAME || memchr(name.data, 0, name.len))
            return dp_fail(DP_ERR_FORMAT, "%s: tensor %llu has an invalid name (length %llu, at most %d)",
                           c->name, (unsigned long long)k, (unsigned long long)name.len, DP_GGUF_MAX_NAME);
        memcpy(t->name, name.data, name.len);
        t->name[name.len] = 0;
        if ((st = rd_u32(c, &t->n_dims, t->name))) return st;
        if (t->n_dims < 1 || t->n_dims > DP_GGUF_MAX_DIMS)
            return dp_fail(DP_ERR_FORMAT, "%s: tensor '%s' has %u dimensions (1 to %d allowed)",
                           c->name, t->name, t->n_dims, DP_GGUF_MAX_DIMS);
        uint64_t n_elems = 1;
        for (int d = 0; d < DP_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t ne;
            if ((st = rd_u64(c, &ne, t->name))) return st;
            if (ne == 0 || ne > INT64_MAX / 2 || dp_mul_overflow(n_elems, ne, &n_elems) ||
                n_elems > INT64_MAX / 8)
                return dp_fail(DP_ERR_FORMAT, "%s: tensor '%s' has an invalid size %llu in dimension %u",
                               c->name, t->name, (unsigned long long)ne, d);
            t->ne[d] = (int64_t)ne;
        }
        if ((st = rd_u32(c, &t->type, t->name))) return st;
        const struct dp_type_traits *tt = dp_type_traits(t->type);
        if (!tt)
            return dp_fail(DP_ERR_FORMAT, "%s: tensor '%s' has unknown type %u", c->name, t->name, t->type);
        if (t->ne[0] % tt->block_size)
            return dp_fail(DP_ERR_FORMAT, "%s: tensor '%s': row length %lld is not a multiple of the %s block size %d",
                           c->name, t->name, (long long)t->ne[0], tt->name, tt->block_size);
        uint64_t nbytes;
        if (dp_mul_overflow(n_elems / tt->block_size, tt->block_bytes, &nbytes))
            return dp_fail(DP_ERR_FORMAT, "%s: tensor '%s' is too large", c->name, t->name);
        t->nbytes = nbytes;
        if ((st = rd_u64(c, &t->offset, t->name))) return st;
        for (uint64_t j = 0; j < k; j++)
            if (!strcmp(g->tensors[j].name, t->name))
                return dp_fail(DP_ERR_FORMAT, "%s: duplicate tensor name '%s'", c->name, t->name);
    }
    return DP_OK;
}

static int cmp_offset(const void *a, const void *b) {
    const struct dp_gguf_tensor *x = *(const struct dp_gguf_tensor *const *)a;
    const struct dp_gguf_tensor *y = *(const struct dp_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static dp_status place_tensors(struct cursor *c, struct dp_gguf *g) {
    size_t data_size = c->size - g->data_offset;
    for (uint64_t k = 0; k < g->n_tensors; k++) {
        struct dp_gguf_tensor *t = &g->tensors[k];
        uint64_t end;
        if (t->offset % g->alignment)
            return dp_fail(DP_ERR_FORMAT, "%s: tensor '%s': data offset %llu is not a multiple of the alignment %zu",
                           c->name, t->name, (unsigned long long)t->offset, g->alignment);
        if (dp_add_overflow(t->offset, t->nbytes, &end) || end > data_size)
            return dp_fail(DP_ERR_FORMAT, "%s: tensor '%s': data [%llu, +%zu) lies beyond the end of the file (data section holds %zu bytes)",
                           c->name, t->name, (unsigned long long)t->offset, t->nbytes, data_size);
        t->data = c->data + g->data_offset + t->offset;
    }
    if (g->n_tensors < 2) return DP_OK;
    const struct dp_gguf_tensor **byoff = dp_malloc(g->n_tensors * sizeof *byoff);
    if (!byoff) return DP_ERR_NOMEM;
    for (uint64_t k = 0; k < g->n_tensors; k++) byoff[k] = &g->tensors[k];
    qsort(byoff, g->n_tensors, sizeof *byoff, cmp_offset);
    dp_status st = DP_OK;
    for (uint64_t k = 1; k < g->n_tensors && !st; k++)
        if (byoff[k - 1]->offset + byoff[k - 1]->nbytes > byoff[k]->offset)
            st = dp_fail(DP_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", c->name, byoff[k - 1]->name,
                         byoff[k]->name);
    free(byoff);
    return st;
}

dp_status dp_gguf_parse(const uint8_t *data, size_t size, const char *name, struct dp_gguf **out) {
    *out = NULL;
    struct cursor c = {data, size, 0, name};
    if (size < 4 || memcmp(data, GGUF_MAGIC, 4))
        return dp_fail(DP_ERR_FORMAT, "%s: not a GGUF file (bad magic)", name);
    c.pos = 4;
    struct dp_gguf *g = dp_calloc(1, sizeof *g);
    if (!g) return DP_ERR_NOMEM;
    g->path = name;
    g->data = data;
    g->size = size;
    dp_status st = rd_u32(&c, &g->version, "version");
    if (!st && (g->version < 2 || g->version > 3))
        st = dp_fail(DP_ERR_FORMAT, "%s: GGUF version %u is not supported (2 and 3 are)", name, g->version);
    if (!st) st = rd_u64(&c, &g->n_tensors, "tensor count");
    if (!st) st = rd_u64(&c, &g->n_kv, "metadata count");
    /* a tensor info takes at least 8+1+4+8+4+8 bytes, a pair at least 8+1+4+1 */
    if (!st && g->n_tensors > (size - c.pos) / 33)
        st = dp_fail(DP_ERR_FORMAT, "%s: tensor count %llu is impossible for a file of %zu bytes", name,
                     (unsigned long long)g->n_tensors, size);
    if (!st && g->n_kv > (size - c.pos) / 14)
        st = dp_fail(DP_ERR_FORMAT, "%s: metadata count %llu is impossible for a file of %zu bytes", name,
                     (unsigned long long)g->n_kv, size);
    if (!st) {
        g->kv = dp_calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
        g->tensors = dp_calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
        if (!g->kv || !g->tensors) st = DP_ERR_NOMEM;
    }
    if (!st) st = parse_kv(&c, g);
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (!st) {
        const struct dp_gguf_kv *al = dp_gguf_find_kv(g, "general.alignment");
        if (al) {
            if (al->val.type != DP_GGUF_U32 || al->val.v.u == 0 || (al->val.v.u & (al->val.v.u - 1)) ||
                al->val.v.u > 1u << 20)
                st = dp_fail(DP_ERR_FORMAT, "%s: general.alignment must be a power of two u32", name);
            else
                g->alignment = al->val.v.u;
        }
    }
    if (!st) st = parse_tensor_infos(&c, g);
    if (!st) {
        size_t pad = (g->alignment - c.pos % g->alignment) % g->alignment;
        g->data_offset = c.pos + pad;
        if (g->n_tensors && g->data_offset > size)
            st = dp_fail(DP_ERR_FORMAT, "%s: truncated GGUF file: no tensor data section", name);
        else if (g->data_offset > size)
            g->data_offset = size;
    }
    if (!st) st = place_tensors(&c, g);
    if (st) {
        dp_gguf_close(g);
        return st;
    }
    *out = g;
    return DP_OK;
}

dp_status dp_gguf_open(const char *path, struct dp_gguf **out) {
    *out = NULL;
    struct dp_map map;
    dp_status st = dp_map_open(path, &map);
    if (st) return st;
    struct dp_gguf *g;
    if ((st = dp_gguf_parse(map.data, map.size, map.path, &g))) {
        dp_map_close(&map);
        return st;
    }
    g->map = map;
    g->path = g->map.path;
    *out = g;
    return DP_OK;
}

void dp_gguf_close(struct dp_gguf *g) {
    if (!g) return;
    if (g->kv)
        for (uint64_t k = 0; k < g->n_kv; k++) {
            free(g->kv[k].key);
            value_free(&g->kv[k].val);
        }
    free(g->kv);
    free(g->tensors);
    dp_map_close(&g->map);
    free(g);
}

const struct dp_gguf_kv *dp_gguf_find_kv(const struct dp_gguf *g, const char *key) {
    for (uint64_t k = 0; k < g->n_kv; k++)
        if (g->kv[k].key && !strcmp(g->kv[k].key, key)) return &g->kv[k];
    return NULL;
}

const struct dp_gguf_tensor *dp_gguf_find_tensor(const struct dp_gguf *g, const char *name) {
    for (uint64_t k = 0; k < g->n_tensors; k++)
        if (!strcmp(g->tensors[k].name, name)) return &g->tensors[k];
    return NULL;
}

static bool is_int_type(uint32_t t) {
    return t == DP_GGUF_U8 || t == DP_GGUF_I8 || t == DP_GGUF_U16 || t == DP_GGUF_I16 ||
           t == DP_GGUF_U32 || t == DP_GGUF_I32 || t == DP_GGUF_U64 || t == DP_GGUF_I64;
}
static bool is_signed(uint32_t t) {
    return t == DP_GGUF_I8 || t == DP_GGUF_I16 || t == DP_GGUF_I32 || t == DP_GGUF_I64;
}

static dp_status lookup(const struct dp_gguf *g, const char *key, bool required,
                        const struct dp_gguf_kv **kv) {
    *kv = dp_gguf_find_kv(g, key);
    if (!*kv && required)
        return dp_fail(DP_ERR_FORMAT, "%s: required metadata '%s' is missing", g->path, key);
    return DP_OK;
}

static dp_status wrong_type(const struct dp_gguf *g, const struct dp_gguf_kv *kv, const char *want) {
    return dp_fail(DP_ERR_FORMAT, "%s: metadata '%s' is a %s, expected %s", g->path, kv->key,
                   dp_gguf_vtype_name(kv->val.type), want);
}

dp_status dp_gguf_get_int(const struct dp_gguf *g, const char *key, bool required, int64_t *out) {
    const struct dp_gguf_kv *kv;
    dp_status st = lookup(g, key, required, &kv);
    if (st || !kv) return st;
    if (!is_int_type(kv->val.type)) return wrong_type(g, kv, "an integer");
    if (!is_signed(kv->val.type) && kv->val.v.u > INT64_MAX)
        return dp_fail(DP_ERR_FORMAT, "%s: metadata '%s' is out of range", g->path, key);
    *out = is_signed(kv->val.type) ? kv->val.v.i : (int64_t)kv->val.v.u;
    return DP_OK;
}

dp_status dp_gguf_get_float(const struct dp_gguf *g, const char *key, bool required, double *out) {
    const struct dp_gguf_kv *kv;
    dp_status st = lookup(g, key, required, &kv);
    if (st || !kv) return st;
    if (kv->val.type == DP_GGUF_F32 || kv->val.type == DP_GGUF_F64) *out = kv->val.v.f;
    else if (is_int_type(kv->val.type))
        *out = is_signed(kv->val.type) ? (double)kv->val.v.i : (double)kv->val.v.u;
    else
        return wrong_type(g, kv, "a number");
    return DP_OK;
}

dp_status dp_gguf_get_bool(const struct dp_gguf *g, const char *key, bool required, bool *out) {
    const struct dp_gguf_kv *kv;
    dp_status st = lookup(g, key, required, &kv);
    if (st || !kv) return st;
    if (kv->val.type != DP_GGUF_BOOL) return wrong_type(g, kv, "a bool");
    *out = kv->val.v.b;
    return DP_OK;
}

dp_status dp_gguf_get_str(const struct dp_gguf *g, const char *key, bool required, char *buf,
                          size_t cap) {
    const struct dp_gguf_kv *kv;
    dp_status st = lookup(g, key, required, &kv);
    if (st || !kv) return st;
    if (kv->val.type != DP_GGUF_STRING) return wrong_type(g, kv, "a string");
    size_t n = kv->val.s.len < cap - 1 ? kv->val.s.len : cap - 1;
    memcpy(buf, kv->val.s.data, n);
    buf[n] = 0;
    return DP_OK;
}

/* ---- writer ---------------------------------------------------------------- */

/* A growable byte buffer. */
struct buf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
};

static void buf_put(struct buf *b, const void *src, size_t n) {
    if (b->oom || n == 0) return; /* src may be NULL when n is 0 (an empty array) */
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void buf_le(struct buf *b, uint64_t v, int n) {
    uint8_t tmp[8];
    for (int i = 0; i < n; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, tmp, (size_t)n);
}

static void buf_str(struct buf *b, const char *s, size_t n) {
    buf_le(b, n, 8);
    buf_put(b, s, n);
}

struct wkv {
    char *key;
    uint32_t type;
    struct buf val;       /* encoded value, without the type tag */
};

struct wtensor {
    char name[DP_GGUF_MAX_NAME + 1];
    uint32_t type;
    int n_dims;
    int64_t ne[DP_GGUF_MAX_DIMS];
    const void *data;
    size_t nbytes;
};

struct dp_gguf_writer {
    struct wkv *kv;
    size_t n_kv, cap_kv;
    struct wtensor *t;
    size_t n_t, cap_t;
    bool oom;
};

struct dp_gguf_writer *dp_gguf_writer_new(void) {
    return dp_calloc(1, sizeof(struct dp_gguf_writer));
}

void dp_gguf_writer_free(struct dp_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val.p);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

/* The slot for key (existing or new, emptied), or NULL when out of memory. */
static struct wkv *slot(struct dp_gguf_writer *w, const char *key, uint32_t type) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) {
            w->kv[i].val.n = 0;
            w->kv[i].type = type;
            return &w->kv[i];
        }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
        struct wkv *p = realloc(w->kv, cap * sizeof *p);
        if (!p) {
            w->oom = true;
            return NULL;
        }
        w->kv = p;
        w->cap_kv = cap;
    }
    struct wkv *s = &w->kv[w->n_kv];
    memset(s, 0, sizeof *s);
    s->key = strdup(key);
    if (!s->key) {
        w->oom = true;
        return NULL;
    }
    s->type = type;
    w->n_kv++;
    return s;
}

static void set_scalar(struct dp_gguf_writer *w, const char *key, uint32_t type, uint64_t bits) {
    struct wkv *s = slot(w, key, type);
    if (s) buf_le(&s->val, bits, (int)dp_gguf_vtype_size(type));
}

void dp_gguf_set_u32(struct dp_gguf_writer *w, const char *key, uint32_t v) {
    set_scalar(w, key, DP_GGUF_U32, v);
}
void dp_gguf_set_i32(struct dp_gguf_writer *w, const char *key, int32_t v) {
    set_scalar(w, key, DP_GGUF_I32, (uint32_t)v);
}
void dp_gguf_set_u64(struct dp_gguf_writer *w, const char *key, uint64_t v) {
    set_scalar(w, key, DP_GGUF_U64, v);
}
void dp_gguf_set_f32(struct dp_gguf_writer *w, const char *key, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    set_scalar(w, key, DP_GGUF_F32, u);
}
void dp_gguf_set_bool(struct dp_gguf_writer *w, const char *key, bool v) {
    set_scalar(w, key, DP_GGUF_BOOL, v ? 1 : 0);
}
void dp_gguf_set_str(struct dp_gguf_writer *w, const char *key, const char *v) {
    struct wkv *s = slot(w, key, DP_GGUF_STRING);
    if (s) buf_str(&s->val, v, strlen(v));
}

void dp_gguf_set_arr(struct dp_gguf_writer *w, const char *key, uint32_t elem_type,
                     const void *data, uint64_t n) {
    size_t esz = dp_gguf_vtype_size(elem_type);
    DP_ASSERT(esz > 0);
    struct wkv *s = slot(w, key, DP_GGUF_ARRAY);
    if (!s) return;
    buf_le(&s->val, elem_type, 4);
    buf_le(&s->val, n, 8);
    buf_put(&s->val, data, (size_t)n * esz);
}

void dp_gguf_set_arr_str(struct dp_gguf_writer *w, const char *key, const char *const *strs,
                         uint64_t n) {
    struct wkv *s = slot(w, key, DP_GGUF_ARRAY);
    if (!s) return;
    buf_le(&s->val, DP_GGUF_STRING, 4);
    buf_le(&s->val, n, 8);
    for (uint64_t i = 0; i < n; i++) buf_str(&s->val, strs[i], strlen(strs[i]));
}

void dp_gguf_copy_kv(struct dp_gguf_writer *w, const struct dp_gguf *src,
                     const struct dp_gguf_kv *kv, const char *key) {
    struct wkv *s = slot(w, key ? key : kv->key, kv->val.type);
    if (s) buf_put(&s->val, src->data + kv->val.raw_begin, kv->val.raw_end - kv->val.raw_begin);
}

void dp_gguf_remove_kv(struct dp_gguf_writer *w, const char *key) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) {
            free(w->kv[i].key);
            free(w->kv[i].val.p);
            memmove(&w->kv[i], &w->kv[i + 1], (w->n_kv - i - 1) * sizeof *w->kv);
            w->n_kv--;
            return;
        }
}

dp_status dp_gguf_add_tensor(struct dp_gguf_writer *w, const char *name, uint32_t type,
                             int n_dims, const int64_t *ne, const void *data, size_t nbytes) {
    const struct dp_type_traits *tt = dp_type_traits(type);
    size_t len = strlen(name);
    if (len == 0 || len > DP_GGUF_MAX_NAME)
        return dp_fail(DP_ERR_ARG, "tensor name '%s' is empty or longer than %d bytes", name, DP_GGUF_MAX_NAME);
    if (!tt) return dp_fail(DP_ERR_ARG, "tensor '%s': unknown type %u", name, type);
    if (n_dims < 1 || n_dims > DP_GGUF_MAX_DIMS)
        return dp_fail(DP_ERR_ARG, "tensor '%s': %d dimensions", name, n_dims);
    uint64_t n = 1;
    for (int d = 0; d < n_dims; d++)
        if (ne[d] <= 0 || dp_mul_overflow(n, (uint64_t)ne[d], &n))
            return dp_fail(DP_ERR_ARG, "tensor '%s': bad dimension %d", name, d);
    if (ne[0] % tt->block_size || (n / tt->block_size) * tt->block_bytes != nbytes)
        return dp_fail(DP_ERR_ARG, "tensor '%s': %zu bytes do not match type %s and its shape", name,
                       nbytes, tt->name);
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return dp_fail(DP_ERR_ARG, "duplicate tensor '%s'", name);
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 64;
        struct wtensor *p = realloc(w->t, cap * sizeof *p);
        if (!p) return dp_fail(DP_ERR_NOMEM, "out of memory adding tensor '%s'", name);
        w->t = p;
        w->cap_t = cap;
    }
    struct wtensor *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    memcpy(t->name, name, len);
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < DP_GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->data = data;
    t->nbytes = nbytes;
    return DP_OK;
}

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

dp_status dp_gguf_writer_write(struct dp_gguf_writer *w, const char *path) {
    size_t alignment = GGUF_DEFAULT_ALIGNMENT;
    /* never write what the reader refuses: empty keys, a general.alignment not u32 */
    for (size_t i = 0; i < w->n_kv; i++) {
        if (!w->kv[i].key[0]) return dp_fail(DP_ERR_ARG, "%s: a metadata key is empty", path);
        if (strcmp(w->kv[i].key, "general.alignment")) continue;
        if (w->kv[i].type != DP_GGUF_U32 || w->kv[i].val.n != 4)
            return dp_fail(DP_ERR_ARG, "%s: general.alignment must be a u32", path);
        alignment = (size_t)rd_le(w->kv[i].val.p, 4);
    }
    if (alignment == 0 || (alignment & (alignment - 1)) || alignment > 4096)
        return dp_fail(DP_ERR_ARG, "%s: general.alignment %zu is not a power of two", path, alignment);
    struct buf h = {0};
    buf_put(&h, GGUF_MAGIC, 4);
    buf_le(&h, 3, 4);
    buf_le(&h, w->n_t, 8);
    buf_le(&h, w->n_kv, 8);
    for (size_t i = 0; i < w->n_kv; i++) {
        buf_str(&h, w->kv[i].key, strlen(w->kv[i].key));
        buf_le(&h, w->kv[i].type, 4);
        buf_put(&h, w->kv[i].val.p, w->kv[i].val.n);
        if (w->kv[i].val.oom) h.oom = true;
    }
    size_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        struct wtensor *t = &w->t[i];
        buf_str(&h, t->name, strlen(t->name));
        buf_le(&h, (uint64_t)t->n_dims, 4);
        for (int d = 0; d < t->n_dims; d++) buf_le(&h, (uint64_t)t->ne[d], 8);
        buf_le(&h, t->type, 4);
        buf_le(&h, off, 8);
        off = align_up(off + t->nbytes, alignment);
    }
    static const uint8_t zeros[4096];
    buf_put(&h, zeros, align_up(h.n, alignment) - h.n);
    if (h.oom || w->oom) {
        free(h.p);
        return dp_fail(DP_ERR_NOMEM, "%s: out of memory building the GGUF header", path);
    }
    struct dp_out o;
    dp_status st = dp_out_open(path, &o);
    if (st) {
        free(h.p);
        return st;
    }
    bool ok = fwrite(h.p, 1, h.n, o.f) == h.n;
    free(h.p);
    for (size_t i = 0; i < w->n_t && ok; i++) {
        struct wtensor *t = &w->t[i];
        ok = fwrite(t->data, 1, t->nbytes, o.f) == t->nbytes;
        size_t pad = align_up(t->nbytes, alignment) - t->nbytes;
        if (ok && pad && i + 1 < w->n_t) ok = fwrite(zeros, 1, pad, o.f) == pad;
    }
    if (!ok) {
        dp_out_abort(&o);
        return dp_fail(DP_ERR_IO, "%s: write failed", path);
    }
    return dp_out_commit(&o);
}
