# A small authoritative DNS server for the tests: real UDP and TCP sockets
# on one address and port (loopback, or inside a test's network namespace),
# records the test changes while it runs, each with its own TTL. Replies
# follow RFC 1035: CNAME chains are followed inside the zone (a loop ends
# the chain), NXDOMAIN for a name it does not have, an empty answer for a
# type it does not have, SRV answers carry their targets' addresses in the
# additional section. A UDP reply larger than 512 bytes is truncated (TC,
# no records) so that the client retries over TCP. Per-name modes make it
# answer SERVFAIL or REFUSED, or truncate even over TCP; silent() makes it
# read queries and never answer. Every query is recorded (time, transport,
# name, type). Standard library only.
import socket
import struct
import threading
import time

A, NS, CNAME, SOA, AAAA, SRV = 1, 2, 5, 6, 28, 33
TYPE_NAMES = {A: "A", CNAME: "CNAME", AAAA: "AAAA", SRV: "SRV"}


def encode_name(name):
    out = b""
    for label in [x for x in name.rstrip(".").split(".") if x]:
        raw = label.encode()
        assert len(raw) < 64
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def decode_name(msg, off):
    labels = []
    jumps = 0
    end = None
    while True:
        ln = msg[off]
        if ln & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((ln & 0x3F) << 8) | msg[off + 1]
            jumps += 1
            if jumps > 20:
                raise ValueError("pointer loop")
            continue
        off += 1
        if ln == 0:
            break
        labels.append(msg[off:off + ln].decode("ascii", "replace"))
        off += ln
    return ".".join(labels).lower(), (end if end is not None else off)


