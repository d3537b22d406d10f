# systemd notification through a fake $NOTIFY_SOCKET (a datagram socket the
# test binds and reads): READY=1 once the daemon serves; RELOADING=1 with
# MONOTONIC_USEC (CLOCK_MONOTONIC in microseconds, taken when the reload
# starts) and then READY=1 for a reload; STOPPING=1 on SIGTERM.
import os
import signal
import socket
import time

from conftest import DEADLINE, LogTail, echo_transfer, free_port, h_echo, make_conf, write_atomic


def recv_msg(ns, timeout=DEADLINE):
    ns.settimeout(timeout)
    return ns.recv(4096).decode()


def test_sd_notify_ready_reloading_stopping(short_dir, sluice, backends, monkeypatch):
    path = os.path.join(short_dir, "notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    be = backends(h_echo)
    port, port2 = free_port(), free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr]), ready=False)
    assert recv_msg(ns) == "READY=1"
    # ready means serving
    assert echo_transfer(port, 1000) is None
    d.wait_ready()

    # a reload: RELOADING=1 + MONOTONIC_USEC, then READY=1 once applied
    conf2 = make_conf(port, ["a %s" % be.addr, "b %s" % be.addr]).replace(
        "listen www", "listen two {\n    bind 127.0.0.1:%d;\n    pool web;\n}\nlisten www"
        % port2)
    write_atomic(d.conf_path, conf2)
    tail = LogTail(d)
    tail.mark()
    before = time.clock_gettime(time.CLOCK_MONOTONIC)
    d.signal(signal.SIGHUP)
    msg = recv_msg(ns)
    after = time.clock_gettime(time.CLOCK_MONOTONIC)
    lines = msg.split("\n")
    assert lines[0] == "RELOADING=1" and len(lines) == 2 and lines[1].startswith(
        "MONOTONIC_USEC="), msg
    usec = int(lines[1].split("=", 1)[1])
    assert before * 1e6 - 1000 <= usec <= after * 1e6 + 1000, (before, usec, after)
    assert recv_msg(ns) == "READY=1"
    tail.wait(r"notice: reload of .* done$")
    assert echo_transfer(port2, 1000) is None  # the reload was applied

    # a file that does not parse: no READY without RELOADING before it, and
    # the daemon keeps running (any RELOADING must be followed by READY)
    write_atomic(d.conf_path, conf2 + "frobnicate;\n")
    tail.mark()
    d.signal(signal.SIGHUP)
    tail.wait(r"error: reload failed, keeping the running configuration: ")
    got = []
    ns.settimeout(0.5)  # an absence: observed over a bounded wait
    try:
        while len(got) < 4:
            got.append(ns.recv(4096).decode())
    except socket.timeout:
        pass
    assert got == [] or (got[0].startswith("RELOADING=1\n") and got[-1] == "READY=1"), got
    assert echo_transfer(port2, 1000) is None

    # SIGTERM: STOPPING=1
    d.signal(signal.SIGTERM)
    assert recv_msg(ns) == "STOPPING=1"
    assert d.wait_exit() == 0
    ns.close()
