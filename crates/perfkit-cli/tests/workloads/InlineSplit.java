// Known answer for inlined Java frames: outer calls innerAlpha and
// innerBeta, two small methods (under MaxInlineSize's 35 bytecodes) that
// C2 inlines into it, with 3:1 of the work (the same loop body, run 3000
// and 1000 times), for args[0] seconds. outer itself is too large to be
// inlined into main (over FreqInlineSize's 325 bytecodes), so it stays a
// compiled method of its own, and a sample in either inner loop is in
// outer's code: only its debug information tells the two apart.
public class InlineSplit {
    static long sink;

    static long innerAlpha(long x, long n) {
        for (long i = 0; i < n; i++) {
            x = x * 6364136223846793005L + i;
            x ^= x >>> 29;
        }
        return x;
    }

    static long innerBeta(long x, long n) {
        for (long i = 0; i < n; i++) {
            x = x * 6364136223846793005L + i;
            x ^= x >>> 29;
        }
        return x;
    }

    static long outer(long x) {
        if (x == 0x5eedL) {
            // Never runs (x is never this), but makes outer too large to
            // inline into main.
            for (int i = 0; i < 2; i++) {
                x = x * 6364136223846793005L + 1442695040888963407L;
                x ^= x >>> 13; x += i; x ^= x << 7; x -= i * 3L; x ^= x >>> 17;
                x = x * 2862933555777941757L + 3037000493L;
                x ^= x >>> 11; x += i * 5L; x ^= x << 9; x -= i * 7L; x ^= x >>> 19;
                x = x * 3202034522624059733L + 4354685564936845319L;
                x ^= x >>> 15; x += i * 11L; x ^= x << 5; x -= i * 13L; x ^= x >>> 23;
                x = x * 6364136223846793005L + 1442695040888963407L;
                x ^= x >>> 13; x += i; x ^= x << 7; x -= i * 3L; x ^= x >>> 17;
                x = x * 2862933555777941757L + 3037000493L;
                x ^= x >>> 11; x += i * 5L; x ^= x << 9; x -= i * 7L; x ^= x >>> 19;
                x = x * 3202034522624059733L + 4354685564936845319L;
                x ^= x >>> 15; x += i * 11L; x ^= x << 5; x -= i * 13L; x ^= x >>> 23;
                x = x * 6364136223846793005L + 1442695040888963407L;
                x ^= x >>> 13; x += i; x ^= x << 7; x -= i * 3L; x ^= x >>> 17;
                x = x * 2862933555777941757L + 3037000493L;
                x ^= x >>> 11; x += i * 5L; x ^= x << 9; x -= i * 7L; x ^= x >>> 19;
            }
        }
        x = innerAlpha(x, 3000);
        return innerBeta(x, 1000);
    }

    public static void main(String[] args) {
        long end = System.nanoTime() + (long) (Double.parseDouble(args.length > 0 ? args[0] : "3") * 1e9);
        long x = 1;
        while (System.nanoTime() < end) {
            x = outer(x);
        }
        sink = x;
        System.out.println(sink);
    }
}
