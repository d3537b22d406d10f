# A BGP/ECMP topology for the announce tests: a router namespace running
# BIRD 2 with ECMP over L4 hashes, eBGP + BFD to three sluice nodes (each
# with its own BIRD from conf/bird-node.conf), a client and a backend
# namespace. Documentation ranges only, private ASNs, nothing routed to or
# from the root namespace:
#
#   client 192.0.2.100/25 -- r 192.0.2.1/25
#   r 198.18.K.1/24 -- nK uplink 198.18.K.2/24 (AS 6510K; the router is AS 65000)
#   nK eth1 192.0.2.13K/25 -- bridge in "be" -- backends 192.0.2.200/25
#   service address 198.51.100.10/32: on each node's vip0 while announced
#   nK eth2 198.18.100.K/24 -- bridge in "sw" (add_cluster_segment(): the
#   cluster segment of second-chance forwarding)
#
# Every process is started and stopped by PID; the namespaces are deleted
# at the end. Runs as root with /usr/bin/python3.
import calendar
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

from conftest import SANITIZER_MARKS, SLUICE, SLUICECTL, Netns, run, wait_until
from nlwatch import RouteWatcher

HERE = os.path.dirname(os.path.abspath(__file__))
BIRD_NODE_CONF = os.path.join(HERE, "..", "..", "conf", "bird-node.conf")
BIRD = "/usr/sbin/bird"
BIRDC = "/usr/sbin/birdc"

VIP = "198.51.100.10"
PORT = 8080
CLIENT_IP = "192.0.2.100"
BACKEND_IP = "192.0.2.200"
BACKEND_PORT = 9000
NODES = ("n1", "n2", "n3")
ROUTER_AS = 65000


def uplink(n):
    k = int(n[1:])
    return "198.18.%d.2" % k, "198.18.%d.1" % k


def node_be_ip(n):
    return "192.0.2.13%d" % int(n[1:])


def cluster_addr(n):
    return "198.18.100.%d" % int(n[1:])


def canary_port(n):
    return 9100 + int(n[1:])


# Backend on port 9000: greets each connection with the address it came
# from (the sluice node's eth1 address), then echoes; "close MS" makes it
# close the connection MS milliseconds later.
BACKEND_SRC = r"""
import socket, sys, threading, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(4096)
print("ready", flush=True)
def serve(c, a):
    try:
        c.sendall(("peer=%s\n" % a[0]).encode())
        buf = b""
        while True:
            d = c.recv(4096)
            if not d:
                return
            buf += d
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                if line.startswith(b"close "):
                    time.sleep(int(line[6:]) / 1000.0)
                    return
                c.sendall(line + b"\n")
    except OSError:
        pass
    finally:
        c.close()
while True:
    c, a = s.accept()
    threading.Thread(target=serve, args=(c, a), daemon=True).start()
"""

# A canary backend: says hello and closes (enough for a tcp check).
CANARY_SRC = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(64)
print("ready", flush=True)
while True:
    c, a = s.accept()
    try:
        c.sendall(b"hello\n")
    except OSError:
        pass  # a health check that already left
    c.close()
"""


def sluice_conf(sock, n, extra="", hold_down="300ms", withdraw_delay="1s", web=None):
    """A node's sluice configuration: the service on VIP:PORT, pool web on
    the shared backend (or the pool given as web), and pool canary on the
    node's own canary backend, both required by the announce block."""
    if web is None:
        web = ("pool web {\n"
               " check tcp { interval 100ms; timeout 100ms; rise 2; fall 2; }\n"
               " server b1 %s:%d;\n}\n" % (BACKEND_IP, BACKEND_PORT))
    return ("global { log stderr info; control %s; workers 1; grace 2s; }\n%s"
            "pool canary {\n"
            " check tcp { interval 100ms; timeout 100ms; rise 2; fall 2; }\n"
            " server c1 %s:%d;\n}\n"
            "listen front { bind %s:%d; pool web; timeout connect 500ms; }\n"
            "announce front {\n address %s/32;\n device vip0;\n require pool web;\n"
            " require pool canary;\n hold-down %s;\n withdraw-delay %s;\n}\n%s"
            % (sock, web, BACKEND_IP, canary_port(n), VIP, PORT, VIP, hold_down,
               withdraw_delay, extra))


