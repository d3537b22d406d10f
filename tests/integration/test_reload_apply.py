# How a reload applies (or does not apply) a file: a bind that fails fails
# the whole reload and leaves everything as it was; `reload check` shows the
# diff and applies nothing; the health, admin state, weight and counters of
# surviving servers carry over, a server whose address changes is a new
# server, and connections to a removed server finish on their own or are
# killed when they outlive `grace`.
import os
import re
import signal
import socket
import time

from conftest import (DEADLINE, SLOW, LogTail, connect, echo_transfer, free_port, get_name,
                      h_echo, h_name, port_is_free, recv_line, text_pos, wait_ctl, wait_until,
                      write_atomic)


def served(port):
    return echo_transfer(port, 4096, timeout=5 * SLOW) is None


def refused(port):
    return echo_transfer(port, 100, timeout=5 * SLOW) == "refused"


def state(ctl):
    """What a reload may change, without the counters."""
    srv = {k: (r["address"], r["admin"], r["weight"], r["backup"], r["maxconn"])
           for k, r in ctl.servers().items()}
    ls = {n: (r["binds"], r["pool"], r["maxconn"]) for n, r in ctl.listeners().items()}
    pools = {r["name"]: (r["balance"], r["servers"]) for r in ctl.json("show pools")}
    return srv, ls, pools


# ---------------------------------------------------------------- bind failure


def test_reload_with_a_taken_port_fails_whole_and_keeps_running(short_dir, sluice, backends):
    a, b, n1 = backends(h_echo), backends(h_echo), backends(h_echo)
    sock = os.path.join(short_dir, "ctl.sock")
    p, u = free_port(), free_port()
    # a port held by a plain listening socket, without SO_REUSEPORT
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.bind(("127.0.0.1", 0))
    held.listen(8)
    t = held.getsockname()[1]
    glob = "global { workers 2; log stderr info; grace 5s; control %s; }\n" % sock
    old = (glob + "pool web { balance roundrobin; server a %s; server b %s; }\n"
           "listen www { bind 127.0.0.1:%d; pool web; }\n" % (a.addr, b.addr, p))
    # binds u (free) before t (taken): u must be let go again
    new = (glob + "pool web { balance leastconn; server a %s weight 5; server c %s; }\n"
           "pool newp { server n1 %s; }\n"
           "listen www { bind 127.0.0.1:%d; pool newp; }\n"
           "listen more { bind 127.0.0.1:%d; pool newp; }\n"
           "listen blocked { bind 127.0.0.1:%d; pool web; }\n"
           % (a.addr, n1.addr, n1.addr, p, u, t))
    d = sluice(old)
    ctl = wait_ctl(sock)
    before = state(ctl)
    write_atomic(d.conf_path, new)
    tail = LogTail(d)
    tail.mark()
    why = "cannot listen on 127.0.0.1:%d: Address already in use" % t

    reply = ctl.cmd("reload")
    assert reply.startswith("error: ") and why in reply, reply
    tail.wait(r"error: reload failed, keeping the running configuration: %s$" % re.escape(why))
    tail.mark()
    d.signal(signal.SIGHUP)
    tail.wait(r"error: reload failed, keeping the running configuration: %s$" % re.escape(why))
    assert "reload of" not in tail.new_text()

    # nothing of the new file applied
    assert state(ctl) == before
    assert port_is_free(u), "the bind of the failed reload's other listener was kept"
    info = ctl.ok("show info")
    assert re.search(r"^reloads: +0 ok, 2 failed$", info, re.M), info
    assert re.search(r"^last reload: +failed at \S+: %s$" % re.escape(why), info, re.M), info
    # the old listener still serves, through the old pool
    for _ in range(4):
        assert served(p)
    assert n1.total == 0 and a.total + b.total == 4, (a.total, b.total, n1.total)

    # the same file applies once the port is free
    held.close()
    assert ctl.ok("reload").startswith("reload done:")
    assert served(u) and served(t) and served(p)
    assert n1.total == 2  # www and more now go to pool newp
    ctl.close()


# ---------------------------------------------------------------- reload check


