# Source ACLs and per-source limits with real IPv6 clients: a namespace of
# its own whose loopback holds the listener's address and several client
# sources from 2001:db8::/32; sluice, an echo backend and the clients all
# live in it. One /64 is one source by default; a denied /48 is refused
# whatever the limits; a runtime entry for a /56 takes effect at once.
import json
import os
import socket
import subprocess

import pytest

from conftest import SANITIZER_MARKS, SLUICE, Netns, run, wait_until

LISTEN = "2001:db8::1"
PORT = 8080
BACKEND_PORT = 9000
SOURCES = ["2001:db8:1:1::1", "2001:db8:1:1::2", "2001:db8:1:1::3", "2001:db8:1:2::1",
           "2001:db8:bad::1", "2001:db8:77:7700::1", "2001:db8:77:7701::1"]

ECHO = r"""
import socket, sys, threading
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(512)
print("ready", flush=True)
def serve(c):
    try:
        while True:
            d = c.recv(4096)
            if not d:
                break
            c.sendall(d)
    finally:
        c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


@pytest.fixture
def ns6(tmp_path):
    name = "sg%d" % (os.getpid() % 100000)
    run("ip", "netns", "add", name)
    procs = []
    try:
        run("ip", "-n", name, "link", "set", "lo", "up")
        for a in [LISTEN] + SOURCES:
            run("ip", "-n", name, "addr", "add", a + "/128", "dev", "lo", "nodad")
        be = subprocess.Popen(["ip", "netns", "exec", name, "/usr/bin/python3", "-c", ECHO,
                               LISTEN, str(BACKEND_PORT)], stdout=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True)
        procs.append(be)
        assert be.stdout.readline().strip() == "ready"
        yield name, procs, tmp_path
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            if p.stdout is not None:
                p.stdout.close()
        run("ip", "netns", "del", name, check=False)


def start_sluice(ns6, listen_extra):
    name, procs, tmp = ns6
    sock = str(tmp / "c.sock")
    conf = str(tmp / "s.conf")
    log = str(tmp / "s.log")
    with open(conf, "w") as f:
        f.write("global { workers 2; log stderr info; control %s; }\n"
                "pool p { server a [%s]:%d; }\n"
                "listen www { bind [%s]:%d; pool p; %s }\n"
                % (sock, LISTEN, BACKEND_PORT, LISTEN, PORT, listen_extra))
    with open(log, "wb") as lf:
        p = subprocess.Popen(["ip", "netns", "exec", name, SLUICE, "-f", conf], stdout=lf,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    procs.append(p)
    wait_until(lambda: "ready: pid" in open(log, errors="replace").read(), 20.0,
               what="sluice ready")
    return sock, log


def ctl(sock, line):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(sock)
    s.sendall(line.encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n\n"):
        b = s.recv(65536)
        if not b:
            break
        buf += b
    s.close()
    return buf.decode()


def attempt(ns, src, keep=None):
    """One connection from src: 'served' or 'refused'; a served one is kept
    open in keep when given."""
    with Netns(ns):
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.bind((src, 0))
        s.connect((LISTEN, PORT))
        s.sendall(b"x")
        verdict = "served" if s.recv(1) == b"x" else "refused"
    except (ConnectionResetError, BrokenPipeError):
        verdict = "refused"
    if verdict == "served" and keep is not None:
        keep.append(s)
    else:
        s.close()
    return verdict


def test_ipv6_sources_by_64_acl_and_runtime_entry(ns6):
    name = ns6[0]
    sock, log = start_sluice(ns6, "deny 2001:db8:bad::/48; limit per-source conns 2;")
    held = []
    try:
        # one /64: two open connections at most, whichever address
        assert attempt(name, "2001:db8:1:1::1", held) == "served"
        assert attempt(name, "2001:db8:1:1::2", held) == "served"
        assert attempt(name, "2001:db8:1:1::3") == "refused"
        # the next /64 is another source
        assert attempt(name, "2001:db8:1:2::1", held) == "served"
        assert attempt(name, "2001:db8:bad::1") == "refused"
        rows = {r["source"]: r for r in json.loads(ctl(sock, "json show sources www"))}
        assert rows["2001:db8:1:1::/64"]["connections"] == 2
        assert rows["2001:db8:1:1::/64"]["refused"] == 1
        assert rows["2001:db8:1:2::/64"]["connections"] == 1
        # a runtime entry for a /56 takes both of its /64s at once
        assert attempt(name, "2001:db8:77:7701::1") == "served"
        assert ctl(sock, "acl add www deny 2001:db8:77:7700::/56") == \
            "listen www: deny 2001:db8:77:7700::/56 (runtime)\n\n"
        assert attempt(name, "2001:db8:77:7700::1") == "refused"
        assert attempt(name, "2001:db8:77:7701::1") == "refused"
        (row,) = json.loads(ctl(sock, "json show listeners"))
        assert row["refused"] == {"acl": 3, "conns": 1, "rate": 0, "table-full": 0}
        text = open(log, errors="replace").read()
        assert "listen www: refused [2001:db8:bad::1]:" in text
    finally:
        for s in held:
            s.close()
    p = ns6[1][-1]
    p.terminate()
    assert p.wait(20) == 0
    text = open(log, errors="replace").read()
    assert not any(m in text for m in SANITIZER_MARKS), text[-3000:]
