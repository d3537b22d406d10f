# Announce blocks on one node, in a private network namespace: the TUN
# device and what it holds (watched through rtnetlink), start-up and
# reload errors that change nothing, reloads that keep an unchanged block
# exactly as it is, operator withdraws across restarts and upgrades, the
# shutdown's withdraw-delay, and control socket errors.
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import SANITIZER_MARKS, SLUICE, SLUICECTL, Netns, run, wait_until
from bgp_topo import CANARY_SRC
from nlwatch import AddrWatcher

VIP = "198.51.100.10"
VIP2 = "198.51.100.11"
VIP6 = "2001:db8::10"
PORT = 8080
BACKEND = ("127.0.0.1", 9001)



class Node:
    """One namespace with a canary backend on 127.0.0.1:9001 and sluice."""

    def __init__(self, tmp):
        self.tmp = str(tmp)
        self.ns = "sn%d%d" % (os.getpid() % 10000, int(time.monotonic() * 1000) % 100000)
        run("ip", "netns", "add", self.ns)
        self.procs = []
        self.ip("link", "set", "lo", "up")
        self.sock = os.path.join(self.tmp, "n.sock")
        self.conf = os.path.join(self.tmp, "n.conf")
        self.state = os.path.join(self.tmp, "n.state")
        self.proc = None
        self.canary = self.spawn_py(CANARY_SRC, *BACKEND)
        self.watch = AddrWatcher(self.ns)
        self.nlogs = 0

    def ip(self, *args, check=True):
        return run("ip", "-n", self.ns, *args, check=check)

    def spawn_py(self, src, *args):
        p = subprocess.Popen(["ip", "netns", "exec", self.ns, "/usr/bin/python3", "-c", src] +
                             [str(a) for a in args], stdout=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, text=True)
        self.procs.append((p, None))
        assert p.stdout.readline().strip() == "ready"
        return p

    def write(self, announce, extra="", state_file=True):
        with open(self.conf, "w") as f:
            f.write("global { log stderr info; control %s; workers 1; grace 1s;%s }\n"
                    "pool web {\n check tcp { interval 100ms; timeout 100ms; rise 1; fall 1; }\n"
                    " server b1 %s:%d;\n}\n"
                    "listen front { bind %s:%d; bind [%s]:%d; pool web; }\n%s%s"
                    % (self.sock, " state-file %s;" % self.state if state_file else "",
                       BACKEND[0], BACKEND[1], VIP, PORT, VIP6, PORT, announce, extra))

    def start(self, takeover=False, expect_fail=False, wrap=()):
        self.nlogs += 1
        self.log_path = os.path.join(self.tmp, "sluice%d.log" % self.nlogs)
        f = open(self.log_path, "ab")
        args = list(wrap) + ["ip", "netns", "exec", self.ns, SLUICE, "-f", self.conf]
        if takeover:
            args += ["--takeover", self.sock]
        p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        f.close()
        self.procs.append((p, self.log_path))
        if expect_fail:
            assert p.wait(10) == 1, self.log()
            return p
        old, self.proc = self.proc, p
        if old is None or old.poll() is not None:
            wait_until(lambda: self.ctl("show", "info").returncode == 0 or p.poll() is not None,
                       what="sluice answering")
        assert p.poll() is None, self.log()
        return p

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def ctl(self, *words, json_out=False):
        args = [SLUICECTL, "-s", self.sock] + (["--json"] if json_out else []) + list(words)
        return subprocess.run(args, capture_output=True, text=True, timeout=20)

    def show(self, name="front"):
        r = self.ctl("show", "announce", json_out=True)
        assert r.returncode == 0, r.stdout + r.stderr
        for a in json.loads(r.stdout)["announce"]:
            if a["name"] == name:
                return a
        raise AssertionError("no announce block " + name)

    def addrs(self, dev):
        r = self.ip("-j", "addr", "show", "dev", dev, check=False)
        if r.returncode != 0:
            return None
        return sorted(a["local"] for i in json.loads(r.stdout) for a in i["addr_info"]
                      if a.get("scope") != "link" and a["local"] not in ("127.0.0.1", "::1"))

    def ifindex(self, dev):
        return json.loads(self.ip("-j", "link", "show", "dev", dev).stdout)[0]["ifindex"]

    def wait_state(self, state, name="front", timeout=10.0):
        wait_until(lambda: self.show(name)["state"] == state, timeout=timeout,
                   what="announce %s %s" % (name, state))

    def close(self):
        errors = []
        self.watch.close()
        for p, log in reversed(self.procs):
            if p.poll() is None and log is not None:
                p.send_signal(signal.SIGINT)  # no withdraw-delay wait twice: SIGINT twice
                try:
                    p.wait(8)
                except subprocess.TimeoutExpired:
                    pass
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
            if p.stdout is not None:
                p.stdout.close()
            if log is not None and os.path.exists(log):
                with open(log, errors="replace") as f:
                    if any(m in f.read() for m in SANITIZER_MARKS):
                        errors.append("sanitizer report in %s" % log)
        run("ip", "netns", "del", self.ns, check=False)
        return errors


