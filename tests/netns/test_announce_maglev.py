# Maglev across the three announcing nodes behind the BIRD router: with the
# same configuration, 1 000 client addresses reach the same backend through
# each node, whichever node the router's L4 hash picks for a connection.
# Also after a server added and one deleted at runtime on every node in the
# same order, after a reload on one node and a restart on another, and
# while one node alone sees a server DOWN (only that server's clients move,
# and only through that node).
import concurrent.futures
import json
import os
import random
import signal
import socket
import time

import pytest

from bgp_topo import BACKEND_IP, NODES, PORT, VIP, BgpTopo, SluiceNode, node_be_ip
from conftest import Netns, wait_until

CLIENTS = 1000
CLIENT_NET = "198.19.0.0/22"  # benchmarking range, routed to the client
FIRST_PORT = 9001

# One process, one listener per port: greets with the node that connected
# and its own port, which names the server.
BACKENDS_SRC = r"""
import socket, sys, threading
def serve(s, port):
    while True:
        c, a = s.accept()
        try:
            c.sendall(("peer=%s be=%d\n" % (a[0], port)).encode())
        except OSError:
            pass
        c.close()
for port in sys.argv[2:]:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], int(port))); s.listen(1024)
    threading.Thread(target=serve, args=(s, int(port)), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""


def port_of(name):
    """The backend port of server s<k>."""
    return FIRST_PORT + int(name[1:]) - 1


def web(names):
    """Pool web over servers s<k> (backend port 9000+k), in the given order."""
    lines = "".join(" server %s %s:%d;\n" % (n, BACKEND_IP, port_of(n)) for n in names)
    return ("pool web {\n balance maglev;\n"
            " check tcp { interval 100ms; timeout 100ms; rise 2; fall 2; }\n%s}\n" % lines)


def clients():
    base = 198 << 24 | 19 << 16
    return [socket.inet_ntoa((base + 1 + i).to_bytes(4, "big")) for i in range(CLIENTS)]


def ask(topo, src):
    """Connections from src with ephemeral ports until each node answered
    once: {node: server port}."""
    seen = {}
    for _ in range(80):
        s = socket.socket()
        try:
            s.settimeout(2)
            s.bind((src, 0))
            s.connect((VIP, PORT))
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(100)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        peer, _, be = data.decode().strip().partition(" be=")
        node = [n for n in NODES if peer == "peer=" + node_be_ip(n)]
        assert node, "unexpected greeting %r" % data
        seen[node[0]] = int(be)
        if len(seen) == len(NODES):
            return seen
    raise AssertionError("%s did not reach every node: %s" % (src, seen))


def mapping(topo):
    """{client address: {node: server port}} for every client, through the
    router (16 at a time, in the client namespace)."""
    def enter():
        Netns(topo.ns["c"]).__enter__()  # the pool's threads live there
    with concurrent.futures.ThreadPoolExecutor(16, initializer=enter) as ex:
        res = list(ex.map(lambda src: ask(topo, src), clients()))
    return dict(zip(clients(), res))


def backend_of(m):
    """{client: port} when every node agrees; asserts otherwise."""
    differ = {c: v for c, v in m.items() if len(set(v.values())) != 1}
    assert not differ, "%d of %d clients reach different backends through different nodes, " \
                       "e.g. %s" % (len(differ), len(m), list(differ.items())[:3])
    return {c: next(iter(v.values())) for c, v in m.items()}


def server_health(node, name):
    r = node.ctl("show", "servers", "web", json_out=True)
    assert r.returncode == 0, r.stderr
    return [s["health"] for s in json.loads(r.stdout) if s["server"] == name][0]


@pytest.fixture
def maglev(tmp_path):
    t = BgpTopo(tmp_path)
    try:
        t.py("be", BACKENDS_SRC, BACKEND_IP, *[FIRST_PORT + k for k in range(13)])
        for n in NODES:
            t.start_canary(n)
        t.ip("c", "route", "add", "local", CLIENT_NET, "dev", "lo")
        t.ip("r", "route", "add", CLIENT_NET, "via", "192.0.2.100")
        t.start_routing()
        names = ["s%d" % k for k in range(1, 12)]
        orders = {"n1": names, "n2": names[::-1], "n3": random.Random(3).sample(names, 11)}
        for n in NODES:
            t.nodes[n] = SluiceNode(t, n, web=web(orders[n])).start()
        t.wait_fib(NODES)
        yield t
    finally:
        errors = t.close()
    assert not errors, errors


def test_same_backend_through_every_node(maglev):
    t = maglev
    t0 = time.monotonic()
    base = backend_of(mapping(t))
    print("1 000 clients x 3 nodes mapped in %.1fs" % (time.monotonic() - t0))
    share = {p: list(base.values()).count(p) for p in set(base.values())}
    assert len(share) == 11 and all(40 <= v <= 150 for v in share.values()), share

    # n3 alone sees s5 DOWN: only s5's clients move, and only through n3
    p5 = port_of("s5")
    r = os.system("ip netns exec %s nft 'add table inet t; add chain inet t o "
                  "{ type filter hook output priority 0; }; add rule inet t o "
                  "tcp dport %d reject with tcp reset'" % (t.ns["n3"], p5))
    assert r == 0
    n3 = t.nodes["n3"]
    wait_until(lambda: server_health(n3, "s5") == "down", what="n3 seeing s5 down")
    m = mapping(t)
    for c, via in m.items():
        if base[c] == p5:
            assert via["n1"] == via["n2"] == p5 and via["n3"] != p5, (c, via)
        else:
            assert set(via.values()) == {base[c]}, (c, via, base[c])
    moved_to = {m[c]["n3"] for c in base if base[c] == p5}
    assert len(moved_to) >= 6, moved_to  # spread over the others
    assert os.system("ip netns exec %s nft delete table inet t" % t.ns["n3"]) == 0
    wait_until(lambda: server_health(n3, "s5") == "up", what="n3 seeing s5 up")
    assert backend_of(mapping(t)) == base

    # runtime: s12 added, s3 deleted, on every node in the same order
    p3, p12 = port_of("s3"), port_of("s12")
    for n in NODES:
        node = t.nodes[n]
        r = node.ctl("server", "add", "web", "s12", "%s:%d" % (BACKEND_IP, p12), "ready")
        assert r.returncode == 0, r.stderr
        r = node.ctl("server", "del", "web/s3", "force")
        assert r.returncode == 0, r.stderr
    wait_until(lambda: all(server_health(t.nodes[n], "s12") == "up" for n in NODES),
               what="s12 up everywhere")
    after = backend_of(mapping(t))
    stayed = [c for c in base if base[c] != p3]
    elsewhere = [c for c in stayed if after[c] not in (base[c], p12)]
    assert len(elsewhere) <= 0.03 * len(stayed), "%d of %d" % (len(elsewhere), len(stayed))
    assert p3 not in after.values() and p12 in after.values()

    # a new file everywhere (s5 gone, s13 added, s12 now in the file, a new
    # order): n1 and n3 reload it, n2 restarts with it
    names = ["s13", "s12", "s9", "s1", "s11", "s2", "s6", "s10", "s4", "s8", "s7"]
    for n in NODES:
        t.nodes[n].write_conf(web=web(names if n != "n2" else names[::-1]))
    for n in ("n1", "n3"):
        r = t.nodes[n].ctl("reload")
        assert r.returncode == 0, r.stderr
    n2 = t.nodes["n2"]
    n2.proc.send_signal(signal.SIGTERM)
    assert n2.proc.wait(10) == 0
    t.wait_fib(("n1", "n3"))
    n2.proc = None
    n2.start(name="sluice-n2-restarted")
    t.wait_fib(NODES)
    final = backend_of(mapping(t))
    p13 = port_of("s13")
    stayed = [c for c in after if after[c] != p5]
    elsewhere = [c for c in stayed if final[c] not in (after[c], p13)]
    assert len(elsewhere) <= 0.03 * len(stayed), "%d of %d" % (len(elsewhere), len(stayed))
    assert p5 not in final.values() and p13 in final.values()
