/* A process whose name (comm) is a terminal escape sequence: ESC [31m red
 * BEL. Its argv may carry more. Burns CPU in `spin` for argv[1] seconds
 * (default 2). */
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

static volatile unsigned long sink;

__attribute__((noinline)) static void spin(double seconds) {
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        for (int i = 0; i < 100000; i++) sink += i;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 < seconds);
}

int main(int argc, char **argv) {
    prctl(PR_SET_NAME, "\x1b[31mred\x07", 0, 0, 0);
    spin(argc > 1 ? atof(argv[1]) : 2.0);
    return 0;
}
