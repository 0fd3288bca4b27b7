/* Work done through a shared library built without frame pointers:
 * main -> sort_phase -> qsort (libc) -> ... -> compare_keys. Only unwind
 * tables (CFI) walk through libc's frames. Runs for argv[1] seconds. */
#include <stdlib.h>
#include <time.h>

static volatile unsigned long sink;

__attribute__((noinline)) static int compare_keys(const void *a, const void *b) {
    unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
    for (int i = 0; i < 40; i++) sink += i;
    return (x > y) - (x < y);
}

__attribute__((noinline)) void sort_phase(unsigned long *v, size_t n, unsigned long seed) {
    for (size_t i = 0; i < n; i++) {
        seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
        v[i] = seed;
    }
    qsort(v, n, sizeof v[0], compare_keys);
    sink += v[0]; /* not a tail call: sort_phase stays on the stack */
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    double end = now() + (argc > 1 ? atof(argv[1]) : 3.0);
    static unsigned long v[4096];
    unsigned long seed = 88172645463325252UL;
    while (now() < end) sort_phase(v, 4096, seed++);
    return 0;
}
