# Network namespaces for second-chance forwarding: a router with an ECMP
# route (L4 hash) for the VIPs to 3 sluice nodes over their uplinks, a
# bridge between the nodes (the cluster segment), a client and a backend
# behind the router. Strict reverse-path filtering everywhere but on the
# router's node-facing links, which are loose: a node that withdrew still
# answers its own flows from the VIP (issue 12's drain), so a strict router
# would drop those answers whatever the nodes do. Everything started here is
# stopped by PID and every namespace deleted by close().
#
#   client 192.0.2.100 --- router --- n1 eth0 198.18.1.2 --+
#   backend 192.0.2.200 --/  |  \--- n2 eth0 198.18.2.2 --+-- eth1 198.18.100.N on bridge sw
#                            \------ n3 eth0 198.18.3.2 --+
import json
import os
import random
import selectors
import signal
import socket
import subprocess
import time

from conftest import BUILD, SANITIZER_MARKS, SLUICE, SLUICECTL, Netns, run, wait_until

VIP4 = "198.51.100.10"
VIP6 = "2001:db8:5::10"
PORT = 8080
CLIENT4, CLIENT6 = "192.0.2.100", "2001:db8:c::100"
BACKEND4, BACKEND6 = "192.0.2.200", "2001:db8:b::200"
BACKEND_PORT = 9000
NODES = ("n1", "n2", "n3")


def uplink4(k):
    return "198.18.%d.2" % k


def uplink6(k):
    return "2001:db8:%d::2" % k


def cluster4(k):
    return "198.18.100.%d" % k


# Backend: tells each connection which node it came from ("peer=ADDR\n"),
# then echoes every byte. One thread, non-blocking, any number of clients.
BACKEND_SRC = r"""
import selectors, socket, sys
sel = selectors.DefaultSelector()
socks = []
for fam, addr in ((socket.AF_INET, sys.argv[1]), (socket.AF_INET6, sys.argv[2])):
    s = socket.socket(fam); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(sys.argv[3]))); s.listen(4096); s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, None)
print("ready", flush=True)
out = {}
while True:
    for key, ev in sel.select():
        s = key.fileobj
        if key.data is None:
            try:
                c, a = s.accept()
            except OSError:
                continue
            c.setblocking(False)
            out[c] = ("peer=%s\n" % a[0]).encode()
            sel.register(c, selectors.EVENT_READ | selectors.EVENT_WRITE, 1)
            continue
        if ev & selectors.EVENT_READ:
            try:
                d = s.recv(65536)
            except OSError:
                d = b""
            if not d:
                sel.unregister(s); out.pop(s, None); s.close(); continue
            out[s] += d
        if ev & selectors.EVENT_WRITE and out.get(s):
            try:
                n = s.send(out[s])
                out[s] = out[s][n:]
            except BlockingIOError:
                pass
            except OSError:
                sel.unregister(s); out.pop(s, None); s.close()
"""


