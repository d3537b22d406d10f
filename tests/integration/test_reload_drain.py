# A reload that removes many listeners at once: each worker serves their
# answered handshakes before closing them (lclose.c), looking at the SYN
# queues through sock_diag. A look walks every TCP socket of the host (ms on
# a quiet host, tens of ms with many sockets in TIME_WAIT), so it must not
# be repeated per closing listener: the listeners that stay keep serving
# without a stall.
import os
import threading
import time

from conftest import (DEADLINE, SLOW, echo_transfer, free_port, h_echo, wait_ctl, wait_until,
                      write_atomic)

REMOVED = 100


def conf(sock, be, kept, removed):
    text = ("global { workers 2; log stderr notice; grace 2s; control %s; }\n"
            "pool web { server a %s; }\n"
            "listen kept { bind 127.0.0.1:%d; pool web; }\n" % (sock, be.addr, kept))
    for i, port in enumerate(removed):
        text += "listen gone%d { bind 127.0.0.1:%d; pool web; }\n" % (i, port)
    return text


def test_removing_many_listeners_does_not_stall_the_others(short_dir, sluice, backends):
    be = backends(h_echo)
    sock = os.path.join(short_dir, "ctl.sock")
    kept = free_port()
    removed = []
    while len(removed) < REMOVED:
        p = free_port()
        if p != kept and p not in removed:
            removed.append(p)
    d = sluice(conf(sock, be, kept, removed))
    ctl = wait_ctl(sock)
    assert echo_transfer(removed[-1], 100) is None

    lat, errors = [], []
    stop = threading.Event()

    def client():
        end = time.monotonic() + DEADLINE
        while not stop.is_set() and time.monotonic() < end:
            t0 = time.monotonic()
            e = echo_transfer(kept, 100, timeout=5 * SLOW)
            lat.append(time.monotonic() - t0)
            if e is not None:
                errors.append(e)

    t = threading.Thread(target=client)
    t.start()
    try:
        time.sleep(0.2)  # exchanges before the reload, for the comparison
        before = len(lat)
        write_atomic(d.conf_path, conf(sock, be, kept, []))
        ctl.ok("reload")
        wait_until(lambda: all(echo_transfer(p, 10, timeout=5 * SLOW) == "refused"
                               for p in removed[:: REMOVED // 10]),
                   what="the removed listeners closed")
        time.sleep(0.2)
    finally:
        stop.set()
        t.join()
    ctl.close()
    assert not errors, errors[:3]
    during = lat[before:]
    assert len(during) >= 10, len(during)
    worst = max(during)
    print("\n%d exchanges during the drain of %d listeners: median %.1f ms, max %.1f ms"
          % (len(during), REMOVED, sorted(during)[len(during) // 2] * 1000, worst * 1000))
    # one look per worker tick costs a few ms; one per listener was 100 of
    # them back to back (0.3 s on a quiet host, seconds on a busy one)
    assert worst < 0.15 * SLOW, "an exchange took %.0f ms during the drain" % (worst * 1000)
