# Second-chance forwarding between 3 sluice nodes behind an ECMP router
# (cluster_topo.py): held connections survive a node withdrawing from and
# joining the route set, with hash-threshold multipath routes and with a
# resilient nexthop group; a dead node breaks only its own flows; a flood
# of unknown ACKs is dropped, never reset or looped, and fully counted.
# The figures (flows broken per event) are printed for the README.
import os
import random
import signal
import socket
import struct
import time

import pytest

from cluster_topo import (NODES, PORT, VIP4, VIP6, CLIENT4, ClusterNode, ClusterTopo, Flows,
                          prog_loaded, tc_filters)
from conftest import Netns, run, wait_until

HELD = 300


@pytest.fixture
def ctopo(tmp_path):
    t = ClusterTopo(tmp_path)
    t.backend()
    yield t
    errors = t.close()
    assert not errors, errors


@pytest.fixture
def rtopo(tmp_path):
    t = ClusterTopo(tmp_path, resilient=True)
    t.backend()
    yield t
    errors = t.close()
    assert not errors, errors


def start_nodes(topo, cluster=True):
    nodes = {n: ClusterNode(topo, n, cluster=cluster).start() for n in NODES}
    if cluster:
        for node in nodes.values():
            wait_until(node.peers_resolved, timeout=10, what=node.name + " resolves its peers")
    return nodes


def report(name, broken, flows):
    total = len(flows.conns)
    print("FIGURE %s: %d of %d held connections broken (%.1f %%)" %
          (name, len(broken), total, 100.0 * len(broken) / total))


def move(topo, flows, members, seconds=2.0):
    """Change the route set while data flows, keep it flowing, then check
    every connection. Returns the broken ones."""
    flows.pump(0.3)
    topo.set_route(members)
    flows.pump(seconds)
    return flows.check_all()


def test_cluster_attaches_and_detaches(ctopo):
    n1 = ClusterNode(ctopo, "n1").start()
    assert "cluster: attached (tcx)" in n1.log()
    st = n1.cluster()
    assert st["attached"] == "tcx" and prog_loaded(st["prog_id"])
    assert n1.stop() == 0
    assert "cluster: programs detached" in n1.log()
    wait_until(lambda: not prog_loaded(st["prog_id"]), timeout=5, what="program unloaded")


def withdraw_and_join(topo, label, cluster=True):
    """Node n1 withdraws while 300 connections are held over the 3 nodes;
    then, with 300 more opened over n2 and n3, it joins again. Returns the
    nodes, both sets of flows and what broke at each event."""
    nodes = start_nodes(topo, cluster)
    before = Flows(topo, HELD)
    spread = before.by_node()
    assert all(v >= HELD // 6 for v in spread.values()), spread
    before.pump(0.5)
    assert not before.check_all()
    broken_w = move(topo, before, ["n2", "n3"])
    report("%s, n1 withdraws" % label, broken_w, before)
    if cluster:
        # n1's connections finish on n1 while it is out of the route
        own = [c for c in before.conns if c["node"] == "n1"]
        assert own and not before.finish(own)
        wait_until(lambda: nodes["n1"].active() == 0, timeout=10, what="n1 has no connection")
    during = Flows(topo, HELD)
    assert during.by_node()["n1"] == 0
    during.pump(0.5)
    assert not during.check_all()
    broken_j = move(topo, during, list(NODES))
    report("%s, n1 joins" % label, broken_j, during)
    return nodes, before, during, broken_w, broken_j


def test_withdraw_and_join_hash_threshold(ctopo):
    """Plain multipath routes: a withdraw or join remaps flows of every node,
    and every one of them survives through its owner."""
    nodes, before, during, broken_w, broken_j = withdraw_and_join(
        ctopo, "hash-threshold, second chance")
    assert not broken_w, [c["broken"] for c in broken_w][:5]
    assert not broken_j, [c["broken"] for c in broken_j][:5]
    assert not before.check_all()
    for n, node in nodes.items():
        st = node.cluster()
        assert st["forwarded"] > 0 and st["delivered"] > 0, (n, st)
    assert not before.finish()
    assert not during.finish()


def test_withdraw_and_join_without_second_chance(ctopo):
    """The baseline: the same events without the program reset the flows
    the router moves (the figure the README compares with)."""
    _, before, during, broken_w, broken_j = withdraw_and_join(
        ctopo, "hash-threshold, no second chance", cluster=False)
    assert broken_w and broken_j
    assert any(c["node"] != "n1" for c in broken_w)  # other nodes' flows move too
    before.close()
    during.close()


def test_withdraw_and_join_resilient(rtopo):
    _, before, during, broken_w, broken_j = withdraw_and_join(rtopo, "resilient, second chance")
    assert not broken_w, [c["broken"] for c in broken_w][:5]
    assert not broken_j, [c["broken"] for c in broken_j][:5]
    assert not before.finish()
    assert not during.finish()


def test_withdraw_and_join_resilient_without_second_chance(rtopo):
    _, before, during, broken_w, broken_j = withdraw_and_join(
        rtopo, "resilient, no second chance", cluster=False)
    # only n1's own flows move when it leaves
    assert broken_w and all(c["node"] == "n1" for c in broken_w)
    before.close()
    during.close()


def test_ipv6_withdraw(ctopo):
    start_nodes(ctopo)
    flows = Flows(ctopo, 60, family=socket.AF_INET6)
    assert not flows.check_all()
    broken = move(ctopo, flows, ["n2", "n3"])
    report("IPv6 hash-threshold, second chance, withdraw n1", broken, flows)
    assert not broken, [c["broken"] for c in broken][:5]
    broken = move(ctopo, flows, list(NODES))
    assert not broken, [c["broken"] for c in broken][:5]
    assert not flows.finish()


def test_sigkill_breaks_only_own_flows(ctopo):
    """n2 dies and the router drops it (as BIRD does when its TUN device
    goes): n2's flows break, every other node's survive, even those the
    rehash sends to a node that must forward them (and to dead n2's
    kernel, which must not reset them)."""
    nodes = start_nodes(ctopo)
    flows = Flows(ctopo, HELD)
    flows.pump(0.3)
    prog = nodes["n2"].cluster()["prog_id"]
    nodes["n2"].stop(signal.SIGKILL)
    # a tcx link dies with its process: nothing of n2's program is left
    wait_until(lambda: not prog_loaded(prog), timeout=5, what="n2's program unloaded")
    ctopo.set_route(["n1", "n3"])
    flows.pump(2.0)
    broken = flows.check_all()
    report("hash-threshold, second chance, SIGKILL n2", broken, flows)
    others = [c for c in broken if c["node"] != "n2"]
    assert not others, [(c["node"], c["broken"]) for c in others][:5]
    assert all(c["node"] == "n2" for c in broken)
    flows.close()
