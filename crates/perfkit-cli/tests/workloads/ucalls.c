/* The uprobe benchmark's loop: call_me() N times, nothing else.
 *
 * usage: ucalls N */
#include <stdlib.h>

__attribute__((noinline)) int call_me(int x) {
  __asm__ volatile("" ::: "memory");
  return x + 1;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 10000000;
  volatile int sink = 0;
  for (long i = 0; i < n; i++) sink = call_me(sink);
  return sink == -1;
}
