"""TLS routing: the bytes and the edges. The backend gets the client's
stream byte for byte (the hello and whatever followed it); garbage, HTTP
on the TLS port, an SSL 2.0 hello and malformed or oversized hellos each
have their defined outcome, logged and counted; a client that stalls
half-way through its hello is closed at timeout client-hello, and 1 000
of them do not delay anyone else; a reload changes routes for new
connections only and keeps the counters of routes it did not change."""
import os
import selectors
import socket
import struct
import time

from conftest import (SLOW, Ctl, build_proxy_v1, connect, ctl_global, free_port, h_echo_tag,
                      recv_all, recv_exact)
from tls_fixtures import (client_hello, crafted_hello, ext, ext_alpn, ext_sni, pki,  # noqa: F401
                          sservers, sslv2_hello, tls_get)


def h_record(b, c, rec):
    """Read to EOF, keep every byte, answer with a short receipt."""
    rec["data"] = recv_all(c)
    c.sendall(b"receipt " + b.name.encode())
    c.shutdown(socket.SHUT_WR)


def closed_without_reply(s):
    """The proxy closed s without sending anything (EOF or reset)."""
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def rows_by_kind(sock):
    with Ctl(sock) as ctl:
        rows = ctl.json("show routes")
    out = {}
    for r in rows:
        key = r["reason"] if r["kind"] == "closed" else (r["kind"], r["sni"] or r["alpn"])
        out[(r["listen"], key)] = r
    return out


def edge_conf(sock, port1, port2, rec, legacy, plain, extra=""):
    return ("global { workers 2; log stderr info; %s }\n"
            "pool rec { server s %s; }\npool legacy { server s %s; }\npool plain { server s %s; }\n"
            "listen t1 {\n    bind 127.0.0.1:%d;\n"
            "    route sni a.example.com pool rec;\n"
            "    route no-sni pool legacy;\n"
            "    pool rec;\n    %s\n}\n"
            "listen t2 {\n    bind 127.0.0.1:%d;\n"
            "    route not-tls pool plain;\n"
            "    route sni a.example.com pool rec;\n"
            "}\n" % (ctl_global(sock), rec.addr, legacy.addr, plain.addr, port1, extra, port2))


def send_and_read(port, data, shut=True):
    with connect(port) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        return recv_all(s)


def edge_setup(sluice, backends, short_dir):
    """Recording backends rec, legacy, plain and a daemon with edge_conf."""
    rec = backends(h_record, name="rec")
    legacy = backends(h_record, name="legacy")
    plain = backends(h_record, name="plain")
    p1, p2, sock = free_port(), free_port(), short_dir + "/ctl.sock"
    d = sluice(edge_conf(sock, p1, p2, rec, legacy, plain))
    return d, p1, p2, sock, rec, legacy, plain


def test_stream_is_byte_identical(sluice, backends, short_dir):
    d, p1, p2, sock, rec, legacy, plain = edge_setup(sluice, backends, short_dir)
    hello = client_hello("a.example.com", ["h2"])
    # the hello, a ChangeCipherSpec and early data in one segment
    stream = hello + b"\x14\x03\x03\x00\x01\x01" + b"\x17\x03\x03\x00\x05" + os.urandom(5)
    assert send_and_read(p1, stream) == b"receipt rec"
    # the hello in two records, then 100 KiB more in the same send
    two = (b"\x16\x03\x01\x00\x30" + hello[5:5 + 0x30] + b"\x16\x03\x01"
           + struct.pack("!H", len(hello) - 5 - 0x30) + hello[5 + 0x30:])
    bulk = os.urandom(100 * 1024)
    assert send_and_read(p1, two + bulk) == b"receipt rec"
    # SSL 2.0-format hello: a hello without a name
    v2 = sslv2_hello()
    assert send_and_read(p1, v2 + b"after") == b"receipt legacy"
    # not TLS: HTTP and binary garbage to the not-tls route
    http = b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n"
    assert send_and_read(p2, http) == b"receipt plain"
    garbage = b"\x00" + os.urandom(3000)
    assert send_and_read(p2, garbage) == b"receipt plain"
    got = [r["data"] for r in rec.wait_done(2)]
    assert sorted(got, key=len) == [stream, two + bulk]
    assert [r["data"] for r in legacy.wait_done(1)] == [v2 + b"after"]
    assert sorted(r["data"] for r in plain.wait_done(2)) == sorted([http, garbage])
    conns = d.wait_conns(5)
    ups = sorted((c["listener"], c["pool"], int(c["up"]), c["sni"], c["alpn"]) for c in conns)
    assert ups == sorted([("t1", "rec", len(stream), "a.example.com", "h2"),
                          ("t1", "rec", len(two + bulk), "a.example.com", "h2"),
                          ("t1", "legacy", len(v2) + 5, "-", "-"),
                          ("t2", "plain", len(http), "-", "-"),
                          ("t2", "plain", len(garbage), "-", "-")])


