"""A kernel-relayed stream whose program moved more bytes than the source
socket received must not end as if it were whole. The kernel hands the
program a retransmission that overlaps received bytes whole; the program
cuts such a head off (tests/netns/test_krelay_overlap.py), but it cannot
see one in the first segment after the insert. So at the end of the
stream sluice compares the bytes relayed (the program's redirects and
user space's reads) with the socket's tcpi_bytes_received; on a surplus
(or a shortfall) it resets both sides, logs an error and counts it. The surplus is injected (fault-injection build,
SLUICE_FAULT=krelay_repeat adds one byte to the program's count at that
look); without the fault the same exchange ends cleanly."""
import socket

from conftest import Ctl, connect, ctl_global, free_port, make_conf, recv_exact, wait_until
from test_no_memory import fault_sluice  # noqa: F401 (the fixture)


def h_echo_watch(b, c, rec):
    """Echo every byte; record whether the stream ended with EOF or reset."""
    try:
        while True:
            d = c.recv(65536)
            if not d:
                rec["end"] = "eof"
                c.shutdown(socket.SHUT_WR)
                return
            c.sendall(d)
    except ConnectionResetError:
        rec["end"] = "reset"


def exchange(port, sock):
    """Ping (so that the connection goes into the kernel relay), then 64 KiB
    and the FIN; read to the end. Returns (bytes back, how it ended)."""
    with connect(port, timeout=10) as s:
        s.sendall(b"ping")
        assert recv_exact(s, 4) == b"ping"
        with Ctl(sock) as c:
            wait_until(lambda: c.json("show info")["kernel_relay_conns"] == 1,
                       what="the connection in the kernel relay")
        s.sendall(b"x" * 65536)
        s.shutdown(socket.SHUT_WR)
        got = 0
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    return got, "eof"
                got += len(d)
        except ConnectionResetError:
            return got, "reset"


def start(sluice, backends, short_dir, **kw):
    be = backends(h_echo_watch)
    port = free_port()
    sock = short_dir + "/ctl.sock"
    conf = make_conf(port, ["a %s" % be.addr], global_extra=ctl_global(sock) + " relay kernel;")
    return be, port, sock, sluice(conf, **kw)


def test_a_repeated_segment_resets_both_sides(sluice, backends, fault_sluice, short_dir):
    be, port, sock, d = start(sluice, backends, short_dir, binary=fault_sluice,
                              prefix=["env", "SLUICE_FAULT=krelay_repeat"])
    got, end = exchange(port, sock)
    assert end == "reset", "the client saw a clean end of a broken stream (%d bytes)" % got
    (rec,) = be.wait_done(1)
    assert rec["end"] == "reset", "the server saw a clean end of a broken stream"
    d.wait_log(r"error: kernel relay: www client to server: (\d+) bytes relayed of a stream of "
               r"(\d+) since the insert; both sides reset")
    d.wait_conns(1, end="error")
    with Ctl(sock) as c:
        assert c.json("show info")["kernel_relay_broken"] == 1
        assert "\nsluice_kernel_relay_broken_total 1\n" in c.cmd("show metrics")


def test_a_whole_stream_ends_cleanly(sluice, backends, short_dir):
    be, port, sock, d = start(sluice, backends, short_dir)
    got, end = exchange(port, sock)
    assert (got, end) == (65536, "eof")
    (rec,) = be.wait_done(1)
    assert rec["end"] == "eof"
    (c,) = d.wait_conns(1)
    assert c["end"] == "client-closed"
    with Ctl(sock) as c:
        assert c.json("show info")["kernel_relay_broken"] == 0
