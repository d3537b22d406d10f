# Source ACLs through the real daemon: the longest prefix decides whatever
# the order of the lines, default deny, allow/deny files (and a bad line in
# one, at start and at a reload), runtime entries (acl add/del, expiry,
# reload and restart through the state file), the address of a PROXY
# header, IPv6, the refusal counters and log lines, show acl, and control
# commands that are wrong and change nothing.
import os
import re
import time

from conftest import DEADLINE, Ctl, run_sluice, wait_until, write_atomic
from guard_fixtures import guarded, header_v1, refused, try_once  # noqa: F401


def test_longest_prefix_decides_whatever_the_order(guarded):
    # the most specific line wins, wherever it is written
    g = guarded(listen_extra=(
        "allow 127.0.5.7; deny 127.0.5.0/24; allow 127.0.0.0/8; default deny;"))
    d = g.d
    want = {"127.0.0.2": "served", "127.0.5.9": "refused", "127.0.5.7": "served",
            "127.0.6.1": "served"}
    for src, verdict in want.items():
        assert try_once(g.port, src) == verdict, src
    assert refused(g.sock) == {"acl": 1, "conns": 0, "rate": 0, "table-full": 0}
    d.wait_log(r"notice: listen www: refused 127\.0\.5\.9:\d+: acl$")
    assert g.be.total == 3


def test_default_deny_allows_only_listed(guarded):
    g = guarded(listen_extra="default deny; allow 127.0.0.3;")
    assert try_once(g.port, "127.0.0.3") == "served"
    assert try_once(g.port, "127.0.0.4") == "refused"
    assert try_once(g.port, None) == "refused"  # 127.0.0.1
    assert refused(g.sock)["acl"] == 2


def test_deny_file_and_a_line_that_overrides_it(guarded, short_dir):
    lst = os.path.join(short_dir, "blocked.list")
    write_atomic(lst, "# blocked\n127.0.9.0/24\n  127.0.8.8  # one host\r\n127.0.7.0/24\n")
    # a line of the block beats a file entry of the same prefix
    g = guarded(listen_extra=(
        "deny file %s; allow 127.0.7.0/24;" % lst))
    assert try_once(g.port, "127.0.9.1") == "refused"
    assert try_once(g.port, "127.0.8.8") == "refused"
    assert try_once(g.port, "127.0.8.9") == "served"
    assert try_once(g.port, "127.0.7.1") == "served"
    with Ctl(g.sock) as c:
        v = c.json("show acl www")
    assert v["default"] == "allow" and v["file_entries"] == 3
    assert v["files"] == [{"path": lst, "action": "deny"}]
    assert v["rules"] == [{"origin": "config", "action": "allow", "prefix": "127.0.7.0/24",
                           "expires_in_ms": 0}]


def test_bad_line_in_a_deny_file_is_named(short_dir):
    lst = os.path.join(short_dir, "blocked.list")
    conf = os.path.join(short_dir, "s.conf")
    with open(lst, "w") as f:
        f.write("127.0.9.0/24\n\n   127.0.9.300\n")
    with open(conf, "w") as f:
        f.write("pool p { server a 127.0.0.1:9; }\n"
                "listen www { bind 127.0.0.1:9; pool p;\n  deny file blocked.list; }\n")
    r = run_sluice(["-c", "-f", conf])
    assert r.returncode == 1
    assert r.stderr.strip() == (
        "%s:3:4: error: bad address '127.0.9.300' (expected an IPv4 or IPv6 address with an "
        "optional /prefix) (near '127.0.9.300')" % lst)
    os.unlink(lst)
    r = run_sluice(["-c", "-f", conf])
    assert r.returncode == 1
    assert r.stderr.strip() == (
        "%s:3:13: error: cannot read deny file '%s': No such file or directory (near '%s')"
        % (conf, lst, lst))


def test_reload_reads_a_changed_file_and_keeps_a_bad_one_out(guarded, short_dir):
    lst = os.path.join(short_dir, "blocked.list")
    write_atomic(lst, "127.0.9.0/24\n")
    g = guarded(listen_extra="deny file %s;" % lst)
    d = g.d
    assert try_once(g.port, "127.0.10.1") == "served"
    write_atomic(lst, "127.0.9.0/24\n127.0.10.0/24\n")
    with Ctl(g.sock) as c:
        r = c.cmd("reload")
    assert r == "reload done:\nlisten www: allow/deny files read (2 prefixes)\n", r
    assert try_once(g.port, "127.0.10.1") == "refused"
    # a bad line: the reload fails and the running table stays
    write_atomic(lst, "127.0.9.0/24\nnonsense\n")
    with Ctl(g.sock) as c:
        r = c.cmd("reload")
    assert r.startswith("error: %s:2:1: error: bad address 'nonsense'" % lst), r
    assert try_once(g.port, "127.0.10.1") == "refused"
    assert try_once(g.port, "127.0.11.1") == "served"
    d.wait_log(r"error: reload failed, keeping the running configuration: %s:2:1: "
               % re.escape(lst))
    with Ctl(g.sock) as c:
        assert c.json("show info")["reloads_failed"] == 1


