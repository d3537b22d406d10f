# A retransmitted segment that overlaps bytes the relay already received.
# TCP queues such a segment whole (its sequence number below rcv_nxt);
# recv() skips the old head, but the kernel's sockmap verdict path hands
# the whole skb to the program, so without care the head goes to the peer
# twice. This is the kernel relay's "repeated segment" (README, Kernel
# relay), made on demand: the client is a hand-written TCP over a TUN
# device in a namespace, so the test decides what the sluice socket gets.
# Every byte must reach the backend once, in order, in both relay modes.
import fcntl
import json
import os
import select
import socket
import struct
import subprocess
import time

import pytest

from conftest import SLUICECTL, Netns, csum, fault_build, run, sluice_in, stop_all, wait_until

PORT, BACKEND_PORT = 8080, 9000
SLUICE_IP, CLIENT_IP = "192.0.2.1", "192.0.2.2"
CLIENT_PORT = 40000
DATA = bytes((i * 7 + 3) & 0xFF for i in range(3000))

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10

# Backend: for each connection a JSON line with the count after every
# read, then one with everything received up to EOF, as hex.
SINK_SRC = r"""
import json, socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
print("ready", flush=True)
def serve(c):
    got, err = b"", None
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            got += b
            print(json.dumps({"n": len(got)}), flush=True)
    except OSError as e:
        err = repr(e)
    c.close()
    print(json.dumps({"got": got.hex(), "error": err}), flush=True)
while True:
    c, a = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


class RawClient:
    """A TCP client written by hand over a TUN device: every segment it
    sends is built here, every segment sluice sends is read here."""

    def __init__(self, fd):
        self.fd = fd
        self.isn = 1000
        self.peer_isn = None
        self.rcv_nxt = 0  # what the client acknowledges (sluice sends no data)
        self.acked = None  # highest ack number sluice sent

    def send(self, seq, flags, data=b"", opts=b""):
        ack = self.rcv_nxt & 0xFFFFFFFF
        if self.peer_isn is not None:
            flags |= ACK
        off = (20 + len(opts)) // 4
        tcp = struct.pack("!HHIIBBHHH", CLIENT_PORT, PORT, seq & 0xFFFFFFFF, ack, off << 4,
                          flags, 65535, 0, 0) + opts + data
        ph = (socket.inet_aton(CLIENT_IP) + socket.inet_aton(SLUICE_IP) +
              struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp)))
        tcp = tcp[:16] + struct.pack("!H", csum(ph + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64,
                         socket.IPPROTO_TCP, 0, socket.inet_aton(CLIENT_IP),
                         socket.inet_aton(SLUICE_IP))
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        os.write(self.fd, ip + tcp)

    def read(self, timeout):
        """The next TCP segment from sluice to the client, or None."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            pkt = os.read(self.fd, 65536)
            if len(pkt) < 40 or pkt[0] >> 4 != 4 or pkt[9] != socket.IPPROTO_TCP:
                continue
            ihl = (pkt[0] & 0x0F) * 4
            sport, dport, seq, ack, off, flags = struct.unpack("!HHIIBB", pkt[ihl:ihl + 14])
            if sport != PORT or dport != CLIENT_PORT:
                continue
            if flags & ACK:
                self.acked = ack
            return {"seq": seq, "ack": ack, "flags": flags,
                    "data": pkt[ihl + (off >> 4) * 4:]}

    def wait_ack(self, upto, timeout=10.0):
        end = time.monotonic() + timeout
        while self.acked is None or ((self.acked - upto) & 0xFFFFFFFF) >= 1 << 31:
            seg = self.read(end - time.monotonic())
            assert seg is not None, "sluice did not acknowledge up to %d" % upto
            assert not seg["flags"] & RST, "sluice reset the connection"

    def connect(self):
        self.send(self.isn, SYN, opts=struct.pack("!BBH", 2, 4, 1400))
        end = time.monotonic() + 10
        while True:
            seg = self.read(end - time.monotonic())
            assert seg is not None, "no SYN-ACK from sluice"
            if seg["flags"] & (SYN | ACK) == SYN | ACK:
                break
        self.peer_isn = seg["seq"]
        self.rcv_nxt = self.peer_isn + 1
        self.send(self.isn + 1, 0)

    def wait_fin(self, upto, timeout=10.0):
        """Wait for sluice's FIN and acknowledge it; upto: the client's
        next sequence number (its own FIN included)."""
        end = time.monotonic() + timeout
        while True:
            seg = self.read(end - time.monotonic())
            assert seg is not None, "no FIN from sluice"
            assert not seg["flags"] & RST, "sluice reset the connection"
            if seg["flags"] & FIN:
                break
        self.rcv_nxt = seg["seq"] + len(seg["data"]) + 1
        self.send(upto, 0)

    def data(self, start, end):
        """Send DATA[start:end] at its place in the stream."""
        self.send(self.isn + 1 + start, PSH, DATA[start:end])


