# Two design rules at their boundary, through the real daemon with two
# workers: backup servers serve only when no primary is usable (busy
# primaries make clients queue, they never spill to the backup), and a
# server holds exactly its maxconn connections at once (the next client
# queues, and a freed slot admits exactly one).
import select
import socket
import time

from conftest import (DEADLINE, Ctl, connect, ctl_global, free_port, got_nothing, h_name,
                      make_conf, recv_line, wait_until)

# How long a client must see nothing to count as "not served" (an absence
# can only be observed for a bounded time); the queue count from the
# control socket is the positive evidence.
NOTHING_WAIT = 0.5


def served(s):
    """The name line of the backend serving s (blocks up to the socket timeout)."""
    line = recv_line(s)
    assert line.endswith(b"\n"), "no name line (got %r)" % line
    return line.decode().strip()


def queued(sock_path):
    with Ctl(sock_path) as c:
        (p,) = c.json("show pools")
    return p["queued"]


def active(sock_path):
    """{server: connections sluice counts on it} from show servers."""
    with Ctl(sock_path) as c:
        return {r["server"]: r["active"] for r in c.json("show servers")}


def wait_queued(sock_path, n):
    wait_until(lambda: queued(sock_path) == n, what="%d clients queued" % n)


def test_busy_primary_queues_never_spills_to_backup(tmp_path, sluice, backends):
    p, bk = backends(h_name, name="p"), backends(h_name, name="bk")
    sock = str(tmp_path / "ctl.sock")
    port = free_port()
    sluice(make_conf(port, ["p %s maxconn 2" % p.addr, "bk %s backup" % bk.addr],
                     pool_extra="queue 10; timeout queue 30s;",
                     global_extra=ctl_global(sock)))
    # below maxconn the primary serves; at maxconn - 1 the next still goes there
    first = connect(port)
    assert served(first) == "p"
    second = connect(port)
    assert served(second) == "p"
    # the primary is full: the next three clients wait in the queue
    waiting = [connect(port) for _ in range(3)]
    wait_until(lambda: queued(sock) == 3 or bk.total > 0, what="3 clients queued")
    assert bk.total == 0, "busy primary: a client went to the backup"
    for w in waiting:
        assert got_nothing(w, NOTHING_WAIT / 3), "a client was served beyond maxconn 2"
    assert p.total == 2 and p.active == 2
    # a slot frees on the primary: exactly one queued client takes it
    first.close()
    p.wait(lambda b: b.total == 3, what="the first queued client on p")
    wait_queued(sock, 2)
    got = []
    for w in waiting:
        w.settimeout(NOTHING_WAIT)
        try:
            got.append(served(w))
        except socket.timeout:
            got.append(None)
        w.settimeout(DEADLINE)
    assert got.count("p") == 1 and got.count(None) == 2, got
    # (a backend's own active count may lag the close it has not read
    # yet, so the clients served are the measure of sluice's slots)
    assert bk.total == 0 and p.total == 3
    # only once no primary is usable does the backup serve new clients
    with Ctl(sock) as c:
        c.ok("server maint web/p")
    extra = connect(port)
    assert served(extra) == "bk"
    extra.close()
    for s in [second] + waiting:
        s.close()


def collect_served(socks, names, want, deadline=DEADLINE):
    """Read the name line of clients that became readable, until want of
    socks have been served (names: {sock: server}, updated). Bounded."""
    end = time.monotonic() + deadline
    while len(names) < want:
        left = end - time.monotonic()
        assert left > 0, "only %d of %d clients served" % (len(names), want)
        ready, _, _ = select.select([s for s in socks if s not in names], [], [], left)
        for s in ready:
            names[s] = served(s)


def test_server_maxconn_exact_the_next_queues(tmp_path, sluice, backends):
    a, b = backends(h_name, name="a"), backends(h_name, name="b")
    sock = str(tmp_path / "ctl.sock")
    port = free_port()
    sluice(make_conf(port, ["a %s maxconn 3" % a.addr, "b %s maxconn 2" % b.addr],
                     balance="leastconn", pool_extra="queue 50; timeout queue 30s;",
                     global_extra=ctl_global(sock)))
    # 12 clients at once, from several sources so both workers take some
    clients = [connect(port, src="127.0.0.%d" % (2 + i % 6)) for i in range(12)]
    names = {}
    collect_served(clients, names, 5)
    wait_queued(sock, 7)
    # exactly maxconn on each server: the other seven see nothing
    rest = [s for s in clients if s not in names]
    ready, _, _ = select.select(rest, [], [], NOTHING_WAIT)
    assert not ready, "a client was served beyond the servers' maxconn"
    assert sorted(names.values()) == ["a", "a", "a", "b", "b"]
    assert a.total == 3 and b.total == 2 and a.max_active == 3 and b.max_active == 2
    # every freed slot admits exactly one queued client, on that server
    for k in range(7):
        victim = next(s for s in clients if s in names)
        freed = names.pop(victim)
        clients.remove(victim)
        victim.close()
        wait_until(lambda: queued(sock) <= 6 - k, what="%d clients queued" % (6 - k))
        collect_served(clients, names, 5)
        rest = [s for s in clients if s not in names]
        ready, _, _ = select.select(rest, [], [], NOTHING_WAIT / 5) if rest else ([], 0, 0)
        assert not ready and queued(sock) == 6 - k, "one freed slot admitted two clients"
        assert list(names.values()).count(freed) == (3 if freed == "a" else 2), names
        assert active(sock) == {"a": 3, "b": 2}
    assert a.total + b.total == 12
    for s in clients:
        s.close()
