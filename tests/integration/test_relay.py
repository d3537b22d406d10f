# Data relay: byte-exact bulk transfer both ways at once, half-close in each
# direction, and resets passed on as resets.
import hashlib
import socket
import threading

import pytest

from conftest import (DEADLINE, MiB, connect, duplex, free_port, h_close_first,
                      h_reply_after_eof, h_reset_after_read, linger0, make_conf, make_duplex,
                      read_to_end, recv_all, recv_exact)


def test_relay_64mib_each_way_one_connection(sluice, backends):
    n = 64 * MiB
    be = backends(make_duplex(n))
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr]))
    with connect(port, timeout=DEADLINE * 3) as s:
        r = duplex(s, n)
    (rec,) = be.wait_done(1)
    assert be.errors == []
    # client -> server
    assert rec["ngot"] == n and rec["got"] == r["sent"]
    # server -> client
    assert r["ngot"] == n and r["got"] == rec["sent"]
    (c,) = d.wait_conns(1)
    assert int(c["up"]) == n and int(c["down"]) == n and c["server"] == "a"


def test_relay_50_parallel_connections_both_ways(sluice, backends):
    n, conns = 4 * MiB, 50
    be = backends(make_duplex(n))
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr]))
    results, errors = [None] * conns, []

    def client(i):
        try:
            with connect(port, timeout=DEADLINE * 3) as s:
                results[i] = (s.getsockname()[1], duplex(s, n))
        except Exception as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE * 3)
    assert errors == []
    assert all(not t.is_alive() for t in threads)
    recs = be.wait_done(conns)
    assert be.errors == []
    assert be.max_active > 1, "the 50 connections were never concurrent"
    # match each client with the backend record of the same data
    by_sent = {r["got"]: r for r in recs}
    for port_i, r in results:
        assert r["ngot"] == n
        srv = by_sent.get(r["sent"])
        assert srv is not None, "client bytes never arrived intact at the backend"
        assert srv["ngot"] == n
        assert r["got"] == srv["sent"], "server bytes corrupted on the way to the client"
    logs = d.wait_conns(conns)
    assert all(int(c["up"]) == n and int(c["down"]) == n for c in logs)


def test_half_close_from_client(sluice, backends):
    """The client shuts its write side; the server answers only after EOF and
    the client still receives the whole answer."""
    be = backends(h_reply_after_eof)
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr]))
    data = bytes(range(256)) * 4096  # 1 MiB
    with connect(port) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        reply = recv_all(s)
    head, _, body = reply.partition(b"\n")
    assert head.decode() == "%s %d" % (hashlib.sha256(data).hexdigest(), len(data))
    assert body == data[::-1]
    (c,) = d.wait_conns(1)
    assert c["end"] == "client-closed"
    assert int(c["up"]) == len(data) and int(c["down"]) == len(reply)


def test_half_close_from_server(sluice, backends):
    """The server shuts its write side first; the client reads the EOF and
    can still send, and the server receives everything."""
    be = backends(h_close_first)
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr]))
    data = b"after your FIN, " * 65536  # 1 MiB
    with connect(port) as s:
        assert recv_all(s) == b"bye from server\n"  # EOF seen by the client
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s) == b""
    (rec,) = be.wait_done(1)
    assert rec["data"] == data
    (c,) = d.wait_conns(1)
    assert c["end"] == "server-closed"


def test_server_reset_reaches_client(sluice, backends):
    be = backends(h_reset_after_read)
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr]))
    with connect(port) as s:
        s.sendall(b"hello")
        with pytest.raises(ConnectionResetError):
            # bounded: each recv times out after DEADLINE, at most a few bytes come
            for _ in range(16):
                if s.recv(4096) == b"":
                    pytest.fail("client got a clean EOF instead of a reset")
    (rec,) = be.wait_done(1)
    assert rec["first"] == b"hello"
    (c,) = d.wait_conns(1)
    assert c["end"] == "server-reset"


def h_read_then_hold(b, c, rec):
    rec["first"] = recv_exact(c, 10)
    read_to_end(c, rec)


def test_client_reset_reaches_server(sluice, backends):
    be = backends(h_read_then_hold)
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr]))
    s = connect(port)
    s.sendall(b"some bytes")
    # the bytes reached the backend before the client resets
    be.wait(lambda b: b.records and b.records[0].get("first") == b"some bytes",
            what="the first bytes")
    linger0(s)
    s.close()
    (rec,) = be.wait_done(1)
    assert rec["end"] == "reset", "server saw %r instead of a reset" % rec.get("end")
    (c,) = d.wait_conns(1)
    assert c["end"] == "client-reset"
