# rtnetlink multicast watchers for the netns tests: a thread receives the
# messages of some groups in a namespace and records what a parser makes
# of each, with the wall time it arrived.
import socket
import struct
import threading
import time

from conftest import Netns, wait_until


def rtattrs(data):
    """The (type, payload) pairs of a run of rtattrs."""
    out = []
    while len(data) >= 4:
        ln, kind = struct.unpack("HH", data[:4])
        if ln < 4:
            break
        out.append((kind, data[4:ln]))
        data = data[(ln + 3) & ~3:]
    return out


class NetlinkWatcher:
    """Subclasses give GROUPS and parse(kind, payload) -> event or None;
    events are (wall time, event)."""

    GROUPS = 0

    def __init__(self, ns):
        with Netns(ns):
            self.s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.s.bind((0, self.GROUPS))
        self.s.settimeout(0.2)
        self.events = []
        self.lock = threading.Lock()
        self.stop = False
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def parse(self, kind, payload):
        raise NotImplementedError

    def _loop(self):
        while not self.stop:
            try:
                data = self.s.recv(1 << 16)
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.time()
            while len(data) >= 16:
                ln, kind = struct.unpack("IH", data[:6])
                if ln < 16:
                    break
                ev = self.parse(kind, data[16:ln])
                if ev is not None:
                    with self.lock:
                        self.events.append((now, ev))
                data = data[(ln + 3) & ~3:]

    def since(self, t):
        with self.lock:
            return [e for e in self.events if e[0] >= t]

    def wait_event(self, t, pred, timeout=5.0, what="a netlink event"):
        """The first event at or after t that satisfies pred."""
        def hit():
            for e in self.since(t):
                if pred(e[1]):
                    return e
            return None
        return wait_until(hit, timeout=timeout, interval=0.002, what=what)

    def close(self):
        self.stop = True
        self.t.join(2)
        self.s.close()


class RouteWatcher(NetlinkWatcher):
    """The IPv4 /32 route to dst in the main table: each change as the
    frozenset of its gateways (empty when deleted)."""

    GROUPS = 0x40  # RTMGRP_IPV4_ROUTE

    def __init__(self, ns, dst):
        self.dst = dst
        super().__init__(ns)

    def parse(self, kind, msg):
        if kind not in (24, 25):  # RTM_NEWROUTE, RTM_DELROUTE
            return None
        family, dst_len, _, _, table = struct.unpack("BBBBB", msg[:5])
        if family != socket.AF_INET or dst_len != 32:
            return None
        dst, gws = None, set()
        for k, v in rtattrs(msg[12:]):
            if k == 1:  # RTA_DST
                dst = socket.inet_ntoa(v[:4])
            elif k == 15:  # RTA_TABLE
                table = struct.unpack("I", v[:4])[0]
            elif k == 5:  # RTA_GATEWAY
                gws.add(socket.inet_ntoa(v[:4]))
            elif k == 9:  # RTA_MULTIPATH: rtnexthop (len, flags, hops, ifindex) + attrs
                while len(v) >= 8:
                    ln = struct.unpack("H", v[:2])[0]
                    gws.update(socket.inet_ntoa(vv[:4]) for kk, vv in rtattrs(v[8:ln])
                               if kk == 5)
                    v = v[(ln + 3) & ~3:]
        if dst != self.dst or table != 254:
            return None
        return frozenset() if kind == 25 else frozenset(gws)


class AddrWatcher(NetlinkWatcher):
    """Every address added or deleted: ("new"|"del", ifindex, address)."""

    GROUPS = 0x10 | 0x100  # RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR

    def parse(self, kind, msg):
        if kind not in (20, 21):  # RTM_NEWADDR, RTM_DELADDR
            return None
        family, _, _, _, ifindex = struct.unpack("BBBBI", msg[:8])
        for k, v in rtattrs(msg[8:]):
            if k in (1, 2):  # IFA_ADDRESS, IFA_LOCAL
                return ("new" if kind == 20 else "del", ifindex, socket.inet_ntop(family, v))
        return None