def node_bird_conf(n, log):
    """conf/bird-node.conf for node n: its own addresses, ASN and router id,
    the log in the test directory, and quick reconnects for the test."""
    with open(BIRD_NODE_CONF) as f:
        text = f.read()
    addr, raddr = uplink(n)
    subs = [(r"define NODE_ADDR = [^;]*;", "define NODE_ADDR = %s;" % addr),
            (r"define NODE_AS = [^;]*;", "define NODE_AS = %d;" % (65100 + int(n[1:]))),
            (r"define ROUTER_ADDR = [^;]*;", "define ROUTER_ADDR = %s;" % raddr),
            (r"define ROUTER_AS = [^;]*;", "define ROUTER_AS = %d;" % ROUTER_AS),
            (r"router id [^;]*;", "router id %s;" % addr),
            (r"log syslog all;", 'log "%s" all;' % log),
            (r"connect retry time 5;",
             "connect retry time 1; connect delay time 0; error wait time 1, 3;")]
    for pat, rep in subs:
        text, k = re.subn(pat, rep, text)
        assert k == 1, "conf/bird-node.conf no longer has " + pat
    return text


def router_bird_conf(log, hold_time=9):
    text = ("router id 198.18.0.1;\n"
            'log "%s" all;\n'
            "protocol device { scan time 10; }\n"
            "protocol kernel { ipv4 { import none; export all; }; merge paths on; }\n"
            "protocol bfd {\n interface \"*\" { min rx interval 100 ms; min tx interval 100 ms;"
            " multiplier 3; };\n}\n"
            "template bgp node {\n local as %d;\n hold time %d;\n keepalive time 3;\n bfd on;\n"
            " connect delay time 0;\n connect retry time 1;\n error wait time 1, 3;\n"
            " ipv4 { import all; export none; };\n}\n" % (log, ROUTER_AS, hold_time))
    for n in NODES:
        addr, _ = uplink(n)
        text += "protocol bgp %s from node { neighbor %s as %d; }\n" % (n, addr,
                                                                         65100 + int(n[1:]))
    return text


class Stream:
    """New connections from the client to VIP:PORT, one every interval
    seconds, each reading the greeting line: (start, end, node, error)."""

    def __init__(self, topo, interval=0.005):
        self.topo, self.interval = topo, interval
        self.results = []
        self.stop = False
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _one(self):
        t0 = time.time()
        s = socket.socket()
        node, err = None, None
        try:
            s.settimeout(1.0)
            s.connect((VIP, PORT))
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(100)
                if not chunk:
                    err = "closed before the greeting"
                    break
                data += chunk
            node = self.topo.node_of(data)
            if node is None and err is None:
                err = "unexpected greeting %r" % data
        except OSError as e:
            err = "%s: %s" % (type(e).__name__, e)
        finally:
            s.close()
        self.results.append((t0, time.time(), node, err))

    def _loop(self):
        with Netns(self.topo.ns["c"]):
            nxt = time.monotonic()
            while not self.stop:
                self._one()
                nxt += self.interval
                time.sleep(max(0.0, nxt - time.monotonic()))

    def finish(self):
        self.stop = True
        self.t.join(10)
        return self.results


class SluiceNode:
    def __init__(self, topo, n, **kw):
        self.topo, self.n = topo, n
        self.name = "sluice-" + n
        self.sock = os.path.join(str(topo.tmp), n + ".sock")
        self.conf = os.path.join(str(topo.tmp), n + ".conf")
        self.logpath = os.path.join(str(topo.tmp), self.name + ".log")
        self.write_conf(**kw)
        self.proc = None

    def write_conf(self, **kw):
        with open(self.conf, "w") as f:
            f.write(sluice_conf(self.sock, self.n, **kw))

    def start(self, takeover=False, name=None):
        args = [SLUICE, "-f", self.conf] + (["--takeover", self.sock] if takeover else [])
        old = self.proc
        self.proc = self.topo.spawn(self.n, args, name or self.name)
        if old is None:
            wait_until(lambda: os.path.exists(self.sock) or self.proc.poll() is not None,
                       what="control socket of " + self.name)
        assert self.proc.poll() is None, self.log()
        return self

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def ctl(self, *words, json_out=False, timeout=30):
        args = [SLUICECTL, "-s", self.sock] + (["--json"] if json_out else []) + list(words)
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout)

    def announce(self, name="front"):
        r = self.ctl("show", "announce", json_out=True)
        assert r.returncode == 0, r.stdout + r.stderr
        for a in json.loads(r.stdout)["announce"]:
            if a["name"] == name:
                return a
        raise AssertionError("no announce block " + name)

    def state(self):
        try:
            return self.announce()["state"]
        except Exception:
            return None


