/* Makes exactly argv[1] getppid system calls (default 100000), after
 * reading one byte from stdin when argv[2] is "wait" (so that tracers
 * can attach first). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000;
    if (argc > 2 && strcmp(argv[2], "wait") == 0) {
        char c;
        if (read(0, &c, 1) < 0) return 1;
    }
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
    return 0;
}
