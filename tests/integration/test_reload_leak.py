# 1 000 reloads in a row over the control socket, alternating two files
# that each open one listener and close another and add and remove pools
# and servers: after a warm-up, the daemon's open descriptors
# (/proc/PID/fd) and resident memory (VmRSS) must come back to their
# starting level, within FD_MARGIN descriptors and RSS_MARGIN_KIB. (The
# level is steady: 16 000 reloads grow VmRSS by under 1 MiB in the normal
# build.) Under ThreadSanitizer only the descriptors are checked: VmRSS
# there includes its shadow and synchronisation metadata and grew about
# 7.5 MiB over these 1 000 reloads; memory leaks are LeakSanitizer's job
# in the ASan build, and the bound holds in the normal and ASan builds.
import os
import re
import time

from conftest import (DEADLINE, SAN, TSAN, echo_transfer, free_port, h_echo, proc_fds,
                      proc_rss_kib, wait_ctl, wait_until, write_atomic)

RELOADS = 1000
WARMUP = 300
FD_MARGIN = 5
# 2 MiB; 4 MiB under ASan, whose allocator (redzones, a small quarantine,
# per-thread caches) settles less tightly
RSS_MARGIN_KIB = 4096 if SAN else 2048


def conf_x(sock, p, q, be):
    return (
        "global { workers 2; log stderr notice; grace 2s; control %s; }\n"
        "pool web { balance roundrobin; server a %s; server b %s; }\n"
        "pool xp { server z %s; }\n"
        "listen www { bind 127.0.0.1:%d; pool web; }\n"
        "listen two { bind 127.0.0.1:%d; pool xp; }\n"
        % (sock, be[0].addr, be[1].addr, be[2].addr, p, q))


def conf_y(sock, p, r, be):
    return (
        "global { workers 2; log stderr notice; grace 2s; control %s; }\n"
        "pool web { balance leastconn; server a %s; server c %s weight 3; }\n"
        "pool yp { server w %s; server v %s backup; }\n"
        "listen www { bind 127.0.0.1:%d; pool web; timeout idle 30s; }\n"
        "listen three { bind 127.0.0.1:%d; pool yp; }\n"
        % (sock, be[0].addr, be[2].addr, be[1].addr, be[0].addr, p, r))


def test_1000_reloads_return_fds_and_memory(short_dir, sluice, backends, monkeypatch):
    if SAN:
        # ASan keeps freed memory in a quarantine (256 MiB by default) that
        # would read as growth; a small one still catches use-after-free of
        # anything recent
        monkeypatch.setenv("ASAN_OPTIONS", (os.environ.get("ASAN_OPTIONS", "") +
                                            ":quarantine_size_mb=1:thread_local_quarantine_size_kb=64").lstrip(":"))
    be = [backends(h_echo) for _ in range(3)]
    sock = os.path.join(short_dir, "ctl.sock")
    p, q, r = free_port(), free_port(), free_port()
    x, y = conf_x(sock, p, q, be), conf_y(sock, p, r, be)
    d = sluice(x)
    ctl = wait_ctl(sock)
    n = 0

    def reload_to(text):
        write_atomic(d.conf_path, text)
        reply = ctl.ok("reload")
        assert reply.startswith("reload done:\n") and "opens" in reply, reply

    def settled():
        # the workers close detached listeners asynchronously (two looks at
        # their SYN queues, spaced by what a look costs: up to a few hundred
        # ms on a host with many sockets), and retired snapshots are
        # reclaimed by a 100ms timer: a quiet moment passes
        a = proc_fds(d.pid)
        time.sleep(1.0)  # between two samples: the level must be steady
        return a if proc_fds(d.pid) == a else None

    for _ in range(WARMUP):
        reload_to(y if n % 2 == 0 else x)
        n += 1
    assert echo_transfer(p, 10000) is None
    fds0 = wait_until(settled, what="a steady descriptor count")
    rss0 = proc_rss_kib(d.pid)
    t0 = time.monotonic()
    for _ in range(RELOADS):
        reload_to(y if n % 2 == 0 else x)
        n += 1
    took = time.monotonic() - t0
    assert n % 2 == 0  # x runs again: the same listeners as when measured
    assert echo_transfer(p, 10000) is None and echo_transfer(q, 10000) is None

    fds1 = wait_until(lambda: (lambda v: v if v is not None and v <= fds0 + FD_MARGIN else None)(
        settled()), timeout=DEADLINE, what="descriptors back to %d + %d (now %d)"
        % (fds0, FD_MARGIN, proc_fds(d.pid)))
    rss1 = proc_rss_kib(d.pid)
    print("%d reloads in %.1fs (%.1fms each): fds %d -> %d, VmRSS %d -> %d KiB"
          % (RELOADS, took, took * 1000 / RELOADS, fds0, fds1, rss0, rss1))
    assert fds1 <= fds0 + FD_MARGIN
    assert TSAN or rss1 <= rss0 + RSS_MARGIN_KIB, "VmRSS grew from %d to %d KiB over %d reloads" % (
        rss0, rss1, RELOADS)
    info = ctl.ok("show info")
    assert re.search(r"^reloads: +%d ok, 0 failed$" % (WARMUP + RELOADS), info, re.M), info
    ctl.close()
