# Limits: listener maxconn (stop accepting, resume below the limit), server
# maxconn with the pool queue, queue timeout and a full queue, queue
# settings changed by reloads while clients queue, and the idle timeout.
import os
import socket
import threading
import time

from conftest import (DEADLINE, connect, ctl_global, free_port, got_nothing, h_echo, h_name,
                      make_conf, recv_exact, recv_line, wait_ctl, write_atomic)

# How long a client must see nothing to count as "not served". Short enough
# to keep the suite fast, far above a served connection's latency here.
NOTHING_WAIT = 0.5


def recv_or_reset(sock):
    """What the proxy sent before closing: b"" for a close or a reset."""
    try:
        return sock.recv(100)
    except ConnectionResetError:
        return b""


def held(port):
    s = connect(port)
    line = recv_line(s)
    assert line.endswith(b"\n"), "no name line (got %r)" % line
    return s, line.decode().strip()


def test_listener_maxconn_holds_the_sixth_client(sluice, backends):
    be = backends(h_name, name="a")
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr], listen_extra="maxconn 5;"))
    first = [held(port) for _ in range(5)]
    sixth = connect(port)  # the kernel completes it: it waits in the backlog
    assert got_nothing(sixth, NOTHING_WAIT), "the 6th client was served above maxconn 5"
    assert be.total == 5 and be.active == 5
    first[2][0].close()
    sixth.settimeout(DEADLINE)
    assert recv_line(sixth) == b"a\n", "the 6th client was not served after a slot freed"
    be.wait(lambda b: b.total == 6, what="the 6th backend connection")
    assert be.max_active == 5
    sixth.close()
    for s, _ in first:
        s.close()
    d.wait_conns(6)


def test_server_maxconn_queues_the_fifth_client(sluice, backends):
    a, b = backends(h_name, name="a"), backends(h_name, name="b")
    port = free_port()
    d = sluice(make_conf(port, ["a %s maxconn 2" % a.addr, "b %s maxconn 2" % b.addr],
                         pool_extra="queue 10; timeout queue 20s;"))
    first = [held(port) for _ in range(4)]
    assert sorted(n for _, n in first) == ["a", "a", "b", "b"]
    fifth = connect(port)
    assert got_nothing(fifth, NOTHING_WAIT), "the 5th client was served above server maxconn"
    assert a.total + b.total == 4
    # free a slot on b: the queued client goes there
    victim = next(s for s, n in first if n == "b")
    victim.close()
    fifth.settimeout(DEADLINE)
    assert recv_line(fifth) == b"b\n"
    assert a.max_active == 2 and b.max_active == 2
    fifth.close()
    for s, _ in first:
        s.close()
    logs = d.wait_conns(5)
    assert all(c["end"] != "queue-timeout" for c in logs)


def test_queue_timeout_closes_the_queued_client(sluice, backends):
    a = backends(h_name, name="a")
    port = free_port()
    d = sluice(make_conf(port, ["a %s maxconn 1" % a.addr],
                         pool_extra="queue 10; timeout queue 300ms;"))
    s1, _ = held(port)
    t0 = time.monotonic()
    with connect(port) as s2:
        data = recv_or_reset(s2)
    waited = time.monotonic() - t0
    assert data == b"", "the queued client was served: %r" % data
    assert waited >= 0.25, "closed after %.3fs, before the 300ms queue timeout" % waited
    assert waited < 0.3 + 2.0, "closed only after %.3fs" % waited
    (c,) = d.wait_conns(1, end="queue-timeout")
    assert c["server"] == "-"
    assert a.total == 1
    s1.close()


def test_queue_0_closes_at_once_queue_full(sluice, backends):
    a = backends(h_name, name="a")
    port = free_port()
    d = sluice(make_conf(port, ["a %s maxconn 1" % a.addr],
                         pool_extra="queue 0; timeout queue 20s;"))
    s1, _ = held(port)
    t0 = time.monotonic()
    with connect(port) as s2:
        data = recv_or_reset(s2)
    assert data == b""
    assert time.monotonic() - t0 < 2.0, "queue 0 did not close the client at once"
    (c,) = d.wait_conns(1, end="queue-full")
    assert c["server"] == "-"
    assert a.total == 1
    s1.close()


