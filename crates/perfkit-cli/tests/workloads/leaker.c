/* memleak's known answers. Pinned to CPU 0 (memleak's -s samples every
 * N-th allocation of each CPU). Input and output through read(2) and
 * write(2): stdio would allocate its buffers while memleak watches.
 *
 *   leaker wait    prints "ready", waits for a line, then allocates:
 *                  keep_blocks:  40 x malloc(1000)                kept
 *                  keep_small:   30 x malloc(16)                  kept
 *                  keep_calloc:  10 x calloc(16, 100)             kept
 *                  keep_realloc:  8 x malloc(50) then realloc(p, 3000): the
 *                                 3000-byte blocks kept
 *                  keep_aligned:  5 x posix_memalign(64, 512) and
 *                                 4 x aligned_alloc(64, 256)  kept
 *                  churn:       500 x malloc(1000) + free     nothing kept
 *                  prints "done", waits for end of input, exits
 *   leaker run     the same without waiting, then sleeps 3 s and exits
 *   leaker pipes N prints "ready", waits for a line, creates N pipes and
 *                  holds them, prints "done", waits for end of input, exits
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Volatile: the compiler may not drop allocations it sees are never read. */
void *volatile kept[200];
static int nkept;

static void say(const char *s) {
    if (write(1, s, strlen(s)) < 0)
        _exit(1);
}

static void wait_line(void) {
    char c;
    while (read(0, &c, 1) == 1 && c != '\n')
        ;
}

static void wait_eof(void) {
    char buf[64];
    while (read(0, buf, sizeof buf) > 0)
        ;
}

__attribute__((noinline)) static void keep_blocks(void) {
    for (int i = 0; i < 40; i++)
        kept[nkept++] = malloc(1000);
}

__attribute__((noinline)) static void keep_small(void) {
    for (int i = 0; i < 30; i++)
        kept[nkept++] = malloc(16);
}

__attribute__((noinline)) static void keep_calloc(void) {
    for (int i = 0; i < 10; i++)
        kept[nkept++] = calloc(16, 100);
}

__attribute__((noinline)) static void keep_realloc(void) {
    for (int i = 0; i < 8; i++) {
        void *p = malloc(50);
        kept[nkept++] = realloc(p, 3000);
    }
}

__attribute__((noinline)) static void keep_aligned(void) {
    for (int i = 0; i < 5; i++) {
        void *p = NULL;
        if (posix_memalign(&p, 64, 512) == 0)
            kept[nkept++] = p;
    }
    for (int i = 0; i < 4; i++)
        kept[nkept++] = aligned_alloc(64, 256);
}

__attribute__((noinline)) static void churn(void) {
    for (int i = 0; i < 500; i++) {
        volatile char *p = malloc(1000);
        p[0] = 1;
        free((void *)p);
    }
}

static void allocate(void) {
    keep_blocks();
    churn();
    keep_small();
    keep_calloc();
    keep_realloc();
    keep_aligned();
    churn();
}

int main(int argc, char **argv) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    sched_setaffinity(0, sizeof set, &set);
    const char *mode = argc > 1 ? argv[1] : "wait";
    if (strcmp(mode, "run") == 0) {
        allocate();
        sleep(3);
        return 0;
    }
    if (strcmp(mode, "pipes") == 0) {
        int n = argc > 2 ? atoi(argv[2]) : 100;
        say("ready\n");
        wait_line();
        for (int i = 0; i < n; i++) {
            int fds[2];
            if (pipe(fds) != 0)
                return 1;
        }
        say("done\n");
        wait_eof();
        return 0;
    }
    say("ready\n");
    wait_line();
    allocate();
    say("done\n");
    wait_eof();
    return nkept == 97 ? 0 : 2;
}
