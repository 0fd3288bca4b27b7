/* Recursion argv[2] deep (default 200), then argv[1] seconds of work at the
 * bottom: stacks deeper than a walker's limit. */
#include <stdlib.h>
#include <time.h>

static volatile unsigned long sink;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) void bottom(double end) {
    while (now() < end)
        for (unsigned long i = 0; i < 5000UL; i++) sink += i;
}

__attribute__((noinline)) void descend(int depth, double end) {
    if (depth > 0)
        descend(depth - 1, end);
    else
        bottom(end);
    sink++;
}

int main(int argc, char **argv) {
    double end = now() + (argc > 1 ? atof(argv[1]) : 3.0);
    descend(argc > 2 ? atoi(argv[2]) : 200, end);
    return 0;
}
