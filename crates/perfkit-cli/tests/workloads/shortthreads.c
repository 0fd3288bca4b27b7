/* About argv[2] threads a second (default 1000), each spinning briefly:
 * threads far shorter than a sampling period. Runs argv[1] seconds. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

static volatile unsigned long sink;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Spins 0.3 ms by the clock, not for a number of iterations, so the CPU
 * time in short threads is about the same on every CPU. */
__attribute__((noinline)) static void *brief_work(void *arg) {
    (void)arg;
    double until = now() + 0.0003;
    while (now() < until)
        for (unsigned long i = 0; i < 1000UL; i++) sink += i;
    return NULL;
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 4.0;
    int rate = argc > 2 ? atoi(argv[2]) : 1000;
    double end = now() + secs, next = now();
    while (now() < end) {
        pthread_t t;
        if (pthread_create(&t, NULL, brief_work, NULL) == 0) pthread_join(t, NULL);
        next += 1.0 / rate;
        while (now() < next) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
    }
    return 0;
}
