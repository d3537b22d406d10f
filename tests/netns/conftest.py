# Network-namespace fixtures for the VRRP tests: a bridge namespace and
# veth pairs for two sluice nodes (n1 192.0.2.11, n2 192.0.2.12), a client
# (192.0.2.100) and a backend (192.0.2.200); the VIP is 198.51.100.10.
# Everything started here is stopped by PID and every namespace deleted by
# the fixture's finalizer. Runs as root with /usr/bin/python3.
import ctypes
import json
import os
import signal
import socket
import struct
import subprocess
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(os.environ.get("SLUICE_BUILD") or os.path.join(HERE, "..", "..", "build"))
SLUICE = os.path.join(BUILD, "sluice")
SLUICECTL = os.path.join(BUILD, "sluicectl")
SAN = "san" in os.path.basename(BUILD)
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                   "WARNING: ThreadSanitizer", "FATAL: ThreadSanitizer")

VIP = "198.51.100.10"
PORT = 8080
NODE_IP = {"n1": "192.0.2.11", "n2": "192.0.2.12"}
CLIENT_IP = "192.0.2.100"
BACKEND_IP = "192.0.2.200"
BACKEND_PORT = 9000

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_ROOT_NS = os.open("/proc/self/ns/net", os.O_RDONLY)

# Backend: answers every connection with the address it came from, which
# is the sluice node that proxied it.
BACKEND_SRC = r"""
import socket, threading, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(512)
print("ready", flush=True)
def serve(c, a):
    try:
        c.sendall(("peer=%s\n" % a[0]).encode())
    finally:
        c.close()
while True:
    c, a = s.accept()
    threading.Thread(target=serve, args=(c, a), daemon=True).start()
"""


