"""Out of descriptors: accepting pauses with a rate-limited error, the
daemon stays up, and it serves again once descriptors are free. The limit
is lowered on the running daemon with prlimit(1), since at start sluice
sizes maxconn to what its descriptors allow."""
import os
import subprocess

from conftest import connect, free_port, h_echo, make_conf, recv_exact, wait_until


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_emfile_pauses_accepting_and_recovers(sluice, backends):
    be = backends(h_echo)
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr]))
    base = open_fds(d.pid)
    limit = base + 10  # room for 5 connections (2 descriptors each)
    subprocess.run(["prlimit", "--pid", str(d.pid), "--nofile=%d:%d" % (limit, limit)],
                   check=True)
    held = []
    for i in range(5):
        c = connect(port)
        c.sendall(b"%d" % i)
        assert recv_exact(c, 1) == b"%d" % i
        held.append(c)
    # the next clients complete the handshake in the kernel but cannot be
    # accepted: no descriptor left
    waiting = [connect(port) for _ in range(3)]
    d.wait_log(r"error: worker \d+: accept failed: Too many open files; pausing accepts")
    assert d.proc.poll() is None
    for c in held:
        c.close()
    # descriptors are back: the waiting clients are served
    for i, c in enumerate(waiting):
        c.settimeout(10)
        c.sendall(b"w%d" % i)
        assert recv_exact(c, 2) == b"w%d" % i
        c.close()
    wait_until(lambda: open_fds(d.pid) <= base, what="descriptors back to the start")