@pytest.fixture
def tun_ns(tmp_path):
    name = "sko%d" % (os.getpid() % 100000)
    run("ip", "netns", "add", name)
    procs, fds = [], []
    try:
        run("ip", "-n", name, "link", "set", "lo", "up")
        with Netns(name):
            fd = os.open("/dev/net/tun", os.O_RDWR)
            fds.append(fd)
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", b"tun0", IFF_TUN | IFF_NO_PI))
        run("ip", "-n", name, "addr", "add", SLUICE_IP + "/24", "dev", "tun0")
        run("ip", "-n", name, "link", "set", "tun0", "up")
        yield name, fd, procs
    finally:
        stop_all(procs)
        for fd in fds:
            os.close(fd)
        run("ip", "netns", "del", name, check=False)


def ctl_json(sock, cmd):
    r = subprocess.run([SLUICECTL, "-s", str(sock), "--json"] + cmd.split(),
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def start(tun_ns, tmp_path, mode, binary=None, env=()):
    """A sink backend and sluice in the namespace; the hand-written client
    connected (and, in kernel mode, its connection in the kernel relay)."""
    name, fd, procs = tun_ns
    # unbuffered: readline() takes no more than its line, so select() on
    # the pipe tells whether another one is there
    be = subprocess.Popen(["ip", "netns", "exec", name, "/usr/bin/python3", "-c", SINK_SRC,
                           str(BACKEND_PORT)],
                          stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, bufsize=0)
    procs.append(be)
    assert be.stdout.readline().strip() == b"ready"
    conf, sock, log = tmp_path / "s.conf", tmp_path / "s.sock", tmp_path / "s.log"
    conf.write_text("global { log stderr info; control %s; relay %s; }\n"
                    "pool web { server a 127.0.0.1:%d; }\n"
                    "listen www { bind %s:%d; pool web; }\n"
                    % (sock, mode, BACKEND_PORT, SLUICE_IP, PORT))
    kw = {"binary": binary} if binary else {}
    d = sluice_in(name, conf, log, procs, env=env, **kw)
    c = RawClient(fd)
    c.connect()
    if mode == "kernel":
        # the pair goes into the sockhash once the backend's connect is done
        wait_until(lambda: ctl_json(sock, "show info")["kernel_relay_conns"] == 1,
                   what="the connection in the kernel relay")
    return be, d, c, sock, log


def backend_line(be, end):
    assert select.select([be.stdout], [], [], max(0, end - time.monotonic()))[0], \
        "the backend said nothing"
    return json.loads(be.stdout.readline())


def backend_got(be, n):
    """Wait until the backend has received n bytes."""
    end = time.monotonic() + 10
    while backend_line(be, end).get("n", 0) < n:
        pass


def backend_record(be):
    """What the backend received up to its end of stream, and its error."""
    end = time.monotonic() + 10
    while True:
        rec = backend_line(be, end)
        if "got" in rec:
            return bytes.fromhex(rec["got"]), rec["error"]


def finish(be, d, sock, log):
    """The backend's record once its stream ended, show info once the
    connection closed (the cuts count then), and sluice's log after it
    stopped cleanly."""
    got, err = backend_record(be)
    info = wait_until(lambda: (lambda i: i if i["connections"] == 0 else None)(
        ctl_json(sock, "show info")), what="the connection closed")
    d.terminate()
    assert d.wait(15) == 0
    return got, err, info, log.read_text()


@pytest.mark.parametrize("mode", ["user", "kernel"])
def test_overlapping_retransmission_is_relayed_once(tun_ns, tmp_path, mode):
    be, d, c, sock, log = start(tun_ns, tmp_path, mode)
    c.data(0, 1000)
    c.wait_ack(c.isn + 1 + 1000)
    # a retransmission of bytes 500..1000 with 1000 new bytes behind them
    c.data(500, 2000)
    c.wait_ack(c.isn + 1 + 2000)
    # and one more whole segment, after the repeat
    c.data(2000, 3000)
    c.wait_ack(c.isn + 1 + 3000)
    c.send(c.isn + 1 + 3000, FIN)
    got, err, info, text = finish(be, d, sock, log)
    assert err is None, "backend: %s\n%s" % (err, text[-2000:])
    assert len(got) == len(DATA), "backend got %d bytes of %d\n%s" % (len(got), len(DATA),
                                                                    text[-2000:])
    assert got == DATA, "the backend's bytes differ from the client's"
    assert info["kernel_relay_broken"] == 0, text[-2000:]
    if mode == "kernel":
        assert info["kernel_relay_conns"] == 1
        # the repeat was seen and cut, not passed on
        assert info["kernel_relay_repeats_cut"] == 1, info
        assert "1 repeated segments cut, 0 streams reset" in text, text[-2000:]
    else:
        assert info["kernel_relay_conns"] == 0


def test_a_repeat_that_cannot_be_cut_resets_both_sides(tun_ns, tmp_path):
    """When the program cannot cut the repeated head (no memory; injected:
    fault build, SLUICE_FAULT=krelay_cut) it drops the segment, new bytes
    with it: the stream is broken, and both sides hear it at once, not at
    the end of the stream."""
    be, d, c, sock, log = start(tun_ns, tmp_path, "kernel", binary=fault_build(),
                                env=["SLUICE_FAULT=krelay_cut"])
    c.data(0, 1000)
    c.wait_ack(c.isn + 1 + 1000)
    # the kernel sends redirected bytes from a worker thread: let them
    # arrive before the reset
    backend_got(be, 1000)
    c.data(500, 2000)
    end = time.monotonic() + 10
    while True:
        seg = c.read(end - time.monotonic())
        assert seg is not None, "sluice did not reset the client\n" + log.read_text()[-2000:]
        if seg["flags"] & RST:
            break
    got, err = backend_record(be)
    info = ctl_json(sock, "show info")
    d.terminate()
    assert d.wait(15) == 0
    text = log.read_text()
    assert err is not None and "ConnectionResetError" in err, (err, text[-2000:])
    assert got == DATA[:1000], "the backend got %d bytes" % len(got)
    assert info["kernel_relay_broken"] == 1, info
    assert info["kernel_relay_repeats_cut"] == 0, info
    assert ("error: kernel relay: www client to server: the program dropped a segment (a "
            "repeated head it could not cut off, or sequence numbers out of step): bytes lost; "
            "both sides reset") in text, text[-2000:]
    assert "end=error" in text


def test_a_repeat_that_carries_only_a_fin_ends_cleanly(tun_ns, tmp_path):
    """A retransmission of bytes already relayed that now carries the FIN
    (TCP merges the last data and the FIN when it retransmits): cut, it is
    an empty skb. Passed on, an empty skb makes the peer see EPIPE; the
    socket has the FIN, so the program drops what is left and the stream
    ends cleanly."""
    be, d, c, sock, log = start(tun_ns, tmp_path, "kernel")
    c.data(0, 1000)
    c.wait_ack(c.isn + 1 + 1000)
    c.send(c.isn + 1 + 500, PSH | FIN, DATA[500:1000])
    c.wait_ack(c.isn + 1 + 1001)
    c.wait_fin(c.isn + 1 + 1001)
    got, err, info, text = finish(be, d, sock, log)
    assert err is None, "backend: %s\n%s" % (err, text[-2000:])
    assert got == DATA[:1000], "the backend got %d bytes" % len(got)
    assert info["kernel_relay_repeats_cut"] == 1, info
    assert info["kernel_relay_broken"] == 0, text[-2000:]
    assert "end=client-closed" in text, text[-2000:]
