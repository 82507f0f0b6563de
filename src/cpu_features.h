/*
 * cpu_features: CPU feature bits read straight from CPUID where
 * __builtin_cpu_supports does not know the name on every compiler (clang 14
 * rejects "f16c"). Used by the SIMD kernel files to decide at start-up;
 * off x86-64 every feature reads as absent.
 */
#ifndef DP_CPU_FEATURES_H
#define DP_CPU_FEATURES_H

#include <stdbool.h>

#if defined(__x86_64__)
#include <cpuid.h>

/* Whether the CPU converts half floats (F16C: CPUID leaf 1, ECX bit 29). */
static inline bool dp_cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#else
/* No CPUID off x86-64, and no x86 extension either. */
static inline bool dp_cpu_has_f16c(void) { return false; }
#endif

#endif
