# Known answer for Python profiles: hot_alpha under caller_one and hot_beta
# under caller_two, 3:1 of CPU, for argv[1] seconds: units of equal work,
# chosen at random 3:1 (a fixed order would beat with the sampling period).
# With "report" as argv[2], prints its throughput ("rounds N", one round
# being four units) to stderr at the end.
import random, sys, time
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
def caller_one(): return hot_alpha(10000)
def caller_two(): return hot_beta(10000)
end = time.time() + float(sys.argv[1])
units = 0
pick = random.Random(1).random
while time.time() < end:
    if pick() < 0.75:
        caller_one()
    else:
        caller_two()
    units += 1
if len(sys.argv) > 2 and sys.argv[2] == "report":
    print(f"rounds {units // 4}", file=sys.stderr)
