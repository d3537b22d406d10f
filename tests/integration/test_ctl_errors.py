# Control socket error paths: every bad command gets an "error: " reply (or
# its client is closed) and changes nothing, which a following `json show
# servers` proves; bad clients (long lines, junk, floods, clients that
# vanish mid-command or mid-reply) leave the daemon serving.
import random
import socket

import pytest

from conftest import (DEADLINE, SLOW, Ctl, connect, ctl_cmd, ctl_global, free_port, h_hold,
                      make_conf, wait_until)


@pytest.fixture
def daemon(tmp_path, sluice, backends):
    """A daemon with pool web = a, b (hold backends) and its control socket."""
    ba, bb = backends(h_hold, name="a"), backends(h_hold, name="b")
    sock = str(tmp_path / "ctl.sock")
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % ba.addr, "b %s" % bb.addr],
                         global_extra=ctl_global(sock)))
    d.sock, d.port, d.ba, d.bb = sock, port, ba, bb
    return d


def servers(sock):
    """The whole model as the daemon shows it (no traffic: counters are fixed)."""
    with Ctl(sock) as c:
        return c.json("show servers")


def assert_error(c, line, *parts):
    r = c.cmd(line)
    assert r.startswith("error: "), "%r was accepted: %r" % (line, r)
    assert r.count("\n") == 1, "%r: error reply is not one line: %r" % (line, r)
    for p in parts:
        assert p in r, "%r: %r does not mention %r" % (line, r, p)
    return r


def test_bad_commands_answer_errors_and_change_nothing(daemon):
    before = servers(daemon.sock)
    assert [s["server"] for s in before] == ["a", "b"]
    with Ctl(daemon.sock) as c:
        # unknown commands
        assert_error(c, "frobnicate", "unknown command 'frobnicate'")
        assert_error(c, "show nothing", "unknown command 'show nothing'", "e.g. show ")
        assert_error(c, "server explode web/a", "unknown command 'server explode'")
        assert_error(c, "", "empty command")
        assert_error(c, "json", "empty command")
        # wrong argument counts
        for line in ("help me", "show info now", "show servers web extra", "server drain",
                     "server ready web/a now", "server weight web/a", "server weight web/a 1 2",
                     "server add web n", "server del", "server del web/a force now",
                     "wait drained", "wait up web/a 1s extra", "server shutdown-sessions"):
            assert_error(c, line, "wrong number of arguments", "usage: ")
        # unknown pool or server, malformed references
        assert_error(c, "server drain nopool/a", "no pool 'nopool'")
        assert_error(c, "server drain web/zz", "no server 'zz' in pool 'web'")
        assert_error(c, "server drain web", "expected POOL/SERVER")
        assert_error(c, "server drain /a", "expected POOL/SERVER")
        assert_error(c, "server drain web/", "expected POOL/SERVER")
        assert_error(c, "server weight nopool/a 3", "no pool 'nopool'")
        assert_error(c, "server del web/zz", "no server 'zz'")
        assert_error(c, "server shutdown-sessions web/zz", "no server 'zz'")
        assert_error(c, "show servers nopool", "no pool 'nopool'")
        assert_error(c, "server add nopool n 127.0.0.1:1", "no pool 'nopool'")
        assert_error(c, "wait drained web/zz 1s", "no server 'zz'")
        assert_error(c, "wait up nopool/a 1s", "no pool 'nopool'")
        # bad addresses
        for addr in ("127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "999.1.1.1:80",
                     "bad_host:80", "[::1:80", "127.0.0.1:http", ":80"):
            assert_error(c, "server add web n %s" % addr, "bad address '%s'" % addr)
        # bad values and options
        assert_error(c, "server weight web/a 257", "bad weight '257'")
        assert_error(c, "server weight web/a -1", "bad weight")
        assert_error(c, "server weight web/a x", "bad weight")
        assert_error(c, "server drain web/a within soon", "bad duration 'soon'")
        assert_error(c, "server drain web/a until 5s", "usage: ")
        assert_error(c, "server ready web/a within 5s", "usage: ")
        # (test_server_doors.py: the same messages as a configuration file's)
        assert_error(c, "server add web n 127.0.0.1:1 weight 999", "weight '999' out of range")
        assert_error(c, "server add web n 127.0.0.1:1 weight", "'weight' needs a value")
        assert_error(c, "server add web n 127.0.0.1:1 check maybe",
                     "unknown check option 'maybe'")
        assert_error(c, "server add web n 127.0.0.1:1 fast", "unknown server option 'fast'",
                     "or ready")
        assert_error(c, "server add web a/b 127.0.0.1:1", "bad server name")
        assert_error(c, "server add web %s 127.0.0.1:1" % ("n" * 64), "bad server name")
        assert_error(c, "server del web/a now", "usage: server del")
        assert_error(c, "wait drained web/a forever", "bad timeout 'forever'")
        # duplicate name
        assert_error(c, "server add web a 127.0.0.1:1", "duplicate server 'a' in pool 'web'")
        assert_error(c, "server add web b 127.0.0.1:2 ready", "duplicate server 'b'")
        # too many words
        assert_error(c, "show " + " ".join(["x"] * 40), "unreadable command")
        # the connection still works after all of that
        assert c.cmd("help").startswith("commands")
    assert servers(daemon.sock) == before


