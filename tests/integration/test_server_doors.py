# One set of rules for the three doors through which a server enters the
# model: the configuration file, `server add` on the control socket and the
# state file read at start-up. The same bad name or out-of-range value is
# refused by each with the same message, and changes nothing; the options a
# server was added with survive a restart through the state file, written
# in the words of a configuration file's server line.
import os
import re

import pytest

from conftest import (Ctl, ctl_global, ctl_servers, free_port, h_hold, make_conf, run_sluice)

NAME_RULE = "(expected 1-63 letters, digits, '-', '_', '.')"

# (what follows the server's name in all three doors, the one message)
CASES = [
    ("a/b", "", "bad server name 'a/b' " + NAME_RULE),
    ("n" * 64, "", "bad server name '%s' %s" % ("n" * 64, NAME_RULE)),
    ("n", "weight 300", "weight '300' out of range (expected an integer 0-256)"),
    ("n", "weight -1", "weight '-1' out of range (expected an integer 0-256)"),
    ("n", "maxconn 1000001", "maxconn '1000001' out of range (expected an integer 0-1000000)"),
    ("n", "send-proxy v3", "unknown PROXY protocol version 'v3' (expected v1, v2 or none)"),
    ("n", "check port 0", "check port '0' out of range (expected an integer 1-65535)"),
    ("n", "weight", "'weight' needs a value"),
]

CONF_ERR = re.compile(r"^(?P<file>\S+):(?P<line>\d+):(?P<col>\d+): error: (?P<msg>.*?)"
                      r"(?: \(near '.*'\))?$")


def conf_door(tmp_path, name, opts, addr):
    """The message sluice -c gives for the server line, without position."""
    path = tmp_path / "door.conf"
    path.write_text("pool web {\n    server %s %s %s;\n}\n" % (name, addr, opts))
    r = run_sluice(["-c", "-f", str(path)])
    assert r.returncode == 1, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    m = CONF_ERR.match(lines[0])
    assert m and m.group("file") == str(path) and m.group("line") == "2", lines[0]
    return m.group("msg")


def state_door(tmp_path, conf, state, name, opts, addr):
    """The message a start with this state file line fails with."""
    with open(state, "w") as f:
        f.write("server web %s %s admin ready added %s\n" % (name, addr, opts))
    path = tmp_path / "state-door.conf"
    path.write_text(conf)
    r = run_sluice(["-f", str(path)])
    assert r.returncode != 0, "a bad state file was accepted: %r" % r.stderr[-2000:]
    m = re.search(r"error: state-file %s:1: (.*)$" % re.escape(state), r.stderr, re.M)
    assert m, r.stderr[-2000:]
    return m.group(1)


def test_same_rules_and_messages_through_every_door(tmp_path, sluice, backends):
    be = backends(h_hold, name="a")
    sock = str(tmp_path / "ctl.sock")
    state = str(tmp_path / "sluice.state")
    port = free_port()
    conf = make_conf(port, ["a %s" % be.addr], global_extra=ctl_global(sock))
    d = sluice(conf)
    with Ctl(sock) as c:
        before = c.json("show servers")
        for name, opts, want in CASES:
            via_conf = conf_door(tmp_path, name, opts, be.addr)
            r = c.cmd(("server add web %s %s %s" % (name, be.addr, opts)).rstrip())
            assert r.startswith("error: "), r
            via_ctl = r[len("error: "):].rstrip("\n")
            assert (via_conf, via_ctl) == (want, want), (name, opts)
        # nothing was added
        assert c.json("show servers") == before
        # the same duplicate rule (the file names its first line too)
        r = c.cmd("server add web a %s" % be.addr)
        assert r.rstrip("\n") == "error: duplicate server 'a' in pool 'web'", r
    assert d.stop() == 0
    # the state file: a start that refuses the file applies none of it
    conf_state = make_conf(free_port(), ["a %s" % be.addr],
                           global_extra=ctl_global(str(tmp_path / "ctl2.sock"),
                                                   "state-file %s;" % state))
    for name, opts, want in CASES:
        assert state_door(tmp_path, conf_state, state, name, opts, be.addr) == want, (name, opts)


def test_check_options_need_a_check_block_through_every_door(tmp_path, sluice, backends):
    be = backends(h_hold, name="a")
    sock = str(tmp_path / "ctl.sock")
    port = free_port()
    want = "server 'n' has check options but pool 'web' has no check block"
    assert conf_door(tmp_path, "n", "check off", be.addr) == want
    sluice(make_conf(port, ["a %s" % be.addr], global_extra=ctl_global(sock)))
    with Ctl(sock) as c:
        assert c.cmd("server add web n %s check off" % be.addr).rstrip("\n") == "error: " + want
        assert c.cmd("server add web n %s agent port 99" % be.addr).rstrip("\n") == \
            "error: server 'n' has agent options but pool 'web' has no agent"


KEEP = ("address", "admin", "weight", "backup", "maxconn", "runtime_added")


def test_added_options_survive_a_restart_in_the_files_words(tmp_path, sluice, backends):
    bes = {n: backends(h_hold, name=n) for n in ("a", "n", "old")}
    sock = str(tmp_path / "ctl.sock")
    state = str(tmp_path / "sluice.state")
    port = free_port()
    conf = make_conf(port, ["a %s" % bes["a"].addr],
                     pool_extra="check tcp { interval 1h; }",
                     global_extra=ctl_global(sock, "state-file %s;" % state))
    d = sluice(conf, name="first")
    with Ctl(sock) as c:
        c.ok("server add web n %s weight 3 maxconn 7 backup send-proxy v2 check port %d ready"
             % (bes["n"].addr, bes["n"].port))
    with open(state) as f:
        text = f.read()
    # the words of a configuration file's server line
    assert ("server web n %s admin ready added weight 3 maxconn 7 backup send-proxy v2 "
            "check port %d\n" % (bes["n"].addr, bes["n"].port)) in text, text
    before = {k: {f: r[f] for f in KEEP} for k, r in ctl_servers(sock).items()}
    assert before["web/n"] == {"address": bes["n"].addr, "admin": "ready", "weight": 3,
                               "backup": True, "maxconn": 7, "runtime_added": True}
    assert d.stop() == 0
    # a line in the format written before the option table is still read
    with open(state, "a") as f:
        f.write("server web old %s admin drain weight 4 added backup=1 maxconn=9 nocheck\n"
                % bes["old"].addr)
    d2 = sluice(conf, name="second")
    d2.wait_log(r"notice: state-file: server web/old restored: drain, weight 4, added at runtime")
    after = {k: {f: r[f] for f in KEEP} for k, r in ctl_servers(sock).items()}
    assert after["web/n"] == before["web/n"]
    assert after["web/old"] == {"address": bes["old"].addr, "admin": "drain", "weight": 4,
                                "backup": True, "maxconn": 9, "runtime_added": True}
    # rewritten in today's words at the next change
    with Ctl(sock) as c:
        c.ok("server ready web/old")
    with open(state) as f:
        text = f.read()
    assert ("server web old %s admin ready added weight 4 maxconn 9 backup check off\n"
            % bes["old"].addr) in text, text
    assert d2.stop() == 0
