# Service discovery through DNS (issue 15): the real daemon asks a real
# DNS server (dnsserver.py: UDP and TCP on a loopback address, records the
# test changes with their own TTLs) through a resolvers block. Named
# servers follow their record at its TTL; `servers srv|dns` lines fill a
# pool from SRV or A answers; a failing DNS keeps the last answer for its
# hold; every outcome (NXDOMAIN, SERVFAIL, truncation, 1 000 records, a
# CNAME loop, TTL 0) is defined and logged.
import json
import os
import re
import socket
import threading
import time

import pytest

from conftest import (DEADLINE, SLUICE, Load, LogTail, connect, echo_transfer, free_port,
                      get_name, got_nothing, h_echo, h_name, recv_line, run_sluice, text_pos,
                      wait_ctl, wait_until, write_atomic)
from dnsserver import DnsServer


@pytest.fixture
def dns():
    d = DnsServer("127.0.0.1")
    yield d
    d.close()


def conf(sock, port, dns, pool, resolvers="", global_extra="", balance="roundrobin"):
    return ("global { workers 2; log stderr info; grace 5s; control %s; %s }\n"
            "resolvers test {\n    nameserver %s;\n    timeout 300ms;\n    attempts 2;\n%s}\n"
            "pool web {\n    balance %s;\n    resolvers test;\n%s}\n"
            "listen www { bind 127.0.0.1:%d; pool web; timeout connect 1s; }\n"
            % (sock, global_extra, dns.addr, resolvers, balance, pool, port))


def servers(ctl):
    return {r["server"]: r for r in ctl.json("show servers web")}


def resolvers(ctl):
    return {r["name"]: r for r in ctl.json("show resolvers")}


def metric(ctl, family, **labels):
    for m in ctl.json("show metrics"):
        if m["name"] == family and all(m["labels"].get(k) == v for k, v in labels.items()):
            return m["value"]
    return None


def two_backends_one_port(backends, handler=h_echo):
    """Backends on 127.0.0.2 and 127.0.0.3 at the same port: what a name
    that moves from one address to the other needs."""
    for _ in range(20):
        b1 = backends(handler, host="127.0.0.2", name="old")
        try:
            b2 = backends(handler, host="127.0.0.3", name="new", port=b1.port)
            return b1, b2
        except OSError:
            b1.close()
    raise AssertionError("no port free on both addresses")


# ---------------------------------------------------------------- A records


def test_a_record_change_is_followed_within_its_ttl_under_load(short_dir, sluice, backends,
                                                               dns):
    ttl = 2
    old, new = two_backends_one_port(backends)
    dns.set_a("app.test", ["127.0.0.2"], ttl=ttl)
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    d = sluice(conf(sock, port, dns, "    server app app.test:%d;\n" % old.port))
    ctl = wait_ctl(sock)
    assert servers(ctl)["app"]["address"] == "127.0.0.2:%d" % old.port
    assert servers(ctl)["app"]["host"] == "app.test"

    # a connection opened before the change, still in use after it
    held = connect(port)
    held.sendall(b"before")
    assert held.recv(6) == b"before"

    load = Load(port, rate=40, duration=9.0, max_bytes=64 * 1024)
    time.sleep(3.0)
    t_change = time.monotonic()
    dns.set_a("app.test", ["127.0.0.3"], ttl=ttl)
    wait_until(lambda: new.total > 0, timeout=ttl + 5, what="a connection to the new address")
    load.join()
    assert load.failures == [], load.summary()
    assert load.ok > 200, load.summary()

    with old.cond:
        opened_old = [r["t_open"] for r in old.records]
    with new.cond:
        opened_new = [r["t_open"] for r in new.records]
    # within TTL + 1 s every new connection goes to the new address
    assert max(opened_old) <= t_change + ttl + 1.0, max(opened_old) - t_change
    assert min(opened_new) >= t_change
    d.wait_log(r"notice: server web/app: app\.test now resolves to 127\.0\.0\.3:%d: a new "
               r"server there, the connections to 127\.0\.0\.2 finish" % old.port)
    assert servers(ctl)["app"]["address"] == "127.0.0.3:%d" % old.port

    # the old connection finishes normally
    held.sendall(b"after")
    assert held.recv(5) == b"after"
    held.close()
    old.wait(lambda b: b.active == 0, what="the old connection to finish")
    r = resolvers(ctl)["app.test"]
    assert r["state"] == "ok" and r["changes"] >= 2 and r["resolvers"] == "test"
    assert [x["address"] for x in r["records"]] == ["127.0.0.3"]


