/* A workload whose hot loop is inlined into its caller, for perfkit's tests:
 * built with -O2 -g, samples land in `outer` with `inner_spin` inlined, so
 * the profile must show outer;inner_spin_[i]. Runs for argv[1] seconds.
 */
#include <stdlib.h>
#include <time.h>

static volatile unsigned long sink;

static inline __attribute__((always_inline)) void inner_spin(void) {
    for (unsigned long i = 0; i < 4000000UL; i++) sink += i;
}

__attribute__((noinline)) void outer(void) { inner_spin(); }

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        outer();
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
    return 0;
}
