/* Loads a fresh copy of a library again and again for argv[2] seconds:
 * copies argv[1] to a new path in argv[3] (a new inode each time), dlopens
 * it, spends argv[4] milliseconds (20 by default) in
 * main -> run_copy -> lib_hot -> lib_inner, dlcloses and deletes it. */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int copy(const char *from, const char *to) {
    char buf[65536];
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    if (in < 0 || out < 0) return -1;
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n) return -1;
    close(in);
    return close(out);
}

__attribute__((noinline)) void run_copy(void (*hot)(void), double seconds) {
    double end = now() + seconds;
    while (now() < end) hot();
}

int main(int argc, char **argv) {
    if (argc < 4) return 2;
    double end = now() + atof(argv[2]);
    double each = (argc > 4 ? atof(argv[4]) : 20) / 1000;
    for (unsigned n = 0; now() < end; n++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/libcopy-%u.so", argv[3], n);
        if (copy(argv[1], path) != 0) { perror(path); return 1; }
        void *lib = dlopen(path, RTLD_NOW);
        if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 1; }
        void (*hot)(void) = (void (*)(void))dlsym(lib, "lib_hot");
        if (!hot) return 1;
        run_copy(hot, each);
        dlclose(lib);
        unlink(path);
    }
    return 0;
}
