# Log targets of a running daemon: the test's own syslog datagram socket
# (there is no /dev/log here) and a UDP receiver on loopback each get
# well-formed lines (RFC 3164 as syslog(3) sends, RFC 5424) for connection
# logs and server state changes, at their own levels; with the receiver
# gone, every connection is still served and the dropped lines are counted
# (show info, metrics) and reported; a reload switches targets.
import os
import re
import select
import signal
import socket

from conftest import (DEADLINE, Ctl, ctl_global, free_port, get_name, h_name, make_conf,
                      wait_until, write_atomic)

PID_RE = r"(?P<pid>\d+)"
TS3164 = r"[A-Z][a-z]{2} [ 1-3]\d [0-2]\d:[0-5]\d:[0-6]\d"
TS5424 = r"\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-6]\d\.\d{3}Z"
CONN = (r"conn www 127\.0\.0\.1:\d+ -> web/a up=\d+ down=\d+ dur=\d+ms "
        r"end=(client-closed|server-closed)")


class Receiver:
    """A datagram socket of the test: AF_UNIX at path, or UDP on loopback."""

    def __init__(self, path=None):
        if path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.bind(path)
            os.chmod(path, 0o666)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
        self.lines = []

    def pump(self, timeout=0.0):
        r, _, _ = select.select([self.sock], [], [], timeout)
        while r:
            self.lines.append(self.sock.recv(65536).decode("utf-8", "replace"))
            r, _, _ = select.select([self.sock], [], [], 0)

    def wait(self, pattern, count=1, timeout=DEADLINE):
        rx = re.compile(pattern)

        def got():
            self.pump(0.05)
            m = [l for l in self.lines if rx.search(l)]
            return m if len(m) >= count else None

        return wait_until(got, timeout, interval=0,
                          what="%d datagram(s) matching %r; got %r"
                          % (count, pattern, self.lines[-5:]))

    def close(self):
        self.sock.close()


def test_syslog_and_udp_get_connection_and_state_lines(sluice, backends, short_dir):
    be = backends(h_name, name="a")
    port = free_port()
    sy = Receiver(os.path.join(short_dir, "log.sock"))
    udp = Receiver()
    glob = ("log stderr notice; "
            "log syslog socket %s facility local3 tag sltest info; "
            "log udp 127.0.0.1:%d facility local4 tag edge-1 info;" % (sy.sock.getsockname(),
                                                                        udp.port))
    d = sluice(make_conf(port, ["a %s" % be.addr],
                         pool_extra="check tcp { interval 100ms; timeout 200ms; rise 1; "
                                    "fall 1; }").replace("log stderr info;", glob))
    host = socket.gethostname()
    for _ in range(3):
        assert get_name(port) == "a"
    # local3.info = 19*8+6; local4.info = 20*8+6 (RFC 5424 section 6.2.1)
    got = sy.wait(r"^<158>%s sltest\[%d\]: %s$" % (TS3164, d.pid, CONN), count=3)
    assert len(got) == 3
    got = udp.wait(r"^<166>1 %s %s edge-1 %d - - %s$" % (TS5424, re.escape(host), d.pid, CONN),
                   count=3)
    assert len(got) == 3
    # stderr is at notice: the ready line, no connection line
    assert d.conns() == []
    assert "notice: sluice" in d.log()
    # a state change: the backend goes away, its check fails (warning)
    be.close()
    sy.wait(r"^<156>%s sltest\[%d\]: server web/a DOWN: " % (TS3164, d.pid))
    udp.wait(r"^<164>1 %s %s edge-1 %d - - server web/a DOWN: " % (TS5424, re.escape(host),
                                                                    d.pid))
    d.wait_log(r"warning: server web/a DOWN: ")
    # every datagram was well-formed, whatever it said
    for l in sy.lines:
        assert re.match(r"^<1(5[6-9])>%s sltest\[%d\]: \S" % (TS3164, d.pid), l), l
    for l in udp.lines:
        assert re.match(r"^<16[4-7]>1 %s %s edge-1 %d - - \S" % (TS5424, re.escape(host),
                                                                  d.pid), l), l
    sy.close()
    udp.close()


def metric(text, name, target):
    m = re.search(r'^%s\{target="%s"\} (\d+)$' % (name, re.escape(target)), text, re.M)
    assert m, (name, target, text[-2000:])
    return int(m.group(1))


def test_receiver_gone_drops_are_counted(sluice, backends, short_dir):
    be = backends(h_name, name="a")
    port = free_port()
    gone = Receiver()
    dead = gone.port
    gone.close()  # nothing listens there now: the kernel refuses (ICMP)
    sock = os.path.join(short_dir, "ctl.sock")
    d = sluice(make_conf(port, ["a %s" % be.addr], global_extra=ctl_global(sock))
               .replace("log stderr info;", "log stderr notice; log udp 127.0.0.1:%d info;"
                        % dead))
    n = 200
    for _ in range(n):
        assert get_name(port) == "a"  # every client is served
    target = "udp 127.0.0.1:%d" % dead

    def counted():
        with Ctl(sock) as c:
            m = c.cmd("show metrics")
        sent = metric(m, "sluice_log_lines_total", target)
        dropped = metric(m, "sluice_log_dropped_total", target)
        # n conn lines (info), plus the start-up notices and the report
        return (sent, dropped) if sent + dropped >= n else None

    sent, dropped = wait_until(counted, what="the %d connection lines to be counted" % n)
    assert dropped > 0 and sent + dropped < n + 20, (sent, dropped)
    with Ctl(sock) as c:
        info = c.cmd("show info")
        js = c.json("show info")
    m = re.search(r"^log: +%s: (\d+) sent, (\d+) dropped$" % re.escape(target), info, re.M)
    assert m and int(m.group(1)) >= sent and int(m.group(2)) >= dropped, info
    assert re.search(r"^log: +stderr: \d+ sent, 0 dropped$", info, re.M), info
    row = [r for r in js["logs"] if r["target"] == target][0]
    assert row["dropped"] >= dropped
    d.wait_log(r"warning: log %s: cannot send: Connection refused; \d+ lines dropped"
               % re.escape(target))


def test_reload_switches_targets(sluice, backends, short_dir):
    be = backends(h_name, name="a")
    port = free_port()
    sock = os.path.join(short_dir, "ctl.sock")
    sy = Receiver(os.path.join(short_dir, "log.sock"))
    conf = make_conf(port, ["a %s" % be.addr], global_extra=ctl_global(sock))
    d = sluice(conf)
    assert get_name(port) == "a"
    d.wait_conns(1)
    with_syslog = conf.replace("log stderr info;", "log stderr notice; log syslog socket %s "
                               "debug;" % sy.sock.getsockname())
    write_atomic(d.conf_path, with_syslog)
    with Ctl(sock) as c:
        diff = c.ok("reload check")
        assert "global: log stderr notice, syslog %s debug" % sy.sock.getsockname() in diff
        c.ok("reload")
    assert get_name(port) == "a"
    sy.wait(r"sluice\[%d\]: %s$" % (d.pid, CONN))
    # stderr went to notice with the reload: one conn line there, from before
    assert len(d.conns()) == 1
    # a failed reload keeps the running targets
    write_atomic(d.conf_path, with_syslog.replace("debug;", "debug; log bogus info;"))
    d.signal(signal.SIGHUP)
    sy.wait(r"reload failed, keeping the running configuration: .*unknown log target 'bogus'")
    assert get_name(port) == "a"
    sy.wait(r"sluice\[%d\]: %s$" % (d.pid, CONN), count=2)
    sy.close()
