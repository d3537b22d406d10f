# SIGTERM under load: transfers in flight when the signal comes complete,
# byte for byte, within grace, and the daemon exits 0 as soon as they are
# done; meanwhile clients keep opening connections as fast as they can, and
# each of them is either served completely or refused: none is accepted and
# then reset (which would happen to connections left in the accept queue of
# a listening socket that is closed), and once a client was refused it
# stays refused (the listeners are closed, not paused).
import hashlib
import signal
import socket
import threading
import time

from conftest import DEADLINE, SLOW, echo_transfer, free_port, h_echo, make_conf, wait_until

GRACE = 10.0
SLOW_CLIENTS = 6
CHUNKS, CHUNK = 20, 16384  # each slow client: 320 KiB over about 2 s
HAMMERS = 6


def slow_transfer(port, started, out, i):
    """Send CHUNKS chunks with pauses, then FIN; read the echo to EOF in a
    second thread; record whether all came back intact."""
    payload = hashlib.sha256(b"%d" % i).digest() * (CHUNK * CHUNKS // 32)
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        got = []

        def reader():
            try:
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    got.append(b)
            except OSError as e:
                got.append(e)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        s.sendall(payload[:CHUNK])
        started.release()
        for k in range(1, CHUNKS):
            time.sleep(0.1)  # the shape of the transfer: spread over 2 s
            s.sendall(payload[k * CHUNK:(k + 1) * CHUNK])
        s.shutdown(socket.SHUT_WR)
        t.join(DEADLINE)
        s.close()
        if any(isinstance(g, Exception) for g in got):
            out[i] = "error %r" % [g for g in got if isinstance(g, Exception)]
        else:
            data = b"".join(got)
            out[i] = None if data == payload else "got %d of %d bytes%s" % (
                len(data), len(payload), " (differs)" if len(data) == len(payload) else "")
        out[i, "t"] = time.monotonic()
    except OSError as e:
        out[i] = "error %r" % e
        started.release()


def hammer(port, stop, results):
    """Open connections back to back until refused 20 times in a row (or
    stop); each: 2 KiB echoed and verified. Appends (t, result)."""
    refused_streak = 0
    while not stop.is_set() and refused_streak < 20:
        t = time.monotonic()
        r = echo_transfer(port, 2048, timeout=10 * SLOW, connect_timeout=5 * SLOW)
        if r is not None and r.startswith("connect: ConnectionResetError"):
            r = "reset in connect"  # see burst()
        results.append((t, r))
        refused_streak = refused_streak + 1 if r == "refused" else 0


def burst(port, ready, out, limit=1500):
    """Connect back to back without any I/O (the fastest way to have
    connections arrive while the listeners close) until refused 20 times in
    a row; then check every connected one: 100 bytes must come back. Sets
    ready after 20 connections. out: list of (t, result)."""
    socks, refused_streak = [], 0
    while refused_streak < 20 and len(socks) < limit:
        t = time.monotonic()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5 * SLOW)
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            s.close()
            out.append((t, "refused"))
            refused_streak += 1
            continue
        except ConnectionResetError:
            # reset during the handshake: the request was still in the SYN
            # queue of a listener being closed, connect() never succeeded;
            # the client sees a failed connect, as with a refusal
            s.close()
            out.append((t, "reset in connect"))
            continue
        refused_streak = 0
        socks.append((t, s))
        if len(socks) == 20:
            ready.set()
    ready.set()
    for t, s in socks:
        try:
            s.sendall(b"x" * 100)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while len(got) < 101:
                b = s.recv(200)
                if not b:
                    break
                got += b
            out.append((t, None if got == b"x" * 100 else "got %d of 100 bytes" % len(got)))
        except OSError as e:
            out.append((t, "%r after connecting" % e))
        finally:
            s.close()


def test_sigterm_under_load_finishes_inflight_and_resets_nothing(sluice, backends):
    be = backends(h_echo)
    port = free_port()
    d = sluice(make_conf(port, ["a %s" % be.addr, "b %s" % be.addr], grace="%ds" % GRACE))
    stop = threading.Event()
    hres = [[] for _ in range(HAMMERS)]
    hammers = [threading.Thread(target=hammer, args=(port, stop, hres[i]), daemon=True)
               for i in range(HAMMERS)]
    for t in hammers:
        t.start()
    wait_until(lambda: sum(1 for r in hres for x in r if x[1] is None) >= 50,
               what="the hammering clients served")
    started = threading.Semaphore(0)
    out = {}
    slow = [threading.Thread(target=slow_transfer, args=(port, started, out, i), daemon=True)
            for i in range(SLOW_CLIENTS)]
    for t in slow:
        t.start()
    for _ in range(SLOW_CLIENTS):
        assert started.acquire(timeout=DEADLINE)
    be.wait(lambda b: b.active >= SLOW_CLIENTS, what="the slow transfers in flight")
    bres, bready = [], threading.Event()
    bt = threading.Thread(target=burst, args=(port, bready, bres), daemon=True)
    bt.start()
    assert bready.wait(DEADLINE)
    t_term = time.monotonic()
    d.signal(signal.SIGTERM)
    d.wait_log(r"notice: SIGTERM: stopping listeners, \d+ connections open, grace %dms"
               % (GRACE * 1000))
    for t in slow:
        t.join(DEADLINE)
    for t in hammers + [bt]:
        t.join(DEADLINE)
    stop.set()
    assert not any(t.is_alive() for t in slow + hammers + [bt])
    rc = d.wait_exit(GRACE + DEADLINE)
    t_exit = time.monotonic()

    # in-flight transfers complete, within grace, and the daemon waited for them
    bad = {i: out.get(i) for i in range(SLOW_CLIENTS) if out.get(i) is not None}
    assert bad == {}, "in-flight transfers failed: %r" % bad
    last_done = max(out[i, "t"] for i in range(SLOW_CLIENTS))
    assert last_done > t_term and rc == 0
    assert t_exit - t_term < GRACE, "exit %.1fs after SIGTERM" % (t_exit - t_term)
    assert "grace period over" not in d.log()
    d.wait_log(r"notice: all connections finished")
    ends = [c["end"] for c in d.conns()]
    assert set(ends) == {"client-closed"}, sorted(set(ends))

    # every new connection: served completely, or refused; never accepted
    # and then reset or cut short; refused for good once refused
    flat = sorted(x for r in hres + [bres] for x in r)
    after = [x for x in flat if x[0] >= t_term]
    broken = [(round(t - t_term, 4), r) for t, r in flat
              if r not in (None, "refused", "reset in connect")]
    served_after = sum(1 for _, r in after if r is None)
    print("burst: %d connections (%d served, %d refused); " % (
        len(bres), sum(1 for _, r in bres if r is None), sum(1 for _, r in bres if r == "refused"))
        + "hammer+burst: %d connections, %d after SIGTERM (%d served, %d refused)"
          % (len(flat), len(after), served_after, sum(1 for _, r in after if r == "refused")))
    assert broken == [], "connections accepted and then reset or cut short (s after " \
        "SIGTERM, error): %r" % broken[:10]
    for r in hres:
        first = next((k for k, x in enumerate(r) if x[1] == "refused"), None)
        assert first is not None, "a client was never refused"
        assert all(x[1] in ("refused", "reset in connect") for x in r[first:]), \
            "served again after a refusal: %r" % r[first:first + 5]