def wait_until(pred, timeout=10.0, interval=0.01, what="condition"):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def run(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


class Netns:
    """Switch the calling thread into a namespace for the with block:
    sockets created inside stay in it."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        fd = os.open("/run/netns/" + self.name, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns " + self.name)
        finally:
            os.close(fd)
        return self

    def __exit__(self, *exc):
        if _libc.setns(_ROOT_NS, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back")


def stop_all(procs):
    """Kill what a test started (by PID) and close its pipes."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        if p.stdout is not None:
            p.stdout.close()


def sluice_in(name, conf, log, procs, binary=SLUICE, env=()):
    """Start sluice -f conf inside namespace name (env: NAME=VALUE words
    for its environment), its output in log; wait until it is ready.
    Appended to procs."""
    with open(log, "wb") as f:
        d = subprocess.Popen(["ip", "netns", "exec", name, "env"] + list(env) +
                             [binary, "-f", str(conf)], stdout=f,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    procs.append(d)
    wait_until(lambda: "ready: pid" in log.read_text() or d.poll() is not None,
               what="sluice ready")
    assert d.poll() is None, log.read_text()
    return d


def fault_build():
    """The daemon built with fault injection (make FAULT=1, build-fault/)."""
    root = os.path.abspath(os.path.join(HERE, "..", ".."))
    r = subprocess.run(["make", "-C", root, "FAULT=1", "-j2", "build-fault/sluice"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return os.path.join(root, "build-fault", "sluice")


class Topo:
    _seq = 0

    def __init__(self, tmp_path):
        Topo._seq += 1
        self.tag = "sv%d%02d" % (os.getpid() % 10000, Topo._seq)
        self.tmp = tmp_path
        self.procs = []  # (Popen, log path)
        self.ns = {}
        for n in ("br", "n1", "n2", "c", "be"):
            self.ns[n] = self.tag + n
        self.created = []
        for n in self.ns.values():
            run("ip", "netns", "add", n)
            self.created.append(n)
        self.ip("br", "link", "add", "br0", "type", "bridge")
        self.ip("br", "link", "set", "br0", "up")
        addrs = {"n1": NODE_IP["n1"], "n2": NODE_IP["n2"], "c": CLIENT_IP, "be": BACKEND_IP}
        for n, a in addrs.items():
            run("ip", "link", "add", "eth0", "netns", self.ns[n], "type", "veth", "peer",
                "name", "p" + n, "netns", self.ns["br"])
            self.ip("br", "link", "set", "p" + n, "master", "br0", "up")
            self.ip(n, "link", "set", "lo", "up")
            self.ip(n, "addr", "add", a + "/24", "dev", "eth0")
            self.ip(n, "link", "set", "eth0", "up")
        self.ip("c", "route", "add", "198.51.100.0/24", "dev", "eth0")
        self.ip("c", "route", "add", "224.0.0.0/4", "dev", "eth0")

    def ip(self, n, *args, check=True):
        return run("ip", "-n", self.ns[n], *args, check=check)

    def spawn(self, n, args, name):
        log = os.path.join(str(self.tmp), name + ".log")
        f = open(log, "ab")
        p = subprocess.Popen(["ip", "netns", "exec", self.ns[n]] + args, stdout=f,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        f.close()
        self.procs.append((p, log))
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=10.0):
        if p.poll() is None:
            os.kill(p.pid, sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
        return p.returncode

    def backend(self, src=BACKEND_SRC, port=BACKEND_PORT):
        """A Python backend (src) in the backend namespace, on port."""
        p = subprocess.Popen(["ip", "netns", "exec", self.ns["be"], "/usr/bin/python3", "-c",
                              src, BACKEND_IP, str(port)],
                             stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.procs.append((p, None))
        assert p.stdout.readline().strip() == "ready"
        return p

    def has_vip(self, n):
        out = self.ip(n, "-4", "addr", "show", "dev", "eth0").stdout
        return (" %s/" % VIP) in out

    def vip_holders(self):
        return [n for n in ("n1", "n2") if self.has_vip(n)]

    def probe(self, timeout=0.2):
        """One TCP exchange from the client through the VIP: the node that
        proxied it ("n1"/"n2"), or None."""
        with Netns(self.ns["c"]):
            s = socket.socket()
        try:
            s.settimeout(timeout)
            s.connect((VIP, PORT))
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(100)
                if not chunk:
                    break
                data += chunk
        except OSError:
            return None
        finally:
            s.close()
        peer = data.decode(errors="replace").strip().partition("=")[2]
        for n, a in NODE_IP.items():
            if a == peer:
                return n
        return None

    def close(self):
        errors = []
        for p, log in reversed(self.procs):
            if p.poll() is None and log is not None:
                # a clean exit, so that LeakSanitizer reports what leaked
                self.stop(p, signal.SIGTERM, timeout=5)
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
            if p.stdout is not None:
                p.stdout.close()
            if log is not None and os.path.exists(log):
                with open(log, errors="replace") as f:
                    text = f.read()
                if any(m in text for m in SANITIZER_MARKS):
                    errors.append("sanitizer report in %s" % log)
        for n in self.created:
            run("ip", "netns", "del", n, check=False)
        return errors


class Node:
    """A sluice daemon in n1 or n2 with its configuration and control socket."""

    def __init__(self, topo, n, vrrp="", extra="", name=None):
        self.topo, self.n = topo, n
        self.name = name or ("sluice-" + n)
        self.sock = os.path.join(str(topo.tmp), self.name + ".sock")
        self.conf = os.path.join(str(topo.tmp), self.name + ".conf")
        with open(self.conf, "w") as f:
            f.write("global { log stderr info; control %s; workers 1; grace 1s; }\n"
                    "pool web { server b1 %s:%d; }\n"
                    "listen front { bind %s:%d; pool web; timeout connect 500ms; }\n%s%s"
                    % (self.sock, BACKEND_IP, BACKEND_PORT, VIP, PORT, vrrp, extra))
        self.proc = None

    def start(self):
        self.proc = self.topo.spawn(self.n, [SLUICE, "-f", self.conf], self.name)
        wait_until(lambda: os.path.exists(self.sock) or self.proc.poll() is not None,
                   what="control socket of " + self.name)
        assert self.proc.poll() is None, self.log()
        return self

    def log(self):
        with open(os.path.join(str(self.topo.tmp), self.name + ".log"), errors="replace") as f:
            return f.read()

    def ctl(self, *words, json_out=False):
        args = [SLUICECTL, "-s", self.sock] + (["--json"] if json_out else []) + list(words)
        r = subprocess.run(args, capture_output=True, text=True, timeout=10)
        return r

    def status(self, inst="front"):
        r = self.ctl("show", "vrrp", json_out=True)
        assert r.returncode == 0, r.stdout + r.stderr
        for v in json.loads(r.stdout)["vrrp"]:
            if v["name"] == inst:
                return v
        raise AssertionError("no instance " + inst)

    def state(self):
        try:
            return self.status()["state"]
        except Exception:
            return None

    def wait_state(self, state, timeout=10.0):
        wait_until(lambda: self.state() == state, timeout=timeout,
                   what="%s to become %s" % (self.name, state))


def vrrp_block(priority, advert="100ms", extra="", version=3):
    return ("vrrp front {\n interface eth0; vrid 51; priority %d; advert %s; version %d;\n"
            " address %s/24;\n%s}\n" % (priority, advert, version, VIP, extra))


@pytest.fixture
def topo(tmp_path, request):
    t = Topo(tmp_path)
    t.backend()
    yield t
    errors = t.close()
    assert not errors, errors


# ---- raw VRRP packets for the hostile tests ----

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def advert_v3(vrid=51, prio=200, addrs=(VIP,), interval_cs=10, src=CLIENT_IP,
              dst="224.0.0.18", count=None, version=3, good_csum=True):
    body = bytes([(version << 4) | 1, vrid, prio, len(addrs) if count is None else count,
                  (interval_cs >> 8) & 0x0F, interval_cs & 0xFF, 0, 0])
    body += b"".join(socket.inet_aton(a) for a in addrs)
    ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 112, len(body))
    c = csum(ph + body)
    if not good_csum:
        c ^= 0x5A5A
    return body[:6] + struct.pack("!H", c) + body[8:]


def raw_sender(topo, ttl=255):
    with Netns(topo.ns["c"]):
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    return s
