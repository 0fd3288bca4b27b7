// Touches memory 1 MiB at a time, up to argv[1] MiB (default 1024), and
// then exits 0: in a group limited below that, the OOM killer ends it.
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 1024;
    for (long i = 0; i < mib; i++) {
        char *p = malloc(1 << 20);
        if (!p)
            return 1;
        memset(p, 1, 1 << 20);
    }
    return 0;
}