def test_large_file_loads_off_the_control_loop(guarded, short_dir):
    """A reload of a 1 000 000-prefix deny list is read and built on the
    reload's loader thread: meanwhile the control socket answers, and the
    reply comes once the table is in force."""
    g = guarded()
    d = g.d
    lst = os.path.join(short_dir, "big.list")
    # 1M /32s in 10.0.0.0/8 plus the one that matters
    with open(lst + ".tmp", "w") as f:
        f.write("".join("10.%d.%d.%d\n" % (i >> 16, (i >> 8) & 255, i & 255)
                        for i in range(1000000)))
        f.write("127.0.12.0/24\n")
    os.replace(lst + ".tmp", lst)
    with open(d.conf_path) as f:
        text = f.read()
    write_atomic(d.conf_path, text.replace("timeout connect 2s;",
                                           "timeout connect 2s; deny file %s;" % lst))
    a, b = Ctl(g.sock), Ctl(g.sock)
    try:
        t0 = time.monotonic()
        a.send(b"reload\n")
        info = b.json("show info")
        answered = time.monotonic() - t0
        r = a.reply()
    finally:
        a.close()
        b.close()
    assert r == ("reload done:\nlisten www: ACL or per-source limits changed\n"
                 "listen www: allow/deny files read (1000001 prefixes)\n"), r
    assert info["pid"] == d.pid and answered < 1.0 * DEADLINE / 20
    assert try_once(g.port, "127.0.12.5") == "refused"
    assert try_once(g.port, "127.0.13.5") == "served"


def test_runtime_entries_expire_and_survive_reload_and_restart(guarded, short_dir):
    state = os.path.join(short_dir, "state")
    args = dict(global_extra="state-file %s;" % state, listen_extra="deny 127.0.20.0/24;")
    g = guarded(name="one", **args)
    d = g.d
    with Ctl(g.sock) as c:
        assert c.ok("acl add www deny 127.0.21.7") == \
            "listen www: deny 127.0.21.7/32 (runtime)\n"
        # equal prefix: the runtime entry wins over the line
        assert c.ok("acl add www allow 127.0.20.0/24") == \
            "listen www: allow 127.0.20.0/24 (runtime)\n"
        assert c.ok("acl add www deny 127.0.22.0/24 for 1s") == \
            "listen www: deny 127.0.22.0/24 for 1s (runtime)\n"
    assert try_once(g.port, "127.0.21.7") == "refused"
    assert try_once(g.port, "127.0.20.1") == "served"
    assert try_once(g.port, "127.0.22.1") == "refused"
    wait_until(lambda: try_once(g.port, "127.0.22.1") == "served", what="expiry")
    d.wait_log(r"notice: acl www: 1 runtime entry expired")
    with open(state) as f:
        lines = [l for l in f.read().splitlines() if l.startswith("acl ")]
    assert lines == ["acl www deny 127.0.21.7/32", "acl www allow 127.0.20.0/24"]
    # reload: they stay
    with Ctl(g.sock) as c:
        c.ok("reload")
        rules = c.json("show acl www")["rules"]
    assert [(r["origin"], r["action"], r["prefix"]) for r in rules] == [
        ("config", "deny", "127.0.20.0/24"), ("runtime", "deny", "127.0.21.7/32"),
        ("runtime", "allow", "127.0.20.0/24")]
    with Ctl(g.sock) as c:
        assert c.ok("acl add www deny 127.0.23.0/24 for 1h").endswith("for 3600s (runtime)\n")
        assert c.ok("acl del www 127.0.21.7") == \
            "listen www: runtime entry 127.0.21.7/32 removed\n"
    assert d.stop() == 0
    # restart: restored from the state file, with what is left of the hour
    d2 = guarded(port=g.port, name="two", **args).d
    d2.wait_log(r"notice: state-file: acl www deny 127.0.23.0/24 restored")
    assert try_once(g.port, "127.0.21.7") == "served"
    assert try_once(g.port, "127.0.23.1") == "refused"
    assert try_once(g.port, "127.0.20.1") == "served"
    with Ctl(g.sock) as c:
        rules = c.json("show acl www")["rules"]
    left = [r["expires_in_ms"] for r in rules if r["prefix"] == "127.0.23.0/24"]
    assert len(left) == 1 and 3500000 < left[0] <= 3600000