def addr_events(node, t, ifindex=None):
    """(kind, address) of the address changes since t, on ifindex or all."""
    return [(kind, addr) for _, (kind, ix, addr) in node.watch.since(t)
            if ifindex is None or ix == ifindex]


def block(name="front", addrs=(VIP,), device="vip0", hold="0s", delay="500ms", pool=True):
    lines = "".join(" address %s;\n" % a for a in addrs)
    return ("announce %s {\n%s device %s;\n%s hold-down %s;\n withdraw-delay %s;\n}\n"
            % (name, lines, device, " require pool web;\n" if pool else "", hold, delay))


@pytest.fixture
def node(tmp_path):
    n = Node(tmp_path)
    yield n
    errors = n.close()
    assert not errors, errors


def test_announced_on_the_device_and_served_from_lo(node):
    """Announced: the /32 and /128 on vip0 and on lo; show, metrics."""
    node.write(block(addrs=(VIP, VIP6)))
    node.start()
    node.wait_state("announced")
    assert node.addrs("vip0") == sorted([VIP, VIP6])
    assert set(node.addrs("lo")) >= {VIP, VIP6}
    a = node.show()
    assert a["addresses"] == "%s/32 %s/128" % (VIP, VIP6)
    assert a["device"] == "vip0" and a["cause"] == "" and a["announces"] == 1
    m = node.ctl("show", "metrics").stdout
    assert 'sluice_announce_announced{announce="front"} 1' in m
    assert "sluice_node_drained 0" in m
    text = node.ctl("show", "announce").stdout
    assert text.startswith("node: serving\nannounce  device  state")
    assert "front     vip0    announced" in text


def test_existing_device_is_a_start_up_error_and_nothing_stays(node):
    """A device name that exists and is not sluice's TUN: sluice does not
    start, and the first block's device and lo address are undone."""
    node.ip("link", "add", "vip1", "type", "veth", "peer", "name", "vip1p")
    node.write(block() + block("other", addrs=(VIP2,), device="vip1"),
               extra="listen other { bind %s:%d; pool web; }\n" % (VIP2, PORT))
    node.start(expect_fail=True)
    assert ("announce other: device vip1 already exists and is not this sluice's TUN device "
            "(delete it, or name another 'device')") in node.log()
    assert node.addrs("vip0") is None
    assert VIP not in node.addrs("lo") and VIP2 not in node.addrs("lo")
    assert node.addrs("vip1") == []


def test_no_dev_net_tun_is_a_start_up_error(node):
    """No /dev/net/tun (hidden by an empty tmpfs in a private mount
    namespace): a clear start-up error."""
    node.write(block())
    node.start(expect_fail=True,
               wrap=("unshare", "-m", "--propagation", "private", "sh", "-c",
                     'mount -t tmpfs none /dev/net && exec "$@"', "sh"))
    assert ("announce front: device vip0: cannot open /dev/net/tun: No such file or directory "
            "(announcing needs the kernel's TUN driver)") in node.log()
    assert node.addrs("vip0") is None


