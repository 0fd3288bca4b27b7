# Known answer for Python profiles: hot_alpha under caller_one and hot_beta
# under caller_two, 3:1 of CPU, for argv[1] seconds. With "report" as
# argv[2], prints its throughput ("rounds N") to stderr at the end.
import sys, time
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
def caller_one(): return hot_alpha(30000)
def caller_two(): return hot_beta(10000)
end = time.time() + float(sys.argv[1])
rounds = 0
while time.time() < end:
    caller_one(); caller_two()
    rounds += 1
if len(sys.argv) > 2 and sys.argv[2] == "report":
    print(f"rounds {rounds}", file=sys.stderr)
