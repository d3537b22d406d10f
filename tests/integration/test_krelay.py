# The kernel relay (relay kernel|auto, sockmap) beyond what the shared relay
# suite checks in both modes: what the counters say, connections that end
# or reset while the kernel moves their bytes, idle timeouts that see kernel
# traffic, the in-flight cap that slows a fast sender, a kernel without BPF
# rights, the privilege drop and a reload that turns the kernel relay on.
# Like the rest of RELAY_SUITE these run in both relay modes unless a test
# fixes its own relay line.
import os
import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import (DEADLINE, SLUICE, MiB, connect, echo_transfer, free_port, h_echo,
                      h_reply_after_eof, krelay_counts, linger0, make_conf, proc_status,
                      read_to_end, recv_all, wait_ctl, write_atomic)


def round_trips(port, rounds=3, size=64 * 1024):
    """Keep-alive style through an echo path: send size bytes and read them
    back, rounds times, then close. After the first round the connection
    is quiet and established, so the kernel relay takes it."""
    with connect(port) as s:
        for _ in range(rounds):
            data = os.urandom(size)
            s.sendall(data)
            got = b""
            while len(got) < size:
                b = s.recv(size - len(got))
                assert b, "closed early"
                got += b
            assert got == data
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s) == b""


def test_counters_in_show_info_and_metrics(sluice, backends, short_dir, relay_mode):
    be = backends(h_echo)
    port = free_port()
    sock = os.path.join(short_dir, "ctl.sock")
    d = sluice(make_conf(port, ["a %s" % be.addr], global_extra="control %s;" % sock))
    for _ in range(5):
        round_trips(port, 4, 64 * 1024)
    d.wait_conns(5)
    ctl = wait_ctl(sock)
    info = ctl.ok("show info")
    metrics = ctl.ok("show metrics")
    ctl.close()
    if relay_mode == "user":
        assert re.search(r"^kernel relay: +not loaded$", info, re.M), info
        assert "sluice_kernel_relay_connections_total 0\n" in metrics
        return
    m = re.search(r"^kernel relay: +(\d+) connections, (\d+) stayed in user space, \d+ repeated "
                  r"segments cut, 0 streams reset \(bytes lost\)$", info, re.M)
    assert m and int(m.group(1)) == 5, info
    assert "sluice_kernel_relay_connections_total 5\n" in metrics
    # the kernel's bytes are in the log line
    assert all(int(c["up"]) == 256 * 1024 and int(c["down"]) == 256 * 1024 for c in d.conns())
    assert d.stop() == 0
    assert krelay_counts(d) == (5, 0)


def test_early_closers_get_every_byte(sluice, backends, relay_mode):
    """Clients that send their request and FIN at once: the FIN is often in
    before the insert (which then fails: not ESTABLISHED) and the connection
    must finish in user space with nothing lost."""
    be = backends(h_reply_after_eof)
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr]))
    for i in range(30):
        data = os.urandom(100 + 997 * i)
        with connect(port) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            reply = recv_all(s)
        head, _, body = reply.partition(b"\n")
        assert body == data[::-1], "connection %d lost bytes" % i
    d.wait_conns(30)
    assert all(c["end"] == "client-closed" for c in d.conns())
    assert d.stop() == 0
    if relay_mode == "kernel":
        relayed, fallback = krelay_counts(d)
        assert relayed + fallback <= 30


def h_stream_then_reset(b, c, rec):
    """Stream bytes until told to stop, then reset."""
    chunk = os.urandom(256 * 1024)
    rec["sent"] = 0
    while not b.stop_stream.is_set() and rec["sent"] < 512 * MiB:
        try:
            rec["sent"] += c.send(chunk)
        except socket.timeout:
            continue
    linger0(c)
    rec["end"] = "sent-reset"


def test_server_reset_mid_stream_reaches_client(sluice, backends):
    be = backends(h_stream_then_reset)
    be.stop_stream = threading.Event()
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr]))
    got = 0
    with connect(port) as s:
        while got < 4 * MiB:
            b = s.recv(1 << 18)
            assert b, "clean EOF before the reset"
            got += len(b)
        be.stop_stream.set()
        with pytest.raises(ConnectionResetError):
            for _ in range(100000):  # bounded: each recv waits at most DEADLINE
                if not s.recv(1 << 18):
                    pytest.fail("client got a clean EOF instead of a reset")
    be.wait_done(1)
    (c,) = d.wait_conns(1)
    assert c["end"] == "server-reset"