def test_reload_check_shows_the_diff_and_applies_nothing(short_dir, sluice, backends):
    bk = {n: backends(h_echo, name=n) for n in "a b c c2 d e f o".split()}
    sock = os.path.join(short_dir, "ctl.sock")
    p, p2, q, r = free_port(), free_port(), free_port(), free_port()
    assert len({p, p2, q, r}) == 4
    glob = "global { workers 2; log stderr info; grace 5s; control %s; }\n" % sock
    old = (glob + "pool web {\n    server a %s;\n    server b %s weight 2;\n"
           "    server c %s;\n    server e %s;\n}\n"
           "pool old { server o %s; }\n"
           "listen www { bind 127.0.0.1:%d; pool web; }\n"
           "listen gone { bind 127.0.0.1:%d; pool old; }\n"
           % (bk["a"].addr, bk["b"].addr, bk["c"].addr, bk["e"].addr, bk["o"].addr, p, q))
    new = (glob + "pool web {\n    server a %s;\n    server b %s weight 5;\n"
           "    server c %s;\n    server d %s;\n}\n"
           "pool fresh { balance random; server f %s; }\n"
           "listen www { bind 127.0.0.1:%d; bind 127.0.0.1:%d; pool web; }\n"
           "listen new { bind 127.0.0.1:%d; pool fresh; }\n"
           % (bk["a"].addr, bk["b"].addr, bk["c2"].addr, bk["d"].addr, bk["f"].addr, p, p2, r))
    want = {
        "listen www: opens 127.0.0.1:%d" % p2,
        "listen new: added, opens 127.0.0.1:%d" % r,
        "listen gone: removed (its connections finish)",
        "pool web: server b changed",
        "pool web: server c changed (new address: new identity)",
        "pool web: server d added",
        "pool web: server e removed",
        "pool fresh: added with 1 servers",
        "pool old: removed",
    }
    d = sluice(old)
    ctl = wait_ctl(sock)
    assert ctl.ok("reload check") == "%s is valid; a reload would apply:\nno change" % d.conf_path
    before = state(ctl)
    write_atomic(d.conf_path, new)

    reply = ctl.ok("reload check").split("\n")
    assert reply[0] == "%s is valid; a reload would apply:" % d.conf_path, reply
    assert len(reply[1:]) == len(set(reply[1:])) and set(reply[1:]) == want, reply
    # ... and nothing changed
    assert state(ctl) == before
    assert port_is_free(p2) and port_is_free(r)
    assert served(q) and bk["o"].total == 1
    info = ctl.ok("show info")
    assert re.search(r"^reloads: +0 ok, 0 failed$", info, re.M), info
    assert re.search(r"^last reload: +none$", info, re.M), info
    assert "reload of" not in d.log()

    # an invalid file: the error with its position, nothing applied, not
    # counted as a failed reload (nothing was tried)
    broken = new.replace("pool fresh;", "pool frsh;")
    write_atomic(d.conf_path, broken)
    line, col = text_pos(broken, "frsh")
    reply = ctl.cmd("reload check")
    assert reply == ("error: %s:%d:%d: error: pool 'frsh' does not exist (near 'frsh')"
                     % (d.conf_path, line, col)), reply
    assert state(ctl) == before

    # the reload applies exactly what the check announced
    write_atomic(d.conf_path, new)
    reply = ctl.ok("reload").split("\n")
    assert reply[0] == "reload done:" and set(reply[1:]) == want, reply
    assert served(p2) and served(r) and bk["f"].total == 1
    wait_until(lambda: refused(q), what="listener gone closed")
    srv = ctl.servers()
    assert set(srv) == {("web", "a"), ("web", "b"), ("web", "c"), ("web", "d"),
                        ("fresh", "f")}, sorted(srv)
    assert srv[("web", "b")]["weight"] == 5 and srv[("web", "c")]["address"] == bk["c2"].addr
    assert ctl.ok("reload check").endswith("a reload would apply:\nno change")
    ctl.close()


# ---------------------------------------------------------------- carry-over


