// Known answer for JIT naming: hotAlpha runs under callerOne and hotBeta
// under callerTwo, 3:1 in CPU time, for args[0] seconds. All four methods
// are too large for HotSpot to inline into their callers (over
// FreqInlineSize's 325 bytecodes), so each stays a compiled method of its
// own, even when main's loop is compiled on stack.
public class HotSplit {
    static long sink;

    static long hotAlpha(long x, int n) {
        for (int i = 0; i < n; i++) {
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
        return x;
    }

    static long hotBeta(long x, int n) {
        for (int i = 0; i < n; i++) {
            x = x * 2862933555777941757L + 3037000493L;
            x ^= x >>> 11; x += i * 5L; x ^= x << 9; x -= i * 7L; x ^= x >>> 19;
            x = x * 6364136223846793005L + 1442695040888963407L;
            x ^= x >>> 13; x += i; x ^= x << 7; x -= i * 3L; x ^= x >>> 17;
            x = x * 3202034522624059733L + 4354685564936845319L;
            x ^= x >>> 15; x += i * 11L; x ^= x << 5; x -= i * 13L; x ^= x >>> 23;
            x = x * 2862933555777941757L + 3037000493L;
            x ^= x >>> 11; x += i * 5L; x ^= x << 9; x -= i * 7L; x ^= x >>> 19;
            x = x * 6364136223846793005L + 1442695040888963407L;
            x ^= x >>> 13; x += i; x ^= x << 7; x -= i * 3L; x ^= x >>> 17;
            x = x * 3202034522624059733L + 4354685564936845319L;
            x ^= x >>> 15; x += i * 11L; x ^= x << 5; x -= i * 13L; x ^= x >>> 23;
            x = x * 2862933555777941757L + 3037000493L;
            x ^= x >>> 11; x += i * 5L; x ^= x << 9; x -= i * 7L; x ^= x >>> 19;
            x = x * 6364136223846793005L + 1442695040888963407L;
            x ^= x >>> 13; x += i; x ^= x << 7; x -= i * 3L; x ^= x >>> 17;
        }
        return x;
    }

    static long callerOne(long x) {
        if (x == 0x5eedL) {
            // Never runs (x is never this), but makes the caller too large
            // to inline (over FreqInlineSize's 325 bytecodes): compiled
            // code keeps it a frame of its own, as perfkit does not yet
            // show inlined Java frames.
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
        return hotAlpha(x, 3000);
    }

    static long callerTwo(long x) {
        if (x == 0x5eedL) {
            // Never runs (x is never this), but makes the caller too large
            // to inline (over FreqInlineSize's 325 bytecodes): compiled
            // code keeps it a frame of its own, as perfkit does not yet
            // show inlined Java frames.
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
        return hotBeta(x, 1000);
    }

    public static void main(String[] args) {
        long end = System.nanoTime() + (long) (Double.parseDouble(args.length > 0 ? args[0] : "3") * 1e9);
        long x = 1;
        long rounds = 0;
        while (System.nanoTime() < end) {
            x = callerOne(x);
            x = callerTwo(x);
            rounds++;
        }
        sink = x;
        System.out.println(sink);
        // With "report" as args[1]: the throughput, for the benchmarks.
        if (args.length > 1 && args[1].equals("report")) {
            System.err.println("rounds " + rounds);
        }
    }
}