# ---------------------------------------------------------------- SRV


def srv_names(backends_by_name):
    return {n: b for n, b in backends_by_name.items()}


def spread(port, n):
    """n connections through sluice; how many each backend answered."""
    got = {}
    for _ in range(n):
        name = get_name(port)
        got[name] = got.get(name, 0) + 1
    return got


def test_srv_targets_3_then_5_then_2_with_weights_priorities_and_drain(short_dir, sluice,
                                                                       backends, dns):
    bes = {"n%d" % i: backends(h_name, name="n%d" % i) for i in range(1, 6)}
    for i in range(1, 6):
        dns.set_a("n%d.svc.test" % i, ["127.0.0.1"], ttl=60)

    def srv(*recs):
        dns.set_srv("_app._tcp.svc.test",
                    [(prio, w, bes[n].port, "%s.svc.test" % n) for n, prio, w in recs], ttl=1)

    srv(("n1", 10, 1), ("n2", 10, 3), ("n3", 20, 1))
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    d = sluice(conf(sock, port, dns,
                    "    servers srv _app._tcp.svc.test weight-from-srv;\n"))
    ctl = wait_ctl(sock)
    s = servers(ctl)
    assert sorted(s) == ["n1.svc.test", "n2.svc.test", "n3.svc.test"], s
    assert [s["n%d.svc.test" % i]["weight"] for i in (1, 2, 3)] == [1, 3, 1]
    assert [s["n%d.svc.test" % i]["backup"] for i in (1, 2, 3)] == [False, False, True]
    assert all(x["discovered"] and x["host"] == "_app._tcp.svc.test" for x in s.values())
    # the lowest priority serves, by weight; the other one is a backup
    assert spread(port, 40) == {"n1": 10, "n2": 30}

    srv(("n1", 10, 1), ("n2", 10, 3), ("n3", 20, 1), ("n4", 10, 2), ("n5", 10, 2))
    wait_until(lambda: len(servers(ctl)) == 5, what="5 servers")
    d.wait_log(r"notice: server web/n5\.svc\.test added from DNS \(_app\._tcp\.svc\.test\): "
               r"127\.0\.0\.1:%d" % bes["n5"].port)
    assert spread(port, 80) == {"n1": 10, "n2": 30, "n4": 20, "n5": 20}

    # connections that stay open on the targets about to leave
    held = {}
    for _ in range(16):
        c = connect(port)
        name = recv_line(c).decode().strip()
        held.setdefault(name, []).append(c)
    assert "n1" in held and "n2" in held, held.keys()

    srv(("n4", 10, 1), ("n5", 10, 1))
    d.wait_log(r"notice: server web/n1\.svc\.test left the answer of _app\._tcp\.svc\.test: "
               r"draining \(\d+ connections\)")
    d.wait_log(r"notice: server web/n3\.svc\.test removed: it left its DNS answer and its "
               r"connections are over")
    s = servers(ctl)
    for n in ("n1", "n2"):
        assert s["%s.svc.test" % n]["dns"].startswith("gone"), s
        assert s["%s.svc.test" % n]["active"] == len(held[n])
    assert spread(port, 20) == {"n4": 10, "n5": 10}
    # drained, not killed: the open connections are still there
    for n in ("n1", "n2"):
        for c in held[n]:
            assert got_nothing(c, 0.05)
    for cs in held.values():
        for c in cs:
            c.close()
    wait_until(lambda: sorted(servers(ctl)) == ["n4.svc.test", "n5.svc.test"],
               what="the drained servers taken out")
    for n in ("n1", "n2"):
        bes[n].wait(lambda b: b.active == 0)
        assert all(r.get("end") == "eof" for r in bes[n].records), bes[n].records


# ---------------------------------------------------------------- outcomes


