/* Many distinct stacks: recursion of random depth (1 to 200) through 50
 * functions chosen at random at each level, ending in a short spin. */
#include <stdlib.h>
#include <time.h>

static volatile unsigned long sink;
static unsigned long rng = 88172645463325252UL;

static unsigned long next(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}

typedef void (*fn)(int);
static fn table[50];

static void step(int depth) {
    if (depth <= 0) {
        for (unsigned long i = 0; i < 2000UL; i++) sink += i;
        return;
    }
    table[next() % 50](depth - 1);
}

#define F(n) __attribute__((noinline)) static void f##n(int d) { step(d); sink++; }
F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9)
F(10) F(11) F(12) F(13) F(14) F(15) F(16) F(17) F(18) F(19)
F(20) F(21) F(22) F(23) F(24) F(25) F(26) F(27) F(28) F(29)
F(30) F(31) F(32) F(33) F(34) F(35) F(36) F(37) F(38) F(39)
F(40) F(41) F(42) F(43) F(44) F(45) F(46) F(47) F(48) F(49)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    fn all[50] = {f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18, f19,
                  f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30, f31, f32, f33, f34, f35, f36, f37, f38, f39,
                  f40, f41, f42, f43, f44, f45, f46, f47, f48, f49};
    for (int i = 0; i < 50; i++) table[i] = all[i];
    double end = now() + (argc > 1 ? atof(argv[1]) : 3.0);
    while (now() < end) step(1 + (int)(next() % 200));
    return 0;
}
