"""Issue 9 item 4: 1 000 scrapes of /metrics from 50 parallel clients with
2 000 servers are all answered, whole, while health checks keep their
timing. Each scrape is timed from connect to its last byte, so a scrape
that waits in the listen backlog counts. Half of them ask for gzip, as
Prometheus does, half do not."""
import gzip
import socket
import statistics
import threading
import time

from conftest import DEADLINE, SLOW, Ctl
from ctl_big import fmt_late, lateness, start_big

N = 2000
SCRAPES = 1000
PARALLEL = 50


def scrape(port, gz):
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n%s\r\n"
                  % (b"Accept-Encoding: gzip\r\n" if gz else b""))
        chunks = []
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            chunks.append(b)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 OK\r\n"):
        return False, head[:100]
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    if len(body) != length:
        return False, "%d of %d bytes" % (len(body), length)
    if gz != (b"\r\nContent-Encoding: gzip\r\n" in head):
        return False, head[:200]
    if gz:
        body = gzip.decompress(body)
    if not body.endswith(b"\n"):
        return False, "no final newline"
    if b'sluice_server_up{pool="big",server="s1999"} 1\n' not in body:
        return False, "no sample of the last server"
    return True, time.monotonic() - t0


def test_thousand_scrapes(tmp_path, sluice):
    d = start_big(tmp_path, sluice, N)
    todo = list(range(SCRAPES))
    lock = threading.Lock()
    results = []

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            try:
                r = scrape(d.mport, i % 2 == 0)
            except OSError as e:
                r = (False, repr(e))
            with lock:
                results.append(r)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(PARALLEL)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    # the operator's view meanwhile
    admin_s = []
    while any(t.is_alive() for t in threads) and time.monotonic() < t0 + DEADLINE * 6:
        t1 = time.monotonic()
        with Ctl(d.admin, timeout=DEADLINE) as c:
            assert c.cmd("show info").startswith("version:")
        admin_s.append(time.monotonic() - t1)
        time.sleep(0.2)  # the operator's pace
    for t in threads:
        t.join(DEADLINE)
    elapsed = time.monotonic() - t0
    late = lateness(d.admin)
    bad = [r for r in results if not r[0]]
    times = sorted(r[1] for r in results if r[0])
    print("\n%d scrapes from %d clients in %.1f s: %.0f/s; connect to last byte p50 %.0f ms "
          "p99 %.0f ms max %.0f ms; admin show info median %.1f ms max %.1f ms; lateness %s"
          % (len(results), PARALLEL, elapsed, len(results) / elapsed,
             statistics.median(times) * 1e3, times[int(len(times) * 0.99) - 1] * 1e3,
             times[-1] * 1e3, statistics.median(admin_s) * 1e3, max(admin_s) * 1e3,
             fmt_late(late)))
    assert len(results) == SCRAPES and not bad, bad[:3]
    assert max(admin_s) < 1.0 * SLOW, admin_s
    assert late is not None and late["checks"]["count"] > 100
    # 5 ms is the goal on a quiet machine; the bound is generous because the
    # test machine is shared and a thread that waits for its CPU is late
    # however little it does (seen here: 6 to 115 ms). Before issue 9 the
    # daemon was 0.4 to 8 s late under these loads, and the checks above
    # (RSS, the operator's answers) fail it first.
    assert late["checks"]["p99_us"] < 500000 * SLOW, late
    assert not [l for l in d.lines() if " DOWN" in l], d.log()[-3000:]
