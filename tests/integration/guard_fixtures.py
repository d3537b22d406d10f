# Helpers for the guard tests (source ACLs, per-source limits): a client
# that says whether a connection was served or refused, many of them at
# once from chosen loopback sources, and a config with a control socket.
import json
import os
import selectors
import socket
import subprocess
import time
from types import SimpleNamespace

import pytest

from conftest import BUILD, DEADLINE, Ctl, SelectEcho, fmt_addr, free_port, make_conf

# A served client gets its byte echoed within this; a refused one is reset
# at once. Generous: only a broken daemon makes a client wait that long.
SERVED_WAIT = 5.0 * (DEADLINE / 20.0)


class ProcEcho:
    """tools/sluice-backend in echo mode: a process of its own, so that
    thousands of backend connections do not share this one's descriptors."""

    def __init__(self):
        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.proc = subprocess.Popen([os.path.join(BUILD, "sluice-backend"), "-m", "echo",
                                      self.addr], stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().strip()
        assert line == "ready", "sluice-backend said %r" % line

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # our own child, by its handle
            self.proc.wait()
        self.proc.stdout.close()


def guard_conf(port, backend, sock, listen_extra="", global_extra="", workers=2, **kw):
    return make_conf(port, ["a %s" % backend.addr], listen_extra=listen_extra,
                     global_extra="control %s mode 0600; %s" % (sock, global_extra),
                     workers=workers, **kw)


@pytest.fixture
def guarded(sluice, short_dir):
    """Factory: guarded(listen_extra, global_extra="", proc=False, workers=2,
    name=None) starts a daemon with one listener www in front of an echo
    backend (a process of its own with proc) and an admin control socket.
    Returns a namespace: port, sock, d (the daemon), be, dir. The backends
    are closed at teardown."""
    made = []

    def start(listen_extra="", global_extra="", proc=False, workers=2, name=None, port=None):
        be = ProcEcho() if proc else SelectEcho()
        made.append(be)
        g = SimpleNamespace(port=port or free_port(), sock=os.path.join(short_dir, "c.sock"),
                            be=be, dir=short_dir)
        g.d = sluice(guard_conf(g.port, be, g.sock, listen_extra=listen_extra,
                                global_extra=global_extra, workers=workers), name=name)
        return g

    yield start
    for be in made:
        be.close()


def try_once(port, src, host="127.0.0.1", payload=b"x", header=b"", keep=False):
    """One connection from src: 'served' (the echo came back), 'refused'
    (reset or closed without a byte) or 'timeout'. With keep, the socket
    of a served connection is returned too, still open."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(SERVED_WAIT)
    try:
        if src is not None:
            s.bind((src, 0))
        s.connect((host, port))
        s.sendall(header + payload)
        got = b""
        while len(got) < len(payload):
            b = s.recv(len(payload) - len(got))
            if not b:
                break
            got += b
        verdict = "served" if got == payload else "refused"
    except (ConnectionResetError, ConnectionRefusedError, BrokenPipeError):
        verdict = "refused"
    except socket.timeout:
        verdict = "timeout"
    if keep and verdict == "served":
        return verdict, s
    s.close()
    return (verdict, None) if keep else verdict


def open_many(port, src, n, timeout=DEADLINE, first=b""):
    """n non-blocking connects from src at once, each sending first once
    connected (a client that said something is one the daemon keeps until
    its idle timeout). Returns the sockets whose connect completed (the
    daemon may still reset them)."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((src, 0))
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            continue
        sel.register(s, selectors.EVENT_WRITE)
        socks.append(s)
    left, done = set(socks), []
    end = time.monotonic() + timeout
    while left and time.monotonic() < end:
        for key, _ev in sel.select(0.5):
            s = key.fileobj
            sel.unregister(s)
            left.discard(s)
            try:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    raise OSError("connect failed")
                if first:
                    s.send(first)
                done.append(s)
            except OSError:
                s.close()
    for s in left:
        sel.unregister(s)
        s.close()
    sel.close()
    return done


def still_open(socks, wait=0.3):
    """The sockets the daemon kept: after wait, those not reset or closed.
    Each gets one byte that an echo path sends back."""
    alive = []
    for s in socks:
        try:
            s.send(b"k")
        except OSError:
            continue
    end = time.monotonic() + wait
    pending = list(socks)
    for s in pending:
        s.setblocking(True)
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            if s.recv(1) == b"k":
                alive.append(s)
        except (socket.timeout, OSError):
            pass
    return alive


def metrics(sock):
    """{(name, frozenset(labels)): value} from json show metrics."""
    with Ctl(sock) as c:
        rows = c.json("show metrics")
    return {(r["name"], frozenset(r["labels"].items())): float(r["value"]) for r in rows}


def refused(sock, listener="www"):
    """{reason: count} of the listener's refusals."""
    with Ctl(sock) as c:
        rows = {r["name"]: r for r in c.json("show listeners")}
    return rows[listener]["refused"]


def header_v1(src, dst_port):
    fam = "TCP6" if ":" in src else "TCP4"
    dst = "::1" if ":" in src else "127.0.0.1"
    return ("PROXY %s %s %s 40000 %d\r\n" % (fam, src, dst, dst_port)).encode()


__all__ = ["ProcEcho", "guarded", "guard_conf", "try_once", "open_many", "still_open", "metrics", "refused",
           "header_v1", "SERVED_WAIT", "fmt_addr", "json"]