def test_defined_outcomes(sluice, backends, short_dir):
    """What is not a routable hello: each closed with its reason, counted."""
    d, p1, p2, sock, rec, legacy, plain = edge_setup(sluice, backends, short_dir)
    big = b"\x01" + struct.pack("!I", 20000)[1:] + b"\x03\x03"
    frag = crafted_hello(ext_sni(b"a.example.com") + ext(21, b"\x00" * 9000))
    msg = frag[5:]
    tiny = b"".join(b"\x16\x03\x01\x00\x01" + msg[i:i + 1] for i in range(len(msg)))
    bad = [
        # (listener port, bytes, expected end, reason logged or None)
        (p1, b"GET / HTTP/1.0\r\n\r\n", "not-tls", None),  # no not-tls route: closed
        (p1, b"\x00" + os.urandom(200), "not-tls", None),
        (p1, crafted_hello(ext_sni(b"a.example.com") + ext_sni(b"b.example.com")), "bad-hello",
         "duplicate server_name extension"),
        (p1, crafted_hello(ext(16, b"\x00\x00")), "bad-hello", "empty ALPN list"),
        (p1, b"\x16\x03\x01\x00\x08" + b"\x02\x00\x00\x04\x03\x03\x00\x00", "bad-hello",
         "the first handshake message is not a ClientHello"),
        (p1, b"\x16\x03\x01\x40\x00" + big, "bad-hello", "ClientHello longer than 16384 bytes"),
        (p1, tiny, "bad-hello", "ClientHello records larger than the peek buffer"),
        (p2, client_hello("nobody.example.net"), "no-route", None),  # no default pool
    ]
    for port, data, _, _ in bad:
        with connect(port) as s:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed before it had everything: the verdict came early
            assert closed_without_reply(s)
    # a name that is not a DNS name routes nowhere by name: the default pool
    utf8 = crafted_hello(ext_sni("b\u00fccher.example.com".encode()) + ext_alpn([b"h2"]))
    assert send_and_read(p1, utf8) == b"receipt rec"
    # a client that leaves half-way
    with connect(p1) as s:
        s.sendall(client_hello("a.example.com")[:60])
    conns = d.wait_conns(len(bad) + 2)
    for _, _, end, reason in bad:
        assert any(c["end"] == end for c in conns), (end, conns)
        if reason:
            d.wait_log(r"info: conn t1 127\.0\.0\.1:\d+: bad ClientHello: %s$" % reason)
    assert [c["end"] for c in conns].count("bad-hello") == 5
    assert all(c["pool"] == "-" and c["server"] == "-" for c in conns if c["end"] in
               ("bad-hello", "not-tls", "no-route"))
    (nr,) = [c for c in conns if c["end"] == "no-route"]
    assert (nr["listener"], nr["sni"]) == ("t2", "nobody.example.net")
    (u,) = [c for c in conns if c["pool"] == "rec"]
    assert u["sni"] == "b??cher.example.com" and u["alpn"] == "h2"
    gone = [c for c in conns if c["end"] == "client-closed" and c["pool"] == "-"]
    assert len(gone) == 1 and gone[0]["up"] == "60"
    rows = rows_by_kind(sock)
    assert rows[("t1", "not-tls")]["connections_total"] == 2
    assert rows[("t1", "bad-hello")]["connections_total"] == 5
    assert rows[("t1", "client-gone")]["connections_total"] == 1
    assert rows[("t1", ("default", ""))]["connections_total"] == 1
    assert rows[("t2", "no-route")]["connections_total"] == 1
    assert rows[("t2", ("default", ""))]["pool"] is None
    with Ctl(sock) as ctl:
        metrics = ctl.cmd("show metrics").splitlines()
    for line in ('sluice_listener_unrouted_total{listener="t1",reason="bad-hello"} 5',
                 'sluice_listener_unrouted_total{listener="t2",reason="no-route"} 1',
                 'sluice_route_connections_total{listener="t1",route="default",pool="rec"} 1',
                 'sluice_route_connections_total{listener="t1",route="sni a.example.com",'
                 'pool="rec"} 0',
                 'sluice_route_connections{listener="t1",route="no-sni",pool="legacy"} 0'):
        assert line in metrics, "\n".join(m for m in metrics if "route" in m)


