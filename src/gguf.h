/*
 * gguf: the GGUF container, read and written.
 *
 * Reading maps the file and parses the header, the metadata key/value pairs
 * and the tensor infos into small arrays; tensor data and string bytes are
 * never copied (they point into the mapping). Every count, length, offset and
 * size is checked against the file before it is used, so a truncated,
 * bit-flipped or hostile file fails with one line naming the file and what is
 * wrong, never with a crash. Versions 2 and 3 are read (v1 used 32-bit counts
 * and is refused with a clear message).
 *
 * Writing collects metadata and tensor references and writes a version-3 file
 * to a temporary name that is renamed into place only when complete. Tensor
 * bytes are referenced by the writer, not copied: keep them alive until
 * dp_gguf_writer_write returns.
 */
#ifndef DP_GGUF_H
#define DP_GGUF_H

#include "base.h"
#include "types.h"

enum dp_gguf_vtype {
    DP_GGUF_U8 = 0, DP_GGUF_I8 = 1, DP_GGUF_U16 = 2, DP_GGUF_I16 = 3,
    DP_GGUF_U32 = 4, DP_GGUF_I32 = 5, DP_GGUF_F32 = 6, DP_GGUF_BOOL = 7,
    DP_GGUF_STRING = 8, DP_GGUF_ARRAY = 9, DP_GGUF_U64 = 10, DP_GGUF_I64 = 11,
    DP_GGUF_F64 = 12,
};

#define DP_GGUF_MAX_NAME 63     /* ggml's limit on tensor name length (bytes) */
#define DP_GGUF_MAX_DIMS 4

/* A string inside the mapping: not NUL-terminated. */
struct dp_gguf_str {
    const char *data;
    uint64_t len;
};

/*
 * A metadata value. Scalars are widened into u/i/f/b; strings point into the
 * file; arrays keep their element type and count, with scalar elements as raw
 * little-endian bytes (`raw`), string elements in `strs` and nested arrays in
 * `items`. [raw_begin, raw_end) is the value's encoding in the file (type tag
 * excluded) so a writer can copy it byte for byte.
 */
struct dp_gguf_value {
    uint32_t type;
    union {
        uint64_t u;
        int64_t i;
        double f;
        bool b;
    } v;
    struct dp_gguf_str s;
    uint32_t elem_type;           /* arrays */
    uint64_t n;                   /* arrays: element count */
    const uint8_t *raw;           /* arrays of scalars: n elements, packed LE */
    struct dp_gguf_str *strs;     /* arrays of strings: n entries (owned) */
    struct dp_gguf_value *items;  /* arrays of arrays: n entries (owned) */
    size_t raw_begin, raw_end;
};

struct dp_gguf_kv {
    char *key;                    /* NUL-terminated copy (owned) */
    struct dp_gguf_value val;
};

struct dp_gguf_tensor {
    char name[DP_GGUF_MAX_NAME + 1];
    uint32_t n_dims;
    int64_t ne[DP_GGUF_MAX_DIMS]; /* ne[0] is the row length; unused dims are 1 */
    uint32_t type;
    uint64_t offset;              /* relative to the data section */
    const uint8_t *data;          /* into the mapping */
    size_t nbytes;
};

struct dp_gguf {
    struct dp_map map;
    const char *path;             /* == map.path */
    const uint8_t *data;          /* the parsed bytes: the mapping, or the caller's buffer */
    size_t size;
    uint32_t version;
    uint64_t n_kv, n_tensors;
    struct dp_gguf_kv *kv;
    struct dp_gguf_tensor *tensors;
    size_t alignment;
    size_t data_offset;           /* start of the tensor data section */
};

/* Map and parse a file. */
dp_status dp_gguf_open(const char *path, struct dp_gguf **out);
/*
 * Parse a GGUF image held in memory (`name` is used in messages). The buffer
 * must outlive the result. Used by dp_gguf_open and by the fuzz target.
 */
