# Second-chance forwarding, operations: bad input at start and reload
# leaves nothing attached, reload adds and removes the block, the tc attach
# mode survives a SIGKILL harmlessly (the program stands down) and is
# cleaned up at the next start, the privilege drop keeps CAP_BPF only for a
# cluster block, and a flood of unknown ACKs is dropped, never answered or
# looped, and every packet is counted.
import os
import random
import shutil
import tempfile
import signal
import socket
import struct
import subprocess
import time

import pytest

from cluster_topo import (CLIENT4, NODES, PORT, VIP4, ClusterNode, ClusterTopo, cluster4,
                          prog_loaded, tc_filters)
from conftest import SLUICE, Netns, run, wait_until


@pytest.fixture
def ctopo(tmp_path):
    t = ClusterTopo(tmp_path)
    t.backend()
    yield t
    errors = t.close()
    assert not errors, errors


def rewrite(node, cluster_block):
    with open(node.conf) as f:
        text = f.read()
    head = text.split("cluster {")[0]
    with open(node.conf, "w") as f:
        f.write(head + cluster_block)


def block(peers, extra=""):
    return "cluster {\n interface eth1;\n uplink eth0;\n%s%s}\n" % (
        "".join(" peer %s %s;\n" % p for p in peers), extra)


def test_bad_interface_fails_start_nothing_attached(ctopo):
    node = ClusterNode(ctopo, "n1", cluster=False,
                       extra=block([("n2", cluster4(2))], " attach tc;\n").replace(
                           "uplink eth0", "uplink eth9"))
    node.start(expect_fail=True)
    assert node.proc.returncode == 1
    assert ("%s:6:9: error: cluster: interface eth9: No such device" % node.conf) in node.log()
    assert "sluice_cluster" not in tc_filters(ctopo, "n1", "eth0")
    assert "sluice_cluster" not in tc_filters(ctopo, "n1", "eth1")


def test_peer_off_subnet_fails_start_nothing_attached(ctopo):
    node = ClusterNode(ctopo, "n1", cluster=False,
                       extra=block([("n2", cluster4(2)), ("far", "198.18.200.7")], " attach tc;\n"))
    node.start(expect_fail=True)
    assert node.proc.returncode == 1
    assert ("%s:8:11: error: cluster: peer far 198.18.200.7 is not on a subnet of eth1"
            % node.conf) in node.log()
    assert "sluice_cluster" not in tc_filters(ctopo, "n1", "eth0")
    assert "sluice_cluster" not in tc_filters(ctopo, "n1", "eth1")


def test_reload_adds_and_removes_block(ctopo):
    node = ClusterNode(ctopo, "n1", cluster=False).start()
    assert node.cluster() is None
    # a bad block is refused and nothing is attached
    rewrite(node, block([("far", "198.18.200.7")], " attach tc;\n"))
    r = node.ctl("reload")
    assert r.returncode == 1 and "is not on a subnet of eth1" in r.stderr, r.stdout + r.stderr
    assert node.cluster() is None
    assert "sluice_cluster" not in tc_filters(ctopo, "n1", "eth0")
    # a good one attaches
    rewrite(node, block([("n2", cluster4(2)), ("n3", cluster4(3))], " attach tc;\n"))
    r = node.ctl("reload")
    assert r.returncode == 0, r.stdout + r.stderr
    st = node.cluster()
    assert st["attached"] == "tc"
    assert "sluice_cluster" in tc_filters(ctopo, "n1", "eth0")
    assert "sluice_cluster" in tc_filters(ctopo, "n1", "eth1")
    # an unchanged block keeps its program
    r = node.ctl("reload")
    assert r.returncode == 0 and node.cluster()["prog_id"] == st["prog_id"]
    # a change that cannot be applied leaves the running one as it was
    rewrite(node, block([("n2", cluster4(2)), ("n3", cluster4(3))],
                        " attach tc;\n uplink eth9;\n"))
    r = node.ctl("reload")
    assert r.returncode == 1 and "interface eth9: No such device" in r.stderr, r.stderr
    assert node.cluster()["prog_id"] == st["prog_id"]
    assert "sluice_cluster" in tc_filters(ctopo, "n1", "eth0")
    # a change replaces the program in place (never a moment without one)
    rewrite(node, block([("n2", cluster4(2))], " attach tc;\n"))
    r = node.ctl("reload")
    assert r.returncode == 0, r.stdout + r.stderr
    st2 = node.cluster()
    assert st2["prog_id"] != st["prog_id"] and len(st2["peers"]) == 1
    assert "sluice_cluster" in tc_filters(ctopo, "n1", "eth0")
    assert "sluice_cluster" in tc_filters(ctopo, "n1", "eth1")
    assert "stale" not in node.log()
    ctopo.set_route(["n1"])
    send_acks(ctopo, 5, seed=4)
    wait_until(lambda: node.cluster()["forwarded"] >= 5, what="the new program forwards")
    st = st2
    # removed: detached
    rewrite(node, "")
    r = node.ctl("reload")
    assert r.returncode == 0, r.stdout + r.stderr
    assert node.cluster() is None
    assert "sluice_cluster" not in tc_filters(ctopo, "n1", "eth0")
    assert "sluice_cluster" not in tc_filters(ctopo, "n1", "eth1")
    wait_until(lambda: not prog_loaded(st["prog_id"]), timeout=5, what="program unloaded")
    assert node.stop() == 0


