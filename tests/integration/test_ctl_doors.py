"""Issue 9 item 3: each door (control socket, metrics port) has its own
client limit and timeouts, and the metrics port speaks strict HTTP: 400
for garbage (a NUL byte first included) and oversized headers, 408 for a
request still incomplete at the 5 s deadline, 405 for other methods, 404 for other
paths, HEAD without a body, gzip when asked, Connection: close
everywhere."""
import gzip
import socket
import time

from conftest import DEADLINE, SLOW, Ctl, connect, ctl_global, free_port, h_echo, make_conf


def start(tmp_path, sluice, backends):
    b = backends(h_echo, name="a")
    admin, user = str(tmp_path / "admin.sock"), str(tmp_path / "user.sock")
    port, mport = free_port(), free_port()
    d = sluice(make_conf(port, ["a %s" % b.addr], global_extra=ctl_global(
        admin, "control %s mode 0666 level user; metrics 127.0.0.1:%d;" % (user, mport))))
    d.wait_log(r"notice: metrics on http://127.0.0.1:%d/metrics" % mport)
    d.admin, d.user, d.mport = admin, user, mport
    return d


def exchange(port, data, src=None):
    """Send data, read to EOF. Returns (status line, headers, body, seconds)."""
    t0 = time.monotonic()
    with connect(port, src=src) as s:
        if data:
            s.sendall(data)
        raw = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            raw += b
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return lines[0], hdrs, body, time.monotonic() - t0


def test_metrics_http_answers(tmp_path, sluice, backends):
    d = start(tmp_path, sluice, backends)
    st, h, body, _ = exchange(d.mport, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert st == "HTTP/1.1 200 OK" and h["connection"] == "close"
    assert int(h["content-length"]) == len(body) and b"sluice_info" in body
    # gzip when asked (Prometheus asks): the same text, compressed
    st, h, zbody, _ = exchange(d.mport, b"GET /metrics HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n")
    assert st == "HTTP/1.1 200 OK" and h["content-encoding"] == "gzip", h
    assert int(h["content-length"]) == len(zbody) < len(body)
    text = gzip.decompress(zbody)
    assert text.split(b"\n")[:3] == body.split(b"\n")[:3] and b"sluice_server_up" in text
    st, h, body, _ = exchange(d.mport, b"HEAD /metrics HTTP/1.1\r\n\r\n")
    assert st == "HTTP/1.1 200 OK" and body == b"" and int(h["content-length"]) > 1000
    cases = [
        (b"\x00GET /metrics HTTP/1.1\r\n\r\n", "400"),  # a NUL byte first
        (b"\x00", "400"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "400"),  # a TLS ClientHello
        (b"GET /metrics HTTP/1.1\r\nNo colon here\r\n\r\n", "400"),
        (b"GET /metrics HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 5000 + b"\r\n\r\n", "400"),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "405"),
        (b"DELETE / HTTP/1.1\r\n\r\n", "405"),
        (b"GET / HTTP/1.1\r\n\r\n", "404"),
        (b"GET /metrics/../x HTTP/1.1\r\n\r\n", "404"),
    ]
    for req, code in cases:
        st, h, body, dt = exchange(d.mport, req)
        assert st.split()[:2] == ["HTTP/1.1", code], (req[:40], st)
        assert h["connection"] == "close" and int(h["content-length"]) == len(body), h
        assert dt < 2.0 * SLOW, (req[:40], dt)  # answered at once, not at a timeout
        if code == "405":
            assert h["allow"] == "GET, HEAD"
    # and the port still serves
    assert exchange(d.mport, b"GET /metrics HTTP/1.1\r\n\r\n")[0] == "HTTP/1.1 200 OK"


def test_slow_request_does_not_hold_a_slot(tmp_path, sluice, backends):
    """One byte a second of a valid request: answered 408 and closed at the
    5 s deadline for the whole request, not kept alive by the trickle."""
    d = start(tmp_path, sluice, backends)
    req = b"GET /metrics HTTP/1.1\r\nHost: slow\r\n\r\n"
    s = connect(d.mport)
    t0 = time.monotonic()
    got = b""
    s.settimeout(1.0)
    for ch in req:
        try:
            s.send(bytes([ch]))
        except OSError:
            break
        try:
            b = s.recv(4096)  # also the pace of the trickle: one byte a second
        except socket.timeout:
            continue
        got += b
        if not b or b"\r\n\r\n" in got:
            break
    dt = time.monotonic() - t0
    s.close()
    assert got.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), got
    assert 4.0 < dt < 5.0 + 2.0 * SLOW, dt


def test_metrics_flood_does_not_lock_out_control(tmp_path, sluice, backends):
    """70 idle connections to the metrics port: the port refuses the ones
    over its own limit (503), and both control sockets still answer."""
    d = start(tmp_path, sluice, backends)
    held = [connect(d.mport, src="127.0.0.%d" % (2 + i % 200)) for i in range(70)]
    # the ones over the limit are answered 503 and closed at once
    refused = 0
    for s in held[64:]:
        s.settimeout(DEADLINE)
        data = s.recv(4096)
        refused += data.startswith(b"HTTP/1.1 503")
    assert refused == 6
    d.wait_log(r"refused a client: 64 clients already connected to the metrics port")
    for path in (d.admin, d.user):
        t0 = time.monotonic()
        with Ctl(path, timeout=5) as c:
            assert c.cmd("show info").startswith("version:")
        assert time.monotonic() - t0 < 1.0 * SLOW
    # the control socket has all of its own 64 slots
    ctls = [Ctl(d.user, timeout=5) for _ in range(64)]
    for c in ctls:
        assert c.cmd("show info").startswith("version:")
    for c in ctls:
        c.close()
    for s in held:
        s.close()


def test_control_flood_does_not_lock_out_metrics_or_admin(tmp_path, sluice, backends):
    """64 idle clients on the user socket: the admin socket and the metrics
    port are untouched, the 65th user client is told why."""
    d = start(tmp_path, sluice, backends)
    idle = []
    for _ in range(64):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(d.user)
        idle.append(s)
    with Ctl(d.admin, timeout=5) as c:
        assert c.cmd("show info").startswith("version:")
    assert exchange(d.mport, b"GET /metrics HTTP/1.1\r\n\r\n")[0] == "HTTP/1.1 200 OK"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(DEADLINE)
    s.connect(d.user)
    assert s.recv(4096) == b"error: too many control clients\n\n"
    s.close()
    for s in idle:
        s.close()


def test_lateness_figures_and_clear(tmp_path, sluice, backends):
    """show info has the lateness lines; clearing them is for admins only."""
    d = start(tmp_path, sluice, backends)
    with Ctl(d.user) as c:
        info = c.cmd("show info")
        assert "\nlate checks:       p50 " in info and "\nlate adverts:      p50 " in info
        assert c.cmd("clear lateness") == "error: permission denied\n"
        assert set(c.json("show info")["lateness"]) == {"checks", "adverts"}
    with Ctl(d.admin) as c:
        assert c.cmd("clear lateness") == "lateness histograms cleared\n"
        assert c.cmd("clear lateness now").startswith("error: wrong number of arguments")
    d.wait_log(r"notice: lateness histograms cleared \(control socket\)")
