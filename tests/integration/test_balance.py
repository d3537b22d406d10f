# Server choice: each balancing algorithm's distribution, retries past a dead
# server, backup servers, and what happens when no server is usable.
import collections
import socket
import time

from conftest import (DEADLINE, connect, free_port, get_name, h_name, make_conf, recv_line,
                      wait_until)


def names(port, count, src=None):
    return collections.Counter(get_name(port, src=src) for _ in range(count))


def held(port, src=None):
    """A connection held open; returns (socket, server name)."""
    s = connect(port, src=src)
    line = recv_line(s)
    assert line.endswith(b"\n"), "no name line (got %r)" % line
    return s, line.decode().strip()


def close_and_wait(d, socks, before):
    """Close client sockets and wait until sluice logged their end (the
    server slot is released right after the line is queued)."""
    for s in socks:
        s.close()
    d.wait_conns(before + len(socks))


def test_roundrobin_weights_3_to_1(sluice, backends):
    a, b = backends(h_name, name="a"), backends(h_name, name="b")
    port = free_port()
    sluice(make_conf(port, ["a %s weight 3" % a.addr, "b %s weight 1" % b.addr]))
    got = names(port, 400)
    assert set(got) == {"a", "b"}
    assert 280 <= got["a"] <= 320 and 80 <= got["b"] <= 120, got


def test_leastconn_prefers_fewer_open_connections(sluice, backends):
    a, b = backends(h_name, name="a"), backends(h_name, name="b")
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % a.addr, "b %s" % b.addr], balance="leastconn"))
    socks = [held(port) for _ in range(4)]
    placed = collections.Counter(n for _, n in socks)
    assert placed == {"a": 2, "b": 2}, "leastconn did not even out 4 connections: %r" % placed
    # close both on a: now a has 0 open, b has 2
    close_and_wait(d, [s for s, n in socks if n == "a"], 0)
    a.wait(lambda be: be.active == 0, what="a idle")
    new = [held(port) for _ in range(2)]
    assert [n for _, n in new] == ["a", "a"], "new connections went to the busier server"
    for s, _ in socks + new:
        s.close()


def test_random_follows_weights_sequential(sluice, backends):
    """Connections one after another, each finished before the next starts
    (no load on either server): the split follows the 3:1 weights."""
    a, b = backends(h_name, name="a"), backends(h_name, name="b")
    port = free_port()
    d = sluice(make_conf(port, ["a %s weight 3" % a.addr, "b %s weight 1" % b.addr],
                         balance="random"))
    got = collections.Counter()
    for i in range(400):
        got[get_name(port)] += 1
        d.wait_conns(i + 1)
    # expected 300:100; binomial sd is about 9, so +-40 is > 4 sd
    assert 260 <= got["a"] <= 340 and 60 <= got["b"] <= 140, got


def test_random_follows_weights_under_load(sluice, backends):
    """400 connections held open at once: the split follows the weights."""
    a, b = backends(h_name, name="a"), backends(h_name, name="b")
    port = free_port()
    sluice(make_conf(port, ["a %s weight 3" % a.addr, "b %s weight 1" % b.addr],
                     balance="random"))
    socks = [held(port) for _ in range(400)]
    got = collections.Counter(n for _, n in socks)
    for s, _ in socks:
        s.close()
    assert 260 <= got["a"] <= 340 and 60 <= got["b"] <= 140, got


def test_maglev_same_client_same_server_and_spread(sluice, backends):
    bes = [backends(h_name, name=n) for n in ("a", "b", "c")]
    port = free_port()
    sluice(make_conf(port, ["%s %s" % (be.name, be.addr) for be in bes], balance="maglev"))
    chosen = {}
    for i in range(2, 42):
        src = "127.0.%d.%d" % (i // 200, i % 200 + 2)
        got = names(port, 5, src=src)
        assert len(got) == 1, "client %s was sent to several servers: %r" % (src, got)
        chosen[src] = next(iter(got))
    spread = collections.Counter(chosen.values())
    # 40 clients over 3 servers of equal weight: each gets some
    assert set(spread) == {"a", "b", "c"}, spread
    assert max(spread.values()) <= 28, spread


def test_first_fills_servers_in_order(sluice, backends):
    bes = [backends(h_name, name=n) for n in ("a", "b", "c")]
    port = free_port()
    d = sluice(make_conf(port, ["a %s maxconn 2" % bes[0].addr, "b %s maxconn 2" % bes[1].addr,
                                "c %s" % bes[2].addr], balance="first"))
    socks = [held(port) for _ in range(5)]
    assert [n for _, n in socks] == ["a", "a", "b", "b", "c"]
    close_and_wait(d, [socks[0][0]], 0)
    s, n = held(port)
    assert n == "a", "a slot freed on the first server but the next went to %s" % n
    s.close()
    for s, _ in socks[1:]:
        s.close()


def test_dead_server_skipped_by_retries(sluice, backends):
    live = backends(h_name, name="live")
    dead = "127.0.0.1:%d" % free_port()
    port = free_port()
    d = sluice(make_conf(port, ["dead %s" % dead, "live %s" % live.addr],
                         listen_extra="retries 2;"))
    got = names(port, 100)  # any client error raises here
    assert got == {"live": 100}
    logs = d.wait_conns(100)
    assert all(c["server"] == "live" for c in logs), [c for c in logs if c["server"] != "live"]
    assert all(c["end"] in ("client-closed", "server-closed") for c in logs)


def test_backup_unused_while_a_primary_works(sluice, backends):
    p, bk = backends(h_name, name="p"), backends(h_name, name="bk")
    port = free_port()
    sluice(make_conf(port, ["p %s" % p.addr, "bk %s backup" % bk.addr]))
    assert names(port, 30) == {"p": 30}
    assert bk.total == 0


def test_backup_used_when_all_primaries_dead(sluice, backends):
    bk = backends(h_name, name="bk")
    dead1, dead2 = free_port(), free_port()
    port = free_port()
    d = sluice(make_conf(port, ["p1 127.0.0.1:%d" % dead1, "p2 127.0.0.1:%d" % dead2,
                                "bk %s backup" % bk.addr], listen_extra="retries 2;"))
    assert names(port, 20) == {"bk": 20}
    logs = d.wait_conns(20)
    assert {c["server"] for c in logs} == {"bk"}


def test_all_servers_dead_closes_client_connect_failed(sluice, backends):
    dead1, dead2 = free_port(), free_port()
    port = free_port()
    d = sluice(make_conf(port, ["p1 127.0.0.1:%d" % dead1, "p2 127.0.0.1:%d" % dead2],
                         listen_extra="retries 2; timeout connect 5s;"))
    t0 = time.monotonic()
    with connect(port) as s:
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
    elapsed = time.monotonic() - t0
    assert data == b""
    # refused connects fail at once: far below one connect timeout (5s)
    assert elapsed < 2.0, "client closed after %.2fs" % elapsed
    (c,) = d.wait_conns(1)
    assert c["end"] == "connect-failed" and c["server"] == "-", c


def test_only_server_weight_0_closes_no_server(sluice, backends):
    z = backends(h_name, name="z")
    port = free_port()
    d = sluice(make_conf(port, ["z %s weight 0" % z.addr]))
    t0 = time.monotonic()
    with connect(port) as s:
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
    assert data == b""
    assert time.monotonic() - t0 < 2.0
    (c,) = d.wait_conns(1)
    assert c["end"] == "no-server" and c["server"] == "-", c
    assert z.total == 0
