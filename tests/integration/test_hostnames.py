# Server addresses written as host names: resolved through the system
# resolver (/etc/hosts, DNS) when the file is loaded (start, `-c`, reload)
# and by `server add`. A name that does not resolve is an error at its
# FILE:LINE:COL, like any other bad value, and changes nothing. Names that
# cannot resolve are tried only in an empty network namespace (unshare -n),
# where a DNS query has no route and fails at once: no traffic leaves.
import os
import re
import socket
import subprocess

from conftest import (SLUICE, echo_transfer, free_port, h_echo, text_pos, wait_ctl,
                      write_atomic)


def localhost_addr():
    """What the system resolver gives for localhost (from /etc/hosts)."""
    fam, _, _, _, sa = socket.getaddrinfo("localhost", None, socket.AF_UNSPEC,
                                          socket.SOCK_STREAM)[0]
    return fam, sa[0]


def conf(sock, port, servers):
    return ("global { log stderr info; control %s; }\n"
            "pool web {\n%s}\n"
            "listen www { bind 127.0.0.1:%d; pool web; timeout connect 1s; }\n"
            % (sock, "".join("    server %s;\n" % s for s in servers), port))


def fmt(fam, host, port):
    return "[%s]:%d" % (host, port) if fam == socket.AF_INET6 else "%s:%d" % (host, port)


def test_server_named_localhost_is_resolved_and_served(short_dir, sluice, backends):
    fam, host = localhost_addr()
    be = backends(h_echo, host=host)
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    d = sluice(conf(sock, port, ["a localhost:%d" % be.port]))
    ctl = wait_ctl(sock)
    assert ctl.servers()[("web", "a")]["address"] == fmt(fam, host, be.port)
    assert echo_transfer(port, 10000) is None
    d.wait_conns(1, pool="web", server="a", end="client-closed")

    # server add resolves too, and says what it resolved to
    be2 = backends(h_echo, host=host)
    ctl.ok("server add web b localhost:%d ready" % be2.port)
    assert ctl.servers()[("web", "b")]["address"] == fmt(fam, host, be2.port)
    d.wait_log(r"notice: server web/b added at localhost:%d \(%s\) \(ready, control socket\)"
               % (be2.port, re.escape(fmt(fam, host, be2.port))))
    ctl.ok("server maint web/a")
    assert echo_transfer(port, 10000) is None
    d.wait_conns(1, pool="web", server="b", end="client-closed")


