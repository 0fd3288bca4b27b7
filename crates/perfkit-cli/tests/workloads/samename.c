/* Two threads with the same name ("worker"), each spinning argv[1]
 * seconds in its own function. */
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

__attribute__((noinline)) static void spin(double end) {
    while (now() < end)
        for (unsigned long i = 0; i < 5000UL; i++) sink += i;
}

static void *worker(void *arg) {
    (void)arg;
    spin(now() + seconds);
    return NULL;
}

int main(int argc, char **argv) {
    seconds = argc > 1 ? atof(argv[1]) : 2.0;
    pthread_t a, b;
    pthread_create(&a, NULL, worker, NULL);
    pthread_create(&b, NULL, worker, NULL);
    pthread_setname_np(a, "worker");
    pthread_setname_np(b, "worker");
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    return 0;
}
