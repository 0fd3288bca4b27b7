/* A library loaded with dlopen after profiling starts; built without frame
 * pointers. */
static volatile unsigned long sink;

__attribute__((noinline)) static void lib_inner(void) {
    for (unsigned long i = 0; i < 5000UL; i++) sink += i;
}

__attribute__((noinline)) void lib_hot(void) {
    lib_inner();
    sink++;
}

#ifdef PAD_KIB
/* A larger file to copy (dlloop.c): PAD_KIB KiB of data. */
__attribute__((used)) const char lib_padding[PAD_KIB * 1024] = {1};
#endif
