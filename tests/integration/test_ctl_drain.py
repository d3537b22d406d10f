# Draining from the control socket: `wait drained` answers within 100 ms of
# the last connection closing (and times out with an error), `server drain
# within` closes what is left at the deadline spread over a window while
# new connections go elsewhere, shutdown-sessions closes at once, and
# `server del force` resets the connections of the server it removes.
import json
import selectors
import socket
import threading
import time

from conftest import (DEADLINE, SLOW, Ctl, connect, ctl_cmd, ctl_global, ctl_servers,
                      free_port, h_name, make_conf, recv_line)


def start(tmp_path, sluice, backends, handler=h_name, n=2):
    """A daemon with pool web = a, b, ... over handler backends."""
    bes = [backends(handler, name=chr(ord("a") + i)) for i in range(n)]
    sock = str(tmp_path / "ctl.sock")
    port = free_port()
    d = sluice(make_conf(port, ["%s %s" % (b.name, b.addr) for b in bes],
                         global_extra=ctl_global(sock)))
    d.sock, d.port, d.bes = sock, port, {b.name: b for b in bes}
    return d


def open_on(d, server, count):
    """Open count connections that all land on server (the others in maint
    meanwhile, so no guessing about the balancer). Returns the sockets."""
    others = [n for n in d.bes if n != server]
    with Ctl(d.sock) as c:
        for n in others:
            c.ok("server maint web/%s" % n)
        socks = []
        for _ in range(count):
            s = connect(d.port)
            assert recv_line(s) == server.encode() + b"\n"
            socks.append(s)
        for n in others:
            c.ok("server ready web/%s" % n)
    d.bes[server].wait(lambda b: b.active == count, what="%d open on %s" % (count, server))
    return socks


class WaitInBackground:
    """Send a waiting command now and record when its reply arrives. A
    `show info` goes first in the same write: once its reply is back, the
    daemon has read both lines and the wait has started."""

    def __init__(self, sock_path, line):
        self.c = Ctl(sock_path)
        self.c.send(b"show info\n" + line.encode() + b"\n")
        assert self.c.reply().startswith("version:")
        self.reply = None
        self.t_reply = None
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        self.reply = self.c.reply()
        self.t_reply = time.monotonic()

    def join(self):
        self.t.join(DEADLINE)
        assert not self.t.is_alive(), "no reply to the wait"
        self.c.close()
        return self.reply


def test_wait_drained_answers_within_100ms_of_last_close(tmp_path, sluice, backends):
    d = start(tmp_path, sluice, backends)
    latencies = []
    for trial in range(8):
        name = "ab"[trial % 2]
        socks = open_on(d, name, 3)
        assert ctl_cmd(d.sock, "server drain web/%s" % name).startswith("server web/%s" % name)
        w = WaitInBackground(d.sock, "wait drained web/%s 20s" % name)
        t_closed = None
        for i, s in enumerate(socks):
            s.shutdown(socket.SHUT_WR)
            assert s.recv(10) == b""  # the daemon closes once the backend has
            t_closed = time.monotonic()
            s.close()
            if i == 0:
                assert w.reply is None, "answered with connections open: %r" % w.reply
        assert w.join() == "server web/%s is drained\n" % name
        latencies.append(w.t_reply - t_closed)
        assert ctl_cmd(d.sock, "server ready web/%s" % name).startswith("server")
    print("\nwait drained latency after the last close (ms): %s"
          % ", ".join("%.1f" % (x * 1000) for x in latencies))
    worst = max(latencies)
    assert worst <= 0.100, "wait drained answered %.1f ms after the last close" % (worst * 1000)


def test_wait_drained_does_not_answer_early_and_times_out(tmp_path, sluice, backends):
    d = start(tmp_path, sluice, backends)
    socks = open_on(d, "a", 2)
    with Ctl(d.sock) as c:
        c.ok("server drain web/a")
        t0 = time.monotonic()
        r = c.cmd("wait drained web/a 300ms")
        took = time.monotonic() - t0
        assert r == "error: timeout: server web/a still has 2 open connections\n", r
        assert 0.29 <= took < 0.29 + 1.0 * SLOW, "timeout after %.3fs" % took
        # a pipelined command behind a wait runs after the wait's reply
        c.send(b"wait drained web/a 400ms\nshow pools\n")
        assert c.reply().startswith("error: timeout")
        assert c.reply().startswith("pool  balance")
        # one closes: still waiting for the other
        socks[0].close()
        d.bes["a"].wait(lambda b: b.active == 1, what="one left on a")
        w = WaitInBackground(d.sock, "json wait drained web/a 10s")
        w.t.join(0.2)  # a bounded look for an early answer
        assert w.reply is None, "wait drained answered with a connection open: %r" % w.reply
        socks[1].close()
        assert json.loads(w.join()) == {"ok": True, "server": "web/a", "state": "drained"}
        # already drained: answers at once
        t0 = time.monotonic()
        assert c.cmd("wait drained web/a") == "server web/a is drained\n"
        assert c.cmd("wait up web/a 1s") == "server web/a is up\n"
        assert time.monotonic() - t0 < 0.5 * SLOW


