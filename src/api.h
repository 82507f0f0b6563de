/*
 * api (internal side): what the public steps of part 2 of the header
 * (src/api_recover.c, api_sweep.c, api_export.c, api_spec.c) share: reading
 * a dp_corpus_spec into token chunks, turning public recovery params into
 * the fitter's options, and adapting the public log callback to the
 * internal (ctx, line) one.
 */
#ifndef DP_API_H
#define DP_API_H

#include "data.h"
#include "model.h"
#include "recover.h"

/*
 * Chunks of c by the paper protocol: ctx def_ctx and at most def_max
 * sequences where c leaves them 0. Errors name c->path (or `what` for a bad
 * document range).
 */
dp_status dp_api_chunks(const struct dp_model *m, const struct dp_corpus_spec *c, int def_ctx, int def_max,
                        const char *what, struct dp_chunks **out);

/* A public log callback as the internal (ctx, line) one: pass &dp_api_log_ctx as ctx. */
struct dp_api_log {
    dp_log_fn fn;
    void *user;
};
void dp_api_log_line(void *ctx, const char *line);

/* The fitter's options from public params (log: where o->log_ctx points, kept alive by the caller). */
dp_status dp_api_recover_opts(const struct dp_recovery_params *p, struct dp_api_log *log, struct dp_recover_opts *o);

/* The units of a comma list in order (at most cap; DP_ERR_ARG naming a bad unit or too many). */
dp_status dp_api_units(const char *list, char (*units)[16], int cap, int *n);

#endif
