# A reload storm on a host with many TCP sockets. A listener that a reload
# removes closes only once the handshakes the kernel answered for its
# address are done, which the worker reads through sock_diag; the kernel
# walks every TCP socket of the host (TIME_WAIT ones included) for each
# such dump. A worker that made one dump per closing listener and look
# fell behind a storm of reloads on a host with tens of thousands of
# TIME_WAIT sockets (an ordinary busy front door): its closing listeners
# piled up, every look cost more, and the clients of its live listener
# waited seconds in the accept queue. Here 40 000 TIME_WAIT sockets are
# made in a namespace of the test's own (the kernel's connection table is
# shared, so they cost the walk all the same) and the stable listener
# must keep answering through 300 back-to-back reloads.
import os
import subprocess
import time

import pytest

from conftest import (DEADLINE, echo_transfer, free_port, h_echo, proc_fds, wait_ctl,
                      wait_until, write_atomic)

TIME_WAITS = 40000
RELOADS = 300

TW_SRC = r"""
import socket, sys, threading
n = int(sys.argv[1])
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(4096)
def acc():
    while True:
        c, _ = ls.accept(); c.close()
threading.Thread(target=acc, daemon=True).start()
made = 0
for i in range(n):
    c = socket.socket()
    # many sources: the ephemeral ports of one would run out
    c.bind(("127.1.%d.%d" % (i // 20000, 1 + i % 200), 0))
    c.connect(ls.getsockname())
    c.close()  # the side that closes first keeps TIME_WAIT
    made += 1
print(made, flush=True)
"""


@pytest.fixture
def time_waits():
    """TIME_WAIT sockets in a scratch network namespace; deleting the
    namespace at the end takes them away."""
    ns = "slstorm%d" % os.getpid()
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        out = subprocess.run(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", TW_SRC,
                              str(TIME_WAITS)], check=True, capture_output=True, text=True,
                             timeout=120)
        assert int(out.stdout.strip()) == TIME_WAITS
        yield TIME_WAITS
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def conf(sock, p, q, name, be):
    return ("global { workers 2; log stderr notice; grace 2s; control %s; }\n"
            "pool web { server a %s; }\n"
            "listen www { bind 127.0.0.1:%d; pool web; }\n"
            "listen %s { bind 127.0.0.1:%d; pool web; }\n" % (sock, be.addr, p, name, q))


def test_reload_storm_with_many_host_sockets(time_waits, short_dir, sluice, backends):
    be = backends(h_echo)
    sock = os.path.join(short_dir, "ctl.sock")
    p, q, r = free_port(), free_port(), free_port()
    # each reload removes one listener and adds another
    x, y = conf(sock, p, q, "two", be), conf(sock, p, r, "three", be)
    d = sluice(x)
    ctl = wait_ctl(sock)
    fds0 = proc_fds(d.pid)
    worst = 0.0
    for n in range(RELOADS):
        write_atomic(d.conf_path, y if n % 2 == 0 else x)
        assert ctl.ok("reload").startswith("reload done:")
        if n % 25 == 24:
            t0 = time.monotonic()
            # a live listener answers at once, storm or not
            assert echo_transfer(p, 1000, timeout=5) is None, "after %d reloads" % (n + 1)
            worst = max(worst, time.monotonic() - t0)
    # and the closing listeners are all gone soon after the storm
    wait_until(lambda: proc_fds(d.pid) <= fds0 + 4, timeout=DEADLINE,
               what="the closing listeners to close (%d descriptors, %d before)"
               % (proc_fds(d.pid), fds0))
    print("%d reloads beside %d TIME_WAIT sockets: slowest echo %.0f ms"
          % (RELOADS, time_waits, worst * 1000))
    assert worst < 2.0
    ctl.close()