def test_del_with_open_connection_is_refused(daemon):
    before = servers(daemon.sock)
    clients = [connect(daemon.port) for _ in range(2)]  # roundrobin: one on a, one on b
    daemon.ba.wait(lambda b: b.active == 1, what="a holds one connection")
    daemon.bb.wait(lambda b: b.active == 1, what="b holds one connection")
    r = ctl_cmd(daemon.sock, "server del web/a")
    assert r.startswith("error: ") and "1 open connections" in r and "force" in r, r
    after = {s["server"]: s for s in servers(daemon.sock)}
    assert list(after) == ["a", "b"]
    assert after["a"]["admin"] == "ready" and after["a"]["active"] == 1
    # the held connections were not touched
    assert daemon.ba.active == 1 and daemon.bb.active == 1
    for s in clients:
        s.close()
    daemon.ba.wait(lambda b: b.active == 0, what="a idle")
    daemon.bb.wait(lambda b: b.active == 0, what="b idle")
    now = servers(daemon.sock)
    for row, old in zip(now, before):
        assert (row["server"], row["admin"], row["weight"]) == \
               (old["server"], old["admin"], old["weight"])


def read_until_closed(sock, limit=1 << 20):
    """Everything the daemon sends until it closes the connection."""
    buf = b""
    while len(buf) < limit:
        try:
            b = sock.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        buf += b
    return buf


def send_ignoring_close(sock, data):
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon closed us after the limit: what we test


def test_overlong_line_is_an_error_and_closes(daemon):
    before = servers(daemon.sock)
    # exactly at the limit: 4095 bytes and the newline are one command
    with Ctl(daemon.sock) as c:
        line = "show servers".ljust(4095)
        r = c.cmd(line)
        assert r.startswith("pool  server"), r
    # one byte more, a valid admin command padded: refused before its newline
    for total in (4096, 5000, 64 * 1024):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(DEADLINE)
        s.connect(daemon.sock)
        send_ignoring_close(s, b"server drain web/a".ljust(total) + b"\n")
        got = read_until_closed(s)
        s.close()
        assert got == b"error: command line longer than 4096 bytes\n\n", (total, got[:200])
    # no newline at all
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(DEADLINE)
    s.connect(daemon.sock)
    send_ignoring_close(s, b"x" * 10000)
    assert read_until_closed(s).startswith(b"error: command line longer")
    s.close()
    assert servers(daemon.sock) == before


