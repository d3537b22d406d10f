"""TLS routing by SNI and ALPN without terminating TLS (issue 14): real
clients (Python's ssl, openssl s_client) through sluice to openssl s_server
backends, each with its own certificate from a test CA. Each name lands on
its pool, the handshake completes end to end with the backend's
certificate, hellos cut into 1-byte segments, two records or larger than
4 KiB are routed the same, and the log and `show routes` say what
happened."""
import subprocess

from conftest import Ctl, connect, ctl_global, free_port
from tls_fixtures import (MemTLS, pki, send_bytewise, split_records, sservers,  # noqa: F401
                          tls_get)


def routes_conf(port, sock, be, extra=""):
    pools = "".join("pool %s { server s %s; }\n" % (n, b.addr) for n, b in be.items())
    return ("global { workers 2; log stderr info; %s }\n%s"
            "listen tls {\n"
            "    bind 127.0.0.1:%d;\n"
            "    route sni api.example.com pool api;\n"
            "    route sni xn--bcher-kva.example pool idn;\n"
            "    route sni *.example.com pool web;\n"
            "    route sni app.example.net alpn h2 pool app;\n"
            "    route alpn acme-tls/1 pool acme;\n"
            "    route no-sni pool legacy;\n"
            "    pool dflt;\n"
            "    %s\n"
            "}\n" % (ctl_global(sock), pools, port, extra))


def start(sluice, sservers, short_dir, extra=""):
    be = {
        "api": sservers("api", "api.example.com"),
        "idn": sservers("idn", "xn--bcher-kva.example"),
        "web": sservers("web", "*.example.com"),
        "app": sservers("app", "app.example.net"),
        "acme": sservers("acme", "acme.example.org"),
        "legacy": sservers("legacy", "legacy.test"),
        "dflt": sservers("dflt", "default.test"),
    }
    port = free_port()
    sock = short_dir + "/ctl.sock"
    d = sluice(routes_conf(port, sock, be, extra))
    return d, port, sock, be


def test_each_name_reaches_its_backend(sluice, sservers, short_dir, pki):
    d, port, sock, be = start(sluice, sservers, short_dir)
    cases = [
        # (SNI, ALPN offered, certificate CN seen, ALPN chosen, log sni, log alpn)
        ("api.example.com", None, "api.example.com", None, "api.example.com", "-"),
        ("API.Example.COM", ["http/1.1"], "api.example.com", "http/1.1", "api.example.com",
         "http/1.1"),
        ("www.example.com", ["h2", "http/1.1"], "*.example.com", "h2", "www.example.com",
         "h2,http/1.1"),
        ("a.b.example.com", None, "default.test", None, "a.b.example.com", "-"),
        ("app.example.net", ["h2", "http/1.1"], "app.example.net", "h2", "app.example.net",
         "h2,http/1.1"),
        ("app.example.net", ["http/1.1"], "default.test", "http/1.1", "app.example.net",
         "http/1.1"),
        ("acme.example.org", ["acme-tls/1"], "acme.example.org", "acme-tls/1",
         "acme.example.org", "acme-tls/1"),
        # the first route that matches wins: the wildcard comes before alpn
        ("www.example.com", ["acme-tls/1"], "*.example.com", "acme-tls/1", "www.example.com",
         "acme-tls/1"),
        (None, None, "legacy.test", None, "-", "-"),
        # Python sends a U-label as its A-label, which the route names
        ("b\u00fccher.example", None, "xn--bcher-kva.example", None, "xn--bcher-kva.example",
         "-"),
        ("other.test", ["h2"], "default.test", "h2", "other.test", "h2"),
    ]
    for i, (sni, alpn, cn, chosen, _, _) in enumerate(cases):
        got = tls_get(port, pki.ca, sni, alpn, src="127.0.0.%d" % (i + 2))
        assert got[0] == cn, (sni, alpn, got[0])
        assert got[1] == chosen, (sni, alpn, got[1])
        assert got[2].startswith(b"HTTP/1.0 200 ok"), got[2][:40]
    conns = d.wait_conns(len(cases))
    for i, (sni, alpn, cn, _, lsni, lalpn) in enumerate(cases):
        (c,) = [c for c in conns if c["client"].startswith("127.0.0.%d:" % (i + 2))]
        assert (c["sni"], c["alpn"], c["end"]) == (lsni, lalpn, "client-closed"), c
        assert c["pool"] == [n for n, b in be.items() if b.cn == cn][0], c
    with Ctl(sock) as ctl:
        rows = ctl.json("show routes")
        listeners = ctl.json("show listeners")
        table = ctl.cmd("show routes tls")
    total = {(r["kind"], r["sni"], r["alpn"]): r["connections_total"] for r in rows}
    assert total[("sni", "api.example.com", "")] == 2
    assert total[("sni", "*.example.com", "")] == 2
    assert total[("sni", "app.example.net", "h2")] == 1
    assert total[("alpn", "", "acme-tls/1")] == 1
    assert total[("no-sni", "", "")] == 1
    assert total[("sni", "xn--bcher-kva.example", "")] == 1
    assert total[("default", "", "")] == 3
    assert all(r["active"] == 0 for r in rows if r["kind"] != "closed")
    assert all(r["connections_total"] == 0 for r in rows if r["kind"] == "closed")
    assert [r["pool"] for r in rows if r["kind"] == "default"] == ["dflt"]
    (lt,) = listeners
    assert lt["routes"] == 6 and lt["pool"] == "dflt"
    assert "tls     sni app.example.net alpn h2  app" in table, table
    assert "tls     closed: hello-timeout" in table, table


