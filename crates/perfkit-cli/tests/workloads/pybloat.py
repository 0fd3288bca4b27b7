"""A hostile CPython target (3.11+): every frame's name and file are
CHARS four-byte characters (4096: 16 KiB each in UTF-8), the stack is 100
to 160 frames deep, and its depth and line change all the time, so that
nearly every sample of it is a new stack. Half of its time is spent in
the same leaf called from the top level, a stack of two such frames. A few KiB of its memory, read
at each sample, were megabytes of perfkit's:
`python3 pybloat.py SECONDS CHARS`."""

import sys
import time

HUGE = "\U0001F600" * int(sys.argv[2])

body = "def leaf(n):\n" + "".join(f"    n += {i}\n" for i in range(2000)) + "    return n\n"
ns = {}
exec(compile(body, HUGE, "exec"), ns)
leaf = ns["leaf"]
leaf.__code__ = leaf.__code__.replace(co_name=HUGE, co_qualname=HUGE)


def deep(d, n):
    if d == 0:
        return leaf(n)
    return deep(d - 1, n)


deep.__code__ = deep.__code__.replace(co_name=HUGE, co_qualname=HUGE, co_filename=HUGE)

end = time.monotonic() + float(sys.argv[1])
d = 0
while time.monotonic() < end:
    deep(100 + d % 61, 0)
    leaf(0)
    d += 1