def test_bad_commands_change_nothing(guarded):
    g = guarded(listen_extra="deny 127.0.30.0/24;")
    bad = {
        "acl add nope deny 127.0.0.9": "error: no listener 'nope'",
        "acl add www block 127.0.0.9": "error: usage: acl add LISTENER deny|allow CIDR "
                                       "[for DURATION]",
        "acl add www deny 127.0.0.9/8": "error: host bits set in '127.0.0.9/8' "
                                        "(expected 127.0.0.0/8)",
        "acl add www deny 127.0.0.9 for 0s": "error: bad duration '0s' (expected e.g. "
                                             "30s, 10m, 24h; at most 8784h)",
        "acl add www deny 127.0.0.9 during 5s": "error: usage: acl add LISTENER "
                                                "deny|allow CIDR [for DURATION]",
        "acl del www 127.0.30.0/24": "error: listen www has no runtime entry "
                                     "127.0.30.0/24 (entries of the configuration "
                                     "change with the file and a reload)",
        "acl del www 300.1.1.1": "error: bad address '300.1.1.1' (expected an IPv4 or "
                                 "IPv6 address with an optional /prefix)",
        "show acl nope": "error: no listener 'nope'",
        "show sources www": "error: listen www has no per-source limit (sources are "
                            "tracked only with 'limit per-source conns' or 'rate')",
        "show sources www top 0": "error: usage: show sources LISTENER [top N] (N from "
                                  "1 to 1000)",
        "sources kill www 127.0.0.0/33": "error: bad prefix length in '127.0.0.0/33' "
                                         "(expected /0-/32)",
    }
    with Ctl(g.sock) as c:
        before = c.json("show acl www")
        for line, want in bad.items():
            assert c.cmd(line) == want + "\n", line
        assert c.json("show acl www") == before
    assert try_once(g.port, "127.0.0.9") == "served"


def test_user_level_may_show_not_change(guarded, short_dir):
    ro = os.path.join(short_dir, "ro.sock")
    guarded(global_extra="control %s mode 0666 level user;" % ro)
    with Ctl(ro) as c:
        assert c.cmd("acl add www deny 127.0.0.9") == "error: permission denied\n"
        assert c.cmd("sources kill www 127.0.0.0/8") == "error: permission denied\n"
        assert c.json("show acl www")["rules"] == []


def test_proxy_header_address_decides(guarded):
    """With accept-proxy the guard judges the client the header names, IPv4
    and IPv6, not the proxy in front."""
    g = guarded(listen_extra=(
        "accept-proxy; deny 198.51.100.0/24; deny 2001:db8:bad::/48;"))
    d = g.d
    assert try_once(g.port, None, header=header_v1("192.0.2.1", g.port)) == "served"
    assert try_once(g.port, None, header=header_v1("198.51.100.7", g.port)) == "refused"
    assert try_once(g.port, None, header=header_v1("2001:db8:bad::1", g.port)) == "refused"
    assert try_once(g.port, None, header=header_v1("2001:db8:900d::1", g.port)) == "served"
    assert refused(g.sock)["acl"] == 2
    d.wait_log(r"notice: listen www: refused 198\.51\.100\.7:40000: acl$")
    d.wait_log(r"notice: listen www: refused \[2001:db8:bad::1\]:40000: acl$")
    assert g.be.total == 2
    # a refused client gets no connection log line of its own
    assert not any(c["client"].startswith("198.51.100.7") for c in d.conns())


def test_metrics_count_refusals_by_reason(guarded):
    g = guarded(listen_extra="deny 127.0.40.0/24;")
    for _ in range(3):
        assert try_once(g.port, "127.0.40.1") == "refused"
    with Ctl(g.sock) as c:
        text = c.cmd("show metrics")
    assert 'sluice_listener_refused_total{listener="www",reason="acl"} 3\n' in text
    assert 'sluice_listener_refused_total{listener="www",reason="conns"} 0\n' in text
    assert 'sluice_listener_acl_entries{listener="www",origin="config"} 1\n' in text
    assert "# TYPE sluice_listener_refused_total counter\n" in text
