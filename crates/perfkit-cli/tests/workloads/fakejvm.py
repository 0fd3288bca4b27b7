# A hostile local user's fake JVM: it maps a file named libjvm.so
# executable, has a thread named as HotSpot's signal dispatcher, catches
# SIGQUIT and listens on its own /tmp/.java_pidPID, then answers an attach
# request with 50 MiB ("flood"), never ("silent"), one byte every 4.9 s
# ("trickle"), or never accepts at all with its queue full ("stuck"),
# burning CPU so that a profiler samples it. argv: DIR MODE SECONDS.
import ctypes, mmap, os, signal, socket, sys, threading, time

lib = os.path.join(sys.argv[1], "libjvm.so")
with open(lib, "wb") as f:
    f.write(b"\0" * 4096)
f = open(lib, "rb")
m = mmap.mmap(f.fileno(), 4096, prot=mmap.PROT_READ | mmap.PROT_EXEC)
signal.signal(signal.SIGQUIT, lambda *a: None)


def dispatcher():
    ctypes.CDLL(None).prctl(15, b"Signal Dispatch", 0, 0, 0)
    time.sleep(3600)


threading.Thread(target=dispatcher, daemon=True).start()
mode = sys.argv[2]
path = "/tmp/.java_pid%d" % os.getpid()
s = socket.socket(socket.AF_UNIX)
# A socket left by an earlier process of this PID (killed before it could
# remove it) is ours to remove; one of another user's is removed by the
# test, so bind again until it is gone.
for _ in range(100):
    try:
        os.unlink(path)
    except OSError:
        pass
    try:
        s.bind(path)
        break
    except OSError:
        time.sleep(0.1)
s.listen(0)
s.setblocking(False)
held = []
if mode == "stuck":
    # Fill the queue: later connections wait, and nobody accepts.
    for _ in range(4):
        c = socket.socket(socket.AF_UNIX)
        c.setblocking(False)
        try:
            c.connect(path)
        except OSError:
            pass
        held.append(c)
# Listening (and, when stuck, its queue full): the test may start.
open(os.path.join(sys.argv[1], "ready"), "w").close()
end = time.time() + float(sys.argv[3])
last = time.time()
try:
    while time.time() < end:
        sum(i * i for i in range(20000))
        if mode == "trickle" and time.time() - last > 4.9:
            last = time.time()
            for c in held:
                try:
                    c.send(b"0")
                except OSError:
                    pass
        if mode == "stuck":
            continue
        try:
            c, _ = s.accept()
        except BlockingIOError:
            continue
        if mode == "flood":
            c.setblocking(True)
            try:
                c.sendall(b"0\n" + b"A" * (50 << 20))
            except OSError:
                pass
            c.close()
        else:
            held.append(c)
finally:
    os.unlink(path)
