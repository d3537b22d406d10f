"""accept-proxy: a PROXY header that does not arrive in time holds a slot
only for `timeout proxy-header` (default 2 s), not `timeout connect`; such
closes are counted apart from malformed headers (end=proxy-header-timeout),
and 200 stalled clients do not hurt the others (issue 9 item 6)."""
import threading
import time

from conftest import (Ctl, build_proxy_v1, connect, ctl_global, free_port, h_request_reply,
                      make_conf, recv_line, wait_until)

HALF = b"PROXY TCP4 198.51.100.7 "  # half a v1 header, then nothing


def listeners(sock):
    with Ctl(sock) as c:
        return {r["name"]: r for r in c.json("show listeners")}


def stall_until_closed(s, timeout):
    """Send half a header on s and wait until the daemon closes it. Returns
    (bytes received, seconds it took)."""
    t0 = time.monotonic()
    s.sendall(HALF)
    s.settimeout(timeout)
    try:
        got = s.recv(100)
    except ConnectionResetError:
        got = b""
    return got, time.monotonic() - t0


def served(port, src):
    """A legitimate client: full header, request, reply. Returns None or
    what went wrong."""
    try:
        with connect(port, src=src, timeout=10) as s:
            s.sendall(build_proxy_v1((src, 40000), ("127.0.0.1", port)) + b"GET\n")
            line = recv_line(s)
        return None if line == b"reply to GET\n" else "got %r" % line
    except OSError as e:
        return repr(e)


def test_half_header_closed_at_proxy_header_timeout(sluice, backends, short_dir):
    be = backends(h_request_reply)
    port = free_port()
    sock = short_dir + "/ctl.sock"
    # timeout connect stays at 2s (make_conf): the header must not get that long
    d = sluice(make_conf(port, ["a %s" % be.addr], global_extra=ctl_global(sock),
                         listen_extra="accept-proxy; timeout proxy-header 300ms;"))
    with connect(port, src="127.0.0.5") as s:
        got, took = stall_until_closed(s, 10)
    assert got == b""
    assert 0.25 <= took < 1.5, "closed after %.2fs, timeout proxy-header is 0.3s" % took
    (c,) = d.wait_conns(1)
    assert c["end"] == "proxy-header-timeout" and c["server"] == "-", c
    row = listeners(sock)["www"]
    assert row["proxy_header_timeouts"] == 1, row
    assert row["proxy_header_errors"] == 0, row
    with Ctl(sock) as cl:
        metrics = cl.cmd("show metrics")
    assert 'sluice_listener_proxy_header_timeouts_total{listener="www"} 1\n' in metrics
    assert be.total == 0
    assert served(port, "127.0.0.2") is None


def test_default_proxy_header_timeout_is_two_seconds(sluice, backends):
    be = backends(h_request_reply)
    port = free_port()
    # a long timeout connect: the header's own 2s default must apply
    d = sluice(make_conf(port, ["a %s" % be.addr],
                         listen_extra="accept-proxy; timeout connect 20s;"))
    with connect(port) as s:
        got, took = stall_until_closed(s, 30)
    assert got == b""
    assert 1.9 <= took < 5, took
    d.wait_conns(1, end="proxy-header-timeout")


def test_stalled_headers_do_not_hurt_others(sluice, backends, short_dir):
    be = backends(h_request_reply)
    port = free_port()
    sock = short_dir + "/ctl.sock"
    d = sluice(make_conf(port, ["a %s" % be.addr], global_extra=ctl_global(sock),
                         listen_extra="accept-proxy; maxconn 150; "
                                      "timeout proxy-header 500ms;"))
    stalled = []
    for _ in range(200):
        s = connect(port, src="127.0.0.5")
        s.sendall(HALF)
        stalled.append(s)
    failures, done = [], []
    stop = threading.Event()

    def legit(src):
        while not stop.is_set() and len(done) < 60:
            r = served(port, src)
            (failures if r else done).append(r or src)

    threads = [threading.Thread(target=legit, args=("127.0.0.%d" % i,)) for i in (2, 3, 4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: listeners(sock)["www"]["proxy_header_timeouts"] >= 200,
                   what="200 header timeouts")
        wait_until(lambda: len(done) >= 60 or failures, what="60 legitimate requests")
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    assert not failures, failures[:5]
    row = listeners(sock)["www"]
    assert row["proxy_header_timeouts"] == 200, row
    assert row["proxy_header_errors"] == 0, row
    for s in stalled:
        s.settimeout(5)
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
        s.close()
    ends = [c["end"] for c in d.conns() if c["client"].startswith("127.0.0.5:")]
    assert ends.count("proxy-header-timeout") == 200, ends[:5]
