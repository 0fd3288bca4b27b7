/* Runs argv[1..] as a child and writes its peak RSS (KiB) and CPU seconds
 * to the file $PEAKRSS_OUT, then exits with its status. The child is
 * forked from this small process: a child forked from the (large) test
 * process would report that process's size as its own ru_maxrss, which
 * exec carries over. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    pid_t pid = fork();
    if (pid == 0) {
        execvp(argv[1], argv + 1);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (pid < 0 || wait4(pid, &status, 0, &ru) != pid) return 125;
    FILE *out = fopen(getenv("PEAKRSS_OUT"), "w");
    if (!out) return 126;
    fprintf(out, "%ld %f\n", ru.ru_maxrss,
            ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    fclose(out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