def test_client_reset_mid_upload_reaches_server(sluice, backends):
    def h_read(b, c, rec):
        read_to_end(c, rec)

    be = backends(h_read)
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr]))
    s = connect(port)
    chunk = os.urandom(256 * 1024)
    for _ in range(16):
        s.sendall(chunk)
    be.wait(lambda b: b.records and b.records[0].get("nread", 0) == 0, what="a connection")
    linger0(s)
    s.close()
    (rec,) = be.wait_done(1)
    assert rec["end"] == "reset", rec
    (c,) = d.wait_conns(1)
    assert c["end"] == "client-reset"


def test_idle_timeout_sees_kernel_traffic(sluice, backends):
    """Bytes the kernel moves never wake the worker: the idle timer must read
    the program's counters, or it closes a busy connection."""
    be = backends(h_echo)
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr], listen_extra="timeout idle 1s;"))
    with connect(port) as s:
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < 3.0:  # three idle timeouts' worth of pings
            s.sendall(b"ping %d\n" % n)
            want = b"ping %d\n" % n
            got = b""
            while len(got) < len(want):
                b = s.recv(64)
                assert b, "closed while busy after %.1fs" % (time.monotonic() - start)
                got += b
            assert got == want
            n += 1
            time.sleep(0.25)
        # now idle: closed after about a second
        t0 = time.monotonic()
        assert s.recv(64) == b""
        assert 0.5 < time.monotonic() - t0 < 4.0
    (c,) = d.wait_conns(1)
    assert c["end"] == "idle-timeout"


def skmem_of(pid):
    """Sum of the receive and send queue memory (skmem r, t and w) of the TCP
    sockets of process pid, from ss -tmnp."""
    out = subprocess.run(["ss", "-tmnpH"], capture_output=True, text=True, timeout=10).stdout
    total, lines = 0, out.splitlines()
    for i, line in enumerate(lines):
        if "pid=%d," % pid not in line:
            continue
        mem = line if "skmem:" in line else (lines[i + 1] if i + 1 < len(lines) else "")
        m = re.search(r"skmem:\(r(\d+),rb\d+,t(\d+),tb\d+,f\d+,w(\d+)", mem)
        if m:
            total += int(m.group(1)) + int(m.group(2)) + int(m.group(3))
    return total


def sysctl_max(name):
    with open("/proc/sys/net/ipv4/" + name) as f:
        return int(f.read().split()[2])


def test_inflight_cap_slows_a_fast_sender(sluice, backends, relay_mode):
    """A client uploads as fast as it can to a backend that reads 20 MB/s.
    What sluice holds for it stays bounded (the sender is slowed, not
    buffered): the bytes between the client's send() and the backend's
    recv() never exceed the TCP buffers on the way plus the cap. The
    prototype without a cap let a 512 MiB upload finish in 0.13 s."""
    # KRELAY_UPLOAD_MIB=512 KRELAY_BACKEND_MBPS=10: the full-size proof
    total = int(os.environ.get("KRELAY_UPLOAD_MIB", "96")) * MiB
    rate = float(os.environ.get("KRELAY_BACKEND_MBPS", "20")) * 1e6
    cap = 1 * MiB
    received = [0]

    def h_slow(b, c, rec):
        start = time.monotonic()
        while True:
            ahead = received[0] / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(min(ahead, 0.01))
            x = c.recv(64 * 1024)
            if not x:
                break
            received[0] += len(x)
        rec["end"] = "eof"

    be = backends(h_slow)
    port = free_port()
    conf = make_conf(port, ["a %s" % be.addr])
    if relay_mode == "kernel":
        conf = conf.replace("global {", "global { relay kernel inflight 1m;", 1)
    d = sluice(conf)
    # each socket on the way may buffer up to the kernel's maximum
    rmax, wmax = sysctl_max("tcp_rmem"), sysctl_max("tcp_wmem")
    between_bound = wmax + rmax + cap + wmax + rmax + 2 * MiB
    sluice_bound = rmax + wmax + cap + 2 * MiB
    sent = [0]
    peak = {"between": 0, "sluice": 0}
    s = connect(port, timeout=DEADLINE * 3)
    done = threading.Event()

    def sender():
        chunk = os.urandom(1 * MiB)
        while sent[0] < total:
            s.sendall(chunk)
            sent[0] += len(chunk)
            peak["between"] = max(peak["between"], sent[0] - received[0])
        s.shutdown(socket.SHUT_WR)
        done.set()

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    deadline = time.monotonic() + total / rate * 3 + 10
    while not done.is_set() and time.monotonic() < deadline:
        peak["sluice"] = max(peak["sluice"], skmem_of(d.pid))
        time.sleep(0.05)
    assert done.is_set(), "upload did not finish"
    t.join(DEADLINE)
    be.wait_done(1, timeout=DEADLINE * 3)
    s.close()
    print("peak bytes between client and backend %d (bound %d), on sluice's sockets %d "
          "(bound %d)" % (peak["between"], between_bound, peak["sluice"], sluice_bound))
    assert received[0] == total
    assert peak["between"] <= between_bound, (peak, between_bound)
    assert peak["sluice"] <= sluice_bound, (peak, sluice_bound)


