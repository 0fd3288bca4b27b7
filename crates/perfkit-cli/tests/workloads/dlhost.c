/* Sleeps, then loads a library with dlopen and spends argv[2] seconds in
 * it: main -> run_plugin -> lib_hot -> lib_inner. argv[1]: the library. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) void run_plugin(void (*hot)(void), double seconds) {
    double end = now() + seconds;
    while (now() < end) hot();
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    usleep(600000);
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    void (*hot)(void) = (void (*)(void))dlsym(lib, "lib_hot");
    if (!hot) return 1;
    run_plugin(hot, atof(argv[2]));
    return 0;
}
