"""Our own resource exhaustion is never blamed on a server (issue 9 item 5).

- At the connection limit, with many health checks that each hold a
  descriptor for a while, the descriptor reserve covers every check: no
  check fails, no server goes DOWN, and reaching the limit is logged with
  the count and the limit and counted (show info, show listeners, metrics).
- With no descriptor left at all (the limit lowered on the running daemon
  with prlimit), checks cannot run: that is a local error, counted and
  logged, the check retried, and no server goes DOWN; a client whose server
  socket cannot be opened is closed with end=local-error and the server
  gets no connect error."""
import os
import re
import selectors
import socket
import struct
import subprocess
import threading
import time

from conftest import (DEADLINE, SelectEcho, connect, ctl_global, ctl_servers, Ctl, free_port,
                      h_request_reply, make_conf, recv_exact, recv_line, wait_until)


class DelayedOK:
    """A check target that answers "OK" only after `delay` seconds, so that
    every check holds a descriptor of the daemon that long. One selectors
    thread; counts the checks it answered."""

    def __init__(self, delay):
        self.delay = delay
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4096)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.answered = 0
        self.lock = threading.Lock()
        self.stop_r, self.stop_w = socket.socketpair()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        sel = selectors.DefaultSelector()
        sel.register(self.lsock, selectors.EVENT_READ, "accept")
        sel.register(self.stop_r, selectors.EVENT_READ, "stop")
        due = []  # (time, socket), in accept order, so sorted by time
        while True:
            now = time.monotonic()
            while due and due[0][0] <= now:
                _, c = due.pop(0)
                try:
                    c.send(b"OK\n")
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
                c.close()
                with self.lock:
                    self.answered += 1
            wait = max(0.0, due[0][0] - now) if due else 1.0
            for key, _ in sel.select(wait):
                if key.data == "stop":
                    for _, c in due:
                        c.close()
                    sel.close()
                    self.lsock.close()
                    return
                for _ in range(256):
                    try:
                        c, _ = self.lsock.accept()
                    except (BlockingIOError, OSError):
                        break
                    due.append((time.monotonic() + self.delay, c))

    def count(self):
        with self.lock:
            return self.answered

    def close(self):
        self.stop_w.send(b"x")
        self.thread.join(DEADLINE)
        self.stop_w.close()
        self.stop_r.close()


def info_of(sock):
    with Ctl(sock) as c:
        return c.json("show info")


def open_fds(pid):
    return {int(x) for x in os.listdir("/proc/%d/fd" % pid)}


def set_nofile(pid, n):
    """Set the soft descriptor limit of pid (the hard one stays: raising a
    hard limit again needs CAP_SYS_RESOURCE)."""
    subprocess.run(["prlimit", "--pid", str(pid), "--nofile=%d:" % n], check=True)


def lowest_free_fd(pid):
    fds = open_fds(pid)
    return min(set(range(max(fds) + 2)) - fds)


def appears(d, pattern, within):
    """True when a log line matching pattern shows up within `within` s."""
    try:
        d.wait_log(pattern, timeout=within)
        return True
    except AssertionError:
        return False


NSERVERS = 800
NOFILE = 1500


