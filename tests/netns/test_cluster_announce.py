# `node drain` through the real announce path with second chance: three
# sluice nodes, each with an announce block and a cluster block and its own
# BIRD, behind a BIRD router that installs plain hash-threshold multipath
# routes (bgp_topo.py), with a bridge between the nodes as the cluster
# segment and strict reverse-path filtering on the nodes. `node drain` on
# n1 withdraws its route through BIRD; the router moves flows of every
# node; second chance keeps all of them and n1's own connections finish on
# n1. `node ready` announces n1 again (join): the same. Without the cluster
# block the same events give the figure the README compares with.
import json
import socket
import time

from bgp_topo import BACKEND_IP, NODES, VIP, BgpTopo, SluiceNode, cluster_addr, node_be_ip
from cluster_topo import BACKEND_SRC as ECHO_SRC
from cluster_topo import Flows
from conftest import Netns, wait_until

HELD = 300
ECHO_PORT = 9001

# The held connections' pool: a backend that greets with the node's address
# and echoes every byte (the announce block requires it, and the canary).
WEB = ("pool web {\n"
       " check tcp { interval 100ms; timeout 100ms; rise 2; fall 2; }\n"
       " server b1 %s:%d;\n}\n" % (BACKEND_IP, ECHO_PORT))


def cluster_block(n):
    peers = "".join(" peer %s %s;\n" % (m, cluster_addr(m)) for m in NODES if m != n)
    return "cluster {\n interface eth2;\n uplink eth0;\n%s}\n" % peers


def start(tmp_path, cluster):
    t = BgpTopo(tmp_path)
    try:
        t.add_cluster_segment()
        t.start_backends()
        t.py("be", ECHO_SRC, BACKEND_IP, "::1", ECHO_PORT)
        t.start_routing()
        for n in NODES:
            t.nodes[n] = SluiceNode(t, n, web=WEB,
                                    extra=cluster_block(n) if cluster else "").start()
        t.wait_fib(NODES)
        if cluster:
            for n in NODES:
                wait_until(lambda: peers_resolved(t.nodes[n]), timeout=10,
                           what="sluice-%s resolves its peers" % n)
    except BaseException:
        t.close()
        raise
    return t


def show(node, what):
    r = node.ctl("show", what, json_out=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def peers_resolved(node):
    c = show(node, "cluster")["cluster"]
    return c is not None and all(p["mac"] for p in c["peers"])


def active(node):
    info = show(node, "info")
    return info.get("cur_conns", info.get("connections"))


def flows(t, count):
    def client_socket(family):
        with Netns(t.ns["c"]):
            return socket.socket(family, socket.SOCK_STREAM)

    return Flows(t, count, vip=VIP, node_of={node_be_ip(n): n for n in NODES},
                 client_socket=client_socket)


def report(name, broken, f):
    total = len(f.conns)
    print("FIGURE %s: %d of %d held connections broken (%.1f %%)" %
          (name, len(broken), total, 100.0 * len(broken) / total))


def event(t, f, words, members, seconds=2.0):
    """Run a control command on n1 while data flows, wait for the router's
    FIB to follow through BIRD, keep data flowing, then check every
    connection. Returns the broken ones and the FIB delay (s)."""
    f.pump(0.3)
    t0 = time.monotonic()
    r = t.nodes["n1"].ctl(*words)
    assert r.returncode == 0, r.stdout + r.stderr
    t.wait_fib(members)
    delay = time.monotonic() - t0
    f.pump(seconds)
    return f.check_all(), delay


def drain_and_ready(t, label, cluster):
    """n1 is drained while 300 connections are held over the 3 nodes; then,
    with 300 more opened over n2 and n3, it is made ready again."""
    n1 = t.nodes["n1"]
    before = flows(t, HELD)
    spread = before.by_node()
    assert all(v >= HELD // 6 for v in spread.values()), spread
    before.pump(0.5)
    assert not before.check_all()
    broken_w, delay = event(t, before, ("node", "drain"), ["n2", "n3"])
    print("node drain -> router FIB without n1: %.0f ms" % (delay * 1000))
    report("%s, node drain of n1 through BIRD" % label, broken_w, before)
    a = show(n1, "announce")["announce"][0]
    assert a["state"] == "withdrawn" and a["cause"] == "node drained (node drain)", a
    if cluster:
        # n1's connections finish on n1 while it is out of the route
        own = [c for c in before.conns if c["node"] == "n1"]
        assert own and not before.finish(own)
        wait_until(lambda: active(n1) == 0, timeout=10, what="n1 has no connection")
    during = flows(t, HELD)
    assert during.by_node()["n1"] == 0
    during.pump(0.5)
    assert not during.check_all()
    broken_j, delay = event(t, during, ("node", "ready"), list(NODES))
    print("node ready -> router FIB with n1 (hold-down 300 ms): %.0f ms" % (delay * 1000))
    report("%s, node ready of n1 through BIRD" % label, broken_j, during)
    return before, during, broken_w, broken_j


def test_node_drain_and_ready_through_bird(tmp_path):
    """0 held connections broken by `node drain` or `node ready`, every
    byte echoed; n1's own connections finish on n1 (it received their
    packets from its peers); the nodes that stay forwarded."""
    t = start(tmp_path, cluster=True)
    try:
        before, during, broken_w, broken_j = drain_and_ready(
            t, "hash-threshold (BIRD), second chance", cluster=True)
        assert not broken_w, [c["broken"] for c in broken_w][:5]
        assert not broken_j, [c["broken"] for c in broken_j][:5]
        assert not before.check_all()
        st = {n: show(t.nodes[n], "cluster")["cluster"] for n in NODES}
        assert st["n1"]["delivered"] > 0, st["n1"]
        for n in ("n2", "n3"):
            assert st[n]["forwarded"] > 0 and st[n]["delivered"] > 0, (n, st[n])
        assert not before.finish()
        assert not during.finish()
    finally:
        errors = t.close()
    assert not errors, errors


def test_node_drain_and_ready_through_bird_without_second_chance(tmp_path):
    """The baseline: the same events without a cluster block reset the flows
    the router moves, the other nodes' too."""
    t = start(tmp_path, cluster=False)
    try:
        before, during, broken_w, broken_j = drain_and_ready(
            t, "hash-threshold (BIRD), no second chance", cluster=False)
        assert broken_w and broken_j
        assert any(c["node"] != "n1" for c in broken_w)
        before.close()
        during.close()
    finally:
        errors = t.close()
    assert not errors, errors

