/* Known arguments for trace and argdist.
 *
 * usage: tracee [PATH] [wait]
 *   f(a, s) 13 times: a = 1 once ("one"), 2 twice ("two"), 3 three times
 *   ("three"), 6 six times ("six"), then a = 100 with a 299-byte string of
 *   'x'; each call beside the USDT probe tracee:hit(a, s). g(6) 3 times
 *   (it returns 42). h(v) for v = 1, 3, 5, 6, 7, 1000 (log2 buckets 0, 1,
 *   2, 2, 2, 9). nap() (a 2 ms sleep) 5 times. Then opens PATH once
 *   (O_RDONLY, ENOENT is fine).
 *   With "wait": prints "ready" and reads a byte from stdin first.
 *   The strings are read once before the calls, so that their page is
 *   mapped when a probe reads them. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/sdt.h>

__attribute__((noipa)) int f(int a, const char *s) {
  DTRACE_PROBE2(tracee, hit, a, s);
  return a + (int)strlen(s);
}
__attribute__((noipa)) int g(int x) { return x * 7; }
__attribute__((noipa)) unsigned long h(unsigned long v) { return v + 1; }
__attribute__((noipa)) void nap(void) {
  struct timespec t = {0, 2000000};
  nanosleep(&t, 0);
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : 0;
  if (argc > 2 && strcmp(argv[2], "wait") == 0) {
    char c;
    printf("ready\n");
    fflush(stdout);
    if (read(0, &c, 1) != 1) return 1;
  }
  static const struct { int a; const char *s; } calls[] = {{1, "one"}, {2, "two"}, {3, "three"}, {6, "six"}};
  volatile int sink = 0;
  /* Touch the strings first: a probe cannot fault a page in, and would
   * read a string on a page not yet mapped as [unreadable]. */
  for (int k = 0; k < 4; k++) sink += (int)strlen(calls[k].s);
  for (int k = 0; k < 4; k++)
    for (int i = 0; i < calls[k].a; i++) sink += f(calls[k].a, calls[k].s);
  char long_s[300];
  memset(long_s, 'x', 299);
  long_s[299] = 0;
  sink += f(100, long_s);
  for (int i = 0; i < 3; i++) sink += g(6);
  static const unsigned long vs[] = {1, 3, 5, 6, 7, 1000};
  for (int i = 0; i < 6; i++) sink += (int)h(vs[i]);
  for (int i = 0; i < 5; i++) nap();
  if (path) {
    int fd = open(path, O_RDONLY);
    if (fd >= 0) close(fd);
  }
  return 0;
}