class ClusterTopo:
    _seq = 0

    def __init__(self, tmp_path, resilient=False):
        ClusterTopo._seq += 1
        self.tag = "sc%d%02d" % (os.getpid() % 10000, ClusterTopo._seq)
        self.tmp = str(tmp_path)
        self.procs = []
        self.ns = {n: self.tag + n for n in ("r", "c", "be", "sw") + NODES}
        self.created = []
        self.resilient = resilient
        self.members = list(NODES)
        for n in self.ns.values():
            run("ip", "netns", "add", n)
            self.created.append(n)
            self.sysctl(n, "net.ipv4.conf.all.rp_filter", "1")
            self.sysctl(n, "net.ipv4.conf.default.rp_filter", "1")
            self.sysctl(n, "net.ipv6.conf.all.accept_dad", "0")
            self.sysctl(n, "net.ipv6.conf.default.accept_dad", "0")
            run("ip", "-n", n, "link", "set", "lo", "up")
        self.sysctl(self.ns["r"], "net.ipv4.ip_forward", "1")
        self.sysctl(self.ns["r"], "net.ipv6.conf.all.forwarding", "1")
        self.sysctl(self.ns["r"], "net.ipv4.fib_multipath_hash_policy", "1")
        self.sysctl(self.ns["r"], "net.ipv6.fib_multipath_hash_policy", "1")
        self.link("c", "eth0", "r", "rc", "192.0.2.100/25", "192.0.2.1/25",
                  "2001:db8:c::100/64", "2001:db8:c::1/64")
        self.link("be", "eth0", "r", "rb", "192.0.2.200/25", "192.0.2.129/25",
                  "2001:db8:b::200/64", "2001:db8:b::1/64")
        self.ip("c", "route", "add", "default", "via", "192.0.2.1")
        self.ip("c", "-6", "route", "add", "default", "via", "2001:db8:c::1")
        self.ip("be", "route", "add", "default", "via", "192.0.2.129")
        self.ip("be", "-6", "route", "add", "default", "via", "2001:db8:b::1")
        self.ip("sw", "link", "add", "br0", "type", "bridge")
        self.ip("sw", "link", "set", "br0", "up")
        for k, n in enumerate(NODES, 1):
            self.link(n, "eth0", "r", "r%d" % k, uplink4(k) + "/24", "198.18.%d.1/24" % k,
                      uplink6(k) + "/64", "2001:db8:%d::1/64" % k)
            self.sysctl(self.ns["r"], "net.ipv4.conf.r%d.rp_filter" % k, "2")
            run("ip", "link", "add", "eth1", "netns", self.ns[n], "type", "veth", "peer",
                "name", "s%d" % k, "netns", self.ns["sw"])
            self.ip("sw", "link", "set", "s%d" % k, "master", "br0", "up")
            self.ip(n, "addr", "add", cluster4(k) + "/24", "dev", "eth1")
            self.ip(n, "addr", "add", "2001:db8:100::%d/64" % k, "dev", "eth1")
            self.ip(n, "link", "set", "eth1", "up")
            self.ip(n, "addr", "add", VIP4 + "/32", "dev", "lo")
            self.ip(n, "addr", "add", VIP6 + "/128", "dev", "lo")
            self.ip(n, "route", "add", "default", "via", "198.18.%d.1" % k)
            self.ip(n, "-6", "route", "add", "default", "via", "2001:db8:%d::1" % k)
        if resilient:
            for k in (1, 2, 3):
                self.ip("r", "nexthop", "add", "id", str(k), "via", uplink4(k), "dev", "r%d" % k)
                self.ip("r", "nexthop", "add", "id", str(10 + k), "via", uplink6(k), "dev",
                        "r%d" % k)
        self.set_route(NODES)

    # ---- plumbing ----

    def sysctl(self, ns, key, value):
        path = "/proc/sys/" + key.replace(".", "/")
        run("ip", "netns", "exec", ns, "sh", "-c", "echo %s > %s" % (value, path))

    def ip(self, n, *args, check=True):
        return run("ip", "-n", self.ns[n], *args, check=check)

    def link(self, a, aname, b, bname, a4, b4, a6, b6):
        run("ip", "link", "add", aname, "netns", self.ns[a], "type", "veth", "peer", "name",
            bname, "netns", self.ns[b])
        self.ip(a, "addr", "add", a4, "dev", aname)
        self.ip(a, "addr", "add", a6, "dev", aname, "nodad")
        self.ip(b, "addr", "add", b4, "dev", bname)
        self.ip(b, "addr", "add", b6, "dev", bname, "nodad")
        self.ip(a, "link", "set", aname, "up")
        self.ip(b, "link", "set", bname, "up")

    def set_route(self, members):
        """Point the VIPs at these nodes, as a router does when a node
        withdraws or announces: hash-threshold multipath routes (what BIRD
        installs), or a resilient nexthop group set by hand."""
        self.members = list(members)
        ks = [NODES.index(m) + 1 for m in members]
        if self.resilient:
            for fam, base in (("4", 0), ("6", 10)):
                grp = "/".join(str(base + k) for k in ks)
                verb = "replace" if self._has_group(100 + base) else "add"
                self.ip("r", "nexthop", verb, "id", str(100 + base), "group", grp, "type",
                        "resilient", "buckets", "64", "idle_timer", "0")
            self.ip("r", "route", "replace", VIP4 + "/32", "nhid", "100")
            self.ip("r", "-6", "route", "replace", VIP6 + "/128", "nhid", "110")
            return
        hops4, hops6 = [], []
        for k in ks:
            hops4 += ["nexthop", "via", uplink4(k), "dev", "r%d" % k]
            hops6 += ["nexthop", "via", uplink6(k), "dev", "r%d" % k]
        self.ip("r", "route", "replace", VIP4 + "/32", *hops4)
        self.ip("r", "-6", "route", "replace", VIP6 + "/128", *hops6)

    def _has_group(self, gid):
        return self.ip("r", "nexthop", "show", "id", str(gid), check=False).returncode == 0

    def spawn(self, n, args, name):
        log = os.path.join(self.tmp, name + ".log")
        f = open(log, "ab")
        p = subprocess.Popen(["ip", "netns", "exec", self.ns[n]] + args, stdout=f,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        f.close()
        self.procs.append((p, log))
        return p

    def backend(self):
        p = subprocess.Popen(["ip", "netns", "exec", self.ns["be"], "/usr/bin/python3", "-c",
                              BACKEND_SRC, BACKEND4, BACKEND6, str(BACKEND_PORT)],
                             stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.procs.append((p, None))
        assert p.stdout.readline().strip() == "ready"
        return p

    def client_socket(self, family):
        with Netns(self.ns["c"]):
            return socket.socket(family, socket.SOCK_STREAM)

    def close(self):
        errors = []
        for p, log in reversed(self.procs):
            if p.poll() is None and log is not None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            if p.poll() is None:
                p.kill()
                p.wait(5)
            if p.stdout is not None:
                p.stdout.close()
            if log is not None and os.path.exists(log):
                with open(log, errors="replace") as f:
                    if any(m in f.read() for m in SANITIZER_MARKS):
                        errors.append("sanitizer report in %s" % log)
        for n in self.created:
            run("ip", "netns", "del", n, check=False)
        return errors


class ClusterNode:
    """A sluice daemon in n1..n3, with or without a cluster block."""

    def __init__(self, topo, n, cluster=True, extra_cluster="", extra="", name=None, glob=""):
        self.topo, self.n = topo, n
        self.k = NODES.index(n) + 1
        self.name = name or ("sluice-" + n)
        self.sock = os.path.join(topo.tmp, self.name + ".sock")
        self.conf = os.path.join(topo.tmp, self.name + ".conf")
        block = ""
        if cluster:
            peers = "".join(" peer %s %s;\n" % (m, cluster4(NODES.index(m) + 1))
                            for m in NODES if m != n)
            block = "cluster {\n interface eth1;\n uplink eth0;\n%s%s}\n" % (peers,
                                                                              extra_cluster)
        with open(self.conf, "w") as f:
            f.write("global { log stderr info; control %s; workers 1; grace 2s; %s}\n"
                    "pool web { server b1 %s:%d; }\n"
                    "listen front { bind %s:%d; bind [%s]:%d; pool web; "
                    "timeout connect 500ms; }\n%s%s"
                    % (self.sock, glob, BACKEND4, BACKEND_PORT, VIP4, PORT, VIP6, PORT, block,
                       extra))
        self.proc = None

    def start(self, expect_fail=False, args=()):
        self.proc = self.topo.spawn(self.n, [SLUICE, "-f", self.conf] + list(args), self.name)
        if expect_fail:
            self.proc.wait(10)
            return self
        wait_until(lambda: (os.path.exists(self.sock) and "ready: pid" in self.log()) or
                   self.proc.poll() is not None, what="control socket of " + self.name)
        assert self.proc.poll() is None, self.log()
        return self

    def log(self):
        with open(os.path.join(self.topo.tmp, self.name + ".log"), errors="replace") as f:
            return f.read()

    def ctl(self, *words, json_out=False):
        args = [SLUICECTL, "-s", self.sock] + (["--json"] if json_out else []) + list(words)
        return subprocess.run(args, capture_output=True, text=True, timeout=10)

    def cluster(self):
        r = self.ctl("show", "cluster", json_out=True)
        assert r.returncode == 0, r.stdout + r.stderr
        return json.loads(r.stdout)["cluster"]

    def peers_resolved(self):
        c = self.cluster()
        return c is not None and all(p["mac"] for p in c["peers"])

    def active(self):
        r = self.ctl("show", "info", json_out=True)
        assert r.returncode == 0, r.stdout + r.stderr
        info = json.loads(r.stdout)
        return info.get("cur_conns", info.get("connections"))

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(15)
        return self.proc.returncode


def tc_filters(topo, n, dev):
    """The clsact ingress filters tc shows on dev (tc mode)."""
    return run("ip", "netns", "exec", topo.ns[n], "tc", "filter", "show", "dev", dev, "ingress",
               check=False).stdout


def prog_loaded(prog_id):
    """Is the BPF program with this id still in the kernel (attached or
    held by something)?"""
    return run("bpftool", "prog", "show", "id", str(prog_id), check=False).returncode == 0


class Flows:
    """Held connections from the client through the VIP: each learns its
    node from the backend's first line; active ones exchange data both ways
    and check every byte of the echo."""

    def __init__(self, topo, count, family=socket.AF_INET, active_every=2, vip=None,
                 node_of=None, client_socket=None):
        self.topo = topo
        self.conns = []
        vip = vip or (VIP4 if family == socket.AF_INET else VIP6)
        if node_of is None:
            node_of = {uplink4(k): n for k, n in enumerate(NODES, 1)}
            node_of.update({uplink6(k): n for k, n in enumerate(NODES, 1)})
        client_socket = client_socket or topo.client_socket
        for i in range(count):
            s = client_socket(family)
            s.settimeout(5)
            s.connect((vip, PORT))
            line = b""
            while not line.endswith(b"\n"):
                d = s.recv(100)
                assert d, "connection %d closed before the backend spoke" % i
                line += d
            peer = line.decode().strip().partition("=")[2]
            s.setblocking(False)
            self.conns.append({"sock": s, "node": node_of[peer], "active": i % active_every == 0,
                               "sent": 0, "got": 0, "broken": None, "seed": i})

    def by_node(self):
        out = {n: 0 for n in NODES}
        for c in self.conns:
            out[c["node"]] += 1
        return out

    @staticmethod
    def _pattern(seed, off, n):
        return bytes(((seed * 7 + off + i) & 0xFF) for i in range(n))

    def _send(self, c, n):
        data = self._pattern(c["seed"], c["sent"], n)
        try:
            c["sent"] += c["sock"].send(data)
        except BlockingIOError:
            pass
        except OSError as e:
            c["broken"] = c["broken"] or "send: %s" % e

    def _recv(self, c):
        try:
            d = c["sock"].recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            c["broken"] = c["broken"] or "recv: %s" % e
            return
        if not d:
            c["broken"] = c["broken"] or "closed by the other end"
            return
        if d != self._pattern(c["seed"], c["got"], len(d)):
            c["broken"] = c["broken"] or "echo differs at byte %d" % c["got"]
        c["got"] += len(d)

    def exchange(self, which, size=512, timeout=5.0):
        """Send size bytes on each connection in which, wait for the echoes."""
        live = [c for c in which if not c["broken"] and not c.get("closed")]
        for c in live:
            self._send(c, size)
        sel = selectors.DefaultSelector()
        for c in live:
            sel.register(c["sock"], selectors.EVENT_READ, c)
        end = time.monotonic() + timeout
        waiting = {id(c) for c in live if c["got"] < c["sent"]}
        while waiting and time.monotonic() < end:
            for key, _ in sel.select(0.05):
                c = key.data
                self._recv(c)
                if c["got"] >= c["sent"] or c["broken"]:
                    waiting.discard(id(c))
        sel.close()
        for c in live:
            if not c["broken"] and c["got"] < c["sent"]:
                c["broken"] = "echo missing: %d of %d bytes after %.1fs" % (
                    c["got"], c["sent"], timeout)

    def pump(self, seconds, size=512):
        """Data both ways on the active connections for a while; bounded."""
        end = time.monotonic() + seconds
        for _ in range(10000):
            if time.monotonic() >= end:
                break
            self.exchange([c for c in self.conns if c["active"]], size, timeout=3.0)
            time.sleep(0.02)

    def check_all(self):
        """Every connection, idle ones too, still carries data both ways."""
        self.exchange(self.conns, 64)
        return [c for c in self.conns if c["broken"]]

    def finish(self, which=None):
        """Close cleanly: half-close, then expect the echo of everything
        and the server's FIN. Returns the connections that did not."""
        which = [c for c in (self.conns if which is None else which) if not c.get("closed")]
        bad = []
        for c in which:
            if c["broken"]:
                continue
            try:
                c["sock"].shutdown(socket.SHUT_WR)
            except OSError as e:
                c["broken"] = "shutdown: %s" % e
        end = time.monotonic() + 10
        for c in which:
            s = c["sock"]
            s.setblocking(True)
            while not c["broken"] and time.monotonic() < end:
                s.settimeout(max(0.01, end - time.monotonic()))
                try:
                    d = s.recv(65536)
                except OSError as e:
                    c["broken"] = "close: %s" % e
                    break
                if not d:
                    break
                c["got"] += len(d)
            if c["broken"] or c["got"] != c["sent"]:
                bad.append(c)
            s.close()
            c["closed"] = True
        return bad

    def close(self):
        for c in self.conns:
            try:
                c["sock"].close()
            except OSError:
                pass


def rand_port(rng):
    return rng.randrange(20000, 60000)