def test_pool_down_withdraws_and_up_announces_after_hold_down(node):
    node.write(block(hold="400ms"))
    node.start()
    node.wait_state("announced")
    t0 = time.time()
    node.canary.kill()
    node.canary.wait()
    node.wait_state("withdrawn")
    assert node.show()["cause"] == "pool web has no usable server"
    assert node.addrs("vip0") == []
    assert VIP in node.addrs("lo")  # still served from lo
    t1 = time.time()
    node.canary = node.spawn_py(CANARY_SRC, *BACKEND)
    node.wait_state("announced")
    ix = node.ifindex("vip0")
    new = [e for e in addr_events(node, t1, ix) if e[0] == "new"]
    assert len(new) == 1
    assert "every condition holds: announcing after the 400ms hold-down" in node.log()
    assert [e for e in addr_events(node, t0, ix) if e[0] == "del"] == [("del", VIP)]


def test_reload_keeps_an_unchanged_block_exactly(node):
    """A reload that does not touch the block (here it changes a pool)
    leaves it as it is: no address event, same state, counters and since
    (a block made anew would wait for its 1s hold-down again)."""
    node.write(block(hold="1s"))
    node.start()
    node.wait_state("announced")
    before = node.show()
    t0 = time.time()
    with open(node.conf) as f:
        text = f.read()
    with open(node.conf, "w") as f:
        f.write(text.replace("server b1 127.0.0.1:9001;", "server b1 127.0.0.1:9001 weight 5;"))
    r = node.ctl("reload")
    assert r.returncode == 0, r.stderr
    after = node.show()
    assert addr_events(node, t0) == []
    for k in ("state", "since", "announces", "withdraws", "addresses"):
        assert after[k] == before[k], k
    assert after["since_ms"] > before["since_ms"]  # not reset


def test_reload_changes_only_what_changed(node):
    """An added address is added, a removed one deleted, the others left
    alone, without a new hold-down; a new device takes the addresses and
    the old one goes away."""
    node.write(block(hold="1s"))
    node.start()
    node.wait_state("announced")
    ix = node.ifindex("vip0")
    node.write(block(addrs=(VIP, VIP6), hold="1s"))
    r = node.ctl("reload", "check")
    assert "announce front: changed" in r.stdout, r.stdout
    t0 = time.time()
    assert node.ctl("reload").returncode == 0
    wait_until(lambda: node.addrs("vip0") == sorted([VIP, VIP6]), what="the added address")
    assert addr_events(node, t0, ix) == [("new", VIP6)]
    assert node.show()["announces"] == 1

    assert node.show()["state"] == "announced"

    t1 = time.time()
    node.write(block(addrs=(VIP6,), hold="1s"))
    assert node.ctl("reload").returncode == 0
    assert addr_events(node, t1, ix) == [("del", VIP)]
    assert VIP in node.addrs("lo")  # never removed while running

    node.write(block(addrs=(VIP6,), device="vip1", hold="1s"))
    assert node.ctl("reload").returncode == 0
    wait_until(lambda: node.addrs("vip1") == [VIP6], timeout=0.5, what="the address on vip1")
    assert node.addrs("vip0") is None  # closed with its descriptor
    assert node.show()["device"] == "vip1"


def test_rejected_reload_changes_nothing(node):
    """A reload that adds a block on a new device and a listener whose
    address is taken is rejected: the new device and the new lo address
    are undone, the running block is untouched."""
    node.write(block())
    node.start()
    node.wait_state("announced")
    with Netns(node.ns):
        busy = socket.socket()
    busy.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: VIP2 is not local yet
    busy.bind((VIP2, PORT))
    busy.listen(1)
    node.write(block() + block("other", addrs=(VIP2,), device="vip1"),
               extra="listen other { bind %s:%d; pool web; }\n" % (VIP2, PORT))
    t0 = time.time()
    r = node.ctl("reload")
    assert r.returncode == 1 and "Address already in use" in r.stderr, r.stderr
    busy.close()
    assert node.addrs("vip1") is None
    assert VIP2 not in node.addrs("lo")
    assert node.addrs("vip0") == [VIP]
    lo, vip0 = node.ifindex("lo"), node.ifindex("vip0")
    # vip1 came and went; nothing on vip0, and lo's VIP2 came and went
    assert addr_events(node, t0, vip0) == []
    assert addr_events(node, t0, lo) == [("new", VIP2), ("del", VIP2)]
    assert node.show()["announces"] == 1
    # a device that exists is a reload error too, and changes nothing
    node.ip("link", "add", "vip1", "type", "veth", "peer", "name", "vip1p")
    r = node.ctl("reload")
    assert r.returncode == 1 and "device vip1 already exists" in r.stderr, r.stderr
    assert node.addrs("vip0") == [VIP]


