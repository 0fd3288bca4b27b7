/* Known calls for funccount, funclatency and USDT probes.
 *
 * usage: ufunc N [wait]
 *   work_a() N times, each beside the USDT probe app:plain (no semaphore),
 *   and the probe app:guarded (ufunc_sem.c) where its semaphore is set;
 *   work_b() N/2 times; getppid() 7 times; nap() (a 2 ms sleep) 20 times,
 *   each timed by the program itself ("nap NS" on stderr).
 *   With "wait": prints "ready", reads a byte from stdin, prints the
 *   semaphore of app:guarded ("sem=V"), does the work, reads another
 *   byte and prints the semaphore again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/sdt.h>

int guarded(int i);
unsigned short guarded_semaphore(void);

__attribute__((noinline)) int work_a(int x) { return x * 3 + 1; }
__attribute__((noinline)) int work_b(int x) { return x * 5 + 2; }

__attribute__((noinline)) void nap(void) {
  struct timespec t = {0, 2000000};
  nanosleep(&t, 0);
}

static void wait_byte(void) {
  char c;
  if (read(0, &c, 1) != 1) exit(1);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1000;
  int waits = argc > 2 && strcmp(argv[2], "wait") == 0;
  if (waits) {
    printf("ready\n");
    fflush(stdout);
    wait_byte();
    printf("sem=%u\n", guarded_semaphore());
    fflush(stdout);
  }
  volatile int s = 0;
  for (int i = 0; i < n; i++) {
    s += work_a(i);
    DTRACE_PROBE1(app, plain, i);
    s += guarded(i);
  }
  for (int i = 0; i < n / 2; i++) s += work_b(i);
  for (int i = 0; i < 7; i++) getppid();
  for (int i = 0; i < 20; i++) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    nap();
    clock_gettime(CLOCK_MONOTONIC, &b);
    fprintf(stderr, "nap %lld\n", (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
  }
  if (waits) {
    wait_byte();
    printf("sem=%u\n", guarded_semaphore());
    fflush(stdout);
  }
  return 0;
}
