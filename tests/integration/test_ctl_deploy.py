# tools/rolling-deploy on its own: the order of the steps per server, the
# command's environment and placeholders, and stopping at the first failure
# (command fails, drain times out, unknown pool, no daemon) with a clear
# message, a non-zero exit and the remaining servers untouched.
import json
import sys

from conftest import (Ctl, connect, ctl_global, ctl_servers, free_port, h_name, make_conf,
                      recv_line, run_rolling_deploy)

# Records its arguments and environment; fails for the server named in FAIL_ON.
CMD = r"""
import json, os, sys
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"args": sys.argv[2:], "server": os.environ["SLUICE_SERVER"],
                        "address": os.environ["SLUICE_ADDRESS"]}) + "\n")
sys.exit(3 if os.environ["SLUICE_SERVER"] == os.environ.get("FAIL_ON") else 0)
"""


def start_pool(tmp_path, sluice, backends, n=3):
    bes = [backends(h_name, name="s%d" % i) for i in range(n)]
    sock = str(tmp_path / "ctl.sock")
    port = free_port()
    d = sluice(make_conf(port, ["%s %s" % (b.name, b.addr) for b in bes],
                         global_extra=ctl_global(sock)))
    script = tmp_path / "cmd.py"
    script.write_text(CMD)
    d.sock, d.port, d.bes, d.script, d.cmdlog = sock, port, bes, str(script), str(
        tmp_path / "cmd.log")
    return d


def steps(d):
    try:
        with open(d.cmdlog) as f:
            return [json.loads(l) for l in f]
    except FileNotFoundError:
        return []


def admins(d):
    return {k: v["admin"] for k, v in ctl_servers(d.sock).items()}


def test_deploy_all_servers_in_order(tmp_path, sluice, backends):
    d = start_pool(tmp_path, sluice, backends)
    with Ctl(d.sock) as c:
        c.ok("server maint web/s1")  # stays in maint after its deploy
    r = run_rolling_deploy(["-s", d.sock, "--timeout", "5s", "web", "--",
                            sys.executable, d.script, d.cmdlog, "{name}@{address}", "{pool}",
                            "{other}"])
    assert r.returncode == 0, r.stderr
    got = steps(d)
    assert [s["server"] for s in got] == ["s0", "s1", "s2"]
    for s, b in zip(got, d.bes):
        assert s["args"] == ["%s@%s" % (b.name, b.addr), "web", "{other}"]
        assert s["address"] == b.addr
    out = r.stdout
    for b in d.bes:
        assert "web/%s (%s): drain" % (b.name, b.addr) in out
    assert out.index("web/s0: ready and up") < out.index("web/s1 (")
    assert "web/s1: deployed; left in maint as it was before" in out
    assert admins(d) == {"web/s0": "ready", "web/s1": "maint", "web/s2": "ready"}
    d.wait_log(r"notice: server web/s2 admin drain -> ready \(control socket\)")


def test_deploy_stops_at_failed_command(tmp_path, sluice, backends):
    d = start_pool(tmp_path, sluice, backends)
    r = run_rolling_deploy(["-s", d.sock, "web", "--", sys.executable, d.script, d.cmdlog],
                           env={"FAIL_ON": "s1"})
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert ("rolling-deploy: FAILED: web/s1: the command failed (exit status 3); the server "
            "is left in drain (not deployed: s2)") in r.stderr, r.stderr
    assert [s["server"] for s in steps(d)] == ["s0", "s1"]
    assert admins(d) == {"web/s0": "ready", "web/s1": "drain", "web/s2": "ready"}


def test_deploy_stops_when_drain_times_out(tmp_path, sluice, backends):
    d = start_pool(tmp_path, sluice, backends, n=2)
    with Ctl(d.sock) as c:
        c.ok("server maint web/s1")
        held = connect(d.port)
        assert recv_line(held) == b"s0\n"
        c.ok("server ready web/s1")
    r = run_rolling_deploy(["-s", d.sock, "web", "--timeout", "300ms", "--",
                            sys.executable, d.script, d.cmdlog])
    held.close()
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "FAILED: web/s0: wait drained: timeout: server web/s0 still has 1 open " \
           "connections; the server is left in drain (not deployed: s1)" in r.stderr, r.stderr
    assert steps(d) == [], "the command ran for a server that was not drained"
    assert admins(d) == {"web/s0": "drain", "web/s1": "ready"}


def test_deploy_usage_and_connection_errors(tmp_path, sluice, backends):
    d = start_pool(tmp_path, sluice, backends, n=1)
    r = run_rolling_deploy(["-s", d.sock, "nopool", "--", "true"])
    assert r.returncode == 1 and "FAILED: pool nopool: no pool 'nopool'" in r.stderr, r
    r = run_rolling_deploy(["-s", d.sock, "web", "--server", "zz", "--", "true"])
    assert r.returncode == 1 and "no server 'zz' in pool web" in r.stderr, r
    r = run_rolling_deploy(["-s", str(tmp_path / "none.sock"), "web", "--", "true"])
    assert r.returncode == 2 and "No such file or directory" in r.stderr, r
    r = run_rolling_deploy(["-s", d.sock, "web"])
    assert r.returncode == 2 and "COMMAND is required" in r.stderr, r
    r = run_rolling_deploy(["-s", d.sock, "web", "--timeout", "soon", "--", "true"])
    assert r.returncode == 2 and "bad duration 'soon'" in r.stderr, r
    r = run_rolling_deploy(["-s", d.sock, "web", "--", str(tmp_path / "missing-cmd")])
    assert r.returncode == 1 and "cannot run" in r.stderr, r
    assert admins(d) == {"web/s0": "drain"}  # where it stopped, as the message said
    assert "the server is left in drain" in r.stderr