def no_bpf_prefix():
    """Run sluice as root but without CAP_BPF and CAP_SYS_ADMIN (either one
    lets a process load BPF programs)."""
    return ("setpriv", "--inh-caps=-bpf,-sys_admin", "--bounding-set=-bpf,-sys_admin")


def test_relay_kernel_without_bpf_rights_is_a_clear_error(tmp_path, relay_mode):
    if relay_mode != "user":
        pytest.skip("the configuration names its relay: one run is enough")
    port = free_port()
    conf = tmp_path / "k.conf"
    conf.write_text(make_conf(port, ["a 127.0.0.1:9"], listen_extra="relay kernel;"))
    r = subprocess.run(list(no_bpf_prefix()) + [SLUICE, "-f", str(conf)], capture_output=True,
                       text=True, timeout=DEADLINE, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r
    assert re.search(r"error: listen www: relay kernel: kernel relay: cannot load the verdict "
                     r"program \(needs CAP_BPF and CAP_NET_ADMIN\): Operation not permitted",
                     r.stderr), r.stderr


def test_relay_auto_without_bpf_rights_serves_in_user_space(sluice, backends, relay_mode):
    if relay_mode != "user":
        pytest.skip("the configuration names its relay: one run is enough")
    be = backends(h_echo)
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr], listen_extra="relay auto;"),
               prefix=no_bpf_prefix())
    d.wait_log(r"warning: relay auto: kernel relay: cannot load the verdict program .*; the "
               r"user-space relay serves every connection")
    round_trips(port)
    assert "kernel relay loaded" not in d.log()


def test_privilege_drop_keeps_cap_bpf_for_the_kernel_relay(short_dir, sluice, backends,
                                                          relay_mode):
    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges")
    if relay_mode != "user":
        pytest.skip("the configuration names its relay: one run is enough")
    be = backends(h_echo)
    port = free_port()
    conf = ("global { workers 2; log stderr info; user nobody; group nogroup; relay kernel; }\n"
            "pool web { server a %s; }\nlisten www { bind 127.0.0.1:%d; pool web; }\n"
            % (be.addr, port))
    d = sluice(conf, name=os.path.join(short_dir, "priv"))
    d.wait_log(r"CAP_NET_RAW, CAP_BPF$")
    for t in sorted(int(t) for t in os.listdir("/proc/%d/task" % d.pid)):
        assert proc_status(d.pid, t)["CapEff"] == "0000008000003400"
    # inserting sockets after the drop needs no capability
    for _ in range(3):
        round_trips(port)
    assert d.stop() == 0
    assert krelay_counts(d) == (3, 0)


def test_reload_turns_the_kernel_relay_on(sluice, backends, short_dir, relay_mode):
    if relay_mode != "user":
        pytest.skip("the configuration names its relay: one run is enough")
    be = backends(h_echo)
    port = free_port()
    sock = os.path.join(short_dir, "ctl.sock")
    base = make_conf(port, ["a %s" % be.addr], global_extra="control %s;" % sock)
    d = sluice(base)
    assert echo_transfer(port, 64 * 1024) is None
    ctl = wait_ctl(sock)
    assert re.search(r"^kernel relay: +not loaded$", ctl.ok("show info"), re.M)
    write_atomic(d.conf_path, base.replace("global {", "global { relay kernel;", 1))
    assert ctl.ok("reload") == "reload done:\nlisten www: settings changed (pool web)"
    d.wait_log(r"notice: kernel relay loaded")
    for _ in range(2):
        round_trips(port)
    d.wait_conns(3)
    assert re.search(r"^kernel relay: +2 connections, 0 stayed in user space, \d+ repeated "
                     r"segments cut, 0 streams reset \(bytes lost\)$",
                     ctl.ok("show info"), re.M)
    ctl.close()


def test_relay_auto_keeps_bulk_on_splice(sluice, backends, relay_mode):
    """relay auto: a connection whose first bytes fill a whole buffer is
    bulk and stays in user space (splice), and so does one of a single
    request and reply; a keep-alive connection goes to the kernel once the
    client speaks again."""
    if relay_mode != "user":
        pytest.skip("the configuration names its relay: one run is enough")
    be = backends(h_echo)
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr], listen_extra="relay auto;"))
    assert echo_transfer(port, 512 * 1024) is None  # bulk from the first byte
    round_trips(port, 1, 1024)  # one request, one reply
    round_trips(port, 3, 1024)
    d.wait_conns(3)
    assert d.stop() == 0
    assert krelay_counts(d) == (1, 0)