def test_failed_reload_puts_the_cluster_back(ctopo):
    """The cluster block is applied before announce and the listeners: a
    reload that changes it and then fails there (an announce device that is
    another link) is refused, and the running file's block is back (both
    peers, still attached), with no error about going back."""
    node = ClusterNode(ctopo, "n1").start()
    wait_until(node.peers_resolved, timeout=10, what="n1 resolves its peers")
    st = node.cluster()
    assert sorted(p["name"] for p in st["peers"]) == ["n2", "n3"]
    rewrite(node, block([("n2", cluster4(2))]) +
            "announce front {\n address %s/32;\n device eth1;\n}\n" % VIP4)
    r = node.ctl("reload")
    assert r.returncode == 1 and "device eth1 already exists" in r.stderr, r.stdout + r.stderr
    back = node.cluster()
    assert back["attached"] == st["attached"] and prog_loaded(back["prog_id"]), back
    assert sorted(p["name"] for p in back["peers"]) == ["n2", "n3"], back
    assert "could not go back" not in node.log()
    assert node.stop() == 0


# ---- raw ACKs from the client ----

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ack_packet(sport, seq, ack):
    src, dst = socket.inet_aton(CLIENT4), socket.inet_aton(VIP4)
    tcp = struct.pack("!HHIIBBHHH", sport, PORT, seq, ack, 5 << 4, 0x10, 65535, 0, 0)
    c = csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return ip + tcp


def send_acks(topo, count, seed, pace=500):
    """count ACKs of random unknown flows to the VIP, paced so that no
    queue on the way overflows."""
    rng = random.Random(seed)
    with Netns(topo.ns["c"]):
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    for i in range(count):
        s.sendto(ack_packet(rng.randrange(1024, 65536), rng.getrandbits(32),
                            rng.getrandbits(32)), (VIP4, 0))
        if i % pace == pace - 1:
            time.sleep(0.005)
    s.close()


def nft_rst_counter(topo):
    nft = ["ip", "netns", "exec", topo.ns["c"], "nft"]
    subprocess.run(nft + ["add table inet cl; add chain inet cl in "
                          "{ type filter hook input priority 0; }; "
                          "add rule inet cl in ip saddr %s tcp flags rst counter" % VIP4],
                   check=True)

    def read():
        out = subprocess.run(nft + ["list", "chain", "inet", "cl", "in"], check=True,
                             capture_output=True, text=True).stdout
        return int(out.split("counter packets ")[1].split()[0])
    return read


def rss_kib(node):
    pid = run("ip", "netns", "pids", node.topo.ns[node.n]).stdout.split()
    for p in pid:
        try:
            with open("/proc/%s/status" % p) as f:
                text = f.read()
        except OSError:
            continue
        if "Name:\tsluice\n" in text:
            return int(text.split("VmRSS:")[1].split()[0])
    raise AssertionError("no sluice in " + node.n)