def test_nxdomain_keeps_the_answer_for_hold_nx_then_the_server_is_down(short_dir, sluice,
                                                                      backends, dns):
    be = backends(h_echo, host="127.0.0.2")
    dns.set_a("app.test", ["127.0.0.2"], ttl=1)
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    d = sluice(conf(sock, port, dns, "    server app app.test:%d;\n" % be.port,
                    resolvers="    hold nx 3s;\n"))
    ctl = wait_ctl(sock)
    tail = LogTail(d)
    tail.mark()
    dns.remove("app.test")
    tail.wait(r"warning: resolvers test: app\.test: NXDOMAIN: keeping its last answer "
              r"\(1 record\) for \d+(ms|s) more \(hold nx\)")
    assert resolvers(ctl)["app.test"]["state"] == "held"
    assert servers(ctl)["app"]["dns"].startswith("app.test: held, NXDOMAIN")
    assert echo_transfer(port, 1000) is None  # still served meanwhile
    tail.wait(r"warning: resolvers test: app\.test: NXDOMAIN: its hold \(nx 3s\) ran out: "
              r"its 1 record is given up")
    tail.wait(r"warning: server web/app DOWN: DNS: app\.test: NXDOMAIN")
    assert servers(ctl)["app"]["health"] == "down"
    assert metric(ctl, "sluice_resolver_failures_total", resolvers="test", kind="nx") > 0
    assert metric(ctl, "sluice_resolver_holds_expired_total", resolvers="test") == 1
    assert metric(ctl, "sluice_resolver_name_up", name="app.test") == 0
    dns.set_a("app.test", ["127.0.0.2"], ttl=1)
    tail.wait(r"notice: server web/app UP: DNS: app\.test answers again")
    assert servers(ctl)["app"]["health"] == "up"
    assert echo_transfer(port, 1000) is None


def test_servfail_and_refused_are_dns_failures_held_for_hold_timeout(short_dir, sluice,
                                                                     backends, dns):
    be = backends(h_echo, host="127.0.0.2")
    dns.set_a("app.test", ["127.0.0.2"], ttl=1)
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    d = sluice(conf(sock, port, dns, "    server app app.test:%d;\n" % be.port,
                    resolvers="    hold timeout 1m;\n"))
    ctl = wait_ctl(sock)
    tail = LogTail(d)
    for mode, word in (("servfail", "SERVFAIL"), ("refused", "REFUSED")):
        tail.mark()
        dns.set_mode("app.test", mode)
        tail.wait(r"warning: resolvers test: app\.test: %s: keeping its last answer \(1 "
                  r"record\) for (59s|1m|1m0\ds) more \(hold timeout\)" % word)
        r = resolvers(ctl)["app.test"]
        assert r["state"] == "held" and r["last_error"] == word
        assert servers(ctl)["app"]["health"] == "up"
        assert echo_transfer(port, 1000) is None
        dns.set_mode("app.test", None)
        tail.wait(r"notice: resolvers test: app\.test answers again \(1 record\)")
    assert metric(ctl, "sluice_resolver_failures_total", resolvers="test", kind="timeout") >= 2
    assert metric(ctl, "sluice_resolver_holds_expired_total", resolvers="test") == 0


def test_a_truncated_answer_is_fetched_again_over_tcp(short_dir, sluice, dns):
    addrs = ["127.0.1.%d" % i for i in range(1, 61)]  # 60 x 16 bytes: over 512
    dns.set_a("many.test", addrs, ttl=60)
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    d = sluice(conf(sock, port, dns, "    servers dns many.test port 9;\n"))
    ctl = wait_ctl(sock)
    wait_until(lambda: len(servers(ctl)) == 60, what="60 servers")
    assert dns.count("many.test", qtype=1, transport="udp") >= 1
    assert dns.count("many.test", qtype=1, transport="tcp") >= 1
    assert "many-127.0.1.60-9" in servers(ctl)
    d.wait_log(r"info: resolvers test: many\.test: 127\.0\.1\.1, 127\.0\.1\.2, 127\.0\.1\.3, "
               r"127\.0\.1\.4 and 56 more \(TTL 60s\)")


