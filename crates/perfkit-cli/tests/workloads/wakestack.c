/* wakeuptime and stackcount known answers.
 *
 * wakestack wake N NAP_MS [wait]: a thread named wk-reader blocks reading
 *   a pipe; a thread named wk-waker naps NAP_MS, then wakes it by writing
 *   one byte in wake_reader(), N times. The reader is blocked about
 *   N x NAP_MS in all, every block ended by wake_reader (which makes the
 *   system call itself, x86-64 only). With "wait", it
 *   prints "ready" and starts when a byte arrives on stdin. It sleeps a
 *   second at the end, so that its mappings can still be read.
 * wakestack count N [wait]: hot() is called 3N times from parent_a and N
 *   times from parent_b; each call makes one getppid() system call.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fds[2];
static int n_wakes;
static long nap_ms;

/* The write system call is made here, not in libc's write(): libc's
 * wrapper makes no frame, so a frame-pointer walk from inside it (bcc's,
 * and wakeuptime's) goes straight to its caller's caller. */
__attribute__((noinline)) void wake_reader(void) {
    char c = 'x';
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "0"((long)SYS_write), "D"((long)fds[1]), "S"(&c), "d"(1L)
                     : "rcx", "r11", "memory");
    if (ret != 1)
        exit(3);
}

static void *waker(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "wk-waker");
    struct timespec ts = {nap_ms / 1000, (nap_ms % 1000) * 1000000L};
    for (int i = 0; i < n_wakes; i++) {
        nanosleep(&ts, NULL);
        wake_reader();
    }
    return NULL;
}

static void *reader(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "wk-reader");
    char c;
    for (int i = 0; i < n_wakes; i++)
        if (read(fds[0], &c, 1) != 1)
            exit(4);
    return NULL;
}

static volatile long sink;

__attribute__((noinline)) void hot(void) { sink += getppid(); }

__attribute__((noinline)) void parent_a(void) { hot(); }

__attribute__((noinline)) void parent_b(void) { hot(); }

static void wait_go(int argc, char **argv, int at) {
    if (argc > at && strcmp(argv[at], "wait") == 0) {
        char c;
        printf("ready\n");
        fflush(stdout);
        if (read(0, &c, 1) != 1)
            exit(5);
    }
}

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "wake") == 0) {
        n_wakes = atoi(argv[2]);
        nap_ms = atol(argv[3]);
        if (pipe(fds) != 0)
            return 2;
        wait_go(argc, argv, 4);
        pthread_t r, w;
        pthread_create(&r, NULL, reader, NULL);
        pthread_create(&w, NULL, waker, NULL);
        pthread_join(w, NULL);
        pthread_join(r, NULL);
        sleep(1);
        printf("done\n");
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "count") == 0) {
        int n = atoi(argv[2]);
        wait_go(argc, argv, 3);
        for (int i = 0; i < n; i++) {
            parent_a();
            parent_a();
            parent_a();
            parent_b();
        }
        sleep(1);
        printf("done\n");
        return 0;
    }
    fprintf(stderr, "usage: wakestack wake N NAP_MS [wait] | wakestack count N [wait]\n");
    return 1;
}
