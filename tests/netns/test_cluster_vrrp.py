# Second-chance forwarding on the VRRP pair (conftest.py's topology: both
# nodes, the client and the backend on one bridge, which is also the pair's
# only segment). After `vrrp leave` on the master, the new master sends the
# packets of flows it does not own to the old master, which keeps the VIP on
# lo (never answering ARP for it) while its connections last.
import json
import os
import socket

import pytest

from cluster_topo import Flows
from conftest import (BACKEND_IP, NODE_IP, PORT, VIP, Netns, Node, run, vrrp_block,
                      wait_until)

ECHO_PORT = 9001
HELD = 100

# Backend: says which node proxied the connection, then echoes.
ECHO_SRC = r"""
import selectors, socket, sys
sel = selectors.DefaultSelector()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1024); s.setblocking(False)
sel.register(s, selectors.EVENT_READ, None)
print("ready", flush=True)
out = {}
while True:
    for key, ev in sel.select():
        c = key.fileobj
        if key.data is None:
            try:
                n, a = c.accept()
            except OSError:
                continue
            n.setblocking(False)
            out[n] = ("peer=%s\n" % a[0]).encode()
            sel.register(n, selectors.EVENT_READ | selectors.EVENT_WRITE, 1)
            continue
        if ev & selectors.EVENT_READ:
            try:
                d = c.recv(65536)
            except OSError:
                d = b""
            if not d:
                sel.unregister(c); out.pop(c, None); c.close(); continue
            out[c] += d
        if ev & selectors.EVENT_WRITE and out.get(c):
            try:
                out[c] = out[c][c.send(out[c]):]
            except BlockingIOError:
                pass
            except OSError:
                sel.unregister(c); out.pop(c, None); c.close()
"""


def pair_node(topo, n, prio, cluster):
    other = "n2" if n == "n1" else "n1"
    block = ""
    if cluster:
        block = "cluster { interface eth0; uplink eth0; peer %s %s; }\n" % (other,
                                                                          NODE_IP[other])
    node = Node(topo, n, vrrp_block(prio), extra=block)
    with open(node.conf) as f:
        text = f.read()
    with open(node.conf, "w") as f:
        f.write(text.replace("%s:9000" % BACKEND_IP, "%s:%d" % (BACKEND_IP, ECHO_PORT))
                .replace("timeout connect 500ms;", "timeout connect 500ms; timeout idle 5m;"))
    return node


def client_socket(topo):
    def make(family):
        with Netns(topo.ns["c"]):
            return socket.socket(family, socket.SOCK_STREAM)
    return make


def lo_has_vip(topo, n):
    return (" %s/32 " % VIP) in topo.ip(n, "-4", "addr", "show", "dev", "lo").stdout


def run_leave(topo, cluster):
    topo.backend(src=ECHO_SRC, port=ECHO_PORT)
    n1 = pair_node(topo, "n1", 150, cluster).start()
    n1.wait_state("MASTER")
    n2 = pair_node(topo, "n2", 100, cluster).start()
    n2.wait_state("BACKUP")
    if cluster:
        for node in (n1, n2):
            wait_until(lambda: all(p["mac"] for p in cluster_of(node)["peers"]), timeout=10,
                       what=node.name + " resolves its peer")
    node_of = {NODE_IP["n1"]: "n1", NODE_IP["n2"]: "n2"}
    flows = Flows(topo, HELD, vip=VIP, node_of=node_of, client_socket=client_socket(topo))
    assert all(c["node"] == "n1" for c in flows.conns)
    flows.pump(0.5)
    assert not flows.check_all()
    r = n1.ctl("vrrp", "leave", "front")
    assert r.returncode == 0, r.stdout + r.stderr
    n2.wait_state("MASTER")
    flows.pump(2.0)
    broken = flows.check_all()
    print("FIGURE VRRP pair, vrrp leave on the master, %s: %d of %d held connections broken"
          % ("second chance" if cluster else "no second chance", len(broken), HELD))
    return n1, n2, flows, broken


def cluster_of(node):
    import json
    r = node.ctl("show", "cluster", json_out=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)["cluster"]


