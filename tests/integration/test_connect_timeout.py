"""A server that never answers the SYN (its accept queue is full) costs the
connect timeout, then the client is served by another server, including
when the client's first bytes were already written with the connect."""
import socket
import time

from conftest import connect, free_port, h_name, make_conf, recv_line


def blackhole():
    """A listening socket whose accept queue is full: SYNs are dropped."""
    l = socket.socket()
    l.bind(("127.0.0.1", 0))
    l.listen(0)
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(l.getsockname())
        except BlockingIOError:
            pass
        fillers.append(s)
    return l, fillers


def test_connect_timeout_moves_to_another_server(sluice, backends):
    hole, fillers = blackhole()
    b = backends(h_name, name="b")
    port = free_port()
    d = sluice(make_conf(port, ["a 127.0.0.1:%d" % hole.getsockname()[1], "b %s" % b.addr],
                         balance="first", listen_extra="timeout connect 300ms; retries 1;",
                         log="debug"))
    for speak_first in (True, False):
        t0 = time.monotonic()
        c = connect(port)
        if speak_first:
            c.sendall(b"hello\n")
        c.settimeout(5)
        assert recv_line(c) == b"b\n"
        elapsed = time.monotonic() - t0
        assert 0.25 <= elapsed < 2.0, elapsed
        c.close()
    d.wait_log(r"debug: connect to web/a \(127\.0\.0\.1:\d+\) failed: timeout", count=2)
    assert not [x for x in d.conns() if x["end"] != "client-closed"], d.conns()
    hole.close()
    for s in fillers:
        s.close()