def test_operator_withdraw_survives_restart_and_upgrade_drain_does_not(node):
    node.write(block())
    node.start()
    node.wait_state("announced")
    r = node.ctl("announce", "withdraw", "front")
    assert r.returncode == 0, r.stderr
    assert node.addrs("vip0") == []
    assert node.show()["cause"] == "withdrawn by the operator (announce withdraw)"
    with open(node.state) as f:
        assert "announce front withdrawn\n" in f.read()
    # restart: withdrawn from the start, never announced (hold-down 0s)
    node.proc.send_signal(signal.SIGTERM)
    assert node.proc.wait(10) == 0
    node.start()
    a = node.show()
    assert a["state"] == "withdrawn" and a["announces"] == 0 and a["withdrawn_by_operator"]
    assert "state-file: announce front restored: withdrawn by the operator" in node.log()
    # binary upgrade without a state file: the withdraw travels along
    node.write(block(), state_file=False)
    old = node.proc
    node.start(takeover=True)
    assert old.wait(10) == 0
    wait_until(lambda: node.show()["withdrawn_by_operator"], what="the withdraw carried over")
    assert node.show()["announces"] == 0
    r = node.ctl("announce", "restore", "all")
    assert r.returncode == 0, r.stderr
    node.wait_state("announced")
    # a node drain ends with the process (a fresh state file: the one
    # above was left by a process the upgrade replaced)
    node.proc.send_signal(signal.SIGTERM)
    assert node.proc.wait(10) == 0
    os.unlink(node.state)
    node.write(block())
    node.start()
    node.wait_state("announced")
    assert node.ctl("node", "drain").returncode == 0
    node.wait_state("withdrawn")
    assert not os.path.exists(node.state)
    node.proc.send_signal(signal.SIGTERM)
    assert node.proc.wait(10) == 0
    node.start()
    node.wait_state("announced")


def big_pool(n, weight):
    """A pool of n servers nobody listens on (no check): a reload that
    changes their weight is applied in many steps of the control loop."""
    return "pool big {\n%s}\n" % "".join(
        " server s%d 127.%d.%d.%d:9000 weight %d;\n" % (
            i, 16 + (i >> 16) % 16, (i >> 8) & 255, i & 255, weight) for i in range(n))


def test_operator_withdraw_during_a_reload_in_steps_stays(node):
    """A reload is applied in steps, the loop serving commands between
    them; the announce blocks commit after the last step. An operator's
    withdraw that lands between the prepare and the commit survives the
    commit: the block is not announced again."""
    n = 200000
    node.write(block(), extra=big_pool(n, 1))
    node.start()
    node.wait_state("announced")
    node.write(block(), extra=big_pool(n, 2))
    # refused while a reload is being applied, else refused for its weight:
    # tells which, and changes nothing either way
    probe = b"server add big probe 127.0.0.1:9 weight 999\n"
    busy = b"a reload is being applied"
    with socket.socket(socket.AF_UNIX) as c:
        c.connect(node.sock)
        f = c.makefile("rb")

        def reply():
            lines = []
            while True:
                line = f.readline()
                assert line, "control socket closed"
                if line == b"\n":
                    return b"".join(lines)
                lines.append(line)

        node.proc.send_signal(signal.SIGHUP)
        end = time.monotonic() + 60
        while True:
            c.sendall(probe)
            r = reply()
            if busy in r:
                break
            assert b"weight" in r, r
            assert time.monotonic() < end, "the reload was never seen applying"
        # the withdraw runs between two answers that both saw the apply
        c.sendall(b"announce withdraw front\n" + probe)
        r = reply()
        assert not r.startswith(b"error"), r
        assert busy in reply(), "the apply ended before the withdraw: too small to test"
    wait_until(lambda: "notice: reload of %s done" % node.conf in node.log(), timeout=60,
               what="the reload done")
    assert "reload failed" not in node.log()
    # the commit took the withdraw over: it stays withdrawn, by the operator
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        a = node.show()
        assert a["state"] == "withdrawn" and a["withdrawn_by_operator"], a
        assert node.addrs("vip0") == []
        time.sleep(0.05)


