# Known stacks for the CPython frame reader: the main thread waits in
# Outer.wait_here under outer_main, two threads spin in hot_alpha (under
# caller_one) and hot_beta (under caller_two), one waits in nested
# functions with a non-ASCII name. Prints "ready" once all run.
import sys, threading, time

def hot_alpha(n):
    x = 0
    while True:
        x = (x * 31 + n) % 1000003

def hot_beta(n):
    x = 0
    while True:
        x = (x * 17 + n) % 1000033

def caller_one():
    hot_alpha(3)

def caller_two():
    hot_beta(5)

def sleepy():
    def inner_wait_é():
        time.sleep(3600)
    inner_wait_é()

class Outer:
    def wait_here(self):
        print("ready", flush=True)
        time.sleep(3600)

def outer_main():
    for target in (caller_one, caller_two, sleepy):
        threading.Thread(target=target, daemon=True).start()
    time.sleep(0.2)
    Outer().wait_here()

outer_main()
