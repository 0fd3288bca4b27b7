// Loads a library (argv[1], a fake libjvm.so) and burns CPU for argv[2]
// seconds, so that a profiler samples a process that maps it.
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

volatile unsigned long sink;

int main(int argc, char **argv) {
    if (argc < 3 || !dlopen(argv[1], RTLD_NOW)) {
        fprintf(stderr, "usage: fakejvmhost LIBJVM SECONDS (%s)\n", dlerror());
        return 2;
    }
    time_t end = time(0) + atoi(argv[2]);
    while (time(0) < end)
        for (int i = 0; i < 1000000; i++) sink += i;
    return 0;
}
