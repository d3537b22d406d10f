# PROXY protocol: send-proxy v1/v2 gives the backend the client's address and
# the listener's; accept-proxy takes the address from the client's header;
# a malformed or missing header closes the connection (bad-proxy-header).
import socket

import pytest

from conftest import (build_proxy_v1, build_proxy_v2, connect, free_port, h_proxy_echo,
                      make_conf, recv_exact)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_send_proxy_gives_client_and_listener_address(sluice, backends, version):
    be = backends(h_proxy_echo)
    port = free_port()
    d = sluice(make_conf(port, ["a %s send-proxy %s" % (be.addr, version)]))
    with connect(port, src="127.0.0.7") as s:
        client = s.getsockname()[:2]
        s.sendall(b"payload after the header")
        assert recv_exact(s, 24) == b"payload after the header"
    (rec,) = be.wait_done(1)
    hdr = rec["hdr"]
    assert hdr["version"] == int(version[1])
    assert hdr["family"] == "TCP4"
    assert hdr["src"] == client
    assert hdr["dst"] == ("127.0.0.1", port)
    if version == "v1":
        assert rec["raw"] == ("PROXY TCP4 %s 127.0.0.1 %d %d\r\n"
                              % (client[0], client[1], port)).encode()
    else:
        assert hdr["command"] == 1 and hdr["famproto"] == 0x11 and hdr["len"] == 12
        assert rec["raw"] == build_proxy_v2(client, ("127.0.0.1", port))
    assert rec["nread"] == 24  # nothing but the header before the payload
    d.wait_conns(1)


def test_pool_send_proxy_default_and_server_override(sluice, backends):
    a, b = backends(h_proxy_echo, name="a"), backends(h_proxy_echo, name="b")
    port = free_port()
    sluice(make_conf(port, ["a %s" % a.addr, "b %s send-proxy v2" % b.addr],
                     pool_extra="send-proxy v1;"))
    for _ in range(2):
        with connect(port) as s:
            s.sendall(b"x")
            assert recv_exact(s, 1) == b"x"
    (ra,) = a.wait_done(1)
    (rb,) = b.wait_done(1)
    assert ra["hdr"]["version"] == 1 and rb["hdr"]["version"] == 2


@pytest.mark.parametrize("builder", [build_proxy_v1, build_proxy_v2], ids=["v1", "v2"])
@pytest.mark.parametrize("send", ["v1", "v2"])
def test_accept_proxy_passes_the_header_address_on(sluice, backends, builder, send):
    be = backends(h_proxy_echo)
    port = free_port()
    d = sluice(make_conf(port, ["a %s send-proxy %s" % (be.addr, send)],
                         listen_extra="accept-proxy;"))
    src, dst = ("127.1.2.3", 4242), ("127.0.0.9", 8443)
    with connect(port) as s:
        s.sendall(builder(src, dst) + b"hello")
        assert recv_exact(s, 5) == b"hello"
    (rec,) = be.wait_done(1)
    assert rec["hdr"]["src"] == src and rec["hdr"]["dst"] == dst
    assert rec["hdr"]["version"] == int(send[1])
    (c,) = d.wait_conns(1)
    assert c["client"] == "127.1.2.3:4242", "the log names the address from the header"
    # the payload that came in the header's segment counts, the header does not
    assert (c["up"], c["down"]) == ("5", "5"), c


def test_accept_proxy_header_in_pieces(sluice, backends):
    be = backends(h_proxy_echo)
    port = free_port()
    sluice(make_conf(port, ["a %s send-proxy v1" % be.addr], listen_extra="accept-proxy;"))
    hdr = build_proxy_v2(("127.3.3.3", 1000), ("127.0.0.1", 2000))
    with connect(port) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(hdr), 5):
            s.sendall(hdr[i:i + 5])
        s.sendall(b"ok")
        assert recv_exact(s, 2) == b"ok"
    (rec,) = be.wait_done(1)
    assert rec["raw"] == b"PROXY TCP4 127.3.3.3 127.0.0.1 1000 2000\r\n"


@pytest.mark.parametrize("data", [
    b"PROXY TCP4 127.0.0.1 nonsense\r\nhello",
    b"PROXY TCP4 127.0.0.1 127.0.0.2 65536 80\r\nhello",
    b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + bytes(12) + b"hello",  # version 3
    b"GET / HTTP/1.0\r\n\r\n",  # no header at all
], ids=["v1-garbage", "v1-port-range", "v2-bad-version", "missing"])
def test_bad_or_missing_header_closes(sluice, backends, data):
    be = backends(h_proxy_echo)
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr], listen_extra="accept-proxy;"))
    with connect(port) as s:
        s.sendall(data)
        try:
            got = s.recv(100)
        except ConnectionResetError:
            got = b""
        assert got == b"", "the client was served: %r" % got
    (c,) = d.wait_conns(1)
    assert c["end"] == "bad-proxy-header" and c["server"] == "-", c
    assert be.total == 0
