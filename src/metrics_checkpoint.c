/*
 * metrics_checkpoint: the checkpoint of a scoring run, an exact byte image
 * of its accumulators and coalition cache written at sequence boundaries
 * (atomically, every checkpoint_every seconds and when a family ends), so a
 * rerun with the same key resumes where it stopped and computes the same
 * bits as an uninterrupted run.
 *
 * Layout (native byte order; the file is for the same machine):
 *   "DPSCORE2", key length (u64), key, stage and next sequence (2 x i32),
 *   accumulator count (u64), accumulators (doubles), per family the costs
 *   (3 x i64: unit_evals, naive_unit_evals, passes) and seconds, CPU
 *   seconds (2 doubles), cache entries (u64), their keys, CE means, distance
 *   means and done flags, "DPSCORE2".
 */
#include "metrics_run.h"

#include "dist.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int64_t total_passes(const struct run *r) {
    int64_t p = 0;
    for (int f = 0; f < N_FAM; f++) p += r->fam[f].passes;
    return p;
}

static const char ckpt_magic[8] = {'D', 'P', 'S', 'C', 'O', 'R', 'E', '2'};

static void put(FILE *f, const void *p, size_t n) {
    if (n) fwrite(p, 1, n, f);
}

dp_status dp_metrics_checkpoint_write(struct run *r) {
    if (!r->o->checkpoint) return DP_OK;
    struct dp_out out;
    dp_status st = dp_out_open(r->o->checkpoint, &out);
    if (st) return st;
    FILE *f = out.f;
    uint64_t klen = strlen(r->key), nacc = r->n_acc, ne = (uint64_t)r->cache.n;
    int32_t hdr[2] = {r->stage, r->next_seq};
    put(f, ckpt_magic, 8);
    put(f, &klen, 8);
    put(f, r->key, klen);
    put(f, hdr, sizeof hdr);
    put(f, &nacc, 8);
    put(f, r->acc, nacc * sizeof *r->acc);
    for (int i = 0; i < N_FAM; i++) {
        int64_t c[3] = {r->fam[i].unit_evals, r->fam[i].naive_unit_evals, r->fam[i].passes};
        put(f, c, sizeof c);
        put(f, &r->fam[i].seconds, sizeof(double));
        put(f, &r->fam[i].cpu_seconds, sizeof(double));
    }
    put(f, &ne, 8);
    put(f, r->cache.keys, ne * r->cache.nw * 8);
    put(f, r->cache.ce, ne * sizeof(double));
    put(f, r->cache.dist, ne * sizeof(double));
    put(f, r->cache.done, ne);
    put(f, ckpt_magic, 8);
    r->t_ckpt = dp_now();
    return dp_out_commit(&out);
}

struct cursor {
    const char *p, *end;
};

static bool take(struct cursor *c, void *dst, size_t n) {
    if ((size_t)(c->end - c->p) < n) return false;
    if (n) memcpy(dst, c->p, n);
    c->p += n;
    return true;
}

static bool skip(struct cursor *c, size_t n) {
    if ((size_t)(c->end - c->p) < n) return false;
    c->p += n;
    return true;
}

dp_status dp_metrics_checkpoint_read(struct run *r) {
    const char *path = r->o->checkpoint;
    if (!path) return DP_OK;
    /* rank 0's file, on every rank (dist.h); none yet: a fresh run (dp_read_file refuses a FIFO or a device) */
    char *buf;
    size_t len;
    bool exists;
    dp_status st = dp_dist_read_file(path, &buf, &len, &exists);
    if (st || !exists) return st;
    struct cursor c = {buf, buf + len};
    char magic[8];
    uint64_t klen = 0, nacc = 0, ne = 0;
    int32_t hdr[2] = {0, 0};
    bool ok = take(&c, magic, 8) && !memcmp(magic, ckpt_magic, 8) && take(&c, &klen, 8);
    if (ok && (klen != strlen(r->key) || (size_t)(c.end - c.p) < klen || memcmp(c.p, r->key, klen))) {
        free(buf); /* another run's checkpoint */
        return DP_OK;
    }
    ok = ok && skip(&c, klen) && take(&c, hdr, sizeof hdr) && take(&c, &nacc, 8) && nacc == r->n_acc &&
         take(&c, r->acc, nacc * sizeof *r->acc);
    for (int i = 0; ok && i < N_FAM; i++) {
        int64_t v[3];
        ok = take(&c, v, sizeof v) && take(&c, &r->fam[i].seconds, sizeof(double)) &&
             take(&c, &r->fam[i].cpu_seconds, sizeof(double));
        r->fam[i].unit_evals = v[0];
        r->fam[i].naive_unit_evals = v[1];
        r->fam[i].passes = v[2];
    }
    ok = ok && take(&c, &ne, 8) && ne < (1ull << 40) && ne * (r->cache.nw * 8 + 17) <= (uint64_t)(c.end - c.p);
    uint64_t *keys = NULL;
    if (ok) keys = dp_malloc((size_t)(ne ? ne : 1) * r->cache.nw * 8);
    ok = ok && keys && take(&c, keys, ne * r->cache.nw * 8);
    const char *ce = c.p, *dist = c.p + ne * 8, *done = c.p + ne * 16;
    ok = ok && skip(&c, ne * 17) && take(&c, magic, 8) && !memcmp(magic, ckpt_magic, 8) && c.p == c.end;
    ok = ok && hdr[0] >= 0 && hdr[0] <= FAM_DONE && hdr[1] >= 0 && hdr[1] <= r->ch->n_seqs;
    for (uint64_t e = 0; ok && e < ne; e++) {
        int64_t idx;
        st = dp_coalition_cache_add(&r->cache, keys + e * r->cache.nw, &idx);
        if (st) break;
        memcpy(&r->cache.ce[idx], ce + e * 8, 8);
        memcpy(&r->cache.dist[idx], dist + e * 8, 8);
        r->cache.done[idx] = done[e] != 0;
    }
    free(keys);
    free(buf);
    if (st) return st;
    if (!ok) return dp_fail(DP_ERR_FORMAT, "%s: damaged checkpoint; remove it to start afresh", path);
    r->stage = hdr[0];
    r->next_seq = hdr[1];
    r->res->resumed = true;
    return DP_OK;
}

dp_status dp_metrics_checkpoint_round(struct run *r) {
    int64_t passes = total_passes(r);
    bool stop = r->o->stop_after_passes > 0 && passes >= r->o->stop_after_passes;
    if (r->o->checkpoint && (stop || dp_now() - r->t_ckpt >= r->o->checkpoint_every)) {
        dp_status st = dp_metrics_checkpoint_write(r);
        if (st) return st;
    }
    if (stop) return dp_fail(DP_ERR_IO, "stopped after %lld passes (test interruption)", (long long)passes);
    return DP_OK;
}