def test_vrrp_leave_keeps_flows(topo):
    n1, n2, flows, broken = run_leave(topo, cluster=True)
    assert not broken, [c["broken"] for c in broken][:5]
    # the old master keeps the VIP on lo, not on eth0, and never answers ARP for it
    assert lo_has_vip(topo, "n1") and not topo.has_vip("n1") and topo.has_vip("n2")
    assert "vrrp front: %s kept on lo while connections use it" % VIP in n1.log()
    assert cluster_of(n2)["forwarded"] > 0 and cluster_of(n1)["delivered"] > 0
    arp = topo.ip("c", "neigh", "show", VIP).stdout
    mac2 = topo.ip("n2", "link", "show", "eth0").stdout.split("link/ether ")[1].split()[0]
    assert mac2 in arp, arp
    # the connections finish on n1; then the VIP leaves its lo
    assert not flows.finish()
    wait_until(lambda: not lo_has_vip(topo, "n1"), timeout=10, what="VIP released from n1's lo")
    assert "removed from lo: its last connection ended" in n1.log()
    # new connections go to the new master
    assert topo.probe() == "n2"


def test_vrrp_leave_without_second_chance(topo):
    n1, n2, flows, broken = run_leave(topo, cluster=False)
    assert len(broken) == HELD
    flows.close()


def test_preempting_node_forwards_to_old_master(topo):
    """n2 serves alone; n1 returns with a higher priority and preempts: the
    flows n2 holds keep working through n1."""
    topo.backend(src=ECHO_SRC, port=ECHO_PORT)
    n2 = pair_node(topo, "n2", 100, True).start()
    n2.wait_state("MASTER")
    node_of = {NODE_IP["n1"]: "n1", NODE_IP["n2"]: "n2"}
    flows = Flows(topo, HELD, vip=VIP, node_of=node_of, client_socket=client_socket(topo))
    assert all(c["node"] == "n2" for c in flows.conns)
    flows.pump(0.3)
    n1 = pair_node(topo, "n1", 150, True).start()
    n1.wait_state("MASTER")
    n2.wait_state("BACKUP")
    flows.pump(2.0)
    broken = flows.check_all()
    print("FIGURE VRRP pair, preempting node, second chance: %d of %d held connections broken"
          % (len(broken), HELD))
    assert not broken, [c["broken"] for c in broken][:5]
    assert lo_has_vip(topo, "n2") and cluster_of(n1)["forwarded"] > 0
    assert not flows.finish()
    wait_until(lambda: not lo_has_vip(topo, "n2"), timeout=10, what="VIP released from n2's lo")


def test_two_instances_on_one_interface_restore_arp_sysctls(topo):
    """With a cluster block every VRRP instance makes its interface quiet
    about ARP (arp_ignore 1, arp_announce 2) for as long as it may keep a
    VIP on lo, and puts the values back after. Two instances on the same
    interface (v4 and v6, or two VIP groups, as usual) share that: removing
    one by a reload must leave the interface quiet for the other, and the
    values the host had come back when the last one goes."""
    def sysctls():
        return tuple(run("ip", "netns", "exec", topo.ns["n1"], "cat",
                         "/proc/sys/net/ipv4/conf/eth0/" + k).stdout.strip()
                     for k in ("arp_ignore", "arp_announce"))

    assert sysctls() == ("0", "0")
    second = ("vrrp back {\n interface eth0; vrid 52; priority 150; advert 100ms;\n"
              " address 198.51.100.11/24;\n}\n")
    cluster = "cluster { interface eth0; uplink eth0; peer n2 %s; }\n" % NODE_IP["n2"]
    n1 = Node(topo, "n1", vrrp_block(150) + second, extra=cluster).start()
    n1.wait_state("MASTER")
    assert sysctls() == ("1", "2")
    # the first instance goes: the second still needs a quiet interface
    with open(n1.conf) as f:
        text = f.read()
    with open(n1.conf, "w") as f:
        f.write(text.replace(vrrp_block(150), ""))
    r = n1.ctl("reload")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [v["name"] for v in json.loads(n1.ctl("show", "vrrp", json_out=True).stdout)["vrrp"]] \
        == ["back"]
    assert sysctls() == ("1", "2")
    assert topo.stop(n1.proc) == 0
    assert sysctls() == ("0", "0"), n1.log()