def test_junk_bytes_get_errors_and_change_nothing(daemon):
    before = servers(daemon.sock)
    with Ctl(daemon.sock) as c:
        assert_error(c, "\x01\x02\x03", "unreadable command")
        c.send(b"\xff\xfe\xfd\x80\n")
        assert c.reply().startswith("error: ")
        c.send(b"\x00\x00\x00\n")
        assert c.reply().startswith("error: ")
        # a control character hidden inside an admin command
        c.send(b"server drain web/a\x1b[2J\n")
        assert c.reply().startswith("error: unreadable command")
        # random binary lines: one error reply per line, in order
        rnd = random.Random(4)
        lines = []
        for _ in range(200):
            b = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 60)))
            lines.append(b.replace(b"\n", b"\x00"))
        c.send(b"\n".join(lines) + b"\n")
        for i in range(len(lines)):
            r = c.reply()
            assert r.startswith("error: "), "junk line %d %r -> %r" % (i, lines[i], r)
        # CRLF lines still work after that
        c.send(b"show pools\r\n")
        assert c.reply().startswith("pool  balance")
    assert servers(daemon.sock) == before


def test_nul_byte_does_not_hide_junk(daemon):
    """A NUL must not cut a line into a valid command and ignored junk."""
    before = servers(daemon.sock)
    with Ctl(daemon.sock) as c:
        c.send(b"server drain web/a\x00\xff\xfe junk\n")
        r = c.reply()
    assert r.startswith("error: "), "a line with a NUL byte was run: %r" % r
    assert servers(daemon.sock) == before


def test_binary_bytes_are_not_a_server_name(daemon):
    """Bytes that are not text must not become part of a server name (the
    JSON and the state file would carry them)."""
    before = servers(daemon.sock)
    with Ctl(daemon.sock) as c:
        c.send(b"server add web x\xff\xfe 127.0.0.1:5 ready\n")
        r = c.reply()
        assert r.startswith("error: "), "a server name with binary bytes was accepted: %r" % r
    assert servers(daemon.sock) == before


def try_command(s, line):
    """Send line on s and read one reply. Returns ('ok', text), ('error',
    text) or ('closed', partial)."""
    buf = b""
    try:
        s.sendall(line)
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        while not buf.endswith(b"\n\n"):
            b = s.recv(65536)
            if not b:
                break
            buf += b
    except ConnectionResetError:
        pass
    if not buf.endswith(b"\n\n"):
        return "closed", buf
    return ("error" if buf.startswith(b"error: ") else "ok"), buf


def test_hundred_clients_at_once(daemon):
    before = servers(daemon.sock)
    socks = []
    for _ in range(100):
        # the listen backlog is 64: a non-blocking connect says EAGAIN until
        # the daemon has accepted (or refused) the ones before
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        wait_until(lambda: s.connect_ex(daemon.sock) == 0, interval=0.001,
                   what="connect %d" % len(socks))
        s.settimeout(DEADLINE)
        socks.append(s)
    outcome = [try_command(s, b"show info\n") for s in socks]
    served = [o for o in outcome if o[0] == "ok"]
    refused = [o for o in outcome if o[0] != "ok"]
    # 64 at most; 63 only if the daemon had not yet seen the close of the
    # client that read the model just before
    assert 63 <= len(served) <= 64, "served %d of 100 clients (limit 64)" % len(served)
    for kind, text in refused:
        assert kind == "closed" or text == b"error: too many control clients\n\n", (kind, text)
    for kind, text in served:
        assert text.startswith(b"version:"), text
    daemon.wait_log(r"warning: control: refused a client: 64 clients already connected")
    for s in socks:
        s.close()
    # the slots come back: a new client is served once the others are gone
    def served_again():
        with _fresh(daemon.sock) as s:
            return try_command(s, b"show info\n")[0] == "ok"

    wait_until(served_again, what="a control client served after the flood")
    assert servers(daemon.sock) == before
    assert get_ok(daemon.port)


