// JIT-compiled work for the JVM with -XX:+DumpPerfMapAtExit: spin() runs
// hot for args[0] seconds.
public class Hot {
    static long sink;

    static long spin(long x) {
        for (int i = 0; i < 5000; i++) {
            x = x * 6364136223846793005L + i;
        }
        return x;
    }

    public static void main(String[] args) {
        long end = System.nanoTime() + (long) (Double.parseDouble(args.length > 0 ? args[0] : "3") * 1e9);
        long x = 1;
        while (System.nanoTime() < end) {
            x = spin(x);
        }
        sink = x;
    }
}