def test_stalled_hellos_time_out_and_delay_nobody(sluice, sservers, short_dir, pki):
    timeout = 3.0 * SLOW
    be = sservers("api", "api.example.com")
    port, sock = free_port(), short_dir + "/ctl.sock"
    d = sluice("global { workers 2; log stderr info; %s }\n"
               "pool api { server s %s; }\n"
               "listen tls { bind 127.0.0.1:%d; route sni api.example.com pool api; "
               "timeout client-hello %dms; }\n" % (ctl_global(sock), be.addr, port,
                                                   int(timeout * 1000)))
    half = client_hello("api.example.com")[:200]
    # one first, to see when exactly it is closed
    t0 = time.monotonic()
    with connect(port) as s:
        s.sendall(half)
        s.settimeout(timeout * 3)
        assert closed_without_reply(s)
        waited = time.monotonic() - t0
    assert timeout - 0.05 <= waited <= timeout + 1.0 * SLOW, waited
    # 1 000 of them, from another address
    stalled = []
    t_open = time.monotonic()
    for _ in range(1000):
        s = connect(port, src="127.0.0.2")
        s.sendall(half)
        stalled.append(s)
    # meanwhile real clients are served at once
    for i in range(20):
        t = time.monotonic()
        cn, _, reply = tls_get(port, pki.ca, "api.example.com", src="127.0.0.3")
        assert cn == "api.example.com" and reply.startswith(b"HTTP/1.0 200 ok")
        assert time.monotonic() - t < timeout / 3, "a handshake waited %.2fs" % (
            time.monotonic() - t)
    assert time.monotonic() - t_open < timeout, "the test itself was too slow to tell"
    # every stalled client is closed at its deadline, none before
    sel = selectors.DefaultSelector()
    for s in stalled:
        sel.register(s, selectors.EVENT_READ)
    left, end = len(stalled), time.monotonic() + timeout * 4
    while left and time.monotonic() < end:
        for key, _ in sel.select(1.0):
            assert time.monotonic() - t_open >= timeout - 0.05
            assert closed_without_reply(key.fileobj)
            sel.unregister(key.fileobj)
            left -= 1
    sel.close()
    for s in stalled:
        s.close()
    assert left == 0, "%d stalled clients were not closed" % left
    conns = d.wait_conns(1001, end="hello-timeout")
    assert all(c["up"] == "200" and c["pool"] == "-" for c in conns)
    assert rows_by_kind(sock)[("tls", "hello-timeout")]["connections_total"] == 1001