def test_connection_limit_with_many_slow_checks(sluice, short_dir):
    """At the global and a listener's maxconn, 800 checks that each hold a
    descriptor for 0.4 s still all run: the reserve covers them."""
    checks = DelayedOK(0.4)
    echo = SelectEcho()
    port, small_port = free_port(), free_port()
    sock = short_dir + "/ctl.sock"
    servers = "".join("    server s%03d %s;\n" % (i, echo.addr) for i in range(NSERVERS))
    conf = ("global { workers 1; log stderr info; grace 2s; %s }\n"
            "pool web {\n%s"
            "    check expect { expect \"OK\"; port %d; interval 1s; timeout 2s; rise 1; "
            "fall 2; jitter 20%%; }\n}\n"
            "listen www { bind 127.0.0.1:%d; pool web; timeout idle 60s; }\n"
            "listen small { bind 127.0.0.1:%d; pool web; maxconn 3; timeout idle 60s; }\n"
            % (ctl_global(sock), servers, checks.port, port, small_port))
    held = []
    try:
        d = sluice(conf, prefix=["prlimit", "--nofile=%d:%d" % (NOFILE, NOFILE)])
        d.wait_log(r"notice: health: %d active checks" % NSERVERS)
        with Ctl(sock) as c:
            maxconn = c.json("show info")["maxconn"]
        # fill the small listener to its maxconn, then the global limit
        for i in range(3):
            s = connect(small_port)
            s.sendall(b"x")
            assert recv_exact(s, 1) == b"x"
            held.append(s)
        waiting = [connect(small_port)]
        for i in range(maxconn - 3):
            s = connect(port)
            s.sendall(b"y")
            assert recv_exact(s, 1) == b"y"
            held.append(s)
        waiting += [connect(port) for _ in range(3)]
        wait_until(lambda: info_of(sock)["connections"] == maxconn, what="maxconn connections")
        # two rounds of every check while at the limit
        base = checks.count()
        wait_until(lambda: checks.count() >= base + 2 * NSERVERS, timeout=DEADLINE,
                   what="two rounds of checks at the limit")
        assert "DOWN" not in d.log()
        d.wait_log(r"warning: listen small: maxconn reached \(3 of 3 connections\)")
        d.wait_log(r"warning: global maxconn reached \(%d of %d connections\)"
                   % (maxconn, maxconn))
        with Ctl(sock) as c:
            info = c.json("show info")
            lst = {r["name"]: r for r in c.json("show listeners")}
            metrics = c.cmd("show metrics")
            rows = c.json("show servers")
        assert info["connections"] == maxconn, info
        assert info["maxconn_reached"] >= 1, info
        assert lst["small"]["maxconn_reached"] >= 1, lst
        assert "\nsluice_maxconn_reached_total %d\n" % info["maxconn_reached"] in metrics
        assert 'sluice_listener_maxconn_reached_total{listener="small"} ' in metrics
        assert [r for r in rows if r["health"] != "up"] == []
        assert sum(r["checks_failed"] for r in rows) == 0, \
            [(r["server"], r["check"]) for r in rows if r["checks_failed"]][:5]
        assert sum(r["local_errors"] for r in rows) == 0
        assert "DOWN" not in d.log()
        assert "Too many open files" not in d.log()
        # the reserve names what it covers; maxconn is what is left, halved
        (res,) = d.wait_log(r"notice: descriptor reserve \d+: ")
        assert " %d checks, " % NSERVERS in res, res
        assert maxconn == (NOFILE - int(res.split("reserve ")[1].split(":")[0])) // 2
        for s in waiting:
            s.close()
    finally:
        for s in held:
            s.close()
        checks.close()
        echo.close()


def test_no_descriptor_left_is_a_local_error(sluice, backends, short_dir):
    be = backends(h_request_reply, name="app")
    port = free_port()
    sock = short_dir + "/ctl.sock"
    conf = make_conf(port, ["a %s" % be.addr, "b %s" % be.addr], workers=1,
                     pool_extra="check tcp { interval 200ms; timeout 200ms; rise 1; fall 2; }\n"
                                "    observe-errors 2;",
                     listen_extra="retries 2;", global_extra=ctl_global(sock))
    d = sluice(conf)
    wait_until(lambda: all(r["checks"] >= 2 for r in ctl_servers(sock).values()),
               what="two checks of each server")
    with open("/proc/%d/limits" % d.pid) as f:
        hard = int([l for l in f if l.startswith("Max open files")][0].split()[3])
    # no descriptor left: the checks cannot even open their socket. The
    # control client just used may still be closing: lower again to what is
    # free now until the checks say so
    def exhausted():
        if "socket failed: Too many open files" in d.log():
            return True
        set_nofile(d.pid, lowest_free_fd(d.pid))
        return False
    wait_until(exhausted, interval=0.1, what="checks out of descriptors")
    # seven check intervals without a descriptor: no verdict on the servers
    # (a bounded wait is the only way to see that something does not happen)
    assert not appears(d, r"DOWN", 1.4), d.log()[-2000:]
    d.wait_log(r"warning: health: tcp check of web/[ab] could not run: socket failed: Too many "
               r"open files \(a local error, not the server's; retrying\)")
    # one descriptor left: accept takes it, the server socket cannot open
    set_nofile(d.pid, lowest_free_fd(d.pid) + 1)
    for i in range(3):
        c = connect(port, src="127.0.0.%d" % (2 + i))
        c.sendall(b"GET\n")
        try:
            got = recv_line(c)
        except ConnectionResetError:  # closed with the request unread
            got = b""
        assert got == b"", "a client was served with no descriptor left"
        c.close()
    d.wait_conns(3, end="local-error")
    d.wait_log(r"warning: worker 0: cannot connect to web/[ab]: Too many open files \(a local "
               r"error, not the server's; end=local-error")
    set_nofile(d.pid, hard)
    rows = ctl_servers(sock)
    for name in ("web/a", "web/b"):
        r = rows[name]
        assert r["health"] == "up", r
        assert r["connect_errors"] == 0, r
        assert r["checks_failed"] == 0, r
    assert sum(rows[n]["local_errors"] for n in rows) >= 3 + 2, rows
    with Ctl(sock) as c:
        metrics = c.cmd("show metrics")
    assert 'sluice_server_local_errors_total{pool="web",server="a"} ' in metrics
    assert "DOWN" not in d.log()
    # and it serves again
    with connect(port) as c:
        c.sendall(b"GET again\n")
        assert recv_line(c) == b"reply to GET again\n"