def _fresh(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(DEADLINE)
    s.connect(path)
    return s


def get_ok(port):
    """The data plane still works: a client gets to a backend."""
    with connect(port) as s:
        s.sendall(b"ping")
    return True


def test_clients_vanishing_mid_command_and_mid_reply(daemon):
    before = servers(daemon.sock)
    # half a command, then gone: nothing runs
    for part in (b"server drain web/a", b"server del web/b", b"server weight web/a 7",
                 b"server add web n 127.0.0.1:9 ready"):
        s = _fresh(daemon.sock)
        s.sendall(part)
        s.close()
    # a big pipelined reply that nobody reads
    s = _fresh(daemon.sock)
    s.sendall(b"show metrics\n" * 300)
    s.close()
    # gone in the middle of a wait (the server has a connection, so it waits)
    held = connect(daemon.port)
    wait_until(lambda: daemon.ba.active + daemon.bb.active == 1, what="one held connection")
    busy = "a" if daemon.ba.active else "b"
    s = _fresh(daemon.sock)
    s.sendall(b"wait drained web/%s 300ms\nshow pools\n" % busy.encode())
    s.close()
    # pipelined commands on one connection, the last one cut off
    s = _fresh(daemon.sock)
    s.sendall(b"show info\nshow pools\nserver drain web/")
    s.close()
    # the daemon still answers, the model is as before, the data plane works
    with Ctl(daemon.sock) as c:
        assert c.cmd("show info").startswith("version:")
    now = servers(daemon.sock)
    assert [(r["server"], r["admin"], r["weight"]) for r in now] == \
           [(r["server"], r["admin"], r["weight"]) for r in before]
    held.close()
    assert get_ok(daemon.port)
    wait_until(lambda: daemon.ba.active + daemon.bb.active == 0, what="held connection closed")
    with Ctl(daemon.sock) as c:
        r = c.cmd("wait drained web/%s 5s" % busy)
        assert r == "server web/%s is drained\n" % busy, r
        assert c.cmd("show info").startswith("version:")


def test_clients_vanishing_during_a_wait_free_their_slots(daemon):
    """A script killed while it waits (e.g. Ctrl-C on `sluicectl wait drained
    P/S 1h`) must not keep its control slot until the wait times out: 64 of
    them would lock every operator out for an hour."""
    held = connect(daemon.port)
    wait_until(lambda: daemon.ba.active + daemon.bb.active == 1, what="one held connection")
    busy = "a" if daemon.ba.active else "b"
    for _ in range(64):
        s = _fresh(daemon.sock)
        s.sendall(b"show info\nwait drained web/%s 1h\n" % busy.encode())
        assert s.recv(9) == b"version: "  # the daemon has read the wait line too
        s.close()

    def served_again():
        with _fresh(daemon.sock) as s:
            return try_command(s, b"show info\n")[0] == "ok"

    try:
        wait_until(served_again, timeout=3.0 * SLOW,
                   what="a control client served once the 64 waiting clients are gone")
    finally:
        held.close()
    assert servers(daemon.sock)[0]["admin"] == "ready"


def test_json_escapes_interface_names(sluice, backends, short_dir):
    """Linux takes '"' and '\\' in interface names (not '/', ':' or space),
    and so does a quoted configuration word: `json show vrrp` must still be
    JSON and give the names back exactly. The interfaces do not exist, so
    the instance waits in FAULT (and sends nothing) with a reason that
    names the interface too."""
    be = backends(h_hold)
    sock, port = short_dir + "/ctl.sock", free_port()
    iface, track = 'v"1\\x', 't"2\\y'
    sluice(make_conf(port, ["a %s" % be.addr], global_extra=ctl_global(sock)) +
           'vrrp v1 {\n interface "v\\"1\\\\x";\n vrid 51;\n priority 100;\n'
           ' address 198.51.100.77/32;\n track interface "t\\"2\\\\y" weight 10;\n}\n')
    with Ctl(sock) as c:
        (v,) = wait_until(lambda: c.json("show vrrp")["vrrp"], what="the vrrp instance")
        assert v["interface"] == iface and v["state"] == "FAULT", v
        assert iface in v["last_reason"], v
        assert v["tracks"] == [{"interface": track, "weight": 10, "up": True}], v
