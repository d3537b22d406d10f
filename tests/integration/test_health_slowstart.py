"""Slow start and on-down: a server that comes back gets a growing share of
new connections over the slowstart period (measured per second); when a
server goes down, `on-down shutdown` closes its open connections while
`on-down keep` lets them continue."""

import socket
import time

from health_fixtures import (SLOW, conf_global, daemons, free_ports, hub, report,  # noqa: F401
                             request, wait_until)


def test_slowstart_ramp(tmp_path, hub, daemons):
    a, b = hub.add("a"), hub.add("b")
    lport = free_ports(1)[0]
    ramp = 4.0
    conf = conf_global() + f"""
pool web {{
    check http {{ path /healthz; interval 200ms; timeout 150ms; rise 1; fall 1; }}
    slowstart 4s;
    server a 127.0.0.1:{a.port};
    server b 127.0.0.1:{b.port};
}}
listen www {{ bind 127.0.0.1:{lport}; pool web; }}
"""
    d = daemons(tmp_path, conf)
    b.status = 503
    d.wait_log(r"server web/b DOWN: HTTP 503 \(1/1\)", 10 * SLOW)
    mark = d.mark()
    b.status = 200
    up = d.wait_log(r"server web/b UP: HTTP 200 \(1/1\)", 10 * SLOW, mark)
    picks = []
    while time.monotonic() < up.mono + ramp + 1.0:  # the ramp, then a second at full weight
        name = request(lport)
        assert name in ("a", "b")
        picks.append((time.monotonic() - up.mono, name))
    shares = []
    for sec in range(int(ramp) + 1):
        got = [n for t, n in picks if sec <= t < sec + 1]
        shares.append(got.count("b") / len(got))
    report("slow start 4s, share of the returning server per second: " +
           ", ".join(f"{s:.2f}" for s in shares))
    assert shares[0] < 0.25
    for i in range(1, len(shares)):
        assert shares[i] >= shares[i - 1] - 0.03, shares
    assert shares[int(ramp) - 1] > 0.35
    assert 0.45 <= shares[-1] <= 0.55


def hold(lport):
    s = socket.create_connection(("127.0.0.1", lport), timeout=10)
    s.sendall(b"hold\n")
    return s, s.recv(64).decode().strip()


def test_on_down_shutdown_and_keep(tmp_path, hub, daemons):
    k, sh = hub.add("k"), hub.add("sh")
    pk, ps = free_ports(2)
    conf = conf_global() + f"""
pool keep {{
    check http {{ path /healthz; interval 200ms; timeout 150ms; rise 1; fall 1; }}
    on-down keep;
    server k 127.0.0.1:{k.port};
}}
pool shut {{
    check http {{ path /healthz; interval 200ms; timeout 150ms; rise 1; fall 1; }}
    on-down shutdown;
    server sh 127.0.0.1:{sh.port};
}}
listen lk {{ bind 127.0.0.1:{pk}; pool keep; }}
listen ls {{ bind 127.0.0.1:{ps}; pool shut; }}
"""
    d = daemons(tmp_path, conf)
    ck, name_k = hold(pk)
    cs, name_s = hold(ps)
    assert (name_k, name_s) == ("k", "sh")
    wait_until(lambda: len(k.writers) == 1 and len(sh.writers) == 1, 5 * SLOW,
               what="held connections")
    k.status = sh.status = 503
    d.wait_log(r"server keep/k DOWN: HTTP 503", 10 * SLOW)
    down = d.wait_log(r"server shut/sh DOWN: HTTP 503", 10 * SLOW)
    d.wait_log(r"server shut/sh: closing its 1 open connection \(on-down shutdown\)", 5 * SLOW)
    # shutdown: the client sees its connection end
    cs.settimeout(10 * SLOW)
    try:
        data = cs.recv(64)
    except ConnectionResetError:
        data = b""
    closed_ms = (time.monotonic() - down.mono) * 1000
    report(f"on-down shutdown: client connection closed {closed_ms:.0f}ms after DOWN was read")
    assert data == b""
    wait_until(lambda: not sh.writers, 5 * SLOW, what="server side closed")
    # keep: the open connection still works
    ck.sendall(b"hold again\n")
    ck.settimeout(5 * SLOW)
    assert ck.recv(64) == b"k\n"
    assert len(k.writers) == 1
    ck.close()
    cs.close()
