# sluice against keepalived (Debian 2.2.7) on the same namespaces: failover
# times of each on its own (keepalived on both nodes, same timers), and
# interoperability in both roles, VRRPv3 and v2, multicast and unicast.
import json
import os
import select
import signal
import socket
import statistics
import time

import pytest

from conftest import NODE_IP, VIP, Netns, Node, vrrp_block, wait_until
from test_vrrp import measure_to

KEEPALIVED = "/usr/sbin/keepalived"
RESULTS = os.environ.get("SLUICE_NETNS_RESULTS", "/tmp/sluice-netns-results.json")
RUNS = int(os.environ.get("SLUICE_NETNS_RUNS", "5"))


class Keepalived:
    seq = 0

    def __init__(self, topo, n, priority, advert="0.1", version=3, peers=(), nopreempt=False):
        Keepalived.seq += 1
        self.topo, self.n = topo, n
        base = os.path.join(str(topo.tmp), "ka-%s-%d" % (n, Keepalived.seq))
        self.conf, self.pid, self.vpid = base + ".conf", base + ".pid", base + ".vrrp.pid"
        self.name = os.path.basename(base)
        uni = ""
        if peers:
            uni = "  unicast_src_ip %s\n  unicast_peer {\n%s  }\n" % (
                NODE_IP[n], "".join("    %s\n" % p for p in peers))
        with open(self.conf, "w") as f:
            f.write("global_defs {\n  router_id %s\n  vrrp_version %d\n}\n"
                    "vrrp_instance front {\n  state BACKUP\n  interface eth0\n"
                    "  virtual_router_id 51\n  priority %d\n  advert_int %s\n%s%s"
                    "  virtual_ipaddress {\n    %s/24\n  }\n}\n"
                    % (self.name, version, priority, advert, "  nopreempt\n" if nopreempt else "",
                       uni, VIP))
        self.proc = topo.spawn(n, [KEEPALIVED, "-n", "-l", "-G", "-D", "-P", "-R", "-f",
                                   self.conf, "-p", self.pid, "-r", self.vpid], self.name)
        self.child = int(wait_until(lambda: self._read(self.vpid), what="keepalived vrrp pid"))

    @staticmethod
    def _read(path):
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return None

    def log(self):
        with open(os.path.join(str(self.topo.tmp), self.name + ".log"), errors="replace") as f:
            return f.read()

    def wait_log(self, text, timeout=10.0):
        wait_until(lambda: text in self.log(), timeout=timeout, what="keepalived: " + text)

    def kill(self, sig=signal.SIGKILL):
        """Crash the VRRP child (SIGKILL) or stop keepalived cleanly (SIGTERM)."""
        if sig == signal.SIGKILL:
            os.kill(self.child, signal.SIGKILL)
        else:
            os.kill(self.proc.pid, sig)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.child, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.topo.stop(self.proc, signal.SIGKILL)


def reset(topo):
    for n in ("n1", "n2"):
        topo.ip(n, "link", "set", "eth0", "up")
        topo.ip(n, "addr", "del", VIP + "/24", "dev", "eth0", check=False)


def next_advert(topo, src, timeout=5.0):
    """Monotonic time of the next advert from src, seen from the client.
    Every run triggers its event at the same phase after an advert, so the
    two implementations are compared at equal phases."""
    with Netns(topo.ns["c"]):
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    try:
        mreq = socket.inet_aton("224.0.0.18") + socket.inet_aton("192.0.2.100")
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            assert left > 0, "no advert from " + src
            if select.select([s], [], [], left)[0]:
                pkt = s.recv(2048)
                if socket.inet_ntoa(pkt[12:16]) == src:
                    return time.monotonic()
    finally:
        s.close()


def trigger(topo, event, kill, phase=None):
    if phase is not None:
        t_adv = next_advert(topo, NODE_IP["n1"])
        time.sleep(max(0.0, t_adv + phase - time.monotonic()))
    t0 = time.monotonic()
    if event == "link":
        topo.ip("n1", "link", "set", "eth0", "down")
    else:
        kill(signal.SIGKILL if event == "kill" else signal.SIGTERM)
    return t0


def phase_of(advert, i, runs):
    return (i + 0.5) / runs * advert_s(advert)


def sluice_run(topo, event, advert, i, runs):
    sfx = "-%s-%d" % (event, i)
    n1 = Node(topo, "n1", vrrp_block(150, advert), name="vr-n1" + sfx).start()
    n1.wait_state("MASTER")
    n2 = Node(topo, "n2", vrrp_block(100, advert), name="vr-n2" + sfx).start()
    n2.wait_state("BACKUP")
    wait_until(lambda: n2.status()["adverts_received"] >= 2, what="n2 hears n1")
    wait_until(lambda: topo.probe() == "n1", what="client on n1")
    t0 = trigger(topo, event, lambda sig: os.kill(n1.proc.pid, sig), phase_of(advert, i, runs))
    dt = measure_to(topo, "n2", t0)
    topo.stop(n1.proc, signal.SIGKILL)
    topo.stop(n2.proc, signal.SIGKILL)
    reset(topo)
    return dt


def keepalived_run(topo, event, advert, i, runs):
    ka_int = "%g" % (advert_s(advert))
    k1 = Keepalived(topo, "n1", 150, ka_int)
    wait_until(lambda: topo.has_vip("n1"), what="keepalived n1 master")
    k2 = Keepalived(topo, "n2", 100, ka_int)
    k2.wait_log("Entering BACKUP STATE")
    # keepalived shows no event for "heard the master": give it 3 adverts
    time.sleep(3 * advert_s(advert))
    assert not topo.has_vip("n2")
    wait_until(lambda: topo.probe() == "n1", what="client on n1")
    t0 = trigger(topo, event, k1.kill, phase_of(advert, i, runs))
    dt = measure_to(topo, "n2", t0)
    k1.stop()
    k2.stop()
    reset(topo)
    return dt


