# A reload that moves an address from one listener to another (a renamed
# listen block, or a bind moved between blocks) hands the listening
# sockets over to the new listener: the same sockets keep accepting, so
# under load no connect is refused, reset or delayed (a dropped SYN would
# cost the client a 1 s retransmit), and the kernel's socket inodes for the
# port stay the same across the reloads.
import os
import signal
import threading
import time

from conftest import LogTail, echo_transfer, free_port, h_echo, wait_until, write_atomic

RELOADS = 20
CLIENTS = 4


def conf(p, q, be, names):
    first, second = names
    return ("global { workers 2; log stderr info; grace 5s; }\n"
            "pool web { server e1 %s; }\n"
            "listen %s { bind 127.0.0.1:%d; pool web; }\n"
            "listen %s { bind 127.0.0.1:%d; pool web; }\n"
            % (be.addr, first, p, second, q))


def listen_inodes(port):
    """Inodes of the sockets listening on 127.0.0.1:port (/proc/net/tcp)."""
    want = "0100007F:%04X" % port
    out = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == want and fields[3] == "0A":
                out.add(fields[9])
    return out


def test_moving_an_address_between_listeners_keeps_its_sockets(sluice, backends):
    be = backends(h_echo)
    p, q = free_port(), free_port()
    a = conf(p, q, be, ("www", "aux"))
    # b: www is renamed web2 (same address), and aux's address moves to a
    # listener that appears under another name
    b = conf(p, q, be, ("web2", "aux2"))
    d = sluice(a)
    tail = LogTail(d)
    inodes = listen_inodes(p), listen_inodes(q)
    assert len(inodes[0]) == 2 and len(inodes[1]) == 2, inodes

    stop = threading.Event()
    results = []

    def client(port):
        while not stop.is_set():
            t0 = time.monotonic()
            r = echo_transfer(port, 4096, connect_timeout=0.9)
            results.append((round(time.monotonic() - t0, 3), port, r))

    threads = [threading.Thread(target=client, args=((p, q)[i % 2],), daemon=True)
               for i in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(results) >= 50, what="traffic before the reloads")
        for i in range(RELOADS):
            write_atomic(d.conf_path, b if i % 2 == 0 else a)
            tail.mark()
            n0 = len(results)
            d.signal(signal.SIGHUP)
            tail.wait(r"notice: reload of %s done" % d.conf_path)
            wait_until(lambda: len(results) >= n0 + 20, what="traffic after reload %d" % i)
            assert (listen_inodes(p), listen_inodes(q)) == inodes, "reload %d" % i
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    bad = [x for x in results if x[2] is not None]
    assert bad == [], "%d of %d failed, first: %r" % (len(bad), len(results), bad[:5])
    assert os.path.exists("/proc/%d" % d.pid)
    print("%d connections over %d reloads, slowest %.3fs"
          % (len(results), RELOADS, max(x[0] for x in results)))
