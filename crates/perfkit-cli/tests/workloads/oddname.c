/* A process whose name is not valid UTF-8 and holds a terminal escape
 * sequence (ESC [ 7 m, reverse video): it renames itself, then burns a CPU
 * in burn_oddly for argv[1] seconds. Tools must show it, escaped. */
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

static volatile unsigned long sink;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) void burn_oddly(double end) {
    while (now() < end)
        for (unsigned long i = 0; i < 5000UL; i++) sink += i;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 3.0;
    prctl(PR_SET_NAME, "hog\xff\x1b[7m", 0, 0, 0);
    burn_oddly(now() + seconds);
    return 0;
}