def advert_s(advert):
    return float(advert[:-2]) / 1000 if advert.endswith("ms") else float(advert[:-1])


def record(key, values):
    try:
        with open(RESULTS) as f:
            data = json.load(f)
    except (OSError, ValueError):
        data = {}
    data[key] = values
    with open(RESULTS, "w") as f:
        json.dump(data, f, indent=1)


def compare(topo, event, advert, runs):
    # the keepalived runs need a proxy on both nodes: sluice without vrrp
    ours = [sluice_run(topo, event, advert, i, runs) for i in range(runs)]
    p1 = Node(topo, "n1", name="proxy-n1").start()
    p2 = Node(topo, "n2", name="proxy-n2").start()
    theirs = [keepalived_run(topo, event, advert, i, runs) for i in range(runs)]
    topo.stop(p1.proc)
    topo.stop(p2.proc)
    m_ours, m_theirs = statistics.median(ours), statistics.median(theirs)
    record("%s-%s" % (event, advert), {"sluice_ms": [round(x * 1000) for x in ours],
                                       "keepalived_ms": [round(x * 1000) for x in theirs],
                                       "sluice_median_ms": round(m_ours * 1000),
                                       "keepalived_median_ms": round(m_theirs * 1000)})
    print("\n%s advert %s: sluice median %.0f ms %s, keepalived median %.0f ms %s"
          % (event, advert, m_ours * 1000, [round(x * 1000) for x in ours],
             m_theirs * 1000, [round(x * 1000) for x in theirs]))
    return m_ours, m_theirs


ADVERTS = ["100ms"] + (["1s"] if os.environ.get("SLUICE_NETNS_SLOW") else [])


@pytest.mark.parametrize("advert", ADVERTS)
def test_failover_sigkill_vs_keepalived(topo, advert):
    ours, theirs = compare(topo, "kill", advert, RUNS)
    assert ours <= theirs * 1.05 + 0.010, (ours, theirs)


@pytest.mark.parametrize("advert", ADVERTS)
def test_failover_sigterm_vs_keepalived(topo, advert):
    ours, theirs = compare(topo, "term", advert, RUNS)
    assert ours <= theirs * 1.2 + 0.020, (ours, theirs)


@pytest.mark.parametrize("advert", ADVERTS)
def test_failover_link_down_vs_keepalived(topo, advert):
    ours, theirs = compare(topo, "link", advert, RUNS)
    assert ours <= theirs * 1.1 + 0.020, (ours, theirs)


@pytest.mark.parametrize("version,advert,unicast", [
    (3, "100ms", False), (2, "1s", False), (3, "100ms", True)])
def test_interop_both_roles(topo, version, advert, unicast):
    ka_int = "%g" % advert_s(advert)
    peers_s = " peer %s;\n" % NODE_IP["n2"] if unicast else ""
    peers_k = (NODE_IP["n1"],) if unicast else ()
    # sluice master (n1), keepalived backup (n2) with a plain sluice proxy
    proxy2 = Node(topo, "n2", name="proxy-n2").start()
    s1 = Node(topo, "n1", vrrp_block(150, advert, peers_s, version), name="s1").start()
    s1.wait_state("MASTER", timeout=15)
    k2 = Keepalived(topo, "n2", 100, ka_int, version, peers_k)
    k2.wait_log("Entering BACKUP STATE")
    time.sleep(4 * advert_s(advert))  # keepalived would have taken over by now
    assert topo.vip_holders() == ["n1"]
    assert topo.probe() == "n1"
    # sluice dies: keepalived takes over
    measure_to(topo, "n2", trigger(topo, "kill", lambda sig: os.kill(s1.proc.pid, sig)))
    k2.wait_log("Entering MASTER STATE")
    # sluice comes back with the higher priority and preempts keepalived
    s1b = Node(topo, "n1", vrrp_block(150, advert, peers_s, version), name="s1b").start()
    s1b.wait_state("MASTER", timeout=15)
    wait_until(lambda: topo.vip_holders() == ["n1"], what="keepalived released the VIP")
    measure_to(topo, "n1", time.monotonic())
    st = s1b.status()
    peer = [p for p in st["peers"] if p["address"] == NODE_IP["n2"]]
    assert peer and peer[0]["version"] == version, st
    assert peer[0]["checksum"] == ("rfc" if version == 2 else "pseudo-header"), st
    assert sum(st["drops"].values()) == 0, st["drops"]
    topo.stop(s1b.proc)
    k2.stop()
    topo.stop(proxy2.proc)
    reset(topo)

    # keepalived master (n1, with a plain proxy), sluice backup (n2)
    proxy1 = Node(topo, "n1", name="proxy-n1").start()
    k1 = Keepalived(topo, "n1", 150, ka_int, version, (NODE_IP["n2"],) if unicast else ())
    wait_until(lambda: topo.has_vip("n1"), timeout=15, what="keepalived n1 master")
    s2 = Node(topo, "n2", vrrp_block(100, advert, " peer %s;\n" % NODE_IP["n1"] if unicast
                                     else "", version), name="s2").start()
    s2.wait_state("BACKUP")
    wait_until(lambda: s2.status()["adverts_received"] >= 3, timeout=10, what="s2 hears k1")
    assert s2.state() == "BACKUP" and topo.vip_holders() == ["n1"]
    st = s2.status()
    assert st["master"] == NODE_IP["n1"] and sum(st["drops"].values()) == 0, st
    measure_to(topo, "n2", trigger(topo, "kill", k1.kill))
    s2.wait_state("MASTER")
    k1.stop()
    topo.stop(proxy1.proc)
