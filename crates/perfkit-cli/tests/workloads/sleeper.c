/* Off-CPU workload: thread "napper" sleeps 10 ms at a time in take_nap
 * (nanosleep) for argv[1] seconds; thread "spinner" burns a CPU in
 * spin_forever for as long, never blocking. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

static volatile unsigned long sink;
static double seconds;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) void take_nap(void) {
    struct timespec ten_ms = {0, 10 * 1000 * 1000};
    nanosleep(&ten_ms, NULL);
}

__attribute__((noinline)) void nap_loop(double end) {
    while (now() < end) take_nap();
}

__attribute__((noinline)) void spin_forever(double end) {
    while (now() < end)
        for (unsigned long i = 0; i < 5000UL; i++) sink += i;
}

static void *napper(void *arg) {
    nap_loop(*(double *)arg);
    return NULL;
}

static void *spinner(void *arg) {
    spin_forever(*(double *)arg);
    return NULL;
}

int main(int argc, char **argv) {
    seconds = argc > 1 ? atof(argv[1]) : 3.0;
    double end = now() + seconds;
    pthread_t a, b;
    pthread_create(&a, NULL, napper, &end);
    pthread_create(&b, NULL, spinner, &end);
    pthread_setname_np(a, "napper");
    pthread_setname_np(b, "spinner");
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    return 0;
}