def test_reload_changes_the_queue_while_clients_queue(short_dir, sluice, backends):
    """Reloads change queue and timeout queue while the workers queue and
    refuse clients: each client obeys the settings of the moment. The
    workers read them from the pool's published snapshot, which a reload
    never writes (make tsan-test reported the shared fields they read
    before as a data race)."""
    a = backends(h_name, name="a")
    port = free_port()
    sock = os.path.join(short_dir, "ctl.sock")

    def conf(queue, timeout):
        return make_conf(port, ["a %s maxconn 1" % a.addr], global_extra=ctl_global(sock),
                         pool_extra="queue %d; timeout queue %s;" % (queue, timeout))

    d = sluice(conf(0, "20s"))
    ctl = wait_ctl(sock)
    s1, _ = held(port)  # a's only slot: every other client queues or is refused
    stop = threading.Event()
    churned = []

    def churn():
        end = time.monotonic() + DEADLINE
        while not stop.is_set() and time.monotonic() < end:
            with connect(port) as c:
                try:
                    churned.append(c.recv(100))
                except OSError as e:  # reset when refused
                    churned.append(e)

    t = threading.Thread(target=churn)
    t.start()
    reloads = 0
    try:
        end = time.monotonic() + DEADLINE
        while (len(churned) < 50 or reloads < 20) and time.monotonic() < end:
            write_atomic(d.conf_path, conf(reloads % 2, "%dms" % (20 + reloads % 20)))
            ctl.ok("reload")
            reloads += 1
    finally:
        stop.set()
        t.join()
    assert len(churned) >= 50, "only %d clients during the reloads" % len(churned)
    assert all(not r for r in churned if isinstance(r, bytes)), "a churn client was served"

    logged = d.wait_conns(len(churned))  # every churn client, queued or refused
    assert {c["end"] for c in logged} <= {"queue-full", "queue-timeout"}, logged

    # queue 1: the first waiter times out after 300ms, the second is refused
    write_atomic(d.conf_path, conf(1, "300ms"))
    ctl.ok("reload")
    base_timeouts = len([c for c in logged if c["end"] == "queue-timeout"])
    base_full = len([c for c in logged if c["end"] == "queue-full"])
    t0 = time.monotonic()
    waiter = connect(port)
    assert got_nothing(waiter, 0.1), "the waiter was served"
    with connect(port) as refused:
        data = recv_or_reset(refused)
    assert data == b""
    d.wait_conns(base_full + 1, end="queue-full")
    data = recv_or_reset(waiter)
    waited = time.monotonic() - t0
    waiter.close()
    assert data == b"" and waited >= 0.25, "waiter closed after %.3fs" % waited
    d.wait_conns(base_timeouts + 1, end="queue-timeout")

    # queue 5, timeout 20s: a queued client is served once the slot frees
    write_atomic(d.conf_path, conf(5, "20s"))
    ctl.ok("reload")
    late = connect(port)
    assert got_nothing(late, 0.3), "served above maxconn 1"
    # while s1 held the only slot, nothing else reached the server (once s1
    # closes, the backend may accept the next client before it has read
    # s1's end, so its count is exact only up to here)
    assert a.max_active == 1
    s1.close()
    late.settimeout(DEADLINE)
    assert recv_line(late) == b"a\n"
    late.close()
    ctl.close()


def test_idle_timeout_closes_idle_keeps_active(sluice, backends):
    be = backends(h_echo, name="a")
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr], listen_extra="timeout idle 300ms;"))
    idle = connect(port)
    t0 = time.monotonic()
    active = connect(port)
    # the active one talks every 100ms for 1.2s, four times the idle timeout
    for i in range(12):
        msg = b"ping %02d\n" % i
        active.sendall(msg)
        assert recv_exact(active, len(msg)) == msg
        time.sleep(0.1)  # the pace of the talk itself, not a wait for an event
    # meanwhile the idle one was closed: EOF for the client
    assert idle.recv(10) == b""
    closed = be.wait_done(1)
    assert len(closed) == 1 and closed[0]["end"] == "eof", "backend side of the idle one"
    assert be.active == 1
    assert time.monotonic() - t0 >= 1.2
    (c,) = d.wait_conns(1, end="idle-timeout")
    assert 250 <= int(c["dur"]) < 300 + 1000 * 2, c
    # the active connection still works after all that
    active.sendall(b"still here\n")
    assert recv_exact(active, 11) == b"still here\n"
    active.close()
    idle.close()
    d.wait_conns(2)
    assert len([c for c in d.conns() if c["end"] == "idle-timeout"]) == 1
