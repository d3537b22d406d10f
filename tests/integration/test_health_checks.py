"""Active and passive health checks against real backends: a killed backend
is removed within fall x interval + timeout (at once with traffic), hung and
failing backends go down with their cause, recovery takes exactly `rise`
good checks, expect checks read a banner, and a pool without a usable
server closes new clients at once."""

import threading
import time

from health_fixtures import (SLOW, conf_global, daemons, free_ports, hub, report,  # noqa: F401
                             request, wait_until)

INTERVAL, TIMEOUT, FALL, RISE = 0.5, 0.3, 3, 2
BOUND = FALL * INTERVAL + TIMEOUT


def two_server_conf(a, b, lport, level="info"):
    return conf_global(level) + f"""
pool web {{
    check http {{ path /healthz; interval 500ms; timeout 300ms; rise {RISE}; fall {FALL}; }}
    server a 127.0.0.1:{a.port};
    server b 127.0.0.1:{b.port};
}}
listen www {{ bind 127.0.0.1:{lport}; pool web; retries 2; timeout connect 1s; }}
"""


def test_killed_backend_with_traffic(tmp_path, hub, daemons):
    a, b = hub.add("a"), hub.add("b")
    lport = free_ports(1)[0]
    d = daemons(tmp_path, two_server_conf(a, b, lport, "debug"))
    wait_until(lambda: len(a.checks) >= 1 and len(b.checks) >= 1, 5 * SLOW, what="checks")
    assert {request(lport) for _ in range(10)} == {"a", "b"}

    results, stop = [], threading.Event()

    def client():
        while not stop.is_set():
            started = time.monotonic()
            results.append((time.monotonic(), request(lport), started))
            time.sleep(0.005)
    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(results) >= 40, 10 * SLOW, what="client traffic")
        mark = d.mark()
        t_kill = time.time()
        a.kill()
        # a request already handed to a before it died may fail with it;
        # the promise is about the clients that connect afterwards
        killed_mono = time.monotonic()
        down = d.wait_log(r"server web/a DOWN: ", 10 * SLOW, mark)
        # keep the traffic going over a window after the removal
        wait_until(lambda: time.monotonic() > down.mono + 1.5, 5, what="window")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    attempts = d.find(r"connect to web/a .* failed", mark)
    last = max(ln.wall for ln in attempts) if attempts else t_kill
    report(f"killed backend with traffic: {len(attempts)} failed attempts, last "
           f"{(last - t_kill) * 1000:.0f}ms after the kill; DOWN logged "
           f"{(down.wall - t_kill) * 1000:.0f}ms after ({down.text.split(': ', 1)[1]}); "
           f"bound fall x interval + timeout = {BOUND * 1000:.0f}ms")
    assert "3 consecutive connection errors" in down.text
    assert last - t_kill <= BOUND
    assert all(ln.wall <= down.wall for ln in attempts), "attempts after the DOWN line"
    after = [r for t, r, _ in results if t > down.mono + 0.05]
    assert after and all(r == "b" for r in after)
    failed = [r for t, r, started in results if r is None and started >= killed_mono]
    assert not failed, f"{len(failed)} clients got an error during the window"


def test_killed_backend_without_traffic_and_return(tmp_path, hub, daemons):
    a, b = hub.add("a"), hub.add("b")
    lport = free_ports(1)[0]
    d = daemons(tmp_path, two_server_conf(a, b, lport))
    wait_until(lambda: len(a.checks) >= 2, 5 * SLOW, what="checks of a")
    mark = d.mark()
    t_kill = time.time()
    a.kill()
    down = d.wait_log(r"server web/a DOWN: connect refused \(3/3\)", 10 * SLOW, mark)
    took = down.wall - t_kill
    report(f"killed backend, checks only: DOWN after {took * 1000:.0f}ms "
           f"(bound {BOUND * 1000:.0f}ms)")
    assert took <= BOUND
    assert all(request(lport) == "b" for _ in range(6))
    # it comes back by itself after rise good checks
    mark = d.mark()
    a.start()
    d.wait_log(r"server web/a UP: HTTP 200 \(2/2\)", 10 * SLOW, mark)
    wait_until(lambda: "a" in {request(lport) for _ in range(4)}, 5 * SLOW, what="a again")