def test_reload_changes_routes_for_new_connections(sluice, backends, short_dir):
    a, b = backends(h_echo_tag, name="a"), backends(h_echo_tag, name="b")
    port, sock = free_port(), short_dir + "/ctl.sock"

    def conf(x_pool):
        return ("global { workers 2; log stderr info; %s }\n"
                "pool a { server s %s; }\npool b { server s %s; }\n"
                "listen tls {\n    bind 127.0.0.1:%d;\n"
                "    route sni x.example.com pool %s;\n"
                "    route sni y.example.com pool b;\n"
                "    pool a;\n}\n" % (ctl_global(sock), a.addr, b.addr, port, x_pool))
    d = sluice(conf("a"))
    hx, hy = client_hello("x.example.com"), client_hello("y.example.com")
    held = connect(port)
    held.sendall(hx)
    assert recv_exact(held, len(hx)) == hx  # echoed by a
    with connect(port) as s:
        s.sendall(hy)
        assert recv_exact(s, len(hy)) == hy
    b.wait_done(1)
    with open(d.conf_path, "w") as f:
        f.write(conf("b"))
    with Ctl(sock) as ctl:
        check = ctl.ok("reload check")
        assert "listen tls: routes changed (2 routes; open connections keep their pool)" \
            in check, check
        ctl.ok("reload")
    # the open connection stays with a; a new one goes to b
    held.sendall(b"still a")
    assert recv_exact(held, 7) == b"still a"
    held.close()
    with connect(port) as s:
        s.sendall(hx)
        assert recv_exact(s, len(hx)) == hx
    ra = a.wait_done(1)
    assert len(ra) == 1 and ra[0]["nread"] == len(hx) + 7
    assert len(b.wait_done(2)) == 2
    conns = d.wait_conns(3)
    assert sorted((c["sni"], c["pool"]) for c in conns) == [
        ("x.example.com", "a"), ("x.example.com", "b"), ("y.example.com", "b")]
    rows = rows_by_kind(sock)
    assert rows[("tls", ("sni", "y.example.com"))]["connections_total"] == 1  # kept
    assert rows[("tls", ("sni", "x.example.com"))]["connections_total"] == 1  # new route
    assert rows[("tls", ("sni", "x.example.com"))]["pool"] == "b"


def test_accept_proxy_then_hello(sluice, backends):
    rec = backends(h_record, name="rec")
    port = free_port()
    d = sluice("global { workers 1; log stderr info; }\n"
               "pool rec { server s %s; }\n"
               "listen tls { bind 127.0.0.1:%d; accept-proxy; route sni a.example.com pool rec; }\n"
               % (rec.addr, port))
    hello = client_hello("a.example.com", ["h2"])
    hdr = build_proxy_v1(("127.9.9.9", 4321), ("127.0.0.1", port))
    assert send_and_read(port, hdr + hello + b"tail") == b"receipt rec"
    assert rec.wait_done(1)[0]["data"] == hello + b"tail"
    (c,) = d.wait_conns(1)
    assert (c["client"], c["sni"], c["alpn"]) == ("127.9.9.9:4321", "a.example.com", "h2")
    # what came with the header counts as the client's bytes (not the header)
    assert int(c["up"]) == len(hello) + 4 and int(c["down"]) == len(b"receipt rec"), c


def test_show_routes_errors(sluice, backends, short_dir):
    rec = backends(h_record, name="rec")
    port, sock = free_port(), short_dir + "/ctl.sock"
    sluice("global { workers 1; %s }\npool rec { server s %s; }\n"
           "listen plain { bind 127.0.0.1:%d; pool rec; }\n" % (ctl_global(sock), rec.addr, port))
    with Ctl(sock) as ctl:
        assert ctl.cmd("show routes nope") == "error: no listener 'nope'\n"
        assert ctl.json("show routes") == []
        assert ctl.json("show listeners")[0]["routes"] == 0
        assert ctl.cmd("show routes plain") == "listen  route  pool  active  total\n"
