/*
 * peak: this machine's peaks as the kernels can reach them (dp_peak_measure):
 * f32 FMA FLOP/s with the vectors of the kernel set in use, int8 multiply-add
 * ops/s with the q8 kernels' instructions (AVX2 vpmaddubsw+vpmaddwd+vpaddd or
 * AVX-512 VNNI vpdpbusd), and memory read GB/s; 1 thread and T threads.
 *   make build/bench/peak && build/bench/peak [T] [seconds]
 * DP_KERNELS=scalar|avx2|avx512 picks the set, as everywhere.
 */
#include "depthprune.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int T = argc > 1 ? atoi(argv[1]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    double sec = argc > 2 ? atof(argv[2]) : 1.0;
    if (T < 1 || T > 256 || !(sec > 0 && sec <= 60)) {
        fprintf(stderr, "usage: peak [threads 1..256] [seconds (0, 60]]\n");
        return 2;
    }
    printf("kernels %s\n", dp_kernels_name());
    static const char *const what[3] = {"FMA GFLOP/s", "int8 GOP/s", "read GB/s"};
    for (int k = 0; k < 3; k++) {
        double one = dp_peak_measure((enum dp_peak_kind)k, 1, sec), all = T > 1 ? dp_peak_measure((enum dp_peak_kind)k, T, sec) : one;
        printf("%-12s %-40s 1 thread %8.1f   %d threads %8.1f\n", what[k], dp_peak_name((enum dp_peak_kind)k), one, T, all);
    }
    return 0;
}
