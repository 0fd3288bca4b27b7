/* execsnoop's known answers: N children that fork and exec /bin/true with
 * literal arguments (strings in pages the child has not touched when the
 * exec starts), then one exec of /bin/true and one of a missing program,
 * each with a 299-byte argument.
 * Usage: forkexec N */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void run(char *const argv[], const char *path) {
    pid_t pid = fork();
    if (pid == 0) {
        execv(path, argv);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 40;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            execl("/bin/true", "true", "literal-one", "literal-two", (char *)0);
            _exit(127);
        }
        int status;
        waitpid(pid, &status, 0);
    }
    char long_arg[300];
    memset(long_arg, 'L', 299);
    long_arg[299] = 0;
    char *ok[] = {"true", "long-ok", long_arg, 0};
    run(ok, "/bin/true");
    char *missing[] = {"perfkit-missing", "long-missing", long_arg, 0};
    run(missing, "/nonexistent/perfkit-missing");
    return 0;
}
