/* A multithreaded workload for perfkit's tests: thread "early" spins from
 * the start; thread "late" is created 0.5 s later and spins too; main
 * waits. Runs for argv[1] seconds. Built with frame pointers.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long sink;
static double seconds;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) void spin_early(double end) {
    while (now() < end)
        for (int i = 0; i < 100000; i++) sink += i;
}

__attribute__((noinline)) void spin_late(double end) {
    while (now() < end)
        for (int i = 0; i < 100000; i++) sink += i;
}

static double end_time;

static void *early(void *arg) {
    (void)arg;
    spin_early(end_time);
    return NULL;
}

static void *late(void *arg) {
    (void)arg;
    spin_late(end_time);
    return NULL;
}

int main(int argc, char **argv) {
    seconds = argc > 1 ? atof(argv[1]) : 3.0;
    end_time = now() + seconds;
    pthread_t a, b;
    pthread_create(&a, NULL, early, NULL);
    pthread_setname_np(a, "early");
    usleep(500000);
    pthread_create(&b, NULL, late, NULL);
    pthread_setname_np(b, "late");
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    return 0;
}
