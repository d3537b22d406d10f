# A reload is one transaction, VRRP included: when a reload that changes or
# removes a vrrp block is rejected (here: one of its new bind addresses is
# in use), the running master must not notice at all: no priority-0
# advert, no missed advert, no transition, the VIP stays. The same reload
# applies once the address is free. Adverts are captured on the wire from
# the client namespace, with kernel receive timestamps.
import socket
import struct
import time

import pytest

from conftest import NODE_IP, Netns, Node, VIP, vrrp_block, wait_until

ADVERT_S = 0.1
SO_TIMESTAMPNS = 35  # asm-generic/socket.h; not exported by Python's socket module
BUSY_PORT = 8081


class AdvertCapture:
    """Every VRRP advert seen by the client namespace (224.0.0.18 joined on
    its eth0), as (kernel receive time in s, source, priority)."""

    def __init__(self, topo):
        with Netns(topo.ns["c"]):
            self.s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
            ifindex = socket.if_nametoindex("eth0")
        mreq = struct.pack("4s4si", socket.inet_aton("224.0.0.18"), b"\0\0\0\0", ifindex)
        self.s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        self.s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.s.setblocking(False)
        self.seen = []

    def drain(self):
        for _ in range(100000):  # far more than a test can queue
            try:
                data, anc, _, _ = self.s.recvmsg(2048, socket.CMSG_SPACE(16))
            except BlockingIOError:
                return self.seen
            ts = None
            for level, kind, val in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", val[:16])
                    ts = sec + nsec / 1e9
            ihl = (data[0] & 0x0F) * 4
            assert ts is not None, "no receive timestamp"
            self.seen.append((ts, socket.inet_ntoa(data[12:16]), data[ihl + 2]))
        raise AssertionError("advert capture did not drain")

    def close(self):
        self.s.close()


def busy_port(topo, n, port):
    """A listening socket on the node's address, without SO_REUSEADDR or
    SO_REUSEPORT, so that sluice's bind of the same address fails."""
    with Netns(topo.ns[n]):
        s = socket.socket()
    s.bind((NODE_IP[n], port))
    s.listen(1)
    return s


def write_conf(node, text):
    with open(node.conf, "w") as f:
        f.write(text)


def vrrp_transitions(log):
    return [l for l in log.splitlines() if "vrrp front: " in l and " -> " in l]


@pytest.mark.parametrize("change", ["changed", "removed"])
def test_failed_reload_leaves_vrrp_alone(topo, change):
    n1 = Node(topo, "n1", vrrp_block(150)).start()
    n1.wait_state("MASTER")
    n2 = Node(topo, "n2", vrrp_block(100)).start()
    n2.wait_state("BACKUP")
    wait_until(lambda: n2.status()["adverts_received"] >= 2, what="n2 hears n1")
    wait_until(lambda: topo.probe() == "n1", what="client served through n1")
    with open(n1.conf) as f:
        running = f.read()
    if change == "changed":
        new = running.replace("priority 150;", "priority 160;")
    else:
        new = running[:running.index("vrrp front {")]
    assert new != running
    new += "listen extra { bind %s:%d; pool web; }\n" % (NODE_IP["n1"], BUSY_PORT)
    holder = busy_port(topo, "n1", BUSY_PORT)
    cap = AdvertCapture(topo)
    try:
        before1, before2 = n1.status(), n2.status()
        log_before = len(n1.log())
        time.sleep(0.5)  # adverts before the reload: the gap check spans it
        write_conf(n1, new)
        t_reload = time.time()
        r = n1.ctl("reload")
        assert r.returncode != 0, r.stdout + r.stderr
        assert "reload failed, running configuration kept" in r.stderr, r.stderr
        assert "%s:%d" % (NODE_IP["n1"], BUSY_PORT) in r.stderr, r.stderr
        time.sleep(1.0)  # ten advert intervals after it
        seen = cap.drain()
        after1, after2 = n1.status(), n2.status()

        mine = [(t, p) for t, src, p in seen if src == NODE_IP["n1"]]
        others = [(t, src, p) for t, src, p in seen if src != NODE_IP["n1"]]
        assert not others, "another node advertised: %s" % others
        assert [p for _, p in mine] == [150] * len(mine), "n1 sent other priorities"
        assert mine[0][0] < t_reload - 0.3 and mine[-1][0] > t_reload + 0.8, mine
        gaps = [b[0] - a[0] for a, b in zip(mine, mine[1:])]
        # one advert per 100 ms: a missed one is a 200 ms gap
        assert max(gaps) < 1.8 * ADVERT_S, "max gap %.0f ms" % (max(gaps) * 1000)
        print("\n%d adverts around the failed reload, max gap %.0f ms"
              % (len(mine), max(gaps) * 1000))

        assert after1["state"] == "MASTER" and after2["state"] == "BACKUP"
        assert after1["transitions"] == before1["transitions"]
        assert after2["transitions"] == before2["transitions"]
        assert after1["base_priority"] == 150
        assert topo.vip_holders() == ["n1"]
        assert topo.probe() == "n1"
        new_log = n1.log()[log_before:]
        assert not vrrp_transitions(new_log), new_log
        assert "removed or changed by the configuration" not in new_log, new_log

        # the same reload, with the address free now, applies
        holder.close()
        holder = None
        r = n1.ctl("reload")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "vrrp front: %s" % change in r.stdout, r.stdout
        if change == "changed":
            wait_until(lambda: n1.status()["base_priority"] == 160, what="new priority")
            n1.wait_state("MASTER")
            wait_until(lambda: topo.probe() == "n1", what="client served through n1")
        else:
            n2.wait_state("MASTER")
            wait_until(lambda: topo.vip_holders() == ["n2"], what="VIP moved to n2")
            wait_until(lambda: topo.probe() == "n2", what="client served through n2")
            r = n1.ctl("show", "vrrp")
            assert "no vrrp instance configured" in r.stdout, r.stdout
    finally:
        cap.close()
        if holder is not None:
            holder.close()
