# Reload under steady load: 100 reloads (SIGHUP and the control socket's
# `reload`, alternately) between two valid configurations that open and
# close listeners and add, remove and change pools and servers, with five
# invalid files mixed in, while about 200 connections per second each send
# 2 KiB - 256 KiB of random data through echo backends on the listener both
# files keep, and verify its sha256. No connection on the kept listener may
# fail or come back corrupted; every invalid file is rejected with its
# FILE:LINE:COL message while traffic goes on; runtime changes made during
# the run (drain, weight, a server added) survive, so that at the end
# `show servers` is the last valid file plus those changes.
import os
import re
import signal
import time

from conftest import (DEADLINE, SLOW, Load, LogTail, echo_transfer, free_port, h_echo,
                      port_is_free, text_pos, wait_ctl, wait_until, write_atomic)

RATE = 200  # new connections per second
DURATION = 30.0  # seconds of load
RELOADS = 100
INVALID_AT = {10, 30, 50, 70, 90}  # which reloads get a broken file
SPACING = 0.28  # seconds between reloads: 100 of them fit in the load


def conf_a(sock, p, q, be):
    return (
        "global { workers 2; log stderr info; grace 5s; control %s; }\n"
        "pool web {\n"
        "    balance roundrobin;\n"
        "    server e1 %s;\n"
        "    server e2 %s weight 2;\n"
        "    server e3 %s;\n"
        "}\n"
        "pool aux {\n"
        "    server x1 %s;\n"
        "}\n"
        "listen www {\n"
        "    bind 127.0.0.1:%d;\n"
        "    pool web;\n"
        "    timeout connect 2s;\n"
        "}\n"
        "listen extra {\n"
        "    bind 127.0.0.1:%d;\n"
        "    pool aux;\n"
        "}\n" % (sock, be["e1"].addr, be["e2"].addr, be["e3"].addr, be["x1"].addr, p, q))


def conf_b(sock, p, r, be):
    return (
        "global { workers 2; log stderr info; grace 5s; control %s; }\n"
        "pool web {\n"
        "    balance leastconn;\n"
        "    server e1 %s;\n"
        "    server e2 %s weight 2;\n"
        "    server e4 %s weight 3;\n"
        "}\n"
        "pool side {\n"
        "    server s1 %s;\n"
        "}\n"
        "listen www {\n"
        "    bind 127.0.0.1:%d;\n"
        "    pool web;\n"
        "    timeout connect 3s;\n"
        "}\n"
        "listen alt {\n"
        "    bind 127.0.0.1:%d;\n"
        "    pool side;\n"
        "}\n" % (sock, be["e1"].addr, be["e2"].addr, be["e4"].addr, be["s1"].addr, p, r))


def invalid_files(a, b):
    """Broken variants of the two files: (text, line, col, message regex)."""
    out = []
    t = a.replace("    timeout connect 2s;\n", "    timeout connect 2s;\n    frobnicate on;\n")
    line, col = text_pos(t, "frobnicate")
    out.append((t, line, col, r"unknown keyword 'frobnicate' in listen 'www'"))
    t = b.replace("    pool side;\n", "    pool nosuch;\n")
    line, col = text_pos(t, "nosuch")
    out.append((t, line, col, re.escape("pool 'nosuch' does not exist (near 'nosuch')")))
    t = re.sub(r"server e4 127\.0\.0\.1:", "server e4 127.0.0.300:", b)
    line, col = text_pos(t, "127.0.0.300")
    out.append((t, line, col, re.escape("bad address '127.0.0.300'")))
    t = a.replace("    server e3 ", "    server e1 ")
    line, col = text_pos(t, "e1", 1)
    out.append((t, line, col, re.escape("duplicate server 'e1' in pool 'web'")))
    t = b.replace("    timeout connect 3s;\n", "    timeout connect 3s;\n    retries 2\n")
    line, col = text_pos(t, "retries 2")
    out.append((t, line, col + len("retries 2"), re.escape("expected ';' after '2'")))
    return out


def refused_or_served(port):
    """'refused' or the echo result of one small transfer (None: served)."""
    return echo_transfer(port, 1000, timeout=5 * SLOW)


