# A server added at runtime is health-checked at its own address, like the
# file's servers: up while its backend answers (and picked), down once the
# backend is gone. (The check used to get an empty address: the socket
# failed with EAFNOSUPPORT and the server went DOWN two checks after it
# was added, whatever its backend did.)
import json

from conftest import Ctl, ctl_global, free_port, get_name, h_name, make_conf, wait_until

CHECK = "check tcp { interval 100ms; timeout 300ms; rise 2; fall 2; }"


def server(sock, name):
    with Ctl(sock) as c:
        rows = json.loads(c.ok("json show servers web"))
    return [r for r in rows if r["server"] == name][0]


def test_server_added_at_runtime_is_checked_at_its_address(tmp_path, sluice, backends):
    a, b = backends(h_name, name="a"), backends(h_name, name="b")
    sock, port = str(tmp_path / "ctl.sock"), free_port()
    sluice(make_conf(port, ["a %s" % a.addr], pool_extra=CHECK, global_extra=ctl_global(sock)))
    with Ctl(sock) as c:
        c.ok("server add web b %s ready" % b.addr)
    # four checks of b done: all passed, and it is still up
    wait_until(lambda: server(sock, "b")["checks"] >= 4, what="four checks of b")
    s = server(sock, "b")
    assert s["health"] == "up" and s["checks_failed"] == 0, s
    assert {get_name(port) for _ in range(20)} == {"a", "b"}
    b.close()
    wait_until(lambda: server(sock, "b")["health"] == "down", what="b down")
    assert server(sock, "a")["health"] == "up"