def close_times(socks, timeout):
    """Wait until every socket is closed by the peer (EOF or reset); return
    {index: monotonic time seen}. Bounded by timeout."""
    sel = selectors.DefaultSelector()
    for i, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
    seen = {}
    end = time.monotonic() + timeout
    while len(seen) < len(socks) and time.monotonic() < end:
        for key, _ in sel.select(0.05):
            i = key.data
            try:
                b = key.fileobj.recv(4096)
            except (ConnectionResetError, BlockingIOError) as e:
                if isinstance(e, BlockingIOError):
                    continue
                b = b""
            if not b:
                seen[i] = time.monotonic()
                sel.unregister(key.fileobj)
    sel.close()
    return seen


def test_drain_within_closes_spread_and_sends_new_ones_elsewhere(tmp_path, sluice, backends):
    d = start(tmp_path, sluice, backends)
    n = 20
    socks = open_on(d, "a", n)
    t_cmd = time.monotonic()
    r = ctl_cmd(d.sock, "server drain web/a within 500ms")
    t_reply = time.monotonic()
    assert r == ("server web/a is draining; connections still open in 500ms will be "
                 "closed\n"), r
    # new connections go to b while a's are still open
    for _ in range(4):
        with connect(d.port) as s:
            assert recv_line(s) == b"b\n"
    assert d.bes["a"].active == n, "a's connections were closed before the deadline"
    seen = close_times(socks, DEADLINE)
    assert len(seen) == n, "%d of %d connections closed" % (len(seen), n)
    times = sorted(seen.values())
    first, last = times[0] - t_cmd, times[-1] - t_cmd
    print("drain within 500ms: %d closes from +%.0f ms to +%.0f ms, %d distinct ms"
          % (n, first * 1000, last * 1000, len({round(t * 1000) for t in times})))
    assert times[0] >= t_reply + 0.45 - (t_reply - t_cmd), \
        "a connection was closed %.0f ms after the command, before the 500ms deadline" % (
            first * 1000)
    # spread over a window (n*10 ms = 200 ms here), not all in one millisecond
    assert times[-1] - times[0] >= 0.020, "all closed within %.1f ms" % (
        (times[-1] - times[0]) * 1000)
    assert len({round(t * 1000) for t in times}) > n // 2
    assert last < 0.5 + 2.0 * SLOW
    killed = d.wait_conns(n, server="a", end="killed")
    assert len(killed) == n
    d.wait_log(r"notice: server web/a: drain deadline passed, closing %d connections over "
               r"\d+ms" % n)
    for s in socks:
        s.close()
    assert ctl_servers(d.sock)["web/a"]["admin"] == "drain"
    # b's connections were not touched
    assert not [c for c in d.conns() if c["server"] == "b" and c["end"] == "killed"]


def test_drain_within_is_cancelled_by_ready(tmp_path, sluice, backends):
    d = start(tmp_path, sluice, backends)
    socks = open_on(d, "a", 3)
    with Ctl(d.sock) as c:
        c.ok("server drain web/a within 300ms")
        c.ok("server ready web/a")
    # a bounded look past the deadline: nothing is closed
    seen = close_times(socks, 0.8 * SLOW)
    assert seen == {}, "connections closed after the drain was cancelled"
    for s in socks:
        s.close()


def test_shutdown_sessions_closes_now(tmp_path, sluice, backends):
    d = start(tmp_path, sluice, backends)
    socks = open_on(d, "a", 5)
    t0 = time.monotonic()
    r = ctl_cmd(d.sock, "server shutdown-sessions web/a")
    assert r == "closing 5 connections of web/a\n", r
    seen = close_times(socks, DEADLINE)
    assert len(seen) == 5
    assert max(seen.values()) - t0 < 0.5 * SLOW, "closed %.0f ms after shutdown-sessions" % (
        (max(seen.values()) - t0) * 1000)
    assert len(d.wait_conns(5, server="a", end="killed")) == 5
    d.bes["a"].wait(lambda b: b.active == 0, what="a's backend sides closed")
    # the server itself is unchanged: still ready, still picked
    assert ctl_servers(d.sock)["web/a"]["admin"] == "ready"
    names = set()
    for _ in range(4):
        with connect(d.port) as s:
            names.add(recv_line(s))
    assert names == {b"a\n", b"b\n"}
    for s in socks:
        s.close()


def test_del_force_resets_connections(tmp_path, sluice, backends):
    d = start(tmp_path, sluice, backends)
    socks = open_on(d, "a", 3)
    r = ctl_cmd(d.sock, "server del web/a")
    assert r.startswith("error: server web/a has 3 open connections"), r
    assert d.bes["a"].active == 3
    r = ctl_cmd(d.sock, "server del web/a force")
    assert r == "server web/a deleted\n", r
    seen = close_times(socks, DEADLINE)
    assert len(seen) == 3
    assert len(d.wait_conns(3, server="a", end="killed")) == 3
    d.bes["a"].wait(lambda b: b.active == 0, what="a's backend sides closed")
    d.wait_log(r"notice: server web/a deleted \(control socket, connections reset\)")
    assert list(ctl_servers(d.sock)) == ["web/b"]
    for _ in range(3):
        with connect(d.port) as s:
            assert recv_line(s) == b"b\n"
    assert d.bes["a"].total == 3
    for s in socks:
        s.close()