def test_sigterm_withdraws_then_accepts_for_withdraw_delay(node):
    """SIGTERM: withdrawn at once, still accepting during withdraw-delay
    (500 ms), then refused; the device goes with the process."""
    node.write(block(delay="500ms"))
    node.start()
    node.wait_state("announced")
    t0 = time.time()
    node.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: node.addrs("vip0") == [], what="the withdraw")
    t_withdrawn = time.time()
    with Netns(node.ns):
        c = socket.create_connection((VIP, PORT), timeout=1)
    assert c.recv(100) == b"hello\n"
    c.close()
    assert time.time() - t0 < 0.5
    assert node.proc.wait(10) == 0
    with Netns(node.ns):
        s = socket.socket()
    with pytest.raises(ConnectionRefusedError):
        s.connect((VIP, PORT))
    s.close()
    log = node.log()
    assert "addresses withdrawn, accepting for" in log
    assert "withdraw delay over: stopping listeners" in log
    assert node.addrs("vip0") is None
    assert t_withdrawn - t0 < 0.2


def test_second_signal_skips_the_withdraw_delay(node):
    node.write(block(delay="1h"))
    node.start()
    node.wait_state("announced")
    node.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: "accepting for" in node.log(), what="the withdraw delay")
    node.proc.send_signal(signal.SIGTERM)
    assert node.proc.wait(5) == 0


def test_control_errors_change_nothing(node):
    node.write(block())
    node.start()
    node.wait_state("announced")
    cases = [
        (("announce", "withdraw", "nope"), "error: no announce block 'nope'"),
        (("announce", "restore"), "error: wrong number of arguments"),
        (("node", "drain", "within", "0s"), "error: bad duration '0s'"),
        (("node", "drain", "within", "soon"), "error: bad duration 'soon'"),
        (("node", "drain", "in", "10s"), "error: usage: node drain [within DURATION]"),
        (("node", "ready", "now"), "error: wrong number of arguments"),
        (("wait", "idle", "2h"), "error: bad timeout '2h'"),
    ]
    for words, msg in cases:
        r = node.ctl(*words)
        assert r.returncode == 1 and r.stderr.startswith(msg), (words, r.stderr)
    assert node.show()["state"] == "announced"
    assert node.addrs("vip0") == [VIP]
    assert node.ctl("wait", "idle", "1s").stdout == "node is idle: no connection left\n"


def test_node_drain_and_ready(node):
    node.write(block(hold="300ms"))
    node.start()
    node.wait_state("announced")
    r = node.ctl("node", "drain", "within", "30s")
    assert r.returncode == 0 and "node drained" in r.stdout, r.stdout
    assert node.addrs("vip0") == []
    out = node.ctl("show", "announce").stdout
    assert out.startswith("node: drained (node drain); open connections are closed in ")
    with Netns(node.ns):
        c = socket.create_connection((VIP, PORT), timeout=1)  # still serving
    assert c.recv(100) == b"hello\n"
    c.close()
    assert node.ctl("node", "ready").returncode == 0
    node.wait_state("announced")
    assert node.ctl("show", "announce").stdout.startswith("node: serving")


def test_a_deleted_device_is_made_again(node):
    """Someone deletes vip0 (its addresses go with it): within the next
    second sluice makes it again and puts the announced address back; one
    set down is set up again."""
    node.write(block())
    node.start()
    node.wait_state("announced")
    node.ip("link", "del", "vip0")
    wait_until(lambda: node.addrs("vip0") == [VIP], timeout=3, what="vip0 made again")
    assert "announce: device vip0 was deleted or replaced: creating it again" in node.log()
    assert node.show()["state"] == "announced"
    node.ip("link", "set", "vip0", "down")
    wait_until(lambda: "UP" in node.ip("link", "show", "dev", "vip0").stdout.split(">")[0],
               timeout=3, what="vip0 up again")