def sums(nodes):
    st = [n.cluster() for n in nodes.values()]
    return {
        "forwarded": sum(s["forwarded"] for s in st),
        "copies": sum(p["forwarded"] for s in st for p in s["peers"]),
        "received": sum(s["delivered"] + sum(s["dropped"].values()) for s in st),
        "no_owner": sum(s["dropped"]["no_owner"] for s in st),
        "delivered": sum(s["delivered"] for s in st),
        "passed": sum(sum(s["passed"].values()) for s in st),
    }


def test_flood_of_unknown_acks(ctopo):
    nodes = {n: ClusterNode(ctopo, n).start() for n in NODES}
    for node in nodes.values():
        wait_until(node.peers_resolved, timeout=10, what=node.name + " resolves its peers")
    rsts = nft_rst_counter(ctopo)
    before = sums(nodes)
    rss0 = {n: rss_kib(node) for n, node in nodes.items()}
    count = 50000
    send_acks(ctopo, count, seed=13)
    wait_until(lambda: sums(nodes)["forwarded"] - before["forwarded"] >= count, timeout=20,
               what="every ACK forwarded")
    time.sleep(0.5)  # nothing more may come: no loop
    after = sums(nodes)
    d = {k: after[k] - before[k] for k in after}
    print("FIGURE flood: %s" % d)
    # every packet forwarded exactly once, by the node it reached ...
    assert d["forwarded"] == count and d["passed"] == 0, d
    # ... to its 2 peers, which dropped every copy (nobody owns them)
    assert d["copies"] == 2 * count and d["received"] == 2 * count, d
    assert d["no_owner"] == 2 * count and d["delivered"] == 0, d
    assert rsts() == 0
    for n, node in nodes.items():
        grown = rss_kib(node) - rss0[n]
        assert grown < 1024, "%s grew %d KiB" % (n, grown)
    # no node logs a flow as unanswered: each was a single packet
    assert not any("no node owns flow" in node.log() for node in nodes.values())


def test_repeating_unknown_flow_is_logged(ctopo):
    nodes = {n: ClusterNode(ctopo, n).start() for n in NODES}
    for node in nodes.values():
        wait_until(node.peers_resolved, timeout=10, what=node.name + " resolves its peers")
    with Netns(ctopo.ns["c"]):
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    pkt = ack_packet(40123, 1000, 2000)
    for _ in range(6):  # a client retransmitting one segment
        s.sendto(pkt, (VIP4, 0))
        time.sleep(0.3)
    s.close()
    want = "no node owns flow %s:40123 -> %s:%d" % (CLIENT4, VIP4, PORT)
    wait_until(lambda: any(want in node.log() for node in nodes.values()), timeout=5,
               what="the unanswered flow logged")


def tc_nodes(topo):
    nodes = {n: ClusterNode(topo, n, extra_cluster=" attach tc;\n").start() for n in NODES}
    for node in nodes.values():
        wait_until(node.peers_resolved, timeout=10, what=node.name + " resolves its peers")
    return nodes


def test_tc_mode_sigkill_stands_down_and_restart_cleans(ctopo):
    """tc filters outlive the process: after a SIGKILL the program passes
    everything within 3 s (the kernel answers as if it were absent), and
    the next start removes the stale filter."""
    nodes = tc_nodes(ctopo)
    n1 = nodes["n1"]
    assert n1.cluster()["attached"] == "tc"
    ctopo.set_route(["n1"])
    rsts = nft_rst_counter(ctopo)
    send_acks(ctopo, 10, seed=1)
    wait_until(lambda: n1.cluster()["forwarded"] >= 10, what="n1 forwards unknown ACKs")
    assert rsts() == 0
    n1.stop(signal.SIGKILL)
    assert "sluice_cluster" in tc_filters(ctopo, "n1", "eth0")  # left behind, as documented
    time.sleep(3.5)
    send_acks(ctopo, 10, seed=2)
    # the stale program stood down: n1's kernel resets them, as without us
    wait_until(lambda: rsts() >= 10, timeout=5, what="resets from n1's kernel")
    n1 = ClusterNode(ctopo, "n1", extra_cluster=" attach tc;\n", name="sluice-n1b").start()
    assert "removed a stale sluice tc filter from eth0" in n1.log()
    assert n1.cluster()["attached"] == "tc"
    assert n1.stop() == 0
    assert "sluice_cluster" not in tc_filters(ctopo, "n1", "eth0")
    assert "sluice_cluster" not in tc_filters(ctopo, "n1", "eth1")


