# The state file: admin states, runtime weights and servers added at
# runtime survive a restart (SIGTERM, then the same configuration again).
# What survives a reload is covered by test_reload_apply.py.
import os

from conftest import (Ctl, connect, ctl_global, ctl_servers, free_port, h_name, make_conf,
                      recv_line, run_sluice)

KEEP = ("address", "admin", "weight", "effective_weight", "backup", "maxconn", "runtime_added")


def model(sock):
    return {k: {f: r[f] for f in KEEP} for k, r in ctl_servers(sock).items()}


def names_seen(port, n):
    got = []
    for _ in range(n):
        with connect(port) as s:
            got.append(recv_line(s).decode().strip())
    return got


def test_state_survives_restart(tmp_path, sluice, backends):
    bes = {n: backends(h_name, name=n) for n in ("a", "b", "c", "d", "e")}
    sock = str(tmp_path / "run" / "ctl.sock")  # directory created by the daemon
    state = str(tmp_path / "sluice.state")
    port = free_port()
    conf = make_conf(port, ["%s %s" % (n, bes[n].addr) for n in ("a", "b", "c")],
                     global_extra=ctl_global(sock, "state-file %s;" % state))
    d = sluice(conf, name="first")
    with Ctl(sock) as c:
        c.ok("server drain web/a")
        c.ok("server weight web/b 5")
        c.ok("server maint web/c")
        c.ok("server add web d %s weight 3 maxconn 10 ready" % bes["d"].addr)
        c.ok("server add web e %s backup" % bes["e"].addr)  # starts in maint
    before = model(sock)
    assert before["web/a"]["admin"] == "drain"
    assert before["web/b"]["weight"] == 5
    assert before["web/d"] == {"address": bes["d"].addr, "admin": "ready", "weight": 3,
                               "effective_weight": 3, "backup": False, "maxconn": 10,
                               "runtime_added": True}
    assert before["web/e"]["admin"] == "maint" and before["web/e"]["backup"] is True
    assert os.path.exists(state)
    assert d.stop() == 0
    assert not os.path.exists(sock), "the control socket was left behind at exit"

    d2 = sluice(conf, name="second")
    d2.wait_log(r"notice: state-file: server web/d restored: ready, weight 3, added at runtime")
    after = model(sock)
    assert after == before
    assert list(after) == list(before), "server order changed"
    # and the data plane follows the restored state: only b and d are picked
    seen = names_seen(port, 16)
    assert set(seen) == {"b", "d"}, seen
    # a change after the restart is saved again, and ready clears the drain
    with Ctl(sock) as c:
        c.ok("server ready web/a")
        c.ok("server del web/e")
    assert d2.stop() == 0
    d3 = sluice(conf, name="third")
    final = model(sock)
    assert final["web/a"]["admin"] == "ready"
    assert "web/e" not in final
    assert final["web/d"] == before["web/d"]
    assert final["web/b"]["weight"] == 5
    assert d3.stop() == 0


def test_malformed_state_file_stops_the_start(tmp_path, backends):
    be = backends(h_name, name="a")
    sock = str(tmp_path / "ctl.sock")
    state = str(tmp_path / "sluice.state")
    with open(state, "w") as f:
        f.write("server web a %s admin drain\nserver web a what is this\n" % be.addr)
    port = free_port()
    conf = make_conf(port, ["a %s" % be.addr],
                     global_extra=ctl_global(sock, "state-file %s;" % state))
    # a broken state file stops the start-up with a clear error rather
    # than running with half of it applied
    conf_path = tmp_path / "bad.conf"
    conf_path.write_text(conf)
    r = run_sluice(["-f", str(conf_path)])
    assert r.returncode != 0
    assert ("state-file %s:2: expected 'server POOL NAME ADDRESS admin STATE ...'" % state
            in r.stderr), r.stderr
