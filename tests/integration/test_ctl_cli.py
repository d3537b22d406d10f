# JSON replies, sluicectl (exit codes 0/1/2, aligned tables, help) and the
# socket file at start-up (a stale one is replaced, a live one is an error).
import json
import os
import re
import socket
import threading

from conftest import (SANITIZER_MARKS, Ctl, ctl_global, ctl_servers, free_port, h_name,
                      make_conf, run_sluice, run_sluicectl)


def start(tmp_path, sluice, backends, name=None, extra=""):
    ba, bb = backends(h_name, name="a"), backends(h_name, name="b")
    sock = str(tmp_path / "ctl.sock")
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % ba.addr, "b %s" % bb.addr],
                         global_extra=ctl_global(sock, extra)), name=name)
    d.sock, d.port = sock, port
    return d


def test_json_replies_parse(tmp_path, sluice, backends):
    d = start(tmp_path, sluice, backends)
    with Ctl(d.sock) as c:
        info = json.loads(c.cmd("json show info"))
        assert info["pid"] == d.pid and info["workers"] == 2
        assert info["config"] == d.conf_path and info["connections_total"] == 0
        (lst,) = json.loads(c.cmd("json show listeners"))
        assert lst["name"] == "www" and lst["pool"] == "web"
        assert lst["binds"] == "127.0.0.1:%d" % d.port
        (pool,) = json.loads(c.cmd("json show pools"))
        assert pool["name"] == "web" and pool["servers"] == 2 and pool["usable"] == 2
        rows = json.loads(c.cmd("json show servers"))
        assert [r["server"] for r in rows] == ["a", "b"]
        assert json.loads(c.cmd("json show servers web")) == rows
        # commands that change things answer JSON too
        assert json.loads(c.cmd("json server drain web/a")) == {
            "ok": True, "message": "server web/a: admin drain"}
        assert json.loads(c.cmd("json server weight web/b 4"))["ok"] is True
        assert json.loads(c.cmd("json server add web n 127.0.0.1:9 weight 2"))["ok"] is True
        assert json.loads(c.cmd("json server del web/n"))["ok"] is True
        assert json.loads(c.cmd("json wait drained web/a 1s"))["state"] == "drained"
        # errors stay errors in JSON mode
        assert c.cmd("json server drain web/zz").startswith("error: no server 'zz'")
        # a name that would need escaping is refused, as in a configuration
        # file (test_server_doors.py), so JSON, logs and the state file never
        # meet one
        assert c.cmd('json server add web q"\\\\x 127.0.0.1:10').startswith(
            "error: bad server name 'q\"\\\\x'")
        names = [r["server"] for r in json.loads(c.cmd("json show servers"))]
        assert names == ["a", "b"], names


def test_json_show_metrics_is_json(tmp_path, sluice, backends):
    """'Prefix any command with json for a JSON reply' includes show metrics."""
    d = start(tmp_path, sluice, backends)
    with Ctl(d.sock) as c:
        r = c.cmd("json show metrics")
    try:
        json.loads(r)
    except ValueError:
        raise AssertionError("json show metrics is not JSON: %r" % r[:200]) from None


def columns_aligned(text):
    """Every row's fields start where the header's fields start (fields
    contain no spaces here). Returns the rows as lists of fields."""
    lines = text.rstrip("\n").split("\n")
    starts = [m.start() for m in re.finditer(r"\S+", lines[0])]
    rows = []
    for l in lines:
        ms = list(re.finditer(r"\S+", l))
        assert [m.start() for m in ms] == starts, "misaligned:\n%s" % text
        rows.append([m.group() for m in ms])
    return rows


