/* The USDT probe app:guarded, with a semaphore: it fires only while a
 * tracer has incremented app_guarded_semaphore (part of ufunc.c). */
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

__extension__ unsigned short app_guarded_semaphore __attribute__((unused)) __attribute__((section(".probes")));

unsigned short guarded_semaphore(void) { return *(volatile unsigned short *)&app_guarded_semaphore; }

__attribute__((noinline)) int guarded(int i) {
  if (guarded_semaphore()) {
    DTRACE_PROBE1(app, guarded, i);
    return 1;
  }
  return 0;
}