def test_runtime_state_and_counters_survive_reload(short_dir, sluice, backends):
    bk = {n: backends(h_name, name=n) for n in "A B C C2 D E".split()}
    sock = os.path.join(short_dir, "ctl.sock")
    p, s = free_port(), free_port()
    grace = 1.5

    def conf(c_addr, b_weight, side):
        return ("global { workers 2; log stderr info; grace %dms; control %s; }\n"
                "pool web { balance roundrobin; server a %s; server b %s weight %d; "
                "server c %s; }\n"
                "pool side { %s }\n"
                "listen www { bind 127.0.0.1:%d; pool web; }\n"
                "listen side { bind 127.0.0.1:%d; pool side; }\n"
                % (grace * 1000, sock, bk["A"].addr, bk["B"].addr, b_weight, c_addr, side, p, s))

    d = sluice(conf(bk["C"].addr, 2, "server d %s;" % bk["D"].addr))
    ctl = wait_ctl(sock)
    names = [get_name(p) for _ in range(8)]
    assert set(names) == {"A", "B", "C"}, names
    ctl.ok("server drain web/a")
    ctl.ok("server weight web/b 9")
    ctl.ok("server drain web/c")
    # two connections to the server the next file removes
    held = []
    for _ in range(2):
        h = connect(s)
        assert recv_line(h) == b"D\n"
        held.append(h)
    wait_until(lambda: ctl.servers()[("side", "d")]["active"] == 2, what="2 active on side/d")
    srv0 = ctl.servers()
    www0 = ctl.listeners()["www"]["connections_total"]
    info0 = ctl.json("show info")["connections_total"]
    assert www0 == 8 and info0 == 10

    write_atomic(d.conf_path, conf(bk["C2"].addr, 2, "server e %s;" % bk["E"].addr))
    tail = LogTail(d)
    tail.mark()
    d.signal(signal.SIGHUP)
    t_reload = time.monotonic()
    tail.wait(r"notice: reload of .* done$")
    tail.wait(r"notice: reload: pool web: server c changed \(new address: new identity\)$")
    tail.wait(r"notice: reload: pool side: server d removed$")
    srv1 = ctl.servers()
    # surviving servers: admin, weight, health and counters carried over
    a0, a1 = srv0[("web", "a")], srv1[("web", "a")]
    b0, b1 = srv0[("web", "b")], srv1[("web", "b")]
    assert (a1["admin"], a1["health"], a1["weight"]) == ("drain", "up", 1), a1
    assert (b1["admin"], b1["health"], b1["weight"]) == ("ready", "up", 9), b1
    assert a1["connections_total"] == a0["connections_total"] > 0, (a0, a1)
    assert b1["connections_total"] == b0["connections_total"] > 0, (b0, b1)
    assert (a1["bytes_in"], a1["bytes_out"]) == (a0["bytes_in"], a0["bytes_out"])
    assert a1["bytes_in"] + a1["bytes_out"] > 0, a1
    # a new address is a new server: its own counters, admin state from the file
    c1 = srv1[("web", "c")]
    assert c1["address"] == bk["C2"].addr and c1["admin"] == "ready", c1
    assert c1["connections_total"] == 0 and srv0[("web", "c")]["connections_total"] > 0
    assert set(srv1) == {("web", "a"), ("web", "b"), ("web", "c"), ("side", "e")}
    assert ctl.listeners()["www"]["connections_total"] == www0
    assert ctl.json("show info")["connections_total"] == info0
    # and new connections follow that state: a drained, c is the new one
    names = [get_name(p) for _ in range(10)]
    assert set(names) == {"B", "C2"}, names
    assert get_name(s) == "E"

    # connections to the removed server: the first finishes on its own...
    h1, h2 = held
    h1.sendall(b"still here\n")
    h1.shutdown(socket.SHUT_WR)
    assert h1.recv(10) == b""  # the backend closes after our EOF
    h1.close()
    first = d.wait_conns(1, pool="side", server="d")
    assert first[0]["end"] in ("client-closed", "server-closed"), first
    assert time.monotonic() - t_reload < grace, "the test was too slow to finish h1 in grace"
    # ... the second outlives grace and is killed then
    h2.settimeout(DEADLINE)
    try:
        got = h2.recv(10)
    except ConnectionResetError:
        got = b""
    waited = time.monotonic() - t_reload
    assert got == b""
    assert waited >= grace * 0.9, "closed %.2fs after the reload, grace is %.1fs" % (waited, grace)
    h2.close()
    ends = sorted(c["end"] for c in d.wait_conns(2, pool="side", server="d"))
    assert ends[-1] == "killed" and len(ends) == 2, ends
    tail.wait(r"notice: server side/d was removed by a reload: closing its 1 remaining "
              r"connections after the grace period$")

    # a runtime weight stays only until the file changes that server's weight
    write_atomic(d.conf_path, conf(bk["C2"].addr, 2, "server e %s;" % bk["E"].addr))
    assert ctl.ok("reload") == "reload done:\nno change"
    assert ctl.servers()[("web", "b")]["weight"] == 9
    write_atomic(d.conf_path, conf(bk["C2"].addr, 4, "server e %s;" % bk["E"].addr))
    assert ctl.ok("reload") == "reload done:\npool web: server b changed"
    srv2 = ctl.servers()
    assert srv2[("web", "b")]["weight"] == 4 and srv2[("web", "a")]["admin"] == "drain"
    ctl.close()


def test_exit_with_a_removed_server_still_in_its_grace(short_dir, sluice, backends):
    """A server a reload removed while a connection used it waits out
    `grace` on a timer; a daemon that stops before that timer runs frees it
    (the ASan build's leak check at exit fails the test otherwise)."""
    a, b = backends(h_echo), backends(h_name, name="b")
    sock = os.path.join(short_dir, "ctl.sock")
    p = free_port()
    glob = "global { workers 1; log stderr info; grace 30s; control %s; }\n" % sock
    both = glob + ("pool web { balance first; server b %s; server a %s; }\n"
                   "listen www { bind 127.0.0.1:%d; pool web; }\n" % (b.addr, a.addr, p))
    only_a = glob + ("pool web { balance first; server a %s; }\n"
                     "listen www { bind 127.0.0.1:%d; pool web; }\n" % (a.addr, p))
    d = sluice(both)
    ctl = wait_ctl(sock)
    held = connect(p)
    assert recv_line(held) == b"b\n"  # on b, which the reload removes
    write_atomic(d.conf_path, only_a)
    assert "server b removed" in ctl.ok("reload")
    ctl.close()
    d.signal(signal.SIGTERM)
    held.close()  # the last connection ends: the daemon exits, 30 s early
    assert d.wait_exit() == 0
