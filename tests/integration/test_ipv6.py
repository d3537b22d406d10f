# IPv6: a listener on [::1] relaying to a server on [::1], a v4 listener
# relaying to a v6 server, and send-proxy over IPv6.
import hashlib
import socket

from conftest import connect, free_port, h_echo, h_proxy_echo, make_conf, recv_exact


def echo_round(port, host, n=256 * 1024):
    with connect(port, host) as s:
        data = bytes(range(256)) * (n // 256)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = recv_exact(s, n)
        assert s.recv(1) == b""
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_ipv6_listener_to_ipv6_server(sluice, backends):
    be = backends(h_echo, host="::1")
    port = free_port("::1")
    d = sluice(make_conf(port, ["a %s" % be.addr], host="::1"))
    echo_round(port, "::1")
    (c,) = d.wait_conns(1)
    assert c["client"].startswith("[::1]:") and c["server"] == "a"
    assert be.records[0]["peer"][0] == "::1"


def test_ipv4_client_to_ipv6_server(sluice, backends):
    be = backends(h_echo, host="::1")
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr]))
    echo_round(port, "127.0.0.1")
    (c,) = d.wait_conns(1)
    assert c["client"].startswith("127.0.0.1:") and c["end"] == "client-closed"


def test_ipv6_send_proxy_v2(sluice, backends):
    be = backends(h_proxy_echo, host="::1")
    port = free_port("::1")
    sluice(make_conf(port, ["a %s send-proxy v2" % be.addr], host="::1"))
    with connect(port, "::1") as s:
        client = s.getsockname()[:2]
        s.sendall(b"six")
        assert recv_exact(s, 3) == b"six"
    (rec,) = be.wait_done(1)
    assert rec["hdr"]["family"] == "TCP6" and rec["hdr"]["len"] == 36
    assert rec["hdr"]["src"] == client and rec["hdr"]["dst"] == ("::1", port)