class DnsServer:
    def __init__(self, host="127.0.0.1", port=0, glue=True):
        self.host = host
        self.glue = glue
        self.lock = threading.Lock()
        self.records = {}     # name -> list of (type, ttl, data)
        self.modes = {}       # name -> "servfail" | "refused" | "truncate-always"
        self._silent = False
        self.queries = []     # (monotonic time, "udp"|"tcp", name, type)
        self.closed = False
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _ in range(50):
            self.udp = socket.socket(fam, socket.SOCK_DGRAM)
            self.udp.bind((host, port))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(fam, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind((host, self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
                if port != 0:
                    raise
        self.tcp.listen(64)
        # a burst of queries (hundreds of names looked up together) must
        # not overflow the socket: loss would look like the daemon's fault
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.udp.settimeout(0.2)
        self.tcp.settimeout(0.2)
        self.addr = ("[%s]:%d" if ":" in host else "%s:%d") % (host, self.port)
        self.threads = [threading.Thread(target=self._udp_loop, daemon=True),
                        threading.Thread(target=self._tcp_loop, daemon=True)]
        for t in self.threads:
            t.start()

    # ---- the zone, changed by the test at any time

    def _set(self, name, rtype, ttl, datas):
        name = name.lower().rstrip(".")
        with self.lock:
            keep = [r for r in self.records.get(name, []) if r[0] != rtype]
            self.records[name] = keep + [(rtype, ttl, d) for d in datas]

    def set_a(self, name, addrs, ttl=60):
        self._set(name, A, ttl, list(addrs))

    def set_aaaa(self, name, addrs, ttl=60):
        self._set(name, AAAA, ttl, list(addrs))

    def set_srv(self, name, targets, ttl=60):
        """targets: [(priority, weight, port, target)]"""
        self._set(name, SRV, ttl, list(targets))

    def set_cname(self, name, target, ttl=60):
        name = name.lower().rstrip(".")
        with self.lock:
            self.records[name] = [(CNAME, ttl, target.lower().rstrip("."))]

    def remove(self, name):
        with self.lock:
            self.records.pop(name.lower().rstrip("."), None)

    def set_mode(self, name, mode):
        with self.lock:
            if mode is None:
                self.modes.pop(name.lower(), None)
            else:
                self.modes[name.lower()] = mode

    def silent(self, on=True):
        with self.lock:
            self._silent = on

    def count(self, name=None, qtype=None, transport=None, since=0.0):
        with self.lock:
            return sum(1 for t, tr, n, ty in self.queries
                       if t >= since and (name is None or n == name.lower())
                       and (qtype is None or ty == qtype)
                       and (transport is None or tr == transport))

    # ---- answering

    def _rr(self, owner_ptr, owner, rtype, ttl, data):
        own = struct.pack("!H", 0xC000 | owner_ptr) if owner_ptr is not None else encode_name(owner)
        if rtype == A:
            rd = socket.inet_pton(socket.AF_INET, data)
        elif rtype == AAAA:
            rd = socket.inet_pton(socket.AF_INET6, data)
        elif rtype == CNAME:
            rd = encode_name(data)
        elif rtype == SRV:
            prio, weight, port, target = data
            rd = struct.pack("!HHH", prio, weight, port) + encode_name(target)
        else:
            raise ValueError(rtype)
        return own + struct.pack("!HHIH", rtype, 1, ttl, len(rd)) + rd

    def answer(self, query, transport):
        """The reply bytes to a query, or None (no reply)."""
        if len(query) < 12:
            return None
        qid, flags, qd = struct.unpack("!HHH", query[:6])
        if qd != 1:
            return None
        qname, off = decode_name(query, 12)
        qtype, qclass = struct.unpack("!HH", query[off:off + 4])
        question = query[12:off + 4]
        with self.lock:
            self.queries.append((time.monotonic(), transport, qname, qtype))
            if self._silent:
                return None
            mode = self.modes.get(qname)
            # the names the reply may need: the chain, and SRV targets
            records = {}
            cur = qname
            while cur in self.records and cur not in records:
                records[cur] = list(self.records[cur])
                cn = [r for r in records[cur] if r[0] == CNAME]
                cur = cn[0][2] if cn else None
            for t, _ttl, d in records.get(qname, []):
                if t == SRV:
                    tn = d[3].lower().rstrip(".")
                    records.setdefault(tn, list(self.records.get(tn, [])))
        rcode = 0
        answers = []
        additional = []
        if mode == "servfail":
            rcode = 2
        elif mode == "refused":
            rcode = 5
        elif qname not in records:
            rcode = 3
        else:
            cur, seen = qname, set()
            while cur in records and cur not in seen:
                seen.add(cur)
                rrs = records[cur]
                ptr = 12 if cur == qname else None
                hits = [r for r in rrs if r[0] == qtype]
                if hits:
                    answers += [self._rr(ptr, cur, t, ttl, d) for t, ttl, d in hits]
                    break
                cn = [r for r in rrs if r[0] == CNAME]
                if not cn:
                    break
                answers.append(self._rr(ptr, cur, CNAME, cn[0][1], cn[0][2]))
                cur = cn[0][2]
            if qtype == SRV and self.glue:
                for t, ttl, d in records.get(qname, []):
                    if t != SRV:
                        continue
                    for gt, gttl, gd in records.get(d[3].lower().rstrip("."), []):
                        if gt in (A, AAAA):
                            additional.append(self._rr(None, d[3], gt, gttl, gd))
        flags_out = 0x8400 | (flags & 0x0100) | rcode  # QR, AA, RD copied
        body = b"".join(answers) + b"".join(additional)
        msg = struct.pack("!HHHHHH", qid, flags_out, 1, len(answers), 0,
                          len(additional)) + question + body
        if (transport == "udp" and len(msg) > 512) or mode == "truncate-always":
            # truncated: the header says so and carries no records
            msg = struct.pack("!HHHHHH", qid, flags_out | 0x0200, 1, 0, 0, 0) + question
        return msg

    def _udp_loop(self):
        while not self.closed:
            try:
                data, peer = self.udp.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                reply = self.answer(data, "udp")
            except (ValueError, IndexError, struct.error):
                continue
            if reply is not None:
                try:
                    self.udp.sendto(reply, peer)
                except OSError:
                    pass

    def _tcp_loop(self):
        while not self.closed:
            try:
                c, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._tcp_conn, args=(c,), daemon=True).start()

    def _tcp_conn(self, c):
        c.settimeout(10)
        try:
            while not self.closed:
                hdr = b""
                while len(hdr) < 2:
                    b = c.recv(2 - len(hdr))
                    if not b:
                        return
                    hdr += b
                n = struct.unpack("!H", hdr)[0]
                q = b""
                while len(q) < n:
                    b = c.recv(n - len(q))
                    if not b:
                        return
                    q += b
                try:
                    reply = self.answer(q, "tcp")
                except (ValueError, IndexError, struct.error):
                    return
                if reply is None:
                    continue  # silent: the client times out
                c.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.closed = True
        for s in (self.udp, self.tcp):
            try:
                s.close()
            except OSError:
                pass
        for t in self.threads:
            t.join(2)


def main(argv):
    """python3 dnsserver.py HOST PORT ZONE.json: serve a fixed zone until
    killed (benchmarks: tools/bench-lateness). The zone maps a name to
    {"A": [...], "AAAA": [...], "ttl": N}. Prints "ready" once it listens."""
    import json
    import signal
    with open(argv[3]) as f:
        zone = json.load(f)
    d = DnsServer(argv[1], int(argv[2]))
    d.queries = _Counter()
    for name, rr in zone.items():
        if rr.get("A"):
            d.set_a(name, rr["A"], rr.get("ttl", 60))
        if rr.get("AAAA"):
            d.set_aaaa(name, rr["AAAA"], rr.get("ttl", 60))
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    d.close()


class _Counter:
    """A query log that only counts (a benchmark's millions of queries)."""

    def __init__(self):
        self.n = 0

    def append(self, _q):
        self.n += 1


if __name__ == "__main__":
    import sys
    main(sys.argv)