class BgpTopo:
    _seq = 0

    def __init__(self, tmp_path, hold_time=9):
        BgpTopo._seq += 1
        self.tag = "sa%d%02d" % (os.getpid() % 10000, BgpTopo._seq)
        self.tmp = tmp_path
        self.procs = []  # (Popen, log path or None)
        self.ns = {n: self.tag + n for n in ("r", "c", "be") + NODES}
        self.created = []
        self.birds = {}
        self.canaries = {}
        self.nodes = {}
        self.watcher = None
        for name in self.ns.values():
            run("ip", "netns", "add", name)
            self.created.append(name)
        for n in self.ns:
            self.ip(n, "link", "set", "lo", "up")
        # client link
        self._veth("c", "eth0", "r", "c0")
        self.ip("c", "addr", "add", CLIENT_IP + "/25", "dev", "eth0")
        self.ip("r", "addr", "add", "192.0.2.1/25", "dev", "c0")
        self.ip("c", "route", "add", "default", "via", "192.0.2.1")
        # backend LAN
        self.ip("be", "link", "add", "br0", "type", "bridge")
        self.ip("be", "link", "set", "br0", "up")
        self.ip("be", "addr", "add", BACKEND_IP + "/25", "dev", "br0")
        for n in NODES:
            addr, raddr = uplink(n)
            self._veth(n, "eth0", "r", "d" + n)
            self.ip(n, "addr", "add", addr + "/24", "dev", "eth0")
            self.ip("r", "addr", "add", raddr + "/24", "dev", "d" + n)
            self.ip(n, "route", "add", "default", "via", raddr)
            self._veth(n, "eth1", "be", "p" + n)
            self.ip("be", "link", "set", "p" + n, "master", "br0")
            self.ip(n, "addr", "add", node_be_ip(n) + "/25", "dev", "eth1")
        self.sysctl("r", "net.ipv4.ip_forward", "1")
        self.sysctl("r", "net.ipv4.fib_multipath_hash_policy", "1")

    def add_cluster_segment(self):
        """A bridge between the nodes' eth2 (198.18.100.K/24): the segment of
        second-chance forwarding (a `cluster` block). The nodes then run
        strict reverse-path filtering, which a forwarded packet must pass;
        the router's node-facing links are loose, since a drained node
        answers its own flows from the service address that the router no
        longer routes to it."""
        name = self.tag + "sw"
        run("ip", "netns", "add", name)
        self.created.append(name)
        self.ns["sw"] = name
        self.ip("sw", "link", "set", "lo", "up")
        self.ip("sw", "link", "add", "br0", "type", "bridge")
        self.ip("sw", "link", "set", "br0", "up")
        for n in NODES:
            self._veth(n, "eth2", "sw", "s" + n)
            self.ip("sw", "link", "set", "s" + n, "master", "br0")
            self.ip(n, "addr", "add", cluster_addr(n) + "/24", "dev", "eth2")
            self.sysctl(n, "net.ipv4.conf.all.rp_filter", "1")
            self.sysctl(n, "net.ipv4.conf.default.rp_filter", "1")
            self.sysctl("r", "net.ipv4.conf.d%s.rp_filter" % n, "2")

    def _veth(self, a, an, b, bn):
        run("ip", "link", "add", an, "netns", self.ns[a], "type", "veth", "peer", "name", bn,
            "netns", self.ns[b])
        self.ip(a, "link", "set", an, "up")
        self.ip(b, "link", "set", bn, "up")

    def ip(self, n, *args, check=True):
        return run("ip", "-n", self.ns[n], *args, check=check)

    def sysctl(self, n, key, value):
        run("ip", "netns", "exec", self.ns[n], "sysctl", "-q", "-w", "%s=%s" % (key, value))

    def spawn(self, n, args, name, stdout=None):
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

    def py(self, n, src, *args):
        """A Python helper in namespace n that prints "ready" once listening."""
        p = subprocess.Popen(["ip", "netns", "exec", self.ns[n], "/usr/bin/python3", "-c",
                              src] + [str(a) for a in args],
                             stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.procs.append((p, None))
        assert p.stdout.readline().strip() == "ready"
        return p

    def start_backends(self):
        self.py("be", BACKEND_SRC, BACKEND_IP, BACKEND_PORT)
        for n in NODES:
            self.start_canary(n)

    def start_canary(self, n):
        self.canaries[n] = self.py("be", CANARY_SRC, BACKEND_IP, canary_port(n))

    def stop_canary(self, n):
        p = self.canaries.pop(n)
        self.stop(p, signal.SIGKILL)

    # ---- BIRD ----

    def start_bird(self, n, conf_text):
        conf = os.path.join(str(self.tmp), "bird-%s.conf" % n)
        sock = os.path.join(str(self.tmp), "bird-%s.ctl" % n)
        with open(conf, "w") as f:
            f.write(conf_text)
        r = run(BIRD, "-p", "-c", conf, check=False)
        assert r.returncode == 0, r.stderr
        p = self.spawn(n, [BIRD, "-f", "-c", conf, "-s", sock], "bird-" + n)
        self.birds[n] = (p, sock)
        wait_until(lambda: os.path.exists(sock) or p.poll() is not None,
                   what="BIRD control socket in " + n)
        assert p.poll() is None, "BIRD in %s exited" % n
        return p

    def birdc(self, n, *cmd):
        _, sock = self.birds[n]
        return run(BIRDC, "-s", sock, *cmd, check=False).stdout

    def bgp_up(self, n):
        """Is the router's session with node n established?"""
        out = self.birdc("r", "show", "protocols", n)
        return re.search(r"^%s\s+BGP\s+\S+\s+up\s+\S+\s+Established" % n, out, re.M) is not None

    def start_routing(self):
        self.start_bird("r", router_bird_conf(os.path.join(str(self.tmp), "bird-r.log")))
        for n in NODES:
            self.start_bird(n, node_bird_conf(n, os.path.join(str(self.tmp),
                                                              "bird-%s.log" % n)))
        for n in NODES:
            wait_until(lambda: self.bgp_up(n), timeout=20, what="BGP session with " + n)
        self.watcher = RouteWatcher(self.ns["r"], VIP)

    # ---- sluice ----

    def start_nodes(self, **kw):
        for n in NODES:
            self.nodes[n] = SluiceNode(self, n, **kw).start()

    def fib(self):
        """The router's gateways for VIP now."""
        out = self.ip("r", "-4", "route", "show", VIP + "/32").stdout
        return frozenset(re.findall(r"via (\S+)", out))

    def wait_fib(self, nodes, timeout=10.0):
        want = frozenset(uplink(n)[0] for n in nodes)
        wait_until(lambda: self.fib() == want, timeout=timeout,
                   what="router FIB for %s via %s" % (VIP, sorted(nodes)))

    def node_of(self, greeting):
        text = greeting.decode(errors="replace").strip()
        for n in NODES:
            if text == "peer=" + node_be_ip(n):
                return n
        return None

    def close(self):
        errors = []
        if self.watcher is not None:
            self.watcher.close()
        for p, log in reversed(self.procs):
            if p.poll() is None and log is not None:
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


def log_time(line):
    """Wall time (s) of a sluice log line's UTC timestamp."""
    m = re.match(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z", line)
    assert m, "no timestamp: " + line
    y, mo, d, h, mi, s, ms = (int(x) for x in m.groups())
    return calendar.timegm((y, mo, d, h, mi, s)) + ms / 1000.0


def find_line(log, pattern):
    for line in log.splitlines():
        if re.search(pattern, line):
            return line
    return None