def readable_conf(node, d):
    """Move the node's file where nobody can read it after the drop."""
    path = os.path.join(d, os.path.basename(node.conf))
    shutil.move(node.conf, path)
    os.chmod(path, 0o644)
    node.conf = path
    return node


def test_privilege_drop_keeps_cap_bpf_for_cluster_only(ctopo):
    d = tempfile.mkdtemp(prefix="sluice-cluster-")
    os.chmod(d, 0o755)
    try:
        privdrop(ctopo, d)
    finally:
        shutil.rmtree(d)


def privdrop(ctopo, d):
    drop = "user nobody; group nogroup; "
    node = readable_conf(ClusterNode(ctopo, "n1", glob=drop), d).start()
    assert "with CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF" in node.log()
    assert node.cluster()["attached"] == "tcx"
    assert node.stop() == 0
    other = readable_conf(ClusterNode(ctopo, "n2", cluster=False, glob=drop), d).start()
    assert "with CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_NET_RAW\n" in other.log()
    with open(other.conf, "a") as f:
        f.write(block([("n1", cluster4(1))]))
    r = other.ctl("reload")
    assert r.returncode == 1 and "needs CAP_BPF" in r.stderr, r.stdout + r.stderr
    assert other.cluster() is None


@pytest.mark.parametrize("mode", ["tcx", "tc"])
def test_takeover_keeps_program(ctopo, mode):
    """A binary upgrade: the new process attaches its own program before the
    old one leaves, and the old one does not take the new one's away."""
    old = ClusterNode(ctopo, "n1", extra_cluster=" attach %s;\n" % mode).start()
    new = ClusterNode(ctopo, "n1", extra_cluster=" attach %s;\n" % mode, name="sluice-n1new")
    new.sock = old.sock
    with open(old.conf) as f:
        text = f.read()
    with open(new.conf, "w") as f:
        f.write(text)
    new.start(args=["--takeover", old.sock])
    old.proc.wait(15)
    assert "cluster: handed over" in old.log()
    assert "stale" not in new.log()
    st = new.cluster()
    assert st["attached"] == mode and prog_loaded(st["prog_id"])
    if mode == "tc":
        assert "sluice_cluster" in tc_filters(ctopo, "n1", "eth0")
    # it still forwards: route everything to n1 and send unknown ACKs
    ctopo.set_route(["n1"])
    send_acks(ctopo, 20, seed=3)
    wait_until(lambda: new.cluster()["forwarded"] >= 20, what="the new process forwards")
    assert new.stop() == 0
    assert "sluice_cluster" not in tc_filters(ctopo, "n1", "eth0")


def test_bpf_unavailable_fails_start(ctopo):
    """Without CAP_BPF (and CAP_SYS_ADMIN) the program cannot load: the
    start fails saying so, and nothing is attached."""
    node = ClusterNode(ctopo, "n1", extra_cluster=" attach tc;\n")
    node.proc = ctopo.spawn("n1", ["setpriv", "--bounding-set", "-bpf,-sys_admin",
                                   "--inh-caps", "-bpf,-sys_admin", SLUICE, "-f", node.conf],
                            node.name)
    node.proc.wait(10)
    assert node.proc.returncode == 1, node.log()
    assert "cluster: cannot load the BPF program (needs CAP_BPF and CAP_NET_ADMIN)" in node.log()
    assert ("%s:4:1: error:" % node.conf) in node.log()
    assert "sluice_cluster" not in tc_filters(ctopo, "n1", "eth0")
