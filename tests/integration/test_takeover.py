"""Binary upgrade: sluice --takeover SOCKET takes the listening sockets of
the running daemon; no connection is refused or broken across the hand-over,
and the old process exits once its own connections have finished."""
import hashlib
import os
import socket
import threading
import time

from conftest import DEADLINE, connect, free_port, h_echo, recv_exact, run_sluice, wait_until


def conf(tmp_path, port, backend_port, grace="10s"):
    return """global { workers 2; log stderr info; grace %s; control %s/ctl.sock; }
pool web { server a 127.0.0.1:%d; }
listen www { bind 127.0.0.1:%d; pool web; timeout connect 1s; }
""" % (grace, tmp_path, backend_port, port)


class Load:
    """Connections in a loop, each echoing 16 KiB of random bytes through
    the proxy and checking them; counts successes and failures."""

    def __init__(self, port):
        self.port = port
        self.ok = 0
        self.failures = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        deadline = time.monotonic() + 60
        while not self.stop.is_set() and time.monotonic() < deadline:
            data = os.urandom(16384)
            try:
                c = connect(self.port, timeout=5)
                c.sendall(data)
                got = recv_exact(c, len(data))
                c.close()
                if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
                    self.failures.append("corrupted echo")
                else:
                    self.ok += 1
            except OSError as e:
                self.failures.append(repr(e))
            time.sleep(0.002)

    def finish(self):
        self.stop.set()
        self.thread.join(DEADLINE)


def test_takeover_under_load_loses_nothing(tmp_path, sluice, backends):
    be = backends(h_echo)
    port = free_port()
    text = conf(tmp_path, port, be.port)
    old = sluice(text, name="old")
    # a long connection on the old process, still open at the hand-over
    held = connect(port)
    held.sendall(b"before")
    assert recv_exact(held, 6) == b"before"
    load = Load(port)
    wait_until(lambda: load.ok >= 50, what="load running before the takeover")
    new = sluice(text, name="new", args=["--takeover", "%s/ctl.sock" % tmp_path])
    new.wait_log(r"takeover from .*: takeover: \d+ sockets handed over")
    old.wait_log(r"notice: takeover: stopping listeners, [1-9]\d* connections open")
    ok_at_takeover = load.ok
    wait_until(lambda: load.ok >= ok_at_takeover + 100, what="load continuing after takeover")
    # the old process keeps serving its own connection, then exits
    assert old.proc.poll() is None
    held.sendall(b"after")
    assert recv_exact(held, 5) == b"after"
    held.close()
    assert old.wait_exit(DEADLINE) == 0
    load.finish()
    assert load.failures == []
    assert load.ok > ok_at_takeover + 100
    # the new process owns the control socket path and serves
    c = socket.socket(socket.AF_UNIX)
    c.connect("%s/ctl.sock" % tmp_path)
    c.sendall(b"show info\n")
    buf = b""
    while not buf.endswith(b"\n\n"):
        chunk = c.recv(4096)
        assert chunk
        buf += chunk
    assert ("pid:               %d" % new.pid).encode() in buf


def test_takeover_from_nothing_fails_cleanly(tmp_path, sluice, backends):
    be = backends(h_echo)
    port = free_port()
    old = sluice(conf(tmp_path, port, be.port), name="old")
    # a socket path where nothing listens: the new process fails cleanly
    newconf = tmp_path / "new.conf"
    newconf.write_text(conf(tmp_path, free_port(), be.port).replace("ctl.sock", "ctl2.sock"))
    res = run_sluice(["-f", str(newconf), "--takeover", "%s/nothing.sock" % tmp_path])
    assert res.returncode == 1
    assert "takeover: cannot connect to %s/nothing.sock" % tmp_path in res.stderr
    # the old one is untouched
    c = connect(port)
    c.sendall(b"x")
    assert recv_exact(c, 1) == b"x"
    c.close()
    assert old.proc.poll() is None
