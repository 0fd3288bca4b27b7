/* A workload with a known profile, for perfkit's tests.
 *
 *   main -> parent_a -> hot_a   3/4 of the CPU
 *   main -> parent_b -> hot_b   1/4 of the CPU
 *
 * Work comes in equal units (a few microseconds each), and each unit goes
 * to parent_a with probability 3/4 and to parent_b with 1/4, drawn from a
 * xorshift generator: the split has no period a sampling clock could lock
 * onto (a fixed a-a-a-b rhythm aliases with timer-driven sampling on some
 * machines and skews the shares), yet over thousands of samples it is 3:1.
 * Runs for argv[1] seconds (default 3). Built with frame pointers, no
 * inlining and no sibling-call optimisation, so the call paths are exactly
 * what the source says (the tests also build it without frame pointers).
 * hot_a and hot_b are the same code at the same 64-byte alignment: a loop
 * that crossed a cache line in one of them and not in the other ran at a
 * different speed on some CPUs (86:14 instead of 3:1 on an AMD EPYC).
 * With a second argument `report` it prints the units done to stderr, for
 * benchmarks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile unsigned long sink;

__attribute__((noinline, aligned(64))) void hot_a(void) {
    for (unsigned long i = 0; i < 5000UL; i++) sink += i;
}

__attribute__((noinline, aligned(64))) void hot_b(void) {
    for (unsigned long i = 0; i < 5000UL; i++) sink += i;
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
    unsigned long units = 0, x = 88172645463325252UL;
    while (now() < end) {
        for (int k = 0; k < 16; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if ((x & 3) != 0)
                parent_a();
            else
                parent_b();
            units++;
        }
    }
    if (argc > 2 && strcmp(argv[2], "report") == 0) fprintf(stderr, "rounds %lu\n", units);
    return 0;
}
