"""500 servers in one pool with 1s checks while relaying traffic: every
server stays up, each server's checks arrive at their cadence (no gap above
interval x (1 + jitter) + timeout) and the daemon reports no check that
started later than its timeout."""

import re
import threading
import time

from health_fixtures import (SLOW, conf_global, daemons, free_ports, hub, report,  # noqa: F401
                             request, wait_until)

N = 500


def test_500_servers_keep_up(tmp_path, hub, daemons):
    ports = free_ports(N + 1)
    backends = [hub.add(f"s{i}", port=ports[i]) for i in range(N)]
    lport = ports[N]
    servers = "\n".join(f"    server s{i} 127.0.0.1:{b.port};" for i, b in enumerate(backends))
    conf = conf_global() + f"""
pool big {{
    check http {{ path /healthz; interval 1s; timeout 500ms; rise 2; fall 3; jitter 10%; }}
{servers}
}}
listen www {{ bind 127.0.0.1:{lport}; pool big; }}
"""
    d = daemons(tmp_path, conf)
    d.wait_log(rf"health: {N} active checks", 5 * SLOW)
    results, stop = [], threading.Event()

    def client():
        while not stop.is_set():
            results.append(request(lport))
    threads = [threading.Thread(target=client) for _ in range(4)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    try:
        # a measurement window of several check intervals
        wait_until(lambda: time.monotonic() > t0 + 6, 10, what="window")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not d.find(r"DOWN"), d.dump()
    assert None not in results
    served = {n for n in results}
    gaps = []
    for b in backends:
        times = [t for t, _ in b.checks if t >= t0]
        assert len(times) >= 4, f"{b.name}: {len(times)} checks in 6s"
        gaps += [y - x for x, y in zip(times, times[1:])]
    worst = max(gaps)
    report(f"500 servers, 1s checks: {sum(len(b.checks) for b in backends)} checks, "
           f"{len(results)} client requests to {len(served)} servers, largest gap between "
           f"two checks of one server {worst * 1000:.0f}ms (limit 1600ms)")
    assert worst <= 1.0 * 1.1 + 0.5
    d.stop()
    summary = d.find(r"health: \d+ checks run")
    assert summary, d.dump()
    m = re.search(r"(\d+) started later than their timeout, largest start delay (\d+)ms",
                  summary[-1].text)
    report(f"500 servers: {summary[-1].text.split(': ', 1)[1]}")
    assert m and m.group(1) == "0"
