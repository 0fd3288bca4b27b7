/* A hostile target for perfkit's memory tests (tests/hardening_targets.rs).
 *
 *   targetfiles SECONDS [MODE [ARG [UID]]]
 *
 * Burns a CPU in hot_target() for SECONDS, after doing what MODE says:
 *   plain               nothing more
 *   exec FILE           maps FILE whole, PROT_READ|PROT_EXEC (a sparse
 *                       4000 MiB file costs the target nothing)
 *   jit-lines MB UID    becomes UID, copies a small loop into anonymous
 *                       executable memory, names it in /tmp/perf-PID.map,
 *                       then appends MB MiB of other entries and extends
 *                       the file to 1 GiB (a hole); the loop runs too
 *   jit-noline MB UID   the same, with MB MiB of one line without newline
 *   remap FILE          maps and unmaps FILE's first page, PROT_EXEC, in a
 *                       loop at changing addresses (a stream of mapping
 *                       events for a whole-host profiler) instead of
 *                       burning in hot_target()
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long sink;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) void hot_target(void) {
    for (unsigned long i = 0; i < 20000UL; i++) sink += i;
}

/* mov rcx, rdi; 1: dec rcx; jnz 1b; ret */
static const unsigned char LOOP[] = {0x48, 0x89, 0xf9, 0x48, 0xff, 0xc9, 0x75, 0xfb, 0xc3};

static void (*jit)(unsigned long);

static int write_map(const char *mode, long mb) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/perf-%d.map", getpid());
    unlink(path);
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fprintf(f, "%lx %zx jit_hot_loop\n", (unsigned long)jit, sizeof LOOP);
    long bytes = mb << 20, done = 0;
    if (strcmp(mode, "jit-lines") == 0) {
        for (unsigned long a = 0x100000000000UL; done < bytes; a += 0x40)
            done += fprintf(f, "%lx 40 LazyCompile:~filler_function_%lu /x.js:1\n", a, a);
    } else {
        static char junk[1 << 16];
        memset(junk, 'a', sizeof junk);
        for (; done < bytes; done += sizeof junk) fwrite(junk, 1, sizeof junk, f);
    }
    if (fflush(f) != 0 || ftruncate(fileno(f), 1L << 30) != 0) return 1;
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    const char *mode = argc > 2 ? argv[2] : "plain";
    if (strcmp(mode, "exec") == 0 && argc > 3) {
        int fd = open(argv[3], O_RDONLY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) return 2;
        if (mmap(NULL, st.st_size, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0) == MAP_FAILED) return 2;
    } else if (strncmp(mode, "jit-", 4) == 0 && argc > 4) {
        uid_t uid = (uid_t)atol(argv[4]);
        if (setgid(uid) != 0 || setuid(uid) != 0) return 3;
        void *code = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (code == MAP_FAILED) return 3;
        memcpy(code, LOOP, sizeof LOOP);
        jit = (void (*)(unsigned long))code;
        if (write_map(mode, atol(argv[3])) != 0) return 4;
    }
    double end = now() + secs;
    if (strcmp(mode, "remap") == 0 && argc > 3) {
        int fd = open(argv[3], O_RDONLY);
        if (fd < 0) return 2;
        /* A reserved range, so that each mapping lands at a new address. */
        char *base = mmap(NULL, 1UL << 30, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED) return 2;
        for (unsigned long n = 0; now() < end; n++) {
            char *at = base + (n % 262144) * 4096;
            if (mmap(at, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED) return 2;
            mmap(at, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        }
        return 0;
    }
    while (now() < end) {
        hot_target();
        if (jit) jit(20000);
    }
    return 0;
}
