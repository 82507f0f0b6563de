/*
 * profile: where the time of a run goes, per op (bench --workload).
 *
 * Off by default: every instrumented op then costs one relaxed atomic load.
 * When dp_profile_start has turned it on, the outermost op of a thread adds
 * its wall time, FLOPs and bytes to global atomic counters; an op inside
 * another (the head's matmul, a norm inside attention) is charged to the
 * outer one only. Ops run by several threads at once (scoring one sequence
 * per thread) add up their thread-seconds, which can exceed the wall time.
 * Nothing here changes what is computed.
 */
#ifndef DP_PROFILE_H
#define DP_PROFILE_H

#include "base.h"

#include <stdatomic.h>

extern atomic_int dp_profile_on;

/* Start an op (returns a token for dp_profile_end; 0 when not profiling or nested). */
double dp_profile_begin(void);
/* End it: op (enum dp_profile_op of depthprune.h), its FLOPs and bytes of weights read. */
void dp_profile_end(double t0, int op, double flops, double bytes);
/* Count tokens run through the forward pass: n tokens, sublayers run (for model-equivalent tokens). */
void dp_profile_tokens(int64_t n, int64_t token_sublayers);

#endif