def test_timeout_http_error_and_exact_rise(tmp_path, hub, daemons):
    h = hub.add("h", mode="hang")
    e = hub.add("e", status=500)
    ok = hub.add("ok")
    lport = free_ports(1)[0]
    conf = conf_global() + f"""
pool web {{
    check http {{ path /healthz; status 200-299; interval 400ms; timeout 200ms;
                 rise 3; fall 2; }}
    server h 127.0.0.1:{h.port};
    server e 127.0.0.1:{e.port};
    server ok 127.0.0.1:{ok.port};
}}
listen www {{ bind 127.0.0.1:{lport}; pool web; }}
"""
    d = daemons(tmp_path, conf)
    d.wait_log(r"server web/h DOWN: timeout after 200ms \(2/2\)", 10 * SLOW)
    d.wait_log(r"server web/e DOWN: HTTP 500 \(2/2\)", 10 * SLOW)
    assert all(request(lport) == "ok" for _ in range(6))
    mark = d.mark()
    e.status = 200
    up = d.wait_log(r"server web/e UP: HTTP 200 \(3/3\)", 10 * SLOW, mark)
    good = [c for c in e.checks if c[1] == 200 and c[0] <= up.mono]
    report(f"recovery: UP after {len(good)} good checks (rise 3)")
    assert len(good) == 3
    assert not d.find(r"server web/ok DOWN")


def test_expect_banner(tmp_path, hub, daemons):
    smtp = hub.add("smtp", mode="banner", banner=b"220 smtp.test ESMTP ready\r\n")
    helo = hub.add("helo", mode="banner", banner=b"220 helo.test\r\n")
    lport = free_ports(1)[0]
    conf = conf_global() + f"""
pool mail {{
    check expect {{ expect "220 smtp.test"; interval 300ms; timeout 300ms; rise 1; fall 2; }}
    server smtp 127.0.0.1:{smtp.port};
}}
pool helo {{
    check expect {{ send "HELO sluice\\r\\n"; expect "250 hello sluice\\r\\n";
                   interval 300ms; timeout 300ms; rise 1; fall 2; }}
    server helo 127.0.0.1:{helo.port};
}}
listen m {{ bind 127.0.0.1:{lport}; pool mail; }}
"""
    d = daemons(tmp_path, conf)
    wait_until(lambda: len(smtp.checks) >= 3 and len(helo.checks) >= 3, 10 * SLOW,
               what="expect checks")
    assert not d.find(r"DOWN")
    mark = d.mark()
    smtp.banner = b"421 smtp.test busy\r\n"
    d.wait_log(r'server mail/smtp DOWN: expect "220 smtp.test" not found \(connection closed\) '
               r'\(2/2\)', 10 * SLOW, mark)
    smtp.banner = b"220 smtp.test ESMTP ready\r\n"
    d.wait_log(r'server mail/smtp UP: expect "220 smtp.test" matched \(1/1\)', 10 * SLOW, mark)
    assert not d.find(r"server helo/helo DOWN")


def test_no_usable_server_closes_at_once(tmp_path, hub, daemons):
    a = hub.add("a")
    lport = free_ports(1)[0]
    conf = conf_global() + f"""
pool web {{
    check tcp {{ interval 300ms; timeout 200ms; rise 1; fall 1; }}
    server a 127.0.0.1:{a.port};
}}
listen www {{ bind 127.0.0.1:{lport}; pool web; timeout connect 5s; }}
"""
    d = daemons(tmp_path, conf)
    assert request(lport) == "a"
    a.kill()
    d.wait_log(r"server web/a DOWN: connect refused \(1/1\)", 10 * SLOW)
    d.wait_log(r"pool web has no usable server", 5 * SLOW)
    t0 = time.monotonic()
    assert request(lport, timeout=10) is None
    took = time.monotonic() - t0
    report(f"no usable server: client closed after {took * 1000:.0f}ms")
    assert took < 1.0 * SLOW
    d.wait_log(r"end=no-server", 5 * SLOW)
