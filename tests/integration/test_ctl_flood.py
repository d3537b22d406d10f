"""Issue 9 item 2: 63 clients on a level-user control socket (mode 0666)
each pipeline 300 `show servers` over 2 000 servers and never read. The
daemon's memory stays bounded, health checks keep their timing (none
marked DOWN, lateness from `show info` small), an admin client gets its
answers promptly, and a flooding client that finally reads gets all 300
complete replies, in order."""
import socket
import statistics
import threading
import time

from conftest import DEADLINE, SLOW, Ctl, proc_rss_kib
from ctl_big import fmt_late, lateness, start_big

N = 2000
CLIENTS = 63
PIPELINED = 300
FLOOD_S = 8.0


def test_unread_control_output_is_bounded(tmp_path, sluice):
    d = start_big(tmp_path, sluice, N)
    rss0 = proc_rss_kib(d.pid)
    flood = []
    for _ in range(CLIENTS):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(DEADLINE)
        s.connect(d.user)
        s.sendall(b"show servers\n" * PIPELINED)  # 3 900 bytes: all read at once
        flood.append(s)
    # meanwhile the operator asks, and the daemon's memory is watched
    admin_s, rss = [], []
    t_end = time.monotonic() + FLOOD_S
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        with Ctl(d.admin, timeout=DEADLINE) as c:
            assert c.cmd("show info").startswith("version:")
        admin_s.append(time.monotonic() - t0)
        rss.append(proc_rss_kib(d.pid))
        time.sleep(0.2)  # the operator's pace, not a wait for an event
    late = lateness(d.admin)
    grow_mib = (max(rss) - rss0) / 1024
    print("\nflood: RSS %d MiB -> max %d MiB; admin show info median %.1f ms max %.1f ms "
          "(%d); lateness %s" % (rss0 // 1024, max(rss) // 1024,
                                 statistics.median(admin_s) * 1e3, max(admin_s) * 1e3,
                                 len(admin_s), fmt_late(late)))
    # bounded: 63 clients x (64 KiB + a part) and the rendering, with margin
    assert grow_mib < 64, "RSS grew by %d MiB" % grow_mib
    assert max(admin_s) < 1.0 * SLOW, admin_s
    assert late is not None and late["checks"]["count"] > 100
    # 5 ms is the goal on a quiet machine; the bound is generous because the
    # test machine is shared and a thread that waits for its CPU is late
    # however little it does (seen here: 6 to 115 ms). Before issue 9 the
    # daemon was 0.4 to 8 s late under these loads, and the checks above
    # (RSS, the operator's answers) fail it first.
    assert late["checks"]["p99_us"] < 500000 * SLOW, late
    assert not [l for l in d.lines() if " DOWN" in l], d.log()[-3000:]
    # a flooding client that reads now gets every reply, whole and in order
    s = flood.pop()
    got, buf = 0, b""
    deadline = time.monotonic() + DEADLINE * 3
    while got < PIPELINED and time.monotonic() < deadline:
        b = s.recv(1 << 20)
        assert b, "closed after %d replies" % got
        buf += b
        while b"\n\n" in buf:
            reply, buf = buf.split(b"\n\n", 1)
            lines = reply.split(b"\n")
            assert lines[0].split()[:3] == [b"pool", b"server", b"address"], lines[0]
            assert len(lines) == N + 1, len(lines)
            assert lines[N].split()[1] == b"s%d" % (N - 1)
            got += 1
    assert got == PIPELINED
    for s in flood + [s]:
        s.close()
