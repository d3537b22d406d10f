"""Relay memory (issue 11 item 4).

- A server that wants a PROXY header never gets bytes without it: when the
  header's buffer cannot be had (an allocation failure injected at that
  call, in the fault-injection build only), the connection ends with
  end=no-memory and the server gets nothing.
- Likewise the buffer of a TLS route's ClientHello: a client whose hello
  waits ends with end=no-memory at once, not at timeout client-hello.
- The fault site does nothing in a normal build, whatever the environment.
- `global { bufmem SIZE; }` caps relay buffers and pipes across workers:
  slow readers drive it to the ceiling, what needs a buffer then ends with
  end=no-memory (logged, counted), the ceiling is never passed, and other
  connections work again once memory is back."""
import os
import subprocess
import threading

import pytest

from conftest import (DEADLINE, SAN, TSAN, Ctl, connect, ctl_global, echo_transfer, free_port,
                      h_echo, make_conf, recv_all, wait_until)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(scope="module")
def fault_sluice():
    """The daemon built with fault injection (make FAULT=1), next to the
    build under test (SAN=1 or TSAN=1 too when that is a sanitizer build)."""
    kind = "TSAN" if TSAN else "SAN" if SAN else None
    args = ["make", "-C", ROOT, "FAULT=1", "-j2"] + (["%s=1" % kind] if kind else [])
    build = os.path.join(ROOT, "build-%s-fault" % kind.lower() if kind else "build-fault")
    r = subprocess.run(args + [os.path.basename(build) + "/sluice"], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return os.path.join(build, "sluice")


def h_record(b, c, rec):
    """Record every byte until EOF (or reset)."""
    try:
        rec["data"] = recv_all(c)
    except ConnectionResetError:
        rec["data"] = b""
    rec["end"] = "eof"


def silent_then_hello(port, be):
    """Connect, stay silent until the server connection exists (so the PROXY
    header needs a buffer of its own), then send. Returns what came back."""
    with connect(port, timeout=10) as s:
        be.wait(lambda b: b.total >= 1, what="the server connection")
        try:
            s.sendall(b"hello\n")
            s.shutdown(1)
            return recv_all(s)
        except OSError:  # reset, or already shut by the daemon
            return b""


def test_proxy_header_buffer_failure_ends_with_no_memory(sluice, backends, fault_sluice,
                                                         short_dir):
    be = backends(h_record)
    port = free_port()
    sock = short_dir + "/ctl.sock"
    d = sluice(make_conf(port, ["a %s send-proxy v2" % be.addr], global_extra=ctl_global(sock)),
               binary=fault_sluice, prefix=["env", "SLUICE_FAULT=proxy_header_buf"])
    d.wait_log(r"warning: built with fault injection \(make FAULT=1\): for tests only")
    assert silent_then_hello(port, be) == b""
    (rec,) = be.wait_done(1)
    assert rec["data"] == b"", "the server got bytes without their PROXY header: %r" % rec
    d.wait_conns(1, end="no-memory")
    with Ctl(sock) as c:
        assert c.json("show info")["no_memory"] == 1


def test_client_hello_buffer_failure_ends_with_no_memory(sluice, backends, fault_sluice,
                                                         short_dir):
    """A listener with TLS routes reads the ClientHello into a relay buffer.
    When none can be had (fault injected at that call), a client whose hello
    waits ends at once with end=no-memory, counted, rather than keep its
    readable socket spinning until timeout client-hello; a client that has
    sent nothing needs no buffer and is closed by its hello timeout."""
    be = backends(h_record)
    long_port, short_port = free_port(), free_port()
    sock = short_dir + "/ctl.sock"
    conf = ("global { workers 1; log stderr info; %s }\n"
            "pool web { server a %s; }\n"
            "listen long { bind 127.0.0.1:%d; route sni a.example.com pool web; pool web;\n"
            "    timeout client-hello 1h; }\n"
            "listen short { bind 127.0.0.1:%d; route sni a.example.com pool web; pool web;\n"
            "    timeout client-hello 300ms; }\n"
            % (ctl_global(sock), be.addr, long_port, short_port))
    d = sluice(conf, binary=fault_sluice, prefix=["env", "SLUICE_FAULT=peek_buf"])
    with connect(short_port) as silent:
        d.wait_conns(1, listener="short", end="hello-timeout")
        assert silent.recv(1) == b""
    with connect(long_port) as s:
        s.sendall(b"\x16\x03\x01\x00\x05hello")
        d.wait_conns(1, listener="long", end="no-memory")
        try:
            assert s.recv(1) == b""
        except ConnectionResetError:
            pass
    with Ctl(sock) as c:
        assert c.json("show info")["no_memory"] == 1
    assert be.total == 0, "a server was contacted without the client's hello"


def test_fault_site_is_inert_in_a_normal_build(sluice, backends):
    be = backends(h_record)
    port = free_port()
    d = sluice(make_conf(port, ["a %s send-proxy v1" % be.addr]),
               prefix=["env", "SLUICE_FAULT=proxy_header_buf"])
    silent_then_hello(port, be)
    (rec,) = be.wait_done(1)
    assert rec["data"].startswith(b"PROXY TCP4 127.0.0.1 127.0.0.1 ")
    assert rec["data"].endswith(b"\r\nhello\n")
    d.wait_conns(1)
    assert "fault injection" not in d.log()


BUFMEM = 128 * 1024


def test_bufmem_ceiling(sluice, backends, short_dir):
    release = threading.Event()

    def h_never_read(b, c, rec):
        release.wait(DEADLINE * 3)
        rec["end"] = "released"

    stuck_be = backends(h_never_read, name="stuck")
    echo_be = backends(h_echo, name="echo")
    stuck_port, echo_port = free_port(), free_port()
    sock = short_dir + "/ctl.sock"
    conf = ("global { workers 2; log stderr info; grace 2s; bufmem 128k; %s }\n"
            "pool stuck { server s %s; }\n"
            "pool echo { server e %s; }\n"
            "listen slow { bind 127.0.0.1:%d; pool stuck; }\n"
            "listen other { bind 127.0.0.1:%d; pool echo; }\n"
            % (ctl_global(sock), stuck_be.addr, echo_be.addr, stuck_port, echo_port))
    d = sluice(conf)
    d.wait_log(r"notice: bufmem 128 KiB for relay buffers and pipes")

    def info():
        with Ctl(sock) as c:
            return c.json("show info")

    # slow readers: each client pushes far more than the path buffers
    clients, threads = [], []

    def push(s):
        try:
            s.sendall(b"x" * (8 << 20))
        except OSError:
            pass  # closed for want of memory, or by the test at the end

    for i in range(24):
        s = connect(stuck_port, src="127.0.0.%d" % (10 + i))
        clients.append(s)
        t = threading.Thread(target=push, args=(s,), daemon=True)
        t.start()
        threads.append(t)
    seen = []

    def at_ceiling():
        i = info()
        seen.append(i["bufmem_used"])
        return i if i["no_memory"] >= 1 else None

    at = wait_until(at_ceiling, what="a connection closed for want of memory")
    assert at["bufmem"] == BUFMEM
    assert max(seen) <= BUFMEM, seen
    d.wait_log(r"warning: worker \d: relay memory ceiling reached \(bufmem: \d+ of 131072 bytes "
               r"in use\)")
    d.wait_conns(1, end="no-memory")
    with Ctl(sock) as c:
        metrics = c.cmd("show metrics")
    assert "\nsluice_bufmem_limit_bytes 131072\n" in metrics
    assert "\nsluice_no_memory_total " in metrics
    # the slow readers go away: memory comes back and others are served
    release.set()
    for s in clients:
        s.close()
    for t in threads:
        t.join(DEADLINE)
    wait_until(lambda: info()["connections"] == 0, what="the slow connections closed")
    # buffers cached by the workers that served the slow readers stay
    # counted, and serve those workers only: at most half the ceiling, so
    # that the other worker's connections find memory
    assert info()["bufmem_used"] <= BUFMEM // 2, info()
    for i in range(20):
        err = echo_transfer(echo_port, 64 * 1024)
        assert err is None, "transfer %d: %s" % (i, err)
    end = info()
    assert end["bufmem_used"] <= BUFMEM, end
    assert all(c["end"] == "client-closed" for c in d.conns() if c["listener"] == "other")