def test_sluicectl_tables_and_exit_codes(tmp_path, sluice, backends):
    d = start(tmp_path, sluice, backends)
    s = ["-s", d.sock]
    assert run_sluicectl(s + ["server", "add", "web", "a-much-longer-name", "127.0.0.1:65000",
                              "weight", "100"]).returncode == 0
    r = run_sluicectl(s + ["show", "servers"])
    assert r.returncode == 0 and r.stderr == "", r
    rows = columns_aligned(r.stdout)
    assert rows[0][:6] == ["pool", "server", "address", "health", "admin", "weight"]
    assert [x[1] for x in rows[1:]] == ["a", "b", "a-much-longer-name"]
    assert rows[3][4:6] == ["maint", "100"]
    for cmd in (["show", "pools"], ["show", "listeners"]):
        r = run_sluicectl(s + cmd)
        assert r.returncode == 0, r
        assert len(columns_aligned(r.stdout)) == 2
    r = run_sluicectl(s + ["show", "info"])
    assert r.returncode == 0 and ("pid:               %d\n" % d.pid) in r.stdout, r.stdout
    r = run_sluicectl(s + ["--json", "show", "servers", "web"])
    assert r.returncode == 0
    assert [x["server"] for x in json.loads(r.stdout)] == ["a", "b", "a-much-longer-name"]
    # 1: an error reply, printed on stderr only
    r = run_sluicectl(s + ["server", "drain", "web/zz"])
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "error: no server 'zz' in pool 'web'\n")
    r = run_sluicectl(s + ["bogus"])
    assert r.returncode == 1 and r.stderr.startswith("error: unknown command 'bogus'"), r
    # 2: cannot connect
    r = run_sluicectl(["-s", str(tmp_path / "nothing.sock"), "show", "info"])
    assert r.returncode == 2 and "cannot connect" in r.stderr and r.stdout == "", r
    r = run_sluicectl(["-s", str(tmp_path / "nothing.sock")] + ["--bogus-option"])
    assert r.returncode == 2
    # SLUICE_SOCKET names the socket when -s is not given
    env = dict(os.environ, SLUICE_SOCKET=d.sock)
    r = run_sluicectl(["show", "pools"], env=env)
    assert r.returncode == 0 and r.stdout.startswith("pool  balance"), r
    # no command: help on stdout, exit 0
    for args in ([], ["-s", d.sock], ["--help"]):
        r = run_sluicectl(args)
        assert r.returncode == 0 and r.stdout.startswith("usage: sluicectl"), (args, r)
        assert "server drain POOL/SERVER within DURATION" in r.stdout
    # nothing changed but the added server
    assert list(ctl_servers(d.sock)) == ["web/a", "web/b", "web/a-much-longer-name"]


def test_sluicectl_daemon_closes_before_reply(tmp_path):
    """A socket that accepts and closes without a reply: exit 2."""
    path = str(tmp_path / "mute.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def serve():
        c, _ = srv.accept()
        c.recv(100)
        c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    r = run_sluicectl(["-s", path, "show", "info"])
    t.join(5)
    srv.close()
    assert r.returncode == 2 and "closed the connection" in r.stderr, r


def test_stale_socket_file_is_replaced(tmp_path, sluice, backends):
    path = str(tmp_path / "ctl.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    assert os.path.exists(path)
    d = start(tmp_path, sluice, backends)
    assert d.sock == path
    with Ctl(path) as c:
        assert json.loads(c.cmd("json show info"))["pid"] == d.pid


def test_live_socket_is_an_error(tmp_path, sluice, backends):
    d = start(tmp_path, sluice, backends, name="first")
    port2 = free_port()
    conf2 = tmp_path / "second.conf"
    conf2.write_text(make_conf(port2, ["a 127.0.0.1:9"], global_extra=ctl_global(d.sock)))
    r = run_sluice(["-f", str(conf2)])
    assert r.returncode != 0, "a second daemon started on a live control socket"
    assert "control socket %s is in use by a running process" % d.sock in r.stderr, r.stderr
    for m in SANITIZER_MARKS:
        assert m not in r.stderr, r.stderr
    # the first daemon's socket is untouched and still answers
    with Ctl(d.sock) as c:
        assert json.loads(c.cmd("json show info"))["pid"] == d.pid
