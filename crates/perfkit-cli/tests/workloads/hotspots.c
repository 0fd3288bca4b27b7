/* A workload with a known profile, for perfkit's tests.
 *
 *   main -> parent_a -> hot_a   3 units of CPU per round
 *   main -> parent_b -> hot_b   1 unit per round
 *
 * so samples in hot_a and hot_b are 3:1. A round is short (well under a
 * millisecond) next to the sampling period, so samples cannot lock onto
 * the rhythm of the rounds and skew the shares. Runs for argv[1] seconds (default
 * 3). Built with frame pointers, no inlining and no sibling-call
 * optimisation, so the call paths are exactly what the source says (the
 * tests also build it without frame pointers). With a second argument
 * `report` it prints the rounds completed to stderr, for benchmarks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile unsigned long sink;

__attribute__((noinline)) void hot_a(void) {
    for (unsigned long i = 0; i < 3 * 20000UL; i++) sink += i;
}

__attribute__((noinline)) void hot_b(void) {
    for (unsigned long i = 0; i < 1 * 20000UL; i++) sink += i;
}

__attribute__((noinline)) void parent_a(void) { hot_a(); sink++; }
__attribute__((noinline)) void parent_b(void) { hot_b(); sink++; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 3.0;
    double end = now() + seconds;
    unsigned long rounds = 0;
    while (now() < end) {
        parent_a();
        parent_b();
        rounds++;
    }
    if (argc > 2 && strcmp(argv[2], "report") == 0) fprintf(stderr, "rounds %lu\n", rounds);
    return 0;
}