def write_conf(tmp_path, text):
    path = str(tmp_path / "names.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def test_check_names_the_line_of_a_name_that_does_not_resolve(tmp_path):
    text = conf("/tmp/unused.sock", 8080, ["a localhost:9001", "b db.example:5432"])
    path = write_conf(tmp_path, text)
    line, col = text_pos(text, "db.example:5432")
    r = subprocess.run(["unshare", "-n", SLUICE, "-c", "-f", path], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1, r
    assert re.fullmatch(r"%s:%d:%d: error: cannot resolve 'db\.example': [^\n]+ "
                        r"\(near 'db\.example:5432'\)\n" % (re.escape(path), line, col),
                        r.stderr), r.stderr
    # a start fails the same way, binding nothing
    r = subprocess.run(["unshare", "-n", SLUICE, "-f", path], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1 and "cannot resolve 'db.example'" in r.stderr, r


def test_bad_host_names_are_syntax_errors(tmp_path):
    for bad in ("my_host:80", "-web.example:80", "web..example:80", "a" * 64 + ".example:80"):
        text = conf("/tmp/unused.sock", 8080, ["a %s" % bad])
        path = write_conf(tmp_path, text)
        line, col = text_pos(text, bad)
        r = subprocess.run([SLUICE, "-c", "-f", path], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 1, (bad, r)
        assert r.stderr.startswith("%s:%d:%d: error: bad host name '%s' (expected letters, "
                                   "digits, '-' and '.')" % (path, line, col, bad[:-3])), \
            r.stderr


def test_reload_and_server_add_with_an_unknown_name_change_nothing(short_dir, sluice):
    # the daemon in an empty network namespace: names other than localhost
    # cannot resolve there, and the control socket is a file, reachable
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    good = conf(sock, port, ["a localhost:9001"])
    d = sluice(good, prefix=["unshare", "-n"])
    ctl = wait_ctl(sock)
    before = ctl.servers()

    bad = conf(sock, port, ["a localhost:9001", "b db.example:5432"])
    write_atomic(d.conf_path, bad)
    line, col = text_pos(bad, "db.example:5432")
    reply = ctl.cmd("reload")
    assert re.match(r"error: %s:%d:%d: error: cannot resolve 'db\.example': .* "
                    r"\(near 'db\.example:5432'\)" % (re.escape(d.conf_path), line, col),
                    reply), reply
    d.wait_log(r"error: reload failed, keeping the running configuration: .*cannot resolve")
    assert ctl.servers() == before
    assert re.search(r"^reloads: +0 ok, 1 failed$", ctl.ok("show info"), re.M)

    reply = ctl.cmd("server add web c db.example:5432 ready")
    assert re.fullmatch(r"error: cannot resolve 'db\.example': .+", reply), reply
    reply = ctl.cmd("server add web c bad_name:5432 ready")
    assert reply.startswith("error: bad address 'bad_name:5432': bad host name 'bad_name'"), \
        reply
    assert ctl.servers() == before


# Run inside `unshare -n -m`: loopback up, /etc/resolv.conf bound to one
# naming a DNS server on 127.0.0.1 that reads queries and never answers,
# then time `sluice -c` on argv[1]. Prints JSON: rc, stderr, seconds.
SILENT_DNS = r"""
import json, socket, subprocess, sys, time
resolv = sys.argv[2]
with open(resolv, "w") as f:
    f.write("nameserver 127.0.0.1\n")
subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))  # bound before the lookup starts: it is never refused
t0 = time.monotonic()
r = subprocess.run([sys.argv[3], "-c", "-f", sys.argv[1]], capture_output=True, text=True,
                   timeout=60)
t = time.monotonic() - t0
queries = 0
s.setblocking(False)
try:
    while True:
        s.recvfrom(512)
        queries += 1
except BlockingIOError:
    pass
print(json.dumps({"rc": r.returncode, "stderr": r.stderr, "seconds": t, "queries": queries}))
"""


def test_a_dns_server_that_never_answers_costs_a_bounded_wait(tmp_path):
    import json
    # several names: they are looked up together, so the wait is one deadline
    text = conf("/tmp/unused.sock", 8080, ["a db1.example:5432", "b db2.example:5432",
                                            "c localhost:9001", "d db3.example:5432"])
    path = write_conf(tmp_path, text)
    r = subprocess.run(["unshare", "-n", "-m", "/usr/bin/python3", "-c", SILENT_DNS, path,
                        str(tmp_path / "resolv.conf"), SLUICE],
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["queries"] > 0, out  # the lookups really went to the silent server
    assert out["rc"] == 1, out
    errs = out["stderr"].splitlines()
    assert len(errs) == 3, errs
    for name, err in zip(("db1", "db2", "db3"), errs):
        line, col = text_pos(text, "%s.example:5432" % name)
        assert err == ("%s:%d:%d: error: cannot resolve '%s.example': no answer within 2000ms "
                       "(near '%s.example:5432')" % (path, line, col, name, name)), errs
    # glibc alone would wait 5 s x 2 attempts per query
    assert 1.9 < out["seconds"] < 4.0, out


def test_a_name_with_several_addresses_keeps_its_server_across_reloads(tmp_path, short_dir,
                                                                        sluice):
    # the daemon sees a private /etc/hosts (its own mount namespace) where
    # one name has two addresses; their order changes between reloads, as
    # with DNS round robin: the server keeps its address (no new identity,
    # its connections and health carry on) until the address goes away
    hosts = str(tmp_path / "hosts")

    def write_hosts(*addrs):
        with open(hosts, "w") as f:  # in place: the bind mount follows the inode
            f.write("127.0.0.1 localhost\n")
            for a in addrs:
                f.write("%s api.test\n" % a)

    port_be = 9  # nothing needs to listen: only the chosen address is checked
    write_hosts("127.0.0.2", "127.0.0.3")
    sock = os.path.join(short_dir, "ctl.sock")
    port = free_port()
    text = conf(sock, port, ["api api.test:%d" % port_be])
    d = sluice(text, prefix=["unshare", "-m", "sh", "-c",
                             'mount --bind "$1" /etc/hosts && shift && exec "$@"', "sh", hosts])
    ctl = wait_ctl(sock)
    assert ctl.servers()[("web", "api")]["address"] == "127.0.0.2:%d" % port_be
    for order in (("127.0.0.3", "127.0.0.2"), ("127.0.0.2", "127.0.0.3"),
                  ("127.0.0.3", "127.0.0.2")):
        write_hosts(*order)
        assert ctl.cmd("reload").startswith("reload done"), order
        assert ctl.servers()[("web", "api")]["address"] == "127.0.0.2:%d" % port_be, order
    assert "new identity" not in d.log() and "new address" not in d.log()
    # the address is gone from the answers: the server moves
    write_hosts("127.0.0.3")
    reply = ctl.cmd("reload")
    assert reply.startswith("reload done"), reply
    assert ctl.servers()[("web", "api")]["address"] == "127.0.0.3:%d" % port_be
