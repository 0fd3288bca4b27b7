# Known answer for multi-threaded Python profiles: one thread runs
# hot_alpha under caller_one, another hot_beta under caller_two, for
# argv[1] seconds; the main thread waits for them. Under the GIL the two
# share the CPU about evenly.
import sys, threading, time
def hot_alpha(n):
    x = 0
    for i in range(n):
        x = (x * 31 + i) % 1000003
    return x
def hot_beta(n):
    x = 0
    for i in range(n):
        x = (x * 17 + i) % 1000033
    return x
def caller_one(end):
    while time.time() < end:
        hot_alpha(20000)
def caller_two(end):
    while time.time() < end:
        hot_beta(20000)
end = time.time() + float(sys.argv[1])
threads = [threading.Thread(target=f, args=(end,)) for f in (caller_one, caller_two)]
for t in threads:
    t.start()
for t in threads:
    t.join()
