/* Runs generated code from an anonymous executable mapping for argv[1]
 * seconds: main -> run_generated -> (code in an mmap'd PROT_EXEC page).
 * The code has no CFI and, like JIT code built without frame pointers,
 * uses rbp as a counter, so no unwinder can walk out of it. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* push %rbp; mov %rdi,%rbp; 1: dec %rbp; jnz 1b; pop %rbp; ret */
static const unsigned char code[] = {0x55, 0x48, 0x89, 0xfd, 0x48, 0xff, 0xcd, 0x75, 0xfb, 0x5d, 0xc3};

__attribute__((noinline)) void run_generated(void (*spin)(unsigned long), double seconds) {
    double end = now() + seconds;
    while (now() < end) spin(1000000);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) return 1;
    memcpy(page, code, sizeof code);
    if (mprotect(page, 4096, PROT_READ | PROT_EXEC) != 0) return 1;
    run_generated((void (*)(unsigned long))page, atof(argv[1]));
    return 0;
}