def test_a_thousand_records_are_read_and_limit_caps_the_servers(short_dir, sluice, dns):
    addrs = ["10.0.%d.%d" % (i // 250, i % 250 + 1) for i in range(1000)]
    dns.set_a("big.test", addrs, ttl=1)
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    d = sluice(conf(sock, port, dns, "    servers dns big.test port 9 limit 32;\n"))
    ctl = wait_ctl(sock)
    d.wait_log(r"warning: pool web: servers dns big\.test: 1000 answers, limit 32: 968 not "
               r"used")
    first = sorted(servers(ctl))
    assert len(first) == 32
    assert len(resolvers(ctl)["big.test"]["records"]) == 1000
    # answered again (TTL 1 s): the same 32, nothing moves
    n0 = resolvers(ctl)["big.test"]["answers"]
    wait_until(lambda: resolvers(ctl)["big.test"]["answers"] >= n0 + 2, what="two answers")
    assert sorted(servers(ctl)) == first
    assert d.log().count("1000 answers, limit 32") == 1


def test_a_cname_loop_is_an_error_at_load_and_held_at_runtime(short_dir, sluice, tmp_path,
                                                              backends, dns):
    dns.set_cname("loop.test", "loop2.test")
    dns.set_cname("loop2.test", "loop.test")
    text = conf("/tmp/unused.sock", 8080, dns, "    server app loop.test:9001;\n")
    path = str(tmp_path / "loop.conf")
    with open(path, "w") as f:
        f.write(text)
    r = run_sluice(["-c", "-f", path])
    line, col = text_pos(text, "loop.test:9001")
    assert r.returncode == 1 and r.stderr == (
        "%s:%d:%d: error: cannot resolve 'loop.test': CNAME loop (near 'loop.test:9001')\n"
        % (path, line, col)), r.stderr

    be = backends(h_echo, host="127.0.0.2")
    dns.set_cname("app.test", "real.test", ttl=1)
    dns.set_a("real.test", ["127.0.0.2"], ttl=30)
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    d = sluice(conf(sock, port, dns, "    server app app.test:%d;\n" % be.port))
    ctl = wait_ctl(sock)
    assert resolvers(ctl)["app.test"]["ttl"] == 1  # the CNAME's TTL, the least of the chain
    dns.set_cname("real.test", "app.test", ttl=1)
    d.wait_log(r"warning: resolvers test: app\.test: CNAME loop: keeping its last answer \(1 "
               r"record\) for \d+s more \(hold nx\)")
    assert servers(ctl)["app"]["health"] == "up"
    assert echo_transfer(port, 1000) is None


def test_ttl_zero_is_taken_as_the_accepted_minimum(short_dir, sluice, dns):
    dns.set_a("zero.test", ["127.0.0.2"], ttl=0)
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    d = sluice(conf(sock, port, dns, "    server app zero.test:9;\n",
                    resolvers="    accepted-ttl 1s 10s;\n"))
    ctl = wait_ctl(sock)
    d.wait_log(r"info: resolvers test: zero\.test: TTL 0ms taken as 1s \(accepted-ttl\)")
    t0 = time.monotonic()
    n0 = dns.count("zero.test", qtype=1)
    time.sleep(4.0)
    n = dns.count("zero.test", qtype=1) - n0
    # once a second (less 10 % jitter), not as fast as the loop can go
    assert 3 <= n <= 6, (n, time.monotonic() - t0)
    assert resolvers(ctl)["zero.test"]["ttl"] == 0
    assert d.log().count("TTL 0ms taken as 1s") == 1


# ---------------------------------------------------------------- state, reload, server add


def test_a_discovered_servers_admin_state_survives_restarts_and_absence(short_dir, tmp_path,
                                                                        sluice, dns):
    state = str(tmp_path / "state")
    dns.set_a("n1.svc.test", ["127.0.0.1"])
    dns.set_a("n2.svc.test", ["127.0.0.1"])
    dns.set_srv("_app._tcp.svc.test", [(10, 1, 9001, "n1.svc.test"), (10, 1, 9002, "n2.svc.test")],
                ttl=1)
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    text = conf(sock, port, dns, "    servers srv _app._tcp.svc.test;\n",
                global_extra="state-file %s;" % state)
    d = sluice(text)
    ctl = wait_ctl(sock)
    ctl.ok("server maint web/n1.svc.test")
    with open(state) as f:
        assert "server web n1.svc.test 127.0.0.1:9001 admin maint\n" in f.read()
    assert d.stop() == 0

    # n1 is not in the answer when sluice starts again: its line waits
    dns.set_srv("_app._tcp.svc.test", [(10, 1, 9002, "n2.svc.test")], ttl=1)
    d2 = sluice(text)
    ctl = wait_ctl(sock)
    d2.wait_log(r"notice: state-file: server web/n1\.svc\.test is not there yet: its state "
                r"is kept until DNS makes it")
    assert sorted(servers(ctl)) == ["n2.svc.test"]
    ctl.ok("server weight web/n2.svc.test 7")  # a save: the waiting line is written back
    with open(state) as f:
        assert "server web n1.svc.test 127.0.0.1:9001 admin maint\n" in f.read()
    dns.set_srv("_app._tcp.svc.test", [(10, 1, 9001, "n1.svc.test"), (10, 1, 9002, "n2.svc.test")],
                ttl=1)
    d2.wait_log(r"notice: state-file: server web/n1\.svc\.test restored now that DNS made it: "
                r"maint, weight 1")
    s = servers(ctl)
    assert s["n1.svc.test"]["admin"] == "maint" and s["n2.svc.test"]["weight"] == 7

    # taken out of DNS again: what the operator set waits for it once more
    dns.set_srv("_app._tcp.svc.test", [(10, 1, 9002, "n2.svc.test")], ttl=1)
    d2.wait_log(r"notice: server web/n1\.svc\.test removed: it left its DNS answer")
    with open(state) as f:
        assert "server web n1.svc.test 127.0.0.1:9001 admin maint\n" in f.read()
    reply = ctl.cmd("server del web/n2.svc.test")
    assert reply.startswith("error: server web/n2.svc.test comes from the DNS answer of "
                            "_app._tcp.svc.test"), reply


def test_a_reload_keeps_discovered_servers_and_survives_a_silent_dns(short_dir, sluice,
                                                                    backends, dns):
    bes = [backends(h_name, name="n%d" % i) for i in (1, 2)]
    for i in (1, 2):
        dns.set_a("n%d.svc.test" % i, ["127.0.0.1"], ttl=60)
    dns.set_srv("_app._tcp.svc.test",
                [(10, 1, bes[i].port, "n%d.svc.test" % (i + 1)) for i in (0, 1)], ttl=1)
    dns.set_a("app.test", ["127.0.0.2"], ttl=1)
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    pool = "    servers srv _app._tcp.svc.test;\n    server app app.test:9;\n"
    d = sluice(conf(sock, port, dns, pool))
    ctl = wait_ctl(sock)
    held = connect(port)
    assert recv_line(held).strip() in (b"n1", b"n2")
    before = servers(ctl)

    dns.silent()
    t0 = time.monotonic()
    write_atomic(d.conf_path, conf(sock, port, dns, pool + "    queue 50;\n"))
    reply = ctl.cmd("reload")
    assert reply.startswith("reload done"), reply
    assert time.monotonic() - t0 < 2.0 + 2.0
    after = servers(ctl)
    assert sorted(after) == sorted(before)
    for n, row in after.items():
        assert row["connections_total"] == before[n]["connections_total"], n
    assert got_nothing(held, 0.05)

    # a new name cannot be looked up: the reload fails at its line, nothing changes
    bad = conf(sock, port, dns, pool + "    server more more.test:9;\n")
    write_atomic(d.conf_path, bad)
    line, col = text_pos(bad, "more.test:9")
    reply = ctl.cmd("reload")
    # no reply in 300 ms then 600 ms: a timeout, before the load's 2 s
    assert reply.startswith("error: %s:%d:%d: error: cannot resolve 'more.test': timeout "
                            "(near 'more.test:9')" % (d.conf_path, line, col)), reply
    assert sorted(servers(ctl)) == sorted(before)
    dns.silent(False)
    held.close()


def test_server_add_with_a_name_waits_for_it_without_holding_the_loop(short_dir, sluice,
                                                                     backends, dns):
    old, new = two_backends_one_port(backends)
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    d = sluice(conf(sock, port, dns, "    server s0 127.0.0.2:%d;\n" % old.port))
    ctl = wait_ctl(sock)
    dns.silent()
    other = wait_ctl(sock)
    result = {}

    def add():
        t = time.monotonic()
        result["reply"] = ctl.cmd("server add web x app.test:%d ready" % old.port)
        result["took"] = time.monotonic() - t

    th = threading.Thread(target=add)
    th.start()
    # the lookup waits for a silent server; the loop answers others meanwhile
    time.sleep(0.3)
    t = time.monotonic()
    assert other.cmd("show info").startswith("version:")
    assert time.monotonic() - t < 0.5
    th.join(DEADLINE)
    # the block's 300 ms, then 600 ms
    assert result["reply"] == "error: cannot resolve 'app.test': timeout"
    assert 0.8 < result["took"] < 2.5
    assert "x" not in servers(ctl)

    dns.silent(False)
    dns.set_a("app.test", ["127.0.0.2"], ttl=1)
    assert ctl.cmd("server add web x app.test:%d ready" % old.port) == \
        "server web/x added (ready)"
    d.wait_log(r"notice: server web/x added at app\.test:%d \(127\.0\.0\.2:%d\) \(ready, "
               r"control socket\)" % (old.port, old.port))
    assert servers(ctl)["x"]["host"] == "app.test"
    # followed like a server line: the name moves, so does the server
    dns.set_a("app.test", ["127.0.0.3"], ttl=1)
    wait_until(lambda: servers(ctl)["x"]["address"] == "127.0.0.3:%d" % old.port,
               what="server x to follow its name")
    assert servers(ctl)["x"]["admin"] == "ready"


# ---------------------------------------------------------------- the system's resolver
# The same behaviours with no resolvers block: the daemon runs in a mount
# namespace of its own where /etc/resolv.conf names a DNS server the test
# runs on port 53 of a loopback address. Such a file is valid for builds
# older than the resolvers block too, so these show what changed.

SYS_DNS_HOST = "127.0.0.153"


@pytest.fixture
def sys_dns(tmp_path):
    try:
        d = DnsServer(SYS_DNS_HOST, 53)
    except OSError as e:
        pytest.skip("cannot listen on %s:53: %s" % (SYS_DNS_HOST, e))
    resolv = str(tmp_path / "resolv.conf")
    with open(resolv, "w") as f:
        f.write("nameserver %s\noptions timeout:1 attempts:1\n" % SYS_DNS_HOST)
    d.prefix = ["unshare", "-m", "sh", "-c",
                'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"', "sh", resolv]
    yield d
    d.close()


def sys_conf(sock, port, pool):
    return ("global { workers 2; log stderr info; grace 5s; control %s; }\n"
            "pool web {\n%s}\n"
            "listen www { bind 127.0.0.1:%d; pool web; timeout connect 1s; }\n"
            % (sock, pool, port))


def test_server_add_of_a_name_never_holds_the_control_loop(short_dir, sluice, sys_dns):
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    sluice(sys_conf(sock, port, "    server s0 127.0.0.2:9;\n"), prefix=sys_dns.prefix)
    ctl = wait_ctl(sock)
    other = wait_ctl(sock)
    sys_dns.silent()
    th = threading.Thread(target=lambda: ctl.cmd("server add web x slow.test:9 ready"))
    th.start()
    time.sleep(0.2)
    # while the name is looked up, the loop answers, in far less than the
    # lookup takes
    took = []
    for _ in range(5):
        t = time.monotonic()
        assert other.cmd("show info").startswith("version:")
        took.append(time.monotonic() - t)
        time.sleep(0.1)
    th.join(DEADLINE)
    assert max(took) < 0.3, took


def test_a_reload_with_a_silent_dns_keeps_the_names_it_knows(short_dir, sluice, sys_dns):
    sys_dns.set_a("app.test", ["127.0.0.2"], ttl=1)
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    text = sys_conf(sock, port, "    server app app.test:9;\n")
    d = sluice(text, prefix=sys_dns.prefix)
    ctl = wait_ctl(sock)
    assert servers(ctl)["app"]["address"] == "127.0.0.2:9"
    sys_dns.silent()
    write_atomic(d.conf_path, text.replace("grace 5s", "grace 6s"))
    reply = ctl.cmd("reload")
    assert reply.startswith("reload done"), reply
    assert servers(ctl)["app"]["address"] == "127.0.0.2:9"


def test_discovered_servers_are_checked_drained_and_counted_like_others(short_dir, sluice,
                                                                       backends, dns):
    live = backends(h_name, name="n1")
    dead_port = free_port()  # nothing listens there: its check fails
    dns.set_a("n1.svc.test", ["127.0.0.1"])
    dns.set_a("n2.svc.test", ["127.0.0.1"])
    dns.set_srv("_app._tcp.svc.test", [(10, 1, live.port, "n1.svc.test"),
                                       (10, 1, dead_port, "n2.svc.test")], ttl=1)
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    d = sluice(conf(sock, port, dns,
                    "    check tcp { interval 200ms; timeout 200ms; rise 1; fall 1; }\n"
                    "    slowstart 1s;\n"
                    "    servers srv _app._tcp.svc.test;\n"))
    ctl = wait_ctl(sock)
    d.wait_log(r"warning: server web/n2\.svc\.test DOWN: connect refused")
    assert ctl.cmd("wait up web/n1.svc.test 5s") == "server web/n1.svc.test is up"
    assert metric(ctl, "sluice_server_up", server="n1.svc.test") == 1
    assert metric(ctl, "sluice_server_up", server="n2.svc.test") == 0
    assert get_name(port) == "n1"
    # drained by the operator: its connection finishes, wait drained answers
    c = connect(port)
    assert recv_line(c).strip() == b"n1"
    ctl.ok("server drain web/n1.svc.test")
    assert servers(ctl)["n1.svc.test"]["admin"] == "drain"
    c.close()
    assert ctl.cmd("wait drained web/n1.svc.test 5s") == "server web/n1.svc.test is drained"
    assert metric(ctl, "sluice_server_connections_total", server="n1.svc.test") == 2


def test_a_server_added_with_a_name_is_followed_again_after_a_restart(short_dir, tmp_path,
                                                                      sluice, dns):
    state = str(tmp_path / "state")
    dns.set_a("app.test", ["127.0.0.2"], ttl=1)
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    text = conf(sock, port, dns, "    server s0 127.0.0.9:9;\n",
                global_extra="state-file %s;" % state)
    d = sluice(text)
    ctl = wait_ctl(sock)
    ctl.ok("server add web x app.test:9 ready")
    with open(state) as f:
        assert "server web x 127.0.0.2:9 admin ready added host app.test\n" in f.read()
    assert d.stop() == 0
    dns.set_a("app.test", ["127.0.0.3"], ttl=1)
    sluice(text)
    ctl = wait_ctl(sock)
    # restored at its last address, then moved by its name's answer
    wait_until(lambda: servers(ctl)["x"]["address"] == "127.0.0.3:9",
               what="the restored server to follow its name")
    assert servers(ctl)["x"]["host"] == "app.test"
    assert servers(ctl)["x"]["runtime_added"]


def test_reloads_that_change_the_resolvers_leave_no_descriptor_behind(short_dir, sluice, dns):
    from conftest import proc_fds
    dns.set_a("app.test", ["127.0.0.2"], ttl=1)
    dns.set_a("n1.svc.test", ["127.0.0.1"])
    dns.set_srv("_app._tcp.svc.test", [(10, 1, 9001, "n1.svc.test")], ttl=1)
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    pool = "    server app app.test:9;\n    servers srv _app._tcp.svc.test;\n"
    d = sluice(conf(sock, port, dns, pool))
    ctl = wait_ctl(sock)
    before = proc_fds(d.pid)
    for i in range(20):
        # a new block each time (its timeout changes): the old one's
        # c-ares sockets must go with it
        write_atomic(d.conf_path, conf(sock, port, dns, pool).replace(
            "timeout 300ms", "timeout %dms" % (300 + i % 2)))
        assert ctl.cmd("reload").startswith("reload done")
    assert sorted(servers(ctl)) == ["app", "n1.svc.test"]
    wait_until(lambda: proc_fds(d.pid) <= before + 2, timeout=5,
               what="descriptors back to %d (now %d)" % (before, proc_fds(d.pid)))