dp_status dp_gguf_parse(const uint8_t *data, size_t size, const char *name, struct dp_gguf **out);
void dp_gguf_close(struct dp_gguf *g);

/* Lookups: NULL / -1 when absent. */
const struct dp_gguf_kv *dp_gguf_find_kv(const struct dp_gguf *g, const char *key);
const struct dp_gguf_tensor *dp_gguf_find_tensor(const struct dp_gguf *g, const char *name);

/*
 * Typed getters. Each returns DP_OK and stores the value when the key exists
 * with a compatible type (any integer type for _int, F32/F64 or integer for
 * _float); returns DP_OK leaving *out untouched when the key is absent and
 * `required` is false; fails with a message naming the file and key otherwise.
 */
dp_status dp_gguf_get_int(const struct dp_gguf *g, const char *key, bool required, int64_t *out);
dp_status dp_gguf_get_float(const struct dp_gguf *g, const char *key, bool required, double *out);
dp_status dp_gguf_get_bool(const struct dp_gguf *g, const char *key, bool required, bool *out);
/* Copies into buf (NUL-terminated, truncated to cap-1 bytes). */
dp_status dp_gguf_get_str(const struct dp_gguf *g, const char *key, bool required, char *buf,
                          size_t cap);
/*
 * Element i of a numeric array value as double / int64 (i < val->n). Floats
 * become int64 truncated toward zero, saturating at the int64 range; NaN gives 0.
 */
double dp_gguf_arr_f64(const struct dp_gguf_value *val, uint64_t i);
int64_t dp_gguf_arr_i64(const struct dp_gguf_value *val, uint64_t i);
/* Size in bytes of one element of a scalar type, 0 for string/array. */
size_t dp_gguf_vtype_size(uint32_t type);
const char *dp_gguf_vtype_name(uint32_t type);

/* ---- writer ---- */

struct dp_gguf_writer;
struct dp_gguf_writer *dp_gguf_writer_new(void);
void dp_gguf_writer_free(struct dp_gguf_writer *w);
/* Metadata setters: a key set twice keeps the last value, in first position. */
void dp_gguf_set_u32(struct dp_gguf_writer *w, const char *key, uint32_t v);
void dp_gguf_set_i32(struct dp_gguf_writer *w, const char *key, int32_t v);
void dp_gguf_set_u64(struct dp_gguf_writer *w, const char *key, uint64_t v);
void dp_gguf_set_f32(struct dp_gguf_writer *w, const char *key, float v);
void dp_gguf_set_bool(struct dp_gguf_writer *w, const char *key, bool v);
void dp_gguf_set_str(struct dp_gguf_writer *w, const char *key, const char *v);
/* An array of n scalars of elem_type, packed little-endian in `data` (copied). */
void dp_gguf_set_arr(struct dp_gguf_writer *w, const char *key, uint32_t elem_type,
                     const void *data, uint64_t n);
/* An array of n NUL-terminated strings (copied). */
void dp_gguf_set_arr_str(struct dp_gguf_writer *w, const char *key, const char *const *strs,
                         uint64_t n);
/* Copy a key/value pair from a parsed file byte for byte (under `key`, or its own when NULL). */
void dp_gguf_copy_kv(struct dp_gguf_writer *w, const struct dp_gguf *src,
                     const struct dp_gguf_kv *kv, const char *key);
void dp_gguf_remove_kv(struct dp_gguf_writer *w, const char *key);
/*
 * Add a tensor (data referenced, not copied; nbytes must match type and
 * shape). Fails on a bad name, shape or size.
 */
dp_status dp_gguf_add_tensor(struct dp_gguf_writer *w, const char *name, uint32_t type,
                             int n_dims, const int64_t *ne, const void *data, size_t nbytes);
/* Write everything to path atomically (temporary file, then rename). */
dp_status dp_gguf_writer_write(struct dp_gguf_writer *w, const char *path);

#endif