def test_openssl_s_client(sluice, sservers, short_dir, pki):
    d, port, sock, be = start(sluice, sservers, short_dir)
    for name, alpn, cn in (("API.example.com.", "h2", "api.example.com"),
                           ("app.example.net", "h2", "app.example.net"),
                           ("shop.example.com", "http/1.1", "*.example.com")):
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                            "-servername", name, "-alpn", alpn, "-CAfile", pki.ca,
                            "-verify_return_error", "-ign_eof"],
                           input=b"GET / HTTP/1.0\r\n\r\n", capture_output=True, timeout=30)
        out = r.stdout.decode("utf-8", "replace")
        assert r.returncode == 0, out + r.stderr.decode()
        assert "subject=CN = %s" % cn in out, out
        assert "ALPN protocol: %s" % alpn in out, out
        assert "Verify return code: 0 (ok)" in out, out
        assert "HTTP/1.0 200 ok" in out, out
    conns = d.wait_conns(3)
    assert sorted(c["sni"] for c in conns) == ["api.example.com", "app.example.net",
                                               "shop.example.com"]


def test_hello_in_pieces_and_large(sluice, sservers, short_dir, pki):
    """The same routing whatever the hello looks like on the wire; each
    handshake completes with the backend's certificate."""
    d, port, sock, be = start(sluice, sservers, short_dir)

    def through(tls, send):
        with connect(port) as s:
            send(s, tls.hello)
            return tls.pump(s)

    # 1-byte TCP segments
    tls = MemTLS(pki.ca, "api.example.com", ["h2"])
    assert through(tls, send_bytewise)[:2] == ("api.example.com", "h2")
    # two records, cut inside the extensions; and cut inside the handshake header
    tls = MemTLS(pki.ca, "app.example.net", ["h2", "http/1.1"])
    got = through(tls, lambda s, h: s.sendall(split_records(h, [len(h) // 2])))
    assert got[:2] == ("app.example.net", "h2") and got[2].startswith(b"HTTP/1.0 200 ok")
    tls = MemTLS(pki.ca, "www.example.com")
    assert through(tls, lambda s, h: s.sendall(split_records(h, [2, 3, 100])))[0] == \
        "*.example.com"
    # larger than 4 KiB: many ALPN protocols (the matching one last)
    tls = MemTLS(pki.ca, "acme.example.org", ["x%02d-" % i + "y" * 200 for i in range(22)]
                 + ["acme-tls/1"])
    assert len(tls.hello) > 4096
    got = through(tls, lambda s, h: s.sendall(h))
    assert got[:2] == ("acme.example.org", "acme-tls/1")
    # and in 1-byte segments too
    tls = MemTLS(pki.ca, "api.example.com", ["z" * 250] * 20 + ["h2"])
    assert len(tls.hello) > 4096
    assert through(tls, lambda s, h: send_bytewise(s, h, 0))[0] == "api.example.com"
    conns = d.wait_conns(5)
    assert sorted(c["pool"] for c in conns) == ["acme", "api", "api", "app", "web"]
    acme = [c for c in conns if c["pool"] == "acme"][0]
    assert acme["alpn"].endswith("...") and len(acme["alpn"]) <= 96, acme
    assert all(int(c["up"]) > 0 and c["end"] == "client-closed" for c in conns), conns