def test_reload_100_times_under_load(short_dir, sluice, backends):
    be = {n: backends(h_echo, name=n) for n in ("e1", "e2", "e3", "e4", "x1", "s1", "rt1")}
    sock = os.path.join(short_dir, "ctl.sock")
    p, q, r = free_port(), free_port(), free_port()
    assert len({p, q, r}) == 3
    a, b = conf_a(sock, p, q, be), conf_b(sock, p, r, be)
    bad = invalid_files(a, b)
    d = sluice(a)
    path = d.conf_path
    ctl = wait_ctl(sock)
    tail = LogTail(d)

    load = Load(p, RATE, DURATION)
    t_start = time.monotonic()
    valid_done, invalid_done = 0, 0
    last_valid = "a"
    times = []
    runtime = {}
    e1_total_at_drain = None
    try:
        for i in range(RELOADS):
            at = t_start + 0.5 + i * SPACING
            delay = at - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the reloads over the load, not waiting for an event
            via_signal = i % 2 == 0
            if i in INVALID_AT:
                text, line, col, msg = bad[invalid_done % len(bad)]
                write_atomic(path, text)
                want = r"%s:%d:%d: error: .*%s" % (re.escape(path), line, col, msg)
                ok_before = load.ok
                tail.mark()
                t0 = time.monotonic()
                if via_signal:
                    d.signal(signal.SIGHUP)
                else:
                    reply = ctl.cmd("reload")
                    assert re.match(r"error: " + want, reply), reply
                tail.wait(r"^.* error: " + want)
                tail.wait(r"^.* error: reload failed, keeping the running configuration: "
                          + want)
                times.append(time.monotonic() - t0)
                invalid_done += 1
                # traffic goes on after the rejected file
                wait_until(lambda: load.ok >= ok_before + 5, what="traffic after a rejected file")
                continue
            nxt = "b" if last_valid == "a" else "a"
            write_atomic(path, b if nxt == "b" else a)
            tail.mark()
            t0 = time.monotonic()
            if via_signal:
                d.signal(signal.SIGHUP)
                tail.wait(r"^.* notice: reload of %s done$" % re.escape(path))
            else:
                reply = ctl.ok("reload")
                assert reply.startswith("reload done:\n"), reply
            times.append(time.monotonic() - t0)
            valid_done += 1
            last_valid = nxt
            # the listener only the new file has serves; the other one closes
            opened, closed = (r, q) if nxt == "b" else (q, r)
            assert refused_or_served(opened) is None, "reload %d: new listener on %d" % (i, opened)
            wait_until(lambda: port_is_free(closed),
                       what="reload %d: removed listener on port %d closed" % (i, closed))
            assert refused_or_served(closed) == "refused", "reload %d: port %d" % (i, closed)
            # runtime changes during the run
            if i == 21:
                ctl.ok("server add web rt1 %s weight 4 ready" % be["rt1"].addr)
                runtime["rt1"] = True
            if i == 41:
                ctl.ok("server drain web/e1")
                e1_total_at_drain = ctl.servers()[("web", "e1")]["connections_total"]
            if i == 61:
                ctl.ok("server weight web/e2 7")
    except BaseException:
        load.stop()
        raise
    load.join()  # the load ends by itself after DURATION
    print("load: %s; reloads %d valid, %d invalid; reload time max %.0fms mean %.0fms"
          % (load.summary(), valid_done, invalid_done, max(times) * 1000,
             sum(times) / len(times) * 1000))

    assert load.failures == [], "failed connections on the kept listener: %d, first: %r" % (
        len(load.failures), load.failures[:5])
    assert valid_done + invalid_done == RELOADS and invalid_done == len(INVALID_AT)
    # the load really ran at its rate (no hidden stall while reloading)
    assert load.ok >= RATE * DURATION * 0.9, load.summary()

    info = ctl.ok("show info")
    assert re.search(r"^reloads: +%d ok, %d failed$" % (valid_done, invalid_done), info, re.M), info
    assert last_valid == "b"  # 95 valid reloads from a: the last one applied b

    # show servers: the last valid file (b) plus the runtime changes
    srv = ctl.servers()
    assert set(srv) == {("web", "e1"), ("web", "e2"), ("web", "e4"), ("web", "rt1"),
                        ("side", "s1")}, sorted(srv)
    want = {
        ("web", "e1"): (be["e1"].addr, "drain", 1, False),
        ("web", "e2"): (be["e2"].addr, "ready", 7, False),
        ("web", "e4"): (be["e4"].addr, "ready", 3, False),
        ("web", "rt1"): (be["rt1"].addr, "ready", 4, True),
        ("side", "s1"): (be["s1"].addr, "ready", 1, False),
    }
    for k, (addr, admin, weight, added) in want.items():
        got = srv[k]
        assert (got["address"], got["admin"], got["weight"], got["runtime_added"]) == \
            (addr, admin, weight, added), (k, got)
        assert got["health"] == "up", (k, got)
    # e1's counter was not reset by the reloads after the drain, and the
    # drained server took (almost) nothing new: at most the connections
    # that had picked it before the drain was published
    e1_total = srv[("web", "e1")]["connections_total"]
    assert e1_total_at_drain > 0
    assert e1_total_at_drain <= e1_total <= e1_total_at_drain + 2, (e1_total_at_drain, e1_total)
    # pools and listeners as in b
    pools = {x["name"]: x for x in ctl.json("show pools")}
    assert set(pools) == {"web", "side"} and pools["web"]["balance"] == "leastconn", pools
    ls = ctl.listeners()
    assert {n: (x["binds"], x["pool"]) for n, x in ls.items()} == {
        "www": ("127.0.0.1:%d" % p, "web"), "alt": ("127.0.0.1:%d" % r, "side")}, ls
    # the kept listener's counter counts the whole run
    assert ls["www"]["connections_total"] >= load.ok, (ls["www"], load.ok)
    ctl.close()
