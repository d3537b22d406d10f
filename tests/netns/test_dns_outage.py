# A DNS server that stops answering for 30 s, under load, while the same
# daemon sends VRRP adverts every 100 ms (issue 15): the lookups run on the
# control loop through c-ares, so nothing may wait for them. Two sluice
# nodes (n1 master, n2 backup) in network namespaces; the DNS server
# (tests/integration/dnsserver.py) runs in the backend's namespace with the
# backend; the client namespace captures every advert with kernel time
# stamps and sends connections through the VIP all along.
import json
import os
import socket
import struct
import sys
import threading
import time

from conftest import (BACKEND_IP, BACKEND_PORT, BACKEND_SRC, NODE_IP, PORT, VIP, Netns, Node,
                      vrrp_block, wait_until)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from dnsserver import DnsServer  # noqa: E402

ADVERT_MS = 100
OUTAGE_S = 30.0
SO_TIMESTAMPNS = 35
ETH_P_ALL = 0x0003
NEW_BACKEND_IP = "192.0.2.201"


class AdvertCapture(threading.Thread):
    """Adverts from one source seen on the client's eth0, kernel time."""

    def __init__(self, topo, src):
        super().__init__(daemon=True)
        with Netns(topo.ns["c"]):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind(("eth0", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.settimeout(0.2)
        self.src = socket.inet_aton(src)
        self.times = []
        self.stop_flag = False

    def run(self):
        while not self.stop_flag:
            try:
                data, anc, _f, _a = self.sock.recvmsg(2048, socket.CMSG_SPACE(16))
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 34 or data[12:14] != b"\x08\x00" or data[23] != 112:
                continue
            if data[26:30] != self.src:
                continue
            for level, typ, val in anc:
                if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", val[:16])
                    self.times.append(sec + nsec / 1e9)

    def stop(self):
        self.stop_flag = True
        self.join(2)
        self.sock.close()


class Prober(threading.Thread):
    """Connections through the VIP from the client, one every 20 ms."""

    def __init__(self, topo):
        super().__init__(daemon=True)
        self.topo = topo
        self.ok = 0
        self.failed = []
        self.stop_flag = False

    def run(self):
        while not self.stop_flag:
            t = time.monotonic()
            who = self.topo.probe(1.0)
            if who == "n1":
                self.ok += 1
            else:
                self.failed.append((round(t, 3), who))
            time.sleep(max(0.0, 0.02 - (time.monotonic() - t)))

    def stop(self):
        self.stop_flag = True
        self.join(5)


def node_conf(node, dns_addr):
    return ("global { log stderr info; control %s; workers 1; grace 1s; }\n"
            "resolvers lab {\n nameserver %s;\n timeout 500ms;\n attempts 2;\n"
            " hold timeout 2m;\n}\n"
            "pool web {\n resolvers lab;\n server b1 app.test:%d;\n"
            " servers dns app.test port %d limit 4;\n}\n"
            "listen front { bind %s:%d; pool web; timeout connect 500ms; }\n%s"
            % (node.sock, dns_addr, BACKEND_PORT, BACKEND_PORT, VIP, PORT,
               vrrp_block(150 if node.n == "n1" else 100, "%dms" % ADVERT_MS)))


def ctl_json(node, *words):
    r = node.ctl(*words, json_out=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def b1(node):
    return [r for r in ctl_json(node, "show", "servers") if r["server"] == "b1"][0]


def test_dns_silent_for_30s_under_load_with_vrrp_advert_100ms(topo):
    with Netns(topo.ns["be"]):
        dns = DnsServer(BACKEND_IP, 5353)
    try:
        run_outage(topo, dns)
    finally:
        dns.close()


def run_outage(topo, dns):
    dns.set_a("app.test", [BACKEND_IP], ttl=1)
    nodes = {}
    for n in ("n1", "n2"):
        node = Node(topo, n, name="sluice-dns-" + n)
        with open(node.conf, "w") as f:
            f.write(node_conf(node, dns.addr))
        nodes[n] = node.start()
    n1, n2 = nodes["n1"], nodes["n2"]
    n1.wait_state("MASTER")
    n2.wait_state("BACKUP")
    wait_until(lambda: topo.probe() == "n1", what="client served through n1")
    assert b1(n1)["address"] == "%s:%d" % (BACKEND_IP, BACKEND_PORT)

    cap = AdvertCapture(topo, NODE_IP["n1"])
    cap.start()
    prober = Prober(topo)
    prober.start()
    time.sleep(2.0)
    transitions = n2.status()["transitions"]
    failures0 = sum(m["value"] for m in ctl_json(n1, "show", "metrics")
                    if m["name"] == "sluice_resolver_failures_total")
    t0 = time.time()
    dns.silent()
    time.sleep(5.0)
    # the outage shows, the answer is kept, the pool serves on
    res = {r["name"]: r for r in ctl_json(n1, "show", "resolvers")}
    assert res["app.test"]["state"] == "held", res
    assert res["app.test"]["last_error"] == "timeout"
    rows = ctl_json(n1, "show", "servers")
    assert all(r["health"] == "up" and r["dns"].startswith("app.test: held, timeout")
               for r in rows), rows
    failures = sum(m["value"] for m in ctl_json(n1, "show", "metrics")
                   if m["name"] == "sluice_resolver_failures_total")
    assert failures > failures0
    held = [m["value"] for m in ctl_json(n1, "show", "metrics")
            if m["name"] == "sluice_resolver_name_held"]
    assert held == [1.0], held
    time.sleep(OUTAGE_S - 5.0)
    t1 = time.time()

    # answers resume, with a new address: picked up
    topo.ip("be", "addr", "add", NEW_BACKEND_IP + "/24", "dev", "eth0")
    topo.backend(port=BACKEND_PORT, src=BACKEND_SRC.replace("sys.argv[1]",
                                                            repr(NEW_BACKEND_IP)))
    dns.set_a("app.test", [NEW_BACKEND_IP], ttl=1)
    dns.silent(False)
    wait_until(lambda: b1(n1)["address"] == "%s:%d" % (NEW_BACKEND_IP, BACKEND_PORT), timeout=10,
               what="the new address picked up")
    res = {r["name"]: r for r in ctl_json(n1, "show", "resolvers")}
    assert res["app.test"]["state"] == "ok"
    time.sleep(1.0)
    prober.stop()
    cap.stop()

    assert "answers again" in n1.log()
    assert "has no usable server" not in n1.log()
    assert prober.failed == [], prober.failed[:10]
    assert prober.ok > 1000, prober.ok
    # no takeover: the backup never left BACKUP
    assert n2.state() == "BACKUP" and n2.status()["transitions"] == transitions
    assert n1.state() == "MASTER"
    # every advert of the outage left on time: no gap of two intervals
    during = [t for t in cap.times if t0 - 0.5 <= t <= t1 + 0.5]
    gaps = [b - a for a, b in zip(during, during[1:])]
    assert len(during) >= int(OUTAGE_S * 1000 / ADVERT_MS) - 1, len(during)
    missed = [g for g in gaps if g >= 2 * ADVERT_MS / 1000.0]
    gaps.sort()
    print("\nadverts during the outage: %d, gap p50 %.1f ms, p99 %.1f ms, max %.1f ms"
          % (len(during), 1000 * gaps[len(gaps) // 2], 1000 * gaps[int(len(gaps) * 0.99)],
             1000 * gaps[-1]))
    assert missed == [], missed
