/* Burns a CPU for argv[1] seconds, then writes its pcount (times it was
 * scheduled in, the third field of /proc/self/schedstat) to the file
 * argv[2] when given. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile unsigned long sink;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    double end = now() + (argc > 1 ? atof(argv[1]) : 3.0);
    while (now() < end)
        for (unsigned long i = 0; i < 5000UL; i++) sink += i;
    if (argc > 2) {
        unsigned long long run, wait, pcount;
        FILE *f = fopen("/proc/self/schedstat", "r");
        if (!f || fscanf(f, "%llu %llu %llu", &run, &wait, &pcount) != 3) return 1;
        fclose(f);
        FILE *o = fopen(argv[2], "w");
        if (!o) return 1;
        fprintf(o, "%llu\n", pcount);
        fclose(o);
    }
    return 0;
}
