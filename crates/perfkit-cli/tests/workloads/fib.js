// JIT-compiled work for Node with --perf-basic-prof: fib() runs hot for
// process.argv[2] seconds.
function fib(n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}
const end = Date.now() + 1000 * Number(process.argv[2] || 3);
let sink = 0;
while (Date.now() < end) sink += fib(25);
if (sink === 42) console.log(sink);
