# Shutdown: SIGTERM stops the listeners at once, lets open connections
# finish, then exits 0; with a short grace an open connection is closed
# when the grace period ends.
import signal
import socket
import time

from conftest import DEADLINE, connect, free_port, h_echo, make_conf, recv_exact, wait_until


def refused(port):
    """One connect attempt: True when refused. A connect that still gets in
    (listener not closed yet) is closed at once."""
    try:
        s = connect(port, timeout=2)
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        return False  # got into the backlog of a listener being closed
    s.close()
    return False


def echo(s, msg):
    s.sendall(msg)
    assert recv_exact(s, len(msg)) == msg


def test_sigterm_lets_open_connection_finish(sluice, backends):
    be = backends(h_echo)
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr], grace="60s"))
    s = connect(port)
    echo(s, b"before\n")
    d.signal(signal.SIGTERM)
    d.wait_log(r"notice: SIGTERM: stopping listeners, 1 connections open, grace 60000ms")
    wait_until(lambda: refused(port), what="new connections refused")
    # the open connection keeps working, and the daemon waits for it
    for i in range(5):
        echo(s, b"during %d\n" % i)
    assert d.proc.poll() is None, "sluice exited with a connection still open"
    s.shutdown(socket.SHUT_WR)
    assert s.recv(10) == b""
    s.close()
    assert d.wait_exit() == 0
    logs = d.conns()
    assert [c["end"] for c in logs if c["up"] != "0"] == ["client-closed"]
    assert "grace period over" not in d.log()
    d.wait_log(r"notice: all connections finished")


def test_sigterm_short_grace_closes_open_connection(sluice, backends):
    be = backends(h_echo)
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr], grace="500ms"))
    s = connect(port)
    echo(s, b"hello\n")
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    try:
        got = s.recv(10)  # blocks until the daemon closes us
    except ConnectionResetError:
        got = b""
    waited = time.monotonic() - t0
    assert got == b""
    assert waited >= 0.45, "closed %.3fs after SIGTERM, before the 500ms grace" % waited
    assert d.wait_exit() == 0
    d.wait_log(r"notice: grace period over: closing 1 connections")
    (c,) = d.conns()
    assert c["end"] == "shutdown"
    (rec,) = be.wait_done(1)  # the server side was closed too
    s.close()
