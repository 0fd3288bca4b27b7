/* A known sleeper: sleeps 1 ms argv[1] times (default 100), each sleep a
 * voluntary context switch, and does little else. */
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100;
    struct timespec one_ms = {0, 1000 * 1000};
    for (long i = 0; i < n; i++) nanosleep(&one_ms, NULL);
    return 0;
}
