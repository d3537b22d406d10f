# Many connections at once: 2 000 clients held open through the proxy at the
# same time, each echoing a message at the end.
import selectors
import time

import pytest

from conftest import DEADLINE, SelectEcho, connect, free_port, make_conf, wait_until

N = 2000


@pytest.fixture
def select_echo():
    e = SelectEcho()
    yield e
    e.close()


def test_2000_concurrent_connections(sluice, select_echo):
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % select_echo.addr]))
    socks = []
    try:
        for _ in range(N):
            socks.append(connect(port))
        # all of them open at the backend at the same time
        wait_until(lambda: select_echo.active == N, timeout=DEADLINE * 2,
                   what="%d connections open at the backend (have %d)" % (N, select_echo.active))
        sel = selectors.DefaultSelector()
        want = {}
        for i, s in enumerate(socks):
            msg = b"message %04d\n" % i
            s.sendall(msg)
            s.setblocking(False)
            want[s] = msg
            sel.register(s, selectors.EVENT_READ, b"")
        got = {}
        end = time.monotonic() + DEADLINE * 2
        while len(got) < N and time.monotonic() < end:
            for key, _ in sel.select(1.0):
                s = key.fileobj
                buf = key.data + s.recv(64)
                if buf.endswith(b"\n"):
                    got[s] = buf
                    sel.unregister(s)
                else:
                    sel.modify(s, selectors.EVENT_READ, buf)
        sel.close()
        bad = [s for s in socks if got.get(s) != want[s]]
        assert not bad, "%d of %d connections did not echo their message" % (len(bad), N)
        assert select_echo.max_active == N
    finally:
        for s in socks:
            s.close()
    logs = d.wait_conns(N, timeout=DEADLINE * 2)
    assert len(logs) == N and all(c["end"] == "client-closed" for c in logs)
    wait_until(lambda: select_echo.active == 0, what="backend connections closed")
