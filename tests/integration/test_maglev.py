# Maglev across nodes: daemons whose files list the same servers in
# different orders send each of 1 000 client addresses (127.x.y.z, clients
# bound to them) to the same backend; a server in maint on one daemon moves
# only that server's clients there; a reload of one daemon and a fresh
# start of another with the same new file agree again. The table size is
# the pool's maglev-table, and `server add` cannot outgrow it.
import concurrent.futures

from conftest import (Ctl, ctl_global, free_port, get_name, h_name, make_conf, write_atomic)

CLIENTS = 1000


def sources():
    """1 000 distinct loopback client addresses."""
    return ["127.%d.%d.%d" % (1 + i // 62500, (i // 250) % 250, i % 250 + 1)
            for i in range(CLIENTS)]


def mapping(port):
    """{client address: backend name} for every source, 8 at a time."""
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        names = list(ex.map(lambda src: get_name(port, src=src), sources()))
    return dict(zip(sources(), names))


def conf(port, servers, order, sock, extra=""):
    """A maglev pool over servers (name -> backend) listed in the given order."""
    return make_conf(port, ["%s %s" % (n, servers[n].addr) for n in order], balance="maglev",
                     pool_extra=extra, global_extra=ctl_global(sock))


def test_same_backend_from_every_daemon(tmp_path, sluice, backends):
    # 11 servers: one down used to shrink the table (2039 to 1021 slots)
    names = ["web-1", "web-10", "web-2", "db.a", "cache_3", "w5", "w6", "w7", "w8", "w9", "Z"]
    servers = {n: backends(h_name, name=n) for n in names + ["new"]}
    socks = [str(tmp_path / ("ctl%d.sock" % i)) for i in range(3)]
    ports = [free_port() for _ in range(3)]
    a = sluice(conf(ports[0], servers, names, socks[0]), name="a")
    b = sluice(conf(ports[1], servers, names[::-1], socks[1]), name="b")
    ma, mb = mapping(ports[0]), mapping(ports[1])
    differ = [c for c in ma if ma[c] != mb[c]]
    assert not differ, "%d of %d clients reach another backend through b" % (len(differ),
                                                                                CLIENTS)
    share = {n: list(ma.values()).count(n) for n in names}
    assert all(50 <= v <= 135 for v in share.values()), share  # 91 each expected

    # one server in maint on b only: exactly its clients move there
    with Ctl(socks[1]) as c:
        c.ok("server maint web/web-2")
    mb2 = mapping(ports[1])
    moved = [c for c in ma if mb2[c] != ma[c]]
    on_it = [c for c in ma if ma[c] == "web-2"]
    assert sorted(moved) == sorted(on_it), (
        "%d clients moved, %d were on web-2" % (len(moved), len(on_it)))
    assert "web-2" not in mb2.values()
    # the other servers share its clients
    assert len({mb2[c] for c in on_it}) >= 7, {mb2[c] for c in on_it}
    assert mapping(ports[0]) == ma, "a changed although nothing changed there"
    with Ctl(socks[1]) as c:
        c.ok("server ready web/web-2")
    assert mapping(ports[1]) == ma

    # new file: db.a gone, "new" added, yet another order. b reloads it,
    # c starts fresh with it: they agree; a client of a server that stayed
    # keeps it or goes to the new one, but for the few slots Maglev
    # reshuffles when members change
    order = ["new", "web-2", "cache_3", "web-10", "web-1", "Z", "w9", "w5", "w7", "w8", "w6"]
    write_atomic(b.conf_path, conf(ports[1], servers, order, socks[1]))
    with Ctl(socks[1]) as c:
        c.ok("reload")
    sluice(conf(ports[2], servers, order[::-1], socks[2]), name="c")
    mb3, mc = mapping(ports[1]), mapping(ports[2])
    differ = [c for c in mb3 if mb3[c] != mc[c]]
    assert not differ, "reload and fresh start disagree for %d clients" % len(differ)
    stayed = [c for c in ma if ma[c] != "db.a"]
    elsewhere = [c for c in stayed if mb3[c] not in (ma[c], "new")]
    assert len(elsewhere) <= 0.03 * len(stayed), "%d of %d" % (len(elsewhere), len(stayed))
    assert "db.a" not in mb3.values() and "new" in mb3.values()


def test_table_size_and_server_add_limit(tmp_path, sluice, backends):
    servers = {n: backends(h_name, name=n) for n in ("a", "b", "c")}
    sock = str(tmp_path / "ctl.sock")
    port = free_port()
    sluice(conf(port, servers, ["a", "b", "c"], sock, extra="maglev-table 3;"))
    with Ctl(sock) as c:
        r = c.cmd("server add web d 127.0.0.1:%d ready" % free_port())
        assert r.startswith("error: pool 'web' has 3 servers, as many as its Maglev table "
                            "has slots"), r
        assert len(c.json("show servers")) == 3
    # three slots, one each: every server serves somebody
    assert set(mapping(port).values()) == {"a", "b", "c"}
