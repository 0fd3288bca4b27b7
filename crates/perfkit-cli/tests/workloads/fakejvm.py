# A hostile local user's fake JVM: it maps a file named libjvm.so, catches
# SIGQUIT and listens on its own /tmp/.java_pidPID, then answers an attach
# request with 50 MiB ("flood") or never ("silent"), burning CPU so that a
# profiler samples it. argv: DIR MODE SECONDS.
import mmap, os, signal, socket, sys, time

lib = os.path.join(sys.argv[1], "libjvm.so")
with open(lib, "wb") as f:
    f.write(b"\0" * 4096)
f = open(lib, "rb")
m = mmap.mmap(f.fileno(), 4096, prot=mmap.PROT_READ)
signal.signal(signal.SIGQUIT, lambda *a: None)
path = "/tmp/.java_pid%d" % os.getpid()
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(8)
s.setblocking(False)
held = []
end = time.time() + float(sys.argv[3])
try:
    while time.time() < end:
        sum(i * i for i in range(20000))
        try:
            c, _ = s.accept()
        except BlockingIOError:
            continue
        if sys.argv[2] == "flood":
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
