/* Works for argv[1] seconds in before_exec, then execs argv[2] with the
 * rest of the arguments: one process, two images, two names. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long sink;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) void before_exec(double end) {
    while (now() < end)
        for (unsigned long i = 0; i < 5000UL; i++) sink += i;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    before_exec(now() + atof(argv[1]));
    execv(argv[2], argv + 2);
    return 127;
}
